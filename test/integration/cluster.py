"""Real multi-node StemeDB clusters on loopback, for the cluster tests
(issue 12; the runbook "Add Node to Cluster" in ../shared/seed/).

Each node is a stemedb-server + stemedb-gateway pair on its own loopback
address 127.0.0.<10+i> with the runbook's real ports: 18180 (REST), 18181
(cluster gateway), 18182 (gRPC), 18183 (UDP SWIM). The server is started
with `--config cluster.toml`, generated exactly in the seed's format (plus
optional extra keys, e.g. short SWIM timings for fast tests). Because the
ports are fixed, tests using this module must not run concurrently: give
them the CTest property RESOURCE_LOCK cluster_ports. Across test runs
(other build directories, other engineers on the machine) a Cluster also
holds an flock on /tmp/stemedb-cluster-ports.lock while it lives.

    with cluster.Cluster() as c:
        n1 = c.add("node1", 1, seeds=[2, 3])
        n2 = c.add("node2", 2, seeds=[1, 3])
        n3 = c.add("node3", 3, seeds=[1, 2])
        c.start_all()
        c.wait_status(n1, {"node1": "UP", "node2": "UP", "node3": "UP"})
        n2.kill()                          # SIGKILL; n2.freeze()/thaw()
        status, body = n1.post("/admin/cluster/remove", {"node_id": "node2"})

Readiness is polled (gRPC health SERVING, the gateway's /v1/health and
/cluster/members answering), never slept for. Logs live in the cluster's
temporary directory; a failed start prints the tail.
"""

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stmtest  # noqa: E402

PORT_HTTP = 18180
PORT_CLUSTER = 18181
PORT_RPC = 18182
PORT_SWIM = 18183

# SWIM timings for tests: a dead member is DOWN within about 2 s instead of
# the production defaults' ~10 s. Keys of cluster.toml's [cluster] table.
FAST_SWIM = {
    "probe_interval_ms": 200,
    "probe_timeout_ms": 100,
    "suspicion_mult": 2,
    "suspicion_max_mult": 3,
    "push_pull_interval_ms": 2000,
}


def ip_of(index):
    """127.0.0.11 for node index 1, ..."""
    return "127.0.0.%d" % (10 + index)


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return json.dumps(str(v))


def cluster_toml(node_id, ip, seed_ips, factor=2, extra=None,
                 extra_replication=None):
    """cluster.toml as the seed's §1 Step 3 writes it (addresses
    substituted), then any `extra` [cluster] and [replication] keys."""
    seeds = ",\n".join('"%s:%d"' % (s, PORT_SWIM) for s in seed_ips)
    lines = [
        "[cluster]",
        "enabled = true",
        'node_id = "%s"' % node_id,
        'bind_addr = "%s:%d" # %s IP' % (ip, PORT_CLUSTER, node_id),
        'rpc_addr = "%s:%d"' % (ip, PORT_RPC),
        'swim_addr = "%s:%d"' % (ip, PORT_SWIM),
        "# Seed nodes for discovery",
        "seeds = [\n%s\n]" % seeds,
    ]
    for k, v in (extra or {}).items():
        lines.append("%s = %s" % (k, toml_value(v)))
    lines += ["", "[replication]",
              "factor = %d # Replicate each assertion to %d nodes" % (factor, factor)]
    for k, v in (extra_replication or {}).items():
        lines.append("%s = %s" % (k, toml_value(v)))
    return "\n".join(lines) + "\n"


def http(method, url, body=None, timeout=5.0):
    """(status, parsed JSON or text) of one request; never raises for an
    HTTP error status."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw, ctype = r.status, r.read(), r.headers.get("content-type", "")
    except urllib.error.HTTPError as e:
        status, raw, ctype = e.code, e.read(), e.headers.get("content-type", "")
    text = raw.decode("utf-8", "replace")
    if "json" in ctype:
        return status, json.loads(text)
    return status, text


class Node:
    """One stemedb-server + stemedb-gateway pair on 127.0.0.<10+index>."""

    def __init__(self, cluster, node_id, index, seeds, factor=2, extra=None,
                 extra_replication=None, clustered=True, data_dir=None, tls=None):
        self.cluster = cluster
        self.node_id = node_id
        self.index = index
        self.ip = ip_of(index)
        self.seed_ips = [ip_of(s) if isinstance(s, int) else s for s in seeds]
        self.factor = factor
        self.extra = dict(FAST_SWIM if extra is None else extra)
        self.extra_replication = extra_replication
        self.clustered = clustered
        # TLS (issue 13): {"cert", "key", "ca"} paths; the server serves
        # gRPC with cert/key and requires client certificates signed by ca
        # (unless "mtls": False), its peers are dialled with the same files
        # (trusting "peer_ca" when given), and the gateway reaches it with
        # ca + the node's cert as client.
        self.tls = tls
        self.dir = os.path.join(cluster.root, node_id)
        self.data_dir = data_dir or os.path.join(self.dir, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        self.config_path = os.path.join(self.dir, "cluster.toml")
        self.rpc_addr = "%s:%d" % (self.ip, PORT_RPC)
        self.swim_addr = "%s:%d" % (self.ip, PORT_SWIM)
        self.bind_addr = "%s:%d" % (self.ip, PORT_CLUSTER)
        self.http_base = "http://%s:%d" % (self.ip, PORT_HTTP)
        self.cluster_base = "http://%s:%d" % (self.ip, PORT_CLUSTER)
        self.server = None
        self.gateway = None
        self._logs = []

    # ---- processes ----------------------------------------------------

    def write_config(self):
        with open(self.config_path, "w") as f:
            f.write(cluster_toml(self.node_id, self.ip, self.seed_ips,
                                 self.factor, self.extra, self.extra_replication))

    def _log(self, what):
        path = os.path.join(self.dir, "%s.log" % what)
        self._logs.append(path)
        return open(path, "ab")

    def start(self, wait=True, extra_args=()):
        """Start the server (with --config when clustered, else as a plain
        single node on the same addresses), then the gateway."""
        if self.clustered:
            self.write_config()
            args = ["--config", self.config_path]
        else:
            args = ["--grpc-listen", self.rpc_addr, "--node-id", self.node_id]
        args += ["--data-dir", self.data_dir, "--shutdown-grace-ms", "2000"]
        gw_tls = []
        if self.tls:
            args += ["--tls-cert", self.tls["cert"], "--tls-key", self.tls["key"]]
            if self.tls.get("mtls", True):
                args += ["--tls-client-ca", self.tls["ca"]]
            if self.tls.get("peer_ca"):
                args += ["--peer-ca", self.tls["peer_ca"]]
            gw_tls = ["--server-ca", self.tls["ca"], "--server-cert", self.tls["cert"],
                      "--server-key", self.tls["key"]]
        slog = self._log("server")
        self.server = subprocess.Popen([stmtest.SERVER_BIN] + args + list(extra_args),
                                       stdout=slog, stderr=subprocess.STDOUT)
        slog.close()
        glog = self._log("gateway")
        self.gateway = subprocess.Popen(
            [stmtest.GATEWAY_BIN, "--http-listen", "%s:%d" % (self.ip, PORT_HTTP),
             "--cluster-listen", self.bind_addr, "--server", self.rpc_addr] + gw_tls,
            stdout=glog, stderr=subprocess.STDOUT)
        glog.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=30.0):
        import grpc
        _, _, _, health_pb2, health_pb2_grpc = stmtest.stubs()

        def ready():
            for name, p in (("server", self.server), ("gateway", self.gateway)):
                if p.poll() is not None:
                    raise RuntimeError("%s %s exited with %s; log:\n%s"
                                       % (self.node_id, name, p.returncode, self.log_tail()))
            try:
                with self.grpc_channel() as ch:
                    r = health_pb2_grpc.HealthStub(ch).Check(
                        health_pb2.HealthCheckRequest(service=""), timeout=0.5)
                    if r.status != health_pb2.HealthCheckResponse.SERVING:
                        return False
                s1, _ = http("GET", self.http_base + "/v1/health", timeout=1)
                s2, _ = http("GET", self.cluster_base + "/cluster/members", timeout=1)
                return s1 == 200 and s2 == 200
            except (grpc.RpcError, OSError):
                return False
        stmtest.wait_until(ready, timeout, "%s ready on %s" % (self.node_id, self.ip))

    def running(self):
        return self.server is not None and self.server.poll() is None

    def _signal_server(self, sig):
        if self.server is not None and self.server.poll() is None:
            self.server.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=30.0):
        """Stop the server (and the gateway); returns the server's status."""
        rc = None
        if self.server is not None:
            if self.server.poll() is None:
                self.server.send_signal(signal.SIGCONT)  # a frozen one too
                self.server.send_signal(sig)
            rc = self.server.wait(timeout)
            self.server = None
        if self.gateway is not None:
            if self.gateway.poll() is None:
                self.gateway.send_signal(signal.SIGTERM if sig != signal.SIGKILL else sig)
            self.gateway.wait(timeout)
            self.gateway = None
        return rc

    def kill(self):
        """SIGKILL the server and the gateway: a crashed machine."""
        return self.stop(signal.SIGKILL)

    def freeze(self):
        """SIGSTOP the server: alive but silent (a long GC pause, a hung VM)."""
        self._signal_server(signal.SIGSTOP)

    def thaw(self):
        self._signal_server(signal.SIGCONT)

    def log_tail(self, n=4000):
        out = []
        for p in self._logs[-2:]:
            try:
                with open(p, "rb") as f:
                    out.append("--- %s\n%s" % (p, f.read().decode("utf-8", "replace")[-n:]))
            except OSError:
                pass
        return "\n".join(out)

    # ---- requests ---------------------------------------------------------

    def get(self, path, port=PORT_CLUSTER, timeout=5.0):
        base = self.cluster_base if port == PORT_CLUSTER else self.http_base
        return http("GET", base + path, timeout=timeout)

    def post(self, path, body, port=PORT_CLUSTER, timeout=10.0):
        base = self.cluster_base if port == PORT_CLUSTER else self.http_base
        return http("POST", base + path, body, timeout=timeout)

    def members(self):
        """{id: member} from GET /cluster/members (cluster gateway)."""
        status, body = self.get("/cluster/members")
        if status != 200:
            raise AssertionError("GET /cluster/members on %s: %s %s" % (self.node_id, status, body))
        return {m["id"]: m for m in body["members"]}

    def health(self):
        """GET /v1/health on 18180: (status, body)."""
        return self.get("/v1/health", port=PORT_HTTP)

    def metrics(self):
        status, text = self.get("/metrics", port=PORT_HTTP)
        if status != 200:
            raise AssertionError("GET /metrics on %s: %s" % (self.node_id, status))
        return text

    def grpc_channel(self):
        import grpc
        if not self.tls:
            return grpc.insecure_channel(self.rpc_addr)
        with open(self.tls["ca"], "rb") as f:
            ca = f.read()
        with open(self.tls["cert"], "rb") as f:
            cert = f.read()
        with open(self.tls["key"], "rb") as f:
            key = f.read()
        return grpc.secure_channel(self.rpc_addr, grpc.ssl_channel_credentials(ca, key, cert))


class Cluster:
    """A set of Nodes sharing one temporary directory; cleanup() (or the
    with-block) kills whatever still runs and removes the directory unless
    STM_KEEP_CLUSTER is set."""

    LOCK_PATH = os.path.join(tempfile.gettempdir(), "stemedb-cluster-ports.lock")

    def __init__(self, lock_timeout=240.0):
        self._lock = open(self.LOCK_PATH, "a")
        deadline = time.monotonic() + lock_timeout
        while True:
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError("another cluster test holds %s" % self.LOCK_PATH)
                time.sleep(0.2)  # waiting for another process: no event to poll
        self.root = tempfile.mkdtemp(prefix="stm-cluster-")
        self.nodes = {}

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            for n in self.nodes.values():
                sys.stderr.write("\n===== %s =====\n%s\n" % (n.node_id, n.log_tail()))
        self.cleanup()
        return False

    def add(self, node_id, index, seeds=(), **kw):
        """A node on 127.0.0.<10+index>; seeds are node indexes or IPs."""
        n = Node(self, node_id, index, list(seeds), **kw)
        self.nodes[node_id] = n
        return n

    def start_all(self, nodes=None):
        """Start the nodes (all by default), then wait for each to be ready."""
        todo = list(nodes or self.nodes.values())
        for n in todo:
            n.start(wait=False)
        for n in todo:
            n.wait_ready()

    def wait_status(self, observer, expect, timeout=20.0):
        """Wait until observer's /cluster/members shows every id of `expect`
        with its status ("UP", ...; a set allows several), and no other
        member unless `expect` has "*". Returns the members."""
        last = {}

        def check():
            nonlocal last
            try:
                last = observer.members()
            except (OSError, AssertionError):
                return False
            for i, want in expect.items():
                if i == "*":
                    continue
                allowed = want if isinstance(want, (set, frozenset, tuple)) else {want}
                if i not in last or last[i]["status"] not in allowed:
                    return False
            if "*" not in expect and set(last) - set(expect):
                return False
            return last
        try:
            return stmtest.wait_until(check, timeout, "members %s on %s" % (expect, observer.node_id))
        except TimeoutError:
            raise AssertionError("%s never saw %s; last: %s" % (
                observer.node_id, expect,
                {i: m["status"] for i, m in last.items()}))

    def stop_all(self):
        """SIGTERM every running node (in parallel); {id: exit status}. A
        sanitizer report makes the status non-zero."""
        running = [n for n in self.nodes.values() if n.running()]
        for n in running:
            n.server.send_signal(signal.SIGCONT)
            n.server.send_signal(signal.SIGTERM)
        return {n.node_id: n.stop() for n in running}

    def cleanup(self):
        for n in self.nodes.values():
            try:
                n.kill()
            except Exception:  # noqa: BLE001 - best effort
                pass
        if not os.environ.get("STM_KEEP_CLUSTER"):
            shutil.rmtree(self.root, ignore_errors=True)
        else:
            sys.stderr.write("cluster kept in %s\n" % self.root)
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None

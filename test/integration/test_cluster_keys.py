"""API keys replicate (issue 13): keys are WAL records held by every node.

Two real nodes (cluster.py: 127.0.0.11-12, fixed ports, RESOURCE_LOCK
cluster_ports) with --auth required and the shared STEMEDB_ADMIN_KEY:
- a key made on node1 before node2 existed reaches node2 through
  anti-entropy (Cluster.Sync) and authenticates there;
- a key made on node1 authenticates on node2;
- a revocation made on node2 refuses the key on node1.
The harness's own readiness check asks the gateway, which has no key: this
test polls gRPC health and Cluster.Members with the admin key instead."""

import base64
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster  # noqa: E402
import stmtest  # noqa: E402

import grpc  # noqa: E402

ADMIN = "adm1n-" + base64.b32encode(os.urandom(10)).decode().lower()
os.environ["STEMEDB_ADMIN_KEY"] = ADMIN  # the servers inherit it
os.environ.setdefault("STEMEDB_ANTI_ENTROPY_INTERVAL_MS", "600000")


def cluster_stubs():
    stmtest.stubs()
    from stemedb.v1 import cluster_pb2, cluster_pb2_grpc
    return cluster_pb2, cluster_pb2_grpc


def md(key):
    return [("authorization", "Bearer " + key)]


def cli(node, *args):
    env = dict(os.environ)
    env.pop("STEMEDB_API_KEY", None)
    p = subprocess.run([stmtest.CLI_BIN, "--server", node.rpc_addr, "--json", "--api-key", ADMIN]
                       + list(args), capture_output=True, text=True, env=env, timeout=60)
    if p.returncode != 0:
        raise AssertionError("stemedb %s on %s: %s" % (" ".join(args), node.node_id, p.stderr))
    return json.loads(p.stdout)


def query_code(node, key):
    pb, pbg, _, _, _ = stmtest.stubs()
    with grpc.insecure_channel(node.rpc_addr) as ch:
        try:
            pbg.StemeDBStub(ch).Query(pb.QueryRequest(concept_path="k/a", lens="recency"),
                                      metadata=md(key), timeout=5)
            return grpc.StatusCode.OK
        except grpc.RpcError as e:
            return e.code()


def wait_up(observer, ids):
    """observer's Cluster.Members (admin key) shows every id UP."""
    cpb, cpbg = cluster_stubs()
    _, _, _, hpb, hpbg = stmtest.stubs()

    def ready():
        if observer.server.poll() is not None:
            raise RuntimeError("%s exited:\n%s" % (observer.node_id, observer.log_tail()))
        try:
            with grpc.insecure_channel(observer.rpc_addr) as ch:
                h = hpbg.HealthStub(ch).Check(hpb.HealthCheckRequest(service=""), timeout=0.5)
                if h.status != hpb.HealthCheckResponse.SERVING:
                    return False
                m = cpbg.ClusterStub(ch).Members(cpb.MembersRequest(), metadata=md(ADMIN), timeout=1)
                up = {x.id for x in m.members if x.status == "UP"}
                return set(ids) <= up
        except grpc.RpcError:
            return False
    stmtest.wait_until(ready, 30, "%s sees %s UP" % (observer.node_id, ids))


class ClusterKeysTest(unittest.TestCase):
    def test_keys_and_revocations_reach_every_node(self):
        auth = ["--auth", "required"]
        with cluster.Cluster() as c:
            n1 = c.add("node1", 1, seeds=[2])
            n2 = c.add("node2", 2, seeds=[1])
            n1.start(wait=False, extra_args=auth)
            wait_up(n1, ["node1"])
            early = cli(n1, "keys", "create", "--role", "reader", "--name", "early")
            self.assertEqual(query_code(n1, early["key"]), grpc.StatusCode.OK)
            n2.start(wait=False, extra_args=auth)
            wait_up(n1, ["node1", "node2"])
            wait_up(n2, ["node1", "node2"])
            # Anti-entropy ships what node2 lacks, keys included.
            cpb, cpbg = cluster_stubs()
            with grpc.insecure_channel(n1.rpc_addr) as ch:
                cpbg.ClusterStub(ch).Sync(cpb.SyncRequest(force=True), metadata=md(ADMIN), timeout=30)
            stmtest.wait_until(lambda: query_code(n2, early["key"]) == grpc.StatusCode.OK, 30,
                               "the early key on node2")
            # Made on node1: authenticates on node2.
            k = cli(n1, "keys", "create", "--role", "reader", "--name", "shared")
            stmtest.wait_until(lambda: query_code(n2, k["key"]) == grpc.StatusCode.OK, 20,
                               "node1's key on node2")
            listed = {x["id"] for x in cli(n2, "keys", "list")["keys"]}
            self.assertEqual(listed, {early["id"], k["id"]})
            # Revoked on node2: refused on node1 (and at once on node2).
            cli(n2, "keys", "revoke", k["id"])
            self.assertEqual(query_code(n2, k["key"]), grpc.StatusCode.UNAUTHENTICATED)
            stmtest.wait_until(lambda: query_code(n1, k["key"]) == grpc.StatusCode.UNAUTHENTICATED,
                               20, "node2's revocation on node1")
            self.assertEqual(query_code(n1, early["key"]), grpc.StatusCode.OK)
            for n in (n1, n2):
                self.assertEqual(n.stop(), 0, n.log_tail())


if __name__ == "__main__":
    unittest.main(verbosity=2)

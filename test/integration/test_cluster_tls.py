"""Node-to-node TLS (issue 13, docs/tls.md "Cluster"): nodes started with
--tls-cert/--tls-key/--tls-client-ca dial their peers over TLS with the
same files (their own certificate as the client certificate, the client
CA as the peers' trust root, the peer's certificate checked against the
IP it is dialled by).

- A 3-node mTLS cluster (certificates for 127.0.0.11/.12/.13 as IP SANs):
  a write on node1 is replicated (stored on >= factor nodes) and readable
  on node3.
- A node whose certificate comes from another CA joins SWIM (the UDP
  layer has its own cluster_key) but its peers refuse its TLS: nothing is
  replicated to or from it, and the logs name the TLS failure.
- A node without TLS joins SWIM too but nothing reaches it; the TLS
  node's log names the mismatch.

Nodes use the harness (cluster.py: 127.0.0.11.. with the runbook's fixed
ports, RESOURCE_LOCK cluster_ports).
"""

import os
import re
import shutil
import signal
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster  # noqa: E402
import stmtest  # noqa: E402
import tlscerts  # noqa: E402

UP3 = {"node1": "UP", "node2": "UP", "node3": "UP"}
os.environ.setdefault("STEMEDB_ANTI_ENTROPY_INTERVAL_MS", "600000")
TLS_FAILURE = ("certificate verify failed", "Handshake failed", "handshake failed")


def stubs():
    pb, pbg, types, _, _ = stmtest.stubs()
    return pb, pbg, types


def assert_claims(node, prefix, n):
    pb, pbg, types = stubs()
    with node.grpc_channel() as ch:
        stub = pbg.StemeDBStub(ch)
        return [stub.Assert(pb.AssertRequest(
            concept_path="%s/%d" % (prefix, i), predicate="p",
            value=types.Value(number_value=i)), timeout=15).hash for i in range(n)]


def local_count(node):
    status, body = node.health()
    assert status == 200, body
    return body["assertion_count"]


def log_of(node):
    with open(os.path.join(node.dir, "server.log"), "rb") as f:
        return f.read().decode("utf-8", "replace")


class ClusterTlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = tempfile.mkdtemp(prefix="stm-cluster-tls-")
        tlscerts.make_ca(cls.d, "ca")
        tlscerts.make_ca(cls.d, "ca2")
        for i in (1, 2, 3):
            tlscerts.make_cert(cls.d, "ca", "node%d" % i, ips=[cluster.ip_of(i)], dns=())
        tlscerts.make_cert(cls.d, "ca2", "node4", ips=[cluster.ip_of(4)], dns=())

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.d, ignore_errors=True)

    def tls(self, name, ca="ca"):
        p = lambda f: os.path.join(self.d, f)  # noqa: E731
        return {"cert": p(name + ".crt"), "key": p(name + ".key"), "ca": p(ca + ".crt")}

    def test_mtls_cluster_replicates_and_refuses_another_ca(self):
        pb, pbg, _ = stubs()
        with cluster.Cluster() as c:
            nodes = [c.add("node%d" % i, i, seeds=[k for k in (1, 2, 3) if k != i],
                           tls=self.tls("node%d" % i)) for i in (1, 2, 3)]
            n1, n2, n3 = nodes
            c.start_all(nodes)
            for n in nodes:
                c.wait_status(n, UP3)
            hashes = assert_claims(n1, "tls", 30)
            # Acknowledged means on every live replica (factor 2): the
            # copies went over TLS.
            self.assertGreaterEqual(sum(local_count(n) for n in nodes), 2 * len(hashes))
            with n3.grpc_channel() as ch:
                stub = pbg.StemeDBStub(ch)
                for i, h in enumerate(hashes):
                    self.assertEqual(stub.Get(pb.GetRequest(hash=h), timeout=10).hash, h)
                    r = stub.Query(pb.QueryRequest(concept_path="tls/%d" % i,
                                                   lens="recency"), timeout=10)
                    self.assertEqual(r.results[0].winner.hash, h)

            # node4: a certificate of another CA (and trusting only that CA).
            n4 = c.add("node4", 4, seeds=[1, 2, 3], tls=self.tls("node4", ca="ca2"))
            n4.start()
            c.wait_status(n1, dict(UP3, node4="UP"))
            before = [local_count(n) for n in nodes]
            more = assert_claims(n1, "tls-after", 30)
            self.assertEqual(len(more), 30)
            # Its writes reach nobody: forwarded or replicated, both fail.
            pb_, pbg_, types = stubs()
            with n4.grpc_channel() as ch:
                stub = pbg_.StemeDBStub(ch)
                for i in range(10):
                    try:
                        stub.Assert(pb_.AssertRequest(
                            concept_path="stranger/%d" % i, predicate="p",
                            value=types.Value(bool_value=True)), timeout=15)
                    except Exception:  # noqa: BLE001 - refused is expected too
                        pass
            # Placement now counts node4 as a replica of some shards, but
            # none of node1's writes gets there (it holds at most its own
            # attempts), and every one is on a TLS node.
            self.assertLessEqual(local_count(n4), 10)
            self.assertGreaterEqual(sum(local_count(n) for n in nodes) - sum(before), len(more))
            for n in nodes:
                with n.grpc_channel() as ch:
                    stub = pbg.StemeDBStub(ch)
                    r = stub.Query(pb.QueryRequest(concept_path="stranger/0",
                                                   lens="recency"), timeout=10)
                    self.assertEqual(list(r.results), [])
            # The logs say why: node4 refuses the others' certificates and
            # they refuse node4's.
            stmtest.wait_until(lambda: any(t in log_of(n4) for t in TLS_FAILURE), 20,
                               "node4's log to name the TLS failure")
            stmtest.wait_until(lambda: any(any(t in log_of(n) for t in TLS_FAILURE)
                                           for n in nodes), 20,
                               "a peer's log to name the TLS failure")
            # The coordinator says which peer and why, once.
            self.assertRegex(log_of(n1), r"replication to node4 failing.*certificate verify failed"
                             r".*docs/tls.md")

            # node5: no TLS at all. It joins SWIM but cannot replicate with
            # the TLS nodes, and their log says TLS is the reason.
            n5 = c.add("node5", 5, seeds=[1])
            n5.start()
            c.wait_status(n1, dict(UP3, node4="UP", node5="UP"))
            # (A shard placed on node4 + node5 only fails its write_quorum:
            # that answer names the TLS failures too.)
            errors = []
            for i in range(40):
                try:
                    assert_claims(n1, "tls-plain/%d" % i, 1)
                except Exception as e:  # noqa: BLE001 - grpc.RpcError
                    errors.append(e.details())
            for e in errors:
                self.assertIn("Ssl handshake failed", e)
            self.assertEqual(local_count(n5), 0)
            stmtest.wait_until(
                lambda: re.search(r"replication to node5 failing.*docs/tls.md", log_of(n1)),
                20, "node1's log to name the TLS mismatch with node5")
            self.assertEqual(set(c.stop_all().values()), {0})

    def test_sighup_reloads_the_peer_trust(self):
        """node1 trusts only ca for its peers; node2 comes back with a
        certificate of ca2. After node1's --peer-ca gains ca2 and a SIGHUP,
        node1's new channels to node2 trust it: its writes reach node2."""
        d = tempfile.mkdtemp(dir=self.d)
        p = lambda f: os.path.join(d, f)  # noqa: E731
        tlscerts.make_cert(self.d, "ca2", "node2b", ips=[cluster.ip_of(2)], dns=())
        ca, ca2 = (tlscerts.read(os.path.join(self.d, f)) for f in ("ca.crt", "ca2.crt"))
        with open(p("both.crt"), "wb") as f:  # every listener accepts both CAs
            f.write(ca + ca2)
        with open(p("peers1.crt"), "wb") as f:
            f.write(ca)
        with cluster.Cluster() as c:
            nodes = []
            for i in (1, 2, 3):
                t = dict(self.tls("node%d" % i), ca=p("both.crt"))
                t["peer_ca"] = p("peers1.crt") if i == 1 else os.path.join(self.d, "ca.crt")
                nodes.append(c.add("node%d" % i, i, seeds=[k for k in (1, 2, 3) if k != i], tls=t))
            n1, n2, n3 = nodes
            c.start_all(nodes)
            for n in nodes:
                c.wait_status(n, UP3)
            assert_claims(n1, "hup-before", 10)
            # node2 restarts with a certificate of ca2 (its gateway trusts both).
            n2.stop()
            n2.tls = dict(self.tls("node2b"), ca=p("both.crt"),
                          peer_ca=os.path.join(self.d, "ca.crt"))
            n2.start()
            c.wait_status(n1, UP3)
            with open(p("peers1.crt"), "wb") as f:
                f.write(ca + ca2)
            n1.server.send_signal(signal.SIGHUP)
            stmtest.wait_until(lambda: "TLS certificates toward peers reloaded" in log_of(n1),
                               10, "node1 to reload its peer credentials")
            before = local_count(n2)
            assert_claims(n1, "hup-after", 40)
            # With factor 2 of 3 nodes, node2 replicates about 2/3 of them;
            # before the reload node1 could not reach it at all.
            self.assertGreater(local_count(n2) - before, 10)
            self.assertEqual(set(c.stop_all().values()), {0})


if __name__ == "__main__":
    unittest.main(verbosity=2)

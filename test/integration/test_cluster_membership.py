"""The runbook "Add Node to Cluster" (../shared/seed/), membership half, on
real processes (issue 12): nodes on 127.0.0.11.. with the runbook's ports
(cluster.py), the runbook's commands with addresses substituted.

§1 a single node (no cluster config: no cluster_members metric, one member,
   quorum) becomes node1 of a three-node cluster: members all UP, the
   assertion_count it holds gossiped, /cluster/health healthy with quorum.
§2 node4 joins through its seeds without restarting the others; shards are
   listed; a rebalance moves a shard to node4 (pending -> copying -> done,
   the copy made by replication) and the new map reaches every node.
§3 SIGKILL node2: DOWN with last_seen on the others; /admin/cluster/remove
   makes it LEFT; node2-replacement joins.
Faults: a frozen node (SIGSTOP) goes SUSPECT/DOWN and, thawed, refutes and
is UP again; SIGTERM is seen as LEFT at once.

The data checks (sync, counts, reads from every node) are replication's
tests (test_cluster_replication*.py), on the same harness.
"""

import datetime
import os
import re
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster  # noqa: E402
import stmtest  # noqa: E402

UP3 = {"node1": "UP", "node2": "UP", "node3": "UP"}


def claim(i):
    return {"concept_path": "test/cluster/%d" % i, "predicate": "replicated", "value": True}


def rfc3339(s):
    """The runbook's form, "2026-02-11T10:15:00Z" (UTC, whole seconds)."""
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc)


class RunbookTest(unittest.TestCase):
    def test_runbook_bootstrap_add_node_replace_failed_node(self):
        with cluster.Cluster() as c:
            n1 = c.add("node1", 1, seeds=[2, 3], clustered=False)
            n2 = c.add("node2", 2, seeds=[1, 3])
            n3 = c.add("node3", 3, seeds=[1, 2])
            self.section1(c, n1, n2, n3)
            n4 = self.section2(c, n1, n2, n3)
            self.section3(c, n1, n2, n3, n4)
            self.assertEqual(set(c.stop_all().values()), {0})

    # §1 Bootstrap 3-Node Cluster (From Single-Node)
    def section1(self, c, n1, n2, n3):
        n1.start()
        for i in range(5):
            status, _ = n1.post("/v1/assert", claim(i), port=cluster.PORT_HTTP)
            self.assertEqual(status, 201)
        status, h = n1.health()
        self.assertEqual((status, h["assertion_count"]), (200, 5))
        # "Verify no cluster config": no cluster_members metric ...
        self.assertNotIn("cluster_members", n1.metrics())
        # ... and the cluster gateway answers as a one-member cluster.
        m = n1.members()
        self.assertEqual(list(m), ["node1"])
        self.assertEqual(m["node1"]["status"], "UP")
        self.assertEqual(m["node1"]["assertion_count"], 5)
        self.assertEqual(n1.get("/cluster/health"),
                         (200, {"status": "healthy", "quorum": True,
                                "members_up": 1, "members_total": 1}))
        status, body = n1.get("/cluster/shards")
        self.assertEqual((status, len(body["shards"])), (200, 1))
        self.assertEqual(body["shards"][0], {"id": "shard-0", "replicas": ["node1"],
                                             "assertion_count": 5, "rebalance_status": "stable"})
        # Step 4: start the new nodes first (empty), Step 5: restart node1
        # with the cluster config.
        c.start_all([n2, n3])
        for n in (n2, n3):
            self.assertEqual(n.health()[1]["assertion_count"], 0)
        self.assertEqual(n1.stop(), 0)
        n1.clustered = True
        n1.start()
        # Step 6: verify cluster formation, from every node.
        for n in (n1, n2, n3):
            c.wait_status(n, UP3)
        # assertion_count is gossiped (at most every 2 s).
        stmtest.wait_until(lambda: n2.members()["node1"]["assertion_count"] == 5, 10,
                           "node1's count on node2")
        m = n1.members()
        for i, n in (("node1", n1), ("node2", n2), ("node3", n3)):
            self.assertEqual(m[i]["rpc_addr"], n.rpc_addr)
            self.assertEqual(m[i]["swim_addr"], n.swim_addr)
            age = datetime.datetime.now(datetime.timezone.utc) - rfc3339(m[i]["last_seen"])
            self.assertLess(abs(age.total_seconds()), 10, m[i])
        self.assertEqual(n1.get("/cluster/health")[1]["status"], "healthy")
        self.assertTrue(n1.get("/cluster/health")[1]["quorum"])
        text = n1.metrics()
        self.assertIn('cluster_members{status="UP"} 3', text)
        self.assertIn('cluster_members{status="DOWN"} 0', text)
        self.assertRegex(text, r'replication_lag_seconds\{peer="node2"\} [0-9.]+')

    # §2 Add Node to Existing Cluster
    def section2(self, c, n1, n2, n3):
        self.assertEqual(len(n1.members()), 3)
        self.assertEqual(n1.get("/cluster/health")[1],
                         {"status": "healthy", "quorum": True,
                          "members_up": 3, "members_total": 3})
        # Claims written through node1 land on their shards' replicas.
        for i in range(128):
            status, body = n1.post("/v1/assert", dict(claim(i), concept_path="test/node4/%d" % i),
                                   port=cluster.PORT_HTTP)
            self.assertEqual(status, 201, body)
        n4 = c.add("node4", 4, seeds=[1, 2, 3])
        n4.start()
        # "No restart of existing nodes required!"
        for n in (n1, n2, n3, n4):
            c.wait_status(n, dict(UP3, node4="UP"))
        self.assertEqual(n1.members()["node4"]["assertion_count"], 0)
        status, body = n1.get("/cluster/shards")
        self.assertEqual(status, 200)
        shards = {s["id"]: s for s in body["shards"]}
        self.assertEqual(len(shards), 64)
        for s in shards.values():
            self.assertEqual(len(s["replicas"]), 2, s)
            self.assertEqual(s["rebalance_status"], "stable")
        # A shard that neither node4 nor node1 (which takes the request)
        # holds, with claims on its replicas: the copy must come from them.
        # node1 took the writes; the runbook's sync puts them on the shards'
        # replicas.
        def counts(n):
            return {x["id"]: x["assertion_count"] for x in n.get("/cluster/shards")[1]["shards"]}
        on1 = counts(n1)
        sid = next(i for i, s in sorted(shards.items())
                   if sorted(s["replicas"]) == ["node2", "node3"] and on1[i] > 0)
        status, body = n1.post("/cluster/sync", {"target_nodes": ["node2", "node3"], "force": True})
        self.assertEqual(status, 202, body)
        stmtest.wait_until(lambda: counts(n2)[sid] == on1[sid], 20, "%s on node2" % sid)
        on2 = counts(n2)
        status, body = n1.post("/admin/shards/rebalance",
                               {"shard_id": sid, "target_node": "node4",
                                "reason": "add_capacity"})
        self.assertEqual(status, 202, body)
        self.assertEqual(body["shard"]["id"], sid)
        self.assertIn(body["shard"]["rebalance_status"], ("pending", "copying", "done"))
        # While the move runs, the old replicas stay and node4 is added.
        self.assertIn("node4", body["shard"]["replicas"])
        for r in shards[sid]["replicas"]:
            self.assertIn(r, body["shard"]["replicas"])
        # The moved shard's status: done once replication copies it; until
        # that exists the move honestly waits at pending/copying.
        def moved(n):
            s = {x["id"]: x for x in n.get("/cluster/shards")[1]["shards"]}[sid]
            return s if s["rebalance_status"] in ("pending", "copying", "done") else None
        for n in (n2, n3, n4):  # the shard map spreads to every node
            s = stmtest.wait_until(lambda n=n: moved(n), 10, "shard map on " + n.node_id)
            self.assertIn("node4", s["replicas"])
        # Replication's copy exists (replication.c registers it): the move
        # completes, and the lowest-ranked old replica leaves the list.
        def done(n):
            s = moved(n)
            return s if s and s["rebalance_status"] == "done" else None
        t0 = time.monotonic()
        s = stmtest.wait_until(lambda: done(n1), 20, "the move of %s done" % sid)
        sys.stderr.write("%s moved to node4 in %.1f s\n" % (sid, time.monotonic() - t0))
        self.assertEqual(len(s["replicas"]), 2, s)
        self.assertIn("node4", s["replicas"])
        for n in (n2, n3, n4):  # the final map spreads too
            stmtest.wait_until(lambda n=n: done(n), 10, "done on " + n.node_id)
        # node4 has everything the old replicas had (they keep their copy).
        s4 = {x["id"]: x for x in n4.get("/cluster/shards")[1]["shards"]}[sid]
        self.assertEqual(s4["assertion_count"], on2[sid])
        s2 = {x["id"]: x for x in n2.get("/cluster/shards")[1]["shards"]}[sid]
        self.assertEqual(s2["assertion_count"], on2[sid])
        # Asked of node4 itself (which holds nothing of it), a move is still
        # copied from an old replica.
        sid2 = next(i for i, s in sorted(shards.items())
                    if sorted(s["replicas"]) == ["node2", "node3"] and on1[i] > 0 and i != sid)
        stmtest.wait_until(lambda: counts(n2)[sid2] == on1[sid2], 20, "%s on node2" % sid2)
        status, body = n4.post("/admin/shards/rebalance", {"shard_id": sid2, "target_node": "node4"})
        self.assertEqual(status, 202, body)
        stmtest.wait_until(lambda: counts(n4)[sid2] == on1[sid2], 20, "%s copied to node4" % sid2)
        sid = sid2
        stmtest.wait_until(lambda: done(n1), 20, "the move of %s done" % sid2)
        # Per-shard counts are what this node stores: they add up to its
        # assertion_count.
        total = sum(x["assertion_count"] for x in n1.get("/cluster/shards")[1]["shards"])
        self.assertEqual(total, n1.health()[1]["assertion_count"])
        # Errors name the field, as every gateway error does.
        for body, field in (({"shard_id": "shard-abc123", "target_node": "node4"}, "shard_id"),
                            ({"shard_id": sid, "target_node": "node9"}, "target_node"),
                            ({"target_node": "node4"}, "shard_id")):
            status, err = n1.post("/admin/shards/rebalance", body)
            self.assertEqual(status, 400, err)
            self.assertEqual(err["error"]["field"], field, err)
        return n4

    # §3 Replace Failed Node
    def section3(self, c, n1, n2, n3, n4):
        nodes = {"node1": n1, "node3": n3, "node4": n4}
        before = {x["id"]: x["replicas"] for x in n1.get("/cluster/shards")[1]["shards"]}
        n2.kill()
        t0 = time.monotonic()
        for n in (n1, n3, n4):
            m = c.wait_status(n, {"node1": "UP", "node2": "DOWN", "node3": "UP", "node4": "UP"},
                              timeout=20)
            seen = rfc3339(m["node2"]["last_seen"])
            age = datetime.datetime.now(datetime.timezone.utc) - seen
            self.assertLess(age.total_seconds(), 30, m["node2"])
        sys.stderr.write("node2 DOWN everywhere %.1f s after SIGKILL\n" % (time.monotonic() - t0))
        status, body = n1.get("/cluster/members")
        down = [m for m in body["members"] if m["status"] != "UP"]
        self.assertEqual([m["id"] for m in down], ["node2"])
        self.assertEqual(n1.get("/cluster/health")[1]["status"], "degraded")
        self.assertTrue(n1.get("/cluster/health")[1]["quorum"])
        # A live node is not removed without force (it would refute).
        status, err = n1.post("/admin/cluster/remove", {"node_id": "node3", "force": False})
        self.assertEqual((status, err["error"]["field"]), (400, "node_id"))
        status, err = n1.post("/admin/cluster/remove", {"node_id": "nodeX"})
        self.assertEqual(status, 404, err)
        status, body = n1.post("/admin/cluster/remove", {"node_id": "node2", "force": False})
        self.assertEqual(status, 202, body)
        self.assertIn(body["status"], ("draining", "left"))
        for n in (n1, n3, n4):
            c.wait_status(n, {"node1": "UP", "node2": "LEFT", "node3": "UP", "node4": "UP"},
                          timeout=20)
        self.assertEqual(n1.get("/cluster/health")[1]["status"], "healthy")
        # The drain: each shard node2 held now has a new replica holding
        # what the surviving replica holds (copied by the survivor).
        counts = {i: {x["id"]: x["assertion_count"] for x in n.get("/cluster/shards")[1]["shards"]}
                  for i, n in nodes.items()}
        after = {x["id"]: x["replicas"] for x in n1.get("/cluster/shards")[1]["shards"]}
        checked = 0
        for sid, reps in before.items():
            if "node2" not in reps:
                continue
            survivor = next(r for r in reps if r != "node2")
            for t in set(after[sid]) - set(reps):
                want = counts[survivor][sid]
                checked += want > 0
                stmtest.wait_until(
                    lambda t=t, sid=sid, want=want: {x["id"]: x["assertion_count"] for x in
                                                     nodes[t].get("/cluster/shards")[1]["shards"]}[sid] >= want,
                    15, "%s re-replicated to %s" % (sid, t))
        self.assertGreater(checked, 0)
        # Step 3-5: node2-replacement on a new address, seeds node1 and node3.
        r = c.add("node2-replacement", 5, seeds=[1, 3])
        r.start()
        want = {"node1": "UP", "node2-replacement": "UP", "node3": "UP", "node4": "UP",
                "node2": ("LEFT",), "*": True}
        for n in (n1, n3, r):
            c.wait_status(n, want)
        self.assertEqual(n1.get("/cluster/health")[1],
                         {"status": "healthy", "quorum": True,
                          "members_up": 4, "members_total": 4})


class FaultTest(unittest.TestCase):
    def test_frozen_node_is_suspected_then_refutes_when_thawed(self):
        with cluster.Cluster() as c:
            n1 = c.add("node1", 1, seeds=[2, 3])
            n2 = c.add("node2", 2, seeds=[1, 3])
            n3 = c.add("node3", 3, seeds=[1, 2])
            c.start_all()
            c.wait_status(n1, UP3)
            n3.freeze()
            t0 = time.monotonic()
            c.wait_status(n1, dict(UP3, node3=("SUSPECT", "DOWN")), timeout=15)
            c.wait_status(n1, dict(UP3, node3="DOWN"), timeout=15)
            sys.stderr.write("frozen node3 DOWN after %.1f s\n" % (time.monotonic() - t0))
            self.assertEqual(n1.get("/cluster/health")[1]["status"], "degraded")
            n3.thaw()
            t0 = time.monotonic()
            for n in (n1, n2, n3):
                c.wait_status(n, UP3, timeout=20)
            sys.stderr.write("thawed node3 UP everywhere after %.1f s\n" % (time.monotonic() - t0))
            # SIGTERM: peers hear LEFT at once, not after a suspicion timeout.
            t0 = time.monotonic()
            self.assertEqual(n2.stop(signal.SIGTERM), 0)
            c.wait_status(n1, dict(UP3, node2="LEFT"), timeout=5)
            self.assertLess(time.monotonic() - t0, 5)
            self.assertIn('cluster_members{status="LEFT"} 1', n1.metrics())
            # The grpc.health.v1 answer for stemedb.v1.Cluster: SERVING here.
            _, _, _, health_pb2, health_pb2_grpc = stmtest.stubs()
            with n1.grpc_channel() as ch:
                r = health_pb2_grpc.HealthStub(ch).Check(
                    health_pb2.HealthCheckRequest(service="stemedb.v1.Cluster"), timeout=5)
                self.assertEqual(r.status, health_pb2.HealthCheckResponse.SERVING)
            self.assertEqual(set(c.stop_all().values()), {0})


class ConfigTest(unittest.TestCase):
    """Free ports only: runs with the others' lock but needs no fixed ports."""

    def test_single_node_reports_cluster_not_serving(self):
        s = stmtest.Server().start()
        try:
            _, _, _, health_pb2, health_pb2_grpc = stmtest.stubs()
            import grpc
            with grpc.insecure_channel(s.addr) as ch:
                r = health_pb2_grpc.HealthStub(ch).Check(
                    health_pb2.HealthCheckRequest(service="stemedb.v1.Cluster"), timeout=5)
                self.assertEqual(r.status, health_pb2.HealthCheckResponse.NOT_SERVING)
        finally:
            s.stop()
            s.cleanup()

    def test_host_names_resolve_through_dns(self):
        # rpc_addr / swim_addr / seeds as names (Kubernetes headless
        # services): "localhost" here, on free ports.
        import grpc
        stmtest.stubs()
        from stemedb.v1 import cluster_pb2, cluster_pb2_grpc
        rpc = [stmtest.free_port(), stmtest.free_port()]
        swim = [stmtest.free_port(), stmtest.free_port()]
        servers = []
        try:
            for i in range(2):
                s = stmtest.Server(extra_args=[
                    "--cluster", "--node-id", "dns%d" % i, "--rpc-addr", "localhost:%d" % rpc[i],
                    "--swim-addr", "localhost:%d" % swim[i],
                    "--seeds", "localhost:%d" % swim[1 - i], "--replication-factor", "1",
                    "--probe-interval-ms", "200", "--probe-timeout-ms", "100"])
                s.port, s.addr = rpc[i], "127.0.0.1:%d" % rpc[i]
                servers.append(s.start())

            def both_up():
                with grpc.insecure_channel(servers[0].addr) as ch:
                    r = cluster_pb2_grpc.ClusterStub(ch).Members(cluster_pb2.MembersRequest(), timeout=5)
                    return [(m.status, m.rpc_addr) for m in r.members] == [
                        ("UP", "localhost:%d" % rpc[0]), ("UP", "localhost:%d" % rpc[1])]
            stmtest.wait_until(both_up, 15, "two members by host name")
            # Peers dial each other's rpc_addr by name too: a move recorded
            # on dns0 is fetched by dns1 (Cluster.Shards) and completed.
            with grpc.insecure_channel(servers[0].addr) as ch:
                stub = cluster_pb2_grpc.ClusterStub(ch)
                shard = next(x for x in stub.Shards(cluster_pb2.ShardsRequest(), timeout=5).shards
                             if list(x.replicas) == ["dns0"])
                stub.RebalanceShard(cluster_pb2.RebalanceShardRequest(
                    shard_id=shard.id, target_node="dns1"), timeout=5)

            def learned():
                with grpc.insecure_channel(servers[1].addr) as ch:
                    r = cluster_pb2_grpc.ClusterStub(ch).Shards(cluster_pb2.ShardsRequest(), timeout=5)
                    s = {x.id: x for x in r.shards}[shard.id]
                    return s.rebalance_status == "done" and list(s.replicas) == ["dns1"]
            stmtest.wait_until(learned, 15, "the move learned by dns1")
        finally:
            codes = [s.stop() for s in servers]  # every one, then judge
            for s in servers:
                s.cleanup()
        self.assertEqual(codes, [0, 0])

    def test_contradictory_config_refuses_to_start_naming_the_key(self):
        import subprocess
        import tempfile
        d = tempfile.mkdtemp(prefix="stm-cfg-")
        cases = [
            (["--cluster", "--rpc-addr", "127.0.0.1:1", "--swim-addr", "127.0.0.1:2",
              "--seeds", "127.0.0.1:2"], "cluster.seeds"),
            (["--cluster", "--rpc-addr", "127.0.0.1:1", "--replication-factor", "0",
              "--seeds", "127.0.0.9:1"], "replication.factor"),
            (["--cluster", "--rpc-addr", "127.0.0.1:1", "--write-quorum", "most"],
             "write-quorum"),
            (["--cluster", "--rpc-addr", "127.0.0.1:1", "--shards", "0",
              "--seeds", "127.0.0.9:1"], "cluster.shards"),
            (["--cluster", "--rpc-addr", "127.0.0.1:1", "--seeds", "127.0.0.9:1",
              "--probe-interval-ms", "100", "--probe-timeout-ms", "100"],
             "cluster.probe_timeout_ms"),
        ]
        for args, key in cases:
            r = subprocess.run([stmtest.SERVER_BIN, "--data-dir", d, "--node-id", "n1",
                                "--grpc-listen", "127.0.0.1:0"] + args,
                               capture_output=True, text=True, timeout=20)
            self.assertEqual(r.returncode, 2, (args, r.stdout, r.stderr))
            self.assertIn(key, r.stderr, args)
        # A SWIM port in use: the server does not start.
        path = os.path.join(d, "c.toml")
        with open(path, "w") as f:
            f.write(cluster.cluster_toml("n1", "127.0.0.1", ["127.0.0.9"], 1))
        import socket
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", cluster.PORT_SWIM))
            r = subprocess.run([stmtest.SERVER_BIN, "--config", path, "--data-dir", d,
                                "--grpc-listen", "127.0.0.1:0"],
                               capture_output=True, text=True, timeout=20)
        self.assertNotEqual(r.returncode, 0)
        self.assertRegex(r.stdout + r.stderr, re.compile("in use", re.I))


if __name__ == "__main__":
    unittest.main(verbosity=2)

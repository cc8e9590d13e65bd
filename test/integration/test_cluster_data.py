"""Replication on real processes (issue 12): the data half of the runbook.

§1 bootstrap: a single node that already holds claims, votes, epochs and
   sources becomes node1 of a 3-node cluster (factor 2); POST /cluster/sync
   {"force": true} on node1; then every claim is stored on >= 2 nodes
   (Get on each node's own store), readable from every node, sources on
   every node, and a write on node1 is queryable on node2 at once.
Writes: acknowledged means on every live replica; reads (Get, Trace,
   Query) and votes work from any node.
Faults: a frozen replica (SIGSTOP) catches up after thaw with nothing
   lost; SIGKILL of the coordinating node mid-writes with write_quorum =
   all loses no acknowledged write.
Differential: the same workload on one node and on a 3-node cluster gives
   the same Query answers under every lens, asked of every node.
A new empty node receives 100 k claims through anti-entropy (timed; the
   number goes to docs/benchmarks.md). STM_CLUSTER_BENCH_CLAIMS changes the
   count (CI keeps the default small: 20 k).

Nodes use the harness (cluster.py: 127.0.0.11.. with the runbook's fixed
ports, RESOURCE_LOCK cluster_ports).
"""

import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster  # noqa: E402
import stmtest  # noqa: E402

UP3 = {"node1": "UP", "node2": "UP", "node3": "UP"}
# The periodic pass is not what these tests wait for: Sync starts it.
os.environ.setdefault("STEMEDB_ANTI_ENTROPY_INTERVAL_MS", "600000")


def stubs():
    pb, pbg, types, _, _ = stmtest.stubs()
    return pb, pbg, types


def write_claims(node, n, prefix, batch=1000):
    """n claims over 50 concepts, in AssertBatch calls; their hashes."""
    import grpc
    pb, pbg, types = stubs()
    hashes = []
    with grpc.insecure_channel(node.rpc_addr) as ch:
        stub = pbg.StemeDBStub(ch)
        for start in range(0, n, batch):
            req = pb.AssertBatchRequest(assertions=[
                pb.AssertRequest(concept_path="%s/%d" % (prefix, i % 50),
                                 predicate="p",
                                 value=types.Value(number_value=i),
                                 source_id="https://s%d" % (i % 3))
                for i in range(start, min(n, start + batch))])
            resp = stub.AssertBatch(req, timeout=60)
            hashes.extend(r.hash for r in resp.results)
    return hashes


def holders(nodes, hashes):
    """For each hash, how many nodes store it (Get is node-local)."""
    import grpc
    pb, pbg, _ = stubs()
    counts = dict.fromkeys(hashes, 0)
    for n in nodes:
        with grpc.insecure_channel(n.rpc_addr) as ch:
            stub = pbg.StemeDBStub(ch)
            for h in hashes:
                try:
                    stub.Get(pb.GetRequest(hash=h), timeout=5)
                    counts[h] += 1
                except grpc.RpcError as e:
                    if e.code() != grpc.StatusCode.NOT_FOUND:
                        raise
    return counts


def local_fields_cleared(msg):
    """The message without node-local fields (sequences): what every node
    must answer alike."""
    for fd, value in list(msg.ListFields()):
        if fd.name in ("sequence", "as_of_sequence"):
            msg.ClearField(fd.name)
        elif fd.type == fd.TYPE_MESSAGE:
            if fd.label == fd.LABEL_REPEATED:
                for v in value:
                    local_fields_cleared(v)
            else:
                local_fields_cleared(value)
    return msg


def comparable(msg):
    """local_fields_cleared, plus commit times (each deployment commits at
    its own moment) and floats rounded (vote trust decays with the clock
    between two calls)."""
    for fd, value in list(msg.ListFields()):
        if fd.name in ("sequence", "as_of_sequence", "commit_time_ns"):
            msg.ClearField(fd.name)
        elif fd.type == fd.TYPE_DOUBLE and fd.label != fd.LABEL_REPEATED:
            setattr(msg, fd.name, float("%.6g" % value))
        elif fd.type == fd.TYPE_MESSAGE:
            if fd.label == fd.LABEL_REPEATED:
                for v in value:
                    comparable(v)
            else:
                comparable(value)
    return msg


LENSES = ["recency", "consensus", "confidence", "vote", "authority", "epoch",
          "skeptic", "layered"]


def workload(stubs_by_step, pb, types):
    """The same writes, in the same order, each through the stub its step
    picks: claims with competing values and sources, votes, epochs in the
    middle, registered sources."""
    hashes = []
    for i in range(120):
        stub = stubs_by_step(i)
        if i == 60:
            stub.StartEpoch(pb.StartEpochRequest(concept_path="d/1",
                                                 reason="recall",
                                                 timestamp_ns=5), timeout=10)
            stub.StartEpoch(pb.StartEpochRequest(concept_path="d/2",
                                                 predicate="p",
                                                 reason="rev",
                                                 timestamp_ns=6), timeout=10)
        if i == 30:
            stub.PutSource(pb.PutSourceRequest(source=types.Source(
                id="https://a", name="A", tier=1, trust=0.5)), timeout=10)
        r = stub.Assert(pb.AssertRequest(
            concept_path="d/%d" % (i % 6), predicate="pq"[i % 2],
            value=types.Value(number_value=i % 4),
            source_id=["https://a", "blog://b", "fda://c"][i % 3],
            confidence=0.5 + (i % 5) / 10.0,
            timestamp_ns=1000 + i), timeout=10)
        hashes.append(r.hash)
        if i % 9 == 0 and i:
            stub.Vote(pb.VoteRequest(assertion_hash=hashes[i // 2],
                                     voter_id="v%d" % (i % 4),
                                     weight=[1.0, -0.5][i % 2],
                                     timestamp_ns=7000 + i), timeout=10)
    return hashes


def count(node):
    return node.health()[1]["assertion_count"]


class ClusterDataTest(unittest.TestCase):
    def test_bootstrap_from_a_single_full_node(self):
        import grpc
        pb, pbg, types = stubs()
        with cluster.Cluster() as c:
            n1 = c.add("node1", 1, seeds=[2, 3], clustered=False)
            n2 = c.add("node2", 2, seeds=[1, 3])
            n3 = c.add("node3", 3, seeds=[1, 2])
            n1.start()
            hashes = write_claims(n1, 600, "boot")
            with grpc.insecure_channel(n1.rpc_addr) as ch:
                stub = pbg.StemeDBStub(ch)
                stub.PutSource(pb.PutSourceRequest(source=types.Source(
                    id="https://s1", name="S1", tier=1)), timeout=10)
                for h in hashes[:20]:
                    stub.Vote(pb.VoteRequest(assertion_hash=h, voter_id="v",
                                             weight=1.0), timeout=10)
                stub.StartEpoch(pb.StartEpochRequest(concept_path="boot/3",
                                                     reason="r"), timeout=10)
            c.start_all([n2, n3])
            self.assertEqual(n1.stop(), 0)
            n1.clustered = True
            n1.start()
            for n in (n1, n2, n3):
                c.wait_status(n, UP3)
            status, body = n1.post("/cluster/sync",
                                   {"target_nodes": ["node2", "node3"],
                                    "force": True})
            self.assertIn(status, (200, 202), body)
            self.assertEqual(sorted(body["started"]), ["node2", "node3"])
            # Every claim on >= factor nodes once the sync has run.
            stmtest.wait_until(
                lambda: count(n1) + count(n2) + count(n3) >= 2 * len(hashes),
                60, "the sum of assertion_count to reach 2 x claims")
            held = holders([n1, n2, n3], hashes)
            self.assertEqual([h for h, k in held.items() if k < 2], [])
            # Every claim readable from every node (forwarded where needed),
            # and a write on node1 queryable on node2 at once.
            for n in (n1, n2, n3):
                with grpc.insecure_channel(n.rpc_addr) as ch:
                    stub = pbg.StemeDBStub(ch)
                    for h in hashes:
                        self.assertEqual(stub.Get(pb.GetRequest(hash=h),
                                                  timeout=10).hash, h)
            with grpc.insecure_channel(n1.rpc_addr) as ch:
                h = pbg.StemeDBStub(ch).Assert(pb.AssertRequest(
                    concept_path="boot/new", predicate="p",
                    value=types.Value(bool_value=True)), timeout=10).hash
            with grpc.insecure_channel(n2.rpc_addr) as ch:
                r = pbg.StemeDBStub(ch).Query(pb.QueryRequest(
                    concept_path="boot/new", lens="recency"), timeout=10)
                self.assertEqual(r.results[0].winner.hash, h)
            # Sources live on every node.
            for n in (n2, n3):
                with grpc.insecure_channel(n.rpc_addr) as ch:
                    src = pbg.StemeDBStub(ch).GetSource(
                        pb.GetSourceRequest(id="https://s1"), timeout=5)
                    self.assertEqual(src.tier, 1)
            self.assertEqual(set(c.stop_all().values()), {0})

    def three_nodes(self, c, quorum=None):
        extra = {"write_quorum": quorum} if quorum else None
        nodes = [c.add("node%d" % i, i, seeds=[k for k in (1, 2, 3) if k != i],
                       extra_replication=extra) for i in (1, 2, 3)]
        c.start_all(nodes)
        for n in nodes:
            c.wait_status(n, UP3)
        return nodes

    def test_writes_reach_every_live_replica_before_the_answer(self):
        import grpc
        pb, pbg, types = stubs()
        with cluster.Cluster() as c:
            n1, n2, n3 = self.three_nodes(c)
            hashes = write_claims(n1, 300, "w", batch=50)
            with grpc.insecure_channel(n2.rpc_addr) as ch:
                stub = pbg.StemeDBStub(ch)
                for i in range(20):
                    r = stub.Assert(pb.AssertRequest(
                        concept_path="w1/%d" % i, predicate="p",
                        value=types.Value(bool_value=True)), timeout=10)
                    hashes.append(r.hash)
            with grpc.insecure_channel(n3.rpc_addr) as ch:
                pbg.StemeDBStub(ch).PutSource(pb.PutSourceRequest(
                    source=types.Source(id="https://w", name="W", tier=2)),
                    timeout=10)
            # No waiting: acknowledged means on every live replica.
            held = holders([n1, n2, n3], hashes)
            self.assertEqual([h for h, k in held.items() if k < 2], [])
            for n in (n1, n2):
                with grpc.insecure_channel(n.rpc_addr) as ch:
                    self.assertEqual(pbg.StemeDBStub(ch).GetSource(
                        pb.GetSourceRequest(id="https://w"), timeout=5).tier, 2)
            # Reads from any node: Get and Trace by hash are asked of the
            # nodes that store it, Query of a replica of the concept's
            # shard; the answers are the same everywhere.
            answers = []
            for n in (n1, n2, n3):
                with grpc.insecure_channel(n.rpc_addr) as ch:
                    stub = pbg.StemeDBStub(ch)
                    for h in hashes[::7]:
                        self.assertEqual(stub.Get(pb.GetRequest(hash=h),
                                                  timeout=10).hash, h)
                        self.assertEqual(stub.Trace(pb.TraceRequest(hash=h),
                                                    timeout=10).assertion.hash, h)
                    got = []
                    for k in range(0, 50, 5):
                        r = stub.Query(pb.QueryRequest(concept_path="w/%d" % k,
                                                       lens="consensus"),
                                       timeout=10)
                        got.append(local_fields_cleared(r))
                    answers.append(got)
                    # A vote on a claim this node may not store is
                    # forwarded to one that does.
                    v = stub.Vote(pb.VoteRequest(assertion_hash=hashes[n.index],
                                                 voter_id="voter-%s" % n.node_id,
                                                 weight=0.5), timeout=10)
                    self.assertTrue(v.created)
            self.assertEqual(answers[0], answers[1])
            self.assertEqual(answers[0], answers[2])
            self.assertEqual(set(c.stop_all().values()), {0})

    def test_frozen_replica_catches_up_after_thaw(self):
        with cluster.Cluster() as c:
            n1, n2, n3 = self.three_nodes(c)
            before = write_claims(n1, 200, "f1", batch=50)
            n3.freeze()
            # write_quorum one (the default): writes go on while node3 is
            # frozen (the first ones wait for its timeout, then SWIM says
            # DOWN and placement skips it).
            during = write_claims(n1, 400, "f2", batch=50)

            def lag():
                m = re.search(r'replication_lag_seconds\{peer="node3"\} ([0-9.e+-]+)',
                              n1.metrics())
                return float(m.group(1)) if m else None
            # node3 missed writes: its lag is the age of the oldest.
            stmtest.wait_until(lambda: (lag() or 0) > 0, 10, "a lag for node3")
            n3.thaw()
            c.wait_status(n1, UP3, timeout=30)
            hashes = before + during

            def under():
                held = holders([n1, n2, n3], hashes)
                return [h for h, k in held.items() if k < 2]
            # node1 noticed node3 missing writes (replication_lag_seconds)
            # and pushes them once node3 is UP again, without waiting for
            # the periodic pass.
            stmtest.wait_until(lambda: not under(), 60,
                               "every claim on 2 nodes again")
            stmtest.wait_until(lambda: lag() == 0, 30, "node3's lag back to 0")
            self.assertEqual(set(c.stop_all().values()), {0})

    def test_same_answers_as_one_node_under_every_lens(self):
        """The differential test: the same workload on one node and on a
        3-node cluster (writes spread over its nodes) gives the same
        Query answers under every lens, asked of every node."""
        import grpc
        pb, pbg, types = stubs()
        with cluster.Cluster() as c:
            single = c.add("single", 4, clustered=False)
            single.start()
            nodes = self.three_nodes(c)
            chans = [grpc.insecure_channel(n.rpc_addr) for n in [single] + nodes]
            try:
                stubs_ = [pbg.StemeDBStub(ch) for ch in chans]
                workload(lambda i: stubs_[0], pb, types)
                workload(lambda i: stubs_[1 + i % 3], pb, types)

                def answers(stub):
                    out = []
                    for k in range(6):
                        for lens in LENSES:
                            r = stub.Query(pb.QueryRequest(
                                concept_path="d/%d" % k, lens=lens), timeout=10)
                            out.append((k, lens, comparable(r)))
                    # Descendants span shards: every node is asked.
                    for lens in LENSES:
                        r = stub.Query(pb.QueryRequest(
                            concept_path="d", lens=lens,
                            include_descendants=True), timeout=10)
                        out.append(("d/*", lens, comparable(r)))
                    r = stub.ListConcepts(pb.ListConceptsRequest(prefix="d",
                                                                 limit=4))
                    out.append(("concepts", list(r.concepts), r.next_page_token))
                    r = stub.ListConcepts(pb.ListConceptsRequest(
                        prefix="d", limit=4, page_token=r.next_page_token))
                    out.append(("concepts2", list(r.concepts), r.next_page_token))
                    return out
                want = answers(stubs_[0])
                self.assertTrue(any(r.results for _, _, r in want[:48]))
                self.assertEqual(len(want[48][2].results), 6)  # d/0 .. d/5
                for n, stub in zip(nodes, stubs_[1:]):
                    got = answers(stub)
                    for a, b in zip(want, got):
                        self.assertEqual(a, b, "%s: concept d/%s lens %s" %
                                         (n.node_id, a[0], a[1]))
            finally:
                for ch in chans:
                    ch.close()
            self.assertEqual(set(c.stop_all().values()), {0})

    def test_killed_coordinator_loses_no_acknowledged_write(self):
        """write_quorum = all: SIGKILL the node the client writes through,
        mid-writes; every write it acknowledged is readable from the
        others."""
        import grpc
        import threading
        pb, pbg, types = stubs()
        with cluster.Cluster() as c:
            n1, n2, n3 = self.three_nodes(c, quorum="all")
            acked, stop = [], threading.Event()

            def writer():
                with grpc.insecure_channel(n1.rpc_addr) as ch:
                    stub = pbg.StemeDBStub(ch)
                    for i in range(100000):
                        if stop.is_set():
                            return
                        try:
                            r = stub.Assert(pb.AssertRequest(
                                concept_path="k/%d" % (i % 40), predicate="p",
                                value=types.Value(number_value=i)), timeout=5)
                            acked.append(r.hash)
                        except grpc.RpcError:
                            return
            t = threading.Thread(target=writer)
            t.start()
            stmtest.wait_until(lambda: len(acked) >= 200, 30, "200 writes")
            n1.kill()
            t.join(30)
            stop.set()
            self.assertGreaterEqual(len(acked), 200)
            c.wait_status(n2, {"node1": "DOWN", "node2": "UP", "node3": "UP"},
                          timeout=30)
            held = holders([n2, n3], acked)
            self.assertEqual([h for h, k in held.items() if k < 1], [])
            with grpc.insecure_channel(n2.rpc_addr) as ch:
                stub = pbg.StemeDBStub(ch)
                for h in acked[-50:]:
                    self.assertEqual(stub.Get(pb.GetRequest(hash=h),
                                              timeout=10).hash, h)
            c.stop_all()

    def test_nodes_forwarding_to_each_other_do_not_stall(self):
        """node1 and node2 each forward queries to the other, many at once:
        a forward must not hold the handler's completion-queue thread
        (with 2 of them per server, both nodes would wait on each other
        until the forward timed out)."""
        # One completion-queue thread per server makes the stall certain
        # when a forward waits on it (fails that way before forwarding
        # moved to its own threads: DEADLINE_EXCEEDED).
        os.environ["STEMEDB_CQ_THREADS"] = "1"
        try:
            with cluster.Cluster() as c:
                self.cross_forwarding(c)
        finally:
            del os.environ["STEMEDB_CQ_THREADS"]

    def cross_forwarding(self, c):
        import grpc
        import hashlib
        import threading
        pb, pbg, _ = stubs()
        if True:
            n1, n2, n3 = self.three_nodes(c)
            status, body = n1.get("/cluster/shards")
            self.assertEqual(status, 200)
            reps = {int(x["id"].split("-")[1]): x["replicas"]
                    for x in body["shards"]}

            def concept(first, absent):
                for i in range(10000):
                    path = "x/%d" % i
                    h = hashlib.blake2b(path.encode(), digest_size=8).digest()
                    r = reps[int.from_bytes(h, "little") % len(reps)]
                    if r[0] == first and absent not in r:
                        return path
                raise AssertionError("no concept for %s" % first)
            jobs = [(n1, concept("node2", "node1")),
                    (n2, concept("node1", "node2"))]
            errors = []

            def run(node, path):
                with grpc.insecure_channel(node.rpc_addr) as ch:
                    stub = pbg.StemeDBStub(ch)
                    for _ in range(10):
                        try:
                            stub.Query(pb.QueryRequest(concept_path=path,
                                                       lens="recency"),
                                       timeout=5)
                        except grpc.RpcError as e:
                            errors.append((node.node_id, e.code()))
                            return
            threads = [threading.Thread(target=run, args=j)
                       for j in jobs for _ in range(8)]
            t0 = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            print("\n160 cross-forwarded queries in %.2f s"
                  % (time.monotonic() - t0), file=sys.stderr)
            self.assertEqual(errors, [])
            self.assertEqual(set(c.stop_all().values()), {0})

    def test_new_node_receives_claims_fast(self):
        total = int(os.environ.get("STM_CLUSTER_BENCH_CLAIMS", "20000"))
        with cluster.Cluster() as c:
            n1 = c.add("node1", 1, seeds=[2])
            n2 = c.add("node2", 2, seeds=[1])
            n1.start()
            write_claims(n1, total, "bench", batch=2000)
            self.assertEqual(count(n1), total)
            n2.start()
            for n in (n1, n2):
                c.wait_status(n, {"node1": "UP", "node2": "UP"})
            t0 = time.monotonic()
            status, body = n1.post("/cluster/sync", {"target_nodes": ["node2"]})
            self.assertIn(status, (200, 202), body)
            stmtest.wait_until(lambda: count(n2) >= total, 120,
                               "node2 to hold every claim")
            dt = time.monotonic() - t0
            rate = total / dt
            print("\nnew node received %d claims in %.2f s: %.0f claims/s"
                  % (total, dt, rate), file=sys.stderr)
            self.assertEqual(count(n2), total)
            self.assertEqual(set(c.stop_all().values()), {0})


if __name__ == "__main__":
    unittest.main(verbosity=2)

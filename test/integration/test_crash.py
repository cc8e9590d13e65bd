"""Crash test: concurrent clients write (single asserts and batches) while
the server is killed with SIGKILL; after each restart every acknowledged
claim must be readable byte for byte, batches must be all-or-nothing,
nothing unacknowledged may be half-visible (a claim in flight at the kill is
either absent or whole), and nothing may be duplicated. Rounds:
STM_CRASH_ROUNDS (default 10, as CI runs it; scripts/crash-test.sh runs 50)."""

import os
import random
import threading
import time
import unittest

import grpc

import stmtest

pb, pb_grpc, types_pb2, _, _ = stmtest.stubs()
ROUNDS = int(os.environ.get("STM_CRASH_ROUNDS", "10"))
SEED = int(os.environ.get("STM_TEST_SEED", str(int(time.time()))))


class Writer(threading.Thread):
    """Writes until the server dies; records what was acknowledged and
    what was in flight when the connection broke."""

    def __init__(self, addr, tag, batch):
        super().__init__(daemon=True)
        self.addr, self.tag, self.batch = addr, tag, batch
        self.acked = []        # AssertRequest, AssertResponse
        self.in_flight = []    # lists of AssertRequest never acknowledged

    def make(self, i):
        v = types_pb2.Value(string_value="%s-%d-%s" % (self.tag, i, "x" * (i % 50)))
        return pb.AssertRequest(concept_path="crash/%s" % self.tag, predicate="p%d" % i,
                                value=v, source_id="code://crash", timestamp_ns=i + 1,
                                confidence=((i % 10) + 1) / 10)

    def run(self):
        with grpc.insecure_channel(self.addr) as ch:
            stub = pb_grpc.StemeDBStub(ch)
            i = 0
            while True:
                reqs = [self.make(i + k) for k in range(self.batch)]
                i += self.batch
                try:
                    if self.batch == 1:
                        self.acked.append((reqs[0], stub.Assert(reqs[0], timeout=10)))
                    else:
                        r = stub.AssertBatch(pb.AssertBatchRequest(assertions=reqs), timeout=10)
                        self.acked.extend(zip(reqs, r.results))
                except grpc.RpcError:
                    self.in_flight.append(reqs)
                    return


class CrashTest(unittest.TestCase):
    def test_sigkill_under_load_loses_no_acknowledged_write(self):
        rng = random.Random(SEED)
        print("crash test seed %d (STM_TEST_SEED), %d rounds" % (SEED, ROUNDS))
        # Small segments, so kills land around rotations too.
        srv = stmtest.Server(extra_args=["--wal-segment-bytes", "65536"])
        all_acked = {}
        try:
            for rnd in range(ROUNDS):
                srv.start()
                writers = [Writer(srv.addr, "r%dw%d" % (rnd, w), 1 if w % 2 == 0 else 10) for w in range(8)]
                for w in writers:
                    w.start()
                # Kill once a random amount of work has been acknowledged.
                target = rng.randint(50, 600)
                stmtest.wait_until(lambda: sum(len(w.acked) for w in writers) >= target, 60, "acks")
                srv.kill()
                for w in writers:
                    w.join(30)
                srv.start()
                with grpc.insecure_channel(srv.addr) as ch:
                    stub = pb_grpc.StemeDBStub(ch)
                    for w in writers:
                        for req, res in w.acked:
                            all_acked[res.hash] = (req, res)
                    self.verify(stub, all_acked)
                    self.verify_in_flight_all_or_nothing(stub, writers)
                    st = stub.Status(pb.StatusRequest(), timeout=10)
                    # Every stored claim is distinct and counted once.
                    self.assertGreaterEqual(st.assertion_count, len(all_acked))
                    self.assertGreaterEqual(st.last_sequence, st.assertion_count)
                self.assertEqual(srv.stop(), 0)
                segs = len([f for f in os.listdir(os.path.join(srv.data_dir, "wal")) if f.endswith(".wal")])
                print("round %d: %d acknowledged claims verified, %d WAL segments"
                      % (rnd + 1, len(all_acked), segs))
        finally:
            srv.cleanup()

    def verify(self, stub, acked):
        for h, (req, res) in acked.items():
            a = stub.Get(pb.GetRequest(hash=h), timeout=10)
            self.assertEqual(a.sequence, res.sequence)
            self.assertEqual(a.concept_path, req.concept_path)
            self.assertEqual(a.predicate, req.predicate)
            self.assertEqual(a.value.string_value, req.value.string_value)
            self.assertEqual(a.source_id, req.source_id)
            self.assertEqual(a.confidence, req.confidence)
            self.assertEqual(a.timestamp_ns, req.timestamp_ns)

    def verify_in_flight_all_or_nothing(self, stub, writers):
        for w in writers:
            for reqs in w.in_flight:
                present = 0
                for req in reqs:
                    r = stub.Query(pb.QueryRequest(concept_path=req.concept_path, predicate=req.predicate),
                                   timeout=10)
                    # Each claim has a predicate of its own, so presence is
                    # exact; whatever is there must be the whole claim.
                    for x in r.results:
                        self.assertEqual(x.winner.value.string_value, req.value.string_value)
                        self.assertEqual(x.winner.source_id, req.source_id)
                        self.assertEqual(x.winner.timestamp_ns, req.timestamp_ns)
                    present += len(r.results) > 0
                self.assertIn(present, (0, len(reqs)), "a batch was half applied")


if __name__ == "__main__":
    unittest.main(verbosity=2)

"""Integration tests of stemedb-server through Python grpcio (Debian's
python3-grpcio), with stubs generated from proto/ at test time."""

import math
import os
import re
import signal
import socket
import subprocess
import threading
import time
import unittest

import grpc

import stmtest

pb, pb_grpc, types_pb2, health_pb2, health_pb2_grpc = stmtest.stubs()
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def claim(path="test/cluster", pred="replicated", value=True, **kw):
    v = types_pb2.Value()
    if isinstance(value, bool):
        v.bool_value = value
    elif isinstance(value, (int, float)):
        v.number_value = value
    else:
        v.string_value = value
    return pb.AssertRequest(concept_path=path, predicate=pred, value=v, **kw)


class GrpcServerTest(stmtest.ServerTestCase, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.health = health_pb2_grpc.HealthStub(cls.channel)

    def test_health_serving_for_empty_and_named_service(self):
        for svc in ("", "stemedb.v1.StemeDB"):
            r = self.health.Check(health_pb2.HealthCheckRequest(service=svc), timeout=5)
            self.assertEqual(r.status, health_pb2.HealthCheckResponse.SERVING)
        with self.assertRaises(grpc.RpcError) as ctx:
            self.health.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=5)
        self.assertCode(ctx, grpc.StatusCode.NOT_FOUND)

    def test_assert_returns_hash_sequence_and_is_idempotent(self):
        req = claim("grpc/idem", "color", "blue", source_id="wiki://x", timestamp_ns=1000)
        r1 = self.stub.Assert(req, timeout=10)
        self.assertRegex(r1.hash, HEX64)
        self.assertGreater(r1.sequence, 0)
        self.assertTrue(r1.created)
        r2 = self.stub.Assert(req, timeout=10)
        self.assertEqual((r2.hash, r2.sequence, r2.created), (r1.hash, r1.sequence, False))
        # Without a timestamp the statement is still idempotent (hash covers 0).
        r3 = self.stub.Assert(claim("grpc/idem", "shape", "round"), timeout=10)
        r4 = self.stub.Assert(claim("grpc/idem", "shape", "round"), timeout=10)
        self.assertTrue(r3.created)
        self.assertFalse(r4.created)
        self.assertEqual(r3.hash, r4.hash)

    def test_get_round_trips_every_value_kind(self):
        for value in ("text \u00e9\u20ac", 3.25, False):
            r = self.stub.Assert(claim("grpc/get", "v", value, confidence=0.5, timestamp_ns=42), timeout=10)
            a = self.stub.Get(pb.GetRequest(hash=r.hash), timeout=10)
            self.assertEqual(a.hash, r.hash)
            self.assertEqual(a.concept_path, "grpc/get")
            self.assertEqual(a.predicate, "v")
            self.assertEqual(a.confidence, 0.5)
            self.assertEqual(a.timestamp_ns, 42)
            self.assertEqual(a.sequence, r.sequence)
            kind = a.value.WhichOneof("kind")
            got = getattr(a.value, kind)
            self.assertEqual(got, value)
        ref = types_pb2.Value(ref_value="drugs/semaglutide")
        r = self.stub.Assert(pb.AssertRequest(concept_path="grpc/get", predicate="ref", value=ref), timeout=10)
        self.assertEqual(self.stub.Get(pb.GetRequest(hash=r.hash)).value.ref_value, "drugs/semaglutide")

    def test_get_missing_is_not_found_and_bad_hash_invalid(self):
        with self.assertRaises(grpc.RpcError) as ctx:
            self.stub.Get(pb.GetRequest(hash="0" * 64), timeout=5)
        self.assertCode(ctx, grpc.StatusCode.NOT_FOUND)
        with self.assertRaises(grpc.RpcError) as ctx:
            self.stub.Get(pb.GetRequest(hash="xyz"), timeout=5)
        self.assertCode(ctx, grpc.StatusCode.INVALID_ARGUMENT, "hash")

    def test_query_recency_picks_latest_and_counts_candidates(self):
        self.stub.Assert(claim("grpc/recency", "status", "old", timestamp_ns=100), timeout=10)
        newest = self.stub.Assert(claim("grpc/recency", "status", "new", timestamp_ns=300), timeout=10)
        self.stub.Assert(claim("grpc/recency", "status", "mid", timestamp_ns=200), timeout=10)
        self.stub.Assert(claim("grpc/recency", "other", 1, timestamp_ns=5), timeout=10)
        r = self.stub.Query(pb.QueryRequest(concept_path="grpc/recency", predicate="status", lens="recency"), timeout=10)
        self.assertEqual(len(r.results), 1)
        res = r.results[0]
        self.assertEqual(res.winner.hash, newest.hash)
        self.assertEqual(res.winner.value.string_value, "new")
        self.assertEqual(res.candidates_count, 3)
        self.assertEqual(res.confidence, 1.0)
        # No predicate: one result per predicate of the concept.
        r = self.stub.Query(pb.QueryRequest(concept_path="grpc/recency", lens="recency"), timeout=10)
        self.assertEqual(sorted(x.predicate for x in r.results), ["other", "status"])

    def test_query_recency_tie_goes_to_larger_hash(self):
        a = self.stub.Assert(claim("grpc/tie", "p", "a", timestamp_ns=7), timeout=10)
        b = self.stub.Assert(claim("grpc/tie", "p", "b", timestamp_ns=7), timeout=10)
        r = self.stub.Query(pb.QueryRequest(concept_path="grpc/tie", lens="recency"), timeout=10)
        self.assertEqual(r.results[0].winner.hash, max(a.hash, b.hash))

    def test_query_descendants_and_as_of_sequence(self):
        first = self.stub.Assert(claim("grpc/tree", "p", 1, timestamp_ns=1), timeout=10)
        self.stub.Assert(claim("grpc/tree/child", "p", 2, timestamp_ns=2), timeout=10)
        self.stub.Assert(claim("grpc/treehouse", "p", 3, timestamp_ns=3), timeout=10)
        r = self.stub.Query(pb.QueryRequest(concept_path="grpc/tree", lens="recency"), timeout=10)
        self.assertEqual([x.concept_path for x in r.results], ["grpc/tree"])
        r = self.stub.Query(pb.QueryRequest(concept_path="grpc/tree", include_descendants=True), timeout=10)
        self.assertEqual(sorted(x.concept_path for x in r.results), ["grpc/tree", "grpc/tree/child"])
        later = self.stub.Assert(claim("grpc/tree", "p", 9, timestamp_ns=9), timeout=10)
        now = self.stub.Query(pb.QueryRequest(concept_path="grpc/tree"), timeout=10)
        self.assertEqual(now.results[0].winner.hash, later.hash)
        then = self.stub.Query(pb.QueryRequest(concept_path="grpc/tree", as_of_sequence=first.sequence), timeout=10)
        self.assertEqual(then.results[0].winner.hash, first.hash)
        self.assertEqual(then.results[0].candidates_count, 1)
        with self.assertRaises(grpc.RpcError) as ctx:
            self.stub.Get(pb.GetRequest(hash=later.hash, as_of_sequence=first.sequence), timeout=5)
        self.assertCode(ctx, grpc.StatusCode.NOT_FOUND)

    def test_query_rejects_unknown_lens_and_bad_path(self):
        with self.assertRaises(grpc.RpcError) as ctx:
            self.stub.Query(pb.QueryRequest(concept_path="a", lens="magic"), timeout=5)
        self.assertCode(ctx, grpc.StatusCode.INVALID_ARGUMENT, "lens")
        with self.assertRaises(grpc.RpcError) as ctx:
            self.stub.Query(pb.QueryRequest(concept_path="a//b"), timeout=5)
        self.assertCode(ctx, grpc.StatusCode.INVALID_ARGUMENT, "concept_path")

    def test_batch_is_all_or_nothing(self):
        before = self.stub.Status(pb.StatusRequest(), timeout=5)
        bad = pb.AssertBatchRequest(assertions=[claim("grpc/batch", "ok", 1), claim("grpc/batch", "bad pred", 2)])
        with self.assertRaises(grpc.RpcError) as ctx:
            self.stub.AssertBatch(bad, timeout=10)
        self.assertCode(ctx, grpc.StatusCode.INVALID_ARGUMENT, "assertions[1].predicate")
        after = self.stub.Status(pb.StatusRequest(), timeout=5)
        self.assertEqual(after.last_sequence, before.last_sequence)
        good = pb.AssertBatchRequest(assertions=[claim("grpc/batch", "k%d" % i, i, timestamp_ns=i + 1) for i in range(50)])
        r = self.stub.AssertBatch(good, timeout=10)
        self.assertEqual(len(r.results), 50)
        self.assertTrue(all(x.created for x in r.results))
        seqs = [x.sequence for x in r.results]
        self.assertEqual(seqs, sorted(seqs))
        self.assertEqual(len(set(x.hash for x in r.results)), 50)

    def test_every_bad_field_is_invalid_argument_naming_it(self):
        cases = [
            (claim(path=""), "concept_path"),
            (claim(path="a b"), "concept_path"),
            (claim(path="x" * 513), "concept_path"),
            (claim(path="/".join(["s"] * 33)), "concept_path"),
            (claim(pred=""), "predicate"),
            (claim(pred="p" * 129), "predicate"),
            (claim(value=float("nan")), "value"),
            (claim(value=float("inf")), "value"),
            (claim(value="x" * 65537), "value"),
            (claim(confidence=1.5), "confidence"),
            (claim(parent_hash="abc"), "parent_hash"),
            (claim(source_id="has space"), "source_id"),
            (pb.AssertRequest(concept_path="a", predicate="p"), "value"),
        ]
        for req, field in cases:
            with self.subTest(field=field):
                with self.assertRaises(grpc.RpcError) as ctx:
                    self.stub.Assert(req, timeout=5)
                self.assertCode(ctx, grpc.StatusCode.INVALID_ARGUMENT, field)

    def test_invalid_utf8_and_garbage_payload_are_rejected(self):
        raw = self.channel.unary_unary("/stemedb.v1.StemeDB/Assert")
        # AssertRequest{concept_path:"a", predicate:"p", value{string_value:"\xff"}}
        body = b"\x0a\x01a\x12\x01p\x1a\x03\x0a\x01\xff"
        with self.assertRaises(grpc.RpcError) as ctx:
            raw(body, timeout=5)
        self.assertCode(ctx, grpc.StatusCode.INVALID_ARGUMENT, "value")
        with self.assertRaises(grpc.RpcError) as ctx:
            raw(b"\xff\xff\xff\xff\xff", timeout=5)
        self.assertCode(ctx, grpc.StatusCode.INVALID_ARGUMENT)

    def test_every_method_answers_promptly_and_unknown_ones_are_unimplemented(self):
        # What a client needs: no call ever waits for its deadline. (The
        # Cluster service is being built; whatever it answers, it answers.)
        for path in ("/stemedb.v1.Cluster/Members", "/stemedb.v1.Cluster/Health",
                     "/stemedb.v1.StemeDB/Status"):
            t0 = time.monotonic()
            try:
                self.channel.unary_unary(path)(b"", timeout=5)
            except grpc.RpcError as e:
                self.assertNotIn(e.code(), (grpc.StatusCode.DEADLINE_EXCEEDED,
                                            grpc.StatusCode.UNKNOWN), path)
            self.assertLess(time.monotonic() - t0, 2.0, path)
        # A method that is in no service of ours: UNIMPLEMENTED, at once
        # (the C core would otherwise queue it until the deadline).
        raw = self.channel.unary_unary("/no.such.Service/Method")
        t0 = time.monotonic()
        with self.assertRaises(grpc.RpcError) as ctx:
            raw(b"", timeout=5)
        self.assertCode(ctx, grpc.StatusCode.UNIMPLEMENTED)
        self.assertLess(time.monotonic() - t0, 2.0)

    def test_garbage_bytes_on_the_port_do_not_hurt_the_server(self):
        for junk in (b"\x00" * 100, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", os.urandom(4096)):
            with socket.create_connection(("127.0.0.1", self.server.port), timeout=5) as s:
                try:
                    s.sendall(junk)
                    s.recv(1024)
                except OSError:
                    pass
        r = self.stub.Status(pb.StatusRequest(), timeout=5)
        self.assertEqual(r.status, "healthy")

    def test_status_and_metrics(self):
        self.stub.Assert(claim("grpc/status", "p", "x"), timeout=10)
        r = self.stub.Status(pb.StatusRequest(), timeout=5)
        self.assertEqual(r.status, "healthy")
        self.assertEqual(r.node_id, "test-node")
        self.assertTrue(r.version)
        self.assertGreaterEqual(r.assertion_count, 1)
        self.assertGreaterEqual(r.last_sequence, r.assertion_count)
        m = self.stub.Metrics(pb.MetricsRequest(), timeout=5)
        match = re.search(r"^stemedb_assertions_total (\d+)$", m.text, re.M)
        self.assertIsNotNone(match, m.text)
        self.assertGreaterEqual(int(match.group(1)), 1)

    def test_concurrent_writers_are_all_acknowledged(self):
        results, errors = [], []

        def writer(t):
            try:
                with grpc.insecure_channel(self.server.addr) as ch:
                    st = pb_grpc.StemeDBStub(ch)
                    for i in range(50):
                        r = st.Assert(claim("grpc/conc", "t%d" % t, i, timestamp_ns=i + 1), timeout=10)
                        results.append(r)
            except Exception as e:  # noqa: BLE001
                errors.append(e)
        threads = [threading.Thread(target=writer, args=(t,)) for t in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(len(results), 800)
        self.assertEqual(len(set(r.sequence for r in results)), 800)
        for r in results[::37]:
            self.assertEqual(self.stub.Get(pb.GetRequest(hash=r.hash), timeout=5).sequence, r.sequence)


class LifecycleTest(unittest.TestCase):
    def test_data_survives_clean_restart(self):
        srv = stmtest.Server().start()
        try:
            with grpc.insecure_channel(srv.addr) as ch:
                r = pb_grpc.StemeDBStub(ch).Assert(claim("life/restart", "p", "kept"), timeout=10)
            self.assertEqual(srv.stop(), 0)
            self.assertIn("shutdown complete", srv.read_log())
            srv.start()
            with grpc.insecure_channel(srv.addr) as ch:
                a = pb_grpc.StemeDBStub(ch).Get(pb.GetRequest(hash=r.hash), timeout=10)
            self.assertEqual(a.value.string_value, "kept")
            self.assertEqual(srv.stop(signal.SIGINT), 0)
        finally:
            srv.cleanup()

    def test_sigterm_under_load_finishes_in_flight_writes_and_exits_0(self):
        srv = stmtest.Server().start()
        acked, stop = [], threading.Event()

        def writer(t):
            # Calls race the shutdown: see stmtest.restart_safe_channel.
            with stmtest.restart_safe_channel(srv.addr) as ch:
                st = pb_grpc.StemeDBStub(ch)
                i = 0
                while not stop.is_set():
                    try:
                        acked.append(st.Assert(claim("life/term", "t%d" % t, i, timestamp_ns=i + 1), timeout=10))
                    except grpc.RpcError:
                        return
                    i += 1
        try:
            threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
            for t in threads:
                t.start()
            stmtest.wait_until(lambda: len(acked) >= 200, 30, "acks")
            t0 = time.monotonic()
            self.assertEqual(srv.stop(), 0)
            self.assertLess(time.monotonic() - t0, 4.0, "shutdown waited for its whole grace")
            stop.set()
            for t in threads:
                t.join(30)
            srv.start()
            with grpc.insecure_channel(srv.addr) as ch:
                st = pb_grpc.StemeDBStub(ch)
                for r in acked:
                    self.assertEqual(st.Get(pb.GetRequest(hash=r.hash), timeout=10).sequence, r.sequence)
            self.assertEqual(srv.stop(), 0)
        finally:
            stop.set()
            srv.cleanup()

    def test_health_is_not_serving_while_shutting_down(self):
        srv = stmtest.Server(extra_args=["--shutdown-delay-ms", "3000"]).start()
        try:
            with grpc.insecure_channel(srv.addr) as ch:
                health = health_pb2_grpc.HealthStub(ch)
                req = health_pb2.HealthCheckRequest(service="stemedb.v1.StemeDB")
                self.assertEqual(health.Check(req, timeout=5).status,
                                 health_pb2.HealthCheckResponse.SERVING)
                srv.proc.send_signal(signal.SIGTERM)
                stmtest.wait_until(
                    lambda: health.Check(req, timeout=5).status ==
                    health_pb2.HealthCheckResponse.NOT_SERVING, 10, "NOT_SERVING")
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.cleanup()

    def test_second_server_on_same_data_dir_or_port_fails_clearly(self):
        srv = stmtest.Server().start()
        try:
            other = subprocess.run(
                [stmtest.SERVER_BIN, "--data-dir", srv.data_dir, "--grpc-listen",
                 "127.0.0.1:%d" % stmtest.free_port()],
                capture_output=True, timeout=30)
            self.assertNotEqual(other.returncode, 0)
            self.assertIn(b"data", other.stderr)
            d = stmtest.Server()
            try:
                taken = subprocess.run(
                    [stmtest.SERVER_BIN, "--data-dir", d.data_dir, "--grpc-listen", srv.addr],
                    capture_output=True, timeout=30)
                self.assertNotEqual(taken.returncode, 0)
                self.assertIn(b"cannot listen", taken.stderr)
            finally:
                d.cleanup()
        finally:
            srv.stop()
            srv.cleanup()

    def test_unusable_data_dir_is_a_clear_error(self):
        r = subprocess.run([stmtest.SERVER_BIN, "--data-dir", "/proc/stemedb-nope",
                            "--grpc-listen", "127.0.0.1:%d" % stmtest.free_port()],
                           capture_output=True, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"/proc/stemedb-nope", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)

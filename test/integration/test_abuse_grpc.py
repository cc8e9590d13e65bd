"""The node probed as a hostile or careless gRPC client would (issue 10):
each test is a defect that was found and fixed, or a property that must
keep holding. Real stemedb-server processes on free loopback ports."""

import os
import resource
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import grpc

import stmtest

pb, pb_grpc, types_pb2, health_pb2, health_pb2_grpc = stmtest.stubs()


def claim(path="abuse/x", pred="p", value="v", **kw):
    return pb.AssertRequest(concept_path=path, predicate=pred,
                            value=types_pb2.Value(string_value=value), **kw)


def raw_call(channel, method, payload, timeout=10):
    """A unary call with hand-made request bytes (what no generated stub
    lets a client send: invalid UTF-8, say). method: "Assert" (StemeDB) or
    a full "/pkg.Service/Method"."""
    if not method.startswith("/"):
        method = "/stemedb.v1.StemeDB/" + method
    call = channel.unary_unary(method,
                               request_serializer=lambda b: b,
                               response_deserializer=lambda b: b)
    return call(payload, timeout=timeout)


def pb_varint(field, v):
    out = bytearray([field << 3])
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def pb_string(field, data):
    """One length-delimited protobuf field (field < 16, data < 128 bytes)."""
    return bytes([field << 3 | 2, len(data)]) + data


class StringFieldTest(stmtest.ServerTestCase, unittest.TestCase):
    """Item 4: a string is stored as sent or refused, never cut at a NUL."""

    def test_nul_in_predicate_and_value_is_refused_naming_the_field(self):
        with self.assertRaises(grpc.RpcError) as ctx:
            self.stub.Assert(claim(pred="p\x00zzz"), timeout=10)
        self.assertCode(ctx, grpc.StatusCode.INVALID_ARGUMENT, "predicate")
        with self.assertRaises(grpc.RpcError) as ctx:
            self.stub.Assert(claim(value="a\x00b"), timeout=10)
        self.assertCode(ctx, grpc.StatusCode.INVALID_ARGUMENT, "value.string_value")
        with self.assertRaises(grpc.RpcError) as ctx:
            self.stub.Assert(claim(source_id="fda://x\x00\x01"), timeout=10)
        self.assertCode(ctx, grpc.StatusCode.INVALID_ARGUMENT, "source_id")
        # Nothing was stored under the truncated names either.
        q = self.stub.Query(pb.QueryRequest(concept_path="abuse/x", predicate="p"), timeout=10)
        self.assertEqual(len(q.results), 0)

    def test_nul_is_refused_in_nested_and_repeated_fields(self):
        batch = pb.AssertBatchRequest(assertions=[claim(pred="ok"), claim(pred="o\x00k")])
        with self.assertRaises(grpc.RpcError) as ctx:
            self.stub.AssertBatch(batch, timeout=10)
        self.assertCode(ctx, grpc.StatusCode.INVALID_ARGUMENT, "assertions[1].predicate")
        src = types_pb2.Source(id="wiki://n", name="na\x00me")
        with self.assertRaises(grpc.RpcError) as ctx:
            self.stub.PutSource(pb.PutSourceRequest(source=src), timeout=10)
        self.assertCode(ctx, grpc.StatusCode.INVALID_ARGUMENT, "source.name")
        with self.assertRaises(grpc.RpcError) as ctx:
            self.stub.StartEpoch(pb.StartEpochRequest(concept_path="abuse/e", reason="r\x00"), timeout=10)
        self.assertCode(ctx, grpc.StatusCode.INVALID_ARGUMENT, "reason")

    def test_invalid_utf8_is_refused_naming_the_field(self):
        # AssertRequest{concept_path="abuse/u", predicate=b"\xff"}
        payload = pb_string(1, b"abuse/u") + pb_string(2, b"\xff")
        with self.assertRaises(grpc.RpcError) as ctx:
            raw_call(self.channel, "Assert", payload)
        self.assertCode(ctx, grpc.StatusCode.INVALID_ARGUMENT, "predicate")

    def test_free_text_keeps_tabs_and_newlines_byte_for_byte(self):
        text = "line one\n\tline two\r\n\u00e9"
        r = self.stub.Assert(claim("abuse/text", "note", text), timeout=10)
        got = self.stub.Get(pb.GetRequest(hash=r.hash), timeout=10)
        self.assertEqual(got.value.string_value, text)


class RetryTest(stmtest.ServerTestCase, unittest.TestCase):
    """Item 3: a retried write never writes twice."""

    def target(self, pred):
        return self.stub.Assert(claim("abuse/retry", pred, "v"), timeout=10).hash

    def test_same_vote_sent_twice_is_one_vote(self):
        h = self.target("vote")
        v1 = self.stub.Vote(pb.VoteRequest(assertion_hash=h, voter_id="alice", weight=1), timeout=10)
        v2 = self.stub.Vote(pb.VoteRequest(assertion_hash=h, voter_id="alice", weight=1), timeout=10)
        self.assertTrue(v1.created)
        self.assertEqual((v2.hash, v2.sequence, v2.created), (v1.hash, v1.sequence, False))
        votes = self.stub.Trace(pb.TraceRequest(hash=h), timeout=10).votes
        self.assertEqual(len(votes), 1)
        self.assertGreater(votes[0].timestamp_ns, 0)  # its commit time
        # A vote stating its own time is its own content.
        v3 = self.stub.Vote(pb.VoteRequest(assertion_hash=h, voter_id="alice", weight=1,
                                           timestamp_ns=123), timeout=10)
        self.assertTrue(v3.created)
        self.assertEqual(len(self.stub.Trace(pb.TraceRequest(hash=h), timeout=10).votes), 2)

    def test_start_epoch_with_a_stated_time_is_idempotent(self):
        req = pb.StartEpochRequest(concept_path="abuse/epoch", predicate="p", reason="recall",
                                   timestamp_ns=5000)
        e1 = self.stub.StartEpoch(req, timeout=10)
        e2 = self.stub.StartEpoch(req, timeout=10)
        self.assertTrue(e1.created)
        self.assertFalse(e2.created)
        self.assertEqual((e2.epoch.hash, e2.epoch.number, e2.epoch.sequence),
                         (e1.epoch.hash, e1.epoch.number, e1.epoch.sequence))
        # Another stated time is another epoch.
        e3 = self.stub.StartEpoch(pb.StartEpochRequest(concept_path="abuse/epoch", predicate="p",
                                                       reason="recall", timestamp_ns=6000), timeout=10)
        self.assertEqual(e3.epoch.number, e1.epoch.number + 1)

    def test_request_id_answers_a_retry_from_the_first_outcome(self):
        h = self.target("rid")
        audit_before = self.stub.Audit(pb.AuditRequest(limit=1000), timeout=10).next_after_sequence
        reqs = [
            ("Vote", pb.VoteRequest(assertion_hash=h, voter_id="bob", weight=-1,
                                    timestamp_ns=time.time_ns(), request_id="r-vote-1")),
            ("StartEpoch", pb.StartEpochRequest(concept_path="abuse/rid", reason="x",
                                                request_id="r-epoch-1")),
            ("PutSource", pb.PutSourceRequest(source=types_pb2.Source(id="wiki://rid", name="n"),
                                              request_id="r-source-1")),
            ("AssertBatch", pb.AssertBatchRequest(assertions=[claim("abuse/rid", "b", "v")],
                                                  request_id="r-batch-1")),
        ]
        for method, req in reqs:
            first = getattr(self.stub, method)(req, timeout=10)
            again = getattr(self.stub, method)(req, timeout=10)
            self.assertEqual(again, first, method)  # created stays true: the same answer
        entries = self.stub.Audit(pb.AuditRequest(after_sequence=audit_before, limit=1000),
                                  timeout=10).entries
        self.assertEqual([e.operation for e in entries],
                         ["vote", "start_epoch", "put_source", "assert_batch"])

    def test_request_id_reused_for_another_request_is_invalid(self):
        self.stub.PutSource(pb.PutSourceRequest(source=types_pb2.Source(id="wiki://a"),
                                                request_id="r-reuse"), timeout=10)
        with self.assertRaises(grpc.RpcError) as ctx:
            self.stub.PutSource(pb.PutSourceRequest(source=types_pb2.Source(id="wiki://b"),
                                                    request_id="r-reuse"), timeout=10)
        self.assertCode(ctx, grpc.StatusCode.INVALID_ARGUMENT, "request_id")
        with self.assertRaises(grpc.RpcError) as ctx:
            self.stub.PutSource(pb.PutSourceRequest(source=types_pb2.Source(id="wiki://c"),
                                                    request_id="has space"), timeout=10)
        self.assertCode(ctx, grpc.StatusCode.INVALID_ARGUMENT, "request_id")

    def test_concurrent_retries_with_one_request_id_write_once(self):
        # StartEpoch without a stated time has no content identity: only
        # the request_id keeps 20 overlapping retries to one epoch.
        req = pb.StartEpochRequest(concept_path="abuse/concurrent", reason="r",
                                   request_id="r-concurrent")
        futures = [self.stub.StartEpoch.future(req, timeout=10) for _ in range(20)]
        answers = {(f.result().epoch.hash, f.result().epoch.number, f.result().created)
                   for f in futures}
        self.assertEqual(answers, {(answers.copy().pop()[0], 1, True)})
        nxt = self.stub.StartEpoch(pb.StartEpochRequest(concept_path="abuse/concurrent", reason="r"),
                                   timeout=10)
        self.assertEqual(nxt.epoch.number, 2)

    def test_a_failed_first_attempt_is_not_remembered(self):
        req = pb.VoteRequest(assertion_hash="ab" * 32, voter_id="dave", weight=1,
                             request_id="r-fail")
        for _ in range(2):
            with self.assertRaises(grpc.RpcError) as ctx:
                self.stub.Vote(req, timeout=10)
            self.assertCode(ctx, grpc.StatusCode.NOT_FOUND)


class ProtocolLapsesTest(stmtest.ServerTestCase, unittest.TestCase):
    """Item 8: one set of rules over gRPC and REST; precise errors."""

    def test_negative_as_of_time_is_invalid_on_every_read(self):
        r = self.stub.Assert(claim("abuse/asof"), timeout=10)
        calls = [
            lambda: self.stub.Get(pb.GetRequest(hash=r.hash, as_of_time_ns=-1), timeout=10),
            lambda: self.stub.Query(pb.QueryRequest(concept_path="abuse/asof", as_of_time_ns=-1), timeout=10),
            lambda: self.stub.Trace(pb.TraceRequest(hash=r.hash, as_of_time_ns=-1), timeout=10),
            lambda: self.stub.GetSource(pb.GetSourceRequest(id="wiki://x", as_of_time_ns=-1), timeout=10),
            lambda: self.stub.ListSources(pb.ListSourcesRequest(as_of_time_ns=-1), timeout=10),
        ]
        for call in calls:
            with self.assertRaises(grpc.RpcError) as ctx:
                call()
            self.assertCode(ctx, grpc.StatusCode.INVALID_ARGUMENT, "as_of_time_ns")

    def test_garbage_page_token_is_invalid_naming_it(self):
        with self.assertRaises(grpc.RpcError) as ctx:
            self.stub.ListSources(pb.ListSourcesRequest(page_token="\u00e9 garbage \t"), timeout=10)
        self.assertCode(ctx, grpc.StatusCode.INVALID_ARGUMENT, "page_token")
        with self.assertRaises(grpc.RpcError) as ctx:
            self.stub.ListConcepts(pb.ListConceptsRequest(page_token="a//b"), timeout=10)
        self.assertCode(ctx, grpc.StatusCode.INVALID_ARGUMENT, "page_token")
        # A real token still pages.
        for i in range(3):
            self.stub.PutSource(pb.PutSourceRequest(source=types_pb2.Source(id="wiki://page%d" % i)), timeout=10)
        first = self.stub.ListSources(pb.ListSourcesRequest(limit=1), timeout=10)
        nxt = self.stub.ListSources(pb.ListSourcesRequest(limit=1, page_token=first.next_page_token), timeout=10)
        self.assertGreater(nxt.sources[0].id, first.sources[0].id)

    def test_backup_read_past_the_end_is_out_of_range_naming_offset(self):
        self.stub.Assert(claim("abuse/backup"), timeout=10)
        wal = os.path.join(self.server.data_dir, "wal")
        name = sorted(f for f in os.listdir(wal) if f.endswith(".wal"))[0]
        size = os.path.getsize(os.path.join(wal, name))
        for offset in (size + 1, 1 << 63, (1 << 64) - 1):
            payload = pb_string(1, name.encode()) + pb_varint(2, offset) + pb_varint(3, 4096)
            with self.assertRaises(grpc.RpcError) as ctx:
                raw_call(self.channel, "/stemedb.v1.Admin/BackupRead", payload)
            self.assertCode(ctx, grpc.StatusCode.OUT_OF_RANGE, "offset")
        # At the end exactly: an empty chunk, the end of the file.
        payload = pb_string(1, name.encode()) + pb_varint(2, size) + pb_varint(3, 4096)
        self.assertEqual(raw_call(self.channel, "/stemedb.v1.Admin/BackupRead", payload), b"")


class FdExhaustionTest(unittest.TestCase):
    """Item 1: gRPC C core 1.51 stops accepting for good after one EMFILE.
    The node must not stay up deaf: its self-probe notices and it exits
    non-zero (status 3) so the orchestrator restarts it."""

    def test_listener_dead_after_fd_exhaustion_makes_the_server_exit_3(self):
        def low_limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200))
        server = stmtest.Server(extra_args=["--listener-probe-ms", "200"],
                                preexec_fn=low_limit)
        try:
            server.start()
            self.assertIn("open-file limit: soft 200", server.read_log())
            socks = []
            try:
                for _ in range(260):
                    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
                    socks.append(s)
                # The server accepts until it runs out of descriptors.
                stmtest.wait_until(lambda: "Too many open files" in server.read_log(),
                                   20, "the server to hit EMFILE")
            finally:
                for s in socks:
                    s.close()
            rc = server.proc.wait(60)
            server.proc = None
            server.log.close()
            self.assertEqual(rc, 3, server.read_log()[-3000:])
            self.assertIn("stopped accepting new connections", server.read_log())
        finally:
            server.cleanup()

    def test_a_peer_that_never_speaks_http2_is_dropped_within_the_handshake_timeout(self):
        server = stmtest.Server().start()
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
                s.settimeout(30)
                t0 = time.monotonic()
                try:
                    got = s.recv(1024)  # the server's settings, then EOF
                    while got:
                        got = s.recv(1024)
                except ConnectionResetError:
                    pass
                self.assertLess(time.monotonic() - t0, 20)  # 10 s, not 120 s
            self.assertEqual(server.stop(), 0)
        finally:
            server.cleanup()

    def test_soft_fd_limit_is_raised_to_the_hard_limit_and_logged(self):
        def limits():
            resource.setrlimit(resource.RLIMIT_NOFILE, (300, 4096))
        server = stmtest.Server(preexec_fn=limits)
        try:
            server.start()
            self.assertIn("open-file limit: soft 4096 (was 300), hard 4096", server.read_log())
            self.assertEqual(server.stop(), 0)
        finally:
            server.cleanup()


class AuditForwardedForTest(unittest.TestCase):
    """Item 8: x-forwarded-for is believed only from a configured proxy."""

    def caller_of_a_write(self, server):
        with grpc.insecure_channel(server.addr) as ch:
            stub = pb_grpc.StemeDBStub(ch)
            stub.Assert(claim("abuse/xff", "p", str(server.port)), timeout=10,
                        metadata=[("x-forwarded-for", "6.6.6.6")])
            entries = stub.Audit(pb.AuditRequest(limit=1000), timeout=10).entries
            return entries[-1].caller

    def test_forwarded_for_is_recorded_only_from_a_trusted_proxy(self):
        trusting = stmtest.Server().start()
        wary = stmtest.Server(extra_args=["--trusted-proxies", "10.9.9.9"]).start()
        try:
            self.assertRegex(self.caller_of_a_write(trusting), r"^ipv4:127\.0\.0\.1:\d+ for 6\.6\.6\.6$")
            caller = self.caller_of_a_write(wary)
            self.assertRegex(caller, r"^ipv4:127\.0\.0\.1:\d+$")
            self.assertNotIn("6.6.6.6", caller)
        finally:
            for s in (trusting, wary):
                s.stop()
                s.cleanup()


def wait_answering(server, timeout=30):
    """Readiness of a server that may be NOT_SERVING (read-only): Status
    answers."""
    def answers():
        if server.proc.poll() is not None:
            raise RuntimeError("server exited: " + server.read_log()[-3000:])
        try:
            with grpc.insecure_channel(server.addr) as ch:
                return pb_grpc.StemeDBStub(ch).Status(pb.StatusRequest(), timeout=1)
        except grpc.RpcError:
            return None
    return stmtest.wait_until(answers, timeout, "the server to answer Status")


class DiskFullTest(unittest.TestCase):
    """Item 9: a full disk stops writes, never reads, and never the restart."""

    def setUp(self):
        self.mnt = tempfile.mkdtemp(prefix="stm-tmpfs-")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", self.mnt],
                           capture_output=True, text=True)
        if r.returncode != 0:
            os.rmdir(self.mnt)
            self.skipTest("cannot mount a small tmpfs here (%s): the disk-full test needs "
                          "root or CAP_SYS_ADMIN" % r.stderr.strip())
        self.server = None

    def tearDown(self):
        if self.server:
            self.server.cleanup()
        subprocess.run(["umount", self.mnt], check=False)
        os.rmdir(self.mnt)

    def fill(self, name):
        with open(os.path.join(self.mnt, name), "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass

    def test_full_disk_refuses_writes_then_restarts_read_only_with_every_ack(self):
        data = os.path.join(self.mnt, "data")
        args = ["--disk-reserve-bytes", "2000000"]
        self.server = stmtest.Server(data_dir=data, extra_args=args).start()
        acked = []
        with grpc.insecure_channel(self.server.addr) as ch:
            stub = pb_grpc.StemeDBStub(ch)
            for i in range(50):
                acked.append(stub.Assert(claim("abuse/full", "p%d" % i, "v"), timeout=10).hash)
            self.fill("ballast")
            refused = None
            for i in range(2000):  # the WAL's pages run out within a few writes
                try:
                    acked.append(stub.Assert(claim("abuse/full", "q%d" % i, "x" * 4000),
                                             timeout=10).hash)
                except grpc.RpcError as e:
                    refused = e
                    break
            self.assertIsNotNone(refused, "writes never failed on a full disk")
            self.assertEqual(refused.code(), grpc.StatusCode.UNAVAILABLE, refused.details())
        self.assertEqual(self.server.stop(), 0)

        # Restart on the still-full disk: up, read-only, every ack readable.
        self.server.start(wait=False)
        st = wait_answering(self.server)
        self.assertEqual((st.status, st.writable), ("read_only", False))
        self.assertIn("released the disk reserve to open READ-ONLY", self.server.read_log())
        with grpc.insecure_channel(self.server.addr) as ch:
            stub = pb_grpc.StemeDBStub(ch)
            for h in acked:
                self.assertEqual(stub.Get(pb.GetRequest(hash=h), timeout=10).hash, h)
            q = stub.Query(pb.QueryRequest(concept_path="abuse/full", limit=1000), timeout=10)
            self.assertEqual(len(q.results), len(acked))
            with self.assertRaises(grpc.RpcError) as ctx:
                stub.Assert(claim("abuse/full", "later", "v"), timeout=10)
            self.assertEqual(ctx.exception.code(), grpc.StatusCode.UNAVAILABLE)
            self.assertIn("disk was full", ctx.exception.details())
            h = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
            self.assertEqual(h.status, health_pb2.HealthCheckResponse.NOT_SERVING)
        self.assertEqual(self.server.stop(), 0)

        # Space freed: the next start is writable and keeps its reserve again.
        os.unlink(os.path.join(self.mnt, "ballast"))
        self.server.start()
        with grpc.insecure_channel(self.server.addr) as ch:
            stub = pb_grpc.StemeDBStub(ch)
            stub.Assert(claim("abuse/full", "after", "v"), timeout=10)
        self.assertTrue(os.path.exists(os.path.join(data, "reserve")))
        self.assertEqual(self.server.stop(), 0)


class KillUnderLoadTest(unittest.TestCase):
    """kill -9 under mixed load (claims, batches, votes, epochs, sources)
    loses no acknowledged write."""

    def test_kill_9_under_mixed_load_loses_no_acknowledged_write(self):
        server = stmtest.Server().start()
        try:
            with grpc.insecure_channel(server.addr) as ch:
                stub = pb_grpc.StemeDBStub(ch)
                target = stub.Assert(claim("abuse/kill", "target", "t"), timeout=10).hash
            acked = {"claim": [], "vote": [], "epoch": [], "source": []}
            lock = threading.Lock()
            stop = threading.Event()

            def writer(n):
                ch = stmtest.restart_safe_channel(server.addr)
                stub = pb_grpc.StemeDBStub(ch)
                i = 0
                deadline = time.monotonic() + 20
                while not stop.is_set() and time.monotonic() < deadline and i < 5000:
                    i += 1
                    try:
                        kind = i % 4
                        if kind == 0:
                            r = stub.AssertBatch(pb.AssertBatchRequest(assertions=[
                                claim("abuse/kill/%d" % n, "b%d_%d" % (i, j), "v") for j in range(5)]),
                                timeout=5)
                            got = [("claim", x.hash) for x in r.results]
                        elif kind == 1:
                            r = stub.Vote(pb.VoteRequest(assertion_hash=target, voter_id="w%d" % n,
                                                         weight=1, timestamp_ns=i), timeout=5)
                            got = [("vote", r.hash)]
                        elif kind == 2:
                            r = stub.StartEpoch(pb.StartEpochRequest(
                                concept_path="abuse/kill/%d" % n, reason="e%d" % i), timeout=5)
                            got = [("epoch", (r.epoch.hash, r.epoch.sequence))]
                        else:
                            r = stub.PutSource(pb.PutSourceRequest(source=types_pb2.Source(
                                id="wiki://w%d" % n, name="n%d" % i)), timeout=5)
                            got = [("source", (r.source.id, r.source.sequence))]
                    except grpc.RpcError:
                        break  # the server is gone: nothing after is acknowledged
                    with lock:
                        for k, v in got:
                            acked[k].append(v)
                ch.close()

            threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
            for t in threads:
                t.start()
            stmtest.wait_until(lambda: sum(len(v) for v in acked.values()) >= 400, 20,
                               "400 acknowledged writes")
            server.kill()
            stop.set()
            for t in threads:
                t.join(30)
            server.start()
            with grpc.insecure_channel(server.addr) as ch:
                stub = pb_grpc.StemeDBStub(ch)
                for h in acked["claim"]:
                    self.assertEqual(stub.Get(pb.GetRequest(hash=h), timeout=10).hash, h)
                votes = {v.hash for v in stub.Trace(pb.TraceRequest(hash=target), timeout=10).votes}
                self.assertLessEqual(set(acked["vote"]), votes)
                audit = {}
                after = 0
                while True:
                    page = stub.Audit(pb.AuditRequest(after_sequence=after, limit=1000), timeout=10)
                    if not page.entries:
                        break
                    for e in page.entries:
                        audit[e.sequence] = e
                    after = page.next_after_sequence
                for h, seq in acked["epoch"]:
                    self.assertEqual(audit[seq].target_hash, h)
                for sid, seq in acked["source"]:
                    self.assertEqual(audit[seq].operation, "put_source")
                    src = stub.GetSource(pb.GetSourceRequest(id=sid, as_of_sequence=seq), timeout=10)
                    self.assertEqual(src.sequence, seq)
            self.assertEqual(server.stop(), 0)
        finally:
            server.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)

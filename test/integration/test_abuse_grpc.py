"""The node probed as a hostile or careless gRPC client would (issue 10):
each test is a defect that was found and fixed, or a property that must
keep holding. Real stemedb-server processes on free loopback ports."""

import os
import resource
import signal
import socket
import subprocess
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
    lets a client send: invalid UTF-8, say)."""
    call = channel.unary_unary("/stemedb.v1.StemeDB/" + method,
                               request_serializer=lambda b: b,
                               response_deserializer=lambda b: b)
    return call(payload, timeout=timeout)


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


if __name__ == "__main__":
    unittest.main(verbosity=2)

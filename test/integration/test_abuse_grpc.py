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


if __name__ == "__main__":
    unittest.main(verbosity=2)

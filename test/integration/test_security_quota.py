"""Issue 13: quotas per agent - --quota-per-hour units per agent (key id,
else x-agent-id) and clock hour, assert 10 per claim, vote 1, query 5,
per-agent overrides, x-quota-* trailers / X-Quota-* headers on every
metered response, RESOURCE_EXHAUSTED / 429 naming the quota when used up,
and the usage kept across a restart. Real server and gateway, Python grpcio
and curl."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import stmtest  # noqa: E402

import grpc  # noqa: E402

ARGS = ["--quota-per-hour", "30", "--quota-overrides", "agent:big=1000", "--rate-limits", "off"]


def trailers(x):
    return {k: v for k, v in (x.trailing_metadata() or ())}


class QuotaTest(stmtest.ServerTestCase, unittest.TestCase):
    server_args = ARGS
    with_gateway = True

    @classmethod
    def setUpClass(cls):
        # Usage counts per clock hour: do not start in the hour's last
        # seconds, where the window could turn during the test.
        left = 3600 - int(time.time()) % 3600
        if left < 20:
            time.sleep(left + 1)
        cls.pb, cls.pb_grpc, cls.types, _, _ = stmtest.stubs()
        super().setUpClass()

    def query(self, agent, stub=None):
        md = [("x-agent-id", agent)] if agent else []
        return (stub or self.stub).Query.with_call(
            self.pb.QueryRequest(concept_path="q/a", lens="recency"), timeout=10, metadata=md)

    def claim(self, i):
        return self.pb.AssertRequest(concept_path="q/a", predicate="p%d" % i,
                                     value=self.types.Value(number_value=i))

    def test_query_costs_5_until_used_up(self):
        left = []
        for _ in range(6):
            _, call = self.query("small")
            t = trailers(call)
            self.assertEqual(t["x-quota-limit"], "30")
            left.append(int(t["x-quota-remaining"]))
            self.assertLessEqual(int(t["x-quota-reset"]), 3600)
        self.assertEqual(left, [25, 20, 15, 10, 5, 0])
        with self.assertRaises(grpc.RpcError) as ctx:
            self.query("small")
        e = ctx.exception
        self.assertEqual(e.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertIn("quota", e.details())
        self.assertIn("--quota-per-hour", e.details())
        t = trailers(e)
        self.assertEqual(t["x-quota-remaining"], "0")
        self.assertGreaterEqual(int(t["retry-after"]), 1)
        # Others are unaffected; callers with no agent are not metered.
        _, call = self.query("big")
        self.assertEqual(trailers(call)["x-quota-limit"], "1000")
        _, call = self.query(None)
        self.assertNotIn("x-quota-limit", trailers(call))

    def test_batch_costs_10_per_claim_and_vote_1(self):
        md = [("x-agent-id", "batcher")]
        _, call = self.stub.AssertBatch.with_call(
            self.pb.AssertBatchRequest(assertions=[self.claim(i) for i in range(2)]), timeout=10, metadata=md)
        self.assertEqual(trailers(call)["x-quota-remaining"], "10")
        with self.assertRaises(grpc.RpcError) as ctx:  # 2 claims = 20 > 10
            self.stub.AssertBatch(self.pb.AssertBatchRequest(assertions=[self.claim(i) for i in range(2, 4)]),
                                  timeout=10, metadata=md)
        self.assertEqual(ctx.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        r, call = self.stub.Assert.with_call(self.claim(9), timeout=10, metadata=md)
        self.assertEqual(trailers(call)["x-quota-remaining"], "0")
        vote = self.pb.VoteRequest(assertion_hash=r.hash, voter_id="v1", weight=1)
        with self.assertRaises(grpc.RpcError) as ctx:
            self.stub.Vote(vote, timeout=10, metadata=md)
        self.assertEqual(ctx.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        _, call = self.stub.Vote.with_call(vote, timeout=10, metadata=[("x-agent-id", "voter")])
        self.assertEqual(trailers(call)["x-quota-remaining"], "29")

    def test_rest_headers_and_429(self):
        url = self.gw.base + "/v1/query"
        args = ["-X", "POST", "-H", "Content-Type: application/json",
                "-d", '{"concept_path":"q/a","lens":"recency"}', "-H", "X-Agent-Id: rest-q"]
        for want in (25, 20, 15, 10, 5, 0):
            status, h = stmtest.curl_head(url, *args)
            self.assertEqual(status, 200, h)
            self.assertEqual(h.get("x-quota-limit"), "30", h)
            self.assertEqual(h["x-quota-remaining"], str(want))
            self.assertIn("x-quota-reset", h)
        status, h = stmtest.curl_head(url, *args)
        self.assertEqual(status, 429)
        self.assertIn("retry-after", h)

    def test_zz_usage_survives_a_restart(self):
        for _ in range(6):
            self.query("restart-agent")
        srv = self.server
        self.assertEqual(srv.stop(), 0)
        srv.start()
        with grpc.insecure_channel(srv.addr) as ch:
            stub = self.pb_grpc.StemeDBStub(ch)
            with self.assertRaises(grpc.RpcError) as ctx:
                self.query("restart-agent", stub)
            self.assertEqual(ctx.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
            _, call = self.query("fresh-agent", stub)
            self.assertEqual(trailers(call)["x-quota-remaining"], "25")


if __name__ == "__main__":
    unittest.main(verbosity=2)

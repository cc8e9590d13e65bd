"""Issue 13: rate limits - token buckets per gRPC method and client
identity (key id, else x-agent-id, else the client address; forwarded
addresses believed only from --trusted-proxies), RESOURCE_EXHAUSTED with
x-ratelimit-* and retry-after trailers over gRPC, 429 with Retry-After and
X-RateLimit-* over REST (and the X-RateLimit-* headers under the limit),
health exempt. Real server and gateway, Python grpcio and curl."""

import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import stmtest  # noqa: E402

import grpc  # noqa: E402

LIMITS = "Query=2:3,*=1000:2000"


def trailers(call_or_err):
    return {k: v for k, v in (call_or_err.trailing_metadata() or ())}


class RateLimitTest(stmtest.ServerTestCase, unittest.TestCase):
    server_args = ["--rate-limits", LIMITS, "--trusted-proxies", "127.0.0.1"]
    with_gateway = True

    @classmethod
    def setUpClass(cls):
        cls.pb, cls.pb_grpc, cls.types, cls.hpb, cls.hpb_grpc = stmtest.stubs()
        super().setUpClass()

    def query(self, agent, **kw):
        md = [("x-agent-id", agent)] if agent else []
        md += kw.pop("extra", [])
        return self.stub.Query.with_call(self.pb.QueryRequest(concept_path="rl/a", lens="recency"),
                                         timeout=10, metadata=md)

    def test_grpc_bucket_per_agent_and_trailers(self):
        seen = []
        for _ in range(3):
            _, call = self.query("agent-g")
            t = trailers(call)
            self.assertEqual(t["x-ratelimit-limit"], "3")
            seen.append(int(t["x-ratelimit-remaining"]))
        self.assertEqual(seen, [2, 1, 0])
        with self.assertRaises(grpc.RpcError) as ctx:
            self.query("agent-g")
        e = ctx.exception
        self.assertEqual(e.code(), grpc.StatusCode.RESOURCE_EXHAUSTED, e.details())
        self.assertIn("rate limit", e.details())
        t = trailers(e)
        self.assertGreaterEqual(int(t["retry-after"]), 1)
        self.assertEqual(t["x-ratelimit-remaining"], "0")
        self.assertIn("x-ratelimit-reset", t)
        # Another agent has its own bucket; health is never limited.
        self.query("agent-other")
        h = self.hpb_grpc.HealthStub(self.channel)
        for _ in range(20):
            h.Check(self.hpb.HealthCheckRequest(), timeout=10)
        # The bucket refills at 2 per second.
        t0 = time.monotonic()

        def passes():
            try:
                self.query("agent-g")
                return True
            except grpc.RpcError as err:
                self.assertEqual(err.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
                return False
        stmtest.wait_until(passes, 5, "a refilled token")
        self.assertLess(time.monotonic() - t0, 2.0)

    def test_forwarded_address_needs_a_trusted_proxy(self):
        # 127.0.0.1 is trusted here: x-forwarded-for names the client.
        for _ in range(3):
            self.query(None, extra=[("x-forwarded-for", "10.0.0.1")])
        self.query(None, extra=[("x-forwarded-for", "10.0.0.2")])
        with self.assertRaises(grpc.RpcError) as ctx:
            self.query(None, extra=[("x-forwarded-for", "10.0.0.1")])
        self.assertEqual(ctx.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)

    def test_untrusted_peer_cannot_dodge_by_forwarding(self):
        srv = stmtest.Server(extra_args=["--rate-limits", LIMITS, "--trusted-proxies", ""]).start()
        try:
            with grpc.insecure_channel(srv.addr) as ch:
                stub = self.pb_grpc.StemeDBStub(ch)
                q = self.pb.QueryRequest(concept_path="rl/a", lens="recency")
                for i in range(3):
                    stub.Query(q, timeout=10, metadata=[("x-forwarded-for", "10.1.0.%d" % i)])
                with self.assertRaises(grpc.RpcError) as ctx:
                    stub.Query(q, timeout=10, metadata=[("x-forwarded-for", "10.1.0.99")])
                self.assertEqual(ctx.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        finally:
            self.assertEqual(srv.stop(), 0)
            srv.cleanup()

    def test_rest_headers_and_429(self):
        url = self.gw.base + "/v1/query"
        args = ["-X", "POST", "-H", "Content-Type: application/json",
                "-d", '{"concept_path":"rl/a","lens":"recency"}', "-H", "X-Agent-Id: rest-agent"]
        for want in (2, 1, 0):
            status, h = stmtest.curl_head(url, *args)
            self.assertEqual(status, 200, h)
            self.assertEqual(h.get("x-ratelimit-limit"), "3", h)
            self.assertEqual(h["x-ratelimit-remaining"], str(want))
            self.assertIn("x-ratelimit-reset", h)
        status, h = stmtest.curl_head(url, *args)
        self.assertEqual(status, 429)
        self.assertGreaterEqual(int(h["retry-after"]), 1)
        self.assertEqual(h["x-ratelimit-remaining"], "0")
        status, _ = stmtest.curl_head(self.gw.base + "/v1/health")
        self.assertEqual(status, 200)

    def test_bad_spec_is_refused_naming_the_flag(self):
        r = subprocess.run([stmtest.SERVER_BIN, "--data-dir", self.server.data_dir + "-x",
                            "--grpc-listen", "127.0.0.1:0", "--rate-limits", "Query=fast"],
                           capture_output=True, text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--rate-limits", r.stdout + r.stderr)
        self.assertIn("Query=fast", r.stdout + r.stderr)
        stmtest.shutil.rmtree(self.server.data_dir + "-x", ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)

"""Issue 13: CORS (--allowed-origins / STEMEDB_ALLOWED_ORIGINS, no wildcard
by default, preflight answered by the gateway), 431 for oversized request
headers, and the gateway back within a second after a server restart (503
with Retry-After until then). Real server and gateway, curl."""

import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import stmtest  # noqa: E402

APP = "https://app.example.com"


def curl(url, *args):
    return stmtest.curl_head(url, *args, max_time=5)


QUERY = ["-X", "POST", "-H", "Content-Type: application/json", "-d", '{"concept_path":"c/a","lens":"recency"}']


class GatewayEdgesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        stmtest.stubs()
        cls.server = stmtest.Server().start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.server.cleanup()

    def gateway(self, *args, env=None):
        gw = stmtest.Gateway(self.server.addr)
        gw.log = open(gw.log_path, "ab")
        e = dict(os.environ)
        e.update(env or {})
        gw.proc = subprocess.Popen(
            [stmtest.GATEWAY_BIN, "--http-listen", "127.0.0.1:%d" % gw.port,
             "--cluster-listen", "127.0.0.1:%d" % gw.cluster_port, "--server", self.server.addr] + list(args),
            stdout=gw.log, stderr=subprocess.STDOUT, env=e)
        self.addCleanup(gw.cleanup)
        stmtest.wait_until(lambda: curl(gw.base + "/v1/health")[0] == 200, 20, "gateway")
        return gw

    def test_cors(self):
        gw = self.gateway(env={"STEMEDB_ALLOWED_ORIGINS": APP + ",http://localhost:3000"})
        pre = ["-X", "OPTIONS", "-H", "Access-Control-Request-Method: POST",
               "-H", "Access-Control-Request-Headers: content-type, x-api-key"]
        status, h = curl(gw.base + "/v1/query", *pre, "-H", "Origin: " + APP)
        self.assertEqual(status, 200, h)
        self.assertEqual(h["access-control-allow-origin"], APP)
        self.assertIn("POST", h["access-control-allow-methods"])
        self.assertIn("x-api-key", h["access-control-allow-headers"])
        self.assertIn("access-control-max-age", h)
        status, h = curl(gw.base + "/v1/query", *pre, "-H", "Origin: https://evil.example")
        self.assertEqual(status, 403)
        self.assertNotIn("access-control-allow-origin", h)
        status, h = curl(gw.base + "/v1/query", *QUERY, "-H", "Origin: " + APP)
        self.assertEqual(status, 200)
        self.assertEqual(h["access-control-allow-origin"], APP)
        self.assertIn("x-ratelimit-remaining", h["access-control-expose-headers"])
        self.assertEqual(h["vary"], "origin")
        status, h = curl(gw.base + "/v1/query", *QUERY, "-H", "Origin: https://evil.example")
        self.assertEqual(status, 200)
        self.assertNotIn("access-control-allow-origin", h)

    def test_no_origin_allowed_by_default(self):
        gw = self.gateway()
        status, h = curl(gw.base + "/v1/query", "-X", "OPTIONS", "-H", "Origin: " + APP,
                         "-H", "Access-Control-Request-Method: POST")
        self.assertEqual(status, 403)
        self.assertNotIn("access-control-allow-origin", h)

    def test_oversized_headers_get_431(self):
        gw = self.gateway()
        status, _ = curl(gw.base + "/v1/query", *QUERY, "-H", "X-Big: " + "a" * 20000)
        self.assertEqual(status, 431)

    def test_zz_back_within_a_second_after_server_restart(self):
        gw = self.gateway()
        self.assertEqual(curl(gw.base + "/v1/query", *QUERY)[0], 200)
        self.assertEqual(self.server.stop(), 0)
        status, h = curl(gw.base + "/v1/query", *QUERY)
        self.assertEqual(status, 503)
        self.assertEqual(h.get("retry-after"), "1")
        # Let the channel back off to its longest wait before the restart.
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            curl(gw.base + "/v1/query", *QUERY)
            time.sleep(0.2)
        self.server.start()  # same port and data; returns once it is ready
        t0 = time.monotonic()
        stmtest.wait_until(lambda: curl(gw.base + "/v1/query", *QUERY)[0] == 200, 10, "the gateway back")
        took = time.monotonic() - t0
        print("gateway back %.3f s after the server was ready" % took)
        self.assertLess(took, 1.5)


if __name__ == "__main__":
    unittest.main(verbosity=2)

"""deploy/envoy/envoy.yaml (issue 14). Envoy is not packaged in Debian 12,
so it cannot run here: this checks the file's structure with python3-yaml
instead - every route's cluster exists, the runbook's REST cluster on 18180
has active /v1/health checks, the gRPC route reaches 18182 over HTTP/2 with
gRPC health checks, /v1/watch upgrades to a WebSocket, durations and type
URLs are well formed, listener ports are distinct."""

import os
import re
import sys
import unittest

import yaml

sys.path.insert(0, os.path.dirname(__file__))
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ENVOY = os.path.join(ROOT, "deploy", "envoy", "envoy.yaml")

KNOWN_TYPES = {
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
    "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
    "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
}
DURATION = re.compile(r"^\d+(\.\d+)?s$")
DURATION_KEYS = {"timeout", "interval", "connect_timeout", "idle_timeout", "base_ejection_time"}


def walk(node, path=""):
    """Every (path, key, value) in the document."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield path, k, v
            yield from walk(v, path + "/" + str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, "%s[%d]" % (path, i))


class EnvoyConfigTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(ENVOY) as f:
            cls.doc = yaml.safe_load(f)
        cls.sr = cls.doc["static_resources"]
        cls.clusters = {c["name"]: c for c in cls.sr["clusters"]}

    def hcm(self, listener):
        filters = listener["filter_chains"][0]["filters"]
        self.assertEqual(filters[0]["name"], "envoy.filters.network.http_connection_manager")
        return filters[0]["typed_config"]

    def routes(self):
        for l in self.sr["listeners"]:
            for vh in self.hcm(l)["route_config"]["virtual_hosts"]:
                for r in vh["routes"]:
                    yield l["name"], r

    def endpoints(self, cluster):
        la = cluster["load_assignment"]
        self.assertEqual(la["cluster_name"], cluster["name"])
        return [e["endpoint"]["address"]["socket_address"] for g in la["endpoints"] for e in g["lb_endpoints"]]

    def test_top_level(self):
        self.assertEqual(set(self.doc), {"admin", "static_resources"})
        self.assertEqual(self.doc["admin"]["address"]["socket_address"]["address"], "127.0.0.1",
                         "the admin port must not be exposed")

    def test_every_route_has_a_cluster_and_every_cluster_is_used(self):
        used = set()
        for listener, r in self.routes():
            self.assertTrue("route" in r or "direct_response" in r, r)
            if "route" in r:
                self.assertIn(r["route"]["cluster"], self.clusters, listener)
                used.add(r["route"]["cluster"])
        self.assertEqual(used, set(self.clusters))

    def test_router_filter_is_last(self):
        for l in self.sr["listeners"]:
            self.assertEqual(self.hcm(l)["http_filters"][-1]["name"], "envoy.filters.http.router")

    def test_rest_cluster_is_the_runbooks_with_active_health_checks(self):
        c = self.clusters["stemedb_cluster"]
        self.assertEqual(c["type"], "STRICT_DNS")
        eps = self.endpoints(c)
        self.assertEqual(len(eps), 3)
        self.assertTrue(all(e["port_value"] == 18180 for e in eps))
        hc = c["health_checks"][0]
        self.assertEqual(hc["http_health_check"]["path"], "/v1/health")
        self.assertEqual((hc["timeout"], hc["interval"], hc["unhealthy_threshold"], hc["healthy_threshold"]),
                         ("3s", "5s", 3, 2))

    def test_grpc_route_reaches_18182_over_http2(self):
        grpc_routes = [r for _, r in self.routes() if "grpc" in r["match"]]
        self.assertEqual(len(grpc_routes), 1)
        c = self.clusters[grpc_routes[0]["route"]["cluster"]]
        self.assertTrue(all(e["port_value"] == 18182 for e in self.endpoints(c)))
        opts = c["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
        self.assertIn("http2_protocol_options", opts["explicit_http_config"])
        self.assertIn("grpc_health_check", c["health_checks"][0])
        grpc_listener = [l for l in self.sr["listeners"] if self.hcm(l)["stat_prefix"] == "stemedb_grpc"][0]
        self.assertEqual(self.hcm(grpc_listener)["codec_type"], "HTTP2")

    def test_watch_upgrades_to_websocket_without_a_timeout(self):
        http = [l for l in self.sr["listeners"] if l["name"] == "stemedb_http"][0]
        self.assertIn({"upgrade_type": "websocket"}, self.hcm(http)["upgrade_configs"])
        watch = [r for _, r in self.routes() if r["match"].get("path") == "/v1/watch"]
        self.assertEqual(len(watch), 1)
        self.assertEqual(watch[0]["route"]["timeout"], "0s")

    def test_types_durations_and_ports(self):
        for path, k, v in walk(self.doc):
            if k == "@type":
                self.assertIn(v, KNOWN_TYPES, path)
            if k in DURATION_KEYS and not isinstance(v, (dict, list)):
                self.assertRegex(str(v), DURATION, "%s/%s" % (path, k))
        ports = [l["address"]["socket_address"]["port_value"] for l in self.sr["listeners"]]
        ports.append(self.doc["admin"]["address"]["socket_address"]["port_value"])
        self.assertEqual(len(ports), len(set(ports)))

    def test_retries_never_repeat_a_request_that_reached_a_node(self):
        # A vote is not idempotent without a request_id: only retry what
        # never arrived, or a 503 (stopping/unhealthy node, nothing done).
        for _, r in self.routes():
            rp = r.get("route", {}).get("retry_policy")
            if rp:
                for cond in rp["retry_on"].split(","):
                    self.assertIn(cond, {"connect-failure", "refused-stream",
                                         "retriable-status-codes", "unavailable"})
                self.assertEqual(rp.get("retriable_status_codes", [503]), [503])


if __name__ == "__main__":
    unittest.main(verbosity=2)

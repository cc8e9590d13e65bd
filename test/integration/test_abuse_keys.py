"""Issue 13, "Fuzzing and abuse tests": every REST route and every gRPC
method probed with no key, a wrong key, a revoked key and an
under-privileged key, against a real stemedb-server (--auth required,
STEMEDB_ADMIN_KEY) with a gateway in front; plus header injection, a flood
above the rate limit, no lost acknowledged write and a clean SIGTERM exit
of both processes (under scripts/test.sh --sanitize that is ASan/LSan's
verdict too).

The REST routes are read from gateway/routes.c and the gRPC methods from
the proto descriptors, and each must have a sample request in ROUTES /
role in docs/security.md, so a new route or method cannot escape the
suite."""

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
import stmtest  # noqa: E402

import grpc  # noqa: E402

ADMIN = "stm_" + os.urandom(20).hex()
HASH0 = "0" * 64
RATE = "Query=40:40,*=5000:10000"  # the flood targets Query only

# (method, path) as in gateway/routes.c -> (request path with parameters,
# JSON body or None). Bodies are valid, so a refusal is the key's doing.
ROUTES = {
    ("GET", "/v1/health"): ("/v1/health", None),
    ("GET", "/v1/status"): ("/v1/status", None),
    ("POST", "/v1/assert"): ("/v1/assert", {"concept_path": "abuse/rest", "predicate": "p",
                                            "value": "v"}),
    ("POST", "/v1/assert/batch"): ("/v1/assert/batch", {"assertions": [
        {"concept_path": "abuse/rest", "predicate": "p", "value": "b"}]}),
    ("GET", "/v1/assertions/{hash}"): ("/v1/assertions/" + HASH0, None),
    ("POST", "/v1/query"): ("/v1/query", {"concept_path": "abuse/rest", "lens": "recency"}),
    ("POST", "/v1/votes"): ("/v1/votes", {"assertion_hash": HASH0, "voter_id": "x",
                                          "weight": 1}),
    ("POST", "/v1/epochs"): ("/v1/epochs", {"concept_path": "abuse/rest", "predicate": "p",
                                            "reason": "r"}),
    ("PUT", "/v1/sources/{id}"): ("/v1/sources/abuse-src", {"name": "n", "tier": 1}),
    ("GET", "/v1/sources/{id}"): ("/v1/sources/abuse-src", None),
    ("PUT", "/v1/sources"): ("/v1/sources", {"id": "abuse://src", "tier": 1}),
    ("GET", "/v1/source"): ("/v1/source?id=abuse-src", None),
    ("GET", "/v1/sources"): ("/v1/sources", None),
    ("GET", "/v1/trace/{hash}"): ("/v1/trace/" + HASH0, None),
    ("GET", "/v1/audit"): ("/v1/audit", None),
    ("GET", "/v1/concepts"): ("/v1/concepts", None),
    ("GET", "/v1/skeptic"): ("/v1/skeptic?concept_path=abuse/rest&predicate=p", None),
    ("GET", "/metrics"): ("/metrics", None),
    ("GET", "/cluster/members"): ("/cluster/members", None),
    ("GET", "/cluster/health"): ("/cluster/health", None),
    ("POST", "/cluster/sync"): ("/cluster/sync", {}),
    ("GET", "/cluster/shards"): ("/cluster/shards", None),
    ("POST", "/admin/shards/rebalance"): ("/admin/shards/rebalance", {"shard_id": "0",
                                                                      "target_node": "nobody"}),
    ("POST", "/admin/cluster/remove"): ("/admin/cluster/remove", {"node_id": "nobody"}),
}


def gateway_routes():
    """[(listener, method, pattern, full gRPC method)] from gateway/routes.c."""
    with open(os.path.join(stmtest.ROOT, "gateway", "routes.c")) as f:
        text = f.read()
    out = [("api", m, p, "/stemedb.v1.StemeDB/" + r) for m, p, r in re.findall(
        r'\{STM_GW_LISTENER_API,\s*STM_GW_(\w+),\s*"([^"]+)",\s*RPC\("(\w+)"\)', text)]
    out += [("cluster", m, p, "/stemedb.v1.Cluster/" + r) for m, p, r in re.findall(
        r'CLUSTER_ROUTE\(STM_GW_(\w+),\s*"([^"]+)",\s*"(\w+)"', text)]
    return out


def grpc_methods():
    """{full method path: (request class, server-streaming)} of every
    service in proto/ (from the generated descriptors)."""
    stmtest.stubs()
    d = stmtest._stubs_dir
    if not os.path.exists(os.path.join(d, "stemedb", "v1", "admin_pb2.py")):
        subprocess.run(["protoc", "-I", os.path.join(stmtest.ROOT, "proto"), "--python_out", d,
                        "stemedb/v1/admin.proto"], check=True)
    from stemedb.v1 import admin_pb2, cluster_pb2, stemedb_pb2
    from stmhealth.v1 import health_pb2
    from google.protobuf import message_factory
    out = {}
    for mod in (stemedb_pb2, admin_pb2, cluster_pb2, health_pb2):
        for svc in mod.DESCRIPTOR.services_by_name.values():
            for m in svc.methods:
                cls = message_factory.GetMessageClass(m.input_type) \
                    if hasattr(message_factory, "GetMessageClass") \
                    else message_factory.MessageFactory().GetPrototype(m.input_type)
                out["/%s/%s" % (svc.full_name, m.name)] = (cls, m.server_streaming)
    return out


def documented_roles():
    """{method path: role} from the role table of docs/security.md; methods
    it does not list need admin."""
    roles = {}
    with open(os.path.join(stmtest.ROOT, "docs", "security.md")) as f:
        for line in f:
            m = re.match(r"\| (\(none\)|`reader`|`writer`) \| (.*) \|$", line.strip())
            if not m:
                continue
            role = m.group(1).strip("`()")
            for name in re.findall(r"`([A-Za-z][A-Za-z0-9./*]*)`", m.group(2)):
                if name.startswith("grpc.health"):
                    roles["/grpc.health.v1.Health/*"] = role
                elif "/" in name:
                    svc, meth = name.split("/")
                    roles["/stemedb.v1.%s/%s" % (svc, meth)] = role
                else:
                    roles["/stemedb.v1.StemeDB/" + name] = role
    return roles


def role_of(path, roles):
    if path.startswith("/grpc.health.v1.Health/"):
        return roles.get("/grpc.health.v1.Health/*", "admin")
    return roles.get(path, "admin")


LOWER = {"writer": "reader", "admin": "writer"}


def http(base, method, path, body=None, key=None, headers=None):
    """(status, headers, body bytes)."""
    h = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    if key:
        h["X-API-Key"] = key
    rq = urllib.request.Request(base + path, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(rq, timeout=15) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def raw(port, data, timeout=5.0):
    """Send bytes, return the status code of the first response line."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        buf = b""
        while b"\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        line = buf.split(b"\r\n")[0].decode("latin-1")
        return int(line.split()[1]) if line.startswith("HTTP/1.1 ") else 0
    finally:
        s.close()


class AbuseKeysTest(stmtest.ServerTestCase, unittest.TestCase):
    server_args = ["--auth", "required", "--rate-limits", RATE]
    server_env = {"STEMEDB_ADMIN_KEY": ADMIN}
    with_gateway = True

    @classmethod
    def setUpClass(cls):
        cls.pb, cls.pb_grpc, cls.types, _, _ = stmtest.stubs()
        cls.methods = grpc_methods()
        from stemedb.v1 import admin_pb2
        cls.apb = admin_pb2
        super().setUpClass()
        cls.acked = []  # hashes of every write answered 2xx / OK
        cls.keys = {"admin": ADMIN}
        for role in ("reader", "writer", "admin", "revoked"):
            r = cls.unary("/stemedb.v1.Admin/CreateKey", cls.apb.CreateKeyRequest(
                role="writer" if role == "revoked" else role, name="abuse-" + role), ADMIN,
                cls.apb.CreateKeyResponse)
            cls.keys[role] = r.key
            if role == "revoked":
                cls.unary("/stemedb.v1.Admin/RevokeKey", cls.apb.RevokeKeyRequest(id=r.info.id),
                          ADMIN, cls.apb.RevokeKeyResponse)

    @classmethod
    def unary(cls, path, req, key, resp_cls):
        fn = cls.channel.unary_unary(path, request_serializer=lambda m: m.SerializeToString(),
                                     response_deserializer=resp_cls.FromString)
        return fn(req, timeout=15, metadata=[("authorization", "Bearer " + key)])

    def grpc_code(self, path, key):
        """Status code of one call with an empty request (the gate runs
        before the request is decoded or acted on)."""
        cls, streaming = self.methods[path]
        md = [("authorization", "Bearer " + key)] if key else []
        ser = lambda m: m.SerializeToString()  # noqa: E731
        try:
            if streaming:
                it = self.channel.unary_stream(path, request_serializer=ser)(
                    cls(), timeout=5, metadata=md)
                next(it)
                it.cancel()
            else:
                self.channel.unary_unary(path, request_serializer=ser)(cls(), timeout=15, metadata=md)
            return grpc.StatusCode.OK
        except grpc.RpcError as e:
            return e.code()

    # ---- coverage: no route or method may escape --------------------------

    def test_every_route_and_method_is_covered(self):
        routes = {(m, p) for _, m, p, _ in gateway_routes()}
        self.assertGreaterEqual(len(routes), 20)
        self.assertEqual(routes, set(ROUTES), "ROUTES must list exactly gateway/routes.c's routes")
        self.assertGreaterEqual(len(self.methods), 30)
        roles = documented_roles()
        for path in roles:
            if not path.endswith("/*"):
                self.assertIn(path, self.methods, "docs/security.md names an unknown method")

    # ---- gRPC ---------------------------------------------------------------

    def test_grpc_every_method_without_good_key(self):
        roles = documented_roles()
        for path in sorted(self.methods):
            role = role_of(path, roles)
            with self.subTest(method=path, role=role):
                if role == "none":
                    self.assertNotIn(self.grpc_code(path, None), (
                        grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED))
                    continue
                for key in (None, "stm_" + "0" * 40, "wrong", self.keys["revoked"]):
                    self.assertEqual(self.grpc_code(path, key), grpc.StatusCode.UNAUTHENTICATED,
                                     "key %r" % key)
                if role in LOWER:
                    self.assertEqual(self.grpc_code(path, self.keys[LOWER[role]]),
                                     grpc.StatusCode.PERMISSION_DENIED)
                if role != "admin" and not self.methods[path][1]:
                    # The right key passes the gate (the empty request may
                    # then be refused for what it says).
                    self.assertNotIn(self.grpc_code(path, self.keys[role]), (
                        grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED))

    # ---- REST -------------------------------------------------------------

    def rest(self, listener, method, pattern, key):
        path, body = ROUTES[(method, pattern)]
        base = self.gw.base if listener == "api" else "http://127.0.0.1:%d" % self.gw.cluster_port
        return http(base, method, path, body, key)

    def test_rest_every_route_without_good_key(self):
        roles = documented_roles()
        for listener, method, pattern, rpc in gateway_routes():
            role = role_of(rpc, roles)
            with self.subTest(route="%s %s" % (method, pattern), role=role):
                if role == "none":
                    code, _, body = self.rest(listener, method, pattern, None)
                    self.assertNotIn(code, (401, 403), body)
                    continue
                for key in (None, "stm_" + "0" * 40, "wrong", self.keys["revoked"]):
                    code, _, body = self.rest(listener, method, pattern, key)
                    self.assertEqual(code, 401, (key, body))
                    self.assertEqual(json.loads(body)["error"]["code"], "UNAUTHENTICATED")
                if role in LOWER:
                    code, _, body = self.rest(listener, method, pattern, self.keys[LOWER[role]])
                    self.assertEqual(code, 403, body)
                    self.assertIn("needs role " + role, json.loads(body)["error"]["message"])
                code, _, body = self.rest(listener, method, pattern, self.keys[role])
                self.assertNotIn(code, (401, 403), body)
                if (method, pattern) == ("POST", "/v1/assert") and code == 201:
                    self.acked.append(json.loads(body)["hash"])

    def ws_first_text(self, key):
        return stmtest.ws_first_text(self.gw.port, "abuse", key)

    def test_websocket_watch_without_good_key(self):
        """/v1/watch is a WebSocket, not in the route table: its Watch
        streams carry the upgrade's key."""
        for key in (None, "stm_" + "0" * 40, self.keys["revoked"]):
            with self.subTest(key=key):
                self.assertIn("UNAUTHENTICATED", self.ws_first_text(key))
        self.assertNotIn("UNAUTHENTICATED", self.ws_first_text(self.keys["reader"]))

    def test_health_and_metrics_stay_open(self):
        for path in ("/v1/health", "/metrics"):
            code, _, body = http(self.gw.base, "GET", path)
            self.assertEqual(code, 200, body)

    # ---- header injection -------------------------------------------------

    def test_header_injection_is_400(self):
        port = self.gw.port
        key = self.keys["reader"]
        cases = {
            "bare CR in a value": "GET /v1/concepts HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\rX-Agent-Id: evil\r\n\r\n" % key,
            "NUL in a value": "GET /v1/concepts HTTP/1.1\r\nHost: x\r\nX-Agent-Id: a\x00b\r\nX-API-Key: %s\r\n\r\n" % key,
            "duplicate Host": "GET /v1/concepts HTTP/1.1\r\nHost: x\r\nHost: y\r\nX-API-Key: %s\r\n\r\n" % key,
            "obs-fold continuation": "GET /v1/concepts HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\n X-Agent-Id: evil\r\n\r\n" % key,
        }
        for name, data in cases.items():
            with self.subTest(case=name):
                self.assertEqual(raw(port, data.encode("latin-1")), 400)
        ok = "GET /v1/concepts HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\n\r\n" % key
        self.assertEqual(raw(port, ok.encode()), 200)

    # ---- flood ---------------------------------------------------------------

    def test_flood_above_the_rate_limit_is_429_then_recovers(self):
        key = self.keys["reader"]
        path, body = ROUTES[("POST", "/v1/query")]
        # Writes go on meanwhile; each acknowledged one must survive.
        writer = threading.Thread(target=self.write_claims, args=("abuse/flood", 30))
        writer.start()
        codes, retry, t0 = [], None, time.monotonic()
        for _ in range(120):  # bounded: 120 requests, 20 s
            code, h, _ = http(self.gw.base, "POST", path, body, key, {"X-Agent-Id": "flood"})
            codes.append(code)
            if code == 429:
                retry = {k.lower(): v for k, v in h.items()}.get("retry-after")
            if codes.count(429) >= 5 or time.monotonic() - t0 > 20:
                break
        self.assertIn(200, codes)
        self.assertIn(429, codes, "120 queries never met --rate-limits %s" % RATE)
        self.assertTrue(set(codes) <= {200, 429}, codes)
        self.assertIsNotNone(retry)
        time.sleep(min(float(retry), 2.0))  # the bucket refills at 40/s
        deadline = time.monotonic() + 10
        while True:
            code, _, out = http(self.gw.base, "POST", path, body, key)
            if code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual(code, 200, out)
        writer.join(60)
        self.assertFalse(writer.is_alive())

    # ---- writes --------------------------------------------------------------

    def write_claims(self, prefix, n):
        ch = grpc.insecure_channel(self.server.addr)
        stub = self.pb_grpc.StemeDBStub(ch)
        md = [("authorization", "Bearer " + self.keys["writer"])]
        try:
            for i in range(n):
                r = stub.Assert(self.pb.AssertRequest(
                    concept_path="%s/%d" % (prefix, i), predicate="p",
                    value=self.types.Value(string_value="f%d" % i)), timeout=15, metadata=md)
                self.acked.append(r.hash)
        finally:
            ch.close()

    def test_writes_over_rest_and_grpc_are_acknowledged(self):
        for i in range(20):
            code, _, body = http(self.gw.base, "POST", "/v1/assert",
                                 {"concept_path": "abuse/w/%d" % i, "predicate": "p",
                                  "value": i}, self.keys["writer"])
            self.assertEqual(code, 201, body)
            self.acked.append(json.loads(body)["hash"])
            r = self.stub.Assert(self.pb.AssertRequest(
                concept_path="abuse/g/%d" % i, predicate="p",
                value=self.types.Value(string_value="g%d" % i)), timeout=15,
                metadata=[("authorization", "Bearer " + self.keys["admin"])])
            self.acked.append(r.hash)

    def assert_all_acked_read_back(self, stub):
        md = [("authorization", "Bearer " + self.keys["reader"])]
        for h in self.acked:
            a = stub.Get(self.pb.GetRequest(hash=h), timeout=15, metadata=md)
            self.assertEqual(a.hash, h)

    def test_zz_no_acknowledged_write_lost(self):
        """Runs last (unittest sorts by name): every write answered 2xx/OK
        reads back, before and after a SIGTERM + restart (which both
        processes must survive with exit 0); keys and the revocation too."""
        self.assertGreaterEqual(len(self.acked), 70)
        self.assert_all_acked_read_back(self.stub)
        cls = type(self)
        cls.channel.close()
        rc_gw = cls.gw.stop()
        cls.gw.cleanup()
        cls.gw = None
        self.assertEqual(rc_gw, 0, "gateway did not exit 0 on SIGTERM")
        self.assertEqual(cls.server.stop(), 0, "server did not exit 0 on SIGTERM")
        cls.server.start()
        cls.channel = grpc.insecure_channel(cls.server.addr)
        cls.stub = self.pb_grpc.StemeDBStub(cls.channel)
        self.assert_all_acked_read_back(cls.stub)
        self.assertEqual(self.grpc_code("/stemedb.v1.StemeDB/Query", self.keys["revoked"]),
                         grpc.StatusCode.UNAUTHENTICATED)

    @classmethod
    def tearDownClass(cls):
        """Both processes must exit 0 on SIGTERM (under the sanitizer build
        a leak or an error makes that non-zero)."""
        cls.channel.close()
        rc_gw = cls.gw.stop() if cls.gw else 0
        if cls.gw:
            cls.gw.cleanup()
        cls.gw = None
        rc = cls.server.stop()
        cls.server.cleanup()
        assert rc_gw == 0, "gateway did not exit 0 on SIGTERM: %s" % rc_gw
        assert rc == 0, "server did not exit 0 on SIGTERM: %s" % rc


if __name__ == "__main__":
    unittest.main(verbosity=2)

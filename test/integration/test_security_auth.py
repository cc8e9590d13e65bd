"""Issue 13: API keys and roles, enforced by the server for direct gRPC
clients and for the gateway's REST and WebSocket clients alike.

A real stemedb-server with --auth required and STEMEDB_ADMIN_KEY, keys
made with the real CLI (`stemedb keys create --json`), checked with Python
grpcio, curl and a raw WebSocket handshake; then a restart (keys are
durable, a revocation too) and the loud warning of auth off on a
non-loopback address."""

import base64
import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import stmtest  # noqa: E402

import grpc  # noqa: E402

ADMIN = "adm1n-" + base64.b32encode(os.urandom(10)).decode().lower()


def admin_stubs():
    """admin.proto stubs beside stmtest's (it generates only the others)."""
    stmtest.stubs()
    d = stmtest._stubs_dir
    if not os.path.exists(os.path.join(d, "stemedb", "v1", "admin_pb2.py")):
        plugin = "--plugin=protoc-gen-grpc_python=" + stmtest.shutil.which("grpc_python_plugin")
        subprocess.run(["protoc", "-I", os.path.join(stmtest.ROOT, "proto"),
                        "--python_out", d, "--grpc_python_out", d, plugin,
                        "stemedb/v1/admin.proto"], check=True)
    from stemedb.v1 import admin_pb2, admin_pb2_grpc
    return admin_pb2, admin_pb2_grpc


def cli(server, *args, key=None, env_key=None):
    return stmtest.cli(server.addr, "--json", *args, key=key, timeout=30,
                       env={"STEMEDB_API_KEY": env_key} if env_key else None)


def curl(url, *args):
    """(status, body) of one curl request."""
    p = subprocess.run(["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "10",
                        url] + list(args), capture_output=True, text=True, timeout=30)
    body, _, code = p.stdout.rpartition("\n")
    return int(code), body


class AuthTest(stmtest.ServerTestCase, unittest.TestCase):
    server_args = ["--auth", "required"]
    server_env = {"STEMEDB_ADMIN_KEY": ADMIN}
    with_gateway = True

    @classmethod
    def setUpClass(cls):
        cls.pb, cls.pb_grpc, cls.types, cls.hpb, cls.hpb_grpc = stmtest.stubs()
        cls.apb, cls.apb_grpc = admin_stubs()
        super().setUpClass()
        cls.admin = cls.apb_grpc.AdminStub(cls.channel)
        cls.keys = {}
        for role in ("reader", "writer", "admin"):
            rc, out, err = cli(cls.server, "keys", "create", "--role", role,
                               "--name", "test-" + role, key=ADMIN)
            assert rc == 0, err
            cls.keys[role] = json.loads(out)

    def md(self, role_or_key):
        k = self.keys[role_or_key]["key"] if role_or_key in self.keys else role_or_key
        return [("authorization", "Bearer " + k)]

    def assert_req(self, path="sec/a", value="v"):
        return self.pb.AssertRequest(concept_path=path, predicate="p",
                                     value=self.types.Value(string_value=value))

    def code_of(self, fn, *args, **kw):
        try:
            fn(*args, timeout=10, **kw)
            return grpc.StatusCode.OK
        except grpc.RpcError as e:
            return e.code()

    def test_create_prints_key_once_as_json(self):
        k = self.keys["reader"]
        self.assertEqual(set(k), {"id", "key", "role", "name"})
        self.assertEqual((k["role"], k["name"]), ("reader", "test-reader"))
        self.assertTrue(k["key"].startswith("stm_"))
        # Stored hashed: the secret is nowhere in the data directory.
        for root, _, files in os.walk(self.server.data_dir):
            for f in files:
                with open(os.path.join(root, f), "rb") as fh:
                    self.assertNotIn(k["key"].encode(), fh.read(), f)
        rc, out, _ = cli(self.server, "keys", "list", env_key=ADMIN)
        self.assertEqual(rc, 0)
        listed = json.loads(out)["keys"]
        self.assertIn(k["id"], [x["id"] for x in listed])
        self.assertNotIn(k["key"], out)

    def test_grpc_no_key_or_unknown_key_is_unauthenticated(self):
        q = self.pb.QueryRequest(concept_path="sec/a", lens="recency")
        self.assertEqual(self.code_of(self.stub.Query, q), grpc.StatusCode.UNAUTHENTICATED)
        self.assertEqual(self.code_of(self.stub.Query, q, metadata=self.md("stm_" + "0" * 40)),
                         grpc.StatusCode.UNAUTHENTICATED)
        self.assertEqual(self.code_of(self.stub.Query, q, metadata=[("authorization", "Basic eA==")]),
                         grpc.StatusCode.UNAUTHENTICATED)
        # Health and Status stay open for load balancers.
        h = self.hpb_grpc.HealthStub(self.channel).Check(self.hpb.HealthCheckRequest(), timeout=10)
        self.assertEqual(h.status, self.hpb.HealthCheckResponse.SERVING)
        self.stub.Status(self.pb.StatusRequest(), timeout=10)

    def test_roles(self):
        q = self.pb.QueryRequest(concept_path="sec/a", lens="recency")
        ok, denied = grpc.StatusCode.OK, grpc.StatusCode.PERMISSION_DENIED
        self.assertEqual(self.code_of(self.stub.Query, q, metadata=self.md("reader")), ok)
        self.assertEqual(self.code_of(self.stub.Assert, self.assert_req(), metadata=self.md("reader")), denied)
        self.assertEqual(self.code_of(self.stub.Assert, self.assert_req(), metadata=self.md("writer")), ok)
        self.assertEqual(self.code_of(self.admin.BackupBegin, self.apb.BackupBeginRequest(),
                                      metadata=self.md("writer")), denied)
        self.assertEqual(self.code_of(self.admin.ListKeys, self.apb.ListKeysRequest(),
                                      metadata=self.md("writer")), denied)
        self.assertEqual(self.code_of(self.admin.BackupBegin, self.apb.BackupBeginRequest(),
                                      metadata=self.md("admin")), ok)
        self.assertEqual(self.code_of(self.stub.Assert, self.assert_req(), metadata=self.md("admin")), ok)
        # The CLI meets the same rules.
        rc, out, err = cli(self.server, "keys", "list", key=self.keys["reader"]["key"])
        self.assertEqual(rc, 1)
        self.assertIn("PERMISSION_DENIED", out + err)
        rc, out, err = cli(self.server, "keys", "list")
        self.assertEqual(rc, 1)
        self.assertIn("UNAUTHENTICATED", out + err)

    def test_audit_names_the_key(self):
        w = self.keys["writer"]
        self.stub.Assert(self.assert_req("sec/audit", "x"), timeout=10,
                         metadata=self.md("writer") + [("x-stemedb-caller", "mallory")])
        r = self.stub.Audit(self.pb.AuditRequest(limit=1000), timeout=10, metadata=self.md("reader"))
        callers = [e.caller for e in r.entries if e.operation == "assert"]
        self.assertTrue(any(c.startswith("key:%s(%s)" % (w["id"], w["name"])) for c in callers), callers)
        self.assertFalse(any("mallory" in c for c in callers), callers)

    def test_rest_and_websocket(self):
        base = self.gw.base
        body = json.dumps({"concept_path": "sec/rest", "predicate": "p", "value": "v"})
        post = ["-X", "POST", "-H", "Content-Type: application/json", "-d", body]
        code, out = curl(base + "/v1/assert", *post)
        self.assertEqual(code, 401, out)
        self.assertEqual(json.loads(out)["error"]["code"], "UNAUTHENTICATED")
        code, out = curl(base + "/v1/assert", *post, "-H", "X-API-Key: " + self.keys["reader"]["key"])
        self.assertEqual(code, 403, out)
        code, out = curl(base + "/v1/assert", *post, "-H", "Authorization: Bearer " + self.keys["writer"]["key"])
        self.assertIn(code, (200, 201), out)
        q = ["-X", "POST", "-H", "Content-Type: application/json", "-d",
             json.dumps({"concept_path": "sec/rest", "lens": "recency"})]
        code, out = curl(base + "/v1/query", *q, "-H", "X-API-Key: " + self.keys["reader"]["key"])
        self.assertEqual(code, 200, out)
        code, out = curl(base + "/v1/query", *q, "-H", "X-API-Key: wrong")
        self.assertEqual(code, 401, out)
        self.assertEqual(curl(base + "/v1/health")[0], 200)
        self.assertEqual(curl(base + "/metrics")[0], 200)
        # WebSocket: the key on the upgrade is the Watch stream's key.
        self.assertIn("UNAUTHENTICATED", self.ws_first_text(None))
        self.assertNotIn("UNAUTHENTICATED", self.ws_first_text(self.keys["reader"]["key"]))

    def ws_first_text(self, key):
        return stmtest.ws_first_text(self.gw.port, "sec/", key)

    def test_zz_revoke_is_immediate_and_durable(self):
        srv = self.server
        k = self.keys["writer"]
        self.assertEqual(self.code_of(self.stub.Assert, self.assert_req(), metadata=self.md("writer")),
                         grpc.StatusCode.OK)
        rc, out, err = cli(srv, "keys", "revoke", k["id"], key=ADMIN)
        self.assertEqual(rc, 0, err)
        self.assertTrue(json.loads(out)["revoked"])
        self.assertEqual(self.code_of(self.stub.Assert, self.assert_req(), metadata=self.md("writer")),
                         grpc.StatusCode.UNAUTHENTICATED)
        # A restart keeps the keys and the revocation.
        self.assertEqual(srv.stop(), 0)
        srv.start()
        ch = grpc.insecure_channel(srv.addr)
        stub = self.pb_grpc.StemeDBStub(ch)
        q = self.pb.QueryRequest(concept_path="sec/a", lens="recency")
        self.assertEqual(self.code_of(stub.Query, q, metadata=self.md("reader")), grpc.StatusCode.OK)
        self.assertEqual(self.code_of(stub.Assert, self.assert_req(), metadata=self.md("writer")),
                         grpc.StatusCode.UNAUTHENTICATED)
        self.assertEqual(self.code_of(stub.Assert, self.assert_req(), metadata=self.md("admin")),
                         grpc.StatusCode.OK)
        ch.close()


class AuthOffTest(unittest.TestCase):
    def test_warns_on_non_loopback_and_bad_value_is_named(self):
        d = tempfile.mkdtemp(prefix="stm-sec-")
        port = stmtest.free_port()
        p = subprocess.Popen([stmtest.SERVER_BIN, "--data-dir", d, "--grpc-listen", "0.0.0.0:%d" % port,
                              "--node-id", "n1", "--listener-probe-ms", "0"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            line = ""
            for line in p.stdout:
                if "AUTH IS OFF" in line or "ready" in line:
                    break
            self.assertIn("AUTH IS OFF", line)
        finally:
            p.terminate()
            p.wait(20)
            p.stdout.close()
        r = subprocess.run([stmtest.SERVER_BIN, "--data-dir", d, "--auth", "maybe"],
                           capture_output=True, text=True, timeout=20)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--auth (STEMEDB_AUTH", r.stdout + r.stderr)
        stmtest.shutil.rmtree(d, ignore_errors=True)


class AuthOpenTest(stmtest.ServerTestCase, unittest.TestCase):
    """--auth-open health: gRPC health still answers without a key (load
    balancers, the orchestrator), while Status (/v1/health, /v1/status) and
    Metrics (/metrics) now need a reader key."""
    server_args = ["--auth", "required", "--auth-open", "health"]
    server_env = {"STEMEDB_ADMIN_KEY": ADMIN}
    with_gateway = True

    @classmethod
    def setUpClass(cls):
        cls.pb, cls.pb_grpc, cls.types, cls.hpb, cls.hpb_grpc = stmtest.stubs()
        super().setUpClass()
        rc, out, err = cli(cls.server, "keys", "create", "--role", "reader",
                           "--name", "open-test", key=ADMIN)
        assert rc == 0, err
        cls.reader = json.loads(out)["key"]

    def test_health_stays_open_status_and_metrics_need_a_key(self):
        health = self.hpb_grpc.HealthStub(self.channel)
        r = health.Check(self.hpb.HealthCheckRequest(service=""), timeout=10)
        self.assertEqual(r.status, self.hpb.HealthCheckResponse.SERVING)
        with self.assertRaises(grpc.RpcError) as ctx:
            self.stub.Status(self.pb.StatusRequest(), timeout=10)
        self.assertCode(ctx, grpc.StatusCode.UNAUTHENTICATED)
        self.stub.Status(self.pb.StatusRequest(), timeout=10,
                         metadata=[("authorization", "Bearer " + self.reader)])
        for path in ("/metrics", "/v1/health", "/v1/status"):
            self.assertEqual(curl(self.gw.base + path)[0], 401, path)
            self.assertEqual(curl(self.gw.base + path, "-H", "X-API-Key: " + self.reader)[0],
                             200, path)

    def test_an_unknown_name_is_refused_at_start_naming_the_flag(self):
        p = subprocess.run([stmtest.SERVER_BIN, "--auth-open", "health,everything"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("--auth-open", p.stderr)
        self.assertIn("everything", p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)

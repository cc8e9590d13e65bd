"""Issue 13: API keys are records in the WAL.

A real stemedb-server with --auth required: keys made with the real CLI
survive a kill -9 right after `keys create` / `keys revoke` answered, are
in a `stemedb backup` archive (a server restored from it, started WITHOUT
STEMEDB_ADMIN_KEY, accepts the key and still refuses the revoked one), a
keys.log of the previous version is imported once at start (then renamed
keys.log.imported, logged), and the Audit RPC names key operations without
ever showing a secret's hash."""

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import stmtest  # noqa: E402

import grpc  # noqa: E402

ADMIN = "adm1n-" + base64.b32encode(os.urandom(10)).decode().lower()


def cli(server, *args, key=ADMIN):
    return stmtest.cli(server.addr, "--json", *args, key=key)


class KeysInWalTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pb, cls.pb_grpc, _, _, _ = stmtest.stubs()

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="stm-keys-")
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.cleanup()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def server(self, data_dir=None, admin=True):
        s = stmtest.Server(data_dir=data_dir, extra_args=["--auth", "required"],
                           env={"STEMEDB_ADMIN_KEY": ADMIN} if admin else {"STEMEDB_ADMIN_KEY": ""})
        self.servers.append(s)
        return s.start()

    def create(self, srv, role, name):
        rc, out, err = cli(srv, "keys", "create", "--role", role, "--name", name)
        self.assertEqual(rc, 0, err)
        return json.loads(out)

    def revoke(self, srv, key_id):
        rc, out, err = cli(srv, "keys", "revoke", key_id)
        self.assertEqual(rc, 0, err)
        self.assertTrue(json.loads(out)["revoked"])

    def code(self, srv, key):
        """The status of a Query made with `key` (a reader's call)."""
        with grpc.insecure_channel(srv.addr) as ch:
            stub = self.pb_grpc.StemeDBStub(ch)
            try:
                stub.Query(self.pb.QueryRequest(concept_path="k/a", lens="recency"),
                           metadata=[("authorization", "Bearer " + key)], timeout=10)
                return grpc.StatusCode.OK
            except grpc.RpcError as e:
                return e.code()

    def test_kill9_after_create_and_revoke_keeps_both(self):
        srv = self.server()
        kept = self.create(srv, "reader", "kept")
        gone = self.create(srv, "reader", "gone")
        self.revoke(srv, gone["id"])
        self.assertEqual(self.code(srv, gone["key"]), grpc.StatusCode.UNAUTHENTICATED)
        srv.kill()
        self.assertFalse(os.path.exists(os.path.join(srv.data_dir, "keys.log")))
        srv.start()
        self.assertEqual(self.code(srv, kept["key"]), grpc.StatusCode.OK)
        self.assertEqual(self.code(srv, gone["key"]), grpc.StatusCode.UNAUTHENTICATED)
        rc, out, err = cli(srv, "keys", "list")
        self.assertEqual(rc, 0, err)
        listed = {k["id"]: k for k in json.loads(out)["keys"]}
        self.assertFalse(listed[kept["id"]].get("revoked", False))
        self.assertTrue(listed[gone["id"]]["revoked"])

    def test_backup_restore_carries_keys_and_revocations(self):
        srv = self.server()
        kept = self.create(srv, "writer", "kept")
        gone = self.create(srv, "writer", "gone")
        self.revoke(srv, gone["id"])
        archive = os.path.join(self.tmp, "b.stmbak")
        rc, out, err = cli(srv, "backup", "--out", archive)
        self.assertEqual(rc, 0, err)
        self.assertEqual(srv.stop(), 0)
        data = os.path.join(self.tmp, "restored")
        r = subprocess.run([stmtest.CLI_BIN, "restore", archive, "--data-dir", data],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        # No bootstrap key: only what the archive holds can authenticate.
        rs = self.server(data_dir=data, admin=False)
        self.assertEqual(self.code(rs, kept["key"]), grpc.StatusCode.OK)
        self.assertEqual(self.code(rs, gone["key"]), grpc.StatusCode.UNAUTHENTICATED)
        self.assertEqual(self.code(rs, ADMIN), grpc.StatusCode.UNAUTHENTICATED)
        # Audit names the key operations; no read shows a secret's hash.
        with grpc.insecure_channel(rs.addr) as ch:
            a = self.pb_grpc.StemeDBStub(ch).Audit(
                self.pb.AuditRequest(), metadata=[("authorization", "Bearer " + kept["key"])],
                timeout=10)
        ops = [(e.operation, e.detail) for e in a.entries]
        self.assertIn(("create_key", "api_key"), ops)
        self.assertIn(("revoke_key", "api_key_revoke"), ops)
        text = str(a)
        for k in (kept, gone):
            h = hashlib.blake2b(k["key"].encode(), digest_size=32).hexdigest()
            self.assertNotIn(h, text)
            self.assertNotIn(k["key"], text)

    def test_keys_log_of_the_previous_version_is_imported_once(self):
        data = os.path.join(self.tmp, "old")
        os.makedirs(data)
        live = "stm_" + os.urandom(20).hex()
        dead = "stm_" + os.urandom(20).hex()
        lines = []
        for kid, role, secret in (("a1a1a1a1a1a1", "writer", live), ("b2b2b2b2b2b2", "admin", dead)):
            h = hashlib.blake2b(secret.encode(), digest_size=32).hexdigest()
            lines.append("key %s %s %s 1700000000000000000 old-%s\n" % (kid, role, h, role))
        lines.append("revoke b2b2b2b2b2b2\n")
        with open(os.path.join(data, "keys.log"), "w") as f:
            f.writelines(lines)
        srv = self.server(data_dir=data)
        self.assertEqual(self.code(srv, live), grpc.StatusCode.OK)
        self.assertEqual(self.code(srv, dead), grpc.StatusCode.UNAUTHENTICATED)
        self.assertIn("imported 3 record(s)", srv.read_log())
        self.assertFalse(os.path.exists(os.path.join(data, "keys.log")))
        self.assertTrue(os.path.exists(os.path.join(data, "keys.log.imported")))
        rc, out, err = cli(srv, "keys", "list")
        self.assertEqual(rc, 0, err)
        listed = {k["id"]: k for k in json.loads(out)["keys"]}
        self.assertEqual(listed["a1a1a1a1a1a1"]["name"], "old-writer")
        self.assertEqual(listed["a1a1a1a1a1a1"]["role"], "writer")
        self.assertTrue(listed["b2b2b2b2b2b2"]["revoked"])
        # Once: a restart reads the WAL and imports nothing.
        self.assertEqual(srv.stop(), 0)
        srv.start()
        self.assertEqual(srv.read_log().count("imported 3 record(s)"), 1)
        self.assertEqual(self.code(srv, live), grpc.StatusCode.OK)
        self.assertEqual(self.code(srv, dead), grpc.StatusCode.UNAUTHENTICATED)

    def test_revocation_ends_open_watch_streams_of_the_key(self):
        """A Watch stream opened with a key stops at its revocation: no
        later event reaches it, it ends UNAUTHENTICATED naming the key;
        a stream of another key goes on."""
        srv = self.server()
        gone = self.create(srv, "reader", "watch-gone")
        kept = self.create(srv, "reader", "watch-kept")
        types = stmtest.stubs()[2]
        with grpc.insecure_channel(srv.addr) as ch:
            stub = self.pb_grpc.StemeDBStub(ch)

            def write(value):
                return stub.Assert(
                    self.pb.AssertRequest(concept_path="w/a", predicate="p",
                                          value=types.Value(string_value=value)),
                    metadata=[("authorization", "Bearer " + ADMIN)], timeout=10).sequence

            first = write("before")

            def claim(stream):  # the next claim event (skip progress)
                for e in stream:
                    if e.HasField("claim"):
                        return e.claim.value.string_value
                return None

            def watch(key):  # replays "before" first: the stream is open
                s = stub.Watch(self.pb.WatchRequest(concept_prefix="w", start_sequence=first),
                               metadata=[("authorization", "Bearer " + key)], timeout=60)
                self.assertEqual(claim(s), "before")
                return s

            sg, sk = watch(gone["key"]), watch(kept["key"])
            self.revoke(srv, gone["id"])
            write("after")
            self.assertEqual(claim(sk), "after")
            with self.assertRaises(grpc.RpcError) as ctx:
                self.fail("the stream of a revoked key got %r" % claim(sg))
            self.assertEqual(ctx.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
            self.assertIn(gone["id"], ctx.exception.details())
            sk.cancel()
    def test_point_in_time_restore_gives_the_keys_of_that_time(self):
        """restore --to-time T: keys made after T are unknown, revocations
        after T are undone, the keys live at T authenticate."""
        import time
        srv = self.server()
        early = self.create(srv, "reader", "early")
        cut = time.time_ns()  # after early's commit, before the rest
        late = self.create(srv, "reader", "late")
        self.revoke(srv, early["id"])
        self.assertEqual(self.code(srv, early["key"]), grpc.StatusCode.UNAUTHENTICATED)
        archive = os.path.join(self.tmp, "p.stmbak")
        rc, out, err = cli(srv, "backup", "--out", archive)
        self.assertEqual(rc, 0, err)
        self.assertEqual(srv.stop(), 0)
        data = os.path.join(self.tmp, "pitr")
        r = subprocess.run([stmtest.CLI_BIN, "restore", archive, "--data-dir", data,
                            "--to-time", str(cut)], capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        rs = self.server(data_dir=data)
        self.assertEqual(self.code(rs, early["key"]), grpc.StatusCode.OK)
        self.assertEqual(self.code(rs, late["key"]), grpc.StatusCode.UNAUTHENTICATED)
        rc, out, err = cli(rs, "keys", "list")
        self.assertEqual(rc, 0, err)
        listed = {k["id"]: k for k in json.loads(out)["keys"]}
        self.assertEqual(set(listed), {early["id"]})
        self.assertFalse(listed[early["id"]].get("revoked", False))

    def test_keys_log_import_interrupted_before_the_rename(self):
        """A crash after the imported records are in the WAL but before the
        rename (simulated: the file put back) imports nothing twice."""
        data = os.path.join(self.tmp, "crash")
        os.makedirs(data)
        live = "stm_" + os.urandom(20).hex()
        dead = "stm_" + os.urandom(20).hex()
        with open(os.path.join(data, "keys.log"), "w") as f:
            for kid, secret in (("c1c1c1c1c1c1", live), ("d2d2d2d2d2d2", dead)):
                h = hashlib.blake2b(secret.encode(), digest_size=32).hexdigest()
                f.write("key %s reader %s 1700000000000000000 n-%s\n" % (kid, h, kid))
            f.write("revoke d2d2d2d2d2d2\n")
        srv = self.server(data_dir=data)
        self.assertEqual(srv.stop(), 0)
        os.rename(os.path.join(data, "keys.log.imported"), os.path.join(data, "keys.log"))
        srv.start()
        self.assertIn("imported 0 record(s)", srv.read_log())
        self.assertEqual(self.code(srv, live), grpc.StatusCode.OK)
        self.assertEqual(self.code(srv, dead), grpc.StatusCode.UNAUTHENTICATED)
        rc, out, err = cli(srv, "keys", "list")
        self.assertEqual(rc, 0, err)
        ids = sorted(k["id"] for k in json.loads(out)["keys"])
        self.assertEqual(ids, ["c1c1c1c1c1c1", "d2d2d2d2d2d2"])


if __name__ == "__main__":
    unittest.main(verbosity=2)

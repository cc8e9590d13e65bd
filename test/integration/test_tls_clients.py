"""Issue 13: clients of a TLS server that are not the gateway.

- The CLI: `stemedb --server-ca ca.crt status` against a TLS server works;
  without --server-ca it fails (exit 1) saying a TLS server needs it; with
  another CA it fails naming the certificate check. Against an mTLS server
  with --auth required: `keys create` with --server-cert/--server-key and
  --api-key works, and without a client certificate it fails. assert,
  query, get, backup and bench go through the same channel.
- The listener self-probe dials a TLS listener with the node's own
  certificate: it works (logged), and still turns a listener that stopped
  accepting (file descriptors exhausted) into exit status 3.
"""

import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import stmtest  # noqa: E402
import tlscerts  # noqa: E402

ADMIN = "admin-tls-clients-0123456789"


def cli(server, *args, ca=None, client=None, key=None, env=None):
    return stmtest.cli(server.addr, *args, ca=ca, client=client, key=key, env=env)


class TlsClientsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = tempfile.mkdtemp(prefix="stm-tls-clients-")
        tlscerts.make_ca(cls.d, "ca")
        tlscerts.make_ca(cls.d, "ca2")
        cls.server_cert = tlscerts.make_cert(cls.d, "ca", "server")
        cls.client = tlscerts.make_cert(cls.d, "ca", "client", ips=(), dns=(), eku="clientAuth")
        cls.ca = os.path.join(cls.d, "ca.crt")
        cls.ca2 = os.path.join(cls.d, "ca2.crt")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.d, ignore_errors=True)

    def start(self, mtls=False, extra=(), env=None, preexec_fn=None):
        args = ["--tls-cert", self.server_cert[0], "--tls-key", self.server_cert[1]] + list(extra)
        if mtls:
            args += ["--tls-client-ca", self.ca]
        srv = stmtest.Server(extra_args=args, env=env, preexec_fn=preexec_fn).start(wait=False)
        self.addCleanup(srv.cleanup)
        client = self.client if mtls else None
        stmtest.wait_until(lambda: cli(srv, "status", ca=self.ca, client=client)[0] == 0 or
                           srv.proc.poll() is not None, 30, "TLS server readiness")
        self.assertIsNone(srv.proc.poll(), srv.read_log())
        return srv

    def test_cli_status_over_tls(self):
        srv = self.start()
        rc, out, err = cli(srv, "status", ca=self.ca)
        self.assertEqual(rc, 0, err)
        self.assertIn("status       healthy", out)
        # The environment works as the flag does.
        rc, out, err = cli(srv, "--json", "status", env={"STEMEDB_SERVER_CA": self.ca})
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out)["status"], "healthy")
        rc, out, err = cli(srv, "status")
        self.assertEqual(rc, 1)
        self.assertIn("cannot reach server", err)
        self.assertIn("needs --server-ca", err)
        rc, out, err = cli(srv, "status", ca=self.ca2)
        self.assertEqual(rc, 1)
        self.assertIn("certificate verify failed", err)
        # Files are checked before anything is sent.
        rc, out, err = cli(srv, "status", ca=os.path.join(self.d, "missing.crt"))
        self.assertEqual(rc, 2)
        self.assertIn("--server-ca", err)
        rc, out, err = cli(srv, "status", client=self.client)
        self.assertEqual(rc, 2)
        self.assertIn("need --server-ca", err)
        self.assertEqual(srv.stop(), 0)  # a sanitizer report makes it non-zero

    def test_cli_commands_against_mtls_with_auth(self):
        d = tempfile.mkdtemp(dir=self.d)
        srv = self.start(mtls=True, extra=["--auth", "required"], env={"STEMEDB_ADMIN_KEY": ADMIN})
        rc, out, err = cli(srv, "--json", "keys", "create", "--role", "writer", "--name", "w1",
                           ca=self.ca, client=self.client, key=ADMIN)
        self.assertEqual(rc, 0, err)
        writer = json.loads(out)["key"]
        # No client certificate: the handshake is refused.
        rc, out, err = cli(srv, "keys", "list", ca=self.ca, key=ADMIN)
        self.assertEqual(rc, 1)
        self.assertIn("cannot reach server", err)
        tls = {"ca": self.ca, "client": self.client}
        rc, out, err = cli(srv, "--json", "assert", "tls/cli", "p", "v", key=writer, **tls)
        self.assertEqual(rc, 0, err)
        h = json.loads(out)["hash"]
        rc, out, err = cli(srv, "--json", "get", h, key=writer, **tls)
        self.assertEqual(rc, 0, err)
        rc, out, err = cli(srv, "--json", "query", "tls/cli", key=writer, **tls)
        self.assertEqual(rc, 0, err)
        self.assertIn(h, out)
        rc, out, err = cli(srv, "keys", "list", key=ADMIN, **tls)
        self.assertEqual(rc, 0, err)
        self.assertIn("w1", out)
        rc, out, err = cli(srv, "backup", "--out", os.path.join(d, "b.tar.zst"), key=ADMIN, **tls)
        self.assertEqual(rc, 0, err)
        self.assertGreater(os.path.getsize(os.path.join(d, "b.tar.zst")), 0)
        rc, out, err = cli(srv, "--json", "bench", "assert", "--clients", "2", "--channels", "2",
                           "--duration", "30", "--max-ops", "50", key=writer, **tls)
        self.assertEqual(rc, 0, out + err)
        self.assertGreaterEqual(json.loads(out)["ok"], 50, out)
        self.assertEqual(srv.stop(), 0)

    def test_listener_probe_over_tls_still_detects_a_dead_listener(self):
        def low_limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200))
        srv = self.start(mtls=True, extra=["--listener-probe-ms", "200"], preexec_fn=low_limit)
        stmtest.wait_until(lambda: "listener probe over TLS to %s works" % srv.addr in srv.read_log(),
                           20, "the probe's first success")
        socks = []
        try:
            for _ in range(260):
                socks.append(socket.create_connection(("127.0.0.1", srv.port), timeout=5))
            stmtest.wait_until(lambda: "Too many open files" in srv.read_log(), 20,
                               "the server to hit EMFILE")
        finally:
            for s in socks:
                s.close()
        rc = srv.proc.wait(60)
        srv.proc = None
        srv.log.close()
        self.assertEqual(rc, 3, srv.read_log()[-3000:])
        self.assertIn("stopped accepting new connections", srv.read_log())


if __name__ == "__main__":
    unittest.main(verbosity=2)

"""Issue 13: TLS - the server serves gRPC over TLS (--tls-cert/--tls-key)
and refuses plaintext, requires client certificates with --tls-client-ca
(mTLS), reloads its certificates on SIGHUP without restarting, and the
gateway reaches it over TLS with --server-ca (+ --server-cert/--server-key
for mTLS). Certificates are made with openssl in the test's temp dir;
clients are Python grpcio, openssl s_client and curl through the gateway."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import stmtest  # noqa: E402
import tlscerts  # noqa: E402

import grpc  # noqa: E402


def make_ca(d, name):
    tlscerts.make_ca(d, name)


def make_cert(d, ca, name, server):
    """A server certificate for 127.0.0.1/localhost, or a client-only one."""
    if server:
        tlscerts.make_cert(d, ca, name)
    else:
        tlscerts.make_cert(d, ca, name, ips=(), dns=(), eku="clientAuth")


def read(d, f):
    with open(os.path.join(d, f), "rb") as fh:
        return fh.read()


class TlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pb, cls.pb_grpc, _, cls.hpb, cls.hpb_grpc = stmtest.stubs()
        cls.d = tempfile.mkdtemp(prefix="stm-tls-")
        make_ca(cls.d, "ca")
        make_ca(cls.d, "ca2")
        make_cert(cls.d, "ca", "server", True)
        make_cert(cls.d, "ca2", "server2", True)
        make_cert(cls.d, "ca", "client", False)
        make_cert(cls.d, "ca2", "stranger", False)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.d, ignore_errors=True)

    def p(self, f):
        return os.path.join(self.d, f)

    def start(self, mtls=False, cert="server"):
        # The server reads the files named here again on SIGHUP: give each
        # server its own copies.
        sd = tempfile.mkdtemp(prefix="stm-tls-srv-", dir=self.d)
        shutil.copy(self.p(cert + ".crt"), os.path.join(sd, "tls.crt"))
        shutil.copy(self.p(cert + ".key"), os.path.join(sd, "tls.key"))
        args = ["--tls-cert", os.path.join(sd, "tls.crt"), "--tls-key", os.path.join(sd, "tls.key")]
        if mtls:
            args += ["--tls-client-ca", self.p("ca.crt")]
        srv = stmtest.Server(extra_args=args).start(wait=False)
        srv.tls_dir = sd
        self.addCleanup(srv.cleanup)
        client = ("client.key", "client.crt") if mtls else None
        stmtest.wait_until(lambda: self.status(srv, "ca.crt", client) == grpc.StatusCode.OK or
                           srv.proc.poll() is not None, 30, "TLS server readiness")
        self.assertIsNone(srv.proc.poll(), srv.read_log())
        return srv

    def status(self, srv, ca, client=None):
        """The status code of Status over a fresh TLS channel."""
        creds = grpc.ssl_channel_credentials(
            root_certificates=read(self.d, ca),
            private_key=read(self.d, client[0]) if client else None,
            certificate_chain=read(self.d, client[1]) if client else None)
        opts = [("grpc.use_local_subchannel_pool", 1)]
        with grpc.secure_channel(srv.addr, creds, options=opts) as ch:
            try:
                self.pb_grpc.StemeDBStub(ch).Status(self.pb.StatusRequest(), timeout=10)
                return grpc.StatusCode.OK
            except grpc.RpcError as e:
                return e.code()

    def plaintext_status(self, srv):
        with grpc.insecure_channel(srv.addr, options=[("grpc.use_local_subchannel_pool", 1)]) as ch:
            try:
                self.pb_grpc.StemeDBStub(ch).Status(self.pb.StatusRequest(), timeout=10)
                return grpc.StatusCode.OK
            except grpc.RpcError as e:
                return e.code()

    def s_client(self, srv, *args):
        r = subprocess.run(["openssl", "s_client", "-connect", srv.addr, "-CAfile", self.p("ca.crt"),
                            "-verify_return_error"] + list(args),
                           input=b"", capture_output=True, timeout=30)
        return r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace")

    def test_tls_and_plaintext_refused(self):
        srv = self.start()
        self.assertEqual(self.status(srv, "ca.crt"), grpc.StatusCode.OK)
        self.assertEqual(self.plaintext_status(srv), grpc.StatusCode.UNAVAILABLE)
        self.assertEqual(self.status(srv, "ca2.crt"), grpc.StatusCode.UNAVAILABLE)  # wrong CA
        rc, out = self.s_client(srv, "-alpn", "h2")
        self.assertEqual(rc, 0, out)
        self.assertIn("CN = server", out)
        self.assertIn("Verify return code: 0 (ok)", out)
        self.assertEqual(srv.stop(), 0)

    def test_mtls_requires_a_client_certificate(self):
        srv = self.start(mtls=True)
        self.assertEqual(self.status(srv, "ca.crt", ("client.key", "client.crt")), grpc.StatusCode.OK)
        self.assertEqual(self.status(srv, "ca.crt"), grpc.StatusCode.UNAVAILABLE)
        self.assertEqual(self.status(srv, "ca.crt", ("stranger.key", "stranger.crt")),
                         grpc.StatusCode.UNAVAILABLE)
        self.assertEqual(self.plaintext_status(srv), grpc.StatusCode.UNAVAILABLE)
        self.assertEqual(srv.stop(), 0)

    def test_sighup_reloads_certificates(self):
        srv = self.start()
        self.assertEqual(self.status(srv, "ca.crt"), grpc.StatusCode.OK)
        shutil.copy(self.p("server2.crt"), os.path.join(srv.tls_dir, "tls.crt"))
        shutil.copy(self.p("server2.key"), os.path.join(srv.tls_dir, "tls.key"))
        srv.proc.send_signal(signal.SIGHUP)
        stmtest.wait_until(lambda: self.status(srv, "ca2.crt") == grpc.StatusCode.OK, 10,
                           "the reloaded certificate")
        self.assertEqual(self.status(srv, "ca.crt"), grpc.StatusCode.UNAVAILABLE)
        self.assertIsNone(srv.proc.poll())
        self.assertIn("TLS certificates reloaded", srv.read_log())
        # A broken file on SIGHUP keeps the old certificate.
        with open(os.path.join(srv.tls_dir, "tls.crt"), "w") as f:
            f.write("garbage")
        srv.proc.send_signal(signal.SIGHUP)
        stmtest.wait_until(lambda: "not reloaded" in srv.read_log() or
                           self.status(srv, "ca2.crt") != grpc.StatusCode.OK, 10, "the failed reload")
        self.assertEqual(self.status(srv, "ca2.crt"), grpc.StatusCode.OK)
        self.assertEqual(srv.stop(), 0)

    def gateway(self, srv, *args):
        gw = stmtest.Gateway(srv.addr)
        argv = [stmtest.GATEWAY_BIN, "--http-listen", "127.0.0.1:%d" % gw.port,
                "--cluster-listen", "127.0.0.1:%d" % gw.cluster_port, "--server", srv.addr] + list(args)
        gw.log = open(gw.log_path, "ab")
        gw.proc = subprocess.Popen(argv, stdout=gw.log, stderr=subprocess.STDOUT)
        self.addCleanup(gw.cleanup)
        return gw

    def query_via(self, gw, want_ok=True):
        """200 once the gateway answers it (want_ok), else the first status."""
        def attempt():
            r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
                                "-X", "POST", "-H", "Content-Type: application/json",
                                "-d", '{"concept_path":"tls/a","lens":"recency"}', gw.base + "/v1/query"],
                               capture_output=True, text=True, timeout=30)
            if r.stdout in ("", "000") or (want_ok and r.stdout != "200"):
                return None
            return r.stdout
        return stmtest.wait_until(attempt, 30, "the gateway")

    def test_gateway_reaches_server_over_tls(self):
        srv = self.start(mtls=True)
        gw = self.gateway(srv, "--server-ca", self.p("ca.crt"),
                          "--server-cert", self.p("client.crt"), "--server-key", self.p("client.key"))
        self.assertEqual(self.query_via(gw), "200")
        plain = self.gateway(srv)  # no TLS: the server refuses it
        self.assertNotEqual(self.query_via(plain, want_ok=False), "200")
        bad = subprocess.run([stmtest.GATEWAY_BIN, "--server-ca", self.p("nope.crt")],
                             capture_output=True, text=True, timeout=30)
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn("--server-ca", bad.stdout + bad.stderr)
        self.assertEqual(srv.stop(), 0)

    def test_bad_files_are_refused_naming_the_option(self):
        r = subprocess.run([stmtest.SERVER_BIN, "--data-dir", os.path.join(self.d, "x"),
                            "--grpc-listen", "127.0.0.1:0", "--tls-cert", self.p("ca.crt")],
                           capture_output=True, text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--tls-key", r.stdout + r.stderr)
        r = subprocess.run([stmtest.SERVER_BIN, "--data-dir", os.path.join(self.d, "y"),
                            "--grpc-listen", "127.0.0.1:0", "--tls-cert", self.p("missing.crt"),
                            "--tls-key", self.p("server.key")],
                           capture_output=True, text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--tls-cert", r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)

"""Issue 13: the gateway serves HTTPS and WSS on 18180/18181 with --tls-cert
/ --tls-key (gateway/tls_server.c), refuses plaintext there, reloads its
certificate on SIGHUP, closes TLS handshakes that never finish, keeps the
real client address behind TLS, and limits open connections per client
(--max-connections-per-client) with plaintext and TLS alike. Certificates
are made with openssl (the helpers of test_security_tls.py); clients are
curl, openssl s_client and Python's ssl module."""

import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import stmtest  # noqa: E402
from test_security_tls import make_ca, make_cert  # noqa: E402


class Gw:
    """A gateway process with the given extra arguments (TLS when tls_dir)."""

    def __init__(self, server_addr, args=(), tls_dir=None):
        self.port, self.cluster_port = stmtest.free_port(), stmtest.free_port()
        self.tls_dir = tls_dir
        argv = [stmtest.GATEWAY_BIN, "--http-listen", "127.0.0.1:%d" % self.port,
                "--cluster-listen", "127.0.0.1:%d" % self.cluster_port, "--server", server_addr,
                "--log-level", "debug"] + list(args)
        if tls_dir:
            argv += ["--tls-cert", os.path.join(tls_dir, "tls.crt"),
                     "--tls-key", os.path.join(tls_dir, "tls.key")]
        self.log_path = os.path.join(tempfile.gettempdir(), "stm-gwtls-%d.log" % self.port)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)
        stmtest.wait_until(lambda: self.proc.poll() is not None or "ready" in self.read_log(), 20,
                           "gateway readiness")
        assert self.proc.poll() is None, self.read_log()

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        rc = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(20)
        self.log.close()
        if rc != 0:
            sys.stderr.write("--- gateway exited %s; log:\n%s\n" % (rc, self.read_log()[-6000:]))
        os.unlink(self.log_path)
        return rc


def curl(url, *args):
    r = subprocess.run(["curl", "-sS", "--max-time", "10", "-w", "\n%{http_code}", url] + list(args),
                       capture_output=True, text=True, timeout=30)
    body, _, code = r.stdout.rpartition("\n")
    return r.returncode, int(code or 0), body, r.stderr


def recv_head(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
    return buf


def recv_all(s):
    """Everything until the peer closes."""
    buf = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return buf
            buf += chunk
    except ConnectionResetError:
        return buf


class GatewayTlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = tempfile.mkdtemp(prefix="stm-gwtls-")
        make_ca(cls.d, "ca")
        make_ca(cls.d, "ca2")
        make_cert(cls.d, "ca", "gw", True)
        make_cert(cls.d, "ca2", "gw2", True)
        cls.server = stmtest.Server(extra_args=["--rate-limits", "off", "--quota-per-hour", "0"]).start()
        cls.gw = cls.tls_gateway()

    @classmethod
    def tls_gateway(cls, args=()):
        td = tempfile.mkdtemp(prefix="gw-", dir=cls.d)
        shutil.copy(os.path.join(cls.d, "gw.crt"), os.path.join(td, "tls.crt"))
        shutil.copy(os.path.join(cls.d, "gw.key"), os.path.join(td, "tls.key"))
        return Gw(cls.server.addr, args, td)

    @classmethod
    def tearDownClass(cls):
        rc = cls.gw.stop()
        assert cls.server.stop() == 0
        cls.server.cleanup()
        shutil.rmtree(cls.d, ignore_errors=True)
        assert rc == 0, "the TLS gateway did not exit 0 on SIGTERM"

    def p(self, f):
        return os.path.join(self.d, f)

    def ctx(self, ca="ca.crt"):
        c = ssl.create_default_context(cafile=self.p(ca))
        return c

    def tls(self, port, ca="ca.crt", src=None):
        raw = socket.create_connection(("127.0.0.1", port), timeout=10,
                                       source_address=(src, 0) if src else None)
        return self.ctx(ca).wrap_socket(raw, server_hostname="127.0.0.1")

    def url(self, path, port=None):
        return "https://127.0.0.1:%d%s" % (port or self.gw.port, path)

    # ---- HTTPS ----------------------------------------------------------

    def test_https_health_write_and_read(self):
        rc, code, body, err = curl(self.url("/v1/health"), "--cacert", self.p("ca.crt"))
        self.assertEqual((rc, code), (0, 200), err)
        self.assertEqual(json.loads(body)["status"], "healthy")
        claim = {"concept_path": "gwtls/rest", "predicate": "p", "value": "over-https"}
        rc, code, body, err = curl(self.url("/v1/assert"), "--cacert", self.p("ca.crt"), "-X", "POST",
                                   "-H", "Content-Type: application/json", "-d", json.dumps(claim))
        self.assertIn(code, (200, 201), body + err)
        rc, code, body, err = curl(self.url("/v1/query"), "--cacert", self.p("ca.crt"), "-X", "POST",
                                   "-H", "Content-Type: application/json",
                                   "-d", json.dumps({"concept_path": "gwtls/rest", "lens": "recency"}))
        self.assertEqual(code, 200, body + err)
        self.assertIn("over-https", body)
        # The cluster listener speaks TLS too.
        rc, code, _, err = curl(self.url("/cluster/members", self.gw.cluster_port),
                                "--cacert", self.p("ca.crt"))
        self.assertEqual(rc, 0, err)
        self.assertNotEqual(code, 0)

    def test_plaintext_and_wrong_ca_are_refused(self):
        rc, code, body, err = curl("http://127.0.0.1:%d/v1/health" % self.gw.port)
        self.assertNotEqual(rc, 0)
        self.assertEqual(code, 0)
        self.assertNotIn("healthy", body)
        # Raw plaintext: the connection closes without any HTTP answer.
        with socket.create_connection(("127.0.0.1", self.gw.port), timeout=10) as s:
            s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                got = recv_head(s)
            except ConnectionResetError:
                got = b""
            self.assertNotIn(b"HTTP/1.1", got)
        rc, code, _, err = curl(self.url("/v1/health"), "--cacert", self.p("ca2.crt"))
        self.assertEqual(rc, 60, err)  # peer certificate cannot be authenticated
        r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.gw.port,
                            "-CAfile", self.p("ca.crt"), "-verify_return_error"],
                           input=b"", capture_output=True, timeout=30)
        self.assertIn(b"Verify return code: 0 (ok)", r.stdout)

    def test_pipelined_and_large_requests(self):
        with self.tls(self.gw.port) as s:
            req = b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n"
            s.sendall(req * 40)
            buf = b""
            deadline = time.monotonic() + 20
            while buf.count(b"HTTP/1.1 200 ") < 40 and time.monotonic() < deadline:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
            self.assertEqual(buf.count(b"HTTP/1.1 200 "), 40)
            # A body far larger than one TLS record or relay buffer.
            body = json.dumps({"concept_path": "gwtls/big", "lens": "recency", "pad": "x" * 300000}).encode()
            s.sendall(b"POST /v1/query HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(body) + body)
            head = recv_head(s)
            self.assertTrue(head.startswith(b"HTTP/1.1 "), head[:200])

    def half_closed_request(self, close_notify):
        """One request, then the client's half-close (close_notify and/or
        FIN) before reading: the answer it gets, until the gateway closes.
        A memory-BIO client, since SSLSocket cannot read after shutdown."""
        raw = socket.create_connection(("127.0.0.1", self.gw.port), timeout=10)
        inb, outb = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = self.ctx().wrap_bio(inb, outb, server_hostname="127.0.0.1")

        def flush():
            data = outb.read()
            if data:
                raw.sendall(data)
        try:
            while True:
                try:
                    obj.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    flush()
                    inb.write(raw.recv(65536))
            flush()
            obj.write(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
            if close_notify:
                try:
                    obj.unwrap()
                except ssl.SSLWantReadError:
                    pass
            flush()
            raw.shutdown(socket.SHUT_WR)
            got = b""
            while True:
                try:
                    chunk = obj.read(65536)
                    if not chunk:
                        return got
                    got += chunk
                    continue
                except ssl.SSLWantReadError:
                    pass
                except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                    return got
                chunk = raw.recv(65536)
                if not chunk:
                    return got
                inb.write(chunk)
        finally:
            raw.close()

    def test_a_half_closed_client_still_gets_its_answer(self):
        """lws closes a raw socket at EOF: the relay passes a client's
        half-close on only after the answer (it used to pass it with the
        request, and the client got nothing)."""
        for close_notify in (False, True):
            got = self.half_closed_request(close_notify)
            self.assertTrue(got.startswith(b"HTTP/1.1 200 "), (close_notify, got[:200]))
            self.assertIn(b"healthy", got)

    # ---- WSS ------------------------------------------------------------

    def test_wss_subscription_receives_a_change(self):
        s = self.tls(self.gw.port)
        try:
            s.sendall(b"GET /v1/watch?concept_prefix=gwtls/ws HTTP/1.1\r\nHost: x\r\n"
                      b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                      b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
            buf = recv_head(s)
            self.assertIn(b" 101 ", buf.split(b"\r\n")[0])
            buf = buf.split(b"\r\n\r\n", 1)[1]
            frames = []

            def text():
                nonlocal buf
                while True:
                    if len(buf) >= 2:
                        n, off = buf[1] & 0x7f, 2
                        if n == 126:
                            n, off = struct.unpack(">H", buf[2:4])[0], 4
                        elif n == 127:
                            n, off = struct.unpack(">Q", buf[2:10])[0], 10
                        if len(buf) >= off + n:
                            op, payload, buf = buf[0] & 0x0f, buf[off:off + n], buf[off + n:]
                            if op == 1:
                                return json.loads(payload)
                            continue
                    chunk = s.recv(65536)
                    if not chunk:
                        raise EOFError("closed")
                    buf += chunk
            frames.append(text())
            self.assertEqual(frames[0]["type"], "progress", frames)
            rc, code, body, err = curl(self.url("/v1/assert"), "--cacert", self.p("ca.crt"), "-X", "POST",
                                       "-H", "Content-Type: application/json",
                                       "-d", json.dumps({"concept_path": "gwtls/ws/a", "predicate": "p",
                                                         "value": "wss"}))
            self.assertIn(code, (200, 201), body + err)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                f = text()
                if f["type"] == "claim":
                    self.assertEqual(f["claim"]["concept_path"], "gwtls/ws/a")
                    self.assertEqual(f["claim"]["value"], "wss")
                    break
            else:
                self.fail("no change event over WSS")
        finally:
            s.close()

    # ---- certificates ---------------------------------------------------

    def fingerprint(self, port, ca):
        with self.tls(port, ca) as s:
            return hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest()

    def test_sighup_reloads_the_certificate(self):
        gw = self.tls_gateway()
        try:
            old = self.fingerprint(gw.port, "ca.crt")
            kept = self.tls(gw.port)  # a connection made with the old certificate
            shutil.copy(self.p("gw2.crt"), os.path.join(gw.tls_dir, "tls.crt"))
            shutil.copy(self.p("gw2.key"), os.path.join(gw.tls_dir, "tls.key"))
            gw.proc.send_signal(signal.SIGHUP)
            stmtest.wait_until(lambda: "TLS certificates reloaded" in gw.read_log(), 10, "the reload")
            new = self.fingerprint(gw.port, "ca2.crt")
            self.assertNotEqual(old, new)
            with open(self.p("gw2.crt")) as f:
                der = ssl.PEM_cert_to_DER_cert(f.read())
            self.assertEqual(new, hashlib.sha256(der).hexdigest())
            rc, _, _, _ = curl(self.url("/v1/health", gw.port), "--cacert", self.p("ca.crt"))
            self.assertEqual(rc, 60)  # the old CA no longer matches
            kept.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertTrue(recv_head(kept).startswith(b"HTTP/1.1 200 "))
            kept.close()
            # A broken certificate keeps the one in use, and the process.
            with open(os.path.join(gw.tls_dir, "tls.crt"), "w") as f:
                f.write("garbage")
            gw.proc.send_signal(signal.SIGHUP)
            stmtest.wait_until(lambda: "not reloaded" in gw.read_log(), 10, "the failed reload")
            self.assertEqual(self.fingerprint(gw.port, "ca2.crt"), new)
            self.assertIsNone(gw.proc.poll())
        finally:
            self.assertEqual(gw.stop(), 0)

    def test_bad_files_are_refused_naming_the_option(self):
        for args, name in ((["--tls-cert", self.p("missing.crt"), "--tls-key", self.p("gw.key")], "tls-cert"),
                           (["--tls-cert", self.p("gw.crt"), "--tls-key", self.p("gw2.key")], "tls-key"),
                           (["--tls-cert", self.p("gw.crt")], "tls-key")):
            r = subprocess.run([stmtest.GATEWAY_BIN, "--http-listen", "127.0.0.1:0", "--cluster-listen", "",
                                "--server", self.server.addr] + args,
                               capture_output=True, text=True, timeout=30)
            self.assertNotEqual(r.returncode, 0, args)
            self.assertIn(name, r.stdout + r.stderr)

    def test_the_server_sees_each_tls_clients_own_address(self):
        """Rate limits per client address: the gateway forwards the TLS
        client's address (not its own, not the socketpair's)."""
        srv = stmtest.Server(extra_args=["--rate-limits", "Query=0.01:2,*=1000:2000",
                                         "--trusted-proxies", "127.0.0.1"]).start()
        td = tempfile.mkdtemp(prefix="gw-", dir=self.d)
        shutil.copy(self.p("gw.crt"), os.path.join(td, "tls.crt"))
        shutil.copy(self.p("gw.key"), os.path.join(td, "tls.key"))
        gw = Gw(srv.addr, (), td)
        body = json.dumps({"concept_path": "gwtls/rl", "lens": "recency"}).encode()

        def query(src):
            with self.tls(gw.port, src=src) as s:
                s.sendall(b"POST /v1/query HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\n\r\n" % len(body) + body)
                return recv_head(s).split(b"\r\n")[0]
        try:
            lines = [query("127.0.0.1") for _ in range(4)]
            self.assertIn(b"HTTP/1.1 429 Too Many Requests", lines)
            self.assertTrue(query("127.0.0.2").startswith(b"HTTP/1.1 200 "))
        finally:
            self.assertEqual(gw.stop(), 0)
            self.assertEqual(srv.stop(), 0)
            srv.cleanup()

    # ---- abuse ----------------------------------------------------------

    def test_a_handshake_that_never_finishes_is_closed(self):
        gw = self.tls_gateway(["--http-request-timeout-s", "1"])
        try:
            socks = []
            for partial in (b"", b"\x16\x03\x01\x02\x00\x01"):  # nothing; half a ClientHello
                s = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
                s.sendall(partial)
                socks.append(s)
            t0 = time.monotonic()
            for s in socks:
                try:
                    self.assertEqual(s.recv(100), b"")
                except ConnectionResetError:
                    pass
                s.close()
            self.assertLess(time.monotonic() - t0, 8)
            self.assertIn("timed out", gw.read_log())
            # ... and the gateway still serves.
            self.assertEqual(curl(self.url("/v1/health", gw.port), "--cacert", self.p("ca.crt"))[1], 200)
        finally:
            self.assertEqual(gw.stop(), 0)

    def test_stalled_handshakes_cannot_hold_the_port(self):
        """More idle connections than handshakes may run at once (256): the
        oldest make room, so a real client is served at once, not after
        the 10 s handshake timeout."""
        gw = self.tls_gateway()
        idle = []
        try:
            for _ in range(300):
                idle.append(socket.create_connection(("127.0.0.1", gw.port), timeout=10))
            t0 = time.monotonic()
            rc, code, _, err = curl(self.url("/v1/health", gw.port), "--cacert", self.p("ca.crt"))
            self.assertEqual((rc, code), (0, 200), err)
            self.assertLess(time.monotonic() - t0, 8)  # well before the 10 s handshake timeout
            self.assertIn("dropping the oldest", gw.read_log())
        finally:
            for s in idle:
                s.close()
            self.assertEqual(gw.stop(), 0)

    def check_connection_limit(self, gw, connect):
        """With --max-connections-per-client 3: a 4th connection of
        127.0.0.1 gets 429 naming the limit; 127.0.0.2 is another client;
        a WebSocket counts; closing one makes room."""
        held = [connect("127.0.0.1") for _ in range(2)]
        ws = connect("127.0.0.1")
        ws.sendall(b"GET /v1/watch?concept_prefix=gwtls/limit HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                   b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   b"Sec-WebSocket-Version: 13\r\n\r\n")
        self.assertIn(b" 101 ", recv_head(ws))
        held.append(ws)
        for s in held[:2]:  # each of these is open and counted
            s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertIn(b" 200 ", recv_head(s))
        over = connect("127.0.0.1")
        answer = recv_all(over)  # unasked, then closed
        over.close()
        self.assertTrue(answer.startswith(b"HTTP/1.1 429 "), answer)
        body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
        self.assertEqual(body["error"]["code"], "RESOURCE_EXHAUSTED")
        self.assertIn("--max-connections-per-client", body["error"]["message"])
        other = connect("127.0.0.2")  # the real address is the identity
        other.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertIn(b" 200 ", recv_head(other))
        other.close()
        held.pop().close()  # the WebSocket

        def room():
            s = connect("127.0.0.1")
            s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
            ok = b" 200 " in recv_head(s)
            s.close()
            return ok
        stmtest.wait_until(room, 10, "room after a close")
        for s in held:
            s.close()

    def test_connection_limit_per_client_over_tls(self):
        gw = self.tls_gateway(["--max-connections-per-client", "3"])
        try:
            self.check_connection_limit(gw, lambda src: self.tls(gw.port, src=src))
        finally:
            self.assertEqual(gw.stop(), 0)

    def test_connection_limit_per_client_plaintext(self):
        gw = Gw(self.server.addr, ["--max-connections-per-client", "3"])
        try:
            self.check_connection_limit(gw, lambda src: socket.create_connection(
                ("127.0.0.1", gw.port), timeout=10, source_address=(src, 0)))
        finally:
            self.assertEqual(gw.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)

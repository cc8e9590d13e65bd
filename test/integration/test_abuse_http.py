"""Issue 10: the gateway probed as a hostile or careless HTTP / WebSocket
client would, with raw sockets so the exact bytes are checked. Each probe of
the issue is here (pipelined POST, Content-Length with Transfer-Encoding,
percent-decoding, protocol lapses, one WebSocket client starving others),
and so is what already held (slowloris, idle floods, oversize bodies and
frames, deep JSON, invalid UTF-8)."""

import base64
import json
import os
import resource
import socket
import struct
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stmtest  # noqa: E402

REQUEST_TIMEOUT_S = 2  # the gateway's --http-request-timeout-s here
WS_PER_SOCKET, WS_PER_CLIENT = 4, 6


def connect(port, src=None):
    return socket.create_connection(("127.0.0.1", port), timeout=5,
                                    source_address=(src, 0) if src else None)


def read_response(s, timeout=5.0, data=b""):
    """One HTTP response: (status line, headers dict, body bytes, bytes read
    past it), starting with bytes already read. Empty status line when the
    peer closed first."""
    s.settimeout(timeout)
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            return "", {}, b"", data
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, v = line.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    while len(rest) < n:
        chunk = s.recv(65536)
        if not chunk:
            break
        rest += chunk
    return lines[0], headers, rest[:n], rest[n:]


def closed_by_peer(s, timeout=5.0):
    """True when the peer closes (EOF or reset) within timeout."""
    s.settimeout(timeout)
    try:
        while True:
            if not s.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def raw(port, data, timeout=5.0):
    """Send bytes on a fresh connection; the first response and whether the
    connection was then closed."""
    with connect(port) as s:
        s.sendall(data)
        line, headers, body, _ = read_response(s, timeout)
        return line, headers, body, closed_by_peer(s, 2.0)


def req(method, path, body=None, headers=None, version="HTTP/1.1"):
    h = {"Host": "t"}
    h.update(headers or {})
    if body is not None:
        h.setdefault("Content-Type", "application/json")
        h["Content-Length"] = str(len(body))
    lines = ["%s %s %s" % (method, path, version)]
    lines += ["%s: %s" % kv for kv in h.items() if kv[1] is not None]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


class WS:
    """A minimal RFC 6455 client over a raw socket."""

    def __init__(self, port, path="/v1/watch", src=None):
        self.s = connect(port, src)
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall(("GET %s HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n" % (path, key)).encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.s.recv(4096)
            assert chunk, "closed during the handshake"
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101 "), head

    def send(self, payload, opcode=1):
        if isinstance(payload, str):
            payload = payload.encode()
        mask = os.urandom(4)
        n = len(payload)
        hdr = bytes([0x80 | opcode])
        if n < 126:
            hdr += bytes([0x80 | n])
        elif n < 65536:
            hdr += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            hdr += bytes([0x80 | 127]) + struct.pack(">Q", n)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.s.sendall(hdr + mask + body)

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk

    def frame(self, timeout=5.0):
        """(opcode, payload bytes); pings are answered and skipped."""
        self.s.settimeout(timeout)
        while True:
            self._need(2)
            op, n = self.buf[0] & 0x0F, self.buf[1] & 0x7F
            at = 2
            if n == 126:
                self._need(4)
                n, at = struct.unpack(">H", self.buf[2:4])[0], 4
            elif n == 127:
                self._need(10)
                n, at = struct.unpack(">Q", self.buf[2:10])[0], 10
            self._need(at + n)
            payload, self.buf = self.buf[at:at + n], self.buf[at + n:]
            if op == 9:
                self.send(payload, 10)
                continue
            return op, payload

    def subscribe(self, sid):
        """Subscribe and wait for the first frame of that id."""
        self.send(json.dumps({"op": "subscribe", "id": sid}))
        while True:
            op, p = self.frame()
            assert op == 1, (op, p)
            j = json.loads(p)
            if j.get("id") == sid:
                return j

    def close(self):
        self.s.close()


class AbuseHttpTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = stmtest.Server().start()
        os.environ.update({
            "STEMEDB_HTTP_REQUEST_TIMEOUT_S": str(REQUEST_TIMEOUT_S),
            "STEMEDB_WS_MAX_SUBS_PER_SOCKET": str(WS_PER_SOCKET),
            "STEMEDB_WS_MAX_SUBS_PER_CLIENT": str(WS_PER_CLIENT),
            # Thousands of connections come from 127.0.0.1 here; the
            # per-client limit has its own test (test_gateway_tls.py).
            "STEMEDB_MAX_CONNECTIONS_PER_CLIENT": "0"})
        cls.gw = stmtest.Gateway(cls.server.addr).start()
        cls.port = cls.gw.port

    @classmethod
    def tearDownClass(cls):
        rc = cls.gw.stop()
        cls.gw.cleanup()
        cls.server.stop()
        cls.server.cleanup()
        assert rc == 0, "gateway did not exit 0 on SIGTERM: %s" % rc

    def assertJsonError(self, line, headers, body, status, field=None):
        self.assertTrue(line.startswith("HTTP/1.1 %d " % status), line)
        self.assertEqual(headers.get("content-type"), "application/json", headers)
        err = json.loads(body)["error"]
        if field is not None:
            self.assertEqual(err.get("field"), field, err)
        self.assertTrue(err["message"])
        return err

    def assertAlive(self):
        line, _, body, _ = raw(self.port, req("GET", "/v1/health"))
        self.assertEqual(line, "HTTP/1.1 200 OK", body)

    def claim(self, n):
        body = json.dumps({"concept_path": "abuse/c%d" % n, "predicate": "p",
                           "value": n}).encode()
        line, _, out, _ = raw(self.port, req("POST", "/v1/assert", body))
        self.assertEqual(line, "HTTP/1.1 201 Created", out)  # item 8: reason
        return json.loads(out)["hash"]

    # ---- item 2 ---------------------------------------------------------

    def test_pipelined_post_is_answered_before_what_follows(self):
        h = self.claim(1)
        vote = json.dumps({"assertion_hash": h, "voter_id": "pipelined",
                           "weight": 1}).encode()
        with connect(self.port) as s:
            s.sendall(req("POST", "/v1/votes", vote) + req("GET", "/v1/health"))
            first, _, body1, rest = read_response(s)
            self.assertTrue(first.startswith("HTTP/1.1 20"), (first, body1))
            self.assertEqual(len(json.loads(body1)["hash"]), 64)
            second, _, body2, _ = read_response(s, data=rest)
            self.assertEqual(second, "HTTP/1.1 200 OK", body2)
            self.assertIn(b"healthy", body2)

    def test_half_closed_client_still_gets_its_answer(self):
        """A client that sends its request and then shuts down its sending
        side (a FIN: nc -N, some HTTP/1.0 tools) gets the whole answer:
        the gateway stops reading while it answers (lws closes a raw socket
        the moment it reads EOF). Without that, most of these were lost."""
        for i in range(20):
            if i % 2:
                data = req("GET", "/v1/health", version="HTTP/1.0")
            else:
                data = req("POST", "/v1/assert", json.dumps(
                    {"concept_path": "halfclose/c", "predicate": "p",
                     "value": "v%d" % i}).encode())
            with connect(self.port) as s:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
                s.settimeout(10)
                got = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    got += chunk
            self.assertRegex(got.split(b"\r\n", 1)[0], rb"^HTTP/1\.[01] 20[01] ",
                             "request %d after a half-close: %r" % (i, got[:200]))
            self.assertTrue(got.rstrip().endswith(b"}"), got[-200:])

    # ---- item 6 ---------------------------------------------------------

    def test_content_length_with_transfer_encoding_is_refused_and_closed(self):
        data = (b"POST /v1/query HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                b"GET /v1/health HTTP/1.1\r\nHost: t\r\n\r\n")
        line, headers, body, closed = raw(self.port, data)
        self.assertJsonError(line, headers, body, 400, "Transfer-Encoding")
        self.assertEqual(headers.get("connection"), "close")
        self.assertTrue(closed)

    # ---- item 7 ---------------------------------------------------------

    def test_percent_escapes_are_decoded_once_and_control_characters_refused(self):
        cases = [("/v1/audit?limit=1%0a&after_sequence=zz", "limit"),
                 ("/v1/sources/%00", "path"),
                 ("/v1/source?id=%00", "id"),
                 ("/v1/source?id=a%0d%0aX-Injected:%201", "id"),
                 ("/v1/sources/%zz", "path"),
                 ("/v1/source?id=%4", "id")]
        for path, field in cases:
            with self.subTest(path=path):
                line, headers, body, _ = raw(self.port, req("GET", path))
                self.assertJsonError(line, headers, body, 400, field)
        # A source id with '/' travels in the path, encoded, and is decoded
        # exactly once: "%2541" stays "%41".
        for sid in ("fda://abuse/x", "odd%41"):
            enc = "".join(c if c.isalnum() else "%%%02X" % ord(c) for c in sid)
            body = json.dumps({"name": "n", "tier": 1, "trust": 0.5}).encode()
            line, _, out, _ = raw(self.port, req("PUT", "/v1/sources/" + enc, body))
            self.assertTrue(line.startswith("HTTP/1.1 20"), (line, out))
            line, _, out, _ = raw(self.port, req("GET", "/v1/sources/" + enc))
            self.assertEqual(line, "HTTP/1.1 200 OK", out)
            self.assertEqual(json.loads(out)["id"], sid)

    # ---- item 8 ---------------------------------------------------------

    def test_protocol_lapses_get_json_errors(self):
        cases = [
            (req("GET", "/v1/health", version="HTTP/9.9"), 505, None),
            (b"GET /v1/health HTTP/1.1\r\n\r\n", 400, "Host"),
            (b"\x01\x02garbage\r\n\r\n", 400, None),
            (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", 400, None),
            (req("TRACE", "/v1/health"), 405, None),
            (req("GET", "/v1/sources/%zz"), 400, "path"),
            (b"GET /v1/health HTTP/1.1\r\nHost: t\r\n folded\r\n\r\n", 400, None),
        ]
        for data, status, field in cases:
            with self.subTest(data=data[:40]):
                line, headers, body, _ = raw(self.port, data)
                self.assertNotIn(b"<html", body)
                self.assertJsonError(line, headers, body, status, field)
        line, headers, _, _ = raw(self.port, req("TRACE", "/v1/health"))
        self.assertEqual(headers.get("allow"), "GET, HEAD")

    def test_status_lines_have_reason_phrases(self):
        out = subprocess.run(["curl", "-s", "-i", "-X", "DELETE", self.gw.base + "/v1/health"],
                             capture_output=True, check=True).stdout
        self.assertTrue(out.startswith(b"HTTP/1.1 405 Method Not Allowed\r\n"), out[:80])
        out = subprocess.run(["curl", "-s", "-i", self.gw.base + "/nope"],
                             capture_output=True, check=True).stdout
        self.assertTrue(out.startswith(b"HTTP/1.1 404 Not Found\r\n"), out[:80])

    def test_http_1_0_keeps_alive_only_when_asked(self):
        line, headers, _, closed = raw(self.port, req("GET", "/v1/health", version="HTTP/1.0"))
        self.assertEqual((line, headers.get("connection"), closed),
                         ("HTTP/1.1 200 OK", "close", True))
        with connect(self.port) as s:
            s.sendall(req("GET", "/v1/health", None, {"Connection": "keep-alive"},
                          version="HTTP/1.0"))
            line, headers, _, _ = read_response(s)
            self.assertEqual(headers.get("connection"), "keep-alive")
            s.sendall(req("GET", "/v1/health", version="HTTP/1.0"))
            self.assertEqual(read_response(s)[0], "HTTP/1.1 200 OK")

    def test_websocket_handshake_needs_version_13(self):
        data = (b"GET /v1/watch HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 99\r\n\r\n")
        line, headers, body, closed = raw(self.port, data)
        self.assertJsonError(line, headers, body, 426, "Sec-WebSocket-Version")
        self.assertEqual(headers.get("sec-websocket-version"), "13")
        self.assertTrue(closed)

    def test_unreachable_server_answers_503_without_its_address(self):
        dead = "127.0.0.1:%d" % stmtest.free_port()
        gw = stmtest.Gateway(dead).start()
        try:
            for path in ("/v1/health", "/v1/status"):
                line, headers, body, _ = raw(gw.port, req("GET", path))
                self.assertTrue(line.startswith("HTTP/1.1 503 "), line)
                self.assertNotIn(b"127.0.0.1", body)
                self.assertNotIn(dead.split(":")[1].encode(), body)
        finally:
            gw.stop()
            gw.cleanup()

    # ---- item 5 ---------------------------------------------------------

    def test_websocket_subscriptions_are_limited_per_socket_and_client(self):
        a, b = WS(self.port), WS(self.port)
        other = WS(self.port, src="127.0.0.2")
        try:
            for i in range(WS_PER_SOCKET):
                self.assertEqual(a.subscribe("a%d" % i)["type"], "progress")
            j = a.subscribe("a-over")
            self.assertEqual((j["type"], j["code"]), ("error", "RESOURCE_EXHAUSTED"))
            self.assertIn("--ws-max-subs-per-socket", j["message"])
            for i in range(WS_PER_CLIENT - WS_PER_SOCKET):
                self.assertEqual(b.subscribe("b%d" % i)["type"], "progress")
            j = b.subscribe("b-over")
            self.assertEqual(j["code"], "RESOURCE_EXHAUSTED")
            self.assertIn("--ws-max-subs-per-client", j["message"])
            # Another client is not affected by the first one's use.
            for i in range(WS_PER_SOCKET):
                self.assertEqual(other.subscribe("o%d" % i)["type"], "progress")
            # Closing a socket gives its subscriptions back.
            a.close()
            stmtest.wait_until(lambda: b.subscribe("b-again%d" % time.monotonic_ns())["type"]
                               == "progress", 10, "subscriptions freed by a closed socket")
        finally:
            for w in (a, b, other):
                w.close()

    # ---- issue 11: one set of rules -----------------------------------

    def test_rest_and_grpc_refuse_a_bad_value_with_the_same_message(self):
        import grpc
        pb, pb_grpc, types_pb, _, _ = stmtest.stubs()
        cases = [({"concept_path": "a//b", "predicate": "p", "value": 1}, "concept_path"),
                 ({"concept_path": "a", "predicate": "", "value": 1}, "predicate"),
                 ({"concept_path": "a", "predicate": "p", "value": 1, "confidence": 2}, "confidence")]
        with grpc.insecure_channel(self.server.addr) as ch:
            stub = pb_grpc.StemeDBStub(ch)
            for body, field in cases:
                with self.subTest(field=field):
                    line, headers, out, _ = raw(self.port, req("POST", "/v1/assert",
                                                               json.dumps(body).encode()))
                    err = self.assertJsonError(line, headers, out, 400, field)
                    r = pb.AssertRequest(concept_path=body["concept_path"],
                                         predicate=body["predicate"],
                                         value=types_pb.Value(number_value=1))
                    if "confidence" in body:
                        r.confidence = body["confidence"]
                    with self.assertRaises(grpc.RpcError) as ctx:
                        stub.Assert(r, timeout=5)
                    self.assertEqual(ctx.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
                    self.assertEqual(err["message"], ctx.exception.details())

    # ---- what already held ----------------------------------------------

    def test_slowloris_is_closed_after_the_request_timeout(self):
        with connect(self.port) as s:
            t0 = time.monotonic()
            s.sendall(b"GET /v1/health HTTP/1.1\r\n")
            closed = False
            for _ in range(REQUEST_TIMEOUT_S * 4 + 8):
                try:
                    s.sendall(b"X-A: b\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                    break
                s.settimeout(0.5)
                try:
                    if s.recv(1024) == b"":
                        closed = True
                        break
                except socket.timeout:
                    pass
                except ConnectionResetError:
                    closed = True
                    break
            self.assertTrue(closed)
            self.assertLess(time.monotonic() - t0, REQUEST_TIMEOUT_S + 4)
        self.assertAlive()

    def test_idle_connections_are_reaped(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        n = min(2000, hard - 100)
        if soft < n + 100:
            resource.setrlimit(resource.RLIMIT_NOFILE, (n + 100, hard))
        with open("/proc/%d/limits" % self.gw.proc.pid) as f:
            gw_limit = int(f.read().split("Max open files")[1].split()[0])
        n = min(n, gw_limit - 100)
        socks = []
        try:
            for _ in range(n):
                socks.append(connect(self.port))
            t0 = time.monotonic()
            self.assertAlive()  # served while they idle
            deadline = t0 + REQUEST_TIMEOUT_S + 10
            for s in socks:
                self.assertTrue(closed_by_peer(s, max(0.1, deadline - time.monotonic())))
            self.assertLess(time.monotonic() - t0, REQUEST_TIMEOUT_S + 10)
        finally:
            for s in socks:
                s.close()
        print("idle connections reaped: %d" % n, file=sys.stderr)
        self.assertAlive()

    def test_oversize_body_is_refused_from_its_headers(self):
        data = req("POST", "/v1/assert", None,
                   {"Content-Type": "application/json", "Content-Length": "2000000"}) + b"{"
        line, headers, body, closed = raw(self.port, data)
        self.assertJsonError(line, headers, body, 413)
        self.assertTrue(closed)
        big = b"X" * 20000
        line, headers, body, _ = raw(self.port, req("GET", "/v1/health", None, {"X-Big": big.decode()}))
        self.assertJsonError(line, headers, body, 431)

    def test_oversize_websocket_message_closes_with_1009(self):
        w = WS(self.port)
        try:
            w.send("x" * 70000)
            op, payload = w.frame()
            self.assertEqual(op, 8)
            self.assertEqual(struct.unpack(">H", payload[:2])[0], 1009)
        finally:
            w.close()

    def test_deep_json_and_invalid_utf8_are_400(self):
        deep = b"[" * 100000 + b"]" * 100000
        line, headers, body, _ = raw(self.port, req("POST", "/v1/assert", deep))
        self.assertJsonError(line, headers, body, 400)
        bad = b'{"concept_path":"a\xff","predicate":"p","value":1}'
        line, headers, body, _ = raw(self.port, req("POST", "/v1/assert", bad))
        self.assertJsonError(line, headers, body, 400)
        self.assertAlive()


if __name__ == "__main__":
    unittest.main(verbosity=2)

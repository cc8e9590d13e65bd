"""deploy/nginx/nginx.conf in front of two real nodes (issue 14).

The shipped config, with only its addresses, ports and file paths pointed at
this machine (two server + gateway pairs on free loopback ports, a
self-signed certificate), passes `nginx -t` and then serves:
- REST over TLS while one gateway is stopped mid-test: every request keeps
  succeeding (passive checks: connection errors go to the other node);
- GETs while one node's server is down and its gateway answers 503
  (`proxy_next_upstream ... http_503`);
- the /v1/watch WebSocket upgrade with an event delivered through it;
- gRPC over TLS on the grpc_pass port.
Debian's nginx 1.22 (`apt-get install nginx`)."""

import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
import stmtest  # noqa: E402

CONF = os.path.join(stmtest.ROOT, "deploy", "nginx", "nginx.conf")
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)


def local_conf(text, work, http_ports, grpc_ports, p80, p443, p8443):
    """The shipped config pointed at this machine: the upstreams' three
    nodes become our two, listeners move to free loopback ports, TLS files,
    pid and logs go to `work`."""
    text = text.replace("user www-data;\n", "")
    for i, (h, g) in enumerate(zip(http_ports, grpc_ports)):
        text = text.replace("10.0.1.5%d:18180" % (i + 1), "127.0.0.1:%d" % h)
        text = text.replace("10.0.1.5%d:18182" % (i + 1), "127.0.0.1:%d" % g)
    text = re.sub(r"\n\s*server 10\.0\.1\.53:\d+[^\n]*", "", text)  # node3: none here
    assert "10.0.1." not in text, "an upstream address was not replaced"
    text = text.replace("listen 80;", "listen 127.0.0.1:%d;" % p80)
    text = text.replace("listen 443 ssl http2;", "listen 127.0.0.1:%d ssl http2;" % p443)
    text = text.replace("listen 8443 ssl http2;", "listen 127.0.0.1:%d ssl http2;" % p8443)
    text = text.replace("/etc/nginx/tls/", work + "/")
    text = text.replace("/run/nginx.pid", work + "/nginx.pid")
    text = text.replace("/var/log/nginx/", work + "/")
    # Temporary files of proxied bodies: Debian's default needs root.
    text = text.replace("http {\n", "http {\n    client_body_temp_path %s/body;\n"
                        "    proxy_temp_path %s/proxy;\n" % (work, work), 1)
    return text


def self_signed(cert_path, key_path):
    """A certificate for localhost/127.0.0.1 (python3-cryptography)."""
    import datetime
    import ipaddress
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))


class NginxTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if NGINX is None:  # a failure, not a skip: CI must run this
            raise RuntimeError("nginx missing: apt-get install nginx (scripts/deps.sh)")
        cls.work = tempfile.mkdtemp(prefix="stm-ops-nginx-")
        self_signed(cls.work + "/stemedb.crt", cls.work + "/stemedb.key")
        cls.servers, cls.gateways = [], []
        for _ in range(2):
            s = stmtest.Server().start()
            cls.servers.append(s)
            cls.gateways.append(stmtest.Gateway(s.addr).start())
        cls.p80, cls.p443, cls.p8443 = stmtest.free_port(), stmtest.free_port(), stmtest.free_port()
        with open(CONF) as f:
            text = local_conf(f.read(), cls.work, [g.port for g in cls.gateways],
                              [s.port for s in cls.servers], cls.p80, cls.p443, cls.p8443)
        cls.conf = cls.work + "/nginx.conf"
        with open(cls.conf, "w") as f:
            f.write(text)
        cls.nginx = None
        cls.ctx = ssl.create_default_context(cafile=cls.work + "/stemedb.crt")
        cls.base = "https://127.0.0.1:%d" % cls.p443

    @classmethod
    def tearDownClass(cls):
        if cls.nginx is not None:
            cls.nginx.terminate()
            cls.nginx.wait(20)
        for g in cls.gateways:
            g.cleanup()
        for s in cls.servers:
            s.cleanup()
        shutil.rmtree(cls.work, ignore_errors=True)

    def start_nginx(self):
        if NginxTest.nginx is not None:
            return
        t = subprocess.run([NGINX, "-t", "-c", self.conf], capture_output=True, text=True, timeout=30)
        self.assertEqual(t.returncode, 0, t.stderr)
        NginxTest.nginx = subprocess.Popen([NGINX, "-c", self.conf, "-g", "daemon off;"],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def up():
            if self.nginx.poll() is not None:
                raise RuntimeError("nginx exited: " + self.nginx.stderr.read().decode())
            try:
                return self.request("GET", "/v1/health")[0] == 200
            except OSError:
                return False
        stmtest.wait_until(up, 20, "nginx readiness")

    def request(self, method, path, body=None):
        req = urllib.request.Request(self.base + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10, context=self.ctx) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def gateway_requests(self, g):
        """Requests a gateway answered, from its own /metrics."""
        with urllib.request.urlopen(g.base + "/metrics", timeout=10) as r:
            text = r.read().decode()
        return sum(float(v) for v in re.findall(
            r'^stemedb_gateway_http_requests_total\{route="/v1/health"[^}]*\} (\S+)$', text, re.M))

    def wait_in_rotation(self):
        """Poll (bounded) until each node has answered a health check sent
        through nginx with 200: a node nginx took out (fail_timeout) or
        whose server restarted is back in rotation."""
        for i, g in enumerate(self.gateways):
            start = self.gateway_requests(g)

            def served():
                code, _ = self.request("GET", "/v1/health")
                self.assertEqual(code, 200)
                if self.gateway_requests(g) > start:
                    return True
                time.sleep(0.2)  # nginx retries a failed node after fail_timeout
                return False
            stmtest.wait_until(served, 30, "node %d back in nginx's rotation" % (i + 1))

    def test_1_shipped_config_passes_nginx_t(self):
        # nginx -t runs on the shipped file with only the substitutions of
        # local_conf (addresses, listen ports, file paths).
        with open(CONF) as f:
            text = f.read()
        self.assertIn("proxy_next_upstream error timeout http_502 http_503;", text)
        self.assertRegex(text, r"server 10\.0\.1\.51:18180 max_fails=\d+ fail_timeout=\d+s;")
        self.assertNotRegex(text, r"(?m)^\s*check ", "the third-party check directive is not stock nginx")
        self.start_nginx()

    def test_2_requests_keep_succeeding_when_a_gateway_stops(self):
        self.start_nginx()
        before = [self.gateway_requests(g) for g in self.gateways]
        for _ in range(20):
            self.assertEqual(self.request("GET", "/v1/health")[0], 200)
        after = [self.gateway_requests(g) for g in self.gateways]
        self.assertTrue(all(a - b >= 5 for a, b in zip(after, before)),
                        "round-robin reaches both nodes: %s -> %s" % (before, after))
        codes, stopped_at = [], None
        deadline = time.monotonic() + 60
        for i in range(300):
            if i == 100:  # mid-test: stop node 1's gateway
                self.assertEqual(self.gateways[0].stop(signal.SIGTERM), 0)
                stopped_at = i
            if i % 3 == 0:
                code, _ = self.request("POST", "/v1/assert", {"concept_path": "ops/nginx", "predicate": "n", "value": i})
            elif i % 3 == 1:
                code, _ = self.request("POST", "/v1/query", {"concept_path": "ops/nginx", "lens": "recency"})
            else:
                code, _ = self.request("GET", "/v1/health")
            codes.append(code)
            self.assertLess(time.monotonic(), deadline)
        self.assertEqual(stopped_at, 100)
        failed = [(i, c) for i, c in enumerate(codes) if c not in (200, 201)]
        self.assertEqual(failed, [], "every request succeeds through the stop")
        # Every write went to node 2 after the stop; node 1 has at most the
        # first ~34.
        g2 = self.gateways[1]
        with urllib.request.urlopen(urllib.request.Request(
                g2.base + "/v1/query", data=json.dumps({"concept_path": "ops/nginx", "predicate": "n"}).encode(),
                headers={"Content-Type": "application/json"}), timeout=10) as r:
            self.assertEqual(json.loads(r.read())["results"][0]["value"], 297)
        self.gateways[0].start()
        self.wait_in_rotation()  # a restarted node comes back

    def test_3_gets_skip_a_node_whose_server_is_down(self):
        self.start_nginx()
        self.wait_in_rotation()
        # Node 2's server stops; its gateway answers 503, nginx retries the
        # GET on node 1.
        rc = self.servers[1].stop()
        self.assertEqual(rc, 0)
        try:
            for _ in range(40):
                code, body = self.request("GET", "/v1/health")
                self.assertEqual(code, 200, body)
        finally:
            self.servers[1].start()
        self.wait_in_rotation()

    def test_4_watch_websocket_upgrade(self):
        self.start_nginx()
        raw = socket.create_connection(("127.0.0.1", self.p443), timeout=10)
        s = self.ctx.wrap_socket(raw, server_hostname="localhost")
        try:
            s.sendall(b"GET /v1/watch?concept_prefix=ops/ws HTTP/1.1\r\nHost: localhost\r\n"
                      b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                      b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = s.recv(4096)
                self.assertTrue(chunk, "connection closed during the handshake")
                head += chunk
            self.assertTrue(head.startswith(b"HTTP/1.1 101"), head)
            self.assertIn(b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", head)
            # An event arrives through nginx on the socket. The two test
            # nodes are not a cluster, so the claim goes to both directly.
            for g in self.gateways:
                req = urllib.request.Request(g.base + "/v1/assert", headers={"Content-Type": "application/json"},
                                             data=json.dumps({"concept_path": "ops/ws", "predicate": "p",
                                                              "value": "through-nginx"}).encode())
                with urllib.request.urlopen(req, timeout=10) as r:
                    self.assertEqual(r.status, 201)
            got = head.split(b"\r\n\r\n", 1)[1]
            deadline = time.monotonic() + 10
            while b"through-nginx" not in got and time.monotonic() < deadline:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
            self.assertIn(b"through-nginx", got)
        finally:
            s.close()

    def test_5_grpc_over_tls(self):
        import grpc
        self.start_nginx()
        pb, pb_grpc, _, _, _ = stmtest.stubs()
        with open(self.work + "/stemedb.crt", "rb") as f:
            creds = grpc.ssl_channel_credentials(root_certificates=f.read())
        with grpc.secure_channel("localhost:%d" % self.p8443, creds) as ch:
            r = pb_grpc.StemeDBStub(ch).Status(pb.StatusRequest(), timeout=10)
            self.assertTrue(r.version)

    def test_6_http_redirects_to_https(self):
        self.start_nginx()
        conn = socket.create_connection(("127.0.0.1", self.p80), timeout=10)
        conn.sendall(b"GET /v1/health HTTP/1.1\r\nHost: stemedb.example.com\r\nConnection: close\r\n\r\n")
        head = conn.recv(4096)
        conn.close()
        self.assertTrue(head.startswith(b"HTTP/1.1 301"), head)
        self.assertIn(b"Location: https://stemedb.example.com/v1/health", head)


if __name__ == "__main__":
    unittest.main(verbosity=2)

"""Shared helpers for StemeDB integration tests: free loopback ports, real
server and gateway processes with readiness checks (never sleeps), and
Python gRPC stubs generated from proto/ at test time."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import faulthandler

# A hung test must fail with every thread's stack, not hang CI: dump and
# exit after STM_TEST_WATCHDOG_S seconds (default 280, under CTest's 300).
faulthandler.dump_traceback_later(int(os.environ.get("STM_TEST_WATCHDOG_S", "280")), exit=True)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("STM_BUILD_DIR", os.path.join(ROOT, "build"))
SERVER_BIN = os.environ.get("STM_SERVER_BIN", os.path.join(BUILD, "service", "stemedb-server"))
# The server built with test hooks (STM_TEST_HOOKS); used when a test sets
# a STEMEDB_TEST_* variable, which the shipped server ignores.
SERVER_HOOKS_BIN = os.environ.get("STM_SERVER_HOOKS_BIN",
                                  os.path.join(BUILD, "service", "stemedb-server-test-hooks"))
GATEWAY_BIN = os.environ.get("STM_GATEWAY_BIN", os.path.join(BUILD, "gateway", "stemedb-gateway"))
CLI_BIN = os.environ.get("STM_CLI_BIN", os.path.join(BUILD, "cli", "stemedb"))

_stubs_dir = None


def stubs():
    """Generate *_pb2.py and *_pb2_grpc.py for proto/ once per process, with
    protoc (protobuf-compiler) and grpc_python_plugin (protobuf-compiler-grpc)."""
    global _stubs_dir
    if _stubs_dir is None:
        _stubs_dir = tempfile.mkdtemp(prefix="stm-pystubs-")
        protos = ["stemedb/v1/types.proto", "stemedb/v1/stemedb.proto",
                  "stemedb/v1/cluster.proto"]
        # The health proto is copied under another directory: a Python
        # package named "grpc" would shadow grpcio itself. The wire names
        # (package grpc.health.v1) are unchanged.
        hdir = os.path.join(_stubs_dir, "src", "stmhealth", "v1")
        os.makedirs(hdir)
        shutil.copy(os.path.join(ROOT, "proto", "grpc", "health", "v1", "health.proto"), hdir)
        plugin = "--plugin=protoc-gen-grpc_python=" + shutil.which("grpc_python_plugin")
        subprocess.run(
            ["protoc", "-I", os.path.join(ROOT, "proto"), "-I", os.path.join(_stubs_dir, "src"),
             "--python_out", _stubs_dir, "--grpc_python_out", _stubs_dir, plugin]
            + protos + ["stmhealth/v1/health.proto"], check=True)
        sys.path.insert(0, _stubs_dir)
    import grpc  # noqa: F401
    from stemedb.v1 import stemedb_pb2, stemedb_pb2_grpc, types_pb2
    from stmhealth.v1 import health_pb2, health_pb2_grpc
    return stemedb_pb2, stemedb_pb2_grpc, types_pb2, health_pb2, health_pb2_grpc


# Options for a channel that is used while its server stops and restarts.
# gRPC C core 1.51 (Debian's python3-grpcio) has a client-side bug in its
# retry filter: a call that the stopping server refuses on an old connection
# (GOAWAY sent, stream never seen by the application) is transparently
# retried, and when that retry's connection attempt is refused (the
# listener is already closed) the call gets its UNAVAILABLE status but its
# RECV_INITIAL_METADATA / RECV_MESSAGE batches never complete. The Python
# iterator of a server stream waits for those, so it blocks forever, past
# its deadline (the deadline timer is gone once the status is in). The old
# connection is reused by a *new* channel because subchannels are shared
# process-wide, e.g. while another channel (a writer's) keeps it open.
# Without transparent retries the refused call simply fails with
# UNAVAILABLE, and a local subchannel pool makes every new channel a new
# connection. (Reproduced: 17-20 of 100 Watch calls started during a
# SIGTERM hung with the defaults, 0 of 100 with either option.)
RESTART_SAFE_CHANNEL_OPTIONS = [
    ("grpc.enable_retries", 0),
    ("grpc.use_local_subchannel_pool", 1),
]


def restart_safe_channel(addr):
    """An insecure channel to addr that is safe to use across restarts of
    the server (see RESTART_SAFE_CHANNEL_OPTIONS)."""
    import grpc
    return grpc.insecure_channel(addr, options=RESTART_SAFE_CHANNEL_OPTIONS)


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout=20.0, what="condition"):
    """Poll pred() until it returns a truthy value or timeout passes."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
    raise TimeoutError("timed out waiting for " + what)


class Server:
    """A real stemedb-server process on a free loopback port."""

    def __init__(self, data_dir=None, extra_args=(), env=None, preexec_fn=None):
        self.preexec_fn = preexec_fn  # runs in the child before exec (rlimits)
        self.own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="stm-data-")
        self.port = free_port()
        self.addr = "127.0.0.1:%d" % self.port
        self.extra_args = list(extra_args)
        self.env = env
        self.proc = None
        self.log_path = os.path.join(tempfile.gettempdir(), "stm-server-%d.log" % self.port)

    def start(self, wait=True):
        self.log = open(self.log_path, "ab")
        env = dict(os.environ)
        env.update(self.env or {})
        hooks = any(k.startswith("STEMEDB_TEST_") for k in (self.env or {}))
        self.proc = subprocess.Popen(
            [SERVER_HOOKS_BIN if hooks else SERVER_BIN, "--data-dir", self.data_dir, "--grpc-listen", self.addr,
             "--node-id", "test-node"] + self.extra_args,
            stdout=self.log, stderr=subprocess.STDOUT, env=env,
            preexec_fn=self.preexec_fn)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=30.0):
        import grpc
        _, _, _, health_pb2, health_pb2_grpc = stubs()

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError("server exited with %s; log:\n%s" % (self.proc.returncode, self.read_log()))
            try:
                with grpc.insecure_channel(self.addr) as ch:
                    r = health_pb2_grpc.HealthStub(ch).Check(
                        health_pb2.HealthCheckRequest(service=""), timeout=0.5)
                    return r.status == health_pb2.HealthCheckResponse.SERVING
            except grpc.RpcError:
                return False
        wait_until(ready, timeout, "server readiness on " + self.addr)

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=30.0):
        if self.proc is None:
            return None
        died = self.proc.poll() is not None
        if not died:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout)
        self.proc = None
        self.log.close()
        if died or (rc != 0 and sig != signal.SIGKILL):
            # A crash (or a sanitizer report) is in the log, which cleanup
            # deletes: show its tail now, where CI keeps it.
            sys.stderr.write("--- stemedb-server on %s %s with status %s; its log ends:\n%s\n"
                             % (self.addr, "had died" if died else "exited", rc,
                                self.read_log()[-6000:]))
        return rc

    def kill(self):
        return self.stop(signal.SIGKILL)

    def cleanup(self):
        if self.proc is not None:
            self.kill()
        if self.own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        try:
            os.unlink(self.log_path)
        except OSError:
            pass


def cli(server_addr, *args, key=None, ca=None, client=None, env=None, timeout=60):
    """Run the stemedb CLI against server_addr: (returncode, stdout, stderr).
    key: --api-key; ca: --server-ca; client: (cert, key) for mTLS; env:
    variables to set, after the STEMEDB_API_KEY / STEMEDB_SERVER_* of this
    process are cleared so only what the test says applies."""
    e = dict(os.environ)
    for k in ("STEMEDB_API_KEY", "STEMEDB_SERVER_CA", "STEMEDB_SERVER_CERT", "STEMEDB_SERVER_KEY"):
        e.pop(k, None)
    e.update(env or {})
    argv = [CLI_BIN, "--server", server_addr]
    if ca:
        argv += ["--server-ca", ca]
    if client:
        argv += ["--server-cert", client[0], "--server-key", client[1]]
    if key:
        argv += ["--api-key", key]
    p = subprocess.run(argv + list(args), capture_output=True, text=True, env=e, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def curl_head(url, *args, max_time=10):
    """(status, {lowercase header: value}) of one curl request, its body
    discarded; (0, {}) when nothing answered."""
    p = subprocess.run(["curl", "-s", "-D", "-", "-o", "/dev/null", "--max-time", str(max_time), url]
                       + list(args), capture_output=True, text=True, timeout=30)
    lines = [x.rstrip("\r") for x in p.stdout.split("\n")]
    if not lines[0]:
        return 0, {}
    hdrs = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), hdrs


def ws_first_text(port, prefix, key=None, wait_s=3.0):
    """Open the gateway's /v1/watch?concept_prefix=PREFIX WebSocket (with
    X-API-Key when given) and return its first text frame, or '' when none
    comes within wait_s. Raises AssertionError if the upgrade is not 101."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        hdr = ("GET /v1/watch?concept_prefix=%s HTTP/1.1\r\nHost: x\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Sec-WebSocket-Version: 13\r\n" % prefix)
        if key:
            hdr += "X-API-Key: %s\r\n" % key
        s.sendall((hdr + "\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                return ""
            buf += chunk
        status = buf.split(b"\r\n")[0]
        assert b" 101 " in status, status
        buf = buf.split(b"\r\n\r\n", 1)[1]
        s.settimeout(wait_s)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            while len(buf) >= 2:  # server frames are unmasked
                n, off = buf[1] & 0x7f, 2
                if n == 126:
                    n, off = int.from_bytes(buf[2:4], "big"), 4
                if len(buf) < off + n:
                    break
                op, payload, buf = buf[0] & 0x0f, buf[off:off + n], buf[off + n:]
                if op == 1:
                    return payload.decode()
            try:
                more = s.recv(65536)
            except socket.timeout:
                return ""
            if not more:
                return ""
            buf += more
        return ""
    finally:
        s.close()


class Gateway:
    """A real stemedb-gateway process in front of a server address."""

    def __init__(self, server_addr):
        self.port = free_port()
        self.cluster_port = free_port()
        self.server_addr = server_addr
        self.base = "http://127.0.0.1:%d" % self.port
        self.proc = None
        self.log_path = os.path.join(tempfile.gettempdir(), "stm-gateway-%d.log" % self.port)

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [GATEWAY_BIN, "--http-listen", "127.0.0.1:%d" % self.port,
             "--cluster-listen", "127.0.0.1:%d" % self.cluster_port,
             "--server", self.server_addr],
            stdout=self.log, stderr=subprocess.STDOUT)

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError("gateway exited with %s" % self.proc.returncode)
            try:
                urllib.request.urlopen(self.base + "/v1/health", timeout=1).read()
                return True
            except urllib.error.HTTPError:
                return True  # it answers (503 means the server is not ready)
            except OSError:
                return False
        wait_until(ready, 20, "gateway readiness")
        return self

    def stop(self, sig=signal.SIGTERM):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(20)
        self.proc = None
        self.log.close()
        if rc != 0 and sig == signal.SIGTERM:
            with open(self.log_path, "rb") as f:
                tail = f.read()[-4000:].decode("utf-8", "replace")
            print("--- stemedb-gateway exited with %s on SIGTERM; its log ends:\n%s"
                  % (rc, tail), file=sys.stderr)
        return rc

    def cleanup(self):
        if self.proc is not None:
            self.stop(signal.SIGKILL)
        try:
            os.unlink(self.log_path)
        except OSError:
            pass


class ServerTestCase:
    """Mixin for unittest.TestCase classes that share one real server:
    starts it with a channel and StemeDB stub, checks it exits 0 on SIGTERM,
    and offers assertCode for gRPC errors."""

    server_args = ()
    server_env = None  # extra environment of the server
    with_gateway = False  # also start a gateway in front of it (cls.gw)

    @classmethod
    def setUpClass(cls):
        import grpc
        _, pb_grpc, _, _, _ = stubs()
        cls.server = Server(extra_args=cls.server_args,
                            env=cls.server_env).start()
        cls.gw = Gateway(cls.server.addr).start() if cls.with_gateway else None
        cls.channel = grpc.insecure_channel(cls.server.addr)
        cls.stub = pb_grpc.StemeDBStub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        if cls.gw:
            cls.gw.stop()
            cls.gw.cleanup()
        rc = cls.server.stop()
        cls.server.cleanup()
        assert rc == 0, "server did not exit 0 on SIGTERM: %s" % rc

    def assertCode(self, ctx, code, field=None):
        self.assertEqual(ctx.exception.code(), code, ctx.exception.details())
        if field:
            self.assertIn(field, ctx.exception.details())

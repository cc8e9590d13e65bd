#!/usr/bin/python3
"""HTTPS vs plain HTTP through the gateway, side by side in one run: one
server, two gateways (one plaintext, one with --tls-cert/--tls-key from a
throwaway openssl CA), the same requests against each. Reports requests/s
and the gateway's CPU per request (utime+stime from /proc, which a shared
machine disturbs less than wall time), and the ratio TLS / plaintext.

    scripts/build.sh && bench/gateway_tls.py [REQUESTS_PER_THREAD] [THREADS]

Loopback only; every loop is bounded by its count and a 120 s deadline."""

import http.client
import json
import os
import ssl
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "test", "integration"))
import stmtest  # noqa: E402
import tlscerts  # noqa: E402
from test_gateway_tls import Gw  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
THREADS = int(sys.argv[2]) if len(sys.argv) > 2 else 4
DEADLINE_S = 120
CLK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def connect(port, ctx):
    if ctx:
        return http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    return http.client.HTTPConnection("127.0.0.1", port, timeout=10)


def run(gw, ctx, method, path, body, per_conn):
    """THREADS clients, N requests each; a new connection every per_conn
    requests (1: a handshake per request). Returns (req/s, CPU us/req)."""
    done = [0] * THREADS
    stop_at = time.monotonic() + DEADLINE_S

    def client(i):
        conn = None
        for k in range(N):
            if time.monotonic() > stop_at:
                break
            if conn is None or k % per_conn == 0:
                if conn:
                    conn.close()
                conn = connect(gw.port, ctx)
            data = body(ctx is not None, i, k) if body else None
            conn.request(method, path, body=data,
                         headers={"Content-Type": "application/json"} if body else {})
            r = conn.getresponse()
            r.read()
            if r.status >= 300:
                raise RuntimeError("%s %s: %d" % (method, path, r.status))
            done[i] += 1
        conn.close()

    c0, t0 = cpu_s(gw.proc.pid), time.monotonic()
    ts = [threading.Thread(target=client, args=(i,)) for i in range(THREADS)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall, cpu, total = time.monotonic() - t0, cpu_s(gw.proc.pid) - c0, sum(done)
    return total / wall, cpu / total * 1e6


def main():
    d = tempfile.mkdtemp(prefix="stm-bench-tls-")
    tlscerts.make_ca(d, "ca")
    tlscerts.make_cert(d, "ca", "tls")
    ctx = ssl.create_default_context(cafile=os.path.join(d, "ca.crt"))
    srv = stmtest.Server(extra_args=["--rate-limits", "*=1000000:1000000",
                                     "--quota-per-hour", "0"]).start()
    plain = Gw(srv.addr)
    tls = Gw(srv.addr, tls_dir=d)
    def claim(tls_side, i, k):  # a new claim each time: real durable writes
        return json.dumps({"concept_path": "bench/tls", "predicate": "p",
                           "value": "%s-%d-%d" % (tls_side, i, k)})
    cases = [("GET /v1/health, keep-alive", "GET", "/v1/health", None, N),
             ("POST /v1/assert, keep-alive", "POST", "/v1/assert", claim, N),
             ("GET /v1/health, new connection each", "GET", "/v1/health", None, 1)]
    print("| %d threads x %d requests | plaintext req/s | TLS req/s | TLS/plain "
          "throughput | gateway CPU us/req plain | TLS | TLS/plain CPU |" % (THREADS, N))
    print("|---|---|---|---|---|---|---|")
    try:
        for name, method, path, body, per_conn in cases:
            p_rps, p_cpu = run(plain, None, method, path, body, per_conn)
            t_rps, t_cpu = run(tls, ctx, method, path, body, per_conn)
            print("| %s | %.0f | %.0f | %.2f | %.0f | %.0f | %.2f |"
                  % (name, p_rps, t_rps, t_rps / p_rps, p_cpu, t_cpu, t_cpu / p_cpu))
    finally:
        plain.stop()
        tls.stop()
        srv.stop()
        srv.cleanup()


if __name__ == "__main__":
    main()

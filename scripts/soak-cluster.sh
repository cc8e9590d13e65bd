#!/usr/bin/env bash
# soak-cluster.sh - a longer soak of a loopback StemeDB cluster (issue 12:
# "A longer soak is a script"). Starts 3 (or 5) nodes with
# test/integration/cluster.py on 127.0.0.11.. (real ports 18180-18183, the
# cluster ports' flock, so not alongside the cluster tests), runs mixed
# writes and reads through REST (the gateways) and gRPC (the servers) at
# random nodes, injects faults periodically (SIGSTOP/SIGCONT of one server,
# SIGKILL of one node then its restart), then heals everything and checks
# that every acknowledged write is stored on >= factor nodes and readable
# through every node. Prints a summary; exit 0 only if nothing was lost.
#
#   scripts/soak-cluster.sh [--duration S] [--nodes 3|5] [--max-requests N]
#                           [--fault-interval S] [--factor F] [--clients N]
#
# Defaults: 600 s, 3 nodes, 200000 requests (whichever ends first), a fault
# every 15 s, factor 2, 4 client threads. Binaries: $STM_BUILD_DIR (default
# build/), or STM_SERVER_BIN / STM_GATEWAY_BIN. Loopback only. The servers
# run with --rate-limits off --quota-per-hour 0 (the soak is one client
# doing far more than an agent's default hourly quota).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export STM_BUILD_DIR=${STM_BUILD_DIR:-$ROOT/build}
case "$STM_BUILD_DIR" in /*) ;; *) STM_BUILD_DIR=$ROOT/$STM_BUILD_DIR ;; esac
export STM_TEST_WATCHDOG_S=${STM_TEST_WATCHDOG_S:-100000}
export STM_SOAK_IT=$ROOT/test/integration
exec /usr/bin/python3 - "$@" <<'PY'
import argparse, os, random, signal, sys, threading, time, json
sys.path.insert(0, os.environ["STM_SOAK_IT"])
import cluster, stmtest, grpc  # noqa: E402

ap = argparse.ArgumentParser(prog="soak-cluster.sh")
ap.add_argument("--duration", type=float, default=600)
ap.add_argument("--nodes", type=int, default=3, choices=(3, 5))
ap.add_argument("--max-requests", type=int, default=200000)
ap.add_argument("--fault-interval", type=float, default=15)
ap.add_argument("--factor", type=int, default=2)
ap.add_argument("--clients", type=int, default=4)
a = ap.parse_args()
pb, pbg, types, _, _ = stmtest.stubs()
SERVER_ARGS = ["--rate-limits", "off", "--quota-per-hour", "0"]
LOCAL = (("x-stemedb-forwarded", "soak"),)  # a node-local Get (service/forward.h)

lock = threading.Lock()
acked = {}          # hash -> concept
stats = {}          # kind -> [ok, err]
lat = []            # write latencies (s)
budget = [a.max_requests]
stop = threading.Event()
t_start = time.monotonic()


def count(kind, ok):
    with lock:
        s = stats.setdefault(kind, [0, 0])
        s[0 if ok else 1] += 1


def take():
    with lock:
        if budget[0] <= 0:
            return False
        budget[0] -= 1
        return True


def client(cid, nodes):
    rnd = random.Random(cid)
    chans = {n.node_id: grpc.insecure_channel(n.rpc_addr) for n in nodes}
    seq = 0
    while not stop.is_set() and take():
        n = rnd.choice(nodes)
        stub = pbg.StemeDBStub(chans[n.node_id])
        op = rnd.random()
        seq += 1
        concept = "soak/c%d" % rnd.randrange(200)
        try:
            if op < 0.25:      # REST write through the gateway
                t0 = time.monotonic()
                st, body = cluster.http("POST", n.http_base + "/v1/assert", {
                    "concept_path": concept, "predicate": "v",
                    "value": "%d-%d" % (cid, seq)}, timeout=5)
                ok = st in (200, 201)
                if ok:
                    with lock:
                        acked[body["hash"]] = concept
                        lat.append(time.monotonic() - t0)
                count("rest_write", ok)
            elif op < 0.5:     # gRPC write
                t0 = time.monotonic()
                r = stub.Assert(pb.AssertRequest(
                    concept_path=concept, predicate="v",
                    value=types.Value(number_value=cid * 1e9 + seq)), timeout=5)
                with lock:
                    acked[r.hash] = concept
                    lat.append(time.monotonic() - t0)
                count("grpc_write", True)
            elif op < 0.75:    # REST read
                st, _ = cluster.http("POST", n.http_base + "/v1/query", {
                    "concept_path": concept, "lens": "recency"}, timeout=5)
                count("rest_read", st == 200)
            else:              # gRPC read of an acknowledged claim
                with lock:
                    h = rnd.choice(list(acked)) if acked and rnd.random() < 0.5 else None
                if h:
                    stub.Get(pb.GetRequest(hash=h), timeout=5)
                else:
                    stub.Query(pb.QueryRequest(concept_path=concept, lens="recency"), timeout=5)
                count("grpc_read", True)
        except grpc.RpcError:
            count("grpc_write" if op < 0.5 else "grpc_read", False)
        except (OSError, ValueError, KeyError):
            count("rest_write" if op < 0.25 else "rest_read", False)
    for ch in chans.values():
        ch.close()


def faults(c, nodes, log):
    i = 0
    while not stop.wait(a.fault_interval):
        victim = nodes[i % len(nodes)]
        t = time.monotonic() - t_start
        if i % 2 == 0:
            log.append("%.0fs SIGSTOP %s" % (t, victim.node_id))
            victim.freeze()
            stop.wait(3)
            victim.thaw()
        else:
            log.append("%.0fs SIGKILL %s" % (t, victim.node_id))
            victim.kill()
            stop.wait(2)
            victim.start(extra_args=SERVER_ARGS)
            log.append("%.0fs restarted %s" % (time.monotonic() - t_start, victim.node_id))
        i += 1


def holders(nodes, hashes):
    """hash -> number of nodes storing it locally."""
    out = dict.fromkeys(hashes, 0)
    for n in nodes:
        with n.grpc_channel() as ch:
            stub = pbg.StemeDBStub(ch)
            for h in hashes:
                try:
                    stub.Get(pb.GetRequest(hash=h), timeout=5, metadata=LOCAL)
                    out[h] += 1
                except grpc.RpcError as e:
                    if e.code() != grpc.StatusCode.NOT_FOUND:
                        raise
    return out


def main():
    fault_log = []
    with cluster.Cluster() as c:
        ids = list(range(1, a.nodes + 1))
        nodes = [c.add("node%d" % i, i, seeds=[j for j in ids if j != i][:2],
                       factor=a.factor) for i in ids]
        for n in nodes:
            n.start(wait=False, extra_args=SERVER_ARGS)
        for n in nodes:
            n.wait_ready()
        everyone = {n.node_id: "UP" for n in nodes}
        c.wait_status(nodes[0], everyone, timeout=30)
        print("soak: %d nodes up (factor %d); running for %.0f s or %d requests, "
              "a fault every %.0f s" % (a.nodes, a.factor, a.duration,
                                         a.max_requests, a.fault_interval), flush=True)
        global t_start
        t_start = time.monotonic()
        workers = [threading.Thread(target=client, args=(k, nodes)) for k in range(a.clients)]
        fth = threading.Thread(target=faults, args=(c, nodes, fault_log))
        for w in workers:
            w.start()
        fth.start()
        while time.monotonic() - t_start < a.duration and any(w.is_alive() for w in workers):
            time.sleep(1)  # the load's clock; nothing to wait on
        stop.set()
        for w in workers:
            w.join()
        fth.join()
        load_s = time.monotonic() - t_start
        # Heal: everything running and UP everywhere, then sync.
        for n in nodes:
            n.thaw()
            if not n.running():
                n.start(extra_args=SERVER_ARGS)
        for n in nodes:
            c.wait_status(n, everyone, timeout=60)
        t_heal = time.monotonic()
        for n in nodes:
            st, body = n.post("/cluster/sync", {"force": True})
            if st not in (200, 202):
                raise SystemExit("sync on %s: %s %s" % (n.node_id, st, body))
        todo = list(acked)
        held = {}
        deadline = time.monotonic() + 180
        while todo and time.monotonic() < deadline:
            held.update(holders(nodes, todo))
            todo = [h for h in todo if held[h] < a.factor]
            if todo:
                time.sleep(2)  # anti-entropy runs on its own; poll again
        converge_s = time.monotonic() - t_heal
        # Readable through every node (forwarded where a node holds none).
        unreadable = 0
        for n in nodes:
            with n.grpc_channel() as ch:
                stub = pbg.StemeDBStub(ch)
                for h in acked:
                    try:
                        stub.Get(pb.GetRequest(hash=h), timeout=5)
                    except grpc.RpcError:
                        unreadable += 1
        codes = c.stop_all()
    lat.sort()
    pct = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000) if lat else (lambda q: 0)
    total = sum(ok + err for ok, err in stats.values())
    summary = {
        "nodes": a.nodes, "factor": a.factor, "load_seconds": round(load_s, 1),
        "requests": total,
        "by_kind": {k: {"ok": v[0], "failed": v[1]} for k, v in sorted(stats.items())},
        "acknowledged_writes": len(acked),
        "acked_writes_per_s": round(len(acked) / load_s, 1),
        "write_latency_ms": {"p50": round(pct(0.5), 1), "p99": round(pct(0.99), 1),
                             "max": round(pct(1.0), 1)},
        "faults": fault_log,
        "converge_seconds": round(converge_s, 1),
        "copies": {str(k): v for k, v in sorted(
            __import__("collections").Counter(held.values()).items())},
        "under_replicated": len(todo),
        "unreadable_reads": unreadable,
        "exit_codes": codes,
    }
    print(json.dumps(summary, indent=1))
    ok = not todo and unreadable == 0
    print("soak: %s: %d acknowledged writes, %d on < %d nodes, %d unreadable reads"
          % ("PASS" if ok else "FAIL", len(acked), len(todo), a.factor, unreadable))
    sys.exit(0 if ok else 1)


main()
PY

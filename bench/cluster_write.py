#!/usr/bin/python3
"""Durable write throughput: one node against a 3-node cluster with
factor 2, the same load generator (stemedb bench assert) in the same run
(issue 12, docs/benchmarks.md). Nodes come from test/integration/cluster.py
(127.0.0.11.. with the runbook's ports: nothing else may use them).

    STM_BUILD_DIR=build bench/cluster_write.py [seconds] [batch] [clients]
"""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "test", "integration"))
import cluster  # noqa: E402
import stmtest  # noqa: E402


def bench(addr, seconds, batch, clients):
    out = subprocess.run(
        [stmtest.CLI_BIN, "bench", "assert", "--server", addr, "--duration",
         str(seconds), "--batch", str(batch), "--clients", str(clients),
         "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    clients = int(sys.argv[3]) if len(sys.argv) > 3 else 16
    os.environ.setdefault("STEMEDB_ANTI_ENTROPY_INTERVAL_MS", "600000")
    with cluster.Cluster() as c:
        single = c.add("single", 4, clustered=False)
        nodes = [c.add("node%d" % i, i, seeds=[k for k in (1, 2, 3) if k != i])
                 for i in (1, 2, 3)]
        c.start_all()
        for n in nodes:
            c.wait_status(n, {"node1": "UP", "node2": "UP", "node3": "UP"})
        r1 = bench(single.rpc_addr, seconds, batch, clients)
        r3 = bench(nodes[0].rpc_addr, seconds, batch, clients)
        print(json.dumps({"one_node": r1, "cluster3_factor2": r3}, indent=1))
        c.stop_all()


if __name__ == "__main__":
    main()

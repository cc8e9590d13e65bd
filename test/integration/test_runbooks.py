#!/usr/bin/env python3
"""The runbooks in docs/operations/runbooks/ run as written (issue 14).

Every ```bash block of each runbook is run, in the file's order, against
nodes on loopback addresses 127.0.0.11.. with the real ports 18180-18183,
with this build's stemedb-server, stemedb-gateway and stemedb first on
PATH and the repository's top directory as the working directory. The
runbooks start and stop nodes themselves (docs/operations/runbooks/lab.sh:
background processes with pid files under $STEMEDB_HOME); this test only
provides STEMEDB_HOME (a temporary directory), the cluster ports' flock
(cluster.Cluster) and the clean-up (SIGKILL of every pid file left).

Conventions in the markdown (HTML comments, invisible when rendered):

  <!-- runbook: env -->        before a block: prepended to every later
                               block of the same file (addresses, helpers)
  <!-- runbook: skip -->       before a block: not run (real-host-only
                               commands such as systemctl)
  <!-- runbook: expect RE -->  after a block: its stdout must match the
                               Python regular expression RE (re.M)

Every block runs in its own `bash -e -o pipefail`; it must exit 0 (so a
block's last `[ ... ]` or `jq -e` is an assertion). Blocks of other
languages (```text, ```toml) are documentation and not run. The runbooks
are run in the order of RUNBOOKS, each in its own STEMEDB_HOME, with the
nodes of one stopped (pid files) before the next starts.

SWIM_TUNING gives the clusters the short SWIM timings of cluster.py, so
that §3's failure is detected in about 2 s instead of 10.
"""

import glob
import os
import re
import signal
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import cluster  # noqa: E402
import stmtest  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
RUNBOOK_DIR = os.path.join(ROOT, "docs", "operations", "runbooks")
RUNBOOKS = [
    "add-node-to-cluster.md",
    "node-replacement.md",
    "restore-from-backup.md",
    "rotate-keys-and-certificates.md",
]
BLOCK_TIMEOUT_S = 150

FENCE = re.compile(r"^```(\w*)\s*$")
MARK = re.compile(r"^<!--\s*runbook:\s*(env|skip|expect)\s*(.*?)\s*-->\s*$")


def blocks(path):
    """[(kind, code, expects, line)] of one markdown file: kind is "env",
    "run" or "skip"; only bash blocks are returned."""
    with open(path) as f:
        lines = f.read().splitlines()
    out, pending = [], None
    i = 0
    while i < len(lines):
        m = MARK.match(lines[i])
        if m and m.group(1) in ("env", "skip"):
            pending = m.group(1)
        elif m and m.group(1) == "expect" and out:
            out[-1][2].append(m.group(2))
        f = FENCE.match(lines[i])
        if f:
            lang, start, body = f.group(1), i + 1, []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            if lang in ("bash", "sh"):
                out.append([pending or "run", "\n".join(body) + "\n", [], start])
            pending = None
        elif lines[i].strip() and not m:
            pending = None if pending and not lines[i].startswith("<!--") else pending
        i += 1
    return out


def kill_pidfiles(home):
    for p in glob.glob(os.path.join(home, "*", "*.pid")):
        try:
            with open(p) as f:
                pid = int(f.read().strip())
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass


class RunbookTest(unittest.TestCase):
    def run_runbook(self, name, home):
        path = os.path.join(RUNBOOK_DIR, name)
        env = dict(os.environ)
        bins = [os.path.dirname(b) for b in
                (stmtest.SERVER_BIN, stmtest.GATEWAY_BIN, stmtest.CLI_BIN)]
        env["PATH"] = ":".join(bins + [env.get("PATH", "/usr/bin:/bin")])
        env["STEMEDB_HOME"] = home
        env["SWIM_TUNING"] = "\n".join(
            "%s = %d" % kv for kv in cluster.FAST_SWIM.items())
        env["HOME"] = home  # nothing a runbook writes lands elsewhere
        prelude = ""
        ran = 0
        for kind, code, expects, line in blocks(path):
            if kind == "skip":
                continue
            if kind == "env":
                prelude += code
            t0 = time.monotonic()
            p = subprocess.run(["bash", "-e", "-o", "pipefail", "-c",
                                prelude + (code if kind != "env" else "")],
                               cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                               capture_output=True, text=True,
                               timeout=BLOCK_TIMEOUT_S)
            where = "%s:%d (%.1f s)" % (name, line, time.monotonic() - t0)
            sys.stderr.write("--- %s exit %d\n%s%s" % (where, p.returncode,
                                                      p.stdout, p.stderr))
            self.assertEqual(p.returncode, 0, "block at %s failed:\n%s\n%s"
                             % (where, code, p.stderr[-3000:]))
            for e in expects:
                self.assertRegex(p.stdout, re.compile(e, re.M),
                                 "block at %s: output lacks /%s/" % (where, e))
            ran += 1
        self.assertGreater(ran, 1, "%s has no runnable blocks" % name)

    def test_runbooks_run_as_written(self):
        with cluster.Cluster() as c:  # the ports' flock and a temp dir
            try:
                for name in RUNBOOKS:
                    home = os.path.join(c.root, os.path.splitext(name)[0])
                    os.makedirs(home)
                    try:
                        self.run_runbook(name, home)
                    finally:
                        logs = glob.glob(os.path.join(home, "*", "*.log"))
                        kill_pidfiles(home)
                        if sys.exc_info()[0] is not None:
                            for lg in logs:
                                with open(lg, "rb") as f:
                                    sys.stderr.write("===== %s\n%s\n" % (
                                        lg, f.read()[-3000:].decode("utf-8", "replace")))
            finally:
                for name in RUNBOOKS:
                    kill_pidfiles(os.path.join(c.root, os.path.splitext(name)[0]))

    def test_markers_parse(self):
        """Every runbook has an env block first and no expect without a
        block before it."""
        for name in RUNBOOKS:
            b = blocks(os.path.join(RUNBOOK_DIR, name))
            self.assertTrue(b and b[0][0] == "env", name)


if __name__ == "__main__":
    unittest.main()

#!/usr/bin/python3
"""Every example in README.md runs as written and prints what a user expects.

The test reads README.md, takes every fenced ```sh line and ```python block
in order, and runs each against a fresh node, checking its exit status and
its output. A README command with no expectation here fails the test (so a
new example cannot go untested), and so does an expectation or a
substitution that no longer matches the README (so none goes stale).

Where it runs: a scratch folder laid out like the checkout's root (proto/,
deploy/, scripts/, test/ link to the checkout; build/ links to the build
CTest runs in, STM_BUILD_DIR), so `build/cli/stemedb ...` and the relative
paths of the README run verbatim, and generated stubs, data/, data2/ and
node1.tar.zst land in the scratch folder, never in the checkout. PATH starts
with the build's service/ and gateway/ folders (the README's bare
`stemedb-server`) and then Debian's /usr/bin (the README's `python3` is
Debian's, with python3-grpcio).

The node is started the way users start it (scripts/run.sh): the README's
own `stemedb-server --wal-archive-command ...` line and
`build/gateway/stemedb-gateway`, with no other flags, logs and pid files in
./data, ready once /v1/health answers; scripts/stop.sh stops it at the end
and both must exit cleanly. As root (CTest in CI), the whole test re-runs
itself in a fresh network namespace (`unshare --net`, loopback only), where
the README's real ports 18180/18181/18182 are always free, so the commands
run with no change at all. Where no namespace can be made (an unprivileged
developer, or STM_README_NO_NETNS=1), it falls back to free loopback ports: `:18180` and `:18182` in
the commands become the chosen ports (in the python example too), and the processes get
STEMEDB_GRPC_LISTEN, STEMEDB_HTTP_LISTEN, STEMEDB_CLUSTER_LISTEN and
STEMEDB_SERVER (the CLI's and gateway's default server address).

Other substitutions, each printed when used (see SUBSTITUTIONS):
- /srv/wal-archive (an operator's archive volume) becomes scratch/srv/
  wal-archive, created before the server starts as a mounted volume would
  be (the restore refuses a missing --wal-archive folder; with the default
  64 MiB segments nothing is archived in this short run, so the restore
  adds 0 archived segments; deploy/dr/drill.sh, run below, archives and
  replays real segments);
- the restore's --to-time 2026-11-25T12:00:00Z (a date in the README's
  past) becomes a time between the quick start's two claims, so the
  point-in-time restore must keep exactly the first;
- `scripts/crash-test.sh 50` runs 5 rounds (STM_README_CRASH_ROUNDS
  overrides; CTest's integration_crash runs 10; 50 is the manual soak).

Not run: the README's first two commands. ./scripts/test.sh runs the whole
suite, this test included; ./scripts/run.sh installs packages and builds
into ./build before starting the node exactly as done here.
"""

import fcntl
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BUILD = os.path.abspath(os.environ.get("STM_BUILD_DIR", os.path.join(ROOT, "build")))
README = os.path.join(ROOT, "README.md")
NETNS_FLAG = "STM_README_IN_NETNS"
CRASH_ROUNDS = os.environ.get("STM_README_CRASH_ROUNDS", "5")
HEX64 = re.compile(r"^[0-9a-f]{64}$")

passed = failed = 0


def ok(name):
    global passed
    passed += 1
    print("ok   - " + name, flush=True)


def bad(name, detail=""):
    global failed
    failed += 1
    print("FAIL - " + name + ("\n" + detail if detail else ""), flush=True)


# ---- README extraction ---------------------------------------------------


def readme_steps(text):
    """[(lang, code)] in README order: one step per ```sh line, one per
    ```python block. A backslash continuation would split a command, so it
    is refused rather than run in pieces."""
    steps = []
    for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.M | re.S):
        lang, body = m.group(1), m.group(2)
        if lang == "sh":
            for line in body.splitlines():
                if line.strip():
                    if line.rstrip().endswith("\\"):
                        raise SystemExit("README: continuation lines are not supported: " + line)
                    steps.append(("sh", line.strip()))
        elif lang == "python":
            steps.append(("python", body))
        else:
            raise SystemExit("README: a ```%s block this test cannot run; teach it" % lang)
    return steps


# ---- network namespace ---------------------------------------------------


def loopback_up():
    """Bring `lo` up in a new network namespace (SIOCGIFFLAGS/SIOCSIFFLAGS,
    so iproute2 is not needed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(s, 0x8913, req))[1]
        fcntl.ioctl(s, 0x8914, struct.pack("16sH22x", b"lo", flags | 1))


def reexec_in_netns():
    """As root, re-run this test in a fresh network namespace; returns only
    when none can be made (then the caller substitutes ports)."""
    if os.environ.get(NETNS_FLAG) or os.environ.get("STM_README_NO_NETNS") or shutil.which("unshare") is None:
        return
    probe = subprocess.run(["unshare", "--net", "true"], stderr=subprocess.DEVNULL)
    if probe.returncode != 0:
        print("# no network namespace (unshare --net failed): substituting ports", flush=True)
        return
    os.environ[NETNS_FLAG] = "1"
    sys.stdout.flush()
    os.execvp("unshare", ["unshare", "--net", sys.executable, os.path.abspath(__file__)])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- the run -------------------------------------------------------------


class Run:
    def __init__(self):
        self.scratch = tempfile.mkdtemp(prefix="stm-readme-")
        for d in ("proto", "deploy", "scripts", "test"):
            os.symlink(os.path.join(ROOT, d), os.path.join(self.scratch, d))
        os.symlink(BUILD, os.path.join(self.scratch, "build"))
        os.makedirs(os.path.join(self.scratch, "data"))
        os.makedirs(os.path.join(self.scratch, "srv", "wal-archive"))
        self.env = dict(os.environ)
        self.env["PATH"] = ":".join([os.path.join(BUILD, "service"), os.path.join(BUILD, "gateway"),
                                     "/usr/sbin", "/usr/bin", "/sbin", "/bin", os.environ.get("PATH", "")])
        self.env.pop(NETNS_FLAG, None)
        self.port_subs = []
        if os.environ.get(NETNS_FLAG):
            loopback_up()
            print("# in a fresh network namespace: the README's ports, unchanged", flush=True)
        else:
            grpc_port, http_port, cluster_port = free_port(), free_port(), free_port()
            self.port_subs = [(":18180", ":%d" % http_port), (":18182", ":%d" % grpc_port)]
            self.env.update(STEMEDB_GRPC_LISTEN="127.0.0.1:%d" % grpc_port,
                            STEMEDB_HTTP_LISTEN="127.0.0.1:%d" % http_port,
                            STEMEDB_CLUSTER_LISTEN="127.0.0.1:%d" % cluster_port,
                            STEMEDB_SERVER="127.0.0.1:%d" % grpc_port)
            print("# ports substituted: %s" % self.port_subs, flush=True)
        self.http = "http://127.0.0.1:%s" % (self.port_subs[0][1][1:] if self.port_subs else "18180")
        self.procs = {}
        self.vars = {}  # values later checks and substitutions need

    def sub(self, cmd):
        """Apply SUBSTITUTIONS and the port substitution to one command."""
        for old, new, why in SUBSTITUTIONS:
            if old in cmd:
                value = new(self)
                cmd = cmd.replace(old, value)
                self.vars.setdefault("subs_used", set()).add(old)
                print("# substituted %r -> %r: %s" % (old, value, why), flush=True)
        for old, new in self.port_subs:
            cmd = cmd.replace(old, new)
        return cmd

    def sh(self, cmd, timeout):
        return subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=self.scratch, env=self.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def start(self, name, cmd):
        """Start a daemon as scripts/run.sh does: its own session, output
        appended to data/NAME.log, pid in data/NAME.pid (for stop.sh)."""
        log = open(os.path.join(self.scratch, "data", name + ".log"), "ab")
        p = subprocess.Popen(["bash", "-c", "exec " + cmd], cwd=self.scratch, env=self.env, stdout=log,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        with open(os.path.join(self.scratch, "data", name + ".pid"), "w") as f:
            f.write("%d\n" % p.pid)
        self.procs[name] = p
        # Reap it as soon as it exits: stop.sh polls with kill -0, which a
        # zombie child would pass until its 10 s limit.
        threading.Thread(target=p.wait, daemon=True).start()

    def wait_healthy(self):
        """Poll /v1/health (bounded, like scripts/run.sh)."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for name, p in self.procs.items():
                if p.poll() is not None:
                    return "%s exited with %s" % (name, p.returncode)
            r = subprocess.run(["curl", "-sf", "--max-time", "2", self.http + "/v1/health"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if r.returncode == 0:
                return None
            time.sleep(0.1)
        return "not healthy within 30 s"

    def logs(self):
        out = []
        for name in ("server", "gateway"):
            try:
                with open(os.path.join(self.scratch, "data", name + ".log")) as f:
                    out.append("--- %s.log ---\n%s" % (name, f.read()[-4000:]))
            except OSError:
                pass
        return "\n".join(out)

    def cleanup(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(10)
        shutil.rmtree(self.scratch, ignore_errors=True)


def rfc3339(ns):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + ".%09dZ" % (ns % 10**9)


SUBSTITUTIONS = [
    ("/srv/wal-archive", lambda run: os.path.join(run.scratch, "srv", "wal-archive"),
     "the archive volume, a folder of the scratch root"),
    ("--to-time 2026-11-25T12:00:00Z", lambda run: "--to-time " + run.vars["between"],
     "a time between the quick start's two claims: the restore must keep exactly the first"),
    ("scripts/crash-test.sh 50", lambda run: "scripts/crash-test.sh " + CRASH_ROUNDS,
     "%s rounds, not 50 (CTest's integration_crash runs 10; 50 is the manual soak)" % CRASH_ROUNDS),
]


# ---- what each README command must print ---------------------------------
# (pattern on the README's text, timeout s, check(run, stdout, stderr) ->
# None or what was wrong). A check may record values in run.vars.


def check_health(run, out, err):
    j = json.loads(out)
    if j.get("status") != "healthy" or j.get("assertion_count") != 0:
        return "a fresh node should be healthy and empty: %s" % out


def check_curl_assert(run, out, err):
    j = json.loads(out)
    if not HEX64.match(j.get("hash", "")) or j.get("sequence") != 1 or j.get("created") is not True:
        return "expected a new claim at sequence 1: %s" % out
    run.vars["curl_hash"] = j["hash"]
    # The next claim (the CLI's) commits after this instant: the
    # point-in-time restore below cuts here.
    run.vars["between"] = rfc3339(time.time_ns())


def check_curl_query(run, out, err):
    j = json.loads(out)
    r = j["results"][0]
    if r.get("value") is not True or r.get("lens") != "recency" or r["winner"]["hash"] != run.vars["curl_hash"]:
        return "expected the asserted claim to win: %s" % out


def check_cli_assert(run, out, err):
    m = re.match(r"created ([0-9a-f]{64}) \(sequence 2\)$", out.strip())
    if not m:
        return "expected 'created HASH (sequence 2)': %r" % out
    run.vars["cli_hash"] = m.group(1)


def check_cli_query(run, out, err):
    want = ['drugs/semaglutide  dose = "2.4 mg"', "lens recency",
            "winner %s from fda://label, sequence 2" % run.vars["cli_hash"], "(read at sequence 2)"]
    missing = [w for w in want if w not in out]
    if missing:
        return "missing %s in %r" % (missing, out)


def check_protoc(run, out, err):
    for f in ("stemedb_pb2.py", "stemedb_pb2_grpc.py", "types_pb2.py"):
        if not os.path.exists(os.path.join(run.scratch, "stemedb", "v1", f)):
            return "no stemedb/v1/%s generated" % f


def check_python(run, out, err):
    want = "%s 1 False" % run.vars["curl_hash"]
    if out.strip() != want:
        return "expected %r (the curl claim again: same content, same hash), got %r" % (want, out)


def check_backup(run, out, err):
    if not out.startswith("backup node1.tar.zst: sequences 1..2, 2 claims,"):
        return "expected a backup of sequences 1..2: %r" % out


def check_verify(run, out, err):
    if not out.startswith("node1.tar.zst: OK: sequences 1..2, 2 claims,"):
        return "expected OK for sequences 1..2: %r" % out


def check_restore(run, out, err):
    if not re.match(r"restored data2: sequences 1\.\.1 \(committed [^)]+\), 1 claims; backup to 2 \+ 0 archived "
                    r"segments", out):
        return "expected the point-in-time restore to keep sequence 1 only: %r" % out


def check_server_line(run, out, err):
    p = run.procs["server"]
    if p.poll() is not None:
        return "the node's server (this line) exited with %s" % p.returncode


def check_drill(run, out, err):
    missing = [w for w in ("drill: OK", "drill: RTO ", "drill: RPO ") if w not in out]
    if missing:
        return "missing %s in:\n%s" % (missing, out[-3000:])


def check_crash(run, out, err):
    both = out + err
    if ("%s rounds" % CRASH_ROUNDS) not in both or "\nOK" not in both or "round %s:" % CRASH_ROUNDS not in both:
        return "expected %s verified rounds and OK:\n%s" % (CRASH_ROUNDS, both[-3000:])


EXPECT = [
    (r"^curl http://localhost:18180/v1/health$", 30, check_health),
    (r"^curl -X POST http://localhost:18180/v1/assert ", 30, check_curl_assert),
    (r"^curl -X POST http://localhost:18180/v1/query ", 30, check_curl_query),
    (r"^build/cli/stemedb assert drugs/semaglutide ", 30, check_cli_assert),
    (r"^build/cli/stemedb query drugs/semaglutide ", 30, check_cli_query),
    (r"^protoc -I proto .*proto/stemedb/v1/\*\.proto$", 60, check_protoc),
    (r"^PYTHON$", 30, check_python),
    (r"^build/cli/stemedb backup --out node1\.tar\.zst", 60, check_backup),
    (r"^build/cli/stemedb verify node1\.tar\.zst", 60, check_verify),
    (r"^build/cli/stemedb restore node1\.tar\.zst --data-dir data2 ", 60, check_restore),
    (r"^stemedb-server --wal-archive-command ", 0, check_server_line),
    (r"^deploy/dr/drill\.sh", 300, check_drill),
    (r"^scripts/crash-test\.sh 50", 300, check_crash),
]


def expectation(key):
    hits = [e for e in EXPECT if re.search(e[0], key)]
    return hits[0] if len(hits) == 1 else None


def main():
    reexec_in_netns()
    with open(README) as f:
        text = f.read()
    steps = readme_steps(text)
    print("# %d README steps; build %s" % (len(steps), BUILD), flush=True)
    run = Run()
    try:
        # The node: the README's server line (archiving to the substituted
        # volume) and the gateway with no flags, as scripts/run.sh starts them.
        server_line = [c for lang, c in steps if lang == "sh" and c.startswith("stemedb-server ")]
        if len(server_line) != 1:
            bad("the README has one `stemedb-server ...` line to start the node with")
            return 1
        run.start("server", run.sub(re.sub(r"\s+#.*$", "", server_line[0])))
        run.start("gateway", "build/gateway/stemedb-gateway")
        why = run.wait_healthy()
        if why:
            bad("node started as scripts/run.sh does: " + why, run.logs())
            return 1
        ok("node started as scripts/run.sh does (the README's stemedb-server line + the gateway)")
        used = set()
        for lang, code in steps:
            key = "PYTHON" if lang == "python" else code
            e = expectation(key)
            title = "README: " + (code if lang == "sh" else "the python example")
            if e is None:
                bad(title, "no (or more than one) expectation in test_readme.py matches this README command")
                continue
            used.add(e[0])
            if e[1] == 0:  # the long-running server: started above
                why = e[2](run, "", "")
                ok(title + " (the node, started first)") if why is None else bad(title, why)
                continue
            if lang == "python":
                with open(os.path.join(run.scratch, "readme_example.py"), "w") as f:
                    f.write(run.sub(code))
                cmd = "python3 readme_example.py"
            else:
                cmd = run.sub(code)
            try:
                r = run.sh(cmd, e[1])
            except subprocess.TimeoutExpired:
                bad(title, "timed out after %d s" % e[1])
                continue
            if r.returncode != 0:
                bad(title, "exit %d\nstdout: %s\nstderr: %s" % (r.returncode, r.stdout[-3000:], r.stderr[-3000:]))
                continue
            try:
                why = e[2](run, r.stdout, r.stderr)
            except (ValueError, KeyError, IndexError, TypeError) as ex:
                why = "%s: %r in %r" % (type(ex).__name__, ex, r.stdout[-2000:])
            ok(title) if why is None else bad(title, why)
        for pat, _, _ in EXPECT:
            if pat not in used:
                bad("expectation %r matches no README command (stale: update test_readme.py)" % pat)
        for old, _, _ in SUBSTITUTIONS:
            if old not in run.vars.get("subs_used", set()):
                bad("substitution %r matches no README command (stale: update test_readme.py)" % old)
        # ./scripts/stop.sh, as the README says, must stop the node cleanly.
        r = run.sh("./scripts/stop.sh", 60)
        codes = {n: p.poll() for n, p in run.procs.items()}
        if r.returncode == 0 and codes == {"server": 0, "gateway": 0}:
            ok("./scripts/stop.sh stops the node cleanly (both exit 0)")
        else:
            bad("./scripts/stop.sh stops the node cleanly", "stop.sh %d, exit codes %s\n%s"
                % (r.returncode, codes, run.logs()))
        print("# not run: ./scripts/run.sh (installs, builds into ./build, then starts the node as above) "
              "and ./scripts/test.sh (the whole suite, which runs this test)")
    finally:
        run.cleanup()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

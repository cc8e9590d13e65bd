""".env.example against the code (issue 14), so they never drift:
- every STEMEDB_* variable the C code (option tables, getenv) or the deploy
  scripts read is documented, with a meaning;
- every documented variable is read by some code, unless marked [planned]
  (names fixed by DESIGN.md / the issues ahead of their code);
- each documented default equals the one `--help` of the binaries prints,
  and the one the scripts use (`${STEMEDB_X:-default}`).
Test hooks (STEMEDB_TEST_*) are not configuration and are left out.
When this fails after you add a variable: document it in .env.example."""

import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import stmtest  # noqa: E402

ROOT = stmtest.ROOT
ENV_FILE = os.path.join(ROOT, ".env.example")
CODE_DIRS = ["common", "service", "gateway", "storage", "cluster", "rpc", "cli"]
SCRIPT_DIRS = ["deploy/bin", "deploy/backup", "deploy/archive"]
ASSIGN = re.compile(r"^#(STEMEDB_[A-Z0-9_]+)=(.*)$")


def documented():
    """name -> (default, description, planned)"""
    out, desc, last_was_assign = {}, [], False
    with open(ENV_FILE) as f:
        for line in f:
            line = line.rstrip("\n")
            m = ASSIGN.match(line)
            if m:
                if m.group(1) in out:
                    raise AssertionError("%s documented twice" % m.group(1))
                text = " ".join(desc)
                out[m.group(1)] = (m.group(2), text, "[planned]" in text)
                last_was_assign = True
            elif line.startswith("#"):
                if last_was_assign or line.startswith("# ===") or line.startswith("# ---"):
                    desc = []
                if not (line.startswith("# ===") or line.startswith("# ---")):
                    desc.append(line.lstrip("# "))
                last_was_assign = False
            else:
                desc, last_was_assign = [], False
    return out


def read_by_code():
    names = {}
    for d in CODE_DIRS:
        for dirpath, _, files in os.walk(os.path.join(ROOT, d)):
            for fn in files:
                if fn.endswith((".c", ".h")):
                    with open(os.path.join(dirpath, fn), errors="replace") as f:
                        for n in re.findall(r'"(STEMEDB_[A-Z0-9_]+)"', f.read()):
                            names.setdefault(n, os.path.relpath(os.path.join(dirpath, fn), ROOT))
    return {n: w for n, w in names.items() if not n.startswith("STEMEDB_TEST_")}


def read_by_scripts():
    """name -> set of defaults seen in ${NAME:-default} (None: no default)"""
    names = {}
    for d in SCRIPT_DIRS:
        for dirpath, _, files in os.walk(os.path.join(ROOT, d)):
            for fn in files:
                with open(os.path.join(dirpath, fn), errors="replace") as f:
                    text = f.read()
                for m in re.finditer(r"\$\{?(STEMEDB_[A-Z0-9_]+)(:-([^}]*))?", text):
                    names.setdefault(m.group(1), set()).add(m.group(3))
    return names


def help_defaults():
    """name -> {binary: default} from --help of the three binaries."""
    out = {}
    for b in (stmtest.SERVER_BIN, stmtest.GATEWAY_BIN, stmtest.CLI_BIN):
        r = subprocess.run([b, "--help"], capture_output=True, text=True, timeout=30)
        for m in re.finditer(r"^\s+--\S+\s+(STEMEDB_[A-Z0-9_]+)\s+(\S+)\s*$", r.stdout + r.stderr, re.M):
            out.setdefault(m.group(1), {})[os.path.basename(b)] = "" if m.group(2) == "(none)" else m.group(2)
    return out


class EnvExampleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.doc = documented()

    def test_every_variable_the_code_reads_is_documented(self):
        code = read_by_code()
        code.update({n: "deploy scripts" for n in read_by_scripts()})
        missing = {n: w for n, w in code.items() if n not in self.doc}
        self.assertEqual(missing, {}, "read by the code (where) but not in .env.example")

    def test_every_documented_variable_is_read_or_planned(self):
        code = set(read_by_code()) | set(read_by_scripts())
        stale = sorted(n for n, (_, _, planned) in self.doc.items() if n not in code and not planned)
        self.assertEqual(stale, [], "in .env.example but read by no code: remove, or mark [planned]")
        done = sorted(n for n, (_, _, planned) in self.doc.items() if n in code and planned)
        if done:
            sys.stderr.write("note: now read by the code, drop [planned] in .env.example: %s\n" % done)

    def test_every_variable_has_a_meaning(self):
        for n, (_, desc, _) in self.doc.items():
            self.assertTrue(desc.strip(), "%s has no description above it" % n)

    def test_defaults_match_help(self):
        helps = help_defaults()
        self.assertIn("STEMEDB_DATA_DIR", helps, "--help output not parsed")
        for n, per_bin in helps.items():
            if n not in self.doc:
                continue  # reported by the first test
            for b, d in per_bin.items():
                self.assertEqual(self.doc[n][0], d, "%s: .env.example says %r, %s --help %r"
                                 % (n, self.doc[n][0], b, d))

    def test_defaults_match_scripts(self):
        for n, defaults in read_by_scripts().items():
            for d in defaults - {None, ""}:  # ${X:-} only tests whether X is set
                if n in self.doc:
                    self.assertEqual(self.doc[n][0], d, "%s: .env.example vs a script's ${%s:-%s}" % (n, n, d))

    def test_installed_env_file_is_this_one(self):
        link = os.path.join(ROOT, "deploy", "stemedb.env.example")
        self.assertTrue(os.path.islink(link))
        self.assertEqual(os.path.realpath(link), os.path.realpath(ENV_FILE))


if __name__ == "__main__":
    unittest.main(verbosity=2)

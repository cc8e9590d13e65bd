"""Backup, verify, restore and WAL archival against a real stemedb-server
and the stemedb CLI: an online backup while writers run restores exactly
its sequence range; verify rejects every kind of damage with a precise
message and a non-zero exit; restore refuses a non-empty directory and cuts
batches whole at --to-sequence; a failing archive command is retried and
counted, and nothing is lost once it works. (The full DR drill with
point-in-time recovery is deploy/dr/drill.sh, run as integration_dr_drill.)"""

import os
import shutil
import subprocess
import tempfile
import threading
import unittest

import grpc

import stmtest

pb, pb_grpc, types_pb2, _, _ = stmtest.stubs()
ARCHIVE_TO_DIR = os.path.join(stmtest.ROOT, "deploy", "archive", "archive-to-dir.sh")


def cli(*args, check=True):
    r = subprocess.run([stmtest.CLI_BIN] + list(args), capture_output=True, text=True, timeout=120)
    if check and r.returncode != 0:
        raise AssertionError("stemedb %s: exit %d\n%s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
    return r


def claim(tag, i):
    return pb.AssertRequest(concept_path="bk/%s" % tag, predicate="p%d" % i,
                            value=types_pb2.Value(string_value="%s-%d" % (tag, i)),
                            source_id="code://bk", timestamp_ns=i + 1)


def metric(stub, name):
    for line in stub.Metrics(pb.MetricsRequest(), timeout=5).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise KeyError(name)


class BackupTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="stm-bk-")
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.cleanup()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def server(self, data_dir=None, extra=()):
        s = stmtest.Server(data_dir=data_dir, extra_args=["--wal-segment-bytes", "65536"] + list(extra))
        self.servers.append(s)
        return s.start()

    def test_online_backup_under_writes_restores_exactly_its_range(self):
        srv = self.server()
        stop = threading.Event()
        with grpc.insecure_channel(srv.addr) as ch:
            stub = pb_grpc.StemeDBStub(ch)
            for i in range(300):
                stub.Assert(claim("before", i), timeout=10)

            def writer():
                i = 0
                while not stop.is_set() and i < 20000:
                    stub.AssertBatch(pb.AssertBatchRequest(
                        assertions=[claim("during", i + k) for k in range(10)]), timeout=10)
                    i += 10
            t = threading.Thread(target=writer)
            t.start()
            try:
                out = os.path.join(self.tmp, "b.tar.zst")
                r = cli("--server", srv.addr, "backup", "--out", out)
            finally:
                stop.set()
                t.join(30)
            self.assertIn("backup %s: sequences 1.." % out, r.stdout)
            last = int(r.stdout.split("sequences 1..")[1].split(",")[0])
            self.assertGreaterEqual(last, 300)
            v = cli("verify", out)
            self.assertIn("OK: sequences 1..%d, %d claims" % (last, last), v.stdout)
            data = os.path.join(self.tmp, "restored")
            cli("restore", out, "--data-dir", data)
        srv.stop()
        r2 = self.server(data_dir=data)
        with grpc.insecure_channel(r2.addr) as ch:
            st = pb_grpc.StemeDBStub(ch).Status(pb.StatusRequest(), timeout=5)
            self.assertEqual(st.last_sequence, last)
            self.assertEqual(st.assertion_count, last)
            # Batches of 10 are whole: the "during" claims are a multiple of 10.
            self.assertEqual((last - 300) % 10, 0)

    def make_backup(self, n=400):
        srv = self.server()
        with grpc.insecure_channel(srv.addr) as ch:
            stub = pb_grpc.StemeDBStub(ch)
            for i in range(0, n, 10):
                stub.AssertBatch(pb.AssertBatchRequest(assertions=[claim("x", i + k) for k in range(10)]),
                                 timeout=10)
        out = os.path.join(self.tmp, "b.tar.zst")
        cli("--server", srv.addr, "backup", "--out", out)
        return out

    def test_verify_rejects_damage_with_a_precise_message(self):
        out = self.make_backup()
        with open(out, "rb") as f:
            good = f.read()
        cases = {
            "truncated": good[: len(good) // 2],
            "flipped byte": good[:len(good) // 3] + bytes([good[len(good) // 3] ^ 0x20]) + good[len(good) // 3 + 1:],
            "no end": good[:-8],
        }
        for what, data in cases.items():
            bad = os.path.join(self.tmp, "bad.tar.zst")
            with open(bad, "wb") as f:
                f.write(data)
            r = cli("verify", bad, check=False)
            self.assertEqual(r.returncode, 1, what)
            self.assertIn("stemedb verify: %s: " % bad, r.stderr, what)
            self.assertNotIn("OK", r.stdout, what)
        # Damage inside a member that zstd cannot see: rebuild the archive
        # with one byte of a WAL segment changed.
        x = os.path.join(self.tmp, "x")
        os.makedirs(x)
        subprocess.run("zstd -dcq %s | tar -x -C %s" % (out, x), shell=True, check=True)
        seg = sorted(os.listdir(os.path.join(x, "wal")))[0]
        p = os.path.join(x, "wal", seg)
        with open(p, "rb") as f:
            b = bytearray(f.read())
        b[200] ^= 1
        with open(p, "wb") as f:
            f.write(b)
        bad = os.path.join(self.tmp, "member.tar.zst")
        subprocess.run("tar -C %s -c --format=ustar wal MANIFEST.json | zstd -q -o %s" % (x, bad),
                       shell=True, check=True)
        r = cli("verify", bad, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("wal/%s at offset" % seg, r.stderr)
        # A tampered manifest.
        with open(os.path.join(x, "MANIFEST.json")) as f:
            m = f.read()
        b[200] ^= 1
        with open(p, "wb") as f:
            f.write(b)
        with open(os.path.join(x, "MANIFEST.json"), "w") as f:
            f.write(m.replace('"claims": 400', '"claims": 399'))
        subprocess.run("tar -C %s -c --format=ustar wal MANIFEST.json | zstd -q -f -o %s" % (x, bad),
                       shell=True, check=True)
        r = cli("verify", bad, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("400 claims decode, the manifest says 399", r.stderr)

    def test_restore_refuses_a_non_empty_directory_and_cuts_batches_whole(self):
        out = self.make_backup()
        data = os.path.join(self.tmp, "d")
        os.makedirs(data)
        with open(os.path.join(data, "keep"), "w") as f:
            f.write("x")
        r = cli("restore", out, "--data-dir", data, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("not empty", r.stderr)
        self.assertTrue(os.path.exists(os.path.join(data, "keep")))
        r = cli("restore", out, "--data-dir", data, "--force", "--to-sequence", "155")
        self.assertIn("sequences 1..150 ", r.stdout)  # the batch 151..160 is dropped whole
        self.assertFalse(os.path.exists(os.path.join(data, "keep")))

    def test_archive_command_failures_are_retried_and_counted(self):
        arch = os.path.join(self.tmp, "arch")
        gate = os.path.join(self.tmp, "gate")
        # Fails until the gate file exists.
        cmd = "test -e %s && %s %%p %%f %s" % (gate, ARCHIVE_TO_DIR, arch)
        srv = self.server(extra=["--wal-archive-command", cmd])
        with grpc.insecure_channel(srv.addr) as ch:
            stub = pb_grpc.StemeDBStub(ch)
            for i in range(0, 3000, 20):
                stub.AssertBatch(pb.AssertBatchRequest(assertions=[claim("a", i + k) for k in range(20)]),
                                 timeout=10)
            sealed = len([f for f in os.listdir(os.path.join(srv.data_dir, "wal")) if f.endswith(".wal")]) - 1
            self.assertGreaterEqual(sealed, 2)
            stmtest.wait_until(lambda: metric(stub, "stemedb_wal_archive_failures_total") >= 2, 20, "failures")
            stmtest.wait_until(lambda: metric(stub, "stemedb_wal_archive_pending_segments") == sealed,
                               20, "pending segments")
            self.assertGreater(metric(stub, "stemedb_wal_archive_oldest_unarchived_age_seconds"), -1)
            self.assertEqual(metric(stub, "stemedb_wal_archived_segments_total"), 0)
            open(gate, "w").close()
            stmtest.wait_until(lambda: metric(stub, "stemedb_wal_archived_segments_total") >= sealed, 60, "archive")
            self.assertEqual(metric(stub, "stemedb_wal_archive_pending_segments"), 0)
            self.assertEqual(metric(stub, "stemedb_wal_archive_oldest_unarchived_age_seconds"), 0)
        names = sorted(os.listdir(arch))
        self.assertEqual(len(names), sealed)
        # Every archived file is a sealed segment, byte for byte.
        for n in names:
            raw = subprocess.run(["zstd", "-dcq", os.path.join(arch, n)], capture_output=True, check=True).stdout
            with open(os.path.join(srv.data_dir, "wal", n[:-4]), "rb") as f:
                self.assertEqual(raw, f.read())


if __name__ == "__main__":
    unittest.main(verbosity=2)

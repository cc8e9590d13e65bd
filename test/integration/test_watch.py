"""Watch (server streaming) through Python grpcio against a real
stemedb-server: live events, filters, catch-up from memory and from
storage, the switch to live with no gap or duplicate, pruned starts,
slow-consumer cut, limits, shutdown, and resume across restarts."""

import queue
import re
import signal
import sys
import threading
import time
import unittest

import grpc

import stmtest

pb, pb_grpc, types_pb2, health_pb2, health_pb2_grpc = stmtest.stubs()
ET = types_pb2
CLAIM, PROGRESS = ET.EVENT_TYPE_CLAIM, ET.EVENT_TYPE_PROGRESS


def claim(path, pred="p", value=0):
    v = types_pb2.Value()
    if isinstance(value, str):
        v.string_value = value
    else:
        v.number_value = value
    return pb.AssertRequest(concept_path=path, predicate=pred, value=v)


def write_batch(stub, reqs):
    """AssertBatch; returns the sequences of the created claims."""
    r = stub.AssertBatch(pb.AssertBatchRequest(assertions=reqs), timeout=30)
    return [x.sequence for x in r.results if x.created]


class Watcher:
    """Consumes a Watch stream on a thread into a queue of events; the
    final status (or None for a clean end) arrives as an RpcError item."""

    def __init__(self, stub, deadline_s=120, **req):
        self.call = stub.Watch(pb.WatchRequest(**req), timeout=deadline_s)
        self.q = queue.Queue()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        try:
            for ev in self.call:
                self.q.put(ev)
            self.q.put(None)
        except grpc.RpcError as e:
            self.q.put(e)

    def next(self, timeout=10):
        return self.q.get(timeout=timeout)

    def wait_progress(self, timeout=10):
        """Skip to the first progress event (the switch to live)."""
        deadline = time.monotonic() + timeout
        while True:
            ev = self.next(max(0.01, deadline - time.monotonic()))
            if isinstance(ev, pb.WatchEvent) and ev.type == PROGRESS:
                return ev
            if not isinstance(ev, pb.WatchEvent):
                raise AssertionError("stream ended: %r" % (ev,))

    def claims(self, n, timeout=20):
        """The next n claim events (progress events are skipped)."""
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            ev = self.next(max(0.01, deadline - time.monotonic()))
            if not isinstance(ev, pb.WatchEvent):
                raise AssertionError("stream ended after %d: %r" % (len(out), ev))
            if ev.type == CLAIM:
                out.append(ev)
        return out

    def cancel(self):
        self.call.cancel()
        self.t.join(10)


class WatchTest(stmtest.ServerTestCase, unittest.TestCase):
    server_args = ["--watch-history-events", "256"]

    def test_live_events_arrive_in_order_after_a_first_progress(self):
        w = Watcher(self.stub, concept_prefix="live")
        first = w.wait_progress()
        seqs = write_batch(self.stub, [claim("live/a", "p", i) for i in range(20)])
        evs = w.claims(20)
        self.assertEqual([e.sequence for e in evs], seqs)
        self.assertGreater(seqs[0], first.sequence)
        self.assertEqual(evs[3].claim.concept_path, "live/a")
        self.assertEqual(evs[3].claim.value.number_value, 3)
        self.assertEqual(evs[3].claim.sequence, evs[3].sequence)
        self.assertRegex(evs[3].claim.hash, "^[0-9a-f]{64}$")
        w.cancel()

    def test_prefix_and_predicate_filter(self):
        w = Watcher(self.stub, concept_prefix="filt/a", predicate="keep")
        w.wait_progress()
        reqs = [claim("filt/a", "keep", 1), claim("filt/ab", "keep", 2),
                claim("filt/a/b", "keep", 3), claim("filt/a", "drop", 4),
                claim("filt", "keep", 5), claim("filt/a/c/d", "keep", 6)]
        write_batch(self.stub, reqs)
        evs = w.claims(3)
        self.assertEqual([e.claim.value.number_value for e in evs], [1, 3, 6])
        # Nothing else matched: the next thing is a progress event or nothing.
        write_batch(self.stub, [claim("filt/a", "keep", 7)])
        self.assertEqual(w.claims(1)[0].claim.value.number_value, 7)
        w.cancel()

    def test_event_type_filter_and_bad_requests(self):
        with self.assertRaises(grpc.RpcError) as ctx:
            list(self.stub.Watch(pb.WatchRequest(concept_prefix="bad//x"), timeout=5))
        self.assertEqual(ctx.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("concept_prefix", ctx.exception.details())
        with self.assertRaises(grpc.RpcError) as ctx:
            list(self.stub.Watch(pb.WatchRequest(event_types=[PROGRESS]), timeout=5))
        self.assertIn("event_types", ctx.exception.details())
        with self.assertRaises(grpc.RpcError) as ctx:
            list(self.stub.Watch(pb.WatchRequest(progress_interval_ms=3), timeout=5))
        self.assertIn("progress_interval_ms", ctx.exception.details())
        # Only votes: claims never arrive, progress does.
        w = Watcher(self.stub, concept_prefix="types", event_types=[ET.EVENT_TYPE_VOTE],
                    progress_interval_ms=20)
        w.wait_progress()
        write_batch(self.stub, [claim("types/x", "p", 1)])
        p = w.wait_progress()
        self.assertEqual(p.type, PROGRESS)
        w.cancel()

    def test_votes_epochs_and_sources_are_events_too(self):
        # A vote travels under its claim's concept, an epoch under its own,
        # a source (in no concept) only to watches without concept filter.
        scoped = Watcher(self.stub, concept_prefix="recev", progress_interval_ms=50)
        sources = Watcher(self.stub, event_types=[ET.EVENT_TYPE_SOURCE])
        scoped.wait_progress()
        sources.wait_progress()
        c = self.stub.Assert(claim("recev/a", "p", 1), timeout=5)
        v = self.stub.Vote(pb.VoteRequest(assertion_hash=c.hash, voter_id="alice", weight=0.5),
                           timeout=5)
        e = self.stub.StartEpoch(pb.StartEpochRequest(concept_path="recev/a", predicate="p",
                                                      reason="recall"), timeout=5).epoch
        src = self.stub.PutSource(pb.PutSourceRequest(
            source=types_pb2.Source(id="lab://watched", tier=2)), timeout=5).source
        self.stub.StartEpoch(pb.StartEpochRequest(concept_path="elsewhere", reason="x"), timeout=5)

        def events(w, n):
            out = []
            deadline = time.monotonic() + 20
            while len(out) < n:
                ev = w.next(max(0.01, deadline - time.monotonic()))
                self.assertIsInstance(ev, pb.WatchEvent, "stream ended: %r" % (ev,))
                if ev.type != PROGRESS:
                    out.append(ev)
            return out

        got = events(scoped, 3)
        self.assertEqual([(x.type, x.sequence) for x in got],
                         [(CLAIM, c.sequence), (ET.EVENT_TYPE_VOTE, v.sequence),
                          (ET.EVENT_TYPE_EPOCH, e.sequence)])
        self.assertEqual(got[0].claim.hash, c.hash)
        self.assertEqual((got[1].vote.assertion_hash, got[1].vote.voter_id, got[1].vote.weight),
                         (c.hash, "alice", 0.5))
        self.assertEqual((got[2].epoch.concept_path, got[2].epoch.reason), ("recev/a", "recall"))
        s = events(sources, 1)[0]
        self.assertEqual((s.type, s.sequence, s.source.id, s.source.tier),
                         (ET.EVENT_TYPE_SOURCE, src.sequence, "lab://watched", 2))
        # Nothing else reached the scoped watch: the next event is progress
        # past the last write (the epoch of "elsewhere").
        p = scoped.wait_progress()
        self.assertGreaterEqual(p.sequence, e.sequence)
        # The same events read back from a resume point.
        again = Watcher(self.stub, concept_prefix="recev", start_sequence=c.sequence)
        self.assertEqual([(x.type, x.sequence) for x in events(again, 3)],
                         [(x.type, x.sequence) for x in got])
        for w in (scoped, sources, again):
            w.cancel()

    def test_progress_tells_an_idle_client_it_is_up_to_date(self):
        w = Watcher(self.stub, concept_prefix="idle/none", progress_interval_ms=50)
        w.wait_progress()
        seqs = write_batch(self.stub, [claim("idle/other", "p", i) for i in range(5)])
        deadline = time.monotonic() + 10
        while True:
            p = w.wait_progress()
            if p.sequence >= seqs[-1]:
                break
            self.assertLess(time.monotonic(), deadline)
        w.cancel()

    def test_catch_up_from_memory_then_storage_then_live_without_gap(self):
        # 1000 claims with a 256-event ring: a start at the first one reads
        # storage, then the ring, then switches to live while a writer runs.
        seqs = write_batch(self.stub, [claim("cu/x", "p", i) for i in range(1000)])
        stop = threading.Event()
        written = list(seqs)

        def writer():
            i = 0
            while not stop.is_set() and i < 2000:
                written.extend(write_batch(self.stub, [claim("cu/y", "p", i + k) for k in range(20)]))
                i += 20

        t = threading.Thread(target=writer)
        t.start()
        w = Watcher(self.stub, concept_prefix="cu", start_sequence=seqs[0])
        got = w.claims(1500)
        stop.set()
        t.join()
        got += w.claims(len(written) - 1500)
        self.assertEqual([e.sequence for e in got], written)
        # A start in the ring only.
        w2 = Watcher(self.stub, concept_prefix="cu", start_sequence=written[-50])
        self.assertEqual([e.sequence for e in w2.claims(50)], written[-50:])
        w.cancel()
        w2.cancel()

    def test_cancel_racing_a_progress_send_keeps_the_server_alive(self):
        # The hub thread sends progress events while clients cancel. A
        # cancelled call's send fails at once, and its completion-queue
        # thread could finish and free the call before the hub thread's
        # stm_call_stream_send had returned and stopped touching it (a
        # heap-use-after-free that killed the shared server of this class
        # in one ASan CI run). The test hook sleeps right after the send's
        # batch starts, so the race is hit in well under a second if the
        # call is touched there again.
        srv = stmtest.Server(env={"STEMEDB_TEST_STREAM_SEND_DELAY_US": "3000"}).start()
        try:
            stop = time.monotonic() + 3.0
            errors, done = [], [0]

            def churn(seed):
                import random
                rnd = random.Random(seed)
                with grpc.insecure_channel(srv.addr) as ch:
                    stub = pb_grpc.StemeDBStub(ch)
                    while time.monotonic() < stop and not errors:
                        call = stub.Watch(pb.WatchRequest(
                            event_types=[ET.EVENT_TYPE_VOTE],
                            progress_interval_ms=rnd.choice([10, 15, 20])), timeout=10)
                        try:
                            n = rnd.randint(1, 3)
                            for ev in call:
                                n -= 1
                                if n == 0:
                                    break
                            time.sleep(rnd.random() * 0.02)
                        except grpc.RpcError as e:
                            errors.append("%s: %s" % (e.code(), e.details()))
                        call.cancel()
                        done[0] += 1

            ts = [threading.Thread(target=churn, args=(i,)) for i in range(4)]
            for t in ts:
                t.start()
            for t in ts:
                t.join(30)
            self.assertEqual(errors, [])
            self.assertGreater(done[0], 50)
            self.assertIsNone(srv.proc.poll(), "the server died")
        finally:
            self.assertEqual(srv.stop(), 0)
            srv.cleanup()

    def test_limit_per_connection_is_resource_exhausted(self):
        srv = stmtest.Server(extra_args=["--watch-max-per-connection", "2"]).start()
        try:
            with grpc.insecure_channel(srv.addr) as ch:
                stub = pb_grpc.StemeDBStub(ch)
                a, b = Watcher(stub), Watcher(stub)
                a.wait_progress()
                b.wait_progress()
                with self.assertRaises(grpc.RpcError) as ctx:
                    list(stub.Watch(pb.WatchRequest(), timeout=5))
                self.assertEqual(ctx.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
                self.assertIn("watch-max-per-connection", ctx.exception.details())
                # A cancelled watch frees its slot.
                a.cancel()
                c = stmtest.wait_until(lambda: self._try_watch(stub), 10, "a freed slot")
                c.cancel()
                b.cancel()
        finally:
            self.assertEqual(srv.stop(), 0)
            srv.cleanup()

    def _try_watch(self, stub):
        w = Watcher(stub)
        ev = w.next()
        if isinstance(ev, pb.WatchEvent):
            return w
        return None


class WatchServerLifecycleTest(unittest.TestCase):
    def test_pruned_start_is_out_of_range_naming_the_oldest(self):
        # A replay window of 50 sequences; the in-memory history is smaller,
        # so the allowed catch-up reads storage.
        srv = stmtest.Server(extra_args=["--watch-retention-events", "50",
                                         "--watch-history-events", "10"]).start()
        try:
            with grpc.insecure_channel(srv.addr) as ch:
                stub = pb_grpc.StemeDBStub(ch)
                seqs = write_batch(stub, [claim("pr/x", "p", i) for i in range(200)])
                with self.assertRaises(grpc.RpcError) as ctx:
                    list(stub.Watch(pb.WatchRequest(start_sequence=seqs[0]), timeout=5))
                self.assertEqual(ctx.exception.code(), grpc.StatusCode.OUT_OF_RANGE)
                self.assertIn("oldest available sequence is %d" % seqs[150], ctx.exception.details())
                w = Watcher(stub, start_sequence=seqs[150])
                self.assertEqual([e.sequence for e in w.claims(50)], seqs[150:])
                w.cancel()
        finally:
            self.assertEqual(srv.stop(), 0)
            srv.cleanup()

    def test_slow_consumer_is_cut_and_resumes_where_told(self):
        srv = stmtest.Server(extra_args=["--watch-buffer-events", "16",
                                         "--watch-max-lag-events", "200"]).start()
        try:
            with grpc.insecure_channel(srv.addr) as ch:
                stub = pb_grpc.StemeDBStub(ch)
                call = stub.Watch(pb.WatchRequest(concept_prefix="slow"), timeout=60)
                it = iter(call)
                self.assertEqual(next(it).type, PROGRESS)
                # Never read while 8 MB of events are written: the transport
                # windows fill, then the 16-event buffer, then the cut.
                big = "x" * 8000
                written = []
                for b in range(20):
                    written += write_batch(stub, [claim("slow/x", "p", big + str(b * 50 + i)) for i in range(50)])
                seen = []
                with self.assertRaises(grpc.RpcError) as ctx:
                    for ev in it:
                        if ev.type == CLAIM:
                            seen.append(ev.sequence)
                self.assertEqual(ctx.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
                m = re.search(r"start_sequence=(\d+)", ctx.exception.details())
                self.assertIsNotNone(m, ctx.exception.details())
                resume = int(m.group(1))
                self.assertLess(len(seen), len(written))
                self.assertEqual(resume, seen[-1] + 1 if seen else written[0])
                w = Watcher(stub, concept_prefix="slow", start_sequence=resume)
                rest = w.claims(len(written) - len(seen))
                self.assertEqual(seen + [e.sequence for e in rest], written)
                w.cancel()
        finally:
            self.assertEqual(srv.stop(), 0)
            srv.cleanup()

    def test_shutdown_ends_streams_with_unavailable_and_a_resume_point(self):
        srv = stmtest.Server().start()
        try:
            ch = grpc.insecure_channel(srv.addr)
            stub = pb_grpc.StemeDBStub(ch)
            w = Watcher(stub)
            p = w.wait_progress()
            t0 = time.monotonic()
            srv.proc.send_signal(signal.SIGTERM)
            end = w.next(10)
            while isinstance(end, pb.WatchEvent):
                end = w.next(10)
            self.assertEqual(end.code(), grpc.StatusCode.UNAVAILABLE)
            self.assertIn("start_sequence=%d" % (p.sequence + 1), end.details())
            # Within the 200 ms NOT_SERVING delay, not after the 5 s grace.
            self.assertLess(time.monotonic() - t0, 2.0)
            ch.close()
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.cleanup()

    def test_shutdown_during_catch_up_from_storage_exits_cleanly(self):
        """SIGTERM while many streams catch up from storage (their start is
        long out of the in-memory history): the store closes only after the
        running catch-up reads end, so the server exits 0 (LevelDB aborts
        if it is closed under an open iterator), and every stream ends with
        UNAVAILABLE naming where to resume."""
        srv = stmtest.Server(extra_args=["--watch-history-events", "64"]).start()
        ch = grpc.insecure_channel(srv.addr)
        try:
            stub = pb_grpc.StemeDBStub(ch)
            for b in range(30):
                write_batch(stub, [claim("cu/%d" % b, "p", i) for i in range(100)])
            watchers = [Watcher(stub, concept_prefix="cu", start_sequence=1)
                        for _ in range(40)]
            for w in watchers:  # each is reading from storage now
                self.assertIsInstance(w.next(10), pb.WatchEvent)
            srv.proc.send_signal(signal.SIGTERM)
            for w in watchers:
                end = w.next(20)
                while isinstance(end, pb.WatchEvent):
                    end = w.next(20)
                self.assertIsInstance(end, grpc.RpcError)
                self.assertEqual(end.code(), grpc.StatusCode.UNAVAILABLE)
                self.assertIn("start_sequence=", end.details(), srv.read_log()[-3000:])
            ch.close()
            self.assertEqual(srv.stop(), 0)
        finally:
            ch.close()
            srv.cleanup()

    def test_memory_stays_bounded_with_many_streams_that_never_read(self):
        """100 watches that never read while 16 MB of claims are written:
        each stream holds at most --watch-buffer-events events (plus what
        HTTP/2 flow control lets through), so the server grows by a few
        MB, not by 100 x 16 MB."""
        srv = stmtest.Server(extra_args=["--watch-buffer-events", "64",
                                         "--watch-history-events", "256"]).start()
        chans = []
        try:
            def rss_kb():
                with open("/proc/%d/status" % srv.proc.pid) as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            return int(line.split()[1])
            chans = [grpc.insecure_channel(srv.addr) for _ in range(4)]
            calls = []
            for i in range(100):
                c = pb_grpc.StemeDBStub(chans[i % 4]).Watch(pb.WatchRequest(concept_prefix="mem"), timeout=120)
                calls.append(c)
            for c in calls:  # each is live; then nobody reads again
                self.assertEqual(next(c).type, PROGRESS)
            stub = pb_grpc.StemeDBStub(chans[0])
            write_batch(stub, [claim("warm/x", "p", i) for i in range(10)])
            before = rss_kb()
            big = "m" * 4000
            for b in range(40):
                write_batch(stub, [claim("mem/x", "p", big + "%d-%d" % (b, i)) for i in range(100)])
            grown_mb = (rss_kb() - before) / 1024.0
            print("server RSS growth with 100 stalled streams: %.1f MB" % grown_mb, file=sys.stderr)
            # Under ASan RSS says little (quarantine, redzones, shadow
            # memory): there the run checks leaks and memory errors only.
            if "asan" not in open("/proc/%d/maps" % srv.proc.pid).read():
                self.assertLess(grown_mb, 96, "server RSS grew by %.1f MB" % grown_mb)
            for c in calls:
                c.cancel()
        finally:
            for ch in chans:
                ch.close()
            self.assertEqual(srv.stop(), 0)
            srv.cleanup()

    def test_resume_across_restarts_sees_every_claim_once_in_order(self):
        """10 000 claims written in batches while the client cancels and
        reconnects (start_sequence = last seen + 1) and the server restarts
        twice: the union equals what was written, in order."""
        srv = stmtest.Server(extra_args=["--watch-history-events", "500"]).start()
        total, batch = 10000, 100
        written, seen = [], []
        writer_errors = []
        lock = threading.Lock()
        try:
            def connect():
                # A new channel per reconnect is a new connection, with no
                # transparent retry: see stmtest.RESTART_SAFE_CHANNEL_OPTIONS
                # (with the defaults gRPC 1.51 can lose the end of a Watch
                # started while the server stops, and the iterator hangs).
                ch = stmtest.restart_safe_channel(srv.addr)
                return ch, pb_grpc.StemeDBStub(ch)

            wch, wstub = connect()
            done = threading.Event()
            restart_at = {3000, 7000}

            def writer():
                nonlocal wch, wstub
                i = 0
                try:
                    while i < total:
                        try:
                            s = write_batch(wstub, [claim("rs/%d" % (k % 7), "p", k) for k in range(i, i + batch)])
                        except grpc.RpcError:
                            time.sleep(0.05)
                            wch.close()
                            wch, wstub = connect()
                            continue
                        with lock:
                            written.extend(s)
                        i += batch
                        if i in restart_at:
                            restart_at.discard(i)
                            srv.stop()
                            srv.start()
                except BaseException as e:  # reported by the main thread
                    writer_errors.append(e)
                finally:
                    done.set()

            def caught_up():
                with lock:
                    return done.is_set() and bool(seen) and bool(written) and seen[-1] >= written[-1]

            t = threading.Thread(target=writer, daemon=True)
            t.start()
            deadline = time.monotonic() + 120
            rounds = 0
            while time.monotonic() < deadline and not writer_errors:
                start = seen[-1] + 1 if seen else 1
                ch, stub = connect()
                try:
                    # Progress events (the stream is idle once the writer is
                    # done) let the loop notice that it has caught up.
                    w = Watcher(stub, deadline_s=30, concept_prefix="rs", start_sequence=start,
                                progress_interval_ms=100)
                    n = 0
                    while True:
                        # The stream ends by its 30 s deadline at the latest;
                        # waiting on the queue, not on the iterator, turns a
                        # lost end into a failure instead of a hang.
                        try:
                            ev = w.next(timeout=45)
                        except queue.Empty:
                            # active False: the status is in but the
                            # iterator never ended (the gRPC client bug).
                            self.fail("round %d (start_sequence=%d): no event and no end of the "
                                      "stream 45 s after a Watch with a 30 s deadline (call active: %s)"
                                      % (rounds, start, w.call.is_active()))
                        if isinstance(ev, grpc.RpcError):
                            self.assertIn(ev.code(), (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED),
                                          ev.details())
                            time.sleep(0.02)
                            break
                        self.assertIsNotNone(ev, "a Watch stream never ends with OK")
                        if ev.type == CLAIM:
                            seen.append(ev.sequence)
                            n += 1
                        if n >= 700 + 300 * (rounds % 3):  # disconnect now and then
                            w.call.cancel()
                            break
                        if caught_up():
                            w.call.cancel()
                            break
                finally:
                    ch.close()
                rounds += 1
                if caught_up():
                    break
            t.join(60)
            self.assertFalse(t.is_alive(), "the writer did not finish")
            self.assertEqual(writer_errors, [])
            self.assertEqual(len(written), total)
            self.assertEqual(seen, written)
            self.assertGreaterEqual(rounds, 5)
            wch.close()
        finally:
            self.assertEqual(srv.stop(), 0)
            srv.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)

#!/usr/bin/env python3
"""Load N claims into a stemedb-server for the query benchmark: N - 100
background claims spread over N/100 concepts (bench/load/cNNNNN, predicate
p, 100 claims each), then the target concept bench/q (predicate p) with 100
claims from 10 sources (3 of them registered), 50 votes on them and one
epoch halfway, so every lens input is looked up for real. AssertBatch of
10,000 claims per call. Usage: load_claims.py ADDR N"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "test", "integration"))
import grpc  # noqa: E402
import stmtest  # noqa: E402

pb, pb_grpc, types_pb2, _, _ = stmtest.stubs()


def req(path, i, src):
    return pb.AssertRequest(concept_path=path, predicate="p",
                            value=types_pb2.Value(string_value="v%d" % (i % 7)),
                            source_id=src, timestamp_ns=i + 1)


def main():
    addr, n = sys.argv[1], int(sys.argv[2])
    with grpc.insecure_channel(addr, options=[("grpc.max_send_message_length", 64 << 20)]) as ch:
        stub = pb_grpc.StemeDBStub(ch)
        batch = []
        for i in range(max(0, n - 100)):
            batch.append(req("bench/load/c%05d" % (i // 100), i, "community://u%d" % (i % 50)))
            if len(batch) == 10000:
                stub.AssertBatch(pb.AssertBatchRequest(assertions=batch), timeout=600)
                batch = []
        if batch:
            stub.AssertBatch(pb.AssertBatchRequest(assertions=batch), timeout=600)
        for k, tier in ((0, 0), (1, 1), (2, 3)):
            stub.PutSource(pb.PutSourceRequest(source=types_pb2.Source(
                id="src%d" % k, tier=tier, trust=0.9)), timeout=10)
        hashes = []
        for i in range(100):
            if i == 50:
                stub.StartEpoch(pb.StartEpochRequest(concept_path="bench/q", predicate="p"),
                                timeout=10)
            hashes.append(stub.Assert(req("bench/q", i, "src%d" % (i % 10)), timeout=10).hash)
        for i in range(50):
            stub.Vote(pb.VoteRequest(assertion_hash=hashes[i * 2], voter_id="src%d" % (i % 4),
                                     weight=0.5), timeout=10)


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# REST gateway end to end with curl: the seed runbook's commands verbatim
# (host and port aside) plus every error status of the contract. Starts a
# real stemedb-server and stemedb-gateway on free loopback ports.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)

. "$HERE/lib.sh"
# Every request is bounded in time, so a hung gateway fails the test
# instead of hanging it; the runbook's command lines stay verbatim.
curl() { command curl --max-time 30 "$@"; }

start_stack rest
BASE="http://localhost:$HTTP_PORT"

# --- the seed runbook, verbatim but for host and port --------------------
out=$(curl http://localhost:$HTTP_PORT/v1/health 2>/dev/null)
check "runbook: health says healthy" healthy "$(echo "$out" | jq -r .status)"
ASSERTION_COUNT=$(curl -s http://localhost:$HTTP_PORT/v1/health | jq '.assertion_count')
check "runbook: assertion_count starts at 0" 0 "$ASSERTION_COUNT"
out=$(curl http://localhost:$HTTP_PORT/metrics 2>/dev/null | grep cluster_members)
check "runbook: no cluster_members metric on a single node" "" "$out"

code=$(curl -s -o "$WORK/a1" -w '%{http_code}' -X POST http://localhost:$HTTP_PORT/v1/assert \
  -H "Content-Type: application/json" \
  -d '{"concept_path": "test/cluster", "predicate": "replicated", "value": true}')
check "runbook: assert answers 201" 201 "$code"
check "runbook: assert created" true "$(jq -r .created "$WORK/a1")"
HASH=$(jq -r .hash "$WORK/a1")
check "runbook: hash is 64 hex" 64 "$(printf %s "$HASH" | grep -Ec '^[0-9a-f]{64}$' | sed 's/1/64/')"
code=$(curl -s -o "$WORK/a2" -w '%{http_code}' -X POST http://localhost:$HTTP_PORT/v1/assert \
  -H "Content-Type: application/json" \
  -d '{"concept_path": "test/cluster", "predicate": "replicated", "value": true}')
check "re-assert answers 200" 200 "$code"
check "re-assert is not created" false "$(jq -r .created "$WORK/a2")"
check "re-assert gives the same hash" "$HASH" "$(jq -r .hash "$WORK/a2")"

out=$(curl -X POST http://localhost:$HTTP_PORT/v1/query \
  -H "Content-Type: application/json" \
  -d '{"concept_path": "test/cluster", "lens": "recency"}' 2>/dev/null)
check "runbook: query returns the assertion" "$HASH" "$(echo "$out" | jq -r '.results[0].winner.hash')"
check "query value" true "$(echo "$out" | jq -r '.results[0].value')"
check "query candidates_count" 1 "$(echo "$out" | jq -r '.results[0].candidates_count')"
check "query confidence" 1 "$(echo "$out" | jq -r '.results[0].confidence')"
check "query winner.predicate" replicated "$(echo "$out" | jq -r '.results[0].winner.predicate')"
check "health counts the assertion" 1 "$(curl -s http://localhost:$HTTP_PORT/v1/health | jq '.assertion_count')"

# --- the rest of the contract ----------------------------------------------
out=$(curl -s "$BASE/v1/assertions/$HASH")
check "GET /v1/assertions/{hash}" test/cluster "$(echo "$out" | jq -r .concept_path)"
check "GET missing assertion is 404" 404 "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/v1/assertions/$(printf 'a%.0s' $(seq 64))")"
code=$(curl -s -o "$WORK/b" -w '%{http_code}' -X POST "$BASE/v1/assert/batch" -H 'Content-Type: application/json' \
  -d '{"assertions":[{"concept_path":"rest/batch","predicate":"a","value":"x","source":"wiki://a","confidence":0.5,"timestamp_ns":5},{"concept_path":"rest/batch","predicate":"b","value":2.5}]}')
check "batch answers 201" 201 "$code"
check "batch returns two results" 2 "$(jq '.results | length' "$WORK/b")"
out=$(curl -s -X POST "$BASE/v1/query" -H 'Content-Type: application/json' -d '{"concept_path":"rest/batch","predicate":"a"}')
check "query by predicate keeps source" wiki://a "$(echo "$out" | jq -r '.results[0].winner.source')"

status_of() { curl -s -o "$WORK/err" -w '%{http_code}' "$@"; }
check "malformed JSON is 400" 400 "$(status_of -X POST "$BASE/v1/assert" -H 'Content-Type: application/json' -d '{"concept_path":')"
check "error body has a code" INVALID_ARGUMENT "$(jq -r .error.code "$WORK/err")"
check "wrong type is 400" 400 "$(status_of -X POST "$BASE/v1/assert" -H 'Content-Type: application/json' -d '{"concept_path":5,"predicate":"p","value":1}')"
check "wrong type names the field" concept_path "$(jq -r .error.field "$WORK/err")"
check "empty predicate is 400" 400 "$(status_of -X POST "$BASE/v1/assert" -H 'Content-Type: application/json' -d '{"concept_path":"a","predicate":"","value":1}')"
check "empty predicate names the field" predicate "$(jq -r .error.field "$WORK/err")"
check "unknown lens is 400" 400 "$(status_of -X POST "$BASE/v1/query" -H 'Content-Type: application/json' -d '{"concept_path":"a","lens":"magic"}')"
check "unknown lens names the field" lens "$(jq -r .error.field "$WORK/err")"
check "unknown fields are ignored" 201 "$(status_of -X POST "$BASE/v1/assert" -H 'Content-Type: application/json' -d '{"concept_path":"rest/x","predicate":"p","value":"v","whatever":[1,2]}')"
printf '{"concept_path":"rest/u","predicate":"p","value":"\xff\xfe"}' >"$WORK/bad-utf8.json"
check "invalid UTF-8 is 400" 400 "$(status_of -X POST "$BASE/v1/assert" -H 'Content-Type: application/json' --data-binary @"$WORK/bad-utf8.json")"
check "not JSON is 415" 415 "$(status_of -X POST "$BASE/v1/assert" -H 'Content-Type: text/plain' -d 'hello')"
head -c 1100000 /dev/zero | tr '\0' 'a' >"$WORK/big"
check "body over 1 MiB is 413" 413 "$(status_of -X POST "$BASE/v1/assert" -H 'Content-Type: application/json' --data-binary @"$WORK/big")"
TOKEN=$(head -c 9000 /dev/zero | tr '\0' 'a')
check "a 9 KB bearer token is accepted (headers up to 16 KiB)" 200 \
  "$(status_of -H "Authorization: Bearer $TOKEN" "$BASE/v1/health")"
check "unknown route is 404" 404 "$(status_of "$BASE/v1/nothing-here")"
check "wrong method is 405" 405 "$(status_of -X DELETE "$BASE/v1/assert")"
out=$(curl -s "$BASE/metrics")
contains "metrics has stemedb_assertions_total" "stemedb_assertions_total" "$out"
contains "metrics has per-route counters" "route=" "$out"
contains "metrics has latency histograms" "_bucket" "$out"
check "server still healthy after bad input" healthy "$(curl -s "$BASE/v1/health" | jq -r .status)"

# --- server down: 503, then recovery -------------------------------------
kill -TERM "$SRV_PID"; wait "$SRV_PID"; rc=$?; SRV_PID=
check "server exits 0 on SIGTERM" 0 "$rc"
check "health is 503 with the server down" 503 "$(status_of "$BASE/v1/health")"
check "health body says unhealthy" unhealthy "$(jq -r .status "$WORK/err")"
check "assert is 503 with the server down" 503 "$(status_of -X POST "$BASE/v1/assert" -H 'Content-Type: application/json' -d '{"concept_path":"a","predicate":"p","value":1}')"
start_server
wait_healthy
check "acknowledged data survives the restart" "$HASH" "$(curl -s "$BASE/v1/assertions/$HASH" | jq -r .hash)"

kill -TERM "$GW_PID"; wait "$GW_PID"; rc=$?; GW_PID=
check "gateway exits 0 on SIGTERM" 0 "$rc"
kill -TERM "$SRV_PID"; wait "$SRV_PID"; rc=$?; SRV_PID=
check "restarted server exits 0 on SIGTERM" 0 "$rc"

echo "rest: $pass passed, $fail failed"
[ "$fail" -eq 0 ]

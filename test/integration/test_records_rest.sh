#!/usr/bin/env bash
# Issue 4 through the REST gateway with curl: every route of sources,
# votes, epochs, trace, audit, concepts and skeptic, and their error
# statuses. Starts a real stemedb-server and stemedb-gateway on free
# loopback ports.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)

. "$HERE/lib.sh"
curl() { command curl --max-time 30 -s "$@"; }

start_stack rrest
B="http://127.0.0.1:$HTTP_PORT"
J='Content-Type: application/json'
post() { curl -X POST "$B$1" -H "$J" -d "$2" -w '\n%{http_code}'; }
put() { curl -X PUT "$B$1" -H "$J" -d "$2" -w '\n%{http_code}'; }
get() { curl "$B$1" -w '\n%{http_code}'; }
code() { tail -n1 <<<"$1"; }
body() { sed '$d' <<<"$1"; }

# --- sources ---------------------------------------------------------------
r=$(put "/v1/sources?id=fda%3A%2F%2Flabel%2Fdrug" '{"name":"FDA label","tier":0,"trust":1}')
check "PUT /v1/sources?id= stores a source" 200 "$(code "$r")"
check "the id keeps its slashes" "fda://label/drug" "$(body "$r" | jq -r .source.id)"
r=$(put "/v1/sources/trial-a" '{"name":"Trial A","tier":1,"trust":0.9}')
check "PUT /v1/sources/{id}" "200 1" "$(code "$r") $(body "$r" | jq -r .source.tier)"
r=$(put "/v1/sources" '{"id":"pubmed://trial-b","tier":1}')
check "PUT /v1/sources with the id in the body" "200 1" "$(code "$r") $(body "$r" | jq -r .source.trust)"
r=$(get "/v1/sources/trial-a")
check "GET /v1/sources/{id}" "200 Trial A 0.9" "$(code "$r") $(body "$r" | jq -r '.name + " " + (.trust|tostring)')"
r=$(get "/v1/source?id=fda%3A%2F%2Flabel%2Fdrug")
check "GET /v1/source?id=" "200 0" "$(code "$r") $(body "$r" | jq -r .tier)"
r=$(get "/v1/sources?limit=2")
check "GET /v1/sources pages" "200 2 pubmed://trial-b" \
  "$(code "$r") $(body "$r" | jq '.sources|length') $(body "$r" | jq -r .next_page_token)"
r=$(get "/v1/sources?limit=2&page_token=pubmed%3A%2F%2Ftrial-b")
check "GET /v1/sources second page" "200 trial-a" "$(code "$r") $(body "$r" | jq -r '.sources[0].id')"
r=$(put "/v1/sources/x" '{"tier":6}')
check "bad tier is 400 naming source.tier" "400 source.tier" "$(code "$r") $(body "$r" | jq -r .error.field)"
r=$(put "/v1/sources/x" '{"tier":"one"}')
check "a tier that is not a number is 400" "400 source.tier" "$(code "$r") $(body "$r" | jq -r .error.field)"
r=$(put "/v1/sources/x" '{"trust":2}')
check "trust out of range is 400" "400 source.trust" "$(code "$r") $(body "$r" | jq -r .error.field)"
r=$(get "/v1/sources/nope")
check "unknown source is 404" 404 "$(code "$r")"

# --- claims, votes -----------------------------------------------------------
r=$(post /v1/assert '{"concept_path":"rest/drug","predicate":"side_effect","value":"rare","source":"fda://label/drug","timestamp_ns":1}')
A=$(body "$r" | jq -r .hash)
r=$(post /v1/assert "{\"concept_path\":\"rest/drug\",\"predicate\":\"side_effect\",\"value\":\"none\",\"source\":\"trial-a\",\"timestamp_ns\":2,\"parent_hash\":\"$A\"}")
C=$(body "$r" | jq -r .hash)
r=$(post /v1/votes "{\"assertion_hash\":\"$C\",\"voter_id\":\"dr-x\",\"weight\":1}")
check "POST /v1/votes is 201" 201 "$(code "$r")"
V=$(body "$r" | jq -r .hash)
r=$(post /v1/votes '{"assertion_hash":"0000000000000000000000000000000000000000000000000000000000000000","voter_id":"x","weight":1}')
check "a vote on an unknown claim is 404" 404 "$(code "$r")"
r=$(post /v1/votes '{"assertion_hash":"zz","voter_id":"x","weight":1}')
check "a vote with a bad hash is 400" "400 assertion_hash" "$(code "$r") $(body "$r" | jq -r .error.field)"
r=$(post /v1/votes "{\"assertion_hash\":\"$C\",\"voter_id\":\"x\",\"weight\":3}")
check "a vote weight out of range is 400" "400 weight" "$(code "$r") $(body "$r" | jq -r .error.field)"
r=$(post /v1/votes "{\"assertion_hash\":\"$C\",\"voter_id\":\"x\",\"weight\":\"1\"}")
check "a vote weight that is not a number is 400" "400 weight" "$(code "$r") $(body "$r" | jq -r .error.field)"
r=$(post /v1/votes "{\"assertion_hash\":\"$C\",\"weight\":1}")
check "a vote without voter_id is 400" "400 voter_id" "$(code "$r") $(body "$r" | jq -r .error.field)"
r=$(post /v1/assert '{"concept_path":"rest/drug","predicate":"side_effect","value":"x","signature":"00","public_key":"00"}')
check "a bad signature is 400" 400 "$(code "$r")"

# --- lenses through REST -------------------------------------------------------
r=$(post /v1/query '{"concept_path":"rest/drug","predicate":"side_effect","lens":"authority"}')
check "authority follows the registered tier" "rare 0" \
  "$(body "$r" | jq -r '.results[0].value + " " + (.results[0].winner.source_tier|tostring)')"
r=$(post /v1/query '{"concept_path":"rest/drug","predicate":"side_effect","lens":"vote"}')
check "vote lens counts the vote" none "$(body "$r" | jq -r '.results[0].value')"
r=$(get "/v1/skeptic?concept_path=rest%2Fdrug&predicate=side_effect")
check "GET /v1/skeptic" "200 CONTESTED 2" \
  "$(code "$r") $(body "$r" | jq -r '.results[0].status + " " + (.results[0].ranked|length|tostring)')"
check "skeptic renders conflict_score" true "$(body "$r" | jq '.results[0].conflict_score > 0')"
r=$(post /v1/query '{"concept_path":"rest/drug","lens":"layered"}')
check "layered renders tiers" "0 1" "$(body "$r" | jq -r '[.results[0].tiers[].tier]|map(tostring)|join(" ")')"
r=$(post /v1/query '{"concept_path":"rest/drug","lens":"nope"}')
check "unknown lens is 400" "400 lens" "$(code "$r") $(body "$r" | jq -r .error.field)"
r=$(get "/v1/skeptic")
check "skeptic without concept_path is 400" "400 concept_path" "$(code "$r") $(body "$r" | jq -r .error.field)"

# --- epochs, trace -------------------------------------------------------------
BEFORE=$(curl "$B/v1/status" | jq -r .last_sequence)
r=$(post /v1/epochs '{"concept_path":"rest/drug","predicate":"side_effect","reason":"label update"}')
check "POST /v1/epochs is 201 with number 1" "201 1" "$(code "$r") $(body "$r" | jq -r .epoch.number)"
E=$(body "$r" | jq -r .epoch.hash)
r=$(post /v1/epochs '{"concept_path":"bad path"}')
check "an epoch with a bad path is 400" "400 concept_path" "$(code "$r") $(body "$r" | jq -r .error.field)"
r=$(post /v1/query '{"concept_path":"rest/drug","predicate":"side_effect","lens":"epoch"}')
check "epoch lens ignores superseded claims" null "$(body "$r" | jq -r '.results[0].winner')"
r=$(post /v1/query "{\"concept_path\":\"rest/drug\",\"predicate\":\"side_effect\",\"lens\":\"epoch\",\"as_of_sequence\":$BEFORE}")
check "as_of before the epoch sees them" none "$(body "$r" | jq -r '.results[0].value')"
r=$(get "/v1/trace/$C")
check "GET /v1/trace: parent, vote, epoch" "200 $A $V $E" \
  "$(code "$r") $(body "$r" | jq -r '.parents[0].hash + " " + .votes[0].hash + " " + .superseded_by.hash')"
r=$(get "/v1/trace/$A")
check "GET /v1/trace: children" "$C" "$(body "$r" | jq -r '.children[0].hash')"
r=$(get "/v1/trace/$C?as_of_sequence=$((BEFORE - 1))")
check "trace as_of hides later votes and epochs" "0 null" \
  "$(body "$r" | jq -r '(.votes|length|tostring) + " " + (.superseded_by|tostring)')"
r=$(get "/v1/trace/xyz")
check "trace with a bad hash is 400" 400 "$(code "$r")"
r=$(get "/v1/trace/1111111111111111111111111111111111111111111111111111111111111111")
check "trace of an unknown claim is 404" 404 "$(code "$r")"

# --- audit, concepts -------------------------------------------------------------
r=$(get "/v1/audit?after_sequence=0&limit=100")
check "GET /v1/audit lists every write" "200 put_source,put_source,put_source,assert,assert,vote,start_epoch" \
  "$(code "$r") $(body "$r" | jq -r '[.entries[].operation]|join(",")')"
check "audit entries carry the caller" true "$(body "$r" | jq '[.entries[].caller|test("127.0.0.1")]|all')"
check "the gateway forwards the HTTP client's address" true \
  "$(body "$r" | jq '[.entries[].caller|test("^ipv4:127.0.0.1:[0-9]+ for 127.0.0.1$")]|all')"
r=$(get "/v1/audit?after_sequence=2&limit=2")
check "audit pages" "3 4 4" "$(body "$r" | jq -r '[.entries[].sequence]|map(tostring)|join(" ")') $(body "$r" | jq -r .next_after_sequence)"
r=$(get "/v1/audit?limit=x")
check "audit with a bad limit is 400" "400 limit" "$(code "$r") $(body "$r" | jq -r .error.field)"
post /v1/assert '{"concept_path":"rest/other","predicate":"p","value":1}' >/dev/null
r=$(get "/v1/concepts?prefix=rest%2F")
check "GET /v1/concepts" "200 rest/drug,rest/other" "$(code "$r") $(body "$r" | jq -r '.concepts|join(",")')"
r=$(get "/v1/concepts?prefix=rest&limit=1")
check "concepts page" "rest/drug rest/drug" "$(body "$r" | jq -r '.concepts[0] + " " + .next_page_token')"

# --- sources as of a sequence (last: it adds writes the checks above count) ---
r=$(put "/v1/sources/ver-x" '{"name":"first","tier":1}')
V1=$(body "$r" | jq -r .source.sequence)
put "/v1/sources/ver-x" '{"name":"second","tier":4}' >/dev/null
r=$(get "/v1/sources/ver-x?as_of_sequence=$V1")
check "GET /v1/sources/{id}?as_of_sequence= gives that version" "200 first $V1" \
  "$(code "$r") $(body "$r" | jq -r .name) $(body "$r" | jq -r .sequence)"
r=$(get "/v1/sources/ver-x")
check "GET /v1/sources/{id} gives the newest" "200 second" "$(code "$r") $(body "$r" | jq -r .name)"
r=$(get "/v1/sources?as_of_sequence=$V1&limit=100")
check "GET /v1/sources?as_of_sequence= lists that version" "200 1" \
  "$(code "$r") $(body "$r" | jq -r '.sources[] | select(.id == "ver-x") | .tier')"
r=$(get "/v1/sources/ver-x?as_of_sequence=x")
check "a bad as_of_sequence is 400 naming it" "400 as_of_sequence" "$(code "$r") $(body "$r" | jq -r .error.field)"

# --- safe retries (issue 10 item 3): request_id and timestamp_ns over REST ---
# A replayed request_id answers the first outcome, created included, so the
# retry of a created vote is 201 created true with the same hash; without
# the mapping it would be a content match (200, created false).
VB="{\"assertion_hash\":\"$A\",\"voter_id\":\"retry-voter\",\"weight\":1,\"request_id\":\"rv-1\"}"
r1=$(post /v1/votes "$VB")
r2=$(post /v1/votes "$VB")
check "a vote with a request_id is created" "201 true" "$(code "$r1") $(body "$r1" | jq -r .created)"
check "its retry answers the first outcome" "201 true $(body "$r1" | jq -r .hash)" \
  "$(code "$r2") $(body "$r2" | jq -r .created) $(body "$r2" | jq -r .hash)"
r=$(get "/v1/trace/$A")
check "the retried vote is one vote" 1 "$(body "$r" | jq '[.votes[]|select(.voter_id == "retry-voter")]|length')"
r=$(post /v1/votes "{\"assertion_hash\":\"$A\",\"voter_id\":\"retry-voter\",\"weight\":0.5,\"request_id\":\"rv-1\"}")
check "request_id reused for another vote is 400 naming it" "400 request_id" "$(code "$r") $(body "$r" | jq -r .error.field)"
r=$(post /v1/votes "{\"assertion_hash\":\"$A\",\"voter_id\":\"ts-voter\",\"weight\":1,\"timestamp_ns\":\"1234567890123\"}")
check "a vote's timestamp_ns is kept" "201" "$(code "$r")"
r=$(get "/v1/trace/$A")
check "the trace shows the stated time (sent as a decimal string)" 1234567890123 \
  "$(body "$r" | jq -r '.votes[]|select(.voter_id == "ts-voter")|.timestamp_ns')"
r=$(post /v1/votes "{\"assertion_hash\":\"$A\",\"voter_id\":\"ts-voter\",\"weight\":1,\"timestamp_ns\":1.5}")
check "a fractional timestamp_ns is 400" "400 timestamp_ns" "$(code "$r") $(body "$r" | jq -r .error.field)"
EB='{"concept_path":"rest/other","predicate":"p","reason":"recall","timestamp_ns":1700000000000000000}'
r1=$(post /v1/epochs "$EB")
r2=$(post /v1/epochs "$EB")
check "an epoch with a stated time is created" "201 true" "$(code "$r1") $(body "$r1" | jq -r .created)"
check "repeating it returns that epoch, created false" "200 false $(body "$r1" | jq -r .epoch.hash)" \
  "$(code "$r2") $(body "$r2" | jq -r .created) $(body "$r2" | jq -r .epoch.hash)"
r1=$(post /v1/epochs '{"concept_path":"rest/other","predicate":"q","reason":"r","request_id":"re-1"}')
r2=$(post /v1/epochs '{"concept_path":"rest/other","predicate":"q","reason":"r","request_id":"re-1"}')
check "an epoch retried by request_id opens one epoch" "201 $(body "$r1" | jq -r .epoch.hash) 1" \
  "$(code "$r2") $(body "$r2" | jq -r .epoch.hash) $(body "$r2" | jq -r .epoch.number)"
r=$(post /v1/epochs '{"concept_path":"rest/other","predicate":"q","reason":"other","request_id":"re-1"}')
check "epoch request_id reuse is 400" "400 request_id" "$(code "$r") $(body "$r" | jq -r .error.field)"
r1=$(put "/v1/sources/retry-src" '{"name":"n","tier":2,"request_id":"rs-1"}')
r2=$(put "/v1/sources/retry-src" '{"name":"n","tier":2,"request_id":"rs-1"}')
check "a source retried by request_id is one version" "200 $(body "$r1" | jq -r .source.sequence)" \
  "$(code "$r2") $(body "$r2" | jq -r .source.sequence)"
r=$(put "/v1/sources/retry-src" '{"name":"m","tier":2,"request_id":"rs-1"}')
check "source request_id reuse is 400" "400 request_id" "$(code "$r") $(body "$r" | jq -r .error.field)"
r=$(post /v1/assert '{"concept_path":"rest/rid","predicate":"p","value":1,"request_id":"ra-1"}')
check "an assert with a request_id" 201 "$(code "$r")"
r=$(post /v1/assert '{"concept_path":"rest/rid","predicate":"p","value":2,"request_id":"ra-1"}')
check "assert request_id reuse is 400" "400 request_id" "$(code "$r") $(body "$r" | jq -r .error.field)"
r=$(post /v1/assert/batch '{"request_id":"rb-1","assertions":[{"concept_path":"rest/rid","predicate":"b","value":1}]}')
check "a batch with a request_id" 201 "$(code "$r")"
r=$(post /v1/assert/batch '{"request_id":"rb-1","assertions":[{"concept_path":"rest/rid","predicate":"b","value":2}]}')
check "batch request_id reuse is 400" "400 request_id" "$(code "$r") $(body "$r" | jq -r .error.field)"
r=$(post /v1/votes "{\"assertion_hash\":\"$A\",\"voter_id\":\"x\",\"weight\":1,\"request_id\":\"bad id\"}")
check "a request_id with a space is 400" "400 request_id" "$(code "$r") $(body "$r" | jq -r .error.field)"

# --- a NUL in a JSON string: 400 naming the field, the server's message ---
r=$(post /v1/votes "{\"assertion_hash\":\"$A\",\"voter_id\":\"a\\u0000b\",\"weight\":1}")
check "a NUL in voter_id is 400 naming it" \
  "400 voter_id voter_id contains a NUL byte (at byte 1); no string field may contain NUL" \
  "$(code "$r") $(body "$r" | jq -r '.error.field + " " + .error.message')"
r=$(post /v1/assert/batch '{"assertions":[{"concept_path":"a","predicate":"p","value":1},{"concept_path":"a","predicate":"p","value":{"ref":"x\u0000"}}]}')
check "a NUL deep in a batch names its path" "400 assertions[1].value.ref" \
  "$(code "$r") $(body "$r" | jq -r .error.field)"

echo "records rest: $pass passed, $fail failed"
[ "$fail" -eq 0 ]

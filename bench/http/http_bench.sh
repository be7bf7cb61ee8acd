#!/usr/bin/env bash
# The booking service over HTTP against the same events without HTTP, in one run.
#
#   bench/http/http_bench.sh [BUILD_DIR] [SECONDS] [EVENTS_PER_REQUEST] [CONNECTIONS]
#
# 1. statefold-booking serve (2 partitions, durability sync) on a fresh directory; wrk posts
#    JSON Lines bodies of fresh events (bench/http/post_events.lua: unique IDs, no duplicate)
#    over CONNECTIONS keep-alive connections for SECONDS: closed loop. Then, on the same
#    service, bench/http/open_loop.cpp sends requests of fresh events at half of that request
#    rate for SECONDS, latency from each request's intended send time: half load.
# 2. the same number of the same kind of events from a file through `statefold-booking run`
#    (the same parser, the same engine, no HTTP): the baseline of the same run.
# wrk runs on the same cores as the service. Needs wrk (apt-get install wrk).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${1:-$root/build}
secs=${2:-10}
per=${3:-256}
conns=${4:-8}
bin=$build/apps/booking/statefold-booking
command -v wrk >/dev/null || { echo "http_bench: wrk not found (apt-get install wrk)" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/statefold-http-bench.XXXXXX")
pid=
cleanup() {
  [[ -n "$pid" ]] && kill "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

"$bin" serve --listen 127.0.0.1:0 --data "$work/http" --partitions 2 2>"$work/serve.err" &
pid=$!
addr=
for _ in $(seq 1 500); do
  addr=$(grep -o 'serving on http://[0-9.:]*' "$work/serve.err" | sed 's|serving on http://||' || true)
  [[ -n "$addr" ]] && break
  sleep 0.02
done
[[ -n "$addr" ]] || { cat "$work/serve.err" >&2; exit 1; }
wrk -t1 -c"$conns" -d"${secs}s" --timeout 30s -s "$root/bench/http/post_events.lua" "http://$addr" -- "$per" >"$work/wrk.out"
half_rps=$(awk '$1 == "requests" { r = $2 } $1 == "seconds" { s = $2 } END { printf "%.1f", r / s / 2 }' "$work/wrk.out")
"$build/bench/http_open_loop" "$addr" "$half_rps" "$secs" "$per" "$conns" >"$work/open.out" || true
kill -TERM "$pid"
wait "$pid"
pid=
val() { awk -v k="$1" '$1 == k { print $2 }' "$work/wrk.out"; }
requests=$(val requests)
seconds=$(val seconds)
events=$((requests * per))
http_rate=$(awk -v e="$events" -v s="$seconds" 'BEGIN { printf "%.0f", e / s }')

# The same number of payments from a file, through `run`.
awk -v n="$events" 'BEGIN { for (i = 1; i <= n; i++)
  printf "{\"event_id\":\"f-%d\",\"booking_id\":\"bk-%d\",\"type\":\"payment\",\"amount_cents\":100}\n", i, i % 100000 }' \
  >"$work/events.jsonl"
"$bin" run --data "$work/direct" --partitions 2 --input "$work/events.jsonl" >"$work/run.out" 2>/dev/null
direct_rate=$(grep -o '([0-9]* events/s)' "$work/run.out" | tr -dc '0-9')

cores=$(nproc)
echo "statefold-booking serve over HTTP vs run from a file — $cores cores (wrk on the same cores), 2 partitions, durability sync"
printf '%-46s %12s %12s %10s %10s\n' "" "events/s" "ratio" "p50 ms" "p99 ms"
printf '%-46s %12s %12s %10s %10s\n' "HTTP: wrk, $conns conns, $per events per POST, ${secs}s" "$http_rate" \
  "$(awk -v a="$http_rate" -v b="$direct_rate" 'BEGIN { printf "%.2f", a / b }')" \
  "$(val latency_p50_ms)" "$(val latency_p99_ms)"
oval() { awk -v k="$1" '$1 == k { print $2 }' "$work/open.out"; }
printf '%-46s %12s %12s %10s %10s\n' "HTTP: open loop at half ($half_rps requests/s)" "$(oval events_per_s)" \
  "$(awk -v a="$(oval events_per_s)" -v b="$direct_rate" 'BEGIN { printf "%.2f", a / b }')" \
  "$(oval p50_ms)" "$(oval p99_ms)"
printf '%-46s %12s %12s %10s %10s\n' "run --input FILE (same count, no HTTP)" "$direct_rate" "1.00" "-" "-"
echo "(closed loop: $events events in $requests requests; answers other than 200: $(val not_200) closed, $(oval not_200) open; latency per request, the open loop's from each request's intended send time)"

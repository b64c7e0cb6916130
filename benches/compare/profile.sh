#!/usr/bin/env bash
# perf profile of CPU 0 (whole core) while pushcore serves 1,000 × 400 events @ 100/s, and during churn.
# Usage: cargo build --release; bash benches/compare/profile.sh   (needs perf: apt-get install linux-perf)
set -u
root="$(cd "$(dirname "$0")/../.." && pwd)"
BIN="$root/target/release/pushcore"
ulimit -n 20000
port=19811
taskset -c 0 $BIN serve --listen 127.0.0.1:$port --workers 1 --no-pin --history-events 1000 >/dev/null 2>&1 & pid=$!
sleep 0.5
perf record -C 0 -g -o "${OUT:-/tmp}/fan.data" -- sleep 6 >/dev/null 2>&1 &
rec=$!
$BIN bench fanout --conns 1000 --events 400 --rate 100 --sub-url "http://127.0.0.1:$port/events/stream?channels={channel}" --pub-url http://127.0.0.1:$port/events/publish -q --pid $pid --cpu 1 --server-cpus 0 2>&1 | grep "µs"
wait $rec
perf record -C 0 -g -o "${OUT:-/tmp}/churn.data" -- sleep 4 >/dev/null 2>&1 &
rec=$!
$BIN bench churn --concurrency 50 --duration 3 --sub-url "http://127.0.0.1:$port/events/stream?channels={channel}" --pub-url http://127.0.0.1:$port/events/publish -q --pid $pid --cpu 1 --server-cpus 0 2>&1 | grep "µs"
wait $rec
kill $pid; wait $pid 2>/dev/null
for f in fan churn; do
  echo "== $f: by command/dso"; perf report -i "${OUT:-/tmp}/$f.data" --no-children --sort comm,dso --stdio 2>/dev/null | grep -v "^#" | grep "%" | head -8
  echo "== $f: top symbols"; perf report -i "${OUT:-/tmp}/$f.data" --no-children --sort sym --stdio -g none 2>/dev/null | grep -v "^#" | grep "%" | head -25
done

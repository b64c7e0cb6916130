#!/usr/bin/env bash
# Cluster mode measured against single-node, on one host: a throwaway Debian `redis-server`
# and two pushcore instances (A, B) in cluster mode, or one pushcore alone, every server
# process pinned to CPU 0 and `pushcore bench` pinned to CPU 1. Every bench charges the
# server side with the CPU of each process (--pid, repeatable: A, B and Redis) and with all
# busy time of CPU 0 (--server-cpus 0: whole-core, kernel work and anything else there included).
#
#   (a) latency from schedule, 1,000 subscribers × EVENTS events at 20/s and 100/s:
#       single-node vs cluster (subscribers split over A and B, publisher on A), with Redis
#       `--appendonly no` and with `--appendonly yes --appendfsync everysec`;
#   (b) the publish rate one log key sustains: `bench publish` (closed loop, C publishers ×
#       batches of B events) on single-node and on the cluster (publishers on A, then on A+B),
#       plus `redis-benchmark` pipelining XADD to one key (Redis alone, no pushcore);
#       and the hop alone: HOP_CONNS (10) subscribers × HOP_EVENTS (300) events at 100/s;
#   (c) CPU per delivery, from (a).
# Every configuration runs REPEAT times (default 2), interleaved. Installs redis-server if
# missing (without starting the system service). Starts everything on free loopback ports,
# stops only what it started, by PID. Prints a table and writes benches/cluster/results.md.
#
#   bash benches/cluster/run.sh             # full (~6 minutes)
#   SMOKE=1 bash benches/cluster/run.sh     # tiny counts: proves the script end to end
#   OUT=DIR ...                             # keep every JSON line and log in DIR
#   NO_BUILD=1 ...                          # use target/release/pushcore as it is
#   FANOUT_ONLY=1 ...                       # only (a)/(c): more latency repeats, faster
#   REDIS_CPU=1 ...                         # Redis on the generator's CPU, not the instances' 
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="$(mktemp -d /tmp/pushcore-cluster.XXXXXX)"
REPEAT=${REPEAT:-2}
if [ "${SMOKE:-0}" = 1 ]; then
  CONNS=100; EVENTS=20; RATES="100"; PUB_SECS=1; BATCHES="1 100"; REPEAT=1; RB_N=20000
else
  CONNS=${CONNS:-1000}; EVENTS=${EVENTS:-100}; RATES=${RATES:-"20 100"}; PUB_SECS=${PUB_SECS:-5}
  BATCHES=${BATCHES:-"1 10 100"}; RB_N=${RB_N:-500000}
fi
PUBLISHERS=${PUBLISHERS:-4}
HOP_CONNS=${HOP_CONNS:-10}; HOP_EVENTS=${HOP_EVENTS:-300}

if ! command -v redis-server >/dev/null; then
  echo "installing redis-server"
  # Keep the package from starting the system Redis: this script runs its own and nothing else.
  blocker=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && blocker=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  [ -n "$blocker" ] && rm -f /usr/sbin/policy-rc.d
fi
[ "${NO_BUILD:-0}" = 1 ] || cargo build --release --manifest-path "$root/Cargo.toml" --bin pushcore >/dev/null 2>&1
bin="$root/target/release/pushcore"
cores=$(nproc)
SERVER_CPU=0; BENCH_CPU=$(( cores > 1 ? 1 : 0 ))
# REDIS_CPU=1: Redis beside the generator instead of beside the instances (then whole-core
# figures of CPU 0 cover the instances only).
REDIS_CPU=${REDIS_CPU:-$SERVER_CPU}
[ "$SERVER_CPU" = "$BENCH_CPU" ] && echo "warning: one CPU only: whole-core figures include the generator" >&2

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "${OUT:-}" ]; then mkdir -p "$OUT" && cp -r "$work"/. "$OUT"/; fi
  rm -rf "$work"
}
trap cleanup EXIT
stop() { # stop PID (one we started): SIGTERM, wait
  kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_redis NAME [redis-server flags...]: sets REDIS_PID, REDIS_PORT once *our* process
# answers (a port picked free can be taken meanwhile: then ours exits and another port is tried).
start_redis() {
  local name=$1; shift
  mkdir -p "$work/$name"
  for _attempt in 1 2 3 4; do
    REDIS_PORT=$(free_port)
    taskset -c "$REDIS_CPU" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$work/$name" \
      --save '' --daemonize no --logfile "$work/$name/redis.log" "$@" &
    REDIS_PID=$!; pids+=("$REDIS_PID")
    for _ in $(seq 200); do
      kill -0 "$REDIS_PID" 2>/dev/null || break
      redis-cli -p "$REDIS_PORT" info server 2>/dev/null | grep -q "process_id:$REDIS_PID" && return
      sleep 0.05
    done
    stop "$REDIS_PID"
  done
  echo "redis-server did not start"; cat "$work/$name/redis.log"; exit 1
}
# start_pushcore NAME [serve flags...]: sets PC_PID, PC_PORT once /readyz says ready.
start_pushcore() {
  local name=$1; shift
  local port; port=$(free_port)
  taskset -c $SERVER_CPU "$bin" serve --listen 127.0.0.1:"$port" --workers 1 --no-pin \
    --history-events 1000 --heartbeat 30 "$@" > "$work/$name.log" 2>&1 &
  local pid=$!; pids+=("$pid")
  for _ in $(seq 400); do
    if curl -sf -o /dev/null "http://127.0.0.1:$port/readyz"; then PC_PID=$pid; PC_PORT=$port; return; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "pushcore $name did not become ready" >&2; cat "$work/$name.log" >&2; exit 1
}
sub() { echo "http://127.0.0.1:$1/events/stream?channels={channel}"; }
pub() { echo "http://127.0.0.1:$1/events/publish"; }
# bench LABEL SCENARIO [flags...]: one JSON line, tagged with LABEL, appended to results.jsonl.
bench() {
  local label=$1; shift
  local line
  line=$("$bin" bench "$@" --cpu $BENCH_CPU --server-cpus $SERVER_CPU --quiet 2>>"$work/bench.err" | tail -1) || true
  [ -z "$line" ] && line='{"passed":false,"error":"no output"}'
  python3 -c 'import json,sys; d=json.loads(sys.argv[2]); d["label"]=sys.argv[1]; print(json.dumps(d))' \
    "$label" "$line" >> "$work/results.jsonl"
  echo "  $label: $(python3 - "$line" <<'PY'
import json, sys
d = json.loads(sys.argv[1])
if d.get("scenario") == "fanout":
    s = d.get("latency_from_schedule_us", {})
    print(f'p50 {s.get("p50",0)/1000:.2f} ms p99 {s.get("p99",0)/1000:.2f} ms, lost {d.get("lost")} dup {d.get("duplicates")} ooo {d.get("out_of_order")}, {d.get("server_cpu_us_per_delivery",0):.2f} µs/delivery (processes) {d.get("server_cpu_us_per_delivery_core",0):.2f} (core), background {100*(d.get("server_cpus_background_share") or 0):.0f}%')
elif d.get("scenario") == "publish":
    print(f'{d.get("events_per_sec",0):.0f} events/s, errors {d.get("errors")}, ' + ", ".join(f'{p["name"]} {100*(p.get("cores") or 0):.0f}%' for p in d.get("server_processes", [])))
else:
    print(d)
PY
)"
}

fanout_runs() { # fanout_runs CONFIG PUBPORT PIDS... -- SUBPORTS...
  local config=$1 pub_port=$2; shift 2
  local pidflags=() subflags=()
  while [ "$1" != "--" ]; do pidflags+=(--pid "$1"); shift; done; shift
  for p in "$@"; do subflags+=(--sub-url "$(sub "$p")"); done
  for rate in $RATES; do
    bench "fanout $config $rate/s" fanout --conns $CONNS --events $EVENTS --rate "$rate" \
      --channel "f$RANDOM" "${subflags[@]}" --pub-url "$(pub "$pub_port")" "${pidflags[@]}"
  done
  # The hop alone: few subscribers, so the latency is not the 1,000-copy burst.
  bench "fanout $config $HOP_CONNS subs 100/s" fanout --conns $HOP_CONNS --events $HOP_EVENTS \
    --rate 100 --channel "h$RANDOM" "${subflags[@]}" --pub-url "$(pub "$pub_port")" "${pidflags[@]}"
}
publish_runs() { # publish_runs CONFIG PIDS... -- PUBPORTS...
  local config=$1; shift
  local pidflags=() pubflags=()
  while [ "$1" != "--" ]; do pidflags+=(--pid "$1"); shift; done; shift
  for p in "$@"; do pubflags+=(--pub-url "$(pub "$p")"); done
  for b in $BATCHES; do
    bench "publish $config batch $b" publish --concurrency $PUBLISHERS --batch "$b" \
      --duration "$PUB_SECS" --timeout $((PUB_SECS + 30)) "${pubflags[@]}" "${pidflags[@]}"
  done
}

for round in $(seq "$REPEAT"); do
  echo "round $round of $REPEAT"
  # Single node.
  start_pushcore single; S_PID=$PC_PID; S_PORT=$PC_PORT
  fanout_runs single "$S_PORT" "$S_PID" -- "$S_PORT"
  [ "${FANOUT_ONLY:-0}" = 1 ] || publish_runs single "$S_PID" -- "$S_PORT"
  stop "$S_PID"
  # Cluster, Redis without persistence, then with AOF (appendfsync everysec).
  for persist in none aof; do
    if [ $persist = none ]; then
      start_redis "redis-$persist-$round" --appendonly no
    else
      start_redis "redis-$persist-$round" --appendonly yes --appendfsync everysec
    fi
    url="redis://127.0.0.1:$REDIS_PORT"
    start_pushcore "a-$persist-$round" --redis-url "$url"; A_PID=$PC_PID; A_PORT=$PC_PORT
    start_pushcore "b-$persist-$round" --redis-url "$url"; B_PID=$PC_PID; B_PORT=$PC_PORT
    fanout_runs "cluster-$persist" "$A_PORT" "$A_PID" "$B_PID" "$REDIS_PID" -- "$A_PORT" "$B_PORT"
    if [ "${FANOUT_ONLY:-0}" != 1 ]; then
      publish_runs "cluster-$persist A" "$A_PID" "$B_PID" "$REDIS_PID" -- "$A_PORT"
      publish_runs "cluster-$persist A+B" "$A_PID" "$B_PID" "$REDIS_PID" -- "$A_PORT" "$B_PORT"
    fi
    stop "$A_PID"; stop "$B_PID"
    if [ $persist = none ] && [ "${FANOUT_ONLY:-0}" != 1 ]; then
      # Redis alone: XADD pipelined to one key (the same MAXLEN ~ trim as the appender).
      for P in 1 16 128; do
        rb=$(taskset -c $BENCH_CPU redis-benchmark -p "$REDIS_PORT" -n "$RB_N" -c 4 -P $P -q \
          XADD rb:events MAXLEN '~' 100000 '*' channels bench type bench data \
          '{"seq":1,"ts":1,"due":1,"pad":"xxxxxxxxxxxxxxxxxxxxxxxx"}' 2>/dev/null | tr '\r' '\n' \
          | grep -oE '[0-9.]+ requests per second.*' | tail -1) || true
        echo "  redis-benchmark XADD -P $P: $rb"
        python3 -c 'import json,sys; print(json.dumps({"label": sys.argv[1], "line": sys.argv[2]}))' \
          "redis-benchmark XADD, 4 clients, pipeline $P" "$rb" >> "$work/results.jsonl"
      done
    fi
    stop "$REDIS_PID"
  done
done

python3 "$here/report.py" "$work/results.jsonl" | tee "$here/results.md"

#!/usr/bin/env bash
# Side by side in one run: pushcore, nchan (nginx) and the floor (benches/floor: a minimal
# io_uring fan-out with no parser and no history), each with one worker pinned to CPU 0, driven
# by `pushcore bench` pinned to CPU 1, the same scenarios interleaved. Every bench charges the
# server with its process CPU and with all busy time of CPU 0 (--server-cpus: whole-core).
# Prints one table, writes it to benches/compare/results.md and the rate curve to
# benches/compare/rate-curve.svg (not committed: copy a run into BENCHMARKS.md). Installs
# nginx + libnginx-mod-nchan and liburing-dev if missing. Stops only what it started, by PID.
#
#   bash benches/compare/run.sh            # full suite (~10 minutes)
#   QUICK=1 bash benches/compare/run.sh    # smaller counts
#   SMOKE=1 bash benches/compare/run.sh    # tiny counts: proves the script works end to end
#   OUT=DIR ...                            # keep every JSON line and log in DIR
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="$(mktemp -d /tmp/pushcore-compare.XXXXXX)"
PUSHCORE_PORT=${PUSHCORE_PORT:-18180}
NCHAN_PORT=${NCHAN_PORT:-18181}
FLOOR_PORT=${FLOOR_PORT:-18182}
# The rate curve: 1,000 subscribers at each rate for about CURVE_SECS seconds.
RATES="20 100 500 2000"
if [ "${SMOKE:-0}" = 1 ]; then
  IDLE=500; FAN_N=300; FAN_M=20; FAN_R=20; CURVE_N=100; CURVE_SECS=1; STORM_N=300; STORM_J=10; CHURN_S=1
elif [ "${QUICK:-0}" = 1 ]; then
  IDLE=3000; FAN_N=2000; FAN_M=50; FAN_R=20; CURVE_N=500; CURVE_SECS=2; STORM_N=3000; STORM_J=10; CHURN_S=3
else
  IDLE=15000; FAN_N=9000; FAN_M=100; FAN_R=20; CURVE_N=1000; CURVE_SECS=4; STORM_N=15000; STORM_J=10; CHURN_S=5
fi
STORM_SPREAD_MS=${STORM_SPREAD_MS:-2000}

if [ ! -f /usr/lib/nginx/modules/ngx_nchan_module.so ]; then
  echo "installing nginx and libnginx-mod-nchan"
  # Keep the package from starting a system nginx: this script runs its own and nothing else.
  blocker=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && blocker=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light libnginx-mod-nchan >/dev/null \
    || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx libnginx-mod-nchan >/dev/null
  [ -n "$blocker" ] && rm -f /usr/sbin/policy-rc.d
fi
cargo build --release --manifest-path "$root/Cargo.toml" >/dev/null 2>&1
bin="$root/target/release/pushcore"
floor_bin="$(bash "$root/benches/floor/build.sh")"
cores=$(nproc)
SERVER_CPU=0; BENCH_CPU=$(( cores > 1 ? 1 : 0 ))
[ "$SERVER_CPU" = "$BENCH_CPU" ] && echo "warning: one CPU only: whole-core figures include the generator" >&2

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "${OUT:-}" ]; then mkdir -p "$OUT" && cp -r "$work"/. "$OUT"/; fi
  rm -rf "$work"
}
trap cleanup EXIT

start_pushcore() {
  taskset -c $SERVER_CPU "$bin" serve --listen 127.0.0.1:$PUSHCORE_PORT --workers 1 --no-pin \
    --history-events 1000 --heartbeat 30 > "$work/pushcore.log" 2>&1 &
  PUSHCORE_PID=$!; pids+=("$PUSHCORE_PID")
  for _ in $(seq 100); do grep -q listening "$work/pushcore.log" && return; sleep 0.05; done
  echo "pushcore did not start"; cat "$work/pushcore.log"; exit 1
}
start_nchan() {
  mkdir -p "$work/nginx"
  sed -e "s#@DIR@#$work/nginx#g" -e "s#@PORT@#$NCHAN_PORT#g" "$here/nchan.conf.in" > "$work/nginx/nginx.conf"
  taskset -c $SERVER_CPU nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" &
  NGINX_MASTER=$!; pids+=("$NGINX_MASTER")
  for _ in $(seq 100); do
    NCHAN_PID=$(pgrep -P "$NGINX_MASTER" 2>/dev/null | head -1 || true)
    [ -n "$NCHAN_PID" ] && curl -s -o /dev/null "http://127.0.0.1:$NCHAN_PORT/pub/probe" -d x && return
    sleep 0.05
  done
  echo "nginx did not start"; cat "$work/nginx/nginx-error.log"; exit 1
}
start_floor() {
  taskset -c $SERVER_CPU "$floor_bin" $FLOOR_PORT > "$work/floor.log" 2>&1 &
  FLOOR_PID=$!; pids+=("$FLOOR_PID")
  for _ in $(seq 100); do grep -q listening "$work/floor.log" && return; sleep 0.05; done
  echo "floor did not start"; cat "$work/floor.log"; exit 1
}

# settle: wait (up to 70 s) until loopback TIME_WAIT sockets from earlier scenarios are few.
# Tens of thousands of them slow the generator's connect() (its port search walks them), which
# made one storm run take 1.7 s instead of 0.5 s: a property of the run's history, not of the
# server. Scenarios that open thousands of connections at once start from the same state.
settle() {
  for _ in $(seq 140); do
    tw=$(ss -H -t state time-wait 2>/dev/null | wc -l)
    [ "$tw" -lt 2000 ] && return
    sleep 0.5
  done
  echo "note: $tw TIME_WAIT sockets left after 70 s" >&2
}

# bench <server> <name> <scenario> [flags...]: one JSON line to $work/<server>-<name>.json
bench() {
  local server=$1 name=$2 scenario=$3; shift 3
  local sub pub body pid
  case $server in
    pushcore)
      sub="http://127.0.0.1:$PUSHCORE_PORT/events/stream?channels={channel}"
      pub="http://127.0.0.1:$PUSHCORE_PORT/events/publish"
      body='{"channel":"{channel}","eventType":"bench","data":{payload}}'
      pid=$PUSHCORE_PID ;;
    nchan)
      sub="http://127.0.0.1:$NCHAN_PORT/sub/{channel}"
      pub="http://127.0.0.1:$NCHAN_PORT/pub/{channel}"
      body='{payload}'
      pid=$NCHAN_PID ;;
    floor)
      sub="http://127.0.0.1:$FLOOR_PORT/sub/{channel}"
      pub="http://127.0.0.1:$FLOOR_PORT/pub/{channel}"
      body='{payload}'
      pid=$FLOOR_PID ;;
  esac
  echo "== $server $name: $scenario $*" >&2
  "$bin" bench "$scenario" --sub-url "$sub" --pub-url "$pub" --pub-body "$body" --pid "$pid" \
    --server-cpus $SERVER_CPU --cpu $BENCH_CPU --timeout 180 --quiet "$@" \
    2> "$work/$server-$name.err" | tee "$work/$server-$name.out" >&2 || true
  tail -n 1 "$work/$server-$name.out" > "$work/$server-$name.json"
  grep -h "warning\|note" "$work/$server-$name.err" >&2 || true
}

start_pushcore
start_nchan
start_floor
for server in pushcore nchan floor; do bench $server idle idle --conns $IDLE --hold 1 --channel idle; done
for server in nchan floor pushcore; do bench $server fanout fanout --conns $FAN_N --events $FAN_M --rate $FAN_R --channel fan; done
for rate in $RATES; do
  events=$(( rate * CURVE_SECS )); [ $events -lt 20 ] && events=20
  for server in pushcore nchan floor; do
    bench $server "rate$rate" fanout --conns $CURVE_N --events $events --rate $rate --channel "rate$rate"
  done
done
for server in floor nchan pushcore; do bench $server fanout2 fanout --conns $FAN_N --events $FAN_M --rate $FAN_R --channel fan2; done
for server in pushcore nchan; do bench $server replay replay --events 10 --channel rep --resume-with header; done
for server in nchan pushcore; do
  settle
  bench $server storm storm --conns $STORM_N --before 3 --events $STORM_J --rate 50 --channel storm
  settle
  bench $server storm-spread storm --conns $STORM_N --before 3 --events $STORM_J --rate 50 --spread-ms $STORM_SPREAD_MS --channel storm2
done
for server in nchan floor pushcore; do settle; bench $server churn churn --concurrency 50 --duration $CHURN_S --channel churn; done

python3 "$here/report.py" "$work" "$root/benches/compare/results.md" "$root/benches/compare/rate-curve.svg" "$RATES"

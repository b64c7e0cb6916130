#!/usr/bin/env bash
# Side by side: pushcore and nchan (nginx), each with one worker pinned to CPU 0, driven by
# `pushcore bench` pinned to CPU 1, the same scenarios interleaved. Prints one table and writes
# it to benches/compare/results.md (not committed: copy a run into BENCHMARKS.md). Installs nginx + libnginx-mod-nchan if missing. Stops only
# what it started, by PID.
#
#   bash benches/compare/run.sh            # full suite (a few minutes)
#   QUICK=1 bash benches/compare/run.sh    # smaller counts
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="$(mktemp -d /tmp/pushcore-compare.XXXXXX)"
PUSHCORE_PORT=${PUSHCORE_PORT:-18180}
NCHAN_PORT=${NCHAN_PORT:-18181}
if [ "${QUICK:-0}" = 1 ]; then
  IDLE=3000; FAN_N=2000; FAN_M=50; FAN_R=20; LAT_N=500; LAT_M=100; LAT_R=100; CHURN_S=3
else
  IDLE=15000; FAN_N=9000; FAN_M=100; FAN_R=20; LAT_N=1000; LAT_M=200; LAT_R=100; CHURN_S=5
fi

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
cores=$(nproc)
SERVER_CPU=0; BENCH_CPU=$(( cores > 1 ? 1 : 0 ))

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
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

# bench <server> <scenario> [flags...]: one JSON line to $work/<server>-<scenario>.json
bench() {
  local server=$1 scenario=$2; shift 2
  local sub pub body pid
  if [ "$server" = pushcore ]; then
    sub="http://127.0.0.1:$PUSHCORE_PORT/events/stream?channels={channel}"
    pub="http://127.0.0.1:$PUSHCORE_PORT/events/publish"
    body='{"channel":"{channel}","eventType":"bench","data":{payload}}'
    pid=$PUSHCORE_PID
  else
    sub="http://127.0.0.1:$NCHAN_PORT/sub/{channel}"
    pub="http://127.0.0.1:$NCHAN_PORT/pub/{channel}"
    body='{payload}'
    pid=$NCHAN_PID
  fi
  echo "== $server $scenario $*" >&2
  "$bin" bench "$scenario" --sub-url "$sub" --pub-url "$pub" --pub-body "$body" --pid "$pid" \
    --cpu $BENCH_CPU --timeout 120 "$@" 2> "$work/$server-$scenario.err" | tee "$work/$server-$scenario.out" >&2 || true
  tail -n 1 "$work/$server-$scenario.out" > "$work/$server-$scenario.json"
}

start_pushcore
start_nchan
for server in pushcore nchan; do bench $server idle --conns $IDLE --hold 1 --channel idle; done
for server in nchan pushcore; do bench $server fanout --conns $FAN_N --events $FAN_M --rate $FAN_R --channel fan; done
for server in pushcore nchan; do bench $server fanout --conns $LAT_N --events $LAT_M --rate $LAT_R --channel lat; done
mv "$work/pushcore-fanout.json" "$work/pushcore-latency.json"; mv "$work/nchan-fanout.json" "$work/nchan-latency.json"
for server in nchan pushcore; do bench $server fanout --conns $FAN_N --events $FAN_M --rate $FAN_R --channel fan2; done
for server in pushcore nchan; do bench $server replay --events 10 --channel rep --resume-with header; done
for server in nchan pushcore; do bench $server churn --concurrency 50 --duration $CHURN_S --channel churn; done

python3 - "$work" "$root/benches/compare/results.md" <<'PY'
import json, sys, os, platform, datetime
work, out = sys.argv[1], sys.argv[2]
def load(server, name):
    try:
        with open(os.path.join(work, f"{server}-{name}.json")) as f:
            return json.loads(f.read().strip() or "{}")
    except (OSError, ValueError):
        return {}
def fmt(v, spec):
    return "—" if v is None else format(v, spec)
rows = [
    ("idle: server bytes per connection", "idle", lambda d: d.get("server_bytes_per_conn"), ",.0f"),
    ("idle: connects per second", "idle", lambda d: d.get("connects_per_sec"), ",.0f"),
    ("fanout: deliveries per second", "fanout", lambda d: d.get("deliveries_per_sec"), ",.0f"),
    ("fanout: server CPU µs per delivery", "fanout", lambda d: d.get("server_cpu_us_per_delivery"), ".2f"),
    ("fanout: lost / duplicated / reordered", "fanout", lambda d: None if not d else f'{d.get("lost")} / {d.get("duplicates")} / {d.get("out_of_order")}', "s"),
    ("fanout: latency p50 ms", "fanout", lambda d: (d.get("latency_us") or {}).get("p50", None) and d["latency_us"]["p50"] / 1000, ".1f"),
    ("fanout: latency p99 ms", "fanout", lambda d: (d.get("latency_us") or {}).get("p99", None) and d["latency_us"]["p99"] / 1000, ".1f"),
    ("latency run: p50 ms", "latency", lambda d: (d.get("latency_us") or {}).get("p50", None) and d["latency_us"]["p50"] / 1000, ".2f"),
    ("latency run: p90 ms", "latency", lambda d: (d.get("latency_us") or {}).get("p90", None) and d["latency_us"]["p90"] / 1000, ".2f"),
    ("latency run: p99 ms", "latency", lambda d: (d.get("latency_us") or {}).get("p99", None) and d["latency_us"]["p99"] / 1000, ".2f"),
    ("latency run: p99.9 ms", "latency", lambda d: (d.get("latency_us") or {}).get("p99_9", None) and d["latency_us"]["p99_9"] / 1000, ".2f"),
    ("latency run: max ms", "latency", lambda d: (d.get("latency_us") or {}).get("max", None) and d["latency_us"]["max"] / 1000, ".2f"),
    ("latency run: server CPU µs per delivery", "latency", lambda d: d.get("server_cpu_us_per_delivery"), ".2f"),
    ("replay (Last-Event-ID)", "replay", lambda d: None if not d else ("pass" if d.get("passed") else "FAIL"), "s"),
    ("churn: opens per second", "churn", lambda d: d.get("opens_per_sec"), ",.0f"),
    ("churn: server CPU µs per open", "churn", lambda d: d.get("server_cpu_us_per_open"), ".1f"),
]
lines = ["| measure | pushcore | nchan |", "|---|---:|---:|"]
for label, name, get, spec in rows:
    vals = []
    for server in ("pushcore", "nchan"):
        try:
            v = get(load(server, name))
        except (TypeError, KeyError):
            v = None
        vals.append(fmt(v, spec))
    lines.append(f"| {label} | {vals[0]} | {vals[1]} |")
table = "\n".join(lines)
header = f"Run {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC on {platform.node()} ({os.cpu_count()} cores, kernel {platform.release()})"
print(header); print(table)
with open(out, "w") as f:
    f.write(header + "\n\n" + table + "\n")
PY

#!/usr/bin/env bash
# CPU per delivery and bytes on the wire per delivery, plain vs gzip, 1,000 subscribers × 200 events @ 100/s.
BIN="$(cd "$(dirname "$0")/../.." && pwd)/target/release/pushcore"; ulimit -n 20000
for round in 1 2; do
for bytes in 100 1024 4096; do
  for mode in plain gzip; do
    port=$((19900 + RANDOM % 90))
    taskset -c 0 $BIN serve --listen 127.0.0.1:$port --workers 1 --no-pin --gzip >/dev/null 2>&1 & pid=$!
    sleep 0.5
    flag=""; [ $mode = gzip ] && flag="--gzip"
    out=$($BIN bench fanout --conns 1000 --events 200 --rate 100 --payload-bytes $bytes $flag \
      --sub-url "http://127.0.0.1:$port/events/stream?channels={channel}" --pub-url http://127.0.0.1:$port/events/publish \
      -q --pid $pid --cpu 1 --server-cpus 0 2>&1)
    wire=$(curl -s 127.0.0.1:$port/metrics | awk '/^pushcore_bytes_written_total/ {print $2}')
    gz=$(curl -s 127.0.0.1:$port/metrics | awk '/^pushcore_gzip_streams_total/ {print $2}')
    json=$(echo "$out" | grep '^{')
    echo "round $round payload $bytes $mode: gzip_streams=$gz bytes_per_delivery=$(python3 -c "print(round($wire/200000,1))") $(echo "$json" | python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); print("cpu_us_process=%.2f cpu_us_core=%.2f lost=%d p99_sched_ms=%.1f" % (d["server_cpu_us_per_delivery"], d.get("server_cpu_us_per_delivery_core",0), d["lost"], d.get("latency_from_schedule_us",d.get("latency_us"))["p99"]/1000))')"
    kill $pid; wait $pid 2>/dev/null
  done
done
done

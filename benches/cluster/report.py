#!/usr/bin/env python3
"""Summarise benches/cluster/run.sh's JSON lines (one or more results.jsonl files): one row per configuration, every run's
figure shown (runs separated by '/'), so the spread between repeats is visible."""
import json
import sys
from collections import OrderedDict


def fmt(values, f="{:.2f}"):
    return " / ".join(f.format(v) for v in values) if values else "-"


def main(paths):
    rows = OrderedDict()
    for path in paths:
        for line in open(path):
            d = json.loads(line)
            rows.setdefault(d["label"], []).append(d)
    print("## Fanout: latency from schedule and CPU per delivery\n")
    print("| configuration | p50 ms | p99 ms | lost/dup/out-of-order | µs CPU per delivery, processes (sum) | µs per delivery, whole core 0 | per process µs/delivery | background on core 0 |")
    print("|---|---|---|---|---|---|---|---|")
    for label, runs in rows.items():
        if not label.startswith("fanout"):
            continue
        sched = [r.get("latency_from_schedule_us", {}) for r in runs]
        verdict = " / ".join(f'{r.get("lost")}/{r.get("duplicates")}/{r.get("out_of_order")}' for r in runs)
        procs = " / ".join(
            ", ".join(f'{p["name"]} {p.get("server_cpu_us_per_delivery") or 0:.2f}' for p in r.get("server_processes", []))
            or "-" for r in runs)
        print(f'| {label[7:]} | {fmt([s.get("p50", 0) / 1000 for s in sched])} | {fmt([s.get("p99", 0) / 1000 for s in sched])} '
              f'| {verdict} | {fmt([r.get("server_cpu_us_per_delivery", 0) for r in runs])} '
              f'| {fmt([r.get("server_cpu_us_per_delivery_core", 0) for r in runs])} | {procs} '
              f'| {fmt([100 * (r.get("server_cpus_background_share") or 0) for r in runs], "{:.0f}%")} |')
    if not any(k.startswith("publish") for k in rows):
        return
    print("\n## Publish: events/s acknowledged (closed loop)\n")
    print("| configuration | events/s | errors | round trip p50 / p99 ms | µs CPU per event, processes (sum) | µs per event, whole core 0 | share of a core per process |")
    print("|---|---|---|---|---|---|---|")
    for label, runs in rows.items():
        if not label.startswith("publish"):
            continue
        rt = [r.get("round_trip_us", {}) for r in runs]
        procs = " / ".join(
            ", ".join(f'{p["name"]} {100 * (p.get("cores") or 0):.0f}%' for p in r.get("server_processes", []))
            or "-" for r in runs)
        print(f'| {label[8:]} | {fmt([r.get("events_per_sec", 0) for r in runs], "{:.0f}")} '
              f'| {fmt([r.get("errors", 0) for r in runs], "{}")} '
              f'| {fmt([x.get("p50", 0) / 1000 for x in rt])} ; {fmt([x.get("p99", 0) / 1000 for x in rt])} '
              f'| {fmt([r.get("server_cpu_us_per_event", 0) for r in runs])} '
              f'| {fmt([r.get("server_cpu_us_per_event_core", 0) for r in runs])} | {procs} |')
    print("\n## Redis alone: redis-benchmark, XADD to one key\n")
    for label, runs in rows.items():
        if label.startswith("redis-benchmark"):
            print(f'- {label}: ' + " / ".join(r.get("line", "").strip() for r in runs))


if __name__ == "__main__":
    main(sys.argv[1:])

#!/usr/bin/env python3
"""Turn the JSON lines of one benches/compare run into a Markdown table and an SVG rate curve.

    report.py WORK_DIR RESULTS_MD CURVE_SVG "20 100 500 2000"

WORK_DIR holds <server>-<name>.json (one `pushcore bench` JSON line each). Standard library only.
"""
import datetime
import json
import os
import platform
import sys

SERVERS = ("pushcore", "nchan", "floor")


def load(work, server, name):
    try:
        with open(os.path.join(work, f"{server}-{name}.json")) as f:
            return json.loads(f.read().strip() or "{}")
    except (OSError, ValueError):
        return {}


def get(d, *path):
    for k in path:
        if not isinstance(d, dict) or k not in d or d[k] is None:
            return None
        d = d[k]
    return d


def ms(v):
    return None if v is None else v / 1000.0


def fmt(v, spec):
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    return format(v, spec)


def verdict(d):
    if not d:
        return None
    return f'{d.get("lost")} / {d.get("duplicates")} / {d.get("out_of_order")}'


def rows(rates):
    r = [
        ("idle: server RSS bytes per connection", "idle", lambda d: get(d, "server_bytes_per_conn"), ",.0f"),
        ("idle: kernel slab bytes per connection (both ends)", "idle", lambda d: get(d, "kernel_slab_bytes_per_conn_both_ends"), ",.0f"),
        ("idle: kernel bytes per connection, server share (est.)", "idle", lambda d: get(d, "kernel_bytes_per_conn_server_estimate"), ",.0f"),
        ("idle: connects per second", "idle", lambda d: get(d, "connects_per_sec"), ",.0f"),
    ]
    for name, label in (("fanout", "fanout"), ("fanout2", "fanout (again)")):
        r += [
            (f"{label}: CPU µs per delivery, whole core", name, lambda d: get(d, "server_cpu_us_per_delivery_core"), ".2f"),
            (f"{label}: CPU µs per delivery, process", name, lambda d: get(d, "server_cpu_us_per_delivery"), ".2f"),
            (f"{label}: p50 / p99 ms from schedule", name, lambda d: None if not d else f'{fmt(ms(get(d, "latency_from_schedule_us", "p50")), ".1f")} / {fmt(ms(get(d, "latency_from_schedule_us", "p99")), ".1f")}', "s"),
            (f"{label}: lost / duplicated / reordered", name, verdict, "s"),
            (f"{label}: generator CPU share", name, lambda d: get(d, "generator_cpu_share"), ".0%"),
            (f"{label}: CPU 0 busy before the run (other work)", name, lambda d: get(d, "server_cpus_background_share"), ".0%"),
        ]
    for rate in rates:
        n = f"rate{rate}"
        r += [
            (f"{rate}/s: CPU µs per delivery, whole core", n, lambda d: get(d, "server_cpu_us_per_delivery_core"), ".2f"),
            (f"{rate}/s: CPU µs per delivery, process", n, lambda d: get(d, "server_cpu_us_per_delivery"), ".2f"),
            (f"{rate}/s: p50 / p99 ms from schedule", n, lambda d: None if not d else f'{fmt(ms(get(d, "latency_from_schedule_us", "p50")), ".2f")} / {fmt(ms(get(d, "latency_from_schedule_us", "p99")), ".2f")}', "s"),
            (f"{rate}/s: p50 / p99 ms from send", n, lambda d: None if not d else f'{fmt(ms(get(d, "latency_us", "p50")), ".2f")} / {fmt(ms(get(d, "latency_us", "p99")), ".2f")}', "s"),
            (f"{rate}/s: publish round trip p50 ms", n, lambda d: ms(get(d, "publish_round_trip_us", "p50")), ".2f"),
            (f"{rate}/s: achieved publish rate", n, lambda d: get(d, "achieved_rate"), ",.0f"),
            (f"{rate}/s: lost / duplicated / reordered", n, verdict, "s"),
            (f"{rate}/s: generator CPU share", n, lambda d: get(d, "generator_cpu_share"), ".0%"),
            (f"{rate}/s: CPU 0 busy before the run (other work)", n, lambda d: get(d, "server_cpus_background_share"), ".0%"),
        ]
    r += [
        ("replay (Last-Event-ID)", "replay", lambda d: None if not d else ("pass" if d.get("passed") else "FAIL"), "s"),
    ]
    for name, label in (("storm", "storm, all at once"), ("storm-spread", "storm, spread")):
        r += [
            (f"{label}: resumed / subscribers", name, lambda d: None if not d else f'{d.get("resumed")} / {d.get("conns")}', "s"),
            (f"{label}: s until all resumed", name, lambda d: ms(ms(get(d, "time_to_complete_us", "max"))), ".3f"),
            (f"{label}: p99 ms to first replayed event", name, lambda d: ms(get(d, "time_to_first_replayed_us", "p99")), ".1f"),
            (f"{label}: CPU µs per resumed stream, whole core", name, lambda d: get(d, "server_cpu_us_per_resume_core"), ".1f"),
            (f"{label}: CPU µs per resumed stream, process", name, lambda d: get(d, "server_cpu_us_per_resume"), ".1f"),
            (f"{label}: lost / duplicated / reordered / resets", name, lambda d: None if not d else f'{d.get("lost")} / {d.get("duplicates")} / {d.get("out_of_order")} / {d.get("resets")}', "s"),
        ]
    r += [
        ("churn: opens per second", "churn", lambda d: get(d, "opens_per_sec"), ",.0f"),
        ("churn: CPU µs per open, whole core", "churn", lambda d: get(d, "server_cpu_us_per_open_core"), ".1f"),
        ("churn: CPU µs per open, process", "churn", lambda d: get(d, "server_cpu_us_per_open"), ".1f"),
    ]
    return r


def ratio(a, b):
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a >= 0 and b > 0:
        return f"{a / b:.2f}×"
    return "—"


def table(work, rates):
    lines = [
        "| measure | pushcore | nchan | floor | pushcore ÷ floor | pushcore ÷ nchan |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, name, fn, spec in rows(rates):
        raw = []
        for server in SERVERS:
            try:
                raw.append(fn(load(work, server, name)))
            except (TypeError, KeyError, ZeroDivisionError):
                raw.append(None)
        cells = [fmt(v, spec) for v in raw]
        lines.append(f"| {label} | {cells[0]} | {cells[1]} | {cells[2]} | {ratio(raw[0], raw[2])} | {ratio(raw[0], raw[1])} |")
    return "\n".join(lines)


COLORS = {"pushcore": "#1f77b4", "nchan": "#d62728", "floor": "#2ca02c"}


def curve_svg(work, rates):
    """Two panels over the publish rate (log scale): whole-core CPU µs per delivery, and p99 ms
    from schedule. Hollow markers: the run lost events or the generator was saturated."""
    panels = [
        ("CPU µs per delivery (whole core)", lambda d: get(d, "server_cpu_us_per_delivery_core")),
        ("p99 latency from schedule, ms", lambda d: ms(get(d, "latency_from_schedule_us", "p99"))),
    ]
    W, H, L, R, T, B = 460, 300, 60, 20, 40, 50
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W}" height="{H + 30}" font-family="sans-serif" font-size="12">',
           '<rect width="100%" height="100%" fill="white"/>']
    import math
    xs = [math.log10(r) for r in rates]
    x0, x1 = min(xs) - 0.1, max(xs) + 0.1
    for p, (title, fn) in enumerate(panels):
        ox = p * W
        series = {}
        for s in SERVERS:
            pts = []
            for r in rates:
                d = load(work, s, f"rate{r}")
                v = fn(d) if d else None
                if v is not None:
                    bad = bool(d.get("lost")) or bool(d.get("generator_saturated"))
                    pts.append((r, v, bad))
            series[s] = pts
        ys = [v for pts in series.values() for _, v, _ in pts] or [1]
        ymax = max(ys) * 1.1 or 1
        px = lambda r: ox + L + (math.log10(r) - x0) / (x1 - x0) * (W - L - R)
        py = lambda v: T + (1 - v / ymax) * (H - T - B)
        out.append(f'<text x="{ox + W / 2}" y="20" text-anchor="middle" font-weight="bold">{title}</text>')
        out.append(f'<line x1="{ox + L}" y1="{H - B}" x2="{ox + W - R}" y2="{H - B}" stroke="black"/>')
        out.append(f'<line x1="{ox + L}" y1="{T}" x2="{ox + L}" y2="{H - B}" stroke="black"/>')
        for r in rates:
            out.append(f'<text x="{px(r):.1f}" y="{H - B + 16}" text-anchor="middle">{r}</text>')
        out.append(f'<text x="{ox + W / 2}" y="{H - B + 34}" text-anchor="middle">events per second (1 channel, log scale)</text>')
        for k in range(5):
            v = ymax * k / 4
            out.append(f'<text x="{ox + L - 6}" y="{py(v) + 4:.1f}" text-anchor="end">{v:.3g}</text>')
            out.append(f'<line x1="{ox + L}" y1="{py(v):.1f}" x2="{ox + W - R}" y2="{py(v):.1f}" stroke="#ddd"/>')
        for s, pts in series.items():
            if not pts:
                continue
            c = COLORS[s]
            path = " ".join(f"{px(r):.1f},{py(v):.1f}" for r, v, _ in pts)
            out.append(f'<polyline points="{path}" fill="none" stroke="{c}" stroke-width="2"/>')
            for r, v, bad in pts:
                fill = "white" if bad else c
                out.append(f'<circle cx="{px(r):.1f}" cy="{py(v):.1f}" r="4" fill="{fill}" stroke="{c}" stroke-width="2"><title>{s} {r}/s: {v:.3g}</title></circle>')
    for i, s in enumerate(SERVERS):
        x = 80 + i * 140
        out.append(f'<rect x="{x}" y="{H + 8}" width="14" height="4" fill="{COLORS[s]}"/>')
        out.append(f'<text x="{x + 20}" y="{H + 14}">{s}</text>')
    out.append(f'<text x="{80 + 3 * 140}" y="{H + 14}">hollow marker: events lost or generator saturated</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    work, out_md, out_svg, rates = sys.argv[1], sys.argv[2], sys.argv[3], [int(r) for r in sys.argv[4].split()]
    header = (f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.node()} "
              f"({os.cpu_count()} cores, kernel {platform.release()}); servers on CPU 0, generator on CPU 1")
    text = table(work, rates)
    print(header)
    print(text)
    with open(out_md, "w") as f:
        f.write(header + "\n\n" + text + "\n")
    with open(out_svg, "w") as f:
        f.write(curve_svg(work, rates))
    print(f"rate curve: {out_svg}")


if __name__ == "__main__":
    main()

//! `--report FILE`: the run as a picture. `.svg` is a latency-by-percentile plot and a
//! timeline (deliveries, or opens, per 100 ms); `.html` wraps the same SVG with the summary
//! and the JSON line; `.json` is the JSON line alone. The SVG is written by hand: no plotting
//! or font library, text is left to the viewer's fonts.

use std::fmt::Write as _;
use std::path::Path;

use super::stats::Latencies;

/// What `--report` writes, from the file's extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Svg,
    Html,
}

impl Format {
    pub fn of(path: &Path) -> Result<Format, String> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("json") => Ok(Format::Json),
            Some("svg") => Ok(Format::Svg),
            Some("html" | "htm") => Ok(Format::Html),
            _ => Err(format!(
                "--report {}: the file name must end in .json, .svg or .html",
                path.display()
            )),
        }
    }
}

/// Counts per 100 ms bucket, drawn as a rate per second.
#[derive(Clone, Debug, Default)]
pub struct Series {
    /// What is counted, e.g. "deliveries".
    pub what: String,
    pub counts: Vec<u64>,
    /// A second step line to compare against (e.g. events published × subscribers).
    pub reference: Option<(String, Vec<u64>)>,
    /// What time 0 is, e.g. "the first publish".
    pub origin: String,
}

/// A replay check: the events expected after resuming against those received.
#[derive(Clone, Debug, Default)]
pub struct Resume {
    pub expected: Vec<u64>,
    pub received: Vec<u64>,
    pub reset: bool,
}

/// Everything a report shows.
#[derive(Debug, Default)]
pub struct Figure {
    pub title: String,
    /// The human summary, one line each.
    pub lines: Vec<String>,
    pub latencies: Option<Latencies>,
    pub series: Option<Series>,
    pub resume: Option<Resume>,
}

/// Write `figure` (or just `json_line`) to `path` in `format`.
pub fn write(path: &Path, format: Format, figure: Figure, json_line: &str) -> Result<(), String> {
    let text = match format {
        Format::Json => format!("{json_line}\n"),
        Format::Svg => svg(figure, true),
        Format::Html => html(figure, json_line),
    };
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

const WIDTH: f64 = 960.0;
const PANEL_HEIGHT: f64 = 330.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const BLUE: &str = "#2b6cb0";
const ORANGE: &str = "#dd6b20";
const GRID: &str = "#e2e8f0";
const INK: &str = "#1a202c";
const MUTED: &str = "#4a5568";

fn html(figure: Figure, json_line: &str) -> String {
    let mut page = String::new();
    let _ = write!(
        page,
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{}</title>\n\
         <style>body{{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:{INK}}}\
         pre{{background:#f7fafc;padding:.8em;white-space:pre-wrap;word-break:break-all}}</style>\
         </head><body>\n<h1>{}</h1>\n<pre>{}</pre>\n",
        escape(&figure.title),
        escape(&figure.title),
        escape(&figure.lines.join("\n"))
    );
    page.push_str(&svg(figure, false));
    let _ = write!(
        page,
        "\n<details><summary>JSON summary</summary><pre>{}</pre></details>\n</body></html>\n",
        escape(json_line)
    );
    page
}

/// The SVG document; with `header`, the title and summary lines are drawn above the panels.
fn svg(mut figure: Figure, header: bool) -> String {
    let mut body = String::new();
    let mut y = 0.0;
    if header {
        y += 34.0;
        text(&mut body, 20.0, y, 20, "start", INK, &figure.title, true);
        y += 8.0;
        for line in &figure.lines {
            y += 19.0;
            text(&mut body, 20.0, y, 13, "start", MUTED, line, false);
        }
        y += 16.0;
    }
    if let Some(l) = figure.latencies.as_mut().filter(|l| !l.is_empty()) {
        percentile_panel(&mut body, y, l);
        y += PANEL_HEIGHT;
    }
    if let Some(s) = figure.series.as_ref().filter(|s| !s.counts.is_empty()) {
        series_panel(&mut body, y, s);
        y += PANEL_HEIGHT;
    }
    if let Some(r) = &figure.resume {
        y = resume_panel(&mut body, y, r);
    }
    let height = y.max(60.0) + 10.0;
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n{body}</svg>\n"
    )
}

/// Plot area of a panel starting at `y0`: (left, top, width, height).
fn area(y0: f64) -> (f64, f64, f64, f64) {
    (
        LEFT,
        y0 + TOP,
        WIDTH - LEFT - RIGHT,
        PANEL_HEIGHT - TOP - BOTTOM,
    )
}

/// Latency (y, linear) against percentile on a "nines" axis (x = -log10(1 - p)): 50%, 90%,
/// 99%, 99.9%… equally spaced, the tail where it matters.
fn percentile_panel(out: &mut String, y0: f64, l: &mut Latencies) {
    let (ax, ay, aw, ah) = area(y0);
    let n = l.len() as f64;
    let max = l.percentile(100.0).unwrap_or(0);
    let nines = n.log10().ceil().clamp(3.0, 6.0);
    let (top, step) = nice_axis(max as f64);
    let px = |x: f64| ax + aw * x / nines;
    let py = |us: f64| ay + ah - ah * us / top;
    text(
        out,
        ax,
        y0 + 24.0,
        15,
        "start",
        INK,
        &format!(
            "Latency by percentile, publish → receipt ({} samples)",
            l.len()
        ),
        true,
    );
    y_grid(out, (ax, ay, aw, ah), top, step, &fmt_us);
    for k in 0..=(nines as u32) {
        let x = px(f64::from(k));
        let label = match k {
            0 => "0%".to_string(),
            k => format!("{}%", 100.0 - 100.0 / 10f64.powi(k as i32)),
        };
        v_tick(out, x, ay, ah, &label);
    }
    v_tick(out, px(2f64.log10()), ay, ah, "50%");
    text(
        out,
        ax + aw / 2.0,
        ay + ah + 40.0,
        12,
        "middle",
        MUTED,
        "percentile (log scale of 1 − p)",
        false,
    );
    // The curve: 300 points up to the last rank below the maximum, then the maximum.
    let last = n.log10().min(nines);
    let mut points = String::new();
    for i in 0..=300 {
        let x = last * f64::from(i) / 300.0;
        let p = 100.0 * (1.0 - 10f64.powf(-x));
        let v = l.percentile(p.max(1e-9)).unwrap_or(0) as f64;
        let _ = write!(points, "{:.1},{:.1} ", px(x), py(v));
    }
    let _ = write!(points, "{:.1},{:.1}", px(nines), py(max as f64));
    let _ = writeln!(
        out,
        "<polyline points=\"{points}\" fill=\"none\" stroke=\"{BLUE}\" stroke-width=\"2.5\" stroke-linejoin=\"round\"/>"
    );
    // Named percentiles: a dot on the curve and a row in the legend.
    let marks = [
        ("p50", 50.0, 2f64.log10()),
        ("p90", 90.0, 1.0),
        ("p99", 99.0, 2.0),
        ("p99.9", 99.9, 3.0),
        ("max", 100.0, nines),
    ];
    let (lx, mut ly) = (ax + 16.0, ay + 18.0);
    let _ = writeln!(
        out,
        "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"150\" height=\"{}\" fill=\"white\" fill-opacity=\"0.85\" stroke=\"{GRID}\"/>",
        lx - 8.0,
        ly - 14.0,
        marks.len() * 18 + 6
    );
    for (name, p, x) in marks {
        let v = l.percentile(p).unwrap_or(0);
        let _ = writeln!(
            out,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"{ORANGE}\"/>",
            px(x.min(last).max(if p >= 100.0 { nines } else { 0.0 })),
            py(v as f64)
        );
        text(out, lx, ly, 12, "start", INK, name, true);
        text(
            out,
            lx + 134.0,
            ly,
            12,
            "end",
            INK,
            &fmt_us(v as f64),
            false,
        );
        ly += 18.0;
    }
    frame(out, (ax, ay, aw, ah));
}

/// Counts per 100 ms as a rate per second, with an optional reference step line.
fn series_panel(out: &mut String, y0: f64, s: &Series) {
    let (ax, ay, aw, ah) = area(y0);
    let buckets = s
        .counts
        .len()
        .max(s.reference.as_ref().map_or(0, |r| r.1.len()))
        .max(1);
    let secs = buckets as f64 / 10.0;
    let peak = s
        .counts
        .iter()
        .chain(s.reference.iter().flat_map(|r| r.1.iter()))
        .copied()
        .max()
        .unwrap_or(0) as f64
        * 10.0;
    let (top, step) = nice_axis(peak);
    let (xtop, xstep) = nice_axis_in(secs, 10.0);
    let px = |t: f64| ax + aw * t / xtop;
    let py = |rate: f64| ay + ah - ah * rate / top;
    let total: u64 = s.counts.iter().sum();
    text(
        out,
        ax,
        y0 + 24.0,
        15,
        "start",
        INK,
        &format!(
            "{} per second, 100 ms buckets ({} in all)",
            capitalize(&s.what),
            group(total)
        ),
        true,
    );
    y_grid(out, (ax, ay, aw, ah), top, step, &|v| group(v as u64));
    let mut t = 0.0;
    while t <= xtop + 1e-9 {
        v_tick(out, px(t), ay, ah, &round_label(t));
        t += xstep;
    }
    text(
        out,
        ax + aw / 2.0,
        ay + ah + 40.0,
        12,
        "middle",
        MUTED,
        &format!("seconds since {}", s.origin),
        false,
    );
    let step_path = |counts: &[u64]| {
        let mut d = format!("M{:.1},{:.1}", px(0.0), py(0.0));
        for (i, &c) in counts.iter().enumerate() {
            let (x0, x1) = (px(i as f64 / 10.0), px((i + 1) as f64 / 10.0));
            let y = py(c as f64 * 10.0);
            let _ = write!(d, " L{x0:.1},{y:.1} L{x1:.1},{y:.1}");
        }
        d
    };
    let mut area_path = step_path(&s.counts);
    let _ = write!(
        area_path,
        " L{:.1},{:.1} Z",
        px(s.counts.len() as f64 / 10.0),
        py(0.0)
    );
    let _ = writeln!(
        out,
        "<path d=\"{area_path}\" fill=\"{BLUE}\" fill-opacity=\"0.35\" stroke=\"{BLUE}\" stroke-width=\"1.2\"/>"
    );
    let mut legend = Vec::new();
    if let Some((label, counts)) = &s.reference {
        legend.push((BLUE, s.what.clone(), false));
        let _ = writeln!(
            out,
            "<path d=\"{}\" fill=\"none\" stroke=\"{ORANGE}\" stroke-width=\"1.8\" stroke-dasharray=\"6 4\"/>",
            step_path(counts)
        );
        legend.push((ORANGE, label.clone(), true));
    }
    let (lx, mut ly) = (ax + aw - 250.0, ay + 18.0);
    if !legend.is_empty() {
        let _ = writeln!(
            out,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"236\" height=\"{}\" fill=\"white\" fill-opacity=\"0.85\" stroke=\"{GRID}\"/>",
            lx - 8.0,
            ly - 14.0,
            legend.len() * 18 + 6
        );
    }
    for (color, label, dashed) in legend {
        let dash = if dashed {
            " stroke-dasharray=\"6 4\""
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "<line x1=\"{lx:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{color}\" stroke-width=\"3\"{dash}/>",
            ly - 4.0,
            lx + 24.0,
            ly - 4.0
        );
        text(out, lx + 32.0, ly, 12, "start", INK, &label, false);
        ly += 18.0;
    }
    frame(out, (ax, ay, aw, ah));
}

/// Most events drawn per row of the replay strip.
const STRIP_EVENTS: usize = 40;

/// Two rows of boxes, expected and received after resuming: green where they agree, red where
/// they do not. Returns the y below the panel.
fn resume_panel(out: &mut String, y0: f64, r: &Resume) -> f64 {
    let (green, red) = ("#38a169", "#e53e3e");
    let mut y = y0 + 24.0;
    text(
        out,
        LEFT,
        y,
        15,
        "start",
        INK,
        "Events after resuming: expected, then received",
        true,
    );
    y += 16.0;
    if r.reset {
        y += 14.0;
        text(
            out,
            LEFT,
            y,
            12,
            "start",
            red,
            "the server sent a reset event: history was not replayed",
            true,
        );
        y += 6.0;
    }
    let rows = [
        ("expected", &r.expected, &r.received),
        ("received", &r.received, &r.expected),
    ];
    for (label, row, other) in rows {
        text(out, LEFT - 8.0, y + 23.0, 12, "end", MUTED, label, false);
        for (i, seq) in row.iter().take(STRIP_EVENTS).enumerate() {
            let x = LEFT + i as f64 * 21.0;
            let color = if other.get(i) == Some(seq) {
                green
            } else {
                red
            };
            let _ = writeln!(
                out,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"19\" height=\"30\" rx=\"3\" fill=\"{color}\"/>",
                y + 4.0
            );
            text(
                out,
                x + 9.5,
                y + 23.0,
                10,
                "middle",
                "white",
                &seq.to_string(),
                true,
            );
        }
        if row.is_empty() {
            text(out, LEFT, y + 23.0, 12, "start", red, "nothing", true);
        } else if row.len() > STRIP_EVENTS {
            let more = format!("… {} more", row.len() - STRIP_EVENTS);
            text(
                out,
                LEFT + STRIP_EVENTS as f64 * 21.0 + 4.0,
                y + 23.0,
                12,
                "start",
                MUTED,
                &more,
                false,
            );
        }
        y += 40.0;
    }
    y + 10.0
}

/// Horizontal grid lines and labels every `step` up to `top`.
fn y_grid(
    out: &mut String,
    (ax, ay, aw, ah): (f64, f64, f64, f64),
    top: f64,
    step: f64,
    label: &dyn Fn(f64) -> String,
) {
    let mut v = 0.0;
    while v <= top + step * 1e-6 {
        let y = ay + ah - ah * v / top;
        let _ = writeln!(
            out,
            "<line x1=\"{ax:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{GRID}\"/>",
            ax + aw
        );
        text(out, ax - 8.0, y + 4.0, 11, "end", MUTED, &label(v), false);
        v += step;
    }
}

/// A vertical grid line at `x` with a label under the plot.
fn v_tick(out: &mut String, x: f64, ay: f64, ah: f64, label: &str) {
    let _ = writeln!(
        out,
        "<line x1=\"{x:.1}\" y1=\"{ay:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"{GRID}\"/>",
        ay + ah
    );
    text(out, x, ay + ah + 18.0, 11, "middle", MUTED, label, false);
}

fn frame(out: &mut String, (ax, ay, aw, ah): (f64, f64, f64, f64)) {
    let _ = writeln!(
        out,
        "<rect x=\"{ax:.1}\" y=\"{ay:.1}\" width=\"{aw:.1}\" height=\"{ah:.1}\" fill=\"none\" stroke=\"#a0aec0\"/>"
    );
}

#[allow(clippy::too_many_arguments)]
fn text(
    out: &mut String,
    x: f64,
    y: f64,
    size: u32,
    anchor: &str,
    color: &str,
    s: &str,
    bold: bool,
) {
    let weight = if bold { " font-weight=\"bold\"" } else { "" };
    let _ = writeln!(
        out,
        "<text x=\"{x:.1}\" y=\"{y:.1}\" font-size=\"{size}\" text-anchor=\"{anchor}\" fill=\"{color}\"{weight}>{}</text>",
        escape(s)
    );
}

/// An axis from 0 to a round number at or above `max`, and its step (1, 2 or 5 × 10^k, about
/// five steps).
fn nice_axis(max: f64) -> (f64, f64) {
    nice_axis_in(max, 5.0)
}

/// [`nice_axis`] with about `steps` steps.
fn nice_axis_in(max: f64, steps: f64) -> (f64, f64) {
    if max <= 0.0 || !max.is_finite() {
        return (1.0, 0.2);
    }
    let rough = max / steps;
    let mag = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= rough)
        .unwrap_or(10.0 * mag);
    ((max / step).ceil() * step, step)
}

/// Microseconds as a reader wants them.
fn fmt_us(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else if us < 10_000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else if us < 100_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{:.0} ms", us / 1000.0)
    }
}

fn round_label(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// 1234567 → "1 234 567".
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{2009}');
        }
        out.push(c);
    }
    out
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_follow_the_extension() {
        let rows = [
            ("r.json", Some(Format::Json)),
            ("r.svg", Some(Format::Svg)),
            ("r.HTML", Some(Format::Html)),
            ("r.htm", Some(Format::Html)),
            ("r.txt", None),
            ("r", None),
        ];
        for (name, want) in rows {
            assert_eq!(Format::of(Path::new(name)).ok(), want, "{name}");
        }
    }

    #[test]
    fn axes_end_on_round_numbers() {
        let rows = [
            (0.0, (1.0, 0.2)),
            (7.0, (8.0, 2.0)),
            (95.0, (100.0, 20.0)),
            (1234.0, (1500.0, 500.0)),
            (30_000.0, (30_000.0, 10_000.0)),
        ];
        for (max, want) in rows {
            let (top, step) = nice_axis(max);
            assert!(
                (top - want.0).abs() < 1e-9 && (step - want.1).abs() < 1e-9,
                "{max}: {top} {step}"
            );
        }
    }

    #[test]
    fn svg_has_both_panels_and_escapes_text() {
        let mut l = Latencies::default();
        for v in 1..=1000 {
            l.push(v * 10);
        }
        let figure = Figure {
            title: "fanout <3>".into(),
            lines: vec!["a & b".into()],
            latencies: Some(l),
            series: Some(Series {
                what: "deliveries".into(),
                counts: vec![0, 5, 10, 5],
                reference: Some(("published × subscribers".into(), vec![10, 10])),
                origin: "the first publish".into(),
            }),
            resume: Some(Resume {
                expected: vec![3, 4, 5],
                received: vec![3, 5],
                reset: true,
            }),
        };
        let s = svg(figure, true);
        assert!(s.starts_with("<svg "));
        assert!(s.contains("fanout &lt;3&gt;") && s.contains("a &amp; b"));
        assert!(s.contains("<polyline") && s.contains("<path"));
        assert!(s.contains(">p99.9<") && s.contains(">10.0 ms<"));
        assert!(s.contains("reset event") && s.contains("seconds since the first publish"));
        assert_eq!(s.matches("<svg").count(), 1);
    }
}

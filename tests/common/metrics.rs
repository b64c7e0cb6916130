//! `/metrics`, read over HTTP and summed over label sets.
#![allow(dead_code)]

use super::*;

/// `/metrics` with each metric summed over its label sets (gauges are per worker).
#[derive(Clone, Debug)]
pub struct Metrics(pub HashMap<String, u64>);

impl Metrics {
    /// A metric's value; panics if the server does not export it.
    pub fn get(&self, name: &str) -> u64 {
        *self
            .0
            .get(name)
            .unwrap_or_else(|| panic!("/metrics has no {name}"))
    }
}

pub fn metrics(addr: SocketAddr) -> Metrics {
    let resp = get(addr, "/metrics");
    assert_eq!(resp.status, 200, "/metrics: {}", resp.text());
    parse_metrics(&resp.text())
}

/// Values per label set, e.g. `pushcore_subscribers{worker="0"}` → 3.
pub fn metrics_raw(addr: SocketAddr) -> HashMap<String, u64> {
    let resp = get(addr, "/metrics");
    assert_eq!(resp.status, 200, "/metrics: {}", resp.text());
    resp.text()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(k, v)| Some((k.to_string(), v.trim().parse::<u64>().ok()?)))
        .collect()
}

pub fn parse_metrics(text: &str) -> Metrics {
    let mut out: HashMap<String, u64> = HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (key, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad metrics line {line:?}"));
        let name = key.split('{').next().unwrap_or(key);
        // Counters and gauges are integers; histogram sums are seconds (kept whole here).
        let value: f64 = value
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("bad metrics value in {line:?}: {e}"));
        let value = value as u64;
        *out.entry(name.to_string()).or_default() += value;
    }
    Metrics(out)
}

/// Poll `/metrics` until `metric` satisfies `check` (bounded by `timeout`); the last value seen.
pub fn wait_metric(
    addr: SocketAddr,
    metric: &str,
    timeout: Duration,
    check: impl Fn(u64) -> bool,
) -> Result<u64, u64> {
    let mut last = 0;
    let ok = wait_until(timeout, || {
        last = metrics(addr).get(metric);
        check(last)
    });
    if ok {
        Ok(last)
    } else {
        Err(last)
    }
}

//! Accounting the generator's verdicts rest on: per-subscriber delivery tallies (lost,
//! duplicated, out of order), latency percentiles, and a target process's CPU and memory.

/// What one subscriber received of `events` numbered events.
#[derive(Clone, Debug)]
pub struct Tally {
    seen: Vec<u64>,
    events: u64,
    last: Option<u64>,
    pub unique: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    /// Sequence numbers outside `0..events`.
    pub unexpected: u64,
}

impl Tally {
    pub fn new(events: u64) -> Tally {
        let words = usize::try_from(events.div_ceil(64)).unwrap_or(0);
        Tally {
            seen: vec![0; words],
            events,
            last: None,
            unique: 0,
            duplicates: 0,
            out_of_order: 0,
            unexpected: 0,
        }
    }

    pub fn record(&mut self, seq: u64) {
        if seq >= self.events {
            self.unexpected += 1;
            return;
        }
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        let Some(w) = self.seen.get_mut(word) else {
            return;
        };
        if *w & (1 << bit) != 0 {
            self.duplicates += 1;
            return;
        }
        *w |= 1 << bit;
        self.unique += 1;
        if self.last.is_some_and(|last| seq < last) {
            self.out_of_order += 1;
        }
        self.last = Some(self.last.map_or(seq, |l| l.max(seq)));
    }

    pub fn events(&self) -> u64 {
        self.events
    }

    pub fn lost(&self) -> u64 {
        self.events - self.unique
    }
}

/// Totals over many tallies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub unexpected: u64,
}

impl Totals {
    pub fn add(&mut self, t: &Tally) {
        self.expected += t.events;
        self.delivered += t.unique;
        self.lost += t.lost();
        self.duplicates += t.duplicates;
        self.out_of_order += t.out_of_order;
        self.unexpected += t.unexpected;
    }
}

/// Latency samples in microseconds.
#[derive(Clone, Debug, Default)]
pub struct Latencies {
    samples: Vec<u64>,
    sorted: bool,
}

impl Latencies {
    pub fn push(&mut self, micros: u64) {
        self.samples.push(micros);
        self.sorted = false;
    }

    pub fn extend(&mut self, other: &Latencies) {
        self.samples.extend_from_slice(&other.samples);
        self.sorted = false;
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The `p`-th percentile (0 < p ≤ 100), nearest-rank.
    pub fn percentile(&mut self, p: f64) -> Option<u64> {
        if !self.sorted {
            self.samples.sort_unstable();
            self.sorted = true;
        }
        let n = self.samples.len();
        if n == 0 {
            return None;
        }
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        self.samples.get(rank.clamp(1, n) - 1).copied()
    }
}

/// Find `"key":<unsigned integer>` in a JSON text without a full parse (the bench payload).
pub fn json_u64(text: &str, key: &str) -> Option<u64> {
    let pat = format!("\"{key}\":");
    let start = text.find(&pat)? + pat.len();
    let digits: &str = text.get(start..)?.trim_start();
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits.get(..end)?.parse().ok()
}

/// CPU time and resident memory of a process, from /proc.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcSample {
    pub cpu_micros: u64,
    pub rss_bytes: u64,
}

pub fn sample_process(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name: state is field 3; utime 14, stime 15.
    let after = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let ticks = clock_ticks_per_sec();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())?;
    Some(ProcSample {
        cpu_micros: (utime + stime) * 1_000_000 / ticks,
        rss_bytes: rss_kb * 1024,
    })
}

fn clock_ticks_per_sec() -> u64 {
    // Linux has reported 100 (USER_HZ) on every mainstream architecture for decades.
    100
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_detects_loss_duplicates_and_reordering() {
        let mut t = Tally::new(6);
        for seq in [0, 1, 3, 2, 3, 9] {
            t.record(seq);
        }
        assert_eq!(
            (
                t.unique,
                t.duplicates,
                t.out_of_order,
                t.unexpected,
                t.lost()
            ),
            (4, 1, 1, 1, 2)
        );
        let mut totals = Totals::default();
        totals.add(&t);
        totals.add(&Tally::new(6));
        assert_eq!(totals.expected, 12);
        assert_eq!(totals.lost, 8);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut l = Latencies::default();
        for v in 1..=100 {
            l.push(v);
        }
        assert_eq!(l.percentile(50.0), Some(50));
        assert_eq!(l.percentile(99.0), Some(99));
        assert_eq!(l.percentile(100.0), Some(100));
        assert_eq!(Latencies::default().percentile(50.0), None);
    }

    #[test]
    fn payload_fields() {
        let data = r#"{"seq":42,"ts": 1700000000123456,"pad":"xx"}"#;
        assert_eq!(json_u64(data, "seq"), Some(42));
        assert_eq!(json_u64(data, "ts"), Some(1_700_000_000_123_456));
        assert_eq!(json_u64(data, "nope"), None);
    }

    #[test]
    fn own_process_can_be_sampled() {
        let s = sample_process(std::process::id());
        assert!(s.is_some_and(|s| s.rss_bytes > 0));
    }
}

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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

    pub fn merge(&mut self, o: &Totals) {
        self.expected += o.expected;
        self.delivered += o.delivered;
        self.lost += o.lost;
        self.duplicates += o.duplicates;
        self.out_of_order += o.out_of_order;
        self.unexpected += o.unexpected;
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

    /// The samples as sorted runs, `[value delta, count, …]`: exact and compact on the wire
    /// between generator processes.
    pub fn to_runs(&mut self) -> Vec<u64> {
        let _ = self.percentile(50.0);
        let mut runs = Vec::new();
        let mut prev = 0;
        for chunk in self.samples.chunk_by(|a, b| a == b) {
            let v = chunk.first().copied().unwrap_or(prev);
            runs.extend([v - prev, chunk.len() as u64]);
            prev = v;
        }
        runs
    }

    pub fn from_runs(runs: &[u64]) -> Latencies {
        let mut samples = Vec::new();
        let mut v = 0u64;
        for pair in runs.chunks_exact(2) {
            if let [delta, count] = pair {
                v = v.saturating_add(*delta);
                samples.extend(std::iter::repeat_n(v, (*count).min(1 << 32) as usize));
            }
        }
        Latencies {
            samples,
            sorted: true,
        }
    }
}

/// Width of one [`Timeline`] bucket.
pub const BUCKET_MICROS: u64 = 100_000;
/// A timeline covers at most this many buckets (an hour); later ones are dropped.
const MAX_BUCKETS: usize = 36_000;

/// Counts per 100 ms of wall-clock time (deliveries, opens, publishes). Buckets are absolute
/// (since the Unix epoch), so timelines from several threads or processes merge by addition.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Timeline {
    first_bucket: u64,
    counts: Vec<u64>,
}

impl Timeline {
    /// Count one occurrence at `at_micros` (Unix epoch microseconds).
    pub fn record(&mut self, at_micros: u64) {
        self.add(at_micros / BUCKET_MICROS, 1);
    }

    fn add(&mut self, bucket: u64, n: u64) {
        if self.counts.is_empty() {
            self.first_bucket = bucket;
        }
        if bucket < self.first_bucket {
            let grow = (self.first_bucket - bucket) as usize;
            if grow + self.counts.len() > MAX_BUCKETS {
                return;
            }
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.first_bucket = bucket;
        }
        let i = (bucket - self.first_bucket) as usize;
        if i >= MAX_BUCKETS {
            return;
        }
        if i >= self.counts.len() {
            self.counts.resize(i + 1, 0);
        }
        if let Some(c) = self.counts.get_mut(i) {
            *c += n;
        }
    }

    pub fn merge(&mut self, other: &Timeline) {
        for (i, &n) in other.counts.iter().enumerate() {
            if n > 0 {
                self.add(other.first_bucket + i as u64, n);
            }
        }
    }

    /// Counts per bucket, starting with the bucket that holds `from_micros`.
    pub fn since(&self, from_micros: u64) -> Vec<u64> {
        let from = from_micros / BUCKET_MICROS;
        let skip = from.saturating_sub(self.first_bucket) as usize;
        let lead = self.first_bucket.saturating_sub(from) as usize;
        let mut out = vec![0; lead.min(MAX_BUCKETS)];
        out.extend(self.counts.iter().skip(skip));
        out
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
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
    fn latency_runs_round_trip() {
        let mut l = Latencies::default();
        for v in [30, 10, 20, 10, 30, 30, 5] {
            l.push(v);
        }
        let runs = l.to_runs();
        assert_eq!(runs, vec![5, 1, 5, 2, 10, 1, 10, 3]);
        let mut back = Latencies::from_runs(&runs);
        assert_eq!(back.len(), 7);
        assert_eq!(back.percentile(50.0), Some(20));
        assert_eq!(back.percentile(100.0), Some(30));
        assert!(Latencies::from_runs(&[]).is_empty());
    }

    #[test]
    fn timelines_merge_on_absolute_buckets() {
        let mut a = Timeline::default();
        a.record(1_000_050_000);
        a.record(1_000_090_000);
        a.record(1_000_350_000);
        let mut b = Timeline::default();
        b.record(999_950_000);
        b.record(1_000_150_000);
        a.merge(&b);
        assert_eq!(a.total(), 5);
        assert_eq!(a.since(1_000_000_000), vec![2, 1, 0, 1]);
        assert_eq!(a.since(999_800_000), vec![0, 1, 2, 1, 0, 1]);
        assert_eq!(Timeline::default().since(5), Vec::<u64>::new());
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

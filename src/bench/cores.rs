//! What the server costs the machine, not just its process: whole-core accounting and kernel
//! memory, from /proc.
//!
//! On loopback much of the TCP work a server's writes cause (softirq receive processing,
//! ACKs, timers, kernel threads) runs on the server's core without being billed to its
//! process. So besides the process's own CPU time (/proc/PID/stat) a run charges the server
//! with all busy time of the CPUs it runs on: their wall time less their idle and iowait time
//! (/proc/uptime, /proc/stat; see [`busy_micros`]). Those CPUs come from `--server-cpus`, or from the affinity of
//! the server's threads (`Cpus_allowed_list` in /proc/PID/task/*/status).
//!
//! Kernel memory per connection comes from the slab allocator: the `Slab`/`SUnreclaim` lines
//! of /proc/meminfo and, where readable, per-cache bytes from /proc/slabinfo.

use std::collections::{BTreeMap, BTreeSet};

use super::stats::{sample_process, ProcSample};

/// Ticks per second of /proc/stat (USER_HZ: 100 on every mainstream Linux architecture).
const TICKS_PER_SEC: u64 = 100;

/// One `cpuN` line of /proc/stat, in ticks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTimes {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
}

impl CpuTimes {
    /// Busy ticks: everything but idle and iowait. (guest time is already inside user.)
    pub fn busy(&self) -> u64 {
        self.user + self.nice + self.system + self.irq + self.softirq + self.steal
    }
}

/// The per-CPU lines of a /proc/stat text (`cpu0 …`, `cpu1 …`; the aggregate `cpu` line is
/// skipped). A malformed `cpuN` line is an error: a silently wrong accounting is worse than none.
pub fn parse_proc_stat(text: &str) -> Result<BTreeMap<usize, CpuTimes>, String> {
    let mut cpus = BTreeMap::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(name) = fields.next() else { continue };
        let Some(index) = name.strip_prefix("cpu") else {
            continue;
        };
        if index.is_empty() {
            continue;
        }
        let cpu: usize = index
            .parse()
            .map_err(|_| format!("/proc/stat: bad cpu name in {line:?}"))?;
        let values: Vec<u64> = fields
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| format!("/proc/stat: non-numeric field in {line:?}"))?;
        // user nice system idle iowait irq softirq steal [guest guest_nice]; kernels before
        // 2.6.11 had fewer: those are not supported.
        let [user, nice, system, idle, iowait, irq, softirq, steal, ..] = values[..] else {
            return Err(format!(
                "/proc/stat: expected at least 8 fields in {line:?}"
            ));
        };
        let times = CpuTimes {
            user,
            nice,
            system,
            idle,
            iowait,
            irq,
            softirq,
            steal,
        };
        if cpus.insert(cpu, times).is_some() {
            return Err(format!("/proc/stat: cpu{cpu} appears twice"));
        }
    }
    if cpus.is_empty() {
        return Err("/proc/stat: no cpuN lines".into());
    }
    Ok(cpus)
}

/// A CPU list as in `taskset -c` and `Cpus_allowed_list`: `0`, `0-3`, `0,2,5-7`.
pub fn parse_cpu_list(text: &str) -> Result<BTreeSet<usize>, String> {
    let mut cpus = BTreeSet::new();
    let text = text.trim();
    if text.is_empty() {
        return Err("empty CPU list".into());
    }
    for part in text.split(',') {
        let part = part.trim();
        let bad = || format!("bad CPU list {text:?}: expected e.g. 0 or 0-3 or 0,2,5-7");
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (
                lo.parse().map_err(|_| bad())?,
                hi.parse().map_err(|_| bad())?,
            ),
            None => {
                let cpu: usize = part.parse().map_err(|_| bad())?;
                (cpu, cpu)
            }
        };
        if lo > hi || hi >= 4096 {
            return Err(bad());
        }
        cpus.extend(lo..=hi);
    }
    Ok(cpus)
}

/// The `Cpus_allowed_list` of a /proc/PID/status text.
pub fn parse_cpus_allowed(status: &str) -> Result<BTreeSet<usize>, String> {
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .ok_or("no Cpus_allowed_list line")?;
    parse_cpu_list(line)
}

/// The CPUs any thread of process `pid` may run on (a server that pins each worker to its own
/// core shows the union).
pub fn process_cpus(pid: u32) -> Result<BTreeSet<usize>, String> {
    let dir = format!("/proc/{pid}/task");
    let tasks = std::fs::read_dir(&dir).map_err(|e| format!("{dir}: {e}"))?;
    let mut cpus = BTreeSet::new();
    for task in tasks.flatten() {
        let path = task.path().join("status");
        // A thread may exit between listing and reading.
        if let Ok(status) = std::fs::read_to_string(&path) {
            cpus.extend(parse_cpus_allowed(&status)?);
        }
    }
    if cpus.is_empty() {
        return Err(format!("{dir}: no readable thread"));
    }
    Ok(cpus)
}

/// Busy time of `cpus` since boot, in microseconds: their time since boot (/proc/uptime) less
/// their idle and iowait time (/proc/stat). Only differences of two readings mean anything.
///
/// Why not the sum of the busy columns: the kernel measures idle time exactly (nohz idle
/// accounting) but samples the busy columns at timer ticks, and a server that is busy in short
/// bursts (a fan-out every 10 ms) aliases with the tick: on this project's VM the busy columns
/// were seen to over-count a 4-second run by ~0.2 s (their sum with idle exceeded wall time).
pub fn busy_micros(cpus: &BTreeSet<usize>) -> Result<u64, String> {
    let uptime =
        std::fs::read_to_string("/proc/uptime").map_err(|e| format!("/proc/uptime: {e}"))?;
    let text = std::fs::read_to_string("/proc/stat").map_err(|e| format!("/proc/stat: {e}"))?;
    let since_boot = parse_uptime_micros(&uptime)?;
    let all = parse_proc_stat(&text)?;
    let mut idle_ticks = 0;
    for cpu in cpus {
        let times = all
            .get(cpu)
            .ok_or_else(|| format!("cpu{cpu} is not in /proc/stat (offline or absent)"))?;
        idle_ticks += times.idle + times.iowait;
    }
    let wall = since_boot.saturating_mul(cpus.len() as u64);
    Ok(wall.saturating_sub(idle_ticks * 1_000_000 / TICKS_PER_SEC))
}

/// The first field of /proc/uptime (seconds since boot, e.g. `11515.32`), in microseconds.
pub fn parse_uptime_micros(text: &str) -> Result<u64, String> {
    let first = text.split_whitespace().next().unwrap_or_default();
    let (secs, frac) = first.split_once('.').unwrap_or((first, ""));
    let bad = || format!("/proc/uptime: expected seconds like 11515.32, got {text:?}");
    let secs: u64 = secs.parse().map_err(|_| bad())?;
    if frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let micros: u64 = if frac.is_empty() {
        0
    } else {
        let digits: u64 = frac.parse().map_err(|_| bad())?;
        digits * 10u64.pow(6 - frac.len() as u32)
    };
    Ok(secs * 1_000_000 + micros)
}

/// How the server is measured: its processes (`--pid`, repeatable: one per instance of a
/// cluster, and its Redis) and its CPUs (if known).
#[derive(Clone, Debug, Default)]
pub struct ServerMeter {
    pub pids: Vec<u32>,
    pub cpus: Option<BTreeSet<usize>>,
    /// Why the CPUs are not known or why they are suspect, for the summary.
    pub note: Option<String>,
    /// How busy the server's CPUs were just before the run (0–1), while the server was idle:
    /// other work there (other processes, kernel threads) that whole-core figures also count.
    pub background_share: Option<f64>,
}

/// How long [`ServerMeter::new`] watches the server's CPUs before the run.
const BACKGROUND_WINDOW: std::time::Duration = std::time::Duration::from_millis(500);

/// Above this background load the whole-core figures are flagged as including other work.
pub const BACKGROUND_WARN_SHARE: f64 = 0.05;

/// One reading of a [`ServerMeter`].
#[derive(Clone, Debug, Default)]
pub struct ServerSample {
    /// All `--pid` processes together (CPU and RSS summed); `None` if none could be read.
    pub process: Option<ProcSample>,
    /// Each `--pid` process, in the order given; `None` where it could not be read.
    pub processes: Vec<(u32, Option<ProcSample>)>,
    pub core_busy_micros: Option<u64>,
    /// When the sample was taken (for CPU shares).
    pub at: Option<std::time::Instant>,
}

/// What one `--pid` process cost over a window.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessCost {
    pub pid: u32,
    /// Its command name (/proc/PID/comm), e.g. `pushcore` or `redis-server`.
    pub name: String,
    pub cpu_micros: Option<u64>,
    /// Its CPU time over the window's wall time: 1.0 is one core kept busy.
    pub cores: Option<f64>,
    pub rss_bytes: Option<u64>,
}

/// What the server cost over a window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServerCost {
    /// CPU time billed to the server's process.
    pub process_micros: Option<u64>,
    /// All busy time of the server's CPUs (kernel work on its behalf included, and anything
    /// else that ran there).
    pub core_micros: Option<u64>,
    /// Resident memory at the end of the window.
    pub rss_bytes: Option<u64>,
    /// Each `--pid` process (empty with a single one: `process_micros` is that process).
    pub processes: Vec<ProcessCost>,
}

impl ServerMeter {
    /// From `--server-cpus LIST` (wins) or the affinity of `--pid`'s threads. `generator_cpus`
    /// are where the generator runs: sharing a CPU with them makes whole-core figures include
    /// the generator, which is said in [`ServerMeter::note`].
    pub fn new(
        pids: &[u32],
        server_cpus: Option<&str>,
        generator_cpus: &BTreeSet<usize>,
    ) -> Result<ServerMeter, String> {
        let mut meter = ServerMeter {
            pids: pids.to_vec(),
            ..ServerMeter::default()
        };
        for &pid in pids {
            if sample_process(pid).is_none() {
                return Err(format!(
                    "--pid {pid}: no such process (or /proc/{pid} unreadable)"
                ));
            }
        }
        match server_cpus {
            Some(list) => {
                meter.cpus = Some(parse_cpu_list(list).map_err(|e| format!("--server-cpus: {e}"))?);
            }
            None if !pids.is_empty() => {
                let mut union = BTreeSet::new();
                for &pid in pids {
                    match process_cpus(pid) {
                        Ok(cpus) => union.extend(cpus),
                        Err(e) => meter.note = Some(format!("server CPUs unknown ({e})")),
                    }
                }
                if meter.note.is_none() {
                    meter.cpus = Some(union);
                }
            }
            None => {}
        }
        if let Some(cpus) = &meter.cpus {
            let t0 = std::time::Instant::now();
            let b0 = busy_micros(cpus)?;
            std::thread::sleep(BACKGROUND_WINDOW);
            let b1 = busy_micros(cpus)?;
            let wall = t0.elapsed().as_micros().max(1) as f64 * cpus.len().max(1) as f64;
            meter.background_share = Some(b1.saturating_sub(b0) as f64 / wall);
            let shared: Vec<_> = cpus.intersection(generator_cpus).collect();
            if !shared.is_empty() {
                meter.note = Some(format!(
                    "the generator also runs on server CPU(s) {shared:?}: whole-core figures include it; pin with --cpu and taskset"
                ));
            } else if let Some(share) = meter
                .background_share
                .filter(|s| *s > BACKGROUND_WARN_SHARE)
            {
                meter.note = Some(format!(
                    "the server's CPUs were {:.0}% busy before the run with the server idle: whole-core figures include that other work",
                    share * 100.0
                ));
            }
        }
        Ok(meter)
    }

    pub fn sample(&self) -> ServerSample {
        let processes: Vec<_> = self.pids.iter().map(|&p| (p, sample_process(p))).collect();
        let process = processes
            .iter()
            .filter_map(|(_, s)| *s)
            .reduce(|a, b| ProcSample {
                cpu_micros: a.cpu_micros + b.cpu_micros,
                rss_bytes: a.rss_bytes + b.rss_bytes,
            });
        ServerSample {
            process,
            processes,
            core_busy_micros: self.cpus.as_ref().and_then(|c| busy_micros(c).ok()),
            at: Some(std::time::Instant::now()),
        }
    }

    /// The CPUs as a list for the JSON line.
    pub fn cpu_list(&self) -> Option<Vec<usize>> {
        self.cpus.as_ref().map(|c| c.iter().copied().collect())
    }
}

impl ServerSample {
    /// Cost from `self` (before) to `after`.
    pub fn cost_until(&self, after: &ServerSample) -> ServerCost {
        ServerCost {
            process_micros: match (self.process, after.process) {
                (Some(b), Some(a)) => Some(a.cpu_micros.saturating_sub(b.cpu_micros)),
                _ => None,
            },
            core_micros: match (self.core_busy_micros, after.core_busy_micros) {
                (Some(b), Some(a)) => Some(a.saturating_sub(b)),
                _ => None,
            },
            rss_bytes: after.process.map(|p| p.rss_bytes),
            processes: self.process_costs(after),
        }
    }

    /// Per-process costs, when there are several processes.
    fn process_costs(&self, after: &ServerSample) -> Vec<ProcessCost> {
        if after.processes.len() < 2 {
            return Vec::new();
        }
        let wall = match (self.at, after.at) {
            (Some(b), Some(a)) => Some(a.duration_since(b).as_micros().max(1) as f64),
            _ => None,
        };
        after
            .processes
            .iter()
            .map(|&(pid, a)| {
                let b = self
                    .processes
                    .iter()
                    .find(|(p, _)| *p == pid)
                    .and_then(|(_, s)| *s);
                let cpu_micros = match (b, a) {
                    (Some(b), Some(a)) => Some(a.cpu_micros.saturating_sub(b.cpu_micros)),
                    _ => None,
                };
                ProcessCost {
                    pid,
                    name: process_name(pid),
                    cpu_micros,
                    cores: cpu_micros.zip(wall).map(|(c, w)| c as f64 / w),
                    rss_bytes: a.map(|a| a.rss_bytes),
                }
            })
            .collect()
    }
}

/// A process's command name from /proc/PID/comm (`?` if it cannot be read).
pub fn process_name(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

impl ServerCost {
    /// Process and whole-core µs per unit (`per` units of work); `None` where not measured.
    pub fn per(&self, per: u64) -> (Option<f64>, Option<f64>) {
        let d = per.max(1) as f64;
        (
            self.process_micros.map(|m| m as f64 / d),
            self.core_micros.map(|m| m as f64 / d),
        )
    }

    /// `server: 4.10 µs per delivery (process), 9.8 µs (whole core 0)`, or None if nothing
    /// was measured.
    pub fn describe(&self, per: u64, unit: &str, cpus: Option<&[usize]>) -> Option<String> {
        let (process, core) = self.per(per);
        let mut parts = Vec::new();
        if let Some(p) = process {
            let whose = if self.processes.is_empty() {
                "process"
            } else {
                "all --pid processes"
            };
            parts.push(format!("{p:.2} µs CPU per {unit} ({whose})"));
        }
        if let (Some(c), Some(cpus)) = (core, cpus) {
            parts.push(format!("{c:.2} µs per {unit} (whole cores {cpus:?})"));
        }
        let d = per.max(1) as f64;
        for p in &self.processes {
            if let (Some(m), Some(cores)) = (p.cpu_micros, p.cores) {
                parts.push(format!(
                    "{} {}: {:.2} µs per {unit}, {:.0}% of a core",
                    p.name,
                    p.pid,
                    m as f64 / d,
                    cores * 100.0
                ));
            }
        }
        (!parts.is_empty()).then(|| format!("server: {}", parts.join(", ")))
    }

    /// Adds `<key>` (process) and `<key>_core` (whole-core) µs per unit to `summary`.
    pub fn add_to(&self, summary: &mut serde_json::Value, key: &str, per: u64) {
        let (process, core) = self.per(per);
        if let Some(p) = process {
            summary[key] = serde_json::json!(p);
        }
        if let Some(c) = core {
            summary[format!("{key}_core")] = serde_json::json!(c);
        }
        if let Some(m) = self.process_micros {
            summary["server_process_cpu_us"] = serde_json::json!(m);
        }
        if let Some(m) = self.core_micros {
            summary["server_core_busy_us"] = serde_json::json!(m);
        }
        if !self.processes.is_empty() {
            let d = per.max(1) as f64;
            summary["server_processes"] = self
                .processes
                .iter()
                .map(|p| {
                    serde_json::json!({
                        "pid": p.pid, "name": p.name, "cpu_us": p.cpu_micros,
                        "cores": p.cores, "rss": p.rss_bytes,
                        key: p.cpu_micros.map(|m| m as f64 / d),
                    })
                })
                .collect();
        }
    }
}

/// Kernel slab memory, from /proc/meminfo and (if readable) /proc/slabinfo.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelMemory {
    pub slab_bytes: u64,
    pub sunreclaim_bytes: u64,
    /// Bytes in use per slab cache (active objects × object size), for the caches that
    /// sockets use; empty if /proc/slabinfo is not readable.
    pub caches: BTreeMap<String, u64>,
}

/// Slab caches a TCP connection's two sockets use on this host.
pub const SOCKET_CACHES: &[&str] = &[
    "TCP",
    "request_sock_TCP",
    "sock_inode_cache",
    "filp",
    "dentry",
    "eventpoll_epi",
    "eventpoll_pwq",
    "skbuff_head_cache",
    "skbuff_small_head",
    "tw_sock_TCP",
];

/// `Slab:` and `SUnreclaim:` of a /proc/meminfo text, in bytes.
pub fn parse_meminfo(text: &str) -> Result<(u64, u64), String> {
    let kb = |key: &str| -> Result<u64, String> {
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .ok_or_else(|| format!("/proc/meminfo: no {key} line"))?;
        let mut f = line.split_whitespace();
        let n: u64 = f
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("/proc/meminfo: bad {key} line {line:?}"))?;
        match f.next() {
            Some("kB") => Ok(n * 1024),
            _ => Err(format!("/proc/meminfo: {key} is not in kB: {line:?}")),
        }
    };
    Ok((kb("Slab:")?, kb("SUnreclaim:")?))
}

/// Bytes in use (active objects × object size) per cache named in `wanted`, from a
/// /proc/slabinfo 2.x text. Malformed lines are errors; unknown caches are skipped.
pub fn parse_slabinfo(text: &str, wanted: &[&str]) -> Result<BTreeMap<String, u64>, String> {
    let mut lines = text.lines();
    match lines.next() {
        Some(v) if v.starts_with("slabinfo - version: 2.") => {}
        other => return Err(format!("/proc/slabinfo: unknown version line {other:?}")),
    }
    let mut out = BTreeMap::new();
    for line in lines {
        if line.starts_with('#') {
            continue;
        }
        let mut f = line.split_whitespace();
        let Some(name) = f.next() else { continue };
        if !wanted.contains(&name) {
            continue;
        }
        let mut num = || -> Result<u64, String> {
            f.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("/proc/slabinfo: bad line {line:?}"))
        };
        let active = num()?;
        let _total = num()?;
        let size = num()?;
        out.insert(name.to_string(), active * size);
    }
    Ok(out)
}

impl KernelMemory {
    /// Read now; `None` if /proc/meminfo cannot be read.
    pub fn sample() -> Option<KernelMemory> {
        let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
        let (slab_bytes, sunreclaim_bytes) = parse_meminfo(&meminfo).ok()?;
        let caches = std::fs::read_to_string("/proc/slabinfo")
            .ok()
            .and_then(|t| parse_slabinfo(&t, SOCKET_CACHES).ok())
            .unwrap_or_default();
        Some(KernelMemory {
            slab_bytes,
            sunreclaim_bytes,
            caches,
        })
    }

    /// Signed growth per cache from `self` to `after`.
    pub fn cache_growth(&self, after: &KernelMemory) -> BTreeMap<String, i64> {
        after
            .caches
            .iter()
            .map(|(k, &a)| {
                let b = self.caches.get(k).copied().unwrap_or(0);
                (k.clone(), a as i64 - b as i64)
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  11903 0 3730 30026 2180 0 892 11 0 0
cpu0 5632 1 1593 15475 1152 2 530 4 0 0
cpu1 6271 0 2136 14550 1027 0 362 7 5 0
intr 495601 0 0
ctxt 1234
";

    #[test]
    fn proc_stat_busy_excludes_idle_and_iowait() {
        let cpus = parse_proc_stat(STAT).unwrap();
        assert_eq!(cpus.len(), 2);
        assert_eq!(cpus[&0].busy(), 5632 + 1 + 1593 + 2 + 530 + 4);
        assert_eq!(cpus[&1].busy(), 6271 + 2136 + 362 + 7);
        assert_eq!(cpus[&1].idle, 14550);
    }

    #[test]
    fn proc_stat_table() {
        // (text, Ok(number of cpus) or Err)
        let table: &[(&str, Result<usize, ()>)] = &[
            ("cpu0 1 2 3 4 5 6 7 8\n", Ok(1)),
            ("cpu0 1 2 3 4 5 6 7 8 9 10\ncpu3 0 0 0 0 0 0 0 0\n", Ok(2)),
            ("cpu 1 2 3 4 5 6 7 8\ncpu0 1 2 3 4 5 6 7 8\n", Ok(1)),
            ("cpu0   1  2 3 4 5 6 7 8   \n\n", Ok(1)),
            ("", Err(())),
            ("cpu 1 2 3 4 5 6 7 8\n", Err(())),
            ("intr 1 2 3\n", Err(())),
            ("cpu0 1 2 3 4 5 6 7\n", Err(())),
            ("cpu0 1 2 3 x 5 6 7 8\n", Err(())),
            ("cpu0 1 2 3 -4 5 6 7 8\n", Err(())),
            ("cpuX 1 2 3 4 5 6 7 8\n", Err(())),
            ("cpu0 1 2 3 4 5 6 7 8\ncpu0 1 2 3 4 5 6 7 8\n", Err(())),
            ("cpu0 99999999999999999999999 2 3 4 5 6 7 8\n", Err(())),
        ];
        for (text, want) in table {
            let got = parse_proc_stat(text).map(|c| c.len()).map_err(|_| ());
            assert_eq!(&got, want, "{text:?}");
        }
    }

    #[test]
    fn cpu_lists_table() {
        let table: &[(&str, Option<Vec<usize>>)] = &[
            ("0", Some(vec![0])),
            ("0-3", Some(vec![0, 1, 2, 3])),
            ("0,2,5-7", Some(vec![0, 2, 5, 6, 7])),
            (" 1 \n", Some(vec![1])),
            ("1,1,0-1", Some(vec![0, 1])),
            ("", None),
            ("a", None),
            ("3-1", None),
            ("0-", None),
            ("-1", None),
            ("0,,1", None),
            ("0-99999", None),
            ("1.5", None),
        ];
        for (text, want) in table {
            let got = parse_cpu_list(text)
                .ok()
                .map(|s| s.into_iter().collect::<Vec<_>>());
            assert_eq!(&got, want, "{text:?}");
        }
    }

    #[test]
    fn uptime_table() {
        let table: &[(&str, Option<u64>)] = &[
            ("11515.32 22000.10\n", Some(11_515_320_000)),
            ("7.5 1.0", Some(7_500_000)),
            ("42", Some(42_000_000)),
            ("0.000001 0", Some(1)),
            ("", None),
            ("abc 1.0", None),
            ("1.2.3 0", None),
            ("1.-5 0", None),
            ("1.1234567 0", None),
            ("-1.0 0", None),
        ];
        for (text, want) in table {
            assert_eq!(parse_uptime_micros(text).ok(), *want, "{text:?}");
        }
    }

    #[test]
    fn cpus_allowed_from_status() {
        let status =
            "Name:\tpushcore\nCpus_allowed:\t3\nCpus_allowed_list:\t0-1\nMems_allowed:\t1\n";
        assert_eq!(
            parse_cpus_allowed(status)
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            vec![0, 1]
        );
        assert!(parse_cpus_allowed("Name:\tx\n").is_err());
        assert!(parse_cpus_allowed("Cpus_allowed_list:\t\n").is_err());
    }

    #[test]
    fn own_process_and_cores_can_be_read() {
        let cpus = process_cpus(std::process::id()).unwrap();
        assert!(!cpus.is_empty());
        assert!(busy_micros(&cpus).is_ok());
        assert!(busy_micros(&BTreeSet::from([4095])).is_err());
    }

    #[test]
    fn costs_per_unit() {
        let before = ServerSample {
            process: Some(ProcSample {
                cpu_micros: 1_000,
                rss_bytes: 1,
            }),
            core_busy_micros: Some(10_000),
            ..ServerSample::default()
        };
        let after = ServerSample {
            process: Some(ProcSample {
                cpu_micros: 5_000,
                rss_bytes: 2,
            }),
            core_busy_micros: Some(30_000),
            ..ServerSample::default()
        };
        let cost = before.cost_until(&after);
        assert_eq!(cost.per(1000), (Some(4.0), Some(20.0)));
        let mut summary = serde_json::json!({});
        cost.add_to(&mut summary, "server_cpu_us_per_delivery", 1000);
        assert_eq!(summary["server_cpu_us_per_delivery"], 4.0);
        assert_eq!(summary["server_cpu_us_per_delivery_core"], 20.0);
        let none = ServerSample::default().cost_until(&after);
        assert_eq!(none.per(1), (None, None));
        assert!(none.describe(1, "delivery", None).is_none());
    }

    #[test]
    fn several_processes_are_summed_and_reported_each() {
        let t0 = std::time::Instant::now();
        let at = |ms| Some(t0 + std::time::Duration::from_millis(ms));
        let s = |cpu_micros, rss_bytes| {
            Some(ProcSample {
                cpu_micros,
                rss_bytes,
            })
        };
        let before = ServerSample {
            process: s(3_000, 30),
            processes: vec![(1, s(1_000, 10)), (2, s(2_000, 20))],
            core_busy_micros: None,
            at: at(0),
        };
        let after = ServerSample {
            process: s(13_000, 31),
            processes: vec![(1, s(3_000, 11)), (2, s(10_000, 20))],
            core_busy_micros: None,
            at: at(100),
        };
        let cost = before.cost_until(&after);
        assert_eq!(cost.process_micros, Some(10_000));
        assert_eq!(cost.processes.len(), 2);
        let second = cost
            .processes
            .get(1)
            .map(|p| (p.pid, p.cpu_micros, p.cores));
        assert_eq!(second, Some((2, Some(8_000), Some(0.08))));
        let mut summary = serde_json::json!({});
        cost.add_to(&mut summary, "us_per_delivery", 1000);
        assert_eq!(summary["us_per_delivery"], 10.0);
        assert_eq!(summary["server_processes"][0]["us_per_delivery"], 2.0);
        assert_eq!(summary["server_processes"][1]["cpu_us"], 8_000);
        let line = cost.describe(1000, "delivery", None).unwrap_or_default();
        assert!(
            line.contains("8.00 µs per delivery, 8% of a core"),
            "{line}"
        );
        // A process that vanished is reported without figures, not as zero.
        let gone = ServerSample {
            processes: vec![(1, s(4_000, 11)), (2, None)],
            at: at(200),
            ..ServerSample::default()
        };
        let cost = after.cost_until(&gone);
        assert_eq!(cost.processes.get(1).map(|p| p.cpu_micros), Some(None));
    }

    #[test]
    fn a_missing_pid_is_refused() {
        let gone = u32::MAX - 1;
        assert!(ServerMeter::new(&[gone], None, &BTreeSet::new()).is_err());
    }

    #[test]
    fn meminfo_table() {
        let good = "MemTotal: 100 kB\nSlab:             127024 kB\nSUnreclaim:        26304 kB\n";
        assert_eq!(parse_meminfo(good), Ok((127_024 * 1024, 26_304 * 1024)));
        for bad in [
            "",
            "Slab: 1 kB\n",
            "Slab: x kB\nSUnreclaim: 1 kB\n",
            "Slab: 1 MB\nSUnreclaim: 1 kB\n",
            "Slab: 1\nSUnreclaim: 1 kB\n",
        ] {
            assert!(parse_meminfo(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn slabinfo_table() {
        let text = "slabinfo - version: 2.1
# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables
TCPv6                 13     13   2496   13    8 : tunables    0    0    0 : slabdata      1      1      0
TCP                  104    156   2368   13    8 : tunables    0    0    0 : slabdata     12     12      0
filp                 609    609    192   21    1 : tunables    0    0    0 : slabdata     29     29      0
";
        let caches = parse_slabinfo(text, SOCKET_CACHES).unwrap();
        assert_eq!(caches.get("TCP"), Some(&(104 * 2368)));
        assert_eq!(caches.get("filp"), Some(&(609 * 192)));
        assert!(!caches.contains_key("TCPv6"));
        assert!(parse_slabinfo("slabinfo - version: 1.1\n", SOCKET_CACHES).is_err());
        assert!(parse_slabinfo("", SOCKET_CACHES).is_err());
        assert!(parse_slabinfo("slabinfo - version: 2.1\nTCP 1 2\n", SOCKET_CACHES).is_err());
        assert!(parse_slabinfo("slabinfo - version: 2.1\nTCP a 2 3\n", SOCKET_CACHES).is_err());
        assert!(parse_slabinfo("slabinfo - version: 2.1\nother x y z\n", SOCKET_CACHES).is_ok());
    }
}

//! The open-file limit, read from `/proc` (no system call wrappers needed here).

/// Descriptors kept free for listeners, rings, doorbells, the epoll set, logs and stdio when
/// `--max-connections` is derived from the open-file limit.
pub const RESERVED_FDS: u64 = 128;

/// The most descriptors this process can have once its soft limit is raised to the hard one:
/// the hard `RLIMIT_NOFILE`, capped by `fs.nr_open` (raising past that fails). `None` when
/// `/proc` cannot be read.
pub fn nofile_ceiling() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let (_, hard) = parse_open_files(&limits)?;
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(u64::MAX);
    Some(hard.min(nr_open))
}

/// The soft and hard `Max open files` of a `/proc/PID/limits` text (`unlimited` = `u64::MAX`).
pub fn parse_open_files(limits: &str) -> Option<(u64, u64)> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut fields = line["Max open files".len()..].split_whitespace();
    let value = |s: Option<&str>| match s? {
        "unlimited" => Some(u64::MAX),
        n => n.parse().ok(),
    };
    Some((value(fields.next())?, value(fields.next())?))
}

/// What to tell an operator whose open-file `limit` is too low for `max_connections`.
pub fn raise_limit_advice(limit: u64, max_connections: u64) -> String {
    let needed = max_connections.saturating_add(RESERVED_FDS);
    format!(
        "the open-file limit ({limit}) is below --max-connections ({max_connections}) plus {} \
         descriptors pushcore needs for itself, so accept() will fail with EMFILE first; \
         raise it to {needed}: `ulimit -n {needed}` before starting (the hard limit may need \
         /etc/security/limits.conf), or `LimitNOFILE={needed}` in the systemd unit; or lower \
         --max-connections",
        RESERVED_FDS
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_soft_and_hard_open_files() {
        let text = "Limit                     Soft Limit           Hard Limit           Units\n\
                    Max cpu time              unlimited            unlimited            seconds\n\
                    Max open files            1024                 524288               files\n";
        assert_eq!(parse_open_files(text), Some((1024, 524288)));
        let text = "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_open_files(text), Some((u64::MAX, u64::MAX)));
        assert_eq!(parse_open_files("Max processes 1 2"), None);
        assert_eq!(parse_open_files("Max open files  x  y  files"), None);
    }

    #[test]
    fn this_process_has_a_ceiling() {
        assert!(nofile_ceiling().is_some_and(|n| n > 0));
    }

    #[test]
    fn advice_names_both_fixes() {
        let advice = raise_limit_advice(1024, 100_000);
        assert!(advice.contains("ulimit -n 100128"), "{advice}");
        assert!(advice.contains("LimitNOFILE=100128"), "{advice}");
    }
}

//! One owner per address. Every worker binds its listener with SO_REUSEPORT, so a second
//! pushcore on the same address would silently join the port and split subscribers and
//! publishers with the first. Before binding, [`probe`] binds a plain socket (no SO_REUSEPORT):
//! if that fails with `EADDRINUSE`, a socket already listens there, and [`find_listener`] looks
//! up which process holds it (`/proc/net/tcp{,6}` for the listening socket's inode, then
//! `/proc/*/fd` for the process that has it open).

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A process that listens on the address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    /// Its pid, when `/proc` shows it (another user's process may not be visible).
    pub pid: Option<u32>,
    /// Its command name (`/proc/PID/comm`).
    pub name: Option<String>,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.pid, &self.name) {
            (Some(pid), Some(name)) => write!(f, "PID {pid} ({name})"),
            (Some(pid), None) => write!(f, "PID {pid}"),
            _ => f.write_str("another process (its PID is not visible here)"),
        }
    }
}

/// Whether something already listens on `addr`: `Ok(None)` when the address is free (or the
/// port is 0, which always picks a free one).
pub fn probe(addr: SocketAddr) -> io::Result<Option<Holder>> {
    use socket2::{Domain, Socket, Type};
    if addr.port() == 0 {
        return Ok(None);
    }
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM.cloexec(), None)?;
    // SO_REUSEADDR: a port left in TIME_WAIT by a stopped server is free; a listening one is not.
    socket.set_reuse_address(true)?;
    match socket.bind(&addr.into()) {
        Ok(()) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => Ok(Some(find_listener(addr))),
        Err(e) => Err(e),
    }
}

/// The process listening on `addr` (or on a wildcard address with its port), other than this one.
pub fn find_listener(addr: SocketAddr) -> Holder {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            inodes.extend(listening_inodes(&text, addr));
        }
    }
    let pid = pid_holding(&inodes);
    let name = pid.and_then(|pid| {
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .ok()
            .map(|s| s.trim().to_owned())
    });
    Holder { pid, name }
}

/// Inodes of the LISTEN sockets in a `/proc/net/tcp` or `tcp6` table that overlap `addr`:
/// same port, and the same address or a wildcard on either side.
pub fn listening_inodes(table: &str, addr: SocketAddr) -> Vec<u64> {
    const LISTEN: &str = "0A";
    let want = addr.ip().to_canonical();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (local, state, inode) = (f.get(1)?, f.get(3)?, f.get(9)?);
            if *state != LISTEN {
                return None;
            }
            let (ip, port) = parse_proc_addr(local)?;
            let ip = ip.to_canonical();
            let overlaps = ip == want || ip.is_unspecified() || want.is_unspecified();
            (port == addr.port() && overlaps)
                .then(|| inode.parse().ok())
                .flatten()
        })
        .collect()
}

/// `0100007F:1F90` (IPv4) or 32 hex digits `:PORT` (IPv6): each 32-bit group as the kernel
/// printed it from memory, i.e. in this machine's byte order.
pub fn parse_proc_addr(s: &str) -> Option<(IpAddr, u16)> {
    let (ip, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let group = |hex: &str| u32::from_str_radix(hex, 16).ok().map(u32::to_ne_bytes);
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(group(ip)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_mut(4).enumerate() {
                chunk.copy_from_slice(&group(ip.get(i * 8..i * 8 + 8)?)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some((ip, port))
}

/// The lowest pid, other than ours, with one of `inodes` open as a socket.
fn pid_holding(inodes: &[u64]) -> Option<u32> {
    if inodes.is_empty() {
        return None;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    let me = std::process::id();
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .collect();
    pids.sort_unstable();
    pids.into_iter().find(|pid| {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            return false;
        };
        fds.filter_map(Result::ok).any(|fd| {
            std::fs::read_link(fd.path())
                .ok()
                .and_then(|target| target.to_str().map(|t| wanted.iter().any(|w| w == t)))
                .unwrap_or(false)
        })
    })
}

/// The one-line refusal for a second instance on `addr`.
pub fn refusal(addr: SocketAddr, holder: &Holder) -> String {
    let stop = match holder.pid {
        Some(pid) => format!("then `kill -TERM {pid}`"),
        None => "then stop the old process".to_owned(),
    };
    format!(
        "{addr} is already served by {holder}; a second instance on it would split subscribers \
         and publishers between the two. Stop that one first, or, for a zero-downtime restart, \
         start this one with --handover and {stop} so it drains"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_net_addresses() {
        // Written the way a little- or big-endian kernel prints 127.0.0.1:8080.
        let lo = u32::from_ne_bytes([127, 0, 0, 1]);
        let v4 = format!("{lo:08X}:1F90");
        assert_eq!(
            parse_proc_addr(&v4),
            Some((IpAddr::V4(Ipv4Addr::LOCALHOST), 8080))
        );
        let one = u32::from_ne_bytes([0, 0, 0, 1]);
        let v6 = format!("{:08X}{:08X}{:08X}{one:08X}:0050", 0, 0, 0);
        assert_eq!(
            parse_proc_addr(&v6),
            Some((IpAddr::V6(Ipv6Addr::LOCALHOST), 80))
        );
        for bad in [
            "",
            "0100007F",
            "0100007F:",
            "0100007F:XYZ",
            "01007F:1F90",
            "zz00007F:1F90",
        ] {
            assert_eq!(parse_proc_addr(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn finds_listening_inodes_by_port_and_overlapping_address() {
        let lo = format!("{:08X}", u32::from_ne_bytes([127, 0, 0, 1]));
        let table = format!(
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
             0: {lo}:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1\n\
             1: 00000000:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 222 1\n\
             2: {lo}:1F92 {lo}:D000 01 00000000:00000000 00:00000000 00000000     0        0 333 1\n"
        );
        let at = |s: &str| {
            s.parse::<SocketAddr>()
                .unwrap_or_else(|e| panic!("{s}: {e}"))
        };
        assert_eq!(listening_inodes(&table, at("127.0.0.1:8080")), [111]);
        assert_eq!(listening_inodes(&table, at("0.0.0.0:8080")), [111]);
        assert_eq!(
            listening_inodes(&table, at("127.0.0.2:8080")),
            Vec::<u64>::new()
        );
        // A wildcard listener covers every address of its port.
        assert_eq!(listening_inodes(&table, at("127.0.0.5:8081")), [222]);
        // An established connection is not a listener.
        assert_eq!(
            listening_inodes(&table, at("127.0.0.1:8082")),
            Vec::<u64>::new()
        );
    }

    #[test]
    fn probe_sees_a_listener_of_this_process_but_no_pid_for_it() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let holder = probe(addr).unwrap_or_else(|e| panic!("{e}"));
        // Our own process is skipped when looking for the holder.
        assert_eq!(
            holder,
            Some(Holder {
                pid: None,
                name: None
            })
        );
        drop(listener);
        assert_eq!(probe(addr).unwrap_or_else(|e| panic!("{e}")), None);
        assert_eq!(
            probe("127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}"))).ok(),
            Some(None)
        );
    }
}

//! The client address behind trusted reverse proxies: `--trusted-proxy` CIDRs, and the
//! `X-Forwarded-For` / `Forwarded` (RFC 7239) hops read from the right.
//!
//! Only a peer inside a trusted CIDR may speak for someone else. Walking the hops from the
//! nearest (rightmost) one, each trusted address hands over to the hop before it; the first
//! untrusted address is the client. A hop that is not an address (`unknown`, an obfuscated
//! node, garbage) stops the walk at the last trusted address: a client can then only make
//! itself look like the proxy, never like another client. `X-Forwarded-For` is used when
//! present (nginx and Caddy append to it), `Forwarded` only when it is absent — so a client
//! cannot inject a `Forwarded` header that a proxy passes through untouched.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// A network in CIDR notation (`10.0.0.0/8`, `fd00::/8`); a bare address is a single host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix_len: u8,
}

/// Why a `--trusted-proxy` value is not a CIDR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CidrError {
    /// Not `ADDRESS` or `ADDRESS/PREFIX`.
    Malformed,
    /// The prefix length is not a number within 0..=32 (IPv4) or 0..=128 (IPv6).
    Prefix { max: u8 },
    /// Bits after the prefix are set (`10.0.0.1/8`); carries the network that was probably meant.
    HostBits { network: Cidr },
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CidrError::Malformed => f.write_str(
                "expected an address or ADDRESS/PREFIX, like 10.0.0.0/8, 127.0.0.1 or fd00::/8",
            ),
            CidrError::Prefix { max } => write!(f, "the prefix length must be 0 to {max}"),
            CidrError::HostBits { network } => {
                write!(f, "bits are set after the prefix; did you mean {network}?")
            }
        }
    }
}

impl std::error::Error for CidrError {}

impl Cidr {
    /// The network `addr/prefix_len`; `None` if the prefix is too long or host bits are set.
    pub fn new(addr: IpAddr, prefix_len: u8) -> Option<Cidr> {
        let cidr = Cidr {
            network: addr,
            prefix_len,
        };
        (prefix_len <= max_prefix(addr) && cidr.masked(addr) == addr).then_some(cidr)
    }

    pub fn network(&self) -> IpAddr {
        self.network
    }

    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// Whether `ip` is inside this network. An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, as
    /// a dual-stack socket reports IPv4 peers) counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match (self.network, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                self.masked(ip) == self.network
            }
            _ => false,
        }
    }

    /// `ip` with the bits after the prefix cleared (same family as `ip`).
    fn masked(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) => {
                let bits = u32::from(v4);
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix_len.min(32)))
                    .unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(bits & mask))
            }
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix_len.min(128)))
                    .unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(bits & mask))
            }
        }
    }
}

fn max_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| CidrError::Malformed)?;
        // A mapped address would never match: the peer is compared in canonical form.
        let addr = addr.to_canonical();
        let max = max_prefix(addr);
        let prefix_len = match prefix {
            None => max,
            Some(p) => {
                if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(CidrError::Prefix { max });
                }
                match p.parse::<u8>() {
                    Ok(n) if n <= max => n,
                    _ => return Err(CidrError::Prefix { max }),
                }
            }
        };
        let probe = Cidr {
            network: addr,
            prefix_len,
        };
        let network = probe.masked(addr);
        if network != addr {
            return Err(CidrError::HostBits {
                network: Cidr {
                    network,
                    prefix_len,
                },
            });
        }
        Ok(probe)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

/// The `--trusted-proxy` networks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<Cidr>,
}

impl TrustedProxies {
    pub fn new(networks: Vec<Cidr>) -> TrustedProxies {
        TrustedProxies { networks }
    }

    /// No proxy is trusted: every client is its peer address (check this before collecting headers).
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|n| n.contains(ip))
    }

    /// The client's address: `peer` unless `peer` is trusted, then the rightmost untrusted hop
    /// of `X-Forwarded-For` (every field line, in order) or, without that header, of
    /// `Forwarded`. Never fails: malformed headers stop the walk at the last trusted address.
    pub fn client_addr(
        &self,
        peer: IpAddr,
        x_forwarded_for: &[&[u8]],
        forwarded: &[&[u8]],
    ) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.contains(peer) {
            return peer;
        }
        if !x_forwarded_for.is_empty() {
            self.walk(peer, x_forwarded_for, parse_xff_hop)
        } else if !forwarded.is_empty() {
            self.walk(peer, forwarded, parse_forwarded_element)
        } else {
            peer
        }
    }

    /// From the right: each trusted address yields to the hop before it.
    fn walk(&self, peer: IpAddr, lines: &[&[u8]], hop: fn(&[u8]) -> Option<IpAddr>) -> IpAddr {
        let mut current = peer;
        for line in lines.iter().rev() {
            for element in split_list(line).rev() {
                if !self.contains(current) {
                    return current;
                }
                match hop(element) {
                    Some(ip) => current = ip.to_canonical(),
                    None => return current,
                }
            }
        }
        current
    }
}

/// Comma-separated list members (a comma inside a quoted string does not split).
fn split_list(line: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    split_unquoted(line, b',').into_iter()
}

/// `line` split at every `sep` outside a quoted string (with `\` escapes inside it).
fn split_unquoted(line: &[u8], sep: u8) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    for (i, &b) in line.iter().enumerate() {
        if escaped {
            escaped = false;
        } else if quoted && b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            quoted = !quoted;
        } else if b == sep && !quoted {
            parts.push(line.get(start..i).unwrap_or_default());
            start = i + 1;
        }
    }
    parts.push(line.get(start..).unwrap_or_default());
    parts
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// One `X-Forwarded-For` hop: `1.2.3.4`, `2001:db8::1`, and the forms some proxies write with a
/// port: `1.2.3.4:5678`, `[2001:db8::1]`, `[2001:db8::1]:5678`.
pub fn parse_xff_hop(hop: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(trim_ows(hop)).ok()?;
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    parse_node_with_port(s)
}

/// `1.2.3.4:port`, `[v6]` or `[v6]:port` (port: 1–5 digits).
fn parse_node_with_port(s: &str) -> Option<IpAddr> {
    if let Some(rest) = s.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return v6.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    let (v4, port) = s.rsplit_once(':')?;
    if !is_port(port) {
        return None;
    }
    v4.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

fn is_port(p: &str) -> bool {
    (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit())
}

/// One `Forwarded` element (`for=192.0.2.60;proto=http;by=…`): the address of its `for`
/// parameter. `None` when it has none, or names `unknown` or an obfuscated node.
pub fn parse_forwarded_element(element: &[u8]) -> Option<IpAddr> {
    let mut found = None;
    for pair in split_params(element) {
        let pair = trim_ows(pair);
        if pair.is_empty() {
            continue;
        }
        let eq = pair.iter().position(|&b| b == b'=')?;
        let (name, value) = (&pair[..eq], &pair[eq + 1..]);
        if !name.eq_ignore_ascii_case(b"for") {
            continue;
        }
        if found.is_some() {
            // Two `for` parameters in one element: ambiguous, so not an address.
            return None;
        }
        found = Some(forwarded_node(value)?);
    }
    found
}

/// `;`-separated parameters (a `;` inside a quoted string does not split).
fn split_params(element: &[u8]) -> Vec<&[u8]> {
    split_unquoted(element, b';')
}

/// A `node` (RFC 7239 §6): a token or a quoted string holding `IPv4[:port]` or `"[IPv6][:port]"`.
fn forwarded_node(value: &[u8]) -> Option<IpAddr> {
    let text = if let [b'"', inner @ .., b'"'] = value {
        let mut out = Vec::with_capacity(inner.len());
        let mut escaped = false;
        for &b in inner {
            if escaped {
                out.push(b);
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                return None;
            } else {
                out.push(b);
            }
        }
        if escaped {
            return None;
        }
        String::from_utf8(out).ok()?
    } else {
        if value.is_empty() || value.contains(&b'"') {
            return None;
        }
        std::str::from_utf8(value).ok()?.to_owned()
    };
    if let Ok(v4) = text.parse::<Ipv4Addr>() {
        return Some(IpAddr::V4(v4));
    }
    // A bare IPv6 address is not a valid node (it must be bracketed), nor is `unknown` or `_x`.
    parse_node_with_port(&text)
}

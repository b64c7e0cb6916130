//! Where the generator connects: URL templates with `{channel}` and `{payload}` placeholders,
//! so one run can drive pushcore, nchan or Mercure.

use std::net::{SocketAddr, ToSocketAddrs};

/// An `http://host:port/path?query` URL, split for a raw HTTP/1.1 client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    pub addr: SocketAddr,
    pub host: String,
    /// Path and query, as sent in the request line.
    pub path: String,
}

pub fn parse_url(url: &str) -> Result<HttpUrl, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (
            rest.get(..i).unwrap_or_default(),
            rest.get(i..).unwrap_or("/"),
        ),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(format!("{url}: no host"));
    }
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.chars().all(|c| c.is_ascii_digit()))
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("{url}: {e}"))?
        .next()
        .ok_or_else(|| format!("{url}: host does not resolve"))?;
    Ok(HttpUrl {
        addr,
        host: authority.to_string(),
        path: path.to_string(),
    })
}

/// Replace `{name}` with `value` everywhere in `template`.
pub fn fill(template: &str, name: &str, value: &str) -> String {
    template.replace(&format!("{{{name}}}"), value)
}

/// A bench payload of about `bytes` bytes carrying its sequence number, send time (`ts`) and
/// scheduled publish time (`due`), both in Unix epoch microseconds.
pub fn payload(seq: u64, sent_micros: u64, due_micros: u64, bytes: usize) -> String {
    let head = format!("{{\"seq\":{seq},\"ts\":{sent_micros},\"due\":{due_micros},\"pad\":\"");
    let pad = bytes.saturating_sub(head.len() + 2);
    let mut s = String::with_capacity(head.len() + pad + 2);
    s.push_str(&head);
    s.extend(std::iter::repeat_n('x', pad));
    s.push_str("\"}");
    s
}

/// Microseconds since the Unix epoch (the publisher and subscribers share this clock).
pub fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = parse_url("http://127.0.0.1:8080/events/stream?channels=x")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            u.addr,
            "127.0.0.1:8080".parse().unwrap_or_else(|e| panic!("{e}"))
        );
        assert_eq!(u.path, "/events/stream?channels=x");
        assert_eq!(u.host, "127.0.0.1:8080");
        assert!(parse_url("https://x/").is_err());
        assert!(parse_url("http:///x").is_err());
    }

    #[test]
    fn payload_has_the_requested_size_and_fields() {
        let p = payload(7, 123, 120, 100);
        assert_eq!(p.len(), 100);
        assert_eq!(crate::bench::stats::json_u64(&p, "seq"), Some(7));
        assert_eq!(crate::bench::stats::json_u64(&p, "ts"), Some(123));
        assert_eq!(crate::bench::stats::json_u64(&p, "due"), Some(120));
        assert!(serde_json::from_str::<serde_json::Value>(&p).is_ok());
        assert_eq!(fill("a={channel}&b={channel}", "channel", "c"), "a=c&b=c");
    }
}

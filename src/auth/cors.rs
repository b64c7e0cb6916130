//! CORS for browser subscribers and publishers (the Fetch standard's CORS protocol).
//!
//! - Configured origins (`--cors-origin`, repeatable) are checked and normalized once: a
//!   serialized origin `scheme://host[:port]` with no path, scheme and host lower-cased and a
//!   default port (`:80` for http, `:443` for https) dropped, which is how browsers send
//!   `Origin`. The request's `Origin` must then equal one of them byte for byte; it is never
//!   copied into a response, so an arbitrary origin can never be reflected.
//! - `*` alone allows every origin (each response says `Access-Control-Allow-Origin: *`, which
//!   browsers honour only for requests without credentials); it cannot be combined with
//!   `--cors-credentials` nor with other origins. `null` is never a configured origin
//!   (sandboxed frames and `file:` pages send it).
//! - With a list of origins, every response carries `Vary: Origin` (the answer depends on it),
//!   granted or not, so a shared cache never serves one origin's grant to another.
//! - Preflight (`OPTIONS`): `Access-Control-Allow-Methods` (POST for publish, GET for the
//!   stream), `Access-Control-Allow-Headers: Content-Type, Authorization, Last-Event-ID`,
//!   `Access-Control-Max-Age`. A preflight from an origin that is not allowed gets no grant,
//!   and the browser stops there.
//! - `Access-Control-Expose-Headers: Retry-After, WWW-Authenticate`, so a page can read why it
//!   was refused and when to come back.

/// `Access-Control-Max-Age` of a preflight answer, in seconds (browsers cap it: Chromium at
/// 7200, Firefox at 86400).
pub const PREFLIGHT_MAX_AGE_SECS: u32 = 600;
const MAX_AGE: &str = "600";
const _: () = assert!(PREFLIGHT_MAX_AGE_SECS == 600, "keep MAX_AGE in step");

/// Request headers a browser may send after a preflight.
pub const ALLOW_HEADERS: &str = "Content-Type, Authorization, Last-Event-ID";

/// Response headers a page may read beyond the CORS-safelisted ones.
pub const EXPOSE_HEADERS: &str = "Retry-After, WWW-Authenticate";

/// The route a preflight asks about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CorsRoute {
    /// `POST /events/publish`.
    Publish,
    /// `GET /events/stream` (a fetch-based SSE client that sends `Authorization` preflights).
    Stream,
}

impl CorsRoute {
    fn methods(self) -> &'static str {
        match self {
            CorsRoute::Publish => "POST",
            CorsRoute::Stream => "GET",
        }
    }
}

/// The CORS policy, built once from the configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cors {
    /// Normalized origins; empty when CORS is off or `any`.
    origins: Vec<String>,
    /// `*`: every origin.
    any: bool,
    /// `Access-Control-Allow-Credentials: true` on grants.
    credentials: bool,
}

/// A request's origin is allowed: what to answer it with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CorsGrant<'a> {
    /// The `Access-Control-Allow-Origin` value: a configured origin, or `*`.
    pub origin: &'a str,
    /// Whether `Access-Control-Allow-Credentials: true` goes with it.
    pub credentials: bool,
}

/// Up to six CORS header fields, without allocating.
#[derive(Clone, Copy, Debug, Default)]
pub struct CorsHeaders<'a> {
    fields: [(&'static str, &'a str); 6],
    len: usize,
    granted: bool,
}

impl<'a> CorsHeaders<'a> {
    fn push(&mut self, name: &'static str, value: &'a str) {
        if let Some(slot) = self.fields.get_mut(self.len) {
            *slot = (name, value);
            self.len += 1;
        }
    }

    /// The fields, in order, for [`crate::http::response::response`]'s `extra_headers`.
    pub fn as_slice(&self) -> &[(&'static str, &'a str)] {
        self.fields.get(..self.len).unwrap_or(&[])
    }

    /// Whether the origin was granted (false: at most `Vary: Origin`).
    pub fn granted(&self) -> bool {
        self.granted
    }
}

impl Cors {
    /// The policy for `origins` (as given to `--cors-origin`) and `--cors-credentials`; the
    /// error names the flag and says what to change.
    pub fn new(origins: &[String], credentials: bool) -> Result<Cors, String> {
        if credentials && origins.is_empty() {
            return Err(
                "--cors-credentials needs at least one --cors-origin to send credentials to".into(),
            );
        }
        let any = origins.iter().any(|o| o.trim() == "*");
        if any && credentials {
            return Err(
                "--cors-origin '*' cannot be used with --cors-credentials: browsers refuse \
                        credentials with a wildcard; list the origins instead"
                    .into(),
            );
        }
        if any && origins.len() > 1 {
            return Err("--cors-origin '*' already allows every origin; give it alone".into());
        }
        let mut normalized: Vec<String> = Vec::with_capacity(origins.len());
        if !any {
            for origin in origins {
                let origin = normalize_origin(origin)?;
                if !normalized.contains(&origin) {
                    normalized.push(origin);
                }
            }
        }
        Ok(Cors {
            origins: normalized,
            any,
            credentials,
        })
    }

    /// Whether any CORS header is ever sent.
    pub fn is_enabled(&self) -> bool {
        self.any || !self.origins.is_empty()
    }

    /// The grant for the request's `Origin` value, if that origin is allowed.
    pub fn allow_origin(&self, origin: &[u8]) -> Option<CorsGrant<'_>> {
        if self.any {
            return Some(CorsGrant {
                origin: "*",
                credentials: false,
            });
        }
        self.origins
            .iter()
            .find(|o| o.as_bytes() == origin)
            .map(|o| CorsGrant {
                origin: o.as_str(),
                credentials: self.credentials,
            })
    }

    /// The CORS fields of an ordinary response (stream, publish, errors) to a request whose
    /// `Origin` header is `origin`.
    pub fn response_headers(&self, origin: Option<&[u8]>) -> CorsHeaders<'_> {
        let mut out = self.common(origin);
        if out.granted {
            out.push("Access-Control-Expose-Headers", EXPOSE_HEADERS);
        }
        out
    }

    /// The CORS fields of the answer to a preflight (`OPTIONS`) for `route`.
    pub fn preflight_headers(&self, origin: Option<&[u8]>, route: CorsRoute) -> CorsHeaders<'_> {
        let mut out = self.common(origin);
        if out.granted {
            out.push("Access-Control-Allow-Methods", route.methods());
            out.push("Access-Control-Allow-Headers", ALLOW_HEADERS);
            out.push("Access-Control-Max-Age", MAX_AGE);
        }
        out
    }

    /// `Vary`, and the origin grant with its credentials flag.
    fn common(&self, origin: Option<&[u8]>) -> CorsHeaders<'_> {
        let mut out = CorsHeaders::default();
        if !self.is_enabled() {
            return out;
        }
        if !self.any {
            out.push("Vary", "Origin");
        }
        let grant = if self.any {
            self.allow_origin(b"*")
        } else {
            origin.and_then(|o| self.allow_origin(o))
        };
        if let Some(grant) = grant {
            out.granted = true;
            out.push("Access-Control-Allow-Origin", grant.origin);
            if grant.credentials {
                out.push("Access-Control-Allow-Credentials", "true");
            }
        }
        out
    }
}

/// `text` as browsers serialize an origin, or an error naming `--cors-origin`.
fn normalize_origin(text: &str) -> Result<String, String> {
    let bad = |why: &str| format!("--cors-origin {text:?}: {why}");
    let example = "give an origin like https://app.example.com or http://localhost:3000";
    if text == "null" {
        return Err(bad(
            "the null origin (sandboxed frames, file: pages) cannot be allowed",
        ));
    }
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err(bad(example));
    };
    let scheme_ok = scheme
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !scheme_ok {
        return Err(bad(example));
    }
    if rest.contains(['/', '?', '#']) {
        return Err(bad(
            "an origin has no path, query or fragment (not even a trailing /)",
        ));
    }
    if rest.contains('@') {
        return Err(bad("an origin has no user name or password"));
    }
    let (host, port) = match rest.rsplit_once(':') {
        // An IPv6 literal `[::1]` has colons of its own.
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (rest, None),
    };
    let host_ok = !host.is_empty()
        && host.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'[' | b']' | b':')
        });
    if !host_ok {
        return Err(bad(
            "bad host: use the ASCII (punycode) form of the host name",
        ));
    }
    let scheme = scheme.to_ascii_lowercase();
    let host = host.to_ascii_lowercase();
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => Some(n),
            _ => return Err(bad("bad port")),
        },
    };
    let default_port = match scheme.as_str() {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    };
    Ok(match port {
        Some(p) if Some(p) != default_port => format!("{scheme}://{host}:{p}"),
        _ => format!("{scheme}://{host}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_table() {
        let rows: &[(&str, Result<&str, &str>)] = &[
            ("https://app.example.com", Ok("https://app.example.com")),
            ("HTTPS://App.Example.COM", Ok("https://app.example.com")),
            ("https://a.com:443", Ok("https://a.com")),
            ("http://a.com:80", Ok("http://a.com")),
            ("http://a.com:443", Ok("http://a.com:443")),
            ("http://localhost:3000", Ok("http://localhost:3000")),
            ("http://[::1]:8080", Ok("http://[::1]:8080")),
            ("http://[::1]", Ok("http://[::1]")),
            ("chrome-extension://abcdef", Ok("chrome-extension://abcdef")),
            ("https://a.com/", Err("no path")),
            ("https://a.com/app", Err("no path")),
            ("a.com", Err("give an origin like")),
            ("null", Err("null origin")),
            ("https://", Err("bad host")),
            ("https://u:p@a.com", Err("user name")),
            ("https://a.com:x", Err("bad port")),
            ("https://a.com:", Err("bad port")),
            ("https://a.com:99999", Err("bad port")),
            ("https://bücher.de", Err("punycode")),
            ("1http://a.com", Err("give an origin like")),
        ];
        for (text, want) in rows {
            let got = normalize_origin(text);
            match (want, &got) {
                (Ok(w), Ok(g)) => assert_eq!(w, g, "{text}"),
                (Err(w), Err(g)) => {
                    assert!(g.contains(w), "{text}: {g}");
                    assert!(g.starts_with("--cors-origin"), "{text}: {g}");
                }
                _ => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
    }
}

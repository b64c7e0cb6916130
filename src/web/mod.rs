//! What pushcore serves to browsers besides event streams: its own client (`/pushcore.js`, an
//! ES module, and `/pushcore.d.ts`) and the live operations page (`/dashboard`, fed by
//! [`stats`] snapshots on the internal channel [`DASHBOARD_CHANNEL`]).
//!
//! The assets are embedded in the binary (no build step). Each has a strong `ETag` computed
//! from its bytes, so a browser revalidates with `If-None-Match` and gets `304`.

pub mod stats;

use std::sync::LazyLock;

use crate::http::parse::Method;
use crate::http::response::response;

/// The internal channel of the dashboard feed. `$` is outside the public channel grammar
/// (`crate::channel::validate_name` refuses it), so no publisher or subscriber reaches it
/// through the public API; only `GET /dashboard/events` (behind `--dashboard`) follows it.
pub const DASHBOARD_CHANNEL: &str = "$dashboard";
/// The event type of a dashboard snapshot.
pub const STATS_EVENT: &str = "stats";
/// Path of the dashboard's event stream.
pub const DASHBOARD_EVENTS_PATH: &str = "/dashboard/events";

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
    /// Strong validator, quoted: `"<fnv-1a 64 of the body>-<length>"`.
    pub etag: String,
    pub cache_control: &'static str,
    /// Only served when the dashboard is on (`--dashboard`).
    pub dashboard: bool,
}

const PUSHCORE_JS: &[u8] = include_bytes!("pushcore.js");
const PUSHCORE_DTS: &[u8] = include_bytes!("pushcore.d.ts");
const DASHBOARD_HTML: &[u8] = include_bytes!("dashboard.html");

/// Caches may keep a copy but must revalidate it (cheap: a `304`), so an upgraded server's
/// client is picked up at once.
const REVALIDATE: &str = "no-cache";

static ASSETS: LazyLock<[Asset; 3]> = LazyLock::new(|| {
    let asset = |path, content_type, body: &'static [u8], dashboard| Asset {
        path,
        content_type,
        body,
        etag: etag_of(body),
        cache_control: REVALIDATE,
        dashboard,
    };
    [
        asset(
            "/pushcore.js",
            "text/javascript; charset=utf-8",
            PUSHCORE_JS,
            false,
        ),
        asset(
            "/pushcore.d.ts",
            "application/typescript; charset=utf-8",
            PUSHCORE_DTS,
            false,
        ),
        asset(
            "/dashboard",
            "text/html; charset=utf-8",
            DASHBOARD_HTML,
            true,
        ),
    ]
});

/// The embedded file served at `path`, if any.
pub fn asset(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// The asset for a request path, or `None` when it is not one (or is the dashboard while the
/// dashboard is off).
pub fn route(path: &str, dashboard_on: bool) -> Option<&'static Asset> {
    asset(path).filter(|a| dashboard_on || !a.dashboard)
}

/// A strong ETag from the content: FNV-1a 64 and the length.
fn etag_of(body: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in body {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("\"{h:016x}-{:x}\"", body.len())
}

/// Whether an `If-None-Match` value matches `etag` (weak comparison, RFC 9110 §13.1.2: a `W/`
/// prefix is ignored; `*` matches).
pub fn none_match(header: &[u8], etag: &str) -> bool {
    header.split(|&b| b == b',').any(|tag| {
        let tag = tag.trim_ascii();
        let tag = tag.strip_prefix(b"W/").unwrap_or(tag);
        tag == b"*" || tag == etag.as_bytes()
    })
}

/// The complete response to a request for `asset`: `200` (GET; HEAD without the body), `304`
/// when `If-None-Match` matches, `405` for other methods.
pub fn respond(
    asset: &Asset,
    method: Method,
    if_none_match: Option<&[u8]>,
    keep_alive: bool,
) -> Vec<u8> {
    if !matches!(method, Method::Get | Method::Head) {
        return crate::http::response::http_error(
            &crate::http::HttpError::MethodNotAllowed { allow: "GET, HEAD" },
            keep_alive,
        );
    }
    let mut headers: Vec<(&str, &str)> = vec![
        ("ETag", asset.etag.as_str()),
        ("Cache-Control", asset.cache_control),
        ("X-Content-Type-Options", "nosniff"),
    ];
    if asset.dashboard {
        // Nothing but this origin: the page makes no request elsewhere, and no site frames it.
        headers.push(("Content-Security-Policy", DASHBOARD_CSP));
        headers.push(("X-Frame-Options", "DENY"));
        headers.push(("Referrer-Policy", "no-referrer"));
    } else {
        // The client is public code: pages on any origin may import it (module scripts are
        // fetched in CORS mode).
        headers.push(("Access-Control-Allow-Origin", "*"));
    }
    if if_none_match.is_some_and(|v| none_match(v, &asset.etag)) {
        return response(304, "", &headers, b"", keep_alive);
    }
    let mut out = response(200, asset.content_type, &headers, asset.body, keep_alive);
    if method == Method::Head {
        out.truncate(out.len() - asset.body.len());
    }
    out
}

/// The dashboard's Content-Security-Policy: scripts and connections to this origin only.
pub const DASHBOARD_CSP: &str = "default-src 'none'; script-src 'self' 'unsafe-inline'; \
style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
form-action 'none'; frame-ancestors 'none'";

#[cfg(test)]
mod tests {
    use super::*;

    fn head_of(resp: &[u8]) -> String {
        let text = String::from_utf8_lossy(resp);
        text.split("\r\n\r\n")
            .next()
            .unwrap_or_default()
            .to_string()
    }

    #[test]
    fn assets_are_found_by_path_and_the_dashboard_only_when_on() {
        let rows: &[(&str, bool, Option<&str>)] = &[
            (
                "/pushcore.js",
                false,
                Some("text/javascript; charset=utf-8"),
            ),
            ("/pushcore.js", true, Some("text/javascript; charset=utf-8")),
            (
                "/pushcore.d.ts",
                false,
                Some("application/typescript; charset=utf-8"),
            ),
            ("/dashboard", false, None),
            ("/dashboard", true, Some("text/html; charset=utf-8")),
            ("/dashboard/", true, None),
            ("/pushcore.JS", true, None),
            ("/", true, None),
            ("/events/stream", true, None),
        ];
        for (path, on, want) in rows {
            let got = route(path, *on).map(|a| a.content_type);
            assert_eq!(got, *want, "{path} dashboard={on}");
        }
    }

    #[test]
    fn etags_are_strong_distinct_and_follow_the_content() {
        let js = asset("/pushcore.js")
            .map(|a| a.etag.clone())
            .unwrap_or_default();
        let html = asset("/dashboard")
            .map(|a| a.etag.clone())
            .unwrap_or_default();
        assert!(
            js.starts_with('"') && js.ends_with('"') && js.len() > 4,
            "{js}"
        );
        assert_ne!(js, html);
        assert_eq!(etag_of(b"abc"), etag_of(b"abc"));
        assert_ne!(etag_of(b"abc"), etag_of(b"abd"));
        assert_ne!(etag_of(b""), etag_of(b"\0"));
    }

    #[test]
    fn if_none_match_rows() {
        let tag = "\"0123-4\"";
        let rows: &[(&str, bool)] = &[
            ("\"0123-4\"", true),
            ("W/\"0123-4\"", true),
            ("*", true),
            ("\"x\", \"0123-4\"", true),
            (" \"0123-4\" ", true),
            ("\"x\"", false),
            ("0123-4", false),
            ("\"0123-4", false),
            ("", false),
            (",", false),
        ];
        for (header, want) in rows {
            assert_eq!(none_match(header.as_bytes(), tag), *want, "{header:?}");
        }
    }

    #[test]
    fn responses_rows() {
        let Some(js) = asset("/pushcore.js") else {
            panic!("no /pushcore.js");
        };
        let etag = js.etag.as_str();
        let stale = "\"stale\"";
        // (method, If-None-Match, status line, has body)
        let rows: &[(Method, Option<&str>, &str, bool)] = &[
            (Method::Get, None, "HTTP/1.1 200 OK", true),
            (Method::Head, None, "HTTP/1.1 200 OK", false),
            (Method::Get, Some(etag), "HTTP/1.1 304 Not Modified", false),
            (Method::Head, Some(etag), "HTTP/1.1 304 Not Modified", false),
            (Method::Get, Some(stale), "HTTP/1.1 200 OK", true),
            (Method::Get, Some("*"), "HTTP/1.1 304 Not Modified", false),
            (Method::Post, None, "HTTP/1.1 405 Method Not Allowed", true),
            (
                Method::Post,
                Some(etag),
                "HTTP/1.1 405 Method Not Allowed",
                true,
            ),
        ];
        for (method, inm, status, has_body) in rows {
            let resp = respond(js, *method, inm.map(str::as_bytes), true);
            let head = head_of(&resp);
            let case = format!("{method:?} {inm:?}");
            assert!(head.starts_with(status), "{case}: {head}");
            let body_len = resp.len() - head.len() - 4;
            if *has_body {
                assert!(body_len > 0, "{case}");
            } else {
                assert_eq!(body_len, 0, "{case}");
            }
            if status.contains("405") {
                assert!(head.contains("Allow: GET, HEAD"), "{case}: {head}");
                continue;
            }
            assert!(head.contains(&format!("ETag: {etag}")), "{case}: {head}");
            assert!(head.contains("Cache-Control: no-cache"), "{case}: {head}");
            assert!(head.contains("Access-Control-Allow-Origin: *"), "{case}");
            if status.contains("200") {
                let len = format!("Content-Length: {}", js.body.len());
                assert!(head.contains(&len), "{case}: {head}");
                assert!(head.contains("Content-Type: text/javascript"), "{case}");
            }
        }
        if let Some(page) = asset("/dashboard") {
            let head = head_of(&respond(page, Method::Get, None, false));
            assert!(head.contains("Content-Security-Policy: default-src 'none'"));
            assert!(!head.contains("Access-Control-Allow-Origin"), "{head}");
        }
    }

    #[test]
    fn the_dashboard_channel_is_outside_the_public_grammar() {
        assert!(crate::channel::validate_name(DASHBOARD_CHANNEL).is_err());
    }
}

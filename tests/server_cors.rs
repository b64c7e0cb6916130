//! CORS at the HTTP edge, black-box: the headers a browser reads on event streams, publish
//! answers (successes and refusals) and preflights, for allowed, other and wildcard origins.

#[macro_use]
mod common;
mod auth_common;

use std::net::SocketAddr;

use auth_common::{mint, Signer, SECRET};
use common::*;
use serde_json::json;

const APP: &str = "https://app.example";
const ACAO: &str = "access-control-allow-origin";
const ACAC: &str = "access-control-allow-credentials";
/// The grants a preflight answer may carry.
const PREFLIGHT_GRANTS: [&str; 5] = [
    ACAO,
    ACAC,
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-max-age",
];

/// Origins that are not `APP`, though some look like it.
const OTHERS: [&str; 8] = [
    "https://evil.example",
    "https://app.example.evil.example",
    "https://evilapp.example",
    "http://app.example",
    "https://app.example:8443",
    "https://app.example/",
    "HTTPS://APP.EXAMPLE",
    "null",
];

fn token() -> String {
    let exp = unix_ms() / 1000 + 3600;
    mint(
        Signer::Hs,
        &json!({ "subscribe": ["*"], "publish": ["*"], "exp": exp }),
    )
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The bytes of a request with `headers` and, for a non-empty `body`, a JSON body.
fn req(method: &str, target: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if method == "POST" {
        out.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    out.push_str("\r\n");
    out.push_str(body);
    out.into_bytes()
}

/// Publish `body` with `headers` on a new connection.
fn publish_with(addr: SocketAddr, headers: &[(&str, &str)], body: &str) -> Response {
    request(addr, &req("POST", "/events/publish", headers, body))
}

/// The preflight a browser sends before a cross-origin publish with a bearer token.
fn preflight(addr: SocketAddr, path: &str, origin: Option<&str>, method: &str) -> Response {
    let mut headers = vec![
        ("Access-Control-Request-Method", method),
        (
            "Access-Control-Request-Headers",
            "content-type, authorization",
        ),
    ];
    if let Some(o) = origin {
        headers.push(("Origin", o));
    }
    request(addr, &req("OPTIONS", path, &headers, ""))
}

/// Subscribe (or be refused) with `headers`.
fn stream(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> Response {
    match SseStream::try_open(connect(addr), target, headers) {
        Ok(s) => s.head,
        Err(resp) => resp,
    }
}

/// `Vary` lists `Origin`.
fn varies_on_origin(resp: &Response) -> bool {
    resp.header("vary").is_some_and(|v| {
        v.split(',')
            .any(|f| f.trim().eq_ignore_ascii_case("origin"))
    })
}

/// The comma-separated list in `name`, lower-cased.
fn list(resp: &Response, name: &str) -> Vec<String> {
    resp.header(name)
        .unwrap_or_else(|| panic!("{} without {name}: {:?}", resp.status, resp.headers))
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .collect()
}

/// `resp` grants `origin`: ACAO is exactly it, Vary: Origin, and credentials only if `creds`.
fn assert_granted(resp: &Response, origin: &str, creds: bool, what: &str) {
    assert_eq!(
        resp.header(ACAO),
        Some(origin),
        "{what}: {:?}",
        resp.headers
    );
    if origin != "*" {
        assert!(varies_on_origin(resp), "{what}: no Vary: Origin");
    }
    let want = creds.then_some("true");
    assert_eq!(resp.header(ACAC), want, "{what}: {:?}", resp.headers);
}

/// No CORS grant of any kind, and `origin` is nowhere in the answer.
fn assert_not_granted(resp: &Response, origin: Option<&str>, what: &str) {
    for name in PREFLIGHT_GRANTS {
        assert_eq!(resp.header(name), None, "{what}: {name} sent");
    }
    if let Some(o) = origin {
        for (name, value) in &resp.headers {
            assert!(!value.contains(o), "{what}: {name}: {value} reflects {o}");
        }
    }
}

/// With `--cors-origin https://app.example` (and auth on): that origin is granted on the event
/// stream and on every publish answer, refusals included, so a page can read why it failed.
fn allowed_origin_on_every_answer(driver: Driver) {
    let server = Server::start_with_driver(driver, &["--jwt-secret", SECRET, "--cors-origin", APP]);
    let addr = server.addr();
    let t = token();
    let auth = bearer(&t);
    let narrow = mint(
        Signer::Hs,
        &json!({ "subscribe": ["a"], "publish": ["a"], "exp": unix_ms() / 1000 + 3600 }),
    );
    let narrow = bearer(&narrow);
    let o = ("Origin", APP);
    let ok = event_json("a", None, &json!(1));
    let secret = event_json("secret", None, &json!(1));
    let rows: Vec<(&str, Response, u16)> = vec![
        (
            "stream",
            stream(addr, "/events/stream?channels=a", &[o, ("Authorization", &auth)]),
            200,
        ),
        ("stream, no token", stream(addr, "/events/stream?channels=a", &[o]), 401),
        (
            "stream, forbidden channel",
            stream(addr, "/events/stream?channels=b", &[o, ("Authorization", &narrow)]),
            403,
        ),
        (
            "stream, bad channel name",
            stream(addr, "/events/stream?channels=a%20b", &[o, ("Authorization", &auth)]),
            400,
        ),
        ("publish", publish_with(addr, &[o, ("Authorization", &auth)], &ok), 200),
        ("publish, no token", publish_with(addr, &[o], &ok), 401),
        (
            "publish, bad JSON",
            publish_with(addr, &[o, ("Authorization", &auth)], "{\"channel\":"),
            400,
        ),
        (
            "publish, forbidden channel",
            publish_with(addr, &[o, ("Authorization", &narrow)], &secret),
            403,
        ),
        (
            "publish, not JSON",
            request(
                addr,
                format!(
                    "POST /events/publish HTTP/1.1\r\nHost: x\r\nOrigin: {APP}\r\n\
                     Authorization: {auth}\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n\r\nx"
                )
                .as_bytes(),
            ),
            415,
        ),
        (
            "publish, body too large",
            request(
                addr,
                format!(
                    "POST /events/publish HTTP/1.1\r\nHost: x\r\nOrigin: {APP}\r\n\
                     Authorization: {auth}\r\nContent-Type: application/json\r\n\
                     Content-Length: 2000000\r\n\r\n"
                )
                .as_bytes(),
            ),
            413,
        ),
    ];
    for (what, resp, status) in &rows {
        assert_eq!(resp.status, *status, "{what}: {}", resp.text());
        assert_granted(resp, APP, false, what);
        let exposed = list(resp, "access-control-expose-headers");
        if *status == 401 || *status == 403 {
            assert!(
                exposed.iter().any(|h| h == "www-authenticate"),
                "{what}: WWW-Authenticate not exposed: {exposed:?}"
            );
        }
    }
}
both_drivers!(allowed_origin_on_every_answer);

/// Any other origin (look-alikes, other scheme or port, `null`) or none gets no grant on the
/// stream, on publish answers or on preflights; the answer still varies on Origin.
fn other_origins_get_no_grant(driver: Driver) {
    let server = Server::start_with_driver(driver, &["--jwt-secret", SECRET, "--cors-origin", APP]);
    let addr = server.addr();
    let auth = bearer(&token());
    let ok = event_json("a", None, &json!(1));
    for origin in OTHERS.iter().copied().map(Some).chain([None]) {
        let mut headers = vec![("Authorization", auth.as_str())];
        headers.extend(origin.map(|o| ("Origin", o)));
        let what = |w: &str| format!("{w} from {origin:?}");
        let resp = stream(addr, "/events/stream?channels=a", &headers);
        assert_eq!(resp.status, 200, "{}", what("stream"));
        assert_not_granted(&resp, origin, &what("stream"));
        assert!(varies_on_origin(&resp), "{}: no Vary", what("stream"));
        let resp = publish_with(addr, &headers, &ok);
        assert_eq!(resp.status, 200, "{}: {}", what("publish"), resp.text());
        assert_not_granted(&resp, origin, &what("publish"));
        let resp = publish_with(addr, &headers[1..], &ok);
        assert_eq!(resp.status, 401, "{}", what("anonymous publish"));
        assert_not_granted(&resp, origin, &what("anonymous publish"));
        for path in ["/events/publish", "/events/stream"] {
            let resp = preflight(addr, path, origin, "POST");
            assert_eq!(resp.status, 204, "{}", what(path));
            assert_not_granted(&resp, origin, &what(path));
        }
    }
}
both_drivers!(other_origins_get_no_grant);

/// Preflights for an allowed origin: 204 with the methods, the requested headers and a max age,
/// without a token (browsers send none on a preflight); the real request may follow on the same
/// connection.
fn preflight_for_an_allowed_origin(driver: Driver) {
    let server = Server::start_with_driver(driver, &["--jwt-secret", SECRET, "--cors-origin", APP]);
    let addr = server.addr();
    for (path, method) in [("/events/publish", "post"), ("/events/stream", "get")] {
        let resp = preflight(addr, path, Some(APP), &method.to_ascii_uppercase());
        assert_eq!(resp.status, 204, "{path}: {}", resp.text());
        assert!(resp.body.is_empty(), "{path}: 204 with a body");
        assert_granted(&resp, APP, false, path);
        assert!(
            list(&resp, "access-control-allow-methods")
                .iter()
                .any(|m| m == method),
            "{path}: {method} not allowed: {:?}",
            resp.headers
        );
        let allowed = list(&resp, "access-control-allow-headers");
        for h in ["content-type", "authorization"] {
            assert!(
                allowed.iter().any(|a| a == h),
                "{path}: {h} not in {allowed:?}"
            );
        }
        if path == "/events/stream" {
            assert!(allowed.iter().any(|a| a == "last-event-id"), "{allowed:?}");
        }
        let max_age = resp
            .header("access-control-max-age")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{path}: no numeric Max-Age: {:?}", resp.headers));
        assert!(max_age > 0, "{path}: Max-Age 0");
    }
    // Preflight, then the publish it cleared, on one keep-alive connection.
    let mut conn = Conn::open(addr);
    let resp = conn.request(&req(
        "OPTIONS",
        "/events/publish",
        &[
            ("Origin", APP),
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "content-type, authorization",
            ),
        ],
        "",
    ));
    assert_eq!(resp.status, 204);
    let auth = bearer(&token());
    let resp = conn.request(&req(
        "POST",
        "/events/publish",
        &[("Origin", APP), ("Authorization", &auth)],
        &event_json("a", None, &json!(1)),
    ));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_granted(&resp, APP, false, "publish after preflight");
}
both_drivers!(preflight_for_an_allowed_origin);

/// `--cors-credentials`: the allowed origin also gets `Access-Control-Allow-Credentials: true`
/// (stream, publish, refusal, preflight), so a page's cookie token can travel; others get nothing.
fn credentials(driver: Driver) {
    let server = Server::start_with_driver(
        driver,
        &[
            "--jwt-secret",
            SECRET,
            "--cors-origin",
            APP,
            "--cors-origin",
            "http://localhost:3000",
            "--cors-credentials",
        ],
    );
    let addr = server.addr();
    let cookie = format!("pushcore_token={}", token());
    let ok = event_json("a", None, &json!(1));
    for origin in [APP, "http://localhost:3000"] {
        let o = ("Origin", origin);
        let resp = stream(addr, "/events/stream?channels=a", &[o, ("Cookie", &cookie)]);
        assert_eq!(resp.status, 200, "{origin}: {}", resp.text());
        assert_granted(&resp, origin, true, "stream with a cookie token");
        let resp = publish_with(addr, &[o, ("Cookie", &cookie)], &ok);
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_granted(&resp, origin, true, "publish with a cookie token");
        let resp = publish_with(addr, &[o], &ok);
        assert_eq!(resp.status, 401);
        assert_granted(&resp, origin, true, "publish without a token");
        let resp = preflight(addr, "/events/publish", Some(origin), "POST");
        assert_eq!(resp.status, 204);
        assert_granted(&resp, origin, true, "preflight");
    }
    let evil = "https://evil.example";
    let resp = stream(
        addr,
        "/events/stream?channels=a",
        &[("Origin", evil), ("Cookie", &cookie)],
    );
    assert_eq!(resp.status, 200);
    assert_not_granted(&resp, Some(evil), "stream from another origin");
    let resp = preflight(addr, "/events/publish", Some(evil), "POST");
    assert_not_granted(&resp, Some(evil), "preflight from another origin");
}
both_drivers!(credentials);

/// `--cors-origin '*'`: every origin gets exactly `*` (never its own origin reflected) and no
/// credentials; without `--cors-origin` no origin gets any CORS header.
fn wildcard_and_off(driver: Driver) {
    let server = Server::start_with_driver(driver, &["--cors-origin", "*"]);
    let addr = server.addr();
    let ok = event_json("a", None, &json!(1));
    for origin in ["https://whoever.example", APP, "null"] {
        let o = [("Origin", origin)];
        let resp = stream(addr, "/events/stream?channels=a", &o);
        assert_eq!(resp.status, 200);
        assert_granted(&resp, "*", false, "stream");
        let resp = publish_with(addr, &o, &ok);
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_granted(&resp, "*", false, "publish");
        let resp = publish_with(addr, &o, "[");
        assert_eq!(resp.status, 400);
        assert_granted(&resp, "*", false, "publish, bad JSON");
        let resp = preflight(addr, "/events/publish", Some(origin), "POST");
        assert_eq!(resp.status, 204);
        assert_granted(&resp, "*", false, "preflight");
        assert!(resp.header("access-control-allow-methods").is_some());
    }
    drop(server);

    let server = Server::start_with_driver(driver, &[]);
    let addr = server.addr();
    let o = [("Origin", APP)];
    let resp = stream(addr, "/events/stream?channels=a", &o);
    assert_eq!(resp.status, 200);
    assert_not_granted(&resp, Some(APP), "stream, CORS off");
    let resp = publish_with(addr, &o, &ok);
    assert_eq!(resp.status, 200);
    assert_not_granted(&resp, Some(APP), "publish, CORS off");
    let resp = preflight(addr, "/events/publish", Some(APP), "POST");
    assert_not_granted(&resp, Some(APP), "preflight, CORS off");
}
both_drivers!(wildcard_and_off);

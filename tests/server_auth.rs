//! JWT authorization at the HTTP edge, black-box: the real binary, real sockets, real tokens
//! (HS256, ES256, RS256 minted with the committed test keys). Subscribe and publish rights,
//! every way a token can be refused, the three token sources and their order, streams closed
//! when their token expires, replay limited to what the new token allows, and startup errors.

#[macro_use]
mod common;
mod auth_common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use auth_common::{data, mint, raw, Signer, SECRET};
use common::*;
use serde_json::{json, Value};

const ISSUER: &str = "https://issuer.example";
const AUDIENCE: &str = "pushcore-test";

fn now() -> u64 {
    unix_ms() / 1000
}

fn path_of(name: &str) -> String {
    data(name).to_str().expect("UTF-8 path").to_string()
}

/// Claims granting `subscribe` and `publish` patterns, valid for an hour.
fn rights(subscribe: &[&str], publish: &[&str]) -> Value {
    json!({ "sub": "tester", "subscribe": subscribe, "publish": publish, "exp": now() + 3600 })
}

/// `claims` with the fields of `extra` set (a `null` removes the field).
fn with(mut claims: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().expect("object") {
        if v.is_null() {
            claims.as_object_mut().expect("object").remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    claims
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// `GET target` as a subscriber with `headers`: the open stream (handshake read) or the refusal.
fn open(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> Result<SseStream, Response> {
    SseStream::try_open(connect(addr), target, headers).map(|mut s| {
        s.handshake();
        s
    })
}

/// Subscribe with `token` as a bearer header; panics unless it is accepted.
fn open_ok(addr: SocketAddr, target: &str, token: &str) -> SseStream {
    open(addr, target, &[("Authorization", &bearer(token))])
        .unwrap_or_else(|r| panic!("subscribe {target}: {} {}", r.status, r.text()))
}

/// The bytes of `POST target` with a JSON body and extra `headers`.
fn post(target: &str, headers: &[(&str, &str)], json: &str, keep_alive: bool) -> Vec<u8> {
    let mut req = format!(
        "POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: {}\r\n",
        json.len(),
        if keep_alive { "keep-alive" } else { "close" }
    );
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(json);
    req.into_bytes()
}

/// Publish `json` with `token` as a bearer header on a new connection.
fn publish_as(addr: SocketAddr, token: &str, json: &str) -> Response {
    request(
        addr,
        &post(
            "/events/publish",
            &[("Authorization", &bearer(token))],
            json,
            false,
        ),
    )
}

/// Publish one event with `token`; asserts 200 and returns its id.
fn publish_ok(addr: SocketAddr, token: &str, channel: &str, tag: &str) -> String {
    let resp = publish_as(
        addr,
        token,
        &event_json(channel, None, &json!({ "tag": tag })),
    );
    assert_eq!(resp.status, 200, "publish to {channel}: {}", resp.text());
    let id = resp.json()["eventId"]
        .as_str()
        .unwrap_or_else(|| panic!("no eventId: {}", resp.text()))
        .to_string();
    parse_id(&id);
    id
}

/// The `tag` of an event's data.
fn tag(block: &Block) -> String {
    block.json()["tag"]
        .as_str()
        .unwrap_or_else(|| panic!("no tag in {:?}", block.raw))
        .to_string()
}

/// Neither the token nor its payload or signature part appears anywhere in the answer.
fn assert_no_echo(resp: &Response, token: &str) {
    let mut pieces: Vec<&str> = token.split('.').filter(|p| p.len() >= 8).collect();
    pieces.push(token);
    let text = resp.text();
    for piece in pieces.iter().filter(|p| !p.is_empty()) {
        assert!(
            !text.contains(piece),
            "{} body repeats the token: {text}",
            resp.status
        );
        for (name, value) in &resp.headers {
            assert!(
                !value.contains(piece),
                "{} header {name} repeats the token: {value}",
                resp.status
            );
        }
    }
}

/// A 401 with a JSON error whose message contains `why` and an RFC 6750 challenge: bare when no
/// token was sent, `error="invalid_token"` when one was; the token is not repeated.
fn assert_unauthorized(resp: &Response, token: Option<&str>, why: &str, what: &str) {
    assert_eq!(resp.status, 401, "{what}: {}", resp.text());
    let challenge = resp
        .header("www-authenticate")
        .unwrap_or_else(|| panic!("{what}: 401 without WWW-Authenticate"));
    assert!(
        challenge.starts_with("Bearer realm=\"pushcore\""),
        "{what}: {challenge}"
    );
    match token {
        None => assert_eq!(challenge, "Bearer realm=\"pushcore\"", "{what}"),
        Some(t) => {
            assert!(
                challenge.contains("error=\"invalid_token\""),
                "{what}: {challenge}"
            );
            assert_no_echo(resp, t);
        }
    }
    let msg = resp.error_message();
    assert!(
        msg.to_lowercase().contains(why),
        "{what}: message {msg:?} does not say {why:?}"
    );
}

/// A 403 naming the refused `channel`, with the `insufficient_scope` challenge.
fn assert_forbidden(resp: &Response, token: &str, channel: &str, what: &str) {
    assert_eq!(resp.status, 403, "{what}: {}", resp.text());
    assert_eq!(
        resp.header("www-authenticate"),
        Some("Bearer realm=\"pushcore\", error=\"insufficient_scope\""),
        "{what}"
    );
    let msg = resp.error_message();
    assert!(
        msg.contains(&format!("{channel:?}")),
        "{what}: message {msg:?} does not name {channel:?}"
    );
    assert_no_echo(resp, token);
}

// ----- subscribe rights ---------------------------------------------------------------------------

/// Exact, prefix and `*` patterns: every requested channel must be allowed, else 403 naming the
/// first refused one; no token is 401. An accepted stream delivers what is published.
fn subscribe_rights(driver: Driver, signer: Signer, key_args: &[&str]) {
    let server = Server::start_with_driver(driver, key_args);
    let addr = server.addr();
    let publisher = mint(signer, &rights(&[], &["*"]));
    // (token's subscribe patterns, target, Ok(channel to publish on) or Err(refused channel))
    type Row<'a> = (&'a [&'a str], &'a str, Result<&'a str, &'a str>);
    #[rustfmt::skip]
    let rows: &[Row] = &[
        (&["news"], "/events/stream?channels=news", Ok("news")),
        (&["news"], "/events/stream?channels=news,sports", Err("sports")),
        (&["news"], "/events/stream?channels=sports,news", Err("sports")),
        (&["news"], "/events/stream?channels=news&channels=sports", Err("sports")),
        (&["news"], "/events/stream?channels=newsroom", Err("newsroom")),
        (&["news"], "/events/stream", Err("default")),
        (&["user:*"], "/events/stream?channels=user:42", Ok("user:42")),
        (&["user:*"], "/events/stream?channels=user:42,user:7", Ok("user:7")),
        (&["user:*"], "/events/stream?channels=user", Err("user")),
        (&["user:*"], "/events/stream?channels=user:42,admin", Err("admin")),
        (&["*"], "/events/stream?channels=a,b,user:1,admin", Ok("admin")),
        (&["*"], "/events/stream", Ok("default")),
        (&["news", "user:*"], "/events/stream?channels=news,user:9", Ok("user:9")),
        (&["news", "user:*"], "/events/stream?channels=news,user:9,sports", Err("sports")),
        (&[], "/events/stream?channels=news", Err("news")),
    ];
    for (i, (patterns, target, want)) in rows.iter().enumerate() {
        let what = format!("{target} with subscribe {patterns:?}");
        let token = mint(signer, &rights(patterns, &[]));
        match (
            open(addr, target, &[("Authorization", &bearer(&token))]),
            want,
        ) {
            (Ok(mut sub), Ok(channel)) => {
                let tag_sent = format!("row{i}");
                let id = publish_ok(addr, &publisher, channel, &tag_sent);
                let ev = sub.expect_event(&what);
                assert_eq!((ev.id(), tag(&ev)), (Some(id.as_str()), tag_sent), "{what}");
            }
            (Err(resp), Err(channel)) => assert_forbidden(&resp, &token, channel, &what),
            (Ok(_), Err(_)) => panic!("{what}: accepted, expected 403"),
            (Err(resp), Ok(_)) => panic!("{what}: {} {}", resp.status, resp.text()),
        }
    }
    // A token with publish rights only does not let its bearer subscribe.
    let resp = open(
        addr,
        "/events/stream?channels=news",
        &[("Authorization", &bearer(&publisher))],
    )
    .expect_err("publish-only token subscribed");
    assert_forbidden(&resp, &publisher, "news", "publish-only token");
    // No token at all.
    let resp = open(addr, "/events/stream?channels=news", &[]).expect_err("no token accepted");
    assert_unauthorized(&resp, None, "missing token", "no token");
}

fn subscribe_rights_hs256(driver: Driver) {
    subscribe_rights(driver, Signer::Hs, &["--jwt-secret", SECRET]);
}
both_drivers!(subscribe_rights_hs256);

fn subscribe_rights_es256(driver: Driver) {
    let key = path_of("es256_public.pem");
    subscribe_rights(driver, Signer::Es, &["--jwt-public-key", &key]);
}
both_drivers!(subscribe_rights_es256);

// ----- refused tokens ----------------------------------------------------------------------------

/// Run `rows` of (what, token, Ok(()) for accepted or Err(word the 401 message contains)).
fn check_tokens(addr: SocketAddr, rows: &[(&str, String, Result<(), &str>)]) {
    for (what, token, want) in rows {
        let got = open(
            addr,
            "/events/stream?channels=news",
            &[("Authorization", &bearer(token))],
        );
        match (got, want) {
            (Ok(_), Ok(())) => {}
            (Err(resp), Err(why)) => assert_unauthorized(&resp, Some(token), why, what),
            (Ok(_), Err(why)) => panic!("{what}: accepted, expected 401 ({why})"),
            (Err(resp), Ok(())) => panic!("{what}: refused: {} {}", resp.status, resp.text()),
        }
    }
}

/// HS256 with --jwt-issuer and --jwt-audience: expired, not yet valid, wrong issuer or audience,
/// wrong key, wrong algorithm, unsigned, tampered and malformed tokens are 401.
fn refused_tokens_hs256(driver: Driver) {
    let server = Server::start_with_driver(
        driver,
        &[
            "--jwt-secret",
            SECRET,
            "--jwt-issuer",
            ISSUER,
            "--jwt-audience",
            AUDIENCE,
        ],
    );
    let t = now();
    let good = with(
        rights(&["*"], &[]),
        json!({ "iss": ISSUER, "aud": AUDIENCE }),
    );
    let hs = |extra: Value| mint(Signer::Hs, &with(good.clone(), extra));
    let valid = hs(json!({}));
    let parts: Vec<&str> = valid.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        auth_common::b64(
            with(good.clone(), json!({ "sub": "admin" }))
                .to_string()
                .as_bytes()
        ),
        parts[2]
    );
    let unsigned = |alg: &str| {
        raw(
            &format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#),
            &good.to_string(),
            b"",
        )
    };
    #[rustfmt::skip]
    let rows = [
        ("valid", valid.clone(), Ok(())),
        ("aud as a list naming us", hs(json!({ "aud": ["other", AUDIENCE] })), Ok(())),
        ("expired within the 5 s leeway", hs(json!({ "exp": t - 1 })), Ok(())),
        ("nbf within the 5 s leeway", hs(json!({ "nbf": t + 2 })), Ok(())),
        ("nbf passed", hs(json!({ "nbf": t - 60 })), Ok(())),
        ("expired", hs(json!({ "exp": t - 60 })), Err("expired")),
        ("expired long ago", hs(json!({ "exp": 1_000_000_000 })), Err("expired")),
        ("not yet valid", hs(json!({ "nbf": t + 60 })), Err("not valid yet")),
        ("wrong issuer", hs(json!({ "iss": "https://evil.example" })), Err("issuer")),
        ("no issuer", hs(json!({ "iss": null })), Err("issuer")),
        ("wrong audience", hs(json!({ "aud": "other" })), Err("audience")),
        ("audience list without us", hs(json!({ "aud": ["a", "b"] })), Err("audience")),
        ("no audience", hs(json!({ "aud": null })), Err("audience")),
        ("wrong key", mint(Signer::HsOther, &good), Err("signature")),
        ("ES256 token", mint(Signer::Es, &good), Err("algorithm")),
        ("RS256 token", mint(Signer::Rs, &good), Err("algorithm")),
        ("alg none", unsigned("none"), Err("unsigned")),
        ("alg None", unsigned("None"), Err("unsigned")),
        ("alg none with the real signature", format!("{}.{}.{}", auth_common::b64(br#"{"alg":"none","typ":"JWT"}"#), parts[1], parts[2]), Err("unsigned")),
        ("payload swapped under a valid signature", tampered, Err("signature")),
        ("signature stripped", format!("{}.{}.", parts[0], parts[1]), Err("signature")),
        ("subscribe of the wrong type", hs(json!({ "subscribe": 5 })), Err("claims")),
        ("exp of the wrong type", hs(json!({ "exp": "tomorrow" })), Err("claims")),
        ("two parts", format!("{}.{}", parts[0], parts[1]), Err("malformed")),
        ("not a JWT", "not-a-jwt".to_string(), Err("malformed")),
        ("over 8 KiB", format!("{valid}.{}", "A".repeat(9000)), Err("longer")),
    ];
    check_tokens(server.addr(), &rows);
}
both_drivers!(refused_tokens_hs256);

/// ES256 (`--jwt-public-key`): algorithm confusion (HS256 keyed with the server's public key
/// PEM), another key, RS256, `alg: none` and expiry are all 401.
fn refused_tokens_es256(driver: Driver) {
    let key = path_of("es256_public.pem");
    let server = Server::start_with_driver(driver, &["--jwt-public-key", &key]);
    let t = now();
    let good = rights(&["*"], &[]);
    let es = |extra: Value| mint(Signer::Es, &with(good.clone(), extra));
    #[rustfmt::skip]
    let rows = [
        ("valid", es(json!({})), Ok(())),
        ("no iss or aud needed when not configured", es(json!({ "iss": "anyone", "aud": "anything" })), Ok(())),
        ("HS256 keyed with the public key PEM", mint(Signer::HsWithPem("es256_public.pem"), &good), Err("algorithm")),
        ("HS256 with a secret", mint(Signer::Hs, &good), Err("algorithm")),
        ("other EC key", mint(Signer::EsOther, &good), Err("signature")),
        ("RS256 token", mint(Signer::Rs, &good), Err("algorithm")),
        ("alg none", raw(r#"{"alg":"none"}"#, &good.to_string(), b""), Err("unsigned")),
        ("expired", es(json!({ "exp": t - 60 })), Err("expired")),
        ("not yet valid", es(json!({ "nbf": t + 60 })), Err("not valid yet")),
    ];
    check_tokens(server.addr(), &rows);
}
both_drivers!(refused_tokens_es256);

/// RS256 (`--jwt-public-key` with an RSA key): the classic confusion attack, an HS256 token whose
/// secret is the RSA public key PEM, is refused; a real RS256 token is accepted.
fn refused_tokens_rs256(driver: Driver) {
    let key = path_of("rs256_public.pem");
    let server = Server::start_with_driver(driver, &["--jwt-public-key", &key]);
    let good = rights(&["*"], &[]);
    #[rustfmt::skip]
    let rows = [
        ("valid", mint(Signer::Rs, &good), Ok(())),
        ("HS256 keyed with the public key PEM", mint(Signer::HsWithPem("rs256_public.pem"), &good), Err("algorithm")),
        ("ES256 token", mint(Signer::Es, &good), Err("algorithm")),
        ("alg none", raw(r#"{"alg":"none","typ":"JWT"}"#, &good.to_string(), b""), Err("unsigned")),
    ];
    check_tokens(server.addr(), &rows);
}
both_drivers!(refused_tokens_rs256);

/// `--anonymous-subscribe`: no token subscribes to anything, but a token that is present is
/// always checked (invalid → 401, insufficient → 403), and publishing still needs one.
fn anonymous_subscribe(driver: Driver) {
    let server =
        Server::start_with_driver(driver, &["--jwt-secret", SECRET, "--anonymous-subscribe"]);
    let addr = server.addr();
    let publisher = mint(Signer::Hs, &rights(&[], &["*"]));
    let mut anon = open(addr, "/events/stream?channels=news,admin", &[])
        .unwrap_or_else(|r| panic!("anonymous subscribe: {} {}", r.status, r.text()));
    let id = publish_ok(addr, &publisher, "admin", "anon");
    let ev = anon.expect_event("anonymous subscriber");
    assert_eq!((ev.id(), tag(&ev)), (Some(id.as_str()), "anon".into()));

    let wrong_key = mint(Signer::HsOther, &rights(&["*"], &[]));
    let expired = mint(
        Signer::Hs,
        &with(rights(&["*"], &[]), json!({ "exp": now() - 60 })),
    );
    let target = "/events/stream?channels=news";
    let header = bearer(&wrong_key);
    let resp = open(addr, target, &[("Authorization", &header)]).expect_err("wrong key accepted");
    assert_unauthorized(
        &resp,
        Some(&wrong_key),
        "signature",
        "wrong key in the header",
    );
    let resp = open(addr, &format!("{target}&token={wrong_key}"), &[])
        .expect_err("wrong key in the query accepted");
    assert_unauthorized(
        &resp,
        Some(&wrong_key),
        "signature",
        "wrong key in the query",
    );
    let cookie = format!("pushcore_token={expired}");
    let resp = open(addr, target, &[("Cookie", &cookie)]).expect_err("expired token accepted");
    assert_unauthorized(
        &resp,
        Some(&expired),
        "expired",
        "expired token in the cookie",
    );
    let news_only = mint(Signer::Hs, &rights(&["news"], &[]));
    let resp = open(
        addr,
        "/events/stream?channels=news,admin",
        &[("Authorization", &bearer(&news_only))],
    )
    .expect_err("token without admin subscribed to admin");
    assert_forbidden(
        &resp,
        &news_only,
        "admin",
        "valid token without the channel",
    );
    open_ok(addr, target, &news_only);

    let resp = request(
        addr,
        &post(
            "/events/publish",
            &[],
            &event_json("news", None, &json!(1)),
            false,
        ),
    );
    assert_unauthorized(&resp, None, "missing token", "anonymous publish");
}
both_drivers!(anonymous_subscribe);

// ----- token sources -----------------------------------------------------------------------------

/// Each source works alone (header, default cookie, `token` query parameter); when several hold
/// a token, the first in that order is the one judged, even when it is invalid.
fn token_sources_and_precedence(driver: Driver) {
    let server = Server::start_with_driver(driver, &["--jwt-secret", SECRET]);
    let addr = server.addr();
    let a = mint(Signer::Hs, &rights(&["a"], &["a"]));
    let b = mint(Signer::Hs, &rights(&["b"], &["b"]));
    let bad = mint(Signer::HsOther, &rights(&["*"], &["*"]));
    let h = |t: &str| ("Authorization".to_string(), bearer(t));
    let c = |t: &str| ("Cookie".to_string(), format!("pushcore_token={t}"));
    let q = |t: &str| format!("&token={t}");
    // (what, headers, query suffix, channel, expected status)
    type Row = (
        &'static str,
        Vec<(String, String)>,
        String,
        &'static str,
        u16,
    );
    #[rustfmt::skip]
    let rows: Vec<Row> = vec![
        ("header", vec![h(&a)], String::new(), "a", 200),
        ("cookie", vec![c(&a)], String::new(), "a", 200),
        ("query", vec![], q(&a), "a", 200),
        ("header judged, not the cookie", vec![h(&a), c(&b)], String::new(), "b", 403),
        ("header over cookie", vec![h(&a), c(&b)], String::new(), "a", 200),
        ("header over query", vec![h(&a)], q(&b), "b", 403),
        ("cookie over query", vec![c(&a)], q(&b), "a", 200),
        ("cookie judged, not the query", vec![c(&a)], q(&b), "b", 403),
        ("header over cookie over query", vec![c(&b), h(&a)], q(&b), "a", 200),
        ("invalid header, valid cookie", vec![h(&bad), c(&a)], String::new(), "a", 401),
        ("invalid header, valid query", vec![h(&bad)], q(&a), "a", 401),
        ("invalid cookie, valid query", vec![c(&bad)], q(&a), "a", 401),
        ("lower-case scheme", vec![("Authorization".into(), format!("bearer {a}"))], String::new(), "a", 200),
        ("Basic is not a bearer token", vec![("Authorization".into(), "Basic dXNlcjpwYXNz".into()), c(&a)], String::new(), "a", 200),
        ("empty bearer", vec![("Authorization".into(), "Bearer ".into())], q(&a), "a", 200),
        ("cookie among others", vec![("Cookie".into(), format!("theme=dark; pushcore_token={a}; lang=en"))], String::new(), "a", 200),
        ("second Cookie header", vec![("Cookie".into(), "theme=dark".into()), c(&a)], String::new(), "a", 200),
        ("quoted cookie", vec![("Cookie".into(), format!("pushcore_token=\"{a}\""))], String::new(), "a", 200),
        ("empty cookie, query used", vec![("Cookie".into(), "pushcore_token=".into())], q(&a), "a", 200),
        ("other cookie name", vec![("Cookie".into(), format!("session={a}"))], String::new(), "a", 401),
        ("cookie name is case-sensitive", vec![("Cookie".into(), format!("PUSHCORE_TOKEN={a}"))], String::new(), "a", 401),
        ("empty query token", vec![], "&token=".into(), "a", 401),
        ("first non-empty query token", vec![], format!("&token={}", q(&a)), "a", 200),
        ("first query token judged", vec![], format!("{}{}", q(&bad), q(&a)), "a", 401),
        ("cookie name as a suffix of another", vec![("Cookie".into(), format!("my_pushcore_token={bad}; pushcore_token={a}"))], String::new(), "a", 200),
    ];
    for (what, headers, query, channel, want) in &rows {
        let target = format!("/events/stream?channels={channel}{query}");
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let got = open(addr, &target, &headers);
        let status = got.as_ref().map_or_else(|r| r.status, |_| 200);
        assert_eq!(status, *want, "{what}: {target} {headers:?}");
        if let Err(resp) = &got {
            for t in [&a, &b, &bad] {
                assert_no_echo(resp, t);
            }
        }
    }
    // Publishing reads the same sources.
    let body = event_json("a", None, &json!("x"));
    type PublishRow = (&'static str, String, Vec<(&'static str, String)>, u16);
    #[rustfmt::skip]
    let publishes: [PublishRow; 5] = [
        ("header", "/events/publish".into(), vec![("Authorization", bearer(&a))], 200),
        ("cookie", "/events/publish".into(), vec![("Cookie", format!("pushcore_token={a}"))], 200),
        ("query", format!("/events/publish?token={a}"), vec![], 200),
        ("header over query", format!("/events/publish?token={a}"), vec![("Authorization", bearer(&b))], 403),
        ("invalid cookie over valid query", format!("/events/publish?token={a}"), vec![("Cookie", format!("pushcore_token={bad}"))], 401),
    ];
    for (what, target, headers, want) in &publishes {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let resp = request(addr, &post(target, &headers, &body, false));
        assert_eq!(resp.status, *want, "publish via {what}: {}", resp.text());
    }
}
both_drivers!(token_sources_and_precedence);

/// `--jwt-cookie NAME` moves the cookie: NAME carries the token, `pushcore_token` no longer does.
fn custom_cookie_name(driver: Driver) {
    let server =
        Server::start_with_driver(driver, &["--jwt-secret", SECRET, "--jwt-cookie", "sess"]);
    let addr = server.addr();
    let a = mint(Signer::Hs, &rights(&["a"], &[]));
    let target = "/events/stream?channels=a";
    let cookie = format!("sess={a}");
    assert!(open(addr, target, &[("Cookie", &cookie)]).is_ok(), "sess=");
    let cookie = format!("pushcore_token={a}");
    let resp = open(addr, target, &[("Cookie", &cookie)]).expect_err("default cookie still read");
    assert_unauthorized(&resp, None, "missing token", "default cookie name");
}
both_drivers!(custom_cookie_name);

/// Without a key auth is off: tokens, even garbage, are not looked at.
fn auth_off_ignores_tokens(driver: Driver) {
    let server = Server::start_with_driver(driver, &[]);
    let addr = server.addr();
    let garbage = [("Authorization", "Bearer garbage")];
    let mut sub = open(addr, "/events/stream?channels=a&token=garbage", &garbage)
        .unwrap_or_else(|r| panic!("subscribe: {} {}", r.status, r.text()));
    let id = publish_ok(addr, "garbage", "a", "off");
    assert_eq!(sub.expect_event("auth off").id(), Some(id.as_str()));
}
both_drivers!(auth_off_ignores_tokens);

// ----- publish -----------------------------------------------------------------------------------

/// Allowed publishes are delivered; a forbidden channel, alone, among `channels` or in a batch,
/// is 403 and nothing of that request reaches a subscriber (who could see every channel). The
/// keep-alive connection stays usable after a 403.
fn publish_rights(driver: Driver) {
    let server = Server::start_with_driver(driver, &["--jwt-secret", SECRET]);
    let addr = server.addr();
    let watcher = mint(Signer::Hs, &rights(&["*"], &[]));
    let mut sub = open_ok(addr, "/events/stream?channels=open,secret,user:1", &watcher);
    let publisher = mint(Signer::Hs, &rights(&[], &["open", "user:*"]));
    let subscribe_only = mint(Signer::Hs, &rights(&["*"], &[]));
    let auth = bearer(&publisher);
    let mut conn = Conn::open(addr);
    let mut send = |json: Value, token_header: &str| {
        conn.request(&post(
            "/events/publish",
            &[("Authorization", token_header)],
            &json.to_string(),
            true,
        ))
    };
    let ev = |ch: &str, t: &str| json!({ "channel": ch, "data": { "tag": t } });

    let resp = send(ev("open", "first"), &auth);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let resp = send(ev("secret", "leak-single"), &auth);
    assert_forbidden(&resp, &publisher, "secret", "single event");
    let resp = send(
        json!({ "channels": ["open", "secret"], "data": { "tag": "leak-multi" } }),
        &auth,
    );
    assert_forbidden(&resp, &publisher, "secret", "one event on two channels");
    let resp = send(
        json!([
            ev("open", "leak-batch-open"),
            ev("secret", "leak-batch-secret")
        ]),
        &auth,
    );
    assert_forbidden(&resp, &publisher, "secret", "batch");
    let resp = send(ev("open", "leak-no-right"), &bearer(&subscribe_only));
    assert_forbidden(
        &resp,
        &subscribe_only,
        "open",
        "token without publish rights",
    );
    let resp = send(
        json!([ev("open", "batch-open"), ev("user:1", "batch-user")]),
        &auth,
    );
    assert_eq!(resp.status, 200, "allowed batch: {}", resp.text());
    let resp = send(ev("open", "marker"), &auth);
    assert_eq!(resp.status, 200, "{}", resp.text());

    assert_eq!(server.metrics().get("pushcore_auth_refusals_total"), 4);
    let tags: Vec<String> = sub.events(4).iter().map(tag).collect();
    assert_eq!(tags, ["first", "batch-open", "batch-user", "marker"]);
    assert_eq!(
        sub.next_event(Duration::from_millis(200)).map(|b| b.raw),
        Err(End::Timeout),
        "nothing after the marker"
    );
}
both_drivers!(publish_rights);

/// Without a valid token, publish is answered 401 from the head alone: the server does not wait
/// for a body announced as 1 MB of which a few bytes were sent, and closes. The same head with a
/// valid token is answered only once the body has arrived.
fn publish_unauthorized_before_the_body(driver: Driver) {
    // A long handshake timeout, so no 408 can come first.
    let server = Server::start_with_driver(
        driver,
        &["--jwt-secret", SECRET, "--handshake-timeout", "60"],
    );
    let addr = server.addr();
    const LEN: usize = 1_000_000;
    let head = |auth: Option<&str>| {
        let mut h = format!(
            "POST /events/publish HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Content-Type: application/json\r\nContent-Length: {LEN}\r\n"
        );
        if let Some(a) = auth {
            h.push_str(&format!("Authorization: {a}\r\n"));
        }
        h.push_str("\r\n{\"channel\":\"x\",");
        h
    };
    let expired = mint(
        Signer::Hs,
        &with(rights(&[], &["*"]), json!({ "exp": now() - 60 })),
    );
    let wrong_key = mint(Signer::HsOther, &rights(&[], &["*"]));
    let rows: [(&str, Option<String>, Option<&str>, &str); 4] = [
        ("no token", None, None, "missing token"),
        (
            "wrong key",
            Some(bearer(&wrong_key)),
            Some(wrong_key.as_str()),
            "signature",
        ),
        (
            "expired",
            Some(bearer(&expired)),
            Some(expired.as_str()),
            "expired",
        ),
        (
            "garbage",
            Some("Bearer garbage".into()),
            Some("garbage"),
            "malformed",
        ),
    ];
    for (what, auth, token, why) in &rows {
        let mut conn = Conn::open(addr);
        conn.send(head(auth.as_deref()).as_bytes());
        let resp = conn
            .try_read_response(IO_TIMEOUT)
            .unwrap_or_else(|end| panic!("{what}: no answer before the body ({end:?})"));
        assert_unauthorized(&resp, *token, why, what);
        assert_eq!(resp.header("connection"), Some("close"), "{what}");
        let (end, rest) = conn.read_to_end(IO_TIMEOUT);
        assert!(
            matches!(end, End::Eof | End::Reset) && rest.is_empty(),
            "{what}: connection not closed after the 401: {end:?} {rest:?}"
        );
    }
    // `Expect: 100-continue` without a token: the refusal comes instead of the 100, so the
    // client never sends the body.
    let mut conn = Conn::open(addr);
    conn.send(
        format!(
            "POST /events/publish HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Content-Type: application/json\r\nContent-Length: {LEN}\r\n\
             Expect: 100-continue\r\n\r\n"
        )
        .as_bytes(),
    );
    let resp = conn.read_response();
    assert_unauthorized(&resp, None, "missing token", "Expect: 100-continue");
    // Same with a chunked body of unknown length.
    let mut conn = Conn::open(addr);
    conn.send(
        b"POST /events/publish HTTP/1.1\r\nHost: 127.0.0.1\r\n\
          Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"channel\":\"x\",",
    );
    let resp = conn.read_response();
    assert_unauthorized(&resp, None, "missing token", "chunked");
    // Contrast: a valid token waits for the body, then publishes it.
    let valid = mint(Signer::Hs, &rights(&[], &["x"]));
    let mut conn = Conn::open(addr);
    let start = head(Some(&bearer(&valid)));
    conn.send(start.as_bytes());
    assert!(
        matches!(
            conn.try_read_response(Duration::from_millis(300)),
            Err(End::Timeout)
        ),
        "answered before the body with a valid token"
    );
    let sent = start.len() - start.find("\r\n\r\n").expect("head end") - 4;
    let mut rest = String::from("\"data\":1}");
    rest.push_str(&" ".repeat(LEN - sent - rest.len()));
    conn.send(rest.as_bytes());
    let resp = conn.read_response();
    assert_eq!(resp.status, 200, "{}", resp.text());
}
both_drivers!(publish_unauthorized_before_the_body);

// ----- expiry ------------------------------------------------------------------------------------

/// A stream whose token expires gets `event: token-expired` (no id) and EOF once `exp` + the
/// 5 s leeway has passed, not before; the token is then refused, and the close is counted.
fn token_expiry_closes_the_stream(driver: Driver) {
    let server = Server::start_with_driver(driver, &["--jwt-secret", SECRET]);
    let addr = server.addr();
    let exp = now() + 2;
    let token = mint(
        Signer::Hs,
        &with(rights(&["news"], &[]), json!({ "exp": exp })),
    );
    let mut sub = open_ok(addr, "/events/stream?channels=news", &token);
    let publisher = mint(Signer::Hs, &rights(&[], &["news"]));
    let id = publish_ok(addr, &publisher, "news", "before");
    let ev = sub.expect_event("event before expiry");
    assert_eq!(ev.id(), Some(id.as_str()));

    let (blocks, end) = sub.read_to_end(Duration::from_secs(12));
    let at_ms = unix_ms();
    let events: Vec<&Block> = blocks.iter().filter(|b| !b.is_comment()).collect();
    assert_eq!(
        events.iter().map(|b| b.event_type()).collect::<Vec<_>>(),
        ["token-expired"],
        "{blocks:?}"
    );
    assert_eq!(
        events[0].id(),
        None,
        "token-expired carries an id: {:?}",
        events[0].raw
    );
    assert_eq!(end, End::Eof, "stream not closed after token-expired");
    assert!(sub.pending().is_empty(), "bytes after token-expired");
    assert!(
        at_ms >= (exp + 5) * 1000,
        "closed at {at_ms} ms, before exp + leeway ({exp} + 5 s)"
    );

    let resp = open(
        addr,
        "/events/stream?channels=news",
        &[("Authorization", &bearer(&token))],
    )
    .expect_err("expired token accepted again");
    assert_unauthorized(
        &resp,
        Some(&token),
        "expired",
        "reconnect with the expired token",
    );
    let fresh = mint(Signer::Hs, &rights(&["news"], &[]));
    open_ok(addr, "/events/stream?channels=news", &fresh);
    assert!(
        server.metrics().get("pushcore_token_expiries_total") >= 1,
        "expiry not counted"
    );
}
both_drivers!(token_expiry_closes_the_stream);

// ----- replay ------------------------------------------------------------------------------------

/// Resuming with Last-Event-ID replays only what the new token allows: asking for a channel it
/// does not cover is 403; asking for the covered ones replays exactly those events.
fn replay_limited_to_the_new_token(driver: Driver) {
    let server = Server::start_with_driver(driver, &["--jwt-secret", SECRET]);
    let addr = server.addr();
    let publisher = mint(Signer::Hs, &rights(&[], &["*"]));
    let start = publish_ok(addr, &publisher, "a", "a0");
    let a1 = publish_ok(addr, &publisher, "a", "a1");
    let b1 = publish_ok(addr, &publisher, "b", "b1");
    let a2 = publish_ok(addr, &publisher, "a", "a2");

    let a_only = mint(Signer::Hs, &rights(&["a"], &[]));
    let resume = |token: &str, channels: &str| {
        let target = format!("/events/stream?channels={channels}");
        open(
            addr,
            &target,
            &[("Authorization", &bearer(token)), ("Last-Event-ID", &start)],
        )
    };
    let resp = resume(&a_only, "a,b").expect_err("resumed a,b with a token for a");
    assert_forbidden(&resp, &a_only, "b", "resume a,b with a token for a");
    let resp = resume(&a_only, "b").expect_err("resumed b with a token for a");
    assert_forbidden(&resp, &a_only, "b", "resume b with a token for a");

    // Control: b1 is retained, so a token for both replays it.
    let both = mint(Signer::Hs, &rights(&["a", "b"], &[]));
    let mut full = resume(&both, "a,b").expect("resume with a token for a and b");
    let ids: Vec<String> = full
        .events(3)
        .iter()
        .map(|b| b.id().unwrap_or_default().to_string())
        .collect();
    assert_eq!(ids, [a1.clone(), b1, a2.clone()]);

    let mut sub = resume(&a_only, "a").expect("resume a with a token for a");
    let replay: Vec<(String, String)> = sub
        .events(2)
        .iter()
        .map(|b| (b.id().unwrap_or_default().to_string(), tag(b)))
        .collect();
    assert_eq!(replay, [(a1, "a1".into()), (a2, "a2".into())]);
    publish_ok(addr, &publisher, "b", "b2");
    let a3 = publish_ok(addr, &publisher, "a", "a3");
    let ev = sub.expect_event("live after replay");
    assert_eq!((ev.id(), tag(&ev)), (Some(a3.as_str()), "a3".into()));
}
both_drivers!(replay_limited_to_the_new_token);

// ----- startup errors ----------------------------------------------------------------------------

/// Run `pushcore serve` (ending it by its pid after 10 s if it does not exit): exit code, stderr.
fn serve_once(driver: Driver, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = serve_command(driver, &["--workers", "1"]);
    cmd.args(args);
    cmd.envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn pushcore");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        use std::io::Read;
        let _ = err.read_to_string(&mut stderr);
    }
    (status.and_then(|s| s.code()), stderr)
}

/// Bad auth and CORS options stop the server at startup: exit code 2, one stderr line naming
/// the flag, and never the secret itself.
fn config_errors_exit_2(driver: Driver) {
    let secret = "tooshort-s3cr3t";
    let es_pub = path_of("es256_public.pem");
    let es_priv = path_of("es256_private.pem");
    let p384 = path_of("p384_public.pem");
    let ed25519 = path_of("ed25519_public.pem");
    type Row<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    #[rustfmt::skip]
    let rows: Vec<Row> = vec![
        (vec!["--jwt-secret", secret], vec![], "--jwt-secret"),
        (vec![], vec![("PUSHCORE_JWT_SECRET", secret)], "--jwt-secret"),
        (vec!["--jwt-public-key", "/nonexistent"], vec![], "--jwt-public-key"),
        (vec!["--jwt-public-key", &es_priv], vec![], "--jwt-public-key"),
        (vec!["--jwt-public-key", &p384], vec![], "--jwt-public-key"),
        (vec!["--jwt-public-key", &ed25519], vec![], "--jwt-public-key"),
        (vec!["--jwt-secret", SECRET, "--jwt-public-key", &es_pub], vec![], "--jwt-secret"),
        (vec!["--cors-origin", "*", "--cors-credentials"], vec![], "--cors-origin"),
        (vec!["--cors-origin", "*", "--cors-origin", "https://app.example"], vec![], "--cors-origin"),
        (vec!["--cors-credentials"], vec![], "--cors-credentials"),
        (vec!["--cors-origin", "https://app.example/"], vec![], "--cors-origin"),
        (vec!["--cors-origin", "null"], vec![], "--cors-origin"),
        (vec!["--jwt-issuer", ISSUER], vec![], "--jwt-issuer"),
        (vec!["--anonymous-subscribe"], vec![], "--anonymous-subscribe"),
        (vec!["--jwt-secret", SECRET, "--jwt-cookie", "bad name"], vec![], "--jwt-cookie"),
    ];
    for (args, env, flag) in &rows {
        let (code, stderr) = serve_once(driver, args, env);
        assert_eq!(code, Some(2), "{args:?} {env:?}: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{args:?} {env:?}: not one line: {stderr:?}");
        assert!(
            lines[0].contains(flag),
            "{args:?} {env:?}: {stderr:?} does not name {flag}"
        );
        assert!(
            !stderr.contains(secret),
            "{args:?}: the secret is printed: {stderr}"
        );
    }
}
both_drivers!(config_errors_exit_2);

//! Token verification and the authorize decisions, with real tokens (HS256, ES256, RS256)
//! minted by jsonwebtoken from the committed test keys.

mod auth_common;

use auth_common::{auth, b64, mint, raw, Keyed, Signer, NOW};
use pushcore::auth::{
    Action, Auth, AuthConfig, AuthError, Claims, Grant, Pattern, Rejection, LEEWAY_SECS,
    MAX_TOKEN_BYTES,
};
use serde_json::{json, Value};

fn ok_claims() -> Value {
    json!({"sub": "u1", "exp": NOW + 60, "subscribe": ["news"], "publish": ["news"]})
}

/// `ok_claims()` with `extra` merged in (a `null` removes the claim).
fn with(extra: Value) -> Value {
    let mut claims = ok_claims();
    if let (Some(c), Some(e)) = (claims.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            if v.is_null() {
                c.remove(k);
            } else {
                c.insert(k.clone(), v.clone());
            }
        }
    }
    claims
}

/// A token signed by `signer` with its claims replaced by `evil` (signature kept).
fn tampered(signer: Signer, evil: Value) -> String {
    let token = mint(signer, &ok_claims());
    let parts: Vec<&str> = token.split('.').collect();
    format!(
        "{}.{}.{}",
        parts[0],
        b64(evil.to_string().as_bytes()),
        parts[2]
    )
}

/// The verdict of `server` on `token`, as a rejection.
fn verdict(server: &Auth, token: &str) -> Result<(), Rejection> {
    server.verify(token, NOW).map(|_| ()).map_err(|e| match e {
        AuthError::Unauthorized(r) => r,
        other => panic!("verify gave {other:?}"),
    })
}

type VerifyRow = (&'static str, Keyed, String, Result<(), Rejection>);

#[test]
fn verify_table() {
    use Keyed::*;
    use Rejection::*;
    let wrong_alg = |accepted| Err(WrongAlgorithm { accepted });
    let hs_alg = r#"{"alg":"HS256","typ":"JWT"}"#;
    let good = ok_claims().to_string();
    let valid = mint(Signer::Hs, &ok_claims());
    let (message, _) = valid.rsplit_once('.').expect("three parts");
    // (what, server key, token, expected)
    #[rustfmt::skip]
    let rows: Vec<VerifyRow> = vec![
        ("hs256 valid", Hs, mint(Signer::Hs, &ok_claims()), Ok(())),
        ("es256 valid", Es, mint(Signer::Es, &ok_claims()), Ok(())),
        ("rs256 valid", Rs, mint(Signer::Rs, &ok_claims()), Ok(())),
        ("rs256 valid, pkcs1 key file", RsPkcs1, mint(Signer::Rs, &ok_claims()), Ok(())),
        // time
        ("expired", Hs, mint(Signer::Hs, &with(json!({"exp": NOW - 60}))), Err(Expired)),
        ("expired at exp+leeway", Hs, mint(Signer::Hs, &with(json!({"exp": NOW - LEEWAY_SECS}))), Err(Expired)),
        ("within leeway after exp", Hs, mint(Signer::Hs, &with(json!({"exp": NOW - LEEWAY_SECS + 1}))), Ok(())),
        ("expired, es256", Es, mint(Signer::Es, &with(json!({"exp": NOW - 1000}))), Err(Expired)),
        ("exp negative", Hs, mint(Signer::Hs, &with(json!({"exp": -1}))), Err(Expired)),
        ("exp fractional, still valid", Hs, mint(Signer::Hs, &with(json!({"exp": NOW as f64 + 0.5}))), Ok(())),
        ("no exp", Hs, mint(Signer::Hs, &with(json!({"exp": null}))), Ok(())),
        ("not yet valid", Hs, mint(Signer::Hs, &with(json!({"nbf": NOW + 60}))), Err(NotYetValid)),
        ("nbf within leeway", Hs, mint(Signer::Hs, &with(json!({"nbf": NOW + LEEWAY_SECS}))), Ok(())),
        ("nbf past leeway", Hs, mint(Signer::Hs, &with(json!({"nbf": NOW + LEEWAY_SECS + 1}))), Err(NotYetValid)),
        ("nbf in the past", Rs, mint(Signer::Rs, &with(json!({"nbf": NOW - 60}))), Ok(())),
        ("not yet valid, rs256", Rs, mint(Signer::Rs, &with(json!({"nbf": NOW + 600}))), Err(NotYetValid)),
        // wrong key
        ("hs256, other secret", Hs, mint(Signer::HsOther, &ok_claims()), Err(BadSignature)),
        ("es256, other key", Es, mint(Signer::EsOther, &ok_claims()), Err(BadSignature)),
        // algorithm confusion: HS256 "signed" with the server's public key file as the secret
        ("alg confusion vs es256 key", Es, mint(Signer::HsWithPem("es256_public.pem"), &ok_claims()), wrong_alg("ES256")),
        ("alg confusion vs rs256 key", Rs, mint(Signer::HsWithPem("rs256_public.pem"), &ok_claims()), wrong_alg("RS256")),
        ("alg confusion vs rs256 pkcs1", RsPkcs1, mint(Signer::HsWithPem("rs256_public_pkcs1.pem"), &ok_claims()), wrong_alg("RS256")),
        // another algorithm family than the key's
        ("es256 token, hs server", Hs, mint(Signer::Es, &ok_claims()), wrong_alg("HS256")),
        ("rs256 token, es server", Es, mint(Signer::Rs, &ok_claims()), wrong_alg("ES256")),
        ("es256 token, rs server", Rs, mint(Signer::Es, &ok_claims()), wrong_alg("RS256")),
        ("HS512 header", Hs, raw(r#"{"alg":"HS512"}"#, &good, b"sig"), wrong_alg("HS256")),
        ("lower-case alg", Hs, raw(r#"{"alg":"hs256"}"#, &good, b"sig"), wrong_alg("HS256")),
        // unsigned
        ("alg none", Hs, raw(r#"{"alg":"none"}"#, &good, b""), Err(Unsigned)),
        ("alg None", Es, raw(r#"{"alg":"None","typ":"JWT"}"#, &good, b""), Err(Unsigned)),
        ("alg none with a signature", Rs, raw(r#"{"alg":"none"}"#, &good, b"x"), Err(Unsigned)),
        // malformed
        ("empty", Hs, String::new(), Err(Malformed)),
        ("garbage", Hs, "garbage".into(), Err(Malformed)),
        ("two segments", Hs, message.to_owned(), Err(Malformed)),
        ("four segments", Hs, format!("{valid}.x"), Err(Malformed)),
        ("dots only", Hs, "..".into(), Err(Malformed)),
        ("header bad base64", Hs, "!!!.e30.e30".into(), Err(Malformed)),
        ("header padded base64", Hs, format!("{}=.e30.e30", b64(hs_alg.as_bytes())), Err(Malformed)),
        ("header not json", Hs, raw("HS256", &good, b"x"), Err(Malformed)),
        ("header without alg", Hs, raw(r#"{"typ":"JWT"}"#, &good, b"x"), Err(Malformed)),
        ("header alg not a string", Hs, raw(r#"{"alg":256}"#, &good, b"x"), Err(Malformed)),
        ("signature bad base64", Hs, format!("{message}.*"), Err(Malformed)),
        ("claims bad base64", Hs, raw(hs_alg, &good, b"x").replacen('.', ".*", 1), Err(BadSignature)),
        ("too long", Hs, "a".repeat(MAX_TOKEN_BYTES + 1), Err(TooLong)),
        // signed, with claims of the wrong type
        ("subscribe not a list", Hs, mint(Signer::Hs, &with(json!({"subscribe": 5}))), Err(BadClaims)),
        ("exp a string", Hs, mint(Signer::Hs, &with(json!({"exp": "soon"}))), Err(BadClaims)),
        ("claims not an object", Hs, mint(Signer::Hs, &json!(["news"])), Err(BadClaims)),
        // a valid token with its claims swapped
        ("tampered claims", Hs, tampered(Signer::Hs, with(json!({"subscribe": ["*"]}))), Err(BadSignature)),
        ("tampered claims, es256", Es, tampered(Signer::Es, with(json!({"exp": NOW + 99999}))), Err(BadSignature)),
        ("tampered claims, rs256", Rs, tampered(Signer::Rs, with(json!({"publish": ["*"]}))), Err(BadSignature)),
    ];
    let servers = [Hs, Es, Rs, RsPkcs1].map(|k| (k, auth(k)));
    let mut failures = Vec::new();
    for (what, keyed, token, want) in &rows {
        let server = &servers.iter().find(|(k, _)| k == keyed).expect("server").1;
        let got = verdict(server, token);
        if &got != want {
            failures.push(format!("{what}: got {got:?}, want {want:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

type IssuerRow = (
    &'static str,
    Value,
    Result<(), Rejection>,
    Result<(), Rejection>,
);

#[test]
fn issuer_and_audience() {
    use Rejection::*;
    let mut config = auth_common::config(Keyed::Hs);
    config.jwt_issuer = Some("https://issuer.example".into());
    config.jwt_audience = Some("pushcore".into());
    let strict = config.build().expect("build");
    let lax = auth(Keyed::Hs);
    let iss = "https://issuer.example";
    // (what, claims added, verdict with --jwt-issuer/--jwt-audience, verdict without)
    #[rustfmt::skip]
    let rows: Vec<IssuerRow> = vec![
        ("both right", json!({"iss": iss, "aud": "pushcore"}), Ok(()), Ok(())),
        ("aud list naming us", json!({"iss": iss, "aud": ["other", "pushcore"]}), Ok(()), Ok(())),
        ("aud list not naming us", json!({"iss": iss, "aud": ["other"]}), Err(WrongAudience), Ok(())),
        ("aud empty list", json!({"iss": iss, "aud": []}), Err(WrongAudience), Ok(())),
        ("aud other", json!({"iss": iss, "aud": "other"}), Err(WrongAudience), Ok(())),
        ("aud differs in case", json!({"iss": iss, "aud": "PushCore"}), Err(WrongAudience), Ok(())),
        ("aud missing", json!({"iss": iss}), Err(WrongAudience), Ok(())),
        ("iss other", json!({"iss": "https://evil.example", "aud": "pushcore"}), Err(WrongIssuer), Ok(())),
        ("iss missing", json!({"aud": "pushcore"}), Err(WrongIssuer), Ok(())),
        ("iss with trailing slash", json!({"iss": "https://issuer.example/", "aud": "pushcore"}), Err(WrongIssuer), Ok(())),
        ("aud a number", json!({"iss": iss, "aud": 7}), Err(BadClaims), Err(BadClaims)),
    ];
    for (what, extra, want_strict, want_lax) in &rows {
        let token = mint(Signer::Hs, &with(extra.clone()));
        assert_eq!(&verdict(&strict, &token), want_strict, "{what} (strict)");
        assert_eq!(&verdict(&lax, &token), want_lax, "{what} (lax)");
    }
}

#[test]
fn claims_are_read() {
    let token = mint(
        Signer::Es,
        &json!({"sub": "user-7", "exp": NOW + 100, "subscribe": ["news", "user:7:*", "*"],
                "publish": "alerts", "extra": {"ignored": true}}),
    );
    let claims = auth(Keyed::Es).verify(&token, NOW).expect("valid");
    assert_eq!(
        claims,
        Claims {
            subscribe: vec![
                Pattern::Exact("news".into()),
                Pattern::Prefix("user:7:".into()),
                Pattern::All
            ],
            publish: vec![Pattern::Exact("alerts".into())],
            exp: Some(NOW + 100),
            sub: Some("user-7".into()),
        }
    );
    let bare = mint(Signer::Hs, &json!({}));
    let claims = auth(Keyed::Hs).verify(&bare, NOW).expect("valid");
    assert_eq!(claims, Claims::default());
}

fn channels(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn pattern_table() {
    // (pattern, channel, matches)
    #[rustfmt::skip]
    let rows: &[(&str, &str, bool)] = &[
        ("news", "news", true),
        ("news", "news2", false),
        ("news", "new", false),
        ("news", "NEWS", false),
        ("user:42", "user:42", true),
        ("user:42", "user:420", false),
        ("user:*", "user:42", true),
        ("user:*", "user:", true),
        ("user:*", "user", false),
        ("user:*", "users:1", false),
        ("user:*", "xuser:1", false),
        ("user*", "username", true),
        ("*", "anything", true),
        ("*", "a", true),
        ("a*b", "a*b", true),
        ("a*b", "axb", false),
        ("*news", "breaking-news", false),
        ("", "news", false),
    ];
    for (pattern, channel, want) in rows {
        let got = Pattern::parse(pattern).matches(channel);
        assert_eq!(got, *want, "{pattern:?} vs {channel:?}");
    }
    let claims = Claims {
        subscribe: vec![Pattern::parse("news"), Pattern::parse("user:42:*")],
        publish: vec![Pattern::parse("user:42:inbox")],
        ..Claims::default()
    };
    // (action, channels, allowed: every one must be covered)
    #[rustfmt::skip]
    let rows: &[(Action, &[&str], bool)] = &[
        (Action::Subscribe, &["news"], true),
        (Action::Subscribe, &["news", "user:42:inbox", "user:42:feed"], true),
        (Action::Subscribe, &["news", "user:43:inbox"], false),
        (Action::Subscribe, &["user:43:inbox", "news"], false),
        (Action::Subscribe, &["sports"], false),
        (Action::Subscribe, &[], false),
        (Action::Publish, &["user:42:inbox"], true),
        (Action::Publish, &["news"], false),
        (Action::Publish, &["user:42:inbox", "user:42:feed"], false),
    ];
    for (action, list, want) in rows {
        let got = match action {
            Action::Subscribe => claims.can_subscribe(&channels(list)),
            Action::Publish => claims.can_publish(&channels(list)),
        };
        assert_eq!(got, *want, "{action:?} {list:?}");
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Decision {
    /// `Ok(None)`: allowed without a token.
    Open,
    /// `Ok(Some(grant))`.
    Granted(Grant),
    /// `Err` with this status.
    Status(u16),
}

type AuthorizeRow<'a> = (
    &'a str,
    &'a Auth,
    Action,
    Option<&'a str>,
    &'a [&'a str],
    Decision,
);

#[test]
fn authorize_table() {
    use Action::*;
    use Decision::*;
    let keyed = auth(Keyed::Hs);
    let mut config = auth_common::config(Keyed::Hs);
    config.anonymous_subscribe = true;
    let anonymous = config.build().expect("build");
    let off = AuthConfig::default().build().expect("build");

    let token = mint(
        Signer::Hs,
        &json!({"sub": "u1", "exp": NOW + 60, "subscribe": ["news", "user:1:*"], "publish": ["news"]}),
    );
    let no_rights = mint(Signer::Hs, &json!({"exp": NOW + 60}));
    let expired = mint(Signer::Hs, &json!({"exp": NOW - 60, "subscribe": ["*"]}));
    let forever = mint(Signer::Hs, &json!({"subscribe": ["*"]}));
    let granted = Granted(Grant {
        expires_at: Some(NOW + 60 + LEEWAY_SECS),
        subject: Some("u1".into()),
    });
    let no_expiry = Granted(Grant {
        expires_at: None,
        subject: None,
    });
    let (t, none, exp, fr) = (
        Some(token.as_str()),
        Some(no_rights.as_str()),
        Some(expired.as_str()),
        Some(forever.as_str()),
    );

    // (what, server, action, token, channels, decision)
    #[rustfmt::skip]
    let rows: Vec<AuthorizeRow> = vec![
        ("off: no token", &off, Subscribe, None, &["x"], Open),
        ("off: publish, no token", &off, Publish, None, &["x"], Open),
        ("off: garbage token ignored", &off, Publish, Some("garbage"), &["x"], Open),
        ("no token", &keyed, Subscribe, None, &["news"], Status(401)),
        ("no token, publish", &keyed, Publish, None, &["news"], Status(401)),
        ("anonymous subscribe", &anonymous, Subscribe, None, &["anything"], Open),
        ("anonymous publish refused", &anonymous, Publish, None, &["news"], Status(401)),
        ("anonymous, but a bad token is checked", &anonymous, Subscribe, Some("garbage"), &["news"], Status(401)),
        ("anonymous, an expired token is checked", &anonymous, Subscribe, exp, &["news"], Status(401)),
        ("anonymous, the token's rights apply", &anonymous, Subscribe, t, &["sports"], Status(403)),
        ("allowed", &keyed, Subscribe, t, &["news"], granted.clone()),
        ("allowed, several", &keyed, Subscribe, t, &["news", "user:1:a", "user:1:b"], granted.clone()),
        ("one of several forbidden", &keyed, Subscribe, t, &["news", "user:2:a"], Status(403)),
        ("forbidden", &keyed, Subscribe, t, &["sports"], Status(403)),
        ("publish allowed", &keyed, Publish, t, &["news"], granted.clone()),
        ("publish forbidden", &keyed, Publish, t, &["user:1:a"], Status(403)),
        ("no rights", &keyed, Subscribe, none, &["news"], Status(403)),
        ("no rights, publish", &keyed, Publish, none, &["news"], Status(403)),
        ("expired", &keyed, Subscribe, exp, &["news"], Status(401)),
        ("no channels", &keyed, Publish, t, &[], Status(403)),
        ("no exp: no expiry", &keyed, Subscribe, fr, &["x"], no_expiry),
    ];
    for (what, server, action, token, list, want) in &rows {
        let result = match action {
            Subscribe => server.authorize_subscribe(*token, &channels(list), NOW),
            Publish => server.authorize_publish(*token, &channels(list), NOW),
        };
        let got = match result {
            Ok(None) => Open,
            Ok(Some(grant)) => Granted(grant),
            Err(e) => Status(e.status()),
        };
        assert_eq!(&got, want, "{what}");
    }
}

/// What a refused client reads: status, challenge, a message that helps, never the token.
#[test]
fn refusals_on_the_wire() {
    let server = auth(Keyed::Hs);
    let expired = mint(Signer::Hs, &json!({"exp": NOW - 60, "subscribe": ["*"]}));
    let token = mint(Signer::Hs, &json!({"exp": NOW + 60, "subscribe": ["news"]}));
    let refuse = |token: Option<&str>, channel: &str| {
        server
            .authorize_subscribe(token, &channels(&[channel]), NOW)
            .expect_err("refused")
    };
    // (what, error, status, WWW-Authenticate line, words in the JSON body)
    #[rustfmt::skip]
    let rows: Vec<(&str, AuthError, u16, &str, &str)> = vec![
        ("missing", refuse(None, "news"), 401,
         "WWW-Authenticate: Bearer realm=\"pushcore\"\r\n",
         "Authorization: Bearer"),
        ("expired", refuse(Some(&expired), "news"), 401,
         "WWW-Authenticate: Bearer realm=\"pushcore\", error=\"invalid_token\", error_description=\"The token expired\"\r\n",
         "token expired"),
        ("malformed", refuse(Some("not-a-jwt"), "news"), 401,
         "error=\"invalid_token\", error_description=\"The token is malformed\"\r\n",
         "malformed token"),
        ("forbidden", refuse(Some(&token), "sports"), 403,
         "WWW-Authenticate: Bearer realm=\"pushcore\", error=\"insufficient_scope\"\r\n",
         "subscribing to channel \\\"sports\\\""),
    ];
    for (what, error, status, challenge, words) in rows {
        assert_eq!(error.status(), status, "{what}");
        let cors = [("Access-Control-Allow-Origin", "https://a.example")];
        let text = String::from_utf8(error.response(&cors, true)).expect("utf-8");
        assert!(
            text.starts_with(&format!("HTTP/1.1 {status} ")),
            "{what}: {text}"
        );
        assert!(text.contains(challenge), "{what}: {text}");
        assert!(
            text.contains("Access-Control-Allow-Origin: https://a.example\r\n"),
            "{what}"
        );
        assert!(
            text.contains("Content-Type: application/json\r\n"),
            "{what}"
        );
        let body = text.split("\r\n\r\n").nth(1).expect("body");
        let json: Value = serde_json::from_str(body).expect("json body");
        let message = json["error"].as_str().expect("error string");
        assert!(body.contains(words), "{what}: {body}");
        assert!(
            !message.contains(&token) && !message.contains(&expired),
            "{what}: echoes the token"
        );
    }
    // Every challenge's error_description holds only what RFC 6750 §3 allows; only the
    // missing-token challenge has no error code.
    for r in [
        Rejection::Missing,
        Rejection::NoKey,
        Rejection::TooLong,
        Rejection::Malformed,
        Rejection::Unsigned,
        Rejection::WrongAlgorithm { accepted: "HS256" },
        Rejection::BadSignature,
        Rejection::BadClaims,
        Rejection::WrongIssuer,
        Rejection::WrongAudience,
        Rejection::Expired,
        Rejection::NotYetValid,
    ] {
        let challenge = AuthError::Unauthorized(r).www_authenticate();
        if let Some(desc) = challenge.split("error_description=\"").nth(1) {
            let desc = desc.trim_end_matches('"');
            let allowed = |b: u8| matches!(b, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E);
            assert!(desc.bytes().all(allowed), "{r:?}: {desc}");
        }
        assert_eq!(
            r == Rejection::Missing,
            !challenge.contains("error="),
            "{r:?}"
        );
    }
}

//! The auth flags as `pushcore serve` will parse them (flattened into a clap command), their
//! and the one-line errors of `AuthConfig::build`.

mod auth_common;

use std::path::PathBuf;

use auth_common::{data, SECRET};
use clap::Parser;
use pushcore::auth::AuthConfig;

#[derive(Parser, Debug)]
struct Serve {
    #[command(flatten)]
    auth: AuthConfig,
}

fn parse(args: &[&str]) -> Result<AuthConfig, String> {
    Serve::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))
        .map(|s| s.auth)
        .map_err(|e| e.to_string())
}

#[test]
fn flags() {
    let key = data("es256_public.pem");
    let key = key.to_str().expect("utf-8 path");
    let c = parse(&[
        "--jwt-public-key",
        key,
        "--jwt-issuer",
        "iss",
        "--jwt-audience",
        "aud",
        "--jwt-cookie",
        "jwt",
        "--anonymous-subscribe",
        "--cors-origin",
        "https://a.example",
        "--cors-origin",
        "https://b.example,https://c.example",
        "--cors-credentials",
    ])
    .expect("parse");
    assert_eq!(
        c,
        AuthConfig {
            jwt_secret: None,
            jwt_public_key: Some(PathBuf::from(key)),
            jwt_issuer: Some("iss".into()),
            jwt_audience: Some("aud".into()),
            jwt_cookie: "jwt".into(),
            anonymous_subscribe: true,
            cors_origins: vec![
                "https://a.example".into(),
                "https://b.example".into(),
                "https://c.example".into()
            ],
            cors_credentials: true,
        }
    );
    let auth = c.build().expect("build");
    assert!(auth.is_enabled());
    assert!(auth.cors().allow_origin(b"https://c.example").is_some());

    let defaults = parse(&[]).expect("parse");
    assert_eq!(defaults, AuthConfig::default());
    assert_eq!(defaults.jwt_cookie, "pushcore_token");
    let off = defaults.build().expect("build");
    assert!(!off.is_enabled());
    assert!(!off.cors().is_enabled());
}

type ErrorRow = (&'static str, AuthConfig, &'static [&'static str]);

#[test]
fn build_errors() {
    let key = |name: &str| Some(data(name));
    let secret = |s: &str| Some(s.to_owned());
    let base = AuthConfig::default;
    let keyed = || AuthConfig {
        jwt_secret: secret(SECRET),
        ..base()
    };
    // (what, config, words the one-line error must hold)
    #[rustfmt::skip]
    let rows: Vec<ErrorRow> = vec![
        ("both keys", AuthConfig { jwt_public_key: key("es256_public.pem"), ..keyed() }, &["--jwt-secret", "--jwt-public-key"]),
        ("short secret", AuthConfig { jwt_secret: secret("short"), ..base() }, &["--jwt-secret", "5 bytes", "32"]),
        ("empty secret", AuthConfig { jwt_secret: secret(""), ..base() }, &["--jwt-secret", "0 bytes"]),
        ("31-byte secret", AuthConfig { jwt_secret: secret(&"x".repeat(31)), ..base() }, &["--jwt-secret", "31 bytes"]),
        ("missing key file", AuthConfig { jwt_public_key: key("nope.pem"), ..base() }, &["--jwt-public-key", "nope.pem", "No such file"]),
        ("EC private key given", AuthConfig { jwt_public_key: key("es256_private.pem"), ..base() }, &["--jwt-public-key", "private key", "-pubout"]),
        ("RSA private key given", AuthConfig { jwt_public_key: key("rs256_private.pem"), ..base() }, &["--jwt-public-key", "private key"]),
        ("P-384 key", AuthConfig { jwt_public_key: key("p384_public.pem"), ..base() }, &["--jwt-public-key", "P-256"]),
        ("Ed25519 key", AuthConfig { jwt_public_key: key("ed25519_public.pem"), ..base() }, &["--jwt-public-key", "RSA or EC P-256"]),
        ("not a PEM", AuthConfig { jwt_public_key: key("README.md"), ..base() }, &["--jwt-public-key", "README.md", "PEM"]),
        ("issuer without a key", AuthConfig { jwt_issuer: secret("i"), ..base() }, &["--jwt-issuer", "needs --jwt-secret or --jwt-public-key"]),
        ("audience without a key", AuthConfig { jwt_audience: secret("a"), ..base() }, &["--jwt-audience", "needs"]),
        ("anonymous without a key", AuthConfig { anonymous_subscribe: true, ..base() }, &["--anonymous-subscribe", "needs"]),
        ("empty issuer", AuthConfig { jwt_issuer: secret(""), ..keyed() }, &["--jwt-issuer", "empty"]),
        ("empty audience", AuthConfig { jwt_audience: secret(""), ..keyed() }, &["--jwt-audience", "empty"]),
        ("bad cookie name", AuthConfig { jwt_cookie: "my token".into(), ..base() }, &["--jwt-cookie", "\"my token\""]),
        ("empty cookie name", AuthConfig { jwt_cookie: String::new(), ..base() }, &["--jwt-cookie"]),
        ("wildcard with credentials", AuthConfig { cors_origins: vec!["*".into()], cors_credentials: true, ..base() }, &["--cors-origin", "--cors-credentials"]),
        ("origin with a path", AuthConfig { cors_origins: vec!["https://a.example/app".into()], ..base() }, &["--cors-origin", "https://a.example/app"]),
    ];
    for (what, config, words) in rows {
        let err = config.build().expect_err(what);
        assert!(!err.contains('\n'), "{what}: not one line: {err}");
        for w in words {
            assert!(err.contains(w), "{what}: {err:?} lacks {w:?}");
        }
        assert!(!err.contains(SECRET), "{what}: echoes the secret");
    }
    // Exactly 32 bytes is enough.
    let ok = AuthConfig {
        jwt_secret: secret(&"x".repeat(32)),
        ..base()
    };
    assert!(ok.build().is_ok());
}

//! The auth flags' environment variables. Alone in this binary: tests in one binary share the
//! process environment, so a parallel test could see these variables.

mod auth_common;

use auth_common::{mint, Signer, NOW, SECRET};
use clap::Parser;
use pushcore::auth::AuthConfig;
use serde_json::json;

#[derive(Parser, Debug)]
struct Serve {
    #[command(flatten)]
    auth: AuthConfig,
}

#[test]
fn environment_variables() {
    let vars = [
        ("PUSHCORE_JWT_SECRET", SECRET),
        ("PUSHCORE_JWT_ISSUER", "iss"),
        ("PUSHCORE_JWT_COOKIE", "jwt"),
        ("PUSHCORE_ANONYMOUS_SUBSCRIBE", "1"),
        (
            "PUSHCORE_CORS_ORIGIN",
            "https://a.example,https://b.example",
        ),
        ("PUSHCORE_CORS_CREDENTIALS", "true"),
    ];
    for (k, v) in vars {
        std::env::set_var(k, v);
    }
    let parsed = Serve::try_parse_from(["serve", "--jwt-cookie", "flag_wins"]).map(|s| s.auth);
    for (k, _) in vars {
        std::env::remove_var(k);
    }
    let c = parsed.expect("parse");
    assert_eq!(c.jwt_secret.as_deref(), Some(SECRET));
    assert_eq!(c.jwt_issuer.as_deref(), Some("iss"));
    assert_eq!(c.jwt_cookie, "flag_wins");
    assert!(c.anonymous_subscribe);
    assert!(c.cors_credentials);
    assert_eq!(c.cors_origins, ["https://a.example", "https://b.example"]);
    // The secret never shows in Debug output (logs).
    let shown = format!("{c:?}");
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(shown.contains("[redacted]"), "{shown}");
    // And it works: a token signed with it verifies.
    let token = mint(Signer::Hs, &json!({"iss": "iss", "exp": NOW + 10}));
    c.build()
        .expect("build")
        .verify(&token, NOW)
        .expect("valid");
}

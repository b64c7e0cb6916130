//! CORS decisions and the header fields a browser sees.

use pushcore::auth::{AuthConfig, Cors, CorsRoute};
use pushcore::http::response::response;

fn cors(origins: &[&str], credentials: bool) -> Cors {
    let config = AuthConfig {
        cors_origins: origins.iter().map(|s| s.to_string()).collect(),
        cors_credentials: credentials,
        ..AuthConfig::default()
    };
    config.build().expect("build").cors().clone()
}

type Fields = Vec<(&'static str, String)>;

fn owned(fields: &[(&'static str, &str)]) -> Fields {
    fields.iter().map(|(n, v)| (*n, v.to_string())).collect()
}

const VARY: (&str, &str) = ("Vary", "Origin");
const EXPOSE: (&str, &str) = (
    "Access-Control-Expose-Headers",
    "Retry-After, WWW-Authenticate",
);
const CREDENTIALS: (&str, &str) = ("Access-Control-Allow-Credentials", "true");

fn allow(origin: &str) -> (&'static str, &str) {
    ("Access-Control-Allow-Origin", origin)
}

type ResponseRow<'a> = (&'a str, &'a Cors, Option<&'a [u8]>, Fields);

#[test]
fn response_table() {
    let list = cors(&["https://app.example", "http://localhost:3000"], false);
    let creds = cors(&["https://app.example"], true);
    let any = cors(&["*"], false);
    let off = cors(&[], false);
    let app = "https://app.example";
    // (what, policy, Origin header, expected fields in order)
    #[rustfmt::skip]
    let rows: Vec<ResponseRow> = vec![
        ("allowed", &list, Some(b"https://app.example"), owned(&[VARY, allow(app), EXPOSE])),
        ("second allowed", &list, Some(b"http://localhost:3000"), owned(&[VARY, allow("http://localhost:3000"), EXPOSE])),
        ("other origin", &list, Some(b"https://evil.example"), owned(&[VARY])),
        ("suffix of an allowed origin", &list, Some(b"https://app.example.evil.example"), owned(&[VARY])),
        ("prefix of an allowed origin", &list, Some(b"https://app.exampl"), owned(&[VARY])),
        ("other scheme", &list, Some(b"http://app.example"), owned(&[VARY])),
        ("other port", &list, Some(b"http://localhost:3001"), owned(&[VARY])),
        ("default port spelled out", &list, Some(b"https://app.example:443"), owned(&[VARY])),
        ("host in upper case", &list, Some(b"https://APP.example"), owned(&[VARY])),
        ("trailing slash", &list, Some(b"https://app.example/"), owned(&[VARY])),
        ("null origin", &list, Some(b"null"), owned(&[VARY])),
        ("empty origin", &list, Some(b""), owned(&[VARY])),
        ("no Origin header", &list, None, owned(&[VARY])),
        ("credentials", &creds, Some(b"https://app.example"), owned(&[VARY, allow(app), CREDENTIALS, EXPOSE])),
        ("credentials, other origin", &creds, Some(b"https://evil.example"), owned(&[VARY])),
        ("wildcard", &any, Some(b"https://whoever.example"), owned(&[allow("*"), EXPOSE])),
        ("wildcard, null origin", &any, Some(b"null"), owned(&[allow("*"), EXPOSE])),
        ("wildcard, no Origin", &any, None, owned(&[allow("*"), EXPOSE])),
        ("off", &off, Some(b"https://app.example"), owned(&[])),
    ];
    for (what, policy, origin, want) in &rows {
        let headers = policy.response_headers(*origin);
        assert_eq!(&owned(headers.as_slice()), want, "{what}");
        let has_grant = want
            .iter()
            .any(|(n, _)| *n == "Access-Control-Allow-Origin");
        assert_eq!(headers.granted(), has_grant, "{what}");
        if let Some(origin) = origin {
            let grant = policy.allow_origin(origin);
            assert_eq!(grant.is_some(), has_grant, "{what}: allow_origin");
        }
    }
}

type PreflightRow<'a> = (&'a str, &'a Cors, Option<&'a [u8]>, CorsRoute, Fields);

#[test]
fn preflight_table() {
    let creds = cors(&["https://app.example"], true);
    let list = cors(&["https://app.example"], false);
    let any = cors(&["*"], false);
    let app = "https://app.example";
    let methods = |m| ("Access-Control-Allow-Methods", m);
    let headers = (
        "Access-Control-Allow-Headers",
        "Content-Type, Authorization, Last-Event-ID",
    );
    let max_age = ("Access-Control-Max-Age", "600");
    // (what, policy, Origin header, route, expected fields in order)
    #[rustfmt::skip]
    let rows: Vec<PreflightRow> = vec![
        ("publish", &creds, Some(b"https://app.example"), CorsRoute::Publish, owned(&[VARY, allow(app), CREDENTIALS, methods("POST"), headers, max_age])),
        ("stream", &creds, Some(b"https://app.example"), CorsRoute::Stream, owned(&[VARY, allow(app), CREDENTIALS, methods("GET"), headers, max_age])),
        ("without credentials", &list, Some(b"https://app.example"), CorsRoute::Publish, owned(&[VARY, allow(app), methods("POST"), headers, max_age])),
        ("other origin", &creds, Some(b"https://evil.example"), CorsRoute::Publish, owned(&[VARY])),
        ("null", &creds, Some(b"null"), CorsRoute::Publish, owned(&[VARY])),
        ("no Origin", &creds, None, CorsRoute::Publish, owned(&[VARY])),
        ("wildcard", &any, Some(b"https://x.example"), CorsRoute::Publish, owned(&[allow("*"), methods("POST"), headers, max_age])),
    ];
    for (what, policy, origin, route, want) in &rows {
        let got = policy.preflight_headers(*origin, *route);
        assert_eq!(&owned(got.as_slice()), want, "{what}");
    }
}

#[test]
fn configured_origins_are_normalized_and_never_reflected() {
    let policy = cors(&["HTTPS://App.Example:443", "https://app.example"], true);
    let grant = policy
        .allow_origin(b"https://app.example")
        .expect("granted");
    assert_eq!(grant.origin, "https://app.example");
    assert!(grant.credentials);
    // A hostile Origin with CR LF gets no grant, and nothing of it reaches the response.
    let evil = b"https://app.example\r\nSet-Cookie: x=1";
    let headers = policy.response_headers(Some(evil));
    assert!(!headers.granted());
    let bytes = response(204, "", headers.as_slice(), b"", true);
    let text = String::from_utf8(bytes).expect("utf-8");
    assert!(!text.contains("Set-Cookie"), "{text}");
    assert!(text.contains("Vary: Origin\r\n"), "{text}");
}

#[test]
fn config_errors() {
    let err = |origins: &[&str], credentials: bool| {
        AuthConfig {
            cors_origins: origins.iter().map(|s| s.to_string()).collect(),
            cors_credentials: credentials,
            ..AuthConfig::default()
        }
        .build()
        .expect_err("config error")
    };
    // (origins, --cors-credentials, words the error must hold)
    #[rustfmt::skip]
    let rows: &[(&[&str], bool, &[&str])] = &[
        (&["*"], true, &["--cors-origin", "--cors-credentials"]),
        (&["*", "https://a.example"], false, &["'*'", "alone"]),
        (&[], true, &["--cors-credentials", "--cors-origin"]),
        (&["null"], false, &["--cors-origin \"null\""]),
        (&["https://a.example/"], false, &["--cors-origin", "no path"]),
        (&["a.example"], false, &["--cors-origin \"a.example\"", "https://"]),
    ];
    for (origins, credentials, words) in rows {
        let e = err(origins, *credentials);
        for w in *words {
            assert!(e.contains(w), "{origins:?}: {e:?} lacks {w:?}");
        }
    }
}

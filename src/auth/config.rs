//! The auth and CORS options of `pushcore serve`, and building [`Auth`] from them once.

use std::fmt;
use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::Args;
use jsonwebtoken::{Algorithm, DecodingKey};

use super::cors::Cors;
use super::extract::DEFAULT_COOKIE;
use super::jwt::Verifier;
use super::Auth;

/// Shortest `--jwt-secret`, in bytes: RFC 7518 §3.2 requires a key at least as long as the
/// hash output (256 bits for HS256).
pub const MIN_SECRET_BYTES: usize = 32;

/// Authorization (JWT) and CORS options, flattened into `pushcore serve`.
#[derive(Args, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// HS256 secret tokens are signed with (at least 32 bytes). Prefer the environment
    /// variable: a flag shows in the process list.
    #[arg(
        long = "jwt-secret",
        env = "PUSHCORE_JWT_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub jwt_secret: Option<String>,

    /// PEM file with the public key tokens are verified with: RSA (RS256) or EC P-256 (ES256).
    #[arg(
        long = "jwt-public-key",
        env = "PUSHCORE_JWT_PUBLIC_KEY",
        value_name = "FILE"
    )]
    pub jwt_public_key: Option<PathBuf>,

    /// Required `iss` of every token (not checked when unset).
    #[arg(long = "jwt-issuer", env = "PUSHCORE_JWT_ISSUER", value_name = "ISS")]
    pub jwt_issuer: Option<String>,

    /// Audience every token's `aud` must name (not checked when unset).
    #[arg(
        long = "jwt-audience",
        env = "PUSHCORE_JWT_AUDIENCE",
        value_name = "AUD"
    )]
    pub jwt_audience: Option<String>,

    /// Cookie that may carry the token (after `Authorization: Bearer`, before `?token=`).
    #[arg(long = "jwt-cookie", env = "PUSHCORE_JWT_COOKIE", value_name = "NAME", default_value = DEFAULT_COOKIE)]
    pub jwt_cookie: String,

    /// With a key configured, let requests without a token subscribe (to any channel).
    /// Publishing always needs a token.
    #[arg(long = "anonymous-subscribe", env = "PUSHCORE_ANONYMOUS_SUBSCRIBE", value_parser = BoolishValueParser::new())]
    pub anonymous_subscribe: bool,

    /// Origin allowed to use the API from a browser, like https://app.example.com (repeatable,
    /// or comma-separated in the variable); `*` allows every origin without credentials.
    #[arg(
        long = "cors-origin",
        env = "PUSHCORE_CORS_ORIGIN",
        value_name = "ORIGIN",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,

    /// Send `Access-Control-Allow-Credentials: true` to allowed origins (cookies travel
    /// cross-origin); needs explicit --cors-origin values.
    #[arg(long = "cors-credentials", env = "PUSHCORE_CORS_CREDENTIALS", value_parser = BoolishValueParser::new())]
    pub cors_credentials: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            jwt_secret: None,
            jwt_public_key: None,
            jwt_issuer: None,
            jwt_audience: None,
            jwt_cookie: DEFAULT_COOKIE.to_owned(),
            anonymous_subscribe: false,
            cors_origins: Vec::new(),
            cors_credentials: false,
        }
    }
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field(
                "jwt_secret",
                &self.jwt_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("jwt_public_key", &self.jwt_public_key)
            .field("jwt_issuer", &self.jwt_issuer)
            .field("jwt_audience", &self.jwt_audience)
            .field("jwt_cookie", &self.jwt_cookie)
            .field("anonymous_subscribe", &self.anonymous_subscribe)
            .field("cors_origins", &self.cors_origins)
            .field("cors_credentials", &self.cors_credentials)
            .finish()
    }
}

impl AuthConfig {
    /// Validate the options and load the key: the one place a key file is read. The error is
    /// one line naming the flag.
    pub fn build(&self) -> Result<Auth, String> {
        let verifier = match (&self.jwt_secret, &self.jwt_public_key) {
            (Some(_), Some(_)) => {
                return Err("--jwt-secret and --jwt-public-key exclude each other: give one".into())
            }
            (Some(secret), None) => Some(secret_verifier(secret, self)?),
            (None, Some(path)) => Some(public_key_verifier(path, self)?),
            (None, None) => {
                let needs_key = [
                    ("--jwt-issuer", self.jwt_issuer.is_some()),
                    ("--jwt-audience", self.jwt_audience.is_some()),
                    ("--anonymous-subscribe", self.anonymous_subscribe),
                ];
                if let Some((flag, _)) = needs_key.iter().find(|(_, set)| *set) {
                    return Err(format!(
                        "{flag} needs --jwt-secret or --jwt-public-key (without a key, auth is off)"
                    ));
                }
                None
            }
        };
        for (flag, value) in [
            ("--jwt-issuer", &self.jwt_issuer),
            ("--jwt-audience", &self.jwt_audience),
        ] {
            if value.as_deref() == Some("") {
                return Err(format!("{flag} is empty"));
            }
        }
        if self.jwt_cookie.is_empty() || !self.jwt_cookie.bytes().all(is_tchar) {
            return Err(format!(
                "--jwt-cookie {:?}: a cookie name is a token (letters, digits, !#$%&'*+-.^_`|~)",
                self.jwt_cookie
            ));
        }
        let cors = Cors::new(&self.cors_origins, self.cors_credentials)?;
        Ok(Auth {
            verifier,
            cookie: self.jwt_cookie.clone(),
            anonymous_subscribe: self.anonymous_subscribe,
            cors,
        })
    }
}

fn secret_verifier(secret: &str, config: &AuthConfig) -> Result<Verifier, String> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "--jwt-secret is {} bytes; HS256 needs at least {MIN_SECRET_BYTES} \
             (make one with: openssl rand -base64 48)",
            secret.len()
        ));
    }
    Ok(Verifier::new(
        Algorithm::HS256,
        DecodingKey::from_secret(secret.as_bytes()),
        config.jwt_issuer.clone(),
        config.jwt_audience.clone(),
    ))
}

fn public_key_verifier(path: &PathBuf, config: &AuthConfig) -> Result<Verifier, String> {
    let shown = path.display();
    let pem = std::fs::read(path).map_err(|e| format!("--jwt-public-key {shown}: {e}"))?;
    if memchr::memmem::find(&pem, b"PRIVATE KEY-----").is_some() {
        return Err(format!(
            "--jwt-public-key {shown}: this is a private key; give its public key \
             (openssl pkey -in KEY -pubout)"
        ));
    }
    let probe = |key: &DecodingKey, algorithm| {
        // A key the algorithm cannot use fails here (not at the first token): wrong curve,
        // bad encoding. A well-formed key just fails to verify the dummy signature.
        jsonwebtoken::crypto::verify("AAAA", b"probe", key, algorithm).is_ok()
    };
    let (algorithm, key) = if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
        if !probe(&key, Algorithm::ES256) {
            return Err(format!(
                "--jwt-public-key {shown}: an EC key not on the P-256 curve; \
                 only P-256 (ES256) and RSA (RS256) keys are supported"
            ));
        }
        (Algorithm::ES256, key)
    } else if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
        if !probe(&key, Algorithm::RS256) {
            return Err(format!(
                "--jwt-public-key {shown}: not a valid RSA public key"
            ));
        }
        (Algorithm::RS256, key)
    } else {
        return Err(format!(
            "--jwt-public-key {shown}: not an RSA or EC P-256 public key in PEM \
             (-----BEGIN PUBLIC KEY-----)"
        ));
    };
    Ok(Verifier::new(
        algorithm,
        key,
        config.jwt_issuer.clone(),
        config.jwt_audience.clone(),
    ))
}

/// `tchar` (RFC 9110 §5.6.2), the bytes of a cookie name.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

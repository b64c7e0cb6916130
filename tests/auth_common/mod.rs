//! Shared by the `tests/auth_*.rs` suites: test keys, configs and real tokens minted with
//! jsonwebtoken (the same crate, different code path: `encode` vs `decode`).
#![allow(dead_code)]

use std::path::PathBuf;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use pushcore::auth::{Auth, AuthConfig};
use serde_json::Value;

/// "Now" in every table: a fixed unix second.
pub const NOW: u64 = 1_800_000_000;

/// The HS256 secret of the `hs` configs (32 bytes, the minimum).
pub const SECRET: &str = "0123456789abcdef0123456789abcdef";
/// Another valid secret: a token signed with it has the wrong key.
pub const OTHER_SECRET: &str = "fedcba9876543210fedcba9876543210";

pub fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/auth")
        .join(name)
}

pub fn read(name: &str) -> Vec<u8> {
    std::fs::read(data(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// How the server under test is keyed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keyed {
    Hs,
    Es,
    Rs,
    /// RS256 with the key as PKCS#1 (`BEGIN RSA PUBLIC KEY`).
    RsPkcs1,
}

pub fn config(keyed: Keyed) -> AuthConfig {
    let mut c = AuthConfig::default();
    match keyed {
        Keyed::Hs => c.jwt_secret = Some(SECRET.into()),
        Keyed::Es => c.jwt_public_key = Some(data("es256_public.pem")),
        Keyed::Rs => c.jwt_public_key = Some(data("rs256_public.pem")),
        Keyed::RsPkcs1 => c.jwt_public_key = Some(data("rs256_public_pkcs1.pem")),
    }
    c
}

pub fn auth(keyed: Keyed) -> Auth {
    config(keyed)
        .build()
        .unwrap_or_else(|e| panic!("{keyed:?}: {e}"))
}

/// Who signs a test token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signer {
    Hs,
    HsOther,
    Es,
    EsOther,
    Rs,
    /// Algorithm confusion: HS256 with the bytes of a public key PEM file as the secret.
    HsWithPem(&'static str),
}

/// A real token: `claims` signed by `signer`.
pub fn mint(signer: Signer, claims: &Value) -> String {
    let (alg, key) = match signer {
        Signer::Hs => (
            Algorithm::HS256,
            EncodingKey::from_secret(SECRET.as_bytes()),
        ),
        Signer::HsOther => (
            Algorithm::HS256,
            EncodingKey::from_secret(OTHER_SECRET.as_bytes()),
        ),
        Signer::Es => (
            Algorithm::ES256,
            EncodingKey::from_ec_pem(&read("es256_private.pem")).expect("es key"),
        ),
        Signer::EsOther => (
            Algorithm::ES256,
            EncodingKey::from_ec_pem(&read("es256_other_private.pem")).expect("es key"),
        ),
        Signer::Rs => (
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(&read("rs256_private.pem")).expect("rs key"),
        ),
        Signer::HsWithPem(file) => (Algorithm::HS256, EncodingKey::from_secret(&read(file))),
    };
    encode(&Header::new(alg), claims, &key).expect("encode")
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token assembled by hand: `header.claims.signature`, each part base64url of the given text.
pub fn raw(header: &str, claims: &str, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.as_bytes()),
        b64(claims.as_bytes()),
        b64(signature)
    )
}

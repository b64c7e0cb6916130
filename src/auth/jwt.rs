//! Token verification: the signature with the one configured key and algorithm (by
//! jsonwebtoken), then the claims pushcore reads, checked here against the caller's clock.
//!
//! - **One algorithm.** A secret accepts only HS256; an RSA public key only RS256; an EC P-256
//!   public key only ES256. A token naming any other algorithm is refused before its signature
//!   is looked at, which is what defeats algorithm confusion (an HS256 token "signed" with the
//!   bytes of the public key) and `alg: none`.
//! - **Time.** `exp` and `nbf` are enforced whenever present, with [`LEEWAY_SECS`] of clock
//!   skew: a token is accepted while `now < exp + LEEWAY_SECS` and once
//!   `now + LEEWAY_SECS >= nbf`. A token without `exp` never expires (mint short-lived tokens).
//!   Fractional and negative NumericDates are accepted (rounded towards refusal).
//! - **Issuer and audience** are enforced only when configured: then `iss` must equal the issuer
//!   and `aud` (a string or a list) must contain the audience; missing counts as wrong.
//! - **Claims** pushcore reads: `subscribe`, `publish` (a list of patterns, or one pattern as a
//!   string; missing means none), `exp`, `nbf`, `iss`, `aud`, `sub`. Others are ignored; a
//!   known claim of the wrong type refuses the token.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::claims::{Claims, Pattern};
use super::error::Rejection;

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 5;

/// Longest token accepted, in bytes (request heads are capped well below a megabyte anyway;
/// real tokens are a few hundred bytes).
pub const MAX_TOKEN_BYTES: usize = 8192;

/// The configured key, its one algorithm, and the registered claims to enforce.
pub(crate) struct Verifier {
    pub(crate) algorithm: Algorithm,
    key: DecodingKey,
    validation: Validation,
    issuer: Option<String>,
    audience: Option<String>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("algorithm", &self.algorithm)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// The name of an algorithm we accept, for messages.
pub(crate) fn algorithm_name(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::HS256 => "HS256",
        Algorithm::RS256 => "RS256",
        Algorithm::ES256 => "ES256",
        _ => "an unsupported algorithm",
    }
}

impl Verifier {
    pub(crate) fn new(
        algorithm: Algorithm,
        key: DecodingKey,
        issuer: Option<String>,
        audience: Option<String>,
    ) -> Self {
        // jsonwebtoken checks the algorithm and the signature only; the claims are ours.
        let mut validation = Validation::new(algorithm);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        Verifier {
            algorithm,
            key,
            validation,
            issuer,
            audience,
        }
    }

    /// Verify `token` at `now_unix` (seconds).
    pub(crate) fn verify(&self, token: &str, now_unix: u64) -> Result<Claims, Rejection> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Rejection::TooLong);
        }
        self.check_header(token)?;
        let raw = jsonwebtoken::decode::<RawClaims>(token, &self.key, &self.validation)
            .map_err(|e| self.rejection(e.kind()))?
            .claims;
        if let Some(issuer) = &self.issuer {
            if raw.iss.as_deref() != Some(issuer.as_str()) {
                return Err(Rejection::WrongIssuer);
            }
        }
        if let Some(audience) = &self.audience {
            let named = match &raw.aud {
                Some(OneOrMany::One(a)) => a == audience,
                Some(OneOrMany::Many(list)) => list.iter().any(|a| a == audience),
                None => false,
            };
            if !named {
                return Err(Rejection::WrongAudience);
            }
        }
        let exp = raw.exp.map(|n| seconds(&n, false)).transpose()?;
        let nbf = raw.nbf.map(|n| seconds(&n, true)).transpose()?;
        if exp.is_some_and(|exp| now_unix >= exp.saturating_add(LEEWAY_SECS)) {
            return Err(Rejection::Expired);
        }
        if nbf.is_some_and(|nbf| now_unix.saturating_add(LEEWAY_SECS) < nbf) {
            return Err(Rejection::NotYetValid);
        }
        Ok(Claims {
            subscribe: raw
                .subscribe
                .map(OneOrMany::into_patterns)
                .unwrap_or_default(),
            publish: raw
                .publish
                .map(OneOrMany::into_patterns)
                .unwrap_or_default(),
            exp,
            sub: raw.sub,
        })
    }

    /// Three parts, and a header naming our algorithm: decided before any signature work, so
    /// the answer says what is wrong.
    fn check_header(&self, token: &str) -> Result<(), Rejection> {
        let mut parts = token.split('.');
        let (Some(header), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Rejection::Malformed);
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| Rejection::Malformed)?;
        let jose: JoseHeader = serde_json::from_slice(&bytes).map_err(|_| Rejection::Malformed)?;
        if jose.alg.eq_ignore_ascii_case("none") {
            return Err(Rejection::Unsigned);
        }
        if jose.alg != algorithm_name(self.algorithm) {
            return Err(self.wrong_algorithm());
        }
        Ok(())
    }

    fn wrong_algorithm(&self) -> Rejection {
        Rejection::WrongAlgorithm {
            accepted: algorithm_name(self.algorithm),
        }
    }

    fn rejection(&self, kind: &jsonwebtoken::errors::ErrorKind) -> Rejection {
        use jsonwebtoken::errors::ErrorKind;
        match kind {
            ErrorKind::InvalidSignature => Rejection::BadSignature,
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => self.wrong_algorithm(),
            // The header parsed (check_header), so a JSON error is in the claims.
            ErrorKind::Json(_) | ErrorKind::InvalidClaimFormat(_) => Rejection::BadClaims,
            ErrorKind::ExpiredSignature => Rejection::Expired,
            ErrorKind::ImmatureSignature => Rejection::NotYetValid,
            ErrorKind::InvalidIssuer => Rejection::WrongIssuer,
            ErrorKind::InvalidAudience => Rejection::WrongAudience,
            _ => Rejection::Malformed,
        }
    }
}

/// The JOSE header, as far as we read it before verifying.
#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
}

/// The claims as sent.
#[derive(Deserialize)]
struct RawClaims {
    #[serde(default)]
    subscribe: Option<OneOrMany>,
    #[serde(default)]
    publish: Option<OneOrMany>,
    #[serde(default)]
    exp: Option<serde_json::Number>,
    #[serde(default)]
    nbf: Option<serde_json::Number>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    aud: Option<OneOrMany>,
    #[serde(default)]
    sub: Option<String>,
}

/// A claim that may be one string or a list of strings.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_patterns(self) -> Vec<Pattern> {
        match self {
            OneOrMany::One(p) => vec![Pattern::parse(&p)],
            OneOrMany::Many(list) => list.iter().map(|p| Pattern::parse(p)).collect(),
        }
    }
}

/// A NumericDate in whole seconds: negative → 0, fractions rounded down (`exp`) or up (`nbf`)
/// so that rounding never extends a token's life.
fn seconds(n: &serde_json::Number, round_up: bool) -> Result<u64, Rejection> {
    if let Some(secs) = n.as_u64() {
        return Ok(secs);
    }
    if n.as_i64().is_some() {
        return Ok(0);
    }
    let f = n.as_f64().ok_or(Rejection::BadClaims)?;
    if !f.is_finite() {
        return Err(Rejection::BadClaims);
    }
    let rounded = if round_up { f.ceil() } else { f.floor() };
    // `as` saturates: below 0 → 0, beyond u64::MAX → u64::MAX.
    Ok(rounded as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_dates() {
        let rows: &[(&str, bool, Result<u64, Rejection>)] = &[
            ("0", false, Ok(0)),
            ("1700000000", false, Ok(1_700_000_000)),
            ("-5", false, Ok(0)),
            ("1.5", false, Ok(1)),
            ("1.5", true, Ok(2)),
            ("-1.5", true, Ok(0)),
            ("1e300", false, Ok(u64::MAX)),
        ];
        for (text, up, want) in rows {
            let n: serde_json::Number = serde_json::from_str(text).expect("number");
            assert_eq!(&seconds(&n, *up), want, "{text} round_up={up}");
        }
    }
}

//! `Accept-Encoding` (RFC 9110 §12.5.3), only as far as a stream needs it: may the answer be
//! gzip-encoded?

/// Whether `value` accepts `gzip`: it names `gzip` (or `x-gzip`) with a non-zero weight, or
/// `*` with a non-zero weight and `gzip` not refused with `q=0`. Malformed elements are
/// skipped; a malformed weight makes its element not count.
pub fn accepts_gzip(value: &[u8]) -> bool {
    let mut named = None;
    let mut star = false;
    for element in value.split(|&b| b == b',') {
        let mut parts = element.split(|&b| b == b';');
        let coding = parts.next().unwrap_or_default().trim_ascii();
        let mut weight = Some(true);
        for param in parts {
            let param = param.trim_ascii();
            if let Some(q) = param
                .strip_prefix(b"q=")
                .or_else(|| param.strip_prefix(b"Q="))
            {
                weight = qvalue_nonzero(q);
            }
        }
        let Some(nonzero) = weight else {
            continue;
        };
        if coding.eq_ignore_ascii_case(b"gzip") || coding.eq_ignore_ascii_case(b"x-gzip") {
            named = Some(named.unwrap_or(false) || nonzero);
        } else if coding == b"*" {
            star |= nonzero;
        }
    }
    named.unwrap_or(star)
}

/// Some(non-zero) for a valid qvalue (`0`, `0.5`, `1`, `1.000`), None for a malformed one.
fn qvalue_nonzero(q: &[u8]) -> Option<bool> {
    let (int, frac) = match q.iter().position(|&b| b == b'.') {
        Some(dot) => (q.get(..dot)?, q.get(dot + 1..)?),
        None => (q, &[][..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    match int {
        b"0" => Some(frac.iter().any(|&d| d != b'0')),
        b"1" if frac.iter().all(|&d| d == b'0') => Some(true),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows() {
        let rows: &[(&str, bool)] = &[
            ("gzip", true),
            ("GZIP", true),
            ("x-gzip", true),
            ("gzip, deflate, br, zstd", true),
            ("deflate, gzip;q=1.0", true),
            ("gzip;q=0.001", true),
            ("gzip; q=0.5", true),
            ("*", true),
            ("*;q=0.1", true),
            ("br, *", true),
            ("identity", false),
            ("", false),
            ("deflate, br", false),
            ("gzip;q=0", false),
            ("gzip;q=0.000", false),
            ("*, gzip;q=0", false),
            ("*;q=0", false),
            ("gzip;q=2", false),
            ("gzip;q=1.5", false),
            ("gzip;q=0.0001", false),
            ("gzip;q=", false),
            ("gzip;q=abc", false),
            ("gzip;q=-1", false),
            ("gzipx", false),
            ("g zip", false),
            (",,,", false),
            ("gzip;;;", true),
            ("\u{0}gzip", false),
        ];
        for (value, want) in rows {
            assert_eq!(accepts_gzip(value.as_bytes()), *want, "{value:?}");
        }
        assert!(!accepts_gzip(b"\xff\xfegzip"));
    }
}

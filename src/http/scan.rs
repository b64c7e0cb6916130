//! Byte classes and word-at-a-time (SWAR) scanning for the request-head parser: find the first
//! byte of a target or header value that needs attention, sixteen bytes per step.

// --- byte classes -----------------------------------------------------------------------------

/// `tchar` (RFC 9110 §5.6.2): method and header-name bytes.
pub(super) const TOKEN: u8 = 1;
/// Request-target bytes we accept: visible ASCII except `#`.
pub(super) const URI: u8 = 2;
/// Field-value bytes: HTAB, SP, VCHAR, obs-text.
pub(super) const VALUE: u8 = 4;

pub(super) static CLASS: [u8; 256] = build_classes();

pub(super) const fn build_classes() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let mut c = 0;
        if b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            )
        {
            c |= TOKEN;
        }
        if b >= 0x21 && b <= 0x7e && b != b'#' {
            c |= URI;
        }
        if b == b'\t' || (b >= 0x20 && b != 0x7f) {
            c |= VALUE;
        }
        t[i] = c;
        i += 1;
    }
    t
}

#[inline(always)]
pub(super) fn is(b: u8, class: u8) -> bool {
    // The table has 256 entries, so `get` never misses; it keeps the lookup panic-free.
    CLASS.get(usize::from(b)).is_some_and(|c| c & class != 0)
}

/// Whether `b` is a `tchar` (method, header-name and trailer-name byte).
pub(crate) fn is_token_byte(b: u8) -> bool {
    is(b, TOKEN)
}

pub(super) const LO: u64 = 0x0101_0101_0101_0101;
pub(super) const HI: u64 = 0x8080_8080_8080_8080;

/// Nonzero iff some byte of `x` is below `n` (`n <= 0x80`); exact as a yes/no answer.
#[inline(always)]
pub(super) fn has_less(x: u64, n: u8) -> u64 {
    x.wrapping_sub(LO.wrapping_mul(u64::from(n))) & !x & HI
}

/// Nonzero iff some byte of `x` equals `b`.
#[inline(always)]
pub(super) fn has_byte(x: u64, b: u8) -> u64 {
    let y = x ^ LO.wrapping_mul(u64::from(b));
    y.wrapping_sub(LO) & !y & HI
}

/// Eight bytes as a word, first byte lowest. Callers pass exactly eight bytes (`chunks_exact`).
#[inline(always)]
pub(super) fn word(chunk: &[u8]) -> u64 {
    <[u8; 8]>::try_from(chunk).map_or(0, u64::from_le_bytes)
}

/// Index of the first byte at or after `from` that `flag` marks (or `buf.len()`), eight bytes at a
/// time. `flag(word)` must set the high bit of each marked byte and of no byte before the first
/// marked one (the SWAR tests above have this property), so its lowest set bit is exact.
#[inline(always)]
pub(super) fn find_flagged(
    buf: &[u8],
    from: usize,
    flag: impl Fn(u64) -> u64,
    marked: impl Fn(u8) -> bool,
) -> usize {
    let tail = buf.get(from..).unwrap_or(&[]);
    let mut i = from;
    // Sixteen bytes per step: two independent words, one branch.
    let mut pairs = tail.chunks_exact(16);
    for pair in &mut pairs {
        let (a, b) = (pair.get(..8).unwrap_or(&[]), pair.get(8..).unwrap_or(&[]));
        let (ma, mb) = (flag(word(a)), flag(word(b)));
        if ma | mb != 0 {
            return i + if ma != 0 {
                (ma.trailing_zeros() / 8) as usize
            } else {
                8 + (mb.trailing_zeros() / 8) as usize
            };
        }
        i += 16;
    }
    let mut chunks = pairs.remainder().chunks_exact(8);
    for chunk in &mut chunks {
        let m = flag(word(chunk));
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i + chunks
        .remainder()
        .iter()
        .position(|&b| marked(b))
        .unwrap_or(chunks.remainder().len())
}

/// The first byte at or after `from` that is not a request-target byte.
#[inline]
pub(super) fn uri_end(buf: &[u8], from: usize) -> usize {
    find_flagged(
        buf,
        from,
        |x| has_less(x, 0x21) | (x & HI) | has_byte(x, 0x7f) | has_byte(x, b'#'),
        |b| !is(b, URI),
    )
}

/// The first control byte (HTAB, CR and LF included) or DEL at or after `from`.
#[inline]
pub(super) fn value_special(buf: &[u8], from: usize) -> usize {
    find_flagged(
        buf,
        from,
        |x| has_less(x, 0x20) | has_byte(x, 0x7f),
        |b| b < 0x20 || b == 0x7f,
    )
}

/// Index of the first byte of `s` at or after `from` that is not a token byte (`s.len()` if none).
#[inline]
pub(super) fn token_end(s: &[u8], from: usize) -> usize {
    let tail = s.get(from..).unwrap_or(&[]);
    from + tail
        .iter()
        .position(|&b| !is(b, TOKEN))
        .unwrap_or(tail.len())
}

#[inline]
pub(super) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

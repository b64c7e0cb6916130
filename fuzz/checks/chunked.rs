//! `ChunkedDecoder` on any bytes, fed whole, in the splits the input asks for, and one byte at
//! a time: never panics; every feeding gives the same output, `done`, total `consumed` and
//! error; output ≤ the limit; after `done` or an error the decoder stays put. And a plain
//! reference decoder of the documented grammar and limits agrees on accept / read on / refuse,
//! on the output and on where the body ends.
//!
//! Input layout: `[limit, n, d1..dn, body…]`: `limit < 0x80` is the default limit (1 MiB),
//! else `(limit & 0x7f) * 8` bytes; `d1..dn` (`n % 16` of them) are the sizes of the first
//! pieces of the split feeding.

use pushcore::http::body::{
    MAX_CHUNK_EXT_BYTES, MAX_CHUNK_EXT_TOTAL_BYTES, MAX_CHUNK_SIZE_DIGITS, MAX_TRAILER_BYTES,
};
use pushcore::http::{ChunkStep, ChunkedDecoder, HttpError, DEFAULT_MAX_BODY_BYTES};

use super::esc;

/// What feeding a body gave: the output, and the outcome with `consumed` summed over calls.
#[derive(Debug, PartialEq, Eq)]
struct Fed {
    out: Vec<u8>,
    result: Result<ChunkStep, HttpError>,
}

fn feed(limit: usize, pieces: &[&[u8]]) -> Fed {
    let mut dec = ChunkedDecoder::new(limit);
    let mut out = Vec::new();
    let mut consumed = 0;
    let mut result = Ok(ChunkStep {
        consumed: 0,
        done: false,
    });
    let mut finished = false;
    for piece in pieces {
        if finished {
            // An empty read after the end or an error must not change the answer either.
            let empty = dec.decode(b"", &mut out);
            match (&result, &empty) {
                (Ok(_), Ok(s)) => assert_eq!(
                    *s,
                    ChunkStep {
                        consumed: 0,
                        done: true
                    }
                ),
                (Err(a), Err(b)) => assert_eq!(a, b, "an empty call changed the error"),
                _ => panic!("after {result:?}, decode(b\"\") gave {empty:?}"),
            }
        }
        let step = dec.decode(piece, &mut out);
        if finished {
            // After the end or an error, the decoder takes nothing and says the same.
            match (&result, &step) {
                (Ok(_), Ok(s)) => assert_eq!(
                    *s,
                    ChunkStep {
                        consumed: 0,
                        done: true
                    }
                ),
                (Err(a), Err(b)) => assert_eq!(a, b, "a later call changed the error"),
                _ => panic!("the decoder changed its mind: {result:?} then {step:?}"),
            }
            continue;
        }
        match step {
            Ok(s) => {
                assert!(s.consumed <= piece.len());
                if !s.done {
                    assert_eq!(s.consumed, piece.len(), "not done, yet input left over");
                }
                assert_eq!(s.done, dec.is_done());
                consumed += s.consumed;
                result = Ok(ChunkStep {
                    consumed,
                    done: s.done,
                });
                finished = s.done;
            }
            Err(e) => {
                result = Err(e);
                finished = true;
            }
        }
        assert!(
            out.len() <= limit,
            "output {} over the limit {limit}",
            out.len()
        );
    }
    Fed { out, result }
}

pub fn check(data: &[u8]) {
    let (limit, cuts, body) = layout(data);
    // Every feeding ends with a valid last chunk: decoding goes on past an unfinished body, and
    // after the end or an error the decoder must stay put.
    const TAIL: &[u8] = b"0\r\n\r\n";
    let whole = feed(limit, &[body, TAIL]);
    let mut pieces = Vec::new();
    let mut rest = body;
    for &cut in &cuts {
        let (a, b) = rest.split_at(cut.min(rest.len()));
        pieces.push(a);
        rest = b;
    }
    pieces.extend([rest, TAIL]);
    let split = feed(limit, &pieces);
    assert_eq!(
        split,
        whole,
        "split {cuts:?} differs from whole: {}",
        esc(body)
    );
    let mut bytes: Vec<&[u8]> = body.chunks(1).collect();
    bytes.push(TAIL);
    let one_by_one = feed(limit, &bytes);
    assert_eq!(
        one_by_one,
        whole,
        "byte-by-byte differs from whole: {}",
        esc(body)
    );

    let only = feed(limit, &[body]);
    if matches!(only.result, Ok(ChunkStep { done: true, .. }) | Err(_)) {
        assert_eq!(
            only,
            whole,
            "input after the end changed the outcome: {}",
            esc(body)
        );
    }
    let reference = reference(body, limit);
    match (&only.result, &reference) {
        (Ok(step), Reference::Done { out, consumed }) if step.done => {
            assert_eq!(
                &only.out,
                out,
                "output differs from the reference: {}",
                esc(body)
            );
            assert_eq!(
                step.consumed,
                *consumed,
                "end of body differs from the reference: {}",
                esc(body)
            );
        }
        (Ok(step), Reference::More) if !step.done => {}
        (Err(_), Reference::Invalid) => {}
        _ => panic!(
            "decoder {:?} vs reference {reference:?} (limit {limit}): {}",
            only.result,
            esc(body)
        ),
    }
}

fn layout(data: &[u8]) -> (usize, Vec<usize>, &[u8]) {
    let Some((&limit, rest)) = data.split_first() else {
        return (DEFAULT_MAX_BODY_BYTES, Vec::new(), data);
    };
    let limit = if limit < 0x80 {
        DEFAULT_MAX_BODY_BYTES
    } else {
        usize::from(limit & 0x7f) * 8
    };
    let Some((&n, rest)) = rest.split_first() else {
        return (limit, Vec::new(), rest);
    };
    let n = usize::from(n % 16).min(rest.len());
    let (cuts, body) = rest.split_at(n);
    (limit, cuts.iter().map(|&c| usize::from(c)).collect(), body)
}

/// The reference decoder's verdict on a whole input.
#[derive(Debug)]
pub enum Reference {
    Done { out: Vec<u8>, consumed: usize },
    More,
    Invalid,
}

enum Stop {
    More,
    Invalid,
}

/// A direct reading of the grammar in src/http/body.rs, limits included, checked as soon as
/// the bytes seen break them (as the decoder does).
pub fn reference(input: &[u8], limit: usize) -> Reference {
    match reference_inner(input, limit) {
        Ok((out, consumed)) => Reference::Done { out, consumed },
        Err(Stop::More) => Reference::More,
        Err(Stop::Invalid) => Reference::Invalid,
    }
}

struct Cursor<'a> {
    input: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Result<u8, Stop> {
        self.input.get(self.pos).copied().ok_or(Stop::More)
    }
    fn next(&mut self) -> Result<u8, Stop> {
        let b = self.peek()?;
        self.pos += 1;
        Ok(b)
    }
    fn crlf(&mut self) -> Result<(), Stop> {
        if self.next()? != b'\r' || self.next()? != b'\n' {
            return Err(Stop::Invalid);
        }
        Ok(())
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_text(b: u8) -> bool {
    b == b'\t' || (0x20..=0x7e).contains(&b) || b >= 0x80
}

fn reference_inner(input: &[u8], limit: usize) -> Result<(Vec<u8>, usize), Stop> {
    let mut c = Cursor { input, pos: 0 };
    let mut out = Vec::new();
    let mut declared: u128 = 0;
    let mut ext_total = 0usize;
    loop {
        // chunk-size: 1..=16 hex digits; the body limit holds on every digit.
        let mut size: u128 = 0;
        let mut digits = 0u32;
        while (c.peek()? as char).is_ascii_hexdigit() {
            let d = (c.next()? as char).to_digit(16).unwrap_or(0);
            digits += 1;
            if digits > MAX_CHUNK_SIZE_DIGITS {
                return Err(Stop::Invalid);
            }
            size = size * 16 + u128::from(d);
            if declared + size > limit as u128 {
                return Err(Stop::Invalid);
            }
        }
        if digits == 0 {
            return Err(Stop::Invalid);
        }
        // Extensions: BWS then ';' and text, or ';' and text, up to CR; counted from the first
        // BWS or ';'.
        let mut ext = 0usize;
        let mut count = |ext: &mut usize| {
            *ext += 1;
            ext_total += 1;
            if *ext > MAX_CHUNK_EXT_BYTES || ext_total > MAX_CHUNK_EXT_TOTAL_BYTES {
                Err(Stop::Invalid)
            } else {
                Ok(())
            }
        };
        if matches!(c.peek()?, b' ' | b'\t') {
            while matches!(c.peek()?, b' ' | b'\t') {
                c.next()?;
                count(&mut ext)?;
            }
            if c.peek()? != b';' {
                return Err(Stop::Invalid);
            }
        }
        if c.peek()? == b';' {
            c.next()?;
            count(&mut ext)?;
            while c.peek()? != b'\r' {
                if !is_text(c.next()?) {
                    return Err(Stop::Invalid);
                }
                count(&mut ext)?;
            }
        }
        c.crlf()?;
        declared += size;
        if size == 0 {
            break;
        }
        for _ in 0..size {
            out.push(c.next()?);
        }
        c.crlf()?;
    }
    // Trailer fields: token ":" text CRLF, at most MAX_TRAILER_BYTES of them, CRLFs included.
    let mut trailer = 0usize;
    let mut take = |c: &mut Cursor<'_>, ok: &dyn Fn(u8) -> bool| -> Result<u8, Stop> {
        let b = c.next()?;
        if !ok(b) {
            return Err(Stop::Invalid);
        }
        trailer += 1;
        if trailer > MAX_TRAILER_BYTES {
            return Err(Stop::Invalid);
        }
        Ok(b)
    };
    while c.peek()? != b'\r' {
        take(&mut c, &is_tchar)?;
        while take(&mut c, &|b| is_tchar(b) || b == b':')? != b':' {}
        while take(&mut c, &|b| is_text(b) || b == b'\r')? != b'\r' {}
        take(&mut c, &|b| b == b'\n')?;
    }
    c.crlf()?;
    Ok((out, c.pos))
}

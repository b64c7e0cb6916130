//! Table-driven tests of request bodies: the chunked decoder and the Content-Length limit.

use pushcore::http::body::{
    check_length, ChunkStep, ChunkedDecoder, DEFAULT_MAX_BODY_BYTES, MAX_CHUNK_EXT_BYTES,
    MAX_CHUNK_EXT_TOTAL_BYTES, MAX_TRAILER_BYTES,
};
use pushcore::http::{ChunkError, HttpError};

use ChunkError::*;

const LIMIT: usize = 1024;

#[rustfmt::skip]
const GOOD: &[(&str, &[u8], &[u8])] = &[
    // name                        chunked stream                                                body
    ("one chunk",                  b"5\r\nhello\r\n0\r\n\r\n",                                    b"hello"),
    ("two chunks",                 b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",                      b"hello world"),
    ("empty body",                 b"0\r\n\r\n",                                                  b""),
    ("upper-case hex",             b"A\r\n0123456789\r\n0\r\n\r\n",                               b"0123456789"),
    ("lower-case hex",             b"a\r\n0123456789\r\n0\r\n\r\n",                               b"0123456789"),
    ("leading zeros",              b"0005\r\nhello\r\n000\r\n\r\n",                               b"hello"),
    ("sixteen digits",             b"0000000000000005\r\nhello\r\n0\r\n\r\n",                     b"hello"),
    ("extension",                  b"5;name=value\r\nhello\r\n0\r\n\r\n",                         b"hello"),
    ("extension without value",    b"5;x\r\nhello\r\n0\r\n\r\n",                                  b"hello"),
    ("quoted extension",           b"5;a=\"b c\";d\r\nhello\r\n0\r\n\r\n",                        b"hello"),
    ("BWS before extension",       b"5 \t;a\r\nhello\r\n0\r\n\r\n",                               b"hello"),
    ("extension on last chunk",    b"5\r\nhello\r\n0;end\r\n\r\n",                                b"hello"),
    ("one trailer",                b"5\r\nhello\r\n0\r\nX-Checksum: abc\r\n\r\n",                 b"hello"),
    ("two trailers",               b"5\r\nhello\r\n0\r\nA: 1\r\nB:2\r\n\r\n",                     b"hello"),
    ("trailer with empty value",   b"0\r\nX:\r\n\r\n",                                            b""),
    ("CRLFs inside data",          b"4\r\n\r\n\r\n\r\n0\r\n\r\n",                                 b"\r\n\r\n"),
    ("binary data",                b"3\r\n\x00\xff\n\r\n0\r\n\r\n",                               b"\x00\xff\n"),
    ("JSON publish body",          b"1b\r\n{\"channel\":\"news\",\"data\":1}\r\n0\r\n\r\n",        b"{\"channel\":\"news\",\"data\":1}"),
    ("many one-byte chunks",       b"1\r\na\r\n1\r\nb\r\n1\r\nc\r\n0\r\n\r\n",                   b"abc"),
];

#[rustfmt::skip]
const BAD: &[(&str, &[u8], HttpError)] = &[
    // chunk size
    ("empty size line",            b"\r\nhello\r\n0\r\n\r\n",                    HttpError::BadChunk(BadSize)),
    ("negative size",              b"-5\r\nhello\r\n0\r\n\r\n",                  HttpError::BadChunk(BadSize)),
    ("plus sign",                  b"+5\r\nhello\r\n0\r\n\r\n",                  HttpError::BadChunk(BadSize)),
    ("0x prefix",                  b"0x5\r\nhello\r\n0\r\n\r\n",                 HttpError::BadChunk(BadSize)),
    ("leading space",              b" 5\r\nhello\r\n0\r\n\r\n",                  HttpError::BadChunk(BadSize)),
    ("trailing space, no ext",     b"5 \r\nhello\r\n0\r\n\r\n",                  HttpError::BadChunk(BadSize)),
    ("trailing tab, no ext",       b"5\t\r\nhello\r\n0\r\n\r\n",                 HttpError::BadChunk(BadSize)),
    ("non-hex digit",              b"5g\r\nhello\r\n0\r\n\r\n",                  HttpError::BadChunk(BadSize)),
    ("extension without size",     b";a\r\nhello\r\n0\r\n\r\n",                  HttpError::BadChunk(BadSize)),
    ("seventeen digits",           b"00000000000000005\r\nhello\r\n0\r\n\r\n",   HttpError::BadChunk(SizeTooLong)),
    ("size over the limit",        b"401\r\n",                                   HttpError::BodyTooLarge { max_bytes: LIMIT }),
    ("sum over the limit",         b"1\r\na\r\n400\r\n",                          HttpError::BodyTooLarge { max_bytes: LIMIT }),
    ("huge size",                  b"FFFFFFFFFFFFFFFF\r\n",                      HttpError::BodyTooLarge { max_bytes: LIMIT }),
    // line endings
    ("bare LF after size",         b"5\nhello\r\n0\r\n\r\n",                     HttpError::BadChunk(MissingCrlf)),
    ("CR without LF after size",   b"5\rhello\r\n0\r\n\r\n",                     HttpError::BadChunk(MissingCrlf)),
    ("data longer than size",      b"5\r\nhelloX\r\n0\r\n\r\n",                  HttpError::BadChunk(MissingCrlf)),
    ("no CRLF after data",         b"5\r\nhello0\r\n\r\n",                       HttpError::BadChunk(MissingCrlf)),
    ("bare LF after data",         b"5\r\nhello\n0\r\n\r\n",                     HttpError::BadChunk(MissingCrlf)),
    ("CR CR after data",           b"5\r\nhello\r\r\n0\r\n\r\n",                 HttpError::BadChunk(MissingCrlf)),
    ("bare LF ends extension",     b"5;a\nhello\r\n0\r\n\r\n",                   HttpError::BadChunk(MissingCrlf)),
    ("bare LF ends body",          b"5\r\nhello\r\n0\r\n\n",                     HttpError::BadChunk(MissingCrlf)),
    ("CR then junk ends body",     b"5\r\nhello\r\n0\r\n\rX",                    HttpError::BadChunk(MissingCrlf)),
    ("bare LF ends trailer",       b"0\r\nX: 1\n\r\n",                           HttpError::BadChunk(MissingCrlf)),
    // extensions
    ("NUL in extension",           b"5;a\x00\r\nhello\r\n0\r\n\r\n",             HttpError::BadChunk(BadExtension)),
    ("bare CR in extension",       b"5;a\rb\r\nhello\r\n0\r\n\r\n",              HttpError::BadChunk(MissingCrlf)),
    ("DEL in extension",           b"5;a\x7f\r\nhello\r\n0\r\n\r\n",             HttpError::BadChunk(BadExtension)),
    // trailers
    ("trailer obs-fold",           b"0\r\nX: 1\r\n 2\r\n\r\n",                   HttpError::BadChunk(BadTrailer)),
    ("trailer without colon",      b"0\r\nX\r\n\r\n",                            HttpError::BadChunk(BadTrailer)),
    ("trailer SP before colon",    b"0\r\nX : 1\r\n\r\n",                        HttpError::BadChunk(BadTrailer)),
    ("trailer empty name",         b"0\r\n: 1\r\n\r\n",                          HttpError::BadChunk(BadTrailer)),
    ("trailer NUL in value",       b"0\r\nX: a\x00\r\n\r\n",                     HttpError::BadChunk(BadTrailer)),
    ("trailer UTF-8 in name",      b"0\r\nX\xc3\xa9: 1\r\n\r\n",                 HttpError::BadChunk(BadTrailer)),
];

fn decode_all(input: &[u8], limit: usize) -> Result<(ChunkStep, Vec<u8>), HttpError> {
    let mut decoder = ChunkedDecoder::new(limit);
    let mut out = Vec::new();
    let step = decoder.decode(input, &mut out)?;
    Ok((step, out))
}

#[test]
fn good_rows_decode() {
    for (name, input, body) in GOOD {
        let (step, out) = decode_all(input, LIMIT).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            step,
            ChunkStep {
                consumed: input.len(),
                done: true
            },
            "{name}"
        );
        assert_eq!(out, *body, "{name}");
    }
}

#[test]
fn good_rows_decode_at_every_split() {
    for (name, input, body) in GOOD {
        for cut in 0..=input.len() {
            let mut decoder = ChunkedDecoder::new(LIMIT);
            let mut out = Vec::new();
            let first = decoder.decode(&input[..cut], &mut out).unwrap();
            assert_eq!(
                first,
                ChunkStep {
                    consumed: cut,
                    done: cut == input.len()
                },
                "{name}: cut {cut}"
            );
            let second = decoder.decode(&input[cut..], &mut out).unwrap();
            assert_eq!(
                second,
                ChunkStep {
                    consumed: input.len() - cut,
                    done: true
                },
                "{name}: cut {cut}"
            );
            assert_eq!(out, *body, "{name}: cut {cut}");
            assert!(decoder.is_done());
        }
    }
}

#[test]
fn good_rows_decode_byte_by_byte() {
    for (name, input, body) in GOOD {
        let mut decoder = ChunkedDecoder::new(LIMIT);
        let mut out = Vec::new();
        for (i, b) in input.iter().enumerate() {
            let step = decoder.decode(std::slice::from_ref(b), &mut out).unwrap();
            assert_eq!(
                step,
                ChunkStep {
                    consumed: 1,
                    done: i + 1 == input.len()
                },
                "{name}: byte {i}"
            );
        }
        assert_eq!(out, *body, "{name}");
    }
}

#[test]
fn pipelined_bytes_after_the_body_are_not_consumed() {
    for (name, input, body) in GOOD {
        let mut buf = input.to_vec();
        buf.extend_from_slice(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        let (step, out) = decode_all(&buf, LIMIT).unwrap();
        assert_eq!(
            step,
            ChunkStep {
                consumed: input.len(),
                done: true
            },
            "{name}"
        );
        assert_eq!(out, *body, "{name}");
    }
    // Once done, the decoder takes nothing more.
    let mut decoder = ChunkedDecoder::new(LIMIT);
    let mut out = Vec::new();
    decoder.decode(b"0\r\n\r\n", &mut out).unwrap();
    assert_eq!(
        decoder.decode(b"5\r\nhello", &mut out),
        Ok(ChunkStep {
            consumed: 0,
            done: true
        })
    );
}

#[test]
fn bad_rows_fail_with_their_error() {
    for (name, input, expected) in BAD {
        assert_eq!(
            decode_all(input, LIMIT).map(|_| ()),
            Err(expected.clone()),
            "{name}"
        );
    }
}

#[test]
fn bad_rows_fail_the_same_way_at_every_split() {
    for (name, input, expected) in BAD {
        for cut in 0..=input.len() {
            let mut decoder = ChunkedDecoder::new(LIMIT);
            let mut out = Vec::new();
            let result = decoder
                .decode(&input[..cut], &mut out)
                .and_then(|_| decoder.decode(&input[cut..], &mut out));
            assert_eq!(
                result.map(|_| ()),
                Err(expected.clone()),
                "{name}: cut {cut}"
            );
        }
    }
}

#[test]
fn errors_are_sticky() {
    let mut decoder = ChunkedDecoder::new(LIMIT);
    let mut out = Vec::new();
    let err = decoder.decode(b"x", &mut out).unwrap_err();
    assert_eq!(decoder.decode(b"0\r\n\r\n", &mut out), Err(err.clone()));
    assert_eq!(decoder.decode(b"", &mut out), Err(err));
}

#[test]
fn rows_outnumber() {
    assert!(BAD.len() >= GOOD.len());
}

// --- limits -----------------------------------------------------------------------------------

#[test]
fn body_limit_is_inclusive_and_checked_before_data() {
    let exact = b"200\r\n";
    let mut decoder = ChunkedDecoder::new(0x200);
    let mut out = Vec::new();
    assert!(decoder.decode(exact, &mut out).is_ok());
    let mut body = vec![b'x'; 0x200];
    body.extend_from_slice(b"\r\n0\r\n\r\n");
    assert_eq!(
        decoder.decode(&body, &mut out),
        Ok(ChunkStep {
            consumed: body.len(),
            done: true
        })
    );
    assert_eq!(out.len(), 0x200);

    // One byte over, split over two chunks: refused at the second size line, data never copied.
    let mut decoder = ChunkedDecoder::new(10);
    let mut out = Vec::new();
    assert_eq!(
        decoder.decode(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", &mut out),
        Err(HttpError::BodyTooLarge { max_bytes: 10 })
    );
    assert_eq!(out, b"hello");

    // A declared 1 GiB chunk is refused from its size digits alone.
    let mut decoder = ChunkedDecoder::new(DEFAULT_MAX_BODY_BYTES);
    assert_eq!(
        decoder.decode(b"40000000", &mut Vec::new()),
        Err(HttpError::BodyTooLarge {
            max_bytes: DEFAULT_MAX_BODY_BYTES
        })
    );
    assert_eq!(HttpError::BodyTooLarge { max_bytes: 1 }.status(), 413);
}

#[test]
fn sizes_that_overflow_are_refused_even_without_a_limit() {
    let mut decoder = ChunkedDecoder::new(usize::MAX);
    assert_eq!(
        decoder.decode(b"FFFFFFFFFFFFFFFF0\r\n", &mut Vec::new()),
        Err(HttpError::BadChunk(SizeTooLong))
    );
    let mut decoder = ChunkedDecoder::new(usize::MAX);
    assert_eq!(
        decoder.decode(b"1\r\na\r\nFFFFFFFFFFFFFFFF\r\n", &mut Vec::new()),
        Err(HttpError::BodyTooLarge {
            max_bytes: usize::MAX
        })
    );
}

#[test]
fn extension_limits() {
    let line = |ext_len: usize| {
        let mut s = b"1;".to_vec();
        s.resize(1 + ext_len, b'e');
        s.extend_from_slice(b"\r\na\r\n");
        s
    };
    assert!(decode_all(&line(MAX_CHUNK_EXT_BYTES), LIMIT).is_ok());
    assert_eq!(
        decode_all(&line(MAX_CHUNK_EXT_BYTES + 1), LIMIT).map(|_| ()),
        Err(HttpError::BadChunk(ExtensionTooLong))
    );
    // Many chunks each under the per-chunk limit still hit the per-body limit.
    let per_chunk = line(MAX_CHUNK_EXT_BYTES);
    let mut stream = Vec::new();
    for _ in 0..MAX_CHUNK_EXT_TOTAL_BYTES / MAX_CHUNK_EXT_BYTES {
        stream.extend_from_slice(&per_chunk);
    }
    assert!(decode_all(&stream, LIMIT).is_ok());
    stream.extend_from_slice(b"1;x\r\n");
    assert_eq!(
        decode_all(&stream, LIMIT).map(|_| ()),
        Err(HttpError::BadChunk(ExtensionTooLong))
    );
}

#[test]
fn trailer_limit() {
    let with_trailer = |len: usize| {
        // "X: " + value + CRLF = len trailer bytes.
        let mut s = b"0\r\nX: ".to_vec();
        s.resize(3 + len - 2, b'v');
        s.extend_from_slice(b"\r\n\r\n");
        s
    };
    let (step, _) = decode_all(&with_trailer(MAX_TRAILER_BYTES), LIMIT).unwrap();
    assert!(step.done);
    assert_eq!(
        decode_all(&with_trailer(MAX_TRAILER_BYTES + 1), LIMIT).map(|_| ()),
        Err(HttpError::TrailersTooLarge {
            max_bytes: MAX_TRAILER_BYTES
        })
    );
    assert_eq!(HttpError::TrailersTooLarge { max_bytes: 1 }.status(), 431);
}

#[test]
fn bad_chunks_are_400() {
    for (_, _, e) in BAD
        .iter()
        .filter(|(_, _, e)| matches!(e, HttpError::BadChunk(_)))
    {
        assert_eq!(e.status(), 400);
        assert!(e.to_string().starts_with("malformed chunked body: "));
    }
}

// --- Content-Length ---------------------------------------------------------------------------

#[rustfmt::skip]
const LENGTHS: &[(u64, usize, Result<usize, HttpError>)] = &[
    // length                    limit   result
    (0,                          0,      Ok(0)),
    (0,                          1024,   Ok(0)),
    (1024,                       1024,   Ok(1024)),
    (1025,                       1024,   Err(HttpError::BodyTooLarge { max_bytes: 1024 })),
    (1 << 20,                    DEFAULT_MAX_BODY_BYTES, Ok(1 << 20)),
    ((1 << 20) + 1,              DEFAULT_MAX_BODY_BYTES, Err(HttpError::BodyTooLarge { max_bytes: DEFAULT_MAX_BODY_BYTES })),
    (u64::MAX,                   DEFAULT_MAX_BODY_BYTES, Err(HttpError::BodyTooLarge { max_bytes: DEFAULT_MAX_BODY_BYTES })),
    (u64::MAX,                   usize::MAX, Ok(usize::MAX)),
];

#[test]
fn check_length_rows() {
    for (len, limit, expected) in LENGTHS {
        assert_eq!(check_length(*len, *limit), *expected, "{len} vs {limit}");
    }
}

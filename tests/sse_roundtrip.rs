//! Frames decoded by independent event-stream parsers give back the events that were encoded.
//!
//! Two oracles, and every frame goes through both:
//! - the `eventsource-stream` crate (0.2.3), a published client-side parser;
//! - `fuzz/checks/sse_parser.rs`, a direct transcription of the WHATWG "event stream interpretation"
//!   algorithm, because the crate deviates from it in three places (none reachable from our
//!   frames, which carry no BOM, end lines with LF and write `retry:` as plain digits):
//!   a stream starting with a BOM panics (it strips one byte of the three-byte BOM); an event
//!   whose blank line is a lone CR is held until another byte arrives (lost at end of stream);
//!   `retry: +5` is accepted. `spec_parser_matches_the_spec_examples` pins those cases.
//!
//! Line breaks in data arrive as LF whatever they were sent as (CR, LF or CRLF): that is the
//! protocol, so the expected data is the original with line breaks normalized.

use std::convert::Infallible;
use std::time::Duration;

use futures::StreamExt;
use pushcore::sse::{
    connected, encode_into, encode_published, reset, shutdown, token_expired, Event, EventId, Frame,
};

// The WHATWG "event stream interpretation", written out plainly; the fuzz targets decode with
// the same file, so the spec examples below vet both.
#[path = "../fuzz/checks/sse_parser.rs"]
mod sse_parser;

use sse_parser::{normalize_line_breaks, Received};

/// The spec parser's events for a stream cut into `chunks` (it reads the whole stream; cutting
/// matters to the crate oracle, which is fed chunk by chunk).
fn decode_spec(chunks: &[&[u8]]) -> Vec<Received> {
    sse_parser::decode(&chunks.concat()).0
}

/// The crate's events, with `retry` as the crate reports it: only on the event that set it.
fn decode_crate(chunks: &[&[u8]]) -> Vec<eventsource_stream::Event> {
    use eventsource_stream::Eventsource;
    let stream = futures::stream::iter(chunks.iter().map(|c| Ok::<_, Infallible>(*c)));
    futures::executor::block_on(stream.eventsource().collect::<Vec<_>>())
        .into_iter()
        .map(|event| event.unwrap())
        .collect()
}

/// What a client must receive for `events`, in order, on a fresh connection.
fn expected(events: &[Event<'_>]) -> Vec<Received> {
    let mut last_event_id = String::new();
    let mut retry_ms = None;
    events
        .iter()
        .map(|event| {
            if let Some(id) = event.id {
                last_event_id = id.to_owned();
            }
            retry_ms = event.retry_ms.or(retry_ms);
            Received {
                kind: event.event.unwrap_or("message").to_owned(),
                data: normalize_line_breaks(event.data),
                last_event_id: last_event_id.clone(),
                retry_ms,
            }
        })
        .collect()
}

/// Decodes `wire`, cut into `chunks`, with both oracles and checks them against `events`.
fn assert_decodes(chunks: &[&[u8]], events: &[Event<'_>]) {
    let want = expected(events);
    assert_eq!(decode_spec(chunks), want, "spec parser, chunks {chunks:?}");

    let got = decode_crate(chunks);
    assert_eq!(
        got.len(),
        want.len(),
        "eventsource-stream, chunks {chunks:?}"
    );
    for ((got, want), event) in got.iter().zip(&want).zip(events) {
        assert_eq!(got.event, want.kind, "chunks {chunks:?}");
        assert_eq!(got.data, want.data, "chunks {chunks:?}");
        assert_eq!(got.id, want.last_event_id, "chunks {chunks:?}");
        assert_eq!(got.retry, event.retry_ms.map(Duration::from_millis));
    }
}

/// `wire` whole, cut in two at every byte, and one byte at a time.
fn assert_decodes_however_cut(wire: &[u8], events: &[Event<'_>]) {
    assert_decodes(&[wire], events);
    for cut in 0..=wire.len() {
        let (head, tail) = wire.split_at(cut);
        assert_decodes(&[head, tail], events);
    }
    let bytes: Vec<&[u8]> = wire.chunks(1).collect();
    assert_decodes(&bytes, events);
}

fn data(data: &str) -> Event<'_> {
    Event {
        data,
        ..Event::default()
    }
}

const DATA_CASES: &[&str] = &[
    "",
    "x",
    "hello world",
    "{\"a\":[1,2,3],\"b\":\"c\"}",
    "two\nlines",
    "cr\ronly",
    "crlf\r\nline",
    "mixed\r\nbreaks\rof\nevery\r\rkind\n\n",
    "trailing\n",
    "trailing cr\r",
    "trailing crlf\r\n",
    "\n",
    "\r",
    "\r\n",
    "\n\n\n",
    "\nleading break",
    "\r\n\r\n",
    "\n\r",
    " leading space",
    "  two leading spaces",
    " \n \r\n  ",
    ":colon first",
    "a: b: c",
    "data: not a field",
    "id: 9-9\nevent: injected",
    "\u{feff}bom inside data",
    "unicode é ü 日本語 😀\n🎉 and \u{2028} \u{85}",
    "nul \0 inside",
    "tab\there",
];

#[test]
fn data_round_trips() {
    for text in DATA_CASES {
        let event = data(text);
        let frame = Frame::encode(&event).unwrap();
        assert_decodes_however_cut(frame.as_bytes(), &[event]);
    }
}

#[test]
fn fields_round_trip() {
    let events = [
        Event {
            id: Some("1732406400000-0"),
            event: Some("update"),
            data: "{\"price\":42}",
            retry_ms: None,
        },
        Event {
            id: Some(""),
            ..data("an empty id clears the last event id")
        },
        Event {
            id: Some(" spaced id "),
            event: Some(" spaced type "),
            ..data("d")
        },
        Event {
            id: Some("ünïcode-😀"),
            event: Some("type:with:colons"),
            ..data("d")
        },
        Event {
            retry_ms: Some(0),
            ..data("retry zero")
        },
        Event {
            retry_ms: Some(u64::MAX),
            event: Some("message"),
            id: Some("18446744073709551615-18446744073709551615"),
            data: "all\r\nfields",
        },
    ];
    for event in events {
        let frame = Frame::encode(&event).unwrap();
        assert_decodes_however_cut(frame.as_bytes(), &[event]);
    }
}

#[test]
fn published_events_round_trip() {
    let id = EventId::new(1_732_406_400_000, 7);
    let id_text = id.to_string();
    for (kind, json) in [
        ("update", "{\"price\":42,\"note\":\"a\\nb\"}"),
        ("message", "null"),
        ("x", "{\n  \"pretty\": true\r\n}\n"),
    ] {
        let frame = encode_published(id, kind, json).unwrap();
        let event = Event {
            id: Some(&id_text),
            event: Some(kind),
            data: json,
            retry_ms: None,
        };
        assert_decodes_however_cut(frame.as_bytes(), &[event]);
    }
}

#[test]
fn a_connection_stream_round_trips() {
    // What one subscriber receives: hello, events, keep-alives, a reset, shutdown.
    let mut wire = Vec::new();
    wire.extend_from_slice(Frame::retry(3000).as_bytes());
    wire.extend_from_slice(connected("c-1", 1_732_406_400_000).as_bytes());
    wire.extend_from_slice(reset("too-old", "1-0\r\n").as_bytes());
    wire.extend_from_slice(
        encode_published(EventId::new(5, 0), "update", "{\"n\":1}")
            .unwrap()
            .as_bytes(),
    );
    wire.extend_from_slice(Frame::heartbeat().as_bytes());
    wire.extend_from_slice(Frame::comment("any: comment").unwrap().as_bytes());
    wire.extend_from_slice(
        encode_published(EventId::new(5, 1), "update", "{\"n\":2}")
            .unwrap()
            .as_bytes(),
    );
    wire.extend_from_slice(token_expired().as_bytes());
    wire.extend_from_slice(shutdown(1234).as_bytes());

    let want = vec![
        (
            "connected",
            "{\"clientId\":\"c-1\",\"timestamp\":1732406400000}",
            "",
            Some(3000),
        ),
        (
            "reset",
            "{\"reason\":\"too-old\",\"requested\":\"1-0\\r\\n\"}",
            "",
            Some(3000),
        ),
        ("update", "{\"n\":1}", "5-0", Some(3000)),
        ("update", "{\"n\":2}", "5-1", Some(3000)),
        (
            "token-expired",
            "{\"message\":\"Token expired\"}",
            "5-1",
            Some(3000),
        ),
        (
            "shutdown",
            "{\"message\":\"Server shutting down\"}",
            "5-1",
            Some(1234),
        ),
    ];
    let want: Vec<Received> = want
        .into_iter()
        .map(|(kind, data, id, retry_ms)| Received {
            kind: kind.to_owned(),
            data: data.to_owned(),
            last_event_id: id.to_owned(),
            retry_ms,
        })
        .collect();

    let cuts: Vec<Vec<&[u8]>> = vec![
        vec![&wire],
        wire.chunks(1).collect(),
        wire.chunks(7).collect(),
    ];
    for chunks in cuts {
        assert_eq!(decode_spec(&chunks), want);
        let got = decode_crate(&chunks);
        let got: Vec<(&str, &str, &str)> = got
            .iter()
            .map(|e| (e.event.as_str(), e.data.as_str(), e.id.as_str()))
            .collect();
        let want: Vec<(&str, &str, &str)> = want
            .iter()
            .map(|e| (e.kind.as_str(), e.data.as_str(), e.last_event_id.as_str()))
            .collect();
        assert_eq!(got, want);
    }
}

#[test]
fn spec_parser_matches_the_spec_examples() {
    // The oracle itself, on the WHATWG examples and the cases where the crate deviates.
    let got = decode_spec(&[b"data: YHOO\ndata: +2\ndata: 10\n\n"]);
    assert_eq!(got[0].data, "YHOO\n+2\n10");

    let got = decode_spec(&[
        b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n",
    ]);
    let got: Vec<(&str, &str)> = got
        .iter()
        .map(|e| (e.data.as_str(), e.last_event_id.as_str()))
        .collect();
    assert_eq!(got, [("first event", "1"), ("second event", "")]);

    let got = decode_spec(&[b"data\n\ndata\ndata\n\ndata:"]);
    let got: Vec<&str> = got.iter().map(|e| e.data.as_str()).collect();
    assert_eq!(got, ["", "\n"]);

    let got = decode_spec(&[b"data:test\n\ndata: test\n\n"]);
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|e| e.data == "test"));

    // A lone CR ends the event at once (the crate waits for the next byte).
    let got = decode_spec(&[b"data: a\rdata: b\r\r"]);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data, "a\nb");
    assert!(decode_crate(&[b"data: a\rdata: b\r\r"]).is_empty());

    // A leading BOM is skipped, even cut in pieces; a later one is data.
    for chunks in [
        vec![&b"\xef\xbb\xbfdata: \xef\xbb\xbfx\n\n"[..]],
        vec![
            &b"\xef"[..],
            &b"\xbb"[..],
            &b"\xbfdata: \xef\xbb\xbfx\n\n"[..],
        ],
    ] {
        let got = decode_spec(&chunks);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].data, "\u{feff}x");
    }
    // Retry takes ASCII digits only; an id with NUL is ignored.
    let got = decode_spec(&[b"retry: +5\nid: 1\0\ndata: a\n\nretry: 7\ndata: b\n\n"]);
    assert_eq!(got[0].retry_ms, None);
    assert_eq!(got[0].last_event_id, "");
    assert_eq!(got[1].retry_ms, Some(7));
}

/// xorshift64*: deterministic randomness without a crate.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, alphabet: &[&'a str]) -> &'a str {
        alphabet[self.below(alphabet.len())]
    }

    fn text(&mut self, alphabet: &[&str], max_len: usize) -> String {
        let len = self.below(max_len + 1);
        (0..len).map(|_| self.pick(alphabet)).collect()
    }
}

/// Heavy in what breaks encoders: line breaks, spaces, colons, multi-byte characters.
const DATA_ALPHABET: &[&str] = &[
    "\r", "\n", "\r\n", " ", " ", ":", "a", "z", "0", "é", "😀", "日", "\u{feff}", "\u{2028}",
    "\0", "\t", "data", "id", "event",
];
/// The same without CR, LF and NUL, which ids and event types cannot hold.
const FIELD_ALPHABET: &[&str] = &[" ", ":", "a", "Z", "-", "9", "é", "😀", "\u{feff}", "\t"];

/// A generated event that owns its strings.
struct OwnedEvent {
    id: Option<String>,
    kind: Option<String>,
    data: String,
    retry_ms: Option<u64>,
}

impl OwnedEvent {
    fn random(rng: &mut XorShift) -> Self {
        let data = rng.text(DATA_ALPHABET, 24);
        let id = (rng.below(3) == 0).then(|| rng.text(FIELD_ALPHABET, 8));
        let kind = (rng.below(3) == 0).then(|| {
            let mut kind = rng.text(FIELD_ALPHABET, 8);
            kind.push('k'); // never empty
            kind
        });
        let retry_ms = (rng.below(8) == 0).then(|| rng.next() >> rng.below(64));
        OwnedEvent {
            id,
            kind,
            data,
            retry_ms,
        }
    }

    fn event(&self) -> Event<'_> {
        Event {
            id: self.id.as_deref(),
            event: self.kind.as_deref(),
            data: &self.data,
            retry_ms: self.retry_ms,
        }
    }
}

#[test]
fn random_events_round_trip() {
    let mut rng = XorShift(0x5eed_cafe_f00d_d00d);
    let mut batch = Vec::new();
    let mut generated = Vec::new();
    for case in 0..10_000 {
        let owned = OwnedEvent::random(&mut rng);
        let event = owned.event();
        let frame = Frame::encode(&event).unwrap();
        let wire = frame.as_bytes();
        assert_decodes(&[wire], &[event]);
        let cut = rng.below(wire.len() + 1);
        let (head, tail) = wire.split_at(cut);
        assert_decodes(&[head, tail], &[event]);
        if case % 500 == 0 {
            assert_decodes_however_cut(wire, &[event]);
        }
        encode_into(&event, &mut batch).unwrap();
        generated.push(owned);
    }

    // All 10,000 in one buffer: the last event id and the retry carry over between events.
    let events: Vec<Event<'_>> = generated.iter().map(OwnedEvent::event).collect();
    let chunks: Vec<&[u8]> = batch.chunks(1000).collect();
    assert_decodes(&chunks, &events);
}

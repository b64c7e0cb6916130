//! SSE encoding of any event: it fails exactly for CR/LF/NUL in the id or the event type or an
//! empty event type; otherwise the frame (the same from `Frame::encode` and `encode_into`),
//! decoded by the WHATWG algorithm, alone or twice in a row, gives back the event: type (or
//! `message`), data with line breaks as LF, id, retry. The same for `encode_published`, comments
//! (dispatch nothing) and the JSON control frames (`reset`, `connected`).
//!
//! Input layout: `flags [retry/id bytes] 0xFF id 0xFF event 0xFF data` (0xFF is never UTF-8;
//! each part is read as UTF-8, lossily). Flags: bit 0 id present, bit 1 event present, bit 2
//! retry present; the bytes after the flags (up to 16) give the retry and the published id.

use pushcore::sse::encode::{
    connected, encode_into, encode_published, reset, EncodeError, Event, Frame,
};
use pushcore::sse::EventId;

use super::esc;
use super::sse_parser::{decode, normalize_line_breaks, Received};

fn u64_from(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    for (d, s) in b.iter_mut().zip(bytes) {
        *d = *s;
    }
    u64::from_le_bytes(b)
}

fn bad(s: &str) -> bool {
    s.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0))
}

pub fn check(input: &[u8]) {
    let mut parts = input.splitn(4, |&b| b == 0xFF);
    let head = parts.next().unwrap_or_default();
    let text = |p: Option<&[u8]>| String::from_utf8_lossy(p.unwrap_or_default()).into_owned();
    let (id, kind, data) = (text(parts.next()), text(parts.next()), text(parts.next()));
    let flags = head.first().copied().unwrap_or(0);
    let numbers = head.get(1..).unwrap_or_default();
    let retry = u64_from(numbers.get(..8).unwrap_or(numbers));
    let seq = u64_from(numbers.get(8..).unwrap_or_default());

    let event = Event {
        id: (flags & 1 != 0).then_some(id.as_str()),
        event: (flags & 2 != 0).then_some(kind.as_str()),
        data: &data,
        retry_ms: (flags & 4 != 0).then_some(retry),
    };
    let shown = || format!("{event:?} from {}", esc(input));

    let expected_error = if event.id.is_some_and(bad) {
        Some(EncodeError::IdHasLineBreakOrNul)
    } else if event.event == Some("") {
        Some(EncodeError::EmptyEventName)
    } else if event.event.is_some_and(bad) {
        Some(EncodeError::EventHasLineBreakOrNul)
    } else {
        None
    };
    let mut out = b"unchanged".to_vec();
    let into = encode_into(&event, &mut out);
    let frame = Frame::encode(&event);
    match expected_error {
        Some(e) => {
            assert_eq!(frame, Err(e.clone()), "{}", shown());
            assert_eq!(into, Err(e), "{}", shown());
            assert_eq!(out, b"unchanged", "encode_into wrote on error: {}", shown());
        }
        None => {
            let frame = frame.unwrap_or_else(|e| panic!("refused ({e:?}): {}", shown()));
            assert_eq!(into, Ok(()), "{}", shown());
            assert_eq!(
                &out[9..],
                frame.as_bytes(),
                "encode_into vs Frame::encode: {}",
                shown()
            );
            assert!(
                frame.as_bytes().ends_with(b"\n\n"),
                "frame without its blank line: {}",
                shown()
            );
            let expected = Received {
                kind: event.event.unwrap_or("message").to_owned(),
                data: normalize_line_breaks(&data),
                last_event_id: event.id.unwrap_or_default().to_owned(),
                retry_ms: event.retry_ms,
            };
            let (got, retry_after) = decode(frame.as_bytes());
            assert_eq!(
                got,
                std::slice::from_ref(&expected),
                "frame {}: {}",
                esc(frame.as_bytes()),
                shown()
            );
            assert_eq!(retry_after, event.retry_ms);
            let twice = [frame.as_bytes(), frame.as_bytes()].concat();
            assert_eq!(
                decode(&twice).0,
                [expected.clone(), expected],
                "two frames: {}",
                shown()
            );
        }
    }

    // The sequencer's path: id, type and (JSON) data.
    let published_id = EventId::new(retry, seq);
    let published = encode_published(published_id, &kind, &data);
    if kind.is_empty() {
        assert_eq!(published, Err(EncodeError::EmptyEventName), "{}", shown());
    } else if bad(&kind) {
        assert_eq!(
            published,
            Err(EncodeError::EventHasLineBreakOrNul),
            "{}",
            shown()
        );
    } else {
        let frame =
            published.unwrap_or_else(|e| panic!("encode_published refused ({e:?}): {}", shown()));
        let expected = Received {
            kind: kind.clone(),
            data: normalize_line_breaks(&data),
            last_event_id: published_id.to_string(),
            retry_ms: None,
        };
        assert_eq!(
            decode(frame.as_bytes()).0,
            [expected],
            "published {}: {}",
            esc(frame.as_bytes()),
            shown()
        );
    }

    // A comment dispatches nothing, and refuses line breaks.
    match Frame::comment(&data) {
        Ok(frame) => {
            assert!(
                !data.contains(['\r', '\n']),
                "comment with a line break accepted: {}",
                shown()
            );
            assert_eq!(
                decode(frame.as_bytes()),
                (vec![], None),
                "comment dispatched: {}",
                shown()
            );
        }
        Err(e) => {
            assert_eq!(e, EncodeError::CommentHasLineBreak);
            assert!(data.contains(['\r', '\n']), "comment refused: {}", shown());
        }
    }

    // JSON control frames carry any strings intact on one data line.
    let (got, _) = decode(reset(&kind, &id).as_bytes());
    assert_eq!(got.len(), 1, "reset frame: {}", shown());
    let json: serde_json::Value = serde_json::from_str(&got[0].data).expect("reset data is JSON");
    assert_eq!(json["reason"], kind.as_str(), "{}", shown());
    assert_eq!(json["requested"], id.as_str(), "{}", shown());
    assert_eq!(got[0].kind, "reset");
    let (got, _) = decode(connected(&data, retry).as_bytes());
    assert_eq!(got.len(), 1, "connected frame: {}", shown());
    let json: serde_json::Value =
        serde_json::from_str(&got[0].data).expect("connected data is JSON");
    assert_eq!(json["clientId"], data.as_str(), "{}", shown());
    assert_eq!(json["timestamp"], retry, "{}", shown());
}

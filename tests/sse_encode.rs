//! Frames byte for byte: what goes on the wire for each kind of event, and what is refused.

use pushcore::sse::{
    connected, encode_into, encode_published, reset, shutdown, token_expired, EncodeError, Event,
    EventId, Frame,
};

fn encoded(event: Event<'_>) -> String {
    let frame = Frame::encode(&event).unwrap();
    String::from_utf8(frame.as_bytes().to_vec()).unwrap()
}

fn data(data: &str) -> Event<'_> {
    Event {
        data,
        ..Event::default()
    }
}

#[test]
fn event_fields_in_order() {
    let cases: &[(Event<'_>, &str)] = &[
        (data("hello"), "data: hello\n\n"),
        (data(""), "data: \n\n"),
        (
            Event {
                id: Some("1-0"),
                event: Some("update"),
                data: "{\"a\":1}",
                retry_ms: None,
            },
            "id: 1-0\nevent: update\ndata: {\"a\":1}\n\n",
        ),
        (
            Event {
                id: Some("7-3"),
                event: Some("x"),
                data: "d",
                retry_ms: Some(2500),
            },
            "retry: 2500\nid: 7-3\nevent: x\ndata: d\n\n",
        ),
        (
            Event {
                retry_ms: Some(0),
                ..data("d")
            },
            "retry: 0\ndata: d\n\n",
        ),
        (
            Event {
                id: Some(""),
                ..data("d")
            },
            "id: \ndata: d\n\n",
        ),
        (
            Event {
                event: Some("with space: and colon"),
                ..data("d")
            },
            "event: with space: and colon\ndata: d\n\n",
        ),
    ];
    for (event, wire) in cases {
        assert_eq!(encoded(*event), *wire, "{event:?}");
    }
}

#[test]
fn data_is_split_at_every_line_break() {
    let cases: &[(&str, &str)] = &[
        ("a\nb", "data: a\ndata: b\n\n"),
        ("a\rb", "data: a\ndata: b\n\n"),
        ("a\r\nb", "data: a\ndata: b\n\n"),
        ("a\n\rb", "data: a\ndata: \ndata: b\n\n"),
        ("a\r\rb", "data: a\ndata: \ndata: b\n\n"),
        ("a\n\nb", "data: a\ndata: \ndata: b\n\n"),
        ("a\r\n\r\nb", "data: a\ndata: \ndata: b\n\n"),
        ("a\n", "data: a\ndata: \n\n"),
        ("a\r", "data: a\ndata: \n\n"),
        ("a\r\n", "data: a\ndata: \n\n"),
        ("\n", "data: \ndata: \n\n"),
        ("\r\n", "data: \ndata: \n\n"),
        ("\n\r", "data: \ndata: \ndata: \n\n"),
        ("\na", "data: \ndata: a\n\n"),
        (" lead", "data:  lead\n\n"),
        ("  two\n three", "data:   two\ndata:  three\n\n"),
        (": not a comment", "data: : not a comment\n\n"),
        ("data: x", "data: data: x\n\n"),
        ("é😀\u{2028}\u{85}\0", "data: é😀\u{2028}\u{85}\0\n\n"),
    ];
    for &(text, wire) in cases {
        assert_eq!(encoded(data(text)), wire, "{text:?}");
    }
}

#[test]
fn invalid_ids_and_event_types_are_refused() {
    use EncodeError::*;
    let cases: &[(Option<&str>, Option<&str>, EncodeError)] = &[
        (Some("1\n"), None, IdHasLineBreakOrNul),
        (Some("\r"), None, IdHasLineBreakOrNul),
        (Some("1\r\n2"), None, IdHasLineBreakOrNul),
        (Some("1\0"), None, IdHasLineBreakOrNul),
        (Some("\0"), Some("ok"), IdHasLineBreakOrNul),
        (None, Some(""), EmptyEventName),
        (None, Some("a\nb"), EventHasLineBreakOrNul),
        (None, Some("a\r"), EventHasLineBreakOrNul),
        (None, Some("\r\n"), EventHasLineBreakOrNul),
        (None, Some("a\0"), EventHasLineBreakOrNul),
        (Some("1-0"), Some("bad\n"), EventHasLineBreakOrNul),
    ];
    for (id, event, error) in cases {
        let event = Event {
            id: *id,
            event: *event,
            data: "d",
            retry_ms: None,
        };
        assert_eq!(Frame::encode(&event), Err(error.clone()), "{event:?}");
        let mut out = b"kept".to_vec();
        assert_eq!(encode_into(&event, &mut out), Err(error.clone()));
        assert_eq!(out, b"kept", "a failed encode_into leaves the buffer alone");
    }
    for error in [
        IdHasLineBreakOrNul,
        EventHasLineBreakOrNul,
        EmptyEventName,
        CommentHasLineBreak,
    ] {
        assert!(!error.to_string().is_empty());
        let _: &dyn std::error::Error = &error;
    }
}

#[test]
fn encode_into_appends() {
    let mut out = Vec::new();
    encode_into(&data("one"), &mut out).unwrap();
    encode_into(
        &Event {
            id: Some("2-0"),
            ..data("two\nlines")
        },
        &mut out,
    )
    .unwrap();
    assert_eq!(out, b"data: one\n\nid: 2-0\ndata: two\ndata: lines\n\n");
}

#[test]
fn frames_are_allocated_exactly() {
    // The exact-length computation and the writer must agree, or the frame would realloc.
    let samples = [
        data(""),
        data("a\r\n\rb\n"),
        Event {
            id: Some("1732406400000-17"),
            event: Some("update"),
            data: "x\ny",
            retry_ms: Some(u64::MAX),
        },
    ];
    for event in samples {
        let frame = Frame::encode(&event).unwrap();
        // With room for exactly the frame, encode_into's reservation must not grow the buffer.
        let mut exact = Vec::with_capacity(frame.len());
        let capacity = exact.capacity();
        encode_into(&event, &mut exact).unwrap();
        assert_eq!(exact.capacity(), capacity, "over-estimated: {event:?}");
        assert_eq!(frame.as_bytes(), &exact[..]);
        // From an empty buffer, one exact reservation (std's Vec reserves exactly what is
        // asked when that is more than double the current capacity); an under-estimate would
        // grow it again while writing.
        let mut fresh = Vec::new();
        encode_into(&event, &mut fresh).unwrap();
        assert_eq!(fresh.capacity(), fresh.len(), "under-estimated: {event:?}");
    }
}

#[test]
fn published_events() {
    let id = EventId::new(1_732_406_400_000, 3);
    let frame = encode_published(id, "update", r#"{"price":42}"#).unwrap();
    assert_eq!(
        frame.as_bytes(),
        b"id: 1732406400000-3\nevent: update\ndata: {\"price\":42}\n\n"
    );
    let general = Frame::encode(&Event {
        id: Some(&id.to_string()),
        event: Some("update"),
        data: r#"{"price":42}"#,
        retry_ms: None,
    })
    .unwrap();
    assert_eq!(frame, general);

    // Pretty-printed JSON still makes a correct frame.
    let frame = encode_published(id, "update", "{\n  \"a\": 1\r\n}").unwrap();
    assert_eq!(
        frame.as_bytes(),
        b"id: 1732406400000-3\nevent: update\ndata: {\ndata:   \"a\": 1\ndata: }\n\n"
    );

    assert_eq!(
        encode_published(id, "", "1"),
        Err(EncodeError::EmptyEventName)
    );
    assert_eq!(
        encode_published(id, "a\nb", "1"),
        Err(EncodeError::EventHasLineBreakOrNul)
    );
}

#[test]
fn comments_and_heartbeats() {
    assert_eq!(Frame::heartbeat().as_bytes(), b": heartbeat\n\n");
    assert_eq!(Frame::comment("hi").unwrap().as_bytes(), b": hi\n\n");
    assert_eq!(Frame::comment("").unwrap().as_bytes(), b": \n\n");
    assert_eq!(
        Frame::comment("a: b\0").unwrap().as_bytes(),
        b": a: b\0\n\n"
    );
    for bad in ["a\nb", "\r", "x\r\n"] {
        assert_eq!(Frame::comment(bad), Err(EncodeError::CommentHasLineBreak));
    }
}

#[test]
fn retry_frames() {
    assert_eq!(Frame::retry(0).as_bytes(), b"retry: 0\n\n");
    assert_eq!(Frame::retry(3000).as_bytes(), b"retry: 3000\n\n");
    assert_eq!(
        Frame::retry(u64::MAX).as_bytes(),
        b"retry: 18446744073709551615\n\n"
    );
}

#[test]
fn connection_events_carry_no_id() {
    assert_eq!(
        connected("c-42", 1_732_406_400_000).as_bytes(),
        b"event: connected\ndata: {\"clientId\":\"c-42\",\"timestamp\":1732406400000}\n\n"
    );
    assert_eq!(
        shutdown(4321).as_bytes(),
        b"retry: 4321\nevent: shutdown\ndata: {\"message\":\"Server shutting down\"}\n\n"
    );
    assert_eq!(
        reset("too-old", "1-0").as_bytes(),
        b"event: reset\ndata: {\"reason\":\"too-old\",\"requested\":\"1-0\"}\n\n"
    );
    assert_eq!(
        token_expired().as_bytes(),
        b"event: token-expired\ndata: {\"message\":\"Token expired\"}\n\n"
    );
}

#[test]
fn reset_escapes_what_the_client_sent() {
    // A hostile Last-Event-ID must stay inside its JSON string and on one data line.
    let frame = reset("malformed", "\"}\r\n\ndata: x\u{2028}\\");
    let text = std::str::from_utf8(frame.as_bytes()).unwrap();
    let json = text
        .strip_prefix("event: reset\ndata: ")
        .and_then(|rest| rest.strip_suffix("\n\n"))
        .unwrap();
    assert!(!json.contains(['\r', '\n']), "{json:?}");
    let value: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(value["reason"], "malformed");
    assert_eq!(value["requested"], "\"}\r\n\ndata: x\u{2028}\\");

    let frame = connected("a\"b\nc", 0);
    let text = std::str::from_utf8(frame.as_bytes()).unwrap();
    let json = text
        .strip_prefix("event: connected\ndata: ")
        .and_then(|rest| rest.strip_suffix("\n\n"))
        .unwrap();
    let value: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(value["clientId"], "a\"b\nc");
    assert_eq!(value["timestamp"], 0);
}

#[test]
fn frame_accessors() {
    let frame = Frame::from_static(b"data: x\n\n");
    assert_eq!(frame.len(), 9);
    assert!(!frame.is_empty());
    assert_eq!(frame.as_ref(), b"data: x\n\n");
    assert_eq!(frame.bytes().as_ref(), b"data: x\n\n");
    let copy = frame.clone();
    assert_eq!(
        copy.bytes().as_ptr(),
        frame.bytes().as_ptr(),
        "clones share"
    );
    let bytes: bytes::Bytes = frame.into_bytes();
    assert_eq!(bytes.as_ref(), b"data: x\n\n");
    assert!(Frame::from_static(b"").is_empty());
}

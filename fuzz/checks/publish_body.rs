//! `parse_publish` on any bytes: never panics. On `Ok`: 1..=MAX_BATCH_EVENTS events, `batch`
//! exactly when the body is an array; each event has 1..=MAX_EVENT_CHANNELS valid channel names
//! (sorted, distinct: the ones the body names), a non-empty event type of at most
//! MAX_EVENT_TYPE_BYTES without CR/LF/NUL (`message` when absent), and data on one line that
//! serde_json parses back to the value the body holds (and that compacts to itself). The data
//! then encodes into a frame a client decodes back to the same JSON.

use pushcore::api::publish::{
    compact_json, parse_publish, DEFAULT_EVENT_TYPE, MAX_BATCH_EVENTS, MAX_EVENT_CHANNELS,
    MAX_EVENT_TYPE_BYTES,
};
use pushcore::channel::validate_name;
use pushcore::sse::encode::encode_published;
use pushcore::sse::EventId;
use serde_json::Value;

use super::esc;
use super::sse_parser::decode;

pub fn check(body: &[u8]) {
    let Ok(published) = parse_publish(body) else {
        return;
    };
    let shown = || esc(body);
    let events = &published.events;
    assert!(
        !events.is_empty() && events.len() <= MAX_BATCH_EVENTS,
        "{} events: {}",
        events.len(),
        shown()
    );
    let value: Value = serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "accepted, but serde_json cannot read it back ({e}): {}",
            shown()
        )
    });
    let objects: Vec<&Value> = match &value {
        Value::Array(items) => {
            assert!(published.batch, "array body not a batch: {}", shown());
            items.iter().collect()
        }
        _ => {
            assert!(!published.batch, "object body read as a batch: {}", shown());
            vec![&value]
        }
    };
    assert_eq!(objects.len(), events.len(), "event count: {}", shown());

    for (event, object) in events.iter().zip(objects) {
        assert!(
            !event.channels.is_empty() && event.channels.len() <= MAX_EVENT_CHANNELS,
            "{} channels: {}",
            event.channels.len(),
            shown()
        );
        for c in &event.channels {
            assert!(
                validate_name(c).is_ok(),
                "invalid channel {c:?} accepted: {}",
                shown()
            );
        }
        assert!(
            event.channels.windows(2).all(|w| w[0] < w[1]),
            "channels not sorted/distinct: {}",
            shown()
        );
        let mut named: Vec<String> = match (&object["channel"], &object["channels"]) {
            (Value::String(one), Value::Null) => vec![one.clone()],
            (Value::Null, Value::Array(many)) => many
                .iter()
                .map(|c| c.as_str().unwrap_or_default().to_owned())
                .collect(),
            other => panic!("accepted with channel fields {other:?}: {}", shown()),
        };
        named.sort();
        named.dedup();
        assert_eq!(event.channels, named, "channels: {}", shown());

        let kind = &event.event_type;
        assert!(
            !kind.is_empty() && kind.len() <= MAX_EVENT_TYPE_BYTES,
            "event type {kind:?}: {}",
            shown()
        );
        assert!(
            !kind.contains(['\r', '\n', '\0']),
            "event type {kind:?}: {}",
            shown()
        );
        let expected_kind = object["eventType"].as_str().unwrap_or(DEFAULT_EVENT_TYPE);
        assert_eq!(kind, expected_kind, "event type: {}", shown());

        let data = &event.data;
        assert!(
            !data.contains(['\r', '\n']),
            "data not on one line {data:?}: {}",
            shown()
        );
        let parsed: Value = serde_json::from_str(data)
            .unwrap_or_else(|e| panic!("data {data:?} is not JSON ({e}): {}", shown()));
        assert_eq!(
            &parsed,
            &object["data"],
            "data {data:?} is not the body's value: {}",
            shown()
        );
        assert!(
            object.get("data").is_some(),
            "accepted without data: {}",
            shown()
        );
        assert_eq!(
            &compact_json(data),
            data,
            "compacting twice changed the data: {}",
            shown()
        );

        // What a subscriber receives.
        let frame = encode_published(EventId::new(1, 2), kind, data)
            .unwrap_or_else(|e| panic!("encode: {e:?}: {}", shown()));
        let (got, _) = decode(frame.as_bytes());
        assert_eq!(got.len(), 1, "frame {}: {}", esc(frame.as_bytes()), shown());
        assert_eq!(&got[0].data, data, "frame data: {}", shown());
        assert_eq!(&got[0].kind, kind, "frame event type: {}", shown());
    }
}

//! Reading a publish body: `{"channel":…,"eventType":…,"data":…}`, the `"channels":[…]` form,
//! or a JSON array of those (a batch). Pure functions: the fuzz target drives them directly.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::bus::NewEvent;
use crate::channel::validate_name;
use crate::sse::id::EventId;

/// Most events in one batch (they are sequenced all-or-nothing).
pub const MAX_BATCH_EVENTS: usize = 1000;
/// Longest `eventType`, in bytes.
pub const MAX_EVENT_TYPE_BYTES: usize = 200;
/// Most channels one event may name.
pub const MAX_EVENT_CHANNELS: usize = 100;
/// The event type used when a publisher gives none.
pub const DEFAULT_EVENT_TYPE: &str = "message";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire<'a> {
    #[serde(default, borrow)]
    channel: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    channels: Option<Vec<String>>,
    #[serde(default, rename = "eventType", borrow)]
    event_type: Option<std::borrow::Cow<'a, str>>,
    /// Present (even as `null`) or absent: a plain `Option` would read `null` as absent.
    #[serde(default, borrow, deserialize_with = "present")]
    data: Option<&'a RawValue>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Parse and validate a publish body. `Ok` holds one event per object, in order; `batch`
/// tells whether the body was an array (the answer then carries `eventIds`).
pub fn parse_publish(body: &[u8]) -> Result<Published, String> {
    let text = std::str::from_utf8(body).map_err(|_| "body is not UTF-8".to_string())?;
    let trimmed = text.trim_start_matches([' ', '\t', '\r', '\n']);
    if trimmed.starts_with('[') {
        let items: Vec<&RawValue> =
            serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
        if items.is_empty() {
            return Err("batch is empty".into());
        }
        if items.len() > MAX_BATCH_EVENTS {
            return Err(format!("batch has more than {MAX_BATCH_EVENTS} events"));
        }
        let events = items
            .iter()
            .enumerate()
            .map(|(i, raw)| one_event(raw.get()).map_err(|e| format!("event {i}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Published {
            events,
            batch: true,
        })
    } else {
        Ok(Published {
            events: vec![one_event(text)?],
            batch: false,
        })
    }
}

/// A validated publish request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    pub events: Vec<NewEvent>,
    pub batch: bool,
}

impl Published {
    /// Every channel the request names, sorted and once each (what the publisher's token
    /// must cover).
    pub fn channels(&self) -> Vec<String> {
        let mut channels: Vec<String> = self
            .events
            .iter()
            .flat_map(|e| e.channels.iter().cloned())
            .collect();
        channels.sort_unstable();
        channels.dedup();
        channels
    }
}

/// The body of a `200` answer: `{"success":true,"eventId":…}`, or `"eventIds":[…]` for a batch.
pub fn answer_body(ids: &[EventId], batch: bool) -> String {
    if batch {
        let list: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
        serde_json::json!({ "success": true, "eventIds": list }).to_string()
    } else {
        let id = ids.first().map(|id| id.to_string()).unwrap_or_default();
        serde_json::json!({ "success": true, "eventId": id }).to_string()
    }
}

fn one_event(text: &str) -> Result<NewEvent, String> {
    let wire: Wire<'_> = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let mut channels: Vec<String> = match (wire.channel, wire.channels) {
        (Some(_), Some(_)) => {
            return Err("give either \"channel\" or \"channels\", not both".into())
        }
        (Some(one), None) => vec![one.into_owned()],
        (None, Some(many)) => many,
        (None, None) => return Err("\"channel\" or \"channels\" is required".into()),
    };
    if channels.is_empty() {
        return Err("\"channels\" is empty".into());
    }
    if channels.len() > MAX_EVENT_CHANNELS {
        return Err(format!("more than {MAX_EVENT_CHANNELS} channels"));
    }
    for name in &channels {
        validate_name(name).map_err(|e| e.to_string())?;
    }
    channels.sort_unstable();
    channels.dedup();
    let event_type = wire
        .event_type
        .map_or_else(|| DEFAULT_EVENT_TYPE.to_string(), |t| t.into_owned());
    if event_type.is_empty() {
        return Err("\"eventType\" is empty".into());
    }
    if event_type.len() > MAX_EVENT_TYPE_BYTES {
        return Err(format!(
            "\"eventType\" is longer than {MAX_EVENT_TYPE_BYTES} bytes"
        ));
    }
    if event_type
        .bytes()
        .any(|b| b == b'\r' || b == b'\n' || b == 0)
    {
        return Err("\"eventType\" contains a line break or NUL".into());
    }
    let data = wire
        .data
        .ok_or_else(|| "\"data\" is required".to_string())?;
    // The raw value is only checked for shape; a full read also refuses what no strict JSON
    // reader accepts back (lone surrogate escapes, numbers out of range).
    serde_json::from_str::<serde_json::Value>(data.get())
        .map_err(|e| format!("\"data\" is not valid JSON: {e}"))?;
    Ok(NewEvent {
        channels,
        event_type,
        data: compact_json(data.get()),
    })
}

/// Remove the insignificant whitespace of valid JSON text, keeping everything else (key order,
/// number spelling, escapes) as the publisher wrote it: the result is one line.
pub fn compact_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            if c == '"' {
                in_string = true;
            }
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &str) -> Published {
        match parse_publish(body.as_bytes()) {
            Ok(p) => p,
            Err(e) => panic!("{body}: {e}"),
        }
    }

    #[test]
    fn well_formed_bodies() {
        let rows: &[(&str, &[&str], &str, &str, bool)] = &[
            (
                r#"{"channel":"news","eventType":"update","data":{"a":1}}"#,
                &["news"],
                "update",
                r#"{"a":1}"#,
                false,
            ),
            (
                r#"{"channel":"news","data":"x"}"#,
                &["news"],
                "message",
                r#""x""#,
                false,
            ),
            (
                r#"{"channels":["b","a","b"],"data":null}"#,
                &["a", "b"],
                "message",
                "null",
                false,
            ),
            (
                "{ \"channel\" : \"n\",\n \"data\" : { \"k\" : [1, 2.50, \"a b\\n\"] } }",
                &["n"],
                "message",
                r#"{"k":[1,2.50,"a b\n"]}"#,
                false,
            ),
            (
                r#"[{"channel":"x","data":1}]"#,
                &["x"],
                "message",
                "1",
                true,
            ),
            (
                r#"{"data":{"z":1,"a":2},"channel":"o"}"#,
                &["o"],
                "message",
                r#"{"z":1,"a":2}"#,
                false,
            ),
        ];
        for (body, channels, event_type, data, batch) in rows {
            let p = ok(body);
            assert_eq!(p.batch, *batch, "{body}");
            let ev = &p.events[0];
            assert_eq!(
                ev.channels,
                channels.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                "{body}"
            );
            assert_eq!(ev.event_type, *event_type, "{body}");
            assert_eq!(ev.data, *data, "{body}");
        }
    }

    #[test]
    fn malformed_bodies() {
        let long_type = format!(
            r#"{{"channel":"a","eventType":"{}","data":1}}"#,
            "t".repeat(201)
        );
        let rows: Vec<&str> = vec![
            // Found by fuzzing: accepted by the raw-value scan, refused by a full JSON read.
            r#"{"channel":"a","data":"\ud800"}"#,
            r#"{"channel":"a","data":"\ude00"}"#,
            r#"{"channel":"a","data":1e400}"#,
            "",
            "{",
            "nul",
            r#"{"data":1}"#,
            r#"{"channel":"a"}"#,
            r#"{"channel":"a","channels":["b"],"data":1}"#,
            r#"{"channels":[],"data":1}"#,
            r#"{"channel":"","data":1}"#,
            r#"{"channel":"a b","data":1}"#,
            r#"{"channel":"a","eventType":"","data":1}"#,
            r#"{"channel":"a","eventType":"x\ny","data":1}"#,
            r#"{"channel":"a","eventType":"x\u0000","data":1}"#,
            r#"{"channel":"a","data":1,"extra":2}"#,
            r#"{"channel":5,"data":1}"#,
            "[]",
            r#"[{"channel":"a","data":1},{"data":2}]"#,
            r#"{"channel":"a","data":1} trailing"#,
            "\"just a string\"",
            &long_type,
        ];
        for body in rows {
            assert!(parse_publish(body.as_bytes()).is_err(), "accepted: {body}");
        }
        assert!(parse_publish(b"\xff\xfe").is_err());
        let too_many = format!(
            "[{}]",
            vec![r#"{"channel":"a","data":1}"#; MAX_BATCH_EVENTS + 1].join(",")
        );
        assert!(parse_publish(too_many.as_bytes()).is_err());
    }
}

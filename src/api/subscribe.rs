//! Reading a subscribe request: which channels, and the resume id as the client sent it
//! (the resume rule itself is [`crate::channel::resume`]).

use crate::channel::validate_name;
use crate::http::query::Target;

/// The channel followed when a request names none.
pub const DEFAULT_CHANNEL: &str = "default";
/// Query parameters accepted for the resume id, after the `Last-Event-ID` header.
pub const LAST_EVENT_ID_PARAMS: [&str; 3] = ["lastEventId", "last_event_id", "lastEventID"];

/// A validated subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    /// Distinct channel names, in the order first requested.
    pub channels: Vec<String>,
    /// The resume id as sent (validated later against history), if any.
    pub last_event_id: Option<String>,
}

/// `channels=a,b` (also repeated `channels=` parameters); no channels means [`DEFAULT_CHANNEL`].
pub fn parse_subscription(
    target: &Target,
    last_event_id_header: Option<&[u8]>,
    max_channels: usize,
) -> Result<Subscription, String> {
    let mut channels: Vec<String> = Vec::new();
    for value in target.params("channels") {
        for name in value.split(',') {
            if channels.len() > max_channels {
                break;
            }
            validate_name(name).map_err(|e| e.to_string())?;
            if !channels.iter().any(|c| c == name) {
                channels.push(name.to_string());
            }
        }
    }
    if channels.len() > max_channels {
        return Err(format!(
            "more than {max_channels} channels requested (raise --max-channels)"
        ));
    }
    if channels.is_empty() {
        channels.push(DEFAULT_CHANNEL.to_string());
    }
    let from_header = last_event_id_header
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v).into_owned());
    let last_event_id = from_header.or_else(|| {
        LAST_EVENT_ID_PARAMS
            .iter()
            .find_map(|p| target.param(p))
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    });
    Ok(Subscription {
        channels,
        last_event_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::query::parse_target;

    fn sub(target: &str, header: Option<&str>) -> Result<Subscription, String> {
        let t = parse_target(target.as_bytes()).map_err(|e| e.to_string())?;
        parse_subscription(&t, header.map(str::as_bytes), 3)
    }

    #[test]
    fn rows() {
        type Row<'a> = (&'a str, Option<&'a str>, &'a [&'a str], Option<&'a str>);
        let ok: &[Row] = &[
            ("/events/stream", None, &["default"], None),
            ("/events/stream?channels=a,b", None, &["a", "b"], None),
            (
                "/events/stream?channels=a&channels=b,a",
                None,
                &["a", "b"],
                None,
            ),
            ("/events/stream?channels=a%2Cb", None, &["a", "b"], None),
            (
                "/events/stream?channels=a&lastEventId=1-0",
                None,
                &["a"],
                Some("1-0"),
            ),
            (
                "/events/stream?last_event_id=2-0",
                None,
                &["default"],
                Some("2-0"),
            ),
            (
                "/events/stream?lastEventID=3-0",
                None,
                &["default"],
                Some("3-0"),
            ),
            (
                "/events/stream?lastEventId=3-0",
                Some("9-9"),
                &["default"],
                Some("9-9"),
            ),
            ("/events/stream?lastEventId=", None, &["default"], None),
            (
                "/events/stream?lastEventId=junk",
                None,
                &["default"],
                Some("junk"),
            ),
        ];
        for (target, header, channels, id) in ok {
            let s = sub(target, *header).unwrap_or_else(|e| panic!("{target}: {e}"));
            assert_eq!(s.channels, channels.to_vec(), "{target}");
            assert_eq!(s.last_event_id.as_deref(), *id, "{target}");
        }
        let bad = [
            "/events/stream?channels=",
            "/events/stream?channels=a,,b",
            "/events/stream?channels=a%20b",
            "/events/stream?channels=a,b,c,d",
            "/events/stream?channels=%C3%A9",
        ];
        for target in bad {
            assert!(sub(target, None).is_err(), "accepted {target}");
        }
    }
}

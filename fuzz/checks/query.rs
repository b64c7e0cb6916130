//! `parse_target` on any bytes: never panics; a decoded target has a path starting with `/`
//! (or is `*`), no NUL anywhere, at most `MAX_QUERY_PAIRS` pairs; percent-encoding it again
//! (every byte but the unreserved ones, in two spellings) parses back to the same target; an
//! absolute-form target decodes as its origin-form part. `parse_subscription` on the result:
//! never panics; channels valid, distinct, within the limit, `default` when none is named.

use pushcore::api::subscribe::{parse_subscription, DEFAULT_CHANNEL};
use pushcore::channel::validate_name;
use pushcore::http::parse_target;
use pushcore::http::query::{Target, MAX_QUERY_PAIRS};

use super::esc;

fn encode(s: &str, out: &mut Vec<u8>, space_as_plus: bool, lower: bool) {
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b);
        } else if b == b' ' && space_as_plus {
            out.push(b'+');
        } else if lower {
            out.extend_from_slice(format!("%{b:02x}").as_bytes());
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
}

/// `target` percent-encoded again; the query's `+` spelling of a space only where it means one.
pub fn reencode(target: &Target, spaces_as_plus: bool, lower: bool) -> Vec<u8> {
    if target.path == "*" && target.query.is_empty() {
        return b"*".to_vec();
    }
    let mut out = b"/".to_vec();
    encode(&target.path[1..], &mut out, false, lower);
    for (i, (name, value)) in target.query.iter().enumerate() {
        out.push(if i == 0 { b'?' } else { b'&' });
        encode(name, &mut out, spaces_as_plus, lower);
        out.push(b'=');
        encode(value, &mut out, spaces_as_plus, lower);
    }
    out
}

pub fn check(data: &[u8]) {
    let Ok(target) = parse_target(data) else {
        return;
    };
    let shown = || esc(data);
    assert!(
        target.path.starts_with('/') || (target.path == "*" && data == b"*"),
        "path {:?}: {}",
        target.path,
        shown()
    );
    assert!(!target.path.contains('\0'), "NUL in path: {}", shown());
    assert!(
        target.query.len() <= MAX_QUERY_PAIRS,
        "too many pairs: {}",
        shown()
    );
    for (name, value) in &target.query {
        assert!(
            !name.contains('\0') && !value.contains('\0'),
            "NUL in query: {}",
            shown()
        );
    }
    for (plus, lower) in [(false, false), (true, true)] {
        let again = reencode(&target, plus, lower);
        assert_eq!(
            parse_target(&again).as_ref(),
            Ok(&target),
            "re-encoded as {} it parses differently: {}",
            esc(&again),
            shown()
        );
    }
    // Absolute-form: only the path and query count.
    let lower = data.to_ascii_lowercase();
    let scheme = [&b"http://"[..], b"https://"]
        .into_iter()
        .find(|s| lower.starts_with(s));
    if let Some(scheme) = scheme {
        let rest = &data[scheme.len()..];
        let auth = rest
            .iter()
            .position(|&b| b == b'/' || b == b'?')
            .unwrap_or(rest.len());
        let mut origin = rest[auth..].to_vec();
        if !origin.starts_with(b"/") {
            origin.insert(0, b'/');
        }
        assert_eq!(
            parse_target(&origin).as_ref(),
            Ok(&target),
            "absolute vs origin form: {}",
            shown()
        );
    }

    for max in [0, 3, 100] {
        let Ok(sub) = parse_subscription(&target, None, max) else {
            continue;
        };
        assert!(!sub.channels.is_empty(), "no channels: {}", shown());
        assert!(
            sub.channels.len() <= max.max(1),
            "{} channels over {max}: {}",
            sub.channels.len(),
            shown()
        );
        for (i, c) in sub.channels.iter().enumerate() {
            assert!(
                validate_name(c).is_ok(),
                "invalid channel {c:?}: {}",
                shown()
            );
            assert!(
                !sub.channels[..i].contains(c),
                "repeated channel {c:?}: {}",
                shown()
            );
        }
        let named = target.params("channels").next().is_some();
        if !named {
            assert_eq!(sub.channels, [DEFAULT_CHANNEL], "{}", shown());
        }
        assert!(
            sub.last_event_id.as_deref() != Some(""),
            "empty last event id: {}",
            shown()
        );
    }
}

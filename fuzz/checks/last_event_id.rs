//! `sse::id::parse` on any bytes: never panics; accepts exactly the canonical ids
//! (`<ms>-<seq>`, ASCII digits, no leading zeros but `0`, each part a `u64`), and an accepted
//! id prints back as the input. Any two `u64`s make an id whose text parses back to it.

use pushcore::sse::id::{parse, EventId, IdError, MAX_LEN};

use super::esc;

/// `0` or digits without a leading zero, with a value that fits `u64`.
fn canonical_part(part: &[u8]) -> Option<u64> {
    let digits = !part.is_empty() && part.iter().all(u8::is_ascii_digit);
    if !digits || (part.len() > 1 && part[0] == b'0') {
        return None;
    }
    std::str::from_utf8(part).ok()?.parse().ok()
}

fn canonical(input: &[u8]) -> Option<EventId> {
    let dash = input.iter().position(|&b| b == b'-')?;
    Some(EventId::new(
        canonical_part(&input[..dash])?,
        canonical_part(&input[dash + 1..])?,
    ))
}

pub fn check(input: &[u8]) {
    let shown = || esc(input);
    let parsed = parse(input);
    match (&parsed, canonical(input)) {
        (Ok(id), Some(expected)) => {
            assert_eq!(*id, expected, "{}", shown());
            assert_eq!(id.to_string().as_bytes(), input, "to_string: {}", shown());
            let mut written = Vec::new();
            id.write_to(&mut written);
            assert_eq!(written, input, "write_to: {}", shown());
            assert_eq!(id.text_len(), input.len(), "text_len: {}", shown());
            assert_eq!(
                std::str::from_utf8(input).ok().map(str::parse),
                Some(Ok(*id)),
                "FromStr: {}",
                shown()
            );
        }
        (Err(e), None) => {
            if input.is_empty() {
                assert_eq!(*e, IdError::Empty);
            } else if input.len() > MAX_LEN {
                assert_eq!(*e, IdError::TooLong, "{}", shown());
            }
        }
        (got, expected) => panic!(
            "parse gave {got:?}, canonical reading {expected:?}: {}",
            shown()
        ),
    }

    // Any id: its text parses back, and the successor is the next in order.
    let mut words = [0u8; 16];
    for (d, s) in words.iter_mut().zip(input) {
        *d = *s;
    }
    let (ms, seq) = words.split_at(8);
    let id = EventId::new(
        u64::from_le_bytes(ms.try_into().unwrap_or_default()),
        u64::from_le_bytes(seq.try_into().unwrap_or_default()),
    );
    let text = id.to_string();
    assert!(text.len() <= MAX_LEN);
    assert_eq!(parse(text.as_bytes()), Ok(id), "{text}");
    assert_eq!(format!("{id:>50}").trim_start(), text, "Display pads");
    let next = id.successor();
    assert!(
        next > id || id == EventId::MAX,
        "successor of {id:?} is {next:?}"
    );
}

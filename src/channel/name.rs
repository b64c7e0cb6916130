//! Channel names: 1–200 bytes of `[A-Za-z0-9._:/@-]`.

use std::fmt;

/// Longest channel name, in bytes.
pub const MAX_CHANNEL_NAME_BYTES: usize = 200;

/// Why a channel name was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameError {
    Empty,
    TooLong,
    BadByte { name: String },
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => f.write_str("channel name is empty"),
            NameError::TooLong => write!(
                f,
                "channel name is longer than {MAX_CHANNEL_NAME_BYTES} bytes"
            ),
            NameError::BadByte { name } => write!(
                f,
                "channel name {name:?} may only contain letters, digits and . _ : / @ -"
            ),
        }
    }
}

impl std::error::Error for NameError {}

fn allowed(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'/' | b'@' | b'-')
}

/// A channel name the server itself may use: a public name, or `$` followed by one (an
/// internal channel, such as an instance's dashboard feed, which the public API cannot name).
pub fn validate_stored(name: &str) -> Result<&str, NameError> {
    match name.strip_prefix('$') {
        Some(rest) => validate(rest).map(|_| name),
        None => validate(name),
    }
}

/// Check one channel name (as a client may name it).
pub fn validate(name: &str) -> Result<&str, NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_CHANNEL_NAME_BYTES {
        return Err(NameError::TooLong);
    }
    if !name.bytes().all(allowed) {
        let shown: String = name.chars().take(64).collect();
        return Err(NameError::BadByte { name: shown });
    }
    Ok(name)
}

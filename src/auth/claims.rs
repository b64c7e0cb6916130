//! What a verified token allows: channel patterns for subscribing and for publishing.
//!
//! A pattern is one of:
//! - `*`: every channel;
//! - `<prefix>*`: every channel whose name starts with `<prefix>` (`user:*` matches `user:42`
//!   and `user:`, not `user`);
//! - anything else: exactly that channel (`news`, `user:42`).
//!
//! Only a trailing `*` is special. Channel names cannot contain `*`, so a pattern with a `*`
//! elsewhere (`a*b`, `*news`) matches nothing rather than being an error.

/// One channel pattern from a token's `subscribe` or `publish` claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// `*`: every channel.
    All,
    /// `<prefix>*`: every channel starting with the prefix (never empty; `*` is [`Pattern::All`]).
    Prefix(String),
    /// Exactly this channel.
    Exact(String),
}

impl Pattern {
    /// The pattern a claim entry stands for.
    pub fn parse(text: &str) -> Pattern {
        match text.strip_suffix('*') {
            Some("") => Pattern::All,
            Some(prefix) => Pattern::Prefix(prefix.to_owned()),
            None => Pattern::Exact(text.to_owned()),
        }
    }

    /// Whether `channel` is covered by this pattern.
    pub fn matches(&self, channel: &str) -> bool {
        match self {
            Pattern::All => true,
            Pattern::Prefix(prefix) => channel.starts_with(prefix.as_str()),
            Pattern::Exact(name) => channel == name,
        }
    }
}

/// The claims of a verified token that pushcore acts on.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Claims {
    /// Channels the bearer may subscribe to.
    pub subscribe: Vec<Pattern>,
    /// Channels the bearer may publish to.
    pub publish: Vec<Pattern>,
    /// Expiry (`exp`, unix seconds) as the token states it; `None` if it has none.
    pub exp: Option<u64>,
    /// Subject (`sub`), for logs.
    pub sub: Option<String>,
}

impl Claims {
    /// Whether every one of `channels` may be subscribed to (false for an empty list).
    pub fn can_subscribe(&self, channels: &[String]) -> bool {
        !channels.is_empty() && first_denied(&self.subscribe, channels).is_none()
    }

    /// Whether every one of `channels` may be published to (false for an empty list).
    pub fn can_publish(&self, channels: &[String]) -> bool {
        !channels.is_empty() && first_denied(&self.publish, channels).is_none()
    }
}

/// The first of `channels` no pattern covers.
pub(crate) fn first_denied<'c>(patterns: &[Pattern], channels: &'c [String]) -> Option<&'c str> {
    channels
        .iter()
        .find(|c| !patterns.iter().any(|p| p.matches(c)))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let rows: &[(&str, Pattern)] = &[
            ("*", Pattern::All),
            ("news", Pattern::Exact("news".into())),
            ("user:*", Pattern::Prefix("user:".into())),
            ("**", Pattern::Prefix("*".into())),
            ("a*b", Pattern::Exact("a*b".into())),
            ("", Pattern::Exact(String::new())),
        ];
        for (text, want) in rows {
            assert_eq!(&Pattern::parse(text), want, "{text:?}");
        }
    }

    #[test]
    fn empty_channel_list_is_denied() {
        let claims = Claims {
            subscribe: vec![Pattern::All],
            publish: vec![Pattern::All],
            ..Claims::default()
        };
        assert!(!claims.can_subscribe(&[]));
        assert!(!claims.can_publish(&[]));
        assert!(claims.can_subscribe(&["x".into()]));
    }
}

//! The WHATWG "event stream interpretation" algorithm, written out plainly: the oracle that
//! encoded frames are decoded with (the same algorithm as `SpecParser` in
//! tests/sse_roundtrip.rs).

/// An event as a client sees it once dispatched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub kind: String,
    pub data: String,
    pub last_event_id: String,
    /// The reconnection time in force when the event was dispatched.
    pub retry_ms: Option<u64>,
}

/// Decodes a whole stream; returns the dispatched events and the final reconnection time.
pub fn decode(stream: &[u8]) -> (Vec<Received>, Option<u64>) {
    let stream = stream.strip_prefix(b"\xef\xbb\xbf").unwrap_or(stream);
    let mut state = State::default();
    let mut line = Vec::new();
    let mut after_cr = false;
    for &b in stream {
        if std::mem::take(&mut after_cr) && b == b'\n' {
            continue;
        }
        match b {
            b'\r' => {
                after_cr = true;
                state.line(&std::mem::take(&mut line));
            }
            b'\n' => state.line(&std::mem::take(&mut line)),
            _ => line.push(b),
        }
    }
    // An unterminated last line, or an event without its blank line, is discarded.
    (state.received, state.retry_ms)
}

#[derive(Default)]
struct State {
    data: String,
    kind: String,
    last_event_id: String,
    retry_ms: Option<u64>,
    received: Vec<Received>,
}

impl State {
    fn line(&mut self, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        if line.is_empty() {
            self.dispatch();
        } else if line.starts_with(':') {
        } else if let Some((field, value)) = line.split_once(':') {
            self.field(field, value.strip_prefix(' ').unwrap_or(value));
        } else {
            self.field(&line, "");
        }
    }

    fn field(&mut self, name: &str, value: &str) {
        match name {
            "event" => self.kind = value.to_owned(),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            "id" if !value.contains('\0') => self.last_event_id = value.to_owned(),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                if let Ok(ms) = value.parse() {
                    self.retry_ms = Some(ms);
                }
            }
            _ => {}
        }
    }

    fn dispatch(&mut self) {
        let mut data = std::mem::take(&mut self.data);
        let kind = std::mem::take(&mut self.kind);
        if data.is_empty() {
            return;
        }
        data.pop();
        self.received.push(Received {
            kind: if kind.is_empty() {
                "message".to_owned()
            } else {
                kind
            },
            data,
            last_event_id: self.last_event_id.clone(),
            retry_ms: self.retry_ms,
        });
    }
}

/// Line breaks as a client receives them: CRLF, CR and LF all become LF.
pub fn normalize_line_breaks(data: &str) -> String {
    data.replace("\r\n", "\n").replace('\r', "\n")
}

//! The generator's event-stream reader: the WHATWG "interpret an event stream" algorithm, fed
//! arbitrary byte chunks (line endings CRLF, LF or CR, which may straddle chunks).

/// One dispatched event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The last event id in force when this event was dispatched.
    pub id: String,
    pub event: String,
    pub data: String,
}

/// Incremental parser state.
#[derive(Debug, Default)]
pub struct SseReader {
    line: Vec<u8>,
    /// The previous chunk ended with CR: a leading LF of the next chunk belongs to it.
    after_cr: bool,
    started: bool,
    data: String,
    event: String,
    last_id: String,
    /// Comment lines seen (heartbeats).
    pub comments: u64,
    /// The last `retry:` value.
    pub retry_ms: Option<u64>,
}

impl SseReader {
    pub fn new() -> SseReader {
        SseReader::default()
    }

    /// Feed bytes; dispatched events are appended to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) {
        let mut rest = bytes;
        if self.after_cr {
            self.after_cr = false;
            if let Some(b'\n') = rest.first() {
                rest = rest.get(1..).unwrap_or_default();
            }
        }
        while let Some(pos) = memchr::memchr2(b'\n', b'\r', rest) {
            let (line, tail) = rest.split_at(pos);
            self.line.extend_from_slice(line);
            let crlf_or_cr = tail.first() == Some(&b'\r');
            let mut skip = 1;
            if crlf_or_cr {
                match tail.get(1) {
                    Some(b'\n') => skip = 2,
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            rest = tail.get(skip..).unwrap_or_default();
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, out);
            self.line = line;
            self.line.clear();
        }
        self.line.extend_from_slice(rest);
    }

    fn process_line(&mut self, raw: &[u8], out: &mut Vec<SseEvent>) {
        let mut line = raw;
        if !self.started {
            self.started = true;
            if let Some(stripped) = line.strip_prefix("\u{feff}".as_bytes()) {
                line = stripped;
            }
        }
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line.first() == Some(&b':') {
            self.comments += 1;
            return;
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(i) => {
                let value = line.get(i + 1..).unwrap_or_default();
                (
                    line.get(..i).unwrap_or_default(),
                    value.strip_prefix(b" ").unwrap_or(value),
                )
            }
            None => (line, &[][..]),
        };
        let value = String::from_utf8_lossy(value);
        match field {
            b"data" => {
                self.data.push_str(&value);
                self.data.push('\n');
            }
            b"event" => self.event = value.into_owned(),
            b"id" if !value.contains('\0') => self.last_id = value.into_owned(),
            b"retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry_ms = value.parse().ok();
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if self.data.is_empty() {
            self.event.clear();
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        if data.ends_with('\n') {
            data.pop();
        }
        let event = std::mem::take(&mut self.event);
        let event = if event.is_empty() {
            "message".to_string()
        } else {
            event
        };
        out.push(SseEvent {
            id: self.last_id.clone(),
            event,
            data,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(chunks: &[&[u8]]) -> (Vec<SseEvent>, u64) {
        let mut r = SseReader::new();
        let mut out = Vec::new();
        for c in chunks {
            r.feed(c, &mut out);
        }
        (out, r.comments)
    }

    fn ev(id: &str, event: &str, data: &str) -> SseEvent {
        SseEvent {
            id: id.into(),
            event: event.into(),
            data: data.into(),
        }
    }

    #[test]
    fn whole_and_split_streams_agree() {
        let stream: &[u8] = b"retry: 3000\n\nevent: connected\ndata: {}\n\n: heartbeat\n\nid: 1-0\r\nevent: t\r\ndata: a\rdata: b\r\n\r\nid: 2-0\ndata:c\n\n";
        let want = vec![
            ev("", "connected", "{}"),
            ev("1-0", "t", "a\nb"),
            ev("2-0", "message", "c"),
        ];
        assert_eq!(read_all(&[stream]), (want.clone(), 1));
        for split in 0..=stream.len() {
            let (a, b) = stream.split_at(split);
            assert_eq!(read_all(&[a, b]).0, want, "split at {split}");
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(read_all(&bytes).0, want);
    }

    #[test]
    fn spec_corner_cases() {
        // No data: nothing dispatched; id persists to later events; empty data line dispatches "".
        let (out, _) = read_all(&[b"event: x\n\nid: 7\n\ndata\n\ndata:\ndata:\n\n"]);
        assert_eq!(out, vec![ev("7", "message", ""), ev("7", "message", "\n")]);
        // An unfinished event at the end of the stream is not dispatched.
        let (out, _) = read_all(&[b"data: a\n"]);
        assert!(out.is_empty());
        // A BOM at the start is ignored; one leading space only is stripped.
        let (out, _) = read_all(&["\u{feff}data:  two\n\n".as_bytes()]);
        assert_eq!(out, vec![ev("", "message", " two")]);
    }
}

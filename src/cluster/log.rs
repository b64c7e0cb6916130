//! A blocking client of the log stream: one Redis connection with connect, read and write
//! timeouts, and the few commands the log needs (Redis 7.0 command set). Used only from the
//! bridge threads ([`super::bridge`]) and start-up, never from an io_uring worker.

use std::fmt;
use std::time::{Duration, Instant};

use redis::Value;

use super::config::{redact, ClusterSettings};
use super::decode::{
    self, decode_added_ids, decode_entries, decode_stream_state, decode_xread, DecodeError,
    Decoded, LogState, FIELD_CHANNELS, FIELD_DATA, FIELD_TYPE,
};
use crate::bus::NewEvent;
use crate::sse::id::EventId;

/// Why a log operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogError {
    /// No connection could be made (refused, unreachable, timed out, handshake failed).
    Connect(String),
    /// The connection failed mid-operation; it was dropped and will be re-made.
    Io(String),
    /// No answer within the operation timeout; the connection was dropped.
    Timeout(String),
    /// Redis answered with an error.
    Server(String),
    /// Redis answered something the log cannot read.
    Decode(DecodeError),
    /// The key exists but is not a stream.
    WrongType(String),
    /// An event cannot be written as a log entry (bad channel name, …).
    Event(String),
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogError::Connect(e) => write!(f, "cannot connect to Redis: {e}"),
            LogError::Io(e) => write!(f, "Redis connection failed: {e}"),
            LogError::Timeout(e) => write!(f, "Redis did not answer in time: {e}"),
            LogError::Server(e) => write!(f, "Redis error: {e}"),
            LogError::Decode(e) => write!(f, "unexpected Redis reply: {e}"),
            LogError::WrongType(t) => write!(f, "the log key holds a {t}, not a stream"),
            LogError::Event(e) => write!(f, "event cannot be logged: {e}"),
        }
    }
}

impl std::error::Error for LogError {}

impl From<DecodeError> for LogError {
    fn from(e: DecodeError) -> Self {
        LogError::Decode(e)
    }
}

/// What an append did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Appended {
    /// Stored, one id per event, in order.
    Stored(Vec<EventId>),
    /// Nothing stored: the stream does not exist (the log was lost; re-create it first).
    NoStream,
}

/// What [`RedisLog::recreate_above`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Raised {
    /// The stream did not exist; it was created with a marker entry (this id) above the floor.
    Created(EventId),
    /// The stream's last id was at or below the floor; a marker (this id) raised it above.
    Raised(EventId),
    /// The stream's last id was already above the floor (this id); nothing was written.
    Above(EventId),
}

impl Raised {
    pub fn id(self) -> EventId {
        match self {
            Raised::Created(id) | Raised::Raised(id) | Raised::Above(id) => id,
        }
    }
}

/// Creates the stream with a marker entry just above the floor (ARGV[1]) if it is missing, or
/// raises its last id the same way if it is at or below the floor, and records the floor as
/// `max-deleted-entry-id` so ids from before it are not served as exact. Atomic (one script).
/// KEYS[1] = stream; ARGV = floor, marker id (floor's successor), marker text.
const RECREATE_SCRIPT: &str = r"
local function less(a, b)
  local am, as = string.match(a, '^(%d+)%-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)%-(%d+)$')
  if #am ~= #bm then return #am < #bm end
  if am ~= bm then return am < bm end
  if #as ~= #bs then return #as < #bs end
  return as < bs
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  local id = redis.call('XADD', KEYS[1], ARGV[2], 'marker', ARGV[3])
  redis.call('XSETID', KEYS[1], id, 'ENTRIESADDED', 1, 'MAXDELETEDID', ARGV[1])
  return {'created', id}
end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local last = nil
for i = 1, #info, 2 do
  if info[i] == 'last-generated-id' then last = info[i + 1] end
end
if last ~= nil and less(last, ARGV[2]) then
  local id = redis.call('XADD', KEYS[1], ARGV[2], 'marker', ARGV[3])
  redis.call('XSETID', KEYS[1], id, 'MAXDELETEDID', ARGV[1])
  return {'raised', id}
end
return {'above', last}
";

/// One connection to the log, re-made on demand after a failure.
pub struct RedisLog {
    client: redis::Client,
    shown_url: String,
    con: Option<redis::Connection>,
    key: String,
    maxlen: u64,
    timeout: Duration,
}

impl fmt::Debug for RedisLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLog")
            .field("url", &self.shown_url)
            .field("key", &self.key)
            .field("connected", &self.con.is_some())
            .finish()
    }
}

impl RedisLog {
    /// A client for the settings' log (no connection yet: see [`RedisLog::connect`]).
    pub fn new(settings: &ClusterSettings) -> Result<Self, LogError> {
        let client = redis::Client::open(settings.url.as_str())
            .map_err(|e| LogError::Connect(one_line(&e)))?;
        Ok(RedisLog {
            client,
            shown_url: redact(&settings.url),
            con: None,
            key: settings.stream.clone(),
            maxlen: settings.maxlen,
            timeout: settings.timeout,
        })
    }

    /// The stream key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The URL, password hidden.
    pub fn shown_url(&self) -> &str {
        &self.shown_url
    }

    /// Whether a connection is open (it may still fail at its next use).
    pub fn is_connected(&self) -> bool {
        self.con.is_some()
    }

    /// Opens the connection if there is none, within `timeout`, and checks it with `PING`.
    pub fn connect(&mut self, timeout: Duration) -> Result<(), LogError> {
        if self.con.is_some() {
            return Ok(());
        }
        let timeout = timeout.max(Duration::from_millis(1));
        let mut con = self
            .client
            .get_connection_with_timeout(timeout)
            .map_err(|e| LogError::Connect(one_line(&e)))?;
        set_timeouts(&con, timeout).map_err(LogError::Connect)?;
        redis::cmd("PING")
            .query::<Value>(&mut con)
            .map_err(|e| LogError::Connect(one_line(&e)))?;
        set_timeouts(&con, self.timeout).map_err(LogError::Connect)?;
        self.con = Some(con);
        Ok(())
    }

    /// Drops the connection (the next operation re-makes it).
    pub fn disconnect(&mut self) {
        self.con = None;
    }

    /// Runs one command or pipeline with read/write timeouts of `timeout`, dropping the
    /// connection on any failure so a late reply can never be read as the next one's.
    fn run<T>(
        &mut self,
        timeout: Duration,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, LogError> {
        self.connect(self.timeout)?;
        let Some(con) = self.con.as_mut() else {
            return Err(LogError::Connect("not connected".into()));
        };
        if let Err(e) = set_timeouts(con, timeout) {
            self.con = None;
            return Err(LogError::Io(e));
        }
        match f(con) {
            Ok(v) => Ok(v),
            Err(e) => {
                let server = e.code().is_some() && !e.is_io_error() && !e.is_timeout();
                let text = one_line(&e);
                if server && text.contains("no such key") {
                    return Err(LogError::Server(text));
                }
                self.con = None;
                Err(if server {
                    LogError::Server(text)
                } else if e.is_timeout() {
                    LogError::Timeout(text)
                } else {
                    LogError::Io(text)
                })
            }
        }
    }

    /// Appends the events in one round trip: `MULTI`, one `XADD key NOMKSTREAM MAXLEN ~ N *`
    /// per event, `EXEC`. All or nothing: Redis acknowledged every id returned, and nothing is
    /// stored when the stream is missing ([`Appended::NoStream`]).
    pub fn append<'a>(
        &mut self,
        events: impl IntoIterator<Item = &'a NewEvent>,
        timeout: Duration,
    ) -> Result<Appended, LogError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut count = 0usize;
        for event in events {
            let channels = join_channels(&event.channels)?;
            pipe.cmd("XADD")
                .arg(&self.key)
                .arg("NOMKSTREAM")
                .arg("MAXLEN")
                .arg("~")
                .arg(self.maxlen)
                .arg("*")
                .arg(FIELD_CHANNELS)
                .arg(channels)
                .arg(FIELD_TYPE)
                .arg(&event.event_type)
                .arg(FIELD_DATA)
                .arg(&event.data);
            count += 1;
        }
        if count == 0 {
            return Ok(Appended::Stored(Vec::new()));
        }
        let reply: Value = self.run(timeout, |con| pipe.query(con))?;
        if let Value::Array(items) = &reply {
            if let Some(Value::ServerError(e)) =
                items.iter().find(|v| matches!(v, Value::ServerError(_)))
            {
                return Err(LogError::Server(format!("{e:?}")));
            }
        }
        Ok(match decode_added_ids(reply, count)? {
            Some(ids) => Appended::Stored(ids),
            None => Appended::NoStream,
        })
    }

    /// Waits up to `block` for entries after `after` (`XREAD COUNT n BLOCK ms STREAMS key
    /// after`: always from an id, never `$`). Empty when none came.
    pub fn read_after(
        &mut self,
        after: EventId,
        count: usize,
        block: Duration,
    ) -> Result<Vec<Decoded>, LogError> {
        let block_ms = u64::try_from(block.as_millis()).unwrap_or(u64::MAX).max(1);
        let key = self.key.clone();
        let timeout = block + self.timeout;
        let reply: Value = self.run(timeout, |con| {
            redis::cmd("XREAD")
                .arg("COUNT")
                .arg(count.max(1))
                .arg("BLOCK")
                .arg(block_ms)
                .arg("STREAMS")
                .arg(&key)
                .arg(after.to_string())
                .query(con)
        })?;
        Ok(decode_xread(reply, &key, after)?)
    }

    /// Up to `count` entries in `(after, until]` (`XRANGE key (after until COUNT n`), for a
    /// backfill (`until` = [`EventId::MAX`]) or a resume older than local history.
    pub fn range(
        &mut self,
        after: EventId,
        until: EventId,
        count: usize,
    ) -> Result<Vec<Decoded>, LogError> {
        if after >= until {
            return Ok(Vec::new());
        }
        let key = self.key.clone();
        let timeout = self.timeout;
        let reply: Value = self.run(timeout, |con| {
            redis::cmd("XRANGE")
                .arg(&key)
                .arg(format!("({after}"))
                .arg(until.to_string())
                .arg("COUNT")
                .arg(count.max(1))
                .query(con)
        })?;
        let entries = decode_entries(reply, after)?;
        if let Some(last) = entries.last() {
            if last.id() > until {
                return Err(LogError::Decode(DecodeError::Order {
                    previous: until,
                    next: last.id(),
                }));
            }
        }
        Ok(entries)
    }

    /// Whether the entry `id` is in the stream.
    pub fn entry_exists(&mut self, id: EventId) -> Result<bool, LogError> {
        let key = self.key.clone();
        let text = id.to_string();
        let timeout = self.timeout;
        let reply: Value = self.run(timeout, |con| {
            redis::cmd("XRANGE")
                .arg(&key)
                .arg(&text)
                .arg(&text)
                .arg("COUNT")
                .arg(1)
                .query(con)
        })?;
        let entries = decode_entries(reply, EventId::ZERO)?;
        Ok(entries.iter().any(|e| e.id() == id))
    }

    /// The stream's state (`XINFO STREAM`), `None` when the key does not exist.
    pub fn state(&mut self) -> Result<Option<LogState>, LogError> {
        let key = self.key.clone();
        let timeout = self.timeout;
        match self.run(timeout, |con| {
            redis::cmd("XINFO").arg("STREAM").arg(&key).query(con)
        }) {
            Ok(reply) => Ok(Some(decode_stream_state(reply)?)),
            Err(LogError::Server(e)) if e.contains("no such key") => Ok(None),
            Err(LogError::Server(e)) if e.contains("WRONGTYPE") => {
                Err(LogError::WrongType(self.key_type().unwrap_or_default()))
            }
            Err(e) => Err(e),
        }
    }

    /// The key's type (`TYPE`): `none`, `stream`, `string`, …
    pub fn key_type(&mut self) -> Result<String, LogError> {
        let key = self.key.clone();
        let timeout = self.timeout;
        let reply: Value = self.run(timeout, |con| redis::cmd("TYPE").arg(&key).query(con))?;
        match reply {
            Value::SimpleString(s) => Ok(s),
            Value::BulkString(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
            other => Err(LogError::Decode(DecodeError::Type {
                what: "key type",
                expected: "string",
                found: decode::kind_name(&other),
            })),
        }
    }

    /// Makes sure every id the log hands out from now on is above `floor`: creates the stream
    /// if it is missing, or raises it if its last id is at or below the floor (one atomic
    /// script; see [`RECREATE_SCRIPT`]). `why` is the marker entry's text.
    pub fn recreate_above(&mut self, floor: EventId, why: &str) -> Result<Raised, LogError> {
        let key = self.key.clone();
        let timeout = self.timeout;
        let reply: Value = self.run(timeout, |con| {
            redis::cmd("EVAL")
                .arg(RECREATE_SCRIPT)
                .arg(1)
                .arg(&key)
                .arg(floor.to_string())
                .arg(floor.successor().to_string())
                .arg(why)
                .query(con)
        })?;
        decode_raised(reply).map_err(LogError::Decode)
    }

    /// Deletes entries (`XDEL`): used to take back entries that landed at or below the floor.
    pub fn delete(&mut self, ids: &[EventId]) -> Result<u64, LogError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let key = self.key.clone();
        let timeout = self.timeout;
        self.run(timeout, |con| {
            let mut cmd = redis::cmd("XDEL");
            cmd.arg(&key);
            for id in ids {
                cmd.arg(id.to_string());
            }
            cmd.query(con)
        })
    }

    /// Deletes the whole stream (`DEL`): for tools and tests, never the server.
    pub fn delete_stream(&mut self) -> Result<(), LogError> {
        let key = self.key.clone();
        let timeout = self.timeout;
        self.run(timeout, |con| {
            redis::cmd("DEL").arg(&key).query::<Value>(con)
        })
        .map(drop)
    }

    /// Connects, retrying until `wait` has passed; the last error otherwise.
    pub fn connect_within(&mut self, wait: Duration) -> Result<(), LogError> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.connect(self.timeout.min(left.max(Duration::from_millis(100)))) {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(100).min(left)),
            }
        }
    }
}

/// The reply of [`RECREATE_SCRIPT`]: `[what, id]`.
pub fn decode_raised(v: Value) -> Result<Raised, DecodeError> {
    let Value::Array(parts) = v else {
        return Err(DecodeError::Type {
            what: "recreate reply",
            expected: "array",
            found: decode::kind_name(&v),
        });
    };
    let [what, id] = parts.as_slice() else {
        return Err(DecodeError::Length {
            what: "recreate reply",
            expected: "2",
            found: parts.len(),
        });
    };
    let id = decode::decode_id(id, "recreate id")?;
    match what {
        Value::BulkString(b) if b.as_slice() == b"created" => Ok(Raised::Created(id)),
        Value::BulkString(b) if b.as_slice() == b"raised" => Ok(Raised::Raised(id)),
        Value::BulkString(b) if b.as_slice() == b"above" => Ok(Raised::Above(id)),
        _ => Err(DecodeError::UnknownField("recreate outcome".into())),
    }
}

/// The `channels` field of an entry: names checked, comma-joined.
pub fn join_channels(channels: &[String]) -> Result<String, LogError> {
    let joined = channels.join(",");
    decode::split_channels(&joined).map_err(|e| LogError::Event(e.to_string()))?;
    Ok(joined)
}

fn set_timeouts(con: &redis::Connection, timeout: Duration) -> Result<(), String> {
    let timeout = Some(timeout.max(Duration::from_millis(1)));
    con.set_read_timeout(timeout).map_err(|e| one_line(&e))?;
    con.set_write_timeout(timeout).map_err(|e| one_line(&e))
}

fn one_line(e: &dyn fmt::Display) -> String {
    let text = e.to_string();
    text.lines().next().unwrap_or_default().to_owned()
}

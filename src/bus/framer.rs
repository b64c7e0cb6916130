//! Framing a sequenced event once: its SSE frame and, with `--gzip`, its gzip segment — the
//! bytes every worker shares with every subscriber. Used by every sequencer (in-process, and
//! the Redis tailer and log reader), so the same event is the same bytes everywhere.

use std::sync::Arc;

use super::Sequenced;
use crate::sse::encode::encode_published;
use crate::sse::gzip::Compressor;
use crate::sse::id::EventId;

/// Makes [`Sequenced`] events; holds the compressor when gzip is on (one per sequencer thread).
#[derive(Debug, Default)]
pub struct Framer {
    gzip: Option<Compressor>,
}

impl Framer {
    /// `gzip`: also compress each frame once into an independent deflate segment.
    pub fn new(gzip: bool) -> Framer {
        Framer {
            gzip: gzip.then(Compressor::default),
        }
    }

    /// The event, framed; `None` if its type cannot be framed (validated on publish, so only
    /// a foreign log entry gets here).
    pub fn frame(
        &mut self,
        id: EventId,
        channels: Vec<String>,
        event_type: &str,
        data: &str,
        at_ms: u64,
    ) -> Option<Arc<Sequenced>> {
        let frame = encode_published(id, event_type, data).ok()?.into_bytes();
        let gzip = self.gzip.as_mut().map(|c| c.segment(&frame));
        Some(Arc::new(Sequenced {
            id,
            channels: channels.into_boxed_slice(),
            frame,
            gzip,
            at_ms,
        }))
    }
}

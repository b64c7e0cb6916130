//! Request bodies: the `Content-Length` limit and an incremental chunked decoder.
//!
//! The decoder is strict, with the same line rule as the head parser (CRLF only, a bare LF or
//! CR is an error):
//! - chunk sizes are 1 to [`MAX_CHUNK_SIZE_DIGITS`] hex digits (leading zeros count), no sign,
//!   no `0x`, no whitespace unless an extension follows (`5 ;ext`);
//! - chunk extensions are accepted and ignored; their bytes must be HTAB, SP, VCHAR or obs-text,
//!   at most [`MAX_CHUNK_EXT_BYTES`] per chunk and [`MAX_CHUNK_EXT_TOTAL_BYTES`] per body;
//! - chunk data must be followed by CRLF;
//! - trailer fields are checked as `token ":" value` (no obs-fold, no whitespace before the
//!   colon) and discarded; at most [`MAX_TRAILER_BYTES`] of them (→ 431);
//! - the body limit is enforced on the declared sizes: 413 as soon as a chunk-size line would take
//!   the body over it, before any of that chunk's data is buffered.

use super::error::{ChunkError, HttpError};
use super::query::hex_value;
use super::scan::is_token_byte;

/// Default limit on a request body (→ 413).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// The most hex digits in one chunk size, leading zeros included (16 fill a `u64`).
pub const MAX_CHUNK_SIZE_DIGITS: u32 = 16;
/// The most bytes of chunk extensions on one chunk-size line (from the first `;` or BWS).
pub const MAX_CHUNK_EXT_BYTES: usize = 1024;
/// The most bytes of chunk extensions in one body.
pub const MAX_CHUNK_EXT_TOTAL_BYTES: usize = 16 * 1024;
/// The most bytes of trailer fields in one body (→ 431).
pub const MAX_TRAILER_BYTES: usize = 8 * 1024;

/// Validate a `Content-Length` against the limit: the length as `usize`, or 413.
pub fn check_length(len: u64, max_body_bytes: usize) -> Result<usize, HttpError> {
    usize::try_from(len)
        .ok()
        .filter(|&n| n <= max_body_bytes)
        .ok_or(HttpError::BodyTooLarge {
            max_bytes: max_body_bytes,
        })
}

/// Where the decoder is in the chunked stream.
#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    /// Reading the hex digits of a chunk size.
    Size,
    /// After whitespace that follows the size: only more whitespace or `;` may come.
    SizeSpace,
    /// In a chunk extension, up to CR.
    Extension,
    /// After the CR of a chunk-size line.
    SizeLf,
    /// Copying chunk data; `remaining` bytes to go.
    Data,
    /// After chunk data: CR, then LF.
    DataCr,
    DataLf,
    /// At the start of a trailer line, or of the final empty line.
    TrailerStart,
    /// In a trailer field name, then in its value.
    TrailerName,
    TrailerValue,
    /// After the CR of a trailer line.
    TrailerLf,
    /// After the CR of the final empty line.
    EndLf,
    /// The body is complete.
    Done,
    /// An error was returned; it is returned again.
    Failed(HttpError),
}

/// Incremental decoder of a `Transfer-Encoding: chunked` body.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
    max_body_bytes: usize,
    /// Body bytes declared so far (sizes of the chunks seen, never above the limit).
    declared: u64,
    /// The chunk size being read, then the data bytes still to copy.
    remaining: u64,
    digits: u32,
    ext_bytes: usize,
    ext_total_bytes: usize,
    trailer_bytes: usize,
}

/// Result of one [`ChunkedDecoder::decode`] call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkStep {
    /// Bytes of the input used; the rest (after `done`) belongs to the next request.
    pub consumed: usize,
    /// Whether the last chunk and the trailers have been read.
    pub done: bool,
}

impl ChunkedDecoder {
    /// A decoder for one body of at most `max_body_bytes` decoded bytes.
    pub fn new(max_body_bytes: usize) -> Self {
        Self {
            state: State::Size,
            max_body_bytes,
            declared: 0,
            remaining: 0,
            digits: 0,
            ext_bytes: 0,
            ext_total_bytes: 0,
            trailer_bytes: 0,
        }
    }

    /// Whether the whole body has been decoded.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decode as much of `input` as possible, appending body bytes to `out`. Incremental: may be
    /// fed any split of the stream. `done` once the last-chunk and trailers are consumed;
    /// `consumed` is how many bytes of `input` were used (bytes after the end belong to the next
    /// pipelined request). After an error, every later call returns the same error.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<ChunkStep, HttpError> {
        match self.run(input, out) {
            Ok(step) => Ok(step),
            Err(e) => {
                self.state = State::Failed(e.clone());
                Err(e)
            }
        }
    }

    fn run(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<ChunkStep, HttpError> {
        if let State::Failed(e) = &self.state {
            return Err(e.clone());
        }
        let mut pos = 0;
        while let Some(rest) = input.get(pos..).filter(|r| !r.is_empty()) {
            if self.state == State::Data {
                let take = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(rest.len());
                out.extend_from_slice(rest.get(..take).unwrap_or(&[]));
                pos += take;
                self.remaining -= take as u64;
                if self.remaining == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            let Some(&b) = rest.first() else { break };
            if self.state == State::Done {
                break;
            }
            self.step(b)?;
            pos += 1;
        }
        Ok(ChunkStep {
            consumed: pos,
            done: self.state == State::Done,
        })
    }

    /// Advance the state machine by one byte outside chunk data.
    fn step(&mut self, b: u8) -> Result<(), HttpError> {
        match self.state {
            State::Size => match (hex_value(b), b) {
                (Some(d), _) => self.size_digit(d)?,
                (None, _) if self.digits == 0 => return Err(ChunkError::BadSize.into()),
                (None, b';') => self.extension_byte(State::Extension)?,
                (None, b' ' | b'\t') => self.extension_byte(State::SizeSpace)?,
                (None, b'\r') => self.state = State::SizeLf,
                (None, b'\n') => return Err(ChunkError::MissingCrlf.into()),
                (None, _) => return Err(ChunkError::BadSize.into()),
            },
            State::SizeSpace => match b {
                b' ' | b'\t' => self.extension_byte(State::SizeSpace)?,
                b';' => self.extension_byte(State::Extension)?,
                _ => return Err(ChunkError::BadSize.into()),
            },
            State::Extension => match b {
                b'\r' => self.state = State::SizeLf,
                b'\n' => return Err(ChunkError::MissingCrlf.into()),
                b'\t' | 0x20..=0x7e | 0x80..=0xff => self.extension_byte(State::Extension)?,
                _ => return Err(ChunkError::BadExtension.into()),
            },
            State::SizeLf => {
                expect_lf(b)?;
                self.declared = self.declared.saturating_add(self.remaining);
                self.ext_bytes = 0;
                self.digits = 0;
                self.state = if self.remaining == 0 {
                    State::TrailerStart
                } else {
                    State::Data
                };
            }
            State::DataCr => {
                if b != b'\r' {
                    return Err(ChunkError::MissingCrlf.into());
                }
                self.state = State::DataLf;
            }
            State::DataLf => {
                expect_lf(b)?;
                self.state = State::Size;
            }
            State::TrailerStart => match b {
                b'\r' => self.state = State::EndLf,
                b'\n' => return Err(ChunkError::MissingCrlf.into()),
                _ if is_token_byte(b) => self.trailer_byte(State::TrailerName)?,
                _ => return Err(ChunkError::BadTrailer.into()),
            },
            State::TrailerName => match b {
                b':' => self.trailer_byte(State::TrailerValue)?,
                _ if is_token_byte(b) => self.trailer_byte(State::TrailerName)?,
                _ => return Err(ChunkError::BadTrailer.into()),
            },
            State::TrailerValue => match b {
                b'\r' => self.trailer_byte(State::TrailerLf)?,
                b'\n' => return Err(ChunkError::MissingCrlf.into()),
                b'\t' | 0x20..=0x7e | 0x80..=0xff => self.trailer_byte(State::TrailerValue)?,
                _ => return Err(ChunkError::BadTrailer.into()),
            },
            State::TrailerLf => {
                expect_lf(b)?;
                self.trailer_byte(State::TrailerStart)?;
            }
            State::EndLf => {
                expect_lf(b)?;
                self.state = State::Done;
            }
            State::Data | State::Done | State::Failed(_) => {}
        }
        Ok(())
    }

    fn size_digit(&mut self, d: u8) -> Result<(), HttpError> {
        self.digits += 1;
        if self.digits > MAX_CHUNK_SIZE_DIGITS {
            return Err(ChunkError::SizeTooLong.into());
        }
        // At most 16 digits: fits u64. Sizes only grow with more digits, so the limit can be
        // checked on every digit.
        self.remaining = self
            .remaining
            .checked_mul(16)
            .ok_or(ChunkError::SizeTooLong)?
            | u64::from(d);
        let total = self.declared.checked_add(self.remaining);
        match total {
            Some(total) if total <= self.max_body_bytes as u64 => Ok(()),
            _ => Err(HttpError::BodyTooLarge {
                max_bytes: self.max_body_bytes,
            }),
        }
    }

    fn extension_byte(&mut self, next: State) -> Result<(), HttpError> {
        self.ext_bytes += 1;
        self.ext_total_bytes += 1;
        if self.ext_bytes > MAX_CHUNK_EXT_BYTES || self.ext_total_bytes > MAX_CHUNK_EXT_TOTAL_BYTES
        {
            return Err(ChunkError::ExtensionTooLong.into());
        }
        self.state = next;
        Ok(())
    }

    fn trailer_byte(&mut self, next: State) -> Result<(), HttpError> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > MAX_TRAILER_BYTES {
            return Err(HttpError::TrailersTooLarge {
                max_bytes: MAX_TRAILER_BYTES,
            });
        }
        self.state = next;
        Ok(())
    }
}

fn expect_lf(b: u8) -> Result<(), HttpError> {
    if b == b'\n' {
        Ok(())
    } else {
        Err(ChunkError::MissingCrlf.into())
    }
}

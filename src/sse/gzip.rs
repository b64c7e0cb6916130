//! gzip compressed once per event, shared by every gzip subscriber.
//!
//! A gzip subscriber's body is [`HEADER`] (a fixed 10-byte gzip member header) followed by one
//! *segment* per frame, in the order the frames would have been written. A segment is an
//! independent piece of raw deflate (RFC 1951):
//!
//! - it never refers back to bytes before its own start (a fresh compressor per frame), so the
//!   same segment is valid after any other segments, in any stream, on any core;
//! - it starts and ends on a byte boundary and has no final (`BFINAL`) block, so segments
//!   concatenate into one valid, unterminated deflate stream;
//! - a compressed segment ends in a sync flush (an empty stored block, `00 00 ff ff`), so a
//!   streaming inflater emits the whole frame as soon as the segment has arrived;
//! - a small frame (below [`Compressor::min_deflate_bytes`]), or one that deflate would not
//!   shrink, is sent as stored (uncompressed) blocks: 5 bytes of header per 65,535 bytes.
//!
//! No trailer is ever written: an event stream ends by closing the connection, browsers skip
//! or ignore the CRC/ISIZE trailer, and a decoder that wants one reports a truncated stream,
//! which for an endless stream is a reconnect anyway (`/work/shared/research/wire.md`, A1).
//!
//! Pure: no I/O. One [`Compressor`] per core (it owns a deflate state, ~300 KB); segments are
//! `Bytes`, cloned by reference count like frames.

use bytes::Bytes;
use flate2::{Compress, Compression, FlushCompress, Status};

/// The gzip member header that starts every gzip event stream: magic `1f 8b`, method 8
/// (deflate), no flags, no modification time, no extra flags, OS 255 (unknown).
pub const HEADER: [u8; 10] = [0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0xff];

/// Frames shorter than this go out as stored blocks by default: deflate rarely saves more than
/// its own block overhead on them, and storing costs no CPU.
pub const DEFAULT_MIN_DEFLATE_BYTES: usize = 192;

/// Default deflate level: 1 (fastest). On SSE JSON events it compresses within ~2 points of
/// level 6 (`research/wire.md` A2) at a fraction of the CPU; see `benches/gzip.rs`.
pub const DEFAULT_LEVEL: u32 = 1;

/// Largest payload of one stored block (its length field is 16 bits).
const MAX_STORED_BLOCK: usize = 0xffff;

/// The header as a shared buffer: the first write of every gzip stream.
pub fn header() -> Bytes {
    Bytes::from_static(&HEADER)
}

/// How a segment was encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentKind {
    /// Compressed, ending in a sync flush.
    Deflated,
    /// Stored blocks (uncompressed).
    Stored,
}

/// Encodes frames into independent gzip segments. Reusable: keep one per core.
pub struct Compressor {
    deflate: Compress,
    /// Frames shorter than this are stored, not deflated.
    pub min_deflate_bytes: usize,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compressor")
            .field("min_deflate_bytes", &self.min_deflate_bytes)
            .finish_non_exhaustive()
    }
}

impl Default for Compressor {
    fn default() -> Self {
        Compressor::new(DEFAULT_LEVEL, DEFAULT_MIN_DEFLATE_BYTES)
    }
}

impl Compressor {
    /// A compressor at deflate `level` (0–9; larger values are taken as 9) that stores frames
    /// shorter than `min_deflate_bytes`.
    pub fn new(level: u32, min_deflate_bytes: usize) -> Compressor {
        Compressor {
            // `false`: raw deflate, no zlib header or Adler-32 trailer.
            deflate: Compress::new(Compression::new(level.min(9)), false),
            min_deflate_bytes,
            scratch: Vec::new(),
        }
    }

    /// The segment for one frame: the bytes every gzip subscriber receives for it.
    pub fn segment(&mut self, frame: &[u8]) -> Bytes {
        let mut out = Vec::new();
        self.segment_into(frame, &mut out);
        Bytes::from(out)
    }

    /// Append the segment for `frame` to `out`; returns how it was encoded.
    pub fn segment_into(&mut self, frame: &[u8], out: &mut Vec<u8>) -> SegmentKind {
        if frame.len() >= self.min_deflate_bytes && self.deflate_into_scratch(frame) {
            // Deflate only where it beats storing.
            if self.scratch.len() < stored_len(frame.len()) {
                out.extend_from_slice(&self.scratch);
                return SegmentKind::Deflated;
            }
        }
        stored_into(frame, out);
        SegmentKind::Stored
    }

    /// Deflate `frame` with a fresh state into `scratch`, ending in a sync flush. False if the
    /// compressor reported an error (then the frame is stored instead).
    fn deflate_into_scratch(&mut self, frame: &[u8]) -> bool {
        self.deflate.reset();
        self.scratch.clear();
        // Worst case for incompressible input is about 5 bytes per 16 KiB block plus the flush.
        self.scratch.reserve(frame.len() + frame.len() / 64 + 64);
        let mut input = frame;
        loop {
            let before_in = self.deflate.total_in();
            let result = self
                .deflate
                .compress_vec(input, &mut self.scratch, FlushCompress::Sync);
            let consumed = usize::try_from(self.deflate.total_in() - before_in).unwrap_or(0);
            input = input.get(consumed..).unwrap_or_default();
            match result {
                Ok(Status::Ok | Status::BufError) => {}
                // StreamEnd cannot follow a sync flush; an error leaves the frame to be stored.
                _ => return false,
            }
            // Done when all input is in and the flush fitted (room was left in the buffer).
            if input.is_empty() && self.scratch.len() < self.scratch.capacity() {
                return true;
            }
            self.scratch.reserve(self.scratch.capacity().max(64));
        }
    }
}

/// Bytes of `len` bytes stored as deflate stored blocks.
pub fn stored_len(len: usize) -> usize {
    len + 5 * len.div_ceil(MAX_STORED_BLOCK).max(1)
}

/// Append `frame` as stored (uncompressed) deflate blocks: each block is the byte `00`
/// (not final, type 00), LEN and its one's complement NLEN (u16, little-endian), then the bytes.
/// An empty frame becomes one empty stored block, which is also what a sync flush emits.
pub fn stored_into(frame: &[u8], out: &mut Vec<u8>) {
    out.reserve(stored_len(frame.len()));
    let mut blocks = frame.chunks(MAX_STORED_BLOCK).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[0x00, 0x00, 0x00, 0xff, 0xff]);
        return;
    }
    for block in blocks {
        let len = u16::try_from(block.len()).unwrap_or(u16::MAX);
        out.push(0x00);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
}

/// `frame` as a stored segment (no compressor needed): for per-connection bytes such as the
/// initial `retry:` and `connected` event, or a heartbeat computed once.
pub fn stored(frame: &[u8]) -> Bytes {
    let mut out = Vec::new();
    stored_into(frame, &mut out);
    Bytes::from(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use flate2::{Crc, Decompress, FlushDecompress};
    use std::io::Read;

    /// A streaming inflater that parses the gzip header and yields output per fed chunk, as
    /// Chromium's and Firefox's decoders do.
    struct Inflater {
        raw: Decompress,
        header_left: usize,
    }

    impl Inflater {
        fn new() -> Inflater {
            Inflater {
                raw: Decompress::new(false),
                header_left: HEADER.len(),
            }
        }

        /// Feed bytes; returns what could be decoded from them.
        fn feed(&mut self, mut bytes: &[u8]) -> Vec<u8> {
            let skip = self.header_left.min(bytes.len());
            self.header_left -= skip;
            bytes = &bytes[skip..];
            let mut out = Vec::with_capacity(bytes.len() * 8 + 1024);
            while !bytes.is_empty() {
                let before = self.raw.total_in();
                let status = self
                    .raw
                    .decompress_vec(bytes, &mut out, FlushDecompress::Sync)
                    .expect("segment must inflate");
                assert_ne!(status, Status::StreamEnd, "no segment may end the stream");
                let used = (self.raw.total_in() - before) as usize;
                bytes = &bytes[used..];
                if out.len() == out.capacity() {
                    out.reserve(out.capacity());
                }
                assert!(used > 0 || out.len() < out.capacity(), "inflater stuck");
            }
            out
        }
    }

    /// JSON-ish SSE frames of about `len` bytes.
    fn frame(i: usize, len: usize) -> Vec<u8> {
        let mut data = format!(
            "{{\"seq\":{i},\"price\":{}.{:02},\"rows\":[",
            100 + i % 37,
            i % 100
        );
        let mut k = 0;
        while data.len() + 40 < len {
            data.push_str(&format!(
                "{{\"id\":{k},\"qty\":{},\"side\":\"buy\"}},",
                (k * 7 + i) % 1000
            ));
            k += 1;
        }
        data.push_str("0]}");
        format!("id: 1700000000000-{i}\nevent: update\ndata: {data}\n\n").into_bytes()
    }

    /// Deterministic pseudo-random bytes (incompressible).
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn cases() -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = vec![
            Vec::new(),
            b": heartbeat\n\n".to_vec(),
            b"retry: 3000\n\n".to_vec(),
            frame(1, 100),
            frame(2, 191),
            frame(3, 192),
            frame(4, 1024),
            frame(5, 4096),
            frame(6, 70_000),
            vec![b'a'; 200_000],
            noise(300, 1),
            noise(70_000, 2),
        ];
        v.push(frame(7, 1024));
        v
    }

    #[test]
    fn header_is_a_gzip_header() {
        assert_eq!(&HEADER[..3], &[0x1f, 0x8b, 8]);
        assert_eq!(header().as_ref(), &HEADER);
    }

    #[test]
    fn every_segment_is_emitted_as_soon_as_it_arrives() {
        for level in [0, 1, 6, 9] {
            let mut c = Compressor::new(level, DEFAULT_MIN_DEFLATE_BYTES);
            let mut inflater = Inflater::new();
            assert!(inflater.feed(&HEADER).is_empty());
            for (i, f) in cases().iter().enumerate() {
                let seg = c.segment(f);
                assert_eq!(&inflater.feed(&seg), f, "level {level}, case {i}");
            }
        }
    }

    #[test]
    fn segments_are_independent_in_any_order_and_repeated() {
        let mut c = Compressor::default();
        let frames = cases();
        let segs: Vec<Bytes> = frames.iter().map(|f| c.segment(f)).collect();
        // Orders no compressor saw: reversed, every other one, one repeated.
        let orders: Vec<Vec<usize>> = vec![
            (0..segs.len()).rev().collect(),
            (0..segs.len()).step_by(2).collect(),
            vec![7, 7, 3, 7, 6, 6],
            vec![11],
        ];
        for order in orders {
            let mut inflater = Inflater::new();
            inflater.feed(&HEADER);
            let mut got = Vec::new();
            let mut want = Vec::new();
            for &i in &order {
                got.extend(inflater.feed(&segs[i]));
                want.extend_from_slice(&frames[i]);
            }
            assert_eq!(got, want, "order {order:?}");
        }
    }

    #[test]
    fn segment_split_anywhere_still_decodes_to_the_frame() {
        let mut c = Compressor::default();
        let f = frame(9, 4096);
        let seg = c.segment(&f);
        for cut in [1, 2, 5, seg.len() / 2, seg.len() - 1] {
            let mut inflater = Inflater::new();
            inflater.feed(&HEADER);
            let mut got = inflater.feed(&seg[..cut]);
            got.extend(inflater.feed(&seg[cut..]));
            assert_eq!(got, f, "cut at {cut}");
        }
    }

    #[test]
    fn a_stream_without_trailer_decodes_up_to_its_last_segment_with_a_gzip_reader() {
        let mut c = Compressor::default();
        let frames = cases();
        let mut stream = HEADER.to_vec();
        for f in &frames {
            stream.extend_from_slice(&c.segment(f));
        }
        // A gzip reader (flate2 MultiGzDecoder) returns every byte, then reports the missing
        // trailer as an error.
        let mut reader = flate2::read::MultiGzDecoder::new(&stream[..]);
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let end = loop {
            match reader.read(&mut buf) {
                Ok(0) => break None,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => break Some(e),
            }
        };
        assert_eq!(got, frames.concat());
        assert!(
            end.is_some(),
            "an unterminated stream must not look complete"
        );
    }

    #[test]
    fn with_a_final_block_and_trailer_it_is_a_complete_gzip_file() {
        let mut c = Compressor::default();
        let frames = cases();
        let mut file = HEADER.to_vec();
        let mut crc = Crc::new();
        for f in &frames {
            file.extend_from_slice(&c.segment(f));
            crc.update(f);
        }
        // An empty final fixed-Huffman block, then CRC-32 and ISIZE.
        file.extend_from_slice(&[0x03, 0x00]);
        file.extend_from_slice(&crc.sum().to_le_bytes());
        file.extend_from_slice(&crc.amount().to_le_bytes());
        let mut got = Vec::new();
        flate2::read::GzDecoder::new(&file[..])
            .read_to_end(&mut got)
            .expect("complete gzip file");
        assert_eq!(got, frames.concat());
    }

    #[test]
    fn small_and_incompressible_frames_are_stored() {
        let mut c = Compressor::default();
        let table: Vec<(Vec<u8>, SegmentKind)> = vec![
            (Vec::new(), SegmentKind::Stored),
            (b": heartbeat\n\n".to_vec(), SegmentKind::Stored),
            (frame(1, 100), SegmentKind::Stored),
            (frame(2, 1024), SegmentKind::Deflated),
            (noise(1000, 3), SegmentKind::Stored),
            (vec![b'x'; 100_000], SegmentKind::Deflated),
        ];
        for (f, kind) in table {
            let mut out = Vec::new();
            assert_eq!(c.segment_into(&f, &mut out), kind, "{} bytes", f.len());
            assert!(out.len() <= stored_len(f.len()));
        }
        assert_eq!(
            stored(b"abc").as_ref(),
            &[0, 3, 0, 0xfc, 0xff, b'a', b'b', b'c']
        );
        assert_eq!(stored(b"").as_ref(), &[0, 0, 0, 0xff, 0xff]);
        assert_eq!(stored(&vec![0u8; 65_536]).len(), 65_536 + 10);
    }

    #[test]
    fn deflated_segments_end_in_a_sync_flush() {
        let mut c = Compressor::default();
        let seg = c.segment(&frame(4, 1024));
        assert!(seg.ends_with(&[0x00, 0x00, 0xff, 0xff]));
    }

    #[test]
    fn compression_ratios_for_json_events() {
        // Printed for the report (`cargo test gzip -- --nocapture`); the assertion is only that
        // compressing pays off above the storing threshold.
        let mut c = Compressor::default();
        for len in [100, 1024, 4096] {
            let f = frame(42, len);
            let seg = c.segment(&f);
            println!(
                "gzip segment: {} B frame → {} B ({:.2})",
                f.len(),
                seg.len(),
                seg.len() as f64 / f.len() as f64
            );
            if len >= 1024 {
                assert!(seg.len() < f.len());
            }
        }
    }
}

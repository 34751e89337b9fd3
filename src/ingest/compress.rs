//! Compressed inputs: whole-file gzip and zstd, and the zstd frames of the Collector's legacy
//! length-framed stream. Recognised by their magic bytes, never by the file name.
//!
//! Everything one input decompresses to counts against one budget (`Budget`), checked as the
//! bytes come out of the decoder, so a decompression bomb (a few kilobytes that expand to
//! terabytes) is stopped at the limit with an error instead of exhausting memory.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use super::Compression;
use crate::util::units::human_size;

pub(crate) const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
pub(crate) const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Whether `bytes` start as zstd data does: with a frame, or with a skippable frame (magic
/// 0x184D2A50 to 0x184D2A5F, little-endian), as `pzstd` and some archivers write first.
pub(crate) fn starts_zstd(bytes: &[u8]) -> bool {
    bytes.starts_with(&ZSTD_MAGIC)
        || matches!(bytes, [lo, 0x2a, 0x4d, 0x18, ..] if lo & 0xf0 == 0x50)
}

/// How a user raises the limit; named in the error that stops a bomb.
pub(crate) const LIMIT_HINT: &str = "raise the limit with --max-decompressed (e.g. --max-decompressed 8GiB) or the environment variable ABORTAUDIT_MAX_DECOMPRESSED";

/// The decompressed bytes one input may still produce.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: u64,
    used: u64,
}

impl Budget {
    pub(crate) fn new(limit: u64) -> Self {
        Budget { limit, used: 0 }
    }

    fn exceeded(&self, what: &str, compressed_offset: usize) -> String {
        format!(
            "{what} decompresses to more than the limit of {} (stopped at compressed byte offset {compressed_offset}); this looks like a decompression bomb. If the input is genuine, {LIMIT_HINT}",
            human_size(self.limit)
        )
    }
}

/// What a compressed stream decoded to.
#[derive(Debug, Default)]
pub(crate) struct Decompressed {
    pub data: Vec<u8>,
    /// The stream was corrupt or cut short after `data` was decoded: what went wrong, and where.
    pub corrupt: Option<String>,
}

/// Why decompression produced nothing usable.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Over the budget: the whole input is refused.
    TooLarge(String),
    /// Not a valid stream at all (nothing decoded): what went wrong, and where.
    Corrupt(String),
}

impl Failure {
    pub(crate) fn message(self) -> String {
        match self {
            Failure::TooLarge(m) | Failure::Corrupt(m) => m,
        }
    }
}

enum ReadError {
    TooLarge,
    Io(std::io::Error),
}

/// Appends what `reader` yields to `out`, failing once the budget is spent.
fn read_bounded(
    reader: &mut dyn Read,
    out: &mut Vec<u8>,
    budget: &mut Budget,
) -> Result<(), ReadError> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ReadError::Io(e)),
        };
        let used = budget.used.saturating_add(n as u64);
        if used > budget.limit {
            return Err(ReadError::TooLarge);
        }
        budget.used = used;
        out.extend_from_slice(&buf[..n]);
    }
}

/// Why gzip data cannot be read on: where, after how much, and what the decoder said.
fn gzip_corrupt(offset: u64, decoded: u64, error: &std::io::Error) -> String {
    format!(
        "the gzip data is corrupt or cut short near compressed byte offset {offset}, after {decoded} decompressed bytes: {error}"
    )
}

/// Decompresses a gzip file (one member or several concatenated, as `cat a.gz b.gz` makes).
pub(crate) fn gunzip(bytes: &[u8], budget: &mut Budget) -> Result<Decompressed, Failure> {
    let mut decoder = flate2::bufread::MultiGzDecoder::new(bytes);
    let mut out = Decompressed::default();
    match read_bounded(&mut decoder, &mut out.data, budget) {
        Ok(()) => Ok(out),
        Err(ReadError::TooLarge) => {
            let offset = bytes.len() - decoder.get_ref().len();
            Err(Failure::TooLarge(budget.exceeded("the gzip data", offset)))
        }
        Err(ReadError::Io(e)) => {
            let offset = bytes.len() - decoder.get_ref().len();
            let why = gzip_corrupt(offset as u64, out.data.len() as u64, &e);
            if out.data.is_empty() {
                Err(Failure::Corrupt(format!(
                    "{why}; expected a gzip-compressed trace export"
                )))
            } else {
                out.corrupt = Some(why);
                Ok(out)
            }
        }
    }
}

/// Decompresses zstd data: one or more frames (skippable frames are skipped). `what` names the
/// data in messages ("the zstd data", "frame 3"); `base` is its offset in the input.
pub(crate) fn unzstd(
    bytes: &[u8],
    budget: &mut Budget,
    what: &str,
    base: usize,
) -> Result<Decompressed, Failure> {
    let mut frames = ZstdFrames::new(
        std::io::BufReader::new(Counted::new(bytes)),
        what,
        base as u64,
    );
    let mut out = Decompressed::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match frames.read(&mut buf, out.data.len() as u64) {
            Ok(0) => break,
            Ok(n) => {
                let used = budget.used.saturating_add(n as u64);
                if used > budget.limit {
                    let offset = frames.offset() as usize;
                    return Err(Failure::TooLarge(budget.exceeded(what, offset)));
                }
                budget.used = used;
                out.data.extend_from_slice(&buf[..n]);
            }
            Err(why) => {
                out.corrupt = Some(why);
                break;
            }
        }
    }
    match out.corrupt.take() {
        Some(why) if out.data.is_empty() => Err(Failure::Corrupt(why)),
        corrupt => Ok(Decompressed { corrupt, ..out }),
    }
}

/// A whole-file gzip or zstd input decompressed as it is read, for inputs too large to hold
/// decompressed (see `large`). Like `gunzip` and `unzstd` it stops at the budget with an
/// error (of kind `FileTooLarge`), and so does a file it cannot read; where the data is
/// corrupt or cut short the stream ends, and `corrupt` says what went wrong: what decoded
/// before it is read, as a whole read reads it.
pub(crate) struct StreamDecoder {
    kind: StreamKind,
    budget: Budget,
    corrupt: Option<String>,
    /// Set by the file underneath when a read fails, which the decoders report as corrupt data.
    unreadable: Arc<OnceLock<(std::io::ErrorKind, String)>>,
    compressed_read: Arc<AtomicU64>,
    ended: bool,
}

/// What a stream decoder reads: the file (or, in tests, any reader).
type Source = Box<dyn Read + Send>;

enum StreamKind {
    Gzip(flate2::bufread::MultiGzDecoder<std::io::BufReader<Counted<Source>>>),
    Zstd(ZstdFrames<Source>),
}

/// Compressed bytes that count what has been read of them, for the offsets in messages, and
/// note a read that fails.
struct Counted<R> {
    source: R,
    read: u64,
    /// `read`, for whoever shows progress.
    progress: Arc<AtomicU64>,
    unreadable: Arc<OnceLock<(std::io::ErrorKind, String)>>,
}

impl<R> Counted<R> {
    fn new(source: R) -> Counted<R> {
        Counted {
            source,
            read: 0,
            progress: Arc::default(),
            unreadable: Arc::default(),
        }
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            match self.source.read(buf) {
                Ok(n) => {
                    self.read += n as u64;
                    self.progress.store(self.read, Ordering::Relaxed);
                    return Ok(n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = self.unreadable.set((e.kind(), e.to_string()));
                    return Err(e);
                }
            }
        }
    }
}

/// How far into its bytes a buffered reader has got.
fn consumed<R>(reader: &std::io::BufReader<Counted<R>>) -> u64 {
    reader.get_ref().read - reader.buffer().len() as u64
}

impl StreamDecoder {
    /// The decompressing reader of a gzip or zstd file (by its magic bytes); `None` for a file
    /// that is neither.
    pub(crate) fn open(path: &std::path::Path, limit: u64) -> std::io::Result<Option<Self>> {
        let mut file = std::fs::File::open(path)?;
        let mut magic = [0u8; 4];
        let n = read_up_to(&mut file, &mut magic)?;
        std::io::Seek::rewind(&mut file)?;
        Ok(Self::new(Box::new(file), &magic[..n], limit))
    }

    /// The decompressing reader of `source`, which starts with `magic`.
    fn new(source: Source, magic: &[u8], limit: u64) -> Option<Self> {
        let counted = Counted::new(source);
        let unreadable = Arc::clone(&counted.unreadable);
        let compressed_read = Arc::clone(&counted.progress);
        let reader = std::io::BufReader::with_capacity(256 << 10, counted);
        let kind = if magic.starts_with(&GZIP_MAGIC) {
            StreamKind::Gzip(flate2::bufread::MultiGzDecoder::new(reader))
        } else if starts_zstd(magic) {
            StreamKind::Zstd(ZstdFrames::new(reader, "the zstd data", 0))
        } else {
            return None;
        };
        Some(StreamDecoder {
            kind,
            budget: Budget::new(limit),
            corrupt: None,
            unreadable,
            compressed_read,
            ended: false,
        })
    }

    /// `gzip` or `zstd`.
    pub(crate) fn compression(&self) -> Compression {
        match self.kind {
            StreamKind::Gzip(_) => Compression::Gzip,
            StreamKind::Zstd(_) => Compression::Zstd,
        }
    }

    /// How many bytes of the file have been read so far, from any thread.
    pub(crate) fn compressed_read(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.compressed_read)
    }

    /// What ended the stream before its end, once it has ended.
    pub(crate) fn corrupt(&self) -> Option<&str> {
        self.corrupt.as_deref()
    }
}

/// Fills as much of `buf` as the reader has.
pub(crate) fn read_up_to(reader: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

impl Read for StreamDecoder {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.ended || buf.is_empty() {
            return Ok(0);
        }
        let read = match &mut self.kind {
            StreamKind::Gzip(decoder) => decoder
                .read(buf)
                .map_err(|e| gzip_corrupt(consumed(decoder.get_ref()), self.budget.used, &e)),
            StreamKind::Zstd(frames) => frames.read(buf, self.budget.used),
        };
        match read {
            Ok(0) => {
                self.ended = true;
                Ok(0)
            }
            Ok(n) => {
                let used = self.budget.used.saturating_add(n as u64);
                if used > self.budget.limit {
                    self.ended = true;
                    let (what, offset) = match &self.kind {
                        StreamKind::Gzip(decoder) => ("the gzip data", consumed(decoder.get_ref())),
                        StreamKind::Zstd(frames) => (frames.what.as_str(), frames.offset()),
                    };
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::FileTooLarge,
                        self.budget.exceeded(what, offset as usize),
                    ));
                }
                self.budget.used = used;
                Ok(n)
            }
            Err(why) => {
                self.ended = true;
                if let Some((kind, message)) = self.unreadable.get() {
                    return Err(std::io::Error::new(*kind, message.clone()));
                }
                self.corrupt = Some(why);
                Ok(0)
            }
        }
    }
}

/// Zstd frames one after another, skippable frames skipped: a whole file read as it is
/// decompressed, or the data of a whole read (`unzstd`).
///
/// libzstd's streaming decoder (the `zstd` crate) does the decoding: it hands out each block
/// as soon as it is decoded, so data cut short or damaged keeps everything before the damage,
/// as gzip does (ruzstd, used before, held back the last window of a frame, up to megabytes,
/// until the frame ended, and lost it on an error), and it skips skippable frames wherever they
/// are (`pzstd` starts its files with one). This loop adds the offsets the messages give.
struct ZstdFrames<R: Read> {
    source: std::io::BufReader<Counted<R>>,
    decoder: zstd::stream::raw::Decoder<'static>,
    /// The frame being decoded, if any: its offset in the input, and how much it has decoded.
    frame: Option<(u64, u64)>,
    frames: usize,
    ended: bool,
    /// The data, in messages.
    what: String,
    /// Its offset in the input.
    base: u64,
}

impl<R: Read> ZstdFrames<R> {
    fn new(source: std::io::BufReader<Counted<R>>, what: &str, base: u64) -> ZstdFrames<R> {
        ZstdFrames {
            source,
            // It fails only where an allocation does, which aborts anywhere else.
            decoder: zstd::stream::raw::Decoder::new()
                .expect("libzstd allocates a decompression context"),
            frame: None,
            frames: 0,
            ended: false,
            what: what.to_owned(),
            base,
        }
    }

    /// How far into the input the frames have been read.
    fn offset(&self) -> u64 {
        self.base + consumed(&self.source)
    }

    /// Decompressed bytes into `buf`; `Err` says why the data cannot be read on. `decoded`: by
    /// every frame so far.
    fn read(&mut self, buf: &mut [u8], decoded: u64) -> Result<usize, String> {
        use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
        let what = &self.what;
        loop {
            if self.ended || buf.is_empty() {
                return Ok(0);
            }
            let at = self.base + consumed(&self.source);
            let input = match std::io::BufRead::fill_buf(&mut self.source) {
                Ok(input) => input,
                Err(e) => {
                    self.ended = true;
                    return Err(e.to_string());
                }
            };
            if input.is_empty() {
                self.ended = true;
                return match self.frame {
                    Some((start, in_frame)) => Err(format!(
                        "{what}: the zstd frame at byte offset {start} is cut short at byte offset {at}, after {in_frame} decompressed bytes"
                    )),
                    None if self.frames == 0 && decoded == 0 => Err(format!(
                        "{what}: holds no zstd frame at byte offset {}",
                        self.base
                    )),
                    None => Ok(0),
                };
            }
            // As many bytes as a message shows, should this not be a frame.
            let found = hex_prefix(&input[..input.len().min(9)]);
            let mut src = InBuffer::around(input);
            let mut dst = OutBuffer::around(&mut *buf);
            let run = self.decoder.run(&mut src, &mut dst);
            let (used, written) = (src.pos(), dst.pos());
            std::io::BufRead::consume(&mut self.source, used);
            match run {
                Ok(hint) => {
                    self.frame.get_or_insert((at, 0)).1 += written as u64;
                    if hint == 0 {
                        // The frame is whole (its checksum, if it has one, verified), and the
                        // decoder is ready for the next one.
                        self.frames += 1;
                        self.frame = None;
                    }
                    if written > 0 {
                        return Ok(written);
                    }
                }
                Err(e) => {
                    self.ended = true;
                    let reached = self.base + consumed(&self.source);
                    return Err(match self.frame {
                        Some((start, in_frame)) => format!(
                            "{what}: the zstd frame at byte offset {start} is corrupt near byte offset {reached}, after {in_frame} decompressed bytes: {e}"
                        ),
                        None => format!(
                            "{what}: expected a zstd frame at byte offset {at}, found bytes {found} ({e})"
                        ),
                    });
                }
            }
        }
    }
}

fn hex_prefix(bytes: &[u8]) -> String {
    let shown: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let more = if bytes.len() > 8 { "…" } else { "" };
    format!("{}{more}", shown.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_round_trips_and_stops_at_the_budget() {
        use std::io::Write;
        let data = vec![b'x'; 100_000];
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&data).unwrap();
        let gz = enc.finish().unwrap();
        let out = gunzip(&gz, &mut Budget::new(1 << 20)).unwrap();
        assert_eq!(out.data, data);
        assert!(out.corrupt.is_none());
        match gunzip(&gz, &mut Budget::new(1000)) {
            Err(Failure::TooLarge(m)) => assert!(m.contains("1000 bytes"), "{m}"),
            other => panic!("{other:?}"),
        }
        let cut = gunzip(&gz[..gz.len() / 2], &mut Budget::new(1 << 20)).unwrap();
        assert!(cut.corrupt.is_some());
        assert!(matches!(
            gunzip(&[0x1f, 0x8b, 0, 0], &mut Budget::new(1 << 20)),
            Err(Failure::Corrupt(_))
        ));
    }

    #[test]
    fn zstd_reads_several_frames_and_skips_skippable_ones() {
        let a = zstd::bulk::compress(&b"hello "[..], 1).unwrap();
        let b = zstd::bulk::compress(&b"world"[..], 1).unwrap();
        let mut both = a.clone();
        both.extend_from_slice(&[0x50, 0x2a, 0x4d, 0x18, 2, 0, 0, 0, 9, 9]);
        both.extend_from_slice(&b);
        let out = unzstd(&both, &mut Budget::new(1 << 20), "the zstd data", 0).unwrap();
        assert_eq!(out.data, b"hello world");
        assert!(out.corrupt.is_none(), "{:?}", out.corrupt);
        let mut trailing = a.clone();
        trailing.extend_from_slice(b"junk");
        let out = unzstd(&trailing, &mut Budget::new(1 << 20), "the zstd data", 0).unwrap();
        assert_eq!(out.data, b"hello ");
        assert!(out.corrupt.unwrap().contains("byte offset"));
    }

    /// What `StreamDecoder` reads from `bytes` written to a file: the data, what ended it early,
    /// or the error that stopped it.
    fn stream(bytes: &[u8], limit: u64) -> Result<(Vec<u8>, Option<String>), String> {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), bytes).unwrap();
        let mut decoder = StreamDecoder::open(file.path(), limit)
            .unwrap()
            .expect("gzip or zstd");
        let mut data = Vec::new();
        // Small reads, so that frames and members end in the middle of them.
        let mut buf = [0u8; 7];
        loop {
            match decoder.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => data.extend_from_slice(&buf[..n]),
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok((data, decoder.corrupt().map(str::to_owned)))
    }

    /// Gives `data` up to byte `at`, then fails, as a failing disk does.
    struct FailsAfter {
        data: std::io::Cursor<Vec<u8>>,
        at: u64,
    }

    impl Read for FailsAfter {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let left = self.at.saturating_sub(self.data.position());
            if left == 0 {
                return Err(std::io::Error::other("injected read failure"));
            }
            let n = buf.len().min(left as usize);
            self.data.read(&mut buf[..n])
        }
    }

    #[test]
    fn a_read_that_fails_under_a_decoder_is_an_error_not_corruption() {
        let long: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let zstd = zstd::bulk::compress(&long[..], 1).unwrap();
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gzip, &long).unwrap();
        let gzip = gzip.finish().unwrap();
        for packed in [zstd, gzip] {
            let magic = packed[..4].to_vec();
            let at = packed.len() as u64 / 2;
            let source = FailsAfter {
                data: std::io::Cursor::new(packed),
                at,
            };
            let mut decoder = StreamDecoder::new(Box::new(source), &magic, u64::MAX).unwrap();
            let mut data = Vec::new();
            let error = decoder.read_to_end(&mut data).unwrap_err();
            assert_eq!(error.kind(), std::io::ErrorKind::Other);
            assert_eq!(error.to_string(), "injected read failure");
            assert_eq!(decoder.corrupt(), None);
            assert!(long.starts_with(&data));
        }
    }

    #[test]
    fn a_stream_decodes_what_a_whole_read_decodes() {
        let zstd = |text: &[u8]| zstd::bulk::compress(text, 1).unwrap();
        let gzip = |text: &[u8]| {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            std::io::Write::write_all(&mut enc, text).unwrap();
            enc.finish().unwrap()
        };
        let long: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        // Frames and members one after another, a skippable frame between.
        let mut frames = zstd(b"hello ");
        frames.extend_from_slice(&[0x50, 0x2a, 0x4d, 0x18, 2, 0, 0, 0, 9, 9]);
        frames.extend_from_slice(&zstd(&long));
        let mut members = gzip(b"hello ");
        members.extend_from_slice(&gzip(&long));
        for packed in [&frames, &members] {
            let (data, corrupt) = stream(packed, u64::MAX).unwrap();
            assert_eq!(&data[..6], b"hello ");
            assert_eq!(&data[6..], &long[..]);
            assert_eq!(corrupt, None);
        }
        let whole = unzstd(&frames, &mut Budget::new(u64::MAX), "the zstd data", 0).unwrap();
        assert_eq!(stream(&frames, u64::MAX).unwrap().0, whole.data);

        // Cut short or followed by junk: what decoded before it, and what went wrong.
        let mut junk = zstd(b"hello ");
        junk.extend_from_slice(b"junk");
        let (data, corrupt) = stream(&junk, u64::MAX).unwrap();
        assert_eq!(data, b"hello ");
        let corrupt = corrupt.unwrap();
        assert!(
            corrupt.contains("expected a zstd frame at byte offset"),
            "{corrupt}"
        );
        for packed in [&frames, &members] {
            let cut = &packed[..packed.len() - 100];
            let (data, corrupt) = stream(cut, u64::MAX).unwrap();
            assert!(data.len() < 6 + long.len());
            assert!(long.starts_with(&data[6..]));
            assert!(corrupt.unwrap().contains("cut short"));
        }

        // Over the budget: an error naming the limit.
        let error = stream(&frames, 1000).unwrap_err();
        assert!(
            error.contains("more than the limit of 1000 bytes"),
            "{error}"
        );
        let error = stream(&members, 1000).unwrap_err();
        assert!(
            error.contains("more than the limit of 1000 bytes"),
            "{error}"
        );
    }
}

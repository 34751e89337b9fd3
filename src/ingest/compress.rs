//! Compressed inputs: whole-file gzip and zstd, and the zstd frames of the Collector's legacy
//! length-framed stream. Recognised by their magic bytes, never by the file name.
//!
//! What one input decompresses to is checked as the bytes come out of the decoder (`Budget`),
//! so that a decompression bomb (a few kilobytes that expand to terabytes) is stopped with an
//! error: by default when, past `BOMB_RATIO_AFTER` bytes of output, it has decompressed more
//! than `BOMB_RATIO` times the compressed bytes read (no trace export compresses anywhere near
//! that well), or at a fixed limit the user sets (`--max-decompressed`). What reads hold in
//! memory counts against a second budget, shared by every input read at the same time
//! (`MemoryBudget`): an input read whole is decoded into memory only up to
//! `HELD_BEFORE_SIZE_KNOWN`, and past it decoded to its end without being kept, so that a bomb
//! is refused having held no more than that.

use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use super::Compression;
use super::gzip::{self, GzipReader};
use crate::util::units::human_size;

pub(crate) const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
pub(crate) const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Whether `bytes` start as zstd data does: with a frame, or with a skippable frame (magic
/// 0x184D2A50 to 0x184D2A5F, little-endian), as `pzstd` and some archivers write first.
pub(crate) fn starts_zstd(bytes: &[u8]) -> bool {
    bytes.starts_with(&ZSTD_MAGIC)
        || matches!(bytes, [lo, 0x2a, 0x4d, 0x18, ..] if lo & 0xf0 == 0x50)
}

/// How a user reads a genuine input the guard refuses; named in the error that stops a bomb.
pub(crate) const LIMIT_HINT: &str = "raise the limit with --max-decompressed (e.g. --max-decompressed 8GiB) or the environment variable ABORTAUDIT_MAX_DECOMPRESSED";

/// Past `BOMB_RATIO_AFTER` bytes of output, an input that has decompressed to more than this
/// many times the compressed bytes read so far is refused as a bomb, unless a fixed limit is
/// set (`--max-decompressed`). Trace exports compress 2 to 21 to 1 (the fixtures, the public
/// corpus and the benchmark's 1 GB export, with `zstd -3`, `zstd -19 --long`, `gzip -1` and
/// `gzip -9`; docs/limits.md), because every span carries random ids; gzip cannot exceed about
/// 1,032 to 1, zstd reaches tens of thousands to 1 on a bomb. So a decompression is at most
/// this many times the file, whatever the file holds, and a genuine export is read whole
/// however large it is.
pub(crate) const BOMB_RATIO: u64 = 300;

/// How much an input may decompress to before its ratio is judged: a small file may compress
/// very well (a few repeated lines), and this much output costs little time and, when it is
/// held, no more memory than `HELD_BEFORE_SIZE_KNOWN`.
pub(crate) const BOMB_RATIO_AFTER: u64 = 64 << 20;

/// The decompressed bytes one input has produced, what it may, and the memory it reads in.
#[derive(Debug)]
pub(crate) struct Budget {
    /// A fixed limit (`--max-decompressed`); `None`: judged by the ratio.
    limit: Option<u64>,
    /// Decompressed bytes so far.
    used: u64,
    /// Compressed bytes of the decodings finished (the frames of a framed stream before this one).
    packed: u64,
    pub(crate) memory: Memory,
    /// `HELD_BEFORE_SIZE_KNOWN`, but in tests.
    keep_first: u64,
    /// `BOMB_RATIO_AFTER`, but in tests.
    ratio_after: u64,
}

impl Budget {
    /// A limit for an input read on its own, with no memory budget (tests, `parse_input`).
    pub(crate) fn new(limit: Option<u64>) -> Self {
        Budget::with_memory(limit, Memory::alone(&MemoryBudget::new(u64::MAX)))
    }

    pub(crate) fn with_memory(limit: Option<u64>, memory: Memory) -> Self {
        Budget {
            limit,
            used: 0,
            packed: 0,
            memory,
            keep_first: HELD_BEFORE_SIZE_KNOWN,
            ratio_after: BOMB_RATIO_AFTER,
        }
    }

    /// Counts `n` more decompressed bytes, `packed` compressed bytes having been read in all
    /// (this decoding's and those before); `Err` says why the input is refused: `what` is the
    /// data (in messages), `offset` where in the input the decoder stopped.
    fn take(&mut self, n: u64, packed: u64, what: &str, offset: u64) -> Result<(), String> {
        self.used = self.used.saturating_add(n);
        let used = self.used;
        match self.limit {
            Some(limit) if used > limit => Err(format!(
                "{what} decompresses to more than the limit of {} (stopped at compressed byte offset {offset}); this looks like a decompression bomb. If the input is genuine, {LIMIT_HINT}",
                human_size(limit)
            )),
            None if used > self.ratio_after && used / BOMB_RATIO > packed => Err(format!(
                "{what} decompresses more than {BOMB_RATIO} to 1: {used} bytes from the first {packed} compressed bytes (stopped at compressed byte offset {offset}); no trace export compresses that well, so this looks like a decompression bomb. If the input is genuine, read it under a fixed limit instead, which replaces this check: --max-decompressed SIZE (e.g. --max-decompressed 64GiB, or unlimited) or the environment variable ABORTAUDIT_MAX_DECOMPRESSED"
            )),
            _ => Ok(()),
        }
    }
}

/// The input bytes that reads in progress hold in memory (files read whole, what compressed
/// inputs decompress to), all inputs together, and the most they may (`--memory-budget`).
/// Inputs are read whole on all threads; without it each could hold up to the decompression
/// limit at once, and `n` bombs read side by side took `n` GiB.
#[derive(Debug)]
pub(crate) struct MemoryBudget {
    limit: u64,
    held: AtomicU64,
    /// The most held at once, for tests.
    #[cfg(test)]
    peak: AtomicU64,
}

impl MemoryBudget {
    pub(crate) fn new(limit: u64) -> Arc<MemoryBudget> {
        Arc::new(MemoryBudget {
            limit,
            held: AtomicU64::new(0),
            #[cfg(test)]
            peak: AtomicU64::new(0),
        })
    }

    /// Takes `n` bytes if they fit, or whatever is held when `alone`.
    fn take(&self, n: u64, alone: bool) -> bool {
        let took = if alone {
            Ok(self.held.fetch_add(n, Ordering::Relaxed))
        } else {
            self.held
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                    held.checked_add(n).filter(|total| *total <= self.limit)
                })
        };
        #[cfg(test)]
        if let Ok(before) = took {
            self.peak.fetch_max(before + n, Ordering::Relaxed);
        }
        took.is_ok()
    }
}

/// How one input's read takes from the memory budget: beside the reads of other inputs, or
/// alone, once they are done, when it may take more than the budget (no read shares it then:
/// one input that needs more memory than the budget is still read, on its own). A read
/// beside others that finds the budget taken gives back what it held and is deferred: read
/// again, alone, after them. Either way it reads the same.
#[derive(Clone, Debug)]
pub(crate) struct Memory {
    budget: Arc<MemoryBudget>,
    alone: bool,
    deferred: Arc<AtomicBool>,
}

impl Memory {
    pub(crate) fn beside_others(budget: &Arc<MemoryBudget>) -> Memory {
        Memory {
            budget: Arc::clone(budget),
            alone: false,
            deferred: Arc::default(),
        }
    }

    pub(crate) fn alone(budget: &Arc<MemoryBudget>) -> Memory {
        Memory {
            alone: true,
            ..Memory::beside_others(budget)
        }
    }

    pub(crate) fn is_alone(&self) -> bool {
        self.alone
    }

    /// `n` bytes of the budget, held until the `Held` is dropped; `None` (and the read
    /// deferred) when reads beside this one hold too much of it.
    pub(crate) fn hold(&self, n: u64) -> Option<Held> {
        if self.budget.take(n, self.alone) {
            Some(Held {
                budget: Arc::clone(&self.budget),
                alone: self.alone,
                bytes: n,
            })
        } else {
            self.defer();
            None
        }
    }

    /// Notes that the read must be done again, alone.
    pub(crate) fn defer(&self) {
        self.deferred.store(true, Ordering::Relaxed);
    }

    /// Whether the read found the budget taken, and must be done again, alone.
    pub(crate) fn was_deferred(&self) -> bool {
        self.deferred.load(Ordering::Relaxed)
    }
}

/// Bytes held of the memory budget, given back when dropped.
#[derive(Debug)]
pub(crate) struct Held {
    budget: Arc<MemoryBudget>,
    alone: bool,
    bytes: u64,
}

impl Held {
    /// Takes `n` bytes more, if they fit (see `Memory::hold`).
    fn grow(&mut self, n: u64) -> bool {
        let took = self.budget.take(n, self.alone);
        if took {
            self.bytes += n;
        }
        took
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// How much of a compressed input read whole is decoded into memory before its size is known.
/// A larger one is decoded to its end without being kept, to learn its size (a bomb is refused
/// there, over the decompression limit), then decoded again into memory of that size, taken
/// from the memory budget at once: an input read whole needs all of it. Decoding twice costs
/// only inputs larger than this that are read whole (an OTLP/JSON Lines export of that size
/// is read in two passes anyway, decoded as it is read), while a bomb read on every thread
/// holds no more than this on each.
pub(crate) const HELD_BEFORE_SIZE_KNOWN: u64 = 64 << 20;

/// What a compressed stream decoded to.
#[derive(Debug, Default)]
pub(crate) struct Decompressed {
    pub data: Vec<u8>,
    /// The stream was corrupt or cut short after `data` was decoded: what went wrong, and where.
    pub corrupt: Option<String>,
    /// What `data` holds of the memory budget, until it is dropped.
    _held: Option<Held>,
}

/// Why decompression produced nothing usable.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Over the budget: the whole input is refused.
    TooLarge(String),
    /// Not a valid stream at all (nothing decoded): what went wrong, and where.
    Corrupt(String),
    /// Reads beside this one hold too much of the memory budget: the input is read again,
    /// alone, after them (`Memory::was_deferred` says so to the caller).
    Deferred,
}

impl Failure {
    pub(crate) fn message(self) -> String {
        match self {
            Failure::TooLarge(m) | Failure::Corrupt(m) => m,
            Failure::Deferred => "deferred until the reads beside it are done".to_owned(),
        }
    }
}

/// Why gzip data cannot be read on: where, after how much, and what the decoder said.
fn gzip_corrupt(offset: u64, decoded: u64, error: &std::io::Error) -> String {
    format!(
        "the gzip data is corrupt or cut short near compressed byte offset {offset}, after {decoded} decompressed bytes: {error}"
    )
}

/// A decoder of compressed bytes in memory.
enum InMemory<'a> {
    Gzip(Box<GzipReader<&'a [u8]>>, usize),
    Zstd(ZstdFrames<&'a [u8]>),
}

impl<'a> InMemory<'a> {
    fn gzip(bytes: &'a [u8]) -> InMemory<'a> {
        InMemory::Gzip(Box::new(GzipReader::new(bytes, false)), bytes.len())
    }

    fn zstd(bytes: &'a [u8], what: &str, base: usize) -> InMemory<'a> {
        let source = std::io::BufReader::new(Counted::new(bytes));
        InMemory::Zstd(ZstdFrames::new(source, what, base as u64))
    }

    /// Decompressed bytes into `buf`, `decoded` having come before; `Err` says why the data
    /// cannot be read on.
    fn read(&mut self, buf: &mut [u8], decoded: u64) -> Result<usize, String> {
        match self {
            InMemory::Gzip(decoder, len) => loop {
                match decoder.read(buf) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    read => {
                        let offset = (*len - decoder.get_ref().len()) as u64;
                        return read.map_err(|e| gzip_corrupt(offset, decoded, &e));
                    }
                }
            },
            InMemory::Zstd(frames) => frames.read(buf, decoded),
        }
    }

    /// How far into the input the decoder has read.
    fn offset(&self) -> u64 {
        match self {
            InMemory::Gzip(..) => self.consumed(),
            InMemory::Zstd(frames) => frames.offset(),
        }
    }

    /// How many of its compressed bytes the decoder has read.
    fn consumed(&self) -> u64 {
        match self {
            InMemory::Gzip(decoder, len) => (len - decoder.get_ref().len()) as u64,
            InMemory::Zstd(frames) => consumed(&frames.source),
        }
    }
}

/// Decompresses a gzip file (one member or several concatenated, as `cat a.gz b.gz` makes).
pub(crate) fn gunzip(bytes: &[u8], budget: &mut Budget) -> Result<Decompressed, Failure> {
    decompress(|| InMemory::gzip(bytes), budget, "the gzip data").map_err(|f| match f {
        Failure::Corrupt(why) => {
            Failure::Corrupt(format!("{why}; expected a gzip-compressed trace export"))
        }
        other => other,
    })
}

/// Decompresses zstd data: one or more frames (skippable frames are skipped). `what` names the
/// data in messages ("the zstd data", "frame 3"); `base` is its offset in the input.
pub(crate) fn unzstd(
    bytes: &[u8],
    budget: &mut Budget,
    what: &str,
    base: usize,
) -> Result<Decompressed, Failure> {
    decompress(|| InMemory::zstd(bytes, what, base), budget, what)
}

/// Decodes what `open` decodes into memory, under the bomb guard and the memory
/// budget: at once while it is no larger than `HELD_BEFORE_SIZE_KNOWN`, else a second time
/// once its size is known (see there).
fn decompress<'a>(
    open: impl Fn() -> InMemory<'a>,
    budget: &mut Budget,
    what: &str,
) -> Result<Decompressed, Failure> {
    let mut decoder = open();
    // What is kept of the first decoding, while it is.
    let mut kept = budget.memory.hold(0).map(|held| (held, Vec::new()));
    let mut total = 0u64;
    let mut corrupt = None;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match decoder.read(&mut buf, total) {
            Ok(0) => break,
            Ok(n) => {
                total += n as u64;
                let packed = budget.packed + decoder.consumed();
                budget
                    .take(n as u64, packed, what, decoder.offset())
                    .map_err(Failure::TooLarge)?;
                if let Some((held, data)) = &mut kept {
                    if total <= budget.keep_first && held.grow(n as u64) {
                        data.extend_from_slice(&buf[..n]);
                    } else {
                        kept = None;
                    }
                }
            }
            Err(why) => {
                corrupt = Some(why);
                break;
            }
        }
    }
    budget.packed += decoder.consumed();
    let (held, data) = match kept {
        Some(kept) => kept,
        None => {
            let held = budget.memory.hold(total).ok_or(Failure::Deferred)?;
            let total = usize::try_from(total).map_err(|_| Failure::Deferred)?;
            let mut data = Vec::with_capacity(total);
            let mut again = open();
            // The same bytes again, up to where the first decoding stopped.
            while data.len() < total {
                let want = (total - data.len()).min(buf.len());
                match again.read(&mut buf[..want], data.len() as u64) {
                    Ok(n) if n > 0 => data.extend_from_slice(&buf[..n]),
                    _ => break,
                }
            }
            (held, data)
        }
    };
    match corrupt {
        Some(why) if data.is_empty() => Err(Failure::Corrupt(why)),
        corrupt => Ok(Decompressed {
            data,
            corrupt,
            _held: Some(held),
        }),
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
    Gzip(Box<GzipReader<std::io::BufReader<Counted<Source>>>>),
    Zstd(Box<ParallelFrames>),
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
    /// that is neither. A zstd file's frames are decoded several at once where they can be
    /// (`ParallelFrames`).
    pub(crate) fn open(
        path: &std::path::Path,
        limit: Option<u64>,
    ) -> std::io::Result<Option<Self>> {
        Self::open_with(path, limit, true)
    }

    /// `open`, decoding one frame at a time, as a reader of the start of a file does: no frame
    /// is decoded whole that the reader does not need.
    pub(crate) fn open_streaming(
        path: &std::path::Path,
        limit: Option<u64>,
    ) -> std::io::Result<Option<Self>> {
        Self::open_with(path, limit, false)
    }

    fn open_with(
        path: &std::path::Path,
        limit: Option<u64>,
        frames: bool,
    ) -> std::io::Result<Option<Self>> {
        let mut file = std::fs::File::open(path)?;
        let mut magic = [0u8; 4];
        let n = read_up_to(&mut file, &mut magic)?;
        std::io::Seek::rewind(&mut file)?;
        Ok(Self::new(Box::new(file), &magic[..n], limit, frames))
    }

    /// The decompressing reader of `source`, which starts with `magic`; with `frames`, one
    /// that notes where the file can be decoded again from (`frame_table`).
    fn new(source: Source, magic: &[u8], limit: Option<u64>, frames: bool) -> Option<Self> {
        let counted = Counted::new(source);
        let unreadable = Arc::clone(&counted.unreadable);
        let compressed_read = Arc::clone(&counted.progress);
        let kind = if magic.starts_with(&GZIP_MAGIC) {
            let reader = std::io::BufReader::with_capacity(256 << 10, counted);
            StreamKind::Gzip(Box::new(GzipReader::new(reader, frames)))
        } else if starts_zstd(magic) {
            let mut decoder = ParallelFrames::new(counted);
            if !frames {
                decoder.stream_from(0);
            }
            StreamKind::Zstd(Box::new(decoder))
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

    /// Where the file can be decoded again from, once the stream has been read to its end
    /// whole: each zstd frame, when every frame was decoded whole on its own (see
    /// `ParallelFrames`); places in gzip data a few MiB apart (see `gzip`).
    pub(crate) fn frame_table(&self) -> Option<FrameTable> {
        if !self.ended || self.corrupt.is_some() {
            return None;
        }
        match &self.kind {
            StreamKind::Zstd(frames) => frames.table(),
            StreamKind::Gzip(reader) => {
                let (points, text, packed) = reader.points()?;
                gzip_table(points, text, packed)
            }
        }
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
                let (what, packed) = match &self.kind {
                    StreamKind::Gzip(decoder) => ("the gzip data", consumed(decoder.get_ref())),
                    StreamKind::Zstd(frames) => ("the zstd data", frames.offset()),
                };
                // A whole file: the offset is what was read of it.
                if let Err(why) = self.budget.take(n as u64, packed, what, packed) {
                    self.ended = true;
                    return Err(std::io::Error::new(std::io::ErrorKind::FileTooLarge, why));
                }
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

/// Where a zstd frame of a file is, or a stretch of gzip data between two places it can be
/// inflated again from, and where what it decompresses to is in the file's decompressed
/// bytes: what the second pass of a large export needs to decode it again alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FramePlace {
    /// The offset of the frame in the file, and its length (for gzip, from the byte holding
    /// its first bit on to at least the byte holding its last).
    pub(crate) packed: u64,
    pub(crate) packed_len: u64,
    /// The offset of its first decompressed byte among the file's, and how many it gives.
    pub(crate) start: u64,
    pub(crate) len: u64,
    pub(crate) resume: Resume,
}

/// How a frame is decoded alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resume {
    /// A zstd frame, which needs nothing else.
    Frame,
    /// gzip data from a place inside it (`gzip::Point`): `skip_bits` low bits of its first
    /// byte come before it, and what it refers back into is `FrameTable::windows[window]`
    /// (nothing at the start of a member).
    Deflate { skip_bits: u8, window: Option<u32> },
}

impl FramePlace {
    pub(crate) fn end(&self) -> u64 {
        self.start + self.len
    }
}

/// Every data frame of a zstd file, in order (skippable frames are not in it), when every one
/// was decoded whole on its own (`ParallelFrames`); or every stretch of a gzip file between
/// the places noted in it, and their windows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FrameTable {
    pub(crate) frames: Vec<FramePlace>,
    /// What each gzip stretch refers back into (`Resume::Deflate`), zstd-compressed.
    pub(crate) windows: Vec<Vec<u8>>,
}

impl FrameTable {
    /// Whether its frames are stretches of gzip data.
    pub(crate) fn inflated(&self) -> bool {
        self.frames
            .first()
            .is_some_and(|frame| matches!(frame.resume, Resume::Deflate { .. }))
    }
}

/// Bytes read past a gzip stretch's last bit, lest inflating stop short of its text.
const STRETCH_SLACK: u64 = 16;

/// The stretches of a gzip file between the places noted in it, which held `text` bytes in
/// `packed` compressed ones; `None` when one would decompress to more than a frame decoded
/// alone may (zlib-rs's fastest level writes blocks of many MiB), which would be held whole.
pub(crate) fn gzip_table(points: &[gzip::Point], text: u64, packed: u64) -> Option<FrameTable> {
    let mut table = FrameTable::default();
    for (i, point) in points.iter().enumerate() {
        let (end, end_bit) = match points.get(i + 1) {
            Some(next) => (next.out, next.bit),
            None => (text, packed * 8),
        };
        let len = end - point.out;
        if len > FRAME_OUT_MAX as u64 {
            return None;
        }
        if len == 0 {
            continue;
        }
        let first = point.bit / 8;
        let last = end_bit
            .div_ceil(8)
            .saturating_add(STRETCH_SLACK)
            .min(packed);
        let window = match point.window.is_empty() {
            true => None,
            false => {
                table.windows.push(point.window.clone());
                Some(u32::try_from(table.windows.len() - 1).ok()?)
            }
        };
        table.frames.push(FramePlace {
            packed: first,
            packed_len: last - first,
            start: point.out,
            len,
            resume: Resume::Deflate {
                skip_bits: (point.bit % 8) as u8,
                window,
            },
        });
    }
    Some(table)
}

/// The most compressed bytes a frame decoded on its own may have: a larger one, and what
/// follows it, is read by one streaming decoder.
const FRAME_PACKED_MAX: usize = 4 << 20;

/// The most a frame decoded on its own may decompress to (its output is held whole): `pzstd`
/// writes frames of 8 MiB of input at most levels, `zstd -T` and the Collector smaller ones.
pub(crate) const FRAME_OUT_MAX: usize = 16 << 20;

/// What the frames decoded at once by `ParallelFrames` may be expected to decompress to, in
/// all: a block of the two passes (`large::reader`).
const IN_FLIGHT: u64 = 8 << 20;

/// What the frame walk found at the start of some bytes.
#[derive(Debug, PartialEq, Eq)]
enum Walk {
    /// A whole data frame of this many bytes, and the size it declares it decompresses to.
    Frame(usize, Option<u64>),
    /// A whole skippable frame of this many bytes.
    Skippable(usize),
    /// The bytes end before the frame does.
    More,
    /// Not a frame decoded on its own here: not a frame, one that needs a dictionary, or one
    /// larger than `FRAME_PACKED_MAX` (or declaring more than `FRAME_OUT_MAX`).
    Other,
}

/// Finds where the frame at the start of `b` ends, from its header and its blocks' headers,
/// without decoding it (RFC 8878, section 3.1).
fn walk_frame(b: &[u8]) -> Walk {
    let Some(magic) = b.get(..4) else {
        return Walk::More;
    };
    let magic = u32::from_le_bytes(magic.try_into().expect("four bytes"));
    if magic & 0xffff_fff0 == 0x184d_2a50 {
        let Some(size) = b.get(4..8) else {
            return Walk::More;
        };
        let total = 8 + u32::from_le_bytes(size.try_into().expect("four bytes")) as usize;
        return match total {
            _ if total > FRAME_PACKED_MAX => Walk::Other,
            _ if b.len() < total => Walk::More,
            _ => Walk::Skippable(total),
        };
    }
    if magic != u32::from_le_bytes(ZSTD_MAGIC) {
        return Walk::Other;
    }
    let Some(&fhd) = b.get(4) else {
        return Walk::More;
    };
    let single = (fhd >> 5) & 1;
    let fcs_len = match fhd >> 6 {
        0 => usize::from(single),
        1 => 2,
        2 => 4,
        _ => 8,
    };
    // A reserved bit set, or a dictionary: left to the streaming decoder, which says why.
    if fhd & 0x08 != 0 || fhd & 0x03 != 0 {
        return Walk::Other;
    }
    let fcs_at = 5 + usize::from(single == 0);
    let mut pos = fcs_at + fcs_len;
    let Some(fcs) = b.get(fcs_at..pos) else {
        return Walk::More;
    };
    let declared = match fcs_len {
        0 => None,
        1 => Some(u64::from(fcs[0])),
        2 => Some(u64::from(u16::from_le_bytes([fcs[0], fcs[1]])) + 256),
        4 => Some(u64::from(u32::from_le_bytes(fcs.try_into().expect("four")))),
        _ => Some(u64::from_le_bytes(fcs.try_into().expect("eight"))),
    };
    if declared.is_some_and(|n| n > FRAME_OUT_MAX as u64) {
        return Walk::Other;
    }
    loop {
        let Some(header) = b.get(pos..pos + 3) else {
            return Walk::More;
        };
        let header = u32::from(header[0]) | u32::from(header[1]) << 8 | u32::from(header[2]) << 16;
        let payload = match (header >> 1) & 3 {
            0 | 2 => (header >> 3) as usize,
            1 => 1,
            _ => return Walk::Other,
        };
        pos += 3 + payload;
        if pos > FRAME_PACKED_MAX {
            return Walk::Other;
        }
        if header & 1 == 1 {
            break;
        }
    }
    // The checksum.
    if fhd & 0x04 != 0 {
        pos += 4;
    }
    if b.len() < pos {
        return Walk::More;
    }
    Walk::Frame(pos, declared)
}

/// The zstd frames of a whole file, decoded several at once as the file is read: a file of
/// many frames (`pzstd`'s, the Collector's, concatenated files) is decoded a frame per thread,
/// and the place of each frame noted (`FrameTable`), so that the second pass of a large export
/// decodes again only the frames that hold the spans it keeps, on all threads.
///
/// A frame is decoded on its own only when it is whole in memory and small (at most
/// `FRAME_PACKED_MAX` compressed bytes and `FRAME_OUT_MAX` decompressed). At the first frame
/// that is not (a file of one large frame, as `zstd` writes it), or that does not decode
/// cleanly (corrupt, cut short, not zstd), the rest of the file is read by one streaming
/// decoder (`ZstdFrames`), as before, from that frame's offset: the same data, the same
/// messages with the same offsets.
struct ParallelFrames {
    /// The file; `None` once the streaming decoder has it.
    file: Option<Counted<Source>>,
    file_ended: bool,
    /// Compressed bytes read and not yet decoded are `packed[at..]`; `packed[0]` is at
    /// `packed_offset` in the file.
    packed: Vec<u8>,
    at: usize,
    packed_offset: u64,
    /// Decoded frames not yet read out: the output, how much of it was read, and the offset
    /// in the file of the frame's end.
    ready: std::collections::VecDeque<(Vec<u8>, usize, u64)>,
    /// The offset of the end of the frame last read from.
    reading_end: u64,
    /// Buffers to decode into again (their pages stay mapped).
    spare: Vec<Vec<u8>>,
    table: FrameTable,
    /// What the frames decoded so far decompressed to, from how many compressed bytes.
    decoded: u64,
    packed_decoded: u64,
    streaming: Option<ZstdFrames<Rest>>,
    ended: bool,
}

/// What the streaming decoder reads when it takes over from `ParallelFrames`: the compressed
/// bytes read and not decoded, then the rest of the file.
type Rest = std::io::Chain<ReadOnce, Counted<Source>>;

/// Bytes read out once, and let go as soon as they are: the megabytes `ParallelFrames` read to
/// find a frame too large to decode alone are not held while the rest of the file is read.
struct ReadOnce {
    bytes: Vec<u8>,
    at: usize,
}

impl Read for ReadOnce {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.bytes.len() - self.at);
        buf[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
        self.at += n;
        if self.at == self.bytes.len() {
            self.bytes = Vec::new();
            self.at = 0;
        }
        Ok(n)
    }
}

impl ParallelFrames {
    fn new(file: Counted<Source>) -> ParallelFrames {
        ParallelFrames {
            file: Some(file),
            file_ended: false,
            packed: Vec::new(),
            at: 0,
            packed_offset: 0,
            ready: std::collections::VecDeque::new(),
            reading_end: 0,
            spare: Vec::new(),
            table: FrameTable::default(),
            decoded: 0,
            packed_decoded: 0,
            streaming: None,
            ended: false,
        }
    }

    /// How far into the file the frames have been read: to the end of the frame being read.
    fn offset(&self) -> u64 {
        match &self.streaming {
            Some(streaming) => streaming.offset(),
            None => self.reading_end,
        }
    }

    /// The frame table, when every frame was decoded on its own.
    fn table(&self) -> Option<FrameTable> {
        self.streaming.is_none().then(|| self.table.clone())
    }

    fn read(&mut self, buf: &mut [u8], decoded: u64) -> Result<usize, String> {
        loop {
            if let Some(streaming) = &mut self.streaming {
                return streaming.read(buf, decoded);
            }
            if buf.is_empty() {
                return Ok(0);
            }
            if let Some((out, read, end)) = self.ready.front_mut() {
                if *read < out.len() {
                    let n = buf.len().min(out.len() - *read);
                    buf[..n].copy_from_slice(&out[*read..*read + n]);
                    *read += n;
                    self.reading_end = *end;
                    return Ok(n);
                }
                let (out, ..) = self.ready.pop_front().expect("a frame is ready");
                self.recycle(out);
                continue;
            }
            if self.ended {
                return Ok(0);
            }
            self.decode_some()?;
        }
    }

    fn recycle(&mut self, out: Vec<u8>) {
        if out.capacity() <= FRAME_OUT_MAX && self.spare.len() < rayon::current_num_threads() {
            self.spare.push(out);
        }
    }

    /// Reads more of the file onto the compressed bytes not yet decoded.
    fn read_more(&mut self) -> Result<(), String> {
        self.packed.drain(..self.at);
        self.packed_offset += self.at as u64;
        self.at = 0;
        let file = self
            .file
            .as_mut()
            .expect("read before the streaming decoder");
        let had = self.packed.len();
        let want = 1 << 20;
        self.packed.resize(had + want, 0);
        let read = read_up_to(file, &mut self.packed[had..]);
        let n = *read.as_ref().unwrap_or(&0);
        self.packed.truncate(had + n);
        if n < want {
            self.file_ended = true;
        }
        read.map(drop).map_err(|e| e.to_string())
    }

    /// Decodes the next frames, a frame per thread, onto `ready`; or hands the rest of the
    /// file to the streaming decoder; or ends.
    fn decode_some(&mut self) -> Result<(), String> {
        let threads = rayon::current_num_threads().max(1);
        // (offset in `packed`, length, the most it may decompress to)
        let mut frames: Vec<(usize, usize, usize)> = Vec::new();
        // What the frames decoded at once are expected to decompress to (by their declared
        // sizes, or at the ratio of the frames before), within `IN_FLIGHT`; and what they may
        // (a frame that declares no size is decoded into at most `BOMB_RATIO` times its
        // compressed bytes: more is left to the streaming decoder and its guard), within twice
        // that. What is held decoded stays about a block, however many threads there are, and
        // frames of a bomb are never decoded many at once.
        let ratio = match self.packed_decoded {
            0 => 16,
            packed => (self.decoded / packed).max(1),
        };
        let (mut expected, mut most) = (0u64, 0u64);
        while frames.len() < 256 && frames.len() < threads * 16 {
            let walk = walk_frame(&self.packed[self.at..]);
            if let Walk::Frame(len, declared) = walk {
                let len = len as u64;
                let cap = declared.unwrap_or(
                    len.saturating_mul(BOMB_RATIO)
                        .clamp(64 << 10, FRAME_OUT_MAX as u64),
                );
                let size = declared.unwrap_or(len.saturating_mul(ratio)).min(cap);
                if !frames.is_empty() && (expected + size > IN_FLIGHT || most + cap > 2 * IN_FLIGHT)
                {
                    break;
                }
                expected += size;
                most += cap;
            }
            match walk {
                Walk::Frame(len, declared) => {
                    let cap = declared.map_or(
                        (len as u64)
                            .saturating_mul(BOMB_RATIO)
                            .clamp(64 << 10, FRAME_OUT_MAX as u64),
                        |n| n,
                    );
                    frames.push((self.at, len, cap as usize));
                    self.at += len;
                }
                Walk::Skippable(len) => self.at += len,
                Walk::More if frames.is_empty() && !self.file_ended => self.read_more()?,
                Walk::More | Walk::Other => break,
            }
        }
        if frames.is_empty() {
            if self.at == self.packed.len() && self.file_ended {
                self.ended = true;
            } else {
                self.stream_from(self.at);
            }
            return Ok(());
        }
        let mut spare = std::mem::take(&mut self.spare);
        let bufs: Vec<Vec<u8>> = frames
            .iter()
            .map(|_| spare.pop().unwrap_or_default())
            .collect();
        self.spare = spare;
        let packed = &self.packed;
        let outs: Vec<Result<Vec<u8>, Vec<u8>>> = {
            use rayon::prelude::*;
            frames
                .par_iter()
                .zip(bufs)
                .map_init(
                    || zstd::bulk::Decompressor::new().ok(),
                    |decompressor, (&(at, len, cap), mut out)| {
                        out.clear();
                        out.reserve_exact(cap);
                        let frame = &packed[at..at + len];
                        match decompressor
                            .as_mut()
                            .map(|d| d.decompress_to_buffer(frame, &mut out))
                        {
                            Some(Ok(n)) if n <= cap => Ok(out),
                            _ => Err(out),
                        }
                    },
                )
                .collect()
        };
        let mut failed = None;
        for (&(at, len, _), out) in frames.iter().zip(outs) {
            match out {
                Ok(out) if failed.is_none() => {
                    let packed = self.packed_offset + at as u64;
                    self.table.frames.push(FramePlace {
                        packed,
                        packed_len: len as u64,
                        start: self.decoded,
                        len: out.len() as u64,
                        resume: Resume::Frame,
                    });
                    self.decoded += out.len() as u64;
                    self.packed_decoded += len as u64;
                    self.ready.push_back((out, 0, packed + len as u64));
                }
                Ok(out) | Err(out) => {
                    failed.get_or_insert(at);
                    self.recycle(out);
                }
            }
        }
        if let Some(at) = failed {
            self.stream_from(at);
        }
        Ok(())
    }

    /// Reads the file from `packed[at]` on with one streaming decoder, which decodes what
    /// these frames would not (and says why it stops where it stops).
    fn stream_from(&mut self, at: usize) {
        let rest = self.packed.split_off(at);
        let offset = self.packed_offset + at as u64;
        let file = self.file.take().expect("the file is read by one decoder");
        let source = std::io::BufReader::with_capacity(
            256 << 10,
            Counted::new(ReadOnce { bytes: rest, at: 0 }.chain(file)),
        );
        self.packed = Vec::new();
        self.spare = Vec::new();
        self.streaming = Some(ZstdFrames::new(source, "the zstd data", offset));
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
        let out = gunzip(&gz, &mut Budget::new(Some(1 << 20))).unwrap();
        assert_eq!(out.data, data);
        assert!(out.corrupt.is_none());
        match gunzip(&gz, &mut Budget::new(Some(1000))) {
            Err(Failure::TooLarge(m)) => assert!(m.contains("1000 bytes"), "{m}"),
            other => panic!("{other:?}"),
        }
        let cut = gunzip(&gz[..gz.len() / 2], &mut Budget::new(Some(1 << 20))).unwrap();
        assert!(cut.corrupt.is_some());
        assert!(matches!(
            gunzip(&[0x1f, 0x8b, 0, 0], &mut Budget::new(Some(1 << 20))),
            Err(Failure::Corrupt(_))
        ));
    }

    /// `len` bytes of gzip or zstd data (a bomb when `len` is over the limit).
    fn zeros(zstd: bool, len: usize) -> Vec<u8> {
        let zeros = vec![0u8; len];
        if zstd {
            return zstd::bulk::compress(&zeros, 1).unwrap();
        }
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut enc, &zeros).unwrap();
        enc.finish().unwrap()
    }

    /// Decodes `packed` beside other reads, keeping 1 MiB before its size is known and judging
    /// its ratio past 1 MiB when `limit` is `None`.
    fn decompress_beside_others(
        packed: &[u8],
        limit: Option<u64>,
        memory: &Arc<MemoryBudget>,
    ) -> Result<Decompressed, Failure> {
        let mut budget = Budget::with_memory(limit, Memory::beside_others(memory));
        budget.keep_first = 1 << 20;
        budget.ratio_after = 1 << 20;
        if packed.starts_with(&GZIP_MAGIC) {
            gunzip(packed, &mut budget)
        } else {
            unzstd(packed, &mut budget, "the zstd data", 0)
        }
    }

    #[test]
    fn bombs_decoded_side_by_side_hold_no_more_than_the_memory_budget() {
        // Eight bombs of 16 MiB, on eight threads at once, under a budget of 3 MiB, each kept
        // in memory up to 1 MiB before its size is known: all are refused, at a fixed limit of
        // 8 MiB or by their ratio past 1 MiB, and no more than the budget was ever held.
        let bombs: Vec<Vec<u8>> = (0..8).map(|i| zeros(i % 2 == 0, 16 << 20)).collect();
        for limit in [Some(8 << 20), None] {
            let memory = MemoryBudget::new(3 << 20);
            std::thread::scope(|scope| {
                let threads: Vec<_> = bombs
                    .iter()
                    .map(|bomb| scope.spawn(|| decompress_beside_others(bomb, limit, &memory)))
                    .collect();
                for thread in threads {
                    match (thread.join().unwrap(), limit) {
                        (Err(Failure::TooLarge(why)), Some(_)) => {
                            assert!(why.contains("limit of 8 MiB"), "{why}");
                        }
                        (Err(Failure::TooLarge(why)), None) => {
                            assert!(why.contains("more than 300 to 1"), "{why}");
                            assert!(why.contains("--max-decompressed"), "{why}");
                        }
                        (other, _) => panic!("{other:?}"),
                    }
                }
            });
            assert!(memory.peak.load(Ordering::Relaxed) <= 3 << 20);
            assert_eq!(memory.held.load(Ordering::Relaxed), 0, "all given back");
        }
    }

    /// `len` bytes that compress about 100 to 1: 992 bytes of the same text, then 8 bytes of
    /// a counter's hash, as repetitive as a trace export could be and more.
    fn repetitive(len: usize) -> Vec<u8> {
        let text = [b'a'; 992];
        (0u64..)
            .flat_map(|i| {
                let hash = i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes();
                text.iter().copied().chain(hash)
            })
            .take(len)
            .collect()
    }

    #[test]
    fn the_ratio_guard_reads_what_compresses_less_and_says_where_a_bomb_was_stopped() {
        let memory = MemoryBudget::new(u64::MAX);
        let text = repetitive(8 << 20);
        let packed = [zstd::bulk::compress(&text, 19).unwrap(), {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            std::io::Write::write_all(&mut enc, &text).unwrap();
            enc.finish().unwrap()
        }];
        for packed in &packed {
            let ratio = text.len() / packed.len();
            assert!((40..300).contains(&ratio), "{ratio}");
            let read = decompress_beside_others(packed, None, &memory).unwrap();
            assert!(read.data == text);
        }
        // A bomb after a genuine start: stopped once the ratio of all it read passes 300.
        for zstd in [false, true] {
            let mut bomb = Vec::new();
            let start = if zstd {
                zstd::bulk::compress(&text, 3).unwrap()
            } else {
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                std::io::Write::write_all(&mut enc, &text).unwrap();
                enc.finish().unwrap()
            };
            bomb.extend_from_slice(&start);
            bomb.extend_from_slice(&zeros(zstd, 128 << 20));
            let why = match decompress_beside_others(&bomb, None, &memory) {
                Err(Failure::TooLarge(why)) => why,
                other => panic!("{other:?}"),
            };
            let what = if zstd {
                "the zstd data"
            } else {
                "the gzip data"
            };
            assert!(
                why.starts_with(&format!("{what} decompresses more than 300 to 1: ")),
                "{why}"
            );
            assert!(why.contains("stopped at compressed byte offset"), "{why}");
            assert!(why.contains("ABORTAUDIT_MAX_DECOMPRESSED"), "{why}");
            // The fixed limit replaces the guard.
            let read = decompress_beside_others(&bomb, Some(u64::MAX), &memory).unwrap();
            assert_eq!(read.data.len(), text.len() + (128 << 20));
        }
        assert_eq!(memory.held.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn an_input_that_finds_the_budget_taken_is_read_again_alone() {
        let memory = MemoryBudget::new(3 << 20);
        for zstd in [false, true] {
            // Smaller than the bytes kept before its size is known: kept as it is decoded.
            let small = zeros(zstd, 700 << 10);
            let one = decompress_beside_others(&small, Some(8 << 20), &memory).unwrap();
            assert_eq!(one.data.len(), 700 << 10);
            assert_eq!(memory.held.load(Ordering::Relaxed), 700 << 10);
            // Larger: decoded again once its size is known, all of it held then.
            let large = zeros(zstd, 2 << 20);
            let two = decompress_beside_others(&large, Some(8 << 20), &memory).unwrap();
            assert_eq!(two.data, vec![0; 2 << 20]);
            // The budget is taken: deferred, holding nothing.
            let deferred = Memory::beside_others(&memory);
            let mut budget = Budget::with_memory(Some(8 << 20), deferred.clone());
            budget.keep_first = 1 << 20;
            let third = unzstd(&zeros(true, 700 << 10), &mut budget, "the zstd data", 0);
            assert!(matches!(third, Err(Failure::Deferred)), "{third:?}");
            assert!(deferred.was_deferred());
            assert_eq!(memory.held.load(Ordering::Relaxed), (2 << 20) + (700 << 10));
            // Alone, it may take more than the budget.
            let mut alone = Budget::with_memory(Some(8 << 20), Memory::alone(&memory));
            alone.keep_first = 1 << 20;
            let third = gunzip(&zeros(false, 3 << 20), &mut alone).unwrap();
            assert_eq!(third.data.len(), 3 << 20);
            drop((one, two, third));
            assert_eq!(memory.held.load(Ordering::Relaxed), 0);
        }
    }

    #[test]
    fn a_cut_stream_decoded_twice_keeps_the_same_bytes() {
        // Over the bytes kept before its size is known, and cut short: the second decoding
        // stops where the first did, and says why.
        let memory = MemoryBudget::new(u64::MAX);
        let text: Vec<u8> = (0..800_000u32).flat_map(|i| i.to_le_bytes()).collect();
        for zstd in [false, true] {
            let packed = if zstd {
                zstd::bulk::compress(&text, 1).unwrap()
            } else {
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                std::io::Write::write_all(&mut enc, &text).unwrap();
                enc.finish().unwrap()
            };
            let cut = &packed[..packed.len() - 1000];
            let read = decompress_beside_others(cut, None, &memory).unwrap();
            assert!(read.data.len() > 1 << 20, "{}", read.data.len());
            assert!(text.starts_with(&read.data));
            assert!(read.corrupt.unwrap().contains("cut short"));
        }
    }

    #[test]
    fn zstd_reads_several_frames_and_skips_skippable_ones() {
        let a = zstd::bulk::compress(&b"hello "[..], 1).unwrap();
        let b = zstd::bulk::compress(&b"world"[..], 1).unwrap();
        let mut both = a.clone();
        both.extend_from_slice(&[0x50, 0x2a, 0x4d, 0x18, 2, 0, 0, 0, 9, 9]);
        both.extend_from_slice(&b);
        let out = unzstd(&both, &mut Budget::new(Some(1 << 20)), "the zstd data", 0).unwrap();
        assert_eq!(out.data, b"hello world");
        assert!(out.corrupt.is_none(), "{:?}", out.corrupt);
        let mut trailing = a.clone();
        trailing.extend_from_slice(b"junk");
        let out = unzstd(
            &trailing,
            &mut Budget::new(Some(1 << 20)),
            "the zstd data",
            0,
        )
        .unwrap();
        assert_eq!(out.data, b"hello ");
        assert!(out.corrupt.unwrap().contains("byte offset"));
    }

    /// What `StreamDecoder` reads from `bytes` written to a file: the data, what ended it early,
    /// or the error that stopped it.
    fn stream(bytes: &[u8], limit: Option<u64>) -> Result<(Vec<u8>, Option<String>), String> {
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

    #[test]
    fn a_stream_is_judged_by_its_ratio_by_default() {
        // As the two passes read a large export: past 64 MiB, what compresses less than 300 to
        // 1 is read to its end, and a bomb is stopped with the ratio in its message.
        let text = repetitive(80 << 20);
        let zstd = zstd::bulk::compress(&text, 1).unwrap();
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gzip, &text).unwrap();
        let gzip = gzip.finish().unwrap();
        for packed in [&zstd, &gzip] {
            assert!(text.len() / packed.len() < 300);
            let (data, corrupt) = stream(packed, None).unwrap();
            assert!(data == text);
            assert_eq!(corrupt, None);
        }
        for (zstd, what) in [(true, "the zstd data"), (false, "the gzip data")] {
            let error = stream(&zeros(zstd, 80 << 20), None).unwrap_err();
            assert!(
                error.starts_with(&format!("{what} decompresses more than 300 to 1: ")),
                "{error}"
            );
            assert!(error.contains("--max-decompressed"), "{error}");
        }
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
            let mut decoder = StreamDecoder::new(Box::new(source), &magic, None, true).unwrap();
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
            let (data, corrupt) = stream(packed, None).unwrap();
            assert_eq!(&data[..6], b"hello ");
            assert_eq!(&data[6..], &long[..]);
            assert_eq!(corrupt, None);
        }
        let whole = unzstd(&frames, &mut Budget::new(None), "the zstd data", 0).unwrap();
        assert_eq!(stream(&frames, None).unwrap().0, whole.data);

        // Cut short or followed by junk: what decoded before it, and what went wrong.
        let mut junk = zstd(b"hello ");
        junk.extend_from_slice(b"junk");
        let (data, corrupt) = stream(&junk, None).unwrap();
        assert_eq!(data, b"hello ");
        let corrupt = corrupt.unwrap();
        assert!(
            corrupt.contains("expected a zstd frame at byte offset"),
            "{corrupt}"
        );
        for packed in [&frames, &members] {
            let cut = &packed[..packed.len() - 100];
            let (data, corrupt) = stream(cut, None).unwrap();
            assert!(data.len() < 6 + long.len());
            assert!(long.starts_with(&data[6..]));
            assert!(corrupt.unwrap().contains("cut short"));
        }

        // Over the budget: an error naming the limit.
        let error = stream(&frames, Some(1000)).unwrap_err();
        assert!(
            error.contains("more than the limit of 1000 bytes"),
            "{error}"
        );
        let error = stream(&members, Some(1000)).unwrap_err();
        assert!(
            error.contains("more than the limit of 1000 bytes"),
            "{error}"
        );
    }

    #[test]
    fn the_frame_walk_finds_where_libzstd_says_each_frame_ends() {
        use zstd::zstd_safe::CParameter;
        let text: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i % 1000).to_le_bytes())
            .collect();
        let mut frames = Vec::new();
        for (checksum, size) in [(false, false), (true, false), (false, true), (true, true)] {
            for len in [0, 1, 255, 256, 70_000, text.len()] {
                let mut compressor = zstd::bulk::Compressor::new(3).unwrap();
                compressor
                    .set_parameter(CParameter::ChecksumFlag(checksum))
                    .unwrap();
                compressor
                    .set_parameter(CParameter::ContentSizeFlag(size))
                    .unwrap();
                frames.push((compressor.compress(&text[..len]).unwrap(), len, size));
            }
        }
        // As a stream writes it: no size in the header.
        let mut encoder = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
        std::io::Write::write_all(&mut encoder, &text).unwrap();
        frames.push((encoder.finish().unwrap(), text.len(), false));
        for (frame, len, size) in &frames {
            let libzstd = zstd::zstd_safe::find_frame_compressed_size(frame).unwrap();
            let declared = size.then_some(*len as u64);
            assert_eq!(walk_frame(frame), Walk::Frame(libzstd, declared));
            let mut more = frame.clone();
            more.extend_from_slice(b"after");
            assert_eq!(walk_frame(&more), Walk::Frame(libzstd, declared));
            for cut in [0, 3, 4, 5, frame.len() / 2, frame.len() - 1] {
                assert_eq!(walk_frame(&frame[..cut]), Walk::More, "{cut}");
            }
        }
        assert_eq!(
            walk_frame(&[0x50, 0x2a, 0x4d, 0x18, 2, 0, 0, 0, 9, 9, 1]),
            Walk::Skippable(10)
        );
        assert_eq!(walk_frame(b"not zstd"), Walk::Other);
    }

    #[test]
    fn a_bomb_of_many_frames_is_refused_as_one_of_one_frame_is() {
        // Frames of 4 MiB of zeros, declaring their size or not (as a stream writes them): the
        // guard refuses the file past 64 MiB whichever decoder reads them, and a frame that
        // declares no size is never decoded on its own past 300 times its bytes.
        let zeros = vec![0u8; 4 << 20];
        let declared = zstd::bulk::compress(&zeros, 3).unwrap();
        let mut encoder = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
        std::io::Write::write_all(&mut encoder, &zeros).unwrap();
        let undeclared = encoder.finish().unwrap();
        assert!(matches!(walk_frame(&declared), Walk::Frame(_, Some(_))));
        assert!(matches!(walk_frame(&undeclared), Walk::Frame(_, None)));
        for frame in [declared, undeclared] {
            let bomb: Vec<u8> = frame
                .iter()
                .copied()
                .cycle()
                .take(frame.len() * 40)
                .collect();
            let error = stream(&bomb, None).unwrap_err();
            assert!(
                error.starts_with("the zstd data decompresses more than 300 to 1: "),
                "{error}"
            );
            // Under a fixed limit, read to its end (a few of them: reads of 7 bytes are slow).
            let few = &bomb[..frame.len() * 3];
            let (data, corrupt) = stream(few, Some(u64::MAX)).unwrap();
            assert_eq!(data.len(), 3 * zeros.len());
            assert_eq!(corrupt, None);
        }
    }
}

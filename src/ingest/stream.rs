//! Large OTLP/JSON Lines exports (the Collector's file exporter) read for an audit in two
//! passes, so that memory follows the aborted turns rather than the file.
//!
//! The first pass reads the file once, in blocks, and for every span notes where its text is
//! and what a survey needs (its trace, whether it may carry an abort signal, where its links
//! point), building no span. Records in the shape exporters write are checked and walked
//! without serde (`otlp_json::index_record`), and most spans are surveyed from their text
//! alone: a prefilter finds that nothing the survey looks for is in them
//! (`otlp_json::SurveyRules`). The second pass reads back only the spans of the traces that
//! matter, by their places in the file, and builds them in full. A gzip or zstd file is
//! decompressed as it is read, by both passes: its places are offsets in the decompressed
//! text, which the second pass goes through again up to the last kept span.

use rustc_hash::{FxHashMap, FxHashSet};
use std::fs::File;
use std::io::Read;
#[cfg(not(any(unix, windows)))]
use std::io::{Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;

use super::Parsed;
use super::compress::{StreamDecoder, read_up_to};
use super::otlp_json::{self, IndexFilter, Keep, SpanFilter, SurveyRules};
use crate::model::diagnostic::{Code, Diagnostic};
use crate::model::{Resource, TraceId};

/// How much of the file the first pass reads at a time (it reads the next block while the
/// threads parse this one, so two are in memory), at most: see `block_bytes`.
pub(crate) const BLOCK_BYTES: u64 = 16 << 20;

/// The block size for a plain file of `len` bytes: a 32nd of it, between 4 and 16 MiB. The
/// two blocks are most of the memory a scan of a smaller export takes (at 100 MB, 45 MiB
/// with 16 MiB blocks, 20 MiB with 4, as fast), while on a large one each block costs some
/// time to set up and wait out (at 1 GB, 4 MiB blocks are a quarter slower).
pub(crate) fn block_bytes(encoding: Encoding, len: u64) -> u64 {
    match encoding {
        Encoding::Plain => (len / 32).clamp(4 << 20, BLOCK_BYTES),
        // The decompressed size is not known.
        Encoding::Compressed { .. } => BLOCK_BYTES,
    }
}

/// How the second pass reads the kept spans back: in batches of at most `batch` bytes of the
/// file, each built by one thread, reading through gaps of at most `gap` bytes between kept
/// spans rather than issuing another read.
#[derive(Clone, Copy, Debug)]
struct Batching {
    gap: u64,
    batch: u64,
}

/// A read costs about as much as copying a few KiB from the page cache.
const BATCHING: Batching = Batching {
    gap: 4 << 10,
    batch: 1 << 20,
};

/// Where the spans of a file are, as the first pass found them.
#[derive(Debug, Default)]
pub(crate) struct SpanIndex {
    /// Every span with a usable trace id, in file order.
    spans: Vec<SpanPlace>,
    /// One per `ResourceSpans`, in file order.
    groups: Vec<Group>,
    /// The distinct resources, told apart by their text (exports repeat one resource in every
    /// batch).
    resources: Vec<Arc<Resource>>,
    resource_ids: FxHashMap<Box<str>, u32>,
}

/// 16 bytes a span, whatever its size: the only memory the first pass spends on a span.
#[derive(Clone, Copy, Debug)]
struct SpanPlace {
    offset: u64,
    len: u32,
    /// `trace_key` of its trace.
    trace: u32,
}

#[derive(Clone, Copy, Debug)]
struct Group {
    /// Its first span in `SpanIndex::spans`; its spans run to the next group's first.
    first_span: usize,
    resource: u32,
    line: u64,
}

/// A trace id folded to 32 bits. Two traces may share a key: the second pass then reads a
/// span it does not need, and drops it on its exact trace id.
fn trace_key(trace: TraceId) -> u32 {
    let id = u128::from_le_bytes(trace.0);
    let folded = (id as u64) ^ ((id >> 64) as u64);
    (folded.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as u32
}

impl SpanIndex {
    /// A resource already seen, by its text.
    pub(crate) fn resource(&self, text: &str) -> Option<(u32, Arc<Resource>)> {
        let id = *self.resource_ids.get(text)?;
        Some((id, Arc::clone(&self.resources[id as usize])))
    }

    pub(crate) fn add_resource(&mut self, text: &str, resource: Arc<Resource>) -> u32 {
        let id = self.resources.len() as u32;
        self.resources.push(resource);
        self.resource_ids.insert(text.into(), id);
        id
    }

    /// Starts the spans of a `ResourceSpans` on `line`.
    pub(crate) fn begin_group(&mut self, resource: u32, line: u64) {
        self.groups.push(Group {
            first_span: self.spans.len(),
            resource,
            line,
        });
    }

    pub(crate) fn add_span(&mut self, offset: u64, len: u32, trace: TraceId) {
        self.spans.push(SpanPlace {
            offset,
            len,
            trace: trace_key(trace),
        });
    }

    /// Everything the index holds, in order, for tests to compare.
    #[cfg(test)]
    pub(crate) fn describe(&self) -> String {
        let mut resources: Vec<_> = self.resource_ids.iter().collect();
        resources.sort();
        format!(
            "spans {:?}\ngroups {:?}\nresources {resources:?} {:?}",
            self.spans, self.groups, self.resources
        )
    }

    /// Renumbers the lines of an index of a part read as if it began the file.
    pub(crate) fn shift_lines(&mut self, by: u64) {
        for group in &mut self.groups {
            group.line += by;
        }
    }

    /// Appends the index of the next part of the same file.
    pub(crate) fn append(&mut self, other: SpanIndex) {
        let mut remap = vec![0u32; other.resources.len()];
        for (text, id) in other.resource_ids {
            remap[id as usize] = match self.resource_ids.get(&text) {
                Some(known) => *known,
                None => {
                    let new = self.resources.len() as u32;
                    self.resources
                        .push(Arc::clone(&other.resources[id as usize]));
                    self.resource_ids.insert(text, new);
                    new
                }
            };
        }
        let base = self.spans.len();
        self.groups.extend(other.groups.into_iter().map(|g| Group {
            first_span: g.first_span + base,
            resource: remap[g.resource as usize],
            line: g.line,
        }));
        self.spans.extend(other.spans);
    }

    /// The spans of the traces kept, in file order, with their lines and resources.
    fn kept(&self, traces: &FxHashSet<TraceId>) -> Vec<KeptSpan> {
        let keys: FxHashSet<u32> = traces.iter().map(|t| trace_key(*t)).collect();
        // On all threads (a look-up for every span of the file), in file order.
        self.groups
            .par_iter()
            .enumerate()
            .flat_map_iter(|(i, group)| {
                let end = self
                    .groups
                    .get(i + 1)
                    .map_or(self.spans.len(), |next| next.first_span);
                self.spans[group.first_span..end]
                    .iter()
                    .filter(|place| keys.contains(&place.trace))
                    .map(|place| KeptSpan {
                        offset: place.offset,
                        len: place.len,
                        line: group.line,
                        resource: group.resource,
                    })
            })
            .collect()
    }
}

#[derive(Clone, Copy, Debug)]
struct KeptSpan {
    offset: u64,
    len: u32,
    line: u64,
    resource: u32,
}

impl KeptSpan {
    fn end(&self) -> u64 {
        self.offset + u64::from(self.len)
    }
}

/// How an input the two passes read is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// A plain file: the second pass reads the kept spans where they are.
    Plain,
    /// A gzip or zstd file (`format`), decompressed as it is read (at most `limit` bytes),
    /// twice: the second pass decompresses it again and picks the kept spans out on the way.
    Compressed { limit: u64, format: &'static str },
}

/// An input opened for one pass.
enum Opened {
    Plain(File),
    Compressed(Box<StreamDecoder>),
}

impl Opened {
    fn open(path: &Path, encoding: Encoding) -> Result<Opened, String> {
        let io = |e: std::io::Error| format!("cannot read: {e}");
        Ok(match encoding {
            Encoding::Plain => Opened::Plain(File::open(path).map_err(io)?),
            Encoding::Compressed { limit, .. } => {
                match StreamDecoder::open(path, limit).map_err(io)? {
                    Some(decoder) => Opened::Compressed(Box::new(decoder)),
                    None => return Err("cannot read: it is no longer gzip or zstd data".to_owned()),
                }
            }
        })
    }

    /// Counts a block gone through on the progress bar: its bytes for a plain file, whose size
    /// the bar's total holds; for a compressed one, the compressed bytes read so far.
    fn progress(&self) -> impl Fn(&indicatif::ProgressBar, usize) + Send + Sync + use<> {
        let compressed = match self {
            Opened::Plain(_) => None,
            Opened::Compressed(decoder) => Some(decoder.compressed_read()),
        };
        let done = std::sync::atomic::AtomicU64::new(0);
        move |bar: &indicatif::ProgressBar, block: usize| match &compressed {
            None => bar.inc(block as u64),
            Some(read) => {
                let now = read.load(std::sync::atomic::Ordering::Relaxed);
                let before = done.swap(now, std::sync::atomic::Ordering::Relaxed);
                bar.inc(now.saturating_sub(before));
            }
        }
    }

    /// Why a compressed input ended early, once it has been read to its end.
    fn corrupt(&self) -> Option<&str> {
        match self {
            Opened::Plain(_) => None,
            Opened::Compressed(decoder) => decoder.corrupt(),
        }
    }
}

impl Read for Opened {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Opened::Plain(file) => file.read(buf),
            Opened::Compressed(decoder) => decoder.read(buf),
        }
    }
}

/// A buffer the input is read into, a block at a time. Its bytes stay initialised from one
/// block to the next: `Read::read_to_end` would zero a block's worth of spare capacity before
/// each read, a memset of the whole input over a pass.
struct BlockBuf {
    bytes: Vec<u8>,
    filled: usize,
}

impl BlockBuf {
    fn new() -> BlockBuf {
        BlockBuf {
            bytes: Vec::new(),
            filled: 0,
        }
    }

    fn data(&self) -> &[u8] {
        &self.bytes[..self.filled]
    }

    /// Empties the buffer but for `start`.
    fn restart_with(&mut self, start: &[u8]) {
        if self.bytes.len() < start.len() {
            self.bytes.resize(start.len(), 0);
        }
        self.bytes[..start.len()].copy_from_slice(start);
        self.filled = start.len();
    }

    /// Appends up to `block` bytes of `reader`; 0 at its end.
    fn read_block(&mut self, reader: &mut Opened, block: u64) -> std::io::Result<usize> {
        let end = self.filled + usize::try_from(block).unwrap_or(usize::MAX);
        if self.bytes.len() < end {
            self.bytes.resize(end, 0);
        }
        let read = read_up_to(reader, &mut self.bytes[self.filled..end])?;
        self.filled += read;
        Ok(read)
    }
}

/// Reads `reader` in blocks of whole lines (a line longer than a block is read on to its end),
/// handing each to `each` with the offset of its first byte in the input, while the next block
/// is read on another thread; until the end, or until `each` says to stop. Errors say what
/// went wrong in full: `cannot read: …`, or why a compressed input is refused.
fn line_blocks(
    reader: &mut Opened,
    block_bytes: u64,
    mut each: impl FnMut(&[u8], u64) -> Result<bool, String> + Send,
) -> Result<(), String> {
    let io = |e: std::io::Error| match e.kind() {
        // Over the decompression budget: the message says it all.
        std::io::ErrorKind::FileTooLarge => e.to_string(),
        _ => format!("cannot read: {e}"),
    };
    let mut current = BlockBuf::new();
    let mut next = BlockBuf::new();
    let mut eof = current.read_block(reader, block_bytes).map_err(io)? == 0;
    // The offset of `current[0]`, always the start of a line.
    let mut offset = 0u64;
    // How much of `current` is known to hold no newline (a line being read on).
    let mut searched = 0;
    loop {
        let cut = if eof {
            current.filled
        } else {
            match memchr::memrchr(b'\n', &current.data()[searched..]) {
                Some(last) => searched + last + 1,
                None => {
                    // A line longer than a block: read on.
                    searched = current.filled;
                    eof = current.read_block(reader, block_bytes).map_err(io)? == 0;
                    continue;
                }
            }
        };
        // The rest of a line, after the last newline.
        next.restart_with(&current.data()[cut..]);
        searched = next.filled;
        let block = &current.data()[..cut];
        let (go_on, read) = rayon::join(
            || each(block, offset),
            || {
                if eof {
                    Ok(0)
                } else {
                    next.read_block(reader, block_bytes)
                }
            },
        );
        offset += cut as u64;
        if !go_on? || eof {
            return Ok(());
        }
        eof = read.map_err(io)? == 0;
        std::mem::swap(&mut current, &mut next);
    }
}

/// The first pass: every line of the input read with spans located and surveyed
/// (`SpanFilter::Index`) into `out`, on all threads, `block_bytes` at a time (`block_bytes`).
/// `Ok(Some(why))`: a compressed input ended early, corrupt or cut short, after what was read.
pub(crate) fn index_file(
    path: &Path,
    encoding: Encoding,
    input: &Arc<str>,
    survey: &Arc<SurveyRules>,
    out: &mut Parsed,
    progress: &indicatif::ProgressBar,
    block_bytes: u64,
) -> Result<Option<String>, String> {
    let mut reader = Opened::open(path, encoding)?;
    let advance = reader.progress();
    let mut first_line = 1u64;
    line_blocks(&mut reader, block_bytes, |block, offset| {
        let filter = SpanFilter::Index(Arc::new(IndexFilter {
            survey: Arc::clone(survey),
            block_address: block.as_ptr() as usize,
            block_offset: offset,
        }));
        let mut part = Parsed::default();
        otlp_json::read_block(input, block, first_line, &filter, &mut part);
        advance(progress, block.len());
        // Every line of the block was read, the last of them being line `part.lines`.
        first_line = part.lines + 1;
        let lines = part.lines;
        out.append(part);
        out.lines = out.lines.max(lines);
        Ok(true)
    })?;
    Ok(reader.corrupt().map(str::to_owned))
}

/// The second pass: the spans of the kept traces, read back from where the first pass found
/// them and built in full.
pub(crate) fn read_kept(
    path: &Path,
    encoding: Encoding,
    input: &Arc<str>,
    index: SpanIndex,
    keep: &Keep,
    progress: &indicatif::ProgressBar,
) -> Result<Parsed, String> {
    let kept = index.kept(&keep.traces);
    // Only the resources are needed from here on; the places of every span go before the
    // kept spans are built.
    drop(index.spans);
    drop(index.groups);
    let resources = index.resources;
    progress.set_message("reading the spans that matter (second pass)");
    match encoding {
        Encoding::Plain => {
            read_kept_in_batches(path, input, &kept, &resources, keep, progress, BATCHING)
                .map_err(|e| format!("cannot read: {e}"))
        }
        Encoding::Compressed { .. } => {
            let mut reader = Opened::open(path, encoding)?;
            if let Ok(meta) = std::fs::metadata(path) {
                progress.inc_length(meta.len());
            }
            read_kept_in_order(
                &mut reader,
                input,
                &kept,
                &resources,
                keep,
                progress,
                BLOCK_BYTES,
            )
        }
    }
}

/// The second pass over a compressed input: decompressed again from its start, block by
/// block, the kept spans of each block built as it goes by. The kept spans come line by line
/// (`SpanIndex::kept`), and a line is never split between blocks, so those of a block are the
/// next ones in the list; the input is read no further than the last of them.
fn read_kept_in_order(
    reader: &mut Opened,
    input: &Arc<str>,
    kept: &[KeptSpan],
    resources: &[Arc<Resource>],
    keep: &Keep,
    progress: &indicatif::ProgressBar,
    block_bytes: u64,
) -> Result<Parsed, String> {
    let mut out = Parsed::default();
    out.spans.reserve_exact(kept.len());
    if kept.is_empty() {
        return Ok(out);
    }
    let mut next = 0;
    let advance = reader.progress();
    line_blocks(reader, block_bytes, |block, offset| {
        let end = offset + block.len() as u64;
        let first = next;
        while next < kept.len() && kept[next].offset < end {
            next += 1;
        }
        let text = |span: &KeptSpan| -> Result<&[u8], String> {
            let start = span.offset.checked_sub(offset).map(|s| s as usize);
            start
                .and_then(|s| block.get(s..s + span.len as usize))
                .ok_or_else(|| format!("cannot read: {}", changed(span)))
        };
        let parts: Vec<Result<Parsed, String>> = kept[first..next]
            .par_chunks(256)
            .map(|chunk| {
                let texts: Vec<&[u8]> = chunk.iter().map(text).collect::<Result<_, _>>()?;
                build_spans(input, resources, keep, chunk.iter().zip(texts))
                    .map_err(|e| format!("cannot read: {e}"))
            })
            .collect();
        for part in parts {
            out.append(part?);
        }
        advance(progress, block.len());
        Ok(next < kept.len())
    })?;
    match kept.get(next) {
        Some(span) => Err(format!("cannot read: {}", changed(span))),
        None => Ok(out),
    }
}

/// A kept span the second pass could not find where the first left it.
fn changed(span: &KeptSpan) -> String {
    format!(
        "the span at byte {} (line {}) is no longer there; was the file changed while it was read?",
        span.offset, span.line
    )
}

fn read_kept_in_batches(
    path: &Path,
    input: &Arc<str>,
    kept: &[KeptSpan],
    resources: &[Arc<Resource>],
    keep: &Keep,
    progress: &indicatif::ProgressBar,
    batching: Batching,
) -> Result<Parsed, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let batches = batches(kept, batching);
    progress.inc_length(batches.iter().map(|b| b.end - b.start).sum());
    let mut out = Parsed::default();
    out.spans.reserve_exact(kept.len());
    // Each batch is read and built by one thread, with positional reads, so that reading and
    // building run on every thread. Some batches at a time, their parts appended in file order
    // as they come: all of them at once would hold every kept span twice, and a few at a time
    // would leave threads idle at every window's end (16 a thread: 0.236 -> 0.220 s at 1 GB).
    let window = 16 * rayon::current_num_threads();
    for some in batches.chunks(window) {
        let parts: Vec<Result<Parsed, String>> = some
            .par_iter()
            .map_init(Vec::new, |buf, batch| {
                read_batch(&file, batch, buf)?;
                let spans = &kept[batch.spans.clone()];
                let texts = span_texts(batch, spans, buf);
                let part = build_spans(input, resources, keep, spans.iter().zip(texts));
                progress.inc(batch.end - batch.start);
                part
            })
            .collect();
        // The first error in file order, whichever thread met it first.
        for part in parts {
            out.append(part?);
        }
    }
    Ok(out)
}

/// A stretch of the file read at once, and the kept spans in it.
#[derive(Debug)]
struct Batch {
    start: u64,
    end: u64,
    spans: std::ops::Range<usize>,
    /// Runs of the stretch actually read (longer gaps than `Batching::gap` are not read), as
    /// (file offset, length); read one after another into one buffer.
    runs: Vec<(u64, u64)>,
}

/// Cuts the kept spans, in the order they were kept, into batches. The spans of a batch lie
/// one after another in the file, so that its runs and its spans can be walked together: a
/// line's spans are kept in the order its envelope is read (`resourceSpans`, then
/// `batches`, …), which need not be the order of their bytes, and a span that starts
/// before the end of the last one starts a new batch.
fn batches(kept: &[KeptSpan], batching: Batching) -> Vec<Batch> {
    let mut batches: Vec<Batch> = Vec::new();
    for (i, span) in kept.iter().enumerate() {
        let fits = batches
            .last()
            .is_some_and(|b| span.offset >= b.end && span.end() - b.start <= batching.batch);
        if !fits {
            batches.push(Batch {
                start: span.offset,
                end: span.end(),
                spans: i..i + 1,
                runs: vec![(span.offset, u64::from(span.len))],
            });
            continue;
        }
        let batch = batches.last_mut().expect("a batch was just checked");
        batch.spans.end = i + 1;
        batch.end = span.end();
        let run = batch.runs.last_mut().expect("a batch starts with a run");
        // The run ends where the batch did, at or before this span's start.
        let gap = span.offset - (run.0 + run.1);
        if gap <= batching.gap {
            run.1 = span.end() - run.0;
        } else {
            batch.runs.push((span.offset, u64::from(span.len)));
        }
    }
    batches
}

fn read_batch(file: &File, batch: &Batch, buf: &mut Vec<u8>) -> Result<(), String> {
    buf.clear();
    for &(offset, len) in &batch.runs {
        let at = buf.len();
        buf.resize(at + len as usize, 0);
        read_exact_at(file, &mut buf[at..], offset)
            .map_err(|e| format!("cannot read back bytes {offset}..{}: {e}", offset + len))?;
    }
    Ok(())
}

/// Fills `buf` from `offset` without moving a shared cursor, so that threads read one file at
/// once.
#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(not(any(unix, windows)))]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    // No positional reads here: one thread at a time moves the shared cursor and reads.
    static CURSOR: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = CURSOR
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut file = file;
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(buf)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The text of each span of a batch, from its runs read one after another into `buf`. Spans
/// and runs are both in file order (see `batches`), so they are walked together.
fn span_texts<'b>(
    batch: &'b Batch,
    spans: &'b [KeptSpan],
    buf: &'b [u8],
) -> impl Iterator<Item = &'b [u8]> + 'b {
    // The current run, and where it starts in `buf`.
    let (mut run, mut run_start) = (0, 0usize);
    spans.iter().map(move |span| {
        while span.offset >= batch.runs[run].0 + batch.runs[run].1 {
            run_start += batch.runs[run].1 as usize;
            run += 1;
        }
        let start = run_start + (span.offset - batch.runs[run].0) as usize;
        &buf[start..start + span.len as usize]
    })
}

/// Builds kept spans from their texts.
fn build_spans<'t>(
    input: &Arc<str>,
    resources: &[Arc<Resource>],
    keep: &Keep,
    spans: impl Iterator<Item = (&'t KeptSpan, &'t [u8])>,
) -> Result<Parsed, String> {
    let mut part = Parsed::default();
    for (span, text) in spans {
        let resource = &resources[span.resource as usize];
        match otlp_json::read_kept_span(input, text, span.line, resource, keep, &mut part) {
            Ok(()) => {}
            // Valid JSON of the wrong shape, in a part of the span the first pass did not
            // need to read: that span is skipped, as a whole read would skip its record.
            Err(e) if e.is_data() => part.diagnostics.push(Diagnostic::error(
                input,
                Some(span.line),
                Code::InvalidOtlp,
                format!(
                    "a span is not OTLP/JSON: {}; skipped",
                    otlp_json::without_position(&e)
                ),
            )),
            // The first pass read this text as JSON.
            Err(e) => {
                return Err(format!(
                    "the span at byte {} (line {}) no longer reads as JSON ({e}); was the file changed while it was read?",
                    span.offset, span.line
                ));
            }
        }
    }
    Ok(part)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_follow_the_file_size_between_4_and_16_mib() {
        const MIB: u64 = 1 << 20;
        let plain = |len| block_bytes(Encoding::Plain, len);
        assert_eq!(plain(70 * MIB), 4 * MIB);
        assert_eq!(plain(256 * MIB), 8 * MIB);
        assert_eq!(plain(1000 * MIB), 16 * MIB);
        assert_eq!(plain(u64::MAX), 16 * MIB);
        let compressed = Encoding::Compressed {
            limit: u64::MAX,
            format: "zstd",
        };
        assert_eq!(block_bytes(compressed, 70 * MIB), 16 * MIB);
    }

    #[test]
    fn blocks_of_any_size_index_and_read_back_the_same_spans() {
        // Blocks far smaller than a line (each line is then read in several reads) and larger
        // than the file must place every span alike, and the second pass must find each
        // span's text where the first left it.
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/scenarios/traces/agent.jsonl");
        let input: Arc<str> = Arc::from("agent.jsonl");
        let rules = crate::rules::Rules::default();
        let survey = Arc::new(SurveyRules::new(&rules));
        let hidden = indicatif::ProgressBar::hidden();
        let index = |block: u64| {
            let mut parsed = Parsed::default();
            let read = index_file(
                &path,
                Encoding::Plain,
                &input,
                &survey,
                &mut parsed,
                &hidden,
                block,
            );
            assert_eq!(read, Ok(None));
            parsed
        };
        let small = index(1000);
        let large = index(BLOCK_BYTES);
        assert!(small.spans_read > 50, "{}", small.spans_read);
        assert_eq!(small.spans_read, large.spans_read);
        let places = |p: &Parsed| -> Vec<(u64, u32, u32)> {
            p.index
                .spans
                .iter()
                .map(|s| (s.offset, s.len, s.trace))
                .collect()
        };
        assert_eq!(places(&small), places(&large));
        let lines = |p: &Parsed| -> Vec<u64> { p.index.groups.iter().map(|g| g.line).collect() };
        assert_eq!(lines(&small), lines(&large));
        assert_eq!(small.survey.may_abort, large.survey.may_abort);

        // Every span kept, read back by its place, is the span a whole read finds: whatever
        // the batches (one span each, or several with runs read apart) and whichever traces
        // are kept.
        let text = std::fs::read(&path).unwrap();
        let mut whole = Parsed::default();
        super::super::otlp_json::read_lines(&input, &text, &mut whole);
        let mut traces: Vec<TraceId> = whole.spans.iter().map(|s| s.trace_id).collect();
        traces.sort_by_key(|t| t.0);
        traces.dedup();
        assert!(traces.len() > 2, "{}", traces.len());
        let every_other: FxHashSet<TraceId> = traces.iter().step_by(2).copied().collect();
        let all: FxHashSet<TraceId> = traces.into_iter().collect();
        let batchings = [
            BATCHING,
            Batching { gap: 0, batch: 1 },
            Batching {
                gap: 200,
                batch: 4000,
            },
        ];
        for traces in [all, every_other] {
            let expected: Vec<_> = whole
                .spans
                .iter()
                .filter(|s| traces.contains(&s.trace_id))
                .collect();
            let keep = Keep {
                traces,
                attributes: rules.attributes_read().into_iter().collect(),
            };
            for batching in batchings {
                let index = index(700).index;
                let places = index.kept(&keep.traces);
                let resources = &index.resources;
                let kept = read_kept_in_batches(
                    &path, &input, &places, resources, &keep, &hidden, batching,
                )
                .unwrap();
                assert_eq!(kept.spans.len(), expected.len(), "{batching:?}");
                for (a, b) in kept.spans.iter().zip(&expected) {
                    assert_eq!(
                        (a.trace_id, a.span_id, a.start),
                        (b.trace_id, b.span_id, b.start)
                    );
                    assert_eq!(a.origin.line, b.origin.line);
                    assert_eq!(a.name, b.name);
                    // The second pass keeps only the attributes the audit reads.
                    let read: Vec<_> = b
                        .attributes
                        .iter()
                        .filter(|kv| keep.attributes.contains(&*kv.key))
                        .collect();
                    assert!(!read.is_empty());
                    assert_eq!(a.attributes.iter().collect::<Vec<_>>(), read);
                }
            }
        }
    }

    #[test]
    fn a_compressed_file_is_indexed_and_read_back_in_blocks_of_any_size() {
        // Blocks smaller than a line (each read on over several reads) and larger than the
        // file, in both passes: the kept spans are those a whole read finds, in its order.
        let fixture =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/scenarios/traces/agent.jsonl");
        let text = std::fs::read(&fixture).unwrap();
        let half = text.len() / 2
            + text[text.len() / 2..]
                .iter()
                .position(|b| *b == b'\n')
                .unwrap()
            + 1;
        let zstd = |t: &[u8]| {
            ruzstd::encoding::compress_to_vec(t, ruzstd::encoding::CompressionLevel::Fastest)
        };
        let mut packed = zstd(&text[..half]);
        packed.extend_from_slice(&zstd(&text[half..]));
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &packed).unwrap();
        let encoding = Encoding::Compressed {
            limit: u64::MAX,
            format: "zstd",
        };
        let input: Arc<str> = Arc::from("agent.jsonl.zst");
        let rules = crate::rules::Rules::default();
        let survey = Arc::new(SurveyRules::new(&rules));
        let hidden = indicatif::ProgressBar::hidden();
        let mut whole = Parsed::default();
        super::super::otlp_json::read_lines(&input, &text, &mut whole);
        let keep = Keep {
            traces: whole.spans.iter().map(|s| s.trace_id).collect(),
            attributes: rules.attributes_read().into_iter().collect(),
        };
        for (first, second) in [(700, 700), (BLOCK_BYTES, 900), (900, BLOCK_BYTES)] {
            let mut parsed = Parsed::default();
            let read = index_file(
                file.path(),
                encoding,
                &input,
                &survey,
                &mut parsed,
                &hidden,
                first,
            );
            assert_eq!(read, Ok(None));
            assert_eq!(parsed.spans_read, whole.spans_read);
            let places = parsed.index.kept(&keep.traces);
            let resources = &parsed.index.resources;
            let mut reader = Opened::open(file.path(), encoding).unwrap();
            let kept = read_kept_in_order(
                &mut reader,
                &input,
                &places,
                resources,
                &keep,
                &hidden,
                second,
            )
            .unwrap();
            assert_eq!(kept.spans.len(), whole.spans.len());
            for (a, b) in kept.spans.iter().zip(&whole.spans) {
                assert_eq!(
                    (a.trace_id, a.span_id, a.start),
                    (b.trace_id, b.span_id, b.start)
                );
                assert_eq!(a.origin.line, b.origin.line);
            }
        }
    }

    fn place(offset: u64, len: u32) -> KeptSpan {
        KeptSpan {
            offset,
            len,
            line: 1,
            resource: 0,
        }
    }

    #[test]
    fn batches_read_through_short_gaps_and_seek_over_long_ones() {
        let far = 2 * BATCHING.gap + 100;
        let kept = [place(0, 10), place(20, 10), place(far, 5)];
        let batches = batches(&kept, BATCHING);
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].runs, vec![(0, 30), (far, 5)]);
        assert_eq!(batches[0].spans, 0..3);
    }

    #[test]
    fn a_span_before_the_end_of_the_last_starts_a_new_batch() {
        // A line whose `batches` (or nested `trace`) spans come before its `resourceSpans`
        // spans in the file, but after them in the order kept.
        let kept = [
            place(0, 100),
            place(10_000, 100),
            place(5_000, 100),
            place(5_200, 10),
        ];
        let batches = batches(&kept, BATCHING);
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0].spans, 0..2);
        assert_eq!(batches[0].runs, vec![(0, 100), (10_000, 100)]);
        assert_eq!(batches[1].spans, 2..4);
        assert_eq!(batches[1].runs, vec![(5_000, 210)]);
    }

    #[test]
    fn batches_hold_every_span_at_its_place_whatever_the_order() {
        // Spans kept in any order, and batchings of any size: walking a batch's runs finds
        // each span's bytes where the file has them.
        let file: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut state = 12345u64;
        let mut below = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        for _ in 0..500 {
            let mut kept = Vec::new();
            let mut at = below(50);
            while kept.len() < 100 {
                let len = 1 + below(300);
                if at + len > file.len() as u64 {
                    break;
                }
                kept.push(place(at, len as u32));
                at += len + [0, 1, 5, 100, 3000][below(5) as usize];
            }
            // Now and then, a stretch of spans kept out of file order.
            if kept.len() > 4 && below(2) == 0 {
                let from = below(kept.len() as u64 - 3) as usize;
                kept[from..from + 3].reverse();
            }
            let batching = Batching {
                gap: below(200),
                batch: 1 + below(4000),
            };
            for batch in batches(&kept, batching) {
                let mut buf = Vec::new();
                for &(offset, len) in &batch.runs {
                    buf.extend_from_slice(&file[offset as usize..(offset + len) as usize]);
                }
                let spans = &kept[batch.spans.clone()];
                for (span, text) in spans.iter().zip(span_texts(&batch, spans, &buf)) {
                    assert_eq!(text, &file[span.offset as usize..span.end() as usize]);
                }
            }
        }
    }

    #[test]
    fn batches_stay_within_their_size() {
        let kept = [
            place(0, 10),
            place(BATCHING.batch, 10),
            place(BATCHING.batch + 20, 10),
        ];
        let batches = batches(&kept, BATCHING);
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0].spans, 0..1);
        assert_eq!(batches[1].spans, 1..3);
        assert_eq!(batches[1].runs, vec![(BATCHING.batch, 30)]);
    }

    #[test]
    fn trace_keys_differ_for_ids_that_differ_in_either_half() {
        let a = TraceId([1; 16]);
        let mut b = a;
        b.0[15] = 2;
        let mut c = a;
        c.0[0] = 2;
        assert_ne!(trace_key(a), trace_key(b));
        assert_ne!(trace_key(a), trace_key(c));
    }
}

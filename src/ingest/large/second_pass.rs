//! The second pass over a large input: the spans of the traces that matter, read back from
//! where the first pass found them and built in full; from a plain file by positional reads in
//! batches on all threads, from a zstd file of many frames (or a gzip file with its places
//! noted) by decoding again the frames (stretches) that hold them, on all threads, and from
//! another compressed one by decompressing it again up to the last.

use std::fs::File;
#[cfg(not(any(unix, windows)))]
use std::io::{Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;

use super::super::Parsed;
use super::super::compress::{FramePlace, FrameTable, Resume};
use super::super::gzip::inflate_at;
use super::super::otlp_json::{self, Keep};
use super::index::{KeptSpan, SpanIndex};
use super::reader::{Blocks, Encoding, Opened, block_bytes, line_blocks};
use crate::model::Resource;

/// How the second pass reads the kept spans back: in batches of at most `batch` bytes of the
/// file, each built by one thread, reading through gaps of at most `gap` bytes between kept
/// spans rather than issuing another read.
#[derive(Clone, Copy, Debug)]
pub(super) struct Batching {
    pub(super) gap: u64,
    pub(super) batch: u64,
}

/// A read costs about as much as copying a few KiB from the page cache.
pub(super) const BATCHING: Batching = Batching {
    gap: 4 << 10,
    batch: 1 << 20,
};

/// The second pass: the spans of the kept traces, read back from where the first pass found
/// them and built in full.
pub(super) fn read_kept(
    path: &Path,
    encoding: Encoding,
    frames: Option<&FrameTable>,
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
    match (encoding, frames) {
        (Encoding::Plain, _) => File::open(path)
            .map_err(|e| e.to_string())
            .and_then(|file| {
                read_kept_in_batches(&file, input, &kept, &resources, keep, progress, BATCHING)
            })
            .map_err(|e| format!("cannot read: {e}")),
        (Encoding::Compressed { .. }, Some(frames)) => {
            read_kept_in_frames(path, input, &kept, frames, &resources, keep, progress)
        }
        (Encoding::Compressed { .. }, None) => {
            let mut reader = Opened::open(path, encoding)?;
            let len = std::fs::metadata(path).map_or(u64::MAX, |meta| meta.len());
            if len != u64::MAX {
                progress.inc_length(len);
            }
            read_kept_in_order(
                &mut reader,
                input,
                &kept,
                &resources,
                keep,
                progress,
                block_bytes(encoding, len),
            )
        }
    }
}

/// The second pass over a compressed input: decompressed again from its start, block by
/// block, the kept spans of each block built as it goes by (see `kept_texts_in_order`).
pub(super) fn read_kept_in_order(
    reader: &mut Opened,
    input: &Arc<str>,
    kept: &[KeptSpan],
    resources: &[Arc<Resource>],
    keep: &Keep,
    progress: &indicatif::ProgressBar,
    block_bytes: u64,
) -> Result<Parsed, String> {
    build_kept(input, resources, keep, kept.len(), |make, take| {
        kept_texts_in_order(reader, kept, progress, block_bytes, make, take)
    })
}

/// Builds kept spans from their texts, on all threads, as `read` gives them (to `make`),
/// putting them together in file order (`take`).
fn build_kept(
    input: &Arc<str>,
    resources: &[Arc<Resource>],
    keep: &Keep,
    count: usize,
    read: impl FnOnce(&MakeParts, &mut TakeParts) -> Result<(), String>,
) -> Result<Parsed, String> {
    let mut out = Parsed::default();
    out.spans.reserve_exact(count);
    let make = |spans: &[KeptSpan], texts: Vec<&[u8]>| {
        build_spans(input, resources, keep, spans.iter().zip(texts))
            .map_err(|e| format!("cannot read: {e}"))
    };
    let mut take = |part: Parsed| {
        out.append(part);
        Ok(())
    };
    read(&make, &mut take)?;
    Ok(out)
}

type MakeParts<'a> = dyn Fn(&[KeptSpan], Vec<&[u8]>) -> Result<Parsed, String> + Sync + 'a;
type TakeParts<'a> = dyn FnMut(Parsed) -> Result<(), String> + Send + 'a;

/// The texts of the kept spans of a compressed input, decompressed again from its start,
/// block by block: `make` is given runs of the kept spans of a block and their texts, on all
/// threads, and `take` what it made, in file order. The kept spans come line by line
/// (`SpanIndex::kept`), and a line is never split between blocks, so those of a block are the
/// next ones in the list; the input is read no further than the last of them.
pub(super) fn kept_texts_in_order<P: Send>(
    reader: &mut Opened,
    kept: &[KeptSpan],
    progress: &indicatif::ProgressBar,
    block_bytes: u64,
    make: impl Fn(&[KeptSpan], Vec<&[u8]>) -> Result<P, String> + Sync,
    mut take: impl FnMut(P) -> Result<(), String> + Send,
) -> Result<(), String> {
    if kept.is_empty() {
        return Ok(());
    }
    let mut next = 0;
    let advance = reader.progress();
    // (The first pass held every line already.)
    line_blocks(
        reader,
        Blocks {
            bytes: block_bytes,
            max_line: u64::MAX,
        },
        |block, offset| {
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
            let parts: Vec<Result<P, String>> = kept[first..next]
                .par_chunks(256)
                .map(|chunk| {
                    let texts: Vec<&[u8]> = chunk.iter().map(text).collect::<Result<_, _>>()?;
                    make(chunk, texts)
                })
                .collect();
            for part in parts {
                take(part?)?;
            }
            advance(progress, block.len());
            Ok(next < kept.len())
        },
    )?;
    match kept.get(next) {
        Some(span) => Err(format!("cannot read: {}", changed(span))),
        None => Ok(()),
    }
}

/// Kept spans whose text lies in a run of frames, decoded together.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct FrameGroup {
    pub(super) frames: std::ops::Range<usize>,
    pub(super) spans: std::ops::Range<usize>,
}

/// The most text a group of frames decodes to, unless one span needs more: kept spans that
/// cross from frame to frame would otherwise chain their frames into one group, held decoded
/// at once, as long as the file. zstd frames are as their writer cut them (`pzstd`: 8 MiB);
/// gzip's stretches about 2 MiB, of which a group holds two or three (with room for fewer, a
/// span across the end of a group's last stretch starts another that inflates it again: a
/// tenth more at 4 MiB; with room for more, each thread inflating holds more).
const FRAME_GROUP_TEXT: u64 = 8 << 20;
const STRETCH_GROUP_TEXT: u64 = 6 << 20;

/// Cuts the kept spans, in the order they were kept, into groups of the frames that hold
/// them: a span starts a new group unless it starts in the frames of the last one, which it
/// may stretch (a line cut between two frames) within `FRAME_GROUP_TEXT`. The spans of a line
/// are kept in the order of its envelope, not always of its bytes: a span before the last
/// group's frames starts a group too, which decodes its frames again, as does a span that
/// would stretch a group too far. `None`: a span is past the last frame.
pub(super) fn frame_groups(
    kept: &[KeptSpan],
    frames: &[FramePlace],
) -> Result<Vec<FrameGroup>, usize> {
    let group_text = match frames.first().map(|frame| frame.resume) {
        Some(Resume::Deflate { .. }) => STRETCH_GROUP_TEXT,
        _ => FRAME_GROUP_TEXT,
    };
    // The frame that holds decompressed byte `at`.
    let frame_of = |at: u64| frames.partition_point(|frame| frame.end() <= at);
    let text = |run: std::ops::Range<usize>| frames[run].iter().map(|f| f.len).sum::<u64>();
    let mut groups: Vec<FrameGroup> = Vec::new();
    for (i, span) in kept.iter().enumerate() {
        let first = frame_of(span.offset);
        let last = frame_of(span.end().saturating_sub(1)).max(first);
        if last >= frames.len() {
            return Err(i);
        }
        match groups.last_mut() {
            Some(group)
                if group.frames.contains(&first)
                    && (last < group.frames.end
                        || text(group.frames.start..last + 1) <= group_text) =>
            {
                group.frames.end = group.frames.end.max(last + 1);
                group.spans.end = i + 1;
            }
            _ => groups.push(FrameGroup {
                frames: first..last + 1,
                spans: i..i + 1,
            }),
        }
    }
    Ok(groups)
}

/// The second pass over a zstd file whose frames the first pass decoded each on its own, or a
/// gzip file whose places it noted (`compress::FrameTable`): only the frames (stretches)
/// holding kept spans are decoded again, and a
/// group's spans built as it is decoded (see `kept_texts_in_frames`).
pub(super) fn read_kept_in_frames(
    path: &Path,
    input: &Arc<str>,
    kept: &[KeptSpan],
    frames: &FrameTable,
    resources: &[Arc<Resource>],
    keep: &Keep,
    progress: &indicatif::ProgressBar,
) -> Result<Parsed, String> {
    build_kept(input, resources, keep, kept.len(), |make, take| {
        kept_texts_in_frames(path, kept, frames, progress, make, take)
    })
}

/// The texts of the kept spans of a file with a frame table (a zstd file whose frames the
/// first pass decoded each on its own; a gzip file's stretches between the places it noted):
/// only the frames holding kept spans are decoded again, a group of them per thread, on
/// all threads; `make` is given a group's kept spans and their texts on its thread, and `take`
/// what it made, in file order. A few groups at a time (one a thread), so that what is held
/// decoded is a few frames.
pub(super) fn kept_texts_in_frames<P: Send>(
    path: &Path,
    kept: &[KeptSpan],
    table: &FrameTable,
    progress: &indicatif::ProgressBar,
    make: impl Fn(&[KeptSpan], Vec<&[u8]>) -> Result<P, String> + Sync,
    mut take: impl FnMut(P) -> Result<(), String>,
) -> Result<(), String> {
    let frames = &table.frames[..];
    let groups =
        frame_groups(kept, frames).map_err(|i| format!("cannot read: {}", changed(&kept[i])))?;
    let packed = |group: &FrameGroup| -> u64 {
        frames[group.frames.clone()]
            .iter()
            .map(|f| f.packed_len)
            .sum()
    };
    progress.inc_length(groups.iter().map(packed).sum());
    let file = File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    // A group per thread at a time, each decoded into buffers of its own, used again from one
    // window to the next: what is held decoded is a frame or two a thread, and about 32 MiB
    // in all however many threads there are.
    let largest = frames.iter().map(|f| f.len).max().unwrap_or(1).max(1);
    let window = rayon::current_num_threads()
        .min(usize::try_from((32 << 20) / largest).unwrap_or(usize::MAX))
        .max(1);
    // Each slot's text is taken here, larger than any allocator keeps in its heaps (glibc
    // maps anything over 32 MiB on its own): given back whole when the pass ends, not left in
    // a worker thread's heap for the rest of the run.
    let text_bytes = (largest as usize).saturating_mul(2).max((32 << 20) + 1);
    let mut slots: Vec<Slot> = (0..window)
        .map(|_| Slot {
            text: Vec::with_capacity(text_bytes),
            ..Slot::default()
        })
        .collect();
    for some in groups.chunks(window) {
        let parts: Vec<Result<P, String>> = some
            .par_iter()
            .zip(slots.par_iter_mut())
            .map(|(group, slot)| {
                let spans = &kept[group.spans.clone()];
                let group_frames = &frames[group.frames.clone()];
                let text = match slot.decode(&file, group_frames, &table.windows) {
                    Ok(Some(text)) => text,
                    Ok(None) => return Err(format!("cannot read: {}", changed(&spans[0]))),
                    Err(e) => return Err(format!("cannot read: {e}")),
                };
                let start = group_frames[0].start;
                let texts: Vec<&[u8]> = spans
                    .iter()
                    .map(|span| {
                        let at = (span.offset - start) as usize;
                        text.get(at..at + span.len as usize)
                            .ok_or_else(|| format!("cannot read: {}", changed(span)))
                    })
                    .collect::<Result<_, _>>()?;
                let part = make(spans, texts);
                progress.inc(packed(group));
                part
            })
            .collect();
        // The first error in file order, whichever thread met it first.
        for part in parts {
            take(part?)?;
        }
    }
    Ok(())
}

/// What one thread decodes a group of frames with: the compressed bytes, what they decode to,
/// and a decoder, kept from one group to the next.
#[derive(Default)]
struct Slot {
    packed: Vec<u8>,
    text: Vec<u8>,
    decoder: Option<zstd::bulk::Decompressor<'static>>,
}

impl Slot {
    /// Decodes `frames`, one after another in the file, into one text; `Ok(None)` when one of
    /// them no longer decodes to what it did in the first pass (the file changed).
    fn decode(
        &mut self,
        file: &File,
        frames: &[FramePlace],
        windows: &[Vec<u8>],
    ) -> Result<Option<&[u8]>, String> {
        let total: u64 = frames.iter().map(|f| f.len).sum();
        let total = usize::try_from(total).map_err(|e| e.to_string())?;
        // Zeroed only where it grows: the bytes are written over.
        if self.text.len() < total {
            self.text.resize(total, 0);
        }
        let mut at = 0;
        for frame in frames {
            self.packed.resize(frame.packed_len as usize, 0);
            read_exact_at(file, &mut self.packed, frame.packed).map_err(|e| {
                format!(
                    "cannot read back bytes {}..{}: {e}",
                    frame.packed,
                    frame.packed + frame.packed_len
                )
            })?;
            let len = frame.len as usize;
            let text = &mut self.text[at..at + len];
            let whole = match frame.resume {
                Resume::Frame => {
                    if self.decoder.is_none() {
                        self.decoder = Some(
                            zstd::bulk::Decompressor::new()
                                .map_err(|e| format!("cannot start a zstd decoder: {e}"))?,
                        );
                    }
                    let decoder = self.decoder.as_mut().expect("just made");
                    matches!(decoder.decompress_to_buffer(&self.packed[..], text), Ok(n) if n == len)
                }
                Resume::Deflate { skip_bits, window } => {
                    let window = window
                        .and_then(|at| windows.get(at as usize))
                        .map_or(&[][..], Vec::as_slice);
                    inflate_at(&self.packed, skip_bits, window, text)
                }
            };
            if !whole {
                return Ok(None);
            }
            at += len;
        }
        Ok(Some(&self.text[..total]))
    }
}

/// A kept span the second pass could not find where the first left it.
fn changed(span: &KeptSpan) -> String {
    format!(
        "the span at byte {} (line {}) is no longer there; was the file changed while it was read?",
        span.offset, span.line
    )
}

pub(super) fn read_kept_in_batches(
    file: &File,
    input: &Arc<str>,
    kept: &[KeptSpan],
    resources: &[Arc<Resource>],
    keep: &Keep,
    progress: &indicatif::ProgressBar,
    batching: Batching,
) -> Result<Parsed, String> {
    let batches = batches(kept, batching);
    progress.inc_length(batches.iter().map(|b| b.end - b.start).sum());
    let mut out = Parsed::default();
    out.spans.reserve_exact(kept.len());
    // Each batch is read and built by one thread, with positional reads, so that reading and
    // building run on every thread. Some batches at a time, their parts appended in file order
    // as they come: all of them at once would hold every kept span twice, and a few at a time
    // would leave threads idle at every window's end.
    let window = 16 * rayon::current_num_threads();
    for some in batches.chunks(window) {
        let parts: Vec<Result<Parsed, String>> = some
            .par_iter()
            .map_init(Vec::new, |buf, batch| {
                read_batch(file, batch, buf)?;
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

/// Reads the runs of `batch` one after another into `buf`, which keeps its length between
/// batches: the bytes past what a batch reads are left as they were rather than zeroed again.
fn read_batch(file: &File, batch: &Batch, buf: &mut Vec<u8>) -> Result<(), String> {
    let total: u64 = batch.runs.iter().map(|&(_, len)| len).sum();
    if buf.len() < total as usize {
        buf.resize(total as usize, 0);
    }
    let mut at = 0;
    for &(offset, len) in &batch.runs {
        let end = at + len as usize;
        read_exact_at(file, &mut buf[at..end], offset)
            .map_err(|e| format!("cannot read back bytes {offset}..{}: {e}", offset + len))?;
        at = end;
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
        // The first pass read this text as a whole read does, and kept its span only if
        // that built it: it reads again, unless the file changed.
        if let Err(e) = otlp_json::read_kept_span(input, text, span.line, resource, keep, &mut part)
        {
            return Err(format!(
                "the span at byte {} (line {}) no longer reads as it did ({e}); was the file changed while it was read?",
                span.offset, span.line
            ));
        }
    }
    Ok(part)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_across_frames_do_not_chain_every_frame_into_one_group() {
        // Frames of 3 MiB, each boundary crossed by a kept span: one group would hold them
        // all decoded.
        const MIB: u64 = 1 << 20;
        let frames: Vec<FramePlace> = (0..10)
            .map(|i| FramePlace {
                packed: i * 1000,
                packed_len: 1000,
                start: i * 3 * MIB,
                len: 3 * MIB,
                resume: crate::ingest::compress::Resume::Frame,
            })
            .collect();
        let kept: Vec<KeptSpan> = (1..10).map(|i| place(i * 3 * MIB - 100, 200)).collect();
        let groups = frame_groups(&kept, &frames).unwrap();
        for group in &groups {
            let text: u64 = frames[group.frames.clone()].iter().map(|f| f.len).sum();
            assert!(text <= FRAME_GROUP_TEXT, "{group:?}");
        }
        // Every span is in a group that holds its frames, in order.
        let mut next = 0;
        for group in &groups {
            assert_eq!(group.spans.start, next);
            next = group.spans.end;
            for span in &kept[group.spans.clone()] {
                let start = frames[group.frames.start].start;
                let end = frames[group.frames.end - 1].end();
                assert!(
                    start <= span.offset && span.end() <= end,
                    "{group:?} {span:?}"
                );
            }
        }
        assert_eq!(next, kept.len());
        assert!(groups.len() > 1);
    }

    fn place(offset: u64, len: u32) -> KeptSpan {
        KeptSpan {
            offset,
            len,
            line: 1,
            resource: 0,
            trace: 0,
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
}

//! The kept spans of a compressed input read in groups: decompressed once more and written one
//! after another to a file of their own, from which each group reads its spans as from a plain
//! file (reading a group from the input would decompress it again for every group). The file
//! is filled on one thread while the groups are read on the others: a group waits only until
//! the file holds its spans, and the groups are cut in the order the file is filled
//! (`FirstPass::scan_groups`), so that decompressing and auditing overlap.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use rustc_hash::{FxHashMap, FxHashSet};

use super::super::Parsed;
use super::super::compress::FrameTable;
use super::super::otlp_json::Keep;
use super::index::{KeptSpan, SpanIndex, trace_key};
use super::reader::{Encoding, Opened, block_bytes};
use super::second_pass::{
    BATCHING, kept_texts_in_frames, kept_texts_in_order, read_kept_in_batches,
};
use crate::model::{Resource, TraceId};

/// The blocks a compressed input is decompressed in to fill the file.
const FILL_BLOCK: u64 = 2 << 20;

/// How many kept spans apart the places noted are (`Spill::offsets`).
const OFFSET_STRIDE: usize = 64;

/// A compressed input's kept spans, written out (as they are decompressed) to an unnamed file,
/// which goes with the value.
pub(super) struct Spill {
    file: File,
    /// The kept spans at their places in the input's text, in the order they were kept: the
    /// order they follow one another in the file.
    kept: Vec<KeptSpan>,
    /// Where every `OFFSET_STRIDE`th kept span is in the file (all of them would cost the
    /// memory of a compressed scan a megabyte at 1 GB).
    offsets: Vec<u64>,
    filled: Mutex<Filled>,
    grown: Condvar,
}

/// How far the file is filled.
#[derive(Default)]
struct Filled {
    bytes: u64,
    /// Every kept span is in it.
    whole: bool,
    /// It cannot be filled: what is not in it will not be.
    failed: bool,
}

impl Spill {
    /// An empty file for the kept spans of `traces`.
    pub(super) fn new(index: &SpanIndex, traces: &FxHashSet<TraceId>) -> Result<Spill, String> {
        let file = tempfile::tempfile()
            .map_err(|e| format!("cannot make a file for the spans that matter: {e}"))?;
        let kept = index.kept(traces);
        let offsets = kept
            .chunks(OFFSET_STRIDE)
            .scan(0u64, |at, spans| {
                let offset = *at;
                *at += spans.iter().map(|span| u64::from(span.len)).sum::<u64>();
                Some(offset)
            })
            .collect();
        Ok(Spill {
            file,
            kept,
            offsets,
            filled: Mutex::default(),
            grown: Condvar::new(),
        })
    }

    /// The kept spans at their places in the file, in its order, with the key of their trace.
    fn places(&self) -> impl Iterator<Item = KeptSpan> + '_ {
        self.kept.iter().scan(0u64, |at, span| {
            let place = KeptSpan {
                offset: *at,
                ..*span
            };
            *at += u64::from(span.len);
            Some(place)
        })
    }

    /// Where the spans of each group of traces are among the kept spans (`read`'s `places`).
    pub(super) fn places_by_group(&self, groups: &[FxHashSet<TraceId>]) -> Vec<Vec<u32>> {
        super::index::places_by_group(self.kept.iter().map(|span| span.trace), groups)
    }

    /// Kept span `at` at its place in the file.
    fn place(&self, at: usize) -> KeptSpan {
        let from = at - at % OFFSET_STRIDE;
        let before: u64 = self.kept[from..at]
            .iter()
            .map(|span| u64::from(span.len))
            .sum();
        KeptSpan {
            offset: self.offsets[at / OFFSET_STRIDE] + before,
            ..self.kept[at]
        }
    }

    /// For each trace key, how much of the file must be filled to hold its spans.
    pub(super) fn ready_at(&self) -> FxHashMap<u32, u64> {
        let mut ready: FxHashMap<u32, u64> = FxHashMap::default();
        for place in self.places() {
            let end = ready.entry(place.trace).or_default();
            *end = (*end).max(place.end());
        }
        ready
    }

    /// Fills the file from the compressed input at `path` (with a frame table, a zstd file of
    /// many frames or a gzip file with places: from the frames or stretches that hold the kept
    /// spans), saying how far it got as it goes.
    pub(super) fn fill(
        &self,
        path: &Path,
        encoding: Encoding,
        frames: Option<&FrameTable>,
        progress: &indicatif::ProgressBar,
    ) -> Result<(), String> {
        let make =
            |_: &[KeptSpan], texts: Vec<&[u8]>| -> Result<Vec<u8>, String> { Ok(texts.concat()) };
        let take = |text: Vec<u8>| -> Result<(), String> {
            (&self.file)
                .write_all(&text)
                .map_err(|e| format!("cannot write the spans that matter: {e}"))?;
            self.state().bytes += text.len() as u64;
            self.grown.notify_all();
            Ok(())
        };
        let filled = match (encoding, frames) {
            (Encoding::Plain, _) => Err("a plain file is read back as it is".into()),
            (Encoding::Compressed { .. }, Some(frames)) => {
                kept_texts_in_frames(path, &self.kept, frames, progress, make, take)
            }
            (Encoding::Compressed { .. }, None) => {
                Opened::open(path, encoding).and_then(|mut reader| {
                    let len = std::fs::metadata(path).map_or(u64::MAX, |meta| meta.len());
                    if len != u64::MAX {
                        progress.inc_length(len);
                    }
                    // Small blocks: the groups read beside it hold most of the memory.
                    let blocks = block_bytes(encoding, len).min(FILL_BLOCK);
                    kept_texts_in_order(&mut reader, &self.kept, progress, blocks, make, take)
                })
            }
        };
        if filled.is_ok() {
            self.state().whole = true;
        }
        self.give_up();
        filled
    }

    /// Says that no more will be written: a group still waiting for spans the file does not
    /// hold is read in one group instead, rather than waiting for ever (the filling failed,
    /// stopped on a panic, or never started).
    pub(super) fn give_up(&self) {
        let mut state = self.state();
        state.failed |= !state.whole;
        self.grown.notify_all();
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Filled> {
        self.filled.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether every kept span was written.
    pub(super) fn whole(&self) -> bool {
        self.state().whole
    }

    /// Waits until the file holds its first `bytes`; `false` when it never will.
    fn wait_for(&self, bytes: u64) -> bool {
        let mut state = self.state();
        while state.bytes < bytes && !state.failed {
            state = self
                .grown
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state.bytes >= bytes
    }

    /// Reads back the spans of `keep`'s traces, once the file holds them: those at `places`
    /// (indices into the kept spans, from `places_by_group`) when given.
    pub(super) fn read(
        &self,
        input: &Arc<str>,
        resources: &[Arc<Resource>],
        keep: &Keep,
        places: Option<&[u32]>,
        progress: &indicatif::ProgressBar,
    ) -> Result<Parsed, String> {
        let places: Vec<KeptSpan> = match places {
            Some(places) => places.iter().map(|&at| self.place(at as usize)).collect(),
            None => {
                let keys: FxHashSet<u32> = keep.traces.iter().map(|t| trace_key(*t)).collect();
                self.places()
                    .filter(|place| keys.contains(&place.trace))
                    .collect()
            }
        };
        let end = places.iter().map(KeptSpan::end).max().unwrap_or(0);
        if !self.wait_for(end) {
            return Err("cannot read: the spans that matter could not be written out".into());
        }
        read_kept_in_batches(
            &self.file, input, &places, resources, keep, progress, BATCHING,
        )
        .map_err(|e| format!("cannot read: {e}"))
    }
}

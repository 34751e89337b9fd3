//! The second pass of `inspect` over large exports: every span read back, but a group of
//! conversations at a time, each group handed to the caller (who joins it and counts) and let
//! go before the next is read. The counts `inspect` shows are sums over traces (a trace's turns,
//! tool calls and abort need only its own spans) and over conversations (an abort log's record
//! is placed among its conversation's turns), so groups of whole conversations give the numbers
//! a whole read gives, while memory follows one group: `IngestOptions::inspect_group` of span
//! text, or one conversation when it alone is larger.

use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::HashSet;
use std::fs::File;
use std::sync::Arc;

use indicatif::ProgressBar;

use super::super::dedup::{InputRead, merge_inputs};
use super::super::sources::Source;
use super::super::{Counts, Format, Ingested, InputReport, Parsed, otlp_json};
use super::reader::{BLOCK_BYTES, Encoding, Opened};
use super::second_pass::{BATCHING, read_kept_in_batches, read_kept_in_order};
use super::{FirstPass, FirstRead, Surveyed, every_attribute};
use crate::model::ids::hash_text;
use crate::model::{AbortRecord, Diagnostic, Span, TraceId};
use crate::rules::Rules;
use crate::rules::agent::conversation_id;

/// One input, between the groups.
enum Part {
    Whole {
        read: Box<InputRead>,
        /// Its spans, by group.
        spans: Vec<Vec<Span>>,
        /// Its abort records, by group.
        aborts: Vec<Vec<AbortRecord>>,
    },
    Surveyed {
        surveyed: Box<Surveyed>,
        /// What reading the kept spans back found.
        kept: Vec<Diagnostic>,
        error: Option<String>,
    },
}

/// An input's counts, summed over the groups.
#[derive(Default)]
struct Summed {
    counts: Counts,
    services: HashSet<String>,
    /// Spans dropped as conflicting duplicates, said by `merge_inputs`.
    diagnostics: Vec<Diagnostic>,
}

impl FirstPass {
    /// Reads every span back, a group of whole conversations at a time (about `group_text` of
    /// the inputs' span text: `IngestOptions::inspect_group`), each group handed to
    /// `each` as its own `Ingested` (its spans, and the abort records of its conversations),
    /// then dropped; returns the inputs as a whole read reports them, counts included, with no
    /// spans. Needs `first_pass_by_conversation`, and no vendor event log (whose events join
    /// across conversations): with one, every input is read whole.
    pub fn read_by_conversation(
        self,
        rules: &Rules,
        group_text: u64,
        progress: &ProgressBar,
        mut each: impl FnMut(&Ingested),
    ) -> Ingested {
        let conversations = self.all_conversations(rules);
        // Each trace's conversation (hashed): the first its spans name, in input order.
        let mut named: FxHashMap<TraceId, Option<u64>> = FxHashMap::default();
        let mut text = 0u64;
        for input in &self.inputs {
            let note = |named: &mut FxHashMap<TraceId, Option<u64>>, trace, conversation| {
                let slot: &mut Option<u64> = named.entry(trace).or_default();
                *slot = slot.or(conversation);
            };
            match input {
                FirstRead::Surveyed(surveyed) => {
                    text += surveyed
                        .parsed
                        .index
                        .spans
                        .iter()
                        .map(|place| u64::from(place.len))
                        .sum::<u64>();
                    for (trace, conversation) in surveyed.parsed.survey.traces.iter().flatten() {
                        note(&mut named, *trace, *conversation);
                    }
                }
                FirstRead::Whole(read) => {
                    for span in &read.spans {
                        let conversation = conversation_id(span, rules).map(|c| hash_text(&c));
                        note(&mut named, span.trace_id, conversation);
                    }
                }
            }
        }
        // No more groups than traces: most would be empty.
        let groups = text
            .div_ceil(group_text.max(1))
            .clamp(1, named.len().max(1) as u64) as usize;
        // A trace that names no conversation is one of its own, named by its id as the join
        // names it (and as an abort log would).
        let group_of_conversation = |conversation: u64| (conversation % groups as u64) as usize;
        let group_of = |trace: TraceId| {
            group_of_conversation(
                named
                    .get(&trace)
                    .copied()
                    .flatten()
                    .unwrap_or_else(|| hash_text(&trace.to_string())),
            )
        };
        let mut keep: Vec<FxHashSet<TraceId>> = vec![FxHashSet::default(); groups];
        for trace in named.keys() {
            keep[group_of(*trace)].insert(*trace);
        }

        let mut events = Vec::new();
        let mut records = Vec::new();
        let mut parts: Vec<Part> = self
            .inputs
            .into_iter()
            .map(|input| match input {
                FirstRead::Whole(mut read) => {
                    let mut spans = vec![Vec::new(); groups];
                    for span in std::mem::take(&mut read.spans) {
                        spans[group_of(span.trace_id)].push(span);
                    }
                    let mut aborts = vec![Vec::new(); groups];
                    for record in &read.aborts {
                        let group = group_of_conversation(hash_text(&record.conversation_id));
                        aborts[group].push(record.clone());
                    }
                    records.append(&mut read.aborts);
                    events.append(&mut read.events);
                    Part::Whole {
                        read,
                        spans,
                        aborts,
                    }
                }
                FirstRead::Surveyed(mut surveyed) => {
                    // Each group's spans found at once, rather than among all of them for
                    // each group.
                    surveyed.groups = surveyed.parsed.index.places_by_group(&keep);
                    Part::Surveyed {
                        surveyed,
                        kept: Vec::new(),
                        error: None,
                    }
                }
            })
            .collect();
        drop(named);

        let mut summed: Vec<Summed> = parts.iter().map(|_| Summed::default()).collect();
        let mut traces = 0;
        for (group, traces_of_group) in keep.into_iter().enumerate() {
            let keep = otlp_json::Keep {
                traces: traces_of_group,
                attributes: every_attribute(),
            };
            let reads: Vec<InputRead> = parts
                .iter_mut()
                .map(|part| read_group(part, group, &keep, progress))
                .collect();
            let read = merge_inputs(reads, 0);
            each(&read);
            traces += read.total.traces;
            // The spans of each input, one after another, as many as its kinds count.
            let mut spans = read.spans.iter();
            for (sum, report) in summed.iter_mut().zip(read.inputs) {
                let kept: u64 = report.counts.kinds.values().sum();
                sum.services.extend(
                    spans
                        .by_ref()
                        .take(kept as usize)
                        .map(|span| span.service().to_owned()),
                );
                sum.counts.add(&report.counts);
                sum.counts.traces += report.counts.traces;
                sum.diagnostics.extend(report.diagnostics);
            }
        }

        let mut ingested = Ingested::default();
        let mut services = HashSet::new();
        for (part, sum) in parts.into_iter().zip(summed) {
            let mut report = match part {
                Part::Whole { read, .. } => read.report,
                Part::Surveyed {
                    mut surveyed,
                    kept,
                    error,
                } => {
                    if surveyed.error.is_none() {
                        surveyed.error = error;
                    }
                    surveyed.report(kept)
                }
            };
            let counts = &mut report.counts;
            counts.kinds = sum.counts.kinds;
            counts.events = sum.counts.events;
            counts.links = sum.counts.links;
            counts.duplicates = sum.counts.duplicates;
            counts.traces = sum.counts.traces;
            counts.services = sum.services.len() as u64;
            // As a whole read says them: after what the input's reading said, in line order.
            let mut duplicates = sum.diagnostics;
            duplicates.sort_by_key(|d| d.line);
            if report.error.is_none() {
                report.diagnostics.extend(duplicates);
            }
            services.extend(sum.services);
            ingested.total.add(&report.counts);
            ingested.inputs.push(report);
        }
        // Distinct over all the inputs: each trace is in one group.
        ingested.total.traces = traces;
        ingested.total.services = services.len() as u64;
        ingested.events = events;
        ingested.aborts = records;
        ingested.conversations = conversations.len() as u64;
        ingested.walk_diagnostics = self.walk_diagnostics;
        ingested
    }
}

/// One input's part of a group: the spans read whole that are in it, or the kept spans read
/// back.
fn read_group(
    part: &mut Part,
    group: usize,
    keep: &otlp_json::Keep,
    progress: &ProgressBar,
) -> InputRead {
    let blank = |path: String, format: Format, compression| InputReport {
        path,
        format,
        compression,
        counts: Counts::default(),
        diagnostics: Vec::new(),
        error: None,
    };
    match part {
        Part::Whole {
            read,
            spans,
            aborts,
        } => InputRead {
            report: blank(
                read.report.path.clone(),
                read.report.format,
                read.report.compression,
            ),
            spans: std::mem::take(&mut spans[group]),
            events: Vec::new(),
            aborts: std::mem::take(&mut aborts[group]),
        },
        Part::Surveyed {
            surveyed,
            kept,
            error,
        } => {
            let report = blank(
                surveyed.source.display(),
                Format::OtlpJsonLines,
                surveyed.compression(),
            );
            let spans = if surveyed.error.is_none() && error.is_none() {
                match read_kept_of(surveyed, keep, Some(group), progress) {
                    Ok(read) => {
                        kept.extend(read.diagnostics);
                        read.spans
                    }
                    Err(e) => {
                        *error = Some(e);
                        Vec::new()
                    }
                }
            } else {
                Vec::new()
            };
            InputRead {
                report,
                spans,
                events: Vec::new(),
                aborts: Vec::new(),
            }
        }
    }
}

/// The spans of `keep` in a surveyed input, read back from their places: those of group
/// `group` of `FirstPass::scan_groups` when given.
pub(super) fn read_kept_of(
    surveyed: &Surveyed,
    keep: &otlp_json::Keep,
    group: Option<usize>,
    progress: &ProgressBar,
) -> Result<Parsed, String> {
    let Source::Path(path) = &surveyed.source else {
        unreachable!("only files are read in two passes");
    };
    let input: Arc<str> = Arc::from(surveyed.source.display().as_str());
    let index = &surveyed.parsed.index;
    let resources = &index.resources;
    // A compressed input's kept spans written out (`FirstPass::scan_groups`) are read from
    // there, as from a plain file.
    let places = group
        .and_then(|g| surveyed.groups.get(g))
        .map(Vec::as_slice);
    if let Some(spill) = &surveyed.spill {
        return spill.read(&input, resources, keep, places, progress);
    }
    let kept = match places {
        Some(places) => index.kept_at(places),
        None => index.kept(&keep.traces),
    };
    match surveyed.encoding {
        Encoding::Plain => File::open(path)
            .map_err(|e| e.to_string())
            .and_then(|file| {
                read_kept_in_batches(&file, &input, &kept, resources, keep, progress, BATCHING)
            })
            .map_err(|e| format!("cannot read: {e}")),
        Encoding::Compressed { .. } if kept.is_empty() => Ok(Parsed::default()),
        encoding @ Encoding::Compressed { .. } => {
            let mut reader = Opened::open(path, encoding)?;
            read_kept_in_order(
                &mut reader,
                &input,
                &kept,
                resources,
                keep,
                progress,
                BLOCK_BYTES,
            )
        }
    }
}

impl Surveyed {
    fn compression(&self) -> super::super::Compression {
        match self.encoding {
            Encoding::Plain => super::super::Compression::None,
            Encoding::Compressed { compression, .. } => compression,
        }
    }
}

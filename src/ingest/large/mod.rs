//! Reading inputs for an audit, where large OTLP/JSON Lines exports (the Collector's), plain or
//! gzip- or zstd-compressed, are read in two passes so that memory follows the aborted turns
//! rather than the file (docs/large-exports.md):
//!
//! 1. `plan`: which inputs are large enough to stream;
//! 2. `first_pass`: every other input is read whole; each large one is read once, in blocks,
//!    and every span in it is placed (where its text is) and surveyed (its trace, whether it
//!    may carry an abort signal, where its links point) without being built;
//! 3. the caller decides from the first pass's `Signals` which traces matter (the join's
//!    business: `correlate::traces_that_matter`);
//! 4. `second_pass`: the spans of those traces are read back from their places and built.
//!
//! With vendor event logs every input is read whole, since an event joined by conversation id
//! alone must be weighed against every turn of its conversation.

mod by_conversation;
mod first_pass;
mod groups;

pub use groups::{DEFAULT_SCAN_GROUP, Group, GroupFacts, combine_groups};
pub(super) mod index;
mod reader;
mod second_pass;
mod spill;

use rustc_hash::FxHashSet;
use std::collections::HashSet;
use std::sync::Arc;

use indicatif::ProgressBar;
use rayon::prelude::*;

use super::dedup::{InputRead, merge_inputs};
use super::sniff::{Deferred, no_spans_read, otlp_lines_after_a_bad_first_line, read_source};
use super::sources::{Source, expand};
use super::{
    Compression, Counts, Format, IngestOptions, Ingested, InputKind, InputReport, InputSet, Parsed,
    Shape, compress, otlp_json,
};
use crate::model::ids::hash_text;
use crate::model::{Code, Diagnostic, TraceId};
use crate::rules::agent::conversation_id;
use crate::rules::keys::AttributesRead;
use crate::rules::{Rules, abort};
use reader::Encoding;

/// What to read, and how: each input whole, or in two passes.
pub struct Plan {
    inputs: Vec<Planned>,
    walk_diagnostics: Vec<Diagnostic>,
}

struct Planned {
    source: Source,
    kind: InputKind,
    /// `Some` for an input read in two passes.
    streamed: Option<Encoding>,
}

/// Expands the inputs and decides which are read in two passes.
pub fn plan(inputs: &InputSet, options: &IngestOptions) -> Plan {
    // With event logs every input is read whole (see the module's comment).
    let may_stream = inputs.event_logs.is_empty();
    let mut planned = Vec::new();
    let mut walk_diagnostics = Vec::new();
    for (sources, kind) in [
        (&inputs.traces, InputKind::Traces),
        (&inputs.event_logs, InputKind::Events),
        (&inputs.abort_logs, InputKind::Aborts),
    ] {
        let expanded = expand(sources);
        walk_diagnostics.extend(expanded.diagnostics);
        planned.extend(expanded.files.into_iter().map(|source| {
            Planned {
                streamed: (may_stream && kind == InputKind::Traces)
                    .then(|| streamable(&source, options))
                    .flatten(),
                source,
                kind,
            }
        }));
    }
    Plan {
        inputs: planned,
        walk_diagnostics,
    }
}

impl Plan {
    /// The bytes the first pass goes through (the size of the inputs read in two passes), for
    /// a progress bar.
    pub fn streamed_bytes(&self) -> u64 {
        self.inputs
            .iter()
            .filter(|p| p.streamed.is_some())
            .filter_map(|p| match &p.source {
                Source::Path(path) => std::fs::metadata(path).ok().map(|m| m.len()),
                Source::Stdin => None,
            })
            .sum()
    }
}

/// The inputs after the first pass.
pub struct FirstPass {
    inputs: Vec<FirstRead>,
    walk_diagnostics: Vec<Diagnostic>,
    /// Hashes of the conversation ids the surveyed spans name.
    conversations: HashSet<u64>,
}

enum FirstRead {
    Whole(Box<InputRead>),
    Surveyed(Box<Surveyed>),
}

/// What the first pass left of a streamed input.
struct Surveyed {
    source: Source,
    parsed: Parsed,
    encoding: Encoding,
    /// The input could not be read.
    error: Option<String>,
    /// A compressed input ended early, corrupt or cut short, after what was read.
    corrupt: Option<String>,
    /// Where the frames of a zstd file of many frames, or the stretches of a gzip file, are
    /// (see `reader::Ended`).
    frames: Option<compress::FrameTable>,
    /// A compressed input's kept spans, written out to be read back in groups
    /// (`FirstPass::scan_groups`).
    spill: Option<spill::Spill>,
    /// The kept spans of each group of `FirstPass::scan_groups`, as places in the index, in
    /// file order.
    groups: Vec<Vec<u32>>,
}

/// What the first pass found that decides which traces matter.
#[derive(Debug, Default)]
pub struct Signals {
    /// Traces with a span that may carry an abort signal.
    pub may_abort: FxHashSet<TraceId>,
    /// Span links as (the trace linked to, the trace of the linking span).
    pub links: Vec<(TraceId, TraceId)>,
}

/// Reads the inputs planned whole, and surveys those planned in two passes, each on all
/// threads. When an input read whole turns out to be a vendor event log, every input is read
/// whole.
pub fn first_pass(
    plan: Plan,
    options: &IngestOptions,
    rules: &Rules,
    progress: &ProgressBar,
) -> FirstPass {
    first_pass_noting(plan, options, rules, progress, false)
}

/// `first_pass`, noting every trace of the inputs read in two passes with the conversation it
/// names, for `FirstPass::traces_of_conversation` and `FirstPass::read_by_conversation`
/// (`explain` and `inspect`).
pub fn first_pass_by_conversation(
    plan: Plan,
    options: &IngestOptions,
    rules: &Rules,
    progress: &ProgressBar,
) -> FirstPass {
    first_pass_noting(plan, options, rules, progress, true)
}

fn first_pass_noting(
    plan: Plan,
    options: &IngestOptions,
    rules: &Rules,
    progress: &ProgressBar,
    by_conversation: bool,
) -> FirstPass {
    let vendors = rules.effective_vendors();
    // One memory budget for every input read whole: those read side by side share it, and
    // one that finds it taken is read after them, alone (`compress::Memory`).
    let memory = compress::MemoryBudget::new(options.memory_budget);
    let read_alone = |p: &Planned| {
        read_source(
            &p.source,
            options,
            &vendors,
            p.kind,
            &compress::Memory::alone(&memory),
        )
        .expect("a read alone is never deferred")
    };
    let whole: Vec<Option<Result<InputRead, Deferred>>> = plan
        .inputs
        .par_iter()
        .map(|p| {
            p.streamed.is_none().then(|| {
                let beside_others = compress::Memory::beside_others(&memory);
                read_source(&p.source, options, &vendors, p.kind, &beside_others)
            })
        })
        .collect();
    let whole: Vec<Option<InputRead>> = whole
        .into_iter()
        .zip(&plan.inputs)
        .map(|(read, p)| read.map(|read| read.unwrap_or_else(|Deferred| read_alone(p))))
        .collect();
    let events_among_whole = whole.iter().flatten().any(|read| !read.events.is_empty());
    progress.set_message("reading traces (first of two passes)");
    // Abort logs are read whole, first: the turns of the conversations they name matter.
    let aborted_conversations = whole
        .iter()
        .flatten()
        .flat_map(|read| &read.aborts)
        .map(|record| hash_text(&record.conversation_id))
        .collect();
    let survey = Arc::new(
        otlp_json::SurveyRules::new(rules).with_aborted_conversations(aborted_conversations),
    );
    let mut conversations = HashSet::new();
    let inputs = plan
        .inputs
        .into_iter()
        .zip(whole)
        .map(|(planned, whole)| match (whole, planned.streamed) {
            (Some(read), _) => FirstRead::Whole(Box::new(read)),
            (None, Some(_)) if events_among_whole => {
                FirstRead::Whole(Box::new(read_alone(&planned)))
            }
            (None, Some(encoding)) => {
                let surveyed = survey_input(
                    planned.source,
                    encoding,
                    &survey,
                    progress,
                    options.memory_budget,
                    by_conversation,
                );
                conversations.extend(&surveyed.parsed.survey.conversations);
                FirstRead::Surveyed(Box::new(surveyed))
            }
            (None, None) => unreachable!("an input not streamed is read whole"),
        })
        .collect();
    FirstPass {
        inputs,
        walk_diagnostics: plan.walk_diagnostics,
        conversations,
    }
}

fn survey_input(
    source: Source,
    encoding: Encoding,
    survey: &Arc<otlp_json::SurveyRules>,
    progress: &ProgressBar,
    max_line: u64,
    by_conversation: bool,
) -> Surveyed {
    let mut parsed = Parsed::default();
    parsed.survey.traces = by_conversation.then(Default::default);
    let Source::Path(path) = &source else {
        unreachable!("only files are streamed");
    };
    let input: Arc<str> = Arc::from(source.display().as_str());
    let len = std::fs::metadata(path).map_or(u64::MAX, |m| m.len());
    let read = first_pass::index_file(
        path,
        encoding,
        &input,
        survey,
        &mut parsed,
        progress,
        reader::Blocks {
            bytes: reader::block_bytes(encoding, len),
            max_line,
        },
    );
    let (error, corrupt, frames) = match read {
        Ok(ended) => (None, ended.corrupt, ended.frames),
        Err(error) => (Some(error), None, None),
    };
    Surveyed {
        source,
        parsed,
        encoding,
        error,
        corrupt,
        frames,
        spill: None,
        groups: Vec::new(),
    }
}

impl FirstPass {
    /// Whether an input is read in two passes.
    pub fn read_in_two_passes(&self) -> bool {
        self.inputs
            .iter()
            .any(|input| matches!(input, FirstRead::Surveyed(_)))
    }

    /// How many conversation ids the inputs name (`all_conversations`), without copying their
    /// hashes when every input was surveyed: a group of a large export counts them all, and
    /// a copy a group was most of the second pass's growth with the export's size.
    fn conversation_count(&self, rules: &Rules) -> u64 {
        if self
            .inputs
            .iter()
            .all(|input| matches!(input, FirstRead::Surveyed(_)))
        {
            return self.conversations.len() as u64;
        }
        self.all_conversations(rules).len() as u64
    }

    /// Hashes of the conversation ids every input names: the surveys counted those of the
    /// inputs read in two passes; those read whole are counted here, once.
    fn all_conversations(&self, rules: &Rules) -> HashSet<u64> {
        let mut conversations = self.conversations.clone();
        for input in &self.inputs {
            if let FirstRead::Whole(read) = input {
                conversations.extend(
                    read.spans
                        .iter()
                        .filter_map(|span| conversation_id(span, rules))
                        .map(|id| hash_text(&id)),
                );
            }
        }
        conversations
    }

    /// The traces of conversation `id`: those whose spans name it, or, for a conversation
    /// that is an unnamed trace (as the join names one), that trace. Needs
    /// `first_pass_by_conversation`.
    pub fn traces_of_conversation(&self, id: &str, rules: &Rules) -> FxHashSet<TraceId> {
        let hash = hash_text(id);
        let mut traces: FxHashSet<TraceId> = crate::model::ids::decode_id::<16>(id)
            .ok()
            .filter(|bytes| TraceId(*bytes).to_string() == id)
            .map(TraceId)
            .into_iter()
            .collect();
        for input in &self.inputs {
            match input {
                FirstRead::Surveyed(surveyed) => traces.extend(
                    surveyed
                        .parsed
                        .survey
                        .traces
                        .iter()
                        .flatten()
                        .filter(|(_, named)| **named == Some(hash))
                        .map(|(trace, _)| *trace),
                ),
                FirstRead::Whole(read) => traces.extend(
                    read.spans
                        .iter()
                        .filter(|span| conversation_id(span, rules).is_some_and(|c| c == id))
                        .map(|span| span.trace_id),
                ),
            }
        }
        traces
    }

    /// The abort signals and links of every input: from the surveys of the streamed ones, and
    /// from the spans of those read whole. A trace may hold an abort when a span records one,
    /// when one may be inferred from a span, or when an abort log names the trace or its
    /// conversation.
    pub fn signals(&self, rules: &Rules) -> Signals {
        let mut signals = Signals::default();
        let records = || {
            self.inputs.iter().flat_map(|input| match input {
                FirstRead::Whole(read) => read.aborts.as_slice(),
                FirstRead::Surveyed(_) => &[],
            })
        };
        let aborted_conversations: FxHashSet<&str> =
            records().map(|r| r.conversation_id.as_str()).collect();
        signals
            .may_abort
            .extend(records().filter_map(|r| r.trace_id));
        for input in &self.inputs {
            match input {
                FirstRead::Surveyed(surveyed) => {
                    let survey = &surveyed.parsed.survey;
                    signals.may_abort.extend(&survey.may_abort);
                    signals.links.extend(&survey.links);
                }
                FirstRead::Whole(read) => {
                    for span in &read.spans {
                        let may_abort = !abort::span_signals(span, rules).is_empty()
                            || abort::InferenceHints::of(span, rules).may_infer(rules)
                            || (!aborted_conversations.is_empty()
                                && conversation_id(span, rules)
                                    .is_some_and(|c| aborted_conversations.contains(&*c)));
                        if may_abort {
                            signals.may_abort.insert(span.trace_id);
                        }
                        signals
                            .links
                            .extend(span.links.iter().map(|l| (l.trace_id, span.trace_id)));
                    }
                }
            }
        }
        signals
    }
}

/// Reads back the spans of `traces` from the inputs surveyed by the first pass, and puts every
/// input together (see `ingest_inputs`).
pub fn second_pass(
    first: FirstPass,
    traces: FxHashSet<TraceId>,
    rules: &Rules,
    progress: &ProgressBar,
) -> Ingested {
    let attributes = rules.attributes_read();
    second_pass_keeping(first, traces, attributes, rules, progress)
}

/// `second_pass`, keeping every attribute of the spans read back (`explain`, whose timeline
/// is a whole read's).
pub fn second_pass_in_full(
    first: FirstPass,
    traces: FxHashSet<TraceId>,
    rules: &Rules,
    progress: &ProgressBar,
) -> Ingested {
    second_pass_keeping(first, traces, every_attribute(), rules, progress)
}

/// Every attribute: every key starts with the empty prefix.
fn every_attribute() -> AttributesRead {
    AttributesRead {
        keys: FxHashSet::default(),
        prefixes: vec![String::new()],
    }
}

fn second_pass_keeping(
    first: FirstPass,
    traces: FxHashSet<TraceId>,
    attributes: AttributesRead,
    rules: &Rules,
    progress: &ProgressBar,
) -> Ingested {
    let keep = otlp_json::Keep { traces, attributes };
    let conversations = first.all_conversations(rules);
    let results: Vec<InputRead> = first
        .inputs
        .into_iter()
        .map(|input| match input {
            FirstRead::Whole(read) => *read,
            FirstRead::Surveyed(surveyed) => read_kept(*surveyed, &keep, progress),
        })
        .collect();
    let mut ingested = merge_inputs(results, conversations.len() as u64);
    super::consistency::check(&mut ingested, &keep.traces);
    ingested.walk_diagnostics = first.walk_diagnostics;
    ingested
}

fn read_kept(surveyed: Surveyed, keep: &otlp_json::Keep, progress: &ProgressBar) -> InputRead {
    let Surveyed {
        source,
        parsed: survey,
        encoding,
        error,
        corrupt,
        frames,
        spill,
        groups: _,
    } = surveyed;
    let input: Arc<str> = Arc::from(source.display().as_str());
    let (kept, error) = match (error, &source) {
        (None, Source::Path(file)) => {
            let read = match &spill {
                // Written out whole for groups that then could not be read as such.
                Some(spill) if spill.whole() => {
                    spill.read(&input, &survey.index.resources, keep, None, progress)
                }
                _ => second_pass::read_kept(
                    file,
                    encoding,
                    frames.as_ref(),
                    &input,
                    survey.index,
                    keep,
                    progress,
                ),
            };
            match read {
                Ok(kept) => (kept, None),
                Err(e) => (Parsed::default(), Some(e)),
            }
        }
        (error, _) => (Parsed::default(), error),
    };
    let surveyed = Surveyed {
        source,
        parsed: Parsed {
            index: Default::default(),
            ..survey
        },
        encoding,
        error,
        corrupt,
        frames: None,
        spill: None,
        groups: Vec::new(),
    };
    InputRead {
        report: surveyed.report(kept.diagnostics),
        spans: kept.spans,
        events: Vec::new(),
        aborts: Vec::new(),
    }
}

impl Surveyed {
    /// The input's report after both passes, with what the second found (`kept`: about the
    /// kept spans), and no counts of the spans kept: those are counted when the inputs are put
    /// together.
    fn report(&self, kept: Vec<Diagnostic>) -> InputReport {
        let Surveyed {
            source,
            parsed: survey,
            encoding,
            error,
            corrupt,
            frames: _,
            spill: _,
            groups: _,
        } = self;
        let path = source.display();
        let input: Arc<str> = Arc::from(path.as_str());
        // The first pass gave every diagnostic a whole read gives, in its order: the second,
        // which builds again spans the first read (and found what they had to say), adds none.
        let mut diagnostics = survey.diagnostics.clone();
        drop(kept);
        if let Some(why) = corrupt {
            diagnostics.insert(
                0,
                Diagnostic::error(
                    &input,
                    None,
                    Code::CorruptCompression,
                    format!("{why}; what decoded before it is read"),
                ),
            );
        }
        // An input that could not be read is unusable, as a whole read leaves it: what its
        // first blocks said goes with it.
        if error.is_some() {
            diagnostics.clear();
        }
        let error = match error {
            Some(e) => Some(format!("{path}: {e}")),
            None if survey.spans_read == 0 => {
                Some(no_spans_read(&path, Format::OtlpJsonLines, &diagnostics))
            }
            None => None,
        };
        InputReport {
            path,
            format: Format::OtlpJsonLines,
            compression: match *encoding {
                Encoding::Plain => Compression::None,
                Encoding::Compressed { compression, .. } => compression,
            },
            counts: Counts {
                lines: survey.lines,
                spans: survey.spans_read,
                unjoinable: survey.spans_unjoinable,
                ..Counts::default()
            },
            diagnostics,
            error,
        }
    }
}

/// How an input is read in two passes, if it is: an OTLP/JSON Lines file above the threshold
/// (`survey_above`), plain, or gzip- or zstd-compressed (counted at 8 bytes a compressed byte,
/// about what JSON compresses to).
fn streamable(source: &Source, options: &IngestOptions) -> Option<Encoding> {
    let Source::Path(path) = source else {
        return None;
    };
    if options.survey_above == u64::MAX {
        return None;
    }
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    let limit = options.max_decompressed;
    // One decoder both tells a compressed file and reads its first line.
    let decoder = compress::StreamDecoder::open_streaming(path, limit).ok()?;
    let (encoding, size) = match &decoder {
        None => (Encoding::Plain, meta.len()),
        Some(decoder) => (
            Encoding::Compressed {
                limit,
                compression: decoder.compression(),
            },
            meta.len().saturating_mul(8),
        ),
    };
    if size <= options.survey_above {
        return None;
    }
    let mut head = vec![0u8; 1 << 20];
    let n = match decoder {
        None => std::fs::File::open(path).and_then(|mut f| compress::read_up_to(&mut f, &mut head)),
        Some(mut decoder) => compress::read_up_to(&mut decoder, &mut head),
    }
    .ok()?;
    let head = &head[..n];
    let end = head.iter().position(|b| *b == b'\n')?;
    let first = head[..end].trim_ascii();
    if first.first() == Some(&b'{') && otlp_json::shape_of(first) == Shape::OtlpTraces {
        return Some(encoding);
    }
    // A first line that is not a whole record, which the whole read reads past: by the same
    // test on the start of the file (a file that starts otherwise, or with a byte order mark,
    // is left to the whole read).
    let start = head.iter().position(|b| !b.is_ascii_whitespace())?;
    let complete = n < head.len();
    (matches!(head[start], b'{' | b'[')
        && otlp_lines_after_a_bad_first_line(&head[start..], complete))
    .then_some(encoding)
}

#[cfg(test)]
mod tests {
    use super::*;
    use first_pass::index_file;
    use otlp_json::{Keep, SurveyRules};
    use reader::{BLOCK_BYTES, Blocks, Opened};
    use second_pass::{
        BATCHING, Batching, frame_groups, read_kept_in_batches, read_kept_in_frames,
        read_kept_in_order,
    };
    use std::path::Path;

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
                Blocks {
                    bytes: block,
                    max_line: u64::MAX,
                },
            );
            assert_eq!(read.map(|ended| ended.corrupt), Ok(None));
            parsed
        };
        let small = index(1000);
        let large = index(BLOCK_BYTES);
        assert!(small.spans_read > 50, "{}", small.spans_read);
        assert_eq!(small.spans_read, large.spans_read);
        let places = |p: &Parsed| -> Vec<(u64, u32, u32)> { p.index.places() };
        assert_eq!(places(&small), places(&large));
        let lines = |p: &Parsed| -> Vec<u64> { p.index.groups.iter().map(|g| g.line).collect() };
        assert_eq!(lines(&small), lines(&large));
        assert_eq!(small.survey.may_abort, large.survey.may_abort);

        // Every span kept, read back by its place, is the span a whole read finds: whatever
        // the batches (one span each, or several with runs read apart) and whichever traces
        // are kept.
        let text = std::fs::read(&path).unwrap();
        let mut whole = Parsed::default();
        otlp_json::read_lines(&input, &text, &mut whole);
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
                attributes: rules.attributes_read(),
            };
            for batching in batchings {
                let index = index(700).index;
                let places = index.kept(&keep.traces);
                let resources = &index.resources;
                let file = std::fs::File::open(&path).unwrap();
                let kept = read_kept_in_batches(
                    &file, &input, &places, resources, &keep, &hidden, batching,
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
                        .filter(|kv| keep.attributes.contains(&kv.key))
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
        let zstd = |t: &[u8]| zstd::bulk::compress(t, 1).unwrap();
        let mut packed = zstd(&text[..half]);
        packed.extend_from_slice(&zstd(&text[half..]));
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &packed).unwrap();
        let encoding = Encoding::Compressed {
            limit: None,
            compression: Compression::Zstd,
        };
        let input: Arc<str> = Arc::from("agent.jsonl.zst");
        let rules = crate::rules::Rules::default();
        let survey = Arc::new(SurveyRules::new(&rules));
        let hidden = indicatif::ProgressBar::hidden();
        let mut whole = Parsed::default();
        otlp_json::read_lines(&input, &text, &mut whole);
        let keep = Keep {
            traces: whole.spans.iter().map(|s| s.trace_id).collect(),
            attributes: rules.attributes_read(),
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
                Blocks {
                    bytes: first,
                    max_line: u64::MAX,
                },
            );
            assert_eq!(read.map(|ended| ended.corrupt), Ok(None));
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

    /// `text` as `pzstd` writes it: frames of `every` bytes of it, cut anywhere (lines run on
    /// from one frame to the next), each after a skippable frame.
    fn pzstd_like(text: &[u8], every: usize) -> Vec<u8> {
        let mut packed = Vec::new();
        for chunk in text.chunks(every) {
            let frame = zstd::bulk::compress(chunk, 3).unwrap();
            packed.extend_from_slice(&[0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0]);
            packed.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            packed.extend_from_slice(&frame);
        }
        packed
    }

    const ZSTD: Encoding = Encoding::Compressed {
        limit: None,
        compression: Compression::Zstd,
    };

    /// The first pass over `path` on `threads` threads, in blocks of `block` bytes.
    fn first_pass_on(
        threads: usize,
        path: &Path,
        input: &Arc<str>,
        block: u64,
    ) -> (Parsed, reader::Ended) {
        let rules = crate::rules::Rules::default();
        let survey = Arc::new(SurveyRules::new(&rules));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut parsed = Parsed::default();
            let ended = index_file(
                path,
                ZSTD,
                input,
                &survey,
                &mut parsed,
                &indicatif::ProgressBar::hidden(),
                Blocks {
                    bytes: block,
                    max_line: u64::MAX,
                },
            )
            .unwrap();
            (parsed, ended)
        })
    }

    /// `text` as gzip with many deflate blocks (as `pigz` writes it, a block ended every
    /// `every` bytes), in two members cut in the middle of a line.
    fn gzip_blocks(text: &[u8], every: usize) -> Vec<u8> {
        use std::io::Write;
        let (one, two) = text.split_at(text.len() * 3 / 5);
        let mut packed = Vec::new();
        for member in [one, two] {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
            for chunk in member.chunks(every) {
                gz.write_all(chunk).unwrap();
                gz.flush().unwrap();
            }
            packed.extend(gz.finish().unwrap());
        }
        packed
    }

    #[test]
    fn a_file_of_many_frames_is_read_back_from_the_frames_that_hold_kept_spans() {
        read_back_from_the_frames_that_hold_kept_spans(|text| pzstd_like(text, 3000));
    }

    #[test]
    fn a_gzip_file_is_read_back_from_the_stretches_between_places_that_hold_kept_spans() {
        read_back_from_the_frames_that_hold_kept_spans(|text| gzip_blocks(text, 1000));
    }

    /// The second pass of the fixture `pack`ed as a zstd file of many frames or a gzip file of
    /// many blocks, from the frames (or stretches) the first pass noted: the spans of one
    /// trace, as a whole read reads them, on any number of threads, from only some frames.
    fn read_back_from_the_frames_that_hold_kept_spans(pack: impl Fn(&[u8]) -> Vec<u8>) {
        let fixture =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/scenarios/traces/agent.jsonl");
        let text = &std::fs::read(&fixture).unwrap()[..];
        let packed = pack(text);
        let gzip = packed.starts_with(&[0x1f, 0x8b]);
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &packed).unwrap();
        let input: Arc<str> = Arc::from("agent.jsonl.zst");
        let rules = crate::rules::Rules::default();
        let mut whole = Parsed::default();
        otlp_json::read_lines(&input, text, &mut whole);
        // One trace: its spans lie in a few of the frames.
        let trace = whole.spans[whole.spans.len() / 2].trace_id;
        let keep = Keep {
            traces: [trace].into_iter().collect(),
            attributes: rules.attributes_read(),
        };
        let expected: Vec<_> = whole.spans.iter().filter(|s| s.trace_id == trace).collect();
        assert!(expected.len() > 1);
        let read_back = |places: &[index::KeptSpan],
                         frames: &compress::FrameTable,
                         resources: &[Arc<crate::model::Resource>]| {
            let hidden = indicatif::ProgressBar::hidden();
            read_kept_in_frames(
                file.path(),
                &input,
                places,
                frames,
                resources,
                &keep,
                &hidden,
            )
        };
        let mut results = Vec::new();
        for (threads, block) in [(1, 700), (3, 700), (2, BLOCK_BYTES), (4, 5000)] {
            let (parsed, ended) = first_pass_on(threads, file.path(), &input, block);
            assert_eq!(ended.corrupt, None);
            assert_eq!(parsed.spans_read, whole.spans_read);
            let frames = ended.frames.expect("every frame decoded on its own");
            if !gzip {
                assert_eq!(frames.frames.len(), text.len().div_ceil(3000));
            }
            // Frames or stretches one after another, over the whole text.
            assert_eq!(frames.frames[0].start, 0);
            assert!(frames.frames.windows(2).all(|w| w[0].end() == w[1].start));
            assert_eq!(frames.frames.last().unwrap().end(), text.len() as u64);
            let places = parsed.index.kept(&keep.traces);
            let groups = frame_groups(&places, &frames.frames).unwrap();
            let decoded: usize = groups.iter().map(|g| g.frames.len()).sum();
            let all = frames.frames.len();
            assert!(decoded * 4 < all, "{decoded} of {all}");
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let kept = pool
                .install(|| read_back(&places, &frames, &parsed.index.resources))
                .unwrap();
            assert_eq!(kept.spans.len(), expected.len());
            for (a, b) in kept.spans.iter().zip(&expected) {
                assert_eq!(
                    (a.trace_id, a.span_id, a.start, a.origin.line, &a.name),
                    (b.trace_id, b.span_id, b.start, b.origin.line, &b.name)
                );
            }
            results.push(format!("{:?}", kept.spans));
        }
        // Whatever the threads and the blocks, the same spans in the same order.
        assert!(results.windows(2).all(|w| w[0] == w[1]));

        // A frame changed since the first pass: an error that says so, not other spans.
        let (parsed, ended) = first_pass_on(2, file.path(), &input, BLOCK_BYTES);
        let frames = ended.frames.unwrap();
        let places = parsed.index.kept(&keep.traces);
        let group = &frame_groups(&places, &frames.frames).unwrap()[0];
        let mut changed = packed.clone();
        let frame = frames.frames[group.frames.start];
        let damaged = frame.packed as usize..(frame.packed + frame.packed_len) as usize;
        match gzip {
            // Other deflate data: stored blocks of spaces.
            true => {
                let mut other = Vec::new();
                for _ in 0..(frame.packed_len / 8) {
                    other.extend_from_slice(&[0, 3, 0, 0xfc, 0xff, b' ', b' ', b' ']);
                }
                changed.splice(damaged.start + 1..damaged.start + 1 + other.len(), other);
            }
            false => {
                let other = zstd::bulk::compress(&vec![b' '; frame.len as usize], 3).unwrap();
                changed.splice(damaged, other);
            }
        }
        std::fs::write(file.path(), &changed).unwrap();
        let error = read_back(&places, &frames, &parsed.index.resources).unwrap_err();
        assert!(error.contains("was the file changed"), "{error}");
    }

    #[test]
    fn kept_spans_written_out_are_read_back_as_from_the_compressed_file() {
        // A compressed file read in groups: its kept spans are decompressed once more and
        // written to a file of their own (one frame, or the frames that hold them), from which
        // each group reads its own; the spans must be those the second pass reads, in order.
        let fixture =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/scenarios/traces/agent.jsonl");
        let text = std::fs::read(&fixture).unwrap();
        let input: Arc<str> = Arc::from("agent.jsonl.zst");
        let rules = crate::rules::Rules::default();
        let mut whole = Parsed::default();
        otlp_json::read_lines(&input, &text, &mut whole);
        let mut traces: Vec<TraceId> = whole.spans.iter().map(|s| s.trace_id).collect();
        traces.sort_by_key(|t| t.0);
        traces.dedup();
        // Every other trace kept; the first of them alone makes a group.
        let kept: FxHashSet<TraceId> = traces.iter().step_by(2).copied().collect();
        let alone: FxHashSet<TraceId> = traces.iter().take(1).copied().collect();
        let hidden = indicatif::ProgressBar::hidden();
        let ids = |spans: &[crate::model::Span]| -> Vec<_> {
            spans
                .iter()
                .map(|s| {
                    (
                        s.trace_id,
                        s.span_id,
                        s.start,
                        s.origin.line,
                        s.name.clone(),
                    )
                })
                .collect()
        };
        for packed in [
            zstd::bulk::compress(&text, 3).unwrap(),
            pzstd_like(&text, 3000),
            gzip_blocks(&text, 1000),
        ] {
            let file = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(file.path(), &packed).unwrap();
            let (parsed, ended) = first_pass_on(2, file.path(), &input, 5000);
            let spill = spill::Spill::new(&parsed.index, &kept).unwrap();
            let frames = ended.frames.as_ref();
            // Read while it is filled, on another thread: each read waits for its spans.
            let read_while_filled = std::thread::scope(|scope| {
                let read = scope.spawn(|| {
                    let keep = Keep {
                        traces: kept.clone(),
                        attributes: rules.attributes_read(),
                    };
                    spill.read(&input, &parsed.index.resources, &keep, None, &hidden)
                });
                spill.fill(file.path(), ZSTD, frames, &hidden).unwrap();
                read.join().unwrap().unwrap()
            });
            assert!(spill.whole());
            for traces in [&kept, &alone] {
                let keep = Keep {
                    traces: traces.clone(),
                    attributes: rules.attributes_read(),
                };
                let expected: Vec<_> = whole
                    .spans
                    .iter()
                    .filter(|s| traces.contains(&s.trace_id))
                    .cloned()
                    .collect();
                let read = spill
                    .read(&input, &parsed.index.resources, &keep, None, &hidden)
                    .unwrap();
                assert!(!expected.is_empty());
                assert_eq!(ids(&read.spans), ids(&expected));
                // The same read from the places of the group's spans, found for every group
                // at once.
                let groups = [alone.clone(), traces.clone()];
                let places = spill.places_by_group(&groups);
                let by_places = spill
                    .read(
                        &input,
                        &parsed.index.resources,
                        &keep,
                        Some(&places[1]),
                        &hidden,
                    )
                    .unwrap();
                assert_eq!(ids(&by_places.spans), ids(&expected));
                if traces == &kept {
                    assert_eq!(ids(&read_while_filled.spans), ids(&expected));
                }
            }
            // A file that cannot be filled (the input is gone): a read says so, rather than
            // waiting for what will never come.
            let gone = spill::Spill::new(&parsed.index, &kept).unwrap();
            let missing = file.path().with_extension("gone");
            assert!(gone.fill(&missing, ZSTD, None, &hidden).is_err());
            assert!(!gone.whole());
            let keep = Keep {
                traces: kept.clone(),
                attributes: rules.attributes_read(),
            };
            let error = gone
                .read(&input, &parsed.index.resources, &keep, None, &hidden)
                .unwrap_err();
            assert!(error.contains("could not be written out"), "{error}");
            // One never filled, once given up on: the same, rather than a read that waits.
            let never = spill::Spill::new(&parsed.index, &kept).unwrap();
            never.give_up();
            assert!(!never.whole());
            assert!(
                never
                    .read(&input, &parsed.index.resources, &keep, None, &hidden)
                    .is_err()
            );
        }
    }

    #[test]
    fn a_damaged_frame_among_many_is_reported_as_one_decoder_reports_it() {
        // A frame corrupt or cut short in the middle of a file of frames: the first pass reads
        // what comes before it and says where it is, in the words and at the offsets of the
        // streaming decoder (which reads the rest), and leaves no frame table.
        let fixture =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/scenarios/traces/agent.jsonl");
        let text = std::fs::read(&fixture).unwrap();
        let packed = pzstd_like(&text, 3000);
        // The fifth data frame: after its skippable frame.
        let mut at = 0;
        let mut starts = Vec::new();
        while at < packed.len() {
            at += 12;
            starts.push(at);
            let len = u32::from_le_bytes(packed[at - 4..at].try_into().unwrap()) as usize;
            at += len;
        }
        let fifth = starts[4];
        let mut corrupt = packed.clone();
        corrupt[fifth + 40] ^= 0x55;
        let cut = packed[..fifth + 100].to_vec();
        let input: Arc<str> = Arc::from("agent.jsonl.zst");
        for damaged in [corrupt, cut] {
            let file = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(file.path(), &damaged).unwrap();
            let mut streaming = compress::StreamDecoder::open_streaming(file.path(), None)
                .unwrap()
                .unwrap();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut streaming, &mut data).unwrap();
            let said = streaming.corrupt().unwrap().to_owned();
            assert!(
                said.contains(&format!("zstd frame at byte offset {fifth}")),
                "{said}"
            );
            assert!(data.len() >= 4 * 3000);
            for threads in [1, 2, 3] {
                let (parsed, ended) = first_pass_on(threads, file.path(), &input, 700);
                assert_eq!(ended.corrupt.as_deref(), Some(said.as_str()));
                assert_eq!(ended.frames, None);
                let mut before = Parsed::default();
                let whole_lines = data.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
                otlp_json::read_lines(&input, &data[..whole_lines], &mut before);
                assert!(parsed.spans_read >= before.spans_read);
            }
        }
    }
}

//! Reading inputs into the span model: finding the files (directories, globs), sniffing each
//! one's format and compression by its content (never its extension), decompressing under a
//! size limit, parsing, and removing the duplicates that Collector retries leave behind.
//!
//! One file per input format: `otlp_json` (OTLP/JSON documents and JSON Lines), `otlp_proto`
//! (OTLP/protobuf, unframed or length-framed), `jaeger` and `zipkin` (with what they share in
//! `foreign`), `vendor` (vendor event logs); `sources` finds the files, `sniff` tells what each
//! is, `compress` handles gzip and zstd, `dedup` puts the inputs together, and `large` reads
//! large exports in two passes.

mod aborts;
mod baseline;
pub mod clickhouse;
mod compress;
mod consistency;
mod dedup;
mod foreign;
mod gzip;
mod jaeger;
mod json_text;
mod large;
mod otlp_json;
mod otlp_proto;
mod sniff;
mod sources;
pub mod vendor;
mod zipkin;

use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde::{Serialize, Serializer};

pub use baseline::read_baseline;
pub use clickhouse::{Store, StoreFacts, StoreUrl, read_store};
pub use large::{
    DEFAULT_SCAN_GROUP, FirstPass, Group, GroupFacts, Plan, Signals, combine_groups, first_pass,
    first_pass_by_conversation, plan, second_pass, second_pass_in_full,
};
pub use sources::{Expanded, Source, expand};

use crate::model::{AbortRecord, Diagnostic, Span, TraceId, VendorEvent};
use crate::rules::Rules;

/// What an input turned out to be. The names (`as_str`) are part of the `inspect` JSON schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    OtlpJsonLines,
    OtlpJson,
    /// OTLP/JSON messages in the Collector's length-framed stream (its legacy zstd mode).
    OtlpJsonFramed,
    /// One binary `TracesData` / `ExportTraceServiceRequest` message.
    OtlpProtobuf,
    /// The Collector file exporter's stream: 4-byte big-endian length, then a message.
    OtlpProtobufFramed,
    JaegerJson,
    ZipkinV2Json,
    /// A vendor event log, one event a line.
    VendorJsonLines,
    /// A vendor event log as one document: an event, an array, or a list envelope.
    VendorJson,
    /// A Temporal workflow history.
    TemporalHistory,
    /// An abort log: the user's Stops as the front end recorded them (`--aborts`).
    AbortLog,
    /// A ClickHouse store's `otel_traces` table, read where it lives (`clickhouse://…`).
    ClickHouse,
    /// Zero bytes, or only white space: nothing to read, which is not an error.
    Empty,
    /// Not read: the input's error says why.
    Unknown,
}

impl Serialize for Format {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl Format {
    pub const ALL: [Format; 14] = [
        Format::OtlpJsonLines,
        Format::OtlpJson,
        Format::OtlpJsonFramed,
        Format::OtlpProtobuf,
        Format::OtlpProtobufFramed,
        Format::JaegerJson,
        Format::ZipkinV2Json,
        Format::VendorJsonLines,
        Format::VendorJson,
        Format::TemporalHistory,
        Format::AbortLog,
        Format::ClickHouse,
        Format::Empty,
        Format::Unknown,
    ];

    /// Whether inputs of this format hold vendor events rather than spans.
    pub fn is_events(self) -> bool {
        matches!(
            self,
            Format::VendorJsonLines | Format::VendorJson | Format::TemporalHistory
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::OtlpJsonLines => "otlp-json-lines",
            Format::OtlpJson => "otlp-json",
            Format::OtlpJsonFramed => "otlp-json-framed",
            Format::OtlpProtobuf => "otlp-protobuf",
            Format::OtlpProtobufFramed => "otlp-protobuf-framed",
            Format::JaegerJson => "jaeger-json",
            Format::ZipkinV2Json => "zipkin-v2-json",
            Format::VendorJsonLines => "vendor-json-lines",
            Format::VendorJson => "vendor-json",
            Format::TemporalHistory => "temporal-history",
            Format::AbortLog => "abort-log",
            Format::ClickHouse => "clickhouse",
            Format::Empty => "empty",
            Format::Unknown => "unknown",
        }
    }

    /// The format as people name it, for messages.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Format::OtlpJsonLines | Format::OtlpJson | Format::OtlpJsonFramed => "OTLP/JSON",
            Format::OtlpProtobuf | Format::OtlpProtobufFramed => "OTLP/protobuf",
            Format::JaegerJson => "Jaeger JSON",
            Format::ZipkinV2Json => "Zipkin v2 JSON",
            Format::VendorJsonLines | Format::VendorJson => "vendor event log",
            Format::TemporalHistory => "Temporal history",
            Format::AbortLog => "abort log",
            Format::ClickHouse => "ClickHouse store",
            Format::Empty | Format::Unknown => "input",
        }
    }

    /// Binary formats have no lines: a span's `line` is the number of its message, and
    /// diagnostics give byte offsets in their text.
    pub(crate) fn is_binary(self) -> bool {
        matches!(
            self,
            Format::OtlpProtobuf | Format::OtlpProtobufFramed | Format::OtlpJsonFramed
        )
    }
}

/// How an input was compressed. The names (`as_str`) are part of the `inspect` JSON schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    /// The whole file.
    Gzip,
    Zstd,
    /// Each message of a length-framed stream (the Collector's legacy zstd mode).
    ZstdFramed,
    /// A whole-file compression around a framed stream of zstd messages.
    GzipZstdFramed,
    ZstdZstdFramed,
}

impl Compression {
    pub const ALL: [Compression; 6] = [
        Compression::None,
        Compression::Gzip,
        Compression::Zstd,
        Compression::ZstdFramed,
        Compression::GzipZstdFramed,
        Compression::ZstdZstdFramed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::ZstdFramed => "zstd-framed",
            Compression::GzipZstdFramed => "gzip+zstd-framed",
            Compression::ZstdZstdFramed => "zstd+zstd-framed",
        }
    }
}

impl Serialize for Compression {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// What an input is said to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InputKind {
    /// Traces, or any other input recognised by its content.
    Traces,
    /// A vendor event log (`--events`).
    Events,
    /// An abort log (`--aborts`).
    Aborts,
}

/// What to read: trace inputs (event logs among them are recognised by content), and the
/// inputs said to be vendor event logs and abort logs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InputSet {
    pub traces: Vec<Source>,
    pub event_logs: Vec<Source>,
    pub abort_logs: Vec<Source>,
}

/// What one top-level JSON record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    OtlpTraces,
    OtlpOther,
    Other,
}

/// What a survey learnt, summed over spans as they are read so that memory does not grow
/// with them.
#[derive(Debug, Default)]
pub(crate) struct Survey {
    /// Traces with a span that may carry an abort signal.
    pub may_abort: FxHashSet<TraceId>,
    /// Span links as (the trace linked to, the trace of the linking span).
    pub links: Vec<(TraceId, TraceId)>,
    /// Hashes of the conversation ids seen.
    pub conversations: HashSet<u64>,
    /// When asked for (`inspect` and `explain`, which keep traces by conversation): every
    /// trace, with the first conversation id (hashed) its spans name.
    pub traces: Option<FxHashMap<TraceId, Option<u64>>>,
}

impl Survey {
    pub(crate) fn add(&mut self, span: otlp_json::SurveyedSpan) {
        let Some(trace) = span.trace_id else { return };
        if span.may_abort {
            self.may_abort.insert(trace);
        }
        self.links
            .extend(span.links_to.into_iter().map(|to| (to, trace)));
        if let Some(traces) = &mut self.traces {
            let named = traces.entry(trace).or_default();
            *named = named.or(span.conversation);
        }
        self.conversations.extend(span.conversation);
    }

    fn merge(&mut self, other: Survey) {
        self.may_abort.extend(other.may_abort);
        self.links.extend(other.links);
        self.conversations.extend(other.conversations);
        if let (Some(traces), Some(more)) = (&mut self.traces, other.traces) {
            for (trace, conversation) in more {
                let named = traces.entry(trace).or_default();
                *named = named.or(conversation);
            }
        }
    }
}

/// One input as a reader left it.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    /// Lines of a text input; messages of a binary one.
    pub lines: u64,
    /// Every span record seen, including those whose ids made them unusable.
    pub spans_read: u64,
    pub spans_unjoinable: u64,
    pub spans: Vec<Span>,
    pub diagnostics: Vec<Diagnostic>,
    /// What a survey kept of each span (see `otlp_json::SpanFilter`).
    pub survey: Survey,
    /// Where the first read of a large export found its spans.
    pub index: large::index::SpanIndex,
    /// Attribute keys, one copy of each for all the spans of this part.
    keys: FxHashSet<Arc<str>>,
    /// Vendor events, when the input is an event log.
    pub events: Vec<VendorEvent>,
    /// The user's Stops, when the input is an abort log.
    pub aborts: Vec<AbortRecord>,
    pub events_by_vendor: BTreeMap<String, u64>,
}

impl Parsed {
    /// The shared copy of an attribute key (a dozen keys name most attributes).
    pub(crate) fn intern(&mut self, key: &str) -> Arc<str> {
        match self.keys.get(key) {
            Some(known) => Arc::clone(known),
            None => {
                let new: Arc<str> = Arc::from(key);
                self.keys.insert(Arc::clone(&new));
                new
            }
        }
    }

    /// Renumbers the lines of a part read as if it began its input, which it begins `by` lines
    /// into.
    fn shift_lines(&mut self, by: u64) {
        if by == 0 {
            return;
        }
        self.lines += by;
        for span in &mut self.spans {
            span.origin.line += by;
        }
        for diagnostic in &mut self.diagnostics {
            if let Some(line) = &mut diagnostic.line {
                *line += by;
            }
        }
        self.index.shift_lines(by);
    }

    /// Appends what was read from the next part of the same input.
    fn append(&mut self, part: Parsed) {
        self.lines = self.lines.max(part.lines);
        self.spans_read += part.spans_read;
        self.spans_unjoinable += part.spans_unjoinable;
        self.spans.extend(part.spans);
        self.survey.merge(part.survey);
        self.index.append(part.index);
        self.diagnostics.extend(part.diagnostics);
    }
}

/// How inputs are read.
#[derive(Clone, Debug, PartialEq)]
pub struct IngestOptions {
    /// A fixed limit on what one compressed input may decompress to (a whole file, or all the
    /// frames of a framed stream together), past which it is refused as a likely decompression
    /// bomb. `None` (the default): an input is refused when, past 64 MiB of output, it has
    /// decompressed more than 300 times the compressed bytes read (`compress::BOMB_RATIO`), so
    /// that a genuine export is read however large it is.
    pub max_decompressed: Option<u64>,
    /// The most input bytes the reads in progress may hold in memory at once, all inputs
    /// together: the files read whole and what compressed inputs decompress to (see
    /// `compress::MemoryBudget`). An input that needs more is read alone.
    pub memory_budget: u64,
    /// An audit reads OTLP/JSON Lines files larger than this (a compressed one counted at 8
    /// bytes a compressed byte) in two passes (a survey, then only the traces that matter), so
    /// memory follows the aborted turns, not the input.
    pub survey_above: u64,
    /// `inspect` reads a large export back in groups of conversations of about this much span
    /// text (`large::by_conversation`).
    pub inspect_group: u64,
    /// `scan` reads the kept traces of large plain exports back, joins and classifies them in
    /// groups of conversations, a group a thread, of about this much span text over all the
    /// threads (`large::groups`).
    pub scan_group: u64,
}

/// 64 MiB: below it, reading everything at once costs little memory and one pass.
pub const DEFAULT_SURVEY_ABOVE: u64 = 64 << 20;

/// 128 MiB of span text: its spans, built with every attribute, take about as much memory
/// again, and their join as much once more. Smaller groups cost more reads (a plain file's
/// spans of one group lie scattered through it) and, for a compressed file, one more
/// decompression each.
pub const DEFAULT_INSPECT_GROUP: u64 = 128 << 20;

/// 1 GiB: bombs read side by side hold no more together than this, and each no more than
/// `compress::HELD_BEFORE_SIZE_KNOWN` (64 MiB) before it is refused. Genuine inputs read whole are far smaller (an
/// OTLP/JSON Lines export over 64 MiB is read in two passes, holding 32 MiB), so the budget
/// only makes inputs wait their turn when many large ones are read whole at once.
pub const DEFAULT_MEMORY_BUDGET: u64 = 1 << 30;

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            max_decompressed: None,
            memory_budget: DEFAULT_MEMORY_BUDGET,
            inspect_group: DEFAULT_INSPECT_GROUP,
            scan_group: DEFAULT_SCAN_GROUP,
            survey_above: DEFAULT_SURVEY_ABOVE,
        }
    }
}

/// Counts for one input, as `inspect` shows them.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Counts {
    pub lines: u64,
    pub spans: u64,
    pub traces: u64,
    pub services: u64,
    pub kinds: BTreeMap<&'static str, u64>,
    pub events: u64,
    pub links: u64,
    pub duplicates: u64,
    /// Spans with an unusable trace or span id: counted, diagnosed, not joined.
    pub unjoinable: u64,
    /// Events read from vendor event logs (`events` counts span events).
    pub vendor_events: u64,
    /// Vendor events per vendor or mapping name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub vendors: BTreeMap<String, u64>,
    /// Vendor events that no tool call's keys matched (filled in once spans are joined).
    pub unmatched_vendor_events: u64,
    /// Records read from abort logs.
    #[serde(skip_serializing_if = "is_zero")]
    pub abort_records: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.lines += other.lines;
        self.spans += other.spans;
        self.events += other.events;
        self.links += other.links;
        self.duplicates += other.duplicates;
        self.unjoinable += other.unjoinable;
        self.vendor_events += other.vendor_events;
        self.unmatched_vendor_events += other.unmatched_vendor_events;
        self.abort_records += other.abort_records;
        for (vendor, n) in &other.vendors {
            *self.vendors.entry(vendor.clone()).or_default() += n;
        }
        for (kind, n) in &other.kinds {
            *self.kinds.entry(kind).or_default() += n;
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct InputReport {
    pub path: String,
    pub format: Format,
    pub compression: Compression,
    #[serde(flatten)]
    pub counts: Counts,
    pub diagnostics: Vec<Diagnostic>,
    /// Why the input could not be used at all; the run then exits with status 2.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl InputReport {
    /// Format and compression together, for a table column: `otlp-json-lines`,
    /// `otlp-protobuf-framed+zstd-framed`, `jaeger-json+gzip`.
    pub fn format_label(&self) -> String {
        match self.compression {
            Compression::None => self.format.as_str().to_owned(),
            compression => format!("{}+{}", self.format.as_str(), compression.as_str()),
        }
    }
}

/// Everything read from all inputs.
#[derive(Debug, Default)]
pub struct Ingested {
    /// Deduplicated spans, in input order.
    pub spans: Vec<Span>,
    pub inputs: Vec<InputReport>,
    /// The inputs' counts added up; traces and services counted once across all inputs.
    pub total: Counts,
    /// Vendor events from the event logs, in input order.
    pub events: Vec<VendorEvent>,
    /// The user's Stops read from abort logs, in input order.
    pub aborts: Vec<AbortRecord>,
    /// Distinct conversation ids the spans name, those a first pass did not keep included.
    pub conversations: u64,
    /// What walking the directories found (links that loop).
    pub walk_diagnostics: Vec<Diagnostic>,
}

impl Ingested {
    /// Records, per input, how many of its vendor events (indices into `events`) joined no
    /// tool call.
    pub fn count_unmatched_events(&mut self, unmatched: &[usize]) {
        for &e in unmatched {
            let input = &self.events[e].origin.input;
            if let Some(report) = self.inputs.iter_mut().find(|r| *r.path == **input) {
                report.counts.unmatched_vendor_events += 1;
            }
        }
        self.total.unmatched_vendor_events += unmatched.len() as u64;
    }

    /// Every diagnostic: the walk's, then each input's in input order.
    pub fn diagnostics(&self) -> impl Iterator<Item = &Diagnostic> {
        self.walk_diagnostics
            .iter()
            .chain(self.inputs.iter().flat_map(|i| i.diagnostics.iter()))
    }

    pub fn errors(&self) -> impl Iterator<Item = &str> {
        self.inputs.iter().filter_map(|i| i.error.as_deref())
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }
}

/// Reads trace inputs and vendor event logs whole, every file on all threads (and a large
/// JSON Lines file in parallel chunks), and deduplicates spans across all of them, keeping the
/// first copy in input order, so the result does not depend on thread scheduling or the number
/// of threads. `traces` may hold event logs too (they are recognised by content); `event_logs`
/// must be event logs, so anything else there is an error that points at the `[[vendor]]`
/// mappings.
///
/// A duplicate is a span with the trace id, span id and start of one already read. Collector
/// retries write identical copies, which are only counted; a copy whose contents differ (two
/// different operations exported under one span id, as in Jaeger's UI test trace) is also
/// dropped, since one id cannot be joined two ways, but with a `conflicting-duplicate`
/// warning naming where the kept copy was read.
pub fn ingest_inputs(inputs: &InputSet, options: &IngestOptions, rules: &Rules) -> Ingested {
    let whole = IngestOptions {
        survey_above: u64::MAX,
        ..options.clone()
    };
    let hidden = indicatif::ProgressBar::hidden();
    let first = first_pass(plan(inputs, &whole), &whole, rules, &hidden);
    let mut ingested = second_pass(first, FxHashSet::default(), rules, &hidden);
    // Every trace of a whole read is checked for times and parents the model cannot hold.
    let every_trace: FxHashSet<TraceId> = ingested.spans.iter().map(|s| s.trace_id).collect();
    consistency::check(&mut ingested, &every_trace);
    ingested
}

/// Parses one input's bytes, named `path` in diagnostics, with the default options. Never
/// panics, whatever the bytes: problems become diagnostics, or the report's `error` when
/// nothing can be read.
pub fn parse_input(path: &str, bytes: &[u8]) -> (InputReport, Vec<Span>) {
    parse_input_with(path, bytes, &IngestOptions::default())
}

/// `parse_input` with explicit options.
pub fn parse_input_with(
    path: &str,
    bytes: &[u8],
    options: &IngestOptions,
) -> (InputReport, Vec<Span>) {
    let vendors = crate::rules::builtin_vendor_mappings();
    let memory = compress::Memory::alone(&compress::MemoryBudget::new(options.memory_budget));
    let read = sniff::parse_any(path, bytes, options, &vendors, InputKind::Traces, &memory);
    (read.report, read.spans)
}

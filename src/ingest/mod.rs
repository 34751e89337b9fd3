//! Reading inputs into the span model: finding the files (directories, globs), sniffing each
//! one's format and compression by its content (never its extension), decompressing under a
//! size limit, parsing, and removing the duplicates that Collector retries leave behind.
//!
//! One file per input format: `otlp_json` (OTLP/JSON documents and JSON Lines), `otlp_proto`
//! (OTLP/protobuf, unframed or length-framed), `jaeger` and `zipkin` (with what they share in
//! `foreign`); `compress` handles gzip and zstd, `stream` the two passes over a large export,
//! and `json_scan` the check of JSON text that the first of them makes without serde.

mod compress;
mod foreign;
mod jaeger;
mod json_scan;
mod locate;
mod otlp_json;
mod otlp_proto;
mod stream;
pub(crate) mod temporal;
pub mod vendor;
mod zipkin;

use rustc_hash::{FxHashMap, FxHashSet};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet, hash_map};
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use serde::Serialize;

use crate::model::diagnostic::{Code, Diagnostic, Severity};
use crate::model::ids::hash_text;
use crate::model::{Attributes, Span, SpanId, TraceId, Value, VendorEvent};
use crate::rules::{VendorMapping, abort};
use crate::util::units::parse_size;

/// What an input turned out to be. The names are part of the `inspect` JSON schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Format {
    #[serde(rename = "otlp-json-lines")]
    OtlpJsonLines,
    #[serde(rename = "otlp-json")]
    OtlpJson,
    /// OTLP/JSON messages in the Collector's length-framed stream (its legacy zstd mode).
    #[serde(rename = "otlp-json-framed")]
    OtlpJsonFramed,
    /// One binary `TracesData` / `ExportTraceServiceRequest` message.
    #[serde(rename = "otlp-protobuf")]
    OtlpProtobuf,
    /// The Collector file exporter's stream: 4-byte big-endian length, then a message.
    #[serde(rename = "otlp-protobuf-framed")]
    OtlpProtobufFramed,
    #[serde(rename = "jaeger-json")]
    JaegerJson,
    #[serde(rename = "zipkin-v2-json")]
    ZipkinV2Json,
    /// A vendor event log, one event a line.
    #[serde(rename = "vendor-json-lines")]
    VendorJsonLines,
    /// A vendor event log as one document: an event, an array, or a list envelope.
    #[serde(rename = "vendor-json")]
    VendorJson,
    /// A Temporal workflow history.
    #[serde(rename = "temporal-history")]
    TemporalHistory,
    /// Zero bytes, or only white space: nothing to read, which is not an error.
    #[serde(rename = "empty")]
    Empty,
    /// Not read: the input's error says why.
    #[serde(rename = "unknown")]
    Unknown,
}

impl Format {
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
            Format::Empty => "empty",
            Format::Unknown => "unknown",
        }
    }

    /// The format as people name it, for messages.
    fn describe(self) -> &'static str {
        match self {
            Format::OtlpJsonLines | Format::OtlpJson | Format::OtlpJsonFramed => "OTLP/JSON",
            Format::OtlpProtobuf | Format::OtlpProtobufFramed => "OTLP/protobuf",
            Format::JaegerJson => "Jaeger JSON",
            Format::ZipkinV2Json => "Zipkin v2 JSON",
            Format::VendorJsonLines | Format::VendorJson => "vendor event log",
            Format::TemporalHistory => "Temporal history",
            Format::Empty | Format::Unknown => "input",
        }
    }

    /// Binary formats have no lines: a span's `line` is the number of its message, and
    /// diagnostics give byte offsets in their text.
    fn is_binary(self) -> bool {
        matches!(
            self,
            Format::OtlpProtobuf | Format::OtlpProtobufFramed | Format::OtlpJsonFramed
        )
    }
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
}

impl Survey {
    pub(crate) fn add(&mut self, span: otlp_json::SurveyedSpan) {
        let Some(trace) = span.trace_id else { return };
        if span.may_abort {
            self.may_abort.insert(trace);
        }
        self.links
            .extend(span.links_to.into_iter().map(|to| (to, trace)));
        self.conversations.extend(span.conversation);
    }

    fn merge(&mut self, other: Survey) {
        self.may_abort.extend(other.may_abort);
        self.links.extend(other.links);
        self.conversations.extend(other.conversations);
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
    pub index: stream::SpanIndex,
    /// Attribute keys, one copy of each for all the spans of this part.
    keys: FxHashSet<Arc<str>>,
    /// Vendor events, when the input is an event log.
    pub events: Vec<VendorEvent>,
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
    /// The most bytes one compressed input may decompress to (a whole file, or all the frames
    /// of a framed stream together). Past it the input is refused as a likely decompression
    /// bomb.
    pub max_decompressed: u64,
    /// How vendor event logs are read, in the order the mappings are tried.
    pub vendors: Vec<VendorMapping>,
    /// An audit reads OTLP/JSON Lines files larger than this (a compressed one counted at 8
    /// bytes a compressed byte) in two passes (a survey, then only the traces that matter), so
    /// memory follows the aborted turns, not the input.
    pub survey_above: u64,
}

/// 64 MiB: below it, reading everything at once costs little memory and one pass.
pub const DEFAULT_SURVEY_ABOVE: u64 = 64 << 20;

/// The environment variable that overrides `DEFAULT_SURVEY_ABOVE` (`0` surveys every
/// OTLP/JSON Lines file, plain or compressed; `unlimited` never surveys).
pub const SURVEY_ABOVE_ENV: &str = "ABORTAUDIT_SURVEY_ABOVE";

/// 1 GiB. Genuine exports are far smaller (the Collector rotates its files at 100 MiB by
/// default, and query APIs return single traces), while a bomb is limited to this much memory
/// per input being read (inputs are read on as many threads as there are cores). A ratio to the
/// compressed size would not do: highly repetitive JSON compresses well past 100:1 with zstd,
/// and a fixed ceiling is one number a user can reason about and raise.
pub const DEFAULT_MAX_DECOMPRESSED: u64 = 1 << 30;

/// The environment variable that overrides `DEFAULT_MAX_DECOMPRESSED` (`4GiB`, `512MiB`,
/// `unlimited`…).
pub const MAX_DECOMPRESSED_ENV: &str = "ABORTAUDIT_MAX_DECOMPRESSED";

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            max_decompressed: DEFAULT_MAX_DECOMPRESSED,
            vendors: crate::rules::builtin_vendor_mappings(),
            survey_above: DEFAULT_SURVEY_ABOVE,
        }
    }
}

impl IngestOptions {
    /// The defaults, with `ABORTAUDIT_MAX_DECOMPRESSED` applied when it is set. `Err` names the
    /// variable and says what a size looks like.
    pub fn from_env() -> Result<Self, String> {
        let mut options = IngestOptions::default();
        if let Some(raw) = std::env::var_os(SURVEY_ABOVE_ENV) {
            let raw = raw.to_string_lossy();
            options.survey_above =
                parse_size(&raw).map_err(|e| format!("{SURVEY_ABOVE_ENV}: {e}"))?;
        }
        if let Some(raw) = std::env::var_os(MAX_DECOMPRESSED_ENV) {
            let raw = raw.to_string_lossy();
            options.max_decompressed =
                parse_size(&raw).map_err(|e| format!("{MAX_DECOMPRESSED_ENV}: {e}"))?;
        }
        Ok(options)
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
    /// `none`, `gzip`, `zstd` (whole file), `zstd-framed` (each message of a length-framed
    /// stream), or a whole-file compression around a framed stream (`gzip+zstd-framed`).
    pub compression: &'static str,
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
            "none" => self.format.as_str().to_owned(),
            compression => format!("{}+{compression}", self.format.as_str()),
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
    pub events: Vec<crate::model::VendorEvent>,
    /// Distinct conversation ids named by the spans of surveyed inputs (whose spans are not
    /// all kept) and of the rest; `None` when every input was read whole.
    pub surveyed_conversation_ids: Option<u64>,
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

    pub fn diagnostics(&self) -> impl Iterator<Item = &Diagnostic> {
        self.inputs.iter().flat_map(|i| i.diagnostics.iter())
    }

    pub fn errors(&self) -> impl Iterator<Item = &str> {
        self.inputs.iter().filter_map(|i| i.error.as_deref())
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }
}

/// Where to read from: a path as the user gave it, or standard input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Path(PathBuf),
    Stdin,
}

impl Source {
    fn display(&self) -> String {
        match self {
            Source::Path(p) => p.display().to_string(),
            Source::Stdin => "<stdin>".to_owned(),
        }
    }
}

/// Expands directories (recursively, in name order, skipping hidden entries) and glob patterns
/// (a path with `*`, `?` or `[` that does not exist as written; matches in name order) into the
/// files to read. Rotated Collector files (`traces-2024-05-01T10-00-00.000.json`, possibly
/// gzipped) sort before the file still being written (`traces.json`), so a directory is read
/// oldest first. A path that does not exist, or a pattern that matches nothing, is kept, so
/// reading it reports the error.
pub fn expand(sources: &[Source]) -> Vec<Source> {
    let mut out = Vec::new();
    for source in sources {
        match source {
            Source::Path(p) if p.is_dir() => walk(p, &mut out),
            Source::Path(p) if is_glob(p) && !p.exists() => match glob_matches(p) {
                Some(paths) if !paths.is_empty() => {
                    for path in paths {
                        if path.is_dir() {
                            walk(&path, &mut out);
                        } else {
                            out.push(Source::Path(path));
                        }
                    }
                }
                _ => out.push(source.clone()),
            },
            other => out.push(other.clone()),
        }
    }
    out
}

fn is_glob(path: &Path) -> bool {
    path.to_str().is_some_and(|s| s.contains(['*', '?', '[']))
}

/// The paths a glob pattern matches, sorted; `None` for a pattern that is not valid.
fn glob_matches(pattern: &Path) -> Option<Vec<PathBuf>> {
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    let paths = glob::glob_with(pattern.to_str()?, options).ok()?;
    let mut matched: Vec<PathBuf> = paths
        .map(|entry| match entry {
            Ok(path) => path,
            // An unreadable directory: reading it reports the error with its cause.
            Err(e) => e.path().to_owned(),
        })
        .collect();
    matched.sort();
    matched.dedup();
    Some(matched)
}

fn walk(dir: &Path, out: &mut Vec<Source>) {
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.filter_map(|e| e.ok()).map(|e| e.path()).collect(),
        Err(_) => {
            // Reading it as a file reports the error with its cause.
            out.push(Source::Path(dir.to_owned()));
            return;
        }
    };
    entries.sort();
    for path in entries {
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(Source::Path(path));
        }
    }
}

/// Reads every source (files in parallel, and large JSON Lines files in parallel chunks) and
/// deduplicates spans across all of them, keeping the first copy in input order, so the result
/// does not depend on thread scheduling or the number of threads.
///
/// A duplicate is a span with the trace id, span id and start of one already read. Collector
/// retries write identical copies, which are only counted; a copy whose contents differ (two
/// different operations exported under one span id, as in Jaeger's UI test trace) is also
/// dropped, since one id cannot be joined two ways, but with a `conflicting-duplicate`
/// warning naming where the kept copy was read.
pub fn ingest_with(sources: &[Source], options: &IngestOptions) -> Ingested {
    ingest_inputs(sources, &[], options)
}

/// Reads trace inputs and vendor event logs together. `traces` may hold event logs too (they
/// are recognised by content); `event_logs` must be event logs, so anything else there is an
/// error that points at the `[[vendor]]` mappings.
pub fn ingest_inputs(
    traces: &[Source],
    event_logs: &[Source],
    options: &IngestOptions,
) -> Ingested {
    let files: Vec<(Source, bool)> = expand(traces)
        .into_iter()
        .map(|s| (s, false))
        .chain(expand(event_logs).into_iter().map(|s| (s, true)))
        .collect();
    let results: Vec<(InputReport, Vec<Span>, Vec<VendorEvent>)> = files
        .par_iter()
        .map(|(source, events_only)| read_source(source, options, *events_only))
        .collect();
    merge_inputs(results)
}

/// The conversation id a span names, hashed as the survey hashes it: the first of the rules'
/// keys among its attributes, else among its resource's.
pub fn conversation_hash(span: &Span, keys: &[String]) -> Option<u64> {
    let first = |attributes: &Attributes| {
        keys.iter()
            .find_map(|k| attributes.text(k).filter(|v| !v.is_empty()))
            .map(|v| hash_text(&v))
    };
    first(&span.attributes).or_else(|| first(&span.resource.attributes))
}

/// What reading one input gave: its report, its spans, its vendor events.
type InputRead = (InputReport, Vec<Span>, Vec<VendorEvent>);

/// Combines what each input gave, in input order, keeping the first copy of a span read twice.
fn merge_inputs(results: Vec<InputRead>) -> Ingested {
    let mut seen: FxHashMap<(TraceId, SpanId, u64), usize> = FxHashMap::default();
    let mut all_traces = FxHashSet::default();
    let mut all_services = HashSet::new();
    let mut ingested = Ingested::default();
    for (mut report, mut spans, events) in results {
        ingested.events.extend(events);
        // Duplicates are dropped in place: the spans of a large input are most of the memory
        // an audit holds, and are not copied.
        let base = ingested.spans.len();
        let mut keep = vec![true; spans.len()];
        // Where each span kept from this input was, by its position among those kept.
        let mut kept_at: Vec<usize> = Vec::with_capacity(spans.len());
        for (i, span) in spans.iter().enumerate() {
            match seen.entry((span.trace_id, span.span_id, span.start)) {
                hash_map::Entry::Occupied(first) => {
                    report.counts.duplicates += 1;
                    keep[i] = false;
                    let kept = match first.get().checked_sub(base) {
                        None => &ingested.spans[*first.get()],
                        Some(local) => &spans[kept_at[local]],
                    };
                    if !same_content(kept, span) {
                        report
                            .diagnostics
                            .push(conflicting_duplicate(kept, span, report.format));
                    }
                }
                hash_map::Entry::Vacant(slot) => {
                    slot.insert(base + kept_at.len());
                    kept_at.push(i);
                }
            }
        }
        drop(kept_at);
        let mut flags = keep.into_iter();
        spans.retain(|_| flags.next().unwrap_or(false));
        let mut traces = FxHashSet::default();
        let mut services = HashSet::new();
        for span in &spans {
            traces.insert(span.trace_id);
            services.insert(span.service());
            *report.counts.kinds.entry(span.kind.as_str()).or_default() += 1;
            report.counts.events += span.events.len() as u64;
            report.counts.links += span.links.len() as u64;
        }
        report.counts.traces = traces.len() as u64;
        report.counts.services = services.len() as u64;
        all_services.extend(services.into_iter().map(str::to_owned));
        ingested.total.add(&report.counts);
        all_traces.extend(traces);
        ingested.inputs.push(report);
        if ingested.spans.is_empty() {
            ingested.spans = spans;
        } else {
            ingested.spans.append(&mut spans);
        }
    }
    // Traces and services are distinct counts: a trace split over two files is one trace.
    ingested.total.traces = all_traces.len() as u64;
    ingested.total.services = all_services.len() as u64;
    ingested
}

/// Reads inputs for an audit. Large OTLP/JSON Lines files (the Collector's exports), plain or
/// gzip- or zstd-compressed, are read in two passes (see `stream`): one that places and
/// surveys every span (its trace, abort signals and links), then a read, by their places, of
/// only the spans of the traces that can matter: those with an abort signal and, transitively,
/// those whose spans link into them (queue consumers, workers). Everything else is read whole,
/// as `ingest_inputs` does. With vendor event logs everything is read whole too, since an
/// event joined by conversation id alone must be weighed against every turn of its
/// conversation.
pub fn ingest_for_audit(
    traces: &[Source],
    event_logs: &[Source],
    options: &IngestOptions,
    rules: &crate::rules::Rules,
) -> Ingested {
    let files = expand(traces);
    let streamed: Vec<Option<stream::Encoding>> = files
        .iter()
        .map(|source| {
            event_logs
                .is_empty()
                .then(|| streamable(source, options))
                .flatten()
        })
        .collect();
    if streamed.iter().all(Option::is_none) {
        return ingest_inputs(traces, event_logs, options);
    }
    let whole: Vec<Option<InputRead>> = files
        .par_iter()
        .zip(&streamed)
        .map(|(source, streamed)| {
            streamed
                .is_none()
                .then(|| read_source(source, options, false))
        })
        .collect();
    if whole
        .iter()
        .flatten()
        .any(|(_, _, events)| !events.is_empty())
    {
        return ingest_inputs(traces, event_logs, options);
    }

    // Both passes over every streamed file, on stderr when it is a terminal (never in CI
    // logs or redirected output); indicatif hides the bar itself for quick runs.
    let streamed_bytes: u64 = files
        .iter()
        .zip(&streamed)
        .filter(|(_, s)| s.is_some())
        .filter_map(|(source, _)| match source {
            Source::Path(p) => std::fs::metadata(p).ok().map(|m| m.len()),
            Source::Stdin => None,
        })
        .sum();
    let progress = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::with_draw_target(
            // The second pass adds what it will read once it knows (`stream::read_kept`).
            Some(streamed_bytes),
            indicatif::ProgressDrawTarget::stderr(),
        );
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message("reading traces (first of two passes)");
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };

    // The first pass.
    let survey_rules = Arc::new(otlp_json::SurveyRules::new(rules));
    let surveys: Vec<Option<Surveyed>> = files
        .iter()
        .zip(&streamed)
        .map(|(source, streamed)| {
            let (Source::Path(path), Some(encoding)) = (source, *streamed) else {
                return None;
            };
            let mut parsed = Parsed::default();
            let input: Arc<str> = Arc::from(source.display().as_str());
            let len = std::fs::metadata(path).map_or(u64::MAX, |m| m.len());
            let read = stream::index_file(
                path,
                encoding,
                &input,
                &survey_rules,
                &mut parsed,
                &progress,
                stream::block_bytes(encoding, len),
            );
            let (error, corrupt) = match read {
                Ok(corrupt) => (None, corrupt),
                Err(error) => (Some(error), None),
            };
            Some(Surveyed {
                parsed,
                encoding,
                error,
                corrupt,
            })
        })
        .collect();

    // The traces that matter, and the ones linked into them, transitively.
    let mut relevant: FxHashSet<TraceId> = FxHashSet::default();
    let mut links_into: HashMap<TraceId, Vec<TraceId>> = HashMap::new();
    let mut conversations: HashSet<u64> = HashSet::new();
    for Surveyed { parsed, .. } in surveys.iter().flatten() {
        relevant.extend(&parsed.survey.may_abort);
        for (to, from) in &parsed.survey.links {
            links_into.entry(*to).or_default().push(*from);
        }
        conversations.extend(&parsed.survey.conversations);
    }
    for span in whole.iter().flatten().flat_map(|(_, spans, _)| spans) {
        if !abort::span_signals(span, rules).is_empty() {
            relevant.insert(span.trace_id);
        }
        for link in &span.links {
            links_into
                .entry(link.trace_id)
                .or_default()
                .push(span.trace_id);
        }
        conversations.extend(conversation_hash(span, &rules.conversation.id_attributes));
    }
    let mut pending: Vec<TraceId> = relevant.iter().copied().collect();
    while let Some(trace) = pending.pop() {
        for source in links_into.get(&trace).into_iter().flatten() {
            if relevant.insert(*source) {
                pending.push(*source);
            }
        }
    }

    // The second pass reads only those traces' spans.
    let keep = otlp_json::Keep {
        traces: relevant,
        attributes: rules.attributes_read().into_iter().collect(),
    };
    let mut results = Vec::with_capacity(files.len());
    for ((source, whole), survey) in files.iter().zip(whole).zip(surveys) {
        let Surveyed {
            parsed: survey,
            encoding,
            error,
            corrupt,
        } = match (whole, survey) {
            (Some(read), _) => {
                results.push(read);
                continue;
            }
            (None, Some(survey)) => survey,
            (None, None) => unreachable!("every input is read whole or surveyed"),
        };
        let path = source.display();
        let input: Arc<str> = Arc::from(path.as_str());
        let (kept, error) = match (error, source) {
            (None, Source::Path(file)) => {
                match stream::read_kept(file, encoding, &input, survey.index, &keep, &progress) {
                    Ok(kept) => (kept, None),
                    Err(e) => (Parsed::default(), Some(e)),
                }
            }
            (error, _) => (Parsed::default(), error),
        };
        // The second pass reads spans, never lines: what it finds is about the kept spans.
        let mut diagnostics = survey.diagnostics;
        diagnostics.extend(kept.diagnostics);
        // (A stable sort: the input's own diagnostic, with no line, comes first.)
        diagnostics.sort_by_key(|d| d.line);
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
            None if survey.spans_read == 0 => Some(format!(
                "{path}: no spans could be read ({} diagnostics)",
                diagnostics.len()
            )),
            None => None,
        };
        let report = InputReport {
            path,
            format: Format::OtlpJsonLines,
            compression: match encoding {
                stream::Encoding::Plain => "none",
                stream::Encoding::Compressed { format, .. } => format,
            },
            counts: Counts {
                lines: survey.lines,
                spans: survey.spans_read,
                unjoinable: survey.spans_unjoinable,
                ..Counts::default()
            },
            diagnostics,
            error,
        };
        results.push((report, kept.spans, Vec::new()));
    }
    progress.finish_and_clear();
    let mut ingested = merge_inputs(results);
    ingested.surveyed_conversation_ids = Some(conversations.len() as u64);
    ingested
}

/// What the first pass left of a streamed input.
struct Surveyed {
    parsed: Parsed,
    encoding: stream::Encoding,
    /// The input could not be read.
    error: Option<String>,
    /// A compressed input ended early, corrupt or cut short, after what was read.
    corrupt: Option<String>,
}

/// How an input is read in two passes, if it is: an OTLP/JSON Lines file above the threshold
/// (`survey_above`), plain, or gzip- or zstd-compressed (counted at 8 bytes a compressed byte,
/// about what JSON compresses to).
fn streamable(source: &Source, options: &IngestOptions) -> Option<stream::Encoding> {
    let Source::Path(path) = source else {
        return None;
    };
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    let limit = options.max_decompressed;
    // One decoder both tells a compressed file and reads its first line.
    let decoder = compress::StreamDecoder::open(path, limit).ok()?;
    let (encoding, size) = match &decoder {
        None => (stream::Encoding::Plain, meta.len()),
        Some(decoder) => {
            let format = decoder.compression();
            (
                stream::Encoding::Compressed { limit, format },
                meta.len().saturating_mul(8),
            )
        }
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
    (first.first() == Some(&b'{') && otlp_json::classify(first) == Shape::OtlpTraces)
        .then_some(encoding)
}

fn conflicting_duplicate(kept: &Span, dropped: &Span, format: Format) -> Diagnostic {
    let (line, at) = if format.is_binary() {
        (None, format!("message {}: ", dropped.origin.line))
    } else {
        (Some(dropped.origin.line), String::new())
    };
    Diagnostic::warning(
        &dropped.origin.input,
        line,
        Code::ConflictingDuplicate,
        format!(
            "{at}span {:?} (trace {}, span {}) has the trace id, span id and start of span {:?} read from {} (line or message {}), but different contents; the first is kept and this one dropped",
            dropped.name,
            dropped.trace_id,
            dropped.span_id,
            kept.name,
            kept.origin.input,
            kept.origin.line
        ),
    )
}

/// Whether two spans are the same record (wherever each was read): NaN attributes compare
/// equal to themselves, so retried copies of a span with a NaN are still plain duplicates.
fn same_content(a: &Span, b: &Span) -> bool {
    a.trace_id == b.trace_id
        && a.span_id == b.span_id
        && a.parent_span_id == b.parent_span_id
        && a.name == b.name
        && a.kind == b.kind
        && a.start == b.start
        && a.end == b.end
        && a.status == b.status
        && attributes_eq(&a.attributes, &b.attributes)
        && a.resource.service_name == b.resource.service_name
        && attributes_eq(&a.resource.attributes, &b.resource.attributes)
        && a.events.len() == b.events.len()
        && a.events.iter().zip(&b.events).all(|(x, y)| {
            x.name == y.name && x.time == y.time && attributes_eq(&x.attributes, &y.attributes)
        })
        && a.links.len() == b.links.len()
        && a.links.iter().zip(&b.links).all(|(x, y)| {
            x.trace_id == y.trace_id
                && x.span_id == y.span_id
                && attributes_eq(&x.attributes, &y.attributes)
        })
}

fn attributes_eq(a: &Attributes, b: &Attributes) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b.iter())
            .all(|(x, y)| x.key == y.key && value_eq(&x.value, &y.value))
}

fn value_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Double(x), Value::Double(y)) => x == y || x.to_bits() == y.to_bits(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| value_eq(x, y))
        }
        (Value::KvList(x), Value::KvList(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|(x, y)| x.key == y.key && value_eq(&x.value, &y.value))
        }
        _ => a == b,
    }
}

fn read_source(
    source: &Source,
    options: &IngestOptions,
    events_only: bool,
) -> (InputReport, Vec<Span>, Vec<VendorEvent>) {
    let path = source.display();
    match read_bytes(source) {
        Ok(bytes) => parse_any(&path, &bytes, options, events_only),
        Err(e) => {
            let (mut report, spans, events) = parse_any(&path, b"", options, events_only);
            report.error = Some(match source {
                Source::Path(p) if is_glob(p) && !p.exists() => match glob::Pattern::new(&path) {
                    Err(e) => format!("{path}: not a valid glob pattern: {e}"),
                    Ok(_) => format!("{path}: the pattern matches no file"),
                },
                _ => format!("{path}: cannot read: {e}"),
            });
            report.format = Format::Unknown;
            (report, spans, events)
        }
    }
}

/// Parses one input's bytes, named `path` in diagnostics, with the default options (and
/// `ABORTAUDIT_MAX_DECOMPRESSED`). Never panics, whatever the bytes: problems become
/// diagnostics, or the report's `error` when nothing can be read.
pub fn parse_input(path: &str, bytes: &[u8]) -> (InputReport, Vec<Span>) {
    match IngestOptions::from_env() {
        Ok(options) => parse_input_with(path, bytes, &options),
        Err(message) => {
            let (mut report, _) = parse_input_with(path, b"", &IngestOptions::default());
            report.format = Format::Unknown;
            report.error = Some(format!("{path}: not read: {message}"));
            (report, Vec::new())
        }
    }
}

/// `parse_input` with explicit options.
pub fn parse_input_with(
    path: &str,
    bytes: &[u8],
    options: &IngestOptions,
) -> (InputReport, Vec<Span>) {
    let (report, spans, _) = parse_any(path, bytes, options, false);
    (report, spans)
}

/// Parses one input of any kind: traces, or (recognised by content, or because the user said
/// so with `events_only`) a vendor event log.
fn parse_any(
    path: &str,
    bytes: &[u8],
    options: &IngestOptions,
    events_only: bool,
) -> (InputReport, Vec<Span>, Vec<VendorEvent>) {
    let mut report = InputReport {
        path: path.to_owned(),
        format: Format::Unknown,
        compression: "none",
        counts: Counts::default(),
        diagnostics: Vec::new(),
        error: None,
    };
    let input: Arc<str> = Arc::from(path);
    match parse(&input, bytes, options, events_only) {
        Ok(Outcome {
            format,
            compression,
            parsed,
        }) => {
            report.format = format;
            report.compression = compression;
            report.counts.lines = parsed.lines;
            report.counts.spans = parsed.spans_read;
            report.counts.unjoinable = parsed.spans_unjoinable;
            report.counts.vendor_events = parsed.events.len() as u64;
            report.counts.vendors = parsed.events_by_vendor;
            report.diagnostics = parsed.diagnostics;
            if format.is_events() {
                if parsed.events.is_empty() {
                    let errors = report.diagnostics.len();
                    report.error = Some(format!(
                        "{path}: holds no usable vendor events ({errors} records skipped, see the diagnostics)"
                    ));
                }
                return (report, Vec::new(), parsed.events);
            }
            if parsed.spans_read == 0 && format != Format::Empty {
                let errors = report
                    .diagnostics
                    .iter()
                    .filter(|d| d.severity == Severity::Error)
                    .count();
                let what = if format.is_binary() {
                    "messages"
                } else {
                    "records"
                };
                report.error = Some(if errors > 0 {
                    format!(
                        "{path}: no spans could be read ({errors} malformed {what}, see the diagnostics)"
                    )
                } else {
                    format!(
                        "{path}: holds no spans: the {} {what} in it are empty",
                        format.describe()
                    )
                });
            }
            (report, parsed.spans, Vec::new())
        }
        Err(message) => {
            report.error = Some(format!("{path}: {message}"));
            (report, Vec::new(), Vec::new())
        }
    }
}

fn read_bytes(source: &Source) -> std::io::Result<Vec<u8>> {
    match source {
        Source::Path(p) => std::fs::read(p),
        Source::Stdin => {
            let mut buf = Vec::new();
            std::io::stdin().lock().read_to_end(&mut buf)?;
            Ok(buf)
        }
    }
}

/// What one input was read as.
#[derive(Debug)]
struct Outcome {
    format: Format,
    compression: &'static str,
    parsed: Parsed,
}

/// Removes a whole-file compression (gzip or zstd, by their magic bytes), then sniffs the
/// format and parses. `Err` is an input that cannot be used at all.
fn parse(
    input: &Arc<str>,
    bytes: &[u8],
    options: &IngestOptions,
    events_only: bool,
) -> Result<Outcome, String> {
    let mut budget = compress::Budget::new(options.max_decompressed);
    let (outer, data, corrupt) = if bytes.starts_with(&compress::GZIP_MAGIC) {
        let d = compress::gunzip(bytes, &mut budget).map_err(compress::Failure::message)?;
        ("gzip", Cow::Owned(d.data), d.corrupt)
    } else if bytes.starts_with(&compress::ZSTD_MAGIC) {
        let d = compress::unzstd(bytes, &mut budget, "the zstd data", 0)
            .map_err(compress::Failure::message)?;
        ("zstd", Cow::Owned(d.data), d.corrupt)
    } else {
        ("none", Cow::Borrowed(bytes), None)
    };
    if outer != "none"
        && (data.starts_with(&compress::GZIP_MAGIC) || data.starts_with(&compress::ZSTD_MAGIC))
    {
        return Err(format!(
            "{outer}-compressed data that is compressed again inside; decompress it first"
        ));
    }
    let (format, framed_zstd, mut parsed) =
        match parse_plain(input, &data, &mut budget, &options.vendors, events_only) {
            Ok(read) => read,
            Err(why) => {
                return Err(match corrupt {
                    Some(corrupt) => {
                        format!("{corrupt}; what decoded before it is not usable: {why}")
                    }
                    None => why,
                });
            }
        };
    if let Some(why) = corrupt {
        parsed.diagnostics.insert(
            0,
            Diagnostic::error(
                input,
                None,
                Code::CorruptCompression,
                format!("{why}; what decoded before it is read"),
            ),
        );
    }
    let compression = match (outer, framed_zstd) {
        (outer, false) => outer,
        ("gzip", true) => "gzip+zstd-framed",
        ("zstd", true) => "zstd+zstd-framed",
        (_, true) => "zstd-framed",
    };
    Ok(Outcome {
        format,
        compression,
        parsed,
    })
}

/// Sniffs an uncompressed input. The bool: the messages of a framed stream were zstd frames.
fn parse_plain(
    input: &Arc<str>,
    bytes: &[u8],
    budget: &mut compress::Budget,
    vendors: &[VendorMapping],
    events_only: bool,
) -> Result<(Format, bool, Parsed), String> {
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let Some(first) = text.iter().position(|b| !b.is_ascii_whitespace()) else {
        return Ok((Format::Empty, false, Parsed::default()));
    };
    if events_only {
        return read_vendor_events(input, text, vendors).map(|(f, p)| (f, false, p));
    }
    match text[first] {
        b'{' | b'[' => match parse_json(input, text, first) {
            Ok((format, parsed)) => Ok((format, false, parsed)),
            // Not traces: a vendor event log given among the trace inputs is read as one.
            Err(_) if vendor::looks_like_events(text, vendors) => {
                read_vendor_events(input, text, vendors).map(|(f, p)| (f, false, p))
            }
            // A TracesData message starts with 0x0a (a newline to JSON) and then the length
            // of its first ResourceSpans, which may happen to be the byte `{` or `[`.
            Err(json_error) if bytes.first() == Some(&0x0a) => {
                parse_binary(input, bytes, budget).map_err(|_| json_error)
            }
            Err(json_error) => Err(format!(
                "{json_error}; if it is a vendor event log, describe it with a [[vendor]] mapping in abortaudit.toml (`abortaudit rules` shows the built-in ones)"
            )),
        },
        _ => parse_binary(input, bytes, budget),
    }
}

/// A vendor event log, through the mappings.
fn read_vendor_events(
    input: &Arc<str>,
    text: &[u8],
    vendors: &[VendorMapping],
) -> Result<(Format, Parsed), String> {
    let read = vendor::read_events(input, text, vendors)?;
    let format = match read.format {
        vendor::FORMAT_JSON_LINES => Format::VendorJsonLines,
        vendor::FORMAT_TEMPORAL => Format::TemporalHistory,
        _ => Format::VendorJson,
    };
    let parsed = Parsed {
        lines: read.lines,
        diagnostics: read.diagnostics,
        events: read.events,
        events_by_vendor: read.by_vendor,
        ..Parsed::default()
    };
    Ok((format, parsed))
}

/// OTLP/protobuf: the legacy zstd-framed stream, one message, or a length-framed stream.
fn parse_binary(
    input: &Arc<str>,
    bytes: &[u8],
    budget: &mut compress::Budget,
) -> Result<(Format, bool, Parsed), String> {
    let framed = otlp_proto::sniff_framed(bytes);
    let read_framed = |budget: &mut compress::Budget| {
        let mut parsed = Parsed::default();
        let (content, zstd) = otlp_proto::read_framed(input, bytes, budget, &mut parsed)?;
        let format = match content {
            otlp_proto::FrameContent::Protobuf => Format::OtlpProtobufFramed,
            otlp_proto::FrameContent::Json => Format::OtlpJsonFramed,
        };
        Ok((format, zstd, parsed))
    };
    if framed == Ok(true) {
        return read_framed(budget);
    }
    let unframed_why = match otlp_proto::decode_plausible(bytes) {
        Ok(data) => {
            let mut parsed = Parsed::default();
            otlp_proto::read_unframed(input, data, &mut parsed);
            return Ok((Format::OtlpProtobuf, false, parsed));
        }
        Err(why) => why,
    };
    match framed {
        Ok(_) => read_framed(budget),
        Err(framed_why) => Err(describe_binary(bytes, &unframed_why, &framed_why)),
    }
}

/// The JSON formats: OTLP/JSON (a document or JSON Lines), Jaeger JSON, Zipkin v2 JSON.
fn parse_json(input: &Arc<str>, text: &[u8], first: usize) -> Result<(Format, Parsed), String> {
    let mut parsed = Parsed::default();
    let first_line_end = text[first..]
        .iter()
        .position(|b| *b == b'\n')
        .map_or(text.len(), |i| first + i);
    let first_line = &text[first..first_line_end];
    let is_json_lines = serde_json::from_slice::<serde::de::IgnoredAny>(first_line).is_ok();
    let first_record = if is_json_lines { first_line } else { text };
    if text[first] == b'{'
        && matches!(
            otlp_json::classify(first_record),
            Shape::OtlpTraces | Shape::OtlpOther
        )
    {
        if is_json_lines {
            otlp_json::read_lines(input, text, &mut parsed);
            return Ok((Format::OtlpJsonLines, parsed));
        }
        otlp_json::read_document(input, text, &mut parsed).map_err(|e| syntax_error(&e, false))?;
        return Ok((Format::OtlpJson, parsed));
    }

    // A document that fails to parse at all is reported with serde's position.
    let value: serde_json::Value =
        serde_json::from_slice(first_record).map_err(|e| syntax_error(&e, is_json_lines))?;
    let format = if jaeger::sniff(&value).is_some() {
        Format::JaegerJson
    } else {
        match zipkin::sniff(&value) {
            Ok(Some(_)) => Format::ZipkinV2Json,
            Ok(None) => return Err(describe_not_traces(&value)),
            Err(v1) => return Err(format!("this is {v1}")),
        }
    };
    let read = |value: serde_json::Value, record: &[u8], line: u64, parsed: &mut Parsed| {
        if format == Format::JaegerJson {
            jaeger::read(input, value, record, line, parsed);
        } else {
            zipkin::read(input, value, record, line, parsed);
        }
    };
    if !is_json_lines {
        parsed.lines =
            locate::count_newlines(text) + u64::from(!text.ends_with(b"\n") && !text.is_empty());
        read(value, text, 1, &mut parsed);
        return Ok((format, parsed));
    }
    // JSON Lines of Jaeger or Zipkin records (as written by collectors' file dumps).
    drop(value);
    let ends_with_newline = text.ends_with(b"\n");
    let line_count = text.split(|b| *b == b'\n').count() - usize::from(ends_with_newline);
    for (i, line) in text.split(|b| *b == b'\n').enumerate() {
        let line_no = i as u64 + 1;
        if i >= line_count {
            break;
        }
        parsed.lines = line_no;
        let line = locate::trim_ascii_end(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<serde_json::Value>(line) {
            Ok(value) => read(value, line, line_no, &mut parsed),
            Err(e) if i + 1 == line_count && !ends_with_newline && e.is_eof() => {
                parsed.diagnostics.push(Diagnostic::warning(
                    input,
                    Some(line_no),
                    Code::TruncatedLine,
                    format!(
                        "last line ends mid-record ({e}); the file may still be being written; the partial record is skipped"
                    ),
                ))
            }
            Err(e) => parsed.diagnostics.push(Diagnostic::error(
                input,
                Some(line_no),
                Code::MalformedJson,
                format!(
                    "not valid JSON: {e}; expected one {} record per line; skipped",
                    format.describe()
                ),
            )),
        }
    }
    Ok((format, parsed))
}

const EXPECTED: &str = "expected OTLP/JSON (a TracesData object, or one per line), OTLP/protobuf, Jaeger JSON or Zipkin v2 JSON traces, optionally gzip- or zstd-compressed";

fn syntax_error(e: &serde_json::Error, json_lines: bool) -> String {
    let what = if json_lines { "first line" } else { "document" };
    format!(
        "line {}, column {}: the {what} is not valid JSON ({e}); {EXPECTED}",
        e.line(),
        e.column()
    )
}

fn describe_binary(bytes: &[u8], unframed: &str, framed: &str) -> String {
    let start: Vec<String> = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!(
        "not JSON (it starts with bytes {}) and not OTLP/protobuf: as one message it {unframed}; as a length-framed stream, {framed}; {EXPECTED}",
        start.join(" ")
    )
}

/// Names what a JSON input that is not traces looks like, so the user knows what they gave.
fn describe_not_traces(value: &serde_json::Value) -> String {
    let looks_like = match value {
        serde_json::Value::Array(items) => match items.first() {
            None => "an empty JSON array".to_owned(),
            Some(serde_json::Value::Array(_)) => "a JSON array of arrays".to_owned(),
            _ => "a JSON array".to_owned(),
        },
        serde_json::Value::Object(o) => {
            if o.get("object").and_then(|v| v.as_str()) == Some("event") {
                "a Stripe event: vendor event logs are not trace inputs".to_owned()
            } else if o.contains_key("resourceMetrics") || o.contains_key("resourceLogs") {
                "OTLP metrics or logs, not traces".to_owned()
            } else {
                let keys: Vec<&str> = o.keys().take(5).map(String::as_str).collect();
                format!("a JSON object with keys {keys:?}")
            }
        }
        _ => "a JSON scalar".to_owned(),
    };
    format!("this is {looks_like}, not trace data; {EXPECTED}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Outcome, String> {
        parse(
            &Arc::from("test.json"),
            text.as_bytes(),
            &IngestOptions::default(),
            false,
        )
    }

    #[test]
    fn sniffs_json_lines_and_documents_by_content() {
        let line = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"a","startTimeUnixNano":"1","endTimeUnixNano":"2"}]}]}]}"#;
        let outcome = parse_str(&format!("{line}\n{line}\n")).unwrap();
        assert_eq!(outcome.format, Format::OtlpJsonLines);
        assert_eq!(outcome.parsed.spans.len(), 2);
        let pretty =
            serde_json::to_string_pretty(&serde_json::from_str::<serde_json::Value>(line).unwrap())
                .unwrap();
        let outcome = parse_str(&pretty).unwrap();
        assert_eq!(outcome.format, Format::OtlpJson);
        assert_eq!(outcome.parsed.spans.len(), 1);
        let span_id_line = pretty
            .lines()
            .position(|l| l.contains("\"spanId\""))
            .unwrap() as u64
            + 1;
        assert_eq!(
            outcome.parsed.spans[0].origin.line, span_id_line,
            "line of the spanId field"
        );
    }

    #[test]
    fn sniffs_jaeger_and_zipkin_and_names_what_else_it_looks_like() {
        let zipkin =
            r#"[{"traceId":"1","id":"2","timestamp":1,"localEndpoint":{"serviceName":"a"}}]"#;
        assert_eq!(parse_str(zipkin).unwrap().format, Format::ZipkinV2Json);
        let jaeger = r#"{"data":[{"traceID":"1","spans":[]}]}"#;
        assert_eq!(parse_str(jaeger).unwrap().format, Format::JaegerJson);
        let v1 = r#"[{"traceId":"1","id":"2","binaryAnnotations":[]}]"#;
        assert!(parse_str(v1).unwrap_err().contains("Zipkin v1"));
        let stripe = r#"{"object":"list","data":[{"id":"ch_1","object":"charge"}]}"#;
        let error = parse_str(stripe).unwrap_err();
        assert!(error.contains("charge objects, not of events"), "{error}");
        assert!(parse_str("[]").unwrap_err().contains("empty JSON array"));
        assert!(
            parse_str("\x00\x01binary")
                .unwrap_err()
                .contains("not OTLP/protobuf")
        );
    }

    #[test]
    fn empty_input_is_empty_not_an_error() {
        assert_eq!(parse_str("  \n").unwrap().format, Format::Empty);
    }

    #[test]
    fn globs_expand_in_name_order_and_skip_hidden_files() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.json", "a.json", ".hidden.json", "c.txt"] {
            std::fs::write(dir.path().join(name), "{}").unwrap();
        }
        let pattern = dir.path().join("*.json");
        let files = expand(&[Source::Path(pattern)]);
        assert_eq!(
            files,
            vec![
                Source::Path(dir.path().join("a.json")),
                Source::Path(dir.path().join("b.json"))
            ]
        );
        let none = dir.path().join("*.nothing");
        assert_eq!(
            expand(&[Source::Path(none.clone())]),
            vec![Source::Path(none)]
        );
    }
}

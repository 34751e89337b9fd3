//! Reading inputs into the span model: finding the files, sniffing each one's format by its
//! content (never its extension), parsing, and removing the duplicates that Collector retries
//! leave behind.

mod otlp_json;

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use serde::Serialize;

use crate::diagnostic::{Diagnostic, Severity};
use crate::model::{Span, SpanId, TraceId};

/// What an input turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Format {
    #[serde(rename = "otlp-json-lines")]
    OtlpJsonLines,
    #[serde(rename = "otlp-json")]
    OtlpJson,
    /// Zero bytes, or only white space: nothing to read, which is not an error.
    #[serde(rename = "empty")]
    Empty,
    /// Not read: the input's error says why.
    #[serde(rename = "unknown")]
    Unknown,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::OtlpJsonLines => "otlp-json-lines",
            Format::OtlpJson => "otlp-json",
            Format::Empty => "empty",
            Format::Unknown => "unknown",
        }
    }
}

/// What one top-level JSON record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    OtlpTraces,
    OtlpOther,
    Other,
}

/// One input as a reader left it.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    pub lines: u64,
    /// Every span record seen, including those whose ids made them unusable.
    pub spans_read: u64,
    pub spans_unjoinable: u64,
    pub spans: Vec<Span>,
    pub diagnostics: Vec<Diagnostic>,
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
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.lines += other.lines;
        self.spans += other.spans;
        self.events += other.events;
        self.links += other.links;
        self.duplicates += other.duplicates;
        self.unjoinable += other.unjoinable;
        for (kind, n) in &other.kinds {
            *self.kinds.entry(kind).or_default() += n;
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct InputReport {
    pub path: String,
    pub format: Format,
    pub compression: &'static str,
    #[serde(flatten)]
    pub counts: Counts,
    pub diagnostics: Vec<Diagnostic>,
    /// Why the input could not be used at all; the run then exits with status 2.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Everything read from all inputs.
#[derive(Debug, Default)]
pub struct Ingested {
    /// Deduplicated spans, in input order.
    pub spans: Vec<Span>,
    pub inputs: Vec<InputReport>,
    /// The inputs' counts added up; traces and services counted once across all inputs.
    pub total: Counts,
}

impl Ingested {
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

/// Expands directories (recursively, in name order, skipping hidden entries) into the files
/// to read. A path that does not exist is kept, so reading it reports the error.
pub fn expand(sources: &[Source]) -> Vec<Source> {
    let mut out = Vec::new();
    for source in sources {
        match source {
            Source::Path(p) if p.is_dir() => walk(p, &mut out),
            other => out.push(other.clone()),
        }
    }
    out
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

/// Reads every source (in parallel) and deduplicates spans across all of them, keeping the
/// first copy in input order so the result does not depend on thread scheduling.
pub fn ingest(sources: &[Source]) -> Ingested {
    let files = expand(sources);
    let results: Vec<(InputReport, Vec<Span>)> = files.par_iter().map(read_source).collect();

    let mut seen: HashSet<(TraceId, SpanId, u64)> = HashSet::new();
    let mut all_traces = HashSet::new();
    let mut all_services = HashSet::new();
    let mut ingested = Ingested::default();
    for (mut report, spans) in results {
        let mut traces = HashSet::new();
        let mut services = HashSet::new();
        for span in spans {
            if !seen.insert((span.trace_id, span.span_id, span.start)) {
                report.counts.duplicates += 1;
                continue;
            }
            traces.insert(span.trace_id);
            services.insert(span.service().to_owned());
            *report.counts.kinds.entry(span.kind.as_str()).or_default() += 1;
            report.counts.events += span.events.len() as u64;
            report.counts.links += span.links.len() as u64;
            ingested.spans.push(span);
        }
        report.counts.traces = traces.len() as u64;
        report.counts.services = services.len() as u64;
        ingested.total.add(&report.counts);
        all_traces.extend(traces);
        all_services.extend(services);
        ingested.inputs.push(report);
    }
    // Traces and services are distinct counts: a trace split over two files is one trace.
    ingested.total.traces = all_traces.len() as u64;
    ingested.total.services = all_services.len() as u64;
    ingested
}

fn read_source(source: &Source) -> (InputReport, Vec<Span>) {
    let path = source.display();
    match read_bytes(source) {
        Ok(bytes) => parse_input(&path, &bytes),
        Err(e) => {
            let (mut report, spans) = parse_input(&path, b"");
            report.error = Some(format!("{path}: cannot read: {e}"));
            report.format = Format::Unknown;
            (report, spans)
        }
    }
}

/// Parses one input's bytes, named `path` in diagnostics. Never panics, whatever the bytes:
/// problems become diagnostics, or the report's `error` when nothing can be read.
pub fn parse_input(path: &str, bytes: &[u8]) -> (InputReport, Vec<Span>) {
    let mut report = InputReport {
        path: path.to_owned(),
        format: Format::Unknown,
        compression: "none",
        counts: Counts::default(),
        diagnostics: Vec::new(),
        error: None,
    };
    let input: Arc<str> = Arc::from(path);
    match parse(&input, bytes) {
        Ok((format, parsed)) => {
            report.format = format;
            report.counts.lines = parsed.lines;
            report.counts.spans = parsed.spans_read;
            report.counts.unjoinable = parsed.spans_unjoinable;
            report.diagnostics = parsed.diagnostics;
            if parsed.spans_read == 0 && format != Format::Empty {
                let errors = report
                    .diagnostics
                    .iter()
                    .filter(|d| d.severity == Severity::Error)
                    .count();
                report.error = Some(if errors > 0 {
                    format!(
                        "{path}: no spans could be read ({errors} malformed records, see the diagnostics)"
                    )
                } else {
                    format!("{path}: holds no spans: the OTLP/JSON records in it are empty")
                });
            }
            (report, parsed.spans)
        }
        Err(message) => {
            report.error = Some(format!("{path}: {message}"));
            (report, Vec::new())
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

/// Sniffs the format from the bytes and parses. `Err` is an input that cannot be used at all.
fn parse(input: &Arc<str>, bytes: &[u8]) -> Result<(Format, Parsed), String> {
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let Some(first) = text.iter().position(|b| !b.is_ascii_whitespace()) else {
        return Ok((Format::Empty, Parsed::default()));
    };
    match text[first] {
        b'{' => {}
        b'[' => return Err(describe_not_otlp(text)),
        _ => return Err(describe_binary(text)),
    }

    let mut parsed = Parsed::default();
    let first_line_end = text[first..]
        .iter()
        .position(|b| *b == b'\n')
        .map_or(text.len(), |i| first + i);
    let first_line = &text[first..first_line_end];
    let is_json_lines = serde_json::from_slice::<serde::de::IgnoredAny>(first_line).is_ok();
    let first_record = if is_json_lines { first_line } else { text };
    match otlp_json::classify(first_record) {
        Shape::OtlpTraces | Shape::OtlpOther => {}
        Shape::Other => {
            // A document that fails to parse at all is reported with serde's position.
            if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(first_record) {
                return Err(syntax_error(&e, is_json_lines));
            }
            return Err(describe_not_otlp(first_record));
        }
    }
    if is_json_lines {
        otlp_json::read_lines(input, text, &mut parsed);
        Ok((Format::OtlpJsonLines, parsed))
    } else {
        otlp_json::read_document(input, text, &mut parsed).map_err(|e| syntax_error(&e, false))?;
        Ok((Format::OtlpJson, parsed))
    }
}

fn syntax_error(e: &serde_json::Error, json_lines: bool) -> String {
    let what = if json_lines { "first line" } else { "document" };
    format!(
        "line {}, column {}: the {what} is not valid JSON ({e}); expected an OTLP/JSON document or JSON Lines",
        e.line(),
        e.column()
    )
}

fn describe_binary(text: &[u8]) -> String {
    let what = if text.starts_with(&[0x1f, 0x8b]) {
        "gzip-compressed data; decompress it first (gzip -d)".to_owned()
    } else if text.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        "zstd-compressed data; decompress it first (zstd -d)".to_owned()
    } else {
        format!(
            "not JSON (it starts with byte 0x{:02x}); binary OTLP/protobuf is not read yet, export OTLP/JSON instead",
            text.first().copied().unwrap_or(0)
        )
    };
    format!("{what}; expected OTLP/JSON (a TracesData object, or one per line)")
}

/// Names what a JSON input that is not OTLP traces looks like, so the user knows what they gave.
fn describe_not_otlp(text: &[u8]) -> String {
    let value: serde_json::Value = match serde_json::from_slice(text) {
        Ok(v) => v,
        Err(e) => return syntax_error(&e, false),
    };
    let looks_like = match &value {
        serde_json::Value::Array(items) => match items.first() {
            Some(serde_json::Value::Array(_)) => "Zipkin v2 JSON (a list of traces)".to_owned(),
            Some(serde_json::Value::Object(o)) if is_zipkin_span(o) => {
                "Zipkin v2 JSON (a list of spans)".to_owned()
            }
            Some(serde_json::Value::Object(o)) if o.contains_key("traceID") => {
                "Jaeger JSON (an array of spans)".to_owned()
            }
            None => "an empty JSON array".to_owned(),
            _ => "a JSON array".to_owned(),
        },
        serde_json::Value::Object(o) => {
            if o.get("data").is_some_and(|d| d.is_array()) {
                "Jaeger JSON (the query API's {\"data\": [...]} envelope)".to_owned()
            } else if o.contains_key("traceID") && o.contains_key("spans") {
                "a Jaeger JSON trace".to_owned()
            } else if is_zipkin_span(o) {
                "a Zipkin v2 span".to_owned()
            } else if o.get("object").and_then(|v| v.as_str()) == Some("event") {
                "a Stripe event: vendor event logs are not trace inputs".to_owned()
            } else {
                let keys: Vec<&str> = o.keys().take(5).map(String::as_str).collect();
                format!("a JSON object with keys {keys:?}")
            }
        }
        _ => "a JSON scalar".to_owned(),
    };
    format!(
        "this is {looks_like}, not OTLP/JSON; expected a TracesData object with \"resourceSpans\" (or one per line)"
    )
}

fn is_zipkin_span(o: &serde_json::Map<String, serde_json::Value>) -> bool {
    o.contains_key("traceId")
        && o.contains_key("id")
        && (o.contains_key("localEndpoint")
            || o.contains_key("timestamp")
            || o.contains_key("duration"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<(Format, Parsed), String> {
        parse(&Arc::from("test.json"), text.as_bytes())
    }

    #[test]
    fn sniffs_json_lines_and_documents_by_content() {
        let line = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"a","startTimeUnixNano":"1","endTimeUnixNano":"2"}]}]}]}"#;
        let (format, parsed) = parse_str(&format!("{line}\n{line}\n")).unwrap();
        assert_eq!(format, Format::OtlpJsonLines);
        assert_eq!(parsed.spans.len(), 2);
        let pretty =
            serde_json::to_string_pretty(&serde_json::from_str::<serde_json::Value>(line).unwrap())
                .unwrap();
        let (format, parsed) = parse_str(&pretty).unwrap();
        assert_eq!(format, Format::OtlpJson);
        assert_eq!(parsed.spans.len(), 1);
        let span_id_line = pretty
            .lines()
            .position(|l| l.contains("\"spanId\""))
            .unwrap() as u64
            + 1;
        assert_eq!(
            parsed.spans[0].origin.line, span_id_line,
            "line of the spanId field"
        );
    }

    #[test]
    fn names_what_a_foreign_format_looks_like() {
        let zipkin =
            r#"[{"traceId":"1","id":"2","timestamp":1,"localEndpoint":{"serviceName":"a"}}]"#;
        assert!(parse_str(zipkin).unwrap_err().contains("Zipkin v2 JSON"));
        let jaeger = r#"{"data":[{"traceID":"1","spans":[]}]}"#;
        assert!(parse_str(jaeger).unwrap_err().contains("Jaeger JSON"));
        assert!(
            parse_str("\x00\x01binary")
                .unwrap_err()
                .contains("not JSON")
        );
    }

    #[test]
    fn empty_input_is_empty_not_an_error() {
        assert_eq!(parse_str("  \n").unwrap().0, Format::Empty);
    }
}

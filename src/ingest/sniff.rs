//! Telling what an input is by its content, never its name: whole-file compression first,
//! then JSON (OTLP/JSON documents and lines, Jaeger, Zipkin, vendor event logs) or OTLP/protobuf
//! (one message, or a length-framed stream); and saying what it looks like when it is none.

use std::borrow::Cow;
use std::io::Read;
use std::sync::Arc;

use super::dedup::InputRead;
use super::json_text::locate::count_newlines;
use super::sources::{Source, is_glob};
use super::{
    Compression, Counts, Format, IngestOptions, InputKind, InputReport, Parsed, Shape, aborts,
    compress, jaeger, otlp_json, otlp_proto, vendor, zipkin,
};
use crate::model::{Code, Diagnostic, Severity};
use crate::rules::VendorMapping;

/// An input read whole was deferred: the reads beside it held too much of the memory budget
/// (see `compress::Memory`).
#[derive(Debug)]
pub(super) struct Deferred;

/// Reads an input whole, holding its bytes (and what they decompress to) of the memory budget
/// while it is parsed.
pub(super) fn read_source(
    source: &Source,
    options: &IngestOptions,
    vendors: &[VendorMapping],
    kind: InputKind,
    memory: &compress::Memory,
) -> Result<InputRead, Deferred> {
    let path = source.display();
    // The file's bytes are held while it is read; standard input, whose size is not known
    // before it is read, is read alone.
    let size = match source {
        Source::Path(p) => std::fs::metadata(p).map_or(0, |m| m.len()),
        Source::Stdin if memory.is_alone() => 0,
        Source::Stdin => return Err(Deferred),
    };
    let Some(held) = memory.hold(size) else {
        return Err(Deferred);
    };
    let read = match read_bytes(source) {
        Ok(bytes) => parse_any(&path, &bytes, options, vendors, kind, memory),
        Err(e) => {
            let mut read = parse_any(&path, b"", options, vendors, kind, memory);
            read.report.error = Some(match source {
                Source::Path(p) if is_glob(p) && !p.exists() => match glob::Pattern::new(&path) {
                    Err(e) => format!("{path}: not a valid glob pattern: {e}"),
                    Ok(_) => format!("{path}: the pattern matches no file"),
                },
                _ => format!("{path}: cannot read: {e}"),
            });
            read.report.format = Format::Unknown;
            read
        }
    };
    drop(held);
    if memory.was_deferred() {
        return Err(Deferred);
    }
    Ok(read)
}

/// Parses one input: traces or a vendor event log, recognised by content, or what the user
/// said it is (`kind`).
pub(super) fn parse_any(
    path: &str,
    bytes: &[u8],
    options: &IngestOptions,
    vendors: &[VendorMapping],
    kind: InputKind,
    memory: &compress::Memory,
) -> InputRead {
    let mut report = InputReport {
        path: path.to_owned(),
        format: Format::Unknown,
        compression: Compression::None,
        counts: Counts::default(),
        diagnostics: Vec::new(),
        error: None,
    };
    let input: Arc<str> = Arc::from(path);
    match parse(&input, bytes, options, vendors, kind, memory) {
        Ok(ReadAs {
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
            report.counts.abort_records = parsed.aborts.len() as u64;
            report.diagnostics = parsed.diagnostics;
            if format == Format::AbortLog {
                if parsed.aborts.is_empty() {
                    let errors = report.diagnostics.len();
                    report.error = Some(format!(
                        "{path}: holds no abort records ({errors} lines skipped, see the diagnostics)"
                    ));
                }
                return InputRead {
                    report,
                    spans: Vec::new(),
                    events: Vec::new(),
                    aborts: parsed.aborts,
                };
            }
            if format.is_events() {
                if parsed.events.is_empty() {
                    let errors = report.diagnostics.len();
                    report.error = Some(format!(
                        "{path}: holds no usable vendor events ({errors} records skipped, see the diagnostics)"
                    ));
                }
                return InputRead {
                    report,
                    spans: Vec::new(),
                    events: parsed.events,
                    aborts: Vec::new(),
                };
            }
            if parsed.spans_read == 0 && format != Format::Empty {
                report.error = Some(no_spans_read(path, format, &report.diagnostics));
            }
            InputRead {
                report,
                spans: parsed.spans,
                events: Vec::new(),
                aborts: Vec::new(),
            }
        }
        Err(message) => {
            report.error = Some(format!("{path}: {message}"));
            InputRead {
                report,
                spans: Vec::new(),
                events: Vec::new(),
                aborts: Vec::new(),
            }
        }
    }
}

/// Why an input of `format` in which no span was read is unusable: its records were
/// malformed (`diagnostics` say how), or empty. One wording for a whole read and a two-pass
/// read.
pub(super) fn no_spans_read(path: &str, format: Format, diagnostics: &[Diagnostic]) -> String {
    let errors = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let what = if format.is_binary() {
        "messages"
    } else {
        "records"
    };
    if errors > 0 {
        format!("{path}: no spans could be read ({errors} malformed {what}, see the diagnostics)")
    } else {
        format!(
            "{path}: holds no spans: the {} {what} in it are empty",
            format.describe()
        )
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
struct ReadAs {
    format: Format,
    compression: Compression,
    parsed: Parsed,
}

/// Removes a whole-file compression (gzip or zstd, by their magic bytes), then sniffs the
/// format and parses. `Err` is an input that cannot be used at all.
fn parse(
    input: &Arc<str>,
    bytes: &[u8],
    options: &IngestOptions,
    vendors: &[VendorMapping],
    kind: InputKind,
    memory: &compress::Memory,
) -> Result<ReadAs, String> {
    let mut budget = compress::Budget::with_memory(options.max_decompressed, memory.clone());
    let (outer, data, corrupt) = if bytes.starts_with(&compress::GZIP_MAGIC) {
        let d = compress::gunzip(bytes, &mut budget).map_err(compress::Failure::message)?;
        (Compression::Gzip, Cow::Owned(d.data), d.corrupt)
    } else if compress::starts_zstd(bytes) {
        let d = compress::unzstd(bytes, &mut budget, "the zstd data", 0)
            .map_err(compress::Failure::message)?;
        (Compression::Zstd, Cow::Owned(d.data), d.corrupt)
    } else {
        (Compression::None, Cow::Borrowed(bytes), None)
    };
    if outer != Compression::None
        && (data.starts_with(&compress::GZIP_MAGIC) || compress::starts_zstd(&data))
    {
        return Err(format!(
            "{}-compressed data that is compressed again inside; decompress it first",
            outer.as_str()
        ));
    }
    let (format, framed_zstd, mut parsed) =
        match parse_plain(input, &data, &mut budget, vendors, kind) {
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
        (Compression::Gzip, true) => Compression::GzipZstdFramed,
        (Compression::Zstd, true) => Compression::ZstdZstdFramed,
        (_, true) => Compression::ZstdFramed,
    };
    Ok(ReadAs {
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
    kind: InputKind,
) -> Result<(Format, bool, Parsed), String> {
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let Some(first) = text.iter().position(|b| !b.is_ascii_whitespace()) else {
        return Ok((Format::Empty, false, Parsed::default()));
    };
    match kind {
        InputKind::Traces => {}
        InputKind::Events => {
            return read_vendor_events(input, text, vendors).map(|(f, p)| (f, false, p));
        }
        InputKind::Aborts => {
            let mut parsed = Parsed::default();
            aborts::read(input, text, &mut parsed);
            return Ok((Format::AbortLog, false, parsed));
        }
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
            Err(json_error) if aborts::looks_like_abort_log(text) => Err(format!(
                "{json_error}; it looks like an abort log (conversation_id and time on each line): pass it with --aborts"
            )),
            Err(json_error) => Err(format!(
                "{json_error}; if it is a vendor event log, describe it with a [[vendor]] mapping in abortaudit.toml (`abortaudit rules` shows the built-in ones)"
            )),
        },
        // Not JSON at its start, nor protobuf: an OTLP/JSON Lines file whose first line is the
        // end of a record cut off (a rotation mid-line) is still read.
        _ => parse_binary(input, bytes, budget).or_else(|why| {
            if !otlp_lines_after_a_bad_first_line(&text[first..], true) {
                return Err(why);
            }
            let mut parsed = Parsed::default();
            otlp_json::read_lines(input, text, &mut parsed);
            Ok((Format::OtlpJsonLines, false, parsed))
        }),
    }
}

/// How many lines the sniffer reads, at most, for a whole OTLP/JSON record when the first
/// line of an input is not one (docs/formats.md).
pub(super) const SNIFF_LINES: usize = 16;

/// Whether `text` (from its first non-blank byte) is OTLP/JSON Lines whose first line is not
/// a whole record: a file rotated or cut in the middle of a record, or a line of something
/// else at its head. It is so when `text` is not one JSON document (a pretty-printed document
/// spans lines) and one of its first `SNIFF_LINES` non-blank lines after the first is a whole
/// OTLP traces record. The first line is then read as a record, and says what is wrong with
/// it (`malformed-json`, `invalid-otlp`, `not-traces`).
///
/// `complete`: `text` is the whole input. The two-pass planner gives only the start of a large
/// file, and trusts only what that start settles: a JSON error that is not the end of the text,
/// and lines that end in it; it must never say yes where the whole read, which has all of the
/// text, says no.
pub(super) fn otlp_lines_after_a_bad_first_line(text: &[u8], complete: bool) -> bool {
    match serde_json::from_slice::<serde::de::IgnoredAny>(text) {
        Ok(_) => return false,
        Err(e) if !complete && e.is_eof() => return false,
        Err(_) => {}
    }
    let mut lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
    if !complete {
        // The last piece may be cut by the end of what was read.
        lines.pop();
    }
    lines
        .into_iter()
        .filter(|line| !line.trim_ascii().is_empty())
        .take(SNIFF_LINES)
        .skip(1)
        .any(|line| {
            let line = line.trim_ascii();
            line.first() == Some(&b'{') && otlp_json::shape_of(line) == Shape::OtlpTraces
        })
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
            otlp_json::shape_of(first_record),
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
    // A first line that is not a whole record, in a file whose other lines are.
    if otlp_lines_after_a_bad_first_line(&text[first..], true) {
        otlp_json::read_lines(input, text, &mut parsed);
        return Ok((Format::OtlpJsonLines, parsed));
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
        parsed.lines = count_newlines(text) + u64::from(!text.ends_with(b"\n") && !text.is_empty());
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
        let line = line.trim_ascii_end();
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

    fn parse_str(text: &str) -> Result<ReadAs, String> {
        parse(
            &Arc::from("test.json"),
            text.as_bytes(),
            &IngestOptions::default(),
            &crate::rules::builtin_vendor_mappings(),
            InputKind::Traces,
            &compress::Memory::alone(&compress::MemoryBudget::new(u64::MAX)),
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
}

//! OTLP/JSON, as the Collector file exporter, the SDK JSON file exporters, Jaeger's API v3 and
//! Tempo write it.
//!
//! Our own serde structs rather than opentelemetry-proto's: those decode Jaeger or Zipkin JSON
//! as an empty OTLP file without complaint and reject the base64 ids and enum names that
//! proto3-JSON writers emit. Every field that real writers vary on is read leniently (ids in hex
//! or base64, enums as numbers or names, 64-bit integers as strings or numbers, snake_case keys,
//! the legacy `instrumentationLibrarySpans`), and every field whose value the audit depends on
//! (ids, times) is validated per span, so one bad span costs a diagnostic, not its whole line.

mod check;
mod convert;
mod index;
mod kept;
mod survey;
mod unknown;
mod wire;

use std::sync::Arc;

use super::json_text::locate::{Locator, count_newlines};
use super::{Parsed, Shape};
use crate::model::{Code, Diagnostic};
use convert::{Converter, Position};
use rayon::prelude::*;
use wire::WholeEnvelope;

pub(crate) use index::IndexFilter;
pub(crate) use kept::{Keep, read_kept_span};
pub(crate) use survey::{SurveyRules, SurveyedSpan};

/// How records are read: built into spans, or (the first pass over a large export) placed and
/// surveyed.
#[derive(Clone, Copy)]
pub(crate) enum Mode<'a> {
    Build,
    Index(&'a IndexFilter),
}

/// What a top-level JSON value looks like, for sniffing and for the error when it is not OTLP.
pub(crate) fn shape_of(value_start: &[u8]) -> Shape {
    // Only objects can be OTLP; anything else is described by the caller from a full parse.
    match serde_json::from_slice::<WholeEnvelope<'_>>(value_start) {
        Ok(env) if env.is_traces() => Shape::OtlpTraces,
        Ok(env) if env.is_other_telemetry() => Shape::OtlpOther,
        _ => Shape::Other,
    }
}

/// JSON Lines inputs larger than this are split at line boundaries and read on several threads.
pub(crate) const PARALLEL_LINES_ABOVE: usize = 8 << 20;

/// Reads JSON Lines: one OTLP record a line. A bad line is a diagnostic and the run goes on.
///
/// A large input is cut into one chunk per thread at line boundaries; each chunk is read into
/// its own `Parsed` with absolute line numbers and the results are appended in input order, so
/// the outcome is the same whatever the number of threads.
pub(crate) fn read_lines(input: &Arc<str>, text: &[u8], out: &mut Parsed) {
    read_lines_split(
        input,
        text,
        out,
        PARALLEL_LINES_ABOVE,
        rayon::current_num_threads(),
    );
}

/// Indexes a block of whole lines of a larger input, the first being line `first_line`, on all
/// threads: the first pass over a large export.
pub(crate) fn index_block(
    input: &Arc<str>,
    block: &[u8],
    first_line: u64,
    index: &IndexFilter,
    out: &mut Parsed,
) {
    read_lines_from(
        input,
        block,
        first_line,
        out,
        0,
        // Many more pieces than threads, so that a slow piece does not leave a core idle.
        rayon::current_num_threads() * 8,
        Mode::Index(index),
    );
}

pub(crate) fn read_lines_split(
    input: &Arc<str>,
    text: &[u8],
    out: &mut Parsed,
    threshold: usize,
    threads: usize,
) {
    read_lines_from(input, text, 1, out, threshold, threads, Mode::Build);
}

fn read_lines_from(
    input: &Arc<str>,
    text: &[u8],
    first: u64,
    out: &mut Parsed,
    threshold: usize,
    threads: usize,
    mode: Mode<'_>,
) {
    if text.len() <= threshold || threads < 2 {
        read_chunk(input, text, first, mode, out);
        return;
    }
    let chunks = split_at_lines(text, threads);
    // Each piece notes traces by conversation when the whole does.
    let note_traces = out.survey.traces.is_some();
    let parts: Vec<Parsed> = chunks
        .par_iter()
        .map(|chunk| {
            let mut part = Parsed::default();
            part.survey.traces = note_traces.then(Default::default);
            read_chunk(input, chunk, 1, mode, &mut part);
            part
        })
        .collect();
    // Every chunk but the last ends with its newline, so the next one starts a line: each is
    // numbered from 1 while it is read, and renumbered once the lines before it are known
    // (which spares counting them beforehand, a pass over the bytes).
    let mut before = first - 1;
    for mut part in parts {
        let lines = part.lines;
        part.shift_lines(before);
        out.append(part);
        before += lines;
    }
}

/// Cuts `text` into at most `n` pieces of about equal size, each ending just after a newline
/// (except the last).
fn split_at_lines(text: &[u8], n: usize) -> Vec<&[u8]> {
    let mut chunks = Vec::with_capacity(n);
    let mut start = 0;
    for k in 1..n {
        let target = (text.len() / n).saturating_mul(k).max(start);
        if target >= text.len() {
            break;
        }
        match memchr::memchr(b'\n', &text[target..]) {
            Some(i) => {
                let end = target + i + 1;
                chunks.push(&text[start..end]);
                start = end;
            }
            None => break,
        }
    }
    if start < text.len() {
        chunks.push(&text[start..]);
    }
    chunks
}

/// Reads the lines of `text`, the first of which is line `first_line` of the input.
fn read_chunk(input: &Arc<str>, text: &[u8], first_line: u64, mode: Mode<'_>, out: &mut Parsed) {
    let ends_with_newline = text.ends_with(b"\n");
    let mut line_no = first_line - 1;
    let mut rest = text;
    while !rest.is_empty() {
        line_no += 1;
        let (line, next, is_last) = match memchr::memchr(b'\n', rest) {
            Some(i) => (&rest[..i], &rest[i + 1..], i + 1 == rest.len()),
            None => (rest, &rest[rest.len()..], true),
        };
        rest = next;
        out.lines = line_no;
        read_record(
            input,
            line,
            line_no,
            is_last && !ends_with_newline,
            mode,
            out,
        );
    }
}

/// Reads one OTLP/JSON record (a line, or one message of a length-framed stream) whose spans
/// are all said to be on `line_no`. `may_be_cut`: the record is the end of a file that may still
/// be being written, so a record cut short is a warning.
///
/// Built or indexed, a record is accepted or refused alike, with the same diagnostics: the
/// first pass reads it without serde only when it can show that a whole read would build all
/// its spans without a word (`index::indexed_without_serde`), and otherwise reads it as a
/// whole read does (`index::indexed_as_whole`).
pub(crate) fn read_record(
    input: &Arc<str>,
    record: &[u8],
    line_no: u64,
    may_be_cut: bool,
    mode: Mode<'_>,
    out: &mut Parsed,
) {
    read_record_within(
        MAX_RECORD_BYTES,
        input,
        record,
        line_no,
        may_be_cut,
        mode,
        out,
    );
}

/// The longest record (a line, or a framed message) read: the first pass over a large export
/// places a span by a 32-bit length, and a whole read is held to the same (docs/limits.md).
pub(crate) const MAX_RECORD_BYTES: usize = u32::MAX as usize;

/// `read_record`, with records longer than `limit` bytes skipped with a diagnostic.
fn read_record_within(
    limit: usize,
    input: &Arc<str>,
    record: &[u8],
    line_no: u64,
    may_be_cut: bool,
    mode: Mode<'_>,
    out: &mut Parsed,
) {
    let record = record.trim_ascii_end();
    if record.len() > limit {
        out.diagnostics.push(Diagnostic::error(
            input,
            Some(line_no),
            Code::OverLimit,
            format!(
                "line is {} bytes long; abortaudit reads records of up to {limit} bytes; skipped unread",
                record.len(),
            ),
        ));
        return;
    }
    if record.iter().all(u8::is_ascii_whitespace) {
        return;
    }
    match mode {
        Mode::Build => {
            read_whole_record(input, record, line_no, may_be_cut, out, &mut |_| {});
        }
        Mode::Index(index) => {
            if !index::indexed_without_serde(index, input, record, line_no, out) {
                index::indexed_as_whole(index, input, record, line_no, may_be_cut, out);
            }
        }
    }
}

/// Reads a record as a whole read does (`record` is trimmed and not blank): serde_json reads
/// it whatever its shape, the converter builds its spans (telling `built` of each, in order,
/// whether it was built), and a record either refuses is a diagnostic. Whether it was read as
/// traces.
pub(super) fn read_whole_record(
    input: &Arc<str>,
    record: &[u8],
    line_no: u64,
    may_be_cut: bool,
    out: &mut Parsed,
    built: &mut dyn FnMut(bool),
) -> bool {
    // A record that is not JSON is malformed (or cut short) whatever type error serde met
    // first, as the first pass of a two-pass read, which checks the JSON first, reports it.
    let read = serde_json::from_slice::<WholeEnvelope<'_>>(record).map_err(|e| {
        if e.is_data() {
            serde_json::from_slice::<serde::de::IgnoredAny>(record)
                .err()
                .unwrap_or(e)
        } else {
            e
        }
    });
    let diagnostic = match read {
        Ok(env) if env.is_traces() => {
            // serde_json skips the strings of fields it ignores without checking their UTF-8,
            // which JSON text must be; a reader that keeps a span's text (the first pass over
            // a large export) needs it to be.
            if let Err(e) = std::str::from_utf8(record) {
                out.diagnostics.push(Diagnostic::error(
                    input,
                    Some(line_no),
                    Code::MalformedJson,
                    format!(
                        "not valid JSON: invalid UTF-8 at line 1 column {}; expected one OTLP/JSON record per line; skipped",
                        e.valid_up_to() + 1
                    ),
                ));
                return false;
            }
            if env.has_unknown_keys() {
                warn_unknown_lists(input, record, &|_| line_no, out);
            }
            let mut converter = Converter {
                input,
                position: Position::Line(line_no),
                out,
            };
            converter.envelope_with(env, built);
            return true;
        }
        Ok(env) if env.is_other_telemetry() => Diagnostic::warning(
            input,
            Some(line_no),
            Code::NotTraces,
            "record holds metrics, logs or profiles, not traces; skipped",
        ),
        Ok(_) => Diagnostic::error(
            input,
            Some(line_no),
            Code::InvalidOtlp,
            "record has no resourceSpans: expected an OTLP TracesData object; skipped",
        ),
        Err(e) if may_be_cut && e.is_eof() => Diagnostic::warning(
            input,
            Some(line_no),
            Code::TruncatedLine,
            format!(
                "last line ends mid-record ({e}); the file may still be being written; the partial record is skipped"
            ),
        ),
        // serde_json's limits, which JSON itself has not: said plainly.
        Err(e) if let Some(what) = over_limit(&e) => Diagnostic::error(
            input,
            Some(line_no),
            Code::OverLimit,
            format!("{what} (at column {}); skipped", e.column()),
        ),
        Err(e) if e.is_data() => Diagnostic::error(
            input,
            Some(line_no),
            Code::InvalidOtlp,
            format!("record is not OTLP/JSON: {e}; skipped"),
        ),
        Err(e) => Diagnostic::error(
            input,
            Some(line_no),
            Code::MalformedJson,
            format!("not valid JSON: {e}; expected one OTLP/JSON record per line; skipped"),
        ),
    };
    out.diagnostics.push(diagnostic);
    false
}

/// What a serde_json error says when it is one of its limits, not something wrong with the
/// JSON (docs/limits.md).
fn over_limit(e: &serde_json::Error) -> Option<&'static str> {
    match wire::without_position(e).as_str() {
        "recursion limit exceeded" => Some(
            "record nests objects and lists that abortaudit reads deeper than the 128 levels it reads",
        ),
        "number out of range" => Some(
            "record has a number beyond the range of a 64-bit float (about ±1.8e308) where abortaudit reads a value",
        ),
        _ => None,
    }
}

/// Warns of each key of `text` that OTLP/JSON does not define and that holds a list of
/// objects where spans are expected (see `unknown`); `line` places a byte of the text.
fn warn_unknown_lists(
    input: &Arc<str>,
    text: &[u8],
    line: &dyn Fn(usize) -> u64,
    out: &mut Parsed,
) {
    for list in unknown::lists_under_unknown_keys(text) {
        out.diagnostics.push(Diagnostic::warning(
            input,
            Some(line(list.offset)),
            Code::UnknownField,
            list.message(),
        ));
    }
}

/// Reads one document (usually pretty-printed). The caller has checked that it parses.
pub(crate) fn read_document(
    input: &Arc<str>,
    text: &[u8],
    out: &mut Parsed,
) -> Result<(), serde_json::Error> {
    out.lines = count_newlines(text) + u64::from(!text.ends_with(b"\n") && !text.is_empty());
    let env = serde_json::from_slice::<WholeEnvelope<'_>>(text)?;
    if env.has_unknown_keys() {
        warn_unknown_lists(input, text, &|at| count_newlines(&text[..at]) + 1, out);
    }
    let mut converter = Converter {
        input,
        position: Position::Document(Locator::new(text)),
        out,
    };
    converter.envelope(env);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record over the limit is the same diagnostic built and indexed, and the next one is
    /// read (the limit is 4 GiB: a small one stands for it here).
    #[test]
    fn a_record_over_the_limit_is_skipped_alike_built_or_indexed() {
        let input: Arc<str> = Arc::from("x.jsonl");
        let record = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"a","startTimeUnixNano":"1","endTimeUnixNano":"2"}]}]}]}"#;
        let rules = crate::rules::Rules::default();
        let index = IndexFilter {
            survey: Arc::new(SurveyRules::new(&rules)),
            block_address: record.as_ptr() as usize,
            block_offset: 0,
        };
        for limit in [record.len() - 1, record.len()] {
            let mut built = Parsed::default();
            read_record_within(limit, &input, record, 4, false, Mode::Build, &mut built);
            let mut indexed = Parsed::default();
            read_record_within(
                limit,
                &input,
                record,
                4,
                false,
                Mode::Index(&index),
                &mut indexed,
            );
            assert_eq!(built.diagnostics, indexed.diagnostics);
            assert_eq!(built.spans_read, indexed.spans_read);
            if limit < record.len() {
                assert_eq!(built.spans_read, 0);
                assert_eq!(built.diagnostics.len(), 1);
                let diagnostic = &built.diagnostics[0];
                assert_eq!(
                    (diagnostic.code, diagnostic.line),
                    (Code::OverLimit, Some(4))
                );
                assert_eq!(
                    diagnostic.message,
                    format!(
                        "line is {} bytes long; abortaudit reads records of up to {limit} bytes; skipped unread",
                        record.len()
                    )
                );
            } else {
                assert_eq!(built.spans_read, 1);
                assert!(built.diagnostics.is_empty());
            }
        }
    }

    #[test]
    fn json_lines_split_into_chunks_read_the_same_as_in_one_piece() {
        let input: Arc<str> = Arc::from("x.jsonl");
        let good = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"a","startTimeUnixNano":"1","endTimeUnixNano":"2"}]}]}]}"#;
        let mut text = String::new();
        for i in 0..40 {
            match i % 5 {
                0 => text.push_str("not json\n"),
                1 => text.push('\n'),
                _ => {
                    text.push_str(good);
                    text.push('\n');
                }
            }
        }
        text.push_str(&good[..30]);
        let whole = {
            let mut out = Parsed::default();
            read_lines_split(&input, text.as_bytes(), &mut out, usize::MAX, 1);
            out
        };
        assert_eq!(whole.lines, 41);
        for threads in [2, 3, 7, 64, 1000] {
            let mut out = Parsed::default();
            read_lines_split(&input, text.as_bytes(), &mut out, 0, threads);
            assert_eq!(out.lines, whole.lines, "{threads} chunks");
            assert_eq!(out.spans, whole.spans, "{threads} chunks");
            assert_eq!(out.diagnostics, whole.diagnostics, "{threads} chunks");
            assert_eq!(out.spans_read, whole.spans_read);
        }
        let chunks = split_at_lines(b"a\nbb\nccc\n", 3);
        assert_eq!(chunks.concat(), b"a\nbb\nccc\n");
        assert!(chunks.iter().all(|c| c.ends_with(b"\n")));
        assert_eq!(split_at_lines(b"no newline", 4), vec![&b"no newline"[..]]);
    }
}

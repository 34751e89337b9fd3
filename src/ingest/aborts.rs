//! Abort logs (`--aborts FILE`): one JSON object a line, written by a product's front end when
//! the user pressed Stop: `conversation_id`, `time` (RFC 3339, or Unix nanoseconds as a number
//! or a decimal string), and optionally `trace_id` and `reason`. Often the most reliable
//! signal of all: no agent framework needs to record the Stop for it to be there.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::Parsed;
use crate::model::ids::decode_id;
use crate::model::time::parse_rfc3339;
use crate::model::{AbortRecord, Code, Diagnostic, Origin, TraceId};

/// A record; other fields (a user id, a client version) are the front end's business and are
/// ignored.
#[derive(Deserialize)]
struct Line {
    conversation_id: String,
    time: Value,
    #[serde(default)]
    trace_id: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

/// Whether a text given as traces is an abort log: its first line is a record.
pub(super) fn looks_like_abort_log(text: &[u8]) -> bool {
    let first = text
        .split(|b| *b == b'\n')
        .map(<[u8]>::trim_ascii)
        .find(|line| !line.is_empty());
    first.is_some_and(|line| serde_json::from_slice::<Line>(line).is_ok())
}

/// Reads an abort log; a line that is not a record is a diagnostic, and the others are read.
pub(super) fn read(input: &Arc<str>, text: &[u8], out: &mut Parsed) {
    let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
    let ends_with_newline = text.ends_with(b"\n");
    let lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
    let count = lines.len() - usize::from(ends_with_newline || text.is_empty());
    for (i, line) in lines.into_iter().take(count).enumerate() {
        let line_no = i as u64 + 1;
        out.lines = line_no;
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        let diag =
            |code: Code, message: String| Diagnostic::error(input, Some(line_no), code, message);
        let record: Line = match serde_json::from_slice(line) {
            Ok(record) => record,
            Err(e) if i + 1 == count && !ends_with_newline && e.is_eof() => {
                out.diagnostics.push(Diagnostic::warning(
                    input,
                    Some(line_no),
                    Code::TruncatedLine,
                    format!("last line ends mid-record ({e}); the partial record is skipped"),
                ));
                continue;
            }
            Err(e) => {
                let code = if e.is_data() {
                    Code::InvalidRecord
                } else {
                    Code::MalformedJson
                };
                out.diagnostics.push(diag(
                    code,
                    format!(
                        "not an abort record: {e}; expected {{\"conversation_id\": …, \"time\": …}} (optional trace_id, reason); skipped"
                    ),
                ));
                continue;
            }
        };
        if record.conversation_id.is_empty() {
            out.diagnostics.push(diag(
                Code::InvalidRecord,
                "conversation_id is empty; skipped".to_owned(),
            ));
            continue;
        }
        let (time, precision) = match abort_time(&record.time) {
            Ok(time) => time,
            Err(why) => {
                out.diagnostics.push(diag(
                    Code::InvalidValue,
                    format!("time {} {why}; skipped", record.time),
                ));
                continue;
            }
        };
        let trace_id = match record.trace_id.as_deref().filter(|t| !t.is_empty()) {
            None => None,
            Some(raw) => match decode_id::<16>(raw) {
                Ok(id) => Some(TraceId(id)),
                Err(why) => {
                    out.diagnostics.push(Diagnostic::warning(
                        input,
                        Some(line_no),
                        Code::InvalidId,
                        format!(
                            "trace_id {raw:?} {why}; the abort is placed by its conversation and time"
                        ),
                    ));
                    None
                }
            },
        };
        out.aborts.push(AbortRecord {
            conversation_id: record.conversation_id,
            time,
            precision,
            trace_id,
            reason: record.reason.filter(|r| !r.is_empty()),
            origin: Origin {
                input: Arc::clone(input),
                line: line_no,
            },
        });
    }
}

/// A time as (Unix nanoseconds, precision): RFC 3339, or Unix nanoseconds as an integer or a
/// decimal string.
fn abort_time(value: &Value) -> Result<(u64, u64), String> {
    match value {
        Value::Number(n) => n
            .as_u64()
            .map(|t| (t, 1))
            .ok_or_else(|| "is not a whole number of Unix nanoseconds".to_owned()),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s
            .parse()
            .map(|t| (t, 1))
            .map_err(|_| "is too large for Unix nanoseconds".to_owned()),
        Value::String(s) => parse_rfc3339(s.trim()),
        _ => Err("is neither RFC 3339 nor Unix nanoseconds".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_text(text: &str) -> Parsed {
        let mut out = Parsed::default();
        read(&Arc::from("aborts.jsonl"), text.as_bytes(), &mut out);
        out
    }

    #[test]
    fn both_time_spellings_and_an_optional_trace_are_read() {
        let out = read_text(concat!(
            r#"{"conversation_id":"c1","time":"2026-12-06T02:37:01.543489124Z","trace_id":"f962838978794675d4a9bd0ef281a533","reason":"user_pressed_stop"}"#,
            "\n",
            r#"{"conversation_id":"c2","time":"1796524623579451193"}"#,
            "\n",
            r#"{"conversation_id":"c3","time":1796524623579451193}"#,
            "\n",
            r#"{"conversation_id":"c4","time":"2026-12-06T02:37:01.543Z"}"#,
            "\n",
        ));
        assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics);
        let times: Vec<(u64, u64)> = out.aborts.iter().map(|a| (a.time, a.precision)).collect();
        assert_eq!(
            times,
            [
                (1_796_524_621_543_489_124, 1),
                (1_796_524_623_579_451_193, 1),
                (1_796_524_623_579_451_193, 1),
                (1_796_524_621_543_000_000, 1_000_000),
            ]
        );
        assert!(out.aborts[0].trace_id.is_some());
        assert_eq!(out.aborts[0].reason.as_deref(), Some("user_pressed_stop"));
        assert_eq!(out.aborts[1].origin.line, 2);
    }

    #[test]
    fn bad_lines_are_diagnostics_naming_their_line() {
        let out = read_text(concat!(
            "not json\n",
            r#"{"conversation_id":"c1"}"#,
            "\n",
            r#"{"conversation_id":"c1","time":"yesterday"}"#,
            "\n",
            // A field of the front end's own is not the log's business.
            r#"{"conversation_id":"c1","time":"1","user_id":"u-7"}"#,
            "\n",
            r#"{"conversation_id":7,"time":"1"}"#,
            "\n",
            r#"{"conversation_id":"c2","time":"5"}"#,
            "\n",
        ));
        assert_eq!(out.aborts.len(), 2);
        let lines: Vec<(Option<u64>, Code)> =
            out.diagnostics.iter().map(|d| (d.line, d.code)).collect();
        assert_eq!(
            lines,
            [
                (Some(1), Code::MalformedJson),
                (Some(2), Code::InvalidRecord),
                (Some(3), Code::InvalidValue),
                (Some(5), Code::InvalidRecord),
            ]
        );
    }
}

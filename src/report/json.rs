//! JSON reports: `abortaudit/v1` for scans and `abortaudit-inspect/v1` for inspect. Field
//! order is fixed by these structs and findings are sorted, so the same input gives the same
//! bytes. Nanosecond times are strings: JSON numbers lose precision past 2^53 in most readers.

use std::io::Write;

use rayon::prelude::*;
use serde::Serialize;
use serde_json::ser::{Formatter, PrettyFormatter};

use super::{InspectView, ScanView};
use crate::classify::{Compensation, Finding, Prevention, ProtocolRow, Standing};
use crate::ingest::{Counts, InputReport, StoreFacts};
use crate::model::BaselineFinding;
use crate::model::diagnostic::Diagnostic;
use crate::model::time::rfc3339;
use crate::rules::AllowRule;

#[derive(Serialize)]
struct InspectReport<'a> {
    schema: &'static str,
    inputs: &'a [InputReport],
    total: &'a Counts,
    /// What joining the spans found.
    joined: Joined,
    /// What walking the directories found (links that loop).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    diagnostics: &'a [Diagnostic],
    /// What reading a store found out: its dialect, its window, what the survey kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    store: Option<&'a StoreFacts>,
}

pub fn inspect(view: &InspectView<'_>, out: &mut dyn Write) -> std::io::Result<()> {
    let ingested = view.ingested;
    let join = &view.join;
    let report = InspectReport {
        schema: "abortaudit-inspect/v1",
        inputs: &ingested.inputs,
        total: &ingested.total,
        joined: Joined {
            agent_turns: join.agent_turns,
            aborted_turns_by_signal: AbortedBySignal {
                recorded: join.aborted_recorded,
                abort_log: join.aborted_by_log,
                inferred: join.aborted_inferred,
            },
            abort_log: AbortLog {
                records: ingested.aborts.len() as u64,
                unplaced: view.abort_records_unplaced,
            },
            tool_call_spans: ToolCallSpans {
                calls: join.tool_calls,
                nested: join.nested_tool_spans,
            },
        },
        diagnostics: &ingested.walk_diagnostics,
        store: view.store,
    };
    write_pretty(out, &report)?;
    writeln!(out)
}

/// How many findings are put in their JSON shape at once, on all threads, before they are
/// written: a large export's report is tens of megabytes of them.
const FINDINGS_AT_ONCE: usize = 512;

#[derive(Serialize)]
struct JsonSummary<'a> {
    inputs: usize,
    spans: u64,
    conversations: u64,
    aborted_turns: u64,
    tool_calls_at_risk: u64,
    categories: serde_json::Map<String, serde_json::Value>,
    late_writes: u64,
    ambiguous: u64,
    committed_before_abort: u64,
    vendor_events: u64,
    unmatched_vendor_events: u64,
    aborted_turns_by_signal: AbortedBySignal,
    abort_log: AbortLog,
    tool_call_spans: ToolCallSpans,
    diagnostics: usize,
    /// Findings an `[[allow]]` entry accepts, and findings the baseline had.
    suppressed: u64,
    known: u64,
    gate: Gate<'a>,
    /// Which mechanisms the tool calls of the aborted turns had, per tool and per service.
    protocols: Protocols<'a>,
}

#[derive(Serialize)]
struct Protocols<'a> {
    by_tool: Vec<ToolRow<'a>>,
    by_service: Vec<ServiceRow<'a>>,
}

#[derive(Serialize)]
struct ToolRow<'a> {
    tool: &'a str,
    #[serde(flatten)]
    counts: RowCounts,
}

#[derive(Serialize)]
struct ServiceRow<'a> {
    service: &'a str,
    #[serde(flatten)]
    counts: RowCounts,
}

#[derive(Serialize)]
struct RowCounts {
    calls: u64,
    late_writes: u64,
    commit_check: u64,
    deadline: u64,
    cancel: u64,
    idempotency_key: u64,
    compensated: u64,
    /// Some call had a commit check, a deadline or a cancel.
    cancellation_protocol: bool,
}

impl From<&ProtocolRow> for RowCounts {
    fn from(r: &ProtocolRow) -> Self {
        RowCounts {
            calls: r.calls,
            late_writes: r.late_writes,
            commit_check: r.commit_check,
            deadline: r.deadline,
            cancel: r.cancel,
            idempotency_key: r.idempotency_key,
            compensated: r.compensated,
            cancellation_protocol: r.has_protocol(),
        }
    }
}

#[derive(Serialize)]
struct Joined {
    agent_turns: u64,
    aborted_turns_by_signal: AbortedBySignal,
    abort_log: AbortLog,
    tool_call_spans: ToolCallSpans,
}

/// Aborted turns by what shows the Stop.
#[derive(Serialize)]
struct AbortedBySignal {
    recorded: u64,
    abort_log: u64,
    inferred: u64,
}

#[derive(Serialize)]
struct AbortLog {
    records: u64,
    /// Records that named no turn of the traces.
    unplaced: u64,
}

#[derive(Serialize)]
struct ToolCallSpans {
    calls: u64,
    /// Spans a tool rule matched that are parts of an outer call.
    nested: u64,
}

#[derive(Serialize)]
struct Gate<'a> {
    fail_on: Vec<&'static str>,
    inferred_aborts: bool,
    failed: bool,
    /// `[[allow]]` entries past their `until`, which no longer suppress.
    allow_expired: &'a [AllowRule],
    /// The previous run compared against (`--baseline`), or null.
    baseline: Option<Baseline<'a>>,
    /// `[gate] fail_on_unprotected_tools`.
    fail_on_unprotected_tools: bool,
    /// Tools with late writes and no cancellation protocol (failing the gate only with
    /// `fail_on_unprotected_tools`).
    unprotected_tools: &'a [String],
}

#[derive(Serialize)]
struct Baseline<'a> {
    input: &'a str,
    known: u64,
    new: u64,
    /// The baseline's findings this run no longer has.
    gone: Vec<GoneFinding<'a>>,
}

#[derive(Serialize)]
struct GoneFinding<'a> {
    signature: &'a str,
    category: &'a str,
    tool: &'a str,
    service: &'a str,
    operation: &'a str,
    conversation_id: &'a str,
}

impl<'a> From<&'a BaselineFinding> for GoneFinding<'a> {
    fn from(f: &'a BaselineFinding) -> Self {
        GoneFinding {
            signature: &f.signature,
            category: &f.category,
            tool: &f.tool,
            service: &f.service,
            operation: &f.operation,
            conversation_id: &f.conversation_id,
        }
    }
}

/// Why a suppressed finding does not fail the gate.
#[derive(Serialize)]
struct Suppressed<'a> {
    reason: &'a str,
    until: &'a str,
    /// The `[[allow]]` entry, in words.
    entry: String,
}

#[derive(Serialize)]
struct JsonFinding<'a> {
    id: &'a str,
    /// The same problem across runs: tool, service, operation and category.
    signature: &'a str,
    category: &'static str,
    /// `fails`, `passes`, `suppressed` or `known` (the baseline had it).
    gate: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    suppressed: Option<Suppressed<'a>>,
    late: bool,
    ambiguous: bool,
    conversation_id: &'a str,
    trace_id: String,
    abort: JsonAbort<'a>,
    tool_call: JsonToolCall<'a>,
    write: Option<JsonWrite<'a>>,
    delay_ms: Option<f64>,
    join: Option<&'a str>,
    evidence: &'a [String],
    /// What would have stopped the write, one entry per mechanism.
    prevention: Vec<JsonPrevention<'a>>,
    /// A reversing write after it, or null.
    compensated: Option<JsonCompensation<'a>>,
}

#[derive(Serialize)]
struct JsonPrevention<'a> {
    mechanism: &'static str,
    present: bool,
    would_have_stopped: Option<bool>,
    margin_ms: Option<f64>,
    detail: &'a str,
}

#[derive(Serialize)]
struct JsonCompensation<'a> {
    operation: &'a str,
    service: &'a str,
    event_id: Option<&'a str>,
    span_id: Option<String>,
    time: String,
    time_unix_nano: String,
    time_precision_ns: String,
    delay_ms: f64,
}

/// Nanoseconds as milliseconds, truncated to the microsecond.
fn ms(ns: i128) -> f64 {
    (ns / 1_000) as f64 / 1_000.0
}

impl<'a> From<&'a Prevention> for JsonPrevention<'a> {
    fn from(p: &'a Prevention) -> Self {
        JsonPrevention {
            mechanism: p.mechanism.as_str(),
            present: p.present,
            would_have_stopped: p.would_have_stopped,
            margin_ms: p.margin_ns.map(ms),
            detail: &p.detail,
        }
    }
}

impl<'a> From<&'a Compensation> for JsonCompensation<'a> {
    fn from(c: &'a Compensation) -> Self {
        JsonCompensation {
            operation: &c.operation,
            service: &c.service,
            event_id: c.event_id.as_deref(),
            span_id: c.span_id.map(|s| s.to_string()),
            time: rfc3339(c.time),
            time_unix_nano: c.time.to_string(),
            time_precision_ns: c.precision.to_string(),
            delay_ms: ms(c.delay_ns),
        }
    }
}

#[derive(Serialize)]
struct JsonAbort<'a> {
    time: String,
    time_unix_nano: String,
    signal: &'a str,
    inferred: bool,
}

#[derive(Serialize)]
struct JsonToolCall<'a> {
    span_id: String,
    name: &'a str,
    tool_call_id: Option<&'a str>,
    start: String,
    start_unix_nano: String,
    end: Option<String>,
    end_unix_nano: Option<String>,
}

#[derive(Serialize)]
struct JsonWrite<'a> {
    service: &'a str,
    operation: &'a str,
    /// The span that shows the write, or null when a vendor event does.
    span_id: Option<String>,
    /// The vendor event that shows the write, or null when a span does.
    event_id: Option<&'a str>,
    commit_time: Option<String>,
    commit_time_unix_nano: Option<String>,
    /// How coarse the commit time is, in nanoseconds, as a string (1 for spans).
    commit_time_precision_ns: String,
    inferred: bool,
}

fn finding<'a>(
    f: &'a Finding,
    standing: &Standing,
    allow: Option<&'a AllowRule>,
) -> JsonFinding<'a> {
    JsonFinding {
        id: &f.id,
        signature: &f.signature,
        category: f.category.as_str(),
        gate: standing.as_str(),
        suppressed: allow.map(|rule| Suppressed {
            reason: &rule.reason,
            until: &rule.until,
            entry: rule.describe(),
        }),
        late: f.late,
        ambiguous: f.ambiguous,
        conversation_id: &f.conversation_id,
        trace_id: f.trace_id.to_string(),
        abort: JsonAbort {
            time: rfc3339(f.abort.time),
            time_unix_nano: f.abort.time.to_string(),
            signal: &f.abort.signal,
            inferred: f.abort.inferred,
        },
        tool_call: JsonToolCall {
            span_id: f.tool_call.span_id.to_string(),
            name: &f.tool_call.name,
            tool_call_id: f.tool_call.tool_call_id.as_deref(),
            start: rfc3339(f.tool_call.start),
            start_unix_nano: f.tool_call.start.to_string(),
            end: f.tool_call.end.map(rfc3339),
            end_unix_nano: f.tool_call.end.map(|e| e.to_string()),
        },
        write: f.write.as_ref().map(|w| JsonWrite {
            service: &w.service,
            operation: &w.operation,
            span_id: w.span_id.map(|s| s.to_string()),
            event_id: w.event_id.as_deref(),
            commit_time: w.commit_time.map(rfc3339),
            commit_time_unix_nano: w.commit_time.map(|c| c.to_string()),
            commit_time_precision_ns: w.precision.to_string(),
            inferred: w.inferred,
        }),
        // Rounded to the microsecond; the exact value is in the two *_unix_nano fields.
        delay_ms: f.delay_ns().map(ms),
        join: f.join.as_deref(),
        evidence: &f.evidence,
        prevention: f.prevention.iter().map(JsonPrevention::from).collect(),
        compensated: f.compensated.as_ref().map(JsonCompensation::from),
    }
}

pub fn scan(view: &ScanView<'_>, out: &mut dyn Write) -> std::io::Result<()> {
    let summary = view.summary;
    let gate = view.gate;
    let by_tool = view.audit.protocols_by_tool();
    let by_service = view.audit.protocols_by_service();
    let summary = JsonSummary {
        inputs: summary.inputs,
        spans: summary.spans,
        conversations: summary.conversations,
        aborted_turns: summary.aborted_turns,
        tool_calls_at_risk: summary.tool_calls_at_risk,
        categories: summary
            .by_category
            .iter()
            .map(|(c, n)| (c.as_str().to_owned(), serde_json::Value::from(*n)))
            .collect(),
        late_writes: summary.late_writes,
        ambiguous: summary.ambiguous,
        committed_before_abort: summary.committed_before_abort,
        vendor_events: summary.vendor_events,
        unmatched_vendor_events: summary.unmatched_vendor_events,
        aborted_turns_by_signal: AbortedBySignal {
            recorded: summary.join.aborted_recorded,
            abort_log: summary.join.aborted_by_log,
            inferred: summary.join.aborted_inferred,
        },
        abort_log: AbortLog {
            records: summary.abort_records,
            unplaced: summary.abort_records_unplaced,
        },
        tool_call_spans: ToolCallSpans {
            calls: summary.join.aborted_tool_calls,
            nested: summary.join.aborted_nested_tool_spans,
        },
        diagnostics: summary.diagnostics,
        suppressed: summary.suppressed,
        known: summary.known,
        gate: Gate {
            fail_on: summary.fail_on.iter().map(|c| c.as_str()).collect(),
            inferred_aborts: summary.gate_inferred_aborts,
            failed: summary.gate_failed,
            allow_expired: &gate.expired,
            baseline: gate.baseline.as_ref().map(|b| Baseline {
                input: &b.input,
                known: b.known,
                new: b.new,
                gone: b.gone.iter().map(GoneFinding::from).collect(),
            }),
            fail_on_unprotected_tools: gate.fail_on_unprotected_tools,
            unprotected_tools: &gate.unprotected_tools,
        },
        protocols: Protocols {
            by_tool: by_tool
                .iter()
                .map(|r| ToolRow {
                    tool: &r.name,
                    counts: r.into(),
                })
                .collect(),
            by_service: by_service
                .iter()
                .map(|r| ServiceRow {
                    service: &r.name,
                    counts: r.into(),
                })
                .collect(),
        },
    };
    let diagnostics: Vec<&Diagnostic> = view.ingested.diagnostics().collect();
    let findings: Vec<(&Finding, &Standing)> = view.findings().collect();
    write_report(
        out,
        &summary,
        &findings,
        |(f, standing)| finding(f, standing, view.allow_rule(standing)),
        &diagnostics,
        FINDINGS_AT_ONCE,
    )
}

/// The report `{schema, summary, findings, diagnostics}` and a newline, as `write_pretty`
/// writes an object of these members, byte for byte: the findings are put in their shape
/// (`shape`) on all threads, `at_once` at a time, and written in their order.
fn write_report<F: Sync, T: Serialize>(
    out: &mut dyn Write,
    summary: &impl Serialize,
    findings: &[F],
    shape: impl Fn(&F) -> T + Sync,
    diagnostics: &impl Serialize,
    at_once: usize,
) -> std::io::Result<()> {
    out.write_all(b"{\n  \"schema\": \"abortaudit/v1\",\n  \"summary\": ")?;
    out.write_all(&pretty_at(summary, 1)?)?;
    out.write_all(b",\n  \"findings\": [")?;
    for (n, some) in findings.chunks(at_once.max(1)).enumerate() {
        let shaped: Vec<std::io::Result<Vec<u8>>> =
            some.par_iter().map(|f| pretty_at(&shape(f), 2)).collect();
        for (i, text) in shaped.into_iter().enumerate() {
            out.write_all(if n == 0 && i == 0 {
                b"\n    "
            } else {
                b",\n    "
            })?;
            out.write_all(&text?)?;
        }
    }
    if !findings.is_empty() {
        out.write_all(b"\n  ")?;
    }
    out.write_all(b"],\n  \"diagnostics\": ")?;
    out.write_all(&pretty_at(diagnostics, 1)?)?;
    out.write_all(b"\n}\n")
}

/// `value` as `write_pretty` writes it nested `depth` levels deep: each of its lines after
/// the first indented as many times two spaces (a newline in JSON text is never in a string).
fn pretty_at<T: Serialize>(value: &T, depth: usize) -> std::io::Result<Vec<u8>> {
    let mut text = Vec::new();
    write_pretty(&mut text, value)?;
    let indent = "  ".repeat(depth);
    let mut nested = Vec::with_capacity(text.len() + text.len() / 8);
    let mut lines = text.split(|b| *b == b'\n');
    if let Some(first) = lines.next() {
        nested.extend_from_slice(first);
    }
    for line in lines {
        nested.push(b'\n');
        nested.extend_from_slice(indent.as_bytes());
        nested.extend_from_slice(line);
    }
    Ok(nested)
}

/// Writes `value` as pretty JSON in which every character a reader must not get raw
/// (`sanitize::is_unsafe_char`: C1 controls, DEL, bidirectional overrides, invisibles) is a
/// `\u` escape: the value is the same, but `jq -r` and terminals no longer see them.
pub fn write_pretty<T: Serialize>(out: &mut dyn Write, value: &T) -> std::io::Result<()> {
    let mut serializer =
        serde_json::Serializer::with_formatter(&mut *out, Escaping(PrettyFormatter::new()));
    value
        .serialize(&mut serializer)
        .map_err(std::io::Error::from)
}

struct Escaping<'a>(PrettyFormatter<'a>);

impl Formatter for Escaping<'_> {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        // Most text is printable ASCII, where nothing is unsafe: it is written as it is, and
        // only what follows the first other byte is looked at a character at a time.
        let Some(from) = fragment.bytes().position(|b| !(b' '..=b'~').contains(&b)) else {
            return writer.write_all(fragment.as_bytes());
        };
        let mut plain = 0;
        for (at, c) in fragment[from..].char_indices() {
            let at = from + at;
            if super::sanitize::is_unsafe_char(c) {
                writer.write_all(&fragment.as_bytes()[plain..at])?;
                for unit in c.encode_utf16(&mut [0; 2]) {
                    write!(writer, "\\u{unit:04x}")?;
                }
                plain = at + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[plain..])
    }

    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object_value(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_written_in_parts_is_what_one_pretty_write_gives() {
        #[derive(Serialize)]
        struct Whole<'a> {
            schema: &'static str,
            summary: &'a serde_json::Value,
            findings: &'a [serde_json::Value],
            diagnostics: &'a serde_json::Value,
        }
        let summary = serde_json::json!({ "spans": 3, "gate": { "fail_on": ["late"], "x": [] } });
        let finding = |i: usize| {
            serde_json::json!({
                "id": format!("f{i}"),
                "evidence": [format!("line\n{i}\u{202e}"), "b"],
                "write": { "service": "api", "empty": {} },
                "compensated": null
            })
        };
        for diagnostics in [serde_json::json!([]), serde_json::json!([{ "code": "c" }])] {
            // None, fewer than a part, a part, a part and one more, several parts.
            for count in [0, 1, 3, 4, 10] {
                let findings: Vec<serde_json::Value> = (0..count).map(finding).collect();
                let mut whole = Vec::new();
                let report = Whole {
                    schema: "abortaudit/v1",
                    summary: &summary,
                    findings: &findings,
                    diagnostics: &diagnostics,
                };
                write_pretty(&mut whole, &report).unwrap();
                whole.push(b'\n');
                let mut parts = Vec::new();
                write_report(
                    &mut parts,
                    &summary,
                    &findings,
                    |f| f.clone(),
                    &diagnostics,
                    3,
                )
                .unwrap();
                assert_eq!(
                    String::from_utf8(parts).unwrap(),
                    String::from_utf8(whole).unwrap(),
                    "{count} findings"
                );
            }
        }
    }

    #[test]
    fn json_carries_invisible_and_reordering_characters_as_escapes() {
        let text = "a\u{9b}b\u{7f}c\u{202e}d\u{200b}e\u{e0041}f\u{1b}";
        let mut out = Vec::new();
        write_pretty(&mut out, &serde_json::json!({ "name": text })).unwrap();
        let json = String::from_utf8(out).unwrap();
        assert!(json.is_ascii(), "{json}");
        assert!(
            json.contains(r"\u009b") && json.contains(r"\u202e") && json.contains(r"\udb40\udc41")
        );
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["name"], text);
    }
}

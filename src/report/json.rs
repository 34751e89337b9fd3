//! JSON reports: `abortaudit/v1` for scans and `abortaudit-inspect/v1` for inspect. Field
//! order is fixed by these structs and findings are sorted, so the same input gives the same
//! bytes. Nanosecond times are strings: JSON numbers lose precision past 2^53 in most readers.

use std::io::Write;

use serde::Serialize;

use super::Summary;
use crate::classify::{Audit, Finding};
use crate::ingest::{Counts, Ingested, InputReport};
use crate::model::diagnostic::Diagnostic;
use crate::model::time::rfc3339;

#[derive(Serialize)]
struct InspectReport<'a> {
    schema: &'static str,
    inputs: &'a [InputReport],
    total: &'a Counts,
    /// What walking the directories found (links that loop).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    diagnostics: &'a [Diagnostic],
}

pub fn inspect(ingested: &Ingested, out: &mut dyn Write) -> std::io::Result<()> {
    let report = InspectReport {
        schema: "abortaudit-inspect/v1",
        inputs: &ingested.inputs,
        total: &ingested.total,
        diagnostics: &ingested.walk_diagnostics,
    };
    serde_json::to_writer_pretty(&mut *out, &report)?;
    writeln!(out)
}

#[derive(Serialize)]
struct ScanReport<'a> {
    schema: &'static str,
    summary: JsonSummary,
    findings: Vec<JsonFinding<'a>>,
    diagnostics: Vec<&'a Diagnostic>,
}

#[derive(Serialize)]
struct JsonSummary {
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
    diagnostics: usize,
    gate: Gate,
}

#[derive(Serialize)]
struct Gate {
    fail_on: Vec<&'static str>,
    failed: bool,
}

#[derive(Serialize)]
struct JsonFinding<'a> {
    id: &'a str,
    category: &'static str,
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
}

#[derive(Serialize)]
struct JsonAbort<'a> {
    time: String,
    time_unix_nano: String,
    signal: &'a str,
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

fn finding(f: &Finding) -> JsonFinding<'_> {
    JsonFinding {
        id: &f.id,
        category: f.category.as_str(),
        late: f.late,
        ambiguous: f.ambiguous,
        conversation_id: &f.conversation_id,
        trace_id: f.trace_id.to_string(),
        abort: JsonAbort {
            time: rfc3339(f.abort.time),
            time_unix_nano: f.abort.time.to_string(),
            signal: &f.abort.signal,
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
        delay_ms: f.delay_ns().map(|ns| (ns / 1_000) as f64 / 1_000.0),
        join: f.join.as_deref(),
        evidence: &f.evidence,
    }
}

pub fn scan(
    ingested: &Ingested,
    audit: &Audit,
    summary: &Summary,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let report = ScanReport {
        schema: "abortaudit/v1",
        summary: JsonSummary {
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
            diagnostics: summary.diagnostics,
            gate: Gate {
                fail_on: summary.fail_on.iter().map(|c| c.as_str()).collect(),
                failed: summary.gate_failed,
            },
        },
        findings: audit.findings.iter().map(finding).collect(),
        diagnostics: ingested.diagnostics().collect(),
    };
    serde_json::to_writer_pretty(&mut *out, &report)?;
    writeln!(out)
}

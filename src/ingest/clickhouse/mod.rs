//! A ClickHouse store as an input: the `otel_traces` table the Collector's clickhouseexporter
//! writes, audited where it lives. The survey that decides which traces matter runs in SQL
//! on the server (`survey`), from the same rules as the file reader's; only the spans of those
//! traces come back, as rows (`rows`) that become the same spans a file gives, each with the
//! store as its input and its row number as its line, so every later stage is unchanged.
//!
//! `url` reads the store's address, `http` speaks ClickHouse's HTTP interface, `dialect` tells
//! the exporter's table layouts apart. Vendor event logs and abort logs still come from files,
//! read first (the abort logs' conversations and traces are part of the survey).

mod dialect;
mod http;
mod rows;
mod survey;
mod url;

use std::collections::HashSet;

use anyhow::Result;
use rustc_hash::FxHashSet;
use serde::{Deserialize, Serialize};

use super::compress;
use super::dedup::{InputRead, merge_inputs};
use super::sniff::read_source;
use super::sources::expand;
use super::{
    Compression, Counts, Format, IngestOptions, Ingested, InputKind, InputReport, InputSet,
};
use crate::model::ids::hash_text;
use crate::model::time::rfc3339;
use crate::model::{Code, Diagnostic, TraceId};
use crate::rules::Rules;
use crate::rules::agent::conversation_id;

pub use dialect::{Attributes, Dialect};
pub use http::Transfer;
pub use survey::{LINK_DEPTH, Logged, Window};
pub use url::{DEFAULT_TABLE, StoreUrl, is_store_url};

/// A store to read: where, and which window of it.
#[derive(Clone, Debug)]
pub struct Store {
    pub url: StoreUrl,
    pub window: Window,
}

/// What reading a store found out about it, for `inspect`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct StoreFacts {
    pub table: String,
    pub dialect: Dialect,
    /// The spellings of the enums in the window: `modern` (`Server`, `Error`), `legacy`
    /// (`SPAN_KIND_SERVER`, `STATUS_CODE_ERROR`), or both.
    pub enums: Vec<&'static str>,
    pub since: String,
    pub until: String,
    pub grace_ns: String,
    /// Spans that started in the window, and their traces.
    pub spans_in_window: u64,
    pub traces_in_window: u64,
    /// Traces the survey kept (aborted turns, their conversations, what links into them),
    /// and their spans read.
    pub traces_read: u64,
    pub rows_read: u64,
    pub link_depth: usize,
    pub queries: u64,
    pub bytes_received: u64,
}

#[derive(Deserialize)]
struct WindowCount {
    spans: String,
    traces: String,
    kinds: Vec<String>,
    statuses: Vec<String>,
}

/// Reads a store's window: the abort logs and event logs among `inputs` first, from files,
/// then the survey and the spans of the traces that matter. A server's error, before or
/// during an answer, is an error: no audit is made of a partial answer.
pub fn read_store(
    store: &Store,
    inputs: &InputSet,
    options: &IngestOptions,
    rules: &Rules,
) -> Result<(Ingested, StoreFacts)> {
    let vendors = rules.effective_vendors();
    let mut files: Vec<InputRead> = Vec::new();
    let mut walk_diagnostics = Vec::new();
    for (sources, kind) in [
        (&inputs.event_logs, InputKind::Events),
        (&inputs.abort_logs, InputKind::Aborts),
    ] {
        let expanded = expand(sources);
        walk_diagnostics.extend(expanded.diagnostics);
        // One at a time, each alone within the memory budget: logs are small beside a store.
        let budget = compress::MemoryBudget::new(options.memory_budget);
        for source in &expanded.files {
            let memory = compress::Memory::alone(&budget);
            files.push(
                read_source(source, options, &vendors, kind, &memory)
                    .expect("a read alone is never deferred"),
            );
        }
    }
    let mut logged = Logged::default();
    for record in files.iter().flat_map(|read| &read.aborts) {
        logged.conversations.push(record.conversation_id.clone());
        if let Some(trace) = record.trace_id {
            logged.traces.push(trace.to_string());
        }
    }
    logged.conversations.sort();
    logged.conversations.dedup();
    logged.traces.sort();
    logged.traces.dedup();

    let url = &store.url;
    let window = &store.window;
    let client = http::Client::new(url);
    let dialect = dialect::detect(&client, &url.database, &url.table)?;

    let mut sql = survey::Sql::new(rules, &dialect, &url.database, &url.table);
    let count = sql.count(window);
    let mut in_window = None;
    client.each_row(
        "count of the window's spans",
        &count,
        &sql.params,
        |_, row| {
            in_window = Some(serde_json::from_slice::<WindowCount>(row)?);
            Ok(())
        },
    )?;
    let in_window = in_window.unwrap_or(WindowCount {
        spans: "0".into(),
        traces: "0".into(),
        kinds: Vec::new(),
        statuses: Vec::new(),
    });

    let input = url.describe();
    let mut sql = survey::Sql::new(rules, &dialect, &url.database, &url.table);
    let fetch = sql.fetch(window, &logged);
    let mut converter = rows::Converter::new(&input, &dialect, rules);
    client.each_row(
        "survey and read of the traces that matter",
        &fetch,
        &sql.params,
        |line, row| converter.row(line, row),
    )?;
    if dialect.attributes == Attributes::Json && !dialect.json_times_in_utc() {
        converter.parsed.diagnostics.push(Diagnostic::warning(
            &input,
            None,
            Code::InvalidValue,
            format!(
                "the server's time zone is {}: a JSON attribute column gives a value that looks like a time (a deadline header) back in it, as ClickHouse's DateTime64 text, which is read as text; such a deadline is not used (a server in UTC gives it back as an instant)",
                dialect.time_zone
            ),
        ));
    }
    if converter.at_link_depth > 0 {
        converter.parsed.diagnostics.push(Diagnostic::warning(
            &input,
            None,
            Code::LinkDepth,
            format!(
                "{} spans were reached through the last of {LINK_DEPTH} levels of span links: traces linked further from them were not read",
                converter.at_link_depth
            ),
        ));
    }
    let parsed = converter.parsed;
    let spans_in_window: u64 = in_window.spans.parse().unwrap_or(0);
    let traces: FxHashSet<TraceId> = parsed.spans.iter().map(|s| s.trace_id).collect();
    let conversations: HashSet<u64> = parsed
        .spans
        .iter()
        .filter_map(|span| conversation_id(span, rules))
        .map(|id| hash_text(&id))
        .collect();
    let transfer = client.transfer();
    let facts = StoreFacts {
        table: format!("{}.{}", url.database, url.table),
        enums: spellings(&in_window.kinds, &in_window.statuses),
        dialect,
        since: rfc3339(window.since),
        until: rfc3339(window.until),
        grace_ns: window.grace.to_string(),
        spans_in_window,
        traces_in_window: in_window.traces.parse().unwrap_or(0),
        traces_read: traces.len() as u64,
        rows_read: parsed.spans_read,
        link_depth: LINK_DEPTH,
        queries: transfer.queries,
        bytes_received: transfer.bytes,
    };
    let report = InputReport {
        path: input,
        format: Format::ClickHouse,
        compression: Compression::None,
        counts: Counts {
            lines: parsed.lines,
            // The spans audited: those that started in the window (those read are counted as
            // `lines`, rows of the answer).
            spans: spans_in_window,
            unjoinable: parsed.spans_unjoinable,
            ..Counts::default()
        },
        diagnostics: parsed.diagnostics,
        error: None,
    };
    let mut results = vec![InputRead {
        report,
        spans: parsed.spans,
        events: Vec::new(),
        aborts: Vec::new(),
    }];
    results.extend(files);
    let mut ingested = merge_inputs(results, conversations.len() as u64);
    super::consistency::check(&mut ingested, &traces);
    ingested.walk_diagnostics = walk_diagnostics;
    Ok((ingested, facts))
}

fn spellings(kinds: &[String], statuses: &[String]) -> Vec<&'static str> {
    let all = || kinds.iter().chain(statuses);
    let legacy = all().any(|v| v.starts_with("SPAN_KIND_") || v.starts_with("STATUS_CODE_"));
    let modern = all().any(|v| !v.starts_with("SPAN_KIND_") && !v.starts_with("STATUS_CODE_"));
    let mut out = Vec::new();
    if modern {
        out.push("modern");
    }
    if legacy {
        out.push("legacy");
    }
    out
}

//! Every output the tool prints: one renderer per format, each a pure function of plain data
//! (the stages' results), picked by one `match` per command.

pub mod escape;
pub mod github;
pub mod html;
pub mod json;
pub mod junit;
pub mod markdown;
pub mod sanitize;
pub mod sarif;
pub mod summary;
pub mod table;
pub mod timeline;
pub mod words;

use std::io::Write;

pub use sanitize::sanitize;
pub use summary::Summary;
pub use timeline::Timeline;

use crate::classify::{Audit, Finding, Gate, Standing};
use crate::correlate::JoinCounts;
use crate::ingest::{Ingested, StoreFacts};

/// The formats of `scan` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Json,
    Markdown,
    Junit,
    Sarif,
    Github,
    Html,
}

impl OutputFormat {
    pub const ALL: [OutputFormat; 7] = [
        OutputFormat::Table,
        OutputFormat::Json,
        OutputFormat::Markdown,
        OutputFormat::Junit,
        OutputFormat::Sarif,
        OutputFormat::Github,
        OutputFormat::Html,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Table => "table",
            OutputFormat::Json => "json",
            OutputFormat::Markdown => "markdown",
            OutputFormat::Junit => "junit",
            OutputFormat::Sarif => "sarif",
            OutputFormat::Github => "github",
            OutputFormat::Html => "html",
        }
    }

    pub fn from_name(name: &str) -> Option<OutputFormat> {
        OutputFormat::ALL.into_iter().find(|f| f.as_str() == name)
    }

    /// Whether the format draws conversations' timelines, which must be built before the
    /// spans are let go.
    pub fn needs_timelines(self) -> bool {
        matches!(self, OutputFormat::Markdown | OutputFormat::Html)
    }
}

/// The formats of `inspect` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InspectFormat {
    Table,
    Json,
}

/// What a scan report is made of.
pub struct ScanView<'a> {
    pub audit: &'a Audit,
    pub summary: &'a Summary,
    /// Where each finding stands with the gate, in the audit's order.
    pub gate: &'a Gate,
    /// The inputs as read, for their diagnostics (the spans may be gone by now).
    pub ingested: &'a Ingested,
    /// The timelines of the conversations with findings, for the formats that draw them.
    pub timelines: &'a [Timeline],
}

impl ScanView<'_> {
    /// The findings with their standing.
    pub fn findings(&self) -> impl Iterator<Item = (&Finding, &Standing)> {
        self.audit.findings.iter().zip(&self.gate.standings)
    }

    /// Why a suppressed finding is accepted: the `[[allow]]` entry.
    pub fn allow_rule(&self, standing: &Standing) -> Option<&crate::rules::AllowRule> {
        match standing {
            Standing::Suppressed { rule } => self.gate.allow.get(*rule),
            _ => None,
        }
    }
}

/// Writes a scan report to `out`. The diagnostics go on `err` for the formats that only count
/// them (table, Markdown, HTML, GitHub annotations); JSON, SARIF and JUnit carry them.
pub fn write_scan(
    format: OutputFormat,
    view: &ScanView<'_>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<()> {
    match format {
        OutputFormat::Table => {
            table::scan(view, out)?;
            print_diagnostics(view.ingested, err)
        }
        OutputFormat::Json => json::scan(view, out),
        OutputFormat::Markdown => {
            markdown::scan(view, out)?;
            print_diagnostics(view.ingested, err)
        }
        OutputFormat::Junit => junit::scan(view, out),
        OutputFormat::Sarif => sarif::scan(view, out),
        OutputFormat::Github => {
            github::scan(view, out)?;
            print_diagnostics(view.ingested, err)
        }
        OutputFormat::Html => {
            html::scan(view, out)?;
            print_diagnostics(view.ingested, err)
        }
    }
}

/// What an inspect report is made of: the inputs as read, and what joining them found.
pub struct InspectView<'a> {
    pub ingested: &'a Ingested,
    pub join: JoinCounts,
    /// Abort log records that named no turn of the traces.
    pub abort_records_unplaced: u64,
    /// What a store's reading found out (its dialect, its window), when the input is one.
    pub store: Option<&'a StoreFacts>,
}

/// Writes an inspect report, as `write_scan` does.
pub fn write_inspect(
    format: InspectFormat,
    view: &InspectView<'_>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<()> {
    match format {
        InspectFormat::Table => {
            table::inspect(view, out)?;
            print_diagnostics(view.ingested, err)
        }
        InspectFormat::Json => json::inspect(view, out),
    }
}

/// How many diagnostics a terminal shows per input before summarising the rest.
const DIAGNOSTICS_SHOWN: usize = 20;

/// Prints the inputs' diagnostics to stderr, a bounded number per input.
pub fn print_diagnostics(ingested: &Ingested, err: &mut dyn Write) -> std::io::Result<()> {
    for diagnostic in &ingested.walk_diagnostics {
        writeln!(err, "{}", sanitize(&diagnostic.to_string()))?;
    }
    for input in &ingested.inputs {
        for diagnostic in input.diagnostics.iter().take(DIAGNOSTICS_SHOWN) {
            writeln!(err, "{}", sanitize(&diagnostic.to_string()))?;
        }
        let more = input.diagnostics.len().saturating_sub(DIAGNOSTICS_SHOWN);
        if more > 0 {
            writeln!(
                err,
                "{}: … and {more} more diagnostics (--format json lists them all)",
                sanitize(&input.path)
            )?;
        }
    }
    Ok(())
}

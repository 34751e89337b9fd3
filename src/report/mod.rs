//! Every output the tool prints: one renderer per format, each a pure function of plain data
//! (the stages' results), picked by one `match` per command.

pub mod json;
pub mod sanitize;
pub mod summary;
pub mod table;
pub mod timeline;

use std::io::Write;

pub use sanitize::sanitize;
pub use summary::Summary;

use crate::classify::Audit;
use crate::correlate::JoinCounts;
use crate::ingest::Ingested;

/// The formats of `scan` and `inspect` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Json,
}

/// What a scan report is made of.
pub struct ScanView<'a> {
    pub audit: &'a Audit,
    pub summary: &'a Summary,
    /// The inputs as read, for their diagnostics (the spans may be gone by now).
    pub ingested: &'a Ingested,
}

/// Writes a scan report to `out`; a terminal format puts the diagnostics on `err`, the others
/// carry them.
pub fn write_scan(
    format: OutputFormat,
    view: &ScanView<'_>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<()> {
    match format {
        OutputFormat::Table => {
            table::scan(view.audit, view.summary, out)?;
            print_diagnostics(view.ingested, err)
        }
        OutputFormat::Json => json::scan(view.ingested, view.audit, view.summary, out),
    }
}

/// What an inspect report is made of: the inputs as read, and what joining them found.
pub struct InspectView<'a> {
    pub ingested: &'a Ingested,
    pub join: JoinCounts,
    /// Abort log records that named no turn of the traces.
    pub abort_records_unplaced: u64,
}

/// Writes an inspect report, as `write_scan` does.
pub fn write_inspect(
    format: OutputFormat,
    view: &InspectView<'_>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<()> {
    match format {
        OutputFormat::Table => {
            table::inspect(view, out)?;
            print_diagnostics(view.ingested, err)
        }
        OutputFormat::Json => json::inspect(view, out),
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

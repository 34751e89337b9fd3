//! The commands: each orchestrates the stages (ingest → correlate → classify → report) and
//! decides the exit status. One file per subcommand.

mod explain;
mod inspect;
mod progress;
mod rules;
mod scan;

use std::io::Write;

use anyhow::Result;

use crate::config::Task;
use crate::ingest::Ingested;
use crate::report::sanitize;

/// How a run ended, as the process exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// No finding at a failing level.
    Success,
    /// The gate failed: findings in a failing category.
    Failure,
    /// The tool could not do its job.
    Error,
}

impl ExitStatus {
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
            ExitStatus::Error => 2,
        }
    }
}

/// Runs a resolved task: reports to `out`, diagnostics and errors to `err`.
pub fn run(task: Task, out: &mut dyn Write, err: &mut dyn Write) -> Result<ExitStatus> {
    match task {
        Task::Rules(rules) => rules::run(&rules, out),
        Task::Inspect(config) => inspect::run(&config, out, err),
        Task::Scan(config) => scan::run(&config, out, err),
        Task::Explain(config) => explain::run(&config, out, err),
    }
}

/// An input could not be used, so there is no report: its diagnostics (which say why, often)
/// and the errors go to stderr.
fn refused(ingested: &Ingested, strict: bool, err: &mut dyn Write) -> Result<ExitStatus> {
    crate::report::print_diagnostics(ingested, err)?;
    Ok(input_status(ingested, strict, err)?.unwrap_or(ExitStatus::Error))
}

/// Prints input errors; `Some(Error)` when an input could not be used, or when `--strict` is on
/// and any input produced a diagnostic.
fn input_status(
    ingested: &Ingested,
    strict: bool,
    err: &mut dyn Write,
) -> Result<Option<ExitStatus>> {
    let mut status = None;
    for error in ingested.errors() {
        writeln!(err, "error: {}", sanitize(error))?;
        status = Some(ExitStatus::Error);
    }
    let diagnostics = ingested.diagnostics().count();
    if strict && diagnostics > 0 {
        writeln!(
            err,
            "error: {diagnostics} diagnostics in the inputs and --strict is set"
        )?;
        status = Some(ExitStatus::Error);
    }
    Ok(status)
}

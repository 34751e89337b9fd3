//! abortaudit: finds writes that landed after a user cancelled an LLM agent conversation.
//!
//! Data flows one way: inputs are read into the span model (`ingest`), spans are joined into
//! conversations, turns, aborts and the work each tool call caused (`correlate`), that work is
//! classified into findings (`classify`), and findings are printed (`report`).

pub mod classify;
pub mod cli;
pub mod config;
pub mod correlate;
pub mod ingest;
pub mod model;
pub mod report;
pub mod rules;
pub mod util;

use std::io::Write;

use anyhow::{Result, bail};

use config::{OutputFormat, Task};
use ingest::Ingested;

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
        Task::Rules(rules) => {
            out.write_all(report::rules_header().as_bytes())?;
            out.write_all(rules.to_toml().as_bytes())?;
            Ok(ExitStatus::Success)
        }
        Task::Inspect(config) => {
            let mut ingested =
                ingest::ingest_inputs(&config.sources, &config.event_sources, &config.ingest);
            if !ingested.events.is_empty() {
                let joined = correlate::join(&ingested.spans, &ingested.events, &config.rules);
                let unmatched: Vec<usize> = joined.unmatched_events.clone();
                ingested.count_unmatched_events(&unmatched);
            }
            match config.format {
                OutputFormat::Table => {
                    report::table::inspect(&ingested, out)?;
                    report::print_diagnostics(&ingested, err)?;
                }
                OutputFormat::Json => report::json::inspect(&ingested, out)?,
            }
            Ok(input_status(&ingested, config.strict, err)?.unwrap_or(ExitStatus::Success))
        }
        Task::Scan(config) => {
            let ingested = ingest::ingest_for_audit(
                &config.sources,
                &config.event_sources,
                &config.ingest,
                &config.rules,
            );
            if ingested.has_errors() {
                return input_status(&ingested, config.strict, err)
                    .map(|s| s.unwrap_or(ExitStatus::Error));
            }
            // A survey may keep no span at all (no turn was aborted); only an input with no
            // spans read leaves nothing to audit.
            if ingested.total.spans == 0 {
                bail!("no spans were read from the inputs: there is nothing to audit");
            }
            let joined = correlate::join(&ingested.spans, &ingested.events, &config.rules);
            let audit = classify::classify(&joined, &config.rules);
            let summary =
                report::Summary::new(&config.rules, &ingested, &joined, &audit, &config.fail_on);
            // The findings stand on their own: the join and the spans behind them, most of
            // the memory on a large export, are let go. Freeing every span takes a while, so
            // another thread does it while the report is written (which allocates little; the
            // peak is behind us, in the join).
            drop(joined);
            let mut ingested = ingested;
            let spans = std::mem::take(&mut ingested.spans);
            rayon::spawn(move || drop(spans));
            match config.format {
                OutputFormat::Table => {
                    report::table::scan(&audit, &summary, out)?;
                    report::print_diagnostics(&ingested, err)?;
                }
                OutputFormat::Json => report::json::scan(&ingested, &audit, &summary, out)?,
            }
            if let Some(status) = input_status(&ingested, config.strict, err)? {
                return Ok(status);
            }
            Ok(if summary.gate_failed && !config.exit_zero {
                ExitStatus::Failure
            } else {
                ExitStatus::Success
            })
        }
        Task::Explain(config) => {
            let ingested =
                ingest::ingest_inputs(&config.sources, &config.event_sources, &config.ingest);
            if ingested.has_errors() {
                return input_status(&ingested, config.strict, err)
                    .map(|s| s.unwrap_or(ExitStatus::Error));
            }
            let joined = correlate::join(&ingested.spans, &ingested.events, &config.rules);
            let audit = classify::classify(&joined, &config.rules);
            if !joined.has_conversation(&config.conversation) {
                let known = joined.conversation_ids();
                let shown: Vec<String> = known
                    .iter()
                    .take(10)
                    .map(|id| report::sanitize(id).into_owned())
                    .collect();
                let more = known.len().saturating_sub(shown.len());
                let tail = if more > 0 {
                    format!(" (and {more} more)")
                } else {
                    String::new()
                };
                bail!(
                    "no conversation {:?} in the inputs; conversations found: {}{tail}",
                    report::sanitize(&config.conversation),
                    if shown.is_empty() {
                        "none".to_owned()
                    } else {
                        shown.join(", ")
                    }
                );
            }
            report::timeline::explain(&config.conversation, &joined, &audit, out)?;
            report::print_diagnostics(&ingested, err)?;
            Ok(input_status(&ingested, config.strict, err)?.unwrap_or(ExitStatus::Success))
        }
    }
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
        writeln!(err, "error: {}", report::sanitize(error))?;
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

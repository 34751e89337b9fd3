//! `abortaudit scan`: the audit. Inputs are read (large exports in two passes, keeping only the
//! traces that matter), joined, classified and reported; the gate decides the exit status.

use std::io::Write;

use anyhow::{Result, bail};

use super::{ExitStatus, input_status, progress};
use crate::classify::Gate;
use crate::config::ScanConfig;
use crate::report::{ScanView, Summary};
use crate::{classify, correlate, ingest, report};

pub fn run(config: &ScanConfig, out: &mut dyn Write, err: &mut dyn Write) -> Result<ExitStatus> {
    let input = &config.input;
    let rules = &config.rules;
    let plan = ingest::plan(&input.inputs, &input.options);
    let progress = progress::bytes(plan.streamed_bytes());
    let first = ingest::first_pass(plan, &input.options, rules, &progress);
    let signals = first.signals(rules);
    let traces = correlate::traces_that_matter(signals.may_abort, &signals.links);
    let mut ingested = ingest::second_pass(first, traces, rules, &progress);
    progress.finish_and_clear();

    if ingested.has_errors() {
        return input_status(&ingested, input.strict, err).map(|s| s.unwrap_or(ExitStatus::Error));
    }
    // A survey may keep no span at all (no turn was aborted); only an input with no spans
    // read leaves nothing to audit.
    if ingested.total.spans == 0 {
        bail!("no spans were read from the inputs: there is nothing to audit");
    }
    let mut joined = correlate::join(&ingested.spans, &ingested.events, rules);
    let unplaced = correlate::place_aborts(&mut joined, &ingested.aborts, rules.skew_ns());
    let audit = classify::classify(&joined, rules);
    let gate = Gate::judge(&audit, &config.fail_on, rules.gate.inferred_aborts);
    let summary = Summary::new(&ingested, &joined, &audit, &gate, unplaced.len());
    // The findings stand on their own: the join and the spans behind them, most of the memory
    // on a large export, are let go. Freeing every span takes a while, so another thread does
    // it while the report is written (which allocates little; the peak is behind us, in the
    // join).
    drop(joined);
    let spans = std::mem::take(&mut ingested.spans);
    rayon::spawn(move || drop(spans));

    let view = ScanView {
        audit: &audit,
        summary: &summary,
        ingested: &ingested,
    };
    report::write_scan(config.format, &view, out, err)?;
    if let Some(status) = input_status(&ingested, input.strict, err)? {
        return Ok(status);
    }
    Ok(if gate.failed && !config.exit_zero {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

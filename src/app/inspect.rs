//! `abortaudit inspect`: what was read from each input, to check that an export is understood.

use std::io::Write;

use anyhow::Result;

use super::{ExitStatus, input_status};
use crate::config::InspectConfig;
use crate::{correlate, ingest, report};

pub fn run(config: &InspectConfig, out: &mut dyn Write, err: &mut dyn Write) -> Result<ExitStatus> {
    let input = &config.input;
    let rules = &config.rules;
    let (mut ingested, store) = match &input.store {
        Some(store) => {
            let (ingested, facts) =
                ingest::read_store(store, &input.inputs, &input.options, rules)?;
            (ingested, Some(facts))
        }
        None => (
            ingest::ingest_inputs(&input.inputs, &input.options, rules),
            None,
        ),
    };
    let mut joined = correlate::join(&ingested.spans, &ingested.events, rules);
    let unplaced = correlate::place_aborts(&mut joined, &ingested.aborts, rules.skew_ns());
    let join = joined.counts();
    // How many vendor events joined no tool call: their keys are probably not on the spans.
    let unmatched = joined.unmatched_events.clone();
    drop(joined);
    ingested.count_unmatched_events(&unmatched);
    let view = report::InspectView {
        ingested: &ingested,
        join,
        abort_records_unplaced: unplaced.len() as u64,
        store: store.as_ref(),
    };
    report::write_inspect(config.format, &view, out, err)?;
    Ok(input_status(&ingested, input.strict, err)?.unwrap_or(ExitStatus::Success))
}

//! `abortaudit inspect`: what was read from each input, to check that an export is understood.

use std::io::Write;

use anyhow::Result;

use super::{ExitStatus, input_status};
use crate::config::InspectConfig;
use crate::{correlate, ingest, report};

pub fn run(config: &InspectConfig, out: &mut dyn Write, err: &mut dyn Write) -> Result<ExitStatus> {
    let input = &config.input;
    let mut ingested = ingest::ingest_inputs(
        &input.sources,
        &input.event_sources,
        &input.options,
        &config.rules,
    );
    // How many vendor events joined no tool call: their keys are probably not on the spans.
    if !ingested.events.is_empty() {
        let joined = correlate::join(&ingested.spans, &ingested.events, &config.rules);
        let unmatched = joined.unmatched_events.clone();
        ingested.count_unmatched_events(&unmatched);
    }
    report::write_inspect(config.format, &ingested, out, err)?;
    Ok(input_status(&ingested, input.strict, err)?.unwrap_or(ExitStatus::Success))
}

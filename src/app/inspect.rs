//! `abortaudit inspect`: what was read from each input, to check that an export is understood.
//! A large OTLP/JSON Lines export is read in two passes, as `scan` reads it: a survey, then
//! every span read back a group of conversations at a time, joined, counted and let go
//! (`ingest::FirstPass::read_by_conversation`), so that memory follows a group of
//! conversations, not the file, and the counts are a whole read's.

use std::io::Write;

use anyhow::Result;

use super::{ExitStatus, input_status, progress};
use crate::config::InspectConfig;
use crate::correlate::JoinCounts;
use crate::{correlate, ingest, report};

pub fn run(config: &InspectConfig, out: &mut dyn Write, err: &mut dyn Write) -> Result<ExitStatus> {
    let input = &config.input;
    let rules = &config.rules;
    let (mut ingested, join, unplaced, unmatched, store) = match &input.store {
        Some(store) => {
            let (ingested, facts) =
                ingest::read_store(store, &input.inputs, &input.options, rules)?;
            let (join, unplaced, unmatched) = join_whole(&ingested, rules);
            (ingested, join, unplaced, unmatched, Some(facts))
        }
        None => {
            let plan = ingest::plan(&input.inputs, &input.options);
            let progress = progress::bytes(plan.streamed_bytes());
            let first = ingest::first_pass_by_conversation(plan, &input.options, rules, &progress);
            let read = if first.read_in_two_passes() {
                let mut join = JoinCounts::default();
                let mut unplaced = 0;
                let group = input.options.inspect_group;
                let ingested = first.read_by_conversation(rules, group, &progress, |group| {
                    let mut joined = correlate::join(&group.spans, &group.events, rules);
                    unplaced +=
                        correlate::place_aborts(&mut joined, &group.aborts, rules.skew_ns()).len();
                    join.add(&joined.counts());
                });
                // (No vendor event log is read with two passes: there is none to leave
                // unmatched.)
                (ingested, join, unplaced, Vec::new(), None)
            } else {
                let ingested = ingest::second_pass(first, Default::default(), rules, &progress);
                let (join, unplaced, unmatched) = join_whole(&ingested, rules);
                (ingested, join, unplaced, unmatched, None)
            };
            progress.finish_and_clear();
            read
        }
    };
    ingested.count_unmatched_events(&unmatched);
    let view = report::InspectView {
        ingested: &ingested,
        join,
        abort_records_unplaced: unplaced as u64,
        store: store.as_ref(),
    };
    report::write_inspect(config.format, &view, out, err)?;
    Ok(input_status(&ingested, input.strict, err)?.unwrap_or(ExitStatus::Success))
}

/// The join of inputs read whole, counted: its counts, how many abort records found no turn,
/// and which vendor events joined no tool call (their keys are probably not on the spans).
fn join_whole(
    ingested: &ingest::Ingested,
    rules: &crate::rules::Rules,
) -> (JoinCounts, usize, Vec<usize>) {
    let mut joined = correlate::join(&ingested.spans, &ingested.events, rules);
    let unplaced = correlate::place_aborts(&mut joined, &ingested.aborts, rules.skew_ns());
    (joined.counts(), unplaced.len(), joined.unmatched_events)
}

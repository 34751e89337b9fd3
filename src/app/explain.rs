//! `abortaudit explain`: one conversation as a timeline around its abort.

use std::io::Write;

use anyhow::{Result, bail};

use super::{ExitStatus, input_status, progress, refused};
use crate::config::ExplainConfig;
use crate::report::sanitize;
use crate::{classify, correlate, ingest, report};

/// How many of the known conversations an unknown id's error lists.
const KNOWN_SHOWN: usize = 10;

pub fn run(config: &ExplainConfig, out: &mut dyn Write, err: &mut dyn Write) -> Result<ExitStatus> {
    let input = &config.input;
    let rules = &config.rules;
    // A large export is read in two passes, as `scan` reads it, keeping the traces of the
    // conversation and those linked into them: memory follows the conversation, not the file.
    let plan = ingest::plan(&input.inputs, &input.options);
    let progress = progress::bytes(plan.streamed_bytes());
    let first = ingest::first_pass_by_conversation(plan, &input.options, rules, &progress);
    let two_passes = first.read_in_two_passes();
    // (Read whole too, these are the traces whose spans are checked for times and parents
    // the model cannot hold, as `scan` checks the traces that matter.)
    let traces = first.traces_of_conversation(&config.conversation, rules);
    let traces = correlate::traces_that_matter(traces, &first.signals(rules).links);
    let ingested = ingest::second_pass_in_full(first, traces, rules, &progress);
    progress.finish_and_clear();
    if ingested.has_errors() {
        return refused(&ingested, input.strict, err);
    }
    let mut joined = correlate::join(&ingested.spans, &ingested.events, rules);
    correlate::place_aborts(&mut joined, &ingested.aborts, rules.skew_ns());
    if !joined.has_conversation(&config.conversation) && two_passes {
        // Only the traces of the conversation asked for were read back: the others' ids are
        // not known, only how many there are.
        bail!(
            "no conversation {:?} in the inputs; they name {} conversations (`abortaudit scan` lists those with findings)",
            sanitize(&config.conversation),
            ingested.conversations
        );
    }
    if !joined.has_conversation(&config.conversation) {
        let known = joined.conversation_ids();
        let shown: Vec<String> = known
            .iter()
            .take(KNOWN_SHOWN)
            .map(|id| sanitize(id).into_owned())
            .collect();
        let more = known.len().saturating_sub(shown.len());
        let tail = if more > 0 {
            format!(" (and {more} more)")
        } else {
            String::new()
        };
        bail!(
            "no conversation {:?} in the inputs; conversations found: {}{tail}",
            sanitize(&config.conversation),
            if shown.is_empty() {
                "none".to_owned()
            } else {
                shown.join(", ")
            }
        );
    }
    let audit = classify::classify(&joined, &config.rules);
    if let Some(timeline) = report::Timeline::build(&config.conversation, &joined, &audit) {
        report::timeline::explain(&timeline, out)?;
    }
    report::print_diagnostics(&ingested, err)?;
    Ok(input_status(&ingested, input.strict, err)?.unwrap_or(ExitStatus::Success))
}

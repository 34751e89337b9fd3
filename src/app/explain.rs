//! `abortaudit explain`: one conversation as a timeline around its abort.

use std::io::Write;

use anyhow::{Result, bail};

use super::{ExitStatus, input_status, refused};
use crate::config::ExplainConfig;
use crate::report::sanitize;
use crate::{classify, correlate, ingest, report};

/// How many of the known conversations an unknown id's error lists.
const KNOWN_SHOWN: usize = 10;

pub fn run(config: &ExplainConfig, out: &mut dyn Write, err: &mut dyn Write) -> Result<ExitStatus> {
    let input = &config.input;
    if input.store.is_some() {
        bail!(
            "explain reads files; for a store, `scan --format html` (or markdown) draws the timeline of each conversation with findings"
        );
    }
    let ingested = ingest::ingest_inputs(&input.inputs, &input.options, &config.rules);
    if ingested.has_errors() {
        return refused(&ingested, input.strict, err);
    }
    let mut joined = correlate::join(&ingested.spans, &ingested.events, &config.rules);
    correlate::place_aborts(&mut joined, &ingested.aborts, config.rules.skew_ns());
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

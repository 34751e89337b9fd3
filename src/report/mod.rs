//! Every output the tool prints. One file per format; this module holds what they share.

pub mod json;
pub mod table;
pub mod timeline;

use std::borrow::Cow;

/// Makes text from an input safe to print on a terminal: control characters (C0, DEL, C1),
/// which include the ESC that starts every terminal escape sequence, and the Unicode
/// bidirectional overrides that can reorder what a reader sees, are shown as `\u{…}` escapes.
pub fn sanitize(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| {
        c.is_control() && c != ' '
            || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
    };
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_neutralises_escapes_and_bidi_overrides() {
        assert_eq!(sanitize("plain name"), "plain name");
        assert_eq!(sanitize("red\x1b[31mtext"), "red\\u{1b}[31mtext");
        assert_eq!(sanitize("a\nb\tc"), "a\\u{a}b\\u{9}c");
        assert_eq!(sanitize("x\u{202E}y"), "x\\u{202e}y");
        assert_eq!(sanitize("c1\u{9b}31m"), "c1\\u{9b}31m");
    }
}

// ---------------------------------------------------------------------------------------------
// What every scan report shows, computed once.

use std::io::Write;

use crate::classify::Audit;
use crate::correlate::Joined;
use crate::ingest::Ingested;
use crate::model::Category;

/// The summary of a scan, shared by every output format.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub inputs: usize,
    pub spans: u64,
    pub conversations: u64,
    pub aborted_turns: u64,
    pub tool_calls_at_risk: u64,
    /// Findings per category, every category present.
    pub by_category: Vec<(Category, u64)>,
    pub late_writes: u64,
    pub ambiguous: u64,
    pub committed_before_abort: u64,
    pub vendor_events: u64,
    /// Vendor events no tool call's keys matched.
    pub unmatched_vendor_events: u64,
    pub diagnostics: usize,
    pub fail_on: Vec<Category>,
    pub gate_failed: bool,
}

impl Summary {
    pub fn new(
        rules: &crate::rules::Rules,
        ingested: &Ingested,
        joined: &Joined<'_>,
        audit: &Audit,
        fail_on: &[Category],
    ) -> Summary {
        let count = |c: Category| audit.findings.iter().filter(|f| f.category == c).count() as u64;
        Summary {
            inputs: ingested.inputs.len(),
            spans: ingested.total.spans,
            conversations: conversations(ingested, joined, rules),
            aborted_turns: audit.aborted_turns,
            tool_calls_at_risk: audit.tool_calls_at_risk,
            by_category: Category::ALL.iter().map(|c| (*c, count(*c))).collect(),
            late_writes: audit.findings.iter().filter(|f| f.late).count() as u64,
            ambiguous: audit.findings.iter().filter(|f| f.ambiguous).count() as u64,
            committed_before_abort: audit.committed_before_abort,
            vendor_events: ingested.events.len() as u64,
            unmatched_vendor_events: joined.unmatched_events.len() as u64,
            diagnostics: ingested.diagnostics().count(),
            fail_on: fail_on.to_vec(),
            gate_failed: audit.findings.iter().any(|f| fail_on.contains(&f.category)),
        }
    }

    /// The summary as a few lines of prose (under 100 columns), for terminals and postmortems.
    pub fn lines(&self) -> Vec<String> {
        // Late writes first: they are what a reader is looking for.
        let order = [
            Category::ClientGone,
            Category::LateQueued,
            Category::DispatchedAfterAbort,
            Category::Unverified,
            Category::PreCommitAbort,
        ];
        let counts: Vec<String> = order
            .iter()
            .filter_map(|c| {
                let n = self
                    .by_category
                    .iter()
                    .find(|(k, _)| k == c)
                    .map_or(0, |(_, n)| *n);
                (n > 0).then(|| format!("{c} {n}"))
            })
            .collect();
        let findings: u64 = self.by_category.iter().map(|(_, n)| n).sum();
        let mut lines = vec![format!(
            "{} conversations · {} aborted turns · {} tool calls at risk · {} writes committed before the abort",
            self.conversations,
            self.aborted_turns,
            self.tool_calls_at_risk,
            self.committed_before_abort
        )];
        lines.push(if findings > 0 {
            format!("{findings} findings: {}", counts.join(", "))
        } else {
            "0 findings".to_owned()
        });
        let late = match self.ambiguous {
            0 => format!("{} late writes.", self.late_writes),
            n => format!("{} late writes, {n} ambiguous.", self.late_writes),
        };
        let gate = if self.fail_on.is_empty() {
            "Gate: off (--fail-on none).".to_owned()
        } else {
            let names: Vec<&str> = self.fail_on.iter().map(|c| c.as_str()).collect();
            format!(
                "Gate: {} (fails on {}).",
                if self.gate_failed { "FAILED" } else { "passed" },
                names.join(", ")
            )
        };
        if self.vendor_events > 0 {
            lines.push(format!(
                "{} vendor events read, {} joined to no tool call{}",
                self.vendor_events,
                self.unmatched_vendor_events,
                if self.unmatched_vendor_events > 0 {
                    " (are their keys captured on the spans? see `abortaudit inspect`)"
                } else {
                    ""
                }
            ));
        }
        lines.push(late);
        lines.push(gate);
        lines
    }
}

/// Conversations in the inputs: the distinct conversation ids any span names (counted by the
/// survey for inputs it did not keep whole), plus each trace with an aborted agent turn and no
/// conversation id, which is a conversation of its own.
fn conversations(ingested: &Ingested, joined: &Joined<'_>, rules: &crate::rules::Rules) -> u64 {
    let named = ingested.surveyed_conversation_ids.unwrap_or_else(|| {
        let keys = &rules.conversation.id_attributes;
        let ids: std::collections::HashSet<u64> = ingested
            .spans
            .iter()
            .filter_map(|span| crate::ingest::conversation_hash(span, keys))
            .collect();
        ids.len() as u64
    });
    let unnamed_aborted = joined
        .conversations
        .iter()
        .filter(|c| c.source == crate::correlate::ConversationSource::Trace)
        .filter(|c| c.turns.iter().any(|t| joined.turns[*t].abort.is_some()))
        .count() as u64;
    named + unnamed_aborted
}

/// How many diagnostics a terminal shows per input before summarising the rest.
const DIAGNOSTICS_SHOWN: usize = 20;

/// Prints the inputs' diagnostics to stderr, a bounded number per input.
pub fn print_diagnostics(ingested: &Ingested, err: &mut dyn Write) -> std::io::Result<()> {
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

pub fn rules_header() -> &'static str {
    "# abortaudit detection rules (the effective ones).\n\
     # Save as abortaudit.toml and edit; every key is optional and unknown keys are errors.\n\n"
}

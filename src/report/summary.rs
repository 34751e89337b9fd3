//! What every scan report shows, computed once from the stages' results.

use super::sanitize;
use crate::classify::{Audit, Gate};
use crate::correlate::{JoinCounts, JoinFacts};
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
    /// Whether findings of turns whose abort is only inferred count for the gate.
    pub gate_inferred_aborts: bool,
    /// Aborted turns by what shows the Stop, tool calls and nested tool spans.
    pub join: JoinCounts,
    /// Records read from abort logs, and those no turn took.
    pub abort_records: u64,
    pub abort_records_unplaced: u64,
    /// Findings an `[[allow]]` entry accepts, and findings the baseline had.
    pub suppressed: u64,
    pub known: u64,
    /// `[[allow]]` entries past their `until`.
    pub allow_expired: u64,
    /// The baseline's name and the findings it had, did not have, and had that are gone.
    pub baseline: Option<BaselineCounts>,
    /// Late writes a reversing write followed (a refund, a delete).
    pub compensated: u64,
    /// Tools with late writes and no cancellation protocol, and whether they fail the gate.
    pub unprotected_tools: Vec<String>,
    pub fail_on_unprotected_tools: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BaselineCounts {
    pub input: String,
    pub known: u64,
    pub new: u64,
    pub gone: u64,
}

impl Summary {
    pub fn new(
        ingested: &Ingested,
        joined: &JoinFacts,
        audit: &Audit,
        gate: &Gate,
        abort_records_unplaced: usize,
    ) -> Summary {
        let count = |c: Category| audit.findings.iter().filter(|f| f.category == c).count() as u64;
        Summary {
            inputs: ingested.inputs.len(),
            spans: ingested.total.spans,
            conversations: ingested.conversations + joined.unnamed_aborted_conversations,
            aborted_turns: audit.aborted_turns,
            tool_calls_at_risk: audit.tool_calls_at_risk,
            by_category: Category::ALL.iter().map(|c| (*c, count(*c))).collect(),
            late_writes: audit.findings.iter().filter(|f| f.late).count() as u64,
            ambiguous: audit.findings.iter().filter(|f| f.ambiguous).count() as u64,
            committed_before_abort: audit.committed_before_abort,
            vendor_events: ingested.events.len() as u64,
            unmatched_vendor_events: joined.unmatched_events,
            diagnostics: ingested.diagnostics().count(),
            fail_on: gate.fail_on.clone(),
            gate_failed: gate.failed,
            gate_inferred_aborts: gate.inferred_aborts,
            join: joined.counts,
            abort_records: ingested.aborts.len() as u64,
            abort_records_unplaced: abort_records_unplaced as u64,
            suppressed: gate.count("suppressed"),
            known: gate.count("known"),
            allow_expired: gate.expired.len() as u64,
            baseline: gate.baseline.as_ref().map(|b| BaselineCounts {
                input: b.input.clone(),
                known: b.known,
                new: b.new,
                gone: b.gone.len() as u64,
            }),
            compensated: audit
                .findings
                .iter()
                .filter(|f| f.late && f.compensated.is_some())
                .count() as u64,
            unprotected_tools: gate.unprotected_tools.clone(),
            fail_on_unprotected_tools: gate.fail_on_unprotected_tools,
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
        let join = &self.join;
        if join.aborted_by_log + join.aborted_inferred > 0 {
            lines.push(format!(
                "aborted turns by what shows the Stop: {} recorded by a span, {} by the abort log, {} inferred from the app's server{}",
                join.aborted_recorded,
                join.aborted_by_log,
                join.aborted_inferred,
                if join.aborted_inferred > 0 && !self.gate_inferred_aborts {
                    " (not gating)"
                } else {
                    ""
                }
            ));
        }
        if self.abort_records > 0 {
            lines.push(format!(
                "{} abort log records read, {} named no turn of the traces",
                self.abort_records, self.abort_records_unplaced
            ));
        }
        if join.aborted_nested_tool_spans > 0 {
            lines.push(format!(
                "{} tool calls in the aborted turns; {} more tool spans there are parts of an outer call",
                join.aborted_tool_calls, join.aborted_nested_tool_spans
            ));
        }
        lines.push(if findings > 0 {
            format!("{findings} findings: {}", counts.join(", "))
        } else {
            "0 findings".to_owned()
        });
        if self.suppressed + self.known > 0 {
            let mut parts = Vec::new();
            if self.suppressed > 0 {
                parts.push(format!(
                    "{} suppressed by [[allow]] entries",
                    self.suppressed
                ));
            }
            if self.known > 0 {
                parts.push(format!("{} known from the baseline", self.known));
            }
            lines.push(format!("{}: they do not fail the gate", parts.join(", ")));
        }
        if let Some(b) = &self.baseline {
            lines.push(format!(
                "baseline {}: {} findings known, {} new, {} of its findings gone",
                sanitize(&b.input),
                b.known,
                b.new,
                b.gone
            ));
        }
        if self.allow_expired > 0 {
            lines.push(format!(
                "{} [[allow]] entries are past their `until` and no longer suppress",
                self.allow_expired
            ));
        }
        if !self.unprotected_tools.is_empty() {
            lines.push(format!(
                "tools with late writes and no cancellation protocol (no commit check, deadline or cancel seen): {}{}",
                self.unprotected_tools
                    .iter()
                    .map(|t| short(&sanitize(t)))
                    .collect::<Vec<_>>()
                    .join(", "),
                if self.fail_on_unprotected_tools {
                    " (they fail the gate)"
                } else {
                    ""
                }
            ));
        }
        let mut late = format!("{} late writes", self.late_writes);
        if self.ambiguous > 0 {
            late.push_str(&format!(", {} ambiguous", self.ambiguous));
        }
        if self.compensated > 0 {
            late.push_str(&format!(", {} compensated", self.compensated));
        }
        late.push('.');
        let gate = if self.fail_on.is_empty() && !self.fail_on_unprotected_tools {
            "Gate: off (--fail-on none).".to_owned()
        } else {
            let mut on = self
                .fail_on
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            if self.fail_on_unprotected_tools {
                if !on.is_empty() {
                    on.push_str(", and on ");
                }
                on.push_str("tools with late writes and no cancellation protocol");
            }
            format!(
                "Gate: {} (fails on {on}).",
                if self.gate_failed { "FAILED" } else { "passed" },
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

/// A name from the inputs in a line of prose: whole up to 60 characters, else cut with `…`
/// (JSON has it whole).
fn short(name: &str) -> String {
    const MAX: usize = 60;
    if name.chars().count() <= MAX {
        name.to_owned()
    } else {
        let kept: String = name.chars().take(MAX - 1).collect();
        format!("{kept}…")
    }
}

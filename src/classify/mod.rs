//! Deciding what happened to each write a tool call caused, against the abort of its turn.
//! Pure functions over the joined spans: no I/O here.

mod gate;
mod judge;
mod prevention;
mod vendor_writes;
mod writes;

use std::collections::HashSet;

use crate::correlate::Joined;
use crate::model::{Category, Origin, SpanId, TraceId};
use crate::rules::Rules;
pub use gate::{Gate, GatePolicy, Standing};
use judge::{AbortedCall, Judgement};
use prevention::CallEvidence;
pub use prevention::{
    CallProtocols, Compensation, Mechanism, Prevention, ProtocolRow, UNKNOWN_SERVICE, by_service,
    by_tool,
};
use vendor_writes::add_event_writes;
use writes::{WriteOutcome, writes_of};

#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// A fingerprint of the ids involved (never of times), stable across runs and exports.
    pub id: String,
    /// A fingerprint of what a person would call the same problem (the tool, the service and
    /// operation or vendor event type written, the category), stable across runs whose trace
    /// and span ids all differ: what suppressions and baselines match.
    pub signature: String,
    pub category: Category,
    pub late: bool,
    pub ambiguous: bool,
    pub conversation_id: String,
    pub trace_id: TraceId,
    pub abort: AbortInfo,
    pub tool_call: ToolCallInfo,
    pub write: Option<WriteInfo>,
    /// How the write was reached from the tool call: `parent`, `link`, or the key a vendor
    /// event was joined on (`idempotency_key`, …; `conversation_id (weak)`).
    /// `None` when no downstream write was found (`unverified`, a dispatched call with no write).
    pub join: Option<String>,
    pub evidence: Vec<String>,
    /// What would have stopped the write: one entry per mechanism, in `Mechanism::ALL`'s order.
    pub prevention: Vec<Prevention>,
    /// A reversing write after it (a refund after a charge): the finding stands, compensated.
    pub compensated: Option<Compensation>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AbortInfo {
    pub time: u64,
    pub signal: String,
    /// No span and no abort log records the Stop; the agent app's server shows the user left.
    pub inferred: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ToolCallInfo {
    pub span_id: SpanId,
    pub name: String,
    pub tool_call_id: Option<String>,
    pub start: u64,
    pub end: Option<u64>,
    /// Where the tool span was read.
    pub origin: Origin,
}

#[derive(Clone, Debug, PartialEq)]
pub struct WriteInfo {
    /// The service whose span shows the write, or the vendor whose event does.
    pub service: String,
    pub operation: String,
    pub span_id: Option<SpanId>,
    pub event_id: Option<String>,
    /// When the write committed (or rolled back, for `pre_commit_abort`); `None` if unknown.
    pub commit_time: Option<u64>,
    /// The commit time is a write-method server span's end, not a recorded commit.
    pub inferred: bool,
    /// How coarse the commit time is (1 ns for spans, 1 s for Stripe's `created`).
    pub precision: u64,
    /// Where the span or event that shows the write was read.
    pub origin: Origin,
}

impl Finding {
    /// Commit time minus abort time, in nanoseconds.
    pub fn delay_ns(&self) -> Option<i128> {
        self.write
            .as_ref()
            .and_then(|w| w.commit_time)
            .map(|c| i128::from(c) - i128::from(self.abort.time))
    }
}

/// The audit's result.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Audit {
    pub findings: Vec<Finding>,
    /// Every aborted turn, with or without findings, in conversation order.
    pub turns: Vec<AbortedTurn>,
    pub aborted_turns: u64,
    pub tool_calls_at_risk: u64,
    /// Writes of at-risk tool calls that committed before the abort: fine, but counted.
    pub committed_before_abort: u64,
    /// Every tool call of the aborted turns (at risk, or sent after the abort) with the
    /// mechanisms it had, in the order judged.
    pub calls: Vec<CallProtocols>,
}

impl Audit {
    /// How many calls of each tool had each mechanism.
    pub fn protocols_by_tool(&self) -> Vec<ProtocolRow> {
        by_tool(&self.calls)
    }

    /// How many calls reaching each downstream service had each mechanism.
    pub fn protocols_by_service(&self) -> Vec<ProtocolRow> {
        by_service(&self.calls)
    }
}

/// An aborted turn, named as a person finds it: its conversation and its place there.
#[derive(Clone, Debug, PartialEq)]
pub struct AbortedTurn {
    pub conversation_id: String,
    /// 1 for the conversation's first turn.
    pub number: usize,
    pub trace_id: TraceId,
    pub abort: AbortInfo,
}

pub fn classify(joined: &Joined<'_>, rules: &Rules) -> Audit {
    let mut audit = Audit::default();
    let skew = rules.skew_ns();
    let margin = rules.in_flight_margin_ns();
    for turn in &joined.turns {
        let Some(abort) = &turn.abort else { continue };
        audit.aborted_turns += 1;
        let conversation = &joined.conversations[turn.conversation];
        let conversation_id = &conversation.id;
        audit.turns.push(AbortedTurn {
            conversation_id: conversation_id.clone(),
            number: 1 + conversation
                .turns
                .iter()
                .position(|t| std::ptr::eq(&joined.turns[*t], turn))
                .unwrap_or(0),
            trace_id: turn.trace_id,
            abort: AbortInfo {
                time: abort.time,
                signal: abort.signal.clone(),
                inferred: abort.inferred(),
            },
        });
        // What started after this was sent after the Stop. A span's abort is on the agent's
        // own clock; an abort log's comes from the front end's, which may be ahead by the
        // skew, and is as coarse as its precision.
        let sent_after = match abort.span {
            None => abort.time.saturating_add(skew + abort.precision),
            Some(_) => abort.time,
        };
        for tool in &turn.tool_calls {
            let tool_span = &joined.spans[tool.span];
            let dispatched = tool_span.start >= sent_after;
            if !dispatched {
                audit.tool_calls_at_risk += 1;
            }
            let mut writes = writes_of(joined, tool, rules);
            add_event_writes(joined, tool, &mut writes);
            let evidence = CallEvidence::new(joined, turn, tool, abort, rules);
            for write in &mut writes {
                evidence.apply_cancel(write);
            }
            let mut found: Vec<Finding> = Vec::new();
            let mut note = |mut finding: Finding, write: Option<&writes::Write>| {
                evidence.annotate(&mut finding, write);
                found.push(finding);
            };
            let context = AbortedCall {
                joined,
                turn,
                tool,
                conversation_id,
                abort,
                skew,
            };
            // Outbound requests the runtime sent after the abort.
            let late_requests: HashSet<usize> = tool
                .downstream
                .iter()
                .filter(|r| r.outbound == Some(r.span) && joined.spans[r.span].start >= sent_after)
                .map(|r| r.span)
                .collect();
            let mut reported_requests = HashSet::new();
            for write in &writes {
                let request_after_abort =
                    write.outbound.is_some_and(|o| late_requests.contains(&o));
                if dispatched || request_after_abort {
                    if let Some(o) = write.outbound {
                        reported_requests.insert(o);
                    }
                    if matches!(write.outcome, WriteOutcome::RolledBack { .. }) {
                        continue;
                    }
                    note(
                        context.dispatched(Some(write), request_after_abort),
                        Some(write),
                    );
                    continue;
                }
                match context.judge(write) {
                    Judgement::Before => audit.committed_before_abort += 1,
                    Judgement::Unrelated => {}
                    Judgement::Finding(f) => note(*f, Some(write)),
                }
            }
            if dispatched && writes.is_empty() {
                note(context.dispatched(None, false), None);
            } else {
                let mut late: Vec<usize> = late_requests
                    .difference(&reported_requests)
                    .copied()
                    .collect();
                late.sort_unstable();
                for request in late {
                    note(context.dispatched_request(request), None);
                }
                if writes.is_empty()
                    && !dispatched
                    && let Some(f) = context.unverified(margin)
                {
                    note(f, None);
                }
            }
            audit.calls.push(evidence.protocols(dispatched, &found));
            audit.findings.append(&mut found);
        }
    }
    audit.sort();
    audit
}

impl Audit {
    /// Turns and findings in the order reports show them: by conversation, then time.
    pub fn sort(&mut self) {
        self.turns
            .sort_by(|a, b| (&a.conversation_id, a.number).cmp(&(&b.conversation_id, b.number)));
        self.findings.sort_by(|a, b| {
            (
                &a.conversation_id,
                a.abort.time,
                a.tool_call.start,
                a.write.as_ref().and_then(|w| w.commit_time),
                a.category,
                &a.id,
            )
                .cmp(&(
                    &b.conversation_id,
                    b.abort.time,
                    b.tool_call.start,
                    b.write.as_ref().and_then(|w| w.commit_time),
                    b.category,
                    &b.id,
                ))
        });
    }

    /// Adds the audit of another group of whole conversations (a large export is classified
    /// a group at a time); `sort` once they are all in gives what `classify` gives of them
    /// all. A conversation's findings come from one group, in the order judged there, so
    /// sorting them together keeps the order of ties; the calls are only counted (`by_tool`,
    /// `by_service`), in any order.
    pub fn add(&mut self, mut part: Audit) {
        // Grown exactly: these hold most of what a scan keeps of a group, and doubling would
        // leave up to half of them unused.
        self.findings.reserve_exact(part.findings.len());
        self.findings.append(&mut part.findings);
        self.turns.reserve_exact(part.turns.len());
        self.turns.append(&mut part.turns);
        self.calls.reserve_exact(part.calls.len());
        self.calls.append(&mut part.calls);
        self.aborted_turns += part.aborted_turns;
        self.tool_calls_at_risk += part.tool_calls_at_risk;
        self.committed_before_abort += part.committed_before_abort;
    }
}

#[cfg(test)]
mod prevention_tests;
#[cfg(test)]
mod tests;

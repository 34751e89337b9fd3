//! Judging a write against the abort of its turn: before it, after it (and on which path), or
//! too close to tell; and the findings of calls dispatched after the abort or left unverified.

use super::writes::{Write, WriteOutcome, WriteSource};
use super::{AbortInfo, Finding, ToolCallInfo, WriteInfo};
use crate::correlate::{Abort, Joined, ToolCall, Turn, Via};
use crate::model::ids::{fingerprint, signature};
use crate::model::{Category, Span, SpanKind};
use crate::rules::evidence::{http_method, http_status, is_http, same_clock};
use crate::util::units::human_gap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Order {
    Before,
    Ambiguous,
    After,
}

pub(super) enum Judgement {
    Before,
    Unrelated,
    Finding(Box<Finding>),
}

pub(super) struct AbortedCall<'a, 's> {
    pub(super) joined: &'a Joined<'s>,
    pub(super) turn: &'a Turn,
    pub(super) tool: &'a ToolCall,
    pub(super) conversation_id: &'a str,
    pub(super) abort: &'a Abort,
    pub(super) skew: u64,
}

impl AbortedCall<'_, '_> {
    fn span(&self, i: usize) -> &Span {
        &self.joined.spans[i]
    }

    /// The skew tolerated between the write's clock and the abort's: none on the same host
    /// (span timestamps are exact to the nanosecond), the configured skew across hosts, and
    /// a vendor's clock is always another host's.
    fn tolerance(&self, write: &Write) -> u64 {
        match write.source {
            WriteSource::Span(i)
                if self
                    .abort
                    .span
                    .is_some_and(|a| same_clock(self.span(i), self.span(a))) =>
            {
                0
            }
            _ => self.skew,
        }
    }

    /// Where a time with the given precision and tolerance falls against the abort. The true
    /// times lie in `[time, time + precision)` and `[abort, abort + its precision)`, give or
    /// take the tolerance.
    fn order(&self, time: u64, precision: u64, tolerance: u64) -> Order {
        let abort = self.abort.time;
        let abort_latest = abort.saturating_add(self.abort.precision.max(1) - 1);
        if time
            .saturating_add(precision.max(1))
            .saturating_add(tolerance)
            <= abort
        {
            Order::Before
        } else if time > abort_latest.saturating_add(tolerance) {
            Order::After
        } else {
            Order::Ambiguous
        }
    }

    pub(super) fn judge(&self, write: &Write) -> Judgement {
        let tolerance = self.tolerance(write);
        let abort = self.abort.time;
        let mut evidence = write.evidence.clone();
        match write.outcome {
            WriteOutcome::Committed { time, inferred } => {
                let order = self.order(time, write.precision, tolerance);
                if order == Order::Before {
                    return Judgement::Before;
                }
                let ambiguous = order == Order::Ambiguous;
                let category = if write.queued {
                    Category::LateQueued
                } else {
                    Category::ClientGone
                };
                if ambiguous {
                    let gap = if time >= abort {
                        format!("{} after", human_gap(time - abort))
                    } else {
                        format!("{} before", human_gap(abort - time))
                    };
                    evidence.push(if write.precision > 1 {
                        format!(
                            "the commit time ({gap} the abort) is only known to {} (plus {} of clock skew), so its order against the abort cannot be told",
                            human_gap(write.precision),
                            human_gap(tolerance)
                        )
                    } else {
                        format!(
                            "the commit is {gap} the abort, within the {} tolerance for clocks of different hosts, so its order against the abort cannot be told",
                            human_gap(tolerance)
                        )
                    });
                }
                if category == Category::ClientGone {
                    evidence.extend(self.client_gone_evidence(write));
                }
                Judgement::Finding(Box::new(self.finding(
                    category,
                    ambiguous,
                    Some(write),
                    Some((time, inferred)),
                    evidence,
                )))
            }
            WriteOutcome::RolledBack { time, inferred } => {
                if self.order(time, write.precision, tolerance) == Order::Before {
                    return Judgement::Unrelated;
                }
                Judgement::Finding(Box::new(self.finding(
                    Category::PreCommitAbort,
                    false,
                    Some(write),
                    Some((time, inferred)),
                    evidence,
                )))
            }
            WriteOutcome::Unfinished | WriteOutcome::Accepted => {
                // Only in-flight work is at risk; an accepted request whose execution is
                // not in the export may still run.
                Judgement::Finding(Box::new(self.finding(
                    Category::Unverified,
                    false,
                    Some(write),
                    None,
                    evidence,
                )))
            }
        }
    }

    fn client_gone_evidence(&self, write: &Write) -> Vec<String> {
        let mut out = Vec::new();
        let Some(handler) = write.handler.map(|h| self.span(h)) else {
            return out;
        };
        if let (Some(outbound), Some(server_end)) =
            (write.outbound.map(|o| self.span(o)), handler.end)
        {
            if outbound.end.is_some_and(|e| server_end > e) {
                out.push(format!(
                    "the server span {:?} outlived its client span {:?} by {}",
                    handler.name,
                    outbound.name,
                    human_gap(server_end - outbound.end.unwrap_or(server_end))
                ));
            }
            if http_status(outbound).is_none()
                && outbound.kind == SpanKind::Client
                && http_method(outbound).is_some()
            {
                out.push(format!(
                    "the client span {:?} ended without a response status",
                    outbound.name
                ));
            }
        }
        let commit_end = match write.source {
            WriteSource::Span(i) => self.span(i).end,
            WriteSource::Event(_) => None,
        };
        if let (Some(commit_end), Some(server_end)) = (commit_end, handler.end)
            && commit_end > server_end
        {
            out.push("the commit ended after its server span ended".to_owned());
        }
        if let Some(status) = http_status(handler) {
            out.push(format!("the server recorded HTTP status {status}"));
        }
        out
    }

    fn finding(
        &self,
        category: Category,
        ambiguous: bool,
        write: Option<&Write>,
        commit: Option<(u64, bool)>,
        evidence: Vec<String>,
    ) -> Finding {
        let tool_span = self.span(self.tool.span);
        let write_info = write.map(|w| {
            let (service, span_id, event_id, origin) = match w.source {
                WriteSource::Span(i) => {
                    let span = self.span(i);
                    let origin = span.origin.clone();
                    (span.service().to_owned(), Some(span.span_id), None, origin)
                }
                WriteSource::Event(e) => {
                    let event = &self.joined.events[e];
                    let origin = event.origin.clone();
                    (event.vendor.clone(), None, Some(event.id.clone()), origin)
                }
            };
            WriteInfo {
                service,
                operation: w.operation.clone(),
                span_id,
                event_id,
                commit_time: commit.map(|c| c.0),
                inferred: commit.is_some_and(|c| c.1),
                precision: w.precision,
                origin,
            }
        });
        let write_span_id = write_info
            .as_ref()
            .map(|w| match (&w.span_id, &w.event_id) {
                (Some(span), _) => span.to_string(),
                (None, Some(event)) => format!("{}:{event}", w.service),
                (None, None) => String::new(),
            })
            .unwrap_or_default();
        let id = fingerprint(&[
            category.as_str(),
            &self.turn.trace_id.to_string(),
            &tool_span.span_id.to_string(),
            &write_span_id,
        ]);
        let (service, operation) = write_info
            .as_ref()
            .map_or(("", ""), |w| (w.service.as_str(), w.operation.as_str()));
        let signature = signature(&self.tool.name, service, operation, category.as_str());
        Finding {
            id,
            signature,
            category,
            late: category.is_late(),
            ambiguous,
            conversation_id: self.conversation_id.to_owned(),
            trace_id: self.turn.trace_id,
            abort: AbortInfo {
                time: self.abort.time,
                signal: self.abort.signal.clone(),
                inferred: self.abort.inferred(),
            },
            tool_call: ToolCallInfo {
                span_id: tool_span.span_id,
                name: self.tool.name.clone(),
                tool_call_id: self.tool.call_id.clone(),
                start: tool_span.start,
                end: tool_span.end,
                origin: tool_span.origin.clone(),
            },
            write: write_info,
            join: write.map(|w| w.join.clone()),
            evidence,
            prevention: Vec::new(),
            compensated: None,
        }
    }

    pub(super) fn dispatched(&self, write: Option<&Write>, request_after_abort: bool) -> Finding {
        let tool_span = self.span(self.tool.span);
        let mut evidence = Vec::new();
        let request = write.and_then(|w| w.outbound).map(|o| self.span(o));
        match request {
            Some(request) if request_after_abort && tool_span.start < self.abort.time => {
                evidence.push(format!(
                    "the tool call started before the abort, but its request {:?} started {} after it",
                    request.name,
                    human_gap(request.start - self.abort.time)
                ));
            }
            _ => evidence.push(format!(
                "the tool call started {} after the abort, in the aborted turn: the runtime ignored the abort",
                human_gap(tool_span.start.saturating_sub(self.abort.time))
            )),
        }
        let commit = write.and_then(|w| match w.outcome {
            WriteOutcome::Committed { time, inferred } => Some((time, inferred)),
            _ => None,
        });
        if let Some(w) = write {
            evidence.extend(w.evidence.iter().cloned());
        }
        self.finding(
            Category::DispatchedAfterAbort,
            false,
            write,
            commit,
            evidence,
        )
    }

    pub(super) fn dispatched_request(&self, request: usize) -> Finding {
        let span = self.span(request);
        let write = Write {
            outcome: WriteOutcome::Unfinished,
            source: WriteSource::Span(request),
            operation: span.name.to_string(),
            join: Via::Parent.as_str().to_owned(),
            queued: false,
            outbound: Some(request),
            handler: None,
            precision: 1,
            evidence: vec!["no write was found downstream of it".to_owned()],
            cancelled: false,
        };
        self.dispatched(Some(&write), true)
    }

    /// An at-risk tool call with no write downstream: `unverified` when it was in flight at
    /// the abort and nothing downstream of it is known.
    pub(super) fn unverified(&self, margin: u64) -> Option<Finding> {
        let tool_span = self.span(self.tool.span);
        let abort = self.abort.time;
        let mut reasons = Vec::new();
        match tool_span.end {
            None => reasons.push("the tool span never ended".to_owned()),
            Some(end) if end + margin >= abort => reasons.push(format!(
                "the tool span ended {} the abort",
                if end >= abort {
                    format!("{} after", human_gap(end - abort))
                } else {
                    format!("{} before", human_gap(abort - end))
                }
            )),
            _ => {}
        }
        let requests: Vec<usize> = self
            .tool
            .downstream
            .iter()
            .filter(|r| r.outbound == Some(r.span))
            .map(|r| r.span)
            .collect();
        for request in requests.iter().map(|r| self.span(*r)) {
            // Only HTTP requests have a response status; a database client span has none.
            if request.kind == SpanKind::Client
                && is_http(request)
                && http_status(request).is_none()
            {
                reasons.push(format!(
                    "its request {:?} never received a response status",
                    request.name
                ));
            }
        }
        if reasons.is_empty() {
            return None;
        }
        // Anything past the outbound request (a server span, a consumer) is downstream
        // evidence; with it, the absence of a write means the call wrote nothing.
        let known_downstream = self
            .tool
            .downstream
            .iter()
            .any(|r| r.outbound.is_some() && r.outbound != Some(r.span));
        if known_downstream || !self.tool.events.is_empty() {
            return None;
        }
        let mut evidence = reasons;
        evidence.push(if requests.is_empty() {
            "no downstream span or event was found for it".to_owned()
        } else {
            "no server span or vendor event was found for its request".to_owned()
        });
        Some(self.finding(Category::Unverified, false, None, None, evidence))
    }
}

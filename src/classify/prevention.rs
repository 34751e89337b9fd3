//! From finding to fix: for each write judged against an abort, what would have stopped it,
//! mechanism by mechanism, from what the trace shows and the times it measured (a check of the
//! connection before the commit point, a propagated deadline, an out-of-band cancel, an
//! idempotency key as context, a reversing write after the fact); and for each tool call of an
//! aborted turn, which of them it had, for the summary's protocol coverage.
//!
//! docs/design.md (section 4, "What would have stopped it") describes the decisions.

use std::collections::{HashMap, HashSet};

use super::Finding;
use super::writes::{Write, WriteOutcome, WriteSource};
use crate::correlate::{Abort, Joined, Reached, ToolCall, Turn};
use crate::model::{KeyKind, Role, Span, SpanId, SpanKind, Value};
use crate::rules::Rules;
use crate::rules::evidence::{client_gone_marker, http_method, http_status, is_http, same_clock};
use crate::rules::prevention::{
    Deadline, cancel_request, compensating_event, deadline_exceeded_marker, deadline_of,
    last_segment, path_names, reversing_request, url_path,
};
use crate::util::units::human_gap;

/// A way to keep a write from landing after the Stop, or to make it harmless.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mechanism {
    /// The server checks that its caller is still there before its commit point.
    CommitCheck,
    /// The caller sends a deadline the server honours.
    Deadline,
    /// The caller cancels the work out of band after the abort (`DELETE`, `…/cancel`).
    Cancel,
    /// The caller sends an idempotency key, so that a retry after the Stop is harmless.
    IdempotencyKey,
    /// A reversing write after the fact (a refund, a delete).
    Compensation,
}

impl Mechanism {
    pub const ALL: [Mechanism; 5] = [
        Mechanism::CommitCheck,
        Mechanism::Deadline,
        Mechanism::Cancel,
        Mechanism::IdempotencyKey,
        Mechanism::Compensation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Mechanism::CommitCheck => "commit_check",
            Mechanism::Deadline => "deadline",
            Mechanism::Cancel => "cancel",
            Mechanism::IdempotencyKey => "idempotency_key",
            Mechanism::Compensation => "compensation",
        }
    }

    /// For people: `commit check`, `out-of-band cancel`, …
    pub fn label(self) -> &'static str {
        match self {
            Mechanism::CommitCheck => "commit check",
            Mechanism::Deadline => "deadline",
            Mechanism::Cancel => "out-of-band cancel",
            Mechanism::IdempotencyKey => "idempotency key",
            Mechanism::Compensation => "compensation",
        }
    }

    /// Whether it is part of a cancellation protocol: it keeps a write from landing. An
    /// idempotency key only makes a retry harmless, and a compensation undoes what landed.
    pub fn stops_writes(self) -> bool {
        matches!(
            self,
            Mechanism::CommitCheck | Mechanism::Deadline | Mechanism::Cancel
        )
    }
}

/// One mechanism, for one finding.
#[derive(Clone, Debug, PartialEq)]
pub struct Prevention {
    pub mechanism: Mechanism,
    /// The trace shows it for this write: the server's check rolled it back, the request
    /// carried a deadline or an idempotency key, a cancel named the work, a reversing write
    /// followed.
    pub present: bool,
    /// Whether it stopped this write, or would have, given the measured times: for a mechanism
    /// the trace shows, whether it came in time (a deadline that passed before the commit, a
    /// cancel that reached the server before the worker started), honoured or not; for one it
    /// does not show, whether it had room (a check before the commit, a cancel at the abort).
    /// `None` when the times cannot tell, or for what stops nothing (an idempotency key, a
    /// compensation).
    pub would_have_stopped: Option<bool>,
    /// The time it had before the commit (or the worker's start), positive, or missed it by,
    /// negative; nanoseconds.
    pub margin_ns: Option<i128>,
    /// In words.
    pub detail: String,
}

/// A reversing write after a late write: the finding stands, marked compensated.
#[derive(Clone, Debug, PartialEq)]
pub struct Compensation {
    /// The vendor event type, or the request (`DELETE /v1/payments/pay_1`).
    pub operation: String,
    /// The vendor, or the service that answered the request.
    pub service: String,
    pub event_id: Option<String>,
    pub span_id: Option<SpanId>,
    pub time: u64,
    /// How coarse `time` is.
    pub precision: u64,
    /// `time` minus the write's commit time.
    pub delay_ns: i128,
}

/// Which mechanisms a tool call of an aborted turn had, for the protocol coverage.
#[derive(Clone, Debug, PartialEq)]
pub struct CallProtocols {
    pub tool: String,
    /// The services its spans reached (server and consumer spans) and the vendors of its events;
    /// empty when none is known.
    pub services: Vec<String>,
    /// Sent after the abort (`dispatched_after_abort`) rather than at risk when it came.
    pub dispatched: bool,
    pub inferred_abort: bool,
    pub commit_check: bool,
    pub deadline: bool,
    pub cancel: bool,
    pub idempotency_key: bool,
    pub compensated: bool,
    /// Its findings that are late writes.
    pub late_writes: u64,
}

/// Per tool (or per downstream service): how many calls had each mechanism.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProtocolRow {
    pub name: String,
    pub calls: u64,
    pub late_writes: u64,
    pub commit_check: u64,
    pub deadline: u64,
    pub cancel: u64,
    pub idempotency_key: u64,
    pub compensated: u64,
}

impl ProtocolRow {
    /// Some call had a mechanism that stops writes.
    pub fn has_protocol(&self) -> bool {
        Mechanism::ALL
            .iter()
            .any(|m| m.stops_writes() && self.count(*m) > 0)
    }

    /// The count for a mechanism.
    pub fn count(&self, mechanism: Mechanism) -> u64 {
        match mechanism {
            Mechanism::CommitCheck => self.commit_check,
            Mechanism::Deadline => self.deadline,
            Mechanism::Cancel => self.cancel,
            Mechanism::IdempotencyKey => self.idempotency_key,
            Mechanism::Compensation => self.compensated,
        }
    }
}

/// The name of the downstream service of calls that reached none the inputs show.
pub const UNKNOWN_SERVICE: &str = "unknown";

/// The calls, counted per name; `names` gives each call's names (one tool, or its services).
pub fn coverage<'c>(
    calls: &'c [CallProtocols],
    names: impl Fn(&'c CallProtocols) -> Vec<&'c str>,
) -> Vec<ProtocolRow> {
    let mut rows: Vec<ProtocolRow> = Vec::new();
    for call in calls {
        for name in names(call) {
            let at = match rows.iter().position(|r| r.name == name) {
                Some(at) => at,
                None => {
                    rows.push(ProtocolRow {
                        name: name.to_owned(),
                        ..ProtocolRow::default()
                    });
                    rows.len() - 1
                }
            };
            let row = &mut rows[at];
            row.calls += 1;
            row.late_writes += call.late_writes;
            row.commit_check += u64::from(call.commit_check);
            row.deadline += u64::from(call.deadline);
            row.cancel += u64::from(call.cancel);
            row.idempotency_key += u64::from(call.idempotency_key);
            row.compensated += u64::from(call.compensated);
        }
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    rows
}

/// Per tool name.
pub fn by_tool(calls: &[CallProtocols]) -> Vec<ProtocolRow> {
    coverage(calls, |c| vec![c.tool.as_str()])
}

/// Per downstream service (a call that reached several counts under each).
pub fn by_service(calls: &[CallProtocols]) -> Vec<ProtocolRow> {
    coverage(calls, |c| {
        if c.services.is_empty() {
            vec![UNKNOWN_SERVICE]
        } else {
            c.services.iter().map(String::as_str).collect()
        }
    })
}

/// A request of the agent's side, after the abort, that cancels or reverses what a call made.
#[derive(Clone, Debug)]
struct Request {
    client: usize,
    /// Its server span, when the service is traced.
    server: Option<usize>,
    /// How it cancels (`DELETE`, `POST */cancel`), if it does.
    cancel: Option<String>,
    /// How it reverses, if it does.
    reverse: Option<String>,
    status: Option<i64>,
}

/// What the trace shows of one tool call's protocols: the ids that name its work, the
/// requests after the abort that cancel or reverse it, its idempotency key.
pub(super) struct CallEvidence<'a, 's> {
    joined: &'a Joined<'s>,
    tool: &'a ToolCall,
    abort: &'a Abort,
    rules: &'a Rules,
    reached: HashMap<usize, &'a Reached>,
    requests: Vec<Request>,
    /// The attribute and value of the first idempotency key found.
    idempotency: Option<(String, String)>,
}

/// The texts of an attribute value: a string, a number, or each element of an array.
fn texts(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_text().map(|t| t.into_owned()))
            .collect(),
        other => other
            .as_text()
            .map(|t| t.into_owned())
            .into_iter()
            .collect(),
    }
}

impl<'a, 's> CallEvidence<'a, 's> {
    pub(super) fn new(
        joined: &'a Joined<'s>,
        turn: &'a Turn,
        tool: &'a ToolCall,
        abort: &'a Abort,
        rules: &'a Rules,
    ) -> Self {
        let spans = joined.spans;
        let reached = tool.downstream.iter().map(|r| (r.span, r)).collect();
        let own: HashSet<usize> = std::iter::once(tool.span)
            .chain(tool.downstream.iter().map(|r| r.span))
            .collect();
        // The first key in the order of the call's spans: the tool span, then what it caused.
        let idempotency = std::iter::once(tool.span)
            .chain(tool.downstream.iter().map(|r| r.span))
            .find_map(|i| {
                rules.join.idempotency_key.iter().find_map(|key| {
                    let value = spans[i].attributes.get(key)?;
                    texts(value)
                        .into_iter()
                        .find(|t| !t.is_empty())
                        .map(|t| (key.clone(), t))
                })
            });
        let mut evidence = CallEvidence {
            joined,
            tool,
            abort,
            rules,
            reached,
            requests: Vec::new(),
            idempotency,
        };
        let ids = evidence.ids();
        // A cancel sent right after a Stop that an abort log (on the front end's clock) gives
        // may start a little before the logged time.
        let from = abort
            .time
            .saturating_sub(rules.skew_ns() + abort.precision.saturating_sub(1));
        for &i in &turn.agent_spans {
            let span = &spans[i];
            if span.kind != SpanKind::Client || !is_http(span) || span.start < from {
                continue;
            }
            if own.contains(&i) {
                continue;
            }
            let cancel = cancel_request(span, rules);
            let reverse = reversing_request(span, rules);
            if cancel.is_none() && reverse.is_none() {
                continue;
            }
            let server = joined
                .children
                .of(i)
                .iter()
                .copied()
                .find(|c| spans[*c].kind == SpanKind::Server);
            let named = ids.iter().any(|id| {
                std::iter::once(i)
                    .chain(server)
                    .any(|s| evidence.names(&spans[s], id))
            });
            if !named {
                continue;
            }
            let status = server
                .and_then(|s| http_status(&spans[s]))
                .or_else(|| http_status(span));
            evidence.requests.push(Request {
                client: i,
                server,
                cancel,
                reverse,
                status,
            });
        }
        let mut requests = std::mem::take(&mut evidence.requests);
        requests.sort_by_key(|r| (evidence.arrival(r), r.client));
        evidence.requests = requests;
        evidence
    }

    fn span(&self, i: usize) -> &'s Span {
        &self.joined.spans[i]
    }

    /// What names the call's work: its call id, the keys and ids its spans carry (`[join]`,
    /// `[prevention.cancel] id_attributes`), and what its vendor events are about.
    fn ids(&self) -> Vec<String> {
        let rules = self.rules;
        let mut ids: Vec<String> = self.tool.call_id.iter().cloned().collect();
        let join = &rules.join;
        let lists = [
            &join.idempotency_key,
            &join.request_id,
            &join.message_id,
            &join.job_id,
            &join.object_id,
        ];
        for i in std::iter::once(self.tool.span).chain(self.tool.downstream.iter().map(|r| r.span))
        {
            let span = self.span(i);
            for key in lists.iter().flat_map(|l| l.iter()) {
                if let Some(value) = span.attributes.get(key) {
                    ids.extend(texts(value));
                }
            }
            for key in &rules.prevention.cancel.id_attributes {
                if let Some(value) = span.attributes.get(key) {
                    ids.extend(texts(value).iter().map(|t| last_segment(t).to_owned()));
                }
            }
        }
        for join in self.tool.events.iter().filter(|j| !j.follow_up) {
            let event = &self.joined.events[join.event];
            ids.extend(event.subject.iter().cloned());
            ids.extend(
                event
                    .keys
                    .iter()
                    .filter(|(k, _)| {
                        matches!(k, KeyKind::ObjectId | KeyKind::JobId | KeyKind::MessageId)
                    })
                    .map(|(_, v)| v.clone()),
            );
        }
        ids.retain(|id| !id.trim().is_empty());
        ids.sort();
        ids.dedup();
        ids
    }

    /// Whether a span of a request names an id: in its URL's path, or as the whole value of
    /// an attribute that holds ids.
    fn names(&self, span: &Span, id: &str) -> bool {
        if url_path(span).is_some_and(|p| path_names(&p, id)) {
            return true;
        }
        let join = &self.rules.join;
        [
            &join.idempotency_key,
            &join.request_id,
            &join.message_id,
            &join.job_id,
            &join.object_id,
            &self.rules.prevention.cancel.id_attributes,
        ]
        .iter()
        .flat_map(|l| l.iter())
        .filter_map(|key| span.attributes.get(key))
        .flat_map(texts)
        .any(|text| text == id || last_segment(&text) == id)
    }

    /// When a request reached its service: its server span's start, else its own.
    fn arrival(&self, r: &Request) -> u64 {
        self.span(r.server.unwrap_or(r.client)).start
    }

    /// The span whose clock `arrival` reads.
    fn arrival_span(&self, r: &Request) -> &'s Span {
        self.span(r.server.unwrap_or(r.client))
    }

    fn acknowledged(r: &Request) -> bool {
        r.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// `DELETE /v1/payouts/job_1 (HTTP 200)`.
    fn describe(&self, r: &Request) -> String {
        let client = self.span(r.client);
        let method = http_method(client).unwrap_or_default();
        let path = url_path(client).unwrap_or_else(|| client.name.to_string());
        let status = match r.status {
            Some(s) => format!("HTTP {s}"),
            None => "no response".to_owned(),
        };
        format!("{method} {path}, {status}")
    }

    /// Which service a request reached: its server span's, else "the server".
    fn reached_service(&self, r: &Request) -> String {
        match r.server {
            Some(s) => self.span(s).service().to_owned(),
            None => "the server".to_owned(),
        }
    }

    /// A signed gap in words: `120 ms after` / `30 ms before`.
    fn relative(gap: i128) -> String {
        if gap >= 0 {
            format!("{} after", human_gap(gap as u64))
        } else {
            format!("{} before", human_gap(gap.unsigned_abs() as u64))
        }
    }

    /// The abort relative to a time, in words: `120 ms after the abort`.
    fn vs_abort(&self, time: u64) -> String {
        format!(
            "{} the abort",
            Self::relative(i128::from(time) - i128::from(self.abort.time))
        )
    }

    /// Accepted work, never seen to run, that a cancel the server acknowledged reached after
    /// the abort did not land: it becomes a rollback at the cancel, reported as
    /// `pre_commit_abort` and as prevented by the cancel.
    pub(super) fn apply_cancel(&self, write: &mut Write) {
        if write.outcome != WriteOutcome::Accepted {
            return;
        }
        let Some(r) = self
            .requests
            .iter()
            .find(|r| r.cancel.is_some() && Self::acknowledged(r))
        else {
            return;
        };
        let done = self.arrival_span(r).end.unwrap_or_else(|| self.arrival(r));
        write.outcome = WriteOutcome::RolledBack {
            time: done,
            inferred: false,
        };
        write.cancelled = true;
        write.evidence.push(format!(
            "cancelled by {} ({}), {}, before any execution of the work was seen",
            r.cancel.as_deref().unwrap_or(""),
            self.describe(r),
            self.vs_abort(self.arrival(r))
        ));
    }

    /// What the trace shows of each mechanism for a finding, and a compensation if one
    /// followed; `write` is what the finding was judged from (`None` when it has no write).
    pub(super) fn annotate(&self, finding: &mut Finding, write: Option<&Write>) {
        let compensation = self.compensation(write);
        finding.prevention = vec![
            self.commit_check(write),
            self.deadline(write),
            self.cancel(write),
            self.idempotency(),
            self.compensation_entry(write, compensation.as_ref()),
        ];
        finding.compensated = compensation;
    }

    /// Which mechanisms the call had, given its findings.
    pub(super) fn protocols(&self, dispatched: bool, findings: &[Finding]) -> CallProtocols {
        let spans = self.joined.spans;
        let has = |m: Mechanism| {
            findings
                .iter()
                .any(|f| f.prevention.iter().any(|p| p.mechanism == m && p.present))
        };
        let deadline = std::iter::once(self.tool.span)
            .chain(self.tool.downstream.iter().map(|r| r.span))
            .map(|i| &spans[i])
            .filter(|s| matches!(s.kind, SpanKind::Client | SpanKind::Server))
            .any(|s| deadline_of(s, self.rules).is_some());
        let vendor_cancel = self
            .tool
            .events
            .iter()
            .any(|j| !j.follow_up && self.joined.events[j.event].role == Some(Role::Cancelled));
        // The services whose spans the call reached, and the vendors whose events show work
        // of a request no traced server answered (a vendor's events about a traced service's
        // work are that service's).
        let served: HashSet<usize> = self
            .tool
            .downstream
            .iter()
            .filter(|r| spans[r.span].kind == SpanKind::Server)
            .map(|r| r.from)
            .collect();
        let untraced_request = |carrier: usize| {
            let request = self
                .reached
                .get(&carrier)
                .and_then(|r| r.outbound)
                .unwrap_or(carrier);
            !served.contains(&request)
        };
        let mut services: Vec<String> = self
            .tool
            .downstream
            .iter()
            .map(|r| &spans[r.span])
            .filter(|s| matches!(s.kind, SpanKind::Server | SpanKind::Consumer))
            .map(|s| s.service().to_owned())
            .chain(
                self.tool
                    .events
                    .iter()
                    .filter(|j| !j.follow_up && untraced_request(j.carrier))
                    .map(|j| self.joined.events[j.event].vendor.clone()),
            )
            .collect();
        services.sort();
        services.dedup();
        CallProtocols {
            tool: self.tool.name.clone(),
            services,
            dispatched,
            inferred_abort: self.abort.inferred(),
            commit_check: has(Mechanism::CommitCheck),
            deadline: deadline || has(Mechanism::Deadline),
            cancel: self.requests.iter().any(|r| r.cancel.is_some())
                || vendor_cancel
                || has(Mechanism::Cancel),
            idempotency_key: self.idempotency.is_some(),
            compensated: findings.iter().any(|f| f.compensated.is_some()),
            late_writes: findings.iter().filter(|f| f.late).count() as u64,
        }
    }

    /// The tolerance between two spans' clocks: none on one host, the skew across hosts.
    fn tolerance(&self, a: &Span, b: Option<&Span>) -> i128 {
        match b {
            Some(b) if same_clock(a, b) => 0,
            _ => i128::from(self.rules.skew_ns()),
        }
    }

    /// The span that shows a write, when a span does.
    fn write_span(&self, write: &Write) -> Option<&'s Span> {
        match write.source {
            WriteSource::Span(i) => Some(self.span(i)),
            WriteSource::Event(_) => None,
        }
    }

    /// When the server could first see its client gone: the end of the request's client span
    /// when it ended without a response (the connection was closed then), else the abort.
    /// `None` when the client kept the connection open and got its answer (`status`, at `end`).
    fn closed_at(&self, write: &Write) -> Result<(u64, String, &'s Span), (i64, Option<u64>)> {
        match write.outbound.map(|o| self.span(o)) {
            Some(o) if o.kind == SpanKind::Client && is_http(o) => match (http_status(o), o.end) {
                (None, Some(end)) => Ok((
                    end,
                    format!(
                        "its client span {:?} ended without a response {}",
                        o.name,
                        self.vs_abort(end)
                    ),
                    o,
                )),
                (None, None) => Ok((self.abort.time, "at the abort".to_owned(), o)),
                (Some(status), end) => Err((status, end)),
            },
            _ => {
                let abort_span = self.abort.span.map(|a| self.span(a));
                Ok((
                    self.abort.time,
                    "at the abort".to_owned(),
                    abort_span.unwrap_or(self.span(self.tool.span)),
                ))
            }
        }
    }

    fn commit_check(&self, write: Option<&Write>) -> Prevention {
        let entry = |present, would, margin, detail: String| Prevention {
            mechanism: Mechanism::CommitCheck,
            present,
            would_have_stopped: would,
            margin_ns: margin,
            detail,
        };
        let Some(w) = write else {
            return entry(
                false,
                None,
                None,
                "no write is known downstream: whether a check ran cannot be told".to_owned(),
            );
        };
        if w.cancelled || w.queued || w.outcome == WriteOutcome::Accepted {
            return entry(
                false,
                None,
                None,
                "the work went to a queue and the request was answered: the worker has no connection to check, only a cancel or a deadline carried with the job reaches it".to_owned(),
            );
        }
        let (time, rolled_back) = match w.outcome {
            WriteOutcome::Committed { time, .. } => (time, false),
            WriteOutcome::RolledBack { time, .. } => (time, true),
            WriteOutcome::Unfinished | WriteOutcome::Accepted => {
                return entry(
                    false,
                    None,
                    None,
                    "the write's end is not known: whether a check ran cannot be told".to_owned(),
                );
            }
        };
        let handler = w.handler.map(|h| self.span(h));
        if rolled_back {
            if let Some(marker) = handler.and_then(|h| client_gone_marker(h, self.rules)) {
                let after = match self.closed_at(w) {
                    Ok((closed, _, _)) => format!(
                        ", {} the connection closed",
                        Self::relative(i128::from(time) - i128::from(closed))
                    ),
                    Err(_) => String::new(),
                };
                return entry(
                    true,
                    Some(true),
                    None,
                    format!(
                        "the server checked before its commit point, saw the client gone ({marker}) and rolled back{after}"
                    ),
                );
            }
            if matches!(w.source, WriteSource::Event(_)) {
                return entry(
                    false,
                    None,
                    None,
                    "the vendor's events say the work did not land; what stopped it is not in the trace".to_owned(),
                );
            }
        }
        let closed = match self.closed_at(w) {
            Ok(closed) => closed,
            Err((status, end)) => {
                let when = match end {
                    Some(end) => format!(
                        ", {} the {}",
                        Self::relative(i128::from(end) - i128::from(time)),
                        if rolled_back { "rollback" } else { "commit" }
                    ),
                    None => String::new(),
                };
                if end.is_none_or(|e| e >= time) {
                    return entry(
                        false,
                        Some(false),
                        None,
                        format!(
                            "the client kept the connection open and got its answer (HTTP {status}{when}): a disconnect check had nothing to see"
                        ),
                    );
                }
                (
                    end.unwrap_or(self.abort.time),
                    format!("its client got its answer (HTTP {status}) and closed"),
                    self.span(w.outbound.unwrap_or(self.tool.span)),
                )
            }
        };
        let (closed_at, how, clock) = closed;
        let tolerance = self.tolerance(clock, self.write_span(w));
        let lower = i128::from(time) - i128::from(closed_at);
        let upper = lower + i128::from(w.precision.max(1)) - 1;
        let deadline_reason = handler.and_then(|h| deadline_exceeded_marker(h, self.rules));
        let prefix = match (rolled_back, deadline_reason) {
            (true, Some(marker)) => format!(
                "the server gave up on the deadline ({marker}), not on the closed connection; "
            ),
            (true, None) => {
                "the server rolled back without saying it saw the client go; ".to_owned()
            }
            (false, _) => String::new(),
        };
        let at_least = if w.precision > 1 { "at least " } else { "" };
        let verb = if rolled_back { "rollback" } else { "commit" };
        if lower > tolerance {
            entry(
                false,
                Some(true),
                Some(lower),
                format!(
                    "{prefix}a disconnect check before the {verb} had {at_least}{} to see the closed connection ({how})",
                    human_gap(lower as u64)
                ),
            )
        } else if upper < -tolerance {
            entry(
                false,
                Some(false),
                Some(lower),
                format!(
                    "{prefix}the {verb} landed {} before the connection closed ({how}): no check could have stopped it",
                    human_gap(upper.unsigned_abs() as u64)
                ),
            )
        } else {
            entry(
                false,
                None,
                Some(lower),
                format!(
                    "{prefix}the {verb} and the closing of the connection ({how}) are within {} of each other: whether a check could have seen it cannot be told",
                    human_gap(tolerance as u64 + w.precision.max(1))
                ),
            )
        }
    }

    /// The deadline the write's request carried, read on its client or server span, else on
    /// any request of the call.
    fn find_deadline(&self, write: Option<&Write>) -> Option<(Deadline, &'s Span)> {
        let spans = self.joined.spans;
        let mut candidates: Vec<usize> = Vec::new();
        if let Some(w) = write {
            candidates.extend(w.outbound);
            candidates.extend(w.handler);
        }
        for r in &self.tool.downstream {
            if r.outbound == Some(r.span) {
                candidates.push(r.span);
                candidates.extend(
                    self.joined
                        .children
                        .of(r.span)
                        .iter()
                        .copied()
                        .filter(|c| spans[*c].kind == SpanKind::Server),
                );
            }
        }
        candidates
            .into_iter()
            .find_map(|i| deadline_of(&spans[i], self.rules).map(|d| (d, &spans[i])))
    }

    fn deadline(&self, write: Option<&Write>) -> Prevention {
        let entry = |present, would, margin, detail: String| Prevention {
            mechanism: Mechanism::Deadline,
            present,
            would_have_stopped: would,
            margin_ns: margin,
            detail,
        };
        let outcome = write.map(|w| (w, &w.outcome));
        let Some((deadline, carrier)) = self.find_deadline(write) else {
            let detail = match outcome {
                Some((w, WriteOutcome::Committed { time, .. })) => {
                    let start = w
                        .outbound
                        .map(|o| self.span(o).start)
                        .unwrap_or_else(|| self.span(self.tool.span).start);
                    format!(
                        "no deadline header was sent; the request ran {} from its start to the commit: a shorter deadline, honoured, would have stopped it",
                        human_gap(time.saturating_sub(start))
                    )
                }
                _ => "no deadline header was sent".to_owned(),
            };
            return entry(false, None, None, detail);
        };
        let sent = format!(
            "the request carried {} = {:?} (passing {})",
            deadline.attribute,
            deadline.value,
            self.vs_abort(deadline.at)
        );
        let Some((w, outcome)) = outcome else {
            return entry(
                true,
                None,
                None,
                format!("{sent}; no write is known downstream"),
            );
        };
        let tolerance = self.tolerance(carrier, self.write_span(w)) + i128::from(w.precision) - 1;
        match *outcome {
            WriteOutcome::Committed { time, .. } => {
                let margin = i128::from(time) - i128::from(deadline.at);
                let who = if w.queued { "the worker" } else { "the server" };
                if margin > tolerance {
                    entry(
                        true,
                        Some(true),
                        Some(margin),
                        format!(
                            "{sent}; it passed {} before the commit: {who} did not honour it",
                            human_gap(margin as u64)
                        ),
                    )
                } else if margin < -tolerance {
                    entry(
                        true,
                        Some(false),
                        Some(margin),
                        format!(
                            "{sent}; it fell {} after the commit: it could not have stopped this write",
                            human_gap(margin.unsigned_abs() as u64)
                        ),
                    )
                } else {
                    entry(
                        true,
                        None,
                        Some(margin),
                        format!("{sent}; it passed within the clocks' tolerance of the commit"),
                    )
                }
            }
            WriteOutcome::RolledBack { time, .. } => {
                let handler = w.handler.map(|h| self.span(h));
                if let Some(marker) = handler.and_then(|h| deadline_exceeded_marker(h, self.rules))
                {
                    return entry(
                        true,
                        Some(true),
                        None,
                        format!(
                            "{sent}; the server honoured it: it gave up ({marker}) and rolled back {} it passed",
                            Self::relative(i128::from(time) - i128::from(deadline.at))
                        ),
                    );
                }
                let passed = i128::from(deadline.at) <= i128::from(time) + tolerance;
                entry(
                    true,
                    Some(passed),
                    None,
                    if passed {
                        format!("{sent}; it had passed when the server rolled back")
                    } else {
                        format!(
                            "{sent}; the server rolled back before it passed: something else stopped the write"
                        )
                    },
                )
            }
            WriteOutcome::Unfinished | WriteOutcome::Accepted => entry(
                true,
                None,
                None,
                format!("{sent}; whether the server honoured it is not known"),
            ),
        }
    }

    /// When the queued work that shows a write began: the start of the first span reached
    /// through the queue on its path (the consumer, the worker's span).
    fn worker_start(&self, write: &Write) -> Option<(u64, &'s Span)> {
        let WriteSource::Span(mut i) = write.source else {
            return None;
        };
        let mut first = None;
        let mut steps = 0;
        while let Some(r) = self.reached.get(&i) {
            if !r.queued {
                break;
            }
            first = Some(i);
            i = r.from;
            steps += 1;
            if steps > self.reached.len() {
                break;
            }
        }
        first.map(|f| (self.span(f).start, self.span(f)))
    }

    fn cancel(&self, write: Option<&Write>) -> Prevention {
        let entry = |present, would, margin, detail: String| Prevention {
            mechanism: Mechanism::Cancel,
            present,
            would_have_stopped: would,
            margin_ns: margin,
            detail,
        };
        let cancels: Vec<&Request> = self
            .requests
            .iter()
            .filter(|r| r.cancel.is_some())
            .collect();
        let Some(w) = write else {
            return match cancels.first() {
                Some(r) => entry(
                    true,
                    None,
                    None,
                    format!(
                        "a cancel ({}) reached {} {}; no write is known downstream",
                        self.describe(r),
                        self.reached_service(r),
                        self.vs_abort(self.arrival(r))
                    ),
                ),
                None => entry(false, None, None, "no cancel was sent".to_owned()),
            };
        };
        if w.cancelled
            && let Some(r) = cancels.iter().find(|r| Self::acknowledged(r))
        {
            return entry(
                true,
                Some(true),
                None,
                format!(
                    "a cancel ({}) reached {} {}, before any execution of the work: it stopped the write",
                    self.describe(r),
                    self.reached_service(r),
                    self.vs_abort(self.arrival(r))
                ),
            );
        }
        if let (WriteSource::Event(e), WriteOutcome::RolledBack { time, .. }) =
            (w.source, &w.outcome)
        {
            let event = &self.joined.events[e];
            if event.role == Some(Role::Cancelled) {
                return entry(
                    true,
                    Some(true),
                    None,
                    format!(
                        "the vendor's event {} ({}) says the work was cancelled, {}",
                        event.id,
                        event.kind,
                        self.vs_abort(*time)
                    ),
                );
            }
        }
        let WriteOutcome::Committed { time: commit, .. } = w.outcome else {
            return match cancels.first() {
                Some(r) => entry(
                    true,
                    None,
                    None,
                    format!(
                        "a cancel ({}) reached {} {}",
                        self.describe(r),
                        self.reached_service(r),
                        self.vs_abort(self.arrival(r))
                    ),
                ),
                None => entry(false, None, None, "no cancel was sent".to_owned()),
            };
        };
        let worker = if w.queued { self.worker_start(w) } else { None };
        let (target, what, target_span) = match worker {
            Some((start, span)) => (start, "the worker started", Some(span)),
            None => (commit, "the commit", self.write_span(w)),
        };
        let waited = worker.map(|(start, _)| i128::from(start) - i128::from(self.abort.time));
        let queue_window = match waited {
            Some(waited) if waited > 0 => format!(
                "; the job waited {} in the queue after the abort",
                human_gap(waited as u64)
            ),
            _ => String::new(),
        };
        match cancels.first() {
            Some(r) => {
                let arrival = self.arrival(r);
                let tolerance = self.tolerance(self.arrival_span(r), target_span);
                let margin = i128::from(target) - i128::from(arrival);
                let described = format!(
                    "a cancel ({}) reached {} {}",
                    self.describe(r),
                    self.reached_service(r),
                    self.vs_abort(arrival)
                );
                if margin > tolerance {
                    entry(
                        true,
                        Some(true),
                        Some(margin),
                        format!(
                            "{described}, {} before {what}, yet the write landed: it was not honoured",
                            human_gap(margin as u64)
                        ),
                    )
                } else if margin < -tolerance {
                    let before_commit = if worker.is_some() && arrival < commit {
                        format!(
                            " and {} before the commit",
                            human_gap(commit.saturating_sub(arrival))
                        )
                    } else {
                        String::new()
                    };
                    let after = what.replace("the worker started", "the worker had started");
                    entry(
                        true,
                        Some(false),
                        Some(margin),
                        format!(
                            "{described}: {} too late, after {after}{before_commit}{queue_window}",
                            human_gap(margin.unsigned_abs() as u64)
                        ),
                    )
                } else {
                    entry(
                        true,
                        None,
                        Some(margin),
                        format!("{described}, within the clocks' tolerance of {what}"),
                    )
                }
            }
            None => {
                let window = i128::from(target) - i128::from(self.abort.time);
                let tolerance = i128::from(self.rules.skew_ns());
                if window > tolerance {
                    let detail = if worker.is_some() {
                        format!(
                            "no cancel was sent; the job waited {} in the queue after the abort: a cancel then would have stopped it",
                            human_gap(window as u64)
                        )
                    } else {
                        format!(
                            "no cancel was sent; one naming the work had {} before the commit, had the server honoured it",
                            human_gap(window as u64)
                        )
                    };
                    entry(false, Some(true), Some(window), detail)
                } else if worker.is_some() && window < -tolerance {
                    entry(
                        false,
                        None,
                        Some(window),
                        format!(
                            "no cancel was sent; the worker had started {} before the abort: only a worker that looks for a cancel before it commits could have stopped it",
                            human_gap(window.unsigned_abs() as u64)
                        ),
                    )
                } else {
                    entry(
                        false,
                        None,
                        Some(window),
                        format!(
                            "no cancel was sent; {what} came within the clocks' tolerance of the abort"
                        ),
                    )
                }
            }
        }
    }

    fn idempotency(&self) -> Prevention {
        let (present, detail) = match &self.idempotency {
            Some((attribute, _)) => (
                true,
                format!(
                    "the request carried an idempotency key ({attribute}): a retry after the Stop is harmless, but the key does not stop this write"
                ),
            ),
            None => (
                false,
                "no idempotency key was sent: a retry after the Stop would write again".to_owned(),
            ),
        };
        Prevention {
            mechanism: Mechanism::IdempotencyKey,
            present,
            would_have_stopped: None,
            margin_ns: None,
            detail,
        }
    }

    /// A reversing write after a committed one: a compensating vendor event about the write's
    /// work (or naming it), or a reversing request the server acknowledged after the commit.
    fn compensation(&self, write: Option<&Write>) -> Option<Compensation> {
        let w = write?;
        let WriteOutcome::Committed { time: commit, .. } = w.outcome else {
            return None;
        };
        let events = self.joined.events;
        // What the write is about, at its vendors: the event that shows it, or the events
        // that corroborate the span that does.
        let subjects: Vec<(&str, &str)> = match w.source {
            WriteSource::Event(e) => {
                let event = &events[e];
                vec![(
                    event.vendor.as_str(),
                    event.subject.as_deref().unwrap_or(&event.id),
                )]
            }
            WriteSource::Span(_) => self
                .tool
                .events
                .iter()
                .filter(|j| !j.follow_up)
                .filter(|j| {
                    let outbound = self.reached.get(&j.carrier).and_then(|r| r.outbound);
                    w.outbound.is_none() || outbound == w.outbound
                })
                .filter_map(|j| {
                    let e = &events[j.event];
                    e.subject.as_deref().map(|s| (e.vendor.as_str(), s))
                })
                .collect(),
        };
        let by_event = self
            .tool
            .events
            .iter()
            .map(|j| &events[j.event])
            .filter(|e| compensating_event(&e.kind, self.rules))
            .filter(|e| !matches!(e.role, Some(Role::Failed) | Some(Role::Cancelled)))
            .filter(|e| e.time.saturating_add(e.precision.max(1)) > commit)
            .filter(|e| {
                subjects.iter().any(|(vendor, subject)| {
                    e.vendor == *vendor
                        && (e.subject.as_deref() == Some(subject)
                            || e.keys
                                .iter()
                                .any(|(k, v)| *k == KeyKind::ObjectId && v == subject))
                })
            })
            .min_by_key(|e| (e.time, e.id.as_str()))
            .map(|e| Compensation {
                operation: e.kind.clone(),
                service: e.vendor.clone(),
                event_id: Some(e.id.clone()),
                span_id: None,
                time: e.time,
                precision: e.precision.max(1),
                delay_ns: i128::from(e.time) - i128::from(commit),
            });
        let by_request = self
            .requests
            .iter()
            .filter(|r| r.reverse.is_some() && Self::acknowledged(r))
            .filter(|r| {
                let tolerance = self.tolerance(self.arrival_span(r), self.write_span(w));
                i128::from(self.arrival(r)) + tolerance >= i128::from(commit)
            })
            .map(|r| {
                let server = self.arrival_span(r);
                let time = server.end.unwrap_or(server.start);
                let client = self.span(r.client);
                Compensation {
                    operation: format!(
                        "{} {}",
                        http_method(client).unwrap_or_default(),
                        url_path(client).unwrap_or_else(|| client.name.to_string())
                    ),
                    service: match r.server {
                        Some(s) => self.span(s).service().to_owned(),
                        None => client.service().to_owned(),
                    },
                    event_id: None,
                    span_id: Some(server.span_id),
                    time,
                    precision: 1,
                    delay_ns: i128::from(time) - i128::from(commit),
                }
            })
            .next();
        match (by_event, by_request) {
            (Some(a), Some(b)) => Some(if b.time < a.time { b } else { a }),
            (a, b) => a.or(b),
        }
    }

    fn compensation_entry(
        &self,
        write: Option<&Write>,
        compensation: Option<&Compensation>,
    ) -> Prevention {
        let detail = match (compensation, write.map(|w| &w.outcome)) {
            (Some(c), _) => {
                let what = match &c.event_id {
                    Some(id) => format!("{} event {id} ({})", c.service, c.operation),
                    None => format!("{} at {}", c.operation, c.service),
                };
                let delay = if c.delay_ns < 0 {
                    "at the same time as".to_owned()
                } else {
                    format!("{} after", human_gap(c.delay_ns.unsigned_abs() as u64))
                };
                let coarse = if c.precision > 1 {
                    format!(" (its time known to {})", human_gap(c.precision))
                } else {
                    String::new()
                };
                format!(
                    "reversed {delay} the write{coarse} by {what}: the write stays a finding, compensated"
                )
            }
            (None, Some(WriteOutcome::Committed { .. })) => {
                "no reversing write (a refund, a delete) was found after it".to_owned()
            }
            (None, Some(WriteOutcome::RolledBack { .. })) => "nothing landed to reverse".to_owned(),
            (None, _) => "no commit is known, so nothing to reverse is known".to_owned(),
        };
        Prevention {
            mechanism: Mechanism::Compensation,
            present: compensation.is_some(),
            would_have_stopped: None,
            margin_ns: None,
            detail,
        }
    }
}

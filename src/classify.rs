//! Deciding what happened to each write a tool call caused, against the abort of its turn.
//! Pure functions over the joined spans: no I/O here.

use std::collections::{HashMap, HashSet};

use crate::correlate::{EventJoin, Joined, Reached, ToolCall, Turn, Via};
use crate::model::ids::fingerprint;
use crate::model::{Category, Role, Span, SpanId, SpanKind, StatusCode, TraceId};
use crate::rules::Rules;
use crate::rules::evidence::{
    client_gone_marker, db_operation, describe_statement, http_method, http_status, is_db_span,
    is_http, matches_any, same_clock,
};
use crate::util::units::human_gap;

#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// A fingerprint of the ids involved (never of times), stable across runs and exports.
    pub id: String,
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
}

#[derive(Clone, Debug, PartialEq)]
pub struct AbortInfo {
    pub time: u64,
    pub signal: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ToolCallInfo {
    pub span_id: SpanId,
    pub name: String,
    pub tool_call_id: Option<String>,
    pub start: u64,
    pub end: Option<u64>,
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
    pub aborted_turns: u64,
    pub tool_calls_at_risk: u64,
    /// Writes of at-risk tool calls that committed before the abort: fine, but counted.
    pub committed_before_abort: u64,
}

/// What a downstream span shows about a write.
#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    Committed {
        time: u64,
        inferred: bool,
    },
    RolledBack {
        time: u64,
    },
    /// A transaction began (or a write server span never ended) and its fate was not recorded.
    Unfinished,
    /// The request was accepted for later execution and no execution was found.
    Accepted,
}

/// What shows a write: a span (the COMMIT, the write statement, the server span…) or a
/// vendor event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Span(usize),
    Event(usize),
}

#[derive(Clone, Debug)]
struct Write {
    outcome: Outcome,
    source: Source,
    operation: String,
    /// How it was reached from the tool call: `parent`, `link`, or the key a vendor event
    /// was joined on.
    join: String,
    /// It ran later from a queue: reached through a span link, or a vendor event that
    /// followed an `accepted` one.
    queued: bool,
    outbound: Option<usize>,
    /// The server or consumer span that handled the write, if any.
    handler: Option<usize>,
    /// How coarse the outcome's time is, in nanoseconds.
    precision: u64,
    evidence: Vec<String>,
}

pub fn classify(joined: &Joined<'_>, rules: &Rules) -> Audit {
    let mut audit = Audit::default();
    let skew = rules.skew_ns();
    let margin = rules.in_flight_margin_ns();
    for turn in &joined.turns {
        let Some(abort) = &turn.abort else { continue };
        audit.aborted_turns += 1;
        let conversation_id = &joined.conversations[turn.conversation].id;
        for tool in &turn.tool_calls {
            let tool_span = &joined.spans[tool.span];
            let dispatched = tool_span.start >= abort.time;
            if !dispatched {
                audit.tool_calls_at_risk += 1;
            }
            let mut writes = writes_of(joined, tool, rules);
            add_event_writes(joined, tool, &mut writes);
            let context = Context {
                joined,
                turn,
                tool,
                conversation_id,
                abort_span: &joined.spans[abort.span],
                abort_time: abort.time,
                abort_signal: &abort.signal,
                skew,
            };
            // Outbound requests the runtime sent after the abort.
            let late_requests: HashSet<usize> = tool
                .downstream
                .iter()
                .filter(|r| r.outbound == Some(r.span) && joined.spans[r.span].start >= abort.time)
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
                    if matches!(write.outcome, Outcome::RolledBack { .. }) {
                        continue;
                    }
                    audit
                        .findings
                        .push(context.dispatched(Some(write), request_after_abort));
                    continue;
                }
                match context.judge(write) {
                    Judgement::Before => audit.committed_before_abort += 1,
                    Judgement::Unrelated => {}
                    Judgement::Finding(f) => audit.findings.push(*f),
                }
            }
            if dispatched && writes.is_empty() {
                audit.findings.push(context.dispatched(None, false));
                continue;
            }
            let mut late: Vec<usize> = late_requests
                .difference(&reported_requests)
                .copied()
                .collect();
            late.sort_unstable();
            for request in late {
                audit.findings.push(context.dispatched_request(request));
            }
            if writes.is_empty()
                && !dispatched
                && let Some(f) = context.unverified(margin)
            {
                audit.findings.push(f);
            }
        }
    }
    audit.findings.sort_by(|a, b| {
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
    audit
}

/// Whether the gate fails: a finding in a category that fails it.
pub fn gate_failed(audit: &Audit, fail_on: &[Category]) -> bool {
    audit.findings.iter().any(|f| fail_on.contains(&f.category))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Order {
    Before,
    Ambiguous,
    After,
}

enum Judgement {
    Before,
    Unrelated,
    Finding(Box<Finding>),
}

struct Context<'a, 's> {
    joined: &'a Joined<'s>,
    turn: &'a Turn,
    tool: &'a ToolCall,
    conversation_id: &'a str,
    abort_span: &'a Span,
    abort_time: u64,
    abort_signal: &'a str,
    skew: u64,
}

impl Context<'_, '_> {
    fn span(&self, i: usize) -> &Span {
        &self.joined.spans[i]
    }

    /// The skew tolerated between the write's clock and the abort's: none on the same host
    /// (span timestamps are exact to the nanosecond), the configured skew across hosts, and
    /// a vendor's clock is always another host's.
    fn tolerance(&self, write: &Write) -> u64 {
        match write.source {
            Source::Span(i) if same_clock(self.span(i), self.abort_span) => 0,
            _ => self.skew,
        }
    }

    /// Where a time with the given precision and tolerance falls against the abort. The true
    /// time lies in `[time, time + precision)`, give or take the tolerance.
    fn order(&self, time: u64, precision: u64, tolerance: u64) -> Order {
        let abort = self.abort_time;
        if time
            .saturating_add(precision.max(1))
            .saturating_add(tolerance)
            <= abort
        {
            Order::Before
        } else if time > abort.saturating_add(tolerance) {
            Order::After
        } else {
            Order::Ambiguous
        }
    }

    fn judge(&self, write: &Write) -> Judgement {
        let tolerance = self.tolerance(write);
        let abort = self.abort_time;
        let mut evidence = write.evidence.clone();
        match write.outcome {
            Outcome::Committed { time, inferred } => {
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
            Outcome::RolledBack { time } => {
                if self.order(time, write.precision, tolerance) == Order::Before {
                    return Judgement::Unrelated;
                }
                Judgement::Finding(Box::new(self.finding(
                    Category::PreCommitAbort,
                    false,
                    Some(write),
                    Some((time, false)),
                    evidence,
                )))
            }
            Outcome::Unfinished | Outcome::Accepted => {
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
            Source::Span(i) => self.span(i).end,
            Source::Event(_) => None,
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
            let (service, span_id, event_id) = match w.source {
                Source::Span(i) => {
                    let span = self.span(i);
                    (span.service().to_owned(), Some(span.span_id), None)
                }
                Source::Event(e) => {
                    let event = &self.joined.events[e];
                    (event.vendor.clone(), None, Some(event.id.clone()))
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
        Finding {
            id,
            category,
            late: category.is_late(),
            ambiguous,
            conversation_id: self.conversation_id.to_owned(),
            trace_id: self.turn.trace_id,
            abort: AbortInfo {
                time: self.abort_time,
                signal: self.abort_signal.to_owned(),
            },
            tool_call: ToolCallInfo {
                span_id: tool_span.span_id,
                name: self.tool.name.clone(),
                tool_call_id: self.tool.call_id.clone(),
                start: tool_span.start,
                end: tool_span.end,
            },
            write: write_info,
            join: write.map(|w| w.join.clone()),
            evidence,
        }
    }

    fn dispatched(&self, write: Option<&Write>, request_after_abort: bool) -> Finding {
        let tool_span = self.span(self.tool.span);
        let mut evidence = Vec::new();
        let request = write.and_then(|w| w.outbound).map(|o| self.span(o));
        match request {
            Some(request) if request_after_abort && tool_span.start < self.abort_time => {
                evidence.push(format!(
                    "the tool call started before the abort, but its request {:?} started {} after it",
                    request.name,
                    human_gap(request.start - self.abort_time)
                ));
            }
            _ => evidence.push(format!(
                "the tool call started {} after the abort, in the aborted turn: the runtime ignored the abort",
                human_gap(tool_span.start.saturating_sub(self.abort_time))
            )),
        }
        let commit = write.and_then(|w| match w.outcome {
            Outcome::Committed { time, inferred } => Some((time, inferred)),
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

    fn dispatched_request(&self, request: usize) -> Finding {
        let span = self.span(request);
        let write = Write {
            outcome: Outcome::Unfinished,
            source: Source::Span(request),
            operation: span.name.to_string(),
            join: Via::Parent.as_str().to_owned(),
            queued: false,
            outbound: Some(request),
            handler: None,
            precision: 1,
            evidence: vec!["no write was found downstream of it".to_owned()],
        };
        self.dispatched(Some(&write), true)
    }

    /// An at-risk tool call with no write downstream: `unverified` when it was in flight at
    /// the abort and nothing downstream of it is known.
    fn unverified(&self, margin: u64) -> Option<Finding> {
        let tool_span = self.span(self.tool.span);
        let abort = self.abort_time;
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

/// Every write a tool call caused, with its outcome, found in the spans reached from it.
fn writes_of(joined: &Joined<'_>, tool: &ToolCall, rules: &Rules) -> Vec<Write> {
    let spans = joined.spans;
    let reached: HashMap<usize, &Reached> = tool.downstream.iter().map(|r| (r.span, r)).collect();
    // The server or consumer span that handled a reached span: its nearest such ancestor on
    // the path from the tool call.
    let handler_of = |mut i: usize| -> Option<usize> {
        let mut steps = 0;
        while let Some(r) = reached.get(&i) {
            if matches!(spans[i].kind, SpanKind::Server | SpanKind::Consumer) {
                return Some(i);
            }
            i = r.from;
            steps += 1;
            if steps > reached.len() {
                break;
            }
        }
        None
    };
    let under = |mut i: usize, ancestor: usize| -> bool {
        let mut steps = 0;
        while let Some(r) = reached.get(&i) {
            if r.from == ancestor {
                return true;
            }
            i = r.from;
            steps += 1;
            if steps > reached.len() {
                break;
            }
        }
        false
    };

    let mut writes = Vec::new();
    let base = |i: usize, outcome: Outcome, operation: String, evidence: Vec<String>| {
        let r = reached[&i];
        Write {
            outcome,
            source: Source::Span(i),
            operation,
            join: r.via.as_str().to_owned(),
            queued: r.via == Via::Link,
            outbound: r.outbound,
            handler: handler_of(i),
            precision: 1,
            evidence,
        }
    };

    // Database statements, grouped by the request that ran them, replayed in order so that a
    // transaction's COMMIT or ROLLBACK decides the fate of its writes.
    let mut groups: Vec<(Option<usize>, Vec<usize>)> = Vec::new();
    for r in &tool.downstream {
        if !is_db_span(&spans[r.span]) {
            continue;
        }
        let key = handler_of(r.span).or(Some(r.from));
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, list)) => list.push(r.span),
            None => groups.push((key, vec![r.span])),
        }
    }
    let commit_rules = &rules.commit;
    for (_, mut statements) in groups {
        statements.sort_by_key(|i| (spans[*i].start, spans[*i].span_id));
        let mut in_transaction = false;
        let mut pending: Vec<usize> = Vec::new();
        let autocommit = |pending: &mut Vec<usize>, writes: &mut Vec<Write>| {
            for w in pending.drain(..) {
                let time = spans[w].end.unwrap_or(spans[w].start);
                writes.push(base(
                    w,
                    Outcome::Committed {
                        time,
                        inferred: false,
                    },
                    describe_statement(&spans[w]),
                    vec![format!(
                        "{} ran outside a transaction, so it committed when it ended",
                        describe_statement(&spans[w])
                    )],
                ));
            }
        };
        for i in statements {
            let span = &spans[i];
            let op = db_operation(span);
            if matches_any(&op, &span.name, &commit_rules.begin_operations) {
                if !in_transaction {
                    autocommit(&mut pending, &mut writes);
                }
                in_transaction = true;
            } else if matches_any(&op, &span.name, &commit_rules.commit_operations) {
                if !pending.is_empty() {
                    let time = span.end.unwrap_or(span.start);
                    let statements: Vec<String> = pending
                        .iter()
                        .map(|w| describe_statement(&spans[*w]))
                        .collect();
                    writes.push(base(
                        i,
                        Outcome::Committed {
                            time,
                            inferred: false,
                        },
                        format!("COMMIT ({})", statements.join(", ")),
                        vec![format!(
                            "{} committed by {:?}",
                            statements.join(", "),
                            span.name
                        )],
                    ));
                    pending.clear();
                }
                in_transaction = false;
            } else if matches_any(&op, &span.name, &commit_rules.rollback_operations) {
                if !pending.is_empty() {
                    let time = span.end.unwrap_or(span.start);
                    let statements: Vec<String> = pending
                        .iter()
                        .map(|w| describe_statement(&spans[*w]))
                        .collect();
                    writes.push(base(
                        i,
                        Outcome::RolledBack { time },
                        format!("ROLLBACK ({})", statements.join(", ")),
                        vec![format!(
                            "{} rolled back by {:?}: the write did not land",
                            statements.join(", "),
                            span.name
                        )],
                    ));
                    pending.clear();
                }
                in_transaction = false;
            } else if commit_rules
                .write_operations
                .iter()
                .any(|w| w.eq_ignore_ascii_case(&op))
            {
                pending.push(i);
            }
        }
        if in_transaction {
            if let Some(&last) = pending.last() {
                let statements: Vec<String> = pending
                    .iter()
                    .map(|w| describe_statement(&spans[*w]))
                    .collect();
                writes.push(base(
                    last,
                    Outcome::Unfinished,
                    statements.join(", "),
                    vec![format!(
                        "{} ran in a transaction with no COMMIT or ROLLBACK recorded",
                        statements.join(", ")
                    )],
                ));
            }
        } else {
            autocommit(&mut pending, &mut writes);
        }
    }

    // Commit events on any downstream span.
    for r in &tool.downstream {
        for event in &spans[r.span].events {
            if commit_rules
                .event_names
                .iter()
                .any(|n| n.eq_ignore_ascii_case(&event.name))
            {
                writes.push(base(
                    r.span,
                    Outcome::Committed {
                        time: event.time,
                        inferred: false,
                    },
                    format!("{} event on {}", event.name, spans[r.span].name),
                    vec![format!(
                        "a {:?} event on {:?}",
                        event.name, spans[r.span].name
                    )],
                ));
            }
        }
    }

    // Write-method server spans with no finer evidence under them: the end is an inferred
    // commit, an error status is rollback evidence, and 202 or a producer means the work was
    // only queued.
    let evidence_spans: Vec<usize> = writes
        .iter()
        .filter_map(|w| match w.source {
            Source::Span(i) => Some(i),
            Source::Event(_) => None,
        })
        .collect();
    for r in &tool.downstream {
        let span = &spans[r.span];
        if span.kind != SpanKind::Server {
            continue;
        }
        let Some(method) = http_method(span) else {
            continue;
        };
        if !commit_rules
            .write_methods
            .iter()
            .any(|m| m.eq_ignore_ascii_case(&method))
        {
            continue;
        }
        if evidence_spans
            .iter()
            .any(|e| *e == r.span || under(*e, r.span))
        {
            continue;
        }
        let status = http_status(span);
        let queued_status = status.is_some_and(|s| rules.queued.status_codes.contains(&s));
        let produced = tool
            .downstream
            .iter()
            .any(|d| spans[d.span].kind == SpanKind::Producer && under(d.span, r.span));
        let executed = tool.downstream.iter().any(|d| d.via == Via::Link);
        let operation = span.name.to_string();
        if queued_status || produced {
            if !executed {
                let why = if queued_status {
                    format!(
                        "the server answered {} (accepted for later)",
                        status.unwrap_or(0)
                    )
                } else {
                    "the server enqueued the work (a PRODUCER span)".to_owned()
                };
                writes.push(base(
                    r.span,
                    Outcome::Accepted,
                    operation,
                    vec![
                        why,
                        "no execution of the queued work was found in the inputs".to_owned(),
                    ],
                ));
            }
            continue;
        }
        let failed = span.status.code == StatusCode::Error || status.is_some_and(|s| s >= 400);
        match (span.end, failed) {
            (Some(end), true) => {
                let why = client_gone_marker(span, rules)
                    .map(|t| format!("the server span {:?} failed ({t}) with no commit recorded", span.name))
                    .unwrap_or_else(|| format!("the server span {:?} ended with an error and no commit recorded", span.name));
                writes.push(base(r.span, Outcome::RolledBack { time: end }, operation, vec![why]));
            }
            (Some(end), false) => writes.push(base(
                r.span,
                Outcome::Committed { time: end, inferred: true },
                operation,
                vec![format!(
                    "no database or commit span under {:?}: its end is taken as the commit (inferred)",
                    span.name
                )],
            )),
            (None, _) => writes.push(base(
                r.span,
                Outcome::Unfinished,
                operation,
                vec![format!("the server span {:?} never ended", span.name)],
            )),
        }
    }

    // A rollback carries the server's own words for why, when it has them.
    for write in &mut writes {
        if let (Outcome::RolledBack { .. }, Some(handler)) = (&write.outcome, write.handler)
            && let Some(reason) = client_gone_marker(&spans[handler], rules)
        {
            write
                .evidence
                .push(format!("the server noticed the client had gone ({reason})"));
        }
    }
    writes
}

/// Writes shown by the vendor events joined to a tool call, one per piece of work the events
/// are about. An event that joined through a request whose spans already show the write
/// corroborates that write instead of reporting it twice.
fn add_event_writes(joined: &Joined<'_>, tool: &ToolCall, writes: &mut Vec<Write>) {
    let events = joined.events;
    let mut groups: Vec<((&str, &str), Vec<&EventJoin>)> = Vec::new();
    for join in &tool.events {
        let event = &events[join.event];
        let key = (
            event.vendor.as_str(),
            event.subject.as_deref().unwrap_or(event.id.as_str()),
        );
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(join),
            None => groups.push((key, vec![join])),
        }
    }
    let role_order = |j: &&EventJoin| match events[j.event].role {
        Some(Role::Accepted) => 0,
        Some(Role::Started) => 1,
        Some(Role::Commit) => 2,
        Some(Role::Cancelled) | Some(Role::Failed) => 3,
        None => 4,
    };
    let outbound_of = |carrier: usize| {
        tool.downstream
            .iter()
            .find(|r| r.span == carrier)
            .and_then(|r| r.outbound)
    };
    for (_, mut members) in groups {
        members.sort_by_key(|j| (events[j.event].time, role_order(j), j.event));
        let last_with = |roles: &[Role]| {
            members
                .iter()
                .copied()
                .rev()
                .find(|j| events[j.event].role.is_some_and(|r| roles.contains(&r)))
        };
        // The work's fate is its last word: an object created and then paid landed when it
        // was paid; one created and then cancelled did not land.
        let commit = last_with(&[Role::Commit]);
        let stopped = last_with(&[Role::Cancelled, Role::Failed]);
        let accepted = members.iter().copied().find(|j| {
            matches!(
                events[j.event].role,
                Some(Role::Accepted) | Some(Role::Started)
            ) && commit.is_none_or(|c| events[j.event].time <= events[c.event].time)
        });
        let stopped_last =
            stopped.filter(|x| commit.is_none_or(|c| events[x.event].time >= events[c.event].time));
        let (outcome, shown) = if let Some(stop) = stopped_last {
            (
                Outcome::RolledBack {
                    time: events[stop.event].time,
                },
                stop,
            )
        } else if let Some(c) = commit {
            (
                Outcome::Committed {
                    time: events[c.event].time,
                    inferred: false,
                },
                c,
            )
        } else {
            match accepted {
                Some(a) => (Outcome::Accepted, a),
                None => continue,
            }
        };
        let event = &events[shown.event];
        let outbound = outbound_of(shown.carrier);
        // The group is joined by the most specific key any of its events carried.
        let strongest = members
            .iter()
            .copied()
            .min_by_key(|j| (j.weak, crate::correlate::key_preference(j.key)))
            .unwrap_or(shown);
        let describe = |j: &EventJoin| {
            let e = &events[j.event];
            format!(
                "{} event {} ({}{}) at {}",
                e.vendor,
                e.id,
                e.kind,
                e.role
                    .map(|r| format!(", {}", r.as_str()))
                    .unwrap_or_default(),
                crate::model::time::rfc3339(e.time)
            )
        };
        let corroborates = !matches!(outcome, Outcome::Accepted)
            && writes.iter().any(|w| {
                matches!(w.source, Source::Span(_))
                    && (outbound.is_none() || w.outbound == outbound)
            });
        if corroborates {
            for w in writes.iter_mut().filter(|w| {
                matches!(w.source, Source::Span(_))
                    && (outbound.is_none() || w.outbound == outbound)
            }) {
                w.evidence
                    .push(format!("corroborated by {}", describe(shown)));
            }
            continue;
        }
        let mut evidence: Vec<String> = members.iter().take(4).map(|j| describe(j)).collect();
        if members.len() > 4 {
            evidence.push(format!(
                "and {} more events about the same work",
                members.len() - 4
            ));
        }
        let key = if strongest.weak {
            evidence.push(
                "joined on the conversation id alone: the event does not name the call, so it goes to the call that was running when it happened".to_owned(),
            );
            format!("{} (weak)", strongest.key.as_str())
        } else {
            evidence.push(format!(
                "joined on {} {:?}",
                strongest.key.as_str(),
                strongest.value
            ));
            strongest.key.as_str().to_owned()
        };
        let queued = accepted.is_some() && matches!(outcome, Outcome::Committed { .. });
        if queued {
            evidence.push(
                "the work was accepted first and committed later: it ran from a queue".to_owned(),
            );
        }
        if matches!(outcome, Outcome::Accepted) {
            evidence.push(
                "no event says the accepted work completed, failed or was cancelled".to_owned(),
            );
        }
        writes.push(Write {
            outcome,
            source: Source::Event(shown.event),
            operation: event.kind.clone(),
            join: key,
            queued,
            outbound,
            handler: None,
            precision: event.precision.max(1),
            evidence,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::correlate::join;
    use crate::correlate::tests::{agent_turn, span, tool};
    use crate::model::SpanKind::*;
    use crate::model::{KeyKind, VendorEvent};

    fn audit(spans: &[Span]) -> Audit {
        let rules = Rules::default();
        classify(&join(spans, &[], &rules), &rules)
    }

    fn categories(audit: &Audit) -> Vec<(Category, bool)> {
        audit
            .findings
            .iter()
            .map(|f| (f.category, f.ambiguous))
            .collect()
    }

    /// A tool call at 10 ms whose HTTP request reaches a payments server; the user aborts at
    /// 300 ms.
    fn synchronous_call(server_end: u64, db: &[(u8, &str, u64, u64)]) -> Vec<Span> {
        let mut spans = vec![
            agent_turn(1, "c1", 0, 1000)
                .event("abort", 300, &[])
                .build(),
            tool(1, 2, "call_a", 10, 301).build(),
            span(1, 3, "POST", "agent", 20, 301)
                .parent(2)
                .kind(Client)
                .build(),
            span(1, 4, "POST /refunds", "payments", 25, server_end)
                .parent(3)
                .kind(Server)
                .attr("http.request.method", "POST")
                .int("http.response.status_code", 200)
                .build(),
        ];
        for (id, op, start, end) in db {
            spans.push(
                span(1, *id, op, "payments", *start, *end)
                    .parent(4)
                    .attr("db.system.name", "sqlite")
                    .attr("db.operation.name", op)
                    .build(),
            );
        }
        spans
    }

    #[test]
    fn commit_after_the_abort_on_the_synchronous_path_is_client_gone() {
        let spans = synchronous_call(
            800,
            &[
                (5, "BEGIN", 30, 31),
                (6, "INSERT", 32, 40),
                (7, "COMMIT", 700, 701),
            ],
        );
        let audit = audit(&spans);
        assert_eq!(categories(&audit), [(Category::ClientGone, false)]);
        let finding = &audit.findings[0];
        assert_eq!(
            finding.write.as_ref().unwrap().commit_time,
            Some(701_000_000)
        );
        assert!(!finding.write.as_ref().unwrap().inferred);
        assert_eq!(finding.delay_ns(), Some(401_000_000));
        assert_eq!(finding.join.as_deref(), Some("parent"));
        assert!(
            finding.evidence.iter().any(|e| e.contains("outlived")),
            "{:?}",
            finding.evidence
        );
    }

    #[test]
    fn commit_before_the_abort_is_counted_not_reported() {
        let spans = synchronous_call(120, &[(5, "INSERT", 32, 40)]);
        let audit = audit(&spans);
        assert!(audit.findings.is_empty(), "{:?}", audit.findings);
        assert_eq!(audit.committed_before_abort, 1);
    }

    #[test]
    fn rollback_after_the_abort_is_pre_commit_abort() {
        let spans = synchronous_call(
            500,
            &[
                (5, "BEGIN", 30, 31),
                (6, "INSERT", 32, 40),
                (7, "ROLLBACK", 450, 451),
            ],
        );
        assert_eq!(
            categories(&audit(&spans)),
            [(Category::PreCommitAbort, false)]
        );
    }

    #[test]
    fn insert_then_rollback_did_not_land_and_insert_alone_commits() {
        let spans = synchronous_call(900, &[(5, "INSERT", 400, 410)]);
        let audit = audit(&spans);
        assert_eq!(categories(&audit), [(Category::ClientGone, false)]);
        assert_eq!(
            audit.findings[0].write.as_ref().unwrap().commit_time,
            Some(410_000_000)
        );
    }

    #[test]
    fn write_server_span_without_db_spans_infers_its_commit() {
        let spans = synchronous_call(900, &[]);
        let audit = audit(&spans);
        assert_eq!(categories(&audit), [(Category::ClientGone, false)]);
        let write = audit.findings[0].write.as_ref().unwrap();
        assert!(write.inferred);
        assert_eq!(write.commit_time, Some(900_000_000));
    }

    #[test]
    fn queued_work_run_by_a_linked_consumer_is_late_queued() {
        let spans = vec![
            agent_turn(1, "c1", 0, 1000)
                .event("abort", 300, &[])
                .build(),
            tool(1, 2, "call_a", 10, 100).build(),
            span(1, 3, "POST", "agent", 20, 90)
                .parent(2)
                .kind(Client)
                .int("http.response.status_code", 202)
                .build(),
            span(1, 4, "POST /jobs", "payments", 25, 80)
                .parent(3)
                .kind(Server)
                .attr("http.request.method", "POST")
                .int("http.response.status_code", 202)
                .build(),
            span(1, 5, "publish jobs", "payments", 30, 35)
                .parent(4)
                .kind(Producer)
                .build(),
            span(2, 6, "process jobs", "worker", 900, 1500)
                .kind(Consumer)
                .link(1, 5)
                .build(),
            span(2, 7, "INSERT", "worker", 1000, 1100)
                .parent(6)
                .attr("db.system.name", "sqlite")
                .attr("db.operation.name", "INSERT")
                .build(),
        ];
        let audit = audit(&spans);
        assert_eq!(categories(&audit), [(Category::LateQueued, false)]);
        assert_eq!(audit.findings[0].join.as_deref(), Some("link"));
    }

    #[test]
    fn new_turn_after_the_abort_is_never_a_finding() {
        let mut spans = synchronous_call(120, &[(5, "INSERT", 32, 40)]);
        // Turn two of the same conversation, started after the abort, writes.
        spans.push(agent_turn(9, "c1", 2000, 3000).build());
        spans.push(tool(9, 2, "call_b", 2010, 2100).build());
        spans.push(
            span(9, 3, "POST", "agent", 2020, 2090)
                .parent(2)
                .kind(Client)
                .build(),
        );
        spans.push(
            span(9, 4, "POST /refunds", "payments", 2025, 2080)
                .parent(3)
                .kind(Server)
                .attr("http.request.method", "POST")
                .build(),
        );
        let audit = audit(&spans);
        assert!(audit.findings.is_empty(), "{:?}", audit.findings);
        assert_eq!(audit.aborted_turns, 1);
    }

    #[test]
    fn a_conversation_without_abort_produces_nothing() {
        let mut spans = synchronous_call(900, &[(5, "INSERT", 400, 410)]);
        spans[0].events = Box::default();
        let audit = audit(&spans);
        assert!(audit.findings.is_empty());
        assert_eq!(audit.aborted_turns, 0);
    }

    #[test]
    fn tool_call_started_after_the_abort_is_dispatched_after_abort() {
        let spans = vec![
            agent_turn(1, "c1", 0, 1000)
                .event("abort", 300, &[])
                .build(),
            tool(1, 2, "call_late", 350, 500).build(),
            span(1, 3, "POST", "agent", 360, 480)
                .parent(2)
                .kind(Client)
                .build(),
            span(1, 4, "POST /refunds", "payments", 365, 470)
                .parent(3)
                .kind(Server)
                .attr("http.request.method", "POST")
                .build(),
            span(1, 5, "INSERT", "payments", 370, 380)
                .parent(4)
                .attr("db.operation.name", "INSERT")
                .build(),
        ];
        let audit = audit(&spans);
        assert_eq!(
            categories(&audit),
            [(Category::DispatchedAfterAbort, false)]
        );
        assert_eq!(
            audit.findings[0].write.as_ref().unwrap().commit_time,
            Some(380_000_000)
        );
        assert_eq!(audit.tool_calls_at_risk, 0);
    }

    #[test]
    fn outbound_request_started_after_the_abort_is_dispatched_after_abort() {
        let spans = vec![
            agent_turn(1, "c1", 0, 1000)
                .event("abort", 300, &[])
                .build(),
            tool(1, 2, "call_a", 100, 600).build(),
            span(1, 3, "POST", "agent", 400, 580)
                .parent(2)
                .kind(Client)
                .build(),
            span(1, 4, "POST /refunds", "payments", 405, 570)
                .parent(3)
                .kind(Server)
                .attr("http.request.method", "POST")
                .build(),
        ];
        let audit = audit(&spans);
        assert_eq!(
            categories(&audit),
            [(Category::DispatchedAfterAbort, false)]
        );
        assert_eq!(audit.tool_calls_at_risk, 1);
    }

    #[test]
    fn in_flight_call_with_nothing_downstream_is_unverified() {
        let spans = vec![
            agent_turn(1, "c1", 0, 1000)
                .event("abort", 300, &[])
                .build(),
            tool(1, 2, "call_a", 100, 300).build(),
            span(1, 3, "POST", "agent", 110, 300)
                .parent(2)
                .kind(Client)
                .build(),
        ];
        let audit = audit(&spans);
        assert_eq!(categories(&audit), [(Category::Unverified, false)]);
        assert!(!audit.findings[0].late);
    }

    #[test]
    fn a_tool_span_left_open_by_the_abort_is_unverified() {
        let spans = vec![
            agent_turn(1, "c1", 0, 1000)
                .event("abort", 300, &[])
                .build(),
            tool(1, 2, "call_a", 100, 0).open().build(),
        ];
        let audit = audit(&spans);
        assert_eq!(categories(&audit), [(Category::Unverified, false)]);
        assert!(
            audit.findings[0]
                .evidence
                .iter()
                .any(|e| e.contains("never ended"))
        );
    }

    #[test]
    fn a_call_that_finished_long_before_the_abort_is_not_unverified() {
        let spans = vec![
            agent_turn(1, "c1", 0, 1000)
                .event("abort", 300, &[])
                .build(),
            tool(1, 2, "call_a", 100, 150).build(),
            span(1, 3, "POST", "agent", 110, 140)
                .parent(2)
                .kind(Client)
                .int("http.response.status_code", 200)
                .build(),
        ];
        assert!(audit(&spans).findings.is_empty());
    }

    #[test]
    fn commit_within_the_skew_of_the_abort_is_ambiguous_whichever_side() {
        for commit_end in [299, 301] {
            let spans = synchronous_call(900, &[(5, "INSERT", 200, commit_end)]);
            let audit = audit(&spans);
            assert_eq!(
                categories(&audit),
                [(Category::ClientGone, true)],
                "commit at {commit_end} ms"
            );
        }
    }

    #[test]
    fn same_host_timestamps_are_compared_without_skew() {
        let mut spans = synchronous_call(900, &[(5, "INSERT", 200, 299)]);
        for s in &mut spans {
            let mut resource = (*s.resource).clone();
            resource.attributes.0.push(crate::model::KeyValue {
                key: "host.name".into(),
                value: crate::model::Value::String("box".into()),
            });
            s.resource = std::sync::Arc::new(resource);
        }
        let audit = audit(&spans);
        assert!(audit.findings.is_empty(), "{:?}", audit.findings);
        assert_eq!(audit.committed_before_abort, 1);
    }

    #[test]
    fn a_link_cycle_does_not_loop_and_still_classifies() {
        let mut spans = synchronous_call(120, &[]);
        spans.push(
            span(2, 6, "process", "worker", 900, 1000)
                .kind(Consumer)
                .link(1, 4)
                .link(2, 7)
                .build(),
        );
        spans.push(
            span(2, 7, "INSERT", "worker", 950, 960)
                .parent(6)
                .attr("db.operation.name", "INSERT")
                .link(2, 6)
                .build(),
        );
        let audit = audit(&spans);
        assert_eq!(categories(&audit), [(Category::LateQueued, false)]);
    }

    fn vendor_event(
        id: &str,
        kind: &str,
        role: Option<Role>,
        at_ms: u64,
        precision_ms: u64,
        keys: &[(KeyKind, &str)],
    ) -> VendorEvent {
        VendorEvent {
            vendor: "stripe".into(),
            id: id.into(),
            kind: kind.into(),
            role,
            time: at_ms * 1_000_000,
            precision: precision_ms * 1_000_000,
            keys: keys.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
            subject: Some("pi_1".into()),
            origin: crate::model::Origin {
                input: std::sync::Arc::from("events.jsonl"),
                line: 1,
            },
        }
    }

    /// A tool call whose request carries an idempotency key to a vendor with no spans.
    fn vendor_only_call() -> Vec<Span> {
        vec![
            agent_turn(1, "c1", 0, 1000)
                .event("abort", 300, &[])
                .build(),
            tool(1, 2, "call_a", 10, 301).build(),
            span(1, 3, "POST", "agent", 20, 301)
                .parent(2)
                .kind(Client)
                .attr("http.request.header.idempotency-key", "key-1")
                .build(),
        ]
    }

    fn audit_with_events(spans: &[Span], events: &[VendorEvent]) -> Audit {
        let rules = Rules::default();
        classify(&join(spans, events, &rules), &rules)
    }

    #[test]
    fn a_vendor_commit_after_the_abort_joined_by_idempotency_key_is_client_gone() {
        let events = [vendor_event(
            "evt_1",
            "payment_intent.succeeded",
            Some(Role::Commit),
            700,
            1,
            &[(KeyKind::IdempotencyKey, "key-1")],
        )];
        let audit = audit_with_events(&vendor_only_call(), &events);
        assert_eq!(categories(&audit), [(Category::ClientGone, false)]);
        let finding = &audit.findings[0];
        assert_eq!(finding.join.as_deref(), Some("idempotency_key"));
        let write = finding.write.as_ref().unwrap();
        assert_eq!(write.event_id.as_deref(), Some("evt_1"));
        assert_eq!(write.service, "stripe");
        assert_eq!(write.commit_time, Some(700_000_000));
    }

    #[test]
    fn a_one_second_timestamp_around_the_abort_is_ambiguous() {
        // Stripe's `created` is whole seconds: 0 s stands for [0 s, 1 s), which holds the abort.
        let events = [vendor_event(
            "evt_1",
            "charge.succeeded",
            Some(Role::Commit),
            0,
            1000,
            &[(KeyKind::IdempotencyKey, "key-1")],
        )];
        let audit = audit_with_events(&vendor_only_call(), &events);
        assert_eq!(categories(&audit), [(Category::ClientGone, true)]);
        // A second later it is unambiguous.
        let events = [vendor_event(
            "evt_1",
            "charge.succeeded",
            Some(Role::Commit),
            1000,
            1000,
            &[(KeyKind::IdempotencyKey, "key-1")],
        )];
        assert_eq!(
            categories(&audit_with_events(&vendor_only_call(), &events)),
            [(Category::ClientGone, false)]
        );
    }

    #[test]
    fn accepted_then_committed_after_the_abort_is_late_queued() {
        let events = [
            vendor_event(
                "evt_1",
                "job.queued",
                Some(Role::Accepted),
                100,
                1,
                &[(KeyKind::IdempotencyKey, "key-1")],
            ),
            vendor_event(
                "evt_2",
                "job.succeeded",
                Some(Role::Commit),
                2000,
                1,
                &[(KeyKind::IdempotencyKey, "key-1")],
            ),
        ];
        let audit = audit_with_events(&vendor_only_call(), &events);
        assert_eq!(categories(&audit), [(Category::LateQueued, false)]);
        assert_eq!(
            audit.findings[0]
                .write
                .as_ref()
                .unwrap()
                .event_id
                .as_deref(),
            Some("evt_2")
        );
    }

    #[test]
    fn a_cancelled_event_before_any_commit_is_pre_commit_abort() {
        let events = [vendor_event(
            "evt_1",
            "payment_intent.canceled",
            Some(Role::Cancelled),
            400,
            1,
            &[(KeyKind::IdempotencyKey, "key-1")],
        )];
        assert_eq!(
            categories(&audit_with_events(&vendor_only_call(), &events)),
            [(Category::PreCommitAbort, false)]
        );
    }

    #[test]
    fn a_vendor_event_for_a_write_the_spans_show_corroborates_it() {
        let mut spans = synchronous_call(800, &[(5, "INSERT", 400, 410)]);
        spans[2].attributes.0.push(crate::model::KeyValue {
            key: "http.request.header.idempotency-key".into(),
            value: crate::model::Value::Array(vec![crate::model::Value::String("key-1".into())]),
        });
        let events = [vendor_event(
            "evt_1",
            "payment_intent.succeeded",
            Some(Role::Commit),
            420,
            1,
            &[(KeyKind::IdempotencyKey, "key-1")],
        )];
        let audit = audit_with_events(&spans, &events);
        assert_eq!(categories(&audit), [(Category::ClientGone, false)]);
        assert!(
            audit.findings[0]
                .evidence
                .iter()
                .any(|e| e.contains("corroborated by stripe event evt_1"))
        );
    }

    #[test]
    fn a_conversation_only_join_is_weak_and_a_new_turn_keeps_its_own_events() {
        let mut spans = vendor_only_call();
        spans.push(agent_turn(9, "c1", 2000, 3000).build());
        spans.push(tool(9, 2, "call_b", 2010, 2100).build());
        let late = vendor_event(
            "evt_1",
            "charge.succeeded",
            Some(Role::Commit),
            900,
            1,
            &[(KeyKind::ConversationId, "c1")],
        );
        let next_turn = vendor_event(
            "evt_2",
            "charge.succeeded",
            Some(Role::Commit),
            2050,
            1,
            &[(KeyKind::ConversationId, "c1")],
        );
        let audit = audit_with_events(&spans, &[late, next_turn]);
        assert_eq!(categories(&audit), [(Category::ClientGone, false)]);
        assert_eq!(
            audit.findings[0].join.as_deref(),
            Some("conversation_id (weak)")
        );
        assert_eq!(
            audit.findings[0]
                .write
                .as_ref()
                .unwrap()
                .event_id
                .as_deref(),
            Some("evt_1")
        );
    }

    #[test]
    fn fingerprints_depend_on_ids_not_times() {
        let a = audit(&synchronous_call(800, &[(5, "INSERT", 400, 410)]));
        let b = audit(&synchronous_call(850, &[(5, "INSERT", 420, 430)]));
        assert_eq!(a.findings[0].id, b.findings[0].id);
    }
}

//! Deciding what happened to each write a tool call caused, against the abort of its turn.
//! Pure functions over the joined spans: no I/O here.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::Rules;
use crate::correlate::{Joined, Reached, ToolCall, Turn, Via};
use crate::model::{Span, SpanId, SpanKind, StatusCode, TraceId};

/// What happened downstream of a tool call that the user's Stop did not reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// The server gave up before its commit point: the write did not land.
    PreCommitAbort,
    /// The server committed after the abort and answered nobody.
    ClientGone,
    /// The request was queued; a worker ran it after the abort.
    LateQueued,
    /// The tool call, or its request, started after the abort: the signal was ignored.
    DispatchedAfterAbort,
    /// In flight at the abort with no downstream evidence: nobody can tell whether it wrote.
    Unverified,
}

impl Category {
    pub const ALL: [Category; 5] = [
        Category::PreCommitAbort,
        Category::ClientGone,
        Category::LateQueued,
        Category::DispatchedAfterAbort,
        Category::Unverified,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::PreCommitAbort => "pre_commit_abort",
            Category::ClientGone => "client_gone",
            Category::LateQueued => "late_queued",
            Category::DispatchedAfterAbort => "dispatched_after_abort",
            Category::Unverified => "unverified",
        }
    }

    pub fn from_name(name: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// Whether findings of this category are writes that landed after the user stopped.
    pub fn is_late(self) -> bool {
        matches!(
            self,
            Category::ClientGone | Category::LateQueued | Category::DispatchedAfterAbort
        )
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    /// How the write was reached from the tool call: `parent` or `link`.
    pub join: &'static str,
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
    pub service: String,
    pub operation: String,
    pub span_id: SpanId,
    /// When the write committed (or rolled back, for `pre_commit_abort`); `None` if unknown.
    pub commit_time: Option<u64>,
    /// The commit time is a write-method server span's end, not a recorded commit.
    pub inferred: bool,
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
    pub conversations: u64,
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

#[derive(Clone, Debug)]
struct Write {
    outcome: Outcome,
    /// The span that shows the outcome (the COMMIT, the write statement, the server span…).
    span: usize,
    operation: String,
    via: Via,
    outbound: Option<usize>,
    /// The server or consumer span that handled the write, if any.
    handler: Option<usize>,
    evidence: Vec<String>,
}

pub fn classify(joined: &Joined<'_>, rules: &Rules) -> Audit {
    let mut audit = Audit {
        conversations: joined.agent_conversations() as u64,
        ..Audit::default()
    };
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
            let writes = writes_of(joined, tool, rules);
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

/// Whether two spans' timestamps come from the same clock: the same host when the resources
/// say so, else the same service instance.
fn same_clock(a: &Span, b: &Span) -> bool {
    let attr = |s: &Span, k: &str| s.resource.attributes.text(k).map(|v| v.into_owned());
    match (attr(a, "host.name"), attr(b, "host.name")) {
        (Some(x), Some(y)) => x == y,
        _ => {
            a.service() == b.service()
                && attr(a, "service.instance.id") == attr(b, "service.instance.id")
        }
    }
}

impl Context<'_, '_> {
    fn span(&self, i: usize) -> &Span {
        &self.joined.spans[i]
    }

    /// The window around the abort inside which the order of a timestamp against it cannot be
    /// told: the skew tolerance when the clocks differ (span timestamps are exact to the ns).
    fn tolerance(&self, span: &Span) -> u64 {
        if same_clock(span, self.abort_span) {
            0
        } else {
            self.skew
        }
    }

    fn judge(&self, write: &Write) -> Judgement {
        let shown = self.span(write.span);
        let tolerance = self.tolerance(shown);
        let abort = self.abort_time;
        let mut evidence = write.evidence.clone();
        match write.outcome {
            Outcome::Committed { time, inferred } => {
                let ambiguous = time.abs_diff(abort) <= tolerance;
                if time < abort && !ambiguous {
                    return Judgement::Before;
                }
                let category = if write.via == Via::Link {
                    Category::LateQueued
                } else {
                    Category::ClientGone
                };
                if ambiguous {
                    evidence.push(format!(
                        "the commit is {} from the abort, within the {} tolerance for clocks of different hosts, so its order against the abort cannot be told",
                        human_gap(time.abs_diff(abort)),
                        human_gap(tolerance)
                    ));
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
                if time + tolerance < abort {
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
            if http_status(outbound).is_none() && outbound.kind == SpanKind::Client {
                out.push(format!(
                    "the client span {:?} ended without a response status",
                    outbound.name
                ));
            }
        }
        if let (Some(commit_end), Some(server_end)) = (self.span(write.span).end, handler.end)
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
            let span = self.span(w.span);
            WriteInfo {
                service: span.service().to_owned(),
                operation: w.operation.clone(),
                span_id: span.span_id,
                commit_time: commit.map(|c| c.0),
                inferred: commit.is_some_and(|c| c.1),
            }
        });
        let write_span_id = write_info
            .as_ref()
            .map(|w| w.span_id.to_string())
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
            join: write.map_or("parent", |w| w.via.as_str()),
            evidence,
        }
    }

    fn dispatched(&self, write: Option<&Write>, request_after_abort: bool) -> Finding {
        let tool_span = self.span(self.tool.span);
        let mut evidence = Vec::new();
        if request_after_abort {
            let request = write.and_then(|w| w.outbound).map(|o| self.span(o));
            if let Some(request) = request {
                evidence.push(format!(
                    "the request {:?} started {} after the abort",
                    request.name,
                    human_gap(request.start - self.abort_time)
                ));
            }
        } else {
            evidence.push(format!(
                "the tool call started {} after the abort, in the aborted turn",
                human_gap(tool_span.start - self.abort_time)
            ));
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
            span: request,
            operation: span.name.clone(),
            via: Via::Parent,
            outbound: Some(request),
            handler: None,
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
            if request.kind == SpanKind::Client && http_status(request).is_none() {
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
        if known_downstream {
            return None;
        }
        let mut evidence = reasons;
        evidence.push(if requests.is_empty() {
            "no downstream span or event was found for it".to_owned()
        } else {
            "no server span or vendor event was found for its request".to_owned()
        });
        let write = requests.first().map(|&request| Write {
            outcome: Outcome::Unfinished,
            span: request,
            operation: self.span(request).name.clone(),
            via: Via::Parent,
            outbound: None,
            handler: None,
            evidence: Vec::new(),
        });
        Some(self.finding(Category::Unverified, false, write.as_ref(), None, evidence))
    }
}

fn http_status(span: &Span) -> Option<i64> {
    span.attributes
        .get("http.response.status_code")
        .or_else(|| span.attributes.get("http.status_code"))
        .and_then(|v| v.as_int())
}

fn http_method(span: &Span) -> Option<String> {
    span.attributes
        .text("http.request.method")
        .or_else(|| span.attributes.text("http.method"))
        .map(|m| m.to_ascii_uppercase())
}

fn is_db_span(span: &Span) -> bool {
    [
        "db.system.name",
        "db.system",
        "db.operation.name",
        "db.operation",
        "db.query.text",
        "db.statement",
    ]
    .iter()
    .any(|k| span.attributes.get(k).is_some())
}

/// The database operation of a span, upper-cased: the semconv operation attribute, else the
/// first word of the query summary or text, else of the span name.
fn db_operation(span: &Span) -> String {
    let from_attr = ["db.operation.name", "db.operation"]
        .iter()
        .find_map(|k| span.attributes.text(k).map(|v| v.into_owned()));
    let first_word = |s: &str| s.split_whitespace().next().unwrap_or("").to_owned();
    let op = from_attr
        .or_else(|| {
            span.attributes
                .text("db.query.summary")
                .map(|s| first_word(&s))
        })
        .or_else(|| {
            span.attributes
                .text("db.query.text")
                .map(|s| first_word(&s))
        })
        .or_else(|| span.attributes.text("db.statement").map(|s| first_word(&s)))
        .unwrap_or_else(|| first_word(&span.name));
    op.to_ascii_uppercase()
}

fn matches_any(op: &str, name: &str, list: &[String]) -> bool {
    list.iter()
        .any(|want| want.eq_ignore_ascii_case(op) || want.eq_ignore_ascii_case(name))
}

fn is_client_gone_status(span: &Span, rules: &Rules) -> Option<String> {
    if let Some(status) = http_status(span).filter(|s| rules.client_gone.status_codes.contains(s)) {
        return Some(format!("HTTP status {status}"));
    }
    let mut texts: Vec<String> = Vec::new();
    if let Some(t) = span.attributes.text("error.type") {
        texts.push(t.into_owned());
    }
    texts.push(span.status.message.clone());
    for event in span.events.iter().filter(|e| e.name == "exception") {
        for key in ["exception.type", "exception.message"] {
            if let Some(t) = event.attributes.text(key) {
                texts.push(t.into_owned());
            }
        }
    }
    texts.into_iter().find_map(|text| {
        let lower = text.to_ascii_lowercase();
        rules
            .client_gone
            .error_markers
            .iter()
            .find(|m| lower.contains(&m.to_ascii_lowercase()))
            .map(|_| text)
    })
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
            span: i,
            operation,
            via: r.via,
            outbound: r.outbound,
            handler: handler_of(i),
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
    let evidence_spans: Vec<usize> = writes.iter().map(|w| w.span).collect();
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
        let operation = span.name.clone();
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
                let why = is_client_gone_status(span, rules)
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
            && let Some(reason) = is_client_gone_status(&spans[handler], rules)
        {
            write
                .evidence
                .push(format!("the server noticed the client had gone ({reason})"));
        }
    }
    writes
}

fn describe_statement(span: &Span) -> String {
    let op = db_operation(span);
    match span
        .attributes
        .text("db.collection.name")
        .or_else(|| span.attributes.text("db.sql.table"))
    {
        Some(table) => format!("{op} {table}"),
        None => op,
    }
}

/// A duration in words for evidence sentences: `412 ms`, `1.234 s`, `850 µs`.
pub fn human_gap(ns: u64) -> String {
    if ns >= 1_000_000_000 {
        format!(
            "{}.{:03} s",
            ns / 1_000_000_000,
            (ns % 1_000_000_000) / 1_000_000
        )
    } else if ns >= 1_000_000 {
        format!("{} ms", ns / 1_000_000)
    } else {
        format!("{} µs", ns / 1_000)
    }
}

/// FNV-1a 64 over the parts, with a separator: stable across runs, platforms and versions,
/// which a `std` hasher does not promise.
fn fingerprint(parts: &[&str]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(0x1f)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::correlate::join;
    use crate::correlate::tests::{agent_turn, span, tool};
    use crate::model::SpanKind::*;

    fn audit(spans: &[Span]) -> Audit {
        let rules = Rules::default();
        classify(&join(spans, &rules), &rules)
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
        assert_eq!(finding.join, "parent");
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
        assert_eq!(audit.findings[0].join, "link");
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
        spans[0].events.clear();
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

    #[test]
    fn fingerprints_depend_on_ids_not_times() {
        let a = audit(&synchronous_call(800, &[(5, "INSERT", 400, 410)]));
        let b = audit(&synchronous_call(850, &[(5, "INSERT", 420, 430)]));
        assert_eq!(a.findings[0].id, b.findings[0].id);
    }
}

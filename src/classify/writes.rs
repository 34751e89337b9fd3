//! The writes a tool call caused, found in the spans reached from it: database transactions
//! replayed statement by statement, commit events, and write-method server spans with no finer
//! evidence under them.

use std::collections::HashMap;

use crate::correlate::{Joined, Reached, ToolCall};
use crate::model::{Span, SpanKind};
use crate::rules::evidence::{
    Statement, client_gone_marker, describe_statement, handler_succeeded, http_method, http_status,
    is_db_span, statement, time_precision,
};
use crate::rules::{CommitRules, Rules};

/// What the evidence shows happened to a write.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum WriteOutcome {
    Committed {
        time: u64,
        inferred: bool,
    },
    RolledBack {
        time: u64,
        /// Taken from a failed span around the write, not a recorded ROLLBACK.
        inferred: bool,
    },
    /// A transaction began (or a write server span never ended) and its fate was not recorded.
    Unfinished,
    /// The request was accepted for later execution and no execution was found.
    Accepted,
}

/// What shows a write: a span (the COMMIT, the write statement, the server span…) or a
/// vendor event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum WriteSource {
    Span(usize),
    Event(usize),
}

#[derive(Clone, Debug)]
pub(super) struct Write {
    pub(super) outcome: WriteOutcome,
    pub(super) source: WriteSource,
    pub(super) operation: String,
    /// How it was reached from the tool call: `parent`, `link`, or the key a vendor event
    /// was joined on.
    pub(super) join: String,
    /// It ran later from a queue: reached through a span link, or a vendor event that
    /// followed an `accepted` one.
    pub(super) queued: bool,
    pub(super) outbound: Option<usize>,
    /// The server or consumer span that handled the write, if any.
    pub(super) handler: Option<usize>,
    /// How coarse the outcome's time is, in nanoseconds.
    pub(super) precision: u64,
    pub(super) evidence: Vec<String>,
    /// Accepted work that a cancel, acknowledged after the abort, stopped before it ran.
    pub(super) cancelled: bool,
}

/// Every write a tool call caused, with its outcome, found in the spans reached from it.
pub(super) fn writes_of(joined: &Joined<'_>, tool: &ToolCall, rules: &Rules) -> Vec<Write> {
    let reach = Reach::new(joined.spans, tool, rules);
    let mut writes = db_transactions(&reach, &rules.commit);
    writes.extend(commit_events(&reach, &rules.commit));
    let found: Vec<usize> = writes
        .iter()
        .filter_map(|w| match w.source {
            WriteSource::Span(i) => Some(i),
            WriteSource::Event(_) => None,
        })
        .collect();
    writes.extend(server_spans(&reach, &found, rules));
    // A rollback carries the server's own words for why, when it has them.
    for write in &mut writes {
        if let (WriteOutcome::RolledBack { .. }, Some(handler)) = (&write.outcome, write.handler)
            && let Some(reason) = client_gone_marker(&joined.spans[handler], rules)
        {
            write
                .evidence
                .push(format!("the server noticed the client had gone ({reason})"));
        }
    }
    writes
}

/// The spans reached from a tool call, and how.
struct Reach<'a> {
    spans: &'a [Span],
    rules: &'a Rules,
    tool: &'a ToolCall,
    reached: HashMap<usize, &'a Reached>,
}

impl<'a> Reach<'a> {
    fn new(spans: &'a [Span], tool: &'a ToolCall, rules: &'a Rules) -> Reach<'a> {
        let reached = tool.downstream.iter().map(|r| (r.span, r)).collect();
        Reach {
            spans,
            rules,
            tool,
            reached,
        }
    }

    /// The server or consumer span that handled a reached span: its nearest such ancestor on
    /// the path from the tool call.
    fn handler_of(&self, mut i: usize) -> Option<usize> {
        let mut steps = 0;
        while let Some(r) = self.reached.get(&i) {
            if matches!(self.spans[i].kind, SpanKind::Server | SpanKind::Consumer) {
                return Some(i);
            }
            i = r.from;
            steps += 1;
            if steps > self.reached.len() {
                break;
            }
        }
        None
    }

    /// Whether a reached span was reached through `ancestor`.
    fn under(&self, mut i: usize, ancestor: usize) -> bool {
        let mut steps = 0;
        while let Some(r) = self.reached.get(&i) {
            if r.from == ancestor {
                return true;
            }
            i = r.from;
            steps += 1;
            if steps > self.reached.len() {
                break;
            }
        }
        false
    }

    /// A write shown by reached span `i`.
    fn write(
        &self,
        i: usize,
        outcome: WriteOutcome,
        operation: String,
        evidence: Vec<String>,
    ) -> Write {
        let r = self.reached[&i];
        let precision = time_precision(&self.spans[i], self.rules);
        Write {
            outcome,
            source: WriteSource::Span(i),
            operation,
            join: r.via.as_str().to_owned(),
            queued: r.queued,
            outbound: r.outbound,
            handler: self.handler_of(i),
            precision,
            evidence,
            cancelled: false,
        }
    }
}

/// Database statements, grouped by the request that ran them (one connection's), replayed
/// in order so that a transaction's COMMIT or ROLLBACK decides the fate of its writes.
fn db_transactions(reach: &Reach<'_>, rules: &CommitRules) -> Vec<Write> {
    let spans = reach.spans;
    let mut groups: Vec<(Option<usize>, Vec<usize>)> = Vec::new();
    for r in &reach.tool.downstream {
        if !is_db_span(&spans[r.span]) {
            continue;
        }
        let handler = reach.handler_of(r.span);
        let key = handler.or(Some(r.from));
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, list)) => list.push(r.span),
            None => groups.push((key, vec![r.span])),
        }
    }
    let mut writes = Vec::new();
    for (_, mut statements) in groups {
        // Statements on one connection do not overlap, so their starts order them; where
        // starts tie (cut to the millisecond by OpenTelemetry JS, whose ends are then no
        // better), their place in a transaction does, then their ends.
        statements.sort_by_cached_key(|i| {
            let span = &spans[*i];
            (
                span.start,
                statement(span, rules).rank(),
                span.end,
                span.span_id,
            )
        });
        let handler = statements.first().and_then(|s| reach.handler_of(*s));
        replay(reach, rules, &statements, handler, &mut writes);
    }
    writes
}

/// Replays one connection's statements: writes in a transaction land at its COMMIT or not at
/// all (ROLLBACK, or ROLLBACK TO a savepoint set before them); a write outside one is its own
/// commit. A transaction whose end was not traced follows its `handler` (the server or
/// consumer span around it), marked inferred.
fn replay(
    reach: &Reach<'_>,
    rules: &CommitRules,
    statements: &[usize],
    handler: Option<usize>,
    writes: &mut Vec<Write>,
) {
    let spans = reach.spans;
    let described = |pending: &[usize]| -> String {
        let names: Vec<String> = pending
            .iter()
            .map(|w| describe_statement(&spans[*w], rules))
            .collect();
        names.join(", ")
    };
    let autocommit = |pending: &mut Vec<usize>, writes: &mut Vec<Write>| {
        for w in pending.drain(..) {
            let time = spans[w].end.unwrap_or(spans[w].start);
            let statement = describe_statement(&spans[w], rules);
            writes.push(reach.write(
                w,
                WriteOutcome::Committed {
                    time,
                    inferred: false,
                },
                statement.clone(),
                vec![format!(
                    "{statement} ran outside a transaction, so it committed when it ended"
                )],
            ));
        }
    };
    let mut in_transaction = false;
    let mut pending: Vec<usize> = Vec::new();
    // Savepoints, innermost last, with how many pending writes came before each.
    let mut savepoints: Vec<(String, usize)> = Vec::new();
    for &i in statements {
        let span = &spans[i];
        match statement(span, rules) {
            Statement::Begin => {
                if !in_transaction {
                    autocommit(&mut pending, writes);
                }
                in_transaction = true;
                savepoints.clear();
            }
            Statement::Commit => {
                if !pending.is_empty() {
                    let time = span.end.unwrap_or(span.start);
                    let statements = described(&pending);
                    writes.push(reach.write(
                        i,
                        WriteOutcome::Committed {
                            time,
                            inferred: false,
                        },
                        format!("COMMIT ({statements})"),
                        vec![format!("{statements} committed by {:?}", span.name)],
                    ));
                    pending.clear();
                }
                in_transaction = false;
            }
            Statement::Rollback => {
                if !pending.is_empty() {
                    let time = span.end.unwrap_or(span.start);
                    let statements = described(&pending);
                    writes.push(reach.write(
                        i,
                        WriteOutcome::RolledBack {
                            time,
                            inferred: false,
                        },
                        format!("ROLLBACK ({statements})"),
                        vec![format!(
                            "{statements} rolled back by {:?}: the write did not land",
                            span.name
                        )],
                    ));
                    pending.clear();
                }
                in_transaction = false;
            }
            Statement::Savepoint(name) => {
                // A savepoint outside a transaction opens one (SQLite, PostgreSQL).
                if !in_transaction {
                    autocommit(&mut pending, writes);
                }
                in_transaction = true;
                savepoints.push((name, pending.len()));
            }
            Statement::RollbackTo(name) => {
                // The writes after the savepoint are undone; it stays set.
                if let Some(&(_, before)) = savepoints.iter().rev().find(|(n, _)| *n == name) {
                    pending.truncate(before);
                }
            }
            Statement::Release(name) => {
                if let Some(at) = savepoints.iter().rposition(|(n, _)| *n == name) {
                    savepoints.truncate(at);
                }
            }
            Statement::Write => pending.push(i),
            Statement::Other => {}
        }
    }
    if !in_transaction {
        autocommit(&mut pending, writes);
        return;
    }
    let Some(&last) = pending.last() else {
        return;
    };
    let statements = described(&pending);
    let untraced = format!("{statements} ran in a transaction with no COMMIT or ROLLBACK traced");
    let inferred = handler
        .filter(|_| rules.infer_untraced_ends)
        .and_then(|h| spans[h].end.map(|end| (h, end)));
    match inferred {
        Some((h, end)) if handler_succeeded(&spans[h]) => writes.push(reach.write(
            h,
            WriteOutcome::Committed {
                time: end,
                inferred: true,
            },
            format!("COMMIT ({statements})"),
            vec![format!(
                "{untraced}; the {} span {:?} around it succeeded, so it is taken as committed when that span ended (inferred)",
                spans[h].kind.as_str(),
                spans[h].name
            )],
        )),
        Some((h, end)) => writes.push(reach.write(
            h,
            WriteOutcome::RolledBack {
                time: end,
                inferred: true,
            },
            format!("ROLLBACK ({statements})"),
            vec![format!(
                "{untraced}; the {} span {:?} around it failed, so it is taken as not committed (inferred)",
                spans[h].kind.as_str(),
                spans[h].name
            )],
        )),
        None => writes.push(reach.write(last, WriteOutcome::Unfinished, statements, vec![untraced])),
    }
}

/// Commit events on any downstream span.
fn commit_events(reach: &Reach<'_>, rules: &CommitRules) -> Vec<Write> {
    let mut writes = Vec::new();
    for r in &reach.tool.downstream {
        let span = &reach.spans[r.span];
        for event in &span.events {
            if rules
                .event_names
                .iter()
                .any(|n| n.eq_ignore_ascii_case(&event.name))
            {
                writes.push(reach.write(
                    r.span,
                    WriteOutcome::Committed {
                        time: event.time,
                        inferred: false,
                    },
                    format!("{} event on {}", event.name, span.name),
                    vec![format!("a {:?} event on {:?}", event.name, span.name)],
                ));
            }
        }
    }
    writes
}

/// Write-method server spans with no finer evidence under them (`found`: the spans that
/// already show a write): the end is an inferred commit, an error status is rollback
/// evidence. One that answered 202 or has a producer under it only queued the work: with no
/// execution of it reached, that is accepted work, finer evidence (the enqueue's own commit)
/// or not.
fn server_spans(reach: &Reach<'_>, found: &[usize], rules: &Rules) -> Vec<Write> {
    let spans = reach.spans;
    let downstream = &reach.tool.downstream;
    let mut writes = Vec::new();
    for r in downstream {
        let span = &spans[r.span];
        if span.kind != SpanKind::Server {
            continue;
        }
        let Some(method) = http_method(span) else {
            continue;
        };
        if !rules
            .commit
            .write_methods
            .iter()
            .any(|m| m.eq_ignore_ascii_case(&method))
        {
            continue;
        }
        let status = http_status(span);
        let queued_status = status.is_some_and(|s| rules.queued.status_codes.contains(&s));
        let produced = downstream
            .iter()
            .any(|d| spans[d.span].kind == SpanKind::Producer && reach.under(d.span, r.span));
        let executed = downstream.iter().any(|d| d.queued);
        let operation = span.name.to_string();
        // Work handed to a queue is accepted, whatever the enqueue wrote (a transactional
        // outbox commits the job's row): what matters is whether it ran.
        let finer = found
            .iter()
            .any(|e| *e == r.span || reach.under(*e, r.span));
        if finer && !(queued_status || produced) {
            continue;
        }
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
                writes.push(reach.write(
                    r.span,
                    WriteOutcome::Accepted,
                    operation,
                    vec![
                        why,
                        "no execution of the queued work was found in the inputs".to_owned(),
                    ],
                ));
            }
            continue;
        }
        let failed = !handler_succeeded(span);
        writes.push(match (span.end, failed) {
            (Some(end), true) => {
                let why = match client_gone_marker(span, rules) {
                    Some(marker) => format!(
                        "the server span {:?} failed ({marker}) with no commit recorded",
                        span.name
                    ),
                    None => format!(
                        "the server span {:?} ended with an error and no commit recorded",
                        span.name
                    ),
                };
                reach.write(
                    r.span,
                    WriteOutcome::RolledBack {
                time: end,
                inferred: true,
            },
                    operation,
                    vec![why],
                )
            }
            (Some(end), false) => reach.write(
                r.span,
                WriteOutcome::Committed {
                    time: end,
                    inferred: true,
                },
                operation,
                vec![format!(
                    "no database or commit span under {:?}: its end is taken as the commit (inferred)",
                    span.name
                )],
            ),
            (None, _) => reach.write(
                r.span,
                WriteOutcome::Unfinished,
                operation,
                vec![format!("the server span {:?} never ended", span.name)],
            ),
        });
    }
    writes
}

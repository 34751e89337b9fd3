//! Deciding what happened to each write a tool call caused, against the abort of its turn.
//! Pure functions over the joined spans: no I/O here.

mod judge;
mod vendor_writes;
mod writes;

use std::collections::HashSet;

use crate::correlate::Joined;
use crate::model::{Category, SpanId, TraceId};
use crate::rules::Rules;
use judge::{AbortedCall, Judgement};
use vendor_writes::add_event_writes;
use writes::{WriteOutcome, writes_of};

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
            let context = AbortedCall {
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
                    if matches!(write.outcome, WriteOutcome::RolledBack { .. }) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::correlate::join;
    use crate::model::SpanKind::*;
    use crate::model::{KeyKind, Role, Span, VendorEvent};
    use crate::testutil::{agent_turn, span, tool};

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

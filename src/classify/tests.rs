//! The classification on synthetic spans: one test per convention it applies.

use super::*;
use crate::correlate::join;
use crate::model::SpanKind::*;
use crate::model::{AbortRecord, KeyKind, Role, Span, VendorEvent};
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

// ---------------------------------------------------------------------------------------------
// Conventions of real frameworks and instrumentations (issue: fixtures/harness-frameworks and
// fixtures/harness-node show each of them in a real run).

/// A tool call at 10 ms whose request reaches a server (span 4) that runs `db` statements as
/// (id, name, start ns, end ns, extra attribute); the user aborts at 300 ms.
fn call_with_statements(
    server_end_ms: u64,
    server: impl FnOnce(crate::testutil::SpanBuilder) -> crate::testutil::SpanBuilder,
    db: &[(u8, &str, u64, u64)],
) -> Vec<Span> {
    let mut spans = vec![
        agent_turn(1, "c1", 0, 1000)
            .event("abort", 300, &[])
            .build(),
        tool(1, 2, "call_a", 10, 301).build(),
        span(1, 3, "POST", "agent", 20, 301)
            .parent(2)
            .kind(Client)
            .build(),
        server(
            span(1, 4, "POST /payments", "payments", 25, server_end_ms)
                .parent(3)
                .kind(Server)
                .attr("http.request.method", "POST"),
        )
        .build(),
    ];
    for (id, name, start, end) in db {
        spans.push(
            span(1, *id, name, "payments", 0, 0)
                .at_ns(*start, *end)
                .parent(4)
                .kind(Client)
                .attr("db.system", "sqlite")
                .attr("db.statement", name)
                .build(),
        );
    }
    spans
}

const MS: u64 = 1_000_000;

/// Statements of OpenTelemetry JS: starts cut to the millisecond (all at 400 ms here), ends
/// the start plus the duration, so that a short INSERT "ends" before the BEGIN that preceded
/// it. `last` is the transaction's last statement; span ids order them the wrong way round.
fn js_transaction(last: &str, order: [usize; 3]) -> Vec<Span> {
    let statements = [
        (9, "BEGIN", 400 * MS, 400 * MS + 600_000),
        (
            8,
            "INSERT INTO payments VALUES (?)",
            400 * MS,
            400 * MS + 300_000,
        ),
        (7, last, 400 * MS, 400 * MS + 200_000),
    ];
    let mut spans = call_with_statements(900, |s| s.int("http.response.status_code", 200), &[]);
    for i in order {
        let (id, name, start, end) = statements[i];
        spans.push(
            span(1, id, name, "payments", 0, 0)
                .at_ns(start, end)
                .parent(4)
                .kind(Client)
                .attr("db.system", "sqlite")
                .attr("db.statement", name)
                .resource_attr("telemetry.sdk.language", "nodejs")
                .build(),
        );
    }
    spans
}

const EVERY_ORDER: [[usize; 3]; 6] = [
    [0, 1, 2],
    [0, 2, 1],
    [1, 0, 2],
    [1, 2, 0],
    [2, 0, 1],
    [2, 1, 0],
];

#[test]
fn statements_with_equal_millisecond_starts_are_ordered_by_their_place_in_any_export_order() {
    for order in EVERY_ORDER {
        let audit = audit(&js_transaction("COMMIT", order));
        assert_eq!(
            categories(&audit),
            [(Category::ClientGone, false)],
            "{order:?}"
        );
        let write = audit.findings[0].write.as_ref().unwrap();
        assert_eq!(write.commit_time, Some(400 * MS + 200_000), "{order:?}");
        assert_eq!(write.operation, "COMMIT (INSERT)", "{order:?}");
        assert_eq!(
            write.precision, MS,
            "a JS span's times are known to the millisecond"
        );
        let rolled = audit_of(&js_transaction("ROLLBACK", order));
        assert_eq!(
            categories(&rolled),
            [(Category::PreCommitAbort, false)],
            "{order:?}"
        );
    }
}

fn audit_of(spans: &[Span]) -> Audit {
    audit(spans)
}

#[test]
fn a_rolled_back_insert_with_equal_starts_is_pre_commit_abort() {
    let db = [
        (7, "ROLLBACK", 400 * MS, 400 * MS + 700_000),
        (
            6,
            "INSERT INTO payments VALUES (?)",
            400 * MS,
            400 * MS + 300_000,
        ),
        (5, "BEGIN", 400 * MS, 400 * MS + 100_000),
    ];
    let spans = call_with_statements(900, |s| s.int("http.response.status_code", 200), &db);
    assert_eq!(
        categories(&audit(&spans)),
        [(Category::PreCommitAbort, false)]
    );
}

#[test]
fn the_verb_comes_from_whichever_text_names_one() {
    // SQLAlchemy: the span name and db.operation are "<VERB> <database>".
    let mut spans = call_with_statements(900, |s| s.int("http.response.status_code", 200), &[]);
    for (id, name, start) in [
        (5, "BEGIN payments.db", 400),
        (6, "INSERT payments.db", 410),
    ] {
        spans.push(
            span(1, id, name, "payments", start, start + 1)
                .parent(4)
                .kind(Client)
                .attr("db.system", "sqlite")
                .attr("db.operation", name)
                .attr("db.name", "payments.db")
                .build(),
        );
    }
    spans.push(
        span(1, 7, "sql.tx.commit", "payments", 420, 421)
            .parent(4)
            .attr("db.system", "postgresql")
            .build(),
    );
    let audit = audit(&spans);
    assert_eq!(categories(&audit), [(Category::ClientGone, false)]);
    assert_eq!(
        audit.findings[0].write.as_ref().unwrap().operation,
        "COMMIT (INSERT)"
    );
}

#[test]
fn a_transaction_whose_end_was_not_traced_follows_its_server_span() {
    // SQLAlchemy does not trace the DB-API commit(): BEGIN and INSERT, then nothing.
    let db = [
        (5, "BEGIN", 400 * MS, 401 * MS),
        (6, "INSERT", 402 * MS, 403 * MS),
    ];
    let succeeded = call_with_statements(900, |s| s.int("http.response.status_code", 200), &db);
    let audit_ok = audit(&succeeded);
    assert_eq!(categories(&audit_ok), [(Category::ClientGone, false)]);
    let write = audit_ok.findings[0].write.as_ref().unwrap();
    assert_eq!(write.commit_time, Some(900 * MS));
    assert!(write.inferred);
    assert!(
        audit_ok.findings[0]
            .evidence
            .iter()
            .any(|e| e.contains("no COMMIT or ROLLBACK traced") && e.contains("(inferred)")),
        "{:?}",
        audit_ok.findings[0].evidence
    );
    // The server saw its client leave before committing and answered 499: not committed.
    let failed = call_with_statements(900, |s| s.int("http.response.status_code", 499), &db);
    assert_eq!(
        categories(&audit(&failed)),
        [(Category::PreCommitAbort, false)]
    );
    // A server that answered 200 and then could not send it had done its work.
    let answered = call_with_statements(
        900,
        |s| {
            s.int("http.response.status_code", 200)
                .error("BrokenPipeError")
        },
        &db,
    );
    assert_eq!(
        categories(&audit(&answered)),
        [(Category::ClientGone, false)]
    );
}

#[test]
fn writes_after_a_savepoint_rolled_back_to_did_not_land() {
    let ms = |n: u64| n * MS;
    let db = [
        (5, "BEGIN", ms(400), ms(401)),
        (6, "INSERT INTO a", ms(402), ms(403)),
        (7, "SAVEPOINT s1", ms(404), ms(405)),
        (8, "INSERT INTO b", ms(406), ms(407)),
        (9, "ROLLBACK TO SAVEPOINT s1", ms(408), ms(409)),
        (10, "RELEASE SAVEPOINT s1", ms(410), ms(411)),
        (11, "COMMIT", ms(412), ms(413)),
    ];
    let spans = call_with_statements(900, |s| s.int("http.response.status_code", 200), &db);
    let landed = audit(&spans);
    assert_eq!(categories(&landed), [(Category::ClientGone, false)]);
    let write = landed.findings[0].write.as_ref().unwrap();
    assert_eq!(
        write.operation, "COMMIT (INSERT)",
        "only the first insert landed"
    );
    // Everything rolled back to the savepoint, and the rest by ROLLBACK: nothing landed.
    let mut rolled = db.to_vec();
    rolled[6] = (11, "ROLLBACK", ms(412), ms(413));
    let spans = call_with_statements(900, |s| s.int("http.response.status_code", 200), &rolled);
    assert_eq!(
        categories(&audit(&spans)),
        [(Category::PreCommitAbort, false)]
    );
}

#[test]
fn a_consumer_below_its_producer_in_the_same_trace_ran_from_a_queue() {
    // Celery: PRODUCER apply_async/task and CONSUMER run/task are parent and child.
    let spans = vec![
        agent_turn(1, "c1", 0, 1000)
            .event("abort", 300, &[])
            .build(),
        tool(1, 2, "call_a", 10, 200).build(),
        span(1, 3, "POST", "agent", 20, 200)
            .parent(2)
            .kind(Client)
            .int("http.response.status_code", 202)
            .build(),
        span(1, 4, "POST /payouts", "ledger", 25, 190)
            .parent(3)
            .kind(Server)
            .attr("http.request.method", "POST")
            .int("http.response.status_code", 202)
            .build(),
        span(1, 5, "apply_async/ledger.payout", "ledger", 30, 40)
            .parent(4)
            .kind(Producer)
            .build(),
        span(1, 6, "run/ledger.payout", "worker", 700, 800)
            .parent(5)
            .kind(Consumer)
            .build(),
        span(1, 7, "INSERT", "worker", 750, 751)
            .parent(6)
            .kind(Client)
            .attr("db.system", "sqlite")
            .attr("db.statement", "INSERT INTO payouts")
            .build(),
    ];
    let audit = audit(&spans);
    assert_eq!(categories(&audit), [(Category::LateQueued, false)]);
    assert_eq!(audit.findings[0].join.as_deref(), Some("parent"));
}

#[test]
fn a_tool_span_under_a_model_client_span_is_a_tool_call_and_nested_ones_are_counted() {
    let spans = vec![
        agent_turn(1, "c1", 0, 1000)
            .event("abort", 300, &[])
            .build(),
        span(1, 2, "chat gpt", "agent", 5, 400)
            .parent(1)
            .kind(Client)
            .attr("gen_ai.operation.name", "chat")
            .build(),
        tool(1, 3, "call_a", 10, 350).parent(2).build(),
        tool(1, 4, "call_inner", 20, 340).parent(3).build(),
    ];
    let rules = Rules::default();
    let joined = join(&spans, &[], &rules);
    let calls: Vec<_> = joined.turns[0]
        .tool_calls
        .iter()
        .map(|t| t.call_id.clone().unwrap())
        .collect();
    assert_eq!(calls, ["call_a"]);
    assert_eq!(joined.turns[0].nested_tool_spans, 1);
    let audit = classify(&joined, &rules);
    assert_eq!(categories(&audit), [(Category::Unverified, false)]);
}

#[test]
fn an_openinference_tool_takes_its_call_id_from_the_model_span_before_it() {
    let llm = |id: u8, start: u64, end: u64, calls: &[(&str, &str)]| {
        let mut s = span(1, id, "response", "agent", start, end)
            .parent(1)
            .attr("openinference.span.kind", "LLM");
        for (j, (name, call)) in calls.iter().enumerate() {
            s = s
                .attr(
                    &format!("llm.output_messages.0.message.tool_calls.{j}.tool_call.id"),
                    call,
                )
                .attr(
                    &format!(
                        "llm.output_messages.0.message.tool_calls.{j}.tool_call.function.name"
                    ),
                    name,
                );
        }
        s.build()
    };
    let oi_tool = |id: u8, name: &str, start: u64| {
        span(1, id, name, "agent", start, start + 5)
            .parent(1)
            .attr("openinference.span.kind", "TOOL")
            .attr("tool.name", name)
            .build()
    };
    let spans = vec![
        agent_turn(1, "c1", 0, 1000).build(),
        llm(
            2,
            10,
            50,
            &[
                ("lookup", "call_1"),
                ("pay", "call_2"),
                ("lookup", "call_3"),
            ],
        ),
        oi_tool(3, "pay", 60),
        oi_tool(4, "lookup", 61),
        oi_tool(5, "lookup", 62),
        llm(6, 100, 150, &[("pay", "call_4")]),
        oi_tool(7, "pay", 160),
    ];
    let joined = join(&spans, &[], &Rules::default());
    let calls: Vec<(String, Option<String>)> = joined.turns[0]
        .tool_calls
        .iter()
        .map(|t| (t.name.clone(), t.call_id.clone()))
        .collect();
    let want = |name: &str, id: &str| (name.to_owned(), Some(id.to_owned()));
    assert_eq!(
        calls,
        [
            want("pay", "call_2"),
            want("lookup", "call_1"),
            want("lookup", "call_3"),
            want("pay", "call_4")
        ]
    );
}

/// A turn served by the agent app's own server (span 1), with an ASGI receive span that saw
/// the client disconnect at `disconnect_ms`; the server span ends at 1000 ms. A tool call's
/// request (span 5) reaches a payments server that commits at 600 ms.
fn served_turn(disconnect_ms: u64) -> Vec<Span> {
    vec![
        span(1, 1, "POST /chat", "agent", 0, 1000)
            .kind(Server)
            .attr("session.id", "c1")
            .build(),
        span(1, 2, "POST /chat http receive", "agent", 5, disconnect_ms)
            .parent(1)
            .attr("asgi.event.type", "http.disconnect")
            .build(),
        tool(1, 4, "call_a", 100, 320).parent(1).build(),
        span(1, 5, "POST", "agent", 110, 320)
            .parent(4)
            .kind(Client)
            .attr("http.method", "POST")
            .build(),
        span(1, 6, "POST /payments", "payments", 120, 650)
            .parent(5)
            .kind(Server)
            .attr("http.request.method", "POST")
            .int("http.response.status_code", 200)
            .event("commit", 600, &[])
            .build(),
    ]
}

#[test]
fn a_disconnect_before_the_response_completed_is_an_inferred_abort() {
    let rules = Rules::default();
    let spans = served_turn(300);
    let joined = join(&spans, &[], &rules);
    let abort = joined.turns[0].abort.as_ref().unwrap();
    assert_eq!(abort.time, 300 * MS);
    assert!(abort.inferred(), "{}", abort.signal);
    assert!(abort.signal.contains("disconnected"), "{}", abort.signal);
    let audit = classify(&joined, &rules);
    assert_eq!(categories(&audit), [(Category::ClientGone, false)]);
    assert!(audit.findings[0].abort.inferred);
    // Inferred aborts gate by default; the rules can say they do not.
    let policy = |inferred_aborts| GatePolicy {
        fail_on: &[Category::ClientGone],
        inferred_aborts,
        allow: &[],
        today: "2026-01-01",
        baseline: None,
        fail_on_unprotected_tools: false,
    };
    assert!(Gate::judge(&audit, &policy(true)).failed);
    assert!(!Gate::judge(&audit, &policy(false)).failed);
}

#[test]
fn a_disconnect_after_the_response_completed_is_no_abort() {
    // ASGI servers report http.disconnect after a completed response too.
    let mut spans = served_turn(1001);
    // The tool's request got its answer, as in a completed turn.
    spans[3] = span(1, 5, "POST", "agent", 110, 660)
        .parent(4)
        .kind(Client)
        .attr("http.method", "POST")
        .int("http.status_code", 200)
        .build();
    spans[2] = tool(1, 4, "call_a", 100, 670).parent(1).build();
    let joined = join(&spans, &[], &Rules::default());
    assert!(
        joined.turns[0].abort.is_none(),
        "{:?}",
        joined.turns[0].abort
    );
}

#[test]
fn a_request_cut_off_as_the_turn_ended_is_an_inferred_abort() {
    // No receive span: only the tool's request, which ended with no status and nothing after.
    let mut spans = served_turn(300);
    spans.remove(1);
    let joined = join(&spans, &[], &Rules::default());
    let abort = joined.turns[0].abort.as_ref().unwrap();
    assert_eq!(abort.time, 320 * MS);
    assert!(abort.inferred());
    assert!(abort.signal.contains("cut off"), "{}", abort.signal);
    // The same request followed by more of the turn was not cut off by a Stop.
    spans.push(tool(1, 9, "call_b", 500, 510).parent(1).build());
    let joined = join(&spans, &[], &Rules::default());
    assert!(joined.turns[0].abort.is_none());
}

#[test]
fn an_agent_server_span_answering_499_is_an_inferred_abort() {
    let mut spans = served_turn(300);
    spans.remove(1);
    spans[0] = span(1, 1, "POST /chat", "agent", 0, 330)
        .kind(Server)
        .attr("session.id", "c1")
        .int("http.status_code", 499)
        .build();
    // The request got a status, so only the server's 499 shows the Stop.
    spans[2] = span(1, 5, "POST", "agent", 110, 320)
        .parent(4)
        .kind(Client)
        .attr("http.method", "POST")
        .int("http.status_code", 200)
        .build();
    let joined = join(&spans, &[], &Rules::default());
    let abort = joined.turns[0].abort.as_ref().unwrap();
    assert_eq!(abort.time, 330 * MS);
    assert!(abort.signal.contains("499"), "{}", abort.signal);
}

#[test]
fn a_recorded_signal_makes_an_earlier_inferred_abort_known() {
    let mut spans = served_turn(300);
    spans[0] = span(1, 1, "POST /chat", "agent", 0, 1000)
        .kind(Server)
        .attr("session.id", "c1")
        .event(
            "exception",
            302,
            &[("exception.type", "asyncio.exceptions.CancelledError")],
        )
        .build();
    let joined = join(&spans, &[], &Rules::default());
    let abort = joined.turns[0].abort.as_ref().unwrap();
    assert_eq!(abort.time, 300 * MS, "the earliest signal's time");
    assert!(!abort.inferred(), "a span records the Stop");
}

#[test]
fn a_call_started_within_the_skew_of_an_abort_log_time_is_not_called_dispatched_after_it() {
    // The log's time comes from the front end's clock: a call 3 ms after it may have been
    // sent before the Stop; one 80 ms after it was not.
    let turn = |call_ms: u64| {
        vec![
            agent_turn(1, "c1", 0, 1000).build(),
            tool(1, 2, "call_a", call_ms, 900).build(),
            span(1, 3, "POST", "agent", call_ms + 1, 880)
                .parent(2)
                .kind(Client)
                .build(),
            span(1, 4, "POST /refunds", "payments", call_ms + 2, 870)
                .parent(3)
                .kind(Server)
                .attr("http.request.method", "POST")
                .build(),
        ]
    };
    let record = AbortRecord {
        conversation_id: "c1".to_owned(),
        time: 300 * MS,
        precision: MS,
        trace_id: None,
        reason: None,
        origin: crate::model::Origin {
            input: "aborts.jsonl".into(),
            line: 1,
        },
    };
    let rules = Rules::default();
    let categories_at = |call_ms: u64| {
        let spans = turn(call_ms);
        let mut joined = join(&spans, &[], &rules);
        crate::correlate::place_aborts(&mut joined, std::slice::from_ref(&record), rules.skew_ns());
        categories(&classify(&joined, &rules))
    };
    assert_eq!(categories_at(303), [(Category::ClientGone, false)]);
    assert_eq!(
        categories_at(380),
        [(Category::DispatchedAfterAbort, false)]
    );
}

//! What would have stopped each late write, on synthetic spans: one test per mechanism's
//! decisions (docs/design.md, section 4).

use super::*;
use crate::correlate::join;
use crate::model::SpanKind::*;
use crate::model::{KeyKind, Role, Span, VendorEvent};
use crate::rules::AllowRule;
use crate::testutil::{SpanBuilder, agent_turn, span, tool};

fn audit(spans: &[Span], events: &[VendorEvent]) -> Audit {
    let rules = Rules::default();
    classify(&join(spans, events, &rules), &rules)
}

fn mechanism(f: &Finding, m: Mechanism) -> &Prevention {
    f.prevention
        .iter()
        .find(|p| p.mechanism == m)
        .unwrap_or_else(|| panic!("{m:?} in {:?}", f.prevention))
}

/// `(present, would_have_stopped)` of a mechanism.
fn decision(f: &Finding, m: Mechanism) -> (bool, Option<bool>) {
    let p = mechanism(f, m);
    (p.present, p.would_have_stopped)
}

fn only(audit: &Audit) -> &Finding {
    assert_eq!(audit.findings.len(), 1, "{:#?}", audit.findings);
    &audit.findings[0]
}

/// The agent's HTTP request from the tool span (id 2): no response status unless given.
fn request(id: u8, parent: u8, start: u64, end: u64) -> SpanBuilder {
    span(1, id, "POST", "agent", start, end)
        .parent(parent)
        .kind(Client)
        .attr("http.request.method", "POST")
        .attr("url.full", "http://payments.test/v1/payments")
}

/// A tool call at 10 ms whose request (cut off at the abort, 300 ms) reaches a payments server
/// that commits an INSERT at `commit` ms; `request` and `server` take what a test adds.
fn sync_call(
    commit: u64,
    request_with: impl FnOnce(SpanBuilder) -> SpanBuilder,
    server_with: impl FnOnce(SpanBuilder) -> SpanBuilder,
) -> Vec<Span> {
    vec![
        agent_turn(1, "c1", 0, 1000)
            .event("abort", 300, &[])
            .build(),
        tool(1, 2, "call_a", 10, 301).build(),
        request_with(request(3, 2, 20, 301)).build(),
        server_with(
            span(1, 4, "POST /v1/payments", "payments", 25, commit + 10)
                .parent(3)
                .kind(Server)
                .attr("http.request.method", "POST")
                .int("http.response.status_code", 200),
        )
        .build(),
        span(1, 5, "INSERT", "payments", commit - 5, commit)
            .parent(4)
            .attr("db.system.name", "sqlite")
            .attr("db.operation.name", "INSERT")
            .build(),
    ]
}

#[test]
fn a_commit_after_the_connection_closed_gives_a_check_its_margin() {
    let audit = audit(&sync_call(701, |r| r, |s| s), &[]);
    let f = only(&audit);
    assert_eq!(f.category, Category::ClientGone);
    let check = mechanism(f, Mechanism::CommitCheck);
    assert_eq!(
        (check.present, check.would_have_stopped),
        (false, Some(true))
    );
    // From the request's cut-off (301 ms) to the commit (701 ms).
    assert_eq!(check.margin_ns, Some(400_000_000));
    assert!(
        check.detail.starts_with(
            "a disconnect check before the commit had 400 ms to see the closed connection"
        ),
        "{}",
        check.detail
    );
    // Every mechanism has its entry, in order.
    let order: Vec<Mechanism> = f.prevention.iter().map(|p| p.mechanism).collect();
    assert_eq!(order, Mechanism::ALL);
}

#[test]
fn a_connection_kept_open_past_the_commit_leaves_a_check_nothing_to_see() {
    // The client did not cut its request off: it got its answer after the commit.
    let spans = sync_call(
        500,
        |r| {
            r.int("http.response.status_code", 200)
                .at_ns(20_000_000, 520_000_000)
        },
        |s| s,
    );
    let audit = audit(&spans, &[]);
    let f = only(&audit);
    assert_eq!(decision(f, Mechanism::CommitCheck), (false, Some(false)));
    assert!(
        mechanism(f, Mechanism::CommitCheck)
            .detail
            .contains("kept the connection open")
    );
}

#[test]
fn a_server_that_saw_the_client_go_has_a_check_that_worked() {
    let mut spans = sync_call(600, |r| r, |s| s);
    // The server rolled back instead, recording 499.
    spans[3] = span(1, 4, "POST /v1/refunds", "payments", 25, 610)
        .parent(3)
        .kind(Server)
        .attr("http.request.method", "POST")
        .int("http.response.status_code", 499)
        .attr("error.type", "client_disconnected")
        .error("client closed the connection before commit")
        .build();
    spans.pop();
    spans.push(
        span(1, 5, "BEGIN", "payments", 30, 31)
            .parent(4)
            .attr("db.operation.name", "BEGIN")
            .build(),
    );
    spans.push(
        span(1, 6, "INSERT", "payments", 32, 40)
            .parent(4)
            .attr("db.operation.name", "INSERT")
            .build(),
    );
    spans.push(
        span(1, 7, "ROLLBACK", "payments", 600, 601)
            .parent(4)
            .attr("db.operation.name", "ROLLBACK")
            .build(),
    );
    let audit = audit(&spans, &[]);
    let f = only(&audit);
    assert_eq!(f.category, Category::PreCommitAbort);
    assert_eq!(decision(f, Mechanism::CommitCheck), (true, Some(true)));
    assert!(
        mechanism(f, Mechanism::CommitCheck)
            .detail
            .contains("saw the client gone (HTTP status 499)")
    );
    assert_eq!(
        mechanism(f, Mechanism::Compensation).detail,
        "nothing landed to reverse"
    );
    assert!(audit.calls[0].commit_check);
}

#[test]
fn a_deadline_that_passed_before_the_commit_was_ignored() {
    // Request-Timeout: 0.4 s after the request's start (20 ms): 420 ms; commit at 701 ms.
    let spans = sync_call(
        701,
        |r| r.attr("http.request.header.request_timeout", "0.4"),
        |s| s,
    );
    let audit = audit(&spans, &[]);
    let f = only(&audit);
    let deadline = mechanism(f, Mechanism::Deadline);
    assert_eq!(
        (deadline.present, deadline.would_have_stopped),
        (true, Some(true))
    );
    assert_eq!(deadline.margin_ns, Some(281_000_000));
    assert!(
        deadline.detail.contains("the server did not honour it"),
        "{}",
        deadline.detail
    );
    assert!(audit.calls[0].deadline);
}

#[test]
fn a_deadline_after_the_commit_could_not_have_stopped_it() {
    // grpc-timeout 2 s, captured on the server span as gRPC metadata.
    let spans = sync_call(
        701,
        |r| r,
        |s| s.attr("rpc.grpc.request.metadata.grpc-timeout", "2S"),
    );
    let audit = audit(&spans, &[]);
    let f = only(&audit);
    let deadline = mechanism(f, Mechanism::Deadline);
    assert_eq!(
        (deadline.present, deadline.would_have_stopped),
        (true, Some(false))
    );
    assert!(deadline.margin_ns.unwrap() < 0);
}

#[test]
fn without_a_deadline_the_room_for_one_is_named() {
    let audit = audit(&sync_call(701, |r| r, |s| s), &[]);
    let deadline = mechanism(only(&audit), Mechanism::Deadline);
    assert_eq!(
        (deadline.present, deadline.would_have_stopped),
        (false, None)
    );
    assert!(
        deadline
            .detail
            .contains("ran 681 ms from its start to the commit"),
        "{}",
        deadline.detail
    );
}

#[test]
fn a_server_that_honoured_the_deadline_rolled_back_on_it() {
    // Request-Timeout: 0.38 s after the request's start (20 ms): 400 ms; the server gives up
    // at 600 ms.
    let mut spans = sync_call(
        600,
        |r| r.attr("http.request.header.request-timeout", "0.38"),
        |s| s,
    );
    spans[3] = span(1, 4, "POST /v1/transfers", "payments", 25, 610)
        .parent(3)
        .kind(Server)
        .attr("http.request.method", "POST")
        .attr("http.request.header.request-timeout", "0.38")
        .int("http.response.status_code", 504)
        .attr("error.type", "deadline_exceeded")
        .error("deadline exceeded before commit; rolled back")
        .build();
    spans.pop();
    spans.push(
        span(1, 5, "BEGIN", "payments", 30, 31)
            .parent(4)
            .attr("db.operation.name", "BEGIN")
            .build(),
    );
    spans.push(
        span(1, 6, "INSERT", "payments", 32, 40)
            .parent(4)
            .attr("db.operation.name", "INSERT")
            .build(),
    );
    spans.push(
        span(1, 7, "ROLLBACK", "payments", 600, 601)
            .parent(4)
            .attr("db.operation.name", "ROLLBACK")
            .build(),
    );
    let audit = audit(&spans, &[]);
    let f = only(&audit);
    assert_eq!(f.category, Category::PreCommitAbort);
    assert_eq!(decision(f, Mechanism::Deadline), (true, Some(true)));
    assert!(
        mechanism(f, Mechanism::Deadline)
            .detail
            .contains("the server honoured it: it gave up (HTTP status 504)"),
        "{}",
        mechanism(f, Mechanism::Deadline).detail
    );
    // The connection check did not do it, though it had the time to.
    let check = mechanism(f, Mechanism::CommitCheck);
    assert_eq!(
        (check.present, check.would_have_stopped),
        (false, Some(true))
    );
    assert!(
        check
            .detail
            .starts_with("the server gave up on the deadline")
    );
}

/// A tool call whose `POST /v1/payouts` is answered 202 with a producer span naming job
/// `job_1`; the abort is at 300 ms; `more` adds the worker, the cancel, …
fn queued_call(more: Vec<Span>) -> Vec<Span> {
    let mut spans = vec![
        agent_turn(1, "c1", 0, 3000)
            .event("abort", 300, &[])
            .build(),
        tool(1, 2, "call_a", 10, 100).build(),
        span(1, 3, "POST", "agent", 20, 90)
            .parent(2)
            .kind(Client)
            .attr("http.request.method", "POST")
            .attr("url.full", "http://payments.test/v1/payouts")
            .int("http.response.status_code", 202)
            .build(),
        span(1, 4, "POST /v1/payouts", "payments", 25, 80)
            .parent(3)
            .kind(Server)
            .attr("http.request.method", "POST")
            .int("http.response.status_code", 202)
            .build(),
        span(1, 5, "send payout-jobs", "payments", 30, 35)
            .parent(4)
            .kind(Producer)
            .attr("messaging.message.id", "job_1")
            .build(),
    ];
    spans.extend(more);
    spans
}

/// The agent's cancel, sent from the turn's root after the abort, and its server span.
fn cancel_request(method: &str, path: &str, at: u64, status: i64) -> Vec<Span> {
    vec![
        span(1, 20, method, "agent", at, at + 20)
            .parent(1)
            .kind(Client)
            .attr("http.request.method", method)
            .attr("url.full", &format!("http://payments.test{path}"))
            .int("http.response.status_code", status)
            .build(),
        span(
            1,
            21,
            &format!("{method} /v1/payouts/{{job_id}}"),
            "payments",
            at + 2,
            at + 15,
        )
        .parent(20)
        .kind(Server)
        .attr("http.request.method", method)
        .attr("url.path", path)
        .int("http.response.status_code", status)
        .build(),
    ]
}

/// The worker: a consumer linked to the producer, starting at `start` and committing at
/// `commit`.
fn worker(start: u64, commit: u64) -> Vec<Span> {
    vec![
        span(2, 6, "process payout-jobs", "worker", start, commit + 5)
            .kind(Consumer)
            .link(1, 5)
            .build(),
        span(2, 7, "INSERT", "worker", commit - 10, commit)
            .parent(6)
            .attr("db.system.name", "sqlite")
            .attr("db.operation.name", "INSERT")
            .build(),
    ]
}

#[test]
fn a_cancel_acknowledged_before_the_job_ran_prevented_the_write() {
    let spans = queued_call(cancel_request("DELETE", "/v1/payouts/job_1", 320, 200));
    let audit = audit(&spans, &[]);
    let f = only(&audit);
    // Accepted work with no execution would be unverified; the cancel says it never ran.
    assert_eq!(f.category, Category::PreCommitAbort);
    assert!(!f.late);
    assert_eq!(decision(f, Mechanism::Cancel), (true, Some(true)));
    let cancel = mechanism(f, Mechanism::Cancel);
    assert!(
        cancel.detail.contains(
            "a cancel (DELETE /v1/payouts/job_1, HTTP 200) reached payments 22 ms after the abort"
        ),
        "{}",
        cancel.detail
    );
    assert!(cancel.detail.ends_with("it stopped the write"));
    // The rollback is the cancel's.
    assert_eq!(
        f.write.as_ref().unwrap().commit_time,
        Some(335_000_000),
        "the cancel's server span ended then"
    );
    assert!(
        f.evidence
            .iter()
            .any(|e| e.starts_with("cancelled by DELETE")),
        "{:?}",
        f.evidence
    );
    assert!(audit.calls[0].cancel);
}

#[test]
fn a_cancel_after_the_worker_started_is_too_late_by_its_lateness() {
    let mut more = cancel_request("DELETE", "/v1/payouts/job_1", 900, 409);
    more.extend(worker(700, 1300));
    let audit = audit(&queued_call(more), &[]);
    let f = only(&audit);
    assert_eq!(f.category, Category::LateQueued);
    let cancel = mechanism(f, Mechanism::Cancel);
    assert_eq!(
        (cancel.present, cancel.would_have_stopped),
        (true, Some(false))
    );
    // It reached the server at 902 ms, 202 ms after the worker started at 700 ms.
    assert_eq!(cancel.margin_ns, Some(-202_000_000));
    assert!(
        cancel.detail.contains(
            "202 ms too late, after the worker had started and 398 ms before the commit; the job waited 400 ms in the queue after the abort"
        ),
        "{}",
        cancel.detail
    );
    // Refused, it changed nothing.
    assert_eq!(f.write.as_ref().unwrap().commit_time, Some(1_300_000_000));
}

#[test]
fn a_cancel_in_time_that_the_worker_ignored_is_in_time_but_not_honoured() {
    let mut more = cancel_request("POST", "/v1/payouts/job_1/cancel", 400, 200);
    more.extend(worker(700, 1300));
    let audit = audit(&queued_call(more), &[]);
    let f = only(&audit);
    assert_eq!(f.category, Category::LateQueued);
    let cancel = mechanism(f, Mechanism::Cancel);
    assert_eq!(
        (cancel.present, cancel.would_have_stopped),
        (true, Some(true))
    );
    assert!(
        cancel.detail.contains("it was not honoured"),
        "{}",
        cancel.detail
    );
}

#[test]
fn without_a_cancel_the_time_in_the_queue_is_its_window() {
    let audit = audit(&queued_call(worker(700, 1300)), &[]);
    let f = only(&audit);
    let cancel = mechanism(f, Mechanism::Cancel);
    assert_eq!(
        (cancel.present, cancel.would_have_stopped),
        (false, Some(true))
    );
    assert_eq!(cancel.margin_ns, Some(400_000_000));
    assert!(
        cancel
            .detail
            .contains("the job waited 400 ms in the queue after the abort"),
        "{}",
        cancel.detail
    );
    // The worker has no connection to check.
    assert_eq!(decision(f, Mechanism::CommitCheck), (false, None));
}

#[test]
fn a_request_naming_the_job_that_does_not_cancel_it_is_no_cancel() {
    // A status poll after the abort, and a cancel of another job.
    let mut more = cancel_request("GET", "/v1/payouts/job_1", 320, 200);
    let mut other = cancel_request("DELETE", "/v1/payouts/job_10", 330, 200);
    other[0].span_id = crate::model::SpanId([30; 8]);
    other[1].span_id = crate::model::SpanId([31; 8]);
    other[1].parent_span_id = Some(crate::model::SpanId([30; 8]));
    more.extend(other);
    let audit = audit(&queued_call(more), &[]);
    let f = only(&audit);
    assert_eq!(f.category, Category::Unverified);
    assert_eq!(decision(f, Mechanism::Cancel), (false, None));
    assert!(!audit.calls[0].cancel);
}

#[test]
fn a_cancel_route_names_the_id_a_location_header_gave() {
    let mut spans = queued_call(Vec::new());
    spans[3].attributes.0.push(crate::model::KeyValue {
        key: "http.response.header.location".into(),
        value: crate::model::Value::Array(vec![crate::model::Value::String(
            "/v1/runs/run_7".into(),
        )]),
    });
    spans.extend(cancel_request("POST", "/v1/runs/run_7:cancel", 320, 200));
    let audit = audit(&spans, &[]);
    assert_eq!(
        decision(only(&audit), Mechanism::Cancel),
        (true, Some(true))
    );
}

fn vendor_event(
    id: &str,
    kind: &str,
    role: Option<Role>,
    at_ms: u64,
    subject: &str,
) -> VendorEvent {
    VendorEvent {
        vendor: "stripe".into(),
        id: id.into(),
        kind: kind.into(),
        role,
        time: at_ms * 1_000_000,
        precision: 1,
        keys: vec![(KeyKind::IdempotencyKey, "key-1".to_owned())],
        subject: Some(subject.into()),
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
        request(3, 2, 20, 301)
            .attr("http.request.header.idempotency-key", "key-1")
            .build(),
    ]
}

#[test]
fn a_vendor_cancelled_event_is_an_out_of_band_cancel() {
    let events = [vendor_event(
        "evt_1",
        "payment_intent.canceled",
        Some(Role::Cancelled),
        400,
        "pi_1",
    )];
    let audit = audit(&vendor_only_call(), &events);
    let f = only(&audit);
    assert_eq!(f.category, Category::PreCommitAbort);
    assert_eq!(decision(f, Mechanism::Cancel), (true, Some(true)));
    assert!(audit.calls[0].cancel);
}

#[test]
fn a_refund_naming_the_charge_compensates_it_and_is_no_write_of_its_own() {
    let charge = vendor_event(
        "evt_1",
        "payment_intent.succeeded",
        Some(Role::Commit),
        700,
        "pi_1",
    );
    // A refund made later, by someone else: its own key and subject, naming the payment intent.
    let mut refund = vendor_event("evt_2", "refund.created", Some(Role::Commit), 2700, "re_1");
    refund.keys = vec![
        (KeyKind::IdempotencyKey, "ops-key".to_owned()),
        (KeyKind::ObjectId, "re_1".to_owned()),
        (KeyKind::ObjectId, "pi_1".to_owned()),
    ];
    let rules = Rules::default();
    let events = [charge, refund];
    let spans = vendor_only_call();
    let joined = join(&spans, &events, &rules);
    assert!(joined.unmatched_events.is_empty(), "the refund follows up");
    let audit = classify(&joined, &rules);
    let f = only(&audit);
    assert_eq!(f.category, Category::ClientGone);
    let c = f.compensated.as_ref().expect("compensated");
    assert_eq!(c.operation, "refund.created");
    assert_eq!(c.event_id.as_deref(), Some("evt_2"));
    assert_eq!(c.delay_ns, 2_000_000_000);
    assert_eq!(decision(f, Mechanism::Compensation), (true, None));
    assert!(
        mechanism(f, Mechanism::Compensation)
            .detail
            .starts_with("reversed 2.000 s after the write by stripe event evt_2 (refund.created)"),
        "{}",
        mechanism(f, Mechanism::Compensation).detail
    );
    assert!(audit.calls[0].compensated);
}

#[test]
fn a_delete_acknowledged_after_the_commit_compensates_a_create() {
    let mut spans = sync_call(500, |r| r, |s| s.attr("vendor.object.id", "pay_9"));
    spans.extend(
        cancel_request("DELETE", "/v1/payments/pay_9", 800, 204)
            .into_iter()
            .map(|mut s| {
                s.name = s.name.replace("payouts/{job_id}", "payments/{id}").into();
                s
            }),
    );
    let audit = audit(&spans, &[]);
    let f = only(&audit);
    assert_eq!(f.category, Category::ClientGone);
    let c = f.compensated.as_ref().expect("compensated");
    assert_eq!(c.operation, "DELETE /v1/payments/pay_9");
    assert_eq!(c.service, "payments");
    // The DELETE arrived after the commit: as a cancel, too late.
    assert_eq!(decision(f, Mechanism::Cancel), (true, Some(false)));
}

#[test]
fn an_idempotency_key_is_context_not_prevention() {
    let with_key = audit(
        &vendor_only_call(),
        &[vendor_event(
            "evt_1",
            "payment_intent.succeeded",
            Some(Role::Commit),
            700,
            "pi_1",
        )],
    );
    assert_eq!(
        decision(only(&with_key), Mechanism::IdempotencyKey),
        (true, None)
    );
    let without = audit(&sync_call(701, |r| r, |s| s), &[]);
    let key = mechanism(only(&without), Mechanism::IdempotencyKey);
    assert_eq!((key.present, key.would_have_stopped), (false, None));
    assert!(
        key.detail
            .contains("a retry after the Stop would write again")
    );
    assert!(!without.calls[0].idempotency_key);
}

#[test]
fn protocol_coverage_counts_calls_per_tool_and_service_and_the_gate_can_fail_on_none() {
    let mut spans = sync_call(701, |r| r, |s| s);
    // A second conversation: a call with a deadline that committed late all the same.
    let mut other = sync_call(
        701,
        |r| r.attr("http.request.header.request-timeout", "0.1"),
        |s| s,
    );
    for s in &mut other {
        s.trace_id = crate::testutil::trace(2);
    }
    other[0]
        .attributes
        .0
        .retain(|kv| &*kv.key != "gen_ai.conversation.id");
    other[0].attributes.0.push(crate::model::KeyValue {
        key: "gen_ai.conversation.id".into(),
        value: crate::model::Value::String("c2".into()),
    });
    other[1]
        .attributes
        .0
        .retain(|kv| &*kv.key != "gen_ai.tool.name");
    other[1].attributes.0.push(crate::model::KeyValue {
        key: "gen_ai.tool.name".into(),
        value: crate::model::Value::String("transfer".into()),
    });
    spans.extend(other);
    let audit = audit(&spans, &[]);
    let tools = audit.protocols_by_tool();
    let row = |name: &str| tools.iter().find(|r| r.name == name).unwrap().clone();
    assert_eq!(
        (
            row("refund").calls,
            row("refund").late_writes,
            row("refund").has_protocol()
        ),
        (1, 1, false)
    );
    assert_eq!(
        (row("transfer").deadline, row("transfer").has_protocol()),
        (1, true)
    );
    let services = audit.protocols_by_service();
    assert_eq!(services.len(), 1);
    assert_eq!(
        (services[0].name.as_str(), services[0].calls),
        ("payments", 2)
    );

    // Suppressing the late write keeps it out of the gate, but not the tool without a protocol
    // when the rules say so.
    let allow = [AllowRule {
        tool: Some("refund".to_owned()),
        service: None,
        operation: None,
        category: None,
        conversation: None,
        reason: "known".to_owned(),
        until: "2030-01-01".to_owned(),
    }];
    let policy = |fail_on_unprotected_tools| GatePolicy {
        fail_on: &[Category::ClientGone],
        inferred_aborts: true,
        allow: &allow,
        today: "2026-12-06",
        baseline: None,
        fail_on_unprotected_tools,
    };
    let refund_only = Audit {
        findings: audit
            .findings
            .iter()
            .filter(|f| f.tool_call.name == "refund")
            .cloned()
            .collect(),
        ..audit.clone()
    };
    let gate = Gate::judge(&refund_only, &policy(false));
    assert_eq!(gate.unprotected_tools, ["refund"]);
    assert!(!gate.failed, "off by default: the suppression holds");
    assert!(Gate::judge(&refund_only, &policy(true)).failed);
}

#[test]
fn work_queued_through_a_traced_outbox_is_accepted_until_it_runs_or_is_cancelled() {
    // The enqueue commits the job's row under the producer (a transactional outbox): that
    // commit is the acceptance, not the write the job makes.
    let outbox = |cancel: bool| {
        let mut more = vec![
            span(1, 8, "BEGIN", "payments", 31, 32)
                .parent(5)
                .attr("db.operation.name", "BEGIN")
                .build(),
            span(1, 9, "INSERT", "payments", 32, 33)
                .parent(5)
                .attr("db.operation.name", "INSERT")
                .build(),
            span(1, 10, "COMMIT", "payments", 33, 34)
                .parent(5)
                .attr("db.operation.name", "COMMIT")
                .build(),
        ];
        if cancel {
            more.extend(cancel_request("DELETE", "/v1/payouts/job_1", 320, 200));
        }
        audit(&queued_call(more), &[])
    };
    let never_ran = outbox(false);
    assert_eq!(only(&never_ran).category, Category::Unverified);
    assert_eq!(never_ran.committed_before_abort, 1, "the enqueue");
    let cancelled = outbox(true);
    let f = only(&cancelled);
    assert_eq!(f.category, Category::PreCommitAbort);
    assert_eq!(decision(f, Mechanism::Cancel), (true, Some(true)));
}

#[test]
fn a_refund_that_carries_the_call_s_own_keys_still_only_compensates() {
    // The reconciliation tagged the refund with the tool call's id: it joins the call by that
    // key, yet it is a follow-up of the charge it names, not a late write of its own.
    let charge = vendor_event(
        "evt_1",
        "payment_intent.succeeded",
        Some(Role::Commit),
        700,
        "pi_1",
    );
    let mut refund = vendor_event("evt_2", "refund.created", Some(Role::Commit), 2700, "re_1");
    refund.keys = vec![
        (KeyKind::ToolCallId, "call_a".to_owned()),
        (KeyKind::ObjectId, "re_1".to_owned()),
        (KeyKind::ObjectId, "pi_1".to_owned()),
    ];
    let audit = audit(&vendor_only_call(), &[charge, refund]);
    let f = only(&audit);
    assert_eq!(f.write.as_ref().unwrap().event_id.as_deref(), Some("evt_1"));
    assert_eq!(
        f.compensated.as_ref().and_then(|c| c.event_id.as_deref()),
        Some("evt_2")
    );
}

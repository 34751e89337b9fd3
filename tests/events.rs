//! Vendor event logs: conformance over the public corpus (`../shared/corpus/events`), the input
//! shapes, a generic mapping written in TOML, Temporal histories in both dialects, and inputs
//! that must never panic.

mod common;

use std::path::{Path, PathBuf};

use abortaudit::ingest::vendor::{EventsParsed, looks_like_events, parse_events};
use abortaudit::model::diagnostic::{Code, Severity};
use abortaudit::model::{KeyKind, Role, VendorEvent};
use abortaudit::rules::Rules;
use base64::Engine as _;
use common::XorShift;

const S: u64 = 1_000_000_000;
const MS: u64 = 1_000_000;
const US: u64 = 1_000;

fn parse(name: &str, text: &str) -> Result<EventsParsed, String> {
    parse_events(name, text.as_bytes(), &Rules::default())
}

fn parse_ok(name: &str, text: &str) -> EventsParsed {
    parse(name, text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn corpus_file(sub: &str) -> Option<(String, Vec<u8>)> {
    let path = common::corpus("events")?.join(sub);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Some((path.display().to_string(), bytes))
}

fn read_corpus(sub: &str) -> Option<EventsParsed> {
    let (path, bytes) = corpus_file(sub)?;
    Some(parse_events(&path, &bytes, &Rules::default()).unwrap_or_else(|e| panic!("{sub}: {e}")))
}

fn has_key(event: &VendorEvent, kind: KeyKind, value: &str) -> bool {
    event.keys.iter().any(|(k, v)| *k == kind && v == value)
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------------
// Corpus conformance

struct Expect {
    file: &'static str,
    vendor: &'static str,
    format: &'static str,
    id: &'static str,
    kind: &'static str,
    role: Option<Role>,
    time: u64,
    precision: u64,
    line: u64,
}

#[test]
fn corpus_events_are_read_with_exact_times_types_and_roles() {
    let expected = [
        Expect {
            file: "github/workflow_job_queued.payload.json",
            vendor: "github-workflow-job",
            format: "vendor-json",
            id: "289782451",
            kind: "queued",
            role: Some(Role::Accepted),
            // created_at 2021-09-13T02:21:13Z
            time: 1_631_499_673 * S,
            precision: S,
            line: 1,
        },
        Expect {
            file: "github/workflow_run_requested.payload.json",
            vendor: "github-workflow-run",
            format: "vendor-json",
            id: "289782451",
            kind: "requested",
            role: Some(Role::Accepted),
            // created_at 2020-10-05T16:33:24Z
            time: 1_601_915_604 * S,
            precision: S,
            line: 1,
        },
        Expect {
            file: "github/workflow_run_completed.payload.json",
            vendor: "github-workflow-run",
            format: "vendor-json",
            id: "289782451",
            kind: "completed",
            role: Some(Role::Commit),
            // conclusion success; updated_at 2020-10-05T16:33:49Z
            time: 1_601_915_629 * S,
            precision: S,
            line: 1,
        },
        Expect {
            file: "mailgun/api-events_L303_accepted.json",
            vendor: "mailgun",
            format: "vendor-json",
            id: "jxVuhYlhReaK3QsggHfFRA",
            kind: "accepted",
            role: Some(Role::Accepted),
            // 1529692198.641821 s, a JSON float: six decimals, 1 µs.
            time: 1_529_692_198_641_821_000,
            precision: US,
            line: 1,
        },
        Expect {
            file: "mailgun/api-events_L399_delivered.json",
            vendor: "mailgun",
            format: "vendor-json",
            id: "hK7mQVt1QtqRiOfQXta4sw",
            kind: "delivered",
            role: Some(Role::Commit),
            time: 1_529_692_199_626_182_000,
            precision: US,
            line: 1,
        },
        Expect {
            file: "sendgrid/docs_event_md_L177_processed.json",
            vendor: "sendgrid",
            format: "vendor-json",
            id: "rbtnWrG1DVDGGGFHFyun0A==",
            kind: "processed",
            role: Some(Role::Accepted),
            time: 1_513_299_569 * S,
            precision: S,
            line: 2,
        },
        Expect {
            file: "sendgrid/docs_event_md_L221_delivered.json",
            vendor: "sendgrid",
            format: "vendor-json",
            id: "rWVYmVk90MjZJ9iohOBa3w==",
            kind: "delivered",
            role: Some(Role::Commit),
            time: 1_513_299_569 * S,
            precision: S,
            line: 2,
        },
        Expect {
            file: "sendgrid/docs_event_md_L952_open.json",
            vendor: "sendgrid",
            format: "vendor-json",
            id: "sendgrid_internal_event_id",
            kind: "open",
            // Opening an e-mail says nothing about whether a write landed.
            role: None,
            // 1591726752372: milliseconds, told from seconds by magnitude.
            time: 1_591_726_752_372 * MS,
            precision: MS,
            line: 2,
        },
        Expect {
            file: "stripe/djstripe_event_account_updated_custom.json",
            vendor: "stripe",
            format: "vendor-json",
            id: "evt_1Itt6eB9wPxT0ovY3LLhi5bw",
            kind: "account.updated",
            role: None,
            time: 1_621_683_300 * S,
            precision: S,
            line: 1,
        },
        Expect {
            file: "stripe/openapi_fixtures3_event.json",
            vendor: "stripe",
            format: "vendor-json",
            id: "evt_1Pgc76B7WZ01zgkWwyRHS12y",
            kind: "plan.created",
            role: Some(Role::Commit),
            time: 1_234_567_890 * S,
            precision: S,
            line: 1,
        },
    ];
    for e in expected {
        let Some(parsed) = read_corpus(e.file) else {
            return;
        };
        assert_eq!(parsed.format, e.format, "{}", e.file);
        assert_eq!(parsed.events.len(), 1, "{}", e.file);
        assert!(
            parsed.diagnostics.is_empty(),
            "{}: {:?}",
            e.file,
            parsed.diagnostics
        );
        assert_eq!(parsed.by_vendor.get(e.vendor), Some(&1), "{}", e.file);
        let event = &parsed.events[0];
        assert_eq!(event.vendor, e.vendor, "{}", e.file);
        assert_eq!(event.id, e.id, "{}", e.file);
        assert_eq!(event.kind, e.kind, "{}", e.file);
        assert_eq!(event.role, e.role, "{}", e.file);
        assert_eq!(event.time, e.time, "{}", e.file);
        assert_eq!(event.precision, e.precision, "{}", e.file);
        assert_eq!(event.origin.line, e.line, "{}", e.file);
        assert!(event.origin.input.ends_with(e.file), "{}", e.file);
    }
}

#[test]
fn corpus_correlation_keys_are_normalised() {
    let Some(stripe) = read_corpus("stripe/djstripe_event_account_updated_custom.json") else {
        return;
    };
    let event = &stripe.events[0];
    assert!(has_key(event, KeyKind::RequestId, "req_A60l4iFvAHopqU"));
    assert!(has_key(event, KeyKind::ObjectId, "acct_1IuHosQveW0ONQsd"));
    assert!(
        !event
            .keys
            .iter()
            .any(|(k, _)| *k == KeyKind::IdempotencyKey),
        "a null idempotency key is no key"
    );
    assert_eq!(event.subject.as_deref(), Some("acct_1IuHosQveW0ONQsd"));

    let stripe = read_corpus("stripe/openapi_fixtures3_event.json").unwrap();
    assert!(
        !stripe.events[0]
            .keys
            .iter()
            .any(|(k, _)| *k == KeyKind::RequestId),
        "request.id is null in this fixture"
    );

    let mailgun = read_corpus("mailgun/api-events_L303_accepted.json").unwrap();
    assert!(has_key(
        &mailgun.events[0],
        KeyKind::MessageId,
        "20180622182958.1.48906CB188F1A454@exmple.org"
    ));

    let sendgrid = read_corpus("sendgrid/docs_event_md_L221_delivered.json").unwrap();
    let event = &sendgrid.events[0];
    // What SendGrid's send API answers in X-Message-Id, which a client span records.
    assert!(has_key(event, KeyKind::MessageId, "14c5d75ce93.dfd.64b469"));
    assert!(has_key(
        event,
        KeyKind::MessageId,
        "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0"
    ));
    // smtp-id without its angle brackets.
    assert!(has_key(
        event,
        KeyKind::MessageId,
        "14c5d75ce93.dfd.64b469@ismtpd-555"
    ));

    let github = read_corpus("github/workflow_job_queued.payload.json").unwrap();
    let event = &github.events[0];
    assert!(has_key(event, KeyKind::JobId, "2202229078"), "the run id");
    assert!(has_key(event, KeyKind::JobId, "289782451"), "the job id");
}

#[test]
fn stripe_objects_that_are_not_events_say_what_to_export() {
    for (file, object) in [
        ("stripe/openapi_fixtures3_charge.json", "charge"),
        (
            "stripe/openapi_fixtures3_payment_intent.json",
            "payment_intent",
        ),
    ] {
        let Some((path, bytes)) = corpus_file(file) else {
            return;
        };
        let err = parse_events(&path, &bytes, &Rules::default()).unwrap_err();
        assert_eq!(
            err,
            format!(
                "this is a Stripe {object} object, not an event: export events (GET /v1/events) instead"
            )
        );
        assert!(!err.contains(&path), "the caller prefixes the path");
    }
    // The same inside a list, as `GET /v1/charges` returns it.
    let list = r#"{"object":"list","url":"/v1/charges","has_more":false,
        "data":[{"id":"ch_1","object":"charge","livemode":false,"created":1}]}"#;
    let err = parse("charges.json", list).unwrap_err();
    assert!(err.contains("Stripe list of charge objects"), "{err}");
    assert!(err.contains("GET /v1/events"), "{err}");
}

#[test]
fn temporal_history_gives_activity_sequences_with_decoded_traceparents() {
    let Some(parsed) = read_corpus("temporal/sdk-typescript_otel_v2_smorgasbord_1_18_1.json")
    else {
        return;
    };
    assert_eq!(parsed.format, "temporal-history");
    assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
    assert_eq!(parsed.by_vendor.get("temporal"), Some(&12));
    let run = "24c39852-41f1-45b4-af74-eb75e1a2719c";
    let trace = "51d4a6a214d533a51344e770208c6112";

    // Two activities, each Scheduled → Started → Completed, keyed by their scheduled event.
    for (scheduled, activity_id, span, times) in [
        (
            "5",
            "1",
            "787d6116924ddf14",
            [
                1_782_485_061_819_332_000,
                1_782_485_061_819_526_000,
                1_782_485_062_834_337_000,
            ],
        ),
        (
            "6",
            "2",
            "563fef0daa70c765",
            [
                1_782_485_061_819_349_000,
                1_782_485_061_819_533_000,
                1_782_485_061_837_081_000,
            ],
        ),
    ] {
        let subject = format!("{run}/activity:{scheduled}");
        let events: Vec<&VendorEvent> = parsed
            .events
            .iter()
            .filter(|e| e.subject.as_deref() == Some(subject.as_str()))
            .collect();
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "ActivityTaskScheduled",
                "ActivityTaskStarted",
                "ActivityTaskCompleted"
            ],
            "{subject}"
        );
        let roles: Vec<Option<Role>> = events.iter().map(|e| e.role).collect();
        assert_eq!(
            roles,
            [
                Some(Role::Accepted),
                Some(Role::Started),
                Some(Role::Commit)
            ]
        );
        for (event, time) in events.iter().zip(times) {
            assert_eq!(event.vendor, "temporal");
            assert_eq!(event.time, time, "{subject} {}", event.kind);
            assert_eq!(event.precision, US, "six fractional digits");
            // Started/Completed inherit what the Scheduled event's header carried.
            assert!(has_key(event, KeyKind::TraceId, trace), "{}", event.kind);
            assert!(has_key(event, KeyKind::SpanId, span), "{}", event.kind);
            assert!(has_key(event, KeyKind::ObjectId, activity_id));
            assert!(has_key(
                event,
                KeyKind::JobId,
                "6305f34a-ee33-4c95-8b8d-db6a1ac88ebd"
            ));
            assert!(has_key(event, KeyKind::JobId, run));
        }
        assert_eq!(events[0].id, format!("{run}/{scheduled}"));
    }

    let workflow: Vec<&VendorEvent> = parsed
        .events
        .iter()
        .filter(|e| e.subject.as_deref() == Some(&*format!("workflow:{run}")))
        .collect();
    assert_eq!(workflow.len(), 2);
    assert_eq!(workflow[0].kind, "WorkflowExecutionStarted");
    assert_eq!(workflow[0].role, Some(Role::Accepted));
    assert_eq!(workflow[0].time, 1_782_485_061_805_688_000);
    assert_eq!(
        workflow[0].origin.line, 3,
        "the line the event's object starts on"
    );
    assert!(has_key(workflow[0], KeyKind::SpanId, "0382d2ff192544ae"));
    assert_eq!(workflow[1].kind, "WorkflowExecutionCompleted");
    assert_eq!(workflow[1].role, Some(Role::Commit));

    // The child workflow and the local activity are work too.
    let child: Vec<(&str, Option<Role>)> = parsed
        .events
        .iter()
        .filter(|e| e.subject.as_deref() == Some(&*format!("{run}/child:8")))
        .map(|e| (e.kind.as_str(), e.role))
        .collect();
    assert_eq!(
        child,
        [
            ("StartChildWorkflowExecutionInitiated", Some(Role::Accepted)),
            ("ChildWorkflowExecutionStarted", Some(Role::Started)),
            ("ChildWorkflowExecutionCompleted", Some(Role::Commit)),
        ]
    );
    let local = parsed
        .events
        .iter()
        .find(|e| e.kind == "LocalActivityCompleted")
        .expect("the core_local_activity marker");
    assert_eq!(local.role, Some(Role::Commit));
    // complete_time {seconds: 1782485061, nanos: 808639125} from the marker's payload.
    assert_eq!(
        (local.time, local.precision),
        (1_782_485_061_808_639_125, 1)
    );
    assert!(has_key(local, KeyKind::ObjectId, "3"));
}

#[test]
fn every_corpus_event_log_looks_like_events_and_no_trace_does() {
    let Some(events) = common::corpus("events") else {
        return;
    };
    let mappings = Rules::default().effective_vendors();
    for path in files_under(&events) {
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            looks_like_events(&bytes, &mappings),
            "{} should look like an event log",
            path.display()
        );
    }
    let Some(traces) = common::corpus("traces") else {
        return;
    };
    for path in files_under(&traces) {
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !looks_like_events(&bytes, &mappings),
            "{} should not look like an event log",
            path.display()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Shapes

const STRIPE_EVENT: &str = r#"{"id":"evt_1","object":"event","type":"payment_intent.succeeded","created":1700000000,"request":{"id":"req_1","idempotency_key":"idem-1"},"data":{"object":{"id":"pi_1","object":"payment_intent","metadata":{"conversation_id":"conv-1","toolCallId":"call_1","traceparent":"00-5B8EFFF798038103D269B633813FC60C-EEE19B7EC3C1B174-01","note":"x"}}}}"#;

#[test]
fn one_stripe_event_in_every_shape_reads_the_same() {
    let list = format!(
        r#"{{"object":"list","url":"/v1/events","has_more":false,"data":[{STRIPE_EVENT}]}}"#
    );
    let shapes = [
        (
            "json lines",
            format!("{STRIPE_EVENT}\n[]\n"),
            "vendor-json-lines",
        ),
        ("array", format!("[{STRIPE_EVENT}]"), "vendor-json"),
        ("single object", format!("{STRIPE_EVENT}\n"), "vendor-json"),
        ("stripe list", list, "vendor-json"),
        (
            "data envelope",
            format!(r#"{{"data":[{STRIPE_EVENT}]}}"#),
            "vendor-json",
        ),
        (
            "items envelope",
            format!(r#"{{"items":[{STRIPE_EVENT}]}}"#),
            "vendor-json",
        ),
        (
            "events envelope",
            format!(r#"{{"events":[{STRIPE_EVENT}]}}"#),
            "vendor-json",
        ),
        (
            "array per line",
            format!("[{STRIPE_EVENT}]\n[]"),
            "vendor-json-lines",
        ),
    ];
    for (name, text, format) in shapes {
        // Pretty-printing a document must not change what is read.
        let pretty = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .map(|v| serde_json::to_string_pretty(&v).unwrap());
        let variants = std::iter::once((text.as_str(), format))
            .chain(pretty.as_deref().map(|p| (p, "vendor-json")));
        for (text, format) in variants {
            let parsed = parse_ok(name, text);
            assert_eq!(parsed.format, format, "{name}");
            assert_eq!(parsed.events.len(), 1, "{name}");
            let event = &parsed.events[0];
            assert_eq!(event.vendor, "stripe");
            assert_eq!(event.kind, "payment_intent.succeeded");
            assert_eq!(event.role, Some(Role::Commit));
            assert_eq!((event.time, event.precision), (1_700_000_000 * S, S));
            assert_eq!(event.subject.as_deref(), Some("pi_1"));
            for (kind, value) in [
                (KeyKind::RequestId, "req_1"),
                (KeyKind::IdempotencyKey, "idem-1"),
                (KeyKind::ObjectId, "pi_1"),
                (KeyKind::ConversationId, "conv-1"),
                (KeyKind::ToolCallId, "call_1"),
                (KeyKind::TraceId, "5b8efff798038103d269b633813fc60c"),
                (KeyKind::SpanId, "eee19b7ec3c1b174"),
            ] {
                assert!(
                    has_key(event, kind, value),
                    "{name}: {kind:?} {value}: {:?}",
                    event.keys
                );
            }
            assert_eq!(
                event.keys.len(),
                7,
                "unknown metadata names are no keys: {:?}",
                event.keys
            );
        }
    }
}

#[test]
fn records_of_arrays_carry_the_line_they_start_on() {
    let text = "[\n  {\"sg_event_id\": \"a\", \"event\": \"processed\", \"timestamp\": 1513299569},\n\n  {\n    \"sg_event_id\": \"b\",\n    \"event\": \"delivered\",\n    \"timestamp\": 1513299570\n  }\n]\n";
    let parsed = parse_ok("batch.json", text);
    let lines: Vec<u64> = parsed.events.iter().map(|e| e.origin.line).collect();
    assert_eq!(lines, [2, 4]);
    assert_eq!(parsed.lines, 9);
    // Blank lines before the document move every record down.
    let parsed = parse_ok("batch.json", &format!("\n\n{text}"));
    let lines: Vec<u64> = parsed.events.iter().map(|e| e.origin.line).collect();
    assert_eq!(lines, [4, 6]);
}

#[test]
fn pretty_values_one_after_another_are_read_like_jq_writes_them() {
    let value: serde_json::Value = serde_json::from_str(STRIPE_EVENT).unwrap();
    let pretty = serde_json::to_string_pretty(&value).unwrap();
    let height = pretty.lines().count() as u64;
    let text = format!("{pretty}\n{pretty}\n{}", &pretty[..pretty.len() / 2]);
    let parsed = parse_ok("listen.json", &text);
    assert_eq!(parsed.format, "vendor-json");
    let lines: Vec<u64> = parsed.events.iter().map(|e| e.origin.line).collect();
    assert_eq!(lines, [1, height + 1]);
    assert_eq!(parsed.diagnostics.len(), 1, "{:?}", parsed.diagnostics);
    assert_eq!(parsed.diagnostics[0].code, Code::TruncatedLine);
    assert_eq!(parsed.diagnostics[0].line, Some(2 * height + 1));
}

#[test]
fn json_lines_diagnose_bad_lines_and_keep_the_rest() {
    let good = |id: &str, t: u64| {
        format!(
            r#"{{"sg_event_id":"{id}","event":"delivered","timestamp":{t},"sg_message_id":"m.filter1"}}"#
        )
    };
    let text = [
        good("a", 1_513_299_569),
        r#"{"sg_event_id":"b","event":"#.to_owned(),
        r#"{"hello":"world"}"#.to_owned(),
        String::new(),
        r#"{"sg_event_id":"c","event":"delivered","timestamp":"yesterday"}"#.to_owned(),
        r#"{"sg_event_id":"d","event":"delivered","timestamp":-3}"#.to_owned(),
        r#"{"sg_event_id":"e","event":"delivered"}"#.to_owned(),
        good("f", 1_513_299_570),
        r#"{"sg_event_id":"g","event":"deli"#.to_owned(),
    ]
    .join("\n");
    let parsed = parse_ok("events.jsonl", &text);
    assert_eq!(parsed.format, "vendor-json-lines");
    assert_eq!(parsed.lines, 9);
    let ids: Vec<&str> = parsed.events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["a", "f"]);
    assert_eq!(parsed.events[1].origin.line, 8);
    let diagnostics: Vec<(u64, Severity, Code)> = parsed
        .diagnostics
        .iter()
        .map(|d| (d.line.unwrap(), d.severity, d.code))
        .collect();
    let mut sorted = diagnostics.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            (2, Severity::Error, Code::MalformedJson),
            (3, Severity::Warning, Code::InvalidRecord),
            (5, Severity::Error, Code::InvalidValue),
            (6, Severity::Error, Code::InvalidValue),
            (7, Severity::Error, Code::InvalidRecord),
            (9, Severity::Warning, Code::TruncatedLine),
        ]
    );
    for d in &parsed.diagnostics {
        assert_eq!(d.input, "events.jsonl");
    }
    let bad_time = parsed
        .diagnostics
        .iter()
        .find(|d| d.line == Some(5))
        .unwrap();
    assert!(
        bad_time.message.contains("/timestamp"),
        "{}",
        bad_time.message
    );
    assert!(
        bad_time.message.contains("yesterday"),
        "{}",
        bad_time.message
    );
    assert!(bad_time.message.contains("skipped"), "{}", bad_time.message);
}

#[test]
fn many_lines_are_read_in_order_across_threads() {
    let text: String = (0..5_000)
        .map(|i| {
            format!(
                r#"{{"sg_event_id":"e{i}","event":"processed","timestamp":{}}}"#,
                1_600_000_000 + i
            ) + "\n"
        })
        .collect();
    let parsed = parse_ok("big.jsonl", &text);
    assert_eq!(parsed.events.len(), 5_000);
    assert!(
        parsed
            .events
            .iter()
            .enumerate()
            .all(|(i, e)| { e.id == format!("e{i}") && e.origin.line == i as u64 + 1 })
    );
    assert_eq!(parsed.by_vendor.get("sendgrid"), Some(&5_000));
}

#[test]
fn unrecognised_inputs_say_what_they_look_like() {
    let err = parse("x.jsonl", "{\"a\":1,\"b\":2}\n{\"a\":3}\n").unwrap_err();
    assert_eq!(
        err,
        "no vendor mapping recognises these records (first record has keys [\"a\",\"b\"]); add a [[vendor]] mapping to abortaudit.toml (run `abortaudit rules` to see the built-in ones)"
    );
    let err = parse("x.json", "[1, 2]").unwrap_err();
    assert!(err.contains("JSON number"), "{err}");
    let err = parse("x.json", "[]").unwrap_err();
    assert!(err.contains("no events"), "{err}");
    let err = parse("x.json", "{\"resourceSpans\": []}").unwrap_err();
    assert!(err.contains("OTLP"), "{err}");
    let err = parse("x.bin", "\u{1}\u{2}binary").unwrap_err();
    assert!(err.contains("not JSON"), "{err}");
    let err = parse("x.json", "{\n  \"id\": \"evt_1\",\n  \"object\": \n").unwrap_err();
    assert!(err.contains("line 4"), "{err}");
    let err = parse("x.jsonl", "{\"a\":\n{\"b\":\n").unwrap_err();
    assert!(err.contains("not valid JSON"), "{err}");
    // Empty input is nothing to read, not an error; the caller decides what that means.
    let parsed = parse_ok("empty.jsonl", " \n");
    assert!(parsed.events.is_empty() && parsed.diagnostics.is_empty());
}

#[test]
fn looks_like_events_checks_the_first_record_only() {
    let mappings = Rules::default().effective_vendors();
    let yes = |text: &str| looks_like_events(text.as_bytes(), &mappings);
    assert!(yes(STRIPE_EVENT));
    assert!(
        yes(&format!("[\n{STRIPE_EVENT},\n")),
        "a cut array still shows its first record"
    );
    assert!(yes(&format!("{STRIPE_EVENT}\nnot json at all\n")));
    assert!(yes(
        r#"{"events":[{"eventId":"1","eventType":"EVENT_TYPE_WORKFLOW_EXECUTION_STARTED"}]}"#
    ));
    assert!(
        yes(r#"{"object":"list","data":[{"id":"ch_1","object":"charge","livemode":false}]}"#),
        "read as events, so that the error explains what to export"
    );
    assert!(!yes(r#"{"resourceSpans":[{"scopeSpans":[]}]}"#));
    assert!(!yes(
        r#"[{"traceId":"1","id":"2","timestamp":1,"name":"a"}]"#
    ));
    assert!(!yes(r#"{"data":[{"traceID":"1","spans":[]}]}"#));
    assert!(!yes(""));
    assert!(!yes("\u{1f}\u{8b}"));
}

// ---------------------------------------------------------------------------------------------
// A generic mapping, written as a user would

const ACME_RULES: &str = r#"
[[vendor]]
name = "acme-jobs"
match = { "/source" = ["acme"], "/kind" = ["job.*"] }
unwrap = ["/envelope"]
id = ["/uuid"]
type = ["/kind"]
time = ["/at_ms"]
time_unit = "ms"
subject = ["/job/id"]
metadata = ["/job/labels"]

[vendor.keys]
job_id = ["/job/id"]
idempotency_key = ["/request/idem"]
traceparent = ["/job/traceparent"]

[[vendor.roles]]
type = "job.enqueued"
role = "accepted"

[[vendor.roles]]
type = "job.finished"
when = { "/job/outcome" = ["ok", "done"] }
role = "commit"
time = ["/job/finished_at_ms"]

[[vendor.roles]]
type = "job.finished"
role = "failed"
time = ["/job/finished_at_ms"]

[[vendor.roles]]
type = "job.cancel*"
role = "cancelled"
"#;

#[test]
fn a_toml_mapping_reads_a_made_up_vendor() {
    let rules: Rules = toml::from_str(ACME_RULES).expect("the mapping parses");
    let log = [
        r#"{"source":"acme","kind":"job.enqueued","uuid":"u1","at_ms":1700000000123,"job":{"id":"j-1","labels":{"conversation_id":"conv-9","tool_call_id":"call_1","color":"red"},"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},"request":{"idem":"k-1"}}"#,
        r#"{"source":"acme","kind":"job.started","uuid":"u2","at_ms":"1700000001000","job":{"id":"j-1"}}"#,
        r#"{"source":"acme","kind":"job.finished","uuid":"u3","at_ms":1700000009999,"job":{"id":"j-1","outcome":"ok","finished_at_ms":1700000005456}}"#,
        r#"{"source":"acme","kind":"job.finished","uuid":"u4","at_ms":1700000009999,"job":{"id":"j-2","outcome":"boom","finished_at_ms":1700000006000.5}}"#,
        r#"{"envelope":{"source":"acme","kind":"job.cancelled","uuid":"u5","at_ms":1700000007000,"job":{"id":"j-3"}},"signature":"x"}"#,
        r#"{"source":"acme","kind":"job.finished","uuid":"u6","at_ms":1700000009999,"job":{"id":"j-4","outcome":"ok"}}"#,
        r#"{"source":"other","kind":"job.finished","uuid":"u7","at_ms":1}"#,
    ]
    .join("\n")
        + "\n";
    let parsed = parse_events("acme.jsonl", log.as_bytes(), &rules).unwrap();
    let got: Vec<(&str, &str, Option<Role>, u64, u64)> = parsed
        .events
        .iter()
        .map(|e| (e.id.as_str(), e.kind.as_str(), e.role, e.time, e.precision))
        .collect();
    assert_eq!(
        got,
        [
            (
                "u1",
                "job.enqueued",
                Some(Role::Accepted),
                1_700_000_000_123 * MS,
                MS
            ),
            ("u2", "job.started", None, 1_700_000_001_000 * MS, MS),
            // The role's own time pointer: when the job finished, not when it was logged.
            (
                "u3",
                "job.finished",
                Some(Role::Commit),
                1_700_000_005_456 * MS,
                MS
            ),
            (
                "u4",
                "job.finished",
                Some(Role::Failed),
                1_700_000_006_000 * MS + 500 * US,
                100 * US
            ),
            (
                "u5",
                "job.cancelled",
                Some(Role::Cancelled),
                1_700_000_007_000 * MS,
                MS
            ),
        ]
    );
    assert!(parsed.events.iter().all(|e| e.vendor == "acme-jobs"));
    assert_eq!(parsed.by_vendor.get("acme-jobs"), Some(&5));
    let first = &parsed.events[0];
    assert_eq!(first.subject.as_deref(), Some("j-1"));
    for (kind, value) in [
        (KeyKind::JobId, "j-1"),
        (KeyKind::IdempotencyKey, "k-1"),
        (KeyKind::ConversationId, "conv-9"),
        (KeyKind::ToolCallId, "call_1"),
        (KeyKind::TraceId, "0af7651916cd43dd8448eb211c80319c"),
        (KeyKind::SpanId, "b7ad6b7169203331"),
    ] {
        assert!(
            has_key(first, kind, value),
            "{kind:?} {value}: {:?}",
            first.keys
        );
    }
    assert_eq!(first.keys.len(), 6, "{:?}", first.keys);

    // u6: a commit with no finish time is skipped, not dated at its log time; u7 is another
    // source's record in the same file.
    let diagnostics: Vec<(Option<u64>, Severity, Code)> = parsed
        .diagnostics
        .iter()
        .map(|d| (d.line, d.severity, d.code))
        .collect();
    assert_eq!(
        diagnostics,
        [
            (Some(6), Severity::Error, Code::InvalidRecord),
            (Some(7), Severity::Warning, Code::InvalidRecord),
        ]
    );
    assert!(
        parsed.diagnostics[0]
            .message
            .contains("/job/finished_at_ms"),
        "{}",
        parsed.diagnostics[0].message
    );

    // The built-in mappings are still there after the user's.
    let stripe = parse_events("s.json", STRIPE_EVENT.as_bytes(), &rules).unwrap();
    assert_eq!(stripe.events[0].vendor, "stripe");
}

#[test]
fn a_user_mapping_named_like_a_builtin_replaces_it() {
    let rules: Rules = toml::from_str(
        r#"
[[vendor]]
name = "stripe"
match = { "/object" = ["event"] }
id = ["/id"]
type = ["/type"]
time = ["/created"]
time_unit = "s"
roles = [{ type = "*", role = "failed" }]
"#,
    )
    .unwrap();
    let parsed = parse_events("s.json", STRIPE_EVENT.as_bytes(), &rules).unwrap();
    assert_eq!(parsed.events[0].role, Some(Role::Failed));
    assert!(parsed.events[0].keys.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Temporal, the older dialect and the cancellation semantics

fn tracer_data(traceparent: &str) -> serde_json::Value {
    let b64 = base64::engine::general_purpose::STANDARD;
    serde_json::json!({"header": {"fields": {"_tracer-data": {
        "metadata": {"encoding": b64.encode("json/plain")},
        "data": b64.encode(format!("{{\"traceparent\":\"{traceparent}\"}}")),
    }}}})
}

#[test]
fn go_dialect_histories_with_nanosecond_timestamps() {
    let mut scheduled = tracer_data("00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01");
    scheduled["activityId"] = "charge-1".into();
    scheduled["activityType"] = serde_json::json!({"name": "charge"});
    let history = serde_json::json!({"events": [
        {"eventId": 1, "timestamp": 1588000000000000000u64, "eventType": "WorkflowExecutionStarted",
         "workflowExecutionStartedEventAttributes": {"workflowType": {"name": "agent-tool"}}},
        {"eventId": 5, "timestamp": "1588000000100000001", "eventType": "ActivityTaskScheduled",
         "activityTaskScheduledEventAttributes": scheduled},
        {"eventId": 6, "timestamp": 1588000000200000000u64, "eventType": "ActivityTaskStarted",
         "activityTaskStartedEventAttributes": {"scheduledEventId": 5, "attempt": 1}},
        {"eventId": 7, "eventTime": "2020-04-27T15:06:40.3Z", "eventType": "ActivityTaskCancelRequested",
         "activityTaskCancelRequestedEventAttributes": {"scheduledEventId": 5}},
        {"eventId": 8, "timestamp": 1588000000900000000u64, "eventType": "ActivityTaskCompleted",
         "activityTaskCompletedEventAttributes": {"scheduledEventId": 5, "startedEventId": 6}},
        {"eventId": 9, "timestamp": 1588000001000000000u64, "eventType": "ActivityTaskScheduled",
         "activityTaskScheduledEventAttributes": {"activityId": "mail-1"}},
        {"eventId": 10, "timestamp": 1588000001500000000u64, "eventType": "ActivityTaskCanceled",
         "activityTaskCanceledEventAttributes": {"scheduledEventId": 9}},
        {"eventId": 11, "timestamp": 1588000002000000000u64, "eventType": "TimerStarted",
         "timerStartedEventAttributes": {"timerId": "1"}},
        {"eventId": 12, "timestamp": "whenever", "eventType": "ActivityTaskFailed",
         "activityTaskFailedEventAttributes": {"scheduledEventId": 9}},
        {"eventId": 13, "timestamp": 1588000003000000000u64, "eventType": "WorkflowExecutionTerminated",
         "workflowExecutionTerminatedEventAttributes": {"reason": "operator"}}
    ]});
    let parsed = parse_ok(
        "history.json",
        &serde_json::to_string_pretty(&history).unwrap(),
    );
    assert_eq!(parsed.format, "temporal-history");
    let got: Vec<(&str, &str, Option<Role>, u64, u64)> = parsed
        .events
        .iter()
        .map(|e| {
            (
                e.subject.as_deref().unwrap(),
                e.kind.as_str(),
                e.role,
                e.time,
                e.precision,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "workflow",
                "WorkflowExecutionStarted",
                Some(Role::Accepted),
                1_588_000_000_000_000_000,
                1
            ),
            (
                "activity:5",
                "ActivityTaskScheduled",
                Some(Role::Accepted),
                1_588_000_000_100_000_001,
                1
            ),
            (
                "activity:5",
                "ActivityTaskStarted",
                Some(Role::Started),
                1_588_000_000_200_000_000,
                1
            ),
            // A request to cancel is not a cancellation: the activity completed after it.
            (
                "activity:5",
                "ActivityTaskCancelRequested",
                None,
                1_588_000_000_300_000_000,
                100_000_000
            ),
            (
                "activity:5",
                "ActivityTaskCompleted",
                Some(Role::Commit),
                1_588_000_000_900_000_000,
                1
            ),
            (
                "activity:9",
                "ActivityTaskScheduled",
                Some(Role::Accepted),
                1_588_000_001_000_000_000,
                1
            ),
            (
                "activity:9",
                "ActivityTaskCanceled",
                Some(Role::Cancelled),
                1_588_000_001_500_000_000,
                1
            ),
            (
                "workflow",
                "WorkflowExecutionTerminated",
                Some(Role::Cancelled),
                1_588_000_003_000_000_000,
                1
            ),
        ]
    );
    let completed = &parsed.events[4];
    assert!(has_key(
        completed,
        KeyKind::TraceId,
        "4bf92f3577b34da6a3ce929d0e0e4736"
    ));
    assert!(has_key(completed, KeyKind::SpanId, "00f067aa0ba902b7"));
    assert!(has_key(completed, KeyKind::ObjectId, "charge-1"));
    assert!(
        parsed.events[6].keys == [(KeyKind::ObjectId, "mail-1".to_owned())],
        "no header, no traceparent: {:?}",
        parsed.events[6].keys
    );
    assert_eq!(parsed.diagnostics.len(), 1, "{:?}", parsed.diagnostics);
    assert_eq!(parsed.diagnostics[0].code, Code::InvalidValue);
    assert!(parsed.diagnostics[0].message.contains("whenever"));
}

#[test]
fn temporal_events_one_per_line_are_one_history() {
    let scheduled = {
        let mut attrs = tracer_data("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        attrs["activityId"] = "1".into();
        attrs
    };
    let lines = [
        serde_json::json!({"eventId": "5", "eventTime": "2024-01-01T00:00:00.123Z", "eventType": "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED", "activityTaskScheduledEventAttributes": scheduled}),
        serde_json::json!({"eventId": "7", "eventTime": "2024-01-01T00:00:01Z", "eventType": "EVENT_TYPE_ACTIVITY_TASK_COMPLETED", "activityTaskCompletedEventAttributes": {"scheduledEventId": "5"}}),
    ];
    let text: String = lines.iter().map(|l| l.to_string() + "\n").collect();
    let parsed = parse_ok("history.jsonl", &text);
    assert_eq!(parsed.format, "temporal-history");
    assert_eq!(parsed.events.len(), 2);
    assert_eq!(parsed.events[0].precision, MS);
    assert_eq!(parsed.events[1].precision, S);
    assert_eq!(parsed.events[1].origin.line, 2);
    assert!(has_key(
        &parsed.events[1],
        KeyKind::SpanId,
        "00f067aa0ba902b7"
    ));
}

// ---------------------------------------------------------------------------------------------
// Robustness: whatever the bytes, an answer and no panic

fn never_panics(bytes: &[u8]) {
    let rules = Rules::default();
    let mappings = rules.effective_vendors();
    let _ = looks_like_events(bytes, &mappings);
    if let Ok(parsed) = parse_events("fuzz", bytes, &rules) {
        for d in &parsed.diagnostics {
            assert!(d.line.is_some(), "{d}");
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    // Bytes biased towards JSON's structure, so the parser gets past the first byte.
    const ALPHABET: &[u8] = b"{}[]\":,0123456789.eE-+ \n\tabcdefnulltrueobjecteventtype\\/\x00\xff";
    for _ in 0..2_000 {
        let len = (rng.next() % 200) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| ALPHABET[(rng.next() % ALPHABET.len() as u64) as usize])
            .collect();
        never_panics(&bytes);
        let mut raw = vec![0u8; len];
        raw.iter_mut().for_each(|b| *b = rng.next() as u8);
        never_panics(&raw);
    }
}

#[test]
fn truncated_and_mangled_event_logs_never_panic() {
    let mut inputs = vec![STRIPE_EVENT.to_owned(), format!("[{STRIPE_EVENT}]")];
    if let Some(dir) = common::corpus("events") {
        for path in files_under(&dir) {
            inputs.push(std::fs::read_to_string(path).unwrap());
        }
    }
    let mut rng = XorShift(42);
    for text in inputs {
        let bytes = text.as_bytes();
        for cut in (0..bytes.len()).step_by((bytes.len() / 97).max(1)) {
            never_panics(&bytes[..cut]);
            // The same cut as the last line of a JSON Lines file after a good one.
            let mut two = STRIPE_EVENT.as_bytes().to_vec();
            two.push(b'\n');
            two.extend_from_slice(&bytes[..cut]);
            never_panics(&two);
        }
        for _ in 0..50 {
            let mut mangled = bytes.to_vec();
            let at = (rng.next() % mangled.len().max(1) as u64) as usize;
            if let Some(b) = mangled.get_mut(at) {
                *b = rng.next() as u8;
            }
            never_panics(&mangled);
        }
    }
}

#[test]
fn deep_nesting_never_panics() {
    for depth in [127, 128, 129, 1_000, 100_000] {
        never_panics("[".repeat(depth).as_bytes());
        never_panics(format!("{}{}", "[".repeat(depth), "]".repeat(depth)).as_bytes());
        never_panics("{\"a\":".repeat(depth).as_bytes());
        let nested = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
        never_panics(nested.as_bytes());
        never_panics(format!("{STRIPE_EVENT}\n{nested}\n").as_bytes());
        let inside = STRIPE_EVENT.replace("\"note\":\"x\"", &format!("\"note\":{nested}"));
        never_panics(inside.as_bytes());
        never_panics(format!("{{\"events\": [{nested}]}}").as_bytes());
    }
    // Too deep for serde_json: a diagnostic for that line, the others still read.
    let nested = format!("{}1{}", "[".repeat(500), "]".repeat(500));
    let parsed = parse_ok("deep.jsonl", &format!("{STRIPE_EVENT}\n{nested}\n"));
    assert_eq!(parsed.events.len(), 1);
    assert_eq!(parsed.diagnostics.len(), 1);
    assert_eq!(parsed.diagnostics[0].line, Some(2));
}

#[test]
fn the_scenario_stripe_log_reads_whole_and_its_traces_are_not_events() {
    let bytes = std::fs::read(common::fixture("scenarios/events/stripe.jsonl")).unwrap();
    let parsed = parse_events("stripe.jsonl", &bytes, &Rules::default()).unwrap();
    assert_eq!(parsed.format, "vendor-json-lines");
    assert_eq!(parsed.by_vendor.get("stripe"), Some(&22));
    assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
    assert!(
        parsed
            .events
            .iter()
            .all(|e| e.keys.iter().any(|(k, _)| *k == KeyKind::ToolCallId))
    );
    let mappings = Rules::default().effective_vendors();
    assert!(looks_like_events(&bytes, &mappings));
    for trace in ["agent", "vendor", "worker"] {
        let bytes =
            std::fs::read(common::fixture(&format!("scenarios/traces/{trace}.jsonl"))).unwrap();
        assert!(!looks_like_events(&bytes, &mappings), "{trace}");
    }
}

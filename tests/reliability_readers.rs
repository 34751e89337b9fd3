//! One reader semantics: an OTLP/JSON Lines export read whole (a small file) and in two passes
//! (a large one, or any with `ABORTAUDIT_SURVEY_ABOVE=0`) must accept and refuse the same
//! records, with the same diagnostics, and give the same report and exit status.
//!
//! The regression tests rebuild the reproducers of the reliability report
//! (`../shared/reliability/cases`, made by its `mk.py`: two conversations, each an agent's
//! record and a service's, with the damage in the third line); the differential test runs
//! `scan --format json` both ways on every OTLP/JSON Lines input of the fixtures, the public
//! corpus and the reliability cases (when they are present), and on a few thousand damaged
//! copies of fixture records. Scans run in process, through the library.

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use abortaudit::app::{self, ExitStatus};
use abortaudit::config::{InputConfig, ScanConfig, Task};
use abortaudit::ingest::{IngestOptions, InputSet, Source};
use abortaudit::report::OutputFormat;
use abortaudit::rules::Rules;
use common::XorShift;
use serde_json::Value;

/// What a scan printed and how it ended.
#[derive(Debug, PartialEq)]
struct Outcome {
    code: u8,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn report(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", self.stdout, self.stderr))
    }

    fn categories(&self) -> Vec<String> {
        self.report()["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["category"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The diagnostics as (code, line, message).
    fn diagnostics(&self) -> Vec<(String, u64, String)> {
        self.report()["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["code"].as_str().unwrap().to_owned(),
                    d["line"].as_u64().unwrap_or(0),
                    d["message"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }
}

/// `abortaudit scan --format json INPUT…` in process, reading OTLP/JSON Lines files over
/// `survey_above` bytes in two passes (`u64::MAX`: none, `0`: all).
fn scan(inputs: &[PathBuf], survey_above: u64) -> Outcome {
    scan_with(
        inputs,
        IngestOptions {
            survey_above,
            ..IngestOptions::default()
        },
    )
}

fn scan_with(inputs: &[PathBuf], options: IngestOptions) -> Outcome {
    let rules = Rules::default();
    let config = ScanConfig {
        input: InputConfig {
            inputs: InputSet {
                traces: inputs.iter().cloned().map(Source::Path).collect(),
                ..InputSet::default()
            },
            options,
            strict: false,
            store: None,
        },
        fail_on: rules.gate.fail_on.clone(),
        rules,
        format: OutputFormat::Json,
        outputs: Vec::new(),
        exit_zero: false,
        baseline: None,
    };
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let code = match app::run(Task::Scan(config), &mut stdout, &mut stderr) {
        Ok(status) => status.code(),
        // As `main` prints it.
        Err(error) => {
            let chain: Vec<String> = error.chain().map(|e| e.to_string()).collect();
            stderr.extend(format!("error: {}\n", chain.join(": ")).bytes());
            ExitStatus::Error.code()
        }
    };
    Outcome {
        code,
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}

/// Scans `inputs` whole and in two passes, asserts that both say the same, and returns it.
fn both_ways(inputs: &[PathBuf]) -> Outcome {
    let whole = scan(inputs, u64::MAX);
    let two_pass = scan(inputs, 0);
    assert_same(&whole, &two_pass, &format!("{inputs:?}"));
    whole
}

fn assert_same(whole: &Outcome, two_pass: &Outcome, what: &str) {
    if whole != two_pass {
        panic!(
            "{what}: the whole read and the two-pass read differ\n--- whole (exit {}):\n{}\n{}\n--- two passes (exit {}):\n{}\n{}",
            whole.code, whole.stdout, whole.stderr, two_pass.code, two_pass.stdout, two_pass.stderr
        );
    }
}

/// A span as `mk.py` writes one.
#[allow(clippy::too_many_arguments)]
fn span(
    trace: &str,
    id: &str,
    parent: Option<&str>,
    name: &str,
    start: u64,
    end: u64,
    attributes: &[(&str, String)],
    events: Option<String>,
    kind: u8,
) -> String {
    let attributes: Vec<String> = attributes
        .iter()
        .map(|(key, value)| format!(r#"{{"key":"{key}","value":{value}}}"#))
        .collect();
    let mut span = format!(
        r#"{{"traceId":"{trace}","spanId":"{id}","name":"{name}","kind":{kind},"startTimeUnixNano":"{start}","endTimeUnixNano":"{end}","attributes":[{}],"status":{{}}"#,
        attributes.join(",")
    );
    if let Some(parent) = parent {
        span.push_str(&format!(r#","parentSpanId":"{parent}""#));
    }
    if let Some(events) = events {
        span.push_str(&format!(r#","events":{events}"#));
    }
    span.push('}');
    span
}

fn text(value: &str) -> String {
    format!(r#"{{"stringValue":"{value}"}}"#)
}

fn record(service: &str, spans: &[String]) -> String {
    format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{}}}]}},"scopeSpans":[{{"scope":{{"name":"x"}},"spans":[{}]}}]}}]}}"#,
        text(service),
        spans.join(",")
    )
}

/// Conversation `i` as `mk.py` writes it: the agent's record (its turn aborted while a tool
/// call's POST was in flight) and the payment service's, which commits after the abort.
fn conversation(i: u64) -> [String; 2] {
    const T0: u64 = 1_795_623_368_000_000_000;
    let trace = format!("{:032x}", 0x1000 + i);
    let ids = |base: u64| -> Vec<String> {
        (0..4)
            .map(|k| format!("{:016x}", base + i * 4 + k))
            .collect()
    };
    let (a, w) = (ids(0x10_0000), ids(0x90_0000));
    let start = T0 + i * 10_000_000_000;
    let agent = span(
        &trace,
        &a[0],
        None,
        "invoke_agent support-agent",
        start,
        start + 3_000_000_000,
        &[
            ("gen_ai.operation.name", text("invoke_agent")),
            ("gen_ai.conversation.id", text(&format!("conv-{i}"))),
        ],
        Some(format!(
            r#"[{{"timeUnixNano":"{}","name":"abort"}}]"#,
            start + 1_000_000_000
        )),
        1,
    );
    let tool = span(
        &trace,
        &a[1],
        Some(&a[0]),
        "execute_tool create_payment",
        start + 500_000_000,
        start + 2_000_000_000,
        &[
            ("gen_ai.operation.name", text("execute_tool")),
            ("gen_ai.tool.name", text("create_payment")),
            ("gen_ai.tool.call.id", text(&format!("call_{i}"))),
        ],
        None,
        1,
    );
    let client = span(
        &trace,
        &a[2],
        Some(&a[1]),
        "POST",
        start + 600_000_000,
        start + 1_900_000_000,
        &[("http.request.method", text("POST"))],
        None,
        3,
    );
    let server = span(
        &trace,
        &a[3],
        Some(&a[2]),
        "POST /v1/payments",
        start + 610_000_000,
        start + 1_800_000_000,
        &[
            ("http.request.method", text("POST")),
            (
                "http.response.status_code",
                r#"{"intValue":"200"}"#.to_owned(),
            ),
        ],
        None,
        2,
    );
    let db = |id: &str, name: &str, from: u64, to: u64| {
        span(
            &trace,
            id,
            Some(&a[3]),
            name,
            start + from,
            start + to,
            &[("db.operation.name", text(name))],
            None,
            3,
        )
    };
    [
        record("support-agent", &[agent, tool, client]),
        record(
            "payments-api",
            &[
                server,
                db(&w[0], "BEGIN", 620_000_000, 630_000_000),
                db(&w[1], "INSERT", 640_000_000, 650_000_000),
                db(&w[2], "COMMIT", 1_500_000_000, 1_600_000_000),
            ],
        ),
    ]
}

/// The reliability cases' file: conversations 1 and 0, with `damage` done to the third line
/// (the agent's record of conversation 0, whose abort and tool call it holds).
fn case(damage: impl Fn(&str) -> String) -> String {
    let [a1, b1] = conversation(1);
    let [a0, b0] = conversation(0);
    format!("{a1}\n{b1}\n{}\n{b0}\n", damage(&a0))
}

/// Writes `text` as a file in `dir` and scans it both ways.
fn scan_case(dir: &Path, name: &str, text: &[u8]) -> Outcome {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    both_ways(&[path])
}

fn replace_once(line: &str, from: &str, to: &str) -> String {
    assert!(line.contains(from), "{from} in {line}");
    line.replacen(from, to, 1)
}

#[test]
fn undamaged_the_case_finds_both_late_commits() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = scan_case(dir.path(), "syn.jsonl", case(str::to_owned).as_bytes());
    assert_eq!(outcome.code, 1, "{}", outcome.stderr);
    assert_eq!(outcome.categories(), ["client_gone", "client_gone"]);
    assert_eq!(outcome.diagnostics(), []);
}

/// Defect 4: a number out of range where the span's start, kind or status code is read ended
/// a two-pass scan (exit 2, "was the file changed?"); it is the one diagnostic of a whole read.
#[test]
fn a_number_out_of_range_in_a_kept_span_is_the_whole_reads_diagnostic() {
    let dir = tempfile::tempdir().unwrap();
    for (name, from, to) in [
        (
            "start",
            r#""startTimeUnixNano":"1795623368000000000""#,
            r#""startTimeUnixNano":1e400"#,
        ),
        (
            "start_e99999",
            r#""startTimeUnixNano":"1795623368000000000""#,
            r#""startTimeUnixNano":1e99999"#,
        ),
        ("kind", r#""kind":1,"#, r#""kind":1e400,"#),
        (
            "status_code",
            r#""status":{}"#,
            r#""status":{"code":1e400}"#,
        ),
        (
            "event_time",
            r#""timeUnixNano":"1795623369000000000""#,
            r#""timeUnixNano":1e400"#,
        ),
    ] {
        let text = case(|line| replace_once(line, from, to));
        let outcome = scan_case(dir.path(), &format!("numoor_{name}.jsonl"), text.as_bytes());
        assert_eq!(outcome.code, 1, "{name}: {}", outcome.stderr);
        assert_eq!(outcome.categories(), ["client_gone"], "{name}");
        let diagnostics = outcome.diagnostics();
        assert_eq!(diagnostics.len(), 1, "{name}: {diagnostics:?}");
        let (code, line, message) = &diagnostics[0];
        assert_eq!((code.as_str(), *line), ("over-limit", 3), "{name}");
        assert!(
            message.starts_with("record has a number beyond the range of a 64-bit float (about ±1.8e308) where abortaudit reads a value (at column "),
            "{message}"
        );
    }
}

/// Defect 7: what a whole read refuses (a repeated key, a value nested past serde_json's
/// limit, a number out of range in an attribute value), the two-pass read accepted, and found
/// one more late commit; it refuses it alike.
#[test]
fn what_a_whole_read_refuses_the_first_pass_refuses_with_its_diagnostic() {
    let dir = tempfile::tempdir().unwrap();
    let deep = format!(
        r#"{}{{"stringValue":"x"}}{}"#,
        r#"{"arrayValue":{"values":["#.repeat(100_000),
        "]}}".repeat(100_000)
    );
    let attribute = |value: String| {
        move |line: &str| {
            replace_once(
                line,
                r#"{"key":"gen_ai.conversation.id""#,
                &format!(r#"{{"key":"x","value":{value}}},{{"key":"gen_ai.conversation.id""#),
            )
        }
    };
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "dupkey_name",
            case(|line| {
                replace_once(
                    line,
                    r#""name":"invoke_agent support-agent""#,
                    r#""name":"invoke_agent support-agent","name":"other""#,
                )
            }),
            "invalid-otlp",
            "record is not OTLP/JSON: duplicate field `name` at line 1 column ",
        ),
        (
            "deep_attr_value_1e5",
            case(attribute(deep)),
            "over-limit",
            "record nests objects and lists that abortaudit reads deeper than the 128 levels it reads (at column ",
        ),
        (
            "numoor_int",
            case(attribute(r#"{"intValue":1e400}"#.to_owned())),
            "over-limit",
            "record has a number beyond the range of a 64-bit float",
        ),
        (
            "numoor_double",
            case(attribute(r#"{"doubleValue":1e400}"#.to_owned())),
            "over-limit",
            "record has a number beyond the range of a 64-bit float",
        ),
    ];
    for (name, text, code, message) in cases {
        for (file, bytes) in [
            (format!("{name}.jsonl"), text.as_bytes().to_vec()),
            (format!("{name}.jsonl.gz"), common::gzip(text.as_bytes())),
        ] {
            let outcome = scan_case(dir.path(), &file, &bytes);
            assert_eq!(outcome.categories(), ["client_gone"], "{file}");
            let diagnostics = outcome.diagnostics();
            assert_eq!(diagnostics.len(), 1, "{file}: {diagnostics:?}");
            assert_eq!(
                (diagnostics[0].0.as_str(), diagnostics[0].1),
                (code, 3),
                "{file}"
            );
            assert!(
                diagnostics[0].2.starts_with(message),
                "{file}: {}",
                diagnostics[0].2
            );
        }
    }
    // A number out of range where OTLP/JSON has no field is skipped unread, by both reads.
    for (name, from, to) in [
        ("flags", r#""kind":1,"#, r#""kind":1,"flags":1e400,"#),
        (
            "unknown",
            r#""kind":1,"#,
            r#""kind":1,"x":[1e400,{"y":-1e99999}],"#,
        ),
    ] {
        let text = case(|line| replace_once(line, from, to));
        let outcome = scan_case(dir.path(), &format!("numoor_{name}.jsonl"), text.as_bytes());
        assert_eq!(
            outcome.categories(),
            ["client_gone", "client_gone"],
            "{name}"
        );
        assert_eq!(outcome.diagnostics(), [], "{name}");
    }
}

/// Defect 5: a damaged first line rejected the whole file ("not valid JSON", exit 2, no span).
/// The file is OTLP/JSON Lines by its other lines; the first is a diagnostic.
#[test]
fn a_damaged_first_line_is_a_diagnostic_and_the_other_records_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let good = case(str::to_owned);
    let truncated = &good[..26];
    for (name, first, code, message) in [
        (
            "truncated",
            truncated,
            "malformed-json",
            "not valid JSON: EOF while parsing a string at line 1 column 26",
        ),
        (
            "garbage",
            "hello world",
            "malformed-json",
            "not valid JSON: expected value at line 1 column 1",
        ),
        (
            "empty_object",
            "{}",
            "invalid-otlp",
            "record has no resourceSpans",
        ),
        (
            "other_object",
            r#"{"a":1}"#,
            "invalid-otlp",
            "record has no resourceSpans",
        ),
        (
            "metrics",
            r#"{"resourceMetrics":[]}"#,
            "not-traces",
            "record holds metrics",
        ),
        (
            "open_list",
            "[",
            "malformed-json",
            "not valid JSON: EOF while parsing a list",
        ),
        (
            "end_of_a_record",
            r#"e":"x"}]}]}]}"#,
            "malformed-json",
            "not valid JSON: expected value",
        ),
    ] {
        let text = format!("{first}\n{good}");
        let outcome = scan_case(
            dir.path(),
            &format!("first_line_{name}.jsonl"),
            text.as_bytes(),
        );
        assert_eq!(outcome.code, 1, "{name}: {}", outcome.stderr);
        assert_eq!(outcome.report()["summary"]["spans"], 14, "{name}");
        assert_eq!(
            outcome.categories(),
            ["client_gone", "client_gone"],
            "{name}"
        );
        let diagnostics = outcome.diagnostics();
        assert_eq!(diagnostics.len(), 1, "{name}: {diagnostics:?}");
        assert_eq!(
            (diagnostics[0].0.as_str(), diagnostics[0].1),
            (code, 1),
            "{name}"
        );
        assert!(
            diagnostics[0].2.starts_with(message),
            "{name}: {}",
            diagnostics[0].2
        );
    }
    // Past the lines the sniffer reads, a file is what its first line says.
    let late = format!("{}{good}", "{\"a\":1}\n".repeat(16));
    let outcome = scan_case(dir.path(), "late.jsonl", late.as_bytes());
    assert_eq!(outcome.code, 2);
    assert!(
        outcome
            .stderr
            .contains(r#"this is a JSON object with keys ["a"], not trace data"#),
        "{}",
        outcome.stderr
    );
    let within = format!("{}{good}", "{\"a\":1}\n".repeat(15));
    let outcome = scan_case(dir.path(), "within.jsonl", within.as_bytes());
    assert_eq!(outcome.categories(), ["client_gone", "client_gone"]);
    assert_eq!(outcome.diagnostics().len(), 15);
    // What is not traces at all is still an error that says what it looks like.
    let outcome = scan_case(dir.path(), "objects.jsonl", b"{\"a\":1}\n{\"b\":2}\n");
    assert_eq!(outcome.code, 2);
    assert!(
        outcome.stderr.contains("a JSON object with keys"),
        "{}",
        outcome.stderr
    );
    let outcome = scan_case(dir.path(), "words.txt", b"hello\nworld\n");
    assert_eq!(outcome.code, 2);
    assert!(
        outcome
            .stderr
            .contains("not JSON (it starts with bytes 68 65 6c 6c)"),
        "{}",
        outcome.stderr
    );
}

/// Defect 9: a misspelt `scopeSpans` or `spans` lost its spans without a word. OTLP/JSON
/// ignores fields it does not define, so the record is read, with a warning naming the key.
#[test]
fn a_misspelt_key_where_spans_are_expected_is_named_in_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    for (name, from, to, within, expected) in [
        (
            "scopeSpan",
            r#""scopeSpans":"#,
            r#""scopeSpan":"#,
            "resourceSpans[0]",
            "scopeSpans",
        ),
        (
            "Spans",
            r#""spans":"#,
            r#""Spans":"#,
            "resourceSpans[0].scopeSpans[0]",
            "spans",
        ),
        (
            "resourceSpan",
            r#"{"resourceSpans":"#,
            r#"{"resourceSpans":[],"resourceSpan":"#,
            "the record",
            "resourceSpans",
        ),
        (
            "escaped",
            r#""spans":"#,
            r#""sp\u0061nz":"#,
            "resourceSpans[0].scopeSpans[0]",
            "spans",
        ),
    ] {
        let text = case(|line| replace_once(line, from, to));
        let outcome = scan_case(
            dir.path(),
            &format!("misspelt_{name}.jsonl"),
            text.as_bytes(),
        );
        // The agent's spans are lost: the other conversation's late commit is still found.
        assert_eq!(outcome.categories(), ["client_gone"], "{name}");
        let diagnostics = outcome.diagnostics();
        assert_eq!(diagnostics.len(), 1, "{name}: {diagnostics:?}");
        let (code, line, message) = &diagnostics[0];
        assert_eq!((code.as_str(), *line), ("unknown-field", 3), "{name}");
        let key = if name == "escaped" { "spanz" } else { name };
        assert_eq!(
            message,
            &format!(
                "{within} has a key {key:?} holding a list of objects, which OTLP/JSON does not define (expected {expected:?} there); it is ignored, so any spans in it were not read"
            )
        );
    }
    // Keys OTLP/JSON defines and ignores, and unknown keys that cannot hold spans, are quiet.
    let text = case(|line| {
        let line = replace_once(
            line,
            r#""scopeSpans":"#,
            r#""schemaUrl":"u","vendor":{"a":[{}]},"tags":["x"],"scopeSpans":"#,
        );
        replace_once(
            &line,
            r#""spans":"#,
            r#""schemaUrl":"u","empty":[],"spans":"#,
        )
    });
    let outcome = scan_case(dir.path(), "quiet.jsonl", text.as_bytes());
    assert_eq!(outcome.diagnostics(), []);
    assert_eq!(outcome.categories(), ["client_gone", "client_gone"]);
}

/// Defect 12: the same damage gave different diagnostics (text, column, code) in the two
/// reads. A few, beside what the differential test below checks.
#[test]
fn the_same_damage_gives_the_same_diagnostic_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    for (name, from, to) in [
        (
            "span_attributes",
            r#""attributes":[{"key":"gen_ai.operation.name""#,
            r#""attributes":5,"x":[{"key":"gen_ai.operation.name""#,
        ),
        (
            "resource",
            r#"{"resource":{"attributes":["#,
            r#"{"resource":{"attributes":5,"x":["#,
        ),
        (
            "bad_start",
            r#""startTimeUnixNano":"1795623368000000000""#,
            r#""startTimeUnixNano":"soon""#,
        ),
        (
            "bad_span_id",
            r#""spanId":"0000000000100001""#,
            r#""spanId":"00000000001000zz""#,
        ),
        (
            "open_span",
            r#""endTimeUnixNano":"1795623371000000000""#,
            r#""endTimeUnixNano":"0""#,
        ),
        (
            "lone_surrogate",
            r#""name":"POST""#,
            r#""name":"\ud800POST""#,
        ),
        // An invalid byte (written here as a character, then as the byte) in a field
        // OTLP/JSON does not have: serde_json skips it unchecked, but JSON text is UTF-8.
        (
            "bad_utf8_in_an_ignored_field",
            r#""kind":3,"#,
            "\"kind\":3,\"x\":\"\u{7f}\",",
        ),
    ] {
        let text = case(|line| replace_once(line, from, to));
        let text: Vec<u8> = text
            .bytes()
            .map(|b| if b == 0x7f { 0xff } else { b })
            .collect();
        let outcome = scan_case(dir.path(), &format!("{name}.jsonl"), &text);
        assert!(!outcome.diagnostics().is_empty(), "{name}");
    }
}

/// The limits of docs/limits.md: what is read up to them, and the diagnostic past them, which
/// names the input and the line, both ways.
#[test]
fn each_input_limit_is_a_diagnostic_naming_the_input_and_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let nested = |levels: usize, value: &str| {
        let value = format!(
            "{}{value}{}",
            r#"{"arrayValue":{"values":["#.repeat(levels),
            "]}}".repeat(levels)
        );
        case(move |line| {
            replace_once(
                line,
                r#"{"key":"gen_ai.conversation.id""#,
                &format!(r#"{{"key":"deep","value":{value}}},{{"key":"gen_ai.conversation.id""#),
            )
        })
    };
    let kvlists = |levels: usize| {
        let value = format!(
            "{}{}{}",
            r#"{"kvlistValue":{"values":[{"key":"k","value":"#.repeat(levels),
            r#"{"stringValue":"x"}"#,
            "}]}}".repeat(levels)
        );
        case(move |line| {
            replace_once(
                line,
                r#"{"key":"gen_ai.conversation.id""#,
                &format!(r#"{{"key":"deep","value":{value}}},{{"key":"gen_ai.conversation.id""#),
            )
        })
    };
    let over = |name: &str, text: &str| -> (String, u64, String) {
        let outcome = scan_case(dir.path(), name, text.as_bytes());
        let report = outcome.report();
        let diagnostics = report["diagnostics"].as_array().unwrap();
        assert_eq!(diagnostics.len(), 1, "{name}: {diagnostics:?}");
        let d = &diagnostics[0];
        assert!(d["input"].as_str().unwrap().ends_with(name), "{d}");
        (
            d["code"].as_str().unwrap().to_owned(),
            d["line"].as_u64().unwrap(),
            d["message"].as_str().unwrap().to_owned(),
        )
    };
    let within = |name: &str, text: &str| {
        let outcome = scan_case(dir.path(), name, text.as_bytes());
        assert_eq!(outcome.diagnostics(), [], "{name}");
        assert_eq!(
            outcome.categories(),
            ["client_gone", "client_gone"],
            "{name}"
        );
    };
    // Nesting: 128 levels of what is read, from the top of the record: 39 list values in a
    // span's attribute, 29 key-value lists.
    within("array_39.jsonl", &nested(39, r#"{"stringValue":"x"}"#));
    let (code, line, message) = over("array_40.jsonl", &nested(40, r#"{"stringValue":"x"}"#));
    assert_eq!((code.as_str(), line), ("over-limit", 3));
    assert!(message.starts_with("record nests objects and lists that abortaudit reads deeper than the 128 levels it reads (at column "), "{message}");
    within("kvlist_29.jsonl", &kvlists(29));
    assert_eq!(over("kvlist_30.jsonl", &kvlists(30)).0, "over-limit");
    // What OTLP/JSON has no field for is skipped unread, however deep.
    within(
        "ignored_deep.jsonl",
        &case(|line| {
            replace_once(
                line,
                r#""kind":1,"#,
                &format!(
                    r#""kind":1,"x":{}1{},"#,
                    "[".repeat(100_000),
                    "]".repeat(100_000)
                ),
            )
        }),
    );
    // Numbers: a double within an f64's range; beyond it, where a value is read.
    within("double_max.jsonl", &nested(0, r#"{"doubleValue":1.7e308}"#));
    let (code, line, message) = over("double_over.jsonl", &nested(0, r#"{"doubleValue":-1e309}"#));
    assert_eq!((code.as_str(), line), ("over-limit", 3));
    assert!(message.starts_with("record has a number beyond the range of a 64-bit float (about ±1.8e308) where abortaudit reads a value (at column "), "{message}");
    // Times are unsigned 64-bit integers, int values signed ones: past them, the value is
    // ignored with an invalid-value error.
    within(
        "int_max.jsonl",
        &nested(0, r#"{"intValue":"9223372036854775807"}"#),
    );
    let (code, line, message) = over(
        "int_over.jsonl",
        &nested(0, r#"{"intValue":"9223372036854775808"}"#),
    );
    assert_eq!((code.as_str(), line), ("invalid-value", 3));
    assert_eq!(
        message,
        r#"attribute "deep": intValue "9223372036854775808" is not valid; the value is ignored"#
    );
    let time = |value: &str| {
        let value = value.to_owned();
        case(move |line| {
            replace_once(
                line,
                r#""endTimeUnixNano":"1795623371000000000""#,
                &format!(r#""endTimeUnixNano":{value}"#),
            )
        })
    };
    within("time_max.jsonl", &time(r#""18446744073709551615""#));
    let (code, _, message) = over("time_over.jsonl", &time(r#""18446744073709551616""#));
    assert_eq!(code, "invalid-value");
    assert!(
        message.contains(
            r#"endTimeUnixNano "18446744073709551616" is not an unsigned 64-bit integer"#
        ),
        "{message}"
    );
    // An attribute value has no limit of its own: 4 MB of it are read.
    within(
        "long_value.jsonl",
        &nested(
            0,
            &format!(r#"{{"stringValue":"{}"}}"#, "x".repeat(4 << 20)),
        ),
    );
    // A compressed input decompresses to at most --max-decompressed: past it, an error for the
    // input, alike both ways.
    let text = case(str::to_owned);
    for (name, bytes) in [
        ("limit.jsonl.gz", common::gzip(text.as_bytes())),
        ("limit.jsonl.zst", common::zstd(text.as_bytes())),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let outcomes: Vec<Outcome> = [u64::MAX, 0]
            .into_iter()
            .map(|survey_above| {
                scan_with(
                    std::slice::from_ref(&path),
                    IngestOptions {
                        survey_above,
                        max_decompressed: Some(1000),
                        ..IngestOptions::default()
                    },
                )
            })
            .collect();
        assert_same(&outcomes[0], &outcomes[1], name);
        assert_eq!(outcomes[0].code, 2);
        let stderr = &outcomes[0].stderr;
        assert!(
            stderr.starts_with(&format!("error: {}: ", path.display())),
            "{stderr}"
        );
        assert!(
            stderr.contains("decompresses to more than the limit of 1000 bytes"),
            "{stderr}"
        );
        assert!(stderr.contains("--max-decompressed"), "{stderr}");
    }
}

/// The damage done to fixture records by the differential test.
#[derive(Clone, Copy, Debug)]
enum Damage {
    Replace(u8),
    Drop,
    Double,
    Truncate,
    NumberBlowUp,
    DuplicateKey,
    DeepNesting,
    MisspeltKey,
    EscapedKey,
}

/// Bytes that make the most of a one-byte replacement in JSON text.
const REPLACEMENTS: &[u8] = b" \"\\{}[],:0129-+.eEanulx_\x01\x7f\xff";

/// `line` damaged at about `at` (a byte offset) by `damage`; `rng` picks the details.
fn damaged(line: &[u8], at: usize, damage: Damage, rng: &mut XorShift) -> Vec<u8> {
    let at = at.min(line.len().saturating_sub(1));
    let mut out = line.to_vec();
    // The start of the quoted key at or after `at`, and its end.
    let key_at = |from: usize| -> Option<(usize, usize)> {
        let mut i = from;
        while i + 2 < line.len() {
            if line[i] == b'"' {
                let end = i + 1 + line[i + 1..].iter().position(|b| *b == b'"')?;
                if line.get(end + 1) == Some(&b':') {
                    return Some((i, end + 1));
                }
                i = end + 1;
            } else {
                i += 1;
            }
        }
        None
    };
    match damage {
        Damage::Replace(byte) => out[at] = byte,
        Damage::Drop => {
            out.remove(at);
        }
        Damage::Double => out.insert(at, line[at]),
        Damage::Truncate => out.truncate(at),
        Damage::NumberBlowUp => {
            // The next run of digits (a time, an id's digits, a kind, an int value).
            if let Some(start) = line[at..]
                .iter()
                .position(u8::is_ascii_digit)
                .map(|i| at + i)
            {
                let end = start
                    + line[start..]
                        .iter()
                        .take_while(|b| b.is_ascii_digit())
                        .count();
                let quoted = start > 0 && line[start - 1] == b'"' && line.get(end) == Some(&b'"');
                let (from, to) = if quoted && rng.next().is_multiple_of(2) {
                    (start - 1, end + 1)
                } else {
                    (start, end)
                };
                let blow = [
                    &b"1e400"[..],
                    b"-1e400",
                    b"1e99999",
                    b"123456789012345678901234567890",
                    b"1.5",
                    b"-1",
                    b"18446744073709551616",
                    b"0",
                ];
                let with = blow[(rng.next() % blow.len() as u64) as usize];
                out.splice(from..to, with.iter().copied());
            }
        }
        Damage::DuplicateKey => {
            if let Some((start, _)) = key_at(at) {
                // The member from its key to the next comma at its level, roughly: doubled.
                let mut depth = 0i32;
                let mut end = start;
                let mut in_string = false;
                while end < line.len() {
                    let b = line[end];
                    if in_string {
                        if b == b'\\' {
                            end += 1;
                        } else if b == b'"' {
                            in_string = false;
                        }
                    } else {
                        match b {
                            b'"' => in_string = true,
                            b'{' | b'[' => depth += 1,
                            b'}' | b']' if depth == 0 => break,
                            b'}' | b']' => depth -= 1,
                            b',' if depth == 0 => break,
                            _ => {}
                        }
                    }
                    end += 1;
                }
                let mut member = line[start..end].to_vec();
                member.push(b',');
                out.splice(start..start, member);
            }
        }
        Damage::DeepNesting => {
            let depth = [5usize, 20, 35, 40, 45, 60, 130, 1000][(rng.next() % 8) as usize];
            let value: Vec<u8> = match rng.next() % 3 {
                0 => format!(
                    r#"{{"key":"deep","value":{}{{"intValue":"1"}}{}}},"#,
                    r#"{"arrayValue":{"values":["#.repeat(depth),
                    "]}}".repeat(depth)
                )
                .into_bytes(),
                1 => format!(r#""deep":{}1{},"#, "[".repeat(depth), "]".repeat(depth)).into_bytes(),
                _ => format!(
                    r#"{{"key":"deep","value":{}{{"stringValue":"x"}}{}}},"#,
                    r#"{"kvlistValue":{"values":[{"key":"k","value":"#.repeat(depth),
                    "}]}}".repeat(depth)
                )
                .into_bytes(),
            };
            // Into an attribute list, or before a member.
            let place = match value.first() {
                Some(b'{') => line
                    .windows(14)
                    .skip(at)
                    .position(|w| w == b"\"attributes\":[")
                    .map(|i| at + i + 14),
                _ => key_at(at).map(|(start, _)| start),
            };
            if let Some(place) = place {
                out.splice(place..place, value);
            }
        }
        Damage::MisspeltKey => {
            if let Some((start, end)) = key_at(at) {
                let key = &line[start + 1..end - 1];
                let mut changed = key.to_vec();
                match rng.next() % 3 {
                    0 if !changed.is_empty() => {
                        changed.pop();
                    }
                    1 if !changed.is_empty() => changed[0] = changed[0].to_ascii_uppercase(),
                    _ => changed.push(b'x'),
                }
                out.splice(start + 1..end - 1, changed);
            }
        }
        Damage::EscapedKey => {
            if let Some((start, end)) = key_at(at)
                && end - start > 2
            {
                let i = start + 1 + (rng.next() as usize % (end - start - 2));
                let escape = match rng.next() % 4 {
                    0 => format!("\\u{:04x}", line[i]),
                    1 => "\\ud800".to_owned(),
                    2 => "\\ud83d\\ude00".to_owned(),
                    _ => format!("\\u{:04X}", line[i]),
                };
                out.splice(i..i + 1, escape.bytes());
            }
        }
    }
    out
}

/// Every file under `dir`, recursively, in name order.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    let mut entries: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            found.extend(files(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// Whether a file is OTLP/JSON Lines traces, by its first line.
fn is_otlp_json_lines(path: &Path) -> bool {
    let Ok(text) = std::fs::read(path) else {
        return false;
    };
    let first = text.split(|b| *b == b'\n').next().unwrap_or_default();
    first.starts_with(b"{\"resourceSpans\"") || first.starts_with(b"{\"resource_spans\"")
}

/// The differential test: whole and two-pass scans of every OTLP/JSON Lines input at hand and
/// of damaged copies of fixture records say the same, to the byte.
#[test]
fn whole_and_two_pass_reads_agree_on_every_input_and_thousands_of_damaged_records() {
    let started = Instant::now();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixtures: Vec<PathBuf> = files(&root.join("fixtures"))
        .into_iter()
        .filter(|p| is_otlp_json_lines(p))
        .collect();
    assert!(fixtures.len() >= 10, "{fixtures:?}");
    let mut scans = 0;
    // Each fixture, and each scenario's traces together (joins across files).
    for path in &fixtures {
        both_ways(std::slice::from_ref(path));
        scans += 1;
    }
    for scenarios in ["scenarios", "scenarios-frameworks", "scenarios-node"] {
        both_ways(&[root.join("fixtures").join(scenarios).join("traces")]);
        scans += 1;
    }
    // The public corpus and the reliability cases, when they are beside the checkout.
    for sub in ["traces"] {
        if let Some(dir) = common::corpus(sub) {
            for path in files(&dir) {
                both_ways(&[path]);
                scans += 1;
            }
        }
    }
    let cases = root.join("../shared/reliability/cases");
    if cases.exists() {
        for path in files(&cases) {
            if path.extension().is_some_and(|e| e == "py") {
                continue;
            }
            both_ways(&[path]);
            scans += 1;
        }
    } else {
        eprintln!(
            "SKIPPED: {} not found; its cases were not read both ways",
            cases.display()
        );
    }

    eprintln!(
        "{scans} scans of the inputs at hand in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Damaged records: a record of the case above, or of a fixture, with three records
    // around it (the first line of a file is sniffed, so the damage goes to any line).
    let mut bases: Vec<Vec<Vec<u8>>> = vec![
        case(str::to_owned)
            .lines()
            .map(|l| l.as_bytes().to_vec())
            .collect(),
    ];
    for path in &fixtures {
        let text = std::fs::read(path).unwrap();
        let lines: Vec<Vec<u8>> = text
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        for window in lines.chunks(4) {
            // Small windows keep each scan quick.
            if window.iter().map(Vec::len).sum::<usize>() < 40_000 {
                bases.push(window.to_vec());
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mut rng = XorShift(0x5EED_0F0E_7EAD);
    let damages = [
        Damage::Drop,
        Damage::Double,
        Damage::Truncate,
        Damage::NumberBlowUp,
        Damage::DuplicateKey,
        Damage::DeepNesting,
        Damage::MisspeltKey,
        Damage::EscapedKey,
    ];
    // `MUTATIONS=N cargo test` runs more (or fewer) of them.
    let mutations: usize = std::env::var("MUTATIONS").map_or(3_000, |v| v.parse().unwrap());
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for n in 0..mutations {
        // The syn case a third of the time: it holds findings to lose.
        let base = if n % 3 == 0 {
            &bases[0]
        } else {
            &bases[1 + (rng.next() as usize % (bases.len() - 1))]
        };
        let line = rng.next() as usize % base.len();
        let at = rng.next() as usize % base[line].len().max(1);
        let damage = match rng.next() % 10 {
            0..=2 => Damage::Replace(REPLACEMENTS[rng.next() as usize % REPLACEMENTS.len()]),
            _ => damages[rng.next() as usize % damages.len()],
        };
        let mut text = Vec::new();
        for (i, record) in base.iter().enumerate() {
            if i == line {
                text.extend(damaged(record, at, damage, &mut rng));
            } else {
                text.extend_from_slice(record);
            }
            // The last line without its newline now and then: a file still being written.
            if i + 1 < base.len() || n % 7 != 0 {
                text.push(b'\n');
            }
        }
        let path = dir.path().join(format!("damaged-{n}.jsonl"));
        std::fs::write(&path, &text).unwrap();
        let whole = scan(std::slice::from_ref(&path), u64::MAX);
        let two_pass = scan(std::slice::from_ref(&path), 0);
        assert_same(
            &whole,
            &two_pass,
            &format!(
                "damage {n}: {damage:?} at byte {at} of line {} of {}",
                line + 1,
                String::from_utf8_lossy(&text)
            ),
        );
        let kind = format!("{damage:?}").split('(').next().unwrap().to_owned();
        let codes: Vec<String> = match serde_json::from_str::<Value>(&whole.stdout) {
            Ok(report) => report["diagnostics"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["code"].as_str().unwrap().to_owned())
                .collect(),
            Err(_) => vec![format!("exit {}", whole.code)],
        };
        *outcomes.entry(format!("{kind}: {codes:?}")).or_default() += 1;
        std::fs::remove_file(&path).unwrap();
        scans += 2;
    }
    eprintln!(
        "{scans} scans ({mutations} damaged inputs, both ways) agreed in {:.1} s; outcomes:",
        started.elapsed().as_secs_f64()
    );
    for (outcome, n) in &outcomes {
        eprintln!("  {n:5}  {outcome}");
    }
    // The damage reached the readers: most kinds of diagnostic were met.
    let seen = |code: &str| outcomes.keys().any(|k| k.contains(code));
    for code in [
        "malformed-json",
        "invalid-otlp",
        "invalid-id",
        "invalid-value",
        "unknown-field",
        "truncated-line",
        "missing-time",
    ] {
        assert!(seen(code), "no damage gave {code}: {outcomes:#?}");
    }
}

//! Hostile input: random bytes, truncated records and deep nesting never panic the reader;
//! each gives a diagnostic or an error.

mod common;

use abortaudit::ingest::parse_input;
use common::XorShift;

const RECORD: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"api"}}]},"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","parentSpanId":"eee19b7ec3c1b173","name":"POST /x","kind":2,"startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000","attributes":[{"key":"n","value":{"intValue":"3"}},{"key":"d","value":{"doubleValue":"NaN"}},{"key":"a","value":{"arrayValue":{"values":[{"boolValue":true}]}}}],"events":[{"timeUnixNano":"1544712660500000000","name":"abort"}],"links":[{"traceId":"5b8efff798038103d269b633813fc60d","spanId":"eee19b7ec3c1b175"}],"status":{"code":2,"message":"x"}}]}]}]}"#;

fn outcome_is_reported(name: &str, bytes: &[u8]) {
    let (report, spans) = parse_input(name, bytes);
    let reported = report.error.is_some() || !report.diagnostics.is_empty();
    let clean = spans.len() as u64 == report.counts.spans && report.counts.spans > 0;
    let empty = bytes.iter().all(u8::is_ascii_whitespace);
    assert!(
        reported || clean || empty,
        "{name}: neither spans nor a diagnostic nor an error"
    );
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for case in 0..2_000 {
        let len = (rng.next() % 300) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        outcome_is_reported(&format!("random-{case}"), &bytes);
    }
}

#[test]
fn every_truncation_of_a_record_is_a_diagnostic_or_an_error() {
    for cut in 1..RECORD.len() {
        let text = format!("{RECORD}\n{}", &RECORD[..cut]);
        let (report, spans) = parse_input("truncated.jsonl", text.as_bytes());
        assert_eq!(
            spans.len(),
            1,
            "the whole first line is still read (cut {cut})"
        );
        assert!(!report.diagnostics.is_empty(), "cut {cut} is reported");
        // A single document cut short cannot be read at all.
        let (report, _) = parse_input("truncated.json", &RECORD.as_bytes()[..cut]);
        assert!(
            report.error.is_some() || !report.diagnostics.is_empty(),
            "cut {cut}"
        );
    }
}

#[test]
fn mutated_records_never_panic() {
    let mut rng = XorShift(42);
    let pieces = [
        "\"",
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "null",
        "-1",
        "1e999",
        "\"\\u0000\"",
        "\u{202e}",
        "\"NaN\"",
    ];
    for case in 0..2_000 {
        let mut text = RECORD.to_owned();
        for _ in 0..(1 + rng.next() % 4) {
            let at = (rng.next() as usize) % text.len();
            if !text.is_char_boundary(at) {
                continue;
            }
            let piece = pieces[(rng.next() as usize) % pieces.len()];
            if rng.next().is_multiple_of(2) {
                text.insert_str(at, piece);
            } else {
                let end = (at + piece.len()).min(text.len());
                if text.is_char_boundary(end) {
                    text.replace_range(at..end, piece);
                }
            }
        }
        outcome_is_reported(&format!("mutated-{case}"), text.as_bytes());
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    for depth in [200, 100_000] {
        let value = format!(
            "{}{}",
            r#"{"arrayValue":{"values":["#.repeat(depth),
            "]}}".repeat(depth)
        );
        let nested = format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","attributes":[{{"key":"k","value":{value}}}]}}]}}]}}]}}"#
        );
        outcome_is_reported("deep.json", nested.as_bytes());
        let (report, _) = parse_input("deep.json", nested.as_bytes());
        assert!(report.error.is_some() || !report.diagnostics.is_empty());
        let brackets = "[".repeat(depth);
        let (report, _) = parse_input("brackets.json", brackets.as_bytes());
        assert!(report.error.is_some());
    }
}

#[test]
fn a_huge_thread_count_is_capped_and_said() {
    // `RAYON_NUM_THREADS=100000` used to stall for more than 20 s starting threads.
    let started = std::time::Instant::now();
    let output = common::bin()
        .env("RAYON_NUM_THREADS", "100000")
        .args(["inspect", "--format", "json"])
        .arg(common::fixture("scenarios/traces"))
        .output()
        .unwrap();
    common::assert_code(&output, 0);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("RAYON_NUM_THREADS=100000 is more threads than"),
        "{stderr}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let usual = common::bin()
        .args(["inspect", "--format", "json"])
        .arg(common::fixture("scenarios/traces"))
        .output()
        .unwrap();
    assert_eq!(output.stdout, usual.stdout);
}

/// The diagnostics' codes and lines of a JSON Lines file read whole and in two passes (every
/// file surveyed, the traces that matter read back).
fn codes_whole_and_two_pass(text: &str) -> [Vec<(Option<u64>, String)>; 2] {
    use abortaudit::ingest::{self, IngestOptions, InputSet, Source};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("traces.jsonl");
    std::fs::write(&path, text).unwrap();
    let inputs = InputSet {
        traces: vec![Source::Path(path)],
        ..Default::default()
    };
    let rules = abortaudit::rules::Rules::default();
    let codes = |read: &ingest::Ingested| {
        read.diagnostics()
            .map(|d| (d.line, d.code.as_str().to_owned()))
            .collect::<Vec<_>>()
    };
    let whole = ingest::ingest_inputs(&inputs, &IngestOptions::default(), &rules);
    let options = IngestOptions {
        survey_above: 0,
        ..IngestOptions::default()
    };
    let hidden = indicatif::ProgressBar::hidden();
    let first = ingest::first_pass(ingest::plan(&inputs, &options), &options, &rules, &hidden);
    let signals = first.signals(&rules);
    let traces = abortaudit::correlate::traces_that_matter(signals.may_abort, &signals.links);
    let two = ingest::second_pass(first, traces, &rules, &hidden);
    [codes(&whole), codes(&two)]
}

#[test]
fn a_record_that_is_not_json_is_malformed_whatever_type_error_serde_meets_first() {
    // Found by fuzz/two_pass_diff: a value of the wrong type before the syntax error (`[` where
    // a trace id's string goes) made the whole read say `invalid-otlp` where the first pass of
    // a two-pass read, which checks the JSON first, says `malformed-json`; and a last line cut
    // short there was `invalid-otlp` instead of `truncated-line`.
    let bad = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":["#;
    let [whole, two] = codes_whole_and_two_pass(&format!("{RECORD}\n{bad}5b8e]}}]}}]}}]}}\n"));
    assert_eq!(whole, [(Some(2), "malformed-json".to_owned())]);
    assert_eq!(whole, two);
    let [whole, two] = codes_whole_and_two_pass(&format!("{RECORD}\n{bad}"));
    assert_eq!(whole, [(Some(2), "truncated-line".to_owned())]);
    assert_eq!(whole, two);
    // A record that is JSON but of the wrong shape is still `invalid-otlp`.
    let (report, _) = parse_input(
        "typed.jsonl",
        format!("{RECORD}\n{bad}\"5b8e\"]}}]}}]}}]}}\n").as_bytes(),
    );
    let codes: Vec<&str> = report.diagnostics.iter().map(|d| d.code.as_str()).collect();
    assert_eq!(codes, ["invalid-otlp"], "{:?}", report.diagnostics);
}

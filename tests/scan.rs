//! `abortaudit scan` end to end: the scenario fixtures made by real SDKs and real services
//! (fixtures/harness) against the ground truth the harness read from the services' store,
//! plus the gate's exit codes and the JSON contract.

mod common;

use common::{assert_code, bin, fixture, gzip, json, zstd};
use serde_json::Value;

/// The scenario fixtures: the committed ones, or a fresh run of the harness that CI points
/// to with ABORTAUDIT_SCENARIOS, so the same ground-truth check runs on new real output.
fn scenarios() -> std::path::PathBuf {
    match std::env::var_os("ABORTAUDIT_SCENARIOS") {
        Some(dir) => dir.into(),
        None => fixture("scenarios"),
    }
}

fn truth() -> Value {
    let path = scenarios().join("truth.json");
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    json(&text)
}

/// The scenario inputs as `scan` arguments: the traces, and each vendor event log that the
/// ground truth names with `--events`.
fn scenario_inputs() -> Vec<std::ffi::OsString> {
    let dir = scenarios();
    let mut args = vec![dir.join("traces").into_os_string()];
    for log in truth()["event_logs"].as_array().into_iter().flatten() {
        args.push("--events".into());
        args.push(dir.join(log.as_str().unwrap()).into_os_string());
    }
    args
}

fn scan_json(extra: &[&str]) -> (Value, i32) {
    let output = bin()
        .args(["scan", "--format", "json"])
        .args(extra)
        .args(scenario_inputs())
        .output()
        .unwrap();
    (json(&output.stdout), output.status.code().unwrap())
}

fn nanos(v: &Value) -> i128 {
    v.as_str()
        .expect("nanoseconds are strings")
        .parse()
        .unwrap()
}

#[test]
fn scenario_findings_match_the_ground_truth() {
    let truth = truth();
    assert_eq!(truth["schema"], "abortaudit-truth/v1");
    let tolerance = nanos(&truth["commit_time_tolerance_ns"]);
    let (report, code) = scan_json(&[]);
    assert_eq!(report["schema"], "abortaudit/v1");
    assert_eq!(code, 1, "the scenarios hold late writes, so the gate fails");
    assert_eq!(report["summary"]["diagnostics"], 0);

    let findings = report["findings"].as_array().unwrap();
    let expected = truth["expected_findings"].as_array().unwrap();
    let mut matched = vec![false; findings.len()];
    for want in expected {
        let scenario = want["scenario"].as_str().unwrap();
        let position = findings.iter().enumerate().position(|(i, f)| {
            !matched[i]
                && f["conversation_id"] == want["conversation_id"]
                && f["category"] == want["category"]
                && f["tool_call"]["tool_call_id"] == want["tool_call_id"]
        });
        let Some(i) = position else {
            panic!(
                "{scenario}: no {} finding for tool call {} in {}",
                want["category"], want["tool_call_id"], want["conversation_id"]
            );
        };
        matched[i] = true;
        let got = &findings[i];
        assert_eq!(got["trace_id"], want["trace_id"], "{scenario}");
        assert_eq!(got["late"], want["late"], "{scenario}");
        assert_eq!(got["ambiguous"], want["ambiguous"], "{scenario}");
        assert_eq!(got["join"], want["join"], "{scenario}: joined how");
        if let Some(event_id) = want["event_id"].as_str() {
            assert_eq!(
                got["write"]["event_id"], event_id,
                "{scenario}: the commit event"
            );
        }
        let abort_gap =
            nanos(&got["abort"]["time_unix_nano"]) - nanos(&want["abort_time_unix_nano"]);
        assert!(
            abort_gap.abs() <= tolerance,
            "{scenario}: abort off by {abort_gap} ns"
        );
        if want["commit_time_unix_nano"].is_null() {
            let commit = &got["write"]["commit_time_unix_nano"];
            let rolled_back = got["category"] == "pre_commit_abort";
            assert!(
                commit.is_null() || rolled_back,
                "{scenario}: nothing committed, yet {commit}"
            );
        } else {
            // A vendor's timestamp is only as fine as its precision (Stripe: 1 s).
            let precision = want["commit_time_precision_ns"]
                .as_str()
                .map_or(1, |p| p.parse::<i128>().unwrap());
            let gap = nanos(&got["write"]["commit_time_unix_nano"])
                - nanos(&want["commit_time_unix_nano"]);
            assert!(
                gap.abs() <= tolerance.max(precision),
                "{scenario}: commit time off by {gap} ns"
            );
        }
    }
    let unexpected: Vec<&Value> = findings
        .iter()
        .zip(&matched)
        .filter(|(_, m)| !**m)
        .map(|(f, _)| f)
        .collect();
    assert!(
        unexpected.is_empty(),
        "findings the ground truth does not have: {unexpected:#?}"
    );

    for quiet in truth["quiet_conversations"].as_array().unwrap() {
        assert!(
            findings
                .iter()
                .all(|f| f["conversation_id"] != quiet["conversation_id"]),
            "{}: {}",
            quiet["scenario"],
            quiet["why"]
        );
    }
}

#[test]
fn output_is_deterministic_and_ids_are_stable() {
    let first = bin()
        .args(["scan", "-f", "json"])
        .arg(fixture("scenarios/traces"))
        .output()
        .unwrap();
    // The same files named in another order, one by one.
    let dir = fixture("scenarios/traces");
    let second = bin()
        .args(["scan", "-f", "json"])
        .arg(dir.join("worker.jsonl"))
        .arg(dir.join("vendor.jsonl"))
        .arg(dir.join("agent.jsonl"))
        .output()
        .unwrap();
    let strip_inputs = |bytes: &[u8]| {
        let mut v = json(bytes);
        v["summary"]["inputs"] = Value::Null;
        v
    };
    assert_eq!(strip_inputs(&first.stdout), strip_inputs(&second.stdout));
    let again = bin()
        .args(["scan", "-f", "json"])
        .arg(fixture("scenarios/traces"))
        .output()
        .unwrap();
    assert_eq!(first.stdout, again.stdout, "same input, same bytes");
    for f in json(&first.stdout)["findings"].as_array().unwrap() {
        let id = f["id"].as_str().unwrap();
        assert!(
            id.len() == 16 && id.chars().all(|c| c.is_ascii_hexdigit()),
            "{id}"
        );
    }
}

#[test]
fn every_finding_has_the_schema_fields() {
    let (report, _) = scan_json(&[]);
    for key in [
        "inputs",
        "spans",
        "conversations",
        "aborted_turns",
        "tool_calls_at_risk",
        "categories",
        "late_writes",
        "gate",
    ] {
        assert!(!report["summary"][key].is_null(), "summary.{key}");
    }
    for f in report["findings"].as_array().unwrap() {
        for key in [
            "id",
            "category",
            "late",
            "ambiguous",
            "conversation_id",
            "trace_id",
            "abort",
            "tool_call",
            "join",
            "evidence",
        ] {
            assert!(f.get(key).is_some(), "finding.{key} in {f}");
        }
        for key in ["time", "time_unix_nano", "signal"] {
            assert!(f["abort"][key].is_string(), "abort.{key}");
        }
        for key in ["span_id", "name", "start", "end"] {
            assert!(f["tool_call"].get(key).is_some(), "tool_call.{key}");
        }
        if let Some(write) = f["write"].as_object() {
            for key in [
                "service",
                "operation",
                "span_id",
                "commit_time",
                "commit_time_unix_nano",
                "inferred",
            ] {
                assert!(write.contains_key(key), "write.{key}");
            }
        }
        assert!(
            !f["evidence"].as_array().unwrap().is_empty(),
            "evidence is never empty: {f}"
        );
    }
}

#[test]
fn fail_on_and_exit_zero_choose_the_exit_code() {
    let (_, code) = scan_json(&["--fail-on", "unverified"]);
    assert_eq!(
        code, 1,
        "the unverified scenario fails a gate on unverified"
    );
    let (report, code) = scan_json(&["--fail-on", "none"]);
    assert_eq!(code, 0);
    assert_eq!(report["summary"]["gate"]["failed"], false);
    let (report, code) = scan_json(&["--exit-zero"]);
    assert_eq!(code, 0, "--exit-zero reports without failing");
    assert_eq!(
        report["summary"]["gate"]["failed"], true,
        "the report still says the gate failed"
    );
}

#[test]
fn a_scan_with_no_abort_passes_the_gate() {
    // The worker file alone has consumers and writes but no conversation was aborted.
    let output = bin()
        .arg("scan")
        .arg(fixture("scenarios/traces/worker.jsonl"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("No writes landed after an abort."),
        "{stdout}"
    );
    assert!(stdout.contains("Gate: passed"), "{stdout}");
}

#[test]
fn a_larger_skew_tolerance_makes_near_ties_ambiguous() {
    let (narrow, _) = scan_json(&["--skew", "0ms"]);
    let (wide, _) = scan_json(&["--skew", "5s"]);
    let ambiguous = |r: &Value| r["summary"]["ambiguous"].as_u64().unwrap();
    assert!(ambiguous(&wide) > ambiguous(&narrow));
    let output = bin()
        .args(["scan", "--skew", "soon"])
        .arg(fixture("scenarios/traces"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn explain_shows_the_timeline_and_lists_ids_for_an_unknown_one() {
    let (report, _) = scan_json(&[]);
    let late_queued = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["category"] == "late_queued")
        .unwrap();
    let conversation = late_queued["conversation_id"].as_str().unwrap();
    let output = bin()
        .args(["explain", conversation])
        .arg(fixture("scenarios/traces"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("■ ABORT"), "{stdout}");
    assert!(stdout.contains("◀ late_queued"), "{stdout}");
    assert!(
        stdout.contains("consumer"),
        "the worker's consumer span is on the timeline: {stdout}"
    );

    let output = bin()
        .args(["explain", "no-such-conversation"])
        .arg(fixture("scenarios/traces"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(conversation),
        "the known ids are listed: {stderr}"
    );
}

#[test]
fn a_rules_file_with_an_unknown_key_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("abortaudit.toml");
    std::fs::write(&rules, "[abort]\nevent_name = [\"stop\"]\n").unwrap();
    let output = bin()
        .arg("scan")
        .arg("--config")
        .arg(&rules)
        .arg(fixture("scenarios/traces"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("event_name"), "{stderr}");

    // `rules` prints TOML that reads back as the same rules.
    let printed = bin().arg("rules").output().unwrap();
    std::fs::write(&rules, &printed.stdout).unwrap();
    let output = bin()
        .arg("rules")
        .arg("--config")
        .arg(&rules)
        .output()
        .unwrap();
    assert_eq!(output.stdout, printed.stdout);
}

#[test]
fn terminal_output_neutralises_escape_sequences_from_span_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("evil.jsonl");
    let line = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"agent\u001b[2J"}}]},"scopeSpans":[{"spans":[
        {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"invoke_agent \u001b]0;pwned\u0007","startTimeUnixNano":"1000000000","endTimeUnixNano":"9000000000",
         "attributes":[{"key":"gen_ai.operation.name","value":{"stringValue":"invoke_agent"}},{"key":"gen_ai.conversation.id","value":{"stringValue":"conv\u001b[31m-red"}}],
         "events":[{"name":"abort","timeUnixNano":"2000000000"}]},
        {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b175","parentSpanId":"eee19b7ec3c1b174","name":"execute_tool x","startTimeUnixNano":"1500000000",
         "attributes":[{"key":"gen_ai.operation.name","value":{"stringValue":"execute_tool"}},{"key":"gen_ai.tool.name","value":{"stringValue":"wipe\u001b[1A"}},{"key":"gen_ai.tool.call.id","value":{"stringValue":"call\u202e1"}}]}
    ]}]}]}"#
        .replace('\n', "");
    std::fs::write(&path, line).unwrap();
    let output = bin().arg("scan").arg(&path).output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        !stdout.contains('\u{1b}'),
        "no raw ESC reaches the terminal: {stdout}"
    );
    assert!(
        !stdout.contains('\u{202e}'),
        "no bidi override reaches the terminal"
    );
    assert!(stdout.contains("conv\\u{1b}[31m-red"), "{stdout}");
    let output = bin()
        .args(["explain", "conv\u{1b}[31m-red"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(!String::from_utf8(output.stdout).unwrap().contains('\u{1b}'));
}

#[test]
fn the_findings_table_is_stable() {
    let output = bin().arg("scan").args(scenario_inputs()).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let table = String::from_utf8(output.stdout).unwrap();
    assert!(
        table.lines().all(|l| l.chars().count() <= 100),
        "fits 100 columns:\n{table}"
    );
    // The committed fixtures only: a fresh harness run has other ids and times.
    if std::env::var_os("ABORTAUDIT_SCENARIOS").is_none() {
        insta::assert_snapshot!(table);
    }
}

#[test]
fn the_readme_example_mapping_is_valid_rules() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("```toml\n")
        .expect("a TOML example in the README")
        + 8;
    let end = start + readme[start..].find("```").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("abortaudit.toml");
    std::fs::write(&rules, &readme[start..end]).unwrap();
    let output = bin()
        .arg("rules")
        .arg("--config")
        .arg(&rules)
        .output()
        .unwrap();
    assert_code(&output, 0);
    assert!(String::from_utf8_lossy(&output.stdout).contains("acme-mailer"));

    // And it reads a log of that made-up vendor.
    let log = dir.path().join("acme.jsonl");
    std::fs::write(
        &log,
        "{\"source\":\"acme\",\"event_id\":\"e1\",\"kind\":\"delivered\",\"at_ms\":1700000000123,\"message\":{\"id\":\"m1\"}}\n",
    )
    .unwrap();
    let output = bin()
        .args(["inspect", "--format", "json", "--config"])
        .arg(&rules)
        .arg("--events")
        .arg(&log)
        .output()
        .unwrap();
    let report = json(&output.stdout);
    assert_eq!(report["inputs"][0]["vendors"]["acme-mailer"], 1, "{report}");
}

/// `scan --format json` of `path` with inputs over `survey_above` bytes read in two passes:
/// the report, and the exit status.
fn scan_surveyed_above(path: &std::path::Path, survey_above: &str) -> (Value, Option<i32>) {
    let output = bin()
        .env("ABORTAUDIT_SURVEY_ABOVE", survey_above)
        .args(["scan", "--format", "json"])
        .arg(path)
        .output()
        .unwrap();
    (json(&output.stdout), output.status.code())
}

#[test]
fn the_two_pass_read_of_large_files_finds_exactly_what_a_whole_read_finds() {
    // ABORTAUDIT_SURVEY_ABOVE=0 makes every plain JSON Lines file "large": it is surveyed,
    // then only the traces that matter are read. The audit must not change.
    let dir = tempfile::tempdir().unwrap();
    let traces = dir.path().join("traces");
    std::fs::create_dir(&traces).unwrap();
    for name in ["agent.jsonl", "vendor.jsonl", "worker.jsonl"] {
        std::fs::copy(scenarios().join("traces").join(name), traces.join(name)).unwrap();
    }
    // A bad line and a cut-off last line are reported once, by the survey.
    let mut worker = std::fs::read(traces.join("worker.jsonl")).unwrap();
    worker.extend_from_slice(b"{not json\n{\"resourceSpans\":[{\"scope");
    std::fs::write(traces.join("worker.jsonl"), worker).unwrap();
    let run = |survey_above: &str| scan_surveyed_above(&traces, survey_above);
    let (whole, whole_code) = run("unlimited");
    let (surveyed, surveyed_code) = run("0");
    assert_eq!(whole_code, surveyed_code);
    assert_eq!(whole["findings"], surveyed["findings"]);
    assert_eq!(whole["summary"], surveyed["summary"]);
    let codes = |r: &Value| -> Vec<String> {
        r["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["code"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(codes(&whole), codes(&surveyed));
    assert_eq!(codes(&surveyed), ["malformed-json", "truncated-line"]);

    // With no abort anywhere the survey keeps nothing, and that is a clean pass, not an error.
    let output = bin()
        .env("ABORTAUDIT_SURVEY_ABOVE", "0")
        .arg("scan")
        .arg(scenarios().join("traces/worker.jsonl"))
        .output()
        .unwrap();
    assert_code(&output, 0);
}

#[test]
fn the_two_pass_read_refuses_a_mistyped_span_or_resource_as_a_whole_read_does() {
    // A span whose attributes are not a list, in a trace the first pass would keep, and a
    // resource of the wrong shape, in one it would not: a whole read refuses each record, and
    // so does the first pass, word for word, whichever trace matters.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("traces.jsonl");
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let root = format!(
        r#"{{"traceId":"{trace}","spanId":"b7ad6b7169203331","name":"invoke_agent","kind":1,"startTimeUnixNano":"1000000000","endTimeUnixNano":"3000000000","attributes":[{{"key":"gen_ai.operation.name","value":{{"stringValue":"invoke_agent"}}}}],"events":[{{"timeUnixNano":"2000000000","name":"abort"}}]}}"#
    );
    let child = format!(
        r#"{{"traceId":"{trace}","spanId":"00f067aa0ba902b7","parentSpanId":"b7ad6b7169203331","name":"chat","kind":3,"startTimeUnixNano":"1100000000","endTimeUnixNano":"1200000000","attributes":5}}"#
    );
    let line = format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"agent"}}}}]}},"scopeSpans":[{{"spans":[{root},{child}]}}]}}]}}"#
    );
    // A first line that reads whole, so the file is recognised as OTLP/JSON Lines.
    let first = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b8","name":"quiet","kind":1,"startTimeUnixNano":"1","endTimeUnixNano":"2"}]}]}]}"#;
    // And a resource of the wrong shape, which the first pass reads once it meets it.
    let bad_resource = r#"{"resourceSpans":[{"resource":{"attributes":5},"scopeSpans":[{"spans":[{"traceId":"4bf92f3577b34da6a3ce929d0e0e4737","spanId":"00f067aa0ba902b9","name":"quiet","kind":1,"startTimeUnixNano":"1","endTimeUnixNano":"2"}]}]}]}"#;
    std::fs::write(&path, format!("{first}\n{line}\n{bad_resource}\n")).unwrap();
    let (whole, whole_code) = scan_surveyed_above(&path, "unlimited");
    let (report, code) = scan_surveyed_above(&path, "0");
    assert_eq!((code, whole_code), (Some(0), Some(0)), "{report}");
    assert_eq!(report["diagnostics"], whole["diagnostics"]);
    assert_eq!(report["summary"], whole["summary"]);
    let diagnostics = report["diagnostics"].as_array().unwrap();
    assert_eq!(diagnostics.len(), 2, "{report}");
    for (diagnostic, line) in diagnostics.iter().zip([2, 3]) {
        assert_eq!(diagnostic["code"], "invalid-otlp");
        assert_eq!(diagnostic["line"], line);
        let message = diagnostic["message"].as_str().unwrap();
        assert!(
            message.starts_with("record is not OTLP/JSON: invalid type: integer `5`, expected a sequence at line 1 column ")
                && message.ends_with("; skipped"),
            "{message}"
        );
    }
    // The abort was in the refused record.
    assert_eq!(report["summary"]["aborted_turns"], 0, "{report}");
}

#[test]
fn the_two_pass_read_finds_spans_kept_out_of_file_order() {
    // A line's spans are read in envelope order (`resourceSpans`, `batches`, then a nested
    // `trace`), so those of the nested trace, written before the batches, are kept after
    // them: the second pass must read both back, however far apart.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("traces.jsonl");
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let span = |id: &str, parent: &str, name: &str, extra: &str| {
        format!(
            r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"agent"}}}}]}},"scopeSpans":[{{"spans":[{{"traceId":"{trace}","spanId":"{id}","parentSpanId":"{parent}","name":"{name}","kind":1,"startTimeUnixNano":"1100000000","endTimeUnixNano":"1200000000"{extra}}}]}}]}}]"#
        )
    };
    let root = span(
        "b7ad6b7169203331",
        "",
        "invoke_agent",
        r#","events":[{"timeUnixNano":"1150000000","name":"abort"}]"#,
    );
    let padding = format!(
        r#","attributes":[{{"key":"padding","value":{{"stringValue":"{}"}}}}]"#,
        "x".repeat(20_000)
    );
    let nested = span("00f067aa0ba902b7", "b7ad6b7169203331", "nested", &padding);
    let batches = span("00f067aa0ba902b8", "b7ad6b7169203331", "batched", "");
    let line = format!(
        r#"{{"resourceSpans":{},"trace":{{"resourceSpans":{}}},"batches":{}}}"#,
        root.strip_prefix(r#"{"resourceSpans":"#).unwrap(),
        nested.strip_prefix(r#"{"resourceSpans":"#).unwrap(),
        batches.strip_prefix(r#"{"resourceSpans":"#).unwrap(),
    );
    let first = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b8","name":"quiet","kind":1,"startTimeUnixNano":"1","endTimeUnixNano":"2"}]}]}]}"#;
    std::fs::write(&path, format!("{first}\n{line}\n")).unwrap();
    let run = |task: &str, survey_above: &str| {
        let output = bin()
            .env("ABORTAUDIT_SURVEY_ABOVE", survey_above)
            .args([task, "--format", "json"])
            .arg(&path)
            .output()
            .unwrap();
        assert_code(&output, 0);
        json(&output.stdout)
    };
    let whole = run("inspect", "unlimited");
    assert_eq!(whole["inputs"][0]["spans"], 4, "{whole}");
    let (whole, surveyed) = (run("scan", "unlimited"), run("scan", "0"));
    assert_eq!(whole["summary"], surveyed["summary"]);
    assert_eq!(surveyed["summary"]["aborted_turns"], 1, "{surveyed}");
}

#[test]
fn a_compressed_export_is_read_in_two_passes_as_a_whole_read_reads_it() {
    // Large gzip and zstd exports are decompressed as they are read, twice, rather than into
    // memory. The audit must not change, nor what is said of a stream that is cut short.
    type Pack = fn(&[u8]) -> Vec<u8>;
    let packers: [(&str, Pack); 2] = [("gz", gzip), ("zst", zstd)];
    for (extension, pack) in packers {
        let dir = tempfile::tempdir().unwrap();
        let traces = dir.path().join("traces");
        std::fs::create_dir(&traces).unwrap();
        for name in ["agent.jsonl", "vendor.jsonl", "worker.jsonl"] {
            let text = std::fs::read(scenarios().join("traces").join(name)).unwrap();
            // Two frames (or members), as writers that flush make: cut short in the second,
            // the first still decodes.
            let half = text[text.len() / 2..]
                .iter()
                .position(|b| *b == b'\n')
                .map_or(text.len(), |at| text.len() / 2 + at + 1);
            let mut packed = pack(&text[..half]);
            packed.extend_from_slice(&pack(&text[half..]));
            std::fs::write(traces.join(format!("{name}.{extension}")), &packed).unwrap();
        }
        let run = |survey_above: &str| scan_surveyed_above(&traces, survey_above);
        let (whole, whole_code) = run("unlimited");
        let (surveyed, surveyed_code) = run("0");
        assert_eq!(whole_code, surveyed_code);
        assert!(!whole["findings"].as_array().unwrap().is_empty());
        assert_eq!(whole["findings"], surveyed["findings"], "{extension}");
        assert_eq!(whole["summary"], surveyed["summary"], "{extension}");
        assert_eq!(whole["diagnostics"], surveyed["diagnostics"], "{extension}");

        // Cut short: both read what decoded, and say the stream is corrupt.
        let agent = traces.join(format!("agent.jsonl.{extension}"));
        let packed = std::fs::read(&agent).unwrap();
        std::fs::write(&agent, &packed[..packed.len() * 9 / 10]).unwrap();
        let (whole, whole_code) = run("unlimited");
        let (surveyed, surveyed_code) = run("0");
        assert_eq!(whole_code, surveyed_code);
        assert_eq!(whole["findings"], surveyed["findings"], "{extension}");
        assert_eq!(whole["summary"], surveyed["summary"], "{extension}");
        assert_eq!(whole["diagnostics"], surveyed["diagnostics"], "{extension}");
        assert_eq!(
            surveyed["diagnostics"][0]["code"], "corrupt-compression",
            "{surveyed}"
        );
    }
}

#[test]
fn a_compressed_export_read_in_two_passes_stops_at_the_decompression_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("traces.jsonl.zst");
    let text = std::fs::read(scenarios().join("traces/agent.jsonl")).unwrap();
    let packed = zstd::bulk::compress(&text[..], 1).unwrap();
    std::fs::write(&path, packed).unwrap();
    let output = bin()
        .env("ABORTAUDIT_SURVEY_ABOVE", "0")
        .args(["scan", "--max-decompressed", "20KiB"])
        .arg(&path)
        .output()
        .unwrap();
    assert_code(&output, 2);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("decompresses to more than the limit of 20 KiB")
            && stderr.contains("--max-decompressed"),
        "{stderr}"
    );
}

#[test]
fn the_two_pass_read_keeps_turns_whose_stop_is_inferred_or_only_in_an_abort_log() {
    // The frameworks' and Node's harness runs: most of their Stops are shown by no span, only
    // inferred from the app's server or written to the abort log. A first pass that kept only
    // traces with a recorded abort lost them.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    // With inference off, only the log's conversation ids can keep its turns.
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        "[abort.inferred]\ndisconnect_attributes = []\nserver_status_codes = []\ncancelled_requests = false\n",
    )
    .unwrap();
    for scenarios in ["scenarios-frameworks", "scenarios-node"] {
        let dir = root.join(scenarios);
        let aborts = dir.join("aborts.jsonl");
        for (with_log, infer) in [(false, true), (true, true), (true, false)] {
            let run = |survey_above: &str| {
                let mut command = bin();
                command
                    .env("ABORTAUDIT_SURVEY_ABOVE", survey_above)
                    .args(["scan", "--format", "json"])
                    .arg(dir.join("traces"));
                if with_log {
                    command.arg("--aborts").arg(&aborts);
                }
                if !infer {
                    command.arg("--config").arg(config.path());
                }
                let output = command.output().unwrap();
                (json(&output.stdout), output.status.code())
            };
            let (whole, whole_code) = run("unlimited");
            let (surveyed, surveyed_code) = run("0");
            let what = format!("{scenarios}, abort log: {with_log}, inference: {infer}");
            assert!(!whole["findings"].as_array().unwrap().is_empty(), "{what}");
            assert_eq!(whole_code, surveyed_code, "{what}");
            assert_eq!(whole["findings"], surveyed["findings"], "{what}");
            assert_eq!(whole["summary"], surveyed["summary"], "{what}");
        }
    }
}

#[test]
fn an_abort_log_with_fields_of_its_own_is_read_and_one_given_as_traces_is_pointed_to_aborts() {
    let dir = tempfile::tempdir().unwrap();
    let node = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/scenarios-node");
    let log = std::fs::read_to_string(node.join("aborts.jsonl")).unwrap();
    // A front end writes what it knows besides the four fields.
    let extended: String = log
        .lines()
        .map(|l| {
            format!(
                "{},\"user_id\":\"u-1\",\"client\":{{\"v\":2}}}}\n",
                &l[..l.len() - 1]
            )
        })
        .collect();
    let extended_path = dir.path().join("aborts.jsonl");
    std::fs::write(&extended_path, extended).unwrap();
    let scan = |aborts: &std::path::Path| {
        let output = bin()
            .args(["scan", "--format", "json"])
            .arg(node.join("traces"))
            .arg("--aborts")
            .arg(aborts)
            .output()
            .unwrap();
        json(&output.stdout)
    };
    let plain = scan(&node.join("aborts.jsonl"));
    let with_more = scan(&extended_path);
    let findings = |report: &Value| -> Vec<(String, String)> {
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["id"].to_string(), f["category"].to_string()))
            .collect()
    };
    assert!(!findings(&plain).is_empty());
    assert_eq!(findings(&plain), findings(&with_more));
    assert_eq!(with_more["summary"]["diagnostics"], 0, "{with_more}");
    assert_eq!(with_more["summary"]["abort_log"]["unplaced"], 0);

    let output = bin()
        .arg("scan")
        .arg(node.join("aborts.jsonl"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("pass it with --aborts"), "{stderr}");
}

#[test]
fn compressed_exports_scan_in_groups_as_in_one_read() {
    // Compressed, the kept spans are decompressed once more and written out, and the groups
    // read from there: the report must be the one read's, byte for byte, for one gzip member,
    // one zstd frame and many zstd frames (cut anywhere, so that spans cross frames).
    fn frames(text: &[u8]) -> Vec<u8> {
        text.chunks(700).flat_map(zstd).collect()
    }
    type Pack = fn(&[u8]) -> Vec<u8>;
    let packers: [(&str, Pack); 3] = [("gz", gzip), ("zst", zstd), ("zst", frames)];
    for dir in ["scenarios", "scenarios-prevention", "scenarios-frameworks"] {
        let plain = scenarios().parent().unwrap().join(dir).join("traces");
        for (extension, pack) in packers {
            let packed = tempfile::tempdir().unwrap();
            for entry in std::fs::read_dir(&plain).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_str().unwrap();
                let text = std::fs::read(&path).unwrap();
                let to = packed.path().join(format!("{name}.{extension}"));
                std::fs::write(to, pack(&text)).unwrap();
            }
            let run = |group: &str| {
                bin()
                    .env("ABORTAUDIT_SURVEY_ABOVE", "0")
                    .env("ABORTAUDIT_SCAN_GROUP", group)
                    .args(["scan", "--format", "json"])
                    .arg(packed.path())
                    .output()
                    .unwrap()
            };
            let (one_group, groups) = (run("1GiB"), run("1"));
            assert_eq!(one_group.status.code(), groups.status.code(), "{dir}");
            assert_eq!(
                String::from_utf8_lossy(&one_group.stdout),
                String::from_utf8_lossy(&groups.stdout),
                "{dir} {extension}"
            );
            let report = json(&groups.stdout);
            assert!(!report["findings"].as_array().unwrap().is_empty(), "{dir}");
        }
    }
}

#[test]
fn scan_in_groups_of_conversations_reports_what_one_read_reports() {
    // A tiny group size cuts the kept traces of the two-pass read into a group of
    // conversations each, read back, joined and classified one after another: the report must
    // be the one read of every kept trace gives, byte for byte, in every format that differs.
    for dir in ["scenarios", "scenarios-prevention", "scenarios-frameworks"] {
        let traces = scenarios().parent().unwrap().join(dir).join("traces");
        for format in ["json", "markdown"] {
            let run = |survey_above: &str, group: &str| {
                bin()
                    .env("ABORTAUDIT_SURVEY_ABOVE", survey_above)
                    .env("ABORTAUDIT_SCAN_GROUP", group)
                    .args(["scan", "--format", format])
                    .arg(&traces)
                    .output()
                    .unwrap()
            };
            let whole = run("unlimited", "24MiB");
            let one_group = run("0", "1GiB");
            let groups = run("0", "1");
            assert_eq!(whole.status.code(), groups.status.code(), "{dir} {format}");
            assert_eq!(one_group.stdout, groups.stdout, "{dir} {format}");
            if format == "json" {
                let (a, b) = (json(&whole.stdout), json(&groups.stdout));
                assert_eq!(a["findings"], b["findings"], "{dir}");
                assert_eq!(a["summary"], b["summary"], "{dir}");
            }
        }
    }
}

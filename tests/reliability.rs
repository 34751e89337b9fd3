//! The cases of the adversarial run in `../shared/reliability/` (its README lists them, with
//! what they broke), each held to what it should do now. Cases made of links, odd file names
//! or large inputs are built here, as its `make-cases.sh` builds them; the others are read from
//! `../shared/reliability/cases/` and skipped with a note when it is absent.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use abortaudit::report::sanitize::is_unsafe_char;
use common::{bin, json};
use serde_json::Value;

fn case(name: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/reliability/cases")
        .join(name);
    if path.exists() {
        Some(path)
    } else {
        eprintln!("SKIPPED: {} not found", path.display());
        None
    }
}

fn scenario(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/scenarios")
        .join(path)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// One OTLP/JSON line: an aborted turn whose tool call's request committed after the abort,
/// with its names given.
fn turn_line(trace: u32, conversation: &str, tool: &str) -> String {
    let t0: u64 = 1_795_623_368_000_000_000;
    let ms = |n: u64| (t0 + n * 1_000_000).to_string();
    let tid = format!("{trace:032x}");
    let span =
        |id: u32, parent: Option<u32>, name: &str, kind: u8, s: u64, e: u64, attrs: Value| {
            let mut v = serde_json::json!({
                "traceId": tid, "spanId": format!("{id:016x}"), "name": name, "kind": kind,
                "startTimeUnixNano": ms(s), "endTimeUnixNano": ms(e), "attributes": attrs,
            });
            if let Some(p) = parent {
                v["parentSpanId"] = format!("{p:016x}").into();
            }
            v
        };
    let attr = |k: &str, v: &str| serde_json::json!({"key": k, "value": {"stringValue": v}});
    let mut root = span(
        1,
        None,
        "invoke_agent a",
        1,
        0,
        3000,
        serde_json::json!([
            attr("gen_ai.operation.name", "invoke_agent"),
            attr("gen_ai.conversation.id", conversation),
        ]),
    );
    root["events"] = serde_json::json!([{"timeUnixNano": ms(1000), "name": "abort"}]);
    let spans = vec![
        root,
        span(
            2,
            Some(1),
            &format!("execute_tool {tool}"),
            1,
            500,
            2000,
            serde_json::json!([
                attr("gen_ai.operation.name", "execute_tool"),
                attr("gen_ai.tool.name", tool),
                attr("gen_ai.tool.call.id", "call_1"),
            ]),
        ),
        span(
            3,
            Some(2),
            "POST",
            3,
            600,
            1100,
            serde_json::json!([attr("http.request.method", "POST")]),
        ),
        span(
            4,
            Some(3),
            "POST /v1/payments",
            2,
            610,
            1900,
            serde_json::json!([attr("http.request.method", "POST")]),
        ),
        span(
            5,
            Some(4),
            "INSERT",
            3,
            620,
            630,
            serde_json::json!([attr("db.operation.name", "INSERT")]),
        ),
        span(
            6,
            Some(4),
            "COMMIT",
            3,
            1800,
            1810,
            serde_json::json!([attr("db.operation.name", "COMMIT")]),
        ),
    ];
    serde_json::json!({"resourceSpans": [{
        "resource": {"attributes": [attr("service.name", "svc")]},
        "scopeSpans": [{"spans": spans}],
    }]})
    .to_string()
}

#[test]
fn inspect_lists_file_names_that_share_the_first_byte_of_a_character() {
    // Defect 1: `é.jsonl` and `è.jsonl` made the common directory cut inside a character.
    let dir = tempfile::tempdir().unwrap();
    let names = dir.path().join("names");
    std::fs::create_dir(&names).unwrap();
    for name in ["é.jsonl", "è.jsonl"] {
        std::fs::write(names.join(name), turn_line(1, "conv-1", "t") + "\n").unwrap();
    }
    let output = bin().arg("inspect").arg(&names).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let listing = text(&output);
    assert!(
        listing.contains("é.jsonl") && listing.contains("è.jsonl"),
        "{listing}"
    );
}

#[cfg(unix)]
#[test]
fn directory_loops_are_read_once_and_said() {
    // Defect 2: a link to the parent from below and one to itself hung with growing memory.
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("loop-both");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("a.jsonl"), turn_line(1, "conv-1", "t") + "\n").unwrap();
    symlink("..", root.join("sub/up")).unwrap();
    symlink("../loop-both", root.join("self")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_abortaudit"))
        .args(["scan", "--format", "json"])
        .arg(&root)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed().as_secs() < 30, "the walk does not end");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    assert_eq!(status.code(), Some(1));
    let report = json(&out);
    assert_eq!(report["summary"]["inputs"], 1, "the file once");
    let codes: Vec<&str> = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"symlink-loop"), "{codes:?}");
}

#[test]
fn long_unbroken_names_are_laid_out_in_linear_time() {
    // Defect 6a: three 1 MB tool names took the table a minute. Elided cells keep it instant;
    // the bound here is loose (a debug build on a busy machine), the cost was in minutes.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long-names.jsonl");
    let lines: String = (0..3)
        .map(|i| turn_line(i + 1, &format!("conv-{i}"), &"t".repeat(1_000_000)) + "\n")
        .collect();
    std::fs::write(&path, lines).unwrap();
    let started = std::time::Instant::now();
    let output = bin().arg("scan").arg(&path).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(started.elapsed().as_secs() < 20, "{:?}", started.elapsed());
    let table = text(&output);
    assert!(table.contains("more)"), "the names are elided");
    assert!(table.len() < 100_000, "{} bytes", table.len());
    // JSON keeps them whole.
    let output = bin()
        .args(["scan", "--format", "json"])
        .arg(&path)
        .output()
        .unwrap();
    let report = json(&output.stdout);
    assert_eq!(
        report["findings"][0]["tool_call"]["name"]
            .as_str()
            .unwrap()
            .len(),
        1_000_000
    );
}

#[test]
fn explain_does_not_indent_a_deep_chain_without_bound() {
    // Defect 6b: a 10^4-span parent chain printed 100 MB (10^5: 10 GB).
    let t0: u64 = 1_795_623_368_000_000_000;
    let tid = format!("{:032x}", 0xabc);
    let mut spans = vec![
        serde_json::json!({"traceId": tid, "spanId": "a".repeat(16), "name": "invoke_agent a", "kind": 1,
            "startTimeUnixNano": t0.to_string(), "endTimeUnixNano": (t0 + 3_000_000_000).to_string(),
            "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "invoke_agent"}},
                           {"key": "gen_ai.conversation.id", "value": {"stringValue": "conv-chain"}}],
            "events": [{"timeUnixNano": (t0 + 1_000_000_000).to_string(), "name": "abort"}]}),
        serde_json::json!({"traceId": tid, "spanId": format!("{:016x}", 1), "parentSpanId": "a".repeat(16),
            "name": "execute_tool t", "kind": 1,
            "startTimeUnixNano": (t0 + 500_000_000).to_string(), "endTimeUnixNano": (t0 + 2_000_000_000).to_string(),
            "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "execute_tool"}},
                           {"key": "gen_ai.tool.name", "value": {"stringValue": "t"}}]}),
    ];
    for i in 2..10_002u32 {
        spans.push(serde_json::json!({"traceId": tid, "spanId": format!("{i:016x}"),
            "parentSpanId": format!("{:016x}", i - 1), "name": "hop", "kind": 3,
            "startTimeUnixNano": (t0 + 600_000_000).to_string(), "endTimeUnixNano": (t0 + 1_900_000_000).to_string()}));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain.jsonl");
    let record = serde_json::json!({"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": spans}]}]});
    std::fs::write(&path, record.to_string() + "\n").unwrap();
    let output = bin()
        .args(["explain", "conv-chain"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let timeline = text(&output);
    assert!(timeline.len() < 2_000_000, "{} bytes", timeline.len());
    assert!(
        timeline.contains("(depth 10001)"),
        "the depth is written past the indentation"
    );
}

#[test]
fn an_empty_fail_on_is_a_usage_error_not_a_gate_switched_off() {
    // Defect 8: `--fail-on ''` (an empty CI variable) printed "Gate: off" and exited 0.
    for value in ["", ",", " , ", "none,client_gone"] {
        let output = bin()
            .arg("scan")
            .arg(scenario("traces"))
            .args(["--fail-on", value])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "--fail-on {value:?}");
        assert!(stderr(&output).contains("--fail-on"), "{}", stderr(&output));
    }
    let output = bin()
        .arg("scan")
        .arg(scenario("traces"))
        .args(["--fail-on", "none"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn the_exit_status_keeps_the_gates_verdict_when_stdout_closes_early() {
    // Defect 8: `scan … | head -1` exited 0 although the gate failed.
    let run = |args: &[&str]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_abortaudit"))
            .args(args)
            .arg(scenario("traces"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The reader goes away before anything is written.
        drop(child.stdout.take());
        child.wait().unwrap().code()
    };
    assert_eq!(run(&["scan"]), Some(1));
    assert_eq!(run(&["scan", "--format", "json"]), Some(1));
    assert_eq!(run(&["scan", "--fail-on", "none"]), Some(0));
    // With no verdict to keep, a reader that left is not a failure.
    assert_eq!(run(&["inspect"]), Some(0));
}

#[test]
fn a_span_that_ends_before_it_starts_is_said_and_not_taken_as_a_commit_before_the_abort() {
    // Defect 9: a COMMIT ending at 1 ns counted as committed before the abort.
    let Some(path) = case("commit_end_before_start.jsonl") else {
        return;
    };
    for survey_above in ["unlimited", "0"] {
        let output = bin()
            .env("ABORTAUDIT_SURVEY_ABOVE", survey_above)
            .args(["scan", "--format", "json"])
            .arg(&path)
            .output()
            .unwrap();
        let report = json(&output.stdout);
        assert_eq!(
            report["summary"]["committed_before_abort"], 0,
            "{survey_above}"
        );
        let diagnostics = report["diagnostics"].as_array().unwrap();
        assert!(
            diagnostics
                .iter()
                .any(|d| d["message"].as_str().unwrap().contains("before it starts")),
            "{diagnostics:?}"
        );
    }
}

#[test]
fn explain_says_and_drops_an_end_before_the_start_whether_it_reads_whole_or_in_two_passes() {
    // Found by fuzz/two_pass_diff: read whole, explain (and the library's whole read) kept the
    // end a two-pass read drops.
    let Some(path) = case("commit_end_before_start.jsonl") else {
        return;
    };
    let outputs: Vec<_> = ["unlimited", "0"]
        .into_iter()
        .map(|survey_above| {
            bin()
                .env("ABORTAUDIT_SURVEY_ABOVE", survey_above)
                .args(["explain", "conv-0"])
                .arg(&path)
                .output()
                .unwrap()
        })
        .collect();
    assert_eq!(outputs[0].stdout, outputs[1].stdout);
    assert_eq!(outputs[0].stderr, outputs[1].stderr);
    let stderr = String::from_utf8_lossy(&outputs[0].stderr);
    assert!(stderr.contains("before it starts"), "{stderr}");
    let stdout = String::from_utf8_lossy(&outputs[0].stdout);
    assert!(
        stdout.contains("COMMIT [payments-api] client (never ended)"),
        "{stdout}"
    );
}

#[test]
fn a_parent_cycle_is_broken_and_said_and_the_tool_call_stays_in_its_turn() {
    // Defect 9: a parent cycle silently detached the tool call.
    let Some(path) = case("cycle2.jsonl") else {
        return;
    };
    let output = bin()
        .args(["scan", "--format", "json"])
        .arg(&path)
        .output()
        .unwrap();
    let report = json(&output.stdout);
    assert_eq!(report["summary"]["tool_calls_at_risk"], 1, "{report}");
    assert!(
        report["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["message"].as_str().unwrap().contains("its own ancestor")),
    );
}

#[test]
fn vendor_events_without_ids_are_warned_of_and_duplicates_counted_once() {
    // Defect 9: missing and empty ids passed silently; a conflicting copy got no warning; an
    // exact copy of the log counted every event twice.
    let scan_events = |name: &str| -> Option<Value> {
        let path = case(&format!("vendor/{name}"))?;
        let output = bin()
            .args(["scan", "--format", "json"])
            .arg(scenario("traces"))
            .arg("--events")
            .arg(path)
            .output()
            .unwrap();
        Some(json(&output.stdout))
    };
    let messages = |report: &Value| -> Vec<String> {
        report["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| format!("{} {}", d["code"], d["message"]))
            .collect()
    };
    for name in ["id_missing.jsonl", "id_empty.jsonl"] {
        let Some(report) = scan_events(name) else {
            return;
        };
        assert!(
            messages(&report).iter().any(|m| m.contains("has no id")),
            "{name}: {:?}",
            messages(&report)
        );
    }
    let Some(report) = scan_events("conflicting_dup.jsonl") else {
        return;
    };
    assert!(
        messages(&report)
            .iter()
            .any(|m| m.contains("conflicting-duplicate"))
    );
    let Some(report) = scan_events("exact_dup_all.jsonl") else {
        return;
    };
    assert_eq!(report["summary"]["vendor_events"], 22);
}

#[test]
fn a_vendor_log_in_the_wrong_time_unit_says_so_and_shows_why() {
    // Defect 12: milliseconds where seconds were expected made `scan` say "see the
    // diagnostics" and print none.
    let Some(path) = case("vendor/created_ms.jsonl") else {
        return;
    };
    let output = bin()
        .arg("scan")
        .arg(scenario("traces"))
        .arg("--events")
        .arg(path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(message.contains("it looks like milliseconds"), "{message}");
    assert!(
        message.contains("holds no usable vendor events"),
        "{message}"
    );
}

#[test]
fn invisible_and_look_alike_characters_never_reach_a_reader_raw() {
    // Defect 11: zero-width characters, U+2028/9, U+061C and tags reached the terminal, and
    // JSON carried raw C1, DEL and RLO.
    let hidden = "conv\u{200b}\u{2060}\u{feff}\u{2028}\u{061c}\u{e0041}\u{202e}\u{9b}\u{7f}-1";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("invisible.jsonl");
    std::fs::write(&path, turn_line(1, hidden, "tool\u{200d}x") + "\n").unwrap();
    for args in [
        vec!["scan"],
        vec!["scan", "--format", "json"],
        vec!["scan", "--format", "sarif"],
        vec!["scan", "--format", "markdown"],
        vec!["scan", "--format", "github"],
        vec!["explain", hidden],
    ] {
        let output = bin().args(&args).arg(&path).output().unwrap();
        let all = format!("{}{}", text(&output), stderr(&output));
        assert!(
            !all.chars().any(is_unsafe_char_but_newline),
            "{args:?}: {all:?}"
        );
        assert!(all.contains("conv"), "{args:?}");
    }
    let output = bin()
        .args(["scan", "--format", "json"])
        .arg(&path)
        .output()
        .unwrap();
    let report = json(&output.stdout);
    assert_eq!(
        report["findings"][0]["conversation_id"], hidden,
        "JSON still holds the id"
    );
}

fn is_unsafe_char_but_newline(c: char) -> bool {
    c != '\n' && is_unsafe_char(c)
}

#[test]
fn a_rules_file_error_keeps_its_lines() {
    // Defect 12: TOML errors showed their line breaks as `\u{a}`.
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("abortaudit.toml");
    std::fs::write(&rules, "[gate]\nfail_on = [\n").unwrap();
    let output = bin()
        .arg("scan")
        .arg(scenario("traces"))
        .arg("--config")
        .arg(&rules)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(!message.contains("\\u{a}"), "{message}");
    assert!(message.lines().count() > 2, "{message}");
}

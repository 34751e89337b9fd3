//! What would have stopped each late write, end to end: the prevention scenarios
//! (fixtures/scenarios-prevention, made by fixtures/harness with `--set prevention`: a cancel
//! in time and one too late, a deadline honoured and one ignored, a late charge refunded) held
//! to the ground truth the harness read from the services' stores; snapshots of the new lines
//! in each format; the gate option on tools without a cancellation protocol.
//!
//! CI regenerates the fixtures and points the ground-truth test at the fresh run with
//! ABORTAUDIT_PREVENTION_SCENARIOS.

mod common;

use std::path::PathBuf;

use common::{assert_code, bin, fixture, json};
use serde_json::Value;

fn scenarios() -> PathBuf {
    match std::env::var_os("ABORTAUDIT_PREVENTION_SCENARIOS") {
        Some(dir) => dir.into(),
        None => fixture("scenarios-prevention"),
    }
}

/// The committed fixtures, whatever the environment says: what the snapshots hold.
fn committed() -> PathBuf {
    fixture("scenarios-prevention")
}

fn truth(dir: &std::path::Path) -> Value {
    let path = dir.join("truth.json");
    json(&std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// The scenario's traces and its event log, as `scan` arguments.
fn inputs(dir: &std::path::Path) -> Vec<std::ffi::OsString> {
    let mut args = vec![dir.join("traces").into_os_string()];
    for log in truth(dir)["event_logs"].as_array().into_iter().flatten() {
        args.push("--events".into());
        args.push(dir.join(log.as_str().unwrap()).into_os_string());
    }
    args
}

fn scan(dir: &std::path::Path, format: &str, extra: &[&str]) -> std::process::Output {
    bin()
        .args(["scan", "--format", format])
        .args(extra)
        .args(inputs(dir))
        .output()
        .unwrap()
}

fn nanos(v: &Value) -> i128 {
    v.as_str()
        .unwrap_or_else(|| panic!("nanoseconds are strings: {v}"))
        .parse()
        .unwrap()
}

#[test]
fn prevention_scenarios_match_the_ground_truth() {
    let dir = scenarios();
    let truth = truth(&dir);
    assert_eq!(truth["schema"], "abortaudit-truth/v1");
    assert_eq!(truth["set"], "prevention");
    let tolerance = nanos(&truth["commit_time_tolerance_ns"]);
    let margin_tolerance = nanos(&truth["margin_tolerance_ns"]);
    let output = scan(&dir, "json", &["--exit-zero"]);
    assert_code(&output, 0);
    let report = json(&output.stdout);
    assert_eq!(report["summary"]["diagnostics"], 0);
    let findings = report["findings"].as_array().unwrap();
    let mut matched = vec![false; findings.len()];
    for want in truth["expected_findings"].as_array().unwrap() {
        let scenario = want["scenario"].as_str().unwrap();
        let Some(i) = findings.iter().enumerate().position(|(i, f)| {
            !matched[i]
                && f["conversation_id"] == want["conversation_id"]
                && f["category"] == want["category"]
                && f["tool_call"]["tool_call_id"] == want["tool_call_id"]
        }) else {
            panic!(
                "{scenario}: no {} finding for tool call {}; found {findings:#?}",
                want["category"], want["tool_call_id"]
            );
        };
        matched[i] = true;
        let got = &findings[i];
        assert_eq!(got["trace_id"], want["trace_id"], "{scenario}");
        assert_eq!(got["late"], want["late"], "{scenario}");
        assert_eq!(got["ambiguous"], want["ambiguous"], "{scenario}");
        assert_eq!(got["join"], want["join"], "{scenario}: joined how");
        if let Some(event_id) = want["event_id"].as_str() {
            assert_eq!(got["write"]["event_id"], event_id, "{scenario}");
        }
        let abort_gap =
            nanos(&got["abort"]["time_unix_nano"]) - nanos(&want["abort_time_unix_nano"]);
        assert!(
            abort_gap.abs() <= tolerance,
            "{scenario}: abort off by {abort_gap} ns"
        );
        if !want["commit_time_unix_nano"].is_null() {
            let precision = nanos(&want["commit_time_precision_ns"]);
            let gap = nanos(&got["write"]["commit_time_unix_nano"])
                - nanos(&want["commit_time_unix_nano"]);
            assert!(
                gap.abs() <= tolerance.max(precision),
                "{scenario}: commit time off by {gap} ns"
            );
        }

        // Every mechanism has its entry; those the truth names decide as the stores say.
        let prevention = got["prevention"].as_array().unwrap();
        let names: Vec<&str> = prevention
            .iter()
            .map(|p| p["mechanism"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "commit_check",
                "deadline",
                "cancel",
                "idempotency_key",
                "compensation"
            ],
            "{scenario}"
        );
        for (mechanism, expect) in want["prevention"].as_object().unwrap() {
            let entry = prevention
                .iter()
                .find(|p| p["mechanism"] == mechanism.as_str())
                .unwrap();
            assert_eq!(
                entry["present"], expect["present"],
                "{scenario}: {mechanism} present: {entry}"
            );
            assert_eq!(
                entry["would_have_stopped"], expect["would_have_stopped"],
                "{scenario}: {mechanism} would have stopped: {entry}"
            );
            if let Some(margin) = expect.get("margin_ns") {
                let got_ns = (entry["margin_ms"].as_f64().unwrap() * 1e6).round() as i128;
                let gap = got_ns - nanos(margin);
                assert!(
                    gap.abs() <= margin_tolerance,
                    "{scenario}: {mechanism} margin off by {gap} ns: {entry}"
                );
            }
        }
        match want["compensation"].as_object() {
            None => assert!(got["compensated"].is_null(), "{scenario}: {got}"),
            Some(compensation) => {
                let event = &got["compensated"]["event_id"];
                assert!(
                    compensation["event_ids"]
                        .as_array()
                        .unwrap()
                        .contains(event),
                    "{scenario}: compensated by {event}, not a refund event of the truth"
                );
                let delay = (got["compensated"]["delay_ms"].as_f64().unwrap() * 1e6) as i128;
                let gap = delay - nanos(&compensation["delay_ns"]);
                assert!(
                    gap.abs() < nanos(&compensation["precision_ns"]),
                    "{scenario}: compensation delay off by {gap} ns"
                );
            }
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
    // The refund's events follow up on the charge: no event is left unjoined.
    assert_eq!(report["summary"]["unmatched_vendor_events"], 0);
}

/// The lines a report gives to what would have stopped each write and to the protocols.
fn prevention_lines(text: &str, markers: &[&str]) -> String {
    let mut out = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        if markers.iter().any(|m| line.contains(m)) {
            inside = true;
        } else if inside && (line.trim().is_empty() || !line.starts_with([' ', '<', '|'])) {
            inside = false;
        }
        if inside {
            out.push(line);
        }
    }
    out.join("\n")
}

#[test]
fn the_prevention_lines_of_each_format_are_stable() {
    // The committed fixtures only: a fresh harness run has other ids and times.
    let dir = committed();
    let stdout = |format: &str| {
        let output = scan(&dir, format, &["--exit-zero"]);
        assert_code(&output, 0);
        String::from_utf8(output.stdout).unwrap()
    };
    let table = stdout("table");
    assert!(table.lines().all(|l| l.chars().count() <= 100), "{table}");
    insta::assert_snapshot!("prevention_table", table);

    let markdown = stdout("markdown");
    let section = markdown
        .split("## Cancellation protocols")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .unwrap();
    let per_finding = prevention_lines(&markdown, &["- what would have stopped it:"]);
    // The findings table marks the compensated one.
    let findings_table = prevention_lines(&markdown, &["| # | Conversation"]);
    insta::assert_snapshot!(
        "prevention_markdown",
        format!("{findings_table}\n\n## Cancellation protocols{section}\n{per_finding}")
    );

    let html = stdout("html");
    let protocols = html
        .split("<section id=\"protocols\">")
        .nth(1)
        .and_then(|s| s.split("</section>").next())
        .unwrap();
    let per_finding: Vec<&str> = html
        .split("<div class=\"prevention\">")
        .skip(1)
        .map(|s| s.split("</div>").next().unwrap())
        .collect();
    insta::assert_snapshot!(
        "prevention_html",
        format!("{protocols}\n{}", per_finding.join("\n"))
    );

    let report: Value = serde_json::from_str(&stdout("json")).unwrap();
    let findings: Vec<Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            serde_json::json!({
                "conversation_id": f["conversation_id"],
                "category": f["category"],
                "prevention": f["prevention"],
                "compensated": f["compensated"],
            })
        })
        .collect();
    let json = serde_json::json!({
        "protocols": report["summary"]["protocols"],
        "gate": report["summary"]["gate"],
        "findings": findings,
    });
    insta::assert_snapshot!(
        "prevention_json",
        serde_json::to_string_pretty(&json).unwrap()
    );

    let github = stdout("github");
    let lines: Vec<String> = github
        .lines()
        .filter(|l| l.starts_with("::"))
        .map(|l| {
            l.split("%0A")
                .find(|part| part.starts_with("what would have stopped it"))
                .unwrap_or("(no prevention line)")
                .to_owned()
        })
        .collect();
    let junit = stdout("junit");
    let junit_lines: Vec<&str> = junit
        .lines()
        .filter(|l| l.starts_with("what would have stopped it"))
        .collect();
    insta::assert_snapshot!(
        "prevention_github_and_junit",
        format!(
            "{}\n--- junit\n{}",
            lines.join("\n"),
            junit_lines.join("\n")
        )
    );
    let sarif: Value = serde_json::from_str(&stdout("sarif")).unwrap();
    let properties: Vec<Value> = sarif["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            serde_json::json!({
                "prevention": r["properties"]["prevention"],
                "compensated": r["properties"]["compensated"],
            })
        })
        .collect();
    insta::assert_snapshot!(
        "prevention_sarif",
        serde_json::to_string_pretty(&properties).unwrap()
    );
}

#[test]
fn the_gate_can_fail_on_a_tool_with_late_writes_and_no_cancellation_protocol() {
    let dir = committed();
    let rules_dir = tempfile::tempdir().unwrap();
    let rules = rules_dir.path().join("abortaudit.toml");
    std::fs::write(&rules, "[gate]\nfail_on_unprotected_tools = true\n").unwrap();
    let rules = rules.to_str().unwrap();

    // Off by default: with no failing category the gate passes, and still names the tool.
    let output = scan(&dir, "json", &["--fail-on", "none"]);
    assert_code(&output, 0);
    let report = json(&output.stdout);
    let gate = &report["summary"]["gate"];
    assert_eq!(gate["fail_on_unprotected_tools"], false);
    assert_eq!(
        gate["unprotected_tools"],
        serde_json::json!(["create_payment_intent"])
    );
    assert_eq!(gate["failed"], false);

    // On, it fails by itself, and every format says why.
    let output = scan(&dir, "json", &["--fail-on", "none", "--config", rules]);
    assert_code(&output, 1);
    assert_eq!(json(&output.stdout)["summary"]["gate"]["failed"], true);
    let output = scan(&dir, "table", &["--fail-on", "none", "--config", rules]);
    assert_code(&output, 1);
    let table = String::from_utf8(output.stdout).unwrap();
    assert!(
        table.contains(
            "Gate: FAILED (fails on tools with late writes and no cancellation protocol)."
        ),
        "{table}"
    );
    assert!(
        table.contains("create_payment_intent (they fail the gate)"),
        "{table}"
    );
    let output = scan(&dir, "junit", &["--fail-on", "none", "--config", rules]);
    let junit = String::from_utf8(output.stdout).unwrap();
    assert!(
        junit.contains(r#"name="tool create_payment_intent · cancellation protocol""#)
            && junit.contains(r#"<failure type="no_cancellation_protocol""#)
            && junit.contains(r#"failures="1""#),
        "{junit}"
    );
    let output = scan(&dir, "github", &["--fail-on", "none", "--config", rules]);
    let github = String::from_utf8(output.stdout).unwrap();
    assert!(
        github.contains(
            "::error title=abortaudit%3A create_payment_intent has no cancellation protocol::"
        ),
        "{github}"
    );
    // A suppression of the late write does not hide a tool without any protocol.
    std::fs::write(
        rules_dir.path().join("abortaudit.toml"),
        "[gate]\nfail_on_unprotected_tools = true\n\n[[allow]]\ntool = \"create_payment_intent\"\nreason = \"refunded by hand\"\nuntil = \"2099-12-31\"\n",
    )
    .unwrap();
    let output = scan(&dir, "json", &["--config", rules]);
    assert_code(&output, 1);
    let report = json(&output.stdout);
    assert_eq!(report["summary"]["suppressed"], 1);
    // The other late writes had a protocol, and fail on their categories.
    let failing: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["gate"] == "fails")
        .map(|f| f["tool_call"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(failing, ["schedule_payout", "create_payment"]);
}

#[test]
fn the_rules_print_the_prevention_conventions_and_read_them_back() {
    let printed = bin().arg("rules").output().unwrap();
    let text = String::from_utf8(printed.stdout.clone()).unwrap();
    for part in [
        "[prevention.deadline]",
        "[[prevention.deadline.headers]]\nname = \"grpc-timeout\"\nformat = \"grpc_timeout\"",
        "[prevention.cancel]",
        "[prevention.compensation]",
        "fail_on_unprotected_tools = false",
    ] {
        assert!(text.contains(part), "{part} in\n{text}");
    }
    // A narrower list replaces the default: without DELETE as a cancel, the in-time cancel
    // is not seen, and the job that never ran is unverified again.
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("abortaudit.toml");
    std::fs::write(&rules, "[prevention.cancel]\nmethods = []\n").unwrap();
    let output = scan(
        &committed(),
        "json",
        &["--exit-zero", "--config", rules.to_str().unwrap()],
    );
    let report = json(&output.stdout);
    let in_time = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| {
            f["conversation_id"]
                .as_str()
                .unwrap()
                .starts_with("conv-cancel-in-time")
        })
        .unwrap();
    assert_eq!(in_time["category"], "unverified");
}

#[test]
fn the_two_pass_read_keeps_what_the_mechanisms_are_read_from() {
    // Deadline headers, cancel requests and the ids they name must survive the second pass
    // over a large export, which keeps only the attributes the audit reads.
    let dir = committed();
    let run = |survey_above: &str| {
        let output = bin()
            .env("ABORTAUDIT_SURVEY_ABOVE", survey_above)
            .args(["scan", "--format", "json", "--exit-zero"])
            .args(inputs(&dir))
            .output()
            .unwrap();
        json(&output.stdout)
    };
    let (whole, surveyed) = (run("unlimited"), run("0"));
    assert_eq!(whole["findings"], surveyed["findings"]);
    assert_eq!(whole["summary"], surveyed["summary"]);
}

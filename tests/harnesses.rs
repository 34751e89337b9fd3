//! `abortaudit scan` held to the ground truth of the framework harnesses: real agent
//! frameworks (fixtures/harness-frameworks: Pydantic AI, OpenAI Agents SDK with OpenInference;
//! fixtures/harness-node: the Vercel AI SDK on OpenTelemetry JS) driving real services, their
//! truth read back from the services' stores. Each is scanned with and without the front end's
//! abort log: without it, only what the frameworks and instrumentations record by themselves
//! shows the Stop, and the findings that need the log are not expected.
//!
//! CI regenerates the fixtures and points these tests at the fresh run with
//! ABORTAUDIT_FRAMEWORK_SCENARIOS / ABORTAUDIT_NODE_SCENARIOS.

mod common;

use std::path::{Path, PathBuf};

use common::{bin, fixture, json};
use serde_json::Value;

fn scenarios(env: &str, committed: &str) -> PathBuf {
    match std::env::var_os(env) {
        Some(dir) => dir.into(),
        None => fixture(committed),
    }
}

fn nanos(v: &Value) -> i128 {
    v.as_str()
        .unwrap_or_else(|| panic!("nanoseconds are strings: {v}"))
        .parse()
        .unwrap()
}

fn scan(dir: &Path, traces: &str, truth: &Value, with_log: bool) -> Value {
    let mut cmd = bin();
    cmd.args(["scan", "--format", "json", "--exit-zero"])
        .arg(dir.join(traces));
    for log in truth["event_logs"].as_array().into_iter().flatten() {
        cmd.arg("--events").arg(dir.join(log.as_str().unwrap()));
    }
    if with_log && let Some(log) = truth["abort_log"].as_str() {
        cmd.arg("--aborts").arg(dir.join(log));
    }
    let output = cmd.output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    json(&output.stdout)
}

/// When the scan should put the abort: at the earliest evidence of it it is given.
fn expected_abort(want: &Value, with_log: bool) -> Option<i128> {
    let evidence: Vec<&str> = want["abort_evidence"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let logged = with_log && evidence.iter().any(|e| e.starts_with("external_log"));
    // The times of the span evidence: each kind's (frameworks), or the earliest (Node).
    let mut times: Vec<i128> = want["abort_evidence_times"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(_, t)| nanos(t))
        .chain(
            want.get("span_abort_time_unix_nano")
                .filter(|t| !t.is_null())
                .map(nanos),
        )
        .collect();
    if logged {
        times.push(nanos(&want["abort_time_unix_nano"]));
    }
    times.into_iter().min()
}

/// Checks a scan against the truth; with or without the abort log.
fn check(name: &str, truth: &Value, report: &Value, with_log: bool) {
    assert_eq!(report["summary"]["diagnostics"], 0, "{name}");
    let tolerance = nanos(&truth["commit_time_tolerance_ns"]);
    let inferred_tolerance = truth["inferred_commit_tolerance_ns"]
        .as_str()
        .map_or(tolerance, |t| t.parse().unwrap());
    let findings = report["findings"].as_array().unwrap();
    let mut matched = vec![false; findings.len()];
    let mut expected = 0;
    for want in truth["expected_findings"].as_array().unwrap() {
        let scenario = format!(
            "{name}: {} {}",
            want["framework"]
                .as_str()
                .or(want["sdk"].as_str())
                .unwrap_or(""),
            want["scenario"].as_str().unwrap()
        );
        if !with_log && want["needs_abort_log"] == true {
            // No span shows the Stop: nothing may be reported for that turn.
            assert!(
                findings.iter().all(|f| f["trace_id"] != want["trace_id"]),
                "{scenario}: only the abort log shows this Stop"
            );
            continue;
        }
        expected += 1;
        let Some(i) = findings.iter().enumerate().position(|(i, f)| {
            !matched[i]
                && f["trace_id"] == want["trace_id"]
                && f["category"] == want["category"]
                && f["tool_call"]["tool_call_id"] == want["tool_call_id"]
        }) else {
            panic!(
                "{scenario}: no {} finding for tool call {} in trace {}; found {:#?}",
                want["category"],
                want["tool_call_id"],
                want["trace_id"],
                findings
                    .iter()
                    .filter(|f| f["trace_id"] == want["trace_id"])
                    .collect::<Vec<_>>()
            );
        };
        matched[i] = true;
        let got = &findings[i];
        assert_eq!(
            got["conversation_id"], want["conversation_id"],
            "{scenario}"
        );
        assert_eq!(got["late"], want["late"], "{scenario}");
        assert_eq!(got["ambiguous"], want["ambiguous"], "{scenario}");
        assert_eq!(got["join"], want["join"], "{scenario}: joined how");
        if let Some(abort) = expected_abort(want, with_log) {
            let gap = nanos(&got["abort"]["time_unix_nano"]) - abort;
            assert!(
                gap.abs() <= tolerance,
                "{scenario}: abort {gap} ns from its earliest evidence ({})",
                got["abort"]["signal"]
            );
        }
        if want["commit_time_unix_nano"].is_null() {
            let commit = &got["write"]["commit_time_unix_nano"];
            assert!(
                commit.is_null() || got["category"] == "pre_commit_abort",
                "{scenario}: nothing committed, yet {commit}"
            );
        } else {
            let inferred = matches!(
                want["commit_evidence"].as_str(),
                Some("server_span_end" | "consumer_span_end")
            );
            let allowed = if inferred {
                inferred_tolerance
            } else {
                tolerance
            };
            let gap = nanos(&got["write"]["commit_time_unix_nano"])
                - nanos(&want["commit_time_unix_nano"]);
            assert!(
                gap.abs() <= allowed,
                "{scenario}: commit time off by {gap} ns"
            );
            assert_eq!(
                got["write"]["inferred"], inferred,
                "{scenario}: inferred commit"
            );
            assert_eq!(
                got["write"]["commit_time_precision_ns"], want["commit_time_precision_ns"],
                "{scenario}: how coarse the commit time is"
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
        "{name}: findings the ground truth does not have: {unexpected:#?}"
    );
    assert!(expected > 0, "{name}: no finding was expected at all");
    for quiet in truth["quiet_conversations"].as_array().unwrap() {
        assert!(
            findings
                .iter()
                .all(|f| f["conversation_id"] != quiet["conversation_id"]),
            "{name}: {}: {}",
            quiet["scenario"],
            quiet["why"]
        );
    }
}

fn check_harness(name: &str, dir: PathBuf) {
    let truth = json(&std::fs::read(dir.join("truth.json")).unwrap());
    assert_eq!(truth["schema"], "abortaudit-truth/v1");
    let trace_dirs: Vec<String> = match truth["trace_dirs"].as_object() {
        Some(dirs) => dirs
            .values()
            .map(|d| d.as_str().unwrap().to_owned())
            .collect(),
        None => vec!["traces".to_owned()],
    };
    let mut first: Option<Value> = None;
    for traces in &trace_dirs {
        for with_log in [true, false] {
            let report = scan(&dir, traces, &truth, with_log);
            check(&format!("{name} {traces}"), &truth, &report, with_log);
            // Every encoding of the same run gives the same findings.
            if with_log {
                match &first {
                    None => first = Some(report["findings"].clone()),
                    Some(findings) => {
                        assert_eq!(&report["findings"], findings, "{name}: {traces}")
                    }
                }
            }
        }
    }
}

#[test]
fn framework_harness_findings_match_the_ground_truth() {
    check_harness(
        "frameworks",
        scenarios("ABORTAUDIT_FRAMEWORK_SCENARIOS", "scenarios-frameworks"),
    );
}

#[test]
fn node_harness_findings_match_the_ground_truth() {
    check_harness(
        "node",
        scenarios("ABORTAUDIT_NODE_SCENARIOS", "scenarios-node"),
    );
}

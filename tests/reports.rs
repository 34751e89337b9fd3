//! The CI and postmortem formats (Markdown, JUnit, SARIF, GitHub annotations), extra outputs,
//! suppressions and baselines, run through the binary. Readers that CI systems use (a JUnit
//! parser, the SARIF schema) check what we write where they are installed
//! (`tests/report-tools/setup.sh`; `.ci/run` installs them and sets
//! `ABORTAUDIT_REQUIRE_REPORT_TOOLS=1`, which makes their absence a failure).

mod common;

use std::path::{Path, PathBuf};

use abortaudit::report::sanitize;
use common::{bin, json};
use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// `abortaudit scan` of the shipped scenarios, run from the crate root so that the inputs'
/// paths in the reports are relative and stable.
fn scan(args: &[&str]) -> std::process::Output {
    bin()
        .current_dir(ROOT)
        .arg("scan")
        .args(["fixtures/scenarios/traces", "fixtures/scenarios/events"])
        .args(args)
        .output()
        .unwrap()
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Findings of a JSON report whose gate standing is `standing`.
fn standing_count(report: &Value, standing: &str) -> usize {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["gate"] == standing)
        .count()
}

/// A reader of `tests/report-tools/.venv`, or `None` (with a note) when it is not installed.
fn report_tool(name: &str) -> Option<PathBuf> {
    let tool = Path::new(ROOT)
        .join("tests/report-tools/.venv/bin")
        .join(name);
    if tool.exists() {
        return Some(tool);
    }
    assert!(
        std::env::var_os("ABORTAUDIT_REQUIRE_REPORT_TOOLS").is_none(),
        "{} is not installed: run tests/report-tools/setup.sh",
        tool.display()
    );
    eprintln!(
        "SKIPPED: {} not found (tests/report-tools/setup.sh installs it)",
        tool.display()
    );
    None
}

#[test]
fn every_report_format_of_the_shipped_scenarios_is_stable() {
    // The committed fixtures only: a fresh harness run has other ids and times.
    if std::env::var_os("ABORTAUDIT_SCENARIOS").is_some() {
        return;
    }
    for format in ["markdown", "junit", "sarif", "github"] {
        let output = scan(&["--format", format]);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{format}: {}",
            stderr(&output)
        );
        insta::assert_snapshot!(format!("scenarios_{format}"), stdout(&output));
    }
}

#[test]
fn the_exit_status_and_the_reports_agree_whatever_the_format() {
    let report = json(&scan(&["--format", "json"]).stdout);
    let gating = standing_count(&report, "fails");
    assert!(gating > 0);
    for format in [
        "table", "json", "markdown", "junit", "sarif", "github", "html",
    ] {
        let output = scan(&["--format", format]);
        assert_eq!(output.status.code(), Some(1), "{format}");
        let output = scan(&["--format", format, "--exit-zero"]);
        assert_eq!(output.status.code(), Some(0), "{format}");
    }
    let rollbacks = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["category"] == "pre_commit_abort")
        .count();
    assert!(rollbacks > 0);
    let github = stdout(&scan(&["--format", "github"]));
    assert_eq!(
        github.lines().filter(|l| l.starts_with("::error ")).count(),
        gating
    );
    assert_eq!(
        github
            .lines()
            .filter(|l| l.starts_with("::warning "))
            .count(),
        report["findings"].as_array().unwrap().len() - gating - rollbacks
    );
    let rollbacks_noted = github
        .lines()
        .filter(|l| l.starts_with("::notice "))
        .count();
    assert_eq!(rollbacks_noted, rollbacks);
}

#[test]
fn junit_reads_back_with_a_junit_parser_and_fails_once_per_gating_finding() {
    let Some(python) = report_tool("python") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let xml = dir.path().join("report.xml");
    let output = scan(&[
        "--format",
        "json",
        "--output",
        &format!("junit={}", xml.display()),
    ]);
    let report = json(&output.stdout);
    let read = std::process::Command::new(python)
        .arg(Path::new(ROOT).join("tests/report-tools/junit_counts.py"))
        .arg(&xml)
        .output()
        .unwrap();
    assert!(read.status.success(), "{}", stderr(&read));
    let junit = json(&read.stdout);
    let gating = standing_count(&report, "fails");
    let cases = junit["cases"].as_array().unwrap();
    let failed = cases
        .iter()
        .filter(|c| !c["failures"].as_array().unwrap().is_empty())
        .count();
    assert_eq!(failed, gating, "{junit:#}");
    assert_eq!(junit["failures"], gating, "the suites' own count");
    assert_eq!(junit["errors"], 0);
    // A case per aborted turn without a gating finding, one per gating finding otherwise.
    let turns = report["summary"]["aborted_turns"].as_u64().unwrap() as usize;
    let turns_failing: std::collections::HashSet<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["gate"] == "fails")
        .map(|f| f["trace_id"].as_str().unwrap())
        .collect();
    assert_eq!(cases.len(), turns - turns_failing.len() + gating);
    assert_eq!(junit["tests"], cases.len());
    // Every gating finding's signature names its case, and its evidence is in the failure.
    for finding in report["findings"].as_array().unwrap() {
        if finding["gate"] != "fails" {
            continue;
        }
        let signature = finding["signature"].as_str().unwrap();
        let conversation = finding["conversation_id"].as_str().unwrap();
        let case = cases
            .iter()
            .find(|c| {
                let name = c["name"].as_str().unwrap();
                name.contains(signature) && name.contains(conversation)
            })
            .unwrap_or_else(|| panic!("no case names {signature} in {conversation}"));
        let text = case["failures"][0]["text"].as_str().unwrap();
        for line in finding["evidence"].as_array().unwrap() {
            assert!(text.contains(line.as_str().unwrap()), "{text}");
        }
        assert_eq!(case["failures"][0]["type"], finding["category"]);
    }
    // Findings that do not gate are told in their turn's output.
    let passing = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["gate"] == "passes")
        .unwrap();
    assert!(cases.iter().any(|c| {
        c["system_out"]
            .as_str()
            .is_some_and(|out| out.contains(passing["tool_call"]["name"].as_str().unwrap()))
    }));
}

#[test]
fn sarif_validates_against_the_schema_and_fingerprints_each_finding_by_its_signature() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.sarif");
    let output = scan(&[
        "--format",
        "json",
        "--output",
        &format!("sarif={}", path.display()),
    ]);
    let report = json(&output.stdout);
    let sarif: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let run = &sarif["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    let findings = report["findings"].as_array().unwrap();
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), findings.len());
    for (finding, result) in findings.iter().zip(results) {
        assert_eq!(result["ruleId"], finding["category"]);
        let rule = &rules[result["ruleIndex"].as_u64().unwrap() as usize];
        assert_eq!(rule["id"], finding["category"]);
        assert!(!rule["help"]["text"].as_str().unwrap().is_empty());
        assert_eq!(
            result["partialFingerprints"]["abortaudit/signature/v1"],
            finding["signature"]
        );
        let level = if finding["gate"] == "fails" {
            "error"
        } else {
            "warning"
        };
        if finding["category"] != "pre_commit_abort" {
            assert_eq!(result["level"], level);
        }
        // Located at the input line of what shows the write.
        let location = &result["locations"][0]["physicalLocation"];
        let uri = location["artifactLocation"]["uri"].as_str().unwrap();
        assert!(uri.starts_with("fixtures/scenarios/"), "{uri}");
        assert!(location["region"]["startLine"].as_u64().unwrap() >= 1);
    }
    if let Some(sarif_kit) = report_tool("sarif-kit") {
        let validated = std::process::Command::new(&sarif_kit)
            .arg("validate")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            validated.status.success(),
            "{}{}",
            String::from_utf8_lossy(&validated.stdout),
            stderr(&validated)
        );
        // The validator refuses what the schema refuses.
        let mut broken = sarif.clone();
        broken["runs"][0]["results"][0]["level"] = "fatal".into();
        let broken_path = dir.path().join("broken.sarif");
        std::fs::write(&broken_path, broken.to_string()).unwrap();
        let refused = std::process::Command::new(&sarif_kit)
            .arg("validate")
            .arg(&broken_path)
            .output()
            .unwrap();
        assert_eq!(refused.status.code(), Some(1));
    }
}

#[test]
fn extra_outputs_are_written_beside_stdout_and_leave_the_exit_status_alone() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str| dir.path().join(name);
    let outputs: Vec<String> = [
        ("junit", "report.xml"),
        ("sarif", "report.sarif"),
        ("markdown", "incident.md"),
        ("json", "report.json"),
        ("github", "annotations.txt"),
    ]
    .iter()
    .flat_map(|(format, name)| {
        [
            "--output".to_owned(),
            format!("{format}={}", file(name).display()),
        ]
    })
    .collect();
    let args: Vec<&str> = outputs.iter().map(String::as_str).collect();
    let output = scan(&args);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).contains("Gate: FAILED"),
        "the table on stdout"
    );
    for (format, name) in [
        ("junit", "report.xml"),
        ("sarif", "report.sarif"),
        ("markdown", "incident.md"),
        ("json", "report.json"),
        ("github", "annotations.txt"),
    ] {
        let alone = stdout(&scan(&["--format", format]));
        assert_eq!(
            std::fs::read_to_string(file(name)).unwrap(),
            alone,
            "{format}"
        );
    }
    let output = scan(&[
        "--output",
        &format!("junit={}", file("r.xml").display()),
        "--exit-zero",
    ]);
    assert_eq!(output.status.code(), Some(0));

    for (spec, says) in [
        ("junit", "expected FORMAT=PATH"),
        ("pdf=x.pdf", "unknown format \"pdf\""),
        ("junit=", "no path"),
    ] {
        let output = scan(&["--output", spec]);
        assert_eq!(output.status.code(), Some(2), "{spec}");
        assert!(
            stderr(&output).contains(says),
            "{spec}: {}",
            stderr(&output)
        );
    }
    let output = scan(&["--output", "junit=/nonexistent-dir/r.xml"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("/nonexistent-dir/r.xml"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn the_github_format_appends_the_markdown_report_to_the_step_summary() {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("step_summary.md");
    std::fs::write(&summary, "## earlier step\n").unwrap();
    let run = || {
        bin()
            .current_dir(ROOT)
            .env("GITHUB_STEP_SUMMARY", &summary)
            .args([
                "scan",
                "fixtures/scenarios/traces",
                "fixtures/scenarios/events",
            ])
            .args(["--format", "github"])
            .output()
            .unwrap()
    };
    assert_eq!(run().status.code(), Some(1));
    let markdown = stdout(&scan(&["--format", "markdown"]));
    assert_eq!(
        std::fs::read_to_string(&summary).unwrap(),
        format!("## earlier step\n{markdown}")
    );
    // Other formats leave it alone.
    bin()
        .current_dir(ROOT)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .args(["scan", "fixtures/scenarios/traces", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(&summary).unwrap(),
        format!("## earlier step\n{markdown}")
    );
}

/// The runner's parsing of a workflow command line (actions/runner, `ActionCommand.TryParseV2`)
/// and its unescaping: what a step's annotation really says.
struct Command {
    command: String,
    properties: Vec<(String, String)>,
    message: String,
}

fn parse_command(line: &str) -> Option<Command> {
    let rest = line.trim_start().strip_prefix("::")?;
    let end = rest.find("::")?;
    let (info, message) = (&rest[..end], &rest[end + 2..]);
    let (command, properties) = info.split_once(' ').unwrap_or((info, ""));
    let unescape_data = |s: &str| {
        s.replace("%0D", "\r")
            .replace("%0A", "\n")
            .replace("%25", "%")
    };
    let unescape_property = |s: &str| {
        s.replace("%0D", "\r")
            .replace("%0A", "\n")
            .replace("%3A", ":")
            .replace("%2C", ",")
            .replace("%25", "%")
    };
    Some(Command {
        command: command.to_owned(),
        properties: properties
            .split(',')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.to_owned(), unescape_property(v))
            })
            .collect(),
        message: unescape_data(message),
    })
}

/// Names an attacker could give a tool, a service or a conversation: markup of every output
/// language, terminal escapes, line breaks, a workflow command, Mermaid syntax.
const HOSTILE_TOOL: &str = "<img src=x onerror=alert(1)>|*x*_[l](javascript:y)`c`\u{1b}[31m";
const HOSTILE_SERVICE: &str = "pay, ments: api%0A::error::owned\r\n]]></failure><x a='";
const HOSTILE_CONVERSATION: &str = "conv-\"<script>alert(2)</script>\" # section x %%{init}%%";

/// The shipped scenarios with a tool, a service and a conversation renamed to hostile text.
fn hostile_scenarios() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let encode = |s: &str| {
        let quoted = serde_json::to_string(s).unwrap();
        quoted[1..quoted.len() - 1].to_owned()
    };
    for sub in ["traces", "events"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
        for entry in
            std::fs::read_dir(Path::new(ROOT).join("fixtures/scenarios").join(sub)).unwrap()
        {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path)
                .unwrap()
                .replace("create_payment", &encode(HOSTILE_TOOL))
                .replace("payments-api", &encode(HOSTILE_SERVICE))
                .replace("conv-client-gone-cb56d5bd", &encode(HOSTILE_CONVERSATION));
            std::fs::write(dir.path().join(sub).join(path.file_name().unwrap()), text).unwrap();
        }
    }
    dir
}

#[test]
fn hostile_names_are_escaped_in_every_format() {
    let dir = hostile_scenarios();
    let scan_hostile = |format: &str| {
        let output = bin()
            .arg("scan")
            .arg(dir.path().join("traces"))
            .arg(dir.path().join("events"))
            .args(["--format", format])
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(1),
            "{format}: {}",
            stderr(&output)
        );
        stdout(&output)
    };
    let report = json(scan_hostile("json").as_bytes());
    let hostile = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["conversation_id"] == HOSTILE_CONVERSATION)
        .expect("the renamed conversation's finding");
    assert_eq!(hostile["tool_call"]["name"], HOSTILE_TOOL);
    assert_eq!(hostile["write"]["service"], HOSTILE_SERVICE);

    // No format lets a terminal escape through.
    let outputs: Vec<(&str, String)> = ["table", "markdown", "junit", "sarif", "github", "html"]
        .into_iter()
        .map(|f| (f, scan_hostile(f)))
        .collect();
    for (format, text) in &outputs {
        assert!(!text.contains('\u{1b}'), "{format} holds an ESC");
        assert!(!text.contains('\r'), "{format} holds a CR");
    }
    let output = |format: &str| &outputs.iter().find(|(f, _)| *f == format).unwrap().1;

    // Markdown: no markup, no broken table row, nothing Mermaid reads as syntax.
    let markdown = output("markdown");
    assert!(!markdown.contains("<img") && !markdown.contains("<script"));
    let header_cells = markdown
        .lines()
        .find(|l| l.starts_with("| # |"))
        .unwrap()
        .matches(" | ")
        .count();
    for row in markdown
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| # |"))
    {
        let cells = row.replace("\\|", "").matches(" | ").count();
        assert_eq!(
            cells, header_cells,
            "a row with the cells it should have: {row}"
        );
    }
    let mut in_chart = false;
    for line in markdown.lines() {
        match line {
            "```mermaid" => in_chart = true,
            "```" => in_chart = false,
            _ if in_chart && (line.contains("dateFormat") || line.contains("axisFormat")) => {}
            _ if in_chart && line.starts_with("    ") && !line.contains(":e") => {
                // Statements (title, dateFormat, section…) keep their plain words.
                assert!(!line.contains(['<', '>', '%', '#', ';', '"']), "{line}");
            }
            _ if in_chart && line.contains(":e") => {
                let (label, task) = line.rsplit_once(" :").unwrap();
                assert!(!label.contains([':', ';', '#', '<', '%', '"']), "{line}");
                assert!(
                    !label.trim_start().to_lowercase().starts_with("section"),
                    "{line}"
                );
                assert!(
                    task.starts_with("crit")
                        || task.starts_with('e')
                        || task.starts_with("active")
                        || task.starts_with("milestone"),
                    "{line}"
                );
            }
            _ => {}
        }
    }

    // JUnit: well-formed, the names back as text.
    let junit = output("junit");
    assert!(!junit.contains("<img") && !junit.contains("<script") && !junit.contains("<x a="));
    if let Some(python) = report_tool("python") {
        let path = dir.path().join("hostile.xml");
        std::fs::write(&path, junit).unwrap();
        let read = std::process::Command::new(python)
            .arg(Path::new(ROOT).join("tests/report-tools/junit_counts.py"))
            .arg(&path)
            .output()
            .unwrap();
        assert!(read.status.success(), "{}", stderr(&read));
        let read = json(&read.stdout);
        let names: Vec<&str> = read["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert!(
            names
                .iter()
                .any(|n| n.contains(&*sanitize(HOSTILE_CONVERSATION))
                    && n.contains(&*sanitize(HOSTILE_TOOL))),
            "{names:#?}"
        );
    }

    // SARIF: JSON, and valid.
    let sarif: Value = serde_json::from_str(output("sarif")).unwrap();
    assert!(sarif["runs"][0]["results"].as_array().unwrap().len() > 1);
    if let Some(sarif_kit) = report_tool("sarif-kit") {
        let path = dir.path().join("hostile.sarif");
        std::fs::write(&path, output("sarif")).unwrap();
        let validated = std::process::Command::new(sarif_kit)
            .arg("validate")
            .arg(&path)
            .output()
            .unwrap();
        assert!(validated.status.success(), "{}", stderr(&validated));
    }

    // GitHub: every line is one command, whose title and message the runner reads back as the
    // names (with their control characters shown, not obeyed).
    let github = output("github");
    let commands: Vec<Command> = github.lines().filter_map(parse_command).collect();
    assert_eq!(commands.len(), report["findings"].as_array().unwrap().len());
    for command in &commands {
        assert!(["error", "warning", "notice"].contains(&command.command.as_str()));
        let keys: Vec<&str> = command.properties.iter().map(|(k, _)| k.as_str()).collect();
        assert!(
            keys.iter().all(|k| ["file", "line", "title"].contains(k)),
            "{keys:?}"
        );
    }
    let hostile_command = commands
        .iter()
        .find(|c| c.message.contains(&*sanitize(HOSTILE_CONVERSATION)))
        .expect("the hostile finding's annotation");
    let title = &hostile_command
        .properties
        .iter()
        .find(|(k, _)| k == "title")
        .unwrap()
        .1;
    assert!(title.contains(&*sanitize(HOSTILE_TOOL)), "{title}");
    assert!(
        hostile_command
            .message
            .contains(&*sanitize(HOSTILE_SERVICE)),
        "{}",
        hostile_command.message
    );
    // The message's own lines are lines; the names' line breaks are not.
    assert!(hostile_command.message.lines().count() > 2);
    assert!(!hostile_command.message.contains('\r'));
    assert!(
        github
            .lines()
            .all(|l| l.starts_with("::") || !l.contains("::")),
        "a summary line could pass for a command"
    );

    // HTML: the names are text.
    let html = output("html");
    assert!(!html.contains("<img src=x") && !html.contains("<script>alert"));
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
}

/// An `abortaudit.toml` with `allow` entries, in a temporary directory.
fn rules_with(allow: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("abortaudit.toml");
    std::fs::write(&path, allow).unwrap();
    (dir, path)
}

#[test]
fn a_suppression_keeps_its_findings_in_every_report_but_out_of_the_gate() {
    let (_dir, rules) = rules_with(
        r#"
[[allow]]
tool = "create_payment*"
category = "client_gone"
reason = "INC-1234: refunds reconciled nightly until the idempotency fix ships"
until = "2999-12-31"
"#,
    );
    let rules = rules.to_str().unwrap();
    let plain = json(&scan(&["--format", "json"]).stdout);
    let report = json(&scan(&["--format", "json", "--config", rules]).stdout);
    assert_eq!(
        report["findings"].as_array().unwrap().len(),
        plain["findings"].as_array().unwrap().len(),
        "nothing is hidden"
    );
    let suppressed: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["gate"] == "suppressed")
        .collect();
    assert!(!suppressed.is_empty());
    for f in &suppressed {
        assert!(
            f["tool_call"]["name"]
                .as_str()
                .unwrap()
                .starts_with("create_payment")
        );
        assert_eq!(f["category"], "client_gone");
        assert_eq!(
            f["suppressed"]["reason"],
            "INC-1234: refunds reconciled nightly until the idempotency fix ships"
        );
        assert_eq!(f["suppressed"]["until"], "2999-12-31");
    }
    assert_eq!(report["summary"]["suppressed"], suppressed.len());
    // Other gating findings remain: the gate still fails.
    assert!(standing_count(&report, "fails") > 0);
    assert_eq!(report["summary"]["gate"]["failed"], true);

    let table = stdout(&scan(&["--config", rules]));
    assert!(table.contains("(suppressed)"), "{table}");
    assert!(table.contains("INC-1234"), "the reason is told: {table}");
    let markdown = stdout(&scan(&["--format", "markdown", "--config", rules]));
    assert!(
        markdown.contains("suppressed until 2999\\-12\\-31")
            || markdown.contains("suppressed until 2999-12-31"),
        "{markdown}"
    );
    let sarif: Value =
        serde_json::from_slice(&scan(&["--format", "sarif", "--config", rules]).stdout).unwrap();
    let with_suppressions = sarif["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["suppressions"][0]["status"] == "accepted")
        .count();
    assert_eq!(with_suppressions, suppressed.len());
    let github = stdout(&scan(&["--format", "github", "--config", rules]));
    assert_eq!(
        github
            .lines()
            .filter(|l| l.contains("(suppressed)"))
            .count(),
        suppressed.len()
    );
    assert!(
        github
            .lines()
            .filter(|l| l.contains("(suppressed)"))
            .all(|l| l.starts_with("::warning "))
    );

    // --no-allow: as if there were none.
    let ignored = json(&scan(&["--format", "json", "--config", rules, "--no-allow"]).stdout);
    assert_eq!(ignored["summary"]["suppressed"], 0);
    assert_eq!(
        standing_count(&ignored, "fails"),
        standing_count(&plain, "fails")
    );
}

#[test]
fn suppressing_every_gating_finding_passes_the_gate_and_says_so() {
    let (_dir, rules) = rules_with(
        r#"
[[allow]]
category = "client_gone"
reason = "accepted for the migration"
until = "2999-01-01"

[[allow]]
category = "late_queued"
reason = "accepted for the migration"
until = "2999-01-01"

[[allow]]
category = "dispatched_after_abort"
conversation = "conv-dispatched-*"
reason = "the signal fix is deploying"
until = "2999-01-01"
"#,
    );
    let output = scan(&["--config", rules.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    let table = stdout(&output);
    assert!(table.contains("Gate: passed"), "{table}");
    assert!(table.contains("suppressed by [[allow]] entries"), "{table}");
}

#[test]
fn an_expired_suppression_stops_suppressing_and_the_run_names_it() {
    let (_dir, rules) = rules_with(
        r#"
[[allow]]
tool = "create_payment*"
reason = "until the fix"
until = "2020-01-31"
"#,
    );
    let output = scan(&["--format", "json", "--config", rules.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let report = json(&output.stdout);
    assert_eq!(report["summary"]["suppressed"], 0);
    let expired = &report["summary"]["gate"]["allow_expired"];
    assert_eq!(expired[0]["until"], "2020-01-31");
    let warning = stderr(&output);
    assert!(
        warning.contains("warning: [[allow]] tool = \"create_payment*\" until 2020-01-31 expired"),
        "{warning}"
    );
    assert!(warning.contains("until the fix"), "{warning}");
}

#[test]
fn a_bad_suppression_is_refused_naming_its_entry() {
    for (entry, says) in [
        ("tool = \"x\"\nuntil = \"2999-01-01\"\n", "reason"),
        (
            "tool = \"x\"\nreason = \"r\"\nuntil = \"next week\"\n",
            "not a date",
        ),
        ("reason = \"r\"\nuntil = \"2999-01-01\"\n", "names no field"),
        (
            "tool = \"x\"\nreason = \"r\"\nuntil = \"2999-01-01\"\nseverity = \"low\"\n",
            "severity",
        ),
    ] {
        let (_dir, rules) = rules_with(&format!("[[allow]]\n{entry}"));
        let output = scan(&["--config", rules.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(2), "{entry}");
        let message = stderr(&output);
        assert!(message.contains("abortaudit.toml"), "{message}");
        assert!(message.contains(says), "{entry}: {message}");
    }
}

#[test]
fn a_baseline_fails_the_gate_only_on_new_signatures_and_lists_those_gone() {
    let dir = tempfile::tempdir().unwrap();
    let full = scan(&["--format", "json"]);
    let baseline = dir.path().join("main.json");
    std::fs::write(&baseline, &full.stdout).unwrap();
    let baseline_arg = baseline.to_str().unwrap();

    // Against itself: everything is known, nothing new, the gate passes.
    let output = scan(&["--format", "json", "--baseline", baseline_arg]);
    assert_eq!(output.status.code(), Some(0));
    let report = json(&output.stdout);
    let total = report["findings"].as_array().unwrap().len();
    assert_eq!(report["summary"]["known"], total);
    assert_eq!(report["summary"]["gate"]["baseline"]["new"], 0);
    assert_eq!(
        report["summary"]["gate"]["baseline"]["gone"],
        Value::Array(vec![])
    );

    // A baseline without one signature: its findings fail; one with a finding this run does
    // not have: it is gone.
    let mut edited = json(&full.stdout);
    let findings = edited["findings"].as_array_mut().unwrap();
    let dropped = findings
        .iter()
        .position(|f| f["category"] == "late_queued")
        .unwrap();
    let dropped = findings.remove(dropped);
    findings.retain(|f| f["signature"] != dropped["signature"]);
    let mut gone = findings[0].clone();
    gone["tool_call"]["name"] = "cancel_subscription".into();
    gone["conversation_id"] = "conv-old".into();
    findings.push(gone);
    std::fs::write(&baseline, edited.to_string()).unwrap();
    let output = scan(&["--format", "json", "--baseline", baseline_arg]);
    assert_eq!(output.status.code(), Some(1));
    let report = json(&output.stdout);
    let failing: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["gate"] == "fails")
        .collect();
    assert!(!failing.is_empty());
    assert!(
        failing
            .iter()
            .all(|f| f["signature"] == dropped["signature"])
    );
    let gone = &report["summary"]["gate"]["baseline"]["gone"];
    assert_eq!(gone.as_array().unwrap().len(), 1);
    assert_eq!(gone[0]["tool"], "cancel_subscription");
    assert_eq!(gone[0]["conversation_id"], "conv-old");
    let table = stdout(&scan(&["--baseline", baseline_arg]));
    assert!(table.contains("(in baseline)"), "{table}");
    assert!(table.contains("1 of its findings gone"), "{table}");
    let sarif: Value =
        serde_json::from_slice(&scan(&["--format", "sarif", "--baseline", baseline_arg]).stdout)
            .unwrap();
    let states: Vec<&str> = sarif["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["baselineState"].as_str().unwrap())
        .collect();
    assert_eq!(
        states.iter().filter(|s| **s == "new").count(),
        failing.len()
    );

    // What is not a report is refused, naming it.
    std::fs::write(&baseline, "{\"schema\":\"other\"}").unwrap();
    let output = scan(&["--baseline", baseline_arg]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("main.json"), "{}", stderr(&output));
    let output = scan(&["--baseline", "/nonexistent/base.json"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("/nonexistent/base.json"));
}

/// The fenced blocks of the README in a language.
fn readme_blocks(language: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let fence = format!("```{language}\n");
    readme
        .split(&fence)
        .skip(1)
        .map(|rest| rest[..rest.find("```").unwrap()].to_owned())
        .collect()
}

#[test]
fn the_readme_ci_examples_are_valid() {
    // Every rules example is valid rules.
    let dir = tempfile::tempdir().unwrap();
    for block in readme_blocks("toml") {
        let path = dir.path().join("abortaudit.toml");
        std::fs::write(&path, &block).unwrap();
        let output = bin()
            .arg("rules")
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{block}\n{}",
            stderr(&output)
        );
    }
    // Every flag the examples give abortaudit exists.
    let help = stdout(&bin().args(["scan", "--help"]).output().unwrap());
    let commands: Vec<String> = readme_blocks("yaml")
        .into_iter()
        .chain(readme_blocks("sh"))
        .flat_map(|block| {
            block
                .split("abortaudit scan")
                .skip(1)
                .map(|rest| rest.split("\n      - ").next().unwrap().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(commands.len() >= 5);
    for command in &commands {
        for flag in command.split_whitespace().filter(|w| w.starts_with("--")) {
            let flag = flag.split('=').next().unwrap();
            assert!(help.contains(flag), "{flag} in {command}");
        }
    }
    // The CI jobs are YAML of the shape their systems read.
    let Some(python) = report_tool("python") else {
        return;
    };
    let jobs: Vec<Value> = readme_blocks("yaml")
        .iter()
        .map(|block| {
            let mut child = std::process::Command::new(&python)
                .arg(Path::new(ROOT).join("tests/report-tools/yaml_to_json.py"))
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(block.as_bytes())
                .unwrap();
            let output = child.wait_with_output().unwrap();
            assert!(output.status.success(), "{block}");
            json(&output.stdout)
        })
        .collect();
    let github = jobs
        .iter()
        .find(|j| j["jobs"].is_object())
        .expect("a GitHub workflow");
    let steps = github["jobs"]["e2e"]["steps"].as_array().unwrap();
    assert!(
        steps
            .iter()
            .all(|s| s["run"].is_string() || s["uses"].is_string())
    );
    assert!(steps.iter().any(|s| {
        s["run"]
            .as_str()
            .is_some_and(|r| r.contains("--format github"))
    }));
    let gitlab = jobs
        .iter()
        .find(|j| j["agent-e2e"]["script"].is_array())
        .expect("a GitLab job");
    assert_eq!(
        gitlab["agent-e2e"]["artifacts"]["reports"]["junit"],
        "abortaudit.xml"
    );
    let collector = jobs
        .iter()
        .find(|j| j["service"]["pipelines"]["traces"].is_object())
        .expect("the Collector's configuration");
    assert_eq!(collector["exporters"]["file"]["path"], "otel/traces.jsonl");
}

//! JUnit XML, as GitLab, Jenkins, Azure Pipelines, CircleCI and GitHub's test-report actions
//! read it: one suite per scan, a test case per aborted turn, and a failure per finding that
//! fails the gate. A turn with several such findings gets a case for each (a case holds one
//! failure in the JUnit schema), so the failure count is the number of gating findings. Other
//! findings of a turn are listed in its case's `<system-out>`; the inputs' diagnostics in the
//! suite's `<system-err>`.

use std::collections::HashMap;
use std::io::Write;

use super::escape::xml;
use super::{ScanView, words};
use crate::classify::{Finding, Standing};

struct Case {
    name: String,
    classname: String,
    failure: Option<Failure>,
    system_out: Vec<String>,
}

struct Failure {
    kind: String,
    message: String,
    body: Vec<String>,
}

pub fn scan(view: &ScanView<'_>, out: &mut dyn Write) -> std::io::Result<()> {
    let cases = cases(view);
    let failures = cases.iter().filter(|c| c.failure.is_some()).count();
    let counts = format!(
        r#"tests="{}" failures="{failures}" errors="0" skipped="0""#,
        cases.len()
    );
    writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(out, r#"<testsuites name="abortaudit" {counts}>"#)?;
    writeln!(out, r#"  <testsuite name="abortaudit scan" {counts}>"#)?;
    writeln!(out, "    <properties>")?;
    let fail_on: Vec<&str> = view.gate.fail_on.iter().map(|c| c.as_str()).collect();
    for (name, value) in [
        ("fail_on", fail_on.join(",")),
        ("inferred_aborts", view.gate.inferred_aborts.to_string()),
        ("gate_failed", view.gate.failed.to_string()),
        (
            "fail_on_unprotected_tools",
            view.gate.fail_on_unprotected_tools.to_string(),
        ),
    ] {
        writeln!(
            out,
            r#"      <property name="{name}" value="{}"/>"#,
            xml(&value)
        )?;
    }
    writeln!(out, "    </properties>")?;
    for case in &cases {
        let head = format!(
            r#"    <testcase classname="{}" name="{}""#,
            xml(&case.classname),
            xml(&case.name)
        );
        if case.failure.is_none() && case.system_out.is_empty() {
            writeln!(out, "{head}/>")?;
            continue;
        }
        writeln!(out, "{head}>")?;
        if let Some(failure) = &case.failure {
            writeln!(
                out,
                r#"      <failure type="{}" message="{}">{}</failure>"#,
                xml(&failure.kind),
                xml(&failure.message),
                text_block(&failure.body)
            )?;
        }
        if !case.system_out.is_empty() {
            writeln!(
                out,
                "      <system-out>{}</system-out>",
                text_block(&case.system_out)
            )?;
        }
        writeln!(out, "    </testcase>")?;
    }
    let diagnostics: Vec<String> = view.ingested.diagnostics().map(|d| d.to_string()).collect();
    if !diagnostics.is_empty() {
        writeln!(
            out,
            "    <system-err>{}</system-err>",
            text_block(&diagnostics)
        )?;
    }
    writeln!(out, "  </testsuite>")?;
    writeln!(out, "</testsuites>")
}

/// Lines of text from the inputs, each escaped on its own and joined by line breaks.
fn text_block(lines: &[String]) -> String {
    let lines: Vec<String> = lines.iter().map(|l| xml(l)).collect();
    format!("\n{}\n      ", lines.join("\n"))
}

fn cases(view: &ScanView<'_>) -> Vec<Case> {
    let mut cases = Vec::new();
    for turn in &view.audit.turns {
        let turn_name = format!(
            "conversation {} · turn {}",
            turn.conversation_id, turn.number
        );
        let classname = format!("abortaudit.{}", turn.conversation_id);
        let (gating, others): (Vec<_>, Vec<_>) = view
            .findings()
            .filter(|(f, _)| {
                f.trace_id == turn.trace_id && f.conversation_id == turn.conversation_id
            })
            .partition(|(_, standing)| **standing == Standing::Fails);
        let system_out: Vec<String> = others
            .iter()
            .map(|(f, standing)| {
                format!(
                    "{} ({}; {}): {}",
                    words::headline(f),
                    f.category,
                    words::standing(standing, view.allow_rule(standing)),
                    words::timing(f)
                )
            })
            .collect();
        if gating.is_empty() {
            cases.push(Case {
                name: turn_name,
                classname,
                failure: None,
                system_out,
            });
            continue;
        }
        // Two calls of the same tool writing the same way share a signature: number them so
        // that every case's name is its own.
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (n, (f, _)) in gating.iter().enumerate() {
            let count = seen.entry(f.signature.as_str()).or_default();
            *count += 1;
            let suffix = if *count > 1 {
                format!(" #{count}")
            } else {
                String::new()
            };
            cases.push(Case {
                name: format!(
                    "{turn_name} · {} · {}{suffix}",
                    words::headline(f),
                    f.signature
                ),
                classname: classname.clone(),
                failure: Some(failure(f)),
                system_out: if n == 0 {
                    system_out.clone()
                } else {
                    Vec::new()
                },
            });
        }
    }
    // With `[gate] fail_on_unprotected_tools`, a tool with late writes and no cancellation
    // protocol fails the gate by itself: a failing case each.
    if view.gate.fail_on_unprotected_tools {
        let rows = view.audit.protocols_by_tool();
        for tool in &view.gate.unprotected_tools {
            let row = rows.iter().find(|r| &r.name == tool);
            let message = format!(
                "{tool} has late writes, and none of its calls in the aborted turns showed a commit-point check, a deadline or an out-of-band cancel"
            );
            let mut body = vec![message.clone()];
            if let Some(row) = row {
                body.push(format!(
                    "{} calls, {} late writes; {} with an idempotency key, {} compensated",
                    row.calls, row.late_writes, row.idempotency_key, row.compensated
                ));
            }
            cases.push(Case {
                name: format!("tool {tool} · cancellation protocol"),
                classname: "abortaudit.protocols".to_owned(),
                failure: Some(Failure {
                    kind: "no_cancellation_protocol".to_owned(),
                    message,
                    body,
                }),
                system_out: Vec::new(),
            });
        }
    }
    cases
}

fn failure(f: &Finding) -> Failure {
    let mut body = vec![
        words::sentence(f),
        format!(
            "{}; write {}; joined by {}",
            words::abort(f),
            words::timing(f),
            f.join.as_deref().unwrap_or("nothing")
        ),
    ];
    body.extend(f.evidence.iter().cloned());
    body.push(format!(
        "what would have stopped it: {}",
        words::prevention(f)
    ));
    let (input, line) = words::origin(f);
    body.push(format!("read from {input}:{line}; finding {}", f.id));
    Failure {
        kind: f.category.as_str().to_owned(),
        message: words::sentence(f),
        body,
    }
}

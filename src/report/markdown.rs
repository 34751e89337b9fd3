//! The postmortem page: the gate's verdict and the summary, one table of every finding, then per
//! conversation each finding's evidence and a Mermaid gantt chart of its turns (the spans, the
//! abort, vendor events and each write's commit), which GitHub, GitLab and most wikis draw.
//! Text from the inputs is escaped for Markdown (tables included) and reduced to plain words in
//! Mermaid labels.

use std::io::Write;

use super::escape::{markdown as md, mermaid};
use super::timeline::{What, telling_entries};
use super::{ScanView, Timeline, words};
use crate::classify::Standing;
use crate::model::Category;

/// How many entries a turn's chart shows at most: beyond that a chart is unreadable, and the
/// HTML report and `explain` show them all.
const CHART_ENTRIES: usize = 40;

pub fn scan(view: &ScanView<'_>, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "# abortaudit: writes after aborted turns\n")?;
    let summary = view.summary;
    let verdict = if summary.fail_on.is_empty() && !summary.fail_on_unprotected_tools {
        "**Gate: off** (`--fail-on none`)".to_owned()
    } else {
        let mut on: Vec<&str> = summary.fail_on.iter().map(|c| c.as_str()).collect();
        if summary.fail_on_unprotected_tools {
            on.push("tools with late writes and no cancellation protocol");
        }
        format!(
            "**Gate: {}** (fails on {})",
            if summary.gate_failed {
                "FAILED"
            } else {
                "passed"
            },
            md(&on.join(", "))
        )
    };
    writeln!(out, "{verdict}\n")?;
    for line in summary.lines() {
        writeln!(out, "- {}", md(&line))?;
    }
    writeln!(out)?;
    let diagnostics = view.ingested.diagnostics().count();
    if diagnostics > 0 {
        writeln!(
            out,
            "{diagnostics} diagnostics were reported on the inputs (`--format json` lists them).\n"
        )?;
    }
    if view.audit.findings.is_empty() {
        writeln!(out, "No writes landed after an abort.")?;
        return Ok(());
    }

    writeln!(out, "## Findings\n")?;
    writeln!(
        out,
        "| # | Conversation | Tool call | Write | Service | Category | vs abort | Joined by | Gate |"
    )?;
    writeln!(out, "|--:|---|---|---|---|---|---|---|---|")?;
    for (n, (f, standing)) in view.findings().enumerate() {
        let (operation, service) = match &f.write {
            Some(w) => (md(&w.operation), md(&w.service)),
            None => (md(&words::write(f)), String::new()),
        };
        let tool = match &f.tool_call.tool_call_id {
            Some(id) => format!("{}<br>{}", md(&f.tool_call.name), md(id)),
            None => md(&f.tool_call.name),
        };
        let category = if f.category.is_late() {
            format!("**{}**", md(f.category.as_str()))
        } else {
            md(f.category.as_str())
        };
        writeln!(
            out,
            "| {} | {} | {tool} | {operation} | {service} | {category}{} | {} | {} | {} |",
            n + 1,
            md(&f.conversation_id),
            match (f.ambiguous, f.compensated.is_some()) {
                (true, true) => " (ambiguous, compensated)",
                (true, false) => " (ambiguous)",
                (false, true) => " (compensated)",
                (false, false) => "",
            },
            md(&words::timing(f)),
            md(f.join.as_deref().unwrap_or("none")),
            md(&gate_cell(standing)),
        )?;
    }
    writeln!(out)?;
    protocols(view, out)?;

    let mut numbered = view.findings().enumerate().peekable();
    while let Some((_, (first, _))) = numbered.peek().copied() {
        let conversation = first.conversation_id.clone();
        writeln!(out, "## Conversation {}\n", md(&conversation))?;
        while let Some((n, (f, standing))) =
            numbered.next_if(|(_, (f, _))| f.conversation_id == conversation)
        {
            writeln!(
                out,
                "### {}. {}: {}\n",
                n + 1,
                md(f.category.as_str()),
                md(&words::headline(f))
            )?;
            writeln!(out, "{}\n", md(&words::sentence(f)))?;
            writeln!(
                out,
                "- {}; write {}; joined by {}",
                md(&words::abort(f)),
                md(&words::timing(f)),
                md(f.join.as_deref().unwrap_or("nothing"))
            )?;
            for line in &f.evidence {
                writeln!(out, "- {}", md(line))?;
            }
            writeln!(
                out,
                "- what would have stopped it: {}",
                md(&words::prevention(f))
            )?;
            for detail in words::prevention_details(f) {
                writeln!(out, "  - {}", md(&detail))?;
            }
            let (input, line) = words::origin(f);
            writeln!(
                out,
                "- {}; read from {}:{line}; signature {}\n",
                md(&words::standing(standing, view.allow_rule(standing))),
                md(input),
                md(&f.signature)
            )?;
        }
        if let Some(timeline) = view
            .timelines
            .iter()
            .find(|t| t.conversation == conversation)
        {
            gantt(timeline, out)?;
        }
    }
    Ok(())
}

/// The cancellation protocols of the tool calls in the aborted turns, per tool and per
/// downstream service.
fn protocols(view: &ScanView<'_>, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "## Cancellation protocols\n")?;
    writeln!(
        out,
        "Tool calls of the aborted turns that had each mechanism: the server checked for its client before committing (check), a deadline header, an out-of-band cancel after the abort, an idempotency key, a compensation after a late write. **none** marks late writes with no check, deadline or cancel.\n"
    )?;
    for (heading, rows) in [
        ("Tool", view.audit.protocols_by_tool()),
        ("Service", view.audit.protocols_by_service()),
    ] {
        writeln!(
            out,
            "| {heading} | Calls | Late writes | Check | Deadline | Cancel | Idempotency key | Compensated | Protocol |"
        )?;
        writeln!(out, "|---|--:|--:|--:|--:|--:|--:|--:|---|")?;
        for row in &rows {
            let protocol = if row.has_protocol() {
                "yes"
            } else if row.late_writes > 0 {
                "**none**"
            } else {
                "none"
            };
            writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {protocol} |",
                md(&row.name),
                row.calls,
                row.late_writes,
                row.commit_check,
                row.deadline,
                row.cancel,
                row.idempotency_key,
                row.compensated
            )?;
        }
        writeln!(out)?;
    }
    Ok(())
}

fn gate_cell(standing: &Standing) -> String {
    match standing {
        Standing::Fails => "fails".to_owned(),
        Standing::Passes => "passes".to_owned(),
        Standing::Suppressed { .. } => "suppressed".to_owned(),
        Standing::Known => "in baseline".to_owned(),
    }
}

/// A Mermaid gantt chart of a conversation: a section per turn, times in milliseconds from the
/// first thing shown (Mermaid's `x` date format; the axis shows seconds and milliseconds,
/// which no time zone shifts).
fn gantt(timeline: &Timeline, out: &mut dyn Write) -> std::io::Result<()> {
    let Some(start) = timeline
        .turns
        .iter()
        .flat_map(|t| t.entries.iter().map(|e| e.time))
        .min()
    else {
        return Ok(());
    };
    let ms = |time: u64| (time.saturating_sub(start)) / 1_000_000;
    writeln!(out, "```mermaid")?;
    writeln!(out, "gantt")?;
    writeln!(
        out,
        "    title {} (ms from the first entry{})",
        mermaid(&format!("Conversation {}", timeline.conversation)),
        if timeline.has_abort {
            format!(", abort at {} ms", ms(timeline.origin))
        } else {
            String::new()
        }
    )?;
    writeln!(out, "    dateFormat x")?;
    writeln!(out, "    axisFormat %S.%L")?;
    let mut id = 0;
    for (n, turn) in timeline.turns.iter().enumerate() {
        writeln!(
            out,
            "    section {}",
            mermaid(&format!("Turn {} {}", n + 1, turn.title))
        )?;
        let shown = telling_entries(CHART_ENTRIES, &turn.entries);
        for entry in &shown {
            let at = ms(entry.time);
            let (label, tags, end) = match &entry.what {
                What::Span {
                    name,
                    service,
                    end,
                    tool_call,
                    findings,
                    ..
                } => {
                    let tags = if !findings.is_empty() {
                        "crit, "
                    } else if *tool_call {
                        "active, "
                    } else {
                        ""
                    };
                    // A bar needs a width to show; a span that never ended runs one ms.
                    let end = end.map_or(at + 1, |e| ms(e).max(at + 1));
                    (format!("{name} [{service}]"), tags, end)
                }
                What::VendorEvent { vendor, kind, .. } => {
                    (format!("{vendor} event {kind}"), "milestone, ", at)
                }
                What::Abort { inferred, .. } => (
                    if *inferred {
                        "ABORT (inferred)".to_owned()
                    } else {
                        "ABORT".to_owned()
                    },
                    "crit, milestone, ",
                    at,
                ),
                What::Write {
                    category,
                    operation,
                    ..
                } => (
                    format!(
                        "{} {category} {operation}",
                        if *category == Category::PreCommitAbort {
                            "rolled back"
                        } else {
                            "committed"
                        }
                    ),
                    if category.is_late() {
                        "crit, milestone, "
                    } else {
                        "milestone, "
                    },
                    at,
                ),
            };
            writeln!(out, "    {} :{tags}e{id}, {at}, {end}", mermaid(&label))?;
            id += 1;
        }
        if shown.len() < turn.entries.len() {
            writeln!(
                out,
                "    {} :e{id}, {}, {}",
                mermaid(&format!(
                    "{} more spans (see the HTML report or explain)",
                    turn.entries.len() - shown.len()
                )),
                ms(turn.entries.last().map_or(start, |e| e.time)),
                ms(turn.entries.last().map_or(start, |e| e.time)) + 1
            )?;
            id += 1;
        }
    }
    writeln!(out, "```\n")
}

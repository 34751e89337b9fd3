//! GitHub Actions workflow commands: an annotation per finding, `::error` for those that fail
//! the gate, `::notice` for rollbacks (`pre_commit_abort`, the safe outcome) and `::warning`
//! for the others, placed on the line of the input that shows the
//! write. Messages and properties are escaped as the runner unescapes them (actions/toolkit's
//! `escapeData` and `escapeProperty`), after terminal controls are neutralised.

use std::io::Write;

use super::escape::{github_data, github_property};
use super::{ScanView, words};
use crate::classify::Standing;
use crate::model::Category;

pub fn scan(view: &ScanView<'_>, out: &mut dyn Write) -> std::io::Result<()> {
    for (f, standing) in view.findings() {
        // A rollback is the safe outcome: worth a note, not a warning.
        let command = match standing {
            Standing::Fails => "error",
            _ if f.category == Category::PreCommitAbort => "notice",
            _ => "warning",
        };
        let (file, line) = words::origin(f);
        let mut properties = vec![format!("file={}", github_property(file))];
        if line > 0 {
            properties.push(format!("line={line}"));
        }
        let title = format!(
            "abortaudit {}{}: {}",
            f.category,
            match standing {
                Standing::Suppressed { .. } => " (suppressed)",
                Standing::Known => " (in baseline)",
                Standing::Fails | Standing::Passes => "",
            },
            words::headline(f)
        );
        properties.push(format!("title={}", github_property(&title)));
        // Each piece is escaped on its own, so that the message's own line breaks survive
        // while any in the inputs' text stay neutralised.
        let mut lines = vec![
            words::sentence(f),
            format!("{}; write {}", words::abort(f), words::timing(f)),
        ];
        lines.extend(f.evidence.iter().cloned());
        lines.push(format!(
            "what would have stopped it: {}",
            words::prevention(f)
        ));
        lines.push(format!(
            "{}; signature {}",
            words::standing(standing, view.allow_rule(standing)),
            f.signature
        ));
        let message: Vec<String> = lines.iter().map(|l| github_data(l)).collect();
        writeln!(
            out,
            "::{command} {}::{}",
            properties.join(","),
            message.join("%0A")
        )?;
    }
    if view.gate.fail_on_unprotected_tools {
        for tool in &view.gate.unprotected_tools {
            let title = format!("abortaudit: {tool} has no cancellation protocol");
            writeln!(
                out,
                "::error title={}::{}",
                github_property(&title),
                github_data(&format!(
                    "{tool} has late writes, and none of its calls in the aborted turns showed a commit-point check, a deadline or an out-of-band cancel"
                ))
            )?;
        }
    }
    for line in view.summary.lines() {
        writeln!(out, "{}", github_data(&line))?;
    }
    Ok(())
}

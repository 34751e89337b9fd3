//! A finding in words, shared by the formats that describe it in prose (Markdown, JUnit,
//! SARIF, GitHub annotations, HTML). The text is raw: each format escapes it for its own
//! language.

use crate::classify::{Finding, Standing};
use crate::model::Category;
use crate::model::time::rfc3339;
use crate::rules::AllowRule;
use crate::util::units::offset;

/// The write: `operation [service]`, or why there is none.
pub fn write(f: &Finding) -> String {
    match &f.write {
        Some(w) => format!("{} [{}]", w.operation, w.service),
        None if f.category == Category::Unverified => "write unknown".to_owned(),
        None => "no write found".to_owned(),
    }
}

/// The commit against the abort: `+0.120s`, `rolled back +0.004s`, `+0.2s (inferred)`, or
/// `unknown` / `none found` when there is no commit time.
pub fn timing(f: &Finding) -> String {
    let Some(delay) = f.delay_ns() else {
        let unknown = f.category == Category::Unverified
            || (f.write.is_none() && f.category != Category::DispatchedAfterAbort);
        return if unknown { "unknown" } else { "none found" }.to_owned();
    };
    let verb = if f.category == Category::PreCommitAbort {
        "rolled back "
    } else {
        ""
    };
    let inferred = if f.write.as_ref().is_some_and(|w| w.inferred) {
        " (inferred)"
    } else {
        ""
    };
    format!("{verb}{}{inferred}", offset(delay))
}

/// `tool → operation [service]`.
pub fn headline(f: &Finding) -> String {
    format!("{} → {}", f.tool_call.name, write(f))
}

/// One sentence: what happened, when, and what the category means.
pub fn sentence(f: &Finding) -> String {
    let when = match f.delay_ns() {
        Some(_) => format!(
            "{} {} the abort",
            if f.category == Category::PreCommitAbort {
                "rolled back"
            } else {
                "committed"
            },
            relative(f)
        ),
        None => "no commit time known".to_owned(),
    };
    format!(
        "{}: {when} in conversation {} ({}{}): {}.",
        headline(f),
        f.conversation_id,
        f.category,
        if f.ambiguous { ", ambiguous" } else { "" },
        f.category.description()
    )
}

/// `0.120s after` / `0.004s before`.
fn relative(f: &Finding) -> String {
    match f.delay_ns() {
        Some(d) if d < 0 => format!("{} before", offset(-d).trim_start_matches('+')),
        Some(d) => format!("{} after", offset(d).trim_start_matches('+')),
        None => String::new(),
    }
}

/// The abort: `2026-…Z by <signal>` (and whether it is only inferred).
pub fn abort(f: &Finding) -> String {
    format!(
        "aborted at {} by {}{}",
        rfc3339(f.abort.time),
        f.abort.signal,
        if f.abort.inferred { " (inferred)" } else { "" }
    )
}

/// Where the finding stands with the gate, in words.
pub fn standing(standing: &Standing, rule: Option<&AllowRule>) -> String {
    match (standing, rule) {
        (Standing::Fails, _) => "fails the gate".to_owned(),
        (Standing::Passes, _) => "does not gate".to_owned(),
        (Standing::Known, _) => "known from the baseline".to_owned(),
        (Standing::Suppressed { .. }, Some(rule)) => {
            format!("suppressed until {}: {}", rule.until, rule.reason)
        }
        (Standing::Suppressed { .. }, None) => "suppressed".to_owned(),
    }
}

/// Where the write (else the tool call) was read: `input:line`.
pub fn origin(f: &Finding) -> (&str, u64) {
    let origin = f.write.as_ref().map_or(&f.tool_call.origin, |w| &w.origin);
    (&origin.input, origin.line)
}

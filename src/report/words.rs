//! A finding in words, shared by the formats that describe it in prose (Markdown, JUnit,
//! SARIF, GitHub annotations, HTML). The text is raw: each format escapes it for its own
//! language.

use crate::classify::{Finding, Mechanism, Prevention, Standing};
use crate::model::Category;
use crate::model::time::rfc3339;
use crate::rules::AllowRule;
use crate::util::units::{human_gap, offset};

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

/// A margin in words, without its sign: `351 ms`.
fn gap(ns: Option<i128>) -> String {
    ns.map(|n| human_gap(n.unsigned_abs() as u64))
        .unwrap_or_default()
}

/// One mechanism's outcome in a few words: `stopped it`, `none, had 351 ms`, `too late by
/// 202 ms`, `in time, not honoured`, `sent`, `none`.
pub fn mechanism_status(f: &Finding, p: &Prevention) -> String {
    let margin = |words: &str| match p.margin_ns {
        Some(_) => format!("{words} {}", gap(p.margin_ns)),
        None => words.trim_end_matches([' ', ',']).to_owned(),
    };
    match p.mechanism {
        Mechanism::IdempotencyKey => {
            return if p.present { "sent" } else { "none" }.to_owned();
        }
        Mechanism::Compensation => {
            return match &f.compensated {
                Some(c) => format!("{} by {}", offset(c.delay_ns), c.operation),
                None if f.late => "none".to_owned(),
                None if f.category == Category::PreCommitAbort => "nothing to reverse".to_owned(),
                None => "unknown".to_owned(),
            };
        }
        _ => {}
    }
    let cancelled = f.prevention.iter().any(|c| {
        c.mechanism == Mechanism::Cancel && c.present && c.would_have_stopped == Some(true)
    });
    if p.mechanism == Mechanism::CommitCheck
        && (f.category == Category::LateQueued
            || (f.category == Category::PreCommitAbort && cancelled))
    {
        // Queued work has no connection to check (the detail says what reaches it).
        return "n/a, queued".to_owned();
    }
    let landed = f.late || f.category == Category::Unverified;
    let by = |verb: &str, rest: &str| match p.margin_ns {
        Some(_) => format!("{verb} {}{rest}", gap(p.margin_ns)),
        None => format!("{verb}{rest}"),
    };
    match (p.present, p.would_have_stopped) {
        (true, Some(true)) if !landed => "stopped it".to_owned(),
        (true, Some(true)) if p.mechanism == Mechanism::Deadline => {
            by("passed", " before the commit, not honoured")
        }
        (true, Some(true)) => by("in time by", ", not honoured"),
        (true, Some(false)) if p.mechanism == Mechanism::Deadline => {
            by("fell", " after the commit")
        }
        (true, Some(false)) => margin("too late by"),
        (true, None) => "sent".to_owned(),
        (false, Some(true)) => margin("none, had"),
        (false, Some(false)) => "none, could not have".to_owned(),
        (false, None) => "none".to_owned(),
    }
}

/// What would have stopped the write, mechanism by mechanism, on one line: `commit check: none,
/// had 351 ms · deadline: none · out-of-band cancel: none, had 351 ms · idempotency key: sent ·
/// compensation: none`.
pub fn prevention(f: &Finding) -> String {
    f.prevention
        .iter()
        .map(|p| format!("{}: {}", p.mechanism.label(), mechanism_status(f, p)))
        .collect::<Vec<_>>()
        .join(" · ")
}

/// Each mechanism's detail, as a sentence: `commit check: a disconnect check before …`.
pub fn prevention_details(f: &Finding) -> Vec<String> {
    f.prevention
        .iter()
        .map(|p| format!("{}: {}", p.mechanism.label(), p.detail))
        .collect()
}

/// A compensated finding's compensation in words, for its evidence.
pub fn compensated(f: &Finding) -> Option<String> {
    f.compensated.as_ref().map(|c| {
        format!(
            "compensated {} after the write by {} [{}]",
            offset(c.delay_ns).trim_start_matches('+'),
            c.operation,
            c.service
        )
    })
}

//! The postmortem page as one self-contained HTML file: the gate's verdict and the summary, one
//! table of every finding (filterable by category), what the categories mean, then per
//! conversation each finding's evidence and its timeline drawn as inline SVG (a lane per turn,
//! spans indented by causality, the abort as a line across the conversation, vendor events,
//! each finding's commit coloured by category).
//!
//! The file loads nothing: a Content-Security-Policy `<meta>` allows no source but the page's
//! own inline style and script, each by its SHA-256 hash. Every piece of text from the inputs
//! is escaped (`escape::html`) wherever it goes, element text, attribute or SVG, and none goes
//! into the style or the script, which read only `data-` attributes the renderer writes from
//! its own vocabulary. Everything is readable without the script, which only adds the
//! filters. The output is a pure function of the report's data: no clock, no random ids.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::classify::{Finding, Standing};
use crate::model::Category;
use crate::model::time::rfc3339;
use crate::report::escape::html as esc;
use crate::report::{ScanView, Timeline, words};

/// Appends formatted text to a `String` (which cannot fail).
macro_rules! w {
    ($dst:expr, $($arg:tt)*) => {
        let _ = write!($dst, $($arg)*);
    };
}

mod svg;

use svg::timeline_figure;

/// How many diagnostics the page lists (`--format json` has them all).
const DIAGNOSTICS_LISTED: usize = 100;

pub fn scan(view: &ScanView<'_>, out: &mut dyn Write) -> std::io::Result<()> {
    out.write_all(page(view).as_bytes())
}

/// The whole page.
fn page(view: &ScanView<'_>) -> String {
    let style = style();
    let csp = format!(
        "default-src 'none'; script-src '{}'; style-src '{}'; base-uri 'none'; form-action 'none'",
        csp_hash(SCRIPT),
        csp_hash(&style)
    );
    let summary = view.summary;
    let findings = view.audit.findings.len();
    let mut h = String::with_capacity(64 * 1024);
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    w!(
        h,
        "<meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">\n"
    );
    h.push_str("<meta name=\"referrer\" content=\"no-referrer\">\n");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    w!(
        h,
        "<title>abortaudit: {} · {findings} findings</title>\n",
        gate_words(summary)
    );
    w!(
        h,
        "<style>{style}</style>\n</head>\n<body>\n<div class=\"wrap\">\n"
    );

    header(view, &mut h);
    if findings > 0 {
        filters(view, &mut h);
    }
    h.push_str("<main>\n");
    if findings == 0 {
        h.push_str("<p class=\"none\">No writes landed after an abort.</p>\n");
    } else {
        findings_table(view, &mut h);
        protocols(view, &mut h);
        categories(view, &mut h);
        conversations(view, &mut h);
    }
    diagnostics(view, &mut h);
    inputs(view, &mut h);
    h.push_str("</main>\n");
    h.push_str(
        "<footer>Made by <code>abortaudit scan --format html</code>. Times are UTC; a \
         timeline's offsets are relative to its conversation's first abort. The page loads \
         nothing and works without its script, which only adds the filters.</footer>\n",
    );
    w!(h, "</div>\n<script>{SCRIPT}</script>\n</body>\n</html>\n");
    h
}

/// `'sha256-…'` of an inline script or style, as the Content-Security-Policy names it.
fn csp_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// `Gate: FAILED`, `Gate: passed`, `Gate: off`.
fn gate_words(summary: &super::Summary) -> &'static str {
    if summary.fail_on.is_empty() && !summary.fail_on_unprotected_tools {
        "Gate: off"
    } else if summary.gate_failed {
        "Gate: FAILED"
    } else {
        "Gate: passed"
    }
}

fn header(view: &ScanView<'_>, h: &mut String) {
    let summary = view.summary;
    h.push_str("<header>\n<h1>abortaudit: writes after aborted turns</h1>\n");
    let (class, detail) = if summary.fail_on.is_empty() && !summary.fail_on_unprotected_tools {
        (
            "off",
            "no category fails the gate (<code>--fail-on none</code>)".to_owned(),
        )
    } else {
        let mut names: Vec<String> = summary
            .fail_on
            .iter()
            .map(|c| format!("<code>{}</code>", c.as_str()))
            .collect();
        if summary.fail_on_unprotected_tools {
            names.push("tools with late writes and no cancellation protocol".to_owned());
        }
        (
            if summary.gate_failed {
                "failed"
            } else {
                "passed"
            },
            format!("fails on {}", names.join(", ")),
        )
    };
    w!(
        h,
        "<div class=\"verdict {class}\" role=\"status\"><strong>{}</strong><span>{detail}</span></div>\n",
        gate_words(summary)
    );

    let findings: u64 = summary.by_category.iter().map(|(_, n)| n).sum();
    let late = if summary.ambiguous > 0 {
        format!(
            "{} <small>({} ambiguous)</small>",
            summary.late_writes, summary.ambiguous
        )
    } else {
        summary.late_writes.to_string()
    };
    let counts: [(&str, String, bool); 8] = [
        ("findings", findings.to_string(), false),
        ("late writes", late, summary.late_writes > 0),
        ("conversations", summary.conversations.to_string(), false),
        ("aborted turns", summary.aborted_turns.to_string(), false),
        (
            "tool calls at risk",
            summary.tool_calls_at_risk.to_string(),
            false,
        ),
        (
            "committed before the abort",
            summary.committed_before_abort.to_string(),
            false,
        ),
        ("vendor events", summary.vendor_events.to_string(), false),
        (
            "diagnostics",
            summary.diagnostics.to_string(),
            summary.diagnostics > 0,
        ),
    ];
    h.push_str("<dl class=\"counts\">\n");
    for (label, value, bad) in counts {
        w!(
            h,
            "<div{}><dt>{label}</dt><dd>{value}</dd></div>\n",
            if bad { " class=\"bad\"" } else { "" }
        );
    }
    h.push_str("</dl>\n<ul class=\"summary\">\n");
    for line in summary.lines() {
        w!(h, "<li>{}</li>\n", esc(&line));
    }
    h.push_str("</ul>\n");
    if summary.diagnostics > 0 {
        w!(
            h,
            "<p class=\"warn\">{} diagnostics were reported on the inputs: <a href=\"#diagnostics\">see the list</a>.</p>\n",
            summary.diagnostics
        );
    }
    h.push_str("</header>\n");
}

/// The category filters: hidden until the script shows them, since only it makes them work.
fn filters(view: &ScanView<'_>, h: &mut String) {
    h.push_str(
        "<nav id=\"filters\" class=\"filters\" hidden aria-label=\"Filter the findings by category\">\n<span class=\"flabel\">Show</span>\n",
    );
    for category in Category::ALL {
        let n = count(view, category);
        w!(
            h,
            "<label class=\"chip\"><input type=\"checkbox\" data-category=\"{c}\"{late} checked><span class=\"swatch c-{c}\"></span>{c} <span class=\"n\">{n}</span></label>\n",
            c = category.as_str(),
            late = if category.is_late() { " data-late" } else { "" },
        );
    }
    h.push_str(
        "<button type=\"button\" data-preset=\"all\">all</button>\n<button type=\"button\" data-preset=\"late\">late writes only</button>\n<output id=\"shown\" aria-live=\"polite\"></output>\n</nav>\n",
    );
}

fn count(view: &ScanView<'_>, category: Category) -> u64 {
    view.summary
        .by_category
        .iter()
        .find(|(c, _)| *c == category)
        .map_or(0, |(_, n)| *n)
}

/// The conversations with findings, in the order of their first finding, each with the
/// indices of its findings.
fn conversation_order<'a>(view: &ScanView<'a>) -> Vec<(&'a str, Vec<usize>)> {
    let mut order: Vec<(&str, Vec<usize>)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, f) in view.audit.findings.iter().enumerate() {
        let at = *index.entry(&f.conversation_id).or_insert_with(|| {
            order.push((&f.conversation_id, Vec::new()));
            order.len() - 1
        });
        order[at].1.push(i);
    }
    order
}

fn badge(category: Category) -> String {
    format!("<span class=\"badge c-{0}\">{0}</span>", category.as_str())
}

fn findings_table(view: &ScanView<'_>, h: &mut String) {
    // Each finding's conversation section, numbered from 1.
    let mut section = vec![0; view.audit.findings.len()];
    for (c, (_, findings)) in conversation_order(view).iter().enumerate() {
        for &i in findings {
            section[i] = c + 1;
        }
    }
    h.push_str(
        "<section id=\"findings\">\n<h2>Findings</h2>\n<div class=\"scroll\"><table class=\"findings\">\n<thead><tr><th>#</th><th>Conversation</th><th>Tool call</th><th>Write</th><th>Service</th><th>Category</th><th>vs abort</th><th>Joined by</th><th>Gate</th></tr></thead>\n<tbody>\n",
    );
    for (n, (f, standing)) in view.findings().enumerate() {
        let n = n + 1;
        let c = f.category.as_str();
        w!(
            h,
            "<tr id=\"row-{n}\" class=\"cat-{c}{}\" data-category=\"{c}\">",
            if f.category.is_late() { " late" } else { "" }
        );
        w!(h, "<td class=\"num\"><a href=\"#f{n}\">{n}</a></td>");
        w!(
            h,
            "<td><a href=\"#c{}\"><code>{}</code></a></td>",
            section[n - 1],
            esc(&f.conversation_id)
        );
        w!(h, "<td>{}", esc(&f.tool_call.name));
        if let Some(id) = &f.tool_call.tool_call_id {
            w!(h, "<br><code class=\"id\">{}</code>", esc(id));
        }
        h.push_str("</td>");
        match &f.write {
            Some(write) => {
                w!(
                    h,
                    "<td>{}</td><td>{}</td>",
                    esc(&write.operation),
                    esc(&write.service)
                );
            }
            None => {
                w!(
                    h,
                    "<td class=\"muted\">{}</td><td></td>",
                    esc(&words::write(f))
                );
            }
        }
        w!(h, "<td>{}", badge(f.category));
        if f.ambiguous {
            h.push_str(" <span class=\"amb\">ambiguous</span>");
        }
        if f.abort.inferred {
            h.push_str(" <span class=\"amb\">abort inferred</span>");
        }
        if f.compensated.is_some() {
            h.push_str(" <span class=\"amb\">compensated</span>");
        }
        h.push_str("</td>");
        w!(h, "<td class=\"num\">{}</td>", esc(&words::timing(f)));
        w!(h, "<td>{}</td>", esc(f.join.as_deref().unwrap_or("none")));
        w!(h, "<td>{}</td></tr>\n", gate_cell(view, standing));
    }
    h.push_str("</tbody>\n</table></div>\n</section>\n");
}

fn gate_cell(view: &ScanView<'_>, standing: &Standing) -> String {
    match standing {
        Standing::Fails => "<span class=\"standing fails\">fails</span>".to_owned(),
        Standing::Passes => "<span class=\"standing\">passes</span>".to_owned(),
        Standing::Known => "<span class=\"standing\">in baseline</span>".to_owned(),
        Standing::Suppressed { .. } => match view.allow_rule(standing) {
            Some(rule) => format!(
                "<span class=\"standing\">suppressed</span> until {}: {}",
                esc(&rule.until),
                esc(&rule.reason)
            ),
            None => "<span class=\"standing\">suppressed</span>".to_owned(),
        },
    }
}

/// The cancellation protocols of the tool calls in the aborted turns: per tool and per
/// downstream service, how many calls had each mechanism.
fn protocols(view: &ScanView<'_>, h: &mut String) {
    h.push_str(
        "<section id=\"protocols\">\n<h2>Cancellation protocols</h2>\n<p class=\"meta\">Tool calls of the aborted turns that had each mechanism: the server checked for its client before committing (check), a deadline header, an out-of-band cancel after the abort, an idempotency key, a compensation after a late write. <strong>none</strong> marks late writes with no check, deadline or cancel.</p>\n",
    );
    for (heading, rows) in [
        ("Tool", view.audit.protocols_by_tool()),
        ("Service", view.audit.protocols_by_service()),
    ] {
        w!(
            h,
            "<div class=\"scroll\"><table class=\"protocols\">\n<thead><tr><th>{heading}</th><th>Calls</th><th>Late writes</th><th>Check</th><th>Deadline</th><th>Cancel</th><th>Idempotency key</th><th>Compensated</th><th>Protocol</th></tr></thead>\n<tbody>\n"
        );
        for row in &rows {
            let protocol = if row.has_protocol() {
                "yes"
            } else if row.late_writes > 0 {
                "<strong class=\"standing fails\">none</strong>"
            } else {
                "none"
            };
            w!(
                h,
                "<tr><td><code>{}</code></td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{protocol}</td></tr>\n",
                esc(&row.name),
                row.calls,
                row.late_writes,
                row.commit_check,
                row.deadline,
                row.cancel,
                row.idempotency_key,
                row.compensated
            );
        }
        h.push_str("</tbody>\n</table></div>\n");
    }
    h.push_str("</section>\n");
}

/// What each category means and what to do about it: the colour legend too.
fn categories(view: &ScanView<'_>, h: &mut String) {
    h.push_str(
        "<section id=\"categories\">\n<h2>What the categories mean</h2>\n<div class=\"scroll\"><table class=\"legend\">\n<thead><tr><th>Category</th><th>Findings</th><th>Late write?</th><th>What happened</th><th>What to do</th></tr></thead>\n<tbody>\n",
    );
    for category in Category::ALL {
        let late = match category {
            c if c.is_late() => "<strong>yes</strong>",
            Category::PreCommitAbort => "no (safe)",
            _ => "unknown",
        };
        w!(
            h,
            "<tr><td>{}</td><td class=\"num\">{}</td><td>{late}</td><td>{}</td><td>{}</td></tr>\n",
            badge(category),
            count(view, category),
            esc(category.description()),
            esc(category.help())
        );
    }
    h.push_str("</tbody>\n</table></div>\n</section>\n");
}

fn conversations(view: &ScanView<'_>, h: &mut String) {
    let standings: Vec<(&Finding, &Standing)> = view.findings().collect();
    let timelines: HashMap<&str, &Timeline> = view
        .timelines
        .iter()
        .map(|t| (t.conversation.as_str(), t))
        .collect();
    for (i, (conversation, indices)) in conversation_order(view).into_iter().enumerate() {
        let numbered: Vec<(usize, (&Finding, &Standing))> =
            indices.iter().map(|&n| (n, standings[n])).collect();
        let mut categories: Vec<&str> = Vec::new();
        for (_, (f, _)) in &numbered {
            if !categories.contains(&f.category.as_str()) {
                categories.push(f.category.as_str());
            }
        }
        let timeline = timelines.get(conversation).copied();
        w!(
            h,
            "<section id=\"c{}\" class=\"conversation\" data-categories=\"{}\">\n<h2>Conversation <code>{}</code></h2>\n",
            i + 1,
            categories.join(" "),
            esc(conversation)
        );
        if let Some(t) = timeline {
            w!(
                h,
                "<p class=\"meta\">{} turns · {}</p>\n",
                t.turns.len(),
                if t.has_abort {
                    format!(
                        "first abort at {}; the timeline's times are relative to it",
                        rfc3339(t.origin)
                    )
                } else {
                    format!(
                        "no abort recorded; the timeline's times are relative to the first turn's start at {}",
                        rfc3339(t.origin)
                    )
                }
            );
        }
        for (n, (f, standing)) in numbered {
            finding(view, n + 1, f, standing, h);
        }
        if let Some(t) = timeline {
            timeline_figure(t, i + 1, h);
        }
        h.push_str("</section>\n");
    }
}

fn finding(view: &ScanView<'_>, n: usize, f: &Finding, standing: &Standing, h: &mut String) {
    let c = f.category.as_str();
    w!(
        h,
        "<article id=\"f{n}\" class=\"finding cat-{c}{}\" data-category=\"{c}\">\n",
        if f.category.is_late() { " late" } else { "" }
    );
    w!(
        h,
        "<h3><span class=\"fnum\">{n}.</span> {} {}{}</h3>\n",
        badge(f.category),
        esc(&words::headline(f)),
        if f.ambiguous {
            " <span class=\"amb\">ambiguous</span>"
        } else {
            ""
        }
    );
    w!(
        h,
        "<p>{}</p>\n<ul class=\"evidence\">\n",
        esc(&words::sentence(f))
    );
    w!(
        h,
        "<li>{}; write {}; joined by {}</li>\n",
        esc(&words::abort(f)),
        esc(&words::timing(f)),
        esc(f.join.as_deref().unwrap_or("nothing"))
    );
    if let Some(id) = &f.tool_call.tool_call_id {
        w!(
            h,
            "<li>tool call <code>{}</code> <code>{}</code> in trace <code>{}</code></li>\n",
            esc(&f.tool_call.name),
            esc(id),
            f.trace_id
        );
    } else {
        w!(
            h,
            "<li>tool call <code>{}</code> in trace <code>{}</code></li>\n",
            esc(&f.tool_call.name),
            f.trace_id
        );
    }
    for line in &f.evidence {
        w!(h, "<li>{}</li>\n", esc(line));
    }
    h.push_str("</ul>\n");
    w!(
        h,
        "<div class=\"prevention\"><p><strong>What would have stopped it:</strong> {}</p>\n<ul>\n",
        esc(&words::prevention(f))
    );
    for detail in words::prevention_details(f) {
        w!(h, "<li>{}</li>\n", esc(&detail));
    }
    h.push_str("</ul></div>\n");
    let (input, line) = words::origin(f);
    w!(
        h,
        "<p class=\"where\"><span class=\"standing{}\">{}</span> · read from <code>{}:{line}</code> · finding <code>{}</code> · signature <code>{}</code></p>\n",
        if *standing == Standing::Fails {
            " fails"
        } else {
            ""
        },
        esc(&words::standing(standing, view.allow_rule(standing))),
        esc(input),
        esc(&f.id),
        esc(&f.signature)
    );
    w!(
        h,
        "<details><summary>What to do</summary><p>{}</p></details>\n</article>\n",
        esc(f.category.help())
    );
}

fn diagnostics(view: &ScanView<'_>, h: &mut String) {
    let all: Vec<_> = view.ingested.diagnostics().collect();
    if all.is_empty() {
        return;
    }
    w!(
        h,
        "<section id=\"diagnostics\">\n<h2>Diagnostics ({})</h2>\n<p>Lines of the inputs that could not be read as they should; each is explained in <code>docs/diagnostics.md</code>.</p>\n<div class=\"scroll\"><table>\n<thead><tr><th>Input</th><th>Line</th><th>Severity</th><th>Code</th><th>Message</th></tr></thead>\n<tbody>\n",
        all.len()
    );
    for d in all.iter().take(DIAGNOSTICS_LISTED) {
        let severity = match d.severity {
            crate::model::Severity::Warning => "warning",
            crate::model::Severity::Error => "error",
        };
        w!(
            h,
            "<tr><td><code>{}</code></td><td class=\"num\">{}</td><td>{severity}</td><td><code>{}</code></td><td>{}</td></tr>\n",
            esc(&d.input),
            d.line.map(|l| l.to_string()).unwrap_or_default(),
            d.code.as_str(),
            esc(&d.message)
        );
    }
    h.push_str("</tbody>\n</table></div>\n");
    if all.len() > DIAGNOSTICS_LISTED {
        w!(
            h,
            "<p>… and {} more: <code>--format json</code> lists them all.</p>\n",
            all.len() - DIAGNOSTICS_LISTED
        );
    }
    h.push_str("</section>\n");
}

fn inputs(view: &ScanView<'_>, h: &mut String) {
    let inputs = &view.ingested.inputs;
    if inputs.is_empty() {
        return;
    }
    w!(
        h,
        "<section id=\"inputs\">\n<details><summary>Inputs ({})</summary>\n<div class=\"scroll\"><table>\n<thead><tr><th>Input</th><th>Format</th><th>Spans</th><th>Vendor events</th><th>Diagnostics</th></tr></thead>\n<tbody>\n",
        inputs.len()
    );
    for input in inputs {
        w!(
            h,
            "<tr><td><code>{}</code></td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>\n",
            esc(&input.path),
            esc(&input.format_label()),
            input.counts.spans,
            input.counts.vendor_events,
            input.diagnostics.len()
        );
    }
    h.push_str("</tbody>\n</table></div>\n</details>\n</section>\n");
}

/// Per category: the mark's fill, a darker shade for text on white (4.5:1 or more), and a
/// light tint for badges (Okabe–Ito hues, told apart by colour-blind readers).
fn colours(category: Category) -> (&'static str, &'static str, &'static str) {
    match category {
        Category::PreCommitAbort => ("#009e73", "#00704f", "#dcf3eb"),
        Category::ClientGone => ("#d55e00", "#a34400", "#fbe3d1"),
        Category::LateQueued => ("#e69f00", "#8a5a00", "#fcefcf"),
        Category::DispatchedAfterAbort => ("#cc79a7", "#94376b", "#f6e2ee"),
        Category::Unverified => ("#8a8f98", "#4d525a", "#e9ebee"),
    }
}

fn style() -> String {
    let mut css = String::from(STYLE);
    for category in Category::ALL {
        let (fill, text, tint) = colours(category);
        let c = category.as_str();
        w!(
            css,
            ".badge.c-{c}{{background:{tint};border-color:{fill};color:{text}}}\
             .swatch.c-{c}{{background:{fill}}}\
             .c-{c}.commit{{fill:{fill}}}\
             .tl text.c-{c}{{fill:{text}}}\
             .tl .hit.c-{c}{{stroke:{fill}}}\
             .hide-{c} .cat-{c}{{display:none}}\n"
        );
    }
    css
}

const STYLE: &str = include_str!("page.css");

/// The page's one script: shows the category filters and makes them hide and show the findings'
/// rows, their evidence, their timeline marks and the conversations left without any. It reads
/// only the `data-` attributes the renderer writes, and marks the page as scripted.
const SCRIPT: &str = include_str!("page.js");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_names_the_sha256_of_the_inline_text() {
        assert_eq!(
            csp_hash(""),
            "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
        assert!(!style().contains('<') && !SCRIPT.contains("</"));
    }
}

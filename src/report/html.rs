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

use super::escape::html as esc;
use super::timeline::{Entry, TurnTimeline, What};
use super::{ScanView, Timeline, words};
use crate::classify::{Finding, Standing};
use crate::model::time::rfc3339;
use crate::model::{Category, Role, SpanKind};
use crate::util::units::offset;

/// Appends formatted text to a `String` (which cannot fail).
macro_rules! w {
    ($dst:expr, $($arg:tt)*) => {
        let _ = write!($dst, $($arg)*);
    };
}

/// How many rows a turn's lane draws at most; the rest are counted in a last row.
const LANE_ROWS: usize = 60;
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

// ---------------------------------------------------------------------------------------------
// The timeline as SVG.

/// The SVG's geometry, in CSS pixels.
const SVG_WIDTH: f64 = 1240.0;
/// The left column, where each row's label goes.
const LABEL_WIDTH: f64 = 372.0;
const PLOT_LEFT: f64 = LABEL_WIDTH + 20.0;
/// Room right of the plot for the labels of what ends there (and spans that never ended).
const PLOT_RIGHT: f64 = SVG_WIDTH - 150.0;
const AXIS_HEIGHT: f64 = 40.0;
const LANE_HEADER: f64 = 24.0;
const ROW: f64 = 20.0;
/// A monospace character at the labels' 11px size, to clip text to its column.
const CHAR_WIDTH: f64 = 6.7;
/// The same at the 10px of durations, and the 10.5px bold of category tags.
const SMALL_CHAR: f64 = 6.1;
const TAG_CHAR: f64 = 6.5;
const INDENT: f64 = 14.0;
/// The deepest indentation drawn; a deeper span says its depth.
const MAX_INDENT: usize = 12;

/// A number for an SVG attribute: one decimal is finer than a pixel and always the same text.
fn px(v: f64) -> String {
    format!("{v:.1}")
}

/// `text` cut to `max` characters, with `…` when cut.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// The rows a lane draws: all of them when they fit, else the abort, commits, vendor events,
/// tool calls and the spans that show findings first, then the earliest others, in time order.
fn lane_entries(entries: &[Entry]) -> Vec<&Entry> {
    if entries.len() <= LANE_ROWS {
        return entries.iter().collect();
    }
    let key = |e: &Entry| match &e.what {
        What::Span {
            tool_call,
            findings,
            ..
        } => u8::from(!*tool_call && findings.is_empty()),
        _ => 0,
    };
    let mut chosen: Vec<(usize, &Entry)> = entries.iter().enumerate().collect();
    chosen.sort_by_key(|(i, e)| (key(e), *i));
    chosen.truncate(LANE_ROWS);
    chosen.sort_by_key(|(i, _)| *i);
    chosen.into_iter().map(|(_, e)| e).collect()
}

/// Maps times to the plot's x.
struct Scale {
    start: u64,
    end: u64,
}

/// The times an entry covers: its start, and its end when it has one.
fn extent(entry: &Entry) -> (u64, u64) {
    match &entry.what {
        What::Span { end: Some(end), .. } => (entry.time, (*end).max(entry.time)),
        _ => (entry.time, entry.time),
    }
}

/// Whether a lane shows what the report is about: an abort, a commit, a span with a finding.
fn lane_matters(entries: &[&Entry]) -> bool {
    entries.iter().any(|e| match &e.what {
        What::Abort { .. } | What::Write { .. } => true,
        What::Span { findings, .. } => !findings.is_empty(),
        What::VendorEvent { .. } => false,
    })
}

impl Scale {
    /// The time window of a conversation's timeline: what the lanes that matter draw, and the
    /// origin; the other lanes too unless they would stretch it more than threefold (turns
    /// minutes apart would squash the aborted one into a few pixels), in which case what
    /// falls outside is drawn at the window's edge with its time.
    fn fit(t: &Timeline, lanes: &[(&TurnTimeline, Vec<&Entry>)]) -> Option<Scale> {
        let range = |lanes: &mut dyn Iterator<Item = &(&TurnTimeline, Vec<&Entry>)>| {
            let mut range: Option<(u64, u64)> = t.has_abort.then_some((t.origin, t.origin));
            for (_, entries) in lanes {
                for e in entries {
                    let (a, b) = extent(e);
                    range = Some(match range {
                        Some((s, f)) => (s.min(a), f.max(b)),
                        None => (a, b),
                    });
                }
            }
            range
        };
        let all = range(&mut lanes.iter())?;
        let (start, end) = match range(&mut lanes.iter().filter(|(_, e)| lane_matters(e))) {
            Some(window) if (all.1 - all.0) / 3 > window.1 - window.0 => window,
            _ => all,
        };
        let pad = ((end - start) / 40).max(500_000);
        Some(Scale {
            start: start.saturating_sub(pad),
            end: end.saturating_add(pad),
        })
    }

    fn x(&self, time: u64) -> f64 {
        let span = (self.end - self.start) as f64;
        let t = time.clamp(self.start, self.end) - self.start;
        PLOT_LEFT + (t as f64 / span) * (PLOT_RIGHT - PLOT_LEFT)
    }
}

/// A step between ticks of about a tenth of `range` ns, from 1, 2, 5 × 10ⁿ.
fn tick_step(range: u64) -> u64 {
    let mut step: u64 = 1;
    loop {
        for m in [1, 2, 5] {
            let s = step.saturating_mul(m);
            if range / s <= 8 {
                return s.max(1);
            }
        }
        step = step.saturating_mul(10);
    }
}

fn timeline_figure(t: &Timeline, anchor: usize, h: &mut String) {
    let lanes: Vec<(&TurnTimeline, Vec<&Entry>)> = t
        .turns
        .iter()
        .map(|turn| (turn, lane_entries(&turn.entries)))
        .collect();
    let Some(scale) = Scale::fit(t, &lanes) else {
        return;
    };

    let rows: usize = lanes
        .iter()
        .map(|(turn, shown)| shown.len() + usize::from(shown.len() < turn.entries.len()))
        .sum();
    let height = AXIS_HEIGHT + lanes.len() as f64 * LANE_HEADER + rows as f64 * ROW + 8.0;
    w!(
        h,
        "<figure class=\"timeline\">\n<div class=\"scroll\"><svg class=\"tl\" width=\"{w}\" height=\"{hh}\" viewBox=\"0 0 {w} {hh}\" role=\"img\" aria-label=\"Timeline of conversation {}\">\n",
        esc(&t.conversation),
        w = px(SVG_WIDTH),
        hh = px(height),
    );

    // The axis and its grid, relative to the origin.
    let step = tick_step(scale.end - scale.start);
    let first = i128::from(scale.start) - i128::from(t.origin);
    let mut tick = first.div_euclid(i128::from(step)) * i128::from(step);
    if tick < first {
        tick += i128::from(step);
    }
    h.push_str("<g class=\"axis\">");
    w!(
        h,
        "<line class=\"sep\" x1=\"{x}\" y1=\"0\" x2=\"{x}\" y2=\"{}\"/>",
        px(height),
        x = px(LABEL_WIDTH + 8.0)
    );
    let last = i128::from(scale.end) - i128::from(t.origin);
    while tick <= last {
        let time = (i128::from(t.origin) + tick) as u64;
        let x = px(scale.x(time));
        w!(
            h,
            "<line class=\"grid\" x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\"/><text x=\"{x}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            px(AXIS_HEIGHT - 6.0),
            px(height),
            px(AXIS_HEIGHT - 10.0),
            if tick == 0 {
                "0".to_owned()
            } else {
                offset(tick)
            }
        );
        tick += i128::from(step);
    }
    w!(
        h,
        "<text class=\"axis-title\" x=\"8\" y=\"{}\">{}</text>",
        px(AXIS_HEIGHT - 10.0),
        if t.has_abort {
            "time from the abort"
        } else {
            "time from the first turn"
        }
    );
    h.push_str("</g>\n");

    // The lanes.
    let mut y = AXIS_HEIGHT;
    let mut aborts: Vec<(u64, usize, String, bool)> = Vec::new();
    for (n, (turn, shown)) in lanes.iter().enumerate() {
        let lane_rows = shown.len() + usize::from(shown.len() < turn.entries.len());
        let header = format!("Turn {} · {} · trace {}", n + 1, turn.title, turn.trace_id);
        w!(
            h,
            "<g class=\"lane\"><title>{}</title><rect x=\"0\" y=\"{}\" width=\"{}\" height=\"{}\"/><text x=\"8\" y=\"{}\">{}</text></g>\n",
            esc(&header),
            px(y),
            px(SVG_WIDTH),
            px(LANE_HEADER + lane_rows as f64 * ROW),
            px(y + 16.0),
            esc(&clip(&header, ((SVG_WIDTH - 16.0) / 7.2) as usize))
        );
        y += LANE_HEADER;
        for entry in shown {
            if let What::Abort { signal, inferred } = &entry.what {
                aborts.push((entry.time, n + 1, signal.clone(), *inferred));
            }
            row(t, &scale, entry, y, h);
            y += ROW;
        }
        if shown.len() < turn.entries.len() {
            w!(
                h,
                "<text class=\"more\" x=\"8\" y=\"{}\">… {} more spans not drawn (<tspan class=\"mono\">abortaudit explain</tspan> lists every one)</text>\n",
                px(y + 14.0),
                turn.entries.len() - shown.len()
            );
            y += ROW;
        }
    }

    // The aborts, on top, across the whole conversation.
    aborts.sort_by_key(|a| a.0);
    aborts.dedup_by_key(|a| a.0);
    let several = aborts.len() > 1;
    for (time, turn, signal, inferred) in &aborts {
        let x = px(scale.x(*time));
        let label = if several {
            format!("STOP turn {turn}")
        } else {
            "STOP".to_owned()
        };
        w!(
            h,
            "<g class=\"abort\"><title>{}</title><line x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\"/><text x=\"{x}\" y=\"11\" text-anchor=\"middle\">{label}</text></g>\n",
            esc(&format!(
                "abort of turn {turn} at {} ({}): {signal}{}",
                rfc3339(*time),
                t.offset(*time),
                if *inferred { " (inferred)" } else { "" }
            )),
            px(15.0),
            px(height - 4.0),
        );
    }
    h.push_str("</svg></div>\n");
    legend(t, anchor, h);
    h.push_str("</figure>\n");
}

/// One row of a lane: its label in the left column, its mark on the plot, a tooltip with all.
fn row(t: &Timeline, scale: &Scale, entry: &Entry, y: f64, h: &mut String) {
    let indent = 8.0 + entry.depth.min(MAX_INDENT) as f64 * INDENT;
    let room = ((LABEL_WIDTH - indent) / CHAR_WIDTH).max(4.0) as usize;
    let x = scale.x(entry.time);
    let mid = y + ROW / 2.0;
    let at = t.offset(entry.time);
    match &entry.what {
        What::Span {
            name,
            service,
            kind,
            end,
            http_status,
            error,
            linked_from,
            tool_call,
            findings,
        } => {
            let mut tip = format!("{name} [{service}]");
            if *kind != SpanKind::Internal && *kind != SpanKind::Unspecified {
                tip.push(' ');
                tip.push_str(kind.as_str());
            }
            if let Some(status) = http_status {
                tip.push_str(&format!(" {status}"));
            }
            if *error {
                tip.push_str(" ERROR");
            }
            if *tool_call {
                tip.push_str(" · tool call");
            }
            tip.push_str(&format!(" · starts {at}"));
            match end {
                Some(e) => tip.push_str(&format!(
                    ", ends {}, lasts {}",
                    t.offset(*e),
                    offset(i128::from(*e) - i128::from(entry.time)).trim_start_matches('+')
                )),
                None => tip.push_str(", never ended"),
            }
            if let Some((trace, from)) = linked_from {
                tip.push_str(&format!(" · trace {trace} linked to {from}"));
            }
            for (category, ambiguous) in findings {
                tip.push_str(&format!(
                    " · shows a {category} finding{}",
                    if *ambiguous { " (ambiguous)" } else { "" }
                ));
            }
            w!(
                h,
                "<g class=\"row\"><title>{}</title>{}",
                esc(&tip),
                row_background(y)
            );
            // The label: the name, then the service when it fits.
            let service_text = format!(" [{service}]");
            let mut name = if linked_from.is_some() {
                format!("↪ {name}")
            } else {
                name.clone()
            };
            if entry.depth > MAX_INDENT {
                name = format!("(depth {}) {name}", entry.depth);
            }
            let (name_text, service_text) =
                if name.chars().count() + service_text.chars().count() <= room {
                    (name, service_text)
                } else {
                    (clip(&name, room), String::new())
                };
            w!(
                h,
                "<text x=\"{}\" y=\"{}\"{}>{}<tspan class=\"svc\">{}</tspan></text>",
                px(indent),
                px(mid + 4.0),
                if *tool_call {
                    " class=\"tool-label\""
                } else {
                    ""
                },
                esc(&name_text),
                esc(&service_text)
            );
            if let Some(note) = outside(t, scale, entry, mid) {
                w!(h, "{note}</g>\n");
                return;
            }
            let mut class = String::from("bar");
            if *tool_call {
                class.push_str(" tool");
            }
            if *error {
                class.push_str(" err");
            }
            let (x2, after) = match end {
                Some(e) => {
                    let x2 = scale.x(*e).max(x + 2.0);
                    (
                        x2,
                        offset(i128::from(*e) - i128::from(entry.time))
                            .trim_start_matches('+')
                            .to_owned(),
                    )
                }
                None => {
                    class.push_str(" open");
                    (PLOT_RIGHT + 12.0, "never ended".to_owned())
                }
            };
            w!(
                h,
                "<rect class=\"{class}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"12\" rx=\"2\"/>",
                px(x),
                px(mid - 6.0),
                px(x2 - x)
            );
            if end.is_none() {
                // An arrowhead: it goes on.
                w!(
                    h,
                    "<path class=\"arrow\" d=\"M{} {}l7 6l-7 6z\"/>",
                    px(x2),
                    px(mid - 6.0)
                );
            }
            let mut label_x = x2 + if end.is_none() { 11.0 } else { 5.0 };
            let mut marks = String::new();
            for (category, _) in findings {
                marks.push_str(&format!(
                    "<g class=\"mark cat-{c}\"><rect class=\"hit c-{c}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"16\" rx=\"3\"/></g>",
                    px(x - 2.0),
                    px(mid - 8.0),
                    px(x2 - x + 4.0),
                    c = category.as_str()
                ));
            }
            h.push_str(&marks);
            let after_width = after.chars().count() as f64 * SMALL_CHAR;
            if label_x + after_width <= SVG_WIDTH - 2.0 {
                w!(
                    h,
                    "<text class=\"dur\" x=\"{}\" y=\"{}\">{}</text>",
                    px(label_x),
                    px(mid + 4.0),
                    esc(&after)
                );
                label_x += after_width + 6.0;
            }
            for (category, ambiguous) in findings {
                let text = format!(
                    "◀ {category}{}",
                    if *ambiguous { " (ambiguous)" } else { "" }
                );
                let width = text.chars().count() as f64 * TAG_CHAR;
                let (tx, anchor) = if label_x + width <= SVG_WIDTH - 2.0 {
                    (label_x, "start")
                } else {
                    (x - 6.0, "end")
                };
                w!(
                    h,
                    "<g class=\"mark cat-{c}\"><text class=\"c-{c} tag\" x=\"{}\" y=\"{}\" text-anchor=\"{anchor}\">{}</text></g>",
                    px(tx),
                    px(mid + 4.0),
                    esc(&text),
                    c = category.as_str()
                );
                if anchor == "start" {
                    label_x += width + 6.0;
                }
            }
            h.push_str("</g>\n");
        }
        What::VendorEvent {
            vendor,
            id,
            kind,
            role,
            join,
        } => {
            let role_word = role.map_or("no role", Role::as_str);
            let tip = format!("{vendor} event {id} {kind} ({role_word}) at {at} · {join}");
            w!(
                h,
                "<g class=\"row\"><title>{}</title>{}",
                esc(&tip),
                row_background(y)
            );
            w!(
                h,
                "<text x=\"{}\" y=\"{}\">{}</text>",
                px(indent),
                px(mid + 4.0),
                esc(&clip(&format!("◆ {vendor} {kind}"), room))
            );
            if let Some(note) = outside(t, scale, entry, mid) {
                w!(h, "{note}</g>\n");
                return;
            }
            w!(
                h,
                "<path class=\"vendor{}\" d=\"M{} {}l6 6l-6 6l-6 -6z\"/>",
                if *role == Some(Role::Commit) {
                    " commit"
                } else {
                    ""
                },
                px(x),
                px(mid - 6.0)
            );
            w!(
                h,
                "<text class=\"dur\" {}>{}</text></g>\n",
                beside(x + 10.0, x - 10.0, mid, role_word),
                role_word
            );
        }
        What::Abort { signal, inferred } => {
            let tip = format!(
                "abort at {} by {signal}{}",
                rfc3339(entry.time),
                if *inferred { " (inferred)" } else { "" }
            );
            w!(
                h,
                "<g class=\"row stop\"><title>{}</title>{}",
                esc(&tip),
                row_background(y)
            );
            w!(
                h,
                "<text x=\"{}\" y=\"{}\">{}</text>",
                px(indent),
                px(mid + 4.0),
                esc(&clip(
                    &format!(
                        "■ STOP{} · {signal}",
                        if *inferred { " (inferred)" } else { "" }
                    ),
                    room
                ))
            );
            w!(
                h,
                "<rect class=\"stop-mark\" x=\"{}\" y=\"{}\" width=\"10\" height=\"10\"/>",
                px(x - 5.0),
                px(mid - 5.0)
            );
            w!(
                h,
                "<text class=\"dur\" {}>{at}</text></g>\n",
                beside(x + 10.0, x - 10.0, mid, &at)
            );
        }
        What::Write {
            category,
            operation,
            service,
            inferred,
        } => {
            let verb = if *category == Category::PreCommitAbort {
                "rolled back"
            } else {
                "committed"
            };
            let tip = format!(
                "{verb} {operation} [{service}] at {at} ({}) · {category}{}",
                rfc3339(entry.time),
                if *inferred {
                    " · time inferred from the server span's end"
                } else {
                    ""
                }
            );
            let c = category.as_str();
            w!(
                h,
                "<g class=\"row mark cat-{c}\"><title>{}</title>{}",
                esc(&tip),
                row_background(y)
            );
            w!(
                h,
                "<text x=\"{}\" y=\"{}\">{}</text>",
                px(indent),
                px(mid + 4.0),
                esc(&clip(&format!("● {verb}: {operation} [{service}]"), room))
            );
            w!(
                h,
                "<circle class=\"commit c-{c}\" cx=\"{}\" cy=\"{}\" r=\"6\"/>",
                px(x),
                px(mid)
            );
            let label = format!("{c} {at}{}", if *inferred { " (inferred)" } else { "" });
            w!(
                h,
                "<text class=\"c-{c} tag\" {}>{}</text></g>\n",
                beside(x + 10.0, x - 10.0, mid, &label),
                esc(&label)
            );
        }
    }
}

/// What a row draws for an entry the time window leaves out: its time, at the window's edge.
fn outside(t: &Timeline, scale: &Scale, entry: &Entry, mid: f64) -> Option<String> {
    let (start, end) = extent(entry);
    let y = px(mid + 4.0);
    if end < scale.start {
        Some(format!(
            "<text class=\"dur\" x=\"{}\" y=\"{y}\">◂ {} (before this window)</text>",
            px(PLOT_LEFT + 2.0),
            t.offset(start)
        ))
    } else if start > scale.end {
        Some(format!(
            "<text class=\"dur\" x=\"{}\" y=\"{y}\" text-anchor=\"end\">(after this window) {} ▸</text>",
            px(PLOT_RIGHT),
            t.offset(start)
        ))
    } else {
        None
    }
}

/// A row's full-width background, which takes the pointer for the tooltip.
fn row_background(y: f64) -> String {
    format!(
        "<rect class=\"bg\" x=\"0\" y=\"{}\" width=\"{}\" height=\"{}\"/>",
        px(y),
        px(SVG_WIDTH),
        px(ROW)
    )
}

/// The position of a short label beside a mark: right of it when it fits, else left of it.
fn beside(right: f64, left: f64, mid: f64, text: &str) -> String {
    let width = text.chars().count() as f64 * TAG_CHAR;
    if right + width <= SVG_WIDTH - 2.0 {
        format!("x=\"{}\" y=\"{}\"", px(right), px(mid + 4.0))
    } else {
        format!(
            "x=\"{}\" y=\"{}\" text-anchor=\"end\"",
            px(left),
            px(mid + 4.0)
        )
    }
}

/// The timeline's key: what each mark means, and the colours of the categories it shows.
fn legend(t: &Timeline, anchor: usize, h: &mut String) {
    let mut shown: Vec<Category> = Vec::new();
    for turn in &t.turns {
        for entry in &turn.entries {
            let categories: Vec<Category> = match &entry.what {
                What::Span { findings, .. } => findings.iter().map(|(c, _)| *c).collect(),
                What::Write { category, .. } => vec![*category],
                _ => Vec::new(),
            };
            for c in categories {
                if !shown.contains(&c) {
                    shown.push(c);
                }
            }
        }
    }
    shown.sort();
    let swatch = |body: &str| {
        format!(
            "<svg class=\"sw\" width=\"26\" height=\"14\" viewBox=\"0 0 26 14\" aria-hidden=\"true\">{body}</svg>"
        )
    };
    w!(h, "<figcaption id=\"c{anchor}-key\">\n");
    let items = [
        (
            swatch("<rect class=\"bar\" x=\"1\" y=\"2\" width=\"24\" height=\"10\" rx=\"2\"/>"),
            "span (indented under what caused it)",
        ),
        (
            swatch(
                "<rect class=\"bar tool\" x=\"1\" y=\"2\" width=\"24\" height=\"10\" rx=\"2\"/>",
            ),
            "tool call",
        ),
        (
            swatch("<rect class=\"bar err\" x=\"1\" y=\"2\" width=\"24\" height=\"10\" rx=\"2\"/>"),
            "error status",
        ),
        (
            swatch(
                "<rect class=\"bar open\" x=\"1\" y=\"2\" width=\"17\" height=\"10\" rx=\"2\"/><path class=\"arrow\" d=\"M18 1l7 6l-7 6z\"/>",
            ),
            "never ended",
        ),
        (
            swatch("<path class=\"vendor commit\" d=\"M13 1l6 6l-6 6l-6 -6z\"/>"),
            "vendor event (filled: a commit)",
        ),
        (
            swatch("<text x=\"4\" y=\"11\">↪</text>"),
            "reached through a span link",
        ),
        (
            swatch("<line class=\"abort-key\" x1=\"13\" y1=\"0\" x2=\"13\" y2=\"14\"/>"),
            "the user's Stop",
        ),
    ];
    for (svg, text) in items {
        w!(h, "<span class=\"key\">{svg}{text}</span>\n");
    }
    for c in shown {
        w!(
            h,
            "<span class=\"key mark cat-{c}\">{}commit, or span showing it: {c}</span>\n",
            swatch(&format!(
                "<circle class=\"commit c-{c}\" cx=\"13\" cy=\"7\" r=\"6\"/>"
            )),
            c = c.as_str()
        );
    }
    h.push_str("<span class=\"key hint\">Hover a row for its full text.</span>\n</figcaption>\n");
}

// ---------------------------------------------------------------------------------------------
// The style and the script: constants of the renderer, never input text.

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

const STYLE: &str = r#"
:root{color-scheme:light;--fg:#1c2128;--muted:#59636e;--line:#d1d9e0;--soft:#f6f8fa;--link:#0a58b8}
*{box-sizing:border-box}
[hidden]{display:none !important}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:#fff;color:var(--fg);font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue","Noto Sans","Liberation Sans",Arial,sans-serif}
.wrap{max-width:1320px;margin:0 auto;padding:24px 28px 40px}
h1{font-size:1.6rem;line-height:1.25;margin:0 0 14px}
h2{font-size:1.25rem;margin:36px 0 12px;padding-bottom:6px;border-bottom:1px solid var(--line)}
h3{font-size:1.02rem;margin:0 0 6px;line-height:1.4}
code,.mono{font-family:ui-monospace,SFMono-Regular,"SF Mono",Menlo,Consolas,"Liberation Mono","DejaVu Sans Mono",monospace;font-size:.86em;overflow-wrap:break-word}
a{color:var(--link)}
a code{color:inherit}
.verdict{display:flex;flex-wrap:wrap;gap:6px 14px;align-items:baseline;padding:12px 16px;border:1px solid;border-left-width:6px;border-radius:6px}
.verdict strong{font-size:1.2rem}
.verdict.failed{background:#fdeceb;border-color:#c0392b;color:#7d1d12}
.verdict.passed{background:#e7f4ec;border-color:#1e7a46;color:#124d2c}
.verdict.off{background:var(--soft);border-color:var(--line);color:var(--muted)}
.counts{display:flex;flex-wrap:wrap;gap:10px;margin:16px 0 12px}
.counts div{flex:1 1 118px;border:1px solid var(--line);border-radius:6px;padding:6px 12px}
.counts dt{font-size:.72rem;letter-spacing:.04em;text-transform:uppercase;color:var(--muted)}
.counts dd{margin:0;font-size:1.45rem;font-weight:650;font-variant-numeric:tabular-nums}
.counts dd small{font-size:.8rem;font-weight:400;color:var(--muted);white-space:nowrap}
.counts .bad dd{color:#b42318}
.summary{margin:0;padding-left:20px;color:var(--muted)}
.warn{color:#8a4b00}
.filters{position:sticky;top:0;z-index:5;display:flex;flex-wrap:wrap;gap:6px 8px;align-items:center;margin:18px 0 0;padding:10px 0;background:#fff;border-bottom:1px solid var(--line)}
.flabel{font-weight:600;margin-right:2px}
.chip{display:inline-flex;align-items:center;gap:6px;padding:3px 10px 3px 6px;border:1px solid var(--line);border-radius:999px;font-size:.88rem;cursor:pointer;user-select:none}
.chip:has(input:not(:checked)){opacity:.55;text-decoration:line-through}
.chip .n{color:var(--muted);font-variant-numeric:tabular-nums}
.swatch{display:inline-block;width:12px;height:12px;border-radius:50%}
.filters button{font:inherit;font-size:.85rem;padding:3px 10px;border:1px solid var(--line);border-radius:6px;background:var(--soft);color:var(--fg);cursor:pointer}
.filters button:hover{background:#eaeef2}
#shown{margin-left:auto;color:var(--muted);font-size:.88rem}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.88rem}
th,td{padding:6px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:var(--soft);font-weight:600;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.nowrap{white-space:nowrap}
tbody tr:hover{background:#f9fafb}
tr.late td:first-child{box-shadow:inset 4px 0 0 #b42318}
.muted{color:var(--muted)}
code.id{color:var(--muted)}
.badge{display:inline-block;padding:0 8px;border:1px solid;border-radius:999px;font-size:.8rem;font-weight:600;white-space:nowrap;line-height:1.6}
.amb{display:inline-block;padding:0 6px;border:1px dashed #8a5a00;border-radius:4px;font-size:.75rem;color:#8a5a00;white-space:nowrap}
.standing.fails{color:#b42318;font-weight:650}
.legend td:nth-child(4),.legend td:nth-child(5){min-width:16em}
.conversation{margin-top:8px}
.meta{color:var(--muted);margin:-4px 0 14px}
.finding{border:1px solid var(--line);border-left:5px solid #8a8f98;border-radius:6px;padding:12px 16px;margin:0 0 14px}
.finding.late{border-left-color:#b42318}
.fnum{color:var(--muted)}
.evidence{margin:8px 0;padding-left:20px}
.evidence li{margin:2px 0}
.prevention{margin:8px 0;padding:6px 12px;background:var(--soft);border-radius:6px}
.prevention p{margin:0}
.prevention ul{margin:4px 0 0;padding-left:20px;font-size:.88rem;color:var(--muted)}
table.protocols{margin-bottom:12px}
.where{color:var(--muted);font-size:.88rem;margin:6px 0}
details summary{cursor:pointer;color:var(--link)}
details p{margin:6px 0 0}
figure.timeline{margin:16px 0 8px;border:1px solid var(--line);border-radius:6px;padding:8px 0 6px}
figure.timeline .scroll{padding:0 8px}
figcaption{display:flex;flex-wrap:wrap;gap:4px 16px;padding:8px 14px 2px;font-size:.82rem;color:var(--muted);border-top:1px solid var(--line)}
.key{display:inline-flex;align-items:center;gap:6px}
.sw{flex:none}
svg.tl{display:block;width:100%;min-width:980px;height:auto;font-family:ui-monospace,SFMono-Regular,"SF Mono",Menlo,Consolas,"Liberation Mono","DejaVu Sans Mono",monospace;font-size:11px}
svg.tl text,.sw text{fill:var(--fg)}
.tl .axis text{fill:var(--muted);font-size:10px}
.tl .axis .axis-title{font-family:system-ui,sans-serif;font-size:11px}
.tl .grid{stroke:#e6eaef;stroke-width:1}
.tl .sep{stroke:var(--line)}
.tl .lane rect{fill:#f3f5f8;stroke:#e1e6ec}
.tl .lane text{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Liberation Sans",Arial,sans-serif;font-size:12px;font-weight:600}
.tl .bg{fill:transparent}
.tl .row:hover .bg{fill:#e8f0fa}
.bar{fill:#a9bdd2}
.bar.tool{fill:#1d5fae}
.bar.err{fill:#f0c4bf;stroke:#b42318;stroke-width:1.5}
.bar.tool.err{fill:#1d5fae}
.bar.open{fill:#e3e9f0;stroke:#52606f;stroke-width:1;stroke-dasharray:4 3}
.bar.tool.open{fill:#bcd0ea}
.arrow{fill:#52606f}
.tl .tool-label{font-weight:700}
.tl .svc,.tl .dur,.tl .more{fill:var(--muted)}
.tl .dur{font-size:10px}
.tl .tag{font-weight:700;font-size:10.5px}
.tl .hit{fill:none;stroke-width:2.5}
.vendor{fill:#fff;stroke:#2d333b;stroke-width:1.5}
.vendor.commit{fill:#2d333b}
.commit{stroke:#fff;stroke-width:1.5}
.tl .stop text{font-weight:700}
.stop-mark{fill:#111}
.tl .abort line,.abort-key{stroke:#111;stroke-width:2}
.tl .abort text{font-family:system-ui,sans-serif;font-size:11px;font-weight:700;letter-spacing:.05em}
.hint{font-style:italic}
.none{font-size:1.1rem}
footer{margin-top:40px;padding-top:10px;border-top:1px solid var(--line);color:var(--muted);font-size:.82rem}
@media (max-width:700px){.wrap{padding:14px}.counts div{min-width:44%}}
@media print{
  .filters,details summary::marker{display:none}
  .wrap{max-width:none;padding:0}
  body{font-size:10pt}
  .scroll{overflow:visible}
  table{font-size:7.5pt}
  th,td{padding:3px 4px}
  code{overflow-wrap:anywhere}
  .badge{white-space:normal;padding:0 4px}
  svg.tl{min-width:0}
  .finding,figure.timeline,tr{break-inside:avoid}
  h2{break-after:avoid}
  a{color:inherit;text-decoration:none}
  *{-webkit-print-color-adjust:exact;print-color-adjust:exact}
}
"#;

/// The page's one script: shows the category filters and makes them hide and show the findings'
/// rows, their evidence, their timeline marks and the conversations left without any. It reads
/// only the `data-` attributes the renderer writes, and marks the page as scripted.
const SCRIPT: &str = r#"
(function () {
  "use strict";
  var root = document.documentElement;
  root.setAttribute("data-script", "ran");
  var bar = document.getElementById("filters");
  if (!bar) { return; }
  var boxes = Array.prototype.slice.call(bar.querySelectorAll("input[data-category]"));
  var rows = Array.prototype.slice.call(document.querySelectorAll("tr[data-category]"));
  var sections = Array.prototype.slice.call(document.querySelectorAll("section[data-categories]"));
  var shown = document.getElementById("shown");
  function apply() {
    var off = {};
    boxes.forEach(function (box) {
      var category = box.getAttribute("data-category");
      off[category] = !box.checked;
      root.classList.toggle("hide-" + category, !box.checked);
    });
    var visible = rows.filter(function (row) { return !off[row.getAttribute("data-category")]; });
    sections.forEach(function (section) {
      section.hidden = section.getAttribute("data-categories").split(" ").every(function (c) { return off[c]; });
    });
    shown.textContent = visible.length + " of " + rows.length + " findings shown";
  }
  boxes.forEach(function (box) { box.addEventListener("change", apply); });
  Array.prototype.forEach.call(bar.querySelectorAll("button[data-preset]"), function (button) {
    button.addEventListener("click", function () {
      var late = button.getAttribute("data-preset") === "late";
      boxes.forEach(function (box) { box.checked = !late || box.hasAttribute("data-late"); });
      apply();
    });
  });
  // A link can choose the categories shown: `report.html#show=client_gone,late_queued`, or
  // `#show=late` for the late writes.
  var wanted = /^#show=([a-z_,]+)$/.exec(location.hash);
  if (wanted) {
    var names = wanted[1].split(",");
    boxes.forEach(function (box) {
      box.checked = names.indexOf(box.getAttribute("data-category")) >= 0 ||
        (names.indexOf("late") >= 0 && box.hasAttribute("data-late"));
    });
  }
  bar.hidden = false;
  apply();
})();
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TraceId;

    const SECOND: u64 = 1_000_000_000;

    fn span(time: u64, end: Option<u64>, name: &str, depth: usize) -> Entry {
        Entry {
            time,
            order: 0,
            depth,
            what: What::Span {
                name: name.to_owned(),
                service: "svc".to_owned(),
                kind: SpanKind::Internal,
                end,
                http_status: None,
                error: false,
                linked_from: None,
                tool_call: false,
                findings: Vec::new(),
            },
        }
    }

    fn turn(entries: Vec<Entry>) -> TurnTimeline {
        TurnTimeline {
            trace_id: TraceId([0xab; 16]),
            title: "invoke_agent".to_owned(),
            entries,
        }
    }

    fn draw(t: &Timeline) -> String {
        let mut h = String::new();
        timeline_figure(t, 1, &mut h);
        h
    }

    fn aborted(entries: Vec<Entry>, origin: u64) -> Timeline {
        let mut entries = entries;
        entries.push(Entry {
            time: origin,
            order: usize::MAX,
            depth: 0,
            what: What::Abort {
                signal: "span event \"abort\"".to_owned(),
                inferred: false,
            },
        });
        entries.sort_by_key(|e| e.time);
        Timeline {
            conversation: "conv-1".to_owned(),
            origin,
            has_abort: true,
            turns: vec![turn(entries)],
        }
    }

    #[test]
    fn the_policy_names_the_sha256_of_the_inline_text() {
        assert_eq!(
            csp_hash(""),
            "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
        assert!(!style().contains('<') && !SCRIPT.contains("</"));
    }

    #[test]
    fn a_long_turn_draws_its_first_rows_and_says_how_many_it_leaves_out() {
        let mut entries: Vec<Entry> = (0..100)
            .map(|i| {
                span(
                    100 * SECOND + i * 1_000_000,
                    Some(100 * SECOND + i * 1_000_000 + 10),
                    "db",
                    2,
                )
            })
            .collect();
        entries.push(Entry {
            time: 101 * SECOND,
            order: usize::MAX - 1,
            depth: 0,
            what: What::Write {
                category: Category::ClientGone,
                operation: "COMMIT".to_owned(),
                service: "api".to_owned(),
                inferred: false,
            },
        });
        let t = aborted(entries, 100 * SECOND + 500_000_000);
        let svg = draw(&t);
        assert_eq!(svg.matches("<g class=\"row").count(), LANE_ROWS);
        assert!(svg.contains("… 42 more spans not drawn"), "{svg}");
        assert!(svg.contains("class=\"row stop\""), "the abort is kept");
        assert!(
            svg.contains("class=\"row mark cat-client_gone\""),
            "the commit is kept"
        );
    }

    #[test]
    fn a_span_that_never_ended_runs_to_the_edge_with_an_arrow() {
        let t = aborted(vec![span(10 * SECOND, None, "POST", 1)], 11 * SECOND);
        let svg = draw(&t);
        assert!(svg.contains("class=\"bar open\""));
        assert!(svg.contains("<path class=\"arrow\""));
        assert!(svg.contains(">never ended</text>"));
        assert!(svg.contains("never ended</title>") || svg.contains(", never ended"));
    }

    #[test]
    fn a_turn_far_from_the_abort_does_not_squash_the_aborted_one() {
        let early = turn(vec![span(0, Some(SECOND), "earlier turn", 0)]);
        let mut t = aborted(
            vec![span(
                3_600 * SECOND,
                Some(3_601 * SECOND),
                "aborted turn",
                0,
            )],
            3_600 * SECOND + SECOND / 2,
        );
        t.turns.insert(0, early);
        let svg = draw(&t);
        assert!(svg.contains("◂ -3600.500s (before this window)"), "{svg}");
        // The aborted turn's span fills most of the plot.
        let bar = svg.split("<rect class=\"bar\"").nth(1).unwrap();
        let width: f64 = bar
            .split("width=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(width > (PLOT_RIGHT - PLOT_LEFT) * 0.8, "{width}");
    }

    #[test]
    fn input_text_is_escaped_in_the_svg() {
        let mut t = aborted(
            vec![span(
                10 * SECOND,
                Some(11 * SECOND),
                "<script>x</script>\"'&",
                0,
            )],
            11 * SECOND,
        );
        t.conversation = "\"><svg onload=x>".to_owned();
        t.turns[0].title = "<b>".to_owned();
        let svg = draw(&t);
        assert!(!svg.contains("<script") && !svg.contains("<b>") && !svg.contains("<svg onload"));
        assert!(svg.contains("&lt;script&gt;x&lt;/script&gt;&quot;&#39;&amp;"));
        assert!(
            svg.contains("aria-label=\"Timeline of conversation &quot;&gt;&lt;svg onload=x&gt;\"")
        );
    }

    #[test]
    fn ticks_are_round_and_few() {
        assert_eq!(tick_step(1_000_000_000), 200_000_000);
        assert_eq!(tick_step(1), 1);
        assert_eq!(tick_step(45_000_000), 10_000_000);
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("abc", 4), "abc");
    }
}

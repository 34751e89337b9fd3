//! The timeline of a conversation as inline SVG: a lane per turn, spans indented by causality,
//! the abort as a line across the conversation, vendor events as diamonds, each finding's commit
//! coloured by category, on an axis relative to the abort.

use std::fmt::Write as _;

use crate::model::time::rfc3339;
use crate::model::{Category, Role, SpanKind};
use crate::report::Timeline;
use crate::report::escape::html as esc;
use crate::report::timeline::{Entry, TurnTimeline, What, telling_entries};
use crate::util::units::offset;

// ---------------------------------------------------------------------------------------------
// The timeline as SVG.

/// How many rows a turn's lane draws at most; the rest are counted in a last row.
const LANE_ROWS: usize = 60;
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

pub(super) fn timeline_figure(t: &Timeline, anchor: usize, h: &mut String) {
    let lanes: Vec<(&TurnTimeline, Vec<&Entry>)> = t
        .turns
        .iter()
        .map(|turn| (turn, telling_entries(LANE_ROWS, &turn.entries)))
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

//! `explain`: one conversation on one time axis, relative to its abort. Spans are indented by
//! causality (parent/child, and span links into worker traces) and listed by start time.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use super::sanitize;
use crate::classify::Audit;
use crate::correlate::{Joined, Via};
use crate::model::Category;
use crate::model::time::rfc3339;
use crate::model::{Span, SpanKind};
use crate::rules::evidence::http_status;
use crate::util::units::offset;

struct Entry {
    time: u64,
    /// Breaks ties so that a parent prints before a child that starts with it.
    order: usize,
    depth: usize,
    text: String,
}

fn describe_span(span: &Span) -> String {
    let mut text = format!("{} [{}]", sanitize(&span.name), sanitize(span.service()));
    if span.kind != SpanKind::Internal && span.kind != SpanKind::Unspecified {
        text.push(' ');
        text.push_str(span.kind.as_str());
    }
    if let Some(status) = http_status(span) {
        text.push_str(&format!(" {status}"));
    }
    if span.status.code == crate::model::StatusCode::Error {
        text.push_str(" ERROR");
    }
    match span.end {
        Some(end) => text.push_str(&format!(
            " ({})",
            offset(i128::from(end) - i128::from(span.start)).trim_start_matches('+')
        )),
        None => text.push_str(" (never ended)"),
    }
    text
}

pub fn explain(
    conversation_id: &str,
    joined: &Joined<'_>,
    audit: &Audit,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let Some(conversation) = joined.conversation(conversation_id) else {
        return Ok(());
    };
    let turns: Vec<_> = conversation
        .turns
        .iter()
        .map(|t| &joined.turns[*t])
        .collect();
    let origin = turns
        .iter()
        .filter_map(|t| t.abort.as_ref().map(|a| a.time))
        .min()
        .or_else(|| turns.first().map(|t| t.start))
        .unwrap_or(0);
    let has_abort = turns.iter().any(|t| t.abort.is_some());
    writeln!(
        out,
        "conversation {}: {} turns; times are relative to {} at {}",
        sanitize(conversation_id),
        turns.len(),
        if has_abort {
            "the first abort"
        } else {
            "the first turn (no abort recorded)"
        },
        rfc3339(origin)
    )?;

    // Findings by the span that shows their write, to annotate the timeline.
    let mut marks: HashMap<(crate::model::TraceId, crate::model::SpanId), Vec<String>> =
        HashMap::new();
    for f in audit
        .findings
        .iter()
        .filter(|f| f.conversation_id == conversation_id)
    {
        let label = format!(
            "◀ {}{}",
            f.category,
            if f.ambiguous { " (ambiguous)" } else { "" }
        );
        match &f.write {
            Some(w) => {
                let key = joined
                    .spans
                    .iter()
                    .find(|s| Some(s.span_id) == w.span_id && s.service() == w.service)
                    .map(|s| (s.trace_id, s.span_id));
                if let Some(key) = key {
                    marks.entry(key).or_default().push(label);
                }
            }
            None => marks
                .entry((f.trace_id, f.tool_call.span_id))
                .or_default()
                .push(label),
        }
    }

    for (n, turn) in turns.iter().enumerate() {
        let spans = joined.spans;
        let title = turn
            .root
            .map(|r| sanitize(&spans[r].name).into_owned())
            .unwrap_or_default();
        writeln!(
            out,
            "\nturn {} · trace {} · {}",
            n + 1,
            turn.trace_id,
            title
        )?;

        // Depth of the turn's own spans: ancestors within the trace.
        let mut entries: Vec<Entry> = Vec::new();
        let mut depth: BTreeMap<usize, usize> = BTreeMap::new();
        for &i in &turn.agent_spans {
            let d = std::iter::successors(joined.parent[i], |p| joined.parent[*p])
                .take(spans.len())
                .count();
            depth.insert(i, d);
        }
        for tool in &turn.tool_calls {
            for r in &tool.downstream {
                let d = depth.get(&r.from).copied().unwrap_or(0) + 1;
                depth.entry(r.span).or_insert(d);
            }
        }
        // Spans reached by crossing a span link into another trace: the hop is worth naming.
        let link_hops: HashMap<usize, usize> = turn
            .tool_calls
            .iter()
            .flat_map(|t| t.downstream.iter())
            .filter(|r| r.via == Via::Link && spans[r.span].trace_id != spans[r.from].trace_id)
            .map(|r| (r.span, r.from))
            .collect();
        for (order, (&i, &d)) in depth.iter().enumerate() {
            let span = &spans[i];
            let mut text = describe_span(span);
            if let Some(from) = link_hops.get(&i) {
                text.push_str(&format!(
                    " · trace {} linked to {:?}",
                    span.trace_id,
                    sanitize(&spans[*from].name)
                ));
            }
            if let Some(labels) = marks.get(&(span.trace_id, span.span_id)) {
                text.push_str("  ");
                text.push_str(&labels.join(", "));
            }
            entries.push(Entry {
                time: span.start,
                order,
                depth: d,
                text,
            });
        }
        // Vendor events joined to the turn's tool calls, under the span that carried the key.
        for tool in &turn.tool_calls {
            for join in &tool.events {
                let event = &joined.events[join.event];
                let role = event.role.map(|r| r.as_str()).unwrap_or("no role");
                let how = if join.weak {
                    "joined on the conversation id alone (weak)".to_owned()
                } else {
                    format!(
                        "joined on {} {:?}",
                        join.key.as_str(),
                        sanitize(&join.value)
                    )
                };
                entries.push(Entry {
                    time: event.time,
                    order: usize::MAX - 2,
                    depth: depth.get(&join.carrier).copied().unwrap_or(0) + 1,
                    text: format!(
                        "◆ {} event {} {} ({role}) · {how}",
                        sanitize(&event.vendor),
                        sanitize(&event.id),
                        sanitize(&event.kind)
                    ),
                });
            }
        }
        if let Some(abort) = &turn.abort {
            entries.push(Entry {
                time: abort.time,
                order: usize::MAX,
                depth: 0,
                text: format!("■ ABORT · {}", sanitize(&abort.signal)),
            });
        }
        // Commits and rollbacks of findings at their own time, so the gap to the abort shows.
        for f in audit
            .findings
            .iter()
            .filter(|f| f.trace_id == turn.trace_id && f.conversation_id == conversation_id)
        {
            if let Some((w, time)) = f.write.as_ref().and_then(|w| w.commit_time.map(|t| (w, t))) {
                let what = if f.category == Category::PreCommitAbort {
                    "rolled back"
                } else {
                    "committed"
                };
                entries.push(Entry {
                    time,
                    order: usize::MAX - 1,
                    depth: 0,
                    text: format!(
                        "● {what}: {} [{}] · {}{}",
                        sanitize(&w.operation),
                        sanitize(&w.service),
                        f.category,
                        if w.inferred {
                            " (inferred from the server span's end)"
                        } else {
                            ""
                        }
                    ),
                });
            }
        }
        entries.sort_by_key(|e| (e.time, e.order));
        for entry in entries {
            writeln!(
                out,
                "{:>11}  {}{}",
                offset(i128::from(entry.time) - i128::from(origin)),
                "  ".repeat(entry.depth),
                entry.text
            )?;
        }
    }
    Ok(())
}

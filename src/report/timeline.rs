//! One conversation on one time axis, relative to its first abort: each turn's spans indented by
//! causality (parent/child, and span links into worker traces), the abort, vendor events and
//! each finding's commit. Built once as plain data (`Timeline::build`, while the spans are
//! still there) and drawn by `explain` on a terminal, by the Markdown report as a Mermaid chart
//! and by the HTML report as SVG.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use super::sanitize;
use crate::classify::Audit;
use crate::correlate::{Joined, Via};
use crate::model::time::rfc3339;
use crate::model::{Category, Role, SpanId, SpanKind, StatusCode, TraceId};
use crate::rules::evidence::http_status;
use crate::util::units::offset;

/// A conversation's timeline.
#[derive(Clone, Debug, PartialEq)]
pub struct Timeline {
    pub conversation: String,
    /// What times are shown relative to: the first abort, else the first turn's start.
    pub origin: u64,
    pub has_abort: bool,
    pub turns: Vec<TurnTimeline>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TurnTimeline {
    pub trace_id: TraceId,
    /// The turn's root span's name.
    pub title: String,
    /// By time, a parent before a child that starts with it.
    pub entries: Vec<Entry>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub time: u64,
    /// Breaks ties so that a parent prints before a child that starts with it.
    pub order: usize,
    /// Indentation by causality.
    pub depth: usize,
    pub what: What,
}

#[derive(Clone, Debug, PartialEq)]
pub enum What {
    Span {
        name: String,
        service: String,
        kind: SpanKind,
        end: Option<u64>,
        http_status: Option<i64>,
        error: bool,
        /// Reached through a span link from this span (its trace and name).
        linked_from: Option<(TraceId, String)>,
        /// A tool call's span.
        tool_call: bool,
        /// The findings whose write this span shows (or whose tool call it is, when no write
        /// was found): category and ambiguity.
        findings: Vec<(Category, bool)>,
    },
    VendorEvent {
        vendor: String,
        id: String,
        kind: String,
        role: Option<Role>,
        /// How it was joined, in words.
        join: String,
    },
    Abort {
        signal: String,
        inferred: bool,
    },
    /// A finding's commit (or rollback) at its own time.
    Write {
        category: Category,
        operation: String,
        service: String,
        inferred: bool,
    },
}

impl Timeline {
    /// The timelines of the conversations with findings, in the findings' order (by
    /// conversation), as the reports that draw them show them.
    pub fn of_findings(joined: &Joined<'_>, audit: &Audit) -> Vec<Timeline> {
        let mut conversations: Vec<&str> = audit
            .findings
            .iter()
            .map(|f| f.conversation_id.as_str())
            .collect();
        conversations.dedup();
        conversations
            .into_iter()
            .filter_map(|c| Timeline::build(c, joined, audit))
            .collect()
    }

    /// The timeline of a conversation; `None` when the join has no such conversation.
    pub fn build(conversation_id: &str, joined: &Joined<'_>, audit: &Audit) -> Option<Timeline> {
        let conversation = joined.conversation(conversation_id)?;
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
        let findings: Vec<_> = audit
            .findings
            .iter()
            .filter(|f| f.conversation_id == conversation_id)
            .collect();

        // The spans the timeline shows, by id and service: where a finding's write is (a
        // lookup over every span, once per finding, took findings × spans on a large export).
        let mut shown: HashMap<(SpanId, &str), usize> = HashMap::new();
        for turn in &turns {
            let downstream = turn
                .tool_calls
                .iter()
                .flat_map(|t| t.downstream.iter().map(|r| r.span));
            for i in turn.agent_spans.iter().copied().chain(downstream) {
                let span = &joined.spans[i];
                shown.entry((span.span_id, span.service())).or_insert(i);
            }
        }
        // Findings by the span that shows their write (or their tool call's, when no write was
        // found), to mark the timeline.
        let mut marks: HashMap<(TraceId, SpanId), Vec<(Category, bool)>> = HashMap::new();
        for f in &findings {
            let key = match &f.write {
                Some(w) => w
                    .span_id
                    .and_then(|id| shown.get(&(id, w.service.as_str())))
                    .map(|i| (joined.spans[*i].trace_id, joined.spans[*i].span_id)),
                None => Some((f.trace_id, f.tool_call.span_id)),
            };
            if let Some(key) = key {
                marks
                    .entry(key)
                    .or_default()
                    .push((f.category, f.ambiguous));
            }
        }

        let spans = joined.spans;
        let mut out = Vec::new();
        for turn in turns {
            let title = turn
                .root
                .map(|r| spans[r].name.to_string())
                .unwrap_or_default();
            // Depth of the turn's own spans: ancestors within the trace.
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
            let tool_spans: Vec<usize> = turn.tool_calls.iter().map(|t| t.span).collect();
            let mut entries = Vec::new();
            for (order, (&i, &d)) in depth.iter().enumerate() {
                let span = &spans[i];
                entries.push(Entry {
                    time: span.start,
                    order,
                    depth: d,
                    what: What::Span {
                        name: span.name.to_string(),
                        service: span.service().to_owned(),
                        kind: span.kind,
                        end: span.end,
                        http_status: http_status(span),
                        error: span.status.code == StatusCode::Error,
                        linked_from: link_hops
                            .get(&i)
                            .map(|from| (span.trace_id, spans[*from].name.to_string())),
                        tool_call: tool_spans.contains(&i),
                        findings: marks
                            .get(&(span.trace_id, span.span_id))
                            .cloned()
                            .unwrap_or_default(),
                    },
                });
            }
            // Vendor events joined to the turn's tool calls, under the span that carried the key.
            for tool in &turn.tool_calls {
                for join in &tool.events {
                    let event = &joined.events[join.event];
                    let how = if join.weak {
                        "joined on the conversation id alone (weak)".to_owned()
                    } else {
                        format!("joined on {} {:?}", join.key.as_str(), join.value)
                    };
                    entries.push(Entry {
                        time: event.time,
                        order: usize::MAX - 2,
                        depth: depth.get(&join.carrier).copied().unwrap_or(0) + 1,
                        what: What::VendorEvent {
                            vendor: event.vendor.clone(),
                            id: event.id.clone(),
                            kind: event.kind.clone(),
                            role: event.role,
                            join: how,
                        },
                    });
                }
            }
            if let Some(abort) = &turn.abort {
                entries.push(Entry {
                    time: abort.time,
                    order: usize::MAX,
                    depth: 0,
                    what: What::Abort {
                        signal: abort.signal.clone(),
                        inferred: abort.inferred(),
                    },
                });
            }
            // Commits and rollbacks of findings at their own time, so the gap to the abort shows.
            for f in findings.iter().filter(|f| f.trace_id == turn.trace_id) {
                if let Some((w, time)) =
                    f.write.as_ref().and_then(|w| w.commit_time.map(|t| (w, t)))
                {
                    entries.push(Entry {
                        time,
                        order: usize::MAX - 1,
                        depth: 0,
                        what: What::Write {
                            category: f.category,
                            operation: w.operation.clone(),
                            service: w.service.clone(),
                            inferred: w.inferred,
                        },
                    });
                }
            }
            entries.sort_by_key(|e| (e.time, e.order));
            out.push(TurnTimeline {
                trace_id: turn.trace_id,
                title,
                entries,
            });
        }
        Some(Timeline {
            conversation: conversation_id.to_owned(),
            origin,
            has_abort,
            turns: out,
        })
    }

    /// Where a time falls against the origin, as `+1.234s`.
    pub fn offset(&self, time: u64) -> String {
        offset(i128::from(time) - i128::from(self.origin))
    }
}

/// The entries of a turn that a picture of at most `max` rows shows: all of them when they fit,
/// else the abort, the commits, vendor events, tool calls and the spans that show findings
/// first, then the earliest others; in time order.
pub fn telling_entries(max: usize, entries: &[Entry]) -> Vec<&Entry> {
    if entries.len() <= max {
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
    chosen.truncate(max);
    chosen.sort_by_key(|(i, _)| *i);
    chosen.into_iter().map(|(_, e)| e).collect()
}

impl Entry {
    /// The entry in words, for a terminal (text from the inputs neutralised).
    fn text(&self) -> String {
        match &self.what {
            What::Span {
                name,
                service,
                kind,
                end,
                http_status,
                error,
                linked_from,
                findings,
                ..
            } => {
                let mut text = format!("{} [{}]", sanitize(name), sanitize(service));
                if *kind != SpanKind::Internal && *kind != SpanKind::Unspecified {
                    text.push(' ');
                    text.push_str(kind.as_str());
                }
                if let Some(status) = http_status {
                    text.push_str(&format!(" {status}"));
                }
                if *error {
                    text.push_str(" ERROR");
                }
                match end {
                    Some(end) => text.push_str(&format!(
                        " ({})",
                        offset(i128::from(*end) - i128::from(self.time)).trim_start_matches('+')
                    )),
                    None => text.push_str(" (never ended)"),
                }
                if let Some((trace, from)) = linked_from {
                    text.push_str(&format!(" · trace {trace} linked to {:?}", sanitize(from)));
                }
                if !findings.is_empty() {
                    let labels: Vec<String> = findings
                        .iter()
                        .map(|(category, ambiguous)| {
                            format!(
                                "◀ {category}{}",
                                if *ambiguous { " (ambiguous)" } else { "" }
                            )
                        })
                        .collect();
                    text.push_str("  ");
                    text.push_str(&labels.join(", "));
                }
                text
            }
            What::VendorEvent {
                vendor,
                id,
                kind,
                role,
                join,
            } => format!(
                "◆ {} event {} {} ({}) · {}",
                sanitize(vendor),
                sanitize(id),
                sanitize(kind),
                role.map(|r| r.as_str()).unwrap_or("no role"),
                sanitize(join)
            ),
            What::Abort { signal, .. } => format!("■ ABORT · {}", sanitize(signal)),
            What::Write {
                category,
                operation,
                service,
                inferred,
            } => format!(
                "● {}: {} [{}] · {category}{}",
                if *category == Category::PreCommitAbort {
                    "rolled back"
                } else {
                    "committed"
                },
                sanitize(operation),
                sanitize(service),
                if *inferred {
                    " (inferred from the end of the span around it)"
                } else {
                    ""
                }
            ),
        }
    }
}

/// The deepest indentation `explain` draws.
const MAX_INDENT: usize = 24;

/// `explain`: the timeline on a terminal.
pub fn explain(timeline: &Timeline, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "conversation {}: {} turns; times are relative to {} at {}",
        sanitize(&timeline.conversation),
        timeline.turns.len(),
        if timeline.has_abort {
            "the first abort"
        } else {
            "the first turn (no abort recorded)"
        },
        rfc3339(timeline.origin)
    )?;
    for (n, turn) in timeline.turns.iter().enumerate() {
        writeln!(
            out,
            "\nturn {} · trace {} · {}",
            n + 1,
            turn.trace_id,
            sanitize(&turn.title)
        )?;
        for entry in &turn.entries {
            // A chain of 10^5 spans would print gigabytes of indentation: past a depth no one
            // follows by eye, the depth is written instead.
            let (indent, depth) = if entry.depth > MAX_INDENT {
                (MAX_INDENT, format!("(depth {}) ", entry.depth))
            } else {
                (entry.depth, String::new())
            };
            writeln!(
                out,
                "{:>11}  {}{depth}{}",
                timeline.offset(entry.time),
                "  ".repeat(indent),
                entry.text()
            )?;
        }
    }
    Ok(())
}

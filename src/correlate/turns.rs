//! A trace's turns: its top-level agent spans (or its root), the spans on the agent's side of
//! each, their tool calls, the earliest abort signal, and the conversation the trace belongs to.

use rustc_hash::FxHashSet;

use super::graph::Graph;
use super::{Abort, ToolCall, Turn};
use crate::model::{Span, TraceId, Value};
use crate::rules::agent::{is_agent_span, tool_matcher};
use crate::rules::{Rules, abort};

/// The first conversation id of the trace by rule priority, preferring the spans upstream of
/// any outbound request (the agent's own) over the services it called, which may carry
/// session ids of their own.
pub(super) fn conversation_of(
    spans: &[Span],
    members: &[usize],
    upstream: &[bool],
    rules: &Rules,
) -> Option<(String, String)> {
    for upstream_only in [true, false] {
        for key in &rules.conversation.id_attributes {
            for &i in members {
                if upstream_only && !upstream[i] {
                    continue;
                }
                if let Some(id) = spans[i].attr_or_resource(key).and_then(Value::as_text)
                    && !id.is_empty()
                {
                    return Some((id.into_owned(), key.clone()));
                }
            }
        }
    }
    None
}

impl Graph<'_> {
    pub(super) fn turns_of_trace(
        &self,
        trace_id: TraceId,
        members: &[usize],
        upstream: &[bool],
        rules: &Rules,
    ) -> Vec<Turn> {
        let spans = self.spans;
        let agent: FxHashSet<usize> = members
            .iter()
            .copied()
            .filter(|i| is_agent_span(&spans[*i], rules))
            .collect();
        // A turn root is an agent span with no agent span above it.
        let roots: Vec<usize> = members
            .iter()
            .copied()
            .filter(|i| agent.contains(i) && !self.ancestors(*i).any(|a| agent.contains(&a)))
            .collect();
        let fallback_root = members.iter().copied().find(|i| self.parent[*i].is_none());
        let turn_roots: Vec<Option<usize>> = if roots.is_empty() {
            vec![fallback_root]
        } else {
            roots.iter().map(|r| Some(*r)).collect()
        };
        let mut turns: Vec<Turn> = turn_roots
            .iter()
            .map(|root| Turn {
                conversation: 0,
                trace_id,
                root: *root,
                start: root.map_or_else(
                    || members.first().map_or(0, |i| spans[*i].start),
                    |r| spans[r].start,
                ),
                agent_spans: Vec::new(),
                is_agent_turn: !roots.is_empty(),
                abort: None,
                tool_calls: Vec::new(),
            })
            .collect();

        for &i in members {
            let turn = if turns.len() == 1 {
                0
            } else {
                let own_root = std::iter::once(i)
                    .chain(self.ancestors(i))
                    .filter(|a| roots.contains(a))
                    .last();
                match own_root {
                    Some(r) => roots.iter().position(|x| *x == r).unwrap_or(0),
                    // A span whose parent was never exported stays in the trace: in the turn
                    // that was running when it started.
                    None => turns
                        .iter()
                        .rposition(|t| t.start <= spans[i].start)
                        .unwrap_or(0),
                }
            };
            let root_service = turns[turn].root.map(|r| spans[r].service());
            let agent_side = upstream[i] || root_service == Some(spans[i].service());
            if agent_side {
                turns[turn].agent_spans.push(i);
            }
        }

        for turn in &mut turns {
            let agent_spans: FxHashSet<usize> = turn.agent_spans.iter().copied().collect();
            for &i in &turn.agent_spans {
                let Some(matcher) = tool_matcher(&spans[i], rules) else {
                    continue;
                };
                // A tool span inside another tool span is part of the outer call.
                let nested = self
                    .ancestors(i)
                    .any(|a| agent_spans.contains(&a) && tool_matcher(&spans[a], rules).is_some());
                if nested {
                    continue;
                }
                turn.tool_calls.push(ToolCall {
                    span: i,
                    name: matcher.tool_name(&spans[i]),
                    call_id: matcher.call_id(&spans[i]),
                    downstream: Vec::new(),
                    events: Vec::new(),
                });
            }
            turn.is_agent_turn |= !turn.tool_calls.is_empty();
        }
        turns
    }

    /// The earliest abort signal recorded on the agent's side of the turn.
    pub(super) fn abort_of(&self, turn: &Turn, rules: &Rules) -> Option<Abort> {
        let spans = self.spans;
        let mut best: Option<Abort> = None;
        let mut consider = |time: u64, span: usize, signal: String| {
            if best
                .as_ref()
                .is_none_or(|b| (time, span) < (b.time, b.span))
            {
                best = Some(Abort { time, span, signal });
            }
        };
        for &i in &turn.agent_spans {
            for (time, signal) in abort::span_signals(&spans[i], rules) {
                consider(time, i, signal);
            }
        }
        best
    }
}

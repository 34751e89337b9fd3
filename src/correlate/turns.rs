//! A trace's turns: its top-level agent spans (or its root), the spans on the agent's side of
//! each, their tool calls, the earliest abort signal, and the conversation the trace belongs to.

use rustc_hash::FxHashSet;

use super::graph::Graph;
use super::{Abort, AbortSource, ToolCall, Turn};
use crate::model::{Span, SpanKind, TraceId, Value};
use crate::rules::agent::{is_agent_span, is_model_span, model_tool_calls, tool_matcher};
use crate::rules::evidence::time_precision;
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
                nested_tool_spans: 0,
            })
            .collect();

        // The spans of each turn; those on the agent's side are kept with it.
        let mut members_of: Vec<Vec<usize>> = vec![Vec::new(); turns.len()];
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
            members_of[turn].push(i);
            let root_service = turns[turn].root.map(|r| spans[r].service());
            let agent_side = upstream[i] || root_service == Some(spans[i].service());
            if agent_side {
                turns[turn].agent_spans.push(i);
            }
        }

        // Every span a tool rule matches is a tool call of its turn, wherever it sits (under a
        // model's CLIENT span too), unless it is part of a tool call above it.
        for (turn, members) in turns.iter_mut().zip(&members_of) {
            for &i in members {
                let Some(matcher) = tool_matcher(&spans[i], rules) else {
                    continue;
                };
                if self
                    .ancestors(i)
                    .any(|a| tool_matcher(&spans[a], rules).is_some())
                {
                    turn.nested_tool_spans += 1;
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
            self.call_ids_from_model_calls(turn, members, rules);
            turn.is_agent_turn |= !turn.tool_calls.is_empty();
        }
        turns
    }

    /// Tool calls whose spans carry no call id (OpenInference's TOOL spans) take it from the
    /// model span that asked for them: the latest to end before the tool started, its calls
    /// matched by tool name in the order it listed them.
    fn call_ids_from_model_calls(&self, turn: &mut Turn, members: &[usize], rules: &Rules) {
        let spans = self.spans;
        if turn.tool_calls.iter().all(|t| t.call_id.is_some()) {
            return;
        }
        let mut models: Vec<(u64, Vec<(String, String)>)> = members
            .iter()
            .filter(|i| is_model_span(&spans[**i], rules))
            .map(|i| {
                let span = &spans[*i];
                (
                    span.end.unwrap_or(span.start),
                    model_tool_calls(span, rules),
                )
            })
            .filter(|(_, calls)| !calls.is_empty())
            .collect();
        models.sort_by_key(|(end, _)| *end);
        let mut order: Vec<usize> = (0..turn.tool_calls.len()).collect();
        order.sort_by_key(|t| {
            let span = &spans[turn.tool_calls[*t].span];
            (span.start, span.span_id)
        });
        for t in order {
            let tool = &mut turn.tool_calls[t];
            if tool.call_id.is_some() {
                continue;
            }
            let start = spans[tool.span].start;
            let Some((_, calls)) = models.iter_mut().rev().find(|(end, _)| *end <= start) else {
                continue;
            };
            if let Some(at) = calls.iter().position(|(name, _)| *name == tool.name) {
                tool.call_id = Some(calls.remove(at).1);
            }
        }
    }

    /// The abort of a turn: the earliest signal on the agent's side, recorded by a span or
    /// inferred from the agent app's server (a disconnect before the response completed, a
    /// client-gone status, a request cut off as the turn ended). It is inferred when no span
    /// records the Stop.
    pub(super) fn abort_of(&self, turn: &Turn, rules: &Rules) -> Option<Abort> {
        let spans = self.spans;
        let last_start = turn
            .agent_spans
            .iter()
            .map(|i| spans[*i].start)
            .max()
            .unwrap_or(0);
        let mut signals: Vec<(u64, usize, String, bool)> = Vec::new();
        for &i in &turn.agent_spans {
            let span = &spans[i];
            for (time, signal) in abort::span_signals(span, rules) {
                signals.push((time, i, signal, false));
            }
            let server_end = self
                .ancestors(i)
                .find(|a| spans[*a].kind == SpanKind::Server)
                .and_then(|a| spans[a].end);
            let inferred = abort::inferred_signal(span, server_end, rules)
                .or_else(|| abort::cancelled_request(span, last_start, rules));
            if let Some((time, signal)) = inferred {
                signals.push((time, i, signal, true));
            }
        }
        signals.sort_by_key(|s| (s.0, s.1));
        let recorded = signals.iter().find(|(.., inferred)| !inferred).cloned();
        let (time, span, mut signal, earliest_inferred) = signals.into_iter().next()?;
        // The earliest signal gives the time; where it is inferred and a span also records
        // the Stop, the evidence names both.
        if let (true, Some((_, _, words, _))) = (earliest_inferred, &recorded) {
            signal = format!("{signal}; recorded by {words}");
        }
        Some(Abort {
            time,
            // JS SDKs take event times from a millisecond clock, as they do starts.
            precision: time_precision(&spans[span], rules),
            span: Some(span),
            signal,
            source: if recorded.is_some() {
                AbortSource::Recorded
            } else {
                AbortSource::Inferred
            },
        })
    }
}

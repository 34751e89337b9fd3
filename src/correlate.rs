//! The causal join: spans → conversations → turns → the abort of a turn → the tool calls of
//! that turn → everything each tool call caused, across services (parent/child through W3C
//! trace context) and across traces (span links from queue consumers and workers).
//!
//! A time filter ("everything after the abort") would flag the user's next turn and miss a
//! worker trace that carries no conversation id; following causality does neither.

use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::{HashMap, VecDeque};

use crate::model::{KeyKind, Span, SpanId, TraceId, Value, VendorEvent};
use crate::rules::agent::{is_agent_span, tool_matcher};
use crate::rules::{Rules, abort};

/// Spans joined into conversations, with the graph the join walked.
#[derive(Debug)]
pub struct Joined<'s> {
    pub spans: &'s [Span],
    /// Same-trace children of each span, by start time.
    pub children: Children,
    /// Same-trace parent of each span, when the parent was exported.
    pub parent: Vec<Option<usize>>,
    /// Conversations by id.
    pub conversations: Vec<Conversation>,
    pub turns: Vec<Turn>,
    pub events: &'s [VendorEvent],
    /// Vendor events no tool call's keys matched: their keys are probably not captured on
    /// the spans (see `inspect`).
    pub unmatched_events: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConversationSource {
    /// Named by this attribute of a span or resource.
    Attribute(String),
    /// No span of the trace named a conversation: the trace is a conversation of its own.
    Trace,
}

#[derive(Debug)]
pub struct Conversation {
    pub id: String,
    pub source: ConversationSource,
    /// Indices into `Joined::turns`, by start time.
    pub turns: Vec<usize>,
}

#[derive(Debug)]
pub struct Turn {
    pub conversation: usize,
    pub trace_id: TraceId,
    /// The top-level agent span, or the trace's root when no agent span is recognised.
    pub root: Option<usize>,
    pub start: u64,
    /// The turn's spans on the agent's side (not the services its tools called).
    pub agent_spans: Vec<usize>,
    /// Whether this looks like an agent turn at all (an agent span, a tool call, or a
    /// conversation id); aborts only count in agent turns.
    pub is_agent_turn: bool,
    pub abort: Option<Abort>,
    pub tool_calls: Vec<ToolCall>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Abort {
    pub time: u64,
    /// The span that recorded the signal.
    pub span: usize,
    /// The signal in words, e.g. `span event "abort" on "invoke_agent support"`.
    pub signal: String,
}

#[derive(Debug)]
pub struct ToolCall {
    pub span: usize,
    pub name: String,
    pub call_id: Option<String>,
    /// Everything the tool call caused, in breadth-first order from the tool span.
    pub downstream: Vec<Reached>,
    /// Vendor events joined to the tool call by a key found on its spans.
    pub events: Vec<EventJoin>,
}

/// A vendor event joined to a tool call, and the key that joined it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventJoin {
    pub event: usize,
    pub key: KeyKind,
    pub value: String,
    /// The span the key was found on (the tool span itself for a tool call id).
    pub carrier: usize,
    /// Joined on the conversation id alone: the event names the conversation but not the
    /// call, so it was given to the call that was running when it happened.
    pub weak: bool,
}

/// How a downstream span was reached from its tool call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Parent/child spans only: the synchronous path of the request.
    Parent,
    /// At least one span link on the way: a queue consumer or workflow worker.
    Link,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Parent => "parent",
            Via::Link => "link",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reached {
    pub span: usize,
    pub via: Via,
    /// The span it was reached from (for indentation by causality).
    pub from: usize,
    /// The first outbound span (CLIENT or PRODUCER) on the path from the tool call: the
    /// request the tool sent. `None` for spans of the tool itself.
    pub outbound: Option<usize>,
}

impl Joined<'_> {
    pub fn has_conversation(&self, id: &str) -> bool {
        self.conversations.iter().any(|c| c.id == id)
    }

    pub fn conversation(&self, id: &str) -> Option<&Conversation> {
        self.conversations.iter().find(|c| c.id == id)
    }

    /// Traces with an aborted agent turn and no conversation id: each is a conversation of
    /// its own, which no span names.
    pub fn unnamed_aborted_conversations(&self) -> u64 {
        self.conversations
            .iter()
            .filter(|c| c.source == ConversationSource::Trace)
            .filter(|c| c.turns.iter().any(|t| self.turns[*t].abort.is_some()))
            .count() as u64
    }

    pub fn conversation_ids(&self) -> Vec<&str> {
        self.conversations
            .iter()
            .filter(|c| c.turns.iter().any(|t| self.turns[*t].is_agent_turn))
            .map(|c| c.id.as_str())
            .collect()
    }
}

/// The children of every span, in one allocation rather than a vector each (a large export's
/// audit holds one entry per span).
#[derive(Debug)]
pub struct Children {
    /// The children of span `i` are `items[starts[i]..starts[i + 1]]`.
    starts: Vec<usize>,
    items: Vec<usize>,
}

impl Children {
    /// From (parent, child) edges; each list is sorted by start time (then span id) and has no
    /// repeats.
    fn new(spans: &[Span], edges: Vec<(usize, usize)>) -> Children {
        // Sorted by keys gathered first, as `join` sorts its spans by trace.
        let mut edges: Vec<(usize, u64, [u8; 8], usize)> = edges
            .into_iter()
            .map(|(parent, child)| (parent, spans[child].start, spans[child].span_id.0, child))
            .collect();
        edges.sort_unstable();
        edges.dedup();
        let spans = spans.len();
        let mut starts = Vec::with_capacity(spans + 1);
        let mut items = Vec::with_capacity(edges.len());
        let mut next = edges.iter().peekable();
        for span in 0..spans {
            starts.push(items.len());
            while let Some((.., child)) = next.next_if(|(p, ..)| *p == span) {
                items.push(*child);
            }
        }
        starts.push(items.len());
        Children { starts, items }
    }

    pub fn of(&self, span: usize) -> &[usize] {
        &self.items[self.starts[span]..self.starts[span + 1]]
    }
}

/// Joins the spans. Pure: the same spans and rules give the same result whatever their order.
pub fn join<'s>(spans: &'s [Span], events: &'s [VendorEvent], rules: &Rules) -> Joined<'s> {
    let mut by_id: FxHashMap<(TraceId, SpanId), usize> =
        FxHashMap::with_capacity_and_hasher(spans.len(), Default::default());
    for (i, span) in spans.iter().enumerate() {
        by_id.entry((span.trace_id, span.span_id)).or_insert(i);
    }
    let mut parent = vec![None; spans.len()];
    let mut edges: Vec<(usize, usize)> = Vec::new();
    let mut incoming_links: FxHashMap<usize, Vec<usize>> = FxHashMap::default();
    for (i, span) in spans.iter().enumerate() {
        if let Some(p) = span
            .parent_span_id
            .and_then(|p| by_id.get(&(span.trace_id, p)))
            && *p != i
        {
            parent[i] = Some(*p);
            edges.push((*p, i));
        }
        for link in &span.links {
            if let Some(target) = by_id.get(&(link.trace_id, link.span_id))
                && *target != i
            {
                incoming_links.entry(*target).or_default().push(i);
            }
        }
    }
    drop(by_id);
    let order = |a: &usize, b: &usize| {
        (spans[*a].start, spans[*a].span_id).cmp(&(spans[*b].start, spans[*b].span_id))
    };
    let children = Children::new(spans, edges);
    for list in incoming_links.values_mut() {
        list.sort_by(order);
        list.dedup();
    }

    let graph = Graph {
        spans,
        parent: &parent,
        children: &children,
        incoming_links: &incoming_links,
    };

    // The spans of each trace, together and by start time. Sorted by keys gathered first:
    // comparing through the indices reads two spans, scattered in memory, for each comparison
    // (a third of the join on a large export). The index last keeps the order a stable sort
    // would give.
    let mut keys: Vec<([u8; 16], u64, [u8; 8], usize)> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.trace_id.0, s.start, s.span_id.0, i))
        .collect();
    keys.sort_unstable();
    let by_trace: Vec<usize> = keys.into_iter().map(|(.., i)| i).collect();

    let upstream = graph.upstream_flags();
    // Each trace is joined on its own, on all threads; the conversations are then assembled
    // in trace order, so the result does not depend on the number of threads.
    let traces: Vec<&[usize]> = by_trace
        .chunk_by(|a, b| spans[*a].trace_id == spans[*b].trace_id)
        .collect();
    let joined_traces: Vec<(String, ConversationSource, Vec<Turn>)> = traces
        .par_iter()
        .map(|members| {
            let trace_id = spans[members[0]].trace_id;
            let (conversation_id, source) = match conversation_of(spans, members, &upstream, rules)
            {
                Some((id, key)) => (id, ConversationSource::Attribute(key)),
                None => (trace_id.to_string(), ConversationSource::Trace),
            };
            let mut turns = graph.turns_of_trace(trace_id, members, &upstream, rules);
            for turn in &mut turns {
                turn.is_agent_turn |= source != ConversationSource::Trace;
                if turn.is_agent_turn {
                    turn.abort = graph.abort_of(turn, rules);
                }
                for tool in &mut turn.tool_calls {
                    tool.downstream = graph.downstream(tool.span);
                }
            }
            (conversation_id, source, turns)
        })
        .collect();
    let mut conversations: Vec<Conversation> = Vec::new();
    let mut conversation_index: FxHashMap<String, usize> = FxHashMap::default();
    let mut turns: Vec<Turn> = Vec::new();
    for (conversation_id, source, trace_turns) in joined_traces {
        let conversation = match conversation_index.get(&conversation_id) {
            Some(known) => *known,
            None => {
                conversation_index.insert(conversation_id.clone(), conversations.len());
                conversations.push(Conversation {
                    id: conversation_id,
                    source,
                    turns: Vec::new(),
                });
                conversations.len() - 1
            }
        };
        for mut turn in trace_turns {
            turn.conversation = conversation;
            conversations[conversation].turns.push(turns.len());
            turns.push(turn);
        }
    }
    for conversation in &mut conversations {
        conversation
            .turns
            .sort_by_key(|t| (turns[*t].start, turns[*t].trace_id));
    }
    conversations.sort_by(|a, b| a.id.cmp(&b.id));
    for (i, conversation) in conversations.iter().enumerate() {
        for t in &conversation.turns {
            turns[*t].conversation = i;
        }
    }

    let unmatched_events = join_events(spans, events, &conversations, &mut turns, rules);
    Joined {
        spans,
        children,
        parent,
        conversations,
        turns,
        events,
        unmatched_events,
    }
}

/// The traces an audit needs: those that may record an abort and, transitively, those whose
/// spans link into a needed trace (queue consumers and workers, which link to their
/// producer). `links` are (the trace linked to, the trace of the linking span).
pub fn traces_that_matter(
    may_abort: FxHashSet<TraceId>,
    links: &[(TraceId, TraceId)],
) -> FxHashSet<TraceId> {
    let mut links_into: FxHashMap<TraceId, Vec<TraceId>> = FxHashMap::default();
    for (to, from) in links {
        links_into.entry(*to).or_default().push(*from);
    }
    let mut needed = may_abort;
    let mut pending: Vec<TraceId> = needed.iter().copied().collect();
    while let Some(trace) = pending.pop() {
        for source in links_into.get(&trace).into_iter().flatten() {
            if needed.insert(*source) {
                pending.push(*source);
            }
        }
    }
    needed
}

/// The order in which keys are preferred when several join the same event: the most specific
/// first.
const KEY_PREFERENCE: [KeyKind; 9] = [
    KeyKind::IdempotencyKey,
    KeyKind::RequestId,
    KeyKind::MessageId,
    KeyKind::JobId,
    KeyKind::ObjectId,
    KeyKind::ToolCallId,
    KeyKind::SpanId,
    KeyKind::TraceId,
    KeyKind::ConversationId,
];

pub fn key_preference(kind: KeyKind) -> usize {
    KEY_PREFERENCE
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(KEY_PREFERENCE.len())
}

/// The keys a tool call's spans carry, with the span each was found on.
fn tool_keys(spans: &[Span], tool: &ToolCall, rules: &Rules) -> Vec<(KeyKind, String, usize)> {
    let mut keys = Vec::new();
    if let Some(id) = &tool.call_id {
        keys.push((KeyKind::ToolCallId, id.clone(), tool.span));
    }
    let attribute_lists = [
        (KeyKind::IdempotencyKey, &rules.join.idempotency_key),
        (KeyKind::RequestId, &rules.join.request_id),
        (KeyKind::MessageId, &rules.join.message_id),
        (KeyKind::JobId, &rules.join.job_id),
        (KeyKind::ObjectId, &rules.join.object_id),
    ];
    for i in std::iter::once(tool.span).chain(tool.downstream.iter().map(|r| r.span)) {
        let span = &spans[i];
        for (kind, attributes) in &attribute_lists {
            for key in attributes.iter() {
                match span.attributes.get(key) {
                    Some(Value::Array(items)) => {
                        for item in items {
                            if let Some(text) = item.as_text() {
                                keys.push((*kind, normalise_key(*kind, &text), i));
                            }
                        }
                    }
                    Some(value) => {
                        if let Some(text) = value.as_text() {
                            keys.push((*kind, normalise_key(*kind, &text), i));
                        }
                    }
                    None => {}
                }
            }
        }
        keys.push((KeyKind::SpanId, span.span_id.to_string(), i));
        keys.push((KeyKind::TraceId, span.trace_id.to_string(), i));
    }
    keys.retain(|(_, v, _)| !v.is_empty());
    keys
}

/// Keys are compared as the vendor readers normalise them: hex ids in lower case, e-mail
/// message ids without their angle brackets.
pub fn normalise_key(kind: KeyKind, value: &str) -> String {
    let value = value.trim();
    match kind {
        KeyKind::TraceId | KeyKind::SpanId => value.to_ascii_lowercase(),
        KeyKind::MessageId => value
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_owned(),
        _ => value.to_owned(),
    }
}

/// Joins vendor events to tool calls by the keys on the tool calls' spans; returns the events
/// that joined nothing.
fn join_events(
    spans: &[Span],
    events: &[VendorEvent],
    conversations: &[Conversation],
    turns: &mut [Turn],
    rules: &Rules,
) -> Vec<usize> {
    if events.is_empty() {
        return Vec::new();
    }
    let mut index: HashMap<(KeyKind, &str), Vec<usize>> = HashMap::new();
    for (e, event) in events.iter().enumerate() {
        for (kind, value) in &event.keys {
            index.entry((*kind, value.as_str())).or_default().push(e);
        }
    }
    let mut by_subject: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
    for (e, event) in events.iter().enumerate() {
        if let Some(subject) = &event.subject {
            by_subject
                .entry((event.vendor.as_str(), subject.as_str()))
                .or_default()
                .push(e);
        }
    }
    let mut joined = vec![false; events.len()];
    for turn in turns.iter_mut() {
        for tool in &mut turn.tool_calls {
            let mut best: HashMap<usize, EventJoin> = HashMap::new();
            for (kind, value, carrier) in tool_keys(spans, tool, rules) {
                for &e in index.get(&(kind, value.as_str())).into_iter().flatten() {
                    // A traceparent names the span that started the vendor's work; the trace
                    // alone would join every call of the turn.
                    if kind == KeyKind::TraceId
                        && events[e].keys.iter().any(|(k, _)| *k == KeyKind::SpanId)
                    {
                        continue;
                    }
                    let candidate = EventJoin {
                        event: e,
                        key: kind,
                        value: value.clone(),
                        carrier,
                        weak: false,
                    };
                    match best.get(&e) {
                        Some(current) if key_preference(current.key) <= key_preference(kind) => {}
                        _ => {
                            best.insert(e, candidate);
                        }
                    }
                }
            }
            // Events about the same work (the same vendor and subject) as a joined one belong
            // to the call too, though they may carry no key of their own: Stripe leaves
            // `request` empty on events that asynchronous processing emits.
            let direct: Vec<EventJoin> = best.values().cloned().collect();
            for join in direct {
                let event = &events[join.event];
                let Some(subject) = &event.subject else {
                    continue;
                };
                for &e in by_subject
                    .get(&(event.vendor.as_str(), subject.as_str()))
                    .into_iter()
                    .flatten()
                {
                    best.entry(e).or_insert_with(|| EventJoin {
                        event: e,
                        key: join.key,
                        value: join.value.clone(),
                        carrier: join.carrier,
                        weak: false,
                    });
                }
            }
            let mut found: Vec<EventJoin> = best.into_values().collect();
            found.sort_by_key(|j| (events[j.event].time, j.event));
            for j in &found {
                joined[j.event] = true;
            }
            tool.events = found;
        }
    }

    // Events that name only the conversation go to the tool call of that conversation that
    // was running when they happened: the latest one started before them. A new turn's call
    // thus keeps its own writes, and they are never findings of the aborted turn.
    for (e, event) in events.iter().enumerate() {
        if joined[e] {
            continue;
        }
        let Some(conversation) = event
            .keys
            .iter()
            .filter(|(k, _)| *k == KeyKind::ConversationId)
            .find_map(|(_, v)| conversations.iter().find(|c| c.id == *v))
        else {
            continue;
        };
        let latest = conversation
            .turns
            .iter()
            .flat_map(|t| {
                turns[*t]
                    .tool_calls
                    .iter()
                    .enumerate()
                    .map(move |(c, tool)| (*t, c, tool.span))
            })
            .filter(|(_, _, span)| spans[*span].start <= event.time.saturating_add(event.precision))
            .max_by_key(|(_, _, span)| (spans[*span].start, *span));
        if let Some((t, c, span)) = latest {
            turns[t].tool_calls[c].events.push(EventJoin {
                event: e,
                key: KeyKind::ConversationId,
                value: conversation.id.clone(),
                carrier: span,
                weak: true,
            });
            joined[e] = true;
        }
    }
    (0..events.len()).filter(|e| !joined[*e]).collect()
}

struct Graph<'a> {
    spans: &'a [Span],
    parent: &'a [Option<usize>],
    children: &'a Children,
    incoming_links: &'a FxHashMap<usize, Vec<usize>>,
}

/// The first conversation id of the trace by rule priority, preferring the spans upstream of
/// any outbound request (the agent's own) over the services it called, which may carry
/// session ids of their own.
fn conversation_of(
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
    fn ancestors(&self, span: usize) -> impl Iterator<Item = usize> + '_ {
        // The parent map comes from ids, and a malformed export can make a cycle; the walk
        // stops after as many steps as there are spans.
        let limit = self.spans.len();
        std::iter::successors(self.parent[span], move |p| self.parent[*p]).take(limit)
    }

    /// For each span: no CLIENT or PRODUCER span above it in its trace, i.e. it runs in the
    /// process that started the trace (for an agent's trace: the agent's own work).
    fn upstream_flags(&self) -> Vec<bool> {
        (0..self.spans.len())
            .into_par_iter()
            .map(|i| !self.ancestors(i).any(|a| self.spans[a].kind.is_outbound()))
            .collect()
    }

    fn turns_of_trace(
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
    fn abort_of(&self, turn: &Turn, rules: &Rules) -> Option<Abort> {
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

    /// Everything a tool call caused: its descendants (across services, as trace context
    /// carries them), and through span links into other traces, recursively. Each span is
    /// visited once, so cyclic links end.
    fn downstream(&self, tool: usize) -> Vec<Reached> {
        let spans = self.spans;
        let mut out = Vec::new();
        let mut seen: FxHashSet<usize> = FxHashSet::from_iter([tool]);
        let tool_outbound = spans[tool].kind.is_outbound().then_some(tool);
        let mut queue: VecDeque<(usize, Via, Option<usize>)> =
            VecDeque::from([(tool, Via::Parent, tool_outbound)]);
        while let Some((from, via, outbound)) = queue.pop_front() {
            let next_children = self.children.of(from).iter().map(|c| (*c, via));
            let next_links = self
                .incoming_links
                .get(&from)
                .into_iter()
                .flatten()
                .map(|l| (*l, Via::Link));
            for (next, next_via) in next_children.chain(next_links) {
                if !seen.insert(next) {
                    continue;
                }
                let outbound = outbound.or_else(|| spans[next].kind.is_outbound().then_some(next));
                out.push(Reached {
                    span: next,
                    via: next_via,
                    from,
                    outbound,
                });
                queue.push_back((next, next_via, outbound));
            }
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{
        Attributes, Event, KeyValue, Link, Origin, Resource, SpanKind, Status, StatusCode,
    };
    use std::sync::Arc;

    /// A small builder for synthetic spans in tests.
    pub struct SpanBuilder(pub Span);

    pub fn trace(n: u8) -> TraceId {
        TraceId([n; 16])
    }

    pub fn span(
        trace_n: u8,
        id: u8,
        name: &str,
        service: &str,
        start_ms: u64,
        end_ms: u64,
    ) -> SpanBuilder {
        SpanBuilder(Span {
            trace_id: trace(trace_n),
            span_id: SpanId([id; 8]),
            parent_span_id: None,
            name: name.into(),
            kind: SpanKind::Internal,
            start: start_ms * 1_000_000,
            end: Some(end_ms * 1_000_000),
            status: Status::default(),
            attributes: Attributes::default(),
            resource: Arc::new(Resource {
                service_name: service.to_owned(),
                attributes: Attributes::default(),
            }),
            events: Box::default(),
            links: Box::default(),
            origin: Origin {
                input: Arc::from("test"),
                line: 1,
            },
        })
    }

    impl SpanBuilder {
        pub fn parent(mut self, id: u8) -> Self {
            self.0.parent_span_id = Some(SpanId([id; 8]));
            self
        }
        pub fn kind(mut self, kind: SpanKind) -> Self {
            self.0.kind = kind;
            self
        }
        pub fn attr(mut self, key: &str, value: &str) -> Self {
            self.0.attributes.0.push(KeyValue {
                key: key.into(),
                value: Value::String(value.to_owned()),
            });
            self
        }
        pub fn int(mut self, key: &str, value: i64) -> Self {
            self.0.attributes.0.push(KeyValue {
                key: key.into(),
                value: Value::Int(value),
            });
            self
        }
        pub fn event(mut self, name: &str, at_ms: u64, attrs: &[(&str, &str)]) -> Self {
            let mut events = std::mem::take(&mut self.0.events).into_vec();
            events.push(Event {
                name: name.to_owned(),
                time: at_ms * 1_000_000,
                attributes: Attributes(
                    attrs
                        .iter()
                        .map(|(k, v)| KeyValue {
                            key: (*k).into(),
                            value: Value::String((*v).to_owned()),
                        })
                        .collect(),
                ),
            });
            self.0.events = events.into();
            self
        }
        pub fn link(mut self, trace_n: u8, id: u8) -> Self {
            let mut links = std::mem::take(&mut self.0.links).into_vec();
            links.push(Link {
                trace_id: trace(trace_n),
                span_id: SpanId([id; 8]),
                attributes: Attributes::default(),
            });
            self.0.links = links.into();
            self
        }
        pub fn open(mut self) -> Self {
            self.0.end = None;
            self
        }
        pub fn build(self) -> Span {
            self.0
        }
    }

    pub fn agent_turn(trace_n: u8, conversation: &str, start_ms: u64, end_ms: u64) -> SpanBuilder {
        span(
            trace_n,
            1,
            "invoke_agent support",
            "agent",
            start_ms,
            end_ms,
        )
        .attr("gen_ai.operation.name", "invoke_agent")
        .attr("gen_ai.conversation.id", conversation)
    }

    pub fn tool(trace_n: u8, id: u8, call: &str, start_ms: u64, end_ms: u64) -> SpanBuilder {
        span(
            trace_n,
            id,
            "execute_tool refund",
            "agent",
            start_ms,
            end_ms,
        )
        .parent(1)
        .attr("gen_ai.operation.name", "execute_tool")
        .attr("gen_ai.tool.name", "refund")
        .attr("gen_ai.tool.call.id", call)
    }

    #[test]
    fn conversation_id_is_inherited_by_the_whole_trace_and_turns_are_ordered() {
        let spans = vec![
            agent_turn(2, "c1", 500, 900).build(),
            tool(2, 2, "call_b", 510, 600).build(),
            agent_turn(1, "c1", 0, 400).build(),
            tool(1, 2, "call_a", 10, 100).build(),
        ];
        let joined = join(&spans, &[], &Rules::default());
        assert_eq!(joined.conversations.len(), 1);
        let conversation = &joined.conversations[0];
        assert_eq!(conversation.id, "c1");
        let calls: Vec<&str> = conversation
            .turns
            .iter()
            .map(|t| joined.turns[*t].tool_calls[0].call_id.as_deref().unwrap())
            .collect();
        assert_eq!(calls, ["call_a", "call_b"]);
    }

    #[test]
    fn earliest_abort_signal_wins_and_downstream_server_aborts_do_not_count() {
        let spans = vec![
            agent_turn(1, "c1", 0, 1000)
                .event(
                    "exception",
                    310,
                    &[("exception.type", "asyncio.CancelledError")],
                )
                .event("abort", 300, &[])
                .build(),
            tool(1, 2, "call_a", 10, 305).build(),
            span(1, 3, "POST", "agent", 20, 305)
                .parent(2)
                .kind(SpanKind::Client)
                .build(),
            span(1, 4, "POST /refunds", "payments", 25, 800)
                .parent(3)
                .kind(SpanKind::Server)
                .event("abort", 100, &[])
                .build(),
        ];
        let joined = join(&spans, &[], &Rules::default());
        let abort = joined.turns[0].abort.as_ref().unwrap();
        assert_eq!(abort.time, 300_000_000);
        assert!(abort.signal.contains("\"abort\""), "{}", abort.signal);
    }

    #[test]
    fn javascript_abort_errors_are_recognised_by_type_code_or_message() {
        for attrs in [
            vec![("exception.type", "AbortError"), ("exception.message", "x")],
            vec![("exception.type", "ABORT_ERR")],
            vec![
                ("exception.type", "20"),
                ("exception.message", "This operation was aborted"),
            ],
        ] {
            let spans = vec![
                span(1, 1, "ai.streamText", "chat", 0, 1000)
                    .attr("ai.telemetry.metadata.chatId", "c9")
                    .event("exception", 250, &attrs)
                    .build(),
            ];
            let joined = join(&spans, &[], &Rules::default());
            assert_eq!(joined.conversations[0].id, "c9");
            assert_eq!(
                joined.turns[0].abort.as_ref().map(|a| a.time),
                Some(250_000_000),
                "{attrs:?}"
            );
        }
        let spans = vec![
            span(1, 1, "ai.streamText", "chat", 0, 1000)
                .event(
                    "exception",
                    250,
                    &[("exception.type", "20"), ("exception.message", "quota")],
                )
                .build(),
        ];
        assert!(
            join(&spans, &[], &Rules::default()).turns[0]
                .abort
                .is_none()
        );
        // A timeout is not a user's Stop, though JS words it as an abort.
        for attrs in [
            [
                ("exception.type", "TimeoutError"),
                (
                    "exception.message",
                    "The operation was aborted due to timeout",
                ),
            ],
            [
                ("exception.type", "23"),
                (
                    "exception.message",
                    "The operation was aborted due to timeout",
                ),
            ],
        ] {
            let spans = vec![
                span(1, 1, "ai.streamText", "chat", 0, 1000)
                    .event("exception", 250, &attrs)
                    .build(),
            ];
            assert!(
                join(&spans, &[], &Rules::default()).turns[0]
                    .abort
                    .is_none(),
                "{attrs:?}"
            );
        }
    }

    #[test]
    fn an_error_status_naming_the_cancellation_is_an_abort() {
        let mut root = span(1, 1, "ai.streamText", "chat", 0, 400)
            .attr("ai.telemetry.metadata.chatId", "c9")
            .build();
        root.status = crate::model::Status {
            code: StatusCode::Error,
            message: "AbortError: This operation was aborted".into(),
        };
        let spans = [root.clone()];
        let joined = join(&spans, &[], &Rules::default());
        assert_eq!(
            joined.turns[0].abort.as_ref().map(|a| a.time),
            Some(400_000_000)
        );
        root.status.message = "rate limited".into();
        assert!(
            join(&[root], &[], &Rules::default()).turns[0]
                .abort
                .is_none()
        );
    }

    #[test]
    fn downstream_follows_children_across_services_and_links_without_looping() {
        let spans = vec![
            agent_turn(1, "c1", 0, 1000).build(),
            tool(1, 2, "call_a", 10, 100).build(),
            span(1, 3, "POST", "agent", 20, 90)
                .parent(2)
                .kind(SpanKind::Client)
                .build(),
            span(1, 4, "POST /jobs", "payments", 25, 80)
                .parent(3)
                .kind(SpanKind::Server)
                .build(),
            span(1, 5, "send jobs", "payments", 30, 35)
                .parent(4)
                .kind(SpanKind::Producer)
                .build(),
            // A worker trace linked to the producer, and a link back to close a cycle.
            span(7, 6, "process jobs", "worker", 2000, 2500)
                .kind(SpanKind::Consumer)
                .link(1, 5)
                .build(),
            span(7, 7, "INSERT", "worker", 2100, 2200).parent(6).build(),
            span(1, 8, "audit", "payments", 40, 45)
                .parent(4)
                .link(7, 6)
                .build(),
        ];
        let joined = join(&spans, &[], &Rules::default());
        let tool = &joined
            .turns
            .iter()
            .find(|t| !t.tool_calls.is_empty())
            .unwrap()
            .tool_calls[0];
        let reached: Vec<(u8, Via)> = tool
            .downstream
            .iter()
            .map(|r| (spans[r.span].span_id.0[0], r.via))
            .collect();
        assert_eq!(
            reached,
            [
                (3, Via::Parent),
                (4, Via::Parent),
                (5, Via::Parent),
                (8, Via::Parent),
                (6, Via::Link),
                (7, Via::Link)
            ]
        );
        assert!(tool.downstream.iter().all(|r| r.outbound == Some(2)));
    }

    #[test]
    fn a_trace_without_conversation_id_is_its_own_conversation() {
        let spans = vec![
            span(9, 1, "GET /health", "api", 0, 1)
                .kind(SpanKind::Server)
                .build(),
        ];
        let joined = join(&spans, &[], &Rules::default());
        assert_eq!(joined.conversations[0].id, trace(9).to_string());
        assert_eq!(joined.conversations[0].source, ConversationSource::Trace);
        assert!(joined.conversation_ids().is_empty());
    }
}

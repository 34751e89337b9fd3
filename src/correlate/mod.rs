//! The causal join: spans → conversations → turns → the abort of a turn → the tool calls of
//! that turn → everything each tool call caused, across services (parent/child through W3C
//! trace context) and across traces (span links from queue consumers and workers).
//!
//! A time filter ("everything after the abort") would flag the user's next turn and miss a
//! worker trace that carries no conversation id; following causality does neither.

mod aborts;
mod events;
mod graph;
mod turns;

use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};

pub use aborts::place_aborts;
pub use events::{key_preference, normalise_key};
pub use graph::Children;

use crate::model::{KeyKind, Span, SpanId, TraceId, VendorEvent};
use crate::rules::Rules;
use events::join_events;
use graph::Graph;
use turns::conversation_of;

/// Spans joined into conversations, with the graph the join walked.
#[derive(Debug)]
pub struct Joined<'s> {
    pub spans: &'s [Span],
    /// Same-trace children of each span, by start time.
    pub children: Children,
    /// Same-trace parent of each span, when the parent was exported.
    pub parent: Vec<Option<usize>>,
    /// Conversations, sorted by id.
    pub conversations: Vec<Conversation>,
    pub turns: Vec<Turn>,
    pub events: &'s [VendorEvent],
    /// Vendor events no tool call's keys matched: their keys are probably not captured on
    /// the spans (see `inspect`).
    pub unmatched_events: Vec<usize>,
}

/// A conversation of a list sorted by id (as `Joined::conversations` is).
fn find_conversation<'c>(conversations: &'c [Conversation], id: &str) -> Option<&'c Conversation> {
    conversations
        .binary_search_by(|c| c.id.as_str().cmp(id))
        .ok()
        .map(|i| &conversations[i])
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
    /// Spans a tool rule matches that are part of an outer tool call, so not calls of their own.
    pub nested_tool_spans: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Abort {
    /// The earliest signal's time.
    pub time: u64,
    /// How coarse `time` is: 1 ns for a span's, more for an abort log's.
    pub precision: u64,
    /// The span that recorded the earliest signal; `None` for an abort log's record.
    pub span: Option<usize>,
    /// The earliest signal in words, e.g. `span event "abort" on "invoke_agent support"`.
    pub signal: String,
    /// What shows the Stop, of all the turn's signals.
    pub source: AbortSource,
}

/// What shows a turn's Stop, the strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AbortSource {
    /// A span of the agent records it (an abort event, a cancellation exception or status).
    Recorded,
    /// An abort log records it.
    Log,
    /// Only the agent app's server shows the user leaving.
    Inferred,
}

impl AbortSource {
    pub const ALL: [AbortSource; 3] = [
        AbortSource::Recorded,
        AbortSource::Log,
        AbortSource::Inferred,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AbortSource::Recorded => "recorded",
            AbortSource::Log => "abort_log",
            AbortSource::Inferred => "inferred",
        }
    }
}

impl Abort {
    pub fn inferred(&self) -> bool {
        self.source == AbortSource::Inferred
    }
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
    /// Joined because it names, among its objects, what an event joined to the call is about
    /// (a refund names the payment intent it reverses): it follows up on the call's work and
    /// is never a write of the call itself.
    pub follow_up: bool,
}

/// What a join found, counted for `inspect` and the scan's summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JoinCounts {
    pub agent_turns: u64,
    /// Aborted turns by what shows the Stop.
    pub aborted_recorded: u64,
    pub aborted_by_log: u64,
    pub aborted_inferred: u64,
    /// Tool calls, and the spans a tool rule matched that are part of an outer call.
    pub tool_calls: u64,
    pub nested_tool_spans: u64,
    /// The same in aborted turns only: what an audit reads of a large export in two passes.
    pub aborted_tool_calls: u64,
    pub aborted_nested_tool_spans: u64,
}

impl JoinCounts {
    /// Adds the counts of other conversations (`inspect` joins a large export a group of
    /// conversations at a time).
    pub fn add(&mut self, other: &JoinCounts) {
        self.agent_turns += other.agent_turns;
        self.aborted_recorded += other.aborted_recorded;
        self.aborted_by_log += other.aborted_by_log;
        self.aborted_inferred += other.aborted_inferred;
        self.tool_calls += other.tool_calls;
        self.nested_tool_spans += other.nested_tool_spans;
        self.aborted_tool_calls += other.aborted_tool_calls;
        self.aborted_nested_tool_spans += other.aborted_nested_tool_spans;
    }
}

/// What a scan's summary reads of a join: summed over the groups a large export is joined in
/// (`ingest::FirstPass::scan_groups`), each conversation being in one of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JoinFacts {
    pub counts: JoinCounts,
    /// `Joined::unnamed_aborted_conversations`.
    pub unnamed_aborted_conversations: u64,
    /// Vendor events no tool call's keys matched.
    pub unmatched_events: u64,
}

impl JoinFacts {
    pub fn add(&mut self, other: &JoinFacts) {
        self.counts.add(&other.counts);
        self.unnamed_aborted_conversations += other.unnamed_aborted_conversations;
        self.unmatched_events += other.unmatched_events;
    }
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
    /// It ran from a queue: reached through a span link, or through a PRODUCER handing the
    /// work to a consumer below it.
    pub queued: bool,
    /// The span it was reached from (for indentation by causality).
    pub from: usize,
    /// The first outbound span (CLIENT or PRODUCER) on the path from the tool call: the
    /// request the tool sent. `None` for spans of the tool itself.
    pub outbound: Option<usize>,
}

impl Joined<'_> {
    pub fn has_conversation(&self, id: &str) -> bool {
        self.conversation(id).is_some()
    }

    pub fn conversation(&self, id: &str) -> Option<&Conversation> {
        find_conversation(&self.conversations, id)
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

    /// What the join found, counted.
    pub fn counts(&self) -> JoinCounts {
        let agent_turns = self.turns.iter().filter(|t| t.is_agent_turn);
        let mut counts = JoinCounts {
            agent_turns: agent_turns.clone().count() as u64,
            ..JoinCounts::default()
        };
        for turn in agent_turns {
            counts.tool_calls += turn.tool_calls.len() as u64;
            counts.nested_tool_spans += turn.nested_tool_spans as u64;
            if let Some(abort) = &turn.abort {
                counts.aborted_tool_calls += turn.tool_calls.len() as u64;
                counts.aborted_nested_tool_spans += turn.nested_tool_spans as u64;
                match abort.source {
                    AbortSource::Recorded => counts.aborted_recorded += 1,
                    AbortSource::Log => counts.aborted_by_log += 1,
                    AbortSource::Inferred => counts.aborted_inferred += 1,
                }
            }
        }
        counts
    }

    /// What the summary reads of the join.
    pub fn facts(&self) -> JoinFacts {
        JoinFacts {
            counts: self.counts(),
            unnamed_aborted_conversations: self.unnamed_aborted_conversations(),
            unmatched_events: self.unmatched_events.len() as u64,
        }
    }

    pub fn conversation_ids(&self) -> Vec<&str> {
        self.conversations
            .iter()
            .filter(|c| c.turns.iter().any(|t| self.turns[*t].is_agent_turn))
            .map(|c| c.id.as_str())
            .collect()
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
                    tool.downstream = graph.downstream(tool.span, rules);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{SpanKind, StatusCode};
    use crate::testutil::{agent_turn, span, tool, trace};

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

//! The span graph the join walks: parents and children within a trace, span links across
//! traces, which spans run in the process that started their trace, and everything a span
//! caused.

use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::VecDeque;

use rayon::prelude::*;

use super::{Reached, Via};
use crate::model::{Span, SpanKind};
use crate::rules::Rules;
use crate::rules::evidence::is_consumer;

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
    pub(super) fn new(spans: &[Span], edges: Vec<(usize, usize)>) -> Children {
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

pub(super) struct Graph<'a> {
    pub(super) spans: &'a [Span],
    pub(super) parent: &'a [Option<usize>],
    pub(super) children: &'a Children,
    pub(super) incoming_links: &'a FxHashMap<usize, Vec<usize>>,
}

impl Graph<'_> {
    pub(super) fn ancestors(&self, span: usize) -> impl Iterator<Item = usize> + '_ {
        // The parent map comes from ids, and a malformed export can make a cycle; the walk
        // stops after as many steps as there are spans.
        let limit = self.spans.len();
        std::iter::successors(self.parent[span], move |p| self.parent[*p]).take(limit)
    }

    /// For each span: no CLIENT or PRODUCER span above it in its trace, i.e. it runs in the
    /// process that started the trace (for an agent's trace: the agent's own work).
    pub(super) fn upstream_flags(&self) -> Vec<bool> {
        (0..self.spans.len())
            .into_par_iter()
            .map(|i| !self.ancestors(i).any(|a| self.spans[a].kind.is_outbound()))
            .collect()
    }

    /// Everything a tool call caused: its descendants (across services, as trace context
    /// carries them), and through span links into other traces, recursively. Each span is
    /// visited once, so cyclic links end. Work reached through a link, or handed from a
    /// PRODUCER to a consumer below it in the same trace (Celery), ran from a queue.
    pub(super) fn downstream(&self, tool: usize, rules: &Rules) -> Vec<Reached> {
        let spans = self.spans;
        let mut out = Vec::new();
        let mut seen: FxHashSet<usize> = FxHashSet::from_iter([tool]);
        let tool_outbound = spans[tool].kind.is_outbound().then_some(tool);
        let mut queue: VecDeque<(usize, Via, bool, Option<usize>)> =
            VecDeque::from([(tool, Via::Parent, false, tool_outbound)]);
        while let Some((from, via, queued, outbound)) = queue.pop_front() {
            let from_producer = spans[from].kind == SpanKind::Producer;
            let next_children = self.children.of(from).iter().map(|c| {
                let handed_over = from_producer && is_consumer(&spans[*c], rules);
                (*c, via, queued || handed_over)
            });
            let next_links = self
                .incoming_links
                .get(&from)
                .into_iter()
                .flatten()
                .map(|l| (*l, Via::Link, true));
            for (next, next_via, next_queued) in next_children.chain(next_links) {
                if !seen.insert(next) {
                    continue;
                }
                let outbound = outbound.or_else(|| spans[next].kind.is_outbound().then_some(next));
                out.push(Reached {
                    span: next,
                    via: next_via,
                    queued: next_queued,
                    from,
                    outbound,
                });
                queue.push_back((next, next_via, next_queued, outbound));
            }
        }
        out
    }
}

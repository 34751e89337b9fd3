//! What the model cannot hold as read, settled once the spans that matter are built: a span that
//! ends before it starts, and parents that loop. Each is a decision, said in a diagnostic:
//!
//! - a span that ends before it starts keeps its start and loses its end: it is read as never
//!   ended, so that no commit time, duration or order is taken from a time that cannot be right
//!   (a COMMIT ending at 1 ns was counted as committed before the abort);
//! - a parent cycle within a trace is broken at its earliest-starting span (ties by span id):
//!   that span is read as a child of the trace's root when the trace has exactly one (so a tool
//!   call in the loop stays in its turn), else as a root; the rest of the loop keeps its
//!   parents, so the spans stay joined to the tool call above them.
//!
//! Only the traces that matter are checked, in a whole read as in a two-pass one, so that both
//! report the same diagnostics.

use rustc_hash::{FxHashMap, FxHashSet};

use super::Ingested;
use crate::model::{Code, Diagnostic, SpanId, TraceId};

pub(super) fn check(ingested: &mut Ingested, traces: &FxHashSet<TraceId>) {
    let mut found: Vec<Diagnostic> = Vec::new();
    let spans = &mut ingested.spans;
    let checked: Vec<usize> = (0..spans.len())
        .filter(|i| traces.contains(&spans[*i].trace_id))
        .collect();

    for &i in &checked {
        let span = &mut spans[i];
        if let Some(end) = span.end.filter(|end| *end < span.start) {
            found.push(Diagnostic::warning(
                &span.origin.input,
                Some(span.origin.line),
                Code::InvalidValue,
                format!(
                    "span {:?} (trace {}, span {}) ends at {end}, before it starts at {}: its end is dropped and it is read as never ended",
                    span.name, span.trace_id, span.span_id, span.start
                ),
            ));
            span.end = None;
        }
    }

    let by_id: FxHashMap<(TraceId, SpanId), usize> = checked
        .iter()
        .rev()
        .map(|&i| ((spans[i].trace_id, spans[i].span_id), i))
        .collect();
    let parent_of = |i: usize| {
        spans[i]
            .parent_span_id
            .and_then(|p| by_id.get(&(spans[i].trace_id, p)).copied())
    };
    // Each span has at most one parent: following parents from every span finds each loop once.
    const NEW: u8 = 0;
    const ON_PATH: u8 = 1;
    const DONE: u8 = 2;
    let mut state: FxHashMap<usize, u8> = FxHashMap::default();
    let mut roots = Vec::new();
    for &start in &checked {
        let mut path = Vec::new();
        let mut at = Some(start);
        while let Some(i) = at {
            match state.get(&i).copied().unwrap_or(NEW) {
                NEW => {
                    state.insert(i, ON_PATH);
                    path.push(i);
                    at = parent_of(i);
                }
                ON_PATH => {
                    let loop_start = path.iter().position(|p| *p == i).unwrap_or(0);
                    let cycle = &path[loop_start..];
                    if let Some(&root) = cycle
                        .iter()
                        .min_by_key(|c| (spans[**c].start, spans[**c].span_id.0))
                    {
                        roots.push((root, cycle.len()));
                    }
                    break;
                }
                _ => break,
            }
        }
        for i in path {
            state.insert(i, DONE);
        }
    }
    // The traces' roots as read, before any loop is broken.
    let mut trace_roots: FxHashMap<TraceId, Vec<usize>> = FxHashMap::default();
    for &i in &checked {
        if parent_of(i).is_none() {
            trace_roots.entry(spans[i].trace_id).or_default().push(i);
        }
    }
    for (looped, length) in roots {
        let root = match trace_roots.get(&spans[looped].trace_id).map(Vec::as_slice) {
            Some([root]) => Some((spans[*root].span_id, spans[*root].name.clone())),
            _ => None,
        };
        let span = &mut spans[looped];
        let now = match &root {
            Some((_, name)) => format!("it is read as a child of the trace's root {name:?}"),
            None => "it is read as a root".to_owned(),
        };
        found.push(Diagnostic::warning(
            &span.origin.input,
            Some(span.origin.line),
            Code::InvalidValue,
            format!(
                "span {:?} (trace {}, span {}) is its own ancestor through {length} parent link(s): {now}",
                span.name, span.trace_id, span.span_id
            ),
        ));
        span.parent_span_id = root.map(|(id, _)| id);
    }

    // Each diagnostic goes to its input, in the order of its lines.
    found.sort_by_key(|d| d.line);
    for diagnostic in found {
        if let Some(input) = ingested
            .inputs
            .iter_mut()
            .find(|input| input.path == diagnostic.input)
        {
            input.diagnostics.push(diagnostic);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::InputReport;
    use crate::testutil::{span, trace};

    fn ingested(spans: Vec<crate::model::Span>) -> Ingested {
        let mut ingested = Ingested {
            spans,
            ..Ingested::default()
        };
        ingested.inputs.push(InputReport {
            path: ingested.spans[0].origin.input.to_string(),
            format: crate::ingest::Format::OtlpJsonLines,
            compression: crate::ingest::Compression::None,
            counts: crate::ingest::Counts::default(),
            diagnostics: Vec::new(),
            error: None,
        });
        ingested
    }

    #[test]
    fn a_span_ending_before_it_starts_is_read_as_never_ended() {
        let mut read = ingested(vec![span(1, 1, "COMMIT", "db", 500, 0).build()]);
        read.spans[0].end = Some(1);
        check(&mut read, &FxHashSet::from_iter([trace(1)]));
        assert_eq!(read.spans[0].end, None);
        let diagnostics = &read.inputs[0].diagnostics;
        assert_eq!(diagnostics.len(), 1);
        assert!(diagnostics[0].message.contains("before it starts"));
    }

    #[test]
    fn a_parent_loop_is_broken_at_its_earliest_span_and_said() {
        let mut read = ingested(vec![
            span(1, 1, "turn", "agent", 100, 900).build(),
            span(1, 2, "tool", "agent", 110, 800).parent(3).build(),
            span(1, 3, "POST", "agent", 120, 700).parent(2).build(),
            span(1, 4, "INSERT", "api", 130, 140).parent(3).build(),
        ]);
        check(&mut read, &FxHashSet::from_iter([trace(1)]));
        // Span 2 starts first in the loop: it goes under the trace's one root.
        assert_eq!(read.spans[1].parent_span_id, Some(read.spans[0].span_id));
        assert_eq!(read.spans[2].parent_span_id, Some(read.spans[1].span_id));
        assert_eq!(read.inputs[0].diagnostics.len(), 1);
        assert!(
            read.inputs[0].diagnostics[0]
                .message
                .contains("child of the trace's root \"turn\"")
        );
        // A loop with no root beside it: its earliest span becomes the root.
        let mut alone = ingested(vec![
            span(3, 6, "a", "x", 10, 20).parent(7).build(),
            span(3, 7, "b", "x", 5, 20).parent(6).build(),
        ]);
        check(&mut alone, &FxHashSet::from_iter([trace(3)]));
        assert_eq!(alone.spans[1].parent_span_id, None);
        assert!(alone.spans[0].parent_span_id.is_some());
        // A trace that does not matter is left as it is.
        let mut other = ingested(vec![span(2, 5, "self", "x", 1, 2).parent(5).build()]);
        check(&mut other, &FxHashSet::default());
        assert!(other.spans[0].parent_span_id.is_some());
        assert!(other.inputs[0].diagnostics.is_empty());
    }
}

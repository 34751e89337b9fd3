//! Putting the inputs together: spans read twice (Collector retries, overlapping exports) are
//! kept once, in input order, whatever the threads did.

use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::{HashSet, hash_map};

use super::{Format, Ingested, InputReport};
use crate::model::{
    AbortRecord, Attributes, Code, Diagnostic, Span, SpanId, TraceId, Value, VendorEvent,
};

/// What reading one input gave.
#[derive(Debug)]
pub(super) struct InputRead {
    pub(super) report: InputReport,
    pub(super) spans: Vec<Span>,
    pub(super) events: Vec<VendorEvent>,
    pub(super) aborts: Vec<AbortRecord>,
}

/// Combines what each input gave, in input order, keeping the first copy of a span read twice
/// (see `ingest_inputs`); `conversations`: how many conversation ids the inputs' spans name.
pub(super) fn merge_inputs(results: Vec<InputRead>, conversations: u64) -> Ingested {
    let mut seen: FxHashMap<(TraceId, SpanId, u64), usize> = FxHashMap::default();
    // Vendor events by vendor and id: a webhook delivered twice, or two overlapping exports of
    // a vendor's log, is one event.
    let mut seen_events: FxHashMap<(String, String), usize> = FxHashMap::default();
    let mut all_traces = FxHashSet::default();
    let mut all_services = HashSet::new();
    let mut ingested = Ingested::default();
    for InputRead {
        mut report,
        mut spans,
        events,
        aborts,
    } in results
    {
        for event in events {
            // Ids the readers made up (`@line`) name nothing across inputs.
            if event.id.starts_with('@') {
                ingested.events.push(event);
                continue;
            }
            match seen_events.entry((event.vendor.clone(), event.id.clone())) {
                hash_map::Entry::Occupied(first) => {
                    // Counted once, as a duplicate, not as an event read.
                    report.counts.duplicates += 1;
                    report.counts.vendor_events -= 1;
                    if let Some(n) = report.counts.vendors.get_mut(&event.vendor) {
                        *n -= 1;
                    }
                    let kept = &ingested.events[*first.get()];
                    if !same_event(kept, &event) {
                        report.diagnostics.push(conflicting_event(kept, &event));
                    }
                }
                hash_map::Entry::Vacant(slot) => {
                    slot.insert(ingested.events.len());
                    ingested.events.push(event);
                }
            }
        }
        ingested.aborts.extend(aborts);
        // Duplicates are dropped in place: the spans of a large input are most of the memory
        // an audit holds, and are not copied.
        let base = ingested.spans.len();
        let mut keep = vec![true; spans.len()];
        // Where each span kept from this input was, by its position among those kept.
        let mut kept_at: Vec<usize> = Vec::with_capacity(spans.len());
        for (i, span) in spans.iter().enumerate() {
            match seen.entry((span.trace_id, span.span_id, span.start)) {
                hash_map::Entry::Occupied(first) => {
                    report.counts.duplicates += 1;
                    keep[i] = false;
                    let kept = match first.get().checked_sub(base) {
                        None => &ingested.spans[*first.get()],
                        Some(local) => &spans[kept_at[local]],
                    };
                    if !same_content(kept, span) {
                        report
                            .diagnostics
                            .push(conflicting_duplicate(kept, span, report.format));
                    }
                }
                hash_map::Entry::Vacant(slot) => {
                    slot.insert(base + kept_at.len());
                    kept_at.push(i);
                }
            }
        }
        drop(kept_at);
        let mut flags = keep.into_iter();
        spans.retain(|_| flags.next().unwrap_or(false));
        let mut traces = FxHashSet::default();
        let mut services = HashSet::new();
        for span in &spans {
            traces.insert(span.trace_id);
            services.insert(span.service());
            *report.counts.kinds.entry(span.kind.as_str()).or_default() += 1;
            report.counts.events += span.events.len() as u64;
            report.counts.links += span.links.len() as u64;
        }
        report.counts.traces = traces.len() as u64;
        report.counts.services = services.len() as u64;
        all_services.extend(services.into_iter().map(str::to_owned));
        ingested.total.add(&report.counts);
        all_traces.extend(traces);
        ingested.inputs.push(report);
        if ingested.spans.is_empty() {
            ingested.spans = spans;
        } else {
            ingested.spans.append(&mut spans);
        }
    }
    ingested.conversations = conversations;
    // Traces and services are distinct counts: a trace split over two files is one trace.
    ingested.total.traces = all_traces.len() as u64;
    ingested.total.services = all_services.len() as u64;
    ingested
}

/// Whether two vendor events are the same record, wherever each was read.
fn same_event(a: &VendorEvent, b: &VendorEvent) -> bool {
    a.vendor == b.vendor
        && a.id == b.id
        && a.kind == b.kind
        && a.role == b.role
        && a.time == b.time
        && a.precision == b.precision
        && a.keys == b.keys
        && a.subject == b.subject
}

fn conflicting_event(kept: &VendorEvent, dropped: &VendorEvent) -> Diagnostic {
    Diagnostic::warning(
        &dropped.origin.input,
        Some(dropped.origin.line),
        Code::ConflictingDuplicate,
        format!(
            "{} event {} ({:?}) has the id of the event read from {} line {} ({:?}), but different contents; the first is kept and this one dropped",
            dropped.vendor,
            dropped.id,
            dropped.kind,
            kept.origin.input,
            kept.origin.line,
            kept.kind
        ),
    )
}

fn conflicting_duplicate(kept: &Span, dropped: &Span, format: Format) -> Diagnostic {
    let (line, at) = if format.is_binary() {
        (None, format!("message {}: ", dropped.origin.line))
    } else {
        (Some(dropped.origin.line), String::new())
    };
    Diagnostic::warning(
        &dropped.origin.input,
        line,
        Code::ConflictingDuplicate,
        format!(
            "{at}span {:?} (trace {}, span {}) has the trace id, span id and start of span {:?} read from {} (line or message {}), but different contents; the first is kept and this one dropped",
            dropped.name,
            dropped.trace_id,
            dropped.span_id,
            kept.name,
            kept.origin.input,
            kept.origin.line
        ),
    )
}

/// Whether two spans are the same record (wherever each was read): NaN attributes compare
/// equal to themselves, so retried copies of a span with a NaN are still plain duplicates.
fn same_content(a: &Span, b: &Span) -> bool {
    a.trace_id == b.trace_id
        && a.span_id == b.span_id
        && a.parent_span_id == b.parent_span_id
        && a.name == b.name
        && a.kind == b.kind
        && a.start == b.start
        && a.end == b.end
        && a.status == b.status
        && attributes_eq(&a.attributes, &b.attributes)
        && a.resource.service_name == b.resource.service_name
        && attributes_eq(&a.resource.attributes, &b.resource.attributes)
        && a.events.len() == b.events.len()
        && a.events.iter().zip(&b.events).all(|(x, y)| {
            x.name == y.name && x.time == y.time && attributes_eq(&x.attributes, &y.attributes)
        })
        && a.links.len() == b.links.len()
        && a.links.iter().zip(&b.links).all(|(x, y)| {
            x.trace_id == y.trace_id
                && x.span_id == y.span_id
                && attributes_eq(&x.attributes, &y.attributes)
        })
}

fn attributes_eq(a: &Attributes, b: &Attributes) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b.iter())
            .all(|(x, y)| x.key == y.key && value_eq(&x.value, &y.value))
}

fn value_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Double(x), Value::Double(y)) => x == y || x.to_bits() == y.to_bits(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| value_eq(x, y))
        }
        (Value::KvList(x), Value::KvList(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|(x, y)| x.key == y.key && value_eq(&x.value, &y.value))
        }
        _ => a == b,
    }
}

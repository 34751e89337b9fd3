//! What the Jaeger and Zipkin readers share: 64- or 128-bit hex ids left-padded to OTLP's
//! widths, microsecond times turned into nanoseconds, diagnostics tied to a line, and the
//! treatment of span ids that a client and a server share.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::Value as Json;

use super::Parsed;
use super::json_text::locate::Locator;
use crate::model::diagnostic::{Code, Diagnostic};
use crate::model::{KeyValue, Span, SpanId, SpanKind, TraceId, Value};

/// The attribute that keeps the id a shared server span was exported with (see
/// `resolve_shared`), so a finding can be matched with what the Zipkin or Jaeger UI shows.
pub(crate) const SHARED_ID_ATTRIBUTE: &str = "abortaudit.shared_span_id";

/// A Jaeger or Zipkin time or duration in microseconds, as nanoseconds. Integers (numbers or
/// decimal strings) only, and a float only when it holds an exact integer: anything else
/// would lose or invent precision.
pub(crate) fn micros(value: &Json) -> Result<u64, String> {
    let us = match value {
        Json::Number(n) => {
            if let Some(u) = n.as_u64() {
                u
            } else if n.as_i64().is_some() {
                return Err(format!("{n} is negative"));
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                // Below 2^53 every integer is exact in an f64.
                if f.fract() == 0.0 && (0.0..9_007_199_254_740_992.0).contains(&f) {
                    f as u64
                } else {
                    return Err(format!(
                        "{n} is not a whole number of microseconds (or too large to be exact)"
                    ));
                }
            }
        }
        Json::String(s) => s
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("{s:?} is not a whole number of microseconds"))?,
        other => return Err(format!("{other} is not a number of microseconds")),
    };
    us.checked_mul(1000).ok_or_else(|| {
        format!("{us} microseconds is beyond what 64-bit nanoseconds can hold (past the year 2554)")
    })
}

/// JSON text of a value for messages, cut short.
pub(crate) fn describe(value: &Json) -> String {
    let mut s = value.to_string();
    if s.len() > 60 {
        let mut cut = 57;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// The end of a span given as a start and a duration in microseconds (Jaeger, Zipkin). With no
/// duration, or one that does not add up, the span is taken as still open, and that is said.
pub(crate) fn end_from_duration(
    record: &mut Record<'_, '_>,
    line: u64,
    label: &str,
    start_field: &str,
    start: u64,
    duration: Option<&Json>,
) -> Option<u64> {
    match duration.map(micros) {
        Some(Ok(d)) => match start.checked_add(d) {
            Some(end) => Some(end),
            None => {
                record.error(
                    line,
                    Code::InvalidValue,
                    format!(
                        "{label}: {start_field} + duration overflows; it is taken as still open"
                    ),
                );
                None
            }
        },
        None => {
            record.warn(
                line,
                Code::MissingTime,
                format!("{label} has no duration; it is taken as still open"),
            );
            None
        }
        Some(Err(why)) => {
            record.error(
                line,
                Code::InvalidValue,
                format!("{label}: duration {why}; it is taken as still open"),
            );
            None
        }
    }
}

/// Diagnostics and spans of one JSON record (a document, or one line of JSON Lines).
pub(crate) struct Record<'p, 't> {
    pub input: &'p Arc<str>,
    pub locator: Locator<'t>,
    pub out: &'p mut Parsed,
    pub pending: Vec<Pending>,
}

impl<'p, 't> Record<'p, 't> {
    pub(crate) fn new(
        input: &'p Arc<str>,
        text: &'t [u8],
        first_line: u64,
        out: &'p mut Parsed,
    ) -> Self {
        Record {
            input,
            locator: Locator::starting_at_line(text, first_line),
            out,
            pending: Vec::new(),
        }
    }

    pub(crate) fn error(&mut self, line: u64, code: Code, message: String) {
        self.out
            .diagnostics
            .push(Diagnostic::error(self.input, Some(line), code, message));
    }

    pub(crate) fn warn(&mut self, line: u64, code: Code, message: String) {
        self.out
            .diagnostics
            .push(Diagnostic::warning(self.input, Some(line), code, message));
    }

    /// The line where the next thing not found by its id is: where the search stands.
    pub(crate) fn line(&self) -> u64 {
        self.locator.cursor_line
    }

    /// Moves the spans read to the output, after giving shared server spans their own ids.
    pub(crate) fn finish(mut self) {
        resolve_shared(&mut self.pending);
        self.out
            .spans
            .extend(self.pending.into_iter().map(|p| p.span));
    }
}

/// A span read from a record, before shared ids are resolved.
pub(crate) struct Pending {
    pub span: Span,
    /// Zipkin's `"shared": true`: the server side of an RPC, reusing the client's span id.
    pub shared: bool,
}

/// Zipkin's B3 propagation (and Jaeger clients in Zipkin mode) lets the server side of an RPC
/// reuse the client's span id: the server span has `"shared": true` (Zipkin) or is a SERVER
/// span whose id a CLIENT span of the same trace already has (Jaeger, or Zipkin instrumentation
/// that omits the flag). Left as is, the two would be one node in the join graph (the server's
/// commit would look like the client's own work) and could even collapse in deduplication.
///
/// So, as Zipkin's and Jaeger's own UIs do, the server span gets an id of its own, derived
/// deterministically from the trace id, the shared id and its service (the same input always
/// gives the same id, whatever file or thread it was read in), and the client span becomes its
/// parent, which is what the RPC is. Spans whose parent is the shared id are the server's
/// children when they run in the server's service (Zipkin's rule: same local endpoint), or when
/// no client span with that id was read; otherwise they stay under the client. The id the span
/// was exported with is kept in the `abortaudit.shared_span_id` attribute.
pub(crate) fn resolve_shared(spans: &mut [Pending]) {
    let mut by_id: HashMap<(TraceId, SpanId), Vec<usize>> = HashMap::new();
    for (i, p) in spans.iter().enumerate() {
        by_id
            .entry((p.span.trace_id, p.span.span_id))
            .or_default()
            .push(i);
    }
    let is_shared: Vec<bool> = spans
        .iter()
        .enumerate()
        .map(|(i, p)| {
            p.shared
                || (p.span.kind == SpanKind::Server
                    && by_id[&(p.span.trace_id, p.span.span_id)].iter().any(|&j| {
                        j != i && !spans[j].shared && spans[j].span.kind == SpanKind::Client
                    }))
        })
        .collect();
    if !is_shared.contains(&true) {
        return;
    }
    // The ids that had a non-shared span (a client) in this record.
    let clients: HashSet<(TraceId, SpanId)> = spans
        .iter()
        .zip(&is_shared)
        .filter(|(_, shared)| !**shared)
        .map(|(p, _)| (p.span.trace_id, p.span.span_id))
        .collect();
    let mut renamed: HashMap<(TraceId, SpanId), Vec<(SpanId, String)>> = HashMap::new();
    for (p, _) in spans.iter_mut().zip(&is_shared).filter(|(_, s)| **s) {
        let original = p.span.span_id;
        let derived = SpanId(derive_span_id(p.span.trace_id, original, p.span.service()));
        p.span.span_id = derived;
        p.span.parent_span_id = Some(original);
        p.span.attributes.0.push(KeyValue {
            key: SHARED_ID_ATTRIBUTE.into(),
            value: Value::String(original.to_string()),
        });
        renamed
            .entry((p.span.trace_id, original))
            .or_default()
            .push((derived, p.span.service().to_owned()));
    }
    for (p, _) in spans.iter_mut().zip(&is_shared).filter(|(_, s)| !**s) {
        let Some(parent) = p.span.parent_span_id else {
            continue;
        };
        let key = (p.span.trace_id, parent);
        let Some(servers) = renamed.get(&key) else {
            continue;
        };
        let mut same_service = servers.iter().filter(|(_, s)| s == p.span.service());
        let target = match (same_service.next(), same_service.next()) {
            (Some((id, _)), None) => Some(*id),
            _ if !clients.contains(&key) && servers.len() == 1 => Some(servers[0].0),
            _ => None,
        };
        if let Some(id) = target {
            p.span.parent_span_id = Some(id);
        }
    }
}

/// A span id for the server side of a shared span: FNV-1a over the trace id, the shared id and
/// the service, finished with SplitMix64's mixer; never zero and never the shared id itself.
fn derive_span_id(trace: TraceId, shared: SpanId, service: &str) -> [u8; 8] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in b"abortaudit/shared-span\0"
        .iter()
        .chain(&trace.0)
        .chain(&shared.0)
        .chain(service.as_bytes())
    {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    let original = u64::from_be_bytes(shared.0);
    if h == 0 || h == original {
        h = h.wrapping_add(0x9e37_79b9_7f4a_7c15) | 1;
    }
    h.to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_are_exact_nanoseconds() {
        assert_eq!(
            micros(&serde_json::json!(1605223981761425u64)),
            Ok(1605223981761425000)
        );
        assert_eq!(micros(&serde_json::json!("5")), Ok(5000));
        assert_eq!(micros(&serde_json::json!(5.0)), Ok(5000));
        assert!(micros(&serde_json::json!(5.5)).is_err());
        assert!(micros(&serde_json::json!(-1)).is_err());
        assert!(micros(&serde_json::json!(u64::MAX)).is_err());
        assert!(micros(&serde_json::json!(null)).is_err());
    }

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        let t = TraceId([1; 16]);
        let s = SpanId([2; 8]);
        assert_eq!(derive_span_id(t, s, "a"), derive_span_id(t, s, "a"));
        assert_ne!(derive_span_id(t, s, "a"), derive_span_id(t, s, "b"));
        assert_ne!(derive_span_id(t, s, "a"), s.0);
    }
}

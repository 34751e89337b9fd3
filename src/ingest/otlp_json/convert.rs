//! OTLP/JSON records as serde read them, turned into the span model with a diagnostic for
//! every value that cannot be taken as written.

use std::borrow::Cow;
use std::sync::Arc;

use base64::Engine as _;

use super::super::Parsed;
use super::super::json_text::locate::Locator;
use super::wire::{
    Flexible, KIND_NAMES, STATUS_NAMES, WholeEnvelope, WireAnyValue, WireKeyValue, WireResource,
    WireSpan,
};
use crate::model::ids::decode_id;
use crate::model::semconv::SERVICE_NAME;
use crate::model::{
    Attributes, Code, Diagnostic, Event, KeyValue, Link, Origin, Resource, Span, SpanId, SpanKind,
    Status, StatusCode, TraceId, Value,
};

/// Where the records being converted sit in the input.
pub(super) enum Position<'t> {
    /// JSON Lines: every span of the record is on this line.
    Line(u64),
    /// One pretty-printed document: spans are located by searching the text.
    Document(Locator<'t>),
}

pub(super) struct Converter<'p, 't> {
    pub(super) input: &'p Arc<str>,
    pub(super) position: Position<'t>,
    pub(super) out: &'p mut Parsed,
}

impl Converter<'_, '_> {
    pub(super) fn diag(&mut self, line: u64, code: Code, message: String) {
        self.out
            .diagnostics
            .push(Diagnostic::error(self.input, Some(line), code, message));
    }

    fn warn(&mut self, line: u64, code: Code, message: String) {
        self.out
            .diagnostics
            .push(Diagnostic::warning(self.input, Some(line), code, message));
    }

    fn field_line(&self, span_line: u64, keys: &[&str], raw: &str) -> u64 {
        match &self.position {
            Position::Line(line) => *line,
            Position::Document(locator) => locator
                .find_in_span(keys, raw)
                .map_or(span_line, |(_, l)| l),
        }
    }

    fn span_line(&mut self, raw_span_id: &str) -> u64 {
        match &mut self.position {
            Position::Line(line) => *line,
            Position::Document(locator) => locator.next_span(&["spanId", "span_id"], raw_span_id),
        }
    }

    /// Converts a record read in full.
    pub(super) fn envelope(&mut self, envelope: WholeEnvelope<'_>) {
        self.envelope_with(envelope, &mut |_| {});
    }

    /// Converts a record read in full, telling `built` of each span, in order, whether it
    /// was built (its ids are usable).
    pub(super) fn envelope_with(
        &mut self,
        envelope: WholeEnvelope<'_>,
        built: &mut dyn FnMut(bool),
    ) {
        for mut group in envelope.into_resource_spans() {
            let resource = self.resource(group.resource.take());
            for span in group.spans() {
                built(self.span(span, &resource));
            }
        }
    }

    pub(super) fn resource(&mut self, wire: Option<WireResource<'_>>) -> Arc<Resource> {
        let attributes = self.attributes(wire.and_then(|r| r.attributes), self.current_line());
        let service_name = attributes
            .text(SERVICE_NAME)
            .map(Cow::into_owned)
            .unwrap_or_else(|| "unknown_service".to_owned());
        Arc::new(Resource {
            service_name,
            attributes,
        })
    }

    pub(super) fn current_line(&self) -> u64 {
        match &self.position {
            Position::Line(line) => *line,
            Position::Document(locator) => locator.cursor_line,
        }
    }

    /// Converts a span; whether it was built (its ids are usable) and added to the spans.
    pub(super) fn span(&mut self, wire: WireSpan<'_>, resource: &Arc<Resource>) -> bool {
        self.out.spans_read += 1;
        let name = wire.name.as_deref().unwrap_or("").to_owned();
        let raw_span_id = wire.span_id.as_deref().unwrap_or("");
        let line = self.span_line(raw_span_id);

        let trace_id = self.id::<16>(
            &wire.trace_id,
            &name,
            line,
            "traceId",
            &["traceId", "trace_id"],
        );
        let span_id = self.id::<8>(&wire.span_id, &name, line, "spanId", &["spanId", "span_id"]);
        let parent_span_id = match wire.parent_span_id.as_deref() {
            None | Some("") => None,
            Some(raw) => match decode_id::<8>(raw) {
                Ok(id) => Some(SpanId(id)),
                Err(why) => {
                    let at = self.field_line(line, &["parentSpanId", "parent_span_id"], raw);
                    self.warn(
                        at,
                        Code::InvalidId,
                        format!(
                            "span {name:?}: parentSpanId {raw:?} {why}; the span is kept as a root of its trace"
                        ),
                    );
                    None
                }
            },
        };

        let start = match wire.start_time_unix_nano.as_ref().map(Flexible::as_time) {
            Some(Ok(t)) => t,
            None => {
                self.warn(
                    line,
                    Code::MissingTime,
                    format!("span {name:?} has no startTimeUnixNano; its start is taken as 0"),
                );
                0
            }
            Some(Err(why)) => {
                self.diag(
                    line,
                    Code::InvalidValue,
                    format!("span {name:?}: startTimeUnixNano {why}; its start is taken as 0"),
                );
                0
            }
        };
        let end = match wire.end_time_unix_nano.as_ref().map(Flexible::as_time) {
            // Proto3 writes an unset end as 0; either way the span was never ended.
            Some(Ok(0)) | None => {
                self.warn(
                    line,
                    Code::MissingTime,
                    format!("span {name:?} has no endTimeUnixNano; it is taken as still open"),
                );
                None
            }
            Some(Ok(t)) => Some(t),
            Some(Err(why)) => {
                self.diag(
                    line,
                    Code::InvalidValue,
                    format!("span {name:?}: endTimeUnixNano {why}; it is taken as still open"),
                );
                None
            }
        };

        let kind = match &wire.kind {
            None => SpanKind::Unspecified,
            Some(k) => match k
                .as_enum("SPAN_KIND_", KIND_NAMES)
                .and_then(SpanKind::from_otlp)
            {
                Some(kind) => kind,
                None => {
                    self.diag(
                        line,
                        Code::InvalidValue,
                        format!(
                            "span {name:?}: kind {} is not a SpanKind (0-5 or SPAN_KIND_*)",
                            k.describe()
                        ),
                    );
                    SpanKind::Unspecified
                }
            },
        };

        let status = match wire.status {
            None => Status::default(),
            Some(status) => {
                let code = match &status.code {
                    None => StatusCode::Unset,
                    Some(c) => match c
                        .as_enum("STATUS_CODE_", STATUS_NAMES)
                        .and_then(StatusCode::from_otlp)
                    {
                        Some(code) => code,
                        None => {
                            self.diag(
                                line,
                                Code::InvalidValue,
                                format!(
                                    "span {name:?}: status code {} is not a StatusCode (0-2 or STATUS_CODE_*)",
                                    c.describe()
                                ),
                            );
                            StatusCode::Unset
                        }
                    },
                };
                Status {
                    code,
                    message: status.message.as_deref().unwrap_or_default().into(),
                }
            }
        };

        let attributes = self.attributes(wire.attributes, line);
        let mut events = Vec::new();
        for event in wire.events.into_iter().flatten() {
            let event_name = event.name.as_deref().unwrap_or("").to_owned();
            let time = match event.time_unix_nano.as_ref().map(Flexible::as_time) {
                Some(Ok(t)) => t,
                other => {
                    let why = match other {
                        Some(Err(why)) => why,
                        _ => "is missing".to_owned(),
                    };
                    self.diag(
                        line,
                        Code::InvalidValue,
                        format!("span {name:?}: event {event_name:?} timeUnixNano {why}; the event is ignored"),
                    );
                    continue;
                }
            };
            let attributes = self.attributes(event.attributes, line);
            events.push(Event {
                name: event_name,
                time,
                attributes,
            });
        }
        let mut links = Vec::new();
        for link in wire.links.into_iter().flatten() {
            let ids = (
                link.trace_id.as_deref().map(decode_id::<16>),
                link.span_id.as_deref().map(decode_id::<8>),
            );
            match ids {
                (Some(Ok(t)), Some(Ok(s))) => {
                    let attributes = self.attributes(link.attributes, line);
                    links.push(Link {
                        trace_id: TraceId(t),
                        span_id: SpanId(s),
                        attributes,
                    });
                }
                (t, s) => {
                    let (field, raw, why) = match (t, s) {
                        (None, _) => ("traceId", "", "is missing".to_owned()),
                        (Some(Err(why)), _) => {
                            ("traceId", link.trace_id.as_deref().unwrap_or(""), why)
                        }
                        (_, None) => ("spanId", "", "is missing".to_owned()),
                        (_, Some(Err(why))) => {
                            ("spanId", link.span_id.as_deref().unwrap_or(""), why)
                        }
                        _ => unreachable!("both ids decoded"),
                    };
                    self.diag(
                        line,
                        Code::InvalidId,
                        format!(
                            "span {name:?}: link {field} {raw:?} {why}; the link is not followed"
                        ),
                    );
                }
            }
        }

        let (Some(trace_id), Some(span_id)) = (trace_id, span_id) else {
            self.out.spans_unjoinable += 1;
            return false;
        };
        let name = self.out.intern(&name);
        self.out.spans.push(Span {
            trace_id: TraceId(trace_id),
            span_id: SpanId(span_id),
            parent_span_id,
            name,
            kind,
            start,
            end,
            status,
            attributes,
            resource: Arc::clone(resource),
            events: events.into(),
            links: links.into(),
            origin: Origin {
                input: Arc::clone(self.input),
                line,
            },
        });
        true
    }

    fn id<const N: usize>(
        &mut self,
        raw: &Option<Cow<'_, str>>,
        span_name: &str,
        span_line: u64,
        field: &str,
        keys: &[&str],
    ) -> Option<[u8; N]> {
        let raw = raw.as_deref().unwrap_or("");
        match decode_id::<N>(raw) {
            Ok(id) => Some(id),
            Err(why) => {
                let line = if raw.is_empty() {
                    span_line
                } else {
                    self.field_line(span_line, keys, raw)
                };
                self.diag(
                    line,
                    Code::InvalidId,
                    format!(
                        "span {span_name:?}: {field} {raw:?} {why}; the span is not used for joins"
                    ),
                );
                None
            }
        }
    }

    fn attributes(&mut self, wire: Option<Vec<WireKeyValue<'_>>>, line: u64) -> Attributes {
        let wire = wire.unwrap_or_default();
        let mut out = Vec::with_capacity(wire.len());
        for kv in wire {
            let value = match kv.value {
                Some(v) => self.value(v, &kv.key, line),
                None => Value::Empty,
            };
            let key = self.out.intern(&kv.key);
            out.push(KeyValue { key, value });
        }
        Attributes(out)
    }

    fn value(&mut self, wire: WireAnyValue<'_>, key: &str, line: u64) -> Value {
        if let Some(s) = wire.string_value {
            return Value::String(s.into_owned());
        }
        if let Some(b) = wire.bool_value {
            return match b.as_bool() {
                Some(b) => Value::Bool(b),
                None => self.bad_value(key, line, "boolValue", &b),
            };
        }
        if let Some(i) = wire.int_value {
            return match i.as_i64() {
                Some(i) => Value::Int(i),
                None => self.bad_value(key, line, "intValue", &i),
            };
        }
        if let Some(d) = wire.double_value {
            return match d.as_f64() {
                Some(d) => Value::Double(d),
                None => self.bad_value(key, line, "doubleValue", &d),
            };
        }
        if let Some(b) = wire.bytes_value {
            return match base64::engine::general_purpose::STANDARD.decode(b.as_bytes()) {
                Ok(bytes) => Value::Bytes(bytes),
                Err(_) => {
                    self.diag(
                        line,
                        Code::InvalidValue,
                        format!(
                            "attribute {key:?}: bytesValue is not base64; the value is ignored"
                        ),
                    );
                    Value::Empty
                }
            };
        }
        if let Some(array) = wire.array_value {
            // Collected into a fresh vector: `collect` would reuse the wire values' allocation,
            // several times the size of the values, for as long as the span lives.
            let values = array.values.unwrap_or_default();
            let mut out = Vec::with_capacity(values.len());
            for v in values {
                out.push(self.value(v, key, line));
            }
            return Value::Array(out);
        }
        if let Some(kvlist) = wire.kvlist_value {
            return Value::KvList(self.attributes(kvlist.values, line).0);
        }
        Value::Empty
    }

    fn bad_value(&mut self, key: &str, line: u64, field: &str, got: &Flexible) -> Value {
        self.diag(
            line,
            Code::InvalidValue,
            format!(
                "attribute {key:?}: {field} {} is not valid; the value is ignored",
                got.describe()
            ),
        );
        Value::Empty
    }
}

//! Zipkin v2 JSON, as the Zipkin API (`/api/v2/trace/{id}`, `/api/v2/traces`) and its
//! reporters write it: a list of spans, a list of traces (lists of spans), or a single span.
//!
//! Times are microseconds, turned into nanoseconds with checked arithmetic. A span without a
//! `timestamp` (Zipkin allows it for spans that only carry annotations) starts at its first
//! annotation, or at 0 if it has none; one without a `duration` is open. Both are reported.
//! `localEndpoint.serviceName` is the service; `remoteEndpoint` becomes `peer.service`,
//! `net.peer.ip` and `net.peer.port`, as the Collector's Zipkin receiver names them.
//! Annotations become events; tags become string attributes, except `error` (the status,
//! with its message) and `otel.status_code`/`otel.status_description`. Shared server spans get
//! their own ids: see `foreign::resolve_shared`.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value as Json};

use super::Parsed;
use super::foreign::{Pending, Record, describe, end_from_duration, micros};
use super::jaeger::{span_kind, take_kind_and_status};
use crate::model::diagnostic::Code;
use crate::model::ids::padded_id;
use crate::model::{
    Attributes, Event, KeyValue, Origin, Resource, Span, SpanId, SpanKind, TraceId, Value,
};

type Object = Map<String, Json>;

/// Whether a JSON object is a Zipkin v2 span.
pub(crate) fn is_span(o: &Object) -> bool {
    o.contains_key("traceId")
        && o.contains_key("id")
        && (o.contains_key("localEndpoint")
            || o.contains_key("timestamp")
            || o.contains_key("duration")
            || o.contains_key("kind"))
}

/// Zipkin v1 (Thrift-era JSON) spans: `binaryAnnotations`, or annotations with endpoints.
pub(crate) fn is_v1_span(o: &Object) -> bool {
    o.contains_key("binaryAnnotations")
        || o.get("annotations")
            .and_then(Json::as_array)
            .and_then(|a| a.first())
            .is_some_and(|a| a.get("endpoint").is_some())
}

/// Whether a JSON value is Zipkin JSON: `Ok(Some(shape))` for v2, `Err` naming v1.
pub(crate) fn sniff(value: &Json) -> Result<Option<&'static str>, String> {
    let first_span = match value {
        Json::Object(o) => Some((o, "a single span")),
        Json::Array(items) => match items.first() {
            Some(Json::Object(o)) => Some((o, "a list of spans")),
            Some(Json::Array(trace)) => match trace.first() {
                Some(Json::Object(o)) => Some((o, "a list of traces")),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    };
    match first_span {
        Some((o, _)) if o.contains_key("traceId") && is_v1_span(o) => Err(
            "Zipkin v1 JSON (it has binaryAnnotations), which is not read; export Zipkin v2 JSON (/api/v2) or OTLP".to_owned(),
        ),
        Some((o, shape)) if is_span(o) => Ok(Some(shape)),
        _ => Ok(None),
    }
}

/// Reads one Zipkin v2 record whose text starts on line `first_line` of the input.
pub(crate) fn read(input: &Arc<str>, value: Json, text: &[u8], first_line: u64, out: &mut Parsed) {
    let mut record = Record::new(input, text, first_line, out);
    let mut resources = HashMap::new();
    match value {
        Json::Object(o) => read_span(&mut record, &o, &mut resources),
        Json::Array(items) => {
            for item in items {
                match item {
                    Json::Object(o) => read_span(&mut record, &o, &mut resources),
                    Json::Array(trace) => {
                        for span in trace {
                            match span {
                                Json::Object(o) => read_span(&mut record, &o, &mut resources),
                                other => not_a_span(&mut record, &other),
                            }
                        }
                    }
                    other => not_a_span(&mut record, &other),
                }
            }
        }
        other => not_a_span(&mut record, &other),
    }
    record.finish();
}

fn not_a_span(record: &mut Record<'_, '_>, value: &Json) {
    record.out.spans_read += 1;
    record.out.spans_unjoinable += 1;
    let line = record.line();
    record.error(
        line,
        Code::InvalidRecord,
        format!("{} is not a Zipkin span object; skipped", describe(value)),
    );
}

fn read_span(
    record: &mut Record<'_, '_>,
    o: &Object,
    resources: &mut HashMap<String, Arc<Resource>>,
) {
    record.out.spans_read += 1;
    let raw_id = o.get("id").and_then(Json::as_str).unwrap_or("");
    let line = record.locator.next_span(&["id"], raw_id);
    let name = match o.get("name") {
        Some(Json::String(s)) => s.clone(),
        _ => String::new(),
    };
    let label = format!("span {name:?}");

    let trace_id = id::<16>(record, o, "traceId", &label, line);
    let span_id = id::<8>(record, o, "id", &label, line);
    let parent_span_id = match o.get("parentId") {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) if s.is_empty() => None,
        Some(raw) => match raw.as_str().map(padded_id::<8>) {
            Some(Ok(id)) => Some(SpanId(id)),
            other => {
                let why = match other {
                    Some(Err(why)) => why,
                    _ => "is not a string".to_owned(),
                };
                record.warn(
                    line,
                    Code::InvalidId,
                    format!(
                        "{label}: parentId {} {why}; the span is kept as a root of its trace",
                        describe(raw)
                    ),
                );
                None
            }
        },
    };

    let mut kind = match o.get("kind") {
        None | Some(Json::Null) => SpanKind::Unspecified,
        Some(k) => match k.as_str().and_then(span_kind) {
            Some(kind) if kind != SpanKind::Internal => kind,
            _ => {
                record.error(
                    line,
                    Code::InvalidValue,
                    format!(
                        "{label}: kind {} is not CLIENT, SERVER, PRODUCER or CONSUMER",
                        describe(k)
                    ),
                );
                SpanKind::Unspecified
            }
        },
    };
    let shared = o.get("shared").and_then(Json::as_bool).unwrap_or(false);

    let mut events = Vec::new();
    match o.get("annotations") {
        None | Some(Json::Null) => {}
        Some(Json::Array(annotations)) => {
            for a in annotations {
                let value = a.get("value").and_then(Json::as_str);
                let time = a.get("timestamp").map(micros);
                match (value, time) {
                    (Some(value), Some(Ok(time))) => events.push(Event {
                        name: value.to_owned(),
                        time,
                        attributes: Attributes::default(),
                    }),
                    (_, time) => {
                        let why = match time {
                            Some(Err(why)) => format!("its timestamp {why}"),
                            None => "it has no timestamp".to_owned(),
                            Some(Ok(_)) => "it has no text value".to_owned(),
                        };
                        record.error(
                            line,
                            Code::InvalidValue,
                            format!("{label}: annotation {} is ignored: {why}", describe(a)),
                        );
                    }
                }
            }
        }
        Some(other) => record.error(
            line,
            Code::InvalidRecord,
            format!(
                "{label}: annotations are {}, not a list; they are ignored",
                describe(other)
            ),
        ),
    }

    let start = match o.get("timestamp").map(micros) {
        Some(Ok(t)) => t,
        other => {
            let first_annotation = events.iter().map(|e| e.time).min();
            let taken = match first_annotation {
                Some(_) => "its start is taken from its first annotation",
                None => "its start is taken as 0",
            };
            match other {
                Some(Err(why)) => record.error(
                    line,
                    Code::InvalidValue,
                    format!("{label}: timestamp {why}; {taken}"),
                ),
                _ => record.warn(
                    line,
                    Code::MissingTime,
                    format!("{label} has no timestamp; {taken}"),
                ),
            }
            first_annotation.unwrap_or(0)
        }
    };
    let end = end_from_duration(record, line, &label, "timestamp", start, o.get("duration"));

    let mut attributes = Vec::new();
    if let Some(remote) = o.get("remoteEndpoint").and_then(Json::as_object) {
        if let Some(service) = remote.get("serviceName").and_then(Json::as_str) {
            attributes.push(string_attribute("peer.service", service));
        }
        let ip = remote
            .get("ipv4")
            .or_else(|| remote.get("ipv6"))
            .and_then(Json::as_str);
        if let Some(ip) = ip {
            attributes.push(string_attribute("net.peer.ip", ip));
        }
        if let Some(port) = remote.get("port").and_then(Json::as_i64) {
            attributes.push(KeyValue {
                key: "net.peer.port".into(),
                value: Value::Int(port),
            });
        }
    }
    match o.get("tags") {
        None | Some(Json::Null) => {}
        Some(Json::Object(tags)) => {
            for (key, value) in tags {
                let text = match value {
                    Json::String(s) => s.clone(),
                    Json::Number(_) | Json::Bool(_) => value.to_string(),
                    other => {
                        record.error(
                            line,
                            Code::InvalidValue,
                            format!(
                                "{label}: tag {key:?} is {}, not a string; the tag is ignored",
                                describe(other)
                            ),
                        );
                        continue;
                    }
                };
                attributes.push(string_attribute(key, &text));
            }
        }
        Some(other) => record.error(
            line,
            Code::InvalidRecord,
            format!(
                "{label}: tags are {}, not an object; they are ignored",
                describe(other)
            ),
        ),
    }
    let (tag_kind, status) = take_kind_and_status(record, &mut attributes, &label, line, true);
    if kind == SpanKind::Unspecified {
        kind = tag_kind;
    }

    let service = o
        .get("localEndpoint")
        .and_then(|e| e.get("serviceName"))
        .and_then(Json::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown_service");
    let resource = Arc::clone(resources.entry(service.to_owned()).or_insert_with(|| {
        Arc::new(Resource {
            service_name: service.to_owned(),
            attributes: Attributes(vec![string_attribute("service.name", service)]),
        })
    }));

    let (Some(trace_id), Some(span_id)) = (trace_id, span_id) else {
        record.out.spans_unjoinable += 1;
        return;
    };
    let span = Span {
        trace_id: TraceId(trace_id),
        span_id: SpanId(span_id),
        parent_span_id,
        name: name.into(),
        kind,
        start,
        end,
        status,
        attributes: Attributes(attributes),
        resource,
        events: events.into(),
        links: Box::default(),
        origin: Origin {
            input: Arc::clone(record.input),
            line,
        },
    };
    record.pending.push(Pending { span, shared });
}

fn string_attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Value::String(value.to_owned()),
    }
}

fn id<const N: usize>(
    record: &mut Record<'_, '_>,
    o: &Object,
    field: &str,
    label: &str,
    line: u64,
) -> Option<[u8; N]> {
    let (raw, result) = match o.get(field) {
        Some(Json::String(s)) => (format!("{s:?} "), padded_id::<N>(s)),
        Some(other) => (
            format!("{} ", describe(other)),
            Err("is not a string".to_owned()),
        ),
        None => (String::new(), Err("is missing".to_owned())),
    };
    match result {
        Ok(id) => Some(id),
        Err(why) => {
            record.error(
                line,
                Code::InvalidId,
                format!("{label}: {field} {raw}{why}; the span is not used for joins"),
            );
            None
        }
    }
}

//! Jaeger JSON, as the Jaeger query API (`/api/traces`) and UI write it: the `{"data": […]}`
//! envelope, a bare trace (`{"traceID", "spans", "processes"}`), or an array of spans that
//! carry their `process` inline (the anonymizer's and some exporters' output).
//!
//! Times are microseconds (turned into nanoseconds with checked arithmetic); 64-bit trace ids
//! are left-padded to 128 bits so they join with OTLP. `references` give the parent (the first
//! CHILD_OF within the same trace) and links (FOLLOWS_FROM, CHILD_OF into another trace, any
//! further CHILD_OF), each link tagged `opentracing.ref_type` as the Collector's Jaeger
//! receiver does. Tags become attributes, except `span.kind`, `otel.status_code`,
//! `otel.status_description` and `error`, which become the kind and the status. Logs become
//! events named by their `event` field.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Map, Value as Json};

use super::Parsed;
use super::foreign::{Pending, Record, describe, end_from_duration, micros};
use crate::model::diagnostic::Code;
use crate::model::ids::padded_id;
use crate::model::{
    Attributes, Event, KeyValue, Link, Origin, Resource, Span, SpanId, SpanKind, Status,
    StatusCode, TraceId, Value,
};

type Object = Map<String, Json>;

/// Whether a JSON value is Jaeger JSON, and which shape.
pub(crate) fn sniff(value: &Json) -> Option<&'static str> {
    match value {
        Json::Object(o) => {
            if let Some(Json::Array(data)) = o.get("data") {
                let traces = data.first().is_none_or(|t| {
                    t.as_object()
                        .is_some_and(|t| t.contains_key("spans") || t.contains_key("traceID"))
                });
                let api_keys = ["total", "limit", "offset", "errors"]
                    .iter()
                    .any(|k| o.contains_key(*k));
                (traces && (!data.is_empty() || api_keys))
                    .then_some("the query API's {\"data\": [...]} envelope")
            } else if o.contains_key("traceID") && o.contains_key("spans") {
                Some("a trace")
            } else {
                None
            }
        }
        Json::Array(items) => match items.first() {
            Some(Json::Object(o)) if o.contains_key("traceID") && o.contains_key("spanID") => {
                Some("an array of spans")
            }
            Some(Json::Object(o)) if o.contains_key("traceID") && o.contains_key("spans") => {
                Some("an array of traces")
            }
            _ => None,
        },
        _ => None,
    }
}

/// Reads one Jaeger JSON record whose text starts on line `first_line` of the input.
pub(crate) fn read(input: &Arc<str>, value: Json, text: &[u8], first_line: u64, out: &mut Parsed) {
    let mut record = Record::new(input, text, first_line, out);
    match value {
        Json::Object(mut o) => {
            if let Some(Json::Array(data)) = o.remove("data") {
                for trace in data {
                    match trace {
                        Json::Object(t) => read_trace(&mut record, t),
                        other => {
                            let line = record.line();
                            record.error(
                                line,
                                Code::InvalidRecord,
                                format!(
                                    "an element of \"data\" is {}, not a Jaeger trace object; skipped",
                                    describe(&other)
                                ),
                            );
                        }
                    }
                }
                if let Some(Json::Array(errors)) = o.get("errors") {
                    for e in errors {
                        let message = e
                            .get("msg")
                            .and_then(Json::as_str)
                            .map_or_else(|| describe(e), str::to_owned);
                        record.warn(
                            first_line,
                            Code::InvalidRecord,
                            format!(
                                "the Jaeger API response reports an error: {message}; traces it names may be missing"
                            ),
                        );
                    }
                }
            } else {
                read_trace(&mut record, o);
            }
        }
        Json::Array(items) => {
            for item in items {
                match item {
                    Json::Object(o) if o.contains_key("spans") => read_trace(&mut record, o),
                    Json::Object(o) => read_span(&mut record, &o, None),
                    other => {
                        record.out.spans_read += 1;
                        record.out.spans_unjoinable += 1;
                        let line = record.line();
                        record.error(
                            line,
                            Code::InvalidRecord,
                            format!(
                                "an array element is {}, not a Jaeger span object; skipped",
                                describe(&other)
                            ),
                        );
                    }
                }
            }
        }
        other => {
            record.error(
                first_line,
                Code::InvalidRecord,
                format!(
                    "the record is {}, not a Jaeger trace; skipped",
                    describe(&other)
                ),
            );
        }
    }
    record.finish();
}

fn read_trace(record: &mut Record<'_, '_>, trace: Object) {
    let mut processes: HashMap<String, Arc<Resource>> = HashMap::new();
    if let Some(Json::Object(ps)) = trace.get("processes") {
        for (id, process) in ps {
            processes.insert(id.clone(), process_resource(record, process));
        }
    }
    match trace.get("spans") {
        Some(Json::Array(spans)) => {
            for span in spans {
                match span {
                    Json::Object(o) => read_span(record, o, Some(&processes)),
                    other => {
                        record.out.spans_read += 1;
                        record.out.spans_unjoinable += 1;
                        let line = record.line();
                        record.error(
                            line,
                            Code::InvalidRecord,
                            format!(
                                "an element of \"spans\" is {}, not a Jaeger span object; skipped",
                                describe(other)
                            ),
                        );
                    }
                }
            }
        }
        other => {
            let line = record.line();
            let raw = trace.get("traceID").map_or_else(String::new, describe);
            record.error(
                line,
                Code::InvalidRecord,
                format!(
                    "trace {raw} has {} where a list of spans is expected; skipped",
                    other.map_or_else(|| "no \"spans\"".to_owned(), describe)
                ),
            );
        }
    }
}

fn process_resource(record: &mut Record<'_, '_>, process: &Json) -> Arc<Resource> {
    let service_name = process
        .get("serviceName")
        .and_then(Json::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown_service")
        .to_owned();
    let line = record.line();
    let mut attributes = vec![KeyValue {
        key: "service.name".into(),
        value: Value::String(service_name.clone()),
    }];
    if let Some(Json::Array(tags)) = process.get("tags") {
        for tag in tags {
            match tag_value(tag) {
                Ok(kv) if &*kv.key == "service.name" => {}
                Ok(kv) => attributes.push(kv),
                Err(why) => record.error(
                    line,
                    Code::InvalidValue,
                    format!("process {service_name:?}: {why}; the tag is ignored"),
                ),
            }
        }
    }
    Arc::new(Resource {
        service_name,
        attributes: Attributes(attributes),
    })
}

fn read_span(
    record: &mut Record<'_, '_>,
    o: &Object,
    processes: Option<&HashMap<String, Arc<Resource>>>,
) {
    record.out.spans_read += 1;
    let raw_span_id = o.get("spanID").and_then(Json::as_str).unwrap_or("");
    let line = record.locator.next_span(&["spanID"], raw_span_id);
    let name = match o.get("operationName") {
        Some(Json::String(s)) => s.clone(),
        _ => String::new(),
    };
    let label = format!("span {name:?}");

    let trace_id = id::<16>(record, o, "traceID", &label, line);
    let span_id = id::<8>(record, o, "spanID", &label, line);

    let mut parent_span_id = None;
    let mut links = Vec::new();
    let refs: &[Json] = match o.get("references") {
        Some(Json::Array(refs)) => refs,
        None | Some(Json::Null) => &[],
        Some(other) => {
            record.error(
                line,
                Code::InvalidRecord,
                format!(
                    "{label}: references is {}, not a list; they are ignored",
                    describe(other)
                ),
            );
            &[]
        }
    };
    for r in refs {
        let ref_type = r
            .get("refType")
            .and_then(Json::as_str)
            .unwrap_or("CHILD_OF")
            .to_ascii_lowercase();
        let ids = (
            r.get("traceID").and_then(Json::as_str).map(padded_id::<16>),
            r.get("spanID").and_then(Json::as_str).map(padded_id::<8>),
        );
        let (ref_trace, ref_span) = match ids {
            (Some(Ok(t)), Some(Ok(s))) => (TraceId(t), SpanId(s)),
            (t, s) => {
                let why = match (t, s) {
                    (None, _) => "has no traceID".to_owned(),
                    (Some(Err(why)), _) => format!("traceID {why}"),
                    (_, None) => "has no spanID".to_owned(),
                    (_, Some(Err(why))) => format!("spanID {why}"),
                    _ => unreachable!("both ids decoded"),
                };
                record.warn(
                    line,
                    Code::InvalidId,
                    format!("{label}: a {ref_type} reference {why}; it is not followed"),
                );
                continue;
            }
        };
        let same_trace = trace_id.is_some_and(|t| TraceId(t) == ref_trace);
        if ref_type == "child_of" && same_trace && parent_span_id.is_none() {
            parent_span_id = Some(ref_span);
        } else {
            links.push(Link {
                trace_id: ref_trace,
                span_id: ref_span,
                attributes: Attributes(vec![KeyValue {
                    key: "opentracing.ref_type".into(),
                    value: Value::String(ref_type),
                }]),
            });
        }
    }
    // Old Jaeger JSON wrote the parent in its own field.
    if parent_span_id.is_none()
        && let Some(raw) = o.get("parentSpanID").and_then(Json::as_str)
        && let Ok(id) = padded_id::<8>(raw)
    {
        parent_span_id = Some(SpanId(id));
    }

    let start = match o.get("startTime").map(micros) {
        Some(Ok(t)) => t,
        None => {
            record.warn(
                line,
                Code::MissingTime,
                format!("{label} has no startTime; its start is taken as 0"),
            );
            0
        }
        Some(Err(why)) => {
            record.error(
                line,
                Code::InvalidValue,
                format!("{label}: startTime {why}; its start is taken as 0"),
            );
            0
        }
    };
    let end = end_from_duration(record, line, &label, "startTime", start, o.get("duration"));

    let mut attributes = Vec::new();
    if let Some(tags) = o.get("tags") {
        tags_into(record, tags, &label, line, &mut attributes);
    }
    let (kind, status) = take_kind_and_status(record, &mut attributes, &label, line, false);

    let mut events = Vec::new();
    if let Some(logs) = o.get("logs") {
        match logs {
            Json::Array(logs) => {
                for log in logs {
                    let time = match log.get("timestamp").map(micros) {
                        Some(Ok(t)) => t,
                        other => {
                            let why = match other {
                                Some(Err(why)) => why,
                                _ => "is missing".to_owned(),
                            };
                            record.error(
                                line,
                                Code::InvalidValue,
                                format!("{label}: a log's timestamp {why}; the log is ignored"),
                            );
                            continue;
                        }
                    };
                    let mut fields = Vec::new();
                    if let Some(f) = log.get("fields") {
                        tags_into(record, f, &label, line, &mut fields);
                    }
                    let name = match fields.iter().position(|kv| &*kv.key == "event") {
                        Some(i) => {
                            let kv = fields.remove(i);
                            kv.value
                                .as_text()
                                .map(|t| t.into_owned())
                                .unwrap_or_default()
                        }
                        None => String::new(),
                    };
                    events.push(Event {
                        name,
                        time,
                        attributes: Attributes(fields),
                    });
                }
            }
            Json::Null => {}
            other => record.error(
                line,
                Code::InvalidRecord,
                format!(
                    "{label}: logs is {}, not a list; they are ignored",
                    describe(other)
                ),
            ),
        }
    }

    let resource = match o.get("process") {
        Some(p @ Json::Object(_)) => process_resource(record, p),
        _ => {
            let pid = o.get("processID").and_then(Json::as_str);
            match (pid, processes) {
                (Some(pid), Some(ps)) if ps.contains_key(pid) => Arc::clone(&ps[pid]),
                (pid, _) => {
                    record.warn(
                        line,
                        Code::InvalidValue,
                        match pid {
                            Some(pid) => format!(
                                "{label}: processID {pid:?} is not among the trace's processes; its service is unknown"
                            ),
                            None => format!(
                                "{label} has neither a process nor a processID; its service is unknown"
                            ),
                        },
                    );
                    Arc::new(Resource {
                        service_name: "unknown_service".to_owned(),
                        attributes: Attributes::default(),
                    })
                }
            }
        }
    };

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
        links: links.into(),
        origin: Origin {
            input: Arc::clone(record.input),
            line,
        },
    };
    record.pending.push(Pending {
        span,
        shared: false,
    });
}

fn id<const N: usize>(
    record: &mut Record<'_, '_>,
    o: &Object,
    field: &str,
    label: &str,
    line: u64,
) -> Option<[u8; N]> {
    let (raw, result) = match o.get(field) {
        Some(Json::String(s)) => (format!("{s:?}"), padded_id::<N>(s)),
        Some(other) => (describe(other), Err("is not a string".to_owned())),
        None => (String::new(), Err("is missing".to_owned())),
    };
    match result {
        Ok(id) => Some(id),
        Err(why) => {
            let raw = if raw.is_empty() {
                raw
            } else {
                format!("{raw} ")
            };
            record.error(
                line,
                Code::InvalidId,
                format!("{label}: {field} {raw}{why}; the span is not used for joins"),
            );
            None
        }
    }
}

fn tags_into(
    record: &mut Record<'_, '_>,
    tags: &Json,
    label: &str,
    line: u64,
    out: &mut Vec<KeyValue>,
) {
    match tags {
        Json::Array(tags) => {
            for tag in tags {
                match tag_value(tag) {
                    Ok(kv) => out.push(kv),
                    Err(why) => record.error(
                        line,
                        Code::InvalidValue,
                        format!("{label}: {why}; the tag is ignored"),
                    ),
                }
            }
        }
        Json::Null => {}
        other => record.error(
            line,
            Code::InvalidRecord,
            format!(
                "{label}: tags are {}, not a list; they are ignored",
                describe(other)
            ),
        ),
    }
}

/// A Jaeger tag `{"key", "type", "value"}` as an attribute. Jaeger writes int64 values that do
/// not fit a JavaScript number as strings, and some writers put bools in strings too.
fn tag_value(tag: &Json) -> Result<KeyValue, String> {
    let Some(key) = tag.get("key").and_then(Json::as_str) else {
        return Err(format!("tag {} has no key", describe(tag)));
    };
    let value = tag.get("value").unwrap_or(&Json::Null);
    let kind = tag
        .get("type")
        .and_then(Json::as_str)
        .map(str::to_ascii_lowercase);
    let bad = |expected: &str| {
        format!(
            "tag {key:?} of type {} has value {}, which is not {expected}",
            kind.as_deref().unwrap_or("(none)"),
            describe(value)
        )
    };
    let converted = match kind.as_deref() {
        Some("string") => match value {
            Json::String(s) => Value::String(s.clone()),
            Json::Number(_) | Json::Bool(_) => Value::String(value.to_string()),
            _ => return Err(bad("a string")),
        },
        Some("bool") => match value {
            Json::Bool(b) => Value::Bool(*b),
            Json::String(s) if s.eq_ignore_ascii_case("true") => Value::Bool(true),
            Json::String(s) if s.eq_ignore_ascii_case("false") => Value::Bool(false),
            _ => return Err(bad("a bool")),
        },
        Some("int64") => match value {
            Json::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => return Err(bad("a 64-bit integer")),
            },
            Json::String(s) => match s.trim().parse() {
                Ok(i) => Value::Int(i),
                Err(_) => return Err(bad("a 64-bit integer")),
            },
            _ => return Err(bad("a 64-bit integer")),
        },
        Some("float64") => match value {
            Json::Number(n) => Value::Double(n.as_f64().unwrap_or(f64::NAN)),
            Json::String(s) => match s.trim() {
                "NaN" => Value::Double(f64::NAN),
                "Infinity" | "+Inf" => Value::Double(f64::INFINITY),
                "-Infinity" | "-Inf" => Value::Double(f64::NEG_INFINITY),
                t => match t.parse() {
                    Ok(d) => Value::Double(d),
                    Err(_) => return Err(bad("a number")),
                },
            },
            _ => return Err(bad("a number")),
        },
        Some("binary") => match value {
            Json::String(s) => match base64::engine::general_purpose::STANDARD.decode(s) {
                Ok(bytes) => Value::Bytes(bytes),
                Err(_) => return Err(bad("base64")),
            },
            _ => return Err(bad("base64 text")),
        },
        _ => match value {
            Json::String(s) => Value::String(s.clone()),
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Double(n.as_f64().unwrap_or(f64::NAN)),
            },
            Json::Null => Value::Empty,
            _ => return Err(bad("a scalar")),
        },
    };
    Ok(KeyValue {
        key: key.into(),
        value: converted,
    })
}

/// Takes the tags that OpenTelemetry's Jaeger exporters (and OpenTracing) use for what OTLP has
/// fields for out of the attributes: `span.kind`, `otel.status_code`, `otel.status_description`
/// and `error` (a bool in Jaeger; in Zipkin, `error_is_message`, any value, which is the error
/// message).
pub(crate) fn take_kind_and_status(
    record: &mut Record<'_, '_>,
    attributes: &mut Vec<KeyValue>,
    label: &str,
    line: u64,
    error_is_message: bool,
) -> (SpanKind, Status) {
    let mut kind = SpanKind::Unspecified;
    let mut status = Status::default();
    let mut error = false;
    let mut error_message = String::new();
    let mut status_code = None;
    let mut keep = Vec::with_capacity(attributes.len());
    for kv in attributes.drain(..) {
        let text = kv.value.as_text().map(|t| t.to_ascii_lowercase());
        match (&*kv.key, text.as_deref()) {
            ("span.kind", Some(k)) => match span_kind(k) {
                Some(k) => kind = k,
                None => {
                    record.warn(
                        line,
                        Code::InvalidValue,
                        format!(
                            "{label}: span.kind {k:?} is not client, server, producer, consumer or internal; kept as an attribute"
                        ),
                    );
                    keep.push(kv);
                }
            },
            ("otel.status_code", Some(code)) => {
                match code.strip_prefix("status_code_").unwrap_or(code) {
                    "ok" => status_code = Some(StatusCode::Ok),
                    "error" => status_code = Some(StatusCode::Error),
                    "unset" => status_code = Some(StatusCode::Unset),
                    other => {
                        record.warn(
                            line,
                            Code::InvalidValue,
                            format!(
                                "{label}: otel.status_code {other:?} is not OK, ERROR or UNSET; kept as an attribute"
                            ),
                        );
                        keep.push(kv);
                    }
                }
            }
            ("otel.status_description", _) => {
                status.message = text_of(&kv.value).into();
            }
            ("error", _) if error_is_message => {
                error = true;
                error_message = text_of(&kv.value);
            }
            ("error", Some("true")) => error = true,
            ("error", Some("false")) => {}
            _ => keep.push(kv),
        }
    }
    *attributes = keep;
    if status.message.is_empty() && !error_message.is_empty() {
        status.message = error_message.into();
    }
    status.code = match status_code {
        Some(code) => code,
        None if error => StatusCode::Error,
        None => StatusCode::Unset,
    };
    (kind, status)
}

fn text_of(value: &Value) -> String {
    value.as_text().map(|t| t.into_owned()).unwrap_or_default()
}

pub(crate) fn span_kind(text: &str) -> Option<SpanKind> {
    Some(match text.to_ascii_lowercase().as_str() {
        "client" => SpanKind::Client,
        "server" => SpanKind::Server,
        "producer" => SpanKind::Producer,
        "consumer" => SpanKind::Consumer,
        "internal" => SpanKind::Internal,
        _ => return None,
    })
}

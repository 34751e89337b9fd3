//! OTLP/protobuf: one unframed `TracesData` / `ExportTraceServiceRequest` message (the two have
//! the same wire layout), or the OpenTelemetry Collector file exporter's stream of messages,
//! each preceded by its length as a 4-byte big-endian integer; in the exporter's legacy
//! `compression: zstd` mode each message (protobuf or JSON) is its own zstd frame.
//!
//! The messages are declared here with prost rather than taken from `opentelemetry-proto`:
//! that crate cannot be built for its trace messages without pulling the OpenTelemetry SDK into
//! the dependency tree. The declarations follow `opentelemetry/proto/trace/v1/trace.proto` field
//! for field (the tests encode with `opentelemetry-proto` and decode with these), with two
//! deliberate differences: text fields are read as bytes, so one invalid UTF-8 string costs a
//! diagnostic rather than the whole message, and enums are read as plain integers.

use std::sync::Arc;

use prost::Message as _;

use super::Parsed;
use super::compress::{self, Budget, Failure, ZSTD_MAGIC};
use super::otlp_json;
use crate::model::diagnostic::{Code, Diagnostic};
use crate::model::{
    Attributes, Event, KeyValue, Link, Origin, Resource, Span, SpanId, SpanKind, Status,
    StatusCode, TraceId, Value,
};

/// The OTLP trace messages, as far as the audit reads them. Unknown fields are skipped.
pub(crate) mod wire {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TracesData {
        #[prost(message, repeated, tag = "1")]
        pub resource_spans: Vec<ResourceSpans>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResourceSpans {
        #[prost(message, optional, tag = "1")]
        pub resource: Option<Resource>,
        #[prost(message, repeated, tag = "2")]
        pub scope_spans: Vec<ScopeSpans>,
        /// The deprecated `InstrumentationLibrarySpans`, which has the layout of `ScopeSpans`.
        #[prost(message, repeated, tag = "1000")]
        pub instrumentation_library_spans: Vec<ScopeSpans>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Resource {
        #[prost(message, repeated, tag = "1")]
        pub attributes: Vec<KeyValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ScopeSpans {
        #[prost(message, repeated, tag = "2")]
        pub spans: Vec<Span>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Span {
        #[prost(bytes = "vec", tag = "1")]
        pub trace_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub span_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "4")]
        pub parent_span_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "5")]
        pub name: Vec<u8>,
        #[prost(int32, tag = "6")]
        pub kind: i32,
        #[prost(fixed64, tag = "7")]
        pub start_time_unix_nano: u64,
        #[prost(fixed64, tag = "8")]
        pub end_time_unix_nano: u64,
        #[prost(message, repeated, tag = "9")]
        pub attributes: Vec<KeyValue>,
        #[prost(message, repeated, tag = "11")]
        pub events: Vec<Event>,
        #[prost(message, repeated, tag = "13")]
        pub links: Vec<Link>,
        #[prost(message, optional, tag = "15")]
        pub status: Option<Status>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Event {
        #[prost(fixed64, tag = "1")]
        pub time_unix_nano: u64,
        #[prost(bytes = "vec", tag = "2")]
        pub name: Vec<u8>,
        #[prost(message, repeated, tag = "3")]
        pub attributes: Vec<KeyValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Link {
        #[prost(bytes = "vec", tag = "1")]
        pub trace_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub span_id: Vec<u8>,
        #[prost(message, repeated, tag = "4")]
        pub attributes: Vec<KeyValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Status {
        #[prost(bytes = "vec", tag = "2")]
        pub message: Vec<u8>,
        #[prost(int32, tag = "3")]
        pub code: i32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValue {
        #[prost(bytes = "vec", tag = "1")]
        pub key: Vec<u8>,
        #[prost(message, optional, tag = "2")]
        pub value: Option<AnyValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AnyValue {
        #[prost(oneof = "any_value::Value", tags = "1, 2, 3, 4, 5, 6, 7")]
        pub value: Option<any_value::Value>,
    }

    pub mod any_value {
        /// `AnyValue.value`; the variants are named by type (the tags are what is on the wire).
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Value {
            #[prost(bytes = "vec", tag = "1")]
            String(Vec<u8>),
            #[prost(bool, tag = "2")]
            Bool(bool),
            #[prost(int64, tag = "3")]
            Int(i64),
            #[prost(double, tag = "4")]
            Double(f64),
            #[prost(message, tag = "5")]
            Array(super::ArrayValue),
            #[prost(message, tag = "6")]
            KvList(super::KeyValueList),
            #[prost(bytes = "vec", tag = "7")]
            Bytes(Vec<u8>),
        }
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ArrayValue {
        #[prost(message, repeated, tag = "1")]
        pub values: Vec<AnyValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValueList {
        #[prost(message, repeated, tag = "1")]
        pub values: Vec<KeyValue>,
    }
}

/// Decodes `bytes` as one traces message and checks that what came out looks like OTLP
/// traces: protobuf is not self-describing, and many byte strings decode as *some* message.
/// `Err` says why it is not.
pub(crate) fn decode_plausible(bytes: &[u8]) -> Result<wire::TracesData, String> {
    let data = wire::TracesData::decode(bytes).map_err(|e| {
        let at = error_offset(bytes)
            .map(|o| format!(" at byte offset {o}"))
            .unwrap_or_default();
        format!("does not decode as an OTLP TracesData message{at} ({e})")
    })?;
    let mut spans = 0usize;
    let mut with_trace_id = 0usize;
    for span in all_spans(&data) {
        spans += 1;
        if !matches!(span.trace_id.len(), 0 | 16) || !matches!(span.span_id.len(), 0 | 8) {
            return Err(format!(
                "decodes as a protobuf message, but span {spans} has a {}-byte trace id and a {}-byte span id (OTLP: 16 and 8), so it is not OTLP traces",
                span.trace_id.len(),
                span.span_id.len()
            ));
        }
        with_trace_id += usize::from(span.trace_id.len() == 16);
    }
    if spans == 0 {
        return Err("decodes as a protobuf message with no spans".to_owned());
    }
    if with_trace_id == 0 {
        return Err(format!(
            "decodes as a protobuf message with {spans} spans, none of which has a 16-byte trace id"
        ));
    }
    Ok(data)
}

/// Where a message that prost refused goes wrong, as near as the top level tells: the first
/// field whose key or length is malformed, or the first `ResourceSpans` that does not decode.
fn error_offset(bytes: &[u8]) -> Option<usize> {
    fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *bytes.get(*at)?;
            *at += 1;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
    let mut at = 0;
    while at < bytes.len() {
        let start = at;
        let Some(key) = varint(bytes, &mut at) else {
            return Some(start);
        };
        let skip = match (key >> 3, key & 7) {
            (0, _) => return Some(start),
            (_, 0) => varint(bytes, &mut at).map(|_| 0),
            (_, 1) => Some(8),
            (_, 5) => Some(4),
            (_, 2) => varint(bytes, &mut at).and_then(|l| usize::try_from(l).ok()),
            _ => None,
        };
        let Some(end) = skip
            .and_then(|n| at.checked_add(n))
            .filter(|e| *e <= bytes.len())
        else {
            return Some(start);
        };
        if key == (1 << 3 | 2) && wire::ResourceSpans::decode(&bytes[at..end]).is_err() {
            return Some(start);
        }
        at = end;
    }
    None
}

fn all_spans(data: &wire::TracesData) -> impl Iterator<Item = &wire::Span> {
    data.resource_spans.iter().flat_map(|rs| {
        rs.scope_spans
            .iter()
            .chain(&rs.instrumentation_library_spans)
            .flat_map(|ss| ss.spans.iter())
    })
}

/// What the first message of a length-framed stream is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FrameContent {
    Protobuf,
    Json,
}

/// Whether `bytes` starts like the Collector's length-framed stream: a complete first message
/// that is OTLP/protobuf, OTLP/JSON, or a zstd frame. Returns whether the frames are zstd.
pub(crate) fn sniff_framed(bytes: &[u8]) -> Result<bool, String> {
    let Some(len) = bytes.get(..4) else {
        return Err("is shorter than a 4-byte length prefix".to_owned());
    };
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    let Some(payload) = bytes.get(4..).and_then(|rest| rest.get(..len)) else {
        return Err(format!(
            "its first 4 bytes, read as a big-endian length, give {len} bytes, but only {} follow",
            bytes.len().saturating_sub(4)
        ));
    };
    if payload.starts_with(&ZSTD_MAGIC) {
        return Ok(true);
    }
    if first_non_space(payload) == Some(b'{') {
        return Ok(false);
    }
    decode_plausible(payload)
        .map(|_| false)
        .map_err(|why| format!("its first message ({len} bytes at byte offset 4) {why}"))
}

fn first_non_space(bytes: &[u8]) -> Option<u8> {
    bytes.iter().copied().find(|b| !b.is_ascii_whitespace())
}

/// Reads one unframed message that `decode_plausible` accepted.
pub(crate) fn read_unframed(input: &Arc<str>, data: wire::TracesData, out: &mut Parsed) {
    out.lines = 1;
    let mut converter = MessageConverter {
        input,
        message: 1,
        place: None,
        out,
    };
    converter.traces(data);
}

/// Reads a length-framed stream. `Err` stops the whole input (over the decompression budget);
/// a bad message is a diagnostic and the next one is read. Returns the first message's content
/// and whether any message was zstd-compressed.
pub(crate) fn read_framed(
    input: &Arc<str>,
    bytes: &[u8],
    budget: &mut Budget,
    out: &mut Parsed,
) -> Result<(FrameContent, bool), String> {
    let mut offset = 0usize;
    let mut message = 0u64;
    let mut first_content = None;
    let mut zstd = false;
    while offset < bytes.len() {
        let rest = &bytes[offset..];
        let Some(prefix) = rest.get(..4) else {
            out.diagnostics.push(Diagnostic::warning(
                input,
                None,
                Code::TruncatedFrame,
                format!(
                    "byte offset {offset}: the last {} bytes are not a whole 4-byte length prefix; the stream is cut short (the file may still be being written)",
                    rest.len()
                ),
            ));
            break;
        };
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        let place = format!("message {} at byte offset {offset}", message + 1);
        let Some(payload) = rest[4..].get(..len) else {
            out.diagnostics.push(Diagnostic::warning(
                input,
                None,
                Code::TruncatedFrame,
                format!(
                    "{place}: its length prefix says {len} bytes but only {} follow; the last message is cut short (the file may still be being written) and is skipped",
                    rest.len() - 4
                ),
            ));
            break;
        };
        message += 1;
        offset += 4 + len;
        out.lines = message;

        let decompressed;
        let content: &[u8] = if payload.starts_with(&ZSTD_MAGIC) {
            zstd = true;
            match compress::unzstd(payload, budget, &place, offset - len) {
                Ok(d) if d.corrupt.is_none() => {
                    decompressed = d.data;
                    &decompressed
                }
                Ok(d) => {
                    out.diagnostics.push(Diagnostic::error(
                        input,
                        None,
                        Code::CorruptCompression,
                        format!("{}; the message is skipped", d.corrupt.unwrap_or_default()),
                    ));
                    continue;
                }
                Err(failure @ (Failure::TooLarge(_) | Failure::Deferred)) => {
                    return Err(failure.message());
                }
                Err(Failure::Corrupt(why)) => {
                    out.diagnostics.push(Diagnostic::error(
                        input,
                        None,
                        Code::CorruptCompression,
                        format!("{why}; the message is skipped"),
                    ));
                    continue;
                }
            }
        } else {
            payload
        };

        if first_non_space(content) == Some(b'{') {
            first_content.get_or_insert(FrameContent::Json);
            let mut part = Parsed::default();
            otlp_json::read_record(
                input,
                content,
                message,
                false,
                otlp_json::Mode::Build,
                &mut part,
            );
            for d in &mut part.diagnostics {
                d.line = None;
                d.message = format!("{place}: {}", d.message);
            }
            part.lines = message;
            out.append(part);
            continue;
        }
        first_content.get_or_insert(FrameContent::Protobuf);
        match wire::TracesData::decode(content) {
            Ok(data) => {
                let mut converter = MessageConverter {
                    input,
                    message,
                    place: Some(&place),
                    out,
                };
                converter.traces(data);
            }
            Err(e) => out.diagnostics.push(Diagnostic::error(
                input,
                None,
                Code::InvalidProtobuf,
                format!(
                    "{place}: its {} bytes are not an OTLP TracesData message ({e}); skipped",
                    content.len()
                ),
            )),
        }
    }
    Ok((first_content.unwrap_or(FrameContent::Protobuf), zstd))
}

struct MessageConverter<'p> {
    input: &'p Arc<str>,
    /// 1-based number of the message in the input: the spans' `line`.
    message: u64,
    /// "message N at byte offset X" in a framed stream; `None` for a single message.
    place: Option<&'p str>,
    out: &'p mut Parsed,
}

impl MessageConverter<'_> {
    fn diag(&mut self, warning: bool, code: Code, message: String) {
        let message = match self.place {
            Some(place) => format!("{place}: {message}"),
            None => message,
        };
        self.out.diagnostics.push(if warning {
            Diagnostic::warning(self.input, None, code, message)
        } else {
            Diagnostic::error(self.input, None, code, message)
        });
    }

    fn text(&mut self, bytes: Vec<u8>, what: &dyn Fn() -> String) -> String {
        match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => {
                let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
                self.diag(
                    false,
                    Code::InvalidValue,
                    format!(
                        "{} is not valid UTF-8; invalid bytes are replaced by U+FFFD",
                        what()
                    ),
                );
                lossy
            }
        }
    }

    fn traces(&mut self, data: wire::TracesData) {
        for rs in data.resource_spans {
            let attributes = self.attributes(
                rs.resource.map(|r| r.attributes).unwrap_or_default(),
                &|| "a resource attribute".to_owned(),
            );
            let service_name = attributes
                .text("service.name")
                .map(|s| s.into_owned())
                .unwrap_or_else(|| "unknown_service".to_owned());
            let resource = Arc::new(Resource {
                service_name,
                attributes,
            });
            for scope in rs
                .scope_spans
                .into_iter()
                .chain(rs.instrumentation_library_spans)
            {
                for span in scope.spans {
                    self.span(span, &resource);
                }
            }
        }
    }

    fn span(&mut self, wire: wire::Span, resource: &Arc<Resource>) {
        self.out.spans_read += 1;
        let ordinal = self.out.spans_read;
        let name = self.text(wire.name, &|| format!("span #{ordinal}: the name"));
        let label = format!("span {name:?}");

        let trace_id = self.id::<16>(&wire.trace_id, &label, "traceId", false);
        let span_id = self.id::<8>(&wire.span_id, &label, "spanId", false);
        let parent_span_id = if wire.parent_span_id.is_empty() {
            None
        } else {
            self.id::<8>(&wire.parent_span_id, &label, "parentSpanId", true)
                .map(SpanId)
        };

        let start = wire.start_time_unix_nano;
        if start == 0 {
            self.diag(
                true,
                Code::MissingTime,
                format!("{label} has no startTimeUnixNano; its start is taken as 0"),
            );
        }
        let end = match wire.end_time_unix_nano {
            0 => {
                self.diag(
                    true,
                    Code::MissingTime,
                    format!("{label} has no endTimeUnixNano; it is taken as still open"),
                );
                None
            }
            t => Some(t),
        };
        let kind = match SpanKind::from_otlp(i64::from(wire.kind)) {
            Some(kind) => kind,
            None => {
                self.diag(
                    false,
                    Code::InvalidValue,
                    format!("{label}: kind {} is not a SpanKind (0-5)", wire.kind),
                );
                SpanKind::Unspecified
            }
        };
        let status = match wire.status {
            None => Status::default(),
            Some(status) => {
                let code = match StatusCode::from_otlp(i64::from(status.code)) {
                    Some(code) => code,
                    None => {
                        self.diag(
                            false,
                            Code::InvalidValue,
                            format!(
                                "{label}: status code {} is not a StatusCode (0-2)",
                                status.code
                            ),
                        );
                        StatusCode::Unset
                    }
                };
                let message = self.text(status.message, &|| format!("{label}: the status message"));
                Status {
                    code,
                    message: message.into(),
                }
            }
        };
        let attributes = self.attributes(wire.attributes, &|| format!("{label}: an attribute"));

        let mut events = Vec::with_capacity(wire.events.len());
        for event in wire.events {
            let event_name = self.text(event.name, &|| format!("{label}: an event name"));
            if event.time_unix_nano == 0 {
                self.diag(
                    false,
                    Code::InvalidValue,
                    format!(
                        "{label}: event {event_name:?} timeUnixNano is missing; the event is ignored"
                    ),
                );
                continue;
            }
            let attributes = self.attributes(event.attributes, &|| {
                format!("{label}: an attribute of event {event_name:?}")
            });
            events.push(Event {
                name: event_name,
                time: event.time_unix_nano,
                attributes,
            });
        }
        let mut links = Vec::with_capacity(wire.links.len());
        for link in wire.links {
            let ids = (
                fixed::<16>(&link.trace_id).map_err(|why| ("traceId", link.trace_id.clone(), why)),
                fixed::<8>(&link.span_id).map_err(|why| ("spanId", link.span_id.clone(), why)),
            );
            match ids {
                (Ok(t), Ok(s)) => {
                    let attributes =
                        self.attributes(link.attributes, &|| format!("{label}: a link attribute"));
                    links.push(Link {
                        trace_id: TraceId(t),
                        span_id: SpanId(s),
                        attributes,
                    });
                }
                (Err((field, raw, why)), _) | (_, Err((field, raw, why))) => self.diag(
                    false,
                    Code::InvalidId,
                    format!(
                        "{label}: link {field} {} {why}; the link is not followed",
                        hex(&raw)
                    ),
                ),
            }
        }

        let (Some(trace_id), Some(span_id)) = (trace_id, span_id) else {
            self.out.spans_unjoinable += 1;
            return;
        };
        self.out.spans.push(Span {
            trace_id: TraceId(trace_id),
            span_id: SpanId(span_id),
            parent_span_id,
            name: name.into(),
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
                line: self.message,
            },
        });
    }

    fn id<const N: usize>(
        &mut self,
        raw: &[u8],
        label: &str,
        field: &str,
        parent: bool,
    ) -> Option<[u8; N]> {
        match fixed::<N>(raw) {
            Ok(id) => Some(id),
            Err(why) if parent => {
                self.diag(
                    true,
                    Code::InvalidId,
                    format!(
                        "{label}: {field} {} {why}; the span is kept as a root of its trace",
                        hex(raw)
                    ),
                );
                None
            }
            Err(why) => {
                self.diag(
                    false,
                    Code::InvalidId,
                    format!(
                        "{label}: {field} {} {why}; the span is not used for joins",
                        hex(raw)
                    ),
                );
                None
            }
        }
    }

    fn attributes(&mut self, wire: Vec<wire::KeyValue>, what: &dyn Fn() -> String) -> Attributes {
        let mut out = Vec::with_capacity(wire.len());
        for kv in wire {
            let key = self.text(kv.key, &|| format!("{}'s key", what()));
            let value = match kv.value {
                Some(v) => self.value(v, &key),
                None => Value::Empty,
            };
            out.push(KeyValue {
                key: key.into(),
                value,
            });
        }
        Attributes(out)
    }

    fn value(&mut self, wire: wire::AnyValue, key: &str) -> Value {
        use wire::any_value::Value as W;
        match wire.value {
            None => Value::Empty,
            Some(W::String(s)) => {
                Value::String(self.text(s, &|| format!("attribute {key:?}: the string value")))
            }
            Some(W::Bool(b)) => Value::Bool(b),
            Some(W::Int(i)) => Value::Int(i),
            Some(W::Double(d)) => Value::Double(d),
            Some(W::Bytes(b)) => Value::Bytes(b),
            // A fresh vector: `collect` would keep the decoded message's allocation, with its
            // spare capacity, for as long as the span lives.
            Some(W::Array(a)) => {
                let mut out = Vec::with_capacity(a.values.len());
                for v in a.values {
                    out.push(self.value(v, key));
                }
                Value::Array(out)
            }
            Some(W::KvList(kvs)) => Value::KvList(
                self.attributes(kvs.values, &|| format!("attribute {key:?}"))
                    .0,
            ),
        }
    }
}

/// An id of exactly `N` bytes, not all zero.
fn fixed<const N: usize>(raw: &[u8]) -> Result<[u8; N], String> {
    if raw.is_empty() {
        return Err("is empty".to_owned());
    }
    let id: [u8; N] = raw
        .try_into()
        .map_err(|_| format!("is {} bytes; expected {N}", raw.len()))?;
    if id.iter().all(|b| *b == 0) {
        return Err("is all zeros, which OTLP defines as invalid".to_owned());
    }
    Ok(id)
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2 + 2);
    s.push('"');
    for b in bytes.iter().take(32) {
        s.push_str(&format!("{b:02x}"));
    }
    if bytes.len() > 32 {
        s.push('…');
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(trace: &[u8], id: &[u8]) -> wire::Span {
        wire::Span {
            trace_id: trace.to_vec(),
            span_id: id.to_vec(),
            name: b"op".to_vec(),
            start_time_unix_nano: 1,
            end_time_unix_nano: 2,
            ..Default::default()
        }
    }

    fn traces(spans: Vec<wire::Span>) -> wire::TracesData {
        wire::TracesData {
            resource_spans: vec![wire::ResourceSpans {
                scope_spans: vec![wire::ScopeSpans { spans }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn plausibility_wants_otlp_shaped_ids() {
        let good = traces(vec![span(&[1; 16], &[2; 8])]).encode_to_vec();
        assert!(decode_plausible(&good).is_ok());
        let empty = traces(vec![]).encode_to_vec();
        assert!(decode_plausible(&empty).unwrap_err().contains("no spans"));
        let odd = traces(vec![span(&[1; 5], &[2; 8])]).encode_to_vec();
        assert!(decode_plausible(&odd).unwrap_err().contains("5-byte"));
        assert!(decode_plausible(b"\x00\x00\x00\x05").is_err());
    }

    #[test]
    fn invalid_utf8_costs_a_diagnostic_not_the_message() {
        let input: Arc<str> = Arc::from("t.pb");
        let mut bad = span(&[1; 16], &[2; 8]);
        bad.name = b"caf\xe9".to_vec();
        let mut out = Parsed::default();
        read_unframed(&input, traces(vec![bad]), &mut out);
        assert_eq!(out.spans.len(), 1);
        assert_eq!(&*out.spans[0].name, "caf\u{fffd}");
        assert_eq!(out.diagnostics.len(), 1);
        assert_eq!(out.diagnostics[0].code, Code::InvalidValue);
        assert!(out.diagnostics[0].message.contains("UTF-8"));
    }

    #[test]
    fn a_framed_stream_reads_every_message_and_reports_a_cut_last_one() {
        let input: Arc<str> = Arc::from("t.pb");
        let msg = traces(vec![span(&[1; 16], &[2; 8])]).encode_to_vec();
        let mut stream = Vec::new();
        for _ in 0..2 {
            stream.extend_from_slice(&(msg.len() as u32).to_be_bytes());
            stream.extend_from_slice(&msg);
        }
        stream.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        stream.extend_from_slice(&msg[..3]);
        assert_eq!(sniff_framed(&stream), Ok(false));
        let mut out = Parsed::default();
        let (content, zstd) =
            read_framed(&input, &stream, &mut Budget::new(Some(1 << 20)), &mut out).unwrap();
        assert_eq!((content, zstd), (FrameContent::Protobuf, false));
        assert_eq!(out.spans.len(), 2);
        assert_eq!(out.lines, 2);
        assert_eq!(out.spans[1].origin.line, 2);
        assert_eq!(out.diagnostics.len(), 1);
        assert_eq!(out.diagnostics[0].code, Code::TruncatedFrame);
        assert!(
            out.diagnostics[0]
                .message
                .contains("message 3 at byte offset")
        );
    }
}

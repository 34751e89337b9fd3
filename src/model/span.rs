//! The normalised span model every input format is read into.
//!
//! Times are integer nanoseconds since the Unix epoch from the moment they are parsed; nothing
//! here goes through `f64`, because the audit compares a commit against an abort that may be
//! microseconds apart.

use std::sync::Arc;

use super::ids::{SpanId, TraceId};

/// An attribute value, as OTLP's `AnyValue` defines it.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    String(String),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(Vec<u8>),
    Array(Vec<Value>),
    KvList(Vec<KeyValue>),
    /// An `AnyValue` with no field set; OTLP allows it.
    Empty,
}

impl Value {
    /// The value as text, for rule matching: strings as they are, numbers and bools printed,
    /// and a one-element array (how header captures are recorded) as its element.
    pub fn as_text(&self) -> Option<std::borrow::Cow<'_, str>> {
        use std::borrow::Cow;
        match self {
            Value::String(s) => Some(Cow::Borrowed(s)),
            Value::Int(i) => Some(Cow::Owned(i.to_string())),
            Value::Bool(b) => Some(Cow::Owned(b.to_string())),
            Value::Array(items) if items.len() == 1 => items[0].as_text(),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::String(s) => s.trim().parse().ok(),
            Value::Double(d) if d.fract() == 0.0 && d.is_finite() => Some(*d as i64),
            Value::Array(items) if items.len() == 1 => items[0].as_int(),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct KeyValue {
    pub key: Arc<str>,
    pub value: Value,
}

/// Attributes in the order the input gave them. Spans carry a dozen or so, so a linear scan
/// beats a map in both memory and time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Attributes(pub Vec<KeyValue>);

impl Attributes {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|kv| &*kv.key == key).map(|kv| &kv.value)
    }

    pub fn text(&self, key: &str) -> Option<std::borrow::Cow<'_, str>> {
        self.get(key).and_then(Value::as_text)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &KeyValue> {
        self.0.iter()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum SpanKind {
    #[default]
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

impl SpanKind {
    pub fn from_otlp(code: i64) -> Option<SpanKind> {
        Some(match code {
            0 => SpanKind::Unspecified,
            1 => SpanKind::Internal,
            2 => SpanKind::Server,
            3 => SpanKind::Client,
            4 => SpanKind::Producer,
            5 => SpanKind::Consumer,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SpanKind::Unspecified => "unspecified",
            SpanKind::Internal => "internal",
            SpanKind::Server => "server",
            SpanKind::Client => "client",
            SpanKind::Producer => "producer",
            SpanKind::Consumer => "consumer",
        }
    }

    /// A span that sends work out of its process: a request (CLIENT) or a message (PRODUCER).
    pub fn is_outbound(self) -> bool {
        matches!(self, SpanKind::Client | SpanKind::Producer)
    }

    pub const ALL: [SpanKind; 6] = [
        SpanKind::Unspecified,
        SpanKind::Internal,
        SpanKind::Server,
        SpanKind::Client,
        SpanKind::Producer,
        SpanKind::Consumer,
    ];
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StatusCode {
    #[default]
    Unset,
    Ok,
    Error,
}

impl StatusCode {
    pub fn from_otlp(code: i64) -> Option<StatusCode> {
        Some(match code {
            0 => StatusCode::Unset,
            1 => StatusCode::Ok,
            2 => StatusCode::Error,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Status {
    pub code: StatusCode,
    pub message: Box<str>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub name: String,
    pub time: u64,
    pub attributes: Attributes,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub attributes: Attributes,
}

/// The resource a span was emitted by, shared by all spans of one `ResourceSpans`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resource {
    pub service_name: String,
    pub attributes: Attributes,
}

/// Where a span was read from, so findings and diagnostics can point back at the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub input: Arc<str>,
    /// 1-based line in the (decompressed) input.
    pub line: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub name: Arc<str>,
    pub kind: SpanKind,
    /// Start time, Unix nanoseconds.
    pub start: u64,
    /// End time, Unix nanoseconds; `None` when the exporter wrote none (a span left open).
    pub end: Option<u64>,
    pub status: Status,
    pub attributes: Attributes,
    pub resource: Arc<Resource>,
    pub events: Box<[Event]>,
    pub links: Box<[Link]>,
    pub origin: Origin,
}

impl Span {
    pub fn service(&self) -> &str {
        &self.resource.service_name
    }

    /// A span attribute, else the resource attribute of the same key.
    pub fn attr_or_resource(&self, key: &str) -> Option<&Value> {
        self.attributes
            .get(key)
            .or_else(|| self.resource.attributes.get(key))
    }
}

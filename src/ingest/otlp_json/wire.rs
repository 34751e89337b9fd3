//! The OTLP/JSON wire format as serde reads it. Field names follow the OTLP/JSON spec
//! (lowerCamelCase); aliases take the snake_case that protobuf's JSON printer writes with
//! `preserving_proto_field_name`. Every field that real writers vary on is read leniently (ids
//! in hex or base64, enums as numbers or names, 64-bit integers as strings or numbers, the
//! legacy `instrumentationLibrarySpans`); values are interpreted by the converter, so a bad
//! value costs a diagnostic for its field rather than its record.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, Visitor};
use serde_json::value::RawValue;

use crate::rules::abort::EXCEPTION_ATTRIBUTES;

/// A top-level record: `TracesData` / `ExportTraceServiceRequest`, or one of the wrappers that
/// query APIs put around it, with its spans read as `S` and its resources as `R`: in full
/// (`WholeEnvelope`), or as their text (`RawEnvelope`, the first pass over a large export).
/// The remaining fields exist only to recognise what a non-OTLP document is, so the error can
/// say so.
#[derive(Deserialize)]
#[serde(
    default,
    bound(deserialize = "S: Deserialize<'de>, R: Deserialize<'de>")
)]
pub(super) struct Envelope<S, R> {
    #[serde(rename = "resourceSpans", alias = "resource_spans")]
    resource_spans: Option<Vec<ResourceSpans<S, R>>>,
    /// Tempo: `{"batches": [ResourceSpans…]}`.
    batches: Option<Vec<ResourceSpans<S, R>>>,
    /// Jaeger API v3: `{"result": TracesData}`.
    result: Option<Box<Envelope<S, R>>>,
    /// Tempo: `{"trace": TracesData}`.
    trace: Option<Box<Envelope<S, R>>>,

    #[serde(rename = "resourceMetrics", alias = "resource_metrics")]
    resource_metrics: Option<IgnoredAny>,
    #[serde(rename = "resourceLogs", alias = "resource_logs")]
    resource_logs: Option<IgnoredAny>,
    #[serde(rename = "resourceProfiles", alias = "resource_profiles")]
    resource_profiles: Option<IgnoredAny>,
}

/// A record read in full.
pub(super) type WholeEnvelope<'a> = Envelope<WireSpan<'a>, WireResource<'a>>;

/// A record whose spans and resources are kept as their text.
pub(super) type RawEnvelope<'a> = Envelope<&'a RawValue, &'a RawValue>;

impl<S, R> Default for Envelope<S, R> {
    fn default() -> Self {
        Envelope {
            resource_spans: None,
            batches: None,
            result: None,
            trace: None,
            resource_metrics: None,
            resource_logs: None,
            resource_profiles: None,
        }
    }
}

impl<S, R> Envelope<S, R> {
    pub(super) fn is_traces(&self) -> bool {
        self.resource_spans.is_some()
            || self.batches.is_some()
            || self.result.as_ref().is_some_and(|r| r.is_traces())
            || self.trace.as_ref().is_some_and(|t| t.is_traces())
    }

    pub(super) fn is_other_telemetry(&self) -> bool {
        self.resource_metrics.is_some()
            || self.resource_logs.is_some()
            || self.resource_profiles.is_some()
    }

    /// Every `ResourceSpans` of the record, in the order they are read: the envelope's own
    /// (`resourceSpans`, then `batches`), then those of its `trace` and `result` wrappers.
    pub(super) fn into_resource_spans(self) -> Vec<ResourceSpans<S, R>> {
        let mut out = Vec::new();
        let mut pending = vec![self];
        while let Some(envelope) = pending.pop() {
            out.extend(
                envelope
                    .resource_spans
                    .into_iter()
                    .chain(envelope.batches)
                    .flatten(),
            );
            pending.extend(envelope.result.map(|b| *b));
            pending.extend(envelope.trace.map(|b| *b));
        }
        out
    }
}

#[derive(Deserialize)]
#[serde(
    default,
    bound(deserialize = "S: Deserialize<'de>, R: Deserialize<'de>")
)]
pub(super) struct ResourceSpans<S, R> {
    pub(super) resource: Option<R>,
    #[serde(
        rename = "scopeSpans",
        alias = "scope_spans",
        alias = "instrumentationLibrarySpans",
        alias = "instrumentation_library_spans"
    )]
    scope_spans: Option<Vec<ScopeSpans<S>>>,
}

impl<S, R> Default for ResourceSpans<S, R> {
    fn default() -> Self {
        ResourceSpans {
            resource: None,
            scope_spans: None,
        }
    }
}

impl<S, R> ResourceSpans<S, R> {
    /// The spans of its scopes, in order.
    pub(super) fn spans(self) -> impl Iterator<Item = S> {
        self.scope_spans
            .into_iter()
            .flatten()
            .flat_map(|s| s.spans)
            .flatten()
    }
}

#[derive(Deserialize)]
#[serde(default, bound(deserialize = "S: Deserialize<'de>"))]
struct ScopeSpans<S> {
    spans: Option<Vec<S>>,
}

impl<S> Default for ScopeSpans<S> {
    fn default() -> Self {
        ScopeSpans { spans: None }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct WireResource<'a> {
    #[serde(borrow)]
    pub(super) attributes: Option<Vec<WireKeyValue<'a>>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct WireSpan<'a> {
    #[serde(rename = "traceId", alias = "trace_id", borrow)]
    pub(super) trace_id: Option<Cow<'a, str>>,
    #[serde(rename = "spanId", alias = "span_id", borrow)]
    pub(super) span_id: Option<Cow<'a, str>>,
    #[serde(rename = "parentSpanId", alias = "parent_span_id", borrow)]
    pub(super) parent_span_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(super) name: Option<Cow<'a, str>>,
    pub(super) kind: Option<Flexible>,
    #[serde(rename = "startTimeUnixNano", alias = "start_time_unix_nano")]
    pub(super) start_time_unix_nano: Option<Flexible>,
    #[serde(rename = "endTimeUnixNano", alias = "end_time_unix_nano")]
    pub(super) end_time_unix_nano: Option<Flexible>,
    #[serde(borrow)]
    pub(super) attributes: Option<Vec<WireKeyValue<'a>>>,
    #[serde(borrow)]
    pub(super) events: Option<Vec<WireEvent<'a>>>,
    #[serde(borrow)]
    pub(super) links: Option<Vec<WireLink<'a>>>,
    #[serde(borrow)]
    pub(super) status: Option<WireStatus<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct WireEvent<'a> {
    #[serde(rename = "timeUnixNano", alias = "time_unix_nano")]
    pub(super) time_unix_nano: Option<Flexible>,
    #[serde(borrow)]
    pub(super) name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(super) attributes: Option<Vec<WireKeyValue<'a>>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct WireLink<'a> {
    #[serde(rename = "traceId", alias = "trace_id", borrow)]
    pub(super) trace_id: Option<Cow<'a, str>>,
    #[serde(rename = "spanId", alias = "span_id", borrow)]
    pub(super) span_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(super) attributes: Option<Vec<WireKeyValue<'a>>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct WireStatus<'a> {
    #[serde(borrow)]
    pub(super) message: Option<Cow<'a, str>>,
    pub(super) code: Option<Flexible>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct WireKeyValue<'a> {
    #[serde(borrow)]
    pub(super) key: Cow<'a, str>,
    #[serde(borrow)]
    pub(super) value: Option<WireAnyValue<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct WireAnyValue<'a> {
    #[serde(rename = "stringValue", alias = "string_value", borrow)]
    pub(super) string_value: Option<Cow<'a, str>>,
    #[serde(rename = "boolValue", alias = "bool_value")]
    pub(super) bool_value: Option<Flexible>,
    #[serde(rename = "intValue", alias = "int_value")]
    pub(super) int_value: Option<Flexible>,
    #[serde(rename = "doubleValue", alias = "double_value")]
    pub(super) double_value: Option<Flexible>,
    #[serde(rename = "bytesValue", alias = "bytes_value", borrow)]
    pub(super) bytes_value: Option<Cow<'a, str>>,
    #[serde(rename = "arrayValue", alias = "array_value", borrow)]
    pub(super) array_value: Option<WireArray<'a>>,
    #[serde(rename = "kvlistValue", alias = "kvlist_value", borrow)]
    pub(super) kvlist_value: Option<WireKvList<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct WireArray<'a> {
    #[serde(borrow)]
    pub(super) values: Option<Vec<WireAnyValue<'a>>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct WireKvList<'a> {
    #[serde(borrow)]
    pub(super) values: Option<Vec<WireKeyValue<'a>>>,
}

/// A scalar that writers spell in different ways: a 64-bit integer as a JSON number or a
/// decimal string, an enum as a number or a name, a double as a number or `"NaN"`. Kept as
/// written and interpreted by the field that reads it, so a bad value becomes a diagnostic for
/// that field instead of failing the whole record.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Flexible {
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Bool(bool),
    Text(String),
    Null,
    Other,
}

impl<'de> Deserialize<'de> for Flexible {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FlexibleVisitor;
        impl<'de> Visitor<'de> for FlexibleVisitor {
            type Value = Flexible;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number, string or bool")
            }
            fn visit_u64<E>(self, v: u64) -> Result<Flexible, E> {
                Ok(Flexible::Unsigned(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Flexible, E> {
                Ok(Flexible::Signed(v))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Flexible, E> {
                Ok(Flexible::Float(v))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Flexible, E> {
                Ok(Flexible::Bool(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Flexible, E> {
                Ok(Flexible::Text(v.to_owned()))
            }
            fn visit_unit<E>(self) -> Result<Flexible, E> {
                Ok(Flexible::Null)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Flexible, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Flexible::Other)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Flexible, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Flexible::Other)
            }
        }
        deserializer.deserialize_any(FlexibleVisitor)
    }
}

impl Flexible {
    pub(super) fn describe(&self) -> String {
        match self {
            Flexible::Unsigned(v) => v.to_string(),
            Flexible::Signed(v) => v.to_string(),
            Flexible::Float(v) => v.to_string(),
            Flexible::Bool(v) => v.to_string(),
            Flexible::Text(s) => format!("{s:?}"),
            Flexible::Null => "null".into(),
            Flexible::Other => "an object or array".into(),
        }
    }

    /// A Unix-nanosecond time. Floats are refused: at 1.7e18 an f64 is off by up to 256 ns.
    pub(super) fn as_time(&self) -> Result<u64, String> {
        match self {
            Flexible::Unsigned(v) => Ok(*v),
            Flexible::Text(s) => s
                .trim()
                .parse::<u64>()
                .map_err(|_| format!("{s:?} is not an unsigned 64-bit integer")),
            Flexible::Float(_) => Err(format!(
                "{} is a floating-point number; times must be integers (a float loses nanoseconds)",
                self.describe()
            )),
            other => Err(format!("{} is not a time in nanoseconds", other.describe())),
        }
    }

    pub(super) fn as_i64(&self) -> Option<i64> {
        match self {
            Flexible::Unsigned(v) => i64::try_from(*v).ok(),
            Flexible::Signed(v) => Some(*v),
            Flexible::Text(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    pub(super) fn as_f64(&self) -> Option<f64> {
        match self {
            Flexible::Unsigned(v) => Some(*v as f64),
            Flexible::Signed(v) => Some(*v as f64),
            Flexible::Float(v) => Some(*v),
            Flexible::Text(s) => match s.as_str() {
                "NaN" => Some(f64::NAN),
                "Infinity" => Some(f64::INFINITY),
                "-Infinity" => Some(f64::NEG_INFINITY),
                other => other.trim().parse().ok(),
            },
            _ => None,
        }
    }

    pub(super) fn as_bool(&self) -> Option<bool> {
        match self {
            Flexible::Bool(b) => Some(*b),
            Flexible::Text(s) if s == "true" => Some(true),
            Flexible::Text(s) if s == "false" => Some(false),
            _ => None,
        }
    }

    /// An enum given as its number or as its proto name, with or without the prefix
    /// (`3`, `"SPAN_KIND_CLIENT"`, `"CLIENT"`, `"client"`).
    pub(super) fn as_enum(&self, prefix: &str, names: &[&str]) -> Option<i64> {
        match self {
            Flexible::Text(s) => {
                let upper = s.trim().to_ascii_uppercase();
                let bare = upper.strip_prefix(prefix).unwrap_or(&upper);
                names
                    .iter()
                    .position(|n| *n == bare)
                    .map(|i| i as i64)
                    .or_else(|| bare.parse().ok())
            }
            other => other.as_i64(),
        }
    }
}

pub(super) const KIND_NAMES: &[&str] = &[
    "UNSPECIFIED",
    "INTERNAL",
    "SERVER",
    "CLIENT",
    "PRODUCER",
    "CONSUMER",
];

pub(super) const STATUS_NAMES: &[&str] = &["UNSET", "OK", "ERROR"];

/// A JSON list (or `null`) read element by element with a seed, keeping the elements the seed
/// returns.
#[derive(Clone, Copy)]
pub(super) struct ListOf<S> {
    item: S,
    what: &'static str,
}

impl<'de, T, S> de::DeserializeSeed<'de> for ListOf<S>
where
    S: de::DeserializeSeed<'de, Value = Option<T>> + Copy,
{
    type Value = Vec<T>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, T, S> Visitor<'de> for ListOf<S>
where
    S: de::DeserializeSeed<'de, Value = Option<T>> + Copy,
{
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.what)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut kept = Vec::new();
        while let Some(item) = seq.next_element_seed(self.item)? {
            kept.extend(item);
        }
        Ok(kept)
    }
}

/// Reads an attribute list keeping only the attributes `wanted` names; the values of the rest
/// are skipped unread. A survey reads every span's attributes, so this is its hot path.
pub(super) fn some_attributes(wanted: &dyn Fn(&str) -> bool) -> ListOf<SomeAttribute<'_>> {
    ListOf {
        item: SomeAttribute { wanted },
        what: "a list of attributes",
    }
}

#[derive(Clone, Copy)]
pub(super) struct SomeAttribute<'w> {
    wanted: &'w dyn Fn(&str) -> bool,
}

impl<'de> de::DeserializeSeed<'de> for SomeAttribute<'_> {
    type Value = Option<WireKeyValue<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for SomeAttribute<'_> {
    type Value = Option<WireKeyValue<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an attribute with a key and a value")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut key: Option<Cow<'de, str>> = None;
        let mut seen_key = false;
        let mut value: Option<WireAnyValue<'de>> = None;
        while let Some(RawStr(field)) = map.next_key::<RawStr<'de>>()? {
            match field.as_ref() {
                b"key" => {
                    seen_key = true;
                    key = raw_text(map.next_value::<RawStr<'de>>()?);
                }
                // Writers put the key first; a value met before its key is read in full.
                b"value" if !seen_key || key.as_deref().is_some_and(|k| (self.wanted)(k)) => {
                    value = map.next_value()?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(match key {
            Some(key) if (self.wanted)(&key) => Some(WireKeyValue { key, value }),
            _ => None,
        })
    }
}

/// A span's events with, of their attributes, only those that say what an exception was: the
/// rest (a stack trace, a model's prompt) is skipped unread, not copied and then dropped.
pub(super) const FILTERED_EVENTS: ListOf<FilteredEvent> = ListOf {
    item: FilteredEvent,
    what: "a list of span events",
};

#[derive(Clone, Copy)]
pub(super) struct FilteredEvent;

impl<'de> de::DeserializeSeed<'de> for FilteredEvent {
    type Value = Option<WireEvent<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FilteredEvent {
    type Value = Option<WireEvent<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a span event")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut event = WireEvent::default();
        while let Some(RawStr(field)) = map.next_key::<RawStr<'de>>()? {
            match field.as_ref() {
                b"timeUnixNano" | b"time_unix_nano" => event.time_unix_nano = map.next_value()?,
                b"name" => event.name = map.next_value()?,
                b"attributes" => {
                    event.attributes = Some(map.next_value_seed(some_attributes(&|key| {
                        EXCEPTION_ATTRIBUTES.contains(&key)
                    }))?);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Some(event))
    }
}

/// A string as raw bytes. The survey and the second read compare object keys and attribute
/// names with ASCII names; serde_json hands a string's bytes over without the UTF-8 check a
/// `str` costs, which is most of what those readers spend on a span they do not keep.
pub(super) struct RawStr<'de>(pub(super) Cow<'de, [u8]>);

impl<'de> Deserialize<'de> for RawStr<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RawStrVisitor;
        impl<'de> Visitor<'de> for RawStrVisitor {
            type Value = RawStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_bytes<E>(self, v: &'de [u8]) -> Result<Self::Value, E> {
                Ok(RawStr(Cow::Borrowed(v)))
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Self::Value, E> {
                Ok(RawStr(Cow::Owned(v.to_vec())))
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(RawStr(Cow::Borrowed(v.as_bytes())))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawStr(Cow::Owned(v.as_bytes().to_vec())))
            }
        }
        deserializer.deserialize_bytes(RawStrVisitor)
    }
}

/// A raw string as text, when it is valid UTF-8 (a key that is not cannot be wanted).
pub(super) fn raw_text<'de>(raw: RawStr<'de>) -> Option<Cow<'de, str>> {
    match raw.0 {
        Cow::Borrowed(b) => std::str::from_utf8(b).ok().map(Cow::Borrowed),
        Cow::Owned(b) => String::from_utf8(b).ok().map(Cow::Owned),
    }
}

/// A serde_json error's message without the position it appends, which would point into a
/// span read on its own rather than into the line.
pub(crate) fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    text.strip_suffix(&suffix).unwrap_or(&text).to_owned()
}

pub(super) fn wire_text<'v>(attributes: &'v [WireKeyValue<'_>], key: &str) -> Option<&'v str> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.string_value.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_refuse_floats_and_accept_strings_and_numbers() {
        assert_eq!(
            Flexible::Text("1581452772000000321".into()).as_time(),
            Ok(1581452772000000321)
        );
        assert_eq!(
            Flexible::Unsigned(1581452772000000321).as_time(),
            Ok(1581452772000000321)
        );
        assert!(Flexible::Float(1.5e18).as_time().is_err());
        assert!(Flexible::Text("-1".into()).as_time().is_err());
    }

    #[test]
    fn enums_accept_numbers_and_names() {
        for spelling in [
            Flexible::Unsigned(3),
            Flexible::Text("SPAN_KIND_CLIENT".into()),
            Flexible::Text("client".into()),
            Flexible::Text("3".into()),
        ] {
            assert_eq!(spelling.as_enum("SPAN_KIND_", KIND_NAMES), Some(3));
        }
        assert_eq!(
            Flexible::Text("STATUS_CODE_ERROR".into()).as_enum("STATUS_CODE_", STATUS_NAMES),
            Some(2)
        );
    }

    #[test]
    fn doubles_accept_the_proto3_json_spellings() {
        assert!(Flexible::Text("NaN".into()).as_f64().unwrap().is_nan());
        assert_eq!(
            Flexible::Text("-Infinity".into()).as_f64(),
            Some(f64::NEG_INFINITY)
        );
    }
}

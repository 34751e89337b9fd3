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
///
/// This and `ResourceSpans` and `ScopeSpans` are read as serde's derive reads a struct (by
/// `deserialize_struct`, from an object or an array, unknown keys ignored, a repeated key an
/// error), and note whether an unknown key was met (`unknown`): OTLP/JSON ignores fields it
/// does not define, so a misspelt `scopeSpans` would lose its spans without a word
/// (`unknown::lists_under_unknown_keys` then says which).
pub(super) struct Envelope<S, R> {
    resource_spans: Option<Vec<ResourceSpans<S, R>>>,
    /// Tempo: `{"batches": [ResourceSpans…]}`.
    batches: Option<Vec<ResourceSpans<S, R>>>,
    /// Jaeger API v3: `{"result": TracesData}`.
    result: Option<Box<Envelope<S, R>>>,
    /// Tempo: `{"trace": TracesData}`.
    trace: Option<Box<Envelope<S, R>>>,
    resource_metrics: Option<IgnoredAny>,
    resource_logs: Option<IgnoredAny>,
    resource_profiles: Option<IgnoredAny>,
    /// A key none of the above was met.
    unknown: bool,
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
            unknown: false,
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

/// Read as `Envelope` is (see there).
pub(super) struct ResourceSpans<S, R> {
    pub(super) resource: Option<R>,
    scope_spans: Option<Vec<ScopeSpans<S>>>,
    /// A key OTLP/JSON does not define was met (`schemaUrl` is defined, and ignored).
    unknown: bool,
}

impl<S, R> Default for ResourceSpans<S, R> {
    fn default() -> Self {
        ResourceSpans {
            resource: None,
            scope_spans: None,
            unknown: false,
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

/// Read as `Envelope` is (see there).
struct ScopeSpans<S> {
    spans: Option<Vec<S>>,
    /// A key OTLP/JSON does not define was met (`scope` and `schemaUrl` are defined, and
    /// ignored).
    unknown: bool,
}

impl<S> Default for ScopeSpans<S> {
    fn default() -> Self {
        ScopeSpans {
            spans: None,
            unknown: false,
        }
    }
}

impl<S> ScopeSpans<S> {
    fn has_unknown_keys(&self) -> bool {
        self.unknown
    }
}

impl<S, R> ResourceSpans<S, R> {
    fn has_unknown_keys(&self) -> bool {
        self.unknown
            || self
                .scope_spans
                .iter()
                .flatten()
                .any(ScopeSpans::has_unknown_keys)
    }
}

impl<S, R> Envelope<S, R> {
    /// Whether a key OTLP/JSON does not define was met where it holds lists of spans: in the
    /// record, its `ResourceSpans` or their `ScopeSpans`.
    pub(super) fn has_unknown_keys(&self) -> bool {
        self.unknown
            || self
                .resource_spans
                .iter()
                .chain(&self.batches)
                .flatten()
                .any(ResourceSpans::has_unknown_keys)
            || self.result.as_ref().is_some_and(|r| r.has_unknown_keys())
            || self.trace.as_ref().is_some_and(|t| t.has_unknown_keys())
    }
}

/// An object key, read as serde's derive reads the name of a struct's field (as text, escapes
/// decoded and checked).
struct FieldName<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for FieldName<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = FieldName<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("field identifier")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(FieldName(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(FieldName(Cow::Owned(v.to_owned())))
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Self::Value, E> {
                Ok(FieldName(String::from_utf8_lossy(v).into_owned().into()))
            }
        }
        deserializer.deserialize_identifier(NameVisitor)
    }
}

/// Reads the value of a field met once, as the derive does: a second one is an error.
fn once<'de, A: de::MapAccess<'de>, T: Deserialize<'de>>(
    map: &mut A,
    slot: &mut Option<T>,
    name: &'static str,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(de::Error::duplicate_field(name));
    }
    *slot = Some(map.next_value()?);
    Ok(())
}

/// Reads a field from an array, as the derive does for a struct written as one: the next
/// element, if there is one.
fn next<'de, A: de::SeqAccess<'de>, T: Deserialize<'de>>(
    seq: &mut A,
    slot: &mut T,
) -> Result<(), A::Error> {
    if let Some(value) = seq.next_element()? {
        *slot = value;
    }
    Ok(())
}

impl<'de, S: Deserialize<'de>, R: Deserialize<'de>> Deserialize<'de> for Envelope<S, R> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EnvelopeVisitor<S, R>(std::marker::PhantomData<(S, R)>);
        impl<'de, S: Deserialize<'de>, R: Deserialize<'de>> Visitor<'de> for EnvelopeVisitor<S, R> {
            type Value = Envelope<S, R>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("struct Envelope")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut env = Envelope::default();
                next(&mut seq, &mut env.resource_spans)?;
                next(&mut seq, &mut env.batches)?;
                next(&mut seq, &mut env.result)?;
                next(&mut seq, &mut env.trace)?;
                next(&mut seq, &mut env.resource_metrics)?;
                next(&mut seq, &mut env.resource_logs)?;
                next(&mut seq, &mut env.resource_profiles)?;
                Ok(env)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let (mut resource_spans, mut batches, mut result, mut trace) =
                    (None, None, None, None);
                let (mut metrics, mut logs, mut profiles) = (None, None, None);
                let mut unknown = false;
                while let Some(FieldName(key)) = map.next_key()? {
                    match key.as_ref() {
                        "resourceSpans" | "resource_spans" => {
                            once(&mut map, &mut resource_spans, "resourceSpans")?
                        }
                        "batches" => once(&mut map, &mut batches, "batches")?,
                        "result" => once(&mut map, &mut result, "result")?,
                        "trace" => once(&mut map, &mut trace, "trace")?,
                        "resourceMetrics" | "resource_metrics" => {
                            once(&mut map, &mut metrics, "resourceMetrics")?
                        }
                        "resourceLogs" | "resource_logs" => {
                            once(&mut map, &mut logs, "resourceLogs")?
                        }
                        "resourceProfiles" | "resource_profiles" => {
                            once(&mut map, &mut profiles, "resourceProfiles")?
                        }
                        _ => {
                            unknown = true;
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Envelope {
                    resource_spans: resource_spans.flatten(),
                    batches: batches.flatten(),
                    result: result.flatten(),
                    trace: trace.flatten(),
                    resource_metrics: metrics.flatten(),
                    resource_logs: logs.flatten(),
                    resource_profiles: profiles.flatten(),
                    unknown,
                })
            }
        }
        const FIELDS: &[&str] = &[
            "resourceSpans",
            "batches",
            "result",
            "trace",
            "resourceMetrics",
            "resourceLogs",
            "resourceProfiles",
        ];
        deserializer.deserialize_struct(
            "Envelope",
            FIELDS,
            EnvelopeVisitor(std::marker::PhantomData),
        )
    }
}

impl<'de, S: Deserialize<'de>, R: Deserialize<'de>> Deserialize<'de> for ResourceSpans<S, R> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ResourceSpansVisitor<S, R>(std::marker::PhantomData<(S, R)>);
        impl<'de, S: Deserialize<'de>, R: Deserialize<'de>> Visitor<'de> for ResourceSpansVisitor<S, R> {
            type Value = ResourceSpans<S, R>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("struct ResourceSpans")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut group = ResourceSpans::default();
                next(&mut seq, &mut group.resource)?;
                next(&mut seq, &mut group.scope_spans)?;
                Ok(group)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let (mut resource, mut scope_spans) = (None, None);
                let mut unknown = false;
                while let Some(FieldName(key)) = map.next_key()? {
                    match key.as_ref() {
                        "resource" => once(&mut map, &mut resource, "resource")?,
                        "scopeSpans"
                        | "scope_spans"
                        | "instrumentationLibrarySpans"
                        | "instrumentation_library_spans" => {
                            once(&mut map, &mut scope_spans, "scopeSpans")?
                        }
                        other => {
                            unknown |= !matches!(other, "schemaUrl" | "schema_url");
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(ResourceSpans {
                    resource: resource.flatten(),
                    scope_spans: scope_spans.flatten(),
                    unknown,
                })
            }
        }
        deserializer.deserialize_struct(
            "ResourceSpans",
            &["resource", "scopeSpans"],
            ResourceSpansVisitor(std::marker::PhantomData),
        )
    }
}

impl<'de, S: Deserialize<'de>> Deserialize<'de> for ScopeSpans<S> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScopeSpansVisitor<S>(std::marker::PhantomData<S>);
        impl<'de, S: Deserialize<'de>> Visitor<'de> for ScopeSpansVisitor<S> {
            type Value = ScopeSpans<S>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("struct ScopeSpans")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut scope = ScopeSpans::default();
                next(&mut seq, &mut scope.spans)?;
                Ok(scope)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut spans = None;
                let mut unknown = false;
                while let Some(FieldName(key)) = map.next_key()? {
                    match key.as_ref() {
                        "spans" => once(&mut map, &mut spans, "spans")?,
                        other => {
                            unknown |= !matches!(
                                other,
                                "scope"
                                    | "schemaUrl"
                                    | "schema_url"
                                    | "instrumentationLibrary"
                                    | "instrumentation_library"
                            );
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(ScopeSpans {
                    spans: spans.flatten(),
                    unknown,
                })
            }
        }
        deserializer.deserialize_struct(
            "ScopeSpans",
            &["spans"],
            ScopeSpansVisitor(std::marker::PhantomData),
        )
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
            Flexible::Text(s) => enum_value(s, prefix, names),
            other => other.as_i64(),
        }
    }
}

/// An enum written as text: its proto name, with or without the prefix, in any case, or its
/// number.
pub(super) fn enum_value(text: &str, prefix: &str, names: &[&str]) -> Option<i64> {
    let upper = text.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix(prefix).unwrap_or(&upper);
    names
        .iter()
        .position(|n| *n == bare)
        .map(|i| i as i64)
        .or_else(|| bare.parse().ok())
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

    /// The envelope as serde's derive read it before it noted unknown keys.
    #[derive(Deserialize)]
    #[serde(
        default,
        bound(deserialize = "S: Deserialize<'de>, R: Deserialize<'de>")
    )]
    struct DerivedEnvelope<S, R> {
        #[serde(rename = "resourceSpans", alias = "resource_spans")]
        resource_spans: Option<Vec<DerivedResourceSpans<S, R>>>,
        batches: Option<Vec<DerivedResourceSpans<S, R>>>,
        result: Option<Box<DerivedEnvelope<S, R>>>,
        trace: Option<Box<DerivedEnvelope<S, R>>>,
        #[serde(rename = "resourceMetrics", alias = "resource_metrics")]
        resource_metrics: Option<IgnoredAny>,
        #[serde(rename = "resourceLogs", alias = "resource_logs")]
        resource_logs: Option<IgnoredAny>,
        #[serde(rename = "resourceProfiles", alias = "resource_profiles")]
        resource_profiles: Option<IgnoredAny>,
    }

    impl<S, R> Default for DerivedEnvelope<S, R> {
        fn default() -> Self {
            DerivedEnvelope {
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

    #[derive(Deserialize)]
    #[serde(
        default,
        bound(deserialize = "S: Deserialize<'de>, R: Deserialize<'de>")
    )]
    struct DerivedResourceSpans<S, R> {
        resource: Option<R>,
        #[serde(
            rename = "scopeSpans",
            alias = "scope_spans",
            alias = "instrumentationLibrarySpans",
            alias = "instrumentation_library_spans"
        )]
        scope_spans: Option<Vec<DerivedScopeSpans<S>>>,
    }

    impl<S, R> Default for DerivedResourceSpans<S, R> {
        fn default() -> Self {
            DerivedResourceSpans {
                resource: None,
                scope_spans: None,
            }
        }
    }

    #[derive(Deserialize)]
    #[serde(default, bound(deserialize = "S: Deserialize<'de>"))]
    struct DerivedScopeSpans<S> {
        spans: Option<Vec<S>>,
    }

    impl<S> Default for DerivedScopeSpans<S> {
        fn default() -> Self {
            DerivedScopeSpans { spans: None }
        }
    }

    type Raw<'a> = &'a RawValue;

    fn describe_derived(env: &DerivedEnvelope<Raw<'_>, Raw<'_>>) -> String {
        let groups = |list: &Option<Vec<DerivedResourceSpans<Raw<'_>, Raw<'_>>>>| {
            list.as_ref().map(|groups| {
                groups
                    .iter()
                    .map(|g| {
                        let spans: Option<Vec<Option<Vec<&str>>>> =
                            g.scope_spans.as_ref().map(|s| {
                                s.iter()
                                    .map(|s| {
                                        s.spans
                                            .as_ref()
                                            .map(|s| s.iter().map(|r| r.get()).collect())
                                    })
                                    .collect()
                            });
                        format!("{:?} {spans:?}", g.resource.map(|r| r.get()))
                    })
                    .collect::<Vec<_>>()
            })
        };
        format!(
            "{:?} {:?} {:?} {:?} {} {} {}",
            groups(&env.resource_spans),
            groups(&env.batches),
            env.result.as_ref().map(|e| describe_derived(e)),
            env.trace.as_ref().map(|e| describe_derived(e)),
            env.resource_metrics.is_some(),
            env.resource_logs.is_some(),
            env.resource_profiles.is_some()
        )
    }

    fn describe(env: &Envelope<Raw<'_>, Raw<'_>>) -> String {
        let groups = |list: &Option<Vec<ResourceSpans<Raw<'_>, Raw<'_>>>>| {
            list.as_ref().map(|groups| {
                groups
                    .iter()
                    .map(|g| {
                        let spans: Option<Vec<Option<Vec<&str>>>> =
                            g.scope_spans.as_ref().map(|s| {
                                s.iter()
                                    .map(|s| {
                                        s.spans
                                            .as_ref()
                                            .map(|s| s.iter().map(|r| r.get()).collect())
                                    })
                                    .collect()
                            });
                        format!("{:?} {spans:?}", g.resource.map(|r| r.get()))
                    })
                    .collect::<Vec<_>>()
            })
        };
        format!(
            "{:?} {:?} {:?} {:?} {} {} {}",
            groups(&env.resource_spans),
            groups(&env.batches),
            env.result.as_ref().map(|e| describe(e)),
            env.trace.as_ref().map(|e| describe(e)),
            env.resource_metrics.is_some(),
            env.resource_logs.is_some(),
            env.resource_profiles.is_some()
        )
    }

    /// The envelope reads every record, damaged or not, as serde's derive read it: the same
    /// value, or the same error at the same place.
    #[test]
    fn the_envelope_reads_as_the_derive_did() {
        let records = [
            r#"{"resourceSpans":[{"resource":{"attributes":[]},"schemaUrl":"u","scopeSpans":[{"scope":{},"spans":[{"a":1},2]},{"spans":null}]}],"batches":[{"instrumentationLibrarySpans":[{"spans":[]}]}],"result":{"resource_spans":[]},"trace":{"x":[{}]},"resourceLogs":[1],"other":[{"spans":[]}]}"#,
            r#"[[[null,[[1]]]],null,null,[null],1,2,3]"#,
        ];
        let mut checked = 0;
        for record in records {
            for text in crate::ingest::json_text::cursor::tests::damaged(
                record.as_bytes(),
                b" \"{}[],:0n\xff",
            ) {
                // (The derive names the struct it reads: these had the names of ours.)
                let derived = serde_json::from_slice::<DerivedEnvelope<Raw<'_>, Raw<'_>>>(&text)
                    .map(|e| describe_derived(&e))
                    .map_err(|e| e.to_string().replace("struct Derived", "struct "));
                let ours = serde_json::from_slice::<Envelope<Raw<'_>, Raw<'_>>>(&text)
                    .map(|e| describe(&e))
                    .map_err(|e| e.to_string());
                assert_eq!(ours, derived, "{}", String::from_utf8_lossy(&text));
                checked += usize::from(ours.is_ok());
            }
        }
        assert!(checked > 500, "{checked}");
        // A repeated field, under either name.
        for text in [
            r#"{"resourceSpans":[],"resource_spans":[]}"#,
            r#"{"resourceSpans":[{"scopeSpans":[],"instrumentation_library_spans":[]}]}"#,
            r#"{"resourceSpans":[{"scopeSpans":[{"spans":[],"spans":null}]}]}"#,
        ] {
            let derived = serde_json::from_str::<DerivedEnvelope<Raw<'_>, Raw<'_>>>(text)
                .map(|_| ())
                .map_err(|e| e.to_string());
            let ours = serde_json::from_str::<Envelope<Raw<'_>, Raw<'_>>>(text)
                .map(|_| ())
                .map_err(|e| e.to_string());
            assert!(ours.is_err(), "{text}");
            assert_eq!(ours, derived, "{text}");
        }
    }

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

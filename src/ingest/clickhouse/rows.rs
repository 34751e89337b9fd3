//! A row of `otel_traces`, as the survey's query returns it, into the span model: times back to
//! Unix nanoseconds (the end is the start plus `Duration`, which the exporter computed by
//! wrapping subtraction, so the sum wraps back to the span's end), both spellings of the
//! enums, and attribute values as typed as the table kept them. A `Map` column holds strings
//! only: the values the rules compare as numbers (HTTP and RPC status codes) become integers
//! again, and header captures, which are lists that Go wrote as JSON, lists again. A `JSON`
//! column keeps types, but splits dotted keys into nested objects: they are joined back.

use std::borrow::Cow;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::super::Parsed;
use super::dialect::{self, Dialect};
use crate::model::ids::decode_id;
use crate::model::semconv::{HTTP_RESPONSE_STATUS_CODE, RPC_STATUS_CODE, SERVICE_NAME};
use crate::model::{
    Attributes, Code, Diagnostic, Event, KeyValue, Link, Origin, Resource, Span, SpanId, SpanKind,
    Status, StatusCode, TraceId, Value,
};
use crate::rules::Rules;

/// One row, under the query's short names (see `Sql::columns`).
#[derive(Deserialize)]
struct Row<'a> {
    #[serde(borrow)]
    t: Cow<'a, str>,
    #[serde(borrow)]
    s: Cow<'a, str>,
    #[serde(borrow)]
    p: Cow<'a, str>,
    #[serde(borrow)]
    n: Cow<'a, str>,
    #[serde(borrow)]
    k: Cow<'a, str>,
    #[serde(borrow)]
    v: Cow<'a, str>,
    #[serde(borrow)]
    b: Cow<'a, str>,
    #[serde(borrow)]
    d: Cow<'a, str>,
    #[serde(borrow)]
    c: Cow<'a, str>,
    #[serde(borrow)]
    m: Cow<'a, str>,
    a: Flat,
    #[serde(borrow)]
    r: &'a RawValue,
    #[serde(borrow)]
    et: Vec<Cow<'a, str>>,
    #[serde(borrow)]
    en: Vec<Cow<'a, str>>,
    ea: Vec<Flat>,
    #[serde(borrow)]
    lt: Vec<Cow<'a, str>>,
    #[serde(borrow)]
    ls: Vec<Cow<'a, str>>,
    w: u8,
}

/// Attributes as (key, value), flattened: a nested object (a JSON column's path) gives dotted
/// keys; a JSON `null` (a path this row does not have) gives nothing.
#[derive(Default)]
struct Flat(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Flat {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut out = Vec::new();
        deserializer.deserialize_map(FlatVisitor {
            prefix: String::new(),
            out: &mut out,
        })?;
        Ok(Flat(out))
    }
}

struct FlatVisitor<'o> {
    prefix: String,
    out: &'o mut Vec<(String, Value)>,
}

impl<'de> Visitor<'de> for FlatVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object of attributes")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let key = if self.prefix.is_empty() {
                key.into_owned()
            } else {
                format!("{}.{key}", self.prefix)
            };
            map.next_value_seed(FlatValue {
                key,
                out: &mut *self.out,
            })?;
        }
        Ok(())
    }
}

/// One attribute value: a scalar or a list is kept under its key, an object is flattened.
struct FlatValue<'o> {
    key: String,
    out: &'o mut Vec<(String, Value)>,
}

impl<'de> de::DeserializeSeed<'de> for FlatValue<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        let value = serde_json::Value::deserialize(deserializer).map_err(de::Error::custom)?;
        flatten(self.key, value, self.out);
        Ok(())
    }
}

fn flatten(key: String, value: serde_json::Value, out: &mut Vec<(String, Value)>) {
    match value {
        serde_json::Value::Object(members) => {
            for (k, v) in members {
                flatten(format!("{key}.{k}"), v, out);
            }
        }
        serde_json::Value::Null => {}
        other => out.push((key, typed(other))),
    }
}

fn typed(value: serde_json::Value) -> Value {
    match value {
        serde_json::Value::String(s) => Value::String(s),
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => n.as_f64().map_or(Value::Empty, Value::Double),
        },
        serde_json::Value::Array(items) => Value::Array(items.into_iter().map(typed).collect()),
        serde_json::Value::Object(members) => Value::KvList(
            members
                .into_iter()
                .map(|(k, v)| KeyValue {
                    key: Arc::from(k.as_str()),
                    value: typed(v),
                })
                .collect(),
        ),
        serde_json::Value::Null => Value::Empty,
    }
}

/// `2026-12-06 04:40:44.472000000`, a `DateTime64` in UTC as ClickHouse writes it, as
/// `2026-12-06T04:40:44.472000000Z`; any other text as it is.
fn rfc3339_from_utc_datetime(text: String) -> String {
    let fraction_ok = match text.get(19..) {
        Some("") => true,
        Some(f) => f.len() >= 2 && f.len() <= 10 && f.starts_with('.'),
        None => false,
    };
    if fraction_ok
        && text.as_bytes().get(10) == Some(&b' ')
        && chrono::NaiveDateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S%.f").is_ok()
    {
        format!("{}T{}Z", &text[..10], &text[11..])
    } else {
        text
    }
}

/// Turns rows into spans, sharing one resource among the rows that have the same.
pub(super) struct Converter {
    input: Arc<str>,
    /// Whether values are strings that may need their type back (a `Map` column).
    strings_only: bool,
    /// A `JSON` column's times are given back in UTC (`Dialect::json_times_in_utc`).
    times_in_utc: bool,
    /// Keys whose values are lists that a `Map` column holds as JSON text.
    list_keys: Vec<String>,
    resources: FxHashMap<String, Arc<Resource>>,
    pub(super) parsed: Parsed,
    /// Rows whose trace was reached only through the last level of links.
    pub(super) at_link_depth: u64,
}

/// Header captures are lists (`http.request.header.idempotency-key: ["…"]`).
const LIST_PREFIXES: [&str; 2] = ["http.request.header.", "http.response.header."];

impl Converter {
    pub(super) fn new(input: &str, dialect: &Dialect, rules: &Rules) -> Converter {
        let join = &rules.join;
        let list_keys = [
            &join.idempotency_key,
            &join.request_id,
            &join.message_id,
            &join.job_id,
            &join.object_id,
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
        Converter {
            input: Arc::from(input),
            strings_only: dialect.attributes == dialect::Attributes::Map,
            times_in_utc: dialect.json_times_in_utc(),
            list_keys,
            resources: FxHashMap::default(),
            parsed: Parsed::default(),
            at_link_depth: 0,
        }
    }

    fn diag(&mut self, line: u64, code: Code, message: String) {
        self.parsed
            .diagnostics
            .push(Diagnostic::error(&self.input, Some(line), code, message));
    }

    fn warn(&mut self, line: u64, code: Code, message: String) {
        self.parsed
            .diagnostics
            .push(Diagnostic::warning(&self.input, Some(line), code, message));
    }

    /// A value of a `Map` column, with the type the rules need back; a time of a `JSON`
    /// column, in RFC 3339 again.
    fn restore(&self, key: &str, text: String) -> Value {
        if !self.strings_only {
            return Value::String(if self.times_in_utc {
                rfc3339_from_utc_datetime(text)
            } else {
                text
            });
        }
        if HTTP_RESPONSE_STATUS_CODE.contains(&key) || RPC_STATUS_CODE.contains(&key) {
            if let Ok(n) = text.parse::<i64>() {
                return Value::Int(n);
            }
        } else if text.starts_with('[')
            && (self.list_keys.iter().any(|k| k == key)
                || LIST_PREFIXES.iter().any(|p| key.starts_with(p)))
            && let Ok(serde_json::Value::Array(items)) = serde_json::from_str(&text)
        {
            return Value::Array(items.into_iter().map(typed).collect());
        }
        Value::String(text)
    }

    fn attributes(&mut self, flat: Flat) -> Attributes {
        let mut out = Vec::with_capacity(flat.0.len());
        for (key, value) in flat.0 {
            let value = match value {
                Value::String(text) => self.restore(&key, text),
                // (A JSON column's list of times: a header capture.)
                Value::Array(items) if self.times_in_utc => Value::Array(
                    items
                        .into_iter()
                        .map(|item| match item {
                            Value::String(text) => Value::String(rfc3339_from_utc_datetime(text)),
                            other => other,
                        })
                        .collect(),
                ),
                other => other,
            };
            out.push(KeyValue {
                key: self.parsed.intern(&key),
                value,
            });
        }
        Attributes(out)
    }

    fn resource(&mut self, service: &str, raw: &RawValue, line: u64) -> Arc<Resource> {
        let key = format!("{service}\u{0}{}", raw.get());
        if let Some(resource) = self.resources.get(&key) {
            return Arc::clone(resource);
        }
        let flat: Flat = match serde_json::from_str(raw.get()) {
            Ok(flat) => flat,
            Err(e) => {
                self.diag(
                    line,
                    Code::InvalidRecord,
                    format!("the row's ResourceAttributes cannot be read ({e}); left empty"),
                );
                Flat::default()
            }
        };
        let attributes = self.attributes(flat);
        // As the file readers name a service: `service.name`, else the column the exporter
        // filled from it, else OpenTelemetry's `unknown_service`.
        let service_name = attributes
            .text(SERVICE_NAME)
            .map(Cow::into_owned)
            .or_else(|| (!service.is_empty()).then(|| service.to_owned()))
            .unwrap_or_else(|| "unknown_service".to_owned());
        let resource = Arc::new(Resource {
            service_name,
            attributes,
        });
        self.resources.insert(key, Arc::clone(&resource));
        resource
    }

    /// Converts the row numbered `line`.
    pub(super) fn row(&mut self, line: u64, text: &[u8]) -> anyhow::Result<()> {
        let row: Row<'_> = serde_json::from_slice(text)
            .map_err(|e| anyhow::anyhow!("not a row of the survey's columns: {e}"))?;
        self.parsed.lines = line;
        self.parsed.spans_read += 1;
        if row.w == 0 {
            self.at_link_depth += 1;
        }
        let name = row.n.into_owned();
        let trace_id = match decode_id::<16>(&row.t) {
            Ok(id) => TraceId(id),
            Err(why) => {
                self.parsed.spans_unjoinable += 1;
                self.diag(
                    line,
                    Code::InvalidId,
                    format!("span {name:?}: TraceId {:?} {why}", row.t),
                );
                return Ok(());
            }
        };
        let span_id = match decode_id::<8>(&row.s) {
            Ok(id) => SpanId(id),
            Err(why) => {
                self.parsed.spans_unjoinable += 1;
                self.diag(
                    line,
                    Code::InvalidId,
                    format!("span {name:?}: SpanId {:?} {why}", row.s),
                );
                return Ok(());
            }
        };
        let parent_span_id = match &*row.p {
            "" => None,
            raw => match decode_id::<8>(raw) {
                Ok(id) => Some(SpanId(id)),
                Err(why) => {
                    self.warn(
                        line,
                        Code::InvalidId,
                        format!(
                            "span {name:?}: ParentSpanId {raw:?} {why}; the span is kept as a root of its trace"
                        ),
                    );
                    None
                }
            },
        };
        let start: u64 = row.b.parse().unwrap_or(0);
        if start == 0 {
            self.warn(
                line,
                Code::MissingTime,
                format!("span {name:?} has no start time; its start is taken as 0"),
            );
        }
        // `Duration` is the end minus the start, wrapped (`UInt64`) or signed (`Int64`): added
        // back with wrapping, it gives the end the span was exported with. An end of 0 is a
        // span never ended.
        let duration = row
            .d
            .parse::<u64>()
            .ok()
            .or_else(|| row.d.parse::<i64>().ok().map(|d| d as u64))
            .unwrap_or(0);
        let end = match start.wrapping_add(duration) {
            0 => {
                self.warn(
                    line,
                    Code::MissingTime,
                    format!("span {name:?} has no end time; it is taken as still open"),
                );
                None
            }
            end => Some(end),
        };
        let kind = match span_kind(&row.k) {
            Some(kind) => kind,
            None => {
                self.diag(
                    line,
                    Code::InvalidValue,
                    format!("span {name:?}: SpanKind {:?} is not a span kind", row.k),
                );
                SpanKind::Unspecified
            }
        };
        let code = match status_code(&row.c) {
            Some(code) => code,
            None => {
                self.diag(
                    line,
                    Code::InvalidValue,
                    format!("span {name:?}: StatusCode {:?} is not a status code", row.c),
                );
                StatusCode::Unset
            }
        };
        let resource = self.resource(&row.v, row.r, line);
        let attributes = self.attributes(row.a);
        let mut events = Vec::with_capacity(row.en.len());
        for ((time, event_name), attributes) in row.et.iter().zip(row.en).zip(row.ea) {
            events.push(Event {
                name: event_name.into_owned(),
                time: time.parse().unwrap_or(0),
                attributes: self.attributes(attributes),
            });
        }
        let links = row
            .lt
            .iter()
            .zip(&row.ls)
            .filter_map(|(t, s)| {
                Some(Link {
                    trace_id: TraceId(decode_id::<16>(t).ok()?),
                    span_id: SpanId(decode_id::<8>(s).ok()?),
                    attributes: Attributes::default(),
                })
            })
            .collect::<Vec<_>>();
        self.parsed.spans.push(Span {
            trace_id,
            span_id,
            parent_span_id,
            name: Arc::from(name),
            kind,
            start,
            end,
            status: Status {
                code,
                message: row.m.into_owned().into_boxed_str(),
            },
            attributes,
            resource,
            events: events.into_boxed_slice(),
            links: links.into_boxed_slice(),
            origin: Origin {
                input: Arc::clone(&self.input),
                line,
            },
        });
        Ok(())
    }
}

/// Both spellings: `Server` (exporters since 2024) and `SPAN_KIND_SERVER` (before).
fn span_kind(text: &str) -> Option<SpanKind> {
    let name = text.strip_prefix("SPAN_KIND_").unwrap_or(text);
    SpanKind::ALL
        .into_iter()
        .find(|k| k.as_str().eq_ignore_ascii_case(name))
}

/// Both spellings: `Error` and `STATUS_CODE_ERROR`.
fn status_code(text: &str) -> Option<StatusCode> {
    let name = text.strip_prefix("STATUS_CODE_").unwrap_or(text);
    Some(match name.to_ascii_lowercase().as_str() {
        "unset" | "" => StatusCode::Unset,
        "ok" => StatusCode::Ok,
        "error" => StatusCode::Error,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(strings_only: bool, row: &str) -> Span {
        let rules = Rules::default();
        let dialect = Dialect {
            attributes: if strings_only {
                dialect::Attributes::Map
            } else {
                dialect::Attributes::Json
            },
            scope_columns: true,
            duration: "UInt64".into(),
            engine: "MergeTree".into(),
            time_zone: "UTC".into(),
        };
        let mut converter = Converter::new("store", &dialect, &rules);
        converter.row(7, row.as_bytes()).unwrap();
        assert!(
            converter.parsed.diagnostics.is_empty(),
            "{:?}",
            converter.parsed.diagnostics
        );
        converter.parsed.spans.pop().unwrap()
    }

    #[test]
    fn a_map_row_becomes_the_span_the_exporter_was_given() {
        let span = convert(
            true,
            r#"{"t":"7914a0e535ec82ad47526f6488e34d51","s":"7a2006435e93cca1","p":"","n":"POST /v1/payments","k":"SPAN_KIND_SERVER","v":"payments-api","b":"1795623370051804930","d":"351884954","c":"Error","m":"boom","a":{"http.response.status_code":"499","http.request.header.idempotency-key":"[\"k-1\"]","gen_ai.conversation.id":"[not a list]"},"r":{"service.name":"payments-api","host.name":"h1"},"et":["1795623370051804999"],"en":["exception"],"ea":[{"exception.type":"BrokenPipeError"}],"lt":["00000000000000000000000000000001"],"ls":["0000000000000002"],"w":1}"#,
        );
        assert_eq!(span.kind, SpanKind::Server);
        assert_eq!(span.status.code, StatusCode::Error);
        assert_eq!(span.end, Some(1795623370051804930 + 351884954));
        assert_eq!(span.origin.line, 7);
        assert_eq!(span.service(), "payments-api");
        assert_eq!(
            span.attributes.get("http.response.status_code"),
            Some(&Value::Int(499))
        );
        assert_eq!(
            span.attributes.get("http.request.header.idempotency-key"),
            Some(&Value::Array(vec![Value::String("k-1".into())]))
        );
        assert_eq!(
            span.attributes.text("gen_ai.conversation.id").unwrap(),
            "[not a list]"
        );
        assert_eq!(
            span.events[0].attributes.text("exception.type").unwrap(),
            "BrokenPipeError"
        );
        assert_eq!(span.links.len(), 1);
    }

    #[test]
    fn a_json_row_is_flattened_back_to_dotted_keys_and_wrapped_durations_unwrap() {
        // An end before the start: the exporter's UInt64 subtraction wrapped.
        let span = convert(
            false,
            r#"{"t":"7914a0e535ec82ad47526f6488e34d51","s":"7a2006435e93cca1","p":"0000000000000003","n":"x","k":"Client","v":"","b":"1000","d":"18446744073709551516","c":"Unset","m":"","a":{"http":{"response":{"status_code":200}},"ok":true},"r":{},"et":[],"en":[],"ea":[],"lt":[],"ls":[],"w":1}"#,
        );
        assert_eq!(span.end, Some(900));
        assert_eq!(span.service(), "unknown_service");
        assert_eq!(
            span.attributes.get("http.response.status_code"),
            Some(&Value::Int(200))
        );
        assert_eq!(span.attributes.get("ok"), Some(&Value::Bool(true)));
        assert!(span.parent_span_id.is_some());
    }

    #[test]
    fn a_utc_datetime_of_a_json_column_is_rfc3339_again_and_other_text_is_left_alone() {
        let again = |t: &str| rfc3339_from_utc_datetime(t.to_owned());
        assert_eq!(
            again("2026-12-06 04:40:44.472000000"),
            "2026-12-06T04:40:44.472000000Z"
        );
        assert_eq!(again("2026-12-06 04:40:44"), "2026-12-06T04:40:44Z");
        for text in [
            "2026-12-06T04:40:44.472+00:00",
            "2026-12-06 04:40:44.",
            "2026-12-06 04:40:44 UTC",
            "2026-13-06 04:40:44",
            "2026-12-06",
            "0.4",
            "",
        ] {
            assert_eq!(again(text), text);
        }
    }
}

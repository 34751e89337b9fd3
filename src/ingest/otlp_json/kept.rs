//! The second pass over a large export: a kept span read from its text, with only the
//! attributes the audit reads; without serde for what exporters write plainly.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use serde::Deserializer as _;
use serde::de::{self, IgnoredAny, Visitor};

use super::super::Parsed;
use super::super::json_text::cursor::{Cursor, each_element, each_member};
use super::convert::{Converter, Position};
use super::wire::{
    FILTERED_EVENTS, Flexible, RawStr, WireAnyValue, WireKeyValue, WireSpan, some_attributes,
};
use crate::model::ids::decode_id;
use crate::model::{Resource, TraceId};
use crate::rules::keys::AttributesRead;

/// What the second read of a large export keeps.
#[derive(Debug, Default)]
pub(crate) struct Keep {
    pub traces: rustc_hash::FxHashSet<TraceId>,
    /// Span attributes the audit reads (`Rules::attributes_read`).
    pub attributes: AttributesRead,
}

pub(super) struct KeepVisitor<'k> {
    keep: &'k Keep,
}

impl<'de> Visitor<'de> for KeepVisitor<'_> {
    type Value = Option<WireSpan<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an OTLP span object")
    }

    /// Fills the same fields as `WireSpan`'s derive; once the trace id shows the span is not
    /// wanted, the rest of it is skipped without being built.
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut span = WireSpan::default();
        let mut skip = false;
        while let Some(RawStr(key)) = map.next_key::<RawStr<'de>>()? {
            if skip {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            match key.as_ref() {
                b"traceId" | b"trace_id" => {
                    let raw: Option<Cow<'de, str>> = map.next_value()?;
                    let id = raw
                        .as_deref()
                        .and_then(|t| decode_id::<16>(t).ok())
                        .map(TraceId);
                    // Unusable ids were diagnosed by the survey; wanted traces have good ids.
                    skip = !id.is_some_and(|id| self.keep.traces.contains(&id));
                    span.trace_id = raw;
                }
                b"spanId" | b"span_id" => span.span_id = map.next_value()?,
                b"parentSpanId" | b"parent_span_id" => span.parent_span_id = map.next_value()?,
                b"name" => span.name = map.next_value()?,
                b"kind" => span.kind = map.next_value()?,
                b"startTimeUnixNano" | b"start_time_unix_nano" => {
                    span.start_time_unix_nano = map.next_value()?
                }
                b"endTimeUnixNano" | b"end_time_unix_nano" => {
                    span.end_time_unix_nano = map.next_value()?
                }
                b"attributes" => {
                    let wanted = |key: &str| self.keep.attributes.contains(key);
                    span.attributes = Some(map.next_value_seed(some_attributes(&wanted))?);
                }
                b"events" => span.events = Some(map.next_value_seed(FILTERED_EVENTS)?),
                b"links" => span.links = map.next_value()?,
                b"status" => span.status = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok((!skip && span.trace_id.is_some()).then_some(span))
    }
}

/// Reads a kept span as `KeepVisitor` does, without serde for what exporters write plainly:
/// the span's members, ids and names without escapes, the attribute lists, string values.
/// The other values (times, events, links, status, other attribute values) are read by serde
/// from their own text, as `KeepVisitor` reads them, and a repeated member of the span wins
/// over the one before, as there. `None` for anything else (an escaped key, an attribute with
/// a repeated key or value or a value before its key, text that is not JSON, a value serde
/// refuses): the span is then read by `KeepVisitor`, which says what is wrong.
pub(super) fn kept_span_without_serde<'t>(
    text: &'t str,
    keep: &Keep,
) -> Option<Option<WireSpan<'t>>> {
    let mut cursor = Cursor::new(text.as_bytes());
    let mut span = WireSpan::default();
    let mut skip = false;
    each_member(&mut cursor, |cursor, key| {
        if skip {
            cursor.value()?;
            return Some(());
        }
        match key {
            b"traceId" | b"trace_id" => {
                let raw = text_value(cursor, text)?;
                let id = raw
                    .as_deref()
                    .and_then(|t| decode_id::<16>(t).ok())
                    .map(TraceId);
                skip = !id.is_some_and(|id| keep.traces.contains(&id));
                span.trace_id = raw;
            }
            b"spanId" | b"span_id" => span.span_id = text_value(cursor, text)?,
            b"parentSpanId" | b"parent_span_id" => span.parent_span_id = text_value(cursor, text)?,
            b"name" => span.name = text_value(cursor, text)?,
            b"kind" => span.kind = value_by_serde(cursor, text)?,
            b"startTimeUnixNano" | b"start_time_unix_nano" => {
                span.start_time_unix_nano = time_value(cursor, text)?;
            }
            b"endTimeUnixNano" | b"end_time_unix_nano" => {
                span.end_time_unix_nano = time_value(cursor, text)?;
            }
            b"attributes" => span.attributes = Some(kept_attributes(cursor, text, keep)?),
            b"events" => {
                let mut events = serde_json::Deserializer::from_str(&text[cursor.value()?]);
                span.events =
                    Some(de::DeserializeSeed::deserialize(FILTERED_EVENTS, &mut events).ok()?);
                events.end().ok()?;
            }
            b"links" => span.links = value_by_serde(cursor, text)?,
            b"status" => span.status = value_by_serde(cursor, text)?,
            _ => {
                cursor.value()?;
            }
        }
        Some(())
    })?;
    if !cursor.at_end() {
        return None;
    }
    Some((!skip && span.trace_id.is_some()).then_some(span))
}

/// The value at the cursor, read by serde from its own text.
fn value_by_serde<'t, T: Deserialize<'t>>(cursor: &mut Cursor<'t>, text: &'t str) -> Option<T> {
    serde_json::from_str(&text[cursor.value()?]).ok()
}

/// A time: as exporters write it, a string of decimal digits, which `Flexible::as_time` reads
/// as the number it is; anything else as serde reads it.
fn time_value(cursor: &mut Cursor<'_>, text: &str) -> Option<Option<Flexible>> {
    let value = &text[cursor.value()?];
    if let Some(digits) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"'))
        && (1..=19).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
    {
        return digits
            .parse()
            .ok()
            .map(|time| Some(Flexible::Unsigned(time)));
    }
    serde_json::from_str(value).ok()
}

/// An optional string: borrowed from the text when it has no escapes.
fn text_value<'t>(cursor: &mut Cursor<'t>, text: &'t str) -> Option<Option<Cow<'t, str>>> {
    if cursor.peek()? != b'"' {
        return value_by_serde(cursor, text);
    }
    let (inside, escaped) = cursor.string()?;
    if escaped {
        let quoted = &text[inside.start - 1..inside.end + 1];
        return serde_json::from_str::<String>(quoted)
            .ok()
            .map(|s| Some(Cow::Owned(s)));
    }
    Some(Some(Cow::Borrowed(&text[inside])))
}

/// An attribute list as `some_attributes` reads it, keeping the attributes the audit reads.
fn kept_attributes<'t>(
    cursor: &mut Cursor<'t>,
    text: &'t str,
    keep: &Keep,
) -> Option<Vec<WireKeyValue<'t>>> {
    if cursor.peek()? == b'n' {
        return (&text[cursor.value()?] == "null").then(Vec::new);
    }
    let mut kept = Vec::new();
    each_element(cursor, |cursor| {
        if cursor.peek()? == b'{'
            && let Some(attribute) = cursor.plain_attribute()
        {
            // Strings with escapes are unescaped by serde.
            let string = |inside: std::ops::Range<usize>| -> Option<Cow<'t, str>> {
                if !attribute.escaped {
                    return Some(Cow::Borrowed(&text[inside]));
                }
                serde_json::from_str(&text[inside.start - 1..inside.end + 1])
                    .ok()
                    .map(Cow::Owned)
            };
            let key = string(attribute.key.clone())?;
            if keep.attributes.contains(key.as_ref()) {
                let value = string(attribute.value.clone())?;
                let value = match attribute.int {
                    // As serde reads `"intValue":"…"` (a string), for `Flexible` to say.
                    true => WireAnyValue {
                        int_value: Some(Flexible::Text(value.into_owned())),
                        ..WireAnyValue::default()
                    },
                    false => WireAnyValue {
                        string_value: Some(value),
                        ..WireAnyValue::default()
                    },
                };
                kept.push(WireKeyValue {
                    key,
                    value: Some(value),
                });
            }
            return Some(());
        }
        let mut key: Option<&'t str> = None;
        // Whether the key is wanted, once it has been looked up (when its value is met).
        let mut wanted: Option<bool> = None;
        let mut value: Option<WireAnyValue<'t>> = None;
        each_member(cursor, |cursor, member| {
            match (member, key) {
                (b"key", None) => {
                    let (inside, escaped) = cursor.string()?;
                    if escaped {
                        return None;
                    }
                    key = Some(&text[inside]);
                }
                (b"value", Some(key)) if wanted.is_none() => {
                    let is_wanted = keep.attributes.contains(key);
                    wanted = Some(is_wanted);
                    if is_wanted {
                        value = value_by_serde(cursor, text)?;
                    } else {
                        cursor.value()?;
                    }
                }
                // A second key or value, or a value before its key.
                (b"key" | b"value", _) => return None,
                _ => {
                    cursor.value()?;
                }
            }
            Some(())
        })?;
        if let Some(key) = key
            && wanted.unwrap_or_else(|| keep.attributes.contains(key))
        {
            kept.push(WireKeyValue {
                key: Cow::Borrowed(key),
                value,
            });
        }
        Some(())
    })?;
    Some(kept)
}

/// Reads one span of a large export from its text, which the first read found on `line`, as
/// the second read does: in full if its trace is kept, else not at all.
pub(crate) fn read_kept_span(
    input: &Arc<str>,
    text: &[u8],
    line: u64,
    resource: &Arc<Resource>,
    keep: &Keep,
    out: &mut Parsed,
) -> Result<(), serde_json::Error> {
    let slot = match simdutf8::basic::from_utf8(text)
        .ok()
        .and_then(|text| kept_span_without_serde(text, keep))
    {
        Some(slot) => slot,
        None => kept_span_with_serde(text, keep)?,
    };
    if let Some(span) = slot {
        let mut converter = Converter {
            input,
            position: Position::Line(line),
            out,
        };
        converter.span(span, resource);
    }
    Ok(())
}

pub(super) fn kept_span_with_serde<'t>(
    text: &'t [u8],
    keep: &Keep,
) -> Result<Option<WireSpan<'t>>, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(text);
    let slot = deserializer.deserialize_map(KeepVisitor { keep })?;
    deserializer.end()?;
    Ok(slot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::otlp_json::index::leading_trace_id;
    use crate::model::Attributes;
    use std::path::Path;

    /// A kept span read as the second read of a large export reads it (without serde where it
    /// can be), and with serde (`KeepVisitor`): the spans and diagnostics each gives (`None`
    /// when serde was not spared), or serde's error.
    fn kept_both_ways(text: &[u8], keep: &Keep) -> (Option<String>, String) {
        let input: Arc<str> = Arc::from("export.jsonl");
        let resource = Arc::new(Resource {
            service_name: "agent".into(),
            attributes: Attributes::default(),
        });
        let built = |slot: Option<WireSpan<'_>>| {
            let mut out = Parsed::default();
            if let Some(span) = slot {
                let mut converter = Converter {
                    input: &input,
                    position: Position::Line(3),
                    out: &mut out,
                };
                converter.span(span, &resource);
            }
            format!("{:?}\n{:?}", out.spans, out.diagnostics)
        };
        let fast = std::str::from_utf8(text)
            .ok()
            .and_then(|text| kept_span_without_serde(text, keep))
            .map(built);
        let slow = match kept_span_with_serde(text, keep) {
            Ok(slot) => built(slot),
            Err(e) => format!("error: {e}"),
        };
        (fast, slow)
    }

    /// The texts of the spans of a record in the exporters' shape.
    fn span_texts(record: &str) -> Vec<&str> {
        /// Reads the elements of the list under `name`, skipping the object's other members.
        fn within<'a>(
            cursor: &mut Cursor<'a>,
            name: &[u8],
            element: &mut dyn FnMut(&mut Cursor<'a>) -> Option<()>,
        ) -> Option<()> {
            each_member(cursor, |cursor, key| match key == name {
                true => each_element(cursor, &mut *element),
                false => cursor.value().map(drop),
            })
        }
        let mut texts = Vec::new();
        let mut cursor = Cursor::new(record.as_bytes());
        within(&mut cursor, b"resourceSpans", &mut |cursor| {
            within(cursor, b"scopeSpans", &mut |cursor| {
                within(cursor, b"spans", &mut |cursor| {
                    texts.push(&record[cursor.value()?]);
                    Some(())
                })
            })
        })
        .unwrap();
        texts
    }

    #[test]
    fn kept_spans_are_read_without_serde_as_with_it() {
        let rules = crate::rules::Rules::default();
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/scenarios/traces");
        let mut spans: Vec<String> = Vec::new();
        for file in ["agent.jsonl", "vendor.jsonl", "worker.jsonl"] {
            let text = std::fs::read_to_string(fixtures.join(file)).unwrap();
            for line in text.lines().filter(|l| !l.is_empty()) {
                spans.extend(span_texts(line).into_iter().map(str::to_owned));
            }
        }
        assert!(spans.len() > 100, "{}", spans.len());
        let traces: Vec<TraceId> = spans
            .iter()
            .filter_map(|s| leading_trace_id(s.as_bytes()).map(|(t, _)| t))
            .collect();
        // Every trace kept, and every other one.
        for step in [1, 2] {
            let keep = Keep {
                traces: traces.iter().step_by(step).copied().collect(),
                attributes: rules.attributes_read(),
            };
            let mut built = 0;
            for span in &spans {
                let (fast, slow) = kept_both_ways(span.as_bytes(), &keep);
                // What OTel SDKs' exporters write spares serde.
                assert_eq!(fast.as_ref(), Some(&slow), "{span}");
                built += usize::from(!slow.starts_with("[]"));
            }
            assert!(built > spans.len() / (2 * step), "{built}");
        }
    }

    /// Every byte of a span replaced, dropped or doubled in turn: what the second read
    /// without serde accepts, it reads as `KeepVisitor` does.
    #[test]
    fn a_damaged_kept_span_is_read_as_serde_reads_it() {
        let span = concat!(
            r#"{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","#,
            r#""parentSpanId":"","name":"POST \/v1","kind":3,"startTimeUnixNano":"17","#,
            r#""endTimeUnixNano":18,"attributes":[{"key":"url.full","value":{"stringValue":"#,
            r#""https:\/\/api.example.com\/caf\u00e9"}},{"key":"http.request.method","value":"#,
            r#"{"stringValue":"POST"}},{"key":"http.response.status_code","value":{"intValue":"#,
            r#""200"}},{"key":"x","value":{"stringValue":"y"}}],"events":[{"timeUnixNano":"#,
            r#""17","name":"exception","attributes":[{"key":"exception.type","value":"#,
            r#"{"stringValue":"E"}}]}],"links":[],"status":{"code":2,"message":"m"}}"#
        );
        let trace = leading_trace_id(span.as_bytes()).unwrap().0;
        let keep = Keep {
            traces: [trace].into_iter().collect(),
            attributes: crate::rules::Rules::default().attributes_read(),
        };
        let (fast, slow) = kept_both_ways(span.as_bytes(), &keep);
        assert_eq!(fast.as_ref(), Some(&slow));
        assert!(slow.contains("http.request.method"), "{slow}");
        assert!(slow.contains("https://api.example.com/caf\u{e9}"), "{slow}");
        let mut spared = 0;
        let replacements = b" \"\\{}[],:0a_-\x01\xff";
        for text in crate::ingest::json_text::cursor::tests::damaged(span.as_bytes(), replacements)
        {
            let (fast, slow) = kept_both_ways(&text, &keep);
            if let Some(fast) = fast {
                assert_eq!(fast, slow, "{}", String::from_utf8_lossy(&text));
                spared += 1;
            }
        }
        assert!(spared > 1000, "{spared}");
    }
}

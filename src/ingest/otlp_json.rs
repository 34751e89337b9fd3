//! OTLP/JSON, as the Collector file exporter, the SDK JSON file exporters, Jaeger's API v3 and
//! Tempo write it.
//!
//! Our own serde structs rather than opentelemetry-proto's: those decode Jaeger or Zipkin JSON
//! as an empty OTLP file without complaint and reject the base64 ids and enum names that
//! proto3-JSON writers emit. Every field that real writers vary on is read leniently (ids in hex
//! or base64, enums as numbers or names, 64-bit integers as strings or numbers, snake_case keys,
//! the legacy `instrumentationLibrarySpans`), and every field whose value the audit depends on
//! (ids, times) is validated per span, so one bad span costs a diagnostic, not its whole line.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use rayon::prelude::*;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, Visitor};

use super::json_scan::Cursor;
use super::locate::{Locator, count_newlines, trim_ascii_end};
use super::{Parsed, Shape};
use crate::model::diagnostic::{Code, Diagnostic};
use crate::model::ids::{decode_id, hash_text};
use crate::model::semconv::{
    ERROR_TYPE, EXCEPTION_MESSAGE, EXCEPTION_TYPE, MCP_METHOD_NAME, RPC_STATUS_CODE,
};
use crate::model::{
    Attributes, Event, KeyValue, Link, Origin, Resource, Span, SpanId, SpanKind, Status,
    StatusCode, TraceId, Value,
};
use crate::rules::abort::{self, ABORT_ATTRIBUTES, EXCEPTION_ATTRIBUTES};

// ---------------------------------------------------------------------------------------------
// Wire structs. Field names follow the OTLP/JSON spec (lowerCamelCase); aliases take the
// snake_case that protobuf's JSON printer writes with `preserving_proto_field_name`.

/// A top-level record: `TracesData` / `ExportTraceServiceRequest`, or one of the wrappers that
/// query APIs put around it. The remaining fields exist only to recognise what a non-OTLP
/// document is, so the error can say so.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Envelope<'a> {
    #[serde(rename = "resourceSpans", alias = "resource_spans", borrow)]
    resource_spans: Option<Vec<WireResourceSpans<'a>>>,
    /// Tempo: `{"batches": [ResourceSpans…]}`.
    #[serde(borrow)]
    batches: Option<Vec<WireResourceSpans<'a>>>,
    /// Jaeger API v3: `{"result": TracesData}`.
    #[serde(borrow)]
    result: Option<Box<Envelope<'a>>>,
    /// Tempo: `{"trace": TracesData}`.
    #[serde(borrow)]
    trace: Option<Box<Envelope<'a>>>,

    #[serde(rename = "resourceMetrics", alias = "resource_metrics")]
    resource_metrics: Option<IgnoredAny>,
    #[serde(rename = "resourceLogs", alias = "resource_logs")]
    resource_logs: Option<IgnoredAny>,
    #[serde(rename = "resourceProfiles", alias = "resource_profiles")]
    resource_profiles: Option<IgnoredAny>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireResourceSpans<'a> {
    #[serde(borrow)]
    resource: Option<ResourceField<'a>>,
    #[serde(
        rename = "scopeSpans",
        alias = "scope_spans",
        alias = "instrumentationLibrarySpans",
        alias = "instrumentation_library_spans",
        borrow
    )]
    scope_spans: Option<Vec<WireScopeSpans<'a>>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireResource<'a> {
    #[serde(borrow)]
    attributes: Option<Vec<WireKeyValue<'a>>>,
}

/// The spans of a `ResourceSpans`' scopes, in order.
fn slots<'a>(scopes: Option<Vec<WireScopeSpans<'a>>>) -> impl Iterator<Item = SpanSlot<'a>> {
    scopes.into_iter().flatten().flat_map(|s| s.spans).flatten()
}

/// A resource; in the first read of a large export, only its text, by which the resources of
/// many batches are recognised as one and read once.
struct ResourceField<'a> {
    wire: Option<WireResource<'a>>,
    text: Option<&'a str>,
}

impl<'de: 'a, 'a> Deserialize<'de> for ResourceField<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if FILTER.with(|f| matches!(&*f.borrow(), SpanFilter::Index(_))) {
            let raw = <&'de serde_json::value::RawValue>::deserialize(deserializer)?;
            Ok(ResourceField {
                wire: None,
                text: Some(raw.get()),
            })
        } else {
            Ok(ResourceField {
                wire: Some(WireResource::deserialize(deserializer)?),
                text: None,
            })
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireScopeSpans<'a> {
    #[serde(borrow)]
    spans: Option<Vec<SpanSlot<'a>>>,
}

// ---------------------------------------------------------------------------------------------
// Reading only what an audit needs. A large export is read twice (see `stream`): the first
// read locates every span and surveys it (its trace, whether it may carry an abort signal,
// where its links point) without building it; the second reads, by their places in the file,
// only the spans of the traces that matter (aborted turns, and what links into them). The mode
// is set per thread for the records being read, so the wire structs above stay plain derives.

/// How spans are read on this thread.
#[derive(Clone, Default)]
pub(crate) enum SpanFilter {
    /// Every span in full.
    #[default]
    All,
    /// The first read of a large export: every span located and surveyed, none built.
    Index(Arc<IndexFilter>),
}

thread_local! {
    static FILTER: std::cell::RefCell<SpanFilter> = const { std::cell::RefCell::new(SpanFilter::All) };
}

/// Runs `f` with `filter` as this thread's span filter.
pub(crate) fn with_filter<T>(filter: &SpanFilter, f: impl FnOnce() -> T) -> T {
    let previous = FILTER.with(|current| current.replace(filter.clone()));
    let result = f();
    FILTER.with(|current| *current.borrow_mut() = previous);
    result
}

/// The first read of a large export, over one block of the file.
pub(crate) struct IndexFilter {
    pub survey: Arc<SurveyRules>,
    /// The address of the block in memory and its offset in the file: a span's bytes, borrowed
    /// from the block, then give its place in the file.
    pub block_address: usize,
    pub block_offset: u64,
}

/// The rules as a survey applies them, with a prefilter that spares it reading most spans.
pub(crate) struct SurveyRules {
    rules: crate::rules::Rules,
    /// Finds the keys without which a span carries nothing a survey looks for.
    prefilter: Prefilter,
    /// What each needle of the prefilter says must be read.
    fields: Vec<Fields>,
    /// The event names that are an abort (`None`: events are always read).
    event_names: Option<Vec<String>>,
}

enum Prefilter {
    Packed(aho_corasick::packed::Searcher),
    Automaton(aho_corasick::AhoCorasick),
    /// Every span is surveyed in full.
    None,
}

impl SurveyRules {
    pub(crate) fn new(rules: &crate::rules::Rules) -> SurveyRules {
        // The keys under which a survey looks (see `SurveyVisitor`): events and a status
        // message may name an abort however the rules spell it, and attributes are wanted by
        // their exact keys. A second trace id sends the span to the full survey.
        let mut keys: Vec<(&str, Fields)> = vec![
            ("traceId", Fields::ALL),
            ("trace_id", Fields::ALL),
            ("events", Fields::EVENTS),
            ("links", Fields::LINKS),
            ("message", Fields::STATUS),
        ];
        keys.extend(
            ABORT_ATTRIBUTES
                .iter()
                .map(|key| (*key, Fields::ATTRIBUTES)),
        );
        keys.extend(
            rules
                .conversation
                .id_attributes
                .iter()
                .map(|key| (key.as_str(), Fields::CONVERSATION)),
        );
        let mut needles: Vec<(String, Fields)> = keys
            .iter()
            .map(|(key, fields)| (format!("\"{key}\""), *fields))
            .collect();
        // A key or an event name spelt with escapes sends the span to the full survey
        // (`names_an_abort_event` reads names raw). While every key and rule name is plain
        // ASCII, the only escape that can spell one of their characters is `\u00XX`: any other
        // decodes to a character none of them has. That needle is four bytes long, which
        // leaves Teddy its widest fingerprints; `\u` would halve them and send every `"s…` and
        // `"t…` of a span to verification (a tenth slower first pass).
        let plain = |text: &str| {
            text.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        };
        let all_plain = keys.iter().all(|(key, _)| plain(key))
            && rules.abort.event_names.iter().all(|name| plain(name));
        let escape = if all_plain { "\\u00" } else { "\\" };
        needles.push((escape.to_owned(), Fields::ALL));
        let texts: Vec<&str> = needles.iter().map(|(text, _)| text.as_str()).collect();
        // Teddy, the SIMD searcher for a few short needles, runs at several GB/s here; the
        // automaton it falls back to where it cannot be built, at a tenth of that.
        let prefilter = match aho_corasick::packed::Config::new()
            .builder()
            .extend(&texts)
            .build()
        {
            Some(packed) => Prefilter::Packed(packed),
            None => match aho_corasick::AhoCorasick::new(&texts) {
                Ok(automaton) => Prefilter::Automaton(automaton),
                Err(_) => Prefilter::None,
            },
        };
        // An event can only be an abort by its name: one the rules name (in any case), or
        // `exception`. Most spans with events are model calls logging their prompts, so this
        // second look spares them the full survey. A rule naming the empty string matches an
        // event with no name, which this cannot see, so then every event is read.
        let event_names = (!rules.abort.event_names.iter().any(String::is_empty))
            .then(|| rules.abort.event_names.clone());
        SurveyRules {
            rules: rules.clone(),
            prefilter,
            fields: needles.into_iter().map(|(_, fields)| fields).collect(),
            event_names,
        }
    }

    /// The fields of a span a survey must read, from its text after its leading trace id:
    /// those under whose keys a needle was found.
    #[cfg(test)]
    fn fields_to_read(&self, rest: &[u8]) -> Fields {
        self.prefilter(rest).fields
    }

    fn prefilter(&self, rest: &[u8]) -> Prefiltered {
        let mut found = Prefiltered {
            fields: Fields::NONE,
            keys: Fields::NONE,
            one_conversation_key: false,
        };
        let mut conversation_keys = 0;
        // Every match, overlapping or not: each search resumes just after the start of the
        // last match.
        let mut from = 0;
        while from < rest.len() && found.keys != Fields::ALL {
            let next = match &self.prefilter {
                Prefilter::Packed(searcher) => searcher
                    .find_in(rest, aho_corasick::Span::from(from..rest.len()))
                    .map(|m| (m.pattern().as_usize(), m.start())),
                Prefilter::Automaton(automaton) => automaton
                    .find(aho_corasick::Input::new(rest).range(from..))
                    .map(|m| (m.pattern().as_usize(), m.start())),
                Prefilter::None => {
                    found.keys = Fields::ALL;
                    break;
                }
            };
            let Some((pattern, start)) = next else {
                break;
            };
            let fields = self.fields[pattern];
            found.keys.0 |= fields.0;
            conversation_keys += usize::from(fields == Fields::CONVERSATION);
            from = start + 1;
        }
        found.one_conversation_key = conversation_keys == 1;
        found.fields = found.keys;
        if found.keys.has(Fields::EVENTS)
            && found.keys != Fields::ALL
            && self
                .event_names
                .as_ref()
                .is_some_and(|names| !names_an_abort_event(rest, names))
        {
            found.fields.0 &= !Fields::EVENTS.0;
        }
        found
    }
}

/// What the prefilter found in a span's text.
struct Prefiltered {
    /// The fields a survey must read.
    fields: Fields,
    /// The fields whose keys are in the text.
    keys: Fields,
    /// The text holds exactly one conversation-id key.
    one_conversation_key: bool,
}

/// The conversation of a span whose only key of interest is one conversation-id key, read
/// from its text when its attributes are written as exporters write them: that key in an
/// attribute `{"key":"…","value":{"stringValue":"…"}}` of the span's one attribute list, with
/// no escape. `Some(None)`: the id is empty. `None`: the span must be surveyed in full.
///
/// Like a span read from its trace id alone, such a span is not type-checked: a mistyped
/// sibling attribute, which a full read would reject the span for, goes unseen.
fn conversation_in_text(span: &str, id_keys: &[String]) -> Option<Option<u64>> {
    let mut cursor = Cursor::new(span.as_bytes());
    let mut lists = 0;
    let mut id = None;
    each_member(&mut cursor, |cursor, member| {
        if member != b"attributes" {
            return cursor.value().map(drop);
        }
        lists += 1;
        each_element(cursor, |cursor| match cursor.plain_attribute() {
            Some(attribute) => {
                let key = &span[attribute.key];
                if id_keys.iter().any(|k| k == key) {
                    if attribute.escaped || attribute.int {
                        return None;
                    }
                    id = Some(&span[attribute.value]);
                }
                Some(())
            }
            // Another shape, which a conversation key (the only one in the text) may be in.
            None => cursor.value().map(drop),
        })
    })?;
    // A second attribute list would be read after the first.
    if lists != 1 || !cursor.at_end() {
        return None;
    }
    id.map(|id| (!id.is_empty()).then(|| hash_text(id)))
}

/// Whether a span's text has a `"name"` key whose string may name an abort event: `exception`,
/// or one of `names` in any case. The string is taken to end at the next quote: the prefilter
/// let through only escapes that decode to a character no rule name has (see
/// `SurveyRules::new`), so a name cut short at an escaped quote, or holding an escape, could
/// not have matched anyway.
fn names_an_abort_event(text: &[u8], names: &[String]) -> bool {
    let key = memchr::memmem::Finder::new(b"\"name\"");
    key.find_iter(text).any(|at| {
        let after = text[at + 6..].trim_ascii_start();
        let Some(value) = after.strip_prefix(b":") else {
            return false;
        };
        let Some(value) = value.trim_ascii_start().strip_prefix(b"\"") else {
            // A null or mistyped name: read the events in full and let them say.
            return true;
        };
        let name = &value[..memchr::memchr(b'"', value).unwrap_or(value.len())];
        name == b"exception"
            || names
                .iter()
                .any(|n| n.as_bytes().eq_ignore_ascii_case(name))
    })
}

/// Which fields of a span a survey reads, as bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fields(u8);

impl Fields {
    const NONE: Fields = Fields(0);
    const EVENTS: Fields = Fields(1);
    const LINKS: Fields = Fields(2);
    const STATUS: Fields = Fields(4);
    /// The attributes that may record an abort.
    const ATTRIBUTES: Fields = Fields(8);
    /// The attributes that name a conversation.
    const CONVERSATION: Fields = Fields(16);
    const ALL: Fields = Fields(31);

    fn has(self, field: Fields) -> bool {
        self.0 & field.0 != 0
    }
}

/// A span as the first read leaves it: surveyed, and where its text is in the file.
pub(crate) struct IndexedSpan {
    pub survey: SurveyedSpan,
    pub offset: u64,
    pub len: u32,
}

impl IndexFilter {
    fn index(&self, raw: &str) -> Result<IndexedSpan, String> {
        let bytes = raw.as_bytes();
        let within = (bytes.as_ptr() as usize)
            .checked_sub(self.block_address)
            .ok_or("a span outside the block being read")?;
        let len = u32::try_from(bytes.len()).map_err(|_| "a span of 4 GiB or more")?;
        let leading = leading_trace_id(bytes);
        let found = match leading {
            Some((_, rest)) => self.survey.prefilter(&bytes[rest..]),
            None => Prefiltered {
                fields: Fields::ALL,
                keys: Fields::ALL,
                one_conversation_key: false,
            },
        };
        let fields = found.fields;
        // A span that only names its conversation (an agent's or a model call's, often) is
        // read from its text when it is written as exporters write it.
        let conversation = match leading {
            Some(_) if found.keys == Fields::CONVERSATION && found.one_conversation_key => {
                conversation_in_text(raw, &self.survey.rules.conversation.id_attributes)
            }
            _ => None,
        };
        let survey = match leading {
            Some((trace_id, _)) if fields == Fields::NONE => SurveyedSpan {
                trace_id: Some(trace_id),
                ..SurveyedSpan::default()
            },
            Some((trace_id, _)) if conversation.is_some() => SurveyedSpan {
                trace_id: Some(trace_id),
                conversation: conversation.flatten(),
                ..SurveyedSpan::default()
            },
            _ => serde_json::Deserializer::from_str(raw)
                .deserialize_map(SurveyVisitor {
                    rules: &self.survey.rules,
                    fields,
                })
                .map_err(|e| without_position(&e))?,
        };
        Ok(IndexedSpan {
            survey,
            offset: self.block_offset + within as u64,
            len,
        })
    }
}

/// The `ResourceSpans` of a record read by `index_record`: its resource as written, and its
/// spans (a range of the record's list).
struct IndexedGroup<'r> {
    resource: &'r str,
    spans: std::ops::Range<usize>,
}

/// The first read of a record written as exporters write it, `{"resourceSpans":[…]}` with
/// `resource`, `scopeSpans` and `spans` under their OTLP/JSON names, without serde: its text
/// is checked and skipped by `json_scan`, each span located and surveyed on the way.
/// `None` for anything else (another shape, a duplicate or escaped key, text that is not JSON,
/// a span the survey refuses): the record is then read with serde, which handles every shape
/// and says what is wrong, so both reads give the same result.
fn index_record<'r>(
    index: &IndexFilter,
    record: &'r str,
    spans: &mut Vec<IndexedSpan>,
) -> Option<Vec<IndexedGroup<'r>>> {
    let mut cursor = Cursor::new(record.as_bytes());
    let mut groups = Vec::new();
    cursor.eat(b'{')?;
    if cursor.key()? != b"resourceSpans" {
        return None;
    }
    each_element(&mut cursor, |cursor| {
        let first = spans.len();
        let mut resource = None;
        let mut scopes_seen = false;
        each_member(cursor, |cursor, key| {
            match key {
                b"resource" if resource.is_none() && cursor.peek()? == b'{' => {
                    resource = Some(&record[cursor.value()?]);
                }
                b"scopeSpans" if !scopes_seen => {
                    scopes_seen = true;
                    each_element(cursor, |cursor| {
                        let mut spans_seen = false;
                        each_member(cursor, |cursor, key| {
                            match key {
                                b"spans" if !spans_seen => {
                                    spans_seen = true;
                                    each_element(cursor, |cursor| {
                                        if cursor.peek()? != b'{' {
                                            return None;
                                        }
                                        let text = &record[cursor.value()?];
                                        spans.push(index.index(text).ok()?);
                                        Some(())
                                    })?;
                                }
                                b"spans" => return None,
                                _ => {
                                    cursor.value()?;
                                }
                            }
                            Some(())
                        })
                    })?;
                }
                // Read by serde: a second one (an error there), another spelling, a resource
                // that is not an object.
                b"resource"
                | b"scopeSpans"
                | b"scope_spans"
                | b"instrumentationLibrarySpans"
                | b"instrumentation_library_spans" => return None,
                _ => {
                    cursor.value()?;
                }
            }
            Some(())
        })?;
        groups.push(IndexedGroup {
            resource: resource.unwrap_or(""),
            spans: first..spans.len(),
        });
        Some(())
    })?;
    // Any other top-level key is left to serde.
    cursor.eat(b'}')?;
    cursor.at_end().then_some(groups)
}

thread_local! {
    /// The spans of the record `index_record` reads, a list kept from one record to the next
    /// rather than grown afresh for each (a record holds hundreds).
    static INDEXED: std::cell::RefCell<Vec<IndexedSpan>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Reads a JSON array element by element with `element`, which reads one value.
fn each_element<'a>(
    cursor: &mut Cursor<'a>,
    mut element: impl FnMut(&mut Cursor<'a>) -> Option<()>,
) -> Option<()> {
    cursor.eat(b'[')?;
    if cursor.eat_if(b']') {
        return Some(());
    }
    loop {
        element(cursor)?;
        if cursor.eat_if(b']') {
            return Some(());
        }
        cursor.eat(b',')?;
    }
}

/// Reads a JSON object member by member with `member`, which is given the key (written
/// without escapes) and reads its value.
fn each_member<'a>(
    cursor: &mut Cursor<'a>,
    mut member: impl FnMut(&mut Cursor<'a>, &'a [u8]) -> Option<()>,
) -> Option<()> {
    cursor.eat(b'{')?;
    if cursor.eat_if(b'}') {
        return Some(());
    }
    loop {
        let key = cursor.key()?;
        member(cursor, key)?;
        if cursor.eat_if(b'}') {
            return Some(());
        }
        cursor.eat(b',')?;
    }
}

/// The trace id of a span that starts with it, as exporters write spans (`{"traceId":"…",`),
/// and where the rest of the span starts.
fn leading_trace_id(span: &[u8]) -> Option<(TraceId, usize)> {
    const HEAD: &[u8] = b"{\"traceId\":\"";
    let hex = span.strip_prefix(HEAD)?.get(..33)?;
    if hex[32] != b'"' {
        return None;
    }
    let id = decode_id::<16>(std::str::from_utf8(&hex[..32]).ok()?).ok()?;
    Some((TraceId(id), HEAD.len() + 33))
}

/// A serde_json error's message without the position it appends, which would point into a
/// span read on its own rather than into the line.
pub(crate) fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    text.strip_suffix(&suffix).unwrap_or(&text).to_owned()
}

/// What the second read of a large export keeps.
#[derive(Debug, Default)]
pub(crate) struct Keep {
    pub traces: rustc_hash::FxHashSet<TraceId>,
    /// Span attribute keys the audit reads (`Rules::attributes_read`).
    pub attributes: rustc_hash::FxHashSet<String>,
}

/// What the survey keeps of a span.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct SurveyedSpan {
    /// `None` when the trace id is unusable (diagnosed when the span is surveyed).
    pub trace_id: Option<TraceId>,
    /// It carries something that may be an abort signal (checked properly later).
    pub may_abort: bool,
    /// The traces its links point to.
    pub links_to: Vec<TraceId>,
    /// A conversation id it names, hashed, for counting conversations.
    pub conversation: Option<u64>,
    /// The trace id as written, when it is unusable (reported once the span is placed).
    pub bad_trace_id: Option<String>,
}

enum SpanSlot<'a> {
    Full(Box<WireSpan<'a>>),
    Indexed(IndexedSpan),
    Skipped,
}

impl<'de: 'a, 'a> Deserialize<'de> for SpanSlot<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Borrowed, not cloned: an Arc clone per span would bounce its counter between
        // threads. Spans do not nest, so nothing re-enters this while it is borrowed.
        FILTER.with(|current| match &*current.borrow() {
            SpanFilter::All => {
                WireSpan::deserialize(deserializer).map(|s| SpanSlot::Full(Box::new(s)))
            }
            SpanFilter::Index(index) => {
                let raw = <&'de serde_json::value::RawValue>::deserialize(deserializer)?;
                index
                    .index(raw.get())
                    .map(SpanSlot::Indexed)
                    .map_err(de::Error::custom)
            }
        })
    }
}

struct SurveyVisitor<'r> {
    rules: &'r crate::rules::Rules,
    /// The fields to read; the others cannot hold what a survey looks for.
    fields: Fields,
}

fn wire_text<'v>(attributes: &'v [WireKeyValue<'_>], key: &str) -> Option<&'v str> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.string_value.as_deref())
}

impl<'de> Visitor<'de> for SurveyVisitor<'_> {
    type Value = SurveyedSpan;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an OTLP span object")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let rules = self.rules;
        let fields = self.fields;
        let mut span = SurveyedSpan::default();
        let mut raw_trace: Option<Cow<'de, str>> = None;
        while let Some(RawStr(key)) = map.next_key::<RawStr<'de>>()? {
            match key.as_ref() {
                b"traceId" | b"trace_id" => raw_trace = map.next_value()?,
                b"status" if fields.has(Fields::STATUS) => {
                    let status: Option<WireStatus<'de>> = map.next_value()?;
                    if let Some(status) = status {
                        let error = status
                            .code
                            .as_ref()
                            .and_then(|c| c.as_enum("STATUS_CODE_", STATUS_NAMES))
                            == Some(2);
                        span.may_abort |= error
                            && abort::is_abort_status(
                                status.message.as_deref().unwrap_or(""),
                                rules,
                            );
                    }
                }
                b"events" if fields.has(Fields::EVENTS) => {
                    let events = map.next_value_seed(FILTERED_EVENTS)?;
                    for event in &events {
                        let attributes = event.attributes.as_deref().unwrap_or_default();
                        span.may_abort |= abort::is_abort_event(
                            event.name.as_deref().unwrap_or_default(),
                            wire_text(attributes, EXCEPTION_TYPE)
                                .or_else(|| wire_text(attributes, ERROR_TYPE)),
                            wire_text(attributes, EXCEPTION_MESSAGE),
                            rules,
                        );
                    }
                }
                b"links" if fields.has(Fields::LINKS) => {
                    let links: Option<Vec<WireLink<'de>>> = map.next_value()?;
                    span.links_to = links
                        .iter()
                        .flatten()
                        .filter_map(|l| l.trace_id.as_deref().and_then(|t| decode_id::<16>(t).ok()))
                        .map(TraceId)
                        .collect();
                }
                b"attributes"
                    if fields.has(Fields::ATTRIBUTES) || fields.has(Fields::CONVERSATION) =>
                {
                    let wanted = |key: &str| {
                        ABORT_ATTRIBUTES.contains(&key)
                            || rules.conversation.id_attributes.iter().any(|k| k == key)
                    };
                    let attributes = map.next_value_seed(some_attributes(&wanted))?;
                    span.may_abort |= abort::is_abort_attribute(
                        wire_text(&attributes, ERROR_TYPE),
                        RPC_STATUS_CODE
                            .iter()
                            .find_map(|key| wire_text(&attributes, key)),
                        wire_text(&attributes, MCP_METHOD_NAME),
                        rules,
                    ) || attributes.iter().any(|kv| {
                        // gRPC status codes are integers.
                        RPC_STATUS_CODE.contains(&kv.key.as_ref())
                            && kv
                                .value
                                .as_ref()
                                .and_then(|v| v.int_value.as_ref())
                                .and_then(Flexible::as_i64)
                                == Some(1)
                    });
                    span.conversation = rules
                        .conversation
                        .id_attributes
                        .iter()
                        .find_map(|k| wire_text(&attributes, k).filter(|v| !v.is_empty()))
                        .map(hash_text);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let raw_trace = raw_trace.unwrap_or_default();
        match decode_id::<16>(&raw_trace) {
            Ok(id) => span.trace_id = Some(TraceId(id)),
            Err(_) => span.bad_trace_id = Some(raw_trace.into_owned()),
        }
        Ok(span)
    }
}

/// A JSON list (or `null`) read element by element with a seed, keeping the elements the seed
/// returns.
#[derive(Clone, Copy)]
struct ListOf<S> {
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
fn some_attributes(wanted: &dyn Fn(&str) -> bool) -> ListOf<SomeAttribute<'_>> {
    ListOf {
        item: SomeAttribute { wanted },
        what: "a list of attributes",
    }
}

#[derive(Clone, Copy)]
struct SomeAttribute<'w> {
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
const FILTERED_EVENTS: ListOf<FilteredEvent> = ListOf {
    item: FilteredEvent,
    what: "a list of span events",
};

#[derive(Clone, Copy)]
struct FilteredEvent;

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
struct RawStr<'de>(Cow<'de, [u8]>);

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
fn raw_text<'de>(raw: RawStr<'de>) -> Option<Cow<'de, str>> {
    match raw.0 {
        Cow::Borrowed(b) => std::str::from_utf8(b).ok().map(Cow::Borrowed),
        Cow::Owned(b) => String::from_utf8(b).ok().map(Cow::Owned),
    }
}

struct KeepVisitor<'k> {
    keep: &'k Keep,
}

impl<'de> Visitor<'de> for KeepVisitor<'_> {
    type Value = SpanSlot<'de>;

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
        Ok(if skip || span.trace_id.is_none() {
            SpanSlot::Skipped
        } else {
            SpanSlot::Full(Box::new(span))
        })
    }
}

/// Reads a kept span as `KeepVisitor` does, without serde for what exporters write plainly:
/// the span's members, ids and names without escapes, the attribute lists, string values.
/// The other values (times, events, links, status, other attribute values) are read by serde
/// from their own text, as `KeepVisitor` reads them, and a repeated member of the span wins
/// over the one before, as there. `None` for anything else (an escaped key, an attribute with
/// a repeated key or value or a value before its key, text that is not JSON, a value serde
/// refuses): the span is then read by `KeepVisitor`, which says what is wrong.
fn kept_span_without_serde<'t>(text: &'t str, keep: &Keep) -> Option<SpanSlot<'t>> {
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
    Some(if skip || span.trace_id.is_none() {
        SpanSlot::Skipped
    } else {
        SpanSlot::Full(Box::new(span))
    })
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

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireSpan<'a> {
    #[serde(rename = "traceId", alias = "trace_id", borrow)]
    trace_id: Option<Cow<'a, str>>,
    #[serde(rename = "spanId", alias = "span_id", borrow)]
    span_id: Option<Cow<'a, str>>,
    #[serde(rename = "parentSpanId", alias = "parent_span_id", borrow)]
    parent_span_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    kind: Option<Flexible>,
    #[serde(rename = "startTimeUnixNano", alias = "start_time_unix_nano")]
    start_time_unix_nano: Option<Flexible>,
    #[serde(rename = "endTimeUnixNano", alias = "end_time_unix_nano")]
    end_time_unix_nano: Option<Flexible>,
    #[serde(borrow)]
    attributes: Option<Vec<WireKeyValue<'a>>>,
    #[serde(borrow)]
    events: Option<Vec<WireEvent<'a>>>,
    #[serde(borrow)]
    links: Option<Vec<WireLink<'a>>>,
    #[serde(borrow)]
    status: Option<WireStatus<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireEvent<'a> {
    #[serde(rename = "timeUnixNano", alias = "time_unix_nano")]
    time_unix_nano: Option<Flexible>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    attributes: Option<Vec<WireKeyValue<'a>>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireLink<'a> {
    #[serde(rename = "traceId", alias = "trace_id", borrow)]
    trace_id: Option<Cow<'a, str>>,
    #[serde(rename = "spanId", alias = "span_id", borrow)]
    span_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    attributes: Option<Vec<WireKeyValue<'a>>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireStatus<'a> {
    #[serde(borrow)]
    message: Option<Cow<'a, str>>,
    code: Option<Flexible>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireKeyValue<'a> {
    #[serde(borrow)]
    key: Cow<'a, str>,
    #[serde(borrow)]
    value: Option<WireAnyValue<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireAnyValue<'a> {
    #[serde(rename = "stringValue", alias = "string_value", borrow)]
    string_value: Option<Cow<'a, str>>,
    #[serde(rename = "boolValue", alias = "bool_value")]
    bool_value: Option<Flexible>,
    #[serde(rename = "intValue", alias = "int_value")]
    int_value: Option<Flexible>,
    #[serde(rename = "doubleValue", alias = "double_value")]
    double_value: Option<Flexible>,
    #[serde(rename = "bytesValue", alias = "bytes_value", borrow)]
    bytes_value: Option<Cow<'a, str>>,
    #[serde(rename = "arrayValue", alias = "array_value", borrow)]
    array_value: Option<WireArray<'a>>,
    #[serde(rename = "kvlistValue", alias = "kvlist_value", borrow)]
    kvlist_value: Option<WireKvList<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireArray<'a> {
    #[serde(borrow)]
    values: Option<Vec<WireAnyValue<'a>>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireKvList<'a> {
    #[serde(borrow)]
    values: Option<Vec<WireKeyValue<'a>>>,
}

/// A scalar that writers spell in different ways: a 64-bit integer as a JSON number or a
/// decimal string, an enum as a number or a name, a double as a number or `"NaN"`. Kept as
/// written and interpreted by the field that reads it, so a bad value becomes a diagnostic for
/// that field instead of failing the whole record.
#[derive(Clone, Debug, PartialEq)]
enum Flexible {
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
    fn describe(&self) -> String {
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
    fn as_time(&self) -> Result<u64, String> {
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

    fn as_i64(&self) -> Option<i64> {
        match self {
            Flexible::Unsigned(v) => i64::try_from(*v).ok(),
            Flexible::Signed(v) => Some(*v),
            Flexible::Text(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    fn as_f64(&self) -> Option<f64> {
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

    fn as_bool(&self) -> Option<bool> {
        match self {
            Flexible::Bool(b) => Some(*b),
            Flexible::Text(s) if s == "true" => Some(true),
            Flexible::Text(s) if s == "false" => Some(false),
            _ => None,
        }
    }

    /// An enum given as its number or as its proto name, with or without the prefix
    /// (`3`, `"SPAN_KIND_CLIENT"`, `"CLIENT"`, `"client"`).
    fn as_enum(&self, prefix: &str, names: &[&str]) -> Option<i64> {
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

const KIND_NAMES: &[&str] = &[
    "UNSPECIFIED",
    "INTERNAL",
    "SERVER",
    "CLIENT",
    "PRODUCER",
    "CONSUMER",
];
const STATUS_NAMES: &[&str] = &["UNSET", "OK", "ERROR"];

// ---------------------------------------------------------------------------------------------
// Ids.

// ---------------------------------------------------------------------------------------------
// Conversion to the model.

/// Where the records being converted sit in the input.
enum Position<'t> {
    /// JSON Lines: every span of the record is on this line.
    Line(u64),
    /// One pretty-printed document: spans are located by searching the text.
    Document(Locator<'t>),
}

struct Converter<'p, 't> {
    input: &'p Arc<str>,
    position: Position<'t>,
    out: &'p mut Parsed,
}

impl Converter<'_, '_> {
    fn diag(&mut self, line: u64, code: Code, message: String) {
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

    fn envelope(&mut self, envelope: Envelope<'_>) {
        let mut pending = vec![envelope];
        while let Some(envelope) = pending.pop() {
            let Envelope {
                resource_spans,
                batches,
                result,
                trace,
                ..
            } = envelope;
            for resource_spans in resource_spans.into_iter().chain(batches).flatten() {
                self.resource_spans(resource_spans);
            }
            pending.extend(result.map(|b| *b));
            pending.extend(trace.map(|b| *b));
        }
    }

    fn resource(&mut self, wire: Option<WireResource<'_>>) -> Arc<Resource> {
        let attributes = self.attributes(wire.and_then(|r| r.attributes), self.current_line());
        let service_name = attributes
            .text("service.name")
            .map(Cow::into_owned)
            .unwrap_or_else(|| "unknown_service".to_owned());
        Arc::new(Resource {
            service_name,
            attributes,
        })
    }

    fn resource_spans(&mut self, wire: WireResourceSpans<'_>) {
        let index = FILTER.with(|filter| match &*filter.borrow() {
            SpanFilter::Index(index) => Some(Arc::clone(&index.survey)),
            _ => None,
        });
        let (text, wire_resource) = match wire.resource {
            Some(ResourceField { wire, text }) => (text.unwrap_or(""), wire),
            None => ("", None),
        };
        let Some(survey) = index else {
            let resource = self.resource(wire_resource);
            for slot in slots(wire.scope_spans) {
                if let SpanSlot::Full(span) = slot {
                    self.span(*span, &resource);
                }
            }
            return;
        };

        let spans = slots(wire.scope_spans).filter_map(|slot| match slot {
            SpanSlot::Indexed(span) => Some(span),
            _ => None,
        });
        self.indexed_group(&survey, text, spans);
    }

    /// The first read of a large export: the spans of a `ResourceSpans` (whose resource is
    /// written `text`) are placed, surveyed and counted.
    fn indexed_group(
        &mut self,
        survey: &SurveyRules,
        text: &str,
        spans: impl Iterator<Item = IndexedSpan>,
    ) {
        let line = self.current_line();
        let (resource_id, resource) = match self.out.index.resource(text) {
            Some(known) => known,
            None => {
                let wire_resource = match text {
                    "" => None,
                    text => match serde_json::from_str::<WireResource<'_>>(text) {
                        Ok(wire) => Some(wire),
                        Err(e) => {
                            let why = without_position(&e);
                            self.diag(
                                line,
                                Code::InvalidOtlp,
                                format!(
                                    "a resource is not OTLP/JSON: {why}; its spans are skipped"
                                ),
                            );
                            return;
                        }
                    },
                };
                let resource = self.resource(wire_resource);
                let id = self.out.index.add_resource(text, Arc::clone(&resource));
                (id, resource)
            }
        };
        self.out.index.begin_group(resource_id, line);
        let resource_conversation = survey
            .rules
            .conversation
            .id_attributes
            .iter()
            .find_map(|k| resource.attributes.text(k).filter(|v| !v.is_empty()))
            .map(|v| hash_text(&v));
        for IndexedSpan {
            survey: mut span,
            offset,
            len,
        } in spans
        {
            self.out.spans_read += 1;
            if let Some(raw) = span.bad_trace_id.take() {
                self.out.spans_unjoinable += 1;
                let why = decode_id::<16>(&raw).err().unwrap_or_default();
                self.diag(
                    line,
                    Code::InvalidId,
                    format!("a span's traceId {raw:?} {why}; the span is not used for joins"),
                );
            }
            if span.conversation.is_none() {
                span.conversation = resource_conversation;
            }
            if let Some(trace) = span.trace_id {
                self.out.index.add_span(offset, len, trace);
            }
            self.out.survey.add(span);
        }
    }

    fn current_line(&self) -> u64 {
        match &self.position {
            Position::Line(line) => *line,
            Position::Document(locator) => locator.cursor_line,
        }
    }

    fn span(&mut self, wire: WireSpan<'_>, resource: &Arc<Resource>) {
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
            return;
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

// ---------------------------------------------------------------------------------------------
// Entry points.

/// What a top-level JSON value looks like, for sniffing and for the error when it is not OTLP.
pub(crate) fn shape_of(value_start: &[u8]) -> Shape {
    // Only objects can be OTLP; anything else is described by the caller from a full parse.
    match serde_json::from_slice::<Envelope<'_>>(value_start) {
        Ok(env) if env.is_traces() => Shape::OtlpTraces,
        Ok(env) if env.is_other_telemetry() => Shape::OtlpOther,
        _ => Shape::Other,
    }
}

impl Envelope<'_> {
    fn is_traces(&self) -> bool {
        self.resource_spans.is_some()
            || self.batches.is_some()
            || self.result.as_ref().is_some_and(|r| r.is_traces())
            || self.trace.as_ref().is_some_and(|t| t.is_traces())
    }

    fn is_other_telemetry(&self) -> bool {
        self.resource_metrics.is_some()
            || self.resource_logs.is_some()
            || self.resource_profiles.is_some()
    }
}

/// JSON Lines inputs larger than this are split at line boundaries and read on several threads.
pub(crate) const PARALLEL_LINES_ABOVE: usize = 8 << 20;

/// Reads JSON Lines: one OTLP record a line. A bad line is a diagnostic and the run goes on.
///
/// A large input is cut into one chunk per thread at line boundaries; each chunk is read into
/// its own `Parsed` with absolute line numbers and the results are appended in input order, so
/// the outcome is the same whatever the number of threads.
pub(crate) fn read_lines(input: &Arc<str>, text: &[u8], out: &mut Parsed) {
    read_lines_split(
        input,
        text,
        out,
        PARALLEL_LINES_ABOVE,
        rayon::current_num_threads(),
    );
}

/// Reads a block of whole lines of a larger input, the first being line `first_line`, with a
/// span filter, on all threads.
pub(crate) fn read_block(
    input: &Arc<str>,
    block: &[u8],
    first_line: u64,
    filter: &SpanFilter,
    out: &mut Parsed,
) {
    read_lines_from(
        input,
        block,
        first_line,
        out,
        0,
        // Many more pieces than threads, so that a slow piece does not leave a core idle.
        rayon::current_num_threads() * 8,
        filter,
    );
}

pub(crate) fn read_lines_split(
    input: &Arc<str>,
    text: &[u8],
    out: &mut Parsed,
    threshold: usize,
    threads: usize,
) {
    read_lines_from(input, text, 1, out, threshold, threads, &SpanFilter::All);
}

fn read_lines_from(
    input: &Arc<str>,
    text: &[u8],
    first: u64,
    out: &mut Parsed,
    threshold: usize,
    threads: usize,
    filter: &SpanFilter,
) {
    if text.len() <= threshold || threads < 2 {
        with_filter(filter, || read_chunk(input, text, first, out));
        return;
    }
    let chunks = split_at_lines(text, threads);
    let parts: Vec<Parsed> = chunks
        .par_iter()
        .map(|chunk| {
            let mut part = Parsed::default();
            with_filter(filter, || read_chunk(input, chunk, 1, &mut part));
            part
        })
        .collect();
    // Every chunk but the last ends with its newline, so the next one starts a line: each is
    // numbered from 1 while it is read, and renumbered once the lines before it are known
    // (which spares counting them beforehand, a pass over the bytes).
    let mut before = first - 1;
    for mut part in parts {
        let lines = part.lines;
        part.shift_lines(before);
        out.append(part);
        before += lines;
    }
}

/// Cuts `text` into at most `n` pieces of about equal size, each ending just after a newline
/// (except the last).
fn split_at_lines(text: &[u8], n: usize) -> Vec<&[u8]> {
    let mut chunks = Vec::with_capacity(n);
    let mut start = 0;
    for k in 1..n {
        let target = (text.len() / n).saturating_mul(k).max(start);
        if target >= text.len() {
            break;
        }
        match text[target..].iter().position(|b| *b == b'\n') {
            Some(i) => {
                let end = target + i + 1;
                chunks.push(&text[start..end]);
                start = end;
            }
            None => break,
        }
    }
    if start < text.len() {
        chunks.push(&text[start..]);
    }
    chunks
}

/// Reads the lines of `text`, the first of which is line `first_line` of the input.
fn read_chunk(input: &Arc<str>, text: &[u8], first_line: u64, out: &mut Parsed) {
    let ends_with_newline = text.ends_with(b"\n");
    let mut line_no = first_line - 1;
    let mut rest = text;
    while !rest.is_empty() {
        line_no += 1;
        let (line, next, is_last) = match memchr::memchr(b'\n', rest) {
            Some(i) => (&rest[..i], &rest[i + 1..], i + 1 == rest.len()),
            None => (rest, &rest[rest.len()..], true),
        };
        rest = next;
        out.lines = line_no;
        read_record(input, line, line_no, is_last && !ends_with_newline, out);
    }
}

/// Reads one OTLP/JSON record (a line, or one message of a length-framed stream) whose spans
/// are all said to be on `line_no`. `may_be_cut`: the record is the end of a file that may still
/// be being written, so a record cut short is a warning.
pub(crate) fn read_record(
    input: &Arc<str>,
    record: &[u8],
    line_no: u64,
    may_be_cut: bool,
    out: &mut Parsed,
) {
    let record = trim_ascii_end(record);
    if record.iter().all(u8::is_ascii_whitespace) {
        return;
    }
    if !indexed_without_serde(input, record, line_no, out) {
        read_record_with_serde(input, record, line_no, may_be_cut, out);
    }
}

/// In the first read of a large export, reads a record as `index_record` can: whether it
/// could (if not, nothing was added to `out`).
fn indexed_without_serde(input: &Arc<str>, record: &[u8], line_no: u64, out: &mut Parsed) -> bool {
    let index = FILTER.with(|filter| match &*filter.borrow() {
        SpanFilter::Index(index) => Some(Arc::clone(index)),
        SpanFilter::All => None,
    });
    let Some(index) = index else {
        return false;
    };
    let Ok(text) = std::str::from_utf8(record) else {
        return false;
    };
    INDEXED.with_borrow_mut(|spans| {
        spans.clear();
        let Some(groups) = index_record(&index, text, spans) else {
            return false;
        };
        let mut converter = Converter {
            input,
            position: Position::Line(line_no),
            out,
        };
        let mut spans = spans.drain(..);
        for group in groups {
            let mut these = spans.by_ref().take(group.spans.len());
            converter.indexed_group(&index.survey, group.resource, &mut these);
            // A group whose resource is refused leaves its spans unread: they are not the
            // next group's.
            these.for_each(drop);
        }
        true
    })
}

/// Reads a record with serde_json, whatever its shape (`record` is trimmed and not blank).
fn read_record_with_serde(
    input: &Arc<str>,
    record: &[u8],
    line_no: u64,
    may_be_cut: bool,
    out: &mut Parsed,
) {
    match serde_json::from_slice::<Envelope<'_>>(record) {
        Ok(env) if env.is_traces() => {
            let mut converter = Converter {
                input,
                position: Position::Line(line_no),
                out,
            };
            converter.envelope(env);
        }
        Ok(env) if env.is_other_telemetry() => out.diagnostics.push(Diagnostic::warning(
            input,
            Some(line_no),
            Code::NotTraces,
            "record holds metrics, logs or profiles, not traces; skipped",
        )),
        Ok(_) => out.diagnostics.push(Diagnostic::error(
            input,
            Some(line_no),
            Code::InvalidOtlp,
            "record has no resourceSpans: expected an OTLP TracesData object; skipped",
        )),
        Err(e) if may_be_cut && e.is_eof() => out.diagnostics.push(Diagnostic::warning(
            input,
            Some(line_no),
            Code::TruncatedLine,
            format!(
                "last line ends mid-record ({e}); the file may still be being written; the partial record is skipped"
            ),
        )),
        Err(e) if e.is_data() => out.diagnostics.push(Diagnostic::error(
            input,
            Some(line_no),
            Code::InvalidOtlp,
            format!("record is not OTLP/JSON: {e}; skipped"),
        )),
        Err(e) => out.diagnostics.push(Diagnostic::error(
            input,
            Some(line_no),
            Code::MalformedJson,
            format!("not valid JSON: {e}; expected one OTLP/JSON record per line; skipped"),
        )),
    }
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
    let slot = match std::str::from_utf8(text)
        .ok()
        .and_then(|text| kept_span_without_serde(text, keep))
    {
        Some(slot) => slot,
        None => kept_span_with_serde(text, keep)?,
    };
    if let SpanSlot::Full(span) = slot {
        let mut converter = Converter {
            input,
            position: Position::Line(line),
            out,
        };
        converter.span(*span, resource);
    }
    Ok(())
}

fn kept_span_with_serde<'t>(
    text: &'t [u8],
    keep: &Keep,
) -> Result<SpanSlot<'t>, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(text);
    let slot = deserializer.deserialize_map(KeepVisitor { keep })?;
    deserializer.end()?;
    Ok(slot)
}

/// Reads one document (usually pretty-printed). The caller has checked that it parses.
pub(crate) fn read_document(
    input: &Arc<str>,
    text: &[u8],
    out: &mut Parsed,
) -> Result<(), serde_json::Error> {
    out.lines = count_newlines(text) + u64::from(!text.ends_with(b"\n") && !text.is_empty());
    let env = serde_json::from_slice::<Envelope<'_>>(text)?;
    let mut converter = Converter {
        input,
        position: Position::Document(Locator::new(text)),
        out,
    };
    converter.envelope(env);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// What the first read makes of a span's text, and what a full survey of it says.
    fn indexed_and_surveyed(text: &str) -> (SurveyedSpan, SurveyedSpan) {
        let rules = crate::rules::Rules::default();
        let filter = IndexFilter {
            survey: Arc::new(SurveyRules::new(&rules)),
            block_address: text.as_ptr() as usize,
            block_offset: 0,
        };
        let indexed = filter.index(text).unwrap();
        assert_eq!((indexed.offset, indexed.len as usize), (0, text.len()));
        let full = serde_json::Deserializer::from_str(text)
            .deserialize_map(SurveyVisitor {
                rules: &rules,
                fields: Fields::ALL,
            })
            .unwrap();
        (indexed.survey, full)
    }

    const TRACE: &str =
        r#"{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174""#;

    /// A record read by the first read of a large export as it is read (without serde where
    /// it can be), and with serde: what each leaves, and whether serde was spared.
    fn indexed_both_ways(record: &[u8]) -> (String, String, bool) {
        let rules = crate::rules::Rules::default();
        let filter = SpanFilter::Index(Arc::new(IndexFilter {
            survey: Arc::new(SurveyRules::new(&rules)),
            block_address: record.as_ptr() as usize,
            block_offset: 0,
        }));
        let input: Arc<str> = Arc::from("export.jsonl");
        let describe = |parsed: Parsed| {
            let survey = &parsed.survey;
            let mut may_abort: Vec<_> = survey.may_abort.iter().collect();
            may_abort.sort();
            let mut conversations: Vec<_> = survey.conversations.iter().collect();
            conversations.sort();
            format!(
                "read {} unjoinable {}\n{}\nmay abort {may_abort:?}\nlinks {:?}\nconversations {conversations:?}\n{:?}",
                parsed.spans_read,
                parsed.spans_unjoinable,
                parsed.index.describe(),
                survey.links,
                parsed.diagnostics
            )
        };
        with_filter(&filter, || {
            let mut fast = Parsed::default();
            let spared = indexed_without_serde(&input, record, 7, &mut fast);
            if !spared {
                read_record_with_serde(&input, record, 7, false, &mut fast);
            }
            let mut slow = Parsed::default();
            read_record_with_serde(&input, record, 7, false, &mut slow);
            (describe(fast), describe(slow), spared)
        })
    }

    #[test]
    fn records_are_indexed_without_serde_as_with_it() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/scenarios/traces");
        let mut records = 0;
        for file in ["agent.jsonl", "vendor.jsonl", "worker.jsonl"] {
            let text = std::fs::read(fixtures.join(file)).unwrap();
            for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let (fast, slow, spared) = indexed_both_ways(line);
                assert_eq!(fast, slow, "{file}");
                // These are what OTel SDKs' exporters write: serde is spared them.
                assert!(spared, "{file}: {}", String::from_utf8_lossy(line));
                records += 1;
            }
        }
        assert!(records > 20, "{records}");
        // Other shapes and spellings (wrappers, snake_case, base64 ids, pretty-printed
        // documents) are left to serde, or read alike.
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/traces");
        for dir in ["otlp-json", "otlp-json-variants"] {
            let Ok(entries) = std::fs::read_dir(corpus.join(dir)) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                let text = std::fs::read(&path).unwrap();
                let records: Vec<&[u8]> = if path.extension().is_some_and(|e| e == "jsonl") {
                    text.split(|b| *b == b'\n')
                        .filter(|l| !l.is_empty())
                        .collect()
                } else {
                    vec![trim_ascii_end(&text)]
                };
                for record in records {
                    let (fast, slow, _) = indexed_both_ways(record);
                    assert_eq!(fast, slow, "{}", path.display());
                }
            }
        }
    }

    /// A resource that is an object but not a resource is reported and its group's spans
    /// skipped, in whichever group it comes: the groups after it keep their own spans.
    #[test]
    fn a_refused_resource_skips_only_its_own_spans() {
        let group = |resource: &str, trace: &str| {
            format!(
                r#"{{"resource":{resource},"scopeSpans":[{{"spans":[{{"traceId":"{trace}","spanId":"eee19b7ec3c1b174"}},{{"traceId":"{trace}","spanId":"b7ad6b7169203331"}}]}}]}}"#
            )
        };
        let (a, b) = (
            "5b8efff798038103d269b633813fc60c",
            "0af7651916cd43dd8448eb211c80319c",
        );
        for bad in [
            r#"{"attributes":5}"#,
            r#"{"attributes":[{"key":5}]}"#,
            r#"{"attributes":[],"attributes":[]}"#,
            r#"{"attributes":[{"key":"\uD800"}]}"#,
        ] {
            for groups in [
                [group(bad, a), group("{}", b), group("{}", a)],
                [group("{}", a), group(bad, b), group("{}", b)],
            ] {
                let record = format!(r#"{{"resourceSpans":[{}]}}"#, groups.join(","));
                let (fast, slow, spared) = indexed_both_ways(record.as_bytes());
                assert!(spared, "{record}");
                assert_eq!(fast, slow, "{record}");
                assert!(fast.contains("read 4 "), "{fast}");
                assert!(fast.contains("a resource is not OTLP/JSON"), "{fast}");
            }
        }
    }

    /// Every byte of a record replaced, dropped or doubled in turn: whatever the first read
    /// without serde accepts, it reads as serde does, and it leaves the rest to serde.
    #[test]
    fn a_damaged_record_is_indexed_as_serde_reads_it() {
        let record = concat!(
            r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":"#,
            r#"{"stringValue":"agent"}},{"key":"gen_ai.conversation.id","value":{"stringValue":"c-9"}}]},"#,
            r#""scopeSpans":[{"scope":{"name":"s"},"spans":[{"traceId":"#,
            r#""5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"POST","#,
            r#""kind":3,"attributes":[{"key":"error.type","value":{"stringValue":"cancelled"}}],"#,
            r#""events":[{"timeUnixNano":"1","name":"abort"}],"status":{"code":2}},{"traceId":"#,
            r#""0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331","links":[{"traceId":"#,
            r#""5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174"}]}]}],"schemaUrl":"x"}]}"#
        );
        let record = record.as_bytes();
        let (fast, slow, spared) = indexed_both_ways(record);
        assert!(spared);
        assert_eq!(fast, slow);
        assert!(fast.contains("read 2 "), "{fast}");
        let mut spared_damaged = 0;
        let mut check = |text: &[u8]| {
            let (fast, slow, spared) = indexed_both_ways(text);
            assert_eq!(fast, slow, "{}", String::from_utf8_lossy(text));
            spared_damaged += usize::from(spared);
        };
        for text in super::super::json_scan::tests::damaged(record, b" \"\\{}[],:0a_-\x01\xff") {
            check(&text);
        }
        // Some damage leaves valid records (a changed id, a doubled digit).
        assert!(spared_damaged > 1000, "{spared_damaged}");
    }

    /// A kept span read as the second read of a large export reads it (without serde where it
    /// can be), and with serde (`KeepVisitor`): the spans and diagnostics each gives (`None`
    /// when serde was not spared), or serde's error.
    fn kept_both_ways(text: &[u8], keep: &Keep) -> (Option<String>, String) {
        let input: Arc<str> = Arc::from("export.jsonl");
        let resource = Arc::new(Resource {
            service_name: "agent".into(),
            attributes: Attributes::default(),
        });
        let built = |slot: SpanSlot<'_>| {
            let mut out = Parsed::default();
            if let SpanSlot::Full(span) = slot {
                let mut converter = Converter {
                    input: &input,
                    position: Position::Line(3),
                    out: &mut out,
                };
                converter.span(*span, &resource);
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
                attributes: rules.attributes_read().into_iter().collect(),
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
            attributes: crate::rules::Rules::default()
                .attributes_read()
                .into_iter()
                .collect(),
        };
        let (fast, slow) = kept_both_ways(span.as_bytes(), &keep);
        assert_eq!(fast.as_ref(), Some(&slow));
        assert!(slow.contains("http.request.method"), "{slow}");
        assert!(slow.contains("https://api.example.com/caf\u{e9}"), "{slow}");
        let mut spared = 0;
        let replacements = b" \"\\{}[],:0a_-\x01\xff";
        for text in super::super::json_scan::tests::damaged(span.as_bytes(), replacements) {
            let (fast, slow) = kept_both_ways(&text, &keep);
            if let Some(fast) = fast {
                assert_eq!(fast, slow, "{}", String::from_utf8_lossy(&text));
                spared += 1;
            }
        }
        assert!(spared > 1000, "{spared}");
    }

    #[test]
    fn the_prefilter_surveys_a_span_as_a_full_read_does() {
        let spans = [
            // Nothing to find: read from its trace id alone.
            r#","name":"POST","attributes":[{"key":"http.request.method","value":{"stringValue":"POST"}}]}"#,
            r#","name":"turn","events":[{"timeUnixNano":"1","name":"exception","attributes":[{"key":"exception.type","value":{"stringValue":"asyncio.exceptions.CancelledError"}}]}]}"#,
            // An event name spelt with an escape.
            r#","events":[{"timeUnixNano":"1","name":"\u0061bort"}]}"#,
            // A key spelt with an escape.
            r#","\u0065vents":[{"timeUnixNano":"1","name":"abort"}]}"#,
            r#","links":[{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331"}]}"#,
            r#","attributes":[{"key":"gen_ai.conversation.id","value":{"stringValue":"conv-1"}}]}"#,
            // Conversation ids read from the text, and those that need the full survey: an
            // empty one, an escaped one, two keys, a key nested in a list value or an event,
            // a key's name as a value, two attribute lists, another value type.
            r#","name":"chat","attributes":[{"key":"gen_ai.operation.name","value":{"stringValue":"chat"}},{"key":"session.id","value":{"stringValue":"s-1"}},{"key":"n","value":{"intValue":"3"}}],"status":{}}"#,
            r#","attributes":[{"key":"gen_ai.conversation.id","value":{"stringValue":""}}]}"#,
            r#","attributes":[{"key":"gen_ai.conversation.id","value":{"stringValue":"c\"1"}}]}"#,
            r#","attributes":[{"key":"session.id","value":{"stringValue":""}},{"key":"gen_ai.conversation.id","value":{"stringValue":"c-2"}}]}"#,
            r#","attributes":[{"key":"a","value":{"kvlistValue":{"values":[{"key":"session.id","value":{"stringValue":"nested"}}]}}}]}"#,
            r#","attributes":[],"events":[{"name":"log","attributes":[{"key":"session.id","value":{"stringValue":"in-event"}}]}]}"#,
            r#","attributes":[{"key":"a","value":{"stringValue":"session.id"}}]}"#,
            r#","attributes":[{"key":"session.id","value":{"stringValue":"first"}}],"attributes":[]}"#,
            r#","attributes":[{"key":"session.id","value":{"intValue":"7"}}]}"#,
            r#","attributes":[{"key":"session.id","value":{"stringValue":"x","intValue":"7"}}]}"#,
            // Keys that are not the span's own attributes: in a field OTLP has not, in a value
            // of an unknown shape, inside a member name.
            r#","attributes":[],"extra":{"key":"session.id","value":{"stringValue":"v"}}}"#,
            r#","attributes":[{"key":"a","value":{"other":{"key":"session.id","value":{"stringValue":"v"}}}}]}"#,
            r#","attributes":[{"x\"key":"session.id","value":{"stringValue":"v"}}]}"#,
            r#","extra":[{"key":"session.id","value":{"stringValue":"v"}}],"attributes":[]}"#,
            r#","attributes" : [ {"n":1} , {"key":"session.id","value":{"stringValue":"spaced"}}]}"#,
            r#","status":{"code":2,"message":"AbortError: the user pressed Stop"}}"#,
            r#","attributes":[{"key":"rpc.grpc.status_code","value":{"intValue":"1"}}]}"#,
            // A second trace id overrules the first.
            r#","traceId":"0af7651916cd43dd8448eb211c80319c"}"#,
        ];
        for rest in spans {
            let text = format!("{TRACE}{rest}");
            let (indexed, full) = indexed_and_surveyed(&text);
            assert_eq!(indexed, full, "{text}");
        }
        // And spans that do not start with their trace id are surveyed in full.
        let late = r#"{"spanId":"eee19b7ec3c1b174","events":[{"timeUnixNano":"1","name":"cancel"}],"traceId":"5b8efff798038103d269b633813fc60c"}"#;
        let (indexed, full) = indexed_and_surveyed(late);
        assert!(indexed.may_abort);
        assert_eq!(indexed, full);
    }

    #[test]
    fn a_conversation_id_is_read_from_the_text_only_where_it_is_plain() {
        let read =
            |rest: &str| conversation_in_text(&format!("{TRACE}{rest}"), &["session.id".into()]);
        let plain = r#","attributes":[{"key":"session.id","value":{"stringValue":"s-1"}}]}"#;
        assert_eq!(read(plain), Some(Some(hash_text("s-1"))));
        let empty = r#","attributes":[{"key":"session.id","value":{"stringValue":""}}]}"#;
        assert_eq!(read(empty), Some(None));
        let later = r#","name":"a]}","attributes" :[{"key":"n","value":{"intValue":"1"}},{"key":"session.id","value":{"stringValue":"s-2"}}]}"#;
        assert_eq!(read(later), Some(Some(hash_text("s-2"))));
        for other in [
            r#","attributes":[{"key":"session.id","value":{"stringValue":"a\u0062"}}]}"#,
            r#","attributes":[{"key":"a","value":{"kvlistValue":{"values":[{"key":"session.id","value":{"stringValue":"s"}}]}}}]}"#,
            r#","attributes":[{"key":"a","value":{"stringValue":"session.id"}}]}"#,
            r#","attributes":[{"key":"session.id","value":{"stringValue":"s"}}],"attributes":[]}"#,
            r#","attributes":[{"key":"session.id","value":{"stringValue":"s","intValue":"1"}}]}"#,
            r#","attributes":[{"key" : "session.id","value":{"stringValue":"s"}}]}"#,
            r#","attributes":[],"extra":{"key":"session.id","value":{"stringValue":"s"}}}"#,
            r#","attributes":[{"key":"a","value":{"o":{"key":"session.id","value":{"stringValue":"s"}}}}]}"#,
            r#","attributes":[{"x\"key":"session.id","value":{"stringValue":"s"}}]}"#,
            r#","name":"attributes","extra":[{"key":"session.id","value":{"stringValue":"s"}}]}"#,
        ] {
            assert_eq!(read(other), None, "{other}");
        }
    }

    #[test]
    fn the_prefilter_names_the_fields_to_read() {
        let survey = SurveyRules::new(&crate::rules::Rules::default());
        let fields = |text: &str| survey.fields_to_read(text.as_bytes());
        assert_eq!(fields(r#","name":"x","attributes":[]}"#), Fields::NONE);
        assert_eq!(
            fields(r#","events":[{"name":"exception"}],"links":[]}"#).0,
            Fields::EVENTS.0 | Fields::LINKS.0
        );
        // The rules' event names match in any case, and with space around the colon.
        assert_eq!(
            fields(r#","events":[{"name" : "User.Abort"}]}"#),
            Fields::EVENTS
        );
        // Events none of whose names can be an abort need not be read.
        assert_eq!(
            fields(r#","events":[{"name":"gen_ai.content.prompt"}],"links":[]}"#),
            Fields::LINKS
        );
        assert_eq!(
            fields(r#","attributes":[{"key":"session.id"}],"status":{"message":""}}"#).0,
            Fields::CONVERSATION.0 | Fields::STATUS.0
        );
        assert_eq!(
            fields(r#","attributes":[{"key":"error.type"}]}"#),
            Fields::ATTRIBUTES
        );
        // A key spelt with `\u00XX` escapes may be any key, but `\/` cannot spell one of the
        // plain keys the default rules want.
        assert_eq!(fields(r#","na\u006de":"x"}"#), Fields::ALL);
        assert_eq!(fields(r#","na\/me":"x"}"#), Fields::NONE);
        assert_eq!(fields(r#","name":"a\"b\\c\n"}"#), Fields::NONE);
    }

    #[test]
    fn rules_naming_other_characters_make_every_escape_suspect() {
        let mut rules = crate::rules::Rules::default();
        rules.conversation.id_attributes.push("app/thread".into());
        let survey = SurveyRules::new(&rules);
        let fields = |text: &str| survey.fields_to_read(text.as_bytes());
        assert_eq!(
            fields(r#","attributes":[{"key":"app\/thread"}]}"#),
            Fields::ALL
        );
        let mut rules = crate::rules::Rules::default();
        rules.abort.event_names.push("user stop".into());
        let survey = SurveyRules::new(&rules);
        let text = r#","events":[{"name":"user\u0020stop"}]}"#;
        assert_eq!(survey.fields_to_read(text.as_bytes()), Fields::ALL);
        let text = r#","events":[{"name":"user\tstop"}]}"#;
        assert_eq!(survey.fields_to_read(text.as_bytes()), Fields::ALL);
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
    fn json_lines_split_into_chunks_read_the_same_as_in_one_piece() {
        let input: Arc<str> = Arc::from("x.jsonl");
        let good = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"a","startTimeUnixNano":"1","endTimeUnixNano":"2"}]}]}]}"#;
        let mut text = String::new();
        for i in 0..40 {
            match i % 5 {
                0 => text.push_str("not json\n"),
                1 => text.push('\n'),
                _ => {
                    text.push_str(good);
                    text.push('\n');
                }
            }
        }
        text.push_str(&good[..30]);
        let whole = {
            let mut out = Parsed::default();
            read_lines_split(&input, text.as_bytes(), &mut out, usize::MAX, 1);
            out
        };
        assert_eq!(whole.lines, 41);
        for threads in [2, 3, 7, 64, 1000] {
            let mut out = Parsed::default();
            read_lines_split(&input, text.as_bytes(), &mut out, 0, threads);
            assert_eq!(out.lines, whole.lines, "{threads} chunks");
            assert_eq!(out.spans, whole.spans, "{threads} chunks");
            assert_eq!(out.diagnostics, whole.diagnostics, "{threads} chunks");
            assert_eq!(out.spans_read, whole.spans_read);
        }
        let chunks = split_at_lines(b"a\nbb\nccc\n", 3);
        assert_eq!(chunks.concat(), b"a\nbb\nccc\n");
        assert!(chunks.iter().all(|c| c.ends_with(b"\n")));
        assert_eq!(split_at_lines(b"no newline", 4), vec![&b"no newline"[..]]);
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

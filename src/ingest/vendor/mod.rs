//! Vendor event logs: what third-party services say happened to the work a tool call handed
//! them (Stripe events, Mailgun and SendGrid events, GitHub workflow deliveries, Standard
//! Webhooks, Temporal histories, or any JSON log a `[[vendor]]` mapping in abortaudit.toml
//! describes).
//!
//! Everything but Temporal goes through one generic engine driven by [`VendorMapping`]s: JSON
//! pointers say where a record keeps its id, type, time and correlation keys, and a role table
//! says which event types mean that work landed, was queued, started, was cancelled or failed.
//! Adding a vendor is configuration, not code. Temporal histories need code (an activity's
//! `Completed` event only names its `Scheduled` event, which holds the keys), see `temporal.rs`.
//!
//! Input shapes are sniffed by content: JSON Lines (one event, or one array of events, per
//! line), a JSON array, list envelopes (`{"object":"list","data":[…]}` as Stripe's API returns
//! them, `{"data"|"items"|"events":[…]}`), a single event object, pretty-printed objects one
//! after another (`jq`, `stripe listen --print-json`), and Temporal histories.
//!
//! Times are parsed from their decimal text into integer nanoseconds, never through `f64`
//! arithmetic, and each carries its precision (Stripe's whole seconds are 1 s wide).

use std::collections::BTreeMap;
use std::sync::Arc;

use rayon::prelude::*;
use serde_json::Value;

mod mapping;
pub(crate) mod temporal;
mod time;

use super::json_text::locate::{count_newlines, element_lines};
use crate::model::VendorEvent;
use crate::model::diagnostic::{Code, Diagnostic};
use crate::rules::{Rules, VendorMapping};
use mapping::{conditions_hold, read_event};

pub const FORMAT_JSON_LINES: &str = "vendor-json-lines";
pub const FORMAT_JSON: &str = "vendor-json";
pub const FORMAT_TEMPORAL: &str = "temporal-history";

/// One vendor event log as read.
#[derive(Debug, Default)]
pub struct EventsParsed {
    /// `vendor-json-lines`, `vendor-json` or `temporal-history`.
    pub format: &'static str,
    pub lines: u64,
    /// Events in input order (Temporal events of a JSON Lines file come after the others).
    pub events: Vec<VendorEvent>,
    pub diagnostics: Vec<Diagnostic>,
    /// Events read per vendor (mapping name, or `temporal`).
    pub by_vendor: BTreeMap<String, u64>,
}

/// Reads one event log with the effective mappings of `rules` (the user's, then the built-in
/// ones). `path` names the input in diagnostics. The entry point for tests and tools; the
/// ingest pipeline calls `read_events`.
pub fn parse_events(path: &str, bytes: &[u8], rules: &Rules) -> Result<EventsParsed, String> {
    read_events(&Arc::from(path), bytes, &rules.effective_vendors())
}

/// Reads one event log. `mappings` are tried in order, the first whose `match` holds reads a
/// record. `Err` is an input that cannot be used at all (not JSON, or no record any mapping
/// recognises); its message does not name the input, the caller prefixes it. An input whose
/// records were recognised but all skipped (bad times) is `Ok` with no events and diagnostics
/// saying why.
pub(crate) fn read_events(
    input: &Arc<str>,
    bytes: &[u8],
    mappings: &[VendorMapping],
) -> Result<EventsParsed, String> {
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let Some(first) = text.iter().position(|b| !b.is_ascii_whitespace()) else {
        return Ok(EventsParsed {
            format: FORMAT_JSON_LINES,
            ..EventsParsed::default()
        });
    };
    if !matches!(text[first], b'{' | b'[') {
        return Err(format!(
            "not JSON (it starts with byte 0x{:02x}); expected a vendor event log: JSON Lines, a JSON array of events or one event object",
            text[first]
        ));
    }
    let ctx = Ctx { input, mappings };
    let lines_in_text = count_lines(text);

    // JSON Lines when the first line is a whole record and more follow; a file of one line is
    // a document (the same records either way).
    let first_line = line_at(text, first);
    let more_lines = !text[first + first_line.len()..].trim_ascii().is_empty();
    let json_lines =
        more_lines && serde_json::from_slice::<serde::de::IgnoredAny>(first_line).is_ok();
    let (json_lines, outcome) = if json_lines {
        (true, read_json_lines(&ctx, text))
    } else {
        match serde_json::from_slice::<Value>(text) {
            Ok(value) => {
                let first_record_line = 1 + count_newlines(&text[..first]);
                let units = expand(value, first_record_line, Some(&text[first..]), mappings);
                let mut outcome = EventsRead::default();
                process_units(&ctx, units, &mut outcome);
                (false, outcome)
            }
            Err(e) => match read_stream(&ctx, text) {
                Some(outcome) => (false, outcome),
                // JSON Lines whose first line is broken: read the others, diagnose the first.
                None if later_line_is_json(text, first) => (true, read_json_lines(&ctx, text)),
                None => {
                    return Err(format!(
                        "line {}, column {}: the document is not valid JSON ({e}); expected a vendor event log: JSON Lines, a JSON array of events or one event object",
                        e.line(),
                        e.column()
                    ));
                }
            },
        }
    };
    finish(&ctx, outcome, json_lines, lines_in_text)
}

/// Whether `bytes` look like a vendor event log rather than traces, from its first record only,
/// so that traces and event logs can be given together on the command line. A Stripe object
/// that is not an event counts as an event log, so that reading it explains what to export.
pub fn looks_like_events(bytes: &[u8], mappings: &[VendorMapping]) -> bool {
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let Some(first) = text.iter().position(|b| !b.is_ascii_whitespace()) else {
        return false;
    };
    let first_line = line_at(text, first);
    let record: Value = if text[first] == b'{' {
        // The first line of JSON Lines, else the whole document.
        let object = if serde_json::from_slice::<serde::de::IgnoredAny>(first_line).is_ok() {
            first_line
        } else {
            &text[first..]
        };
        // Top-level keys first, without building the values: an OTLP batch can be large, and
        // its keys already say it is traces.
        let Ok(keys) = serde_json::from_slice::<BTreeMap<String, serde::de::IgnoredAny>>(object)
        else {
            return false;
        };
        const TRACE_KEYS: [&str; 5] = [
            "resourceSpans",
            "resource_spans",
            "batches",
            "instrumentationLibrarySpans",
            "traceID",
        ];
        if TRACE_KEYS.iter().any(|k| keys.contains_key(*k)) {
            return false;
        }
        match serde_json::from_slice(object) {
            Ok(v) => v,
            Err(_) => return false,
        }
    } else if text[first] == b'[' {
        // Only the array's first element, not the whole (possibly large) array.
        let rest = &text[first + 1..];
        let Some(at) = rest.iter().position(|b| !b.is_ascii_whitespace()) else {
            return false;
        };
        let mut stream = serde_json::Deserializer::from_slice(&rest[at..]).into_iter::<Value>();
        match stream.next() {
            Some(Ok(v)) => Value::Array(vec![v]),
            _ => return false,
        }
    } else {
        return false;
    };
    let units = expand(record, 1, None, mappings);
    units.iter().any(|u| match &u.kind {
        UnitKind::Event(_) | UnitKind::Temporal | UnitKind::History(_) => true,
        UnitKind::Unknown => {
            stripe_object(&u.value).is_some() || stripe_list_of_objects(&u.value).is_some()
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Shapes

struct Ctx<'a> {
    input: &'a Arc<str>,
    mappings: &'a [VendorMapping],
}

/// One record found in the input, with the line it starts on.
struct Unit {
    value: Value,
    line: u64,
    kind: UnitKind,
}

enum UnitKind {
    /// An event the mapping at this index recognises.
    Event(usize),
    /// One event of a Temporal history, given on its own (a JSON Lines history).
    Temporal,
    /// A whole Temporal history: its events with their lines.
    History(Vec<(Value, u64)>),
    Unknown,
}

/// Turns one top-level value into the records it holds. `text` is the value's own text when it
/// spans lines (a document), starting on `line`, to find the line each element starts on.
fn expand(value: Value, line: u64, text: Option<&[u8]>, mappings: &[VendorMapping]) -> Vec<Unit> {
    let lines_of = |path: &[&str], count: usize| -> Option<Vec<u64>> {
        let relative = element_lines(text?, path)?;
        (relative.len() == count).then(|| relative.iter().map(|l| l + line - 1).collect())
    };
    let elements = |items: Vec<Value>, path: &[&str]| -> Vec<Unit> {
        let lines = lines_of(path, items.len());
        items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let line = lines.as_ref().map_or(line, |l| l[i]);
                let kind = kind_of(&item, mappings);
                Unit {
                    value: item,
                    line,
                    kind,
                }
            })
            .collect()
    };
    match value {
        Value::Array(items) => elements(items, &[]),
        Value::Object(mut map) => {
            if let Some((events, path)) = temporal::take_history(&mut map) {
                let lines = lines_of(path, events.len());
                let events = events
                    .into_iter()
                    .enumerate()
                    .map(|(i, e)| (e, lines.as_ref().map_or(line, |l| l[i])))
                    .collect();
                return vec![Unit {
                    value: Value::Null,
                    line,
                    kind: UnitKind::History(events),
                }];
            }
            let mut value = Value::Object(map);
            let kind = kind_of(&value, mappings);
            if !matches!(kind, UnitKind::Unknown) {
                return vec![Unit { value, line, kind }];
            }
            // An empty Stripe list is no events, not an unknown record.
            if value.get("object").and_then(Value::as_str) == Some("list")
                && value
                    .get("data")
                    .and_then(Value::as_array)
                    .is_some_and(Vec::is_empty)
            {
                return Vec::new();
            }
            // A list whose first element is no event stays whole, so that the error can say
            // what it lists (a Stripe list of charges).
            let envelope = ["data", "items", "events"].into_iter().find(|key| {
                value
                    .get(key)
                    .and_then(Value::as_array)
                    .and_then(|items| items.first())
                    .is_some_and(|f| !matches!(kind_of(f, mappings), UnitKind::Unknown))
            });
            if let Some(key) = envelope
                && let Value::Array(items) = value[key].take()
            {
                return elements(items, &[key]);
            }
            vec![Unit {
                value,
                line,
                kind: UnitKind::Unknown,
            }]
        }
        other => vec![Unit {
            value: other,
            line,
            kind: UnitKind::Unknown,
        }],
    }
}

fn kind_of(value: &Value, mappings: &[VendorMapping]) -> UnitKind {
    if temporal::is_history_event(value) {
        UnitKind::Temporal
    } else if let Some((index, _)) = find_mapping(value, mappings) {
        UnitKind::Event(index)
    } else {
        UnitKind::Unknown
    }
}

/// The first mapping whose `match` holds, and the record it reads (inside an envelope when one
/// of the mapping's `unwrap` pointers is present).
fn find_mapping<'v>(value: &'v Value, mappings: &[VendorMapping]) -> Option<(usize, &'v Value)> {
    mappings.iter().enumerate().find_map(|(i, m)| {
        let record = m
            .unwrap
            .iter()
            .find_map(|p| value.pointer(p).filter(|v| v.is_object()))
            .unwrap_or(value);
        conditions_hold(record, &m.matches).then_some((i, record))
    })
}

// ---------------------------------------------------------------------------------------------
// Reading

#[derive(Default)]
struct EventsRead {
    events: Vec<VendorEvent>,
    diagnostics: Vec<Diagnostic>,
    /// Whole Temporal histories, each read on its own.
    histories: Vec<Vec<(Value, u64)>>,
    /// Temporal events given one per record: together they are one history.
    loose_temporal: Vec<(Value, u64)>,
    /// Records some mapping (or the Temporal reader) recognised.
    recognised: u64,
    /// Lines of records nothing recognised, and what the first of them looks like.
    unknown_lines: Vec<u64>,
    first_unknown: Option<String>,
    /// The first line that is not JSON, for the error when nothing else could be read.
    first_malformed: Option<String>,
    /// Some line or document parsed as JSON (it may have held only an empty list).
    parsed_any: bool,
}

impl EventsRead {
    fn append(&mut self, mut other: EventsRead) {
        self.events.append(&mut other.events);
        self.diagnostics.append(&mut other.diagnostics);
        self.histories.append(&mut other.histories);
        self.loose_temporal.append(&mut other.loose_temporal);
        self.recognised += other.recognised;
        self.unknown_lines.append(&mut other.unknown_lines);
        if self.first_unknown.is_none() {
            self.first_unknown = other.first_unknown;
        }
        if self.first_malformed.is_none() {
            self.first_malformed = other.first_malformed;
        }
        self.parsed_any |= other.parsed_any;
    }
}

/// Lines per rayon task: enough that the per-task cost vanishes, small enough to spread a file
/// of a few thousand events over the cores.
const LINES_PER_TASK: usize = 256;

fn read_json_lines(ctx: &Ctx<'_>, text: &[u8]) -> EventsRead {
    let ends_with_newline = text.ends_with(b"\n");
    let mut lines: Vec<(u64, &[u8])> = Vec::new();
    let mut rest = text;
    let mut number = 0;
    while !rest.is_empty() {
        number += 1;
        let (line, next) = match rest.iter().position(|b| *b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        lines.push((number, line));
        rest = next;
    }
    let last = lines.len() as u64;
    let parts: Vec<EventsRead> = lines
        .par_chunks(LINES_PER_TASK)
        .map(|chunk| {
            let mut out = EventsRead::default();
            for (number, line) in chunk {
                let may_be_cut = *number == last && !ends_with_newline;
                read_line(ctx, line, *number, may_be_cut, &mut out);
            }
            out
        })
        .collect();
    let mut outcome = EventsRead::default();
    for part in parts {
        outcome.append(part);
    }
    outcome
}

/// Pretty-printed values one after another, as `jq` (without `-c`) and `stripe listen
/// --print-json` write them. `None` unless the input starts with two whole values. A broken value
/// ends the stream: after it there is no telling where the next one starts.
fn read_stream(ctx: &Ctx<'_>, text: &[u8]) -> Option<EventsRead> {
    let mut stream = serde_json::Deserializer::from_slice(text).into_iter::<Value>();
    let mut outcome = EventsRead::default();
    let mut values = 0;
    let mut line = 1;
    let mut counted_to = 0;
    loop {
        let offset = stream.byte_offset();
        let Some(start) = text[offset..]
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .map(|i| offset + i)
        else {
            break;
        };
        line += count_newlines(&text[counted_to..start]);
        counted_to = start;
        match stream.next() {
            Some(Ok(value)) => {
                values += 1;
                let own_text = &text[start..stream.byte_offset()];
                let units = expand(value, line, Some(own_text), ctx.mappings);
                process_units(ctx, units, &mut outcome);
            }
            Some(Err(e)) => {
                if values < 2 {
                    return None;
                }
                let diagnostic = if e.is_eof() {
                    Diagnostic::warning(
                        ctx.input,
                        Some(line),
                        Code::TruncatedLine,
                        format!(
                            "the last value ends mid-record ({e}); the file may still be being written; the partial record is skipped"
                        ),
                    )
                } else {
                    Diagnostic::error(
                        ctx.input,
                        Some(line),
                        Code::MalformedJson,
                        format!(
                            "not valid JSON: {e}; the values from here to the end of the input are skipped"
                        ),
                    )
                };
                outcome.diagnostics.push(diagnostic);
                break;
            }
            None => break,
        }
    }
    (values >= 2).then_some(outcome)
}

fn read_line(ctx: &Ctx<'_>, line: &[u8], number: u64, may_be_cut: bool, out: &mut EventsRead) {
    let line = line.trim_ascii();
    if line.is_empty() {
        return;
    }
    match serde_json::from_slice::<Value>(line) {
        Ok(value) => {
            let units = expand(value, number, None, ctx.mappings);
            process_units(ctx, units, out);
        }
        Err(e) => {
            if out.first_malformed.is_none() {
                out.first_malformed = Some(format!(
                    "line {number}, column {}: not valid JSON ({e})",
                    e.column()
                ));
            }
            let diagnostic = if may_be_cut && e.is_eof() {
                Diagnostic::warning(
                    ctx.input,
                    Some(number),
                    Code::TruncatedLine,
                    format!(
                        "last line ends mid-record ({e}); the file may still be being written; the partial record is skipped"
                    ),
                )
            } else {
                Diagnostic::error(
                    ctx.input,
                    Some(number),
                    Code::MalformedJson,
                    format!(
                        "not valid JSON: {e}; expected one event (or array of events) per line; skipped"
                    ),
                )
            };
            out.diagnostics.push(diagnostic);
        }
    }
}

fn process_units(ctx: &Ctx<'_>, units: Vec<Unit>, out: &mut EventsRead) {
    out.parsed_any = true;
    // Records sharing a line (an array on one line) get `.1`, `.2`… in made-up ids.
    let several = units.len() > 1;
    for (index, unit) in units.into_iter().enumerate() {
        match unit.kind {
            UnitKind::Event(m) => {
                out.recognised += 1;
                let fallback_id = if several {
                    format!("@{}.{}", unit.line, index + 1)
                } else {
                    format!("@{}", unit.line)
                };
                let read = read_event(
                    ctx,
                    &ctx.mappings[m],
                    &unit.value,
                    unit.line,
                    fallback_id,
                    &mut out.diagnostics,
                );
                match read {
                    Ok(event) => out.events.push(event),
                    Err(d) => out.diagnostics.push(d),
                }
            }
            UnitKind::Temporal => {
                out.recognised += 1;
                out.loose_temporal.push((unit.value, unit.line));
            }
            UnitKind::History(events) => {
                out.recognised += 1;
                out.histories.push(events);
            }
            UnitKind::Unknown => {
                if out.first_unknown.is_none() {
                    out.first_unknown = Some(describe_unknown(&unit.value));
                }
                out.unknown_lines.push(unit.line);
            }
        }
    }
}

fn finish(
    ctx: &Ctx<'_>,
    mut outcome: EventsRead,
    json_lines: bool,
    lines: u64,
) -> Result<EventsParsed, String> {
    if outcome.recognised == 0 {
        if let Some(description) = outcome.first_unknown {
            return Err(description);
        }
        if let Some(malformed) = outcome.first_malformed {
            return Err(format!(
                "{malformed}; no line could be read; expected a vendor event log: JSON Lines, a JSON array of events or one event object"
            ));
        }
        if outcome.parsed_any {
            return Err("holds no events: the list in it is empty".to_owned());
        }
    }
    for line in &outcome.unknown_lines {
        outcome.diagnostics.push(Diagnostic::warning(
            ctx.input,
            Some(*line),
            Code::InvalidRecord,
            "no vendor mapping recognises this record; skipped (add a [[vendor]] mapping to abortaudit.toml to read it)",
        ));
    }
    let temporal_records = (outcome.histories.len() + outcome.loose_temporal.len()) as u64;
    let temporal_only = temporal_records > 0 && temporal_records == outcome.recognised;
    for history in &outcome.histories {
        temporal::read_history(
            ctx.input,
            history,
            &mut outcome.events,
            &mut outcome.diagnostics,
        );
    }
    if !outcome.loose_temporal.is_empty() {
        temporal::read_history(
            ctx.input,
            &outcome.loose_temporal,
            &mut outcome.events,
            &mut outcome.diagnostics,
        );
    }
    // Parallel chunks and the passes above add diagnostics out of line order.
    outcome.diagnostics.sort_by_key(|d| d.line);
    let mut by_vendor = BTreeMap::new();
    for event in &outcome.events {
        *by_vendor.entry(event.vendor.clone()).or_default() += 1;
    }
    Ok(EventsParsed {
        format: if temporal_only {
            FORMAT_TEMPORAL
        } else if json_lines {
            FORMAT_JSON_LINES
        } else {
            FORMAT_JSON
        },
        lines,
        events: outcome.events,
        diagnostics: outcome.diagnostics,
        by_vendor,
    })
}

// ---------------------------------------------------------------------------------------------
// Correlation keys

// ---------------------------------------------------------------------------------------------
// Time

// ---------------------------------------------------------------------------------------------
// Describing what an unrecognised input is

/// The error for an input no mapping recognises, saying what it looks like instead.
fn describe_unknown(value: &Value) -> String {
    if let Some(kind) = stripe_object(value) {
        return format!(
            "this is a Stripe {kind} object, not an event: export events (GET /v1/events) instead"
        );
    }
    if let Some(kind) = stripe_list_of_objects(value) {
        return format!(
            "this is a Stripe list of {kind} objects, not of events: export events (GET /v1/events) instead"
        );
    }
    let looks_like = match value {
        Value::Object(o) => {
            if o.contains_key("resourceSpans") || o.contains_key("resource_spans") {
                return "this is OpenTelemetry trace data (OTLP/JSON), not a vendor event log: give it as a trace input".to_owned();
            }
            let mut keys: Vec<String> = o.keys().take(12).map(|k| format!("{k:?}")).collect();
            if o.len() > 12 {
                keys.push("…".to_owned());
            }
            format!("first record has keys [{}]", keys.join(","))
        }
        Value::Array(_) => "first record is an array".to_owned(),
        Value::String(_) => "first record is a JSON string, not an object".to_owned(),
        Value::Number(_) => "first record is a JSON number, not an object".to_owned(),
        Value::Bool(_) => "first record is a JSON boolean, not an object".to_owned(),
        Value::Null => "first record is null".to_owned(),
    };
    format!(
        "no vendor mapping recognises these records ({looks_like}); add a [[vendor]] mapping to abortaudit.toml (run `abortaudit rules` to see the built-in ones)"
    )
}

/// What a Stripe list (`{"object": "list", "data": […]}`) lists, when that is not events.
fn stripe_list_of_objects(value: &Value) -> Option<&str> {
    if value.get("object").and_then(Value::as_str) != Some("list") {
        return None;
    }
    stripe_object(value.get("data")?.as_array()?.first()?)
}

/// The `object` of a Stripe API object that is not an event (`charge`, `payment_intent`):
/// every Stripe object names itself and says whether it is live.
fn stripe_object(value: &Value) -> Option<&str> {
    let object = value.get("object")?.as_str()?;
    let stripe_like = value.get("livemode").is_some_and(Value::is_boolean)
        || value
            .get("id")
            .and_then(Value::as_str)
            .is_some_and(|id| id.split_once('_').is_some_and(|(p, _)| p.len() >= 2));
    (stripe_like && object != "event" && object != "list" && !object.is_empty()).then_some(object)
}

// ---------------------------------------------------------------------------------------------
// Text helpers

fn count_lines(text: &[u8]) -> u64 {
    count_newlines(text) + u64::from(!text.is_empty() && !text.ends_with(b"\n"))
}

/// The line holding byte `at`, from `at` to its end.
fn line_at(text: &[u8], at: usize) -> &[u8] {
    let end = text[at..]
        .iter()
        .position(|b| *b == b'\n')
        .map_or(text.len(), |i| at + i);
    &text[at..end]
}

/// Whether one of the few lines after the first non-blank one is a JSON object or array on its
/// own: JSON Lines with a broken first line, rather than a broken document.
fn later_line_is_json(text: &[u8], first: usize) -> bool {
    text[first..]
        .split(|b| *b == b'\n')
        .skip(1)
        .map(<[u8]>::trim_ascii)
        .filter(|l| !l.is_empty())
        .take(5)
        .any(|l| {
            matches!(l.first(), Some(b'{' | b'['))
                && serde_json::from_slice::<serde::de::IgnoredAny>(l).is_ok()
        })
}

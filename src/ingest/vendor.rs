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

use super::temporal;
use crate::model::diagnostic::{Code, Diagnostic};
use crate::model::time::{NS_PER_S, parse_rfc3339, precision_ns};
use crate::model::{KeyKind, Origin, VendorEvent};
use crate::rules::{Rules, TimeUnit, VendorMapping};

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
    let more_lines = !trim_ascii(&text[first + first_line.len()..]).is_empty();
    let json_lines =
        more_lines && serde_json::from_slice::<serde::de::IgnoredAny>(first_line).is_ok();
    let (json_lines, outcome) = if json_lines {
        (true, read_json_lines(&ctx, text))
    } else {
        match serde_json::from_slice::<Value>(text) {
            Ok(value) => {
                let first_record_line = 1 + count_newlines(&text[..first]);
                let units = expand(value, first_record_line, Some(&text[first..]), mappings);
                let mut outcome = Outcome::default();
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
                let kind = classify(&item, mappings);
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
            let kind = classify(&value, mappings);
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
                    .is_some_and(|f| !matches!(classify(f, mappings), UnitKind::Unknown))
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

fn classify(value: &Value, mappings: &[VendorMapping]) -> UnitKind {
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

/// Every pointer present with one of its values (`*` in a value matches any run of characters;
/// `"*"` alone, or no values, accepts anything that is not null).
fn conditions_hold(record: &Value, conditions: &BTreeMap<String, Vec<String>>) -> bool {
    conditions.iter().all(|(pointer, values)| {
        let Some(v) = record.pointer(pointer).filter(|v| !v.is_null()) else {
            return false;
        };
        if values.is_empty() || values.iter().any(|p| p == "*") {
            return true;
        }
        scalar_text(v).is_some_and(|text| values.iter().any(|p| glob(p, &text)))
    })
}

/// `*` matches any run of characters (including none); everything else matches itself.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was, and the text position it is currently taken to extend to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

// ---------------------------------------------------------------------------------------------
// Reading

#[derive(Default)]
struct Outcome {
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

impl Outcome {
    fn append(&mut self, mut other: Outcome) {
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

fn read_json_lines(ctx: &Ctx<'_>, text: &[u8]) -> Outcome {
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
    let parts: Vec<Outcome> = lines
        .par_chunks(LINES_PER_TASK)
        .map(|chunk| {
            let mut out = Outcome::default();
            for (number, line) in chunk {
                let may_be_cut = *number == last && !ends_with_newline;
                read_line(ctx, line, *number, may_be_cut, &mut out);
            }
            out
        })
        .collect();
    let mut outcome = Outcome::default();
    for part in parts {
        outcome.append(part);
    }
    outcome
}

/// Pretty-printed values one after another, as `jq` (without `-c`) and `stripe listen
/// --print-json` write them. `None` unless the input starts with two whole values. A broken value
/// ends the stream: after it there is no telling where the next one starts.
fn read_stream(ctx: &Ctx<'_>, text: &[u8]) -> Option<Outcome> {
    let mut stream = serde_json::Deserializer::from_slice(text).into_iter::<Value>();
    let mut outcome = Outcome::default();
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

fn read_line(ctx: &Ctx<'_>, line: &[u8], number: u64, may_be_cut: bool, out: &mut Outcome) {
    let line = trim_ascii(line);
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

fn process_units(ctx: &Ctx<'_>, units: Vec<Unit>, out: &mut Outcome) {
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
                match read_event(ctx, &ctx.mappings[m], &unit.value, unit.line, fallback_id) {
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
    mut outcome: Outcome,
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

/// Reads one record with its mapping. `Err` is the diagnostic of a record that had to be
/// skipped.
fn read_event(
    ctx: &Ctx<'_>,
    mapping: &VendorMapping,
    value: &Value,
    line: u64,
    fallback_id: String,
) -> Result<VendorEvent, Diagnostic> {
    let record = mapping
        .unwrap
        .iter()
        .find_map(|p| value.pointer(p).filter(|v| v.is_object()))
        .unwrap_or(value);
    let skip = |code: Code, message: String| {
        Diagnostic::error(
            ctx.input,
            Some(line),
            code,
            format!("{message}; the event is skipped"),
        )
    };
    let Some(kind) = first_text(record, &mapping.kind) else {
        return Err(skip(
            Code::InvalidRecord,
            format!(
                "{} event with no type at {}",
                mapping.name,
                mapping.kind.join(" or ")
            ),
        ));
    };
    let rule = mapping
        .roles
        .iter()
        .find(|r| glob(&r.pattern, &kind) && conditions_hold(record, &r.when));
    // A rule's own time pointers say when *this kind* of event happened (a job's completion,
    // not its creation); falling back to the mapping's time would date a commit too early.
    let time_pointers = match rule {
        Some(r) if !r.time.is_empty() => &r.time,
        _ => &mapping.time,
    };
    let Some((pointer, time_value)) = time_pointers
        .iter()
        .find_map(|p| record.pointer(p).filter(|v| !v.is_null()).map(|v| (p, v)))
    else {
        return Err(skip(
            Code::InvalidRecord,
            format!(
                "{} event {kind:?} has no time at {}",
                mapping.name,
                time_pointers.join(" or ")
            ),
        ));
    };
    let (time, precision) = parse_time(time_value, mapping.time_unit).map_err(|why| {
        skip(
            Code::InvalidValue,
            format!(
                "{} event {kind:?}: time at {pointer} is {}: {why}",
                mapping.name,
                shorten(&time_value.to_string())
            ),
        )
    })?;

    let mut keys = Keys::default();
    let pointers = &mapping.keys;
    let by_kind: [(KeyKind, &Vec<String>); 7] = [
        (KeyKind::IdempotencyKey, &pointers.idempotency_key),
        (KeyKind::RequestId, &pointers.request_id),
        (KeyKind::ObjectId, &pointers.object_id),
        (KeyKind::JobId, &pointers.job_id),
        (KeyKind::MessageId, &pointers.message_id),
        (KeyKind::ToolCallId, &pointers.tool_call_id),
        (KeyKind::ConversationId, &pointers.conversation_id),
    ];
    // Every present pointer counts, not just the first: SendGrid's sg_message_id and smtp-id
    // are different spellings the client side may have recorded either of.
    for (kind, list) in by_kind {
        for p in list {
            for text in texts_at(record, p) {
                keys.add(kind, &text);
            }
        }
    }
    for p in &pointers.traceparent {
        for text in texts_at(record, p) {
            keys.add_traceparent(&text);
        }
    }
    for p in &mapping.metadata {
        if let Some(Value::Object(entries)) = record.pointer(p) {
            for (name, v) in entries {
                let Some(text) = id_text(v) else { continue };
                match metadata_key(name) {
                    Some(MetaKey::Kind(kind)) => keys.add(kind, &text),
                    Some(MetaKey::Traceparent) => keys.add_traceparent(&text),
                    None => {}
                }
            }
        }
    }

    Ok(VendorEvent {
        vendor: mapping.name.clone(),
        id: first_text(record, &mapping.id).unwrap_or(fallback_id),
        kind,
        role: rule.map(|r| r.role),
        time,
        precision,
        keys: keys.0,
        subject: first_text(record, &mapping.subject),
        origin: Origin {
            input: ctx.input.clone(),
            line,
        },
    })
}

/// The first pointer's value that is a non-empty string or a number, as text.
fn first_text(record: &Value, pointers: &[String]) -> Option<String> {
    pointers
        .iter()
        .filter_map(|p| record.pointer(p))
        .filter_map(id_text)
        .map(|s| s.trim().to_owned())
        .find(|s| !s.is_empty())
}

/// The texts at a pointer: a string or number, or the strings and numbers of an array.
fn texts_at(record: &Value, pointer: &str) -> Vec<String> {
    match record.pointer(pointer) {
        Some(Value::Array(items)) => items.iter().filter_map(id_text).collect(),
        Some(v) => id_text(v).into_iter().collect(),
        None => Vec::new(),
    }
}

/// A string, or a number printed (GitHub's ids are numbers); nothing else names anything.
fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// For conditions: strings, numbers and booleans (`"/livemode" = ["false"]`) as text.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::Bool(b) => Some(b.to_string()),
        other => id_text(other),
    }
}

fn shorten(text: &str) -> String {
    const MAX: usize = 60;
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        format!("{}…", text.chars().take(MAX).collect::<String>())
    }
}

// ---------------------------------------------------------------------------------------------
// Correlation keys

/// Keys of one event, normalised and without repeats.
#[derive(Default)]
pub(crate) struct Keys(pub(crate) Vec<(KeyKind, String)>);

impl Keys {
    pub(crate) fn add(&mut self, kind: KeyKind, raw: &str) {
        let text = raw.trim();
        match kind {
            KeyKind::TraceId => {
                if let Some(id) = hex_id(text, 32) {
                    self.push(kind, id);
                }
            }
            KeyKind::SpanId => {
                if let Some(id) = hex_id(text, 16) {
                    self.push(kind, id);
                }
            }
            KeyKind::MessageId => {
                // Message-Id headers are written with and without their angle brackets.
                let id = text
                    .strip_prefix('<')
                    .and_then(|t| t.strip_suffix('>'))
                    .unwrap_or(text)
                    .trim();
                // SendGrid's events carry `<x-message-id>.filter…`; its send API answers with
                // the X-Message-Id header alone, which is what a client span records.
                if let Some((prefix, _)) = id.split_once(".filter") {
                    self.push(kind, prefix.to_owned());
                }
                self.push(kind, id.to_owned());
            }
            _ => self.push(kind, text.to_owned()),
        }
    }

    /// A W3C traceparent gives the trace id and the caller's span id.
    pub(crate) fn add_traceparent(&mut self, raw: &str) {
        if let Some((trace, span)) = parse_traceparent(raw) {
            self.push(KeyKind::TraceId, trace);
            self.push(KeyKind::SpanId, span);
        }
    }

    fn push(&mut self, kind: KeyKind, value: String) {
        if !value.is_empty() && !self.0.iter().any(|(k, v)| *k == kind && *v == value) {
            self.0.push((kind, value));
        }
    }
}

/// `00-<32 hex>-<16 hex>-<2 hex>` (later versions may append fields) into lower-case trace and
/// span ids; `None` for anything else, and for the all-zero ids W3C declares invalid.
pub(crate) fn parse_traceparent(raw: &str) -> Option<(String, String)> {
    let mut parts = raw.trim().split('-');
    let version = parts.next()?;
    let trace = parts.next()?;
    let span = parts.next()?;
    let flags = parts.next()?;
    let extra = parts.next();
    if version.len() != 2
        || !version.bytes().all(|b| b.is_ascii_hexdigit())
        || version.eq_ignore_ascii_case("ff")
        || flags.len() != 2
        || !flags.bytes().all(|b| b.is_ascii_hexdigit())
        || trace.len() != 32
        || (version == "00" && extra.is_some())
    {
        return None;
    }
    let trace = hex_id(trace, 32)?;
    let span = hex_id(span, 16)?;
    Some((trace, span))
}

/// A hex id of `len` digits, lower-cased; a 16-digit trace id is left-padded to 32 (Jaeger's
/// 64-bit ids), as the span model does. All-zero ids are invalid.
fn hex_id(text: &str, len: usize) -> Option<String> {
    if !text.bytes().all(|b| b.is_ascii_hexdigit()) || text.bytes().all(|b| b == b'0') {
        return None;
    }
    if text.len() == len {
        Some(text.to_ascii_lowercase())
    } else if len == 32 && text.len() == 16 {
        Some(format!("{:0>32}", text.to_ascii_lowercase()))
    } else {
        None
    }
}

enum MetaKey {
    Kind(KeyKind),
    Traceparent,
}

/// What a metadata entry's name says it holds. Names are compared without case, `_` and `-`,
/// so `conversation_id`, `conversationId` and `Conversation-Id` are one name.
fn metadata_key(name: &str) -> Option<MetaKey> {
    let folded: String = name
        .chars()
        .filter(|c| *c != '_' && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    Some(match folded.as_str() {
        "conversationid" | "sessionid" | "threadid" | "chatid" => {
            MetaKey::Kind(KeyKind::ConversationId)
        }
        "toolcallid" => MetaKey::Kind(KeyKind::ToolCallId),
        "idempotencykey" => MetaKey::Kind(KeyKind::IdempotencyKey),
        "requestid" => MetaKey::Kind(KeyKind::RequestId),
        "jobid" | "runid" | "workflowid" => MetaKey::Kind(KeyKind::JobId),
        "messageid" => MetaKey::Kind(KeyKind::MessageId),
        "traceid" => MetaKey::Kind(KeyKind::TraceId),
        "traceparent" => MetaKey::Traceparent,
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// Time

/// Values at or above this many are milliseconds for `s_or_ms`: 1e11 seconds is the year 5138,
/// 1e11 milliseconds is 1973.
const MS_FROM: u64 = 100_000_000_000;

/// A timestamp as (Unix nanoseconds, precision in nanoseconds). Numbers are read from their
/// decimal text: a JSON float such as Mailgun's `1529692198.641821` through its shortest
/// round-trip text (what the writer most likely wrote), so its six decimals mean 1 µs. Numbers
/// in strings are accepted, and so is an RFC 3339 string whatever the unit (and a number where
/// RFC 3339 is expected, as seconds or milliseconds by magnitude): the unit is a hint, the text
/// says what it is.
pub(crate) fn parse_time(value: &Value, unit: TimeUnit) -> Result<(u64, u64), String> {
    let (text, from_float) = match value {
        Value::Number(n) => (n.to_string(), !(n.is_u64() || n.is_i64())),
        Value::String(s) => (s.trim().to_owned(), false),
        _ => return Err("expected a number or a string".to_owned()),
    };
    match Decimal::parse(&text, from_float) {
        Some(decimal) => {
            let unit_ns = match unit {
                TimeUnit::S => NS_PER_S,
                TimeUnit::Ms => 1_000_000,
                TimeUnit::Us => 1_000,
                TimeUnit::Ns => 1,
                TimeUnit::SOrMs | TimeUnit::Rfc3339 => {
                    if decimal.at_least(MS_FROM) {
                        1_000_000
                    } else {
                        NS_PER_S
                    }
                }
            };
            decimal.to_ns(unit_ns)
        }
        None => match value {
            Value::String(s) => parse_rfc3339(s.trim()),
            _ => Err("not a number".to_owned()),
        },
    }
}

/// A decimal number as its digits, exactly.
#[derive(Debug, PartialEq)]
struct Decimal {
    negative: bool,
    /// Digits before the point, and after it.
    whole: Vec<u8>,
    fraction: Vec<u8>,
}

impl Decimal {
    /// `[+-]digits[.digits][e[+-]digits]`. From a float's shortest round-trip text, trailing
    /// zeros of the fraction are formatting (`1513299569.0`), not precision, and are dropped.
    fn parse(text: &str, from_float: bool) -> Option<Decimal> {
        let bytes = text.as_bytes();
        let mut i = 0;
        let negative = match bytes.first() {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let mut digits = Vec::new();
        let mut point = None;
        while i < bytes.len() {
            match bytes[i] {
                b'0'..=b'9' => digits.push(bytes[i] - b'0'),
                b'.' if point.is_none() => point = Some(digits.len()),
                _ => break,
            }
            i += 1;
        }
        if digits.is_empty() {
            return None;
        }
        let mut exponent: i64 = 0;
        if i < bytes.len() {
            if !matches!(bytes[i], b'e' | b'E') {
                return None;
            }
            exponent = text[i + 1..].parse().ok()?;
            // Far beyond any timestamp; refusing keeps the shifts below small.
            if !(-400..=400).contains(&exponent) {
                return None;
            }
        }
        let point = point.unwrap_or(digits.len()) as i64 + exponent;
        let (whole, mut fraction) = if point <= 0 {
            let mut fraction = vec![0; point.unsigned_abs() as usize];
            fraction.extend_from_slice(&digits);
            (Vec::new(), fraction)
        } else if point as usize >= digits.len() {
            let mut whole = digits;
            whole.resize(point as usize, 0);
            (whole, Vec::new())
        } else {
            let fraction = digits.split_off(point as usize);
            (digits, fraction)
        };
        if from_float {
            while fraction.last() == Some(&0) {
                fraction.pop();
            }
        }
        Some(Decimal {
            negative,
            whole,
            fraction,
        })
    }

    /// Whether the whole part is at least `n`.
    fn at_least(&self, n: u64) -> bool {
        match self.whole_u64() {
            Some(w) => w >= n,
            None => true,
        }
    }

    fn whole_u64(&self) -> Option<u64> {
        self.whole.iter().try_fold(0u64, |acc, d| {
            acc.checked_mul(10)?.checked_add(u64::from(*d))
        })
    }

    /// Nanoseconds for a number of `unit_ns` units; digits finer than 1 ns are cut off.
    fn to_ns(&self, unit_ns: u64) -> Result<(u64, u64), String> {
        let too_large = || "too large for Unix nanoseconds".to_owned();
        let mut ns = self
            .whole_u64()
            .and_then(|w| w.checked_mul(unit_ns))
            .ok_or_else(too_large)?;
        let mut place = unit_ns;
        for digit in &self.fraction {
            place /= 10;
            if place == 0 {
                break;
            }
            ns = ns
                .checked_add(u64::from(*digit) * place)
                .ok_or_else(too_large)?;
        }
        if self.negative && ns > 0 {
            return Err("negative, before 1970".to_owned());
        }
        Ok((ns, precision_ns(unit_ns, self.fraction.len())))
    }
}

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

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &b[start..end]
}

fn count_newlines(b: &[u8]) -> u64 {
    b.iter().filter(|c| **c == b'\n').count() as u64
}

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
        .map(trim_ascii)
        .filter(|l| !l.is_empty())
        .take(5)
        .any(|l| {
            matches!(l.first(), Some(b'{' | b'['))
                && serde_json::from_slice::<serde::de::IgnoredAny>(l).is_ok()
        })
}

/// The line each element of the array at `path` (keys of nested objects from the root; empty:
/// the root itself is the array) starts on, for a document that is valid JSON. `None` when the
/// path does not lead to an array. A plain byte scan: serde does not report positions of values
/// it parsed successfully.
fn element_lines(text: &[u8], path: &[&str]) -> Option<Vec<u64>> {
    let mut scan = Scan {
        text,
        pos: 0,
        line: 1,
    };
    scan.skip_ws();
    for key in path {
        if scan.peek()? != b'{' {
            return None;
        }
        scan.bump();
        loop {
            scan.skip_ws();
            match scan.peek()? {
                b'}' => return None,
                b',' => {
                    scan.bump();
                    continue;
                }
                b'"' => {}
                _ => return None,
            }
            let name = scan.string()?;
            scan.skip_ws();
            if scan.peek()? != b':' {
                return None;
            }
            scan.bump();
            scan.skip_ws();
            if name == key.as_bytes() {
                break;
            }
            scan.skip_value()?;
        }
    }
    if scan.peek()? != b'[' {
        return None;
    }
    scan.bump();
    let mut lines = Vec::new();
    loop {
        scan.skip_ws();
        match scan.peek()? {
            b']' => return Some(lines),
            b',' => scan.bump(),
            _ => {
                lines.push(scan.line);
                scan.skip_value()?;
            }
        }
    }
}

struct Scan<'t> {
    text: &'t [u8],
    pos: usize,
    line: u64,
}

impl<'t> Scan<'t> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    fn bump(&mut self) {
        if self.text.get(self.pos) == Some(&b'\n') {
            self.line += 1;
        }
        self.pos += 1;
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.bump();
        }
    }

    /// A string starting at the cursor; its raw bytes (escapes left as they are).
    fn string(&mut self) -> Option<&'t [u8]> {
        self.bump();
        let start = self.pos;
        loop {
            match self.peek()? {
                b'"' => {
                    let raw = &self.text[start..self.pos];
                    self.bump();
                    return Some(raw);
                }
                b'\\' => {
                    self.bump();
                    self.bump();
                }
                _ => self.bump(),
            }
        }
    }

    /// Skips one value, nested to any depth without recursion.
    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => {
                self.string()?;
            }
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.string()?;
                        }
                        b'{' | b'[' => {
                            depth += 1;
                            self.bump();
                        }
                        b'}' | b']' => {
                            depth -= 1;
                            self.bump();
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => self.bump(),
                    }
                }
            }
            _ => {
                // A number, `true`, `false` or `null`: up to the next delimiter.
                while self
                    .peek()
                    .is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
                {
                    self.bump();
                }
            }
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(v: Value, unit: TimeUnit) -> Result<(u64, u64), String> {
        parse_time(&v, unit)
    }

    #[test]
    fn float_seconds_keep_their_written_digits() {
        let v: Value = serde_json::from_str("1529692198.641821").unwrap();
        assert_eq!(
            time(v, TimeUnit::S).unwrap(),
            (1_529_692_198_641_821_000, 1_000)
        );
        let v: Value = serde_json::from_str("1513299569.0").unwrap();
        assert_eq!(
            time(v, TimeUnit::S).unwrap(),
            (1_513_299_569_000_000_000, NS_PER_S),
            "a float's `.0` is formatting, not precision"
        );
        assert_eq!(
            time(Value::from("1529692198.641820"), TimeUnit::S).unwrap(),
            (1_529_692_198_641_820_000, 1_000),
            "a string's trailing zero was written on purpose"
        );
    }

    #[test]
    fn units_scale_exactly() {
        assert_eq!(
            time(Value::from(1_591_726_752_372u64), TimeUnit::Ms).unwrap(),
            (1_591_726_752_372_000_000, 1_000_000)
        );
        assert_eq!(
            time(Value::from(1_591_726_752_372u64), TimeUnit::SOrMs).unwrap(),
            (1_591_726_752_372_000_000, 1_000_000)
        );
        assert_eq!(
            time(Value::from(1_513_299_569u64), TimeUnit::SOrMs).unwrap(),
            (1_513_299_569_000_000_000, NS_PER_S)
        );
        assert_eq!(
            time(Value::from("1700000000123456"), TimeUnit::Us).unwrap(),
            (1_700_000_000_123_456_000, 1_000)
        );
        assert_eq!(
            time(Value::from(1_700_000_000_123_456_789u64), TimeUnit::Ns).unwrap(),
            (1_700_000_000_123_456_789, 1)
        );
        assert_eq!(
            time(Value::from("1.5e9"), TimeUnit::S).unwrap(),
            (1_500_000_000_000_000_000, NS_PER_S)
        );
        assert_eq!(
            time(Value::from("1700000000.1234567891"), TimeUnit::S).unwrap(),
            (1_700_000_000_123_456_789, 1),
            "digits below 1 ns are cut off"
        );
    }

    #[test]
    fn rfc3339_precision_follows_the_fraction() {
        assert_eq!(
            parse_rfc3339("2026-06-26T14:44:21.805688Z").unwrap(),
            (1_782_485_061_805_688_000, 1_000)
        );
        assert_eq!(
            parse_rfc3339("2020-10-05T16:33:49Z").unwrap(),
            (1_601_915_629_000_000_000, NS_PER_S)
        );
        assert_eq!(
            parse_rfc3339("2020-10-05T18:33:49.5+02:00").unwrap(),
            (1_601_915_629_500_000_000, 100_000_000)
        );
        assert!(parse_rfc3339("1969-12-31T23:59:59Z").is_err());
        assert_eq!(
            time(Value::from("2020-10-05T16:33:49Z"), TimeUnit::S)
                .unwrap()
                .0,
            1_601_915_629_000_000_000,
            "an RFC 3339 string is read whatever the unit says"
        );
    }

    #[test]
    fn bad_times_are_errors_not_wraps() {
        assert!(time(Value::from(-5), TimeUnit::S).is_err());
        assert!(time(Value::from(u64::MAX), TimeUnit::S).is_err());
        assert!(time(Value::from("1e500"), TimeUnit::S).is_err());
        assert!(time(Value::from("soon"), TimeUnit::S).is_err());
        assert!(time(Value::Bool(true), TimeUnit::S).is_err());
        assert!(time(serde_json::json!({"a": 1}), TimeUnit::Rfc3339).is_err());
        assert_eq!(time(Value::from("-0"), TimeUnit::S).unwrap().0, 0);
    }

    #[test]
    fn glob_matches_runs() {
        assert!(glob("*.succeeded", "payment_intent.succeeded"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "aXbYbZc"));
        assert!(!glob("*.succeeded", "payment_intent.succeeded.late"));
        assert!(!glob("delivered", "delivered2"));
        assert!(glob("de*ed", "delivered"));
    }

    #[test]
    fn traceparents_and_ids_normalise() {
        assert_eq!(
            parse_traceparent("00-5B8EFFF798038103D269B633813FC60C-EEE19B7EC3C1B174-01"),
            Some((
                "5b8efff798038103d269b633813fc60c".to_owned(),
                "eee19b7ec3c1b174".to_owned()
            ))
        );
        assert_eq!(
            parse_traceparent("00-00000000000000000000000000000000-eee19b7ec3c1b174-01"),
            None
        );
        assert_eq!(parse_traceparent("00-5b8e-eee19b7ec3c1b174-01"), None);
        assert_eq!(
            parse_traceparent("ff-5b8efff798038103d269b633813fc60c-eee19b7ec3c1b174-01"),
            None
        );
        let mut keys = Keys::default();
        keys.add(KeyKind::MessageId, "<abc@example.org>");
        keys.add(KeyKind::MessageId, "abc@example.org");
        keys.add(
            KeyKind::MessageId,
            "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        );
        keys.add(KeyKind::TraceId, "EEE19B7EC3C1B174");
        keys.add(KeyKind::RequestId, " req_Ab ");
        assert_eq!(
            keys.0,
            vec![
                (KeyKind::MessageId, "abc@example.org".to_owned()),
                (KeyKind::MessageId, "14c5d75ce93.dfd.64b469".to_owned()),
                (
                    KeyKind::MessageId,
                    "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0".to_owned()
                ),
                (
                    KeyKind::TraceId,
                    "0000000000000000eee19b7ec3c1b174".to_owned()
                ),
                (KeyKind::RequestId, "req_Ab".to_owned()),
            ]
        );
    }

    #[test]
    fn element_lines_follow_the_path() {
        let text = b"{\n \"object\": \"list\",\n \"x\": {\"data\": [1]},\n \"data\": [\n  {\"a\": [1, {\"b\": \"]\"}]},\n\n  \"s\\\"\", 3\n ]\n}";
        assert_eq!(element_lines(text, &["data"]), Some(vec![5, 7, 7]));
        assert_eq!(
            element_lines(b"[\n1,\n[2, 3],\n{}\n]", &[]),
            Some(vec![2, 3, 4])
        );
        assert_eq!(element_lines(b"{\"a\": 1}", &["data"]), None);
        assert_eq!(element_lines(b"[]", &[]), Some(vec![]));
        assert_eq!(
            element_lines(b"[1, 2", &[]),
            None,
            "cut short: no answer, no panic"
        );
    }
}

//! The generic mapping engine: one vendor event read from a record by a `[[vendor]]` mapping's
//! JSON pointers (id, type, time, subject, keys, metadata) and role table.

use std::collections::BTreeMap;

use serde_json::Value;

use super::Ctx;
use super::time::parse_time;
use crate::model::{Code, Diagnostic, KeyKind, Origin, VendorEvent};
use crate::rules::VendorMapping;
use crate::util::text::glob;

/// Every pointer present with one of its values (`*` in a value matches any run of characters;
/// `"*"` alone, or no values, accepts anything that is not null).
pub(super) fn conditions_hold(record: &Value, conditions: &BTreeMap<String, Vec<String>>) -> bool {
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

/// Reads one record with its mapping. `Err` is the diagnostic of a record that had to be
/// skipped; a record read with a warning (no id) pushes it on `warnings`.
pub(super) fn read_event(
    ctx: &Ctx<'_>,
    mapping: &VendorMapping,
    value: &Value,
    line: u64,
    fallback_id: String,
    warnings: &mut Vec<Diagnostic>,
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
    let Some(kind) = first_text_at(record, &mapping.kind) else {
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

    let id = match first_text_at(record, &mapping.id) {
        Some(id) => id,
        None => {
            if !mapping.id.is_empty() {
                warnings.push(Diagnostic::warning(
                    ctx.input,
                    Some(line),
                    Code::InvalidRecord,
                    format!(
                        "{} event {kind:?} has no id at {} (or an empty one); it is read as {fallback_id}, and a copy of it cannot be told from a retry",
                        mapping.name,
                        mapping.id.join(" or ")
                    ),
                ));
            }
            fallback_id
        }
    };
    Ok(VendorEvent {
        vendor: mapping.name.clone(),
        id,
        kind,
        role: rule.map(|r| r.role),
        time,
        precision,
        keys: keys.0,
        subject: first_text_at(record, &mapping.subject),
        origin: Origin {
            input: ctx.input.clone(),
            line,
        },
    })
}

/// The first pointer's value that is a non-empty string or a number, as text.
fn first_text_at(record: &Value, pointers: &[String]) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}

//! Vendor events joined to tool calls by the keys their spans carry: idempotency keys, request
//! ids, message/job/object ids, tool call ids, traceparents, and (weakly) the conversation id.

use std::collections::HashMap;

use super::{Conversation, EventJoin, ToolCall, Turn};
use crate::model::{KeyKind, Span, Value, VendorEvent};
use crate::rules::Rules;
use crate::rules::prevention::compensating_event;

/// The order in which keys are preferred when several join the same event: the most specific
/// first.
const KEY_PREFERENCE: [KeyKind; 9] = [
    KeyKind::IdempotencyKey,
    KeyKind::RequestId,
    KeyKind::MessageId,
    KeyKind::JobId,
    KeyKind::ObjectId,
    KeyKind::ToolCallId,
    KeyKind::SpanId,
    KeyKind::TraceId,
    KeyKind::ConversationId,
];

pub fn key_preference(kind: KeyKind) -> usize {
    KEY_PREFERENCE
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(KEY_PREFERENCE.len())
}

/// The keys a tool call's spans carry, with the span each was found on.
fn tool_keys(spans: &[Span], tool: &ToolCall, rules: &Rules) -> Vec<(KeyKind, String, usize)> {
    let mut keys = Vec::new();
    if let Some(id) = &tool.call_id {
        keys.push((KeyKind::ToolCallId, id.clone(), tool.span));
    }
    let attribute_lists = [
        (KeyKind::IdempotencyKey, &rules.join.idempotency_key),
        (KeyKind::RequestId, &rules.join.request_id),
        (KeyKind::MessageId, &rules.join.message_id),
        (KeyKind::JobId, &rules.join.job_id),
        (KeyKind::ObjectId, &rules.join.object_id),
    ];
    for i in std::iter::once(tool.span).chain(tool.downstream.iter().map(|r| r.span)) {
        let span = &spans[i];
        for (kind, attributes) in &attribute_lists {
            for key in attributes.iter() {
                match span.attributes.get(key) {
                    Some(Value::Array(items)) => {
                        for item in items {
                            if let Some(text) = item.as_text() {
                                keys.push((*kind, normalise_key(*kind, &text), i));
                            }
                        }
                    }
                    Some(value) => {
                        if let Some(text) = value.as_text() {
                            keys.push((*kind, normalise_key(*kind, &text), i));
                        }
                    }
                    None => {}
                }
            }
        }
        keys.push((KeyKind::SpanId, span.span_id.to_string(), i));
        keys.push((KeyKind::TraceId, span.trace_id.to_string(), i));
    }
    keys.retain(|(_, v, _)| !v.is_empty());
    keys
}

/// Keys are compared as the vendor readers normalise them: hex ids in lower case, e-mail
/// message ids without their angle brackets.
pub fn normalise_key(kind: KeyKind, value: &str) -> String {
    let value = value.trim();
    match kind {
        KeyKind::TraceId | KeyKind::SpanId => value.to_ascii_lowercase(),
        KeyKind::MessageId => value
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_owned(),
        _ => value.to_owned(),
    }
}

/// Joins vendor events to tool calls by the keys on the tool calls' spans; returns the events
/// that joined nothing.
pub(super) fn join_events(
    spans: &[Span],
    events: &[VendorEvent],
    conversations: &[Conversation],
    turns: &mut [Turn],
    rules: &Rules,
) -> Vec<usize> {
    if events.is_empty() {
        return Vec::new();
    }
    let mut index: HashMap<(KeyKind, &str), Vec<usize>> = HashMap::new();
    for (e, event) in events.iter().enumerate() {
        for (kind, value) in &event.keys {
            index.entry((*kind, value.as_str())).or_default().push(e);
        }
    }
    let mut by_subject: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
    for (e, event) in events.iter().enumerate() {
        if let Some(subject) = &event.subject {
            by_subject
                .entry((event.vendor.as_str(), subject.as_str()))
                .or_default()
                .push(e);
        }
    }
    // Events by the objects they name (Stripe's refund names the payment intent it reverses).
    let mut by_object: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
    for (e, event) in events.iter().enumerate() {
        for (kind, value) in &event.keys {
            if *kind == KeyKind::ObjectId && event.subject.as_deref() != Some(value.as_str()) {
                by_object
                    .entry((event.vendor.as_str(), value.as_str()))
                    .or_default()
                    .push(e);
            }
        }
    }
    let mut joined = vec![false; events.len()];
    for turn in turns.iter_mut() {
        for tool in &mut turn.tool_calls {
            let mut best: HashMap<usize, EventJoin> = HashMap::new();
            for (kind, value, carrier) in tool_keys(spans, tool, rules) {
                for &e in index.get(&(kind, value.as_str())).into_iter().flatten() {
                    // A traceparent names the span that started the vendor's work; the trace
                    // alone would join every call of the turn.
                    if kind == KeyKind::TraceId
                        && events[e].keys.iter().any(|(k, _)| *k == KeyKind::SpanId)
                    {
                        continue;
                    }
                    let candidate = EventJoin {
                        event: e,
                        key: kind,
                        value: value.clone(),
                        carrier,
                        weak: false,
                        follow_up: false,
                    };
                    match best.get(&e) {
                        Some(current) if key_preference(current.key) <= key_preference(kind) => {}
                        _ => {
                            best.insert(e, candidate);
                        }
                    }
                }
            }
            // Events about the same work (the same vendor and subject) as a joined one belong
            // to the call too, though they may carry no key of their own: Stripe leaves
            // `request` empty on events that asynchronous processing emits.
            let same_work = |best: &mut HashMap<usize, EventJoin>| {
                let found: Vec<EventJoin> = best.values().cloned().collect();
                for join in found {
                    let event = &events[join.event];
                    let Some(subject) = &event.subject else {
                        continue;
                    };
                    for &e in by_subject
                        .get(&(event.vendor.as_str(), subject.as_str()))
                        .into_iter()
                        .flatten()
                    {
                        best.entry(e).or_insert_with(|| EventJoin {
                            event: e,
                            ..join.clone()
                        });
                    }
                }
            };
            same_work(&mut best);
            // A reversing event that names other work of the call among its objects (a refund
            // made with the call's metadata, naming the charge) follows up on that work too,
            // though it joined by a key of its own.
            let subjects: Vec<(&str, &str)> = best
                .keys()
                .filter_map(|e| {
                    let event = &events[*e];
                    event.subject.as_deref().map(|s| (event.vendor.as_str(), s))
                })
                .collect();
            for join in best.values_mut() {
                let event = &events[join.event];
                if compensating_event(&event.kind, rules)
                    && event.keys.iter().any(|(k, v)| {
                        *k == KeyKind::ObjectId
                            && event.subject.as_deref() != Some(v.as_str())
                            && subjects.contains(&(event.vendor.as_str(), v.as_str()))
                    })
                {
                    join.follow_up = true;
                }
            }
            // Events that name that work among their objects follow up on it (a refund of a
            // charge): they belong to the call as follow-ups, never as writes of their own.
            let direct: Vec<EventJoin> = best.values().filter(|j| !j.follow_up).cloned().collect();
            for join in direct {
                let event = &events[join.event];
                let Some(subject) = &event.subject else {
                    continue;
                };
                for &e in by_object
                    .get(&(event.vendor.as_str(), subject.as_str()))
                    .into_iter()
                    .flatten()
                {
                    best.entry(e).or_insert_with(|| EventJoin {
                        event: e,
                        key: KeyKind::ObjectId,
                        value: subject.clone(),
                        carrier: join.carrier,
                        weak: false,
                        follow_up: true,
                    });
                }
            }
            same_work(&mut best);
            let mut found: Vec<EventJoin> = best.into_values().collect();
            found.sort_by_key(|j| (events[j.event].time, j.event));
            for j in &found {
                joined[j.event] = true;
            }
            tool.events = found;
        }
    }

    // Events that name only the conversation go to the tool call of that conversation that
    // was running when they happened: the latest one started before them. A new turn's call
    // thus keeps its own writes, and they are never findings of the aborted turn.
    for (e, event) in events.iter().enumerate() {
        if joined[e] {
            continue;
        }
        let Some(conversation) = event
            .keys
            .iter()
            .filter(|(k, _)| *k == KeyKind::ConversationId)
            .find_map(|(_, v)| super::find_conversation(conversations, v))
        else {
            continue;
        };
        let latest = conversation
            .turns
            .iter()
            .flat_map(|t| {
                turns[*t]
                    .tool_calls
                    .iter()
                    .enumerate()
                    .map(move |(c, tool)| (*t, c, tool.span))
            })
            .filter(|(_, _, span)| spans[*span].start <= event.time.saturating_add(event.precision))
            .max_by_key(|(_, _, span)| (spans[*span].start, *span));
        if let Some((t, c, span)) = latest {
            turns[t].tool_calls[c].events.push(EventJoin {
                event: e,
                key: KeyKind::ConversationId,
                value: conversation.id.clone(),
                carrier: span,
                weak: true,
                follow_up: false,
            });
            joined[e] = true;
        }
    }
    (0..events.len()).filter(|e| !joined[*e]).collect()
}

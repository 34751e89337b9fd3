//! What records the user's Stop: span events named as aborts, exceptions whose type (or message)
//! names a cancellation, cancellation attributes (`error.type`, an RPC status of CANCELLED, an
//! MCP cancellation notification) and error statuses that say so. The same predicates serve
//! the spans of the model and the text of a large export's first pass.

use std::borrow::Cow;

use super::Rules;
use super::evidence::{http_status, is_http};
use crate::model::semconv::{
    ERROR_TYPE, EXCEPTION_EVENT, EXCEPTION_MESSAGE, EXCEPTION_TYPE, MCP_METHOD_NAME,
    RPC_STATUS_CODE,
};
use crate::model::{Attributes, Event, Span, SpanKind, StatusCode};

/// The span attributes that may record an abort (see `is_abort_attribute`).
pub const ABORT_ATTRIBUTES: [&str; 4] = [
    ERROR_TYPE,
    RPC_STATUS_CODE[0],
    RPC_STATUS_CODE[1],
    MCP_METHOD_NAME,
];

/// The attributes of an exception event that say what it was.
pub const EXCEPTION_ATTRIBUTES: [&str; 3] = [EXCEPTION_TYPE, ERROR_TYPE, EXCEPTION_MESSAGE];

/// An exception event's type (`exception.type`, else `error.type`) and message.
pub fn exception_of(attributes: &Attributes) -> (Option<Cow<'_, str>>, Option<Cow<'_, str>>) {
    let kind = attributes
        .text(EXCEPTION_TYPE)
        .or_else(|| attributes.text(ERROR_TYPE));
    (kind, attributes.text(EXCEPTION_MESSAGE))
}

/// The abort a span event records, in words (`span event "abort"`, `exception event
/// (AbortError)`), if it records one.
pub fn event_signal(event: &Event, rules: &Rules) -> Option<String> {
    let (kind, message) = exception_of(&event.attributes);
    if !is_abort_event(&event.name, kind.as_deref(), message.as_deref(), rules) {
        return None;
    }
    Some(if event.name == EXCEPTION_EVENT {
        let what = kind.or(message).unwrap_or_default();
        format!("exception event ({what})")
    } else {
        format!("span event {:?}", event.name)
    })
}

/// Every abort signal a span records, as (time, the signal in words, naming the span).
pub fn span_signals(span: &Span, rules: &Rules) -> Vec<(u64, String)> {
    let mut signals = Vec::new();
    for event in &span.events {
        if let Some(what) = event_signal(event, rules) {
            signals.push((event.time, format!("{what} on {:?}", span.name)));
        }
    }
    let end_or_start = span.end.unwrap_or(span.start);
    if let Some(kind) = span
        .attributes
        .text(ERROR_TYPE)
        .filter(|k| is_cancellation(k, rules))
    {
        signals.push((
            end_or_start,
            format!("error.type {kind} on {:?}", span.name),
        ));
    }
    let rpc_status = RPC_STATUS_CODE
        .iter()
        .find_map(|key| span.attributes.text(key));
    if let Some(code) = rpc_status
        && is_abort_attribute(None, Some(&code), None, rules)
    {
        signals.push((
            end_or_start,
            format!("RPC status CANCELLED on {:?}", span.name),
        ));
    }
    if let Some(method) = span.attributes.text(MCP_METHOD_NAME)
        && is_abort_attribute(None, None, Some(&method), rules)
    {
        signals.push((span.start, format!("MCP {method} on {:?}", span.name)));
    }
    // Some SDKs only set an error status whose message names the cancellation.
    if span.status.code == StatusCode::Error && is_abort_status(&span.status.message, rules) {
        signals.push((
            end_or_start,
            format!("error status {:?} on {:?}", span.status.message, span.name),
        ));
    }
    signals
}

/// Whether a span event records the user's Stop: an abort event by name, or an exception
/// whose type (or, for OpenTelemetry JS's numeric codes, message) names a cancellation.
pub fn is_abort_event(
    name: &str,
    exception_type: Option<&str>,
    message: Option<&str>,
    rules: &Rules,
) -> bool {
    if rules
        .abort
        .event_names
        .iter()
        .any(|n| n.eq_ignore_ascii_case(name))
    {
        return true;
    }
    if name != "exception" {
        return false;
    }
    let by_type = exception_type.is_some_and(|k| is_cancellation(k, rules));
    // The message counts only when the type says nothing (absent, or a numeric JS code):
    // a `TimeoutError` saying "the operation was aborted due to timeout" is no user's Stop.
    let type_is_silent = exception_type.is_none_or(|k| k.bytes().all(|b| b.is_ascii_digit()));
    let by_message = type_is_silent && message.is_some_and(|m| names_abort(m, rules));
    by_type || by_message
}

/// Whether a span's error status message names a cancellation: it starts with a cancellation
/// type (`AbortError: …`, `CancelledError`) or holds one of the abort messages.
pub fn is_abort_status(message: &str, rules: &Rules) -> bool {
    if message.is_empty() {
        return false;
    }
    let head = message.split([':', ' ', '(']).next().unwrap_or(message);
    is_cancellation(head, rules) || names_abort(message, rules)
}

/// Whether a message says the operation was aborted (by someone, not by a timeout).
pub fn names_abort(message: &str, rules: &Rules) -> bool {
    let lower = message.to_ascii_lowercase();
    !lower.contains("timeout")
        && !lower.contains("timed out")
        && rules
            .abort
            .exception_messages
            .iter()
            .any(|want| lower.contains(&want.to_ascii_lowercase()))
}

/// Whether span attributes record a cancellation: `error.type`, an RPC status of CANCELLED, or
/// an MCP cancellation notification.
pub fn is_abort_attribute(
    error_type: Option<&str>,
    rpc_status: Option<&str>,
    mcp_method: Option<&str>,
    rules: &Rules,
) -> bool {
    error_type.is_some_and(|k| is_cancellation(k, rules))
        || rpc_status.is_some_and(|code| {
            rules
                .abort
                .rpc_cancelled_codes
                .iter()
                .any(|c| c.eq_ignore_ascii_case(code))
        })
        || mcp_method.is_some_and(|m| rules.abort.mcp_methods.iter().any(|want| want == m))
}

/// Whether an exception or error type names a cancellation: the whole name, or its last
/// segment (`asyncio.exceptions.CancelledError` → `CancelledError`).
pub fn is_cancellation(kind: &str, rules: &Rules) -> bool {
    let last = kind.rsplit(['.', ':']).next().unwrap_or(kind);
    rules
        .abort
        .exception_types
        .iter()
        .any(|t| t == kind || t == last)
}

/// The abort a span of the agent's own server infers, where no span records the Stop: a
/// disconnect the server saw before its response completed (`server_end`: the end of the
/// server span around it), or a status meaning the client went away.
pub fn inferred_signal(
    span: &Span,
    server_end: Option<u64>,
    rules: &Rules,
) -> Option<(u64, String)> {
    let inferred = &rules.abort.inferred;
    let end = span.end?;
    let disconnect = inferred.disconnect_attributes.iter().any(|key| {
        span.attributes
            .text(key)
            .is_some_and(|v| inferred.disconnect_values.iter().any(|want| *want == *v))
    });
    // After a completed response ASGI servers report a disconnect too; only one before the
    // server span's end is the user leaving.
    if disconnect && server_end.is_some_and(|server_end| end < server_end) {
        return Some((
            end,
            format!(
                "inferred: the client disconnected ({:?}) before the response completed",
                span.name
            ),
        ));
    }
    if span.kind == SpanKind::Server
        && let Some(status) = http_status(span)
        && inferred.server_status_codes.contains(&status)
    {
        return Some((
            end,
            format!(
                "inferred: the server span {:?} answered {status}",
                span.name
            ),
        ));
    }
    None
}

/// What a span alone says toward an inferred abort (the first pass over a large export asks,
/// before any turn is put together).
#[derive(Clone, Copy, Debug)]
pub struct InferenceHints {
    pub kind: SpanKind,
    /// A disconnect attribute holds one of the rules' disconnect values.
    pub disconnect: bool,
    /// It has an HTTP method or URL.
    pub is_http: bool,
    pub http_status: Option<i64>,
}

impl InferenceHints {
    pub fn of(span: &Span, rules: &Rules) -> InferenceHints {
        let inferred = &rules.abort.inferred;
        InferenceHints {
            kind: span.kind,
            disconnect: inferred.disconnect_attributes.iter().any(|key| {
                span.attributes
                    .text(key)
                    .is_some_and(|v| inferred.disconnect_values.iter().any(|want| *want == *v))
            }),
            is_http: is_http(span),
            http_status: http_status(span),
        }
    }

    /// Whether `inferred_signal` or `cancelled_request` may infer an abort from the span once
    /// its turn is known: wider than they are, since what only the turn can tell (the server
    /// span's end, the turn's last start), an error on the request and, for a request with no
    /// status, its kind are taken to allow it (a survey can tell from a span's text that it
    /// has no status, not its kind).
    pub fn may_infer(&self, rules: &Rules) -> bool {
        let inferred = &rules.abort.inferred;
        self.disconnect
            || (self.kind == SpanKind::Server
                && self
                    .http_status
                    .is_some_and(|s| inferred.server_status_codes.contains(&s)))
            || (inferred.cancelled_requests && self.is_http && self.http_status.is_none())
    }
}

/// The abort an outbound request of the agent infers when it was cut off: an HTTP client span
/// that ended with no response status, no error and no exception (`last_start`: the latest
/// start of the turn's spans; a request after which the turn went on was not cut off by the
/// Stop).
pub fn cancelled_request(span: &Span, last_start: u64, rules: &Rules) -> Option<(u64, String)> {
    if !rules.abort.inferred.cancelled_requests
        || span.kind != SpanKind::Client
        || !is_http(span)
        || http_status(span).is_some()
        || span.status.code == StatusCode::Error
        || span.attributes.get(ERROR_TYPE).is_some()
        || span.events.iter().any(|e| e.name == EXCEPTION_EVENT)
    {
        return None;
    }
    let end = span.end?;
    (end >= last_start).then(|| {
        (
            end,
            format!(
                "inferred: the request {:?} was cut off with no response status",
                span.name
            ),
        )
    })
}

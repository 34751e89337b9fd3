//! What the spans downstream of a tool call show about a write: HTTP methods and statuses,
//! database statements and their operation, the markers of a client that went away, and
//! whether two timestamps come from one clock.

use std::borrow::Cow;

use super::Rules;
use crate::model::semconv::{
    DB_COLLECTION, DB_OPERATION, DB_QUERY_SUMMARY, DB_QUERY_TEXT, DB_SYSTEM, ERROR_TYPE,
    EXCEPTION_EVENT, EXCEPTION_MESSAGE, EXCEPTION_TYPE, HOST_NAME, HTTP_REQUEST_METHOD,
    HTTP_RESPONSE_STATUS_CODE, SERVICE_INSTANCE_ID, URL_FULL,
};
use crate::model::{Attributes, Span, Value};

/// The value of the first of `keys` present (a stable key, then its older aliases).
fn first<'a>(attributes: &'a Attributes, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().find_map(|k| attributes.get(k))
}

fn first_text<'a>(attributes: &'a Attributes, keys: &[&str]) -> Option<Cow<'a, str>> {
    keys.iter().find_map(|k| attributes.text(k))
}

pub fn http_status(span: &Span) -> Option<i64> {
    first(&span.attributes, &HTTP_RESPONSE_STATUS_CODE).and_then(Value::as_int)
}

pub fn http_method(span: &Span) -> Option<String> {
    first_text(&span.attributes, &HTTP_REQUEST_METHOD).map(|m| m.to_ascii_uppercase())
}

/// Whether a span is an HTTP request or response: it has a method or a URL.
pub fn is_http(span: &Span) -> bool {
    http_method(span).is_some() || first(&span.attributes, &URL_FULL).is_some()
}

pub fn is_db_span(span: &Span) -> bool {
    DB_SYSTEM
        .iter()
        .chain(&DB_OPERATION)
        .chain(&DB_QUERY_TEXT)
        .any(|k| span.attributes.get(k).is_some())
}

/// The database operation of a span, upper-cased: the semconv operation attribute, else the
/// first word of the query summary or text, else of the span name.
pub fn db_operation(span: &Span) -> String {
    let first_word = |s: &str| s.split_whitespace().next().unwrap_or("").to_owned();
    let op = first_text(&span.attributes, &DB_OPERATION)
        .map(Cow::into_owned)
        .or_else(|| {
            span.attributes
                .text(DB_QUERY_SUMMARY)
                .map(|s| first_word(&s))
        })
        .or_else(|| first_text(&span.attributes, &DB_QUERY_TEXT).map(|s| first_word(&s)))
        .unwrap_or_else(|| first_word(&span.name));
    op.to_ascii_uppercase()
}

/// A statement as evidence names it: its operation, and its table when the span says.
pub fn describe_statement(span: &Span) -> String {
    let op = db_operation(span);
    match first_text(&span.attributes, &DB_COLLECTION) {
        Some(table) => format!("{op} {table}"),
        None => op,
    }
}

/// Whether a statement's operation (or, for driver spans such as `sql.tx.commit`, its span
/// name) is one of `list`.
pub fn matches_any(op: &str, name: &str, list: &[String]) -> bool {
    list.iter()
        .any(|want| want.eq_ignore_ascii_case(op) || want.eq_ignore_ascii_case(name))
}

/// What on a server span says its client went away, in the span's words: a client-gone
/// status code, or an error type, status message or exception naming a disconnect.
pub fn client_gone_marker(span: &Span, rules: &Rules) -> Option<String> {
    if let Some(status) = http_status(span).filter(|s| rules.client_gone.status_codes.contains(s)) {
        return Some(format!("HTTP status {status}"));
    }
    let mut texts: Vec<String> = Vec::new();
    if let Some(t) = span.attributes.text(ERROR_TYPE) {
        texts.push(t.into_owned());
    }
    texts.push(span.status.message.to_string());
    for event in span.events.iter().filter(|e| e.name == EXCEPTION_EVENT) {
        for key in [EXCEPTION_TYPE, EXCEPTION_MESSAGE] {
            if let Some(t) = event.attributes.text(key) {
                texts.push(t.into_owned());
            }
        }
    }
    texts.into_iter().find_map(|text| {
        let lower = text.to_ascii_lowercase();
        rules
            .client_gone
            .error_markers
            .iter()
            .find(|m| lower.contains(&m.to_ascii_lowercase()))
            .map(|_| text)
    })
}

/// Whether two spans' timestamps come from the same clock: the same host when the resources
/// say so, else the same service instance.
pub fn same_clock(a: &Span, b: &Span) -> bool {
    let attr = |s: &Span, k: &str| s.resource.attributes.text(k).map(|v| v.into_owned());
    match (attr(a, HOST_NAME), attr(b, HOST_NAME)) {
        (Some(x), Some(y)) => x == y,
        _ => {
            a.service() == b.service()
                && attr(a, SERVICE_INSTANCE_ID) == attr(b, SERVICE_INSTANCE_ID)
        }
    }
}

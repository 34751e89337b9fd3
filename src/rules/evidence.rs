//! What the spans downstream of a tool call show about a write: HTTP methods and statuses,
//! database statements and their operation, the markers of a client that went away, and
//! whether two timestamps come from one clock.

use std::borrow::Cow;

use super::{CommitRules, Rules};
use crate::model::semconv::{
    DB_COLLECTION, DB_OPERATION, DB_QUERY_SUMMARY, DB_QUERY_TEXT, DB_SYSTEM, ERROR_TYPE,
    EXCEPTION_EVENT, EXCEPTION_MESSAGE, EXCEPTION_TYPE, HOST_NAME, HTTP_REQUEST_METHOD,
    HTTP_RESPONSE_STATUS_CODE, MESSAGING_OPERATION_TYPE, SERVICE_INSTANCE_ID,
    TELEMETRY_SDK_LANGUAGE, URL_FULL,
};
use crate::model::{Attributes, Span, SpanKind, StatusCode, Value};

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

/// Whether a span runs queued work: a CONSUMER, or a span whose messaging operation is one of
/// the rules' consumer operations (`process`, `receive`).
pub fn is_consumer(span: &Span, rules: &Rules) -> bool {
    span.kind == SpanKind::Consumer
        || first_text(&span.attributes, &MESSAGING_OPERATION_TYPE).is_some_and(|op| {
            rules
                .queued
                .consumer_operations
                .iter()
                .any(|want| want.eq_ignore_ascii_case(&op))
        })
}

pub fn is_db_span(span: &Span) -> bool {
    DB_SYSTEM
        .iter()
        .chain(&DB_OPERATION)
        .chain(&DB_QUERY_TEXT)
        .any(|k| span.attributes.get(k).is_some())
}

/// What a database statement does to a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Statement {
    Begin,
    Commit,
    Rollback,
    /// `SAVEPOINT name`, `ROLLBACK TO [SAVEPOINT] name`, `RELEASE [SAVEPOINT] name`.
    Savepoint(String),
    RollbackTo(String),
    Release(String),
    Write,
    /// A read, or nothing the rules name.
    Other,
}

/// The texts that may name a statement's operation, in the order they are believed:
/// `db.operation.name`, `db.operation`, `db.query.summary`, the query text, the span name.
fn operation_texts(span: &Span) -> impl Iterator<Item = Cow<'_, str>> {
    DB_OPERATION
        .iter()
        .chain(std::iter::once(&DB_QUERY_SUMMARY))
        .chain(&DB_QUERY_TEXT)
        .filter_map(|k| span.attributes.text(k))
        .chain(std::iter::once(Cow::Borrowed(&*span.name)))
}

impl Statement {
    /// Where a statement stands in a transaction, for ordering statements whose starts tie
    /// (OpenTelemetry JS cuts starts to the millisecond, and its ends are that start plus the
    /// duration, so neither orders statements within one millisecond).
    pub fn rank(&self) -> u8 {
        match self {
            Statement::Begin => 0,
            Statement::Savepoint(_) => 1,
            Statement::Write | Statement::Other => 2,
            Statement::RollbackTo(_) | Statement::Release(_) => 3,
            Statement::Commit | Statement::Rollback => 4,
        }
    }
}

/// How coarse a span's timestamps are: 1 ms for SDKs that take starts from a millisecond
/// clock (and ends as the start plus a duration), 1 ns otherwise.
pub fn time_precision(span: &Span, rules: &Rules) -> u64 {
    let language = span.resource.attributes.text(TELEMETRY_SDK_LANGUAGE);
    match language {
        Some(language)
            if rules
                .time
                .millisecond_start_sdks
                .iter()
                .any(|sdk| sdk.eq_ignore_ascii_case(&language)) =>
        {
            1_000_000
        }
        _ => 1,
    }
}

/// What a statement does, from the first of its texts that names a verb the rules know
/// (SQLAlchemy names spans and operations `INSERT payments.db`; driver spans are named
/// `sql.tx.commit`).
pub fn statement(span: &Span, rules: &CommitRules) -> Statement {
    operation_texts(span)
        .find_map(|text| statement_of(&text, rules))
        .unwrap_or(Statement::Other)
}

/// What one text says the statement does; `None` when it names no verb the rules know.
fn statement_of(text: &str, rules: &CommitRules) -> Option<Statement> {
    let text = text.trim();
    let mut words = text.split_whitespace();
    let verb = words.next().unwrap_or("");
    let last = || {
        text.rsplit(char::is_whitespace)
            .next()
            .unwrap_or("")
            .to_owned()
    };
    let named = |list: &[String]| {
        list.iter()
            .any(|want| want.eq_ignore_ascii_case(text) || want.eq_ignore_ascii_case(verb))
    };
    Some(if named(&rules.rollback_operations) {
        match words.next() {
            Some(to) if to.eq_ignore_ascii_case("TO") => Statement::RollbackTo(last()),
            _ => Statement::Rollback,
        }
    } else if named(&rules.begin_operations) {
        Statement::Begin
    } else if named(&rules.commit_operations) {
        Statement::Commit
    } else if named(&rules.savepoint_operations) {
        Statement::Savepoint(last())
    } else if named(&rules.release_operations) {
        Statement::Release(last())
    } else if named(&rules.write_operations) {
        Statement::Write
    } else if verb.eq_ignore_ascii_case("SELECT") {
        Statement::Other
    } else {
        return None;
    })
}

/// The database operation of a span, upper-cased, for evidence: the first word of the first of
/// its texts that names a verb, else of the first of them.
pub fn db_operation(span: &Span, rules: &CommitRules) -> String {
    let texts: Vec<Cow<'_, str>> = operation_texts(span).collect();
    texts
        .iter()
        .find(|text| statement_of(text, rules).is_some())
        .or(texts.first())
        .and_then(|text| text.split_whitespace().next())
        .unwrap_or("")
        .to_ascii_uppercase()
}

/// A statement as evidence names it: its operation, and its table when the span says.
pub fn describe_statement(span: &Span, rules: &CommitRules) -> String {
    let op = db_operation(span, rules);
    match first_text(&span.attributes, &DB_COLLECTION) {
        Some(table) => format!("{op} {table}"),
        None => op,
    }
}

/// Whether a server or consumer span shows its work succeeded: no HTTP status of 400 or more
/// (a 499 included), and no error status unless it answered (a server that answered 200 and
/// then could not write the response had done its work).
pub fn handler_succeeded(span: &Span) -> bool {
    match http_status(span) {
        Some(status) => status < 400,
        None => span.status.code != StatusCode::Error,
    }
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

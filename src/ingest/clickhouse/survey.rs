//! The survey in SQL: which traces of a store matter, decided on the server from the same
//! rules and predicates as the file reader's survey (`rules::abort`, `rules::agent`,
//! `rules::keys`), then the spans of exactly those traces. Like the file survey it may keep
//! more than the rules would (every test here is as wide as, or wider than, the predicate it
//! stands for); the full rules run on what is fetched.
//!
//! One query, whose sub-queries never leave the server (a trace id list would not fit in a
//! URL, and ClickHouse computes each distinct `IN` sub-query once):
//!
//! 1. **seeds**: traces with a span that started in `[since, until]` and may record the
//!    user's Stop (`abort::span_signals`), may infer it (`abort::InferenceHints::may_infer`),
//!    or that an abort log names (its trace, or its conversation);
//! 2. **conversations** those seeds name (any conversation key, span or resource attribute);
//! 3. **level 0**: the seeds and every trace of those conversations;
//! 4. **levels 1…N**: each adds the traces with a span linking into the level before
//!    (queue consumers, workflow workers: `correlate::traces_that_matter`);
//! 5. the spans of the last level, with only the attributes the audit reads
//!    (`Rules::attributes_read`).
//!
//! Everything after the seeds is read in `[since − grace, until + grace]`, so a worker that
//! committed after the window's end (a late write) is still found. Every value, from the rules
//! or from an abort log, is a query parameter: a conversation id or an attribute key cannot
//! change the query.

use super::dialect::{Attributes, Dialect};
use super::http::Params;
use crate::model::semconv::{
    ERROR_TYPE, EXCEPTION_EVENT, EXCEPTION_MESSAGE, EXCEPTION_TYPE, HTTP_REQUEST_METHOD,
    HTTP_RESPONSE_STATUS_CODE, MCP_METHOD_NAME, RPC_STATUS_CODE, URL_FULL,
};
use crate::rules::Rules;
use crate::rules::abort::EXCEPTION_ATTRIBUTES;

/// How many times links are followed from the traces of the aborted turns: a tool call's
/// request, the queue consumer linking to its producer, a worker it started, and so on.
pub const LINK_DEPTH: usize = 8;

/// The time window, in Unix nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Turns whose spans started from here…
    pub since: u64,
    /// …to here are surveyed;
    pub until: u64,
    /// and what they reach is read this much before and after.
    pub grace: u64,
}

impl Window {
    fn reach(&self) -> (u64, u64) {
        (
            self.since.saturating_sub(self.grace),
            self.until.saturating_add(self.grace),
        )
    }
}

/// What abort logs name: their conversations and traces matter however their spans look.
#[derive(Clone, Debug, Default)]
pub struct Logged {
    pub conversations: Vec<String>,
    pub traces: Vec<String>,
}

/// Builds the SQL of one store's queries.
pub(super) struct Sql<'a> {
    pub(super) params: Params,
    rules: &'a Rules,
    dialect: &'a Dialect,
    table: String,
}

const SPAN: &str = "SpanAttributes";
const RESOURCE: &str = "ResourceAttributes";
/// In the seeds' sub-query: the span attributes the signals read, and no others (a lookup in
/// a `Map` column is a linear search of each row's map, so each row's map is narrowed to the
/// wanted keys once, in one pass), the resource's conversation keys, and the events.
const NARROW_SPAN: &str = "abortaudit_span";
const NARROW_RESOURCE: &str = "abortaudit_resource";
const EVENT_NAMES: &str = "abortaudit_event_names";
const EVENT_ATTRIBUTES: &str = "abortaudit_event_attributes";

impl<'a> Sql<'a> {
    pub(super) fn new(rules: &'a Rules, dialect: &'a Dialect, database: &str, table: &str) -> Self {
        let mut params = Params::default();
        let table = format!(
            "{}.{}",
            params.identifier(database),
            params.identifier(table)
        );
        Sql {
            params,
            rules,
            dialect,
            table,
        }
    }

    fn between(&mut self, from: u64, to: u64) -> String {
        let from = self.params.int(i64::try_from(from).unwrap_or(i64::MAX));
        let to = self.params.int(i64::try_from(to).unwrap_or(i64::MAX));
        format!(
            "Timestamp >= fromUnixTimestamp64Nano({from}) AND Timestamp <= fromUnixTimestamp64Nano({to})"
        )
    }

    fn attr(&mut self, column: &str, key: &str) -> String {
        let key = self.params.string(key);
        self.dialect.attr(column, &key)
    }

    fn has(&mut self, column: &str, key: &str) -> String {
        let key = self.params.string(key);
        self.dialect.has(column, &key)
    }

    /// The value of the first of `keys` present, else ''.
    fn first_present(&mut self, column: &str, keys: &[&str]) -> String {
        let mut parts = Vec::new();
        for key in keys {
            parts.push(self.has(column, key));
            parts.push(self.attr(column, key));
        }
        format!("multiIf({}, '')", parts.join(", "))
    }

    /// `rules::abort::is_cancellation`: the whole type, or its last segment after `.` or `:`.
    fn cancellation(&mut self, kind: &str) -> String {
        let types = self.params.strings(&self.rules.abort.exception_types);
        format!("(has({types}, {kind}) OR has({types}, replaceRegexpOne({kind}, '^.*[.:]', '')))")
    }

    /// `rules::abort::names_abort`, wider: the message holds one of the abort messages (a
    /// message that also names a timeout is taken too).
    fn names_abort(&mut self, message: &str) -> Option<String> {
        let messages = &self.rules.abort.exception_messages;
        if messages.is_empty() {
            return None;
        }
        let messages = self.params.strings(messages);
        Some(format!(
            "multiSearchAnyCaseInsensitive({message}, {messages})"
        ))
    }

    /// `abort::span_signals(span).is_empty() == false`, or wider.
    fn may_record_abort(&mut self) -> Vec<String> {
        let rules = self.rules;
        let abort = &rules.abort;
        let mut any = Vec::new();
        // A span event named as an abort (`is_abort_event`, compared without case).
        if !abort.event_names.is_empty() {
            let lower: Vec<String> = abort
                .event_names
                .iter()
                .map(|n| n.to_ascii_lowercase())
                .collect();
            let names = self.params.strings(&lower);
            any.push(format!(
                "arrayExists(event_name -> has({names}, lower(event_name)), {EVENT_NAMES})"
            ));
        }
        // An exception event whose type (`exception.type`, else `error.type`) or message
        // names a cancellation.
        let exception = self.params.string(EXCEPTION_EVENT);
        let exception_type = self.attr("event_attributes", EXCEPTION_TYPE);
        let error_type = self.attr("event_attributes", ERROR_TYPE);
        let message = self.attr("event_attributes", EXCEPTION_MESSAGE);
        let mut by = vec![
            self.cancellation(&exception_type),
            self.cancellation(&error_type),
        ];
        by.extend(self.names_abort(&message));
        any.push(format!(
            "arrayExists((event_name, event_attributes) -> event_name = {exception} AND ({}), {EVENT_NAMES}, {EVENT_ATTRIBUTES})",
            by.join(" OR ")
        ));
        // `error.type` naming a cancellation, an RPC status of CANCELLED, an MCP cancellation.
        let error_type = self.attr(NARROW_SPAN, ERROR_TYPE);
        any.push(self.cancellation(&error_type));
        if !abort.rpc_cancelled_codes.is_empty() {
            let lower: Vec<String> = abort
                .rpc_cancelled_codes
                .iter()
                .map(|c| c.to_ascii_lowercase())
                .collect();
            let codes = self.params.strings(&lower);
            for key in RPC_STATUS_CODE {
                let value = self.attr(NARROW_SPAN, key);
                any.push(format!("has({codes}, lower({value}))"));
            }
        }
        if !abort.mcp_methods.is_empty() {
            let methods = self.params.strings(&abort.mcp_methods);
            let value = self.attr(NARROW_SPAN, MCP_METHOD_NAME);
            any.push(format!("has({methods}, {value})"));
        }
        // An error status whose message starts with a cancellation type or names an abort.
        let errors = self.params.strings(&["Error", "STATUS_CODE_ERROR"]);
        let mut by = vec![self.cancellation("extract(StatusMessage, '^[^: (]*')")];
        by.extend(self.names_abort("StatusMessage"));
        any.push(format!(
            "(has({errors}, StatusCode) AND ({}))",
            by.join(" OR ")
        ));
        any
    }

    /// `abort::InferenceHints::may_infer`.
    fn may_infer_abort(&mut self) -> Vec<String> {
        let inferred = &self.rules.abort.inferred;
        let mut any = Vec::new();
        if !inferred.disconnect_values.is_empty() {
            let values = self.params.strings(&inferred.disconnect_values);
            for key in &inferred.disconnect_attributes {
                let value = self.attr(NARROW_SPAN, key);
                any.push(format!("has({values}, {value})"));
            }
        }
        let status = self.first_present(NARROW_SPAN, &HTTP_RESPONSE_STATUS_CODE);
        let status = format!("toInt64OrNull(trimBoth({status}))");
        if !inferred.server_status_codes.is_empty() {
            let codes = self.params.ints(&inferred.server_status_codes);
            let servers = self.params.strings(&["Server", "SPAN_KIND_SERVER"]);
            any.push(format!(
                "(has({servers}, SpanKind) AND ifNull(has({codes}, {status}), 0))"
            ));
        }
        if inferred.cancelled_requests {
            let mut http = Vec::new();
            for key in HTTP_REQUEST_METHOD.iter().chain(&URL_FULL) {
                http.push(self.has(NARROW_SPAN, key));
            }
            any.push(format!("(({}) AND isNull({status}))", http.join(" OR ")));
        }
        any
    }

    /// The values of the conversation keys on a span, among `span` and `resource`: only
    /// those keys' values, in one pass over each map (a JSON column reads those paths).
    fn conversation_values(&mut self, span: &str, resource: &str) -> String {
        let keys = self.rules.conversation.id_attributes.clone();
        let mut parts = Vec::new();
        for column in [span, resource] {
            match self.dialect.attributes {
                Attributes::Map => {
                    let keys = self.params.strings(&keys);
                    parts.push(format!(
                        "mapValues(mapFilter((attribute_key, attribute_value) -> has({keys}, attribute_key), {column}))"
                    ));
                }
                Attributes::Json => {
                    let values: Vec<String> =
                        keys.iter().map(|key| self.attr(column, key)).collect();
                    parts.push(format!("[{}]", values.join(", ")));
                }
            }
        }
        format!("arrayConcat({})", parts.join(", "))
    }

    /// A `Map` column narrowed to `keys` (a `JSON` column as it is: its paths are read apart).
    fn narrow(&mut self, column: &str, keys: &[String]) -> String {
        match self.dialect.attributes {
            Attributes::Map => {
                let keys = self.params.strings(keys);
                format!(
                    "mapFilter((attribute_key, attribute_value) -> has({keys}, attribute_key), {column})"
                )
            }
            Attributes::Json => column.to_owned(),
        }
    }

    /// The span attributes the signals read.
    fn signal_keys(&self) -> Vec<String> {
        let inferred = &self.rules.abort.inferred;
        let mut keys: Vec<String> = [ERROR_TYPE, MCP_METHOD_NAME]
            .into_iter()
            .chain(RPC_STATUS_CODE)
            .chain(HTTP_RESPONSE_STATUS_CODE)
            .chain(HTTP_REQUEST_METHOD)
            .chain(URL_FULL)
            .map(str::to_owned)
            .collect();
        keys.extend(inferred.disconnect_attributes.iter().cloned());
        keys.extend(self.rules.conversation.id_attributes.iter().cloned());
        keys
    }

    /// The query that fetches the spans of the traces that matter, each row with `w`: whether
    /// its trace was found before the last level of links (when some are not, links may go
    /// deeper than were followed).
    pub(super) fn fetch(&mut self, window: &Window, logged: &Logged) -> String {
        let in_ = self.dialect.in_();
        let table = self.table.clone();
        let seed_window = self.between(window.since, window.until);
        let (from, to) = window.reach();
        let reach = self.between(from, to);

        let mut signals = self.may_record_abort();
        signals.extend(self.may_infer_abort());
        if !logged.conversations.is_empty() {
            let conversations = self.params.strings(&logged.conversations);
            let values = self.conversation_values(NARROW_SPAN, NARROW_RESOURCE);
            signals.push(format!(
                "arrayExists(conversation -> has({conversations}, conversation), {values})"
            ));
        }
        if !logged.traces.is_empty() {
            let traces = self.params.strings(&logged.traces);
            signals.push(format!("has({traces}, TraceId)"));
        }
        let signal_keys = self.signal_keys();
        let span = self.narrow(SPAN, &signal_keys);
        let conversation_keys = self.rules.conversation.id_attributes.clone();
        let resource = self.narrow(RESOURCE, &conversation_keys);
        let seeds = format!(
            "SELECT TraceId FROM (SELECT TraceId, SpanKind, StatusCode, StatusMessage, Events.Name AS {EVENT_NAMES}, Events.Attributes AS {EVENT_ATTRIBUTES}, {span} AS {NARROW_SPAN}, {resource} AS {NARROW_RESOURCE} FROM {table} WHERE {seed_window})\n WHERE {}",
            signals.join("\n OR ")
        );
        // The seeds' trace ids and the conversations their spans name, in one set: a
        // conversation id that equals some trace id keeps that trace too, which is only wider.
        let values = self.conversation_values(SPAN, RESOURCE);
        let keys = format!(
            "SELECT abortaudit_key FROM (SELECT arrayJoin(arrayConcat([TraceId], {values})) AS abortaudit_key FROM {table} WHERE {reach} AND TraceId {in_} abortaudit_seeds) WHERE abortaudit_key != ''"
        );
        // Each level is a named sub-query referred to once by the next, so the query grows
        // with the depth, not as its power; each is computed once, as the set of an `IN`.
        let mut with = vec![
            format!("abortaudit_seeds AS ({seeds})"),
            format!("abortaudit_keys AS ({keys})"),
            format!(
                "abortaudit_level0 AS (SELECT TraceId FROM {table} WHERE {reach} AND arrayExists(candidate -> candidate != '' AND candidate {in_} abortaudit_keys, arrayConcat([TraceId], {values})))"
            ),
        ];
        for level in 1..=LINK_DEPTH {
            let before = level - 1;
            with.push(format!(
                "abortaudit_level{level} AS (SELECT TraceId FROM {table} WHERE {reach} AND arrayExists(candidate -> candidate {in_} abortaudit_level{before}, arrayConcat([TraceId], Links.TraceId)))"
            ));
        }
        let columns = self.columns();
        format!(
            "WITH {}\nSELECT {columns},\n TraceId {in_} abortaudit_level{} AS w\nFROM {table}\nWHERE {reach} AND TraceId {in_} abortaudit_level{LINK_DEPTH}\nORDER BY TraceId, Timestamp, SpanId\nFORMAT JSONEachRow",
            with.join(",\n"),
            LINK_DEPTH - 1
        )
    }

    /// The columns of a span, under short names (each row repeats them): only the span and
    /// resource attributes the audit reads, and of events' only the exception's.
    fn columns(&mut self) -> String {
        let (span, resource, events) = match self.dialect.attributes {
            Attributes::Map => {
                let read = self.rules.attributes_read();
                let mut keys: Vec<String> = read.keys.into_iter().collect();
                keys.sort();
                let keys = self.params.strings(&keys);
                let prefixes = self.params.strings(&read.prefixes);
                let exception = self.params.strings(&EXCEPTION_ATTRIBUTES);
                (
                    format!(
                        "mapFilter((attribute_key, attribute_value) -> has({keys}, attribute_key) OR arrayExists(prefix -> startsWith(attribute_key, prefix), {prefixes}), SpanAttributes)"
                    ),
                    format!(
                        "mapFilter((attribute_key, attribute_value) -> has({keys}, attribute_key), ResourceAttributes)"
                    ),
                    format!(
                        "arrayMap(event_attributes -> mapFilter((attribute_key, attribute_value) -> has({exception}, attribute_key), event_attributes), Events.Attributes)"
                    ),
                )
            }
            // Typed, nested by path: read whole.
            Attributes::Json => (
                SPAN.to_owned(),
                RESOURCE.to_owned(),
                "Events.Attributes".to_owned(),
            ),
        };
        format!(
            "TraceId AS t, SpanId AS s, ParentSpanId AS p, SpanName AS n, SpanKind AS k, ServiceName AS v,
 toString(toUnixTimestamp64Nano(Timestamp)) AS b, toString(Duration) AS d, StatusCode AS c, StatusMessage AS m,
 {span} AS a, {resource} AS r,
 arrayMap(event_time -> toString(toUnixTimestamp64Nano(event_time)), Events.Timestamp) AS et, Events.Name AS en, {events} AS ea,
 Links.TraceId AS lt, Links.SpanId AS ls"
        )
    }

    /// How many spans started in the window.
    pub(super) fn count(&mut self, window: &Window) -> String {
        let table = self.table.clone();
        let within = self.between(window.since, window.until);
        format!(
            "SELECT toString(count()) AS spans, toString(uniqExact(TraceId)) AS traces, groupUniqArray(SpanKind) AS kinds, groupUniqArray(StatusCode) AS statuses FROM {table} WHERE {within} FORMAT JSONEachRow"
        )
    }
}

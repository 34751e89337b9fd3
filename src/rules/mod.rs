//! The detection rules: what names a conversation, a turn, a tool call, an abort, a commit, a
//! rollback, a client that went away and queued work; the join keys, the time tolerances, the
//! gate and the vendor mappings. Every stage reads them from here, and the predicates over the
//! model that apply them live beside them, so that a convention is added in one place.
//!
//! The lists are the defaults docs/design.md (section 3) names; users extend or
//! narrow them in `abortaudit.toml`. Every struct denies unknown keys, so a typo is an error
//! naming the key instead of a rule that silently never matches.

pub mod abort;
pub mod agent;
pub mod allow;
pub mod evidence;
pub mod keys;
pub mod prevention;
pub mod vendors;

use anyhow::{Context, Result, anyhow};
use serde::{Deserialize, Serialize};

use crate::model::Category;
use crate::util::units::Nanos;

pub use allow::AllowRule;
pub use prevention::{
    CancelRules, CompensationRules, DeadlineFormat, DeadlineHeader, DeadlineRules, PreventionRules,
};
pub use vendors::{KeyPointers, RoleRule, TimeUnit, VendorMapping, builtin_vendor_mappings};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rules {
    pub conversation: ConversationRules,
    pub turn: TurnRules,
    pub tool_call: ToolCallRules,
    pub abort: AbortRules,
    pub commit: CommitRules,
    pub client_gone: ClientGoneRules,
    pub queued: QueuedRules,
    pub time: TimeRules,
    pub gate: GateRules,
    /// Span attributes that carry the keys vendor events are joined on.
    pub join: JoinRules,
    /// What would have stopped a late write: deadline headers, cancel requests, compensations.
    pub prevention: PreventionRules,
    /// How to read vendor event logs. The built-in mappings are always there; a mapping here
    /// with the name of a built-in one replaces it, any other is added before them.
    #[serde(rename = "vendor")]
    pub vendors: Vec<VendorMapping>,
    /// Suppressions: findings accepted for a while, with a reason (`--no-allow` ignores them).
    #[serde(rename = "allow", skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<AllowRule>,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            conversation: ConversationRules::default(),
            turn: TurnRules::default(),
            tool_call: ToolCallRules::default(),
            abort: AbortRules::default(),
            commit: CommitRules::default(),
            client_gone: ClientGoneRules::default(),
            queued: QueuedRules::default(),
            time: TimeRules::default(),
            gate: GateRules::default(),
            join: JoinRules::default(),
            prevention: PreventionRules::default(),
            vendors: builtin_vendor_mappings(),
            allow: Vec::new(),
        }
    }
}

impl Rules {
    /// The vendor mappings in the order they are tried: the user's first, then the built-in
    /// ones they did not replace.
    pub fn effective_vendors(&self) -> Vec<VendorMapping> {
        let mut out: Vec<VendorMapping> = self.vendors.clone();
        for builtin in builtin_vendor_mappings() {
            if !out.iter().any(|m| m.name == builtin.name) {
                out.push(builtin);
            }
        }
        out
    }

    /// Rules from the text of a rules file, validated; errors name the key and the line.
    pub fn from_toml(text: &str) -> Result<Rules> {
        let rules: Rules = toml::from_str(text)
            .map_err(|e| anyhow!("{}", e.to_string().trim_end().replace('\n', "\n  ")))?;
        rules.validate().context("invalid rules")?;
        Ok(rules)
    }

    fn validate(&self) -> Result<()> {
        for (n, rule) in self.allow.iter().enumerate() {
            rule.validate()
                .with_context(|| format!("[[allow]] entry {}", n + 1))?;
        }
        for mapping in &self.vendors {
            mapping
                .validate()
                .with_context(|| format!("[[vendor]] {:?}", mapping.name))?;
        }
        Ok(())
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("rules are plain data and always serialise")
    }

    pub fn skew_ns(&self) -> u64 {
        self.time.skew.get()
    }

    pub fn in_flight_margin_ns(&self) -> u64 {
        self.time.in_flight_margin.get()
    }
}

pub(crate) fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConversationRules {
    /// Span or resource attributes naming the conversation, first present wins. Taken from any
    /// span of a trace and inherited by the whole trace.
    pub id_attributes: Vec<String>,
}

impl Default for ConversationRules {
    fn default() -> Self {
        ConversationRules {
            id_attributes: strings(&[
                "gen_ai.conversation.id",
                "session.id",
                "langfuse.session.id",
                "ai.telemetry.metadata.conversationId",
                "ai.telemetry.metadata.conversation_id",
                "ai.telemetry.metadata.sessionId",
                "ai.telemetry.metadata.session_id",
                "ai.telemetry.metadata.threadId",
                "ai.telemetry.metadata.thread_id",
                "ai.telemetry.metadata.chatId",
                "ai.settings.context.conversationId",
                "ai.settings.context.conversation_id",
                "ai.settings.context.sessionId",
                "ai.settings.context.threadId",
                "traceloop.association.properties.conversation_id",
                "traceloop.association.properties.session_id",
                "traceloop.association.properties.chat_id",
                "conversation.id",
                "thread_id",
                "mcp.session.id",
            ]),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TurnRules {
    /// `gen_ai.operation.name` values of a turn's top-level agent span.
    pub agent_operations: Vec<String>,
    /// Span names (exact, or the name's first word) of a turn's top-level agent span, for SDKs
    /// that set no operation name.
    pub agent_span_names: Vec<String>,
}

impl Default for TurnRules {
    fn default() -> Self {
        TurnRules {
            agent_operations: strings(&["invoke_agent"]),
            agent_span_names: strings(&[
                "invoke_agent",
                "ai.streamText",
                "ai.generateText",
                "ai.streamObject",
                "ai.generateObject",
            ]),
        }
    }
}

/// One way to recognise a tool-call span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolMatcher {
    /// The span matches when this attribute has one of `values` (case-insensitive)…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// …or when its name is this, or starts with this followed by a space.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_name: Option<String>,
    /// Attributes holding the tool call id, first present wins.
    #[serde(default)]
    pub id_attributes: Vec<String>,
    /// Attributes holding the tool's name, first present wins (else the span name).
    #[serde(default)]
    pub name_attributes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ToolCallRules {
    #[serde(rename = "match")]
    pub matchers: Vec<ToolMatcher>,
    /// Where a tool span carries no call id (OpenInference), the id is taken from the tool
    /// calls the model span before it asked for, matched by name and order.
    pub from_model_calls: ModelToolCalls,
}

/// Where model spans list the tool calls they asked for, one attribute per field:
/// `{prefix}{i}.message.tool_calls.{j}{id_suffix}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelToolCalls {
    /// The model spans: this attribute has one of `values`.
    pub attribute: String,
    pub values: Vec<String>,
    /// What the keys of a model span's tool calls start with, and end with for the id and the
    /// tool's name.
    pub prefix: String,
    pub id_suffix: String,
    pub name_suffix: String,
}

impl Default for ModelToolCalls {
    fn default() -> Self {
        ModelToolCalls {
            attribute: "openinference.span.kind".to_owned(),
            values: strings(&["LLM"]),
            prefix: "llm.output_messages.".to_owned(),
            id_suffix: ".tool_call.id".to_owned(),
            name_suffix: ".tool_call.function.name".to_owned(),
        }
    }
}

impl Default for ToolCallRules {
    fn default() -> Self {
        let attr = |attribute: &str, values: &[&str], id: &[&str], name: &[&str]| ToolMatcher {
            attribute: Some(attribute.to_owned()),
            values: strings(values),
            span_name: None,
            id_attributes: strings(id),
            name_attributes: strings(name),
        };
        ToolCallRules {
            matchers: vec![
                attr(
                    "gen_ai.operation.name",
                    &["execute_tool"],
                    &["gen_ai.tool.call.id"],
                    &["gen_ai.tool.name"],
                ),
                ToolMatcher {
                    attribute: None,
                    values: Vec::new(),
                    span_name: Some("ai.toolCall".to_owned()),
                    id_attributes: strings(&["ai.toolCall.id"]),
                    name_attributes: strings(&["ai.toolCall.name"]),
                },
                attr(
                    "ai.operationId",
                    &["ai.toolCall"],
                    &["ai.toolCall.id"],
                    &["ai.toolCall.name"],
                ),
                attr(
                    "openinference.span.kind",
                    &["TOOL"],
                    &["tool_call.id", "tool.id"],
                    &["tool.name"],
                ),
                attr(
                    "traceloop.span.kind",
                    &["tool"],
                    &["gen_ai.tool.call.id", "traceloop.entity.id"],
                    &["traceloop.entity.name", "gen_ai.tool.name"],
                ),
                attr(
                    "mcp.method.name",
                    &["tools/call"],
                    &["mcp.request.id", "jsonrpc.request.id"],
                    &["gen_ai.tool.name", "mcp.tool.name"],
                ),
            ],
            from_model_calls: ModelToolCalls::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AbortRules {
    /// Span event names that record the user's Stop (case-insensitive).
    pub event_names: Vec<String>,
    /// `exception.type` / `error.type` values of a cancellation; the part after the last `.`
    /// or `:` is compared too, so `asyncio.exceptions.CancelledError` matches `CancelledError`.
    pub exception_types: Vec<String>,
    /// Text in an exception event's `exception.message` (case-insensitive substring) that names
    /// a cancellation. OpenTelemetry JS records an error's `code` as `exception.type` when it has
    /// one, so a DOMException AbortError arrives as type `20` and only its message tells.
    pub exception_messages: Vec<String>,
    /// `rpc.grpc.status_code` / `rpc.response.status_code` values meaning CANCELLED.
    pub rpc_cancelled_codes: Vec<String>,
    /// MCP methods of a cancellation notification.
    pub mcp_methods: Vec<String>,
    /// Where no span records the Stop, the agent app's own server may still show the user
    /// leaving; such aborts are marked inferred.
    pub inferred: InferredAbortRules,
}

/// What shows the user left when no span records the Stop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InferredAbortRules {
    /// Attributes naming a server-side event, and the values that mean the client
    /// disconnected (the ASGI instrumentation's `http receive` spans). Only a disconnect that
    /// ends before its server span ended counts: after a completed response, ASGI servers
    /// report one too.
    pub disconnect_attributes: Vec<String>,
    pub disconnect_values: Vec<String>,
    /// HTTP statuses of the agent app's server span that mean its client went away.
    pub server_status_codes: Vec<i64>,
    /// An outbound HTTP request of the agent that ended with no response status, no error and
    /// nothing of the turn starting after it: the turn was cut there.
    pub cancelled_requests: bool,
}

impl Default for InferredAbortRules {
    fn default() -> Self {
        InferredAbortRules {
            disconnect_attributes: strings(&["asgi.event.type"]),
            disconnect_values: strings(&["http.disconnect"]),
            server_status_codes: vec![499],
            cancelled_requests: true,
        }
    }
}

impl Default for AbortRules {
    fn default() -> Self {
        AbortRules {
            event_names: strings(&[
                "abort",
                "cancel",
                "cancelled",
                "canceled",
                "user.abort",
                "user.cancel",
            ]),
            exception_types: strings(&[
                "AbortError",
                "CancelledError",
                "asyncio.CancelledError",
                "OperationCanceledException",
                "TaskCanceledException",
                "context.Canceled",
                "ABORT_ERR",
            ]),
            exception_messages: strings(&[
                "operation was aborted",
                "signal is aborted",
                "user aborted",
                "aborted by the user",
                "request was aborted",
            ]),
            rpc_cancelled_codes: strings(&["1", "CANCELLED"]),
            mcp_methods: strings(&["notifications/cancelled"]),
            inferred: InferredAbortRules::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CommitRules {
    /// Span event names that mark a commit.
    pub event_names: Vec<String>,
    /// Database operations that write; outside a transaction each is its own commit.
    pub write_operations: Vec<String>,
    /// Database operations (or driver span names) that commit a transaction.
    pub commit_operations: Vec<String>,
    /// Database operations (or driver span names) that roll a transaction back.
    pub rollback_operations: Vec<String>,
    /// Database operations that open a transaction.
    pub begin_operations: Vec<String>,
    /// HTTP methods whose server span, lacking finer evidence, infers a commit at its end.
    pub write_methods: Vec<String>,
    /// Operations that set a savepoint (`SAVEPOINT s`); `ROLLBACK TO s` undoes the writes after
    /// it, and one of `release_operations` (`RELEASE s`) keeps them.
    pub savepoint_operations: Vec<String>,
    pub release_operations: Vec<String>,
    /// A transaction whose end was not traced (SQLAlchemy's instrumentation does not trace the
    /// DB-API `commit()`) follows the server or consumer span around it: committed at its end
    /// when it succeeded, not at all when it failed. Such commits are marked inferred.
    pub infer_untraced_ends: bool,
}

impl Default for CommitRules {
    fn default() -> Self {
        CommitRules {
            event_names: strings(&["commit"]),
            write_operations: strings(&[
                "INSERT", "UPDATE", "DELETE", "UPSERT", "MERGE", "REPLACE",
            ]),
            commit_operations: strings(&[
                "COMMIT",
                "sql.tx.commit",
                "tx.commit",
                "transaction.commit",
            ]),
            rollback_operations: strings(&[
                "ROLLBACK",
                "sql.tx.rollback",
                "tx.rollback",
                "transaction.rollback",
            ]),
            begin_operations: strings(&[
                "BEGIN",
                "START TRANSACTION",
                "sql.tx.begin",
                "sql.conn.begin_tx",
            ]),
            write_methods: strings(&["POST", "PUT", "PATCH", "DELETE"]),
            savepoint_operations: strings(&["SAVEPOINT"]),
            release_operations: strings(&["RELEASE"]),
            infer_untraced_ends: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientGoneRules {
    /// HTTP status codes a server records when its client went away.
    pub status_codes: Vec<i64>,
    /// Text in `error.type`, exception types/messages or status messages that names a client
    /// disconnect (case-insensitive substring).
    pub error_markers: Vec<String>,
}

impl Default for ClientGoneRules {
    fn default() -> Self {
        ClientGoneRules {
            status_codes: vec![499],
            error_markers: strings(&[
                "context canceled",
                "ECONNRESET",
                "EPIPE",
                "client disconnected",
                "client gone",
                "BrokenPipe",
                "ConnectionReset",
                "connection reset",
                "broken pipe",
                "aborted",
            ]),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueuedRules {
    /// HTTP statuses that mean "accepted, will run later".
    pub status_codes: Vec<i64>,
    /// `messaging.operation.type` values of a span that runs queued work (a consumer, whatever
    /// its kind): reached from a PRODUCER, as its child or through a link, it is the queued
    /// path.
    pub consumer_operations: Vec<String>,
}

impl Default for QueuedRules {
    fn default() -> Self {
        QueuedRules {
            status_codes: vec![202],
            consumer_operations: strings(&["process", "receive", "deliver"]),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeRules {
    /// Clock skew tolerated between different hosts (`10ms`, `250ms`, `1s`). A write whose
    /// order against the abort depends on less than this plus the timestamps' precision is
    /// ambiguous. Timestamps from the same host are compared without it.
    pub skew: Nanos,
    /// SDKs end every open span when a turn is aborted, sometimes just before they record the
    /// abort itself: a tool span that ended less than this before the abort was still in flight.
    pub in_flight_margin: Nanos,
    /// `telemetry.sdk.language` of SDKs that take a span's start from a millisecond clock
    /// (OpenTelemetry JS: `Date.now()`), so that a start in a whole millisecond is known to 1 ms
    /// only; its end comes from a high-resolution clock.
    pub millisecond_start_sdks: Vec<String>,
}

impl Default for TimeRules {
    fn default() -> Self {
        TimeRules {
            skew: Nanos(10_000_000),
            in_flight_margin: Nanos(10_000_000),
            millisecond_start_sdks: strings(&["nodejs", "webjs"]),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GateRules {
    /// Categories that make `scan` exit with status 1.
    pub fail_on: Vec<Category>,
    /// Whether findings of turns whose abort was only inferred (no span or abort log records
    /// the Stop) fail the gate too.
    pub inferred_aborts: bool,
    /// Fail the gate on a tool with late writes whose tool calls in the aborted turns show no
    /// cancellation protocol at all (no commit-point check, no deadline, no out-of-band
    /// cancel), whatever its findings' standings: suppressed and known ones count too.
    pub fail_on_unprotected_tools: bool,
}

impl Default for GateRules {
    fn default() -> Self {
        GateRules {
            fail_on: vec![
                Category::ClientGone,
                Category::LateQueued,
                Category::DispatchedAfterAbort,
            ],
            inferred_aborts: true,
            fail_on_unprotected_tools: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JoinRules {
    /// Span attributes holding an idempotency key the client sent.
    pub idempotency_key: Vec<String>,
    /// Span attributes holding the request id a vendor answered with.
    pub request_id: Vec<String>,
    /// Span attributes holding a message id (e-mail, queue message).
    pub message_id: Vec<String>,
    /// Span attributes holding a job, run or workflow id.
    pub job_id: Vec<String>,
    /// Span attributes holding the id of an object the request created or changed.
    pub object_id: Vec<String>,
}

impl Default for JoinRules {
    fn default() -> Self {
        JoinRules {
            idempotency_key: strings(&[
                "http.request.header.idempotency-key",
                "http.request.header.idempotency_key",
                "http.request.header.x-idempotency-key",
                "idempotency_key",
                "idempotency.key",
            ]),
            request_id: strings(&[
                "http.response.header.request-id",
                "http.response.header.x-request-id",
                "http.request.header.x-request-id",
            ]),
            message_id: strings(&[
                "messaging.message.id",
                "messaging.message_id",
                "http.response.header.x-message-id",
            ]),
            job_id: strings(&[
                "job.id",
                "http.response.header.x-job-id",
                "workflow.run.id",
                "temporal.workflow_id",
                "temporal.workflowId",
            ]),
            object_id: strings(&["vendor.object.id"]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_round_trip_through_toml() {
        let rules = Rules::default();
        let text = rules.to_toml();
        let back: Rules = toml::from_str(&text).unwrap();
        assert_eq!(back, rules);
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let err = toml::from_str::<Rules>("[abort]\nevent_nmes = [\"stop\"]\n").unwrap_err();
        assert!(err.to_string().contains("event_nmes"), "{err}");
        let err = toml::from_str::<Rules>("[abrot]\n").unwrap_err();
        assert!(err.to_string().contains("abrot"), "{err}");
    }

    #[test]
    fn partial_rules_keep_the_other_defaults() {
        let rules: Rules = toml::from_str("[time]\nskew = \"250ms\"\n").unwrap();
        assert_eq!(rules.skew_ns(), 250_000_000);
        assert_eq!(rules.abort, AbortRules::default());
    }
}

//! Vendor events: what third-party services report about the work they did, read from their
//! event logs and webhooks (Stripe events, Mailgun and SendGrid events, GitHub workflow
//! deliveries, Temporal histories, or any JSON log through a mapping in abortaudit.toml).

use super::span::Origin;

/// What a vendor event says happened to the work it is about.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The write landed (a charge succeeded, a message was delivered, an activity completed).
    Commit,
    /// The work was accepted for later execution (queued, scheduled).
    Accepted,
    /// Execution began.
    Started,
    /// The work was cancelled before it landed.
    Cancelled,
    /// The work failed and did not land.
    Failed,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Commit => "commit",
            Role::Accepted => "accepted",
            Role::Started => "started",
            Role::Cancelled => "cancelled",
            Role::Failed => "failed",
        }
    }
}

/// The kinds of correlation key that join a vendor event to the spans of a tool call.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    IdempotencyKey,
    RequestId,
    /// The id of the object the event is about (a payment intent, a message, a run).
    ObjectId,
    /// A job, run or workflow id.
    JobId,
    MessageId,
    ToolCallId,
    ConversationId,
    /// A W3C trace id (32 hex), from a traceparent carried by the vendor.
    TraceId,
    /// A W3C parent span id (16 hex), from a traceparent carried by the vendor.
    SpanId,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::IdempotencyKey => "idempotency_key",
            KeyKind::RequestId => "request_id",
            KeyKind::ObjectId => "object_id",
            KeyKind::JobId => "job_id",
            KeyKind::MessageId => "message_id",
            KeyKind::ToolCallId => "tool_call_id",
            KeyKind::ConversationId => "conversation_id",
            KeyKind::TraceId => "trace_id",
            KeyKind::SpanId => "span_id",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct VendorEvent {
    /// The vendor or mapping that read it (`stripe`, `mailgun`, `temporal`, a mapping's name).
    pub vendor: String,
    pub id: String,
    /// The vendor's event type (`payment_intent.succeeded`, `delivered`, `ActivityTaskCompleted`).
    pub kind: String,
    /// `None` for events that say nothing about whether work landed (an e-mail opened).
    pub role: Option<Role>,
    /// Unix nanoseconds, the start of the interval the timestamp stands for.
    pub time: u64,
    /// How coarse `time` is: the true time lies in `[time, time + precision)`. Stripe's
    /// `created` is whole seconds, so 1 s; an RFC 3339 time with microseconds, 1 µs.
    pub precision: u64,
    /// Correlation keys, normalised (hex ids lower-case).
    pub keys: Vec<(KeyKind, String)>,
    /// What the event is about, so that `accepted` → `started` → `commit` of the same work
    /// can be read as one sequence (a payment intent id, a message id, an activity).
    pub subject: Option<String>,
    pub origin: Origin,
}

//! How vendor event logs are read: the mapping format of `[[vendor]]` tables and the
//! mappings shipped with the tool.

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use super::strings;
use crate::model::Role;

/// How a vendor's JSON event log is read: where each field is (JSON pointers, RFC 6901; the
/// first one present wins), in which unit the time is, and which event types mean what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VendorMapping {
    pub name: String,
    /// A record belongs to this vendor when every pointer here holds one of the listed
    /// values; `"*"` accepts any value that is not null.
    #[serde(rename = "match")]
    pub matches: std::collections::BTreeMap<String, Vec<String>>,
    /// Envelopes: when one of these pointers is present, the event is the object it points to
    /// (Mailgun's webhooks put the event under `/event-data`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unwrap: Vec<String>,
    pub id: Vec<String>,
    #[serde(rename = "type")]
    pub kind: Vec<String>,
    pub time: Vec<String>,
    pub time_unit: TimeUnit,
    /// What the events are about, so that accepted → started → commit of the same work read
    /// as one sequence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject: Vec<String>,
    #[serde(default)]
    pub keys: KeyPointers,
    /// Objects whose entries become keys by their names (`conversation_id`, `tool_call_id`,
    /// `idempotency_key`, `traceparent`, …): Stripe's metadata, Mailgun's user-variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metadata: Vec<String>,
    /// Event types (a `*` matches any run of characters) and their roles; the first rule that
    /// matches wins. Types no rule matches have no role and count only as context.
    #[serde(default)]
    pub roles: Vec<RoleRule>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeUnit {
    /// Unix seconds, whole or with a fraction (its digits set the precision).
    S,
    Ms,
    Us,
    Ns,
    /// An RFC 3339 timestamp; its fractional digits set the precision.
    Rfc3339,
    /// Unix seconds or milliseconds, told apart by magnitude (SendGrid writes both).
    #[serde(rename = "s_or_ms")]
    SOrMs,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeyPointers {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub idempotency_key: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub request_id: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub object_id: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub job_id: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub message_id: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_call_id: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conversation_id: Vec<String>,
    /// W3C `traceparent` values (`00-<trace id>-<span id>-<flags>`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub traceparent: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleRule {
    /// An event type pattern: `*.succeeded`, `delivered`, `*`.
    #[serde(rename = "type")]
    pub pattern: String,
    /// Further conditions, as in `match`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub when: std::collections::BTreeMap<String, Vec<String>>,
    pub role: Role,
    /// Where this kind of event keeps its time, when not where the mapping's `time` says.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub time: Vec<String>,
}

impl VendorMapping {
    pub(super) fn validate(&self) -> Result<()> {
        let pointers = self
            .matches
            .keys()
            .chain(&self.unwrap)
            .chain(&self.id)
            .chain(&self.kind)
            .chain(&self.time)
            .chain(&self.subject)
            .chain(&self.metadata)
            .chain(self.roles.iter().flat_map(|r| r.when.keys().chain(&r.time)));
        for pointer in pointers {
            if !pointer.is_empty() && !pointer.starts_with('/') {
                bail!("{pointer:?} is not a JSON pointer: it must be empty or start with '/'");
            }
        }
        if self.matches.is_empty() {
            bail!("`match` is empty, so every record would be read as this vendor's");
        }
        if self.time.is_empty() {
            bail!("`time` names no pointer");
        }
        Ok(())
    }
}

fn pointer_list(items: &[&str]) -> Vec<String> {
    strings(items)
}

fn role(pattern: &str, role: Role) -> RoleRule {
    RoleRule {
        pattern: pattern.to_owned(),
        when: Default::default(),
        role,
        time: Vec::new(),
    }
}

fn role_when(pattern: &str, when: &[(&str, &[&str])], role: Role, time: &[&str]) -> RoleRule {
    RoleRule {
        pattern: pattern.to_owned(),
        when: when
            .iter()
            .map(|(p, v)| ((*p).to_owned(), strings(v)))
            .collect(),
        role,
        time: strings(time),
    }
}

/// The mappings shipped with the tool, in the order they are tried (the most specific match
/// first: Stripe and SendGrid records would also satisfy looser mappings).
pub fn builtin_vendor_mappings() -> Vec<VendorMapping> {
    use Role::*;
    let matches = |pairs: &[(&str, &[&str])]| -> std::collections::BTreeMap<String, Vec<String>> {
        pairs
            .iter()
            .map(|(p, v)| ((*p).to_owned(), strings(v)))
            .collect()
    };
    vec![
        VendorMapping {
            name: "stripe".into(),
            matches: matches(&[("/object", &["event"]), ("/type", &["*"])]),
            unwrap: Vec::new(),
            id: pointer_list(&["/id"]),
            kind: pointer_list(&["/type"]),
            time: pointer_list(&["/created"]),
            time_unit: TimeUnit::S,
            subject: pointer_list(&["/data/object/id"]),
            keys: KeyPointers {
                idempotency_key: pointer_list(&["/request/idempotency_key"]),
                request_id: pointer_list(&["/request/id"]),
                // A refund or a charge names its payment intent: what a refund reverses.
                object_id: pointer_list(&["/data/object/id", "/data/object/payment_intent"]),
                ..KeyPointers::default()
            },
            metadata: pointer_list(&["/data/object/metadata"]),
            roles: vec![
                role("*.succeeded", Commit),
                role("*.created", Commit),
                role("*.paid", Commit),
                role("*.captured", Commit),
                role("*.canceled", Cancelled),
                role("*.failed", Failed),
                role("*.payment_failed", Failed),
                // Accepted, completes later: ACH and other asynchronous payment methods.
                role("*.processing", Accepted),
                role("*.pending", Accepted),
            ],
        },
        VendorMapping {
            name: "sendgrid".into(),
            matches: matches(&[("/sg_event_id", &["*"]), ("/event", &["*"])]),
            unwrap: Vec::new(),
            id: pointer_list(&["/sg_event_id"]),
            kind: pointer_list(&["/event"]),
            time: pointer_list(&["/timestamp"]),
            time_unit: TimeUnit::SOrMs,
            subject: pointer_list(&["/smtp-id", "/sg_message_id"]),
            keys: KeyPointers {
                message_id: pointer_list(&["/sg_message_id", "/smtp-id"]),
                ..KeyPointers::default()
            },
            // SendGrid puts custom arguments at the top level of the event.
            metadata: pointer_list(&[""]),
            roles: vec![
                role("processed", Accepted),
                role("delivered", Commit),
                role("dropped", Failed),
                role("bounce", Failed),
            ],
        },
        VendorMapping {
            name: "mailgun".into(),
            matches: matches(&[("/event", &["*"]), ("/timestamp", &["*"])]),
            unwrap: pointer_list(&["/event-data"]),
            id: pointer_list(&["/id"]),
            kind: pointer_list(&["/event"]),
            time: pointer_list(&["/timestamp"]),
            time_unit: TimeUnit::S,
            subject: pointer_list(&["/message/headers/message-id"]),
            keys: KeyPointers {
                message_id: pointer_list(&["/message/headers/message-id"]),
                ..KeyPointers::default()
            },
            metadata: pointer_list(&["/user-variables"]),
            roles: vec![
                role("accepted", Accepted),
                role("delivered", Commit),
                role("failed", Failed),
                role("rejected", Failed),
            ],
        },
        VendorMapping {
            name: "github-workflow-job".into(),
            matches: matches(&[("/workflow_job", &["*"]), ("/action", &["*"])]),
            unwrap: Vec::new(),
            id: pointer_list(&["/workflow_job/id"]),
            kind: pointer_list(&["/action"]),
            time: pointer_list(&["/workflow_job/created_at"]),
            time_unit: TimeUnit::Rfc3339,
            subject: pointer_list(&["/workflow_job/id"]),
            keys: KeyPointers {
                job_id: pointer_list(&["/workflow_job/run_id", "/workflow_job/id"]),
                ..KeyPointers::default()
            },
            metadata: Vec::new(),
            roles: vec![
                role_when("queued", &[], Accepted, &["/workflow_job/created_at"]),
                role_when("waiting", &[], Accepted, &["/workflow_job/created_at"]),
                role_when("in_progress", &[], Started, &["/workflow_job/started_at"]),
                role_when(
                    "completed",
                    &[("/workflow_job/conclusion", &["success"])],
                    Commit,
                    &["/workflow_job/completed_at"],
                ),
                role_when(
                    "completed",
                    &[("/workflow_job/conclusion", &["cancelled", "skipped"])],
                    Cancelled,
                    &["/workflow_job/completed_at"],
                ),
                role_when("completed", &[], Failed, &["/workflow_job/completed_at"]),
            ],
        },
        VendorMapping {
            name: "github-workflow-run".into(),
            matches: matches(&[("/workflow_run", &["*"]), ("/action", &["*"])]),
            unwrap: Vec::new(),
            id: pointer_list(&["/workflow_run/id"]),
            kind: pointer_list(&["/action"]),
            time: pointer_list(&["/workflow_run/created_at"]),
            time_unit: TimeUnit::Rfc3339,
            subject: pointer_list(&["/workflow_run/id"]),
            keys: KeyPointers {
                job_id: pointer_list(&["/workflow_run/id"]),
                ..KeyPointers::default()
            },
            metadata: Vec::new(),
            roles: vec![
                role_when("requested", &[], Accepted, &["/workflow_run/created_at"]),
                role_when(
                    "in_progress",
                    &[],
                    Started,
                    &["/workflow_run/run_started_at", "/workflow_run/updated_at"],
                ),
                role_when(
                    "completed",
                    &[("/workflow_run/conclusion", &["success"])],
                    Commit,
                    &["/workflow_run/updated_at"],
                ),
                role_when(
                    "completed",
                    &[("/workflow_run/conclusion", &["cancelled", "skipped"])],
                    Cancelled,
                    &["/workflow_run/updated_at"],
                ),
                role_when("completed", &[], Failed, &["/workflow_run/updated_at"]),
            ],
        },
        VendorMapping {
            name: "standard-webhooks".into(),
            matches: matches(&[("/type", &["*"]), ("/timestamp", &["*"]), ("/data", &["*"])]),
            unwrap: Vec::new(),
            id: pointer_list(&["/webhook-id", "/headers/webhook-id", "/id", "/msg_id"]),
            kind: pointer_list(&["/type"]),
            time: pointer_list(&["/timestamp"]),
            time_unit: TimeUnit::Rfc3339,
            subject: pointer_list(&["/data/id"]),
            keys: KeyPointers {
                object_id: pointer_list(&["/data/id"]),
                idempotency_key: pointer_list(&["/data/idempotency_key"]),
                ..KeyPointers::default()
            },
            metadata: pointer_list(&["/data/metadata"]),
            roles: vec![
                role("*.succeeded", Commit),
                role("*.completed", Commit),
                role("*.created", Commit),
                role("*.delivered", Commit),
                role("*.sent", Commit),
                role("*.queued", Accepted),
                role("*.scheduled", Accepted),
                role("*.accepted", Accepted),
                role("*.started", Started),
                role("*.processing", Started),
                role("*.canceled", Cancelled),
                role("*.cancelled", Cancelled),
                role("*.failed", Failed),
            ],
        },
    ]
}

//! Temporal workflow histories: the events a workflow execution recorded, as `temporal
//! workflow show --output json`, the Web UI's download and the SDKs' replay fixtures write them.
//!
//! Two JSON dialects are read: proto-JSON (`"eventType": "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"`,
//! RFC 3339 `eventTime`) and the older Go/gogo one (`"eventType": "ActivityTaskScheduled"`, and in
//! Cadence-era dumps a `timestamp` in Unix nanoseconds). Event types are normalised to the
//! `ActivityTaskCompleted` spelling.
//!
//! Only work that can land somewhere becomes a vendor event: activities (the code that calls
//! payment APIs, sends mail, writes rows), local activities, child workflows and the workflow
//! itself. Workflow tasks, timers and signals are the engine's bookkeeping.
//!
//! Roles:
//! - `Scheduled` (and a child's `Initiated`, the workflow's own `Started`) is `accepted`: the
//!   server has taken the work and a worker will run it later, the queued case of docs/design.md.
//! - `ActivityTaskStarted`, `ChildWorkflowExecutionStarted`: `started`.
//! - `Completed`: `commit`. `Failed`, `TimedOut`: `failed` (Temporal records them only once
//!   retries are exhausted).
//! - `*CancelRequested` has **no role**: it records that someone asked. Cancellation in
//!   Temporal is cooperative: an activity learns of it at its next heartbeat and may complete
//!   anyway (a `Completed` can follow a `CancelRequested`). Only `*Canceled` says the work
//!   stopped; calling the request a cancellation would hide a write that landed after it.
//! - `Terminated` is `cancelled`: an operator stopped the execution from outside.
//!
//! An activity's `Started`/`Completed` events name only their `scheduledEventId`; the activity
//! id and the W3C traceparent the OpenTelemetry interceptors put in the `_tracer-data` header
//! are on the `Scheduled` event, so they are looked up there and inherited.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Map, Value};

use super::mapping::{Keys, parse_traceparent};
use super::time::parse_time;
use crate::model::diagnostic::{Code, Diagnostic};
use crate::model::{KeyKind, Origin, Role, VendorEvent};
use crate::rules::TimeUnit;

pub(crate) const VENDOR: &str = "temporal";

/// Takes the events out of a history document: `{"events": […]}` or, as the
/// GetWorkflowExecutionHistory API answers, `{"history": {"events": […]}}`. Returns them with
/// the path to the array (for finding their lines); `None`, leaving `map` as it was, when it is
/// not a history.
pub(crate) fn take_history(
    map: &mut Map<String, Value>,
) -> Option<(Vec<Value>, &'static [&'static str])> {
    fn holds_history(v: Option<&Value>) -> bool {
        v.and_then(Value::as_array)
            .and_then(|a| a.first())
            .is_some_and(is_history_event)
    }
    if holds_history(map.get("events")) {
        let Some(Value::Array(events)) = map.remove("events") else {
            unreachable!("checked just above")
        };
        return Some((events, &["events"]));
    }
    if holds_history(map.get("history").and_then(|h| h.get("events"))) {
        let Some(Value::Array(events)) = map
            .get_mut("history")
            .and_then(|h| h.as_object_mut())
            .and_then(|h| h.remove("events"))
        else {
            unreachable!("checked just above")
        };
        return Some((events, &["history", "events"]));
    }
    None
}

/// One history event: it has an event type and an event id or an `…EventAttributes` object.
pub(crate) fn is_history_event(value: &Value) -> bool {
    let Some(o) = value.as_object() else {
        return false;
    };
    (o.contains_key("eventType") || o.contains_key("event_type"))
        && (o.contains_key("eventId")
            || o.contains_key("event_id")
            || o.keys().any(|k| is_attributes_key(k)))
}

fn is_attributes_key(key: &str) -> bool {
    key.ends_with("EventAttributes") || key.ends_with("_event_attributes")
}

/// What a family of events is about.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Workflow,
    Activity,
    Child,
    LocalActivity,
}

/// The family and role of the event types that become vendor events (see the module comment).
fn family_and_role(kind: &str) -> Option<(Family, Option<Role>)> {
    use Family::*;
    Some(match kind {
        "WorkflowExecutionStarted" => (Workflow, Some(Role::Accepted)),
        "WorkflowExecutionCompleted" => (Workflow, Some(Role::Commit)),
        "WorkflowExecutionFailed" | "WorkflowExecutionTimedOut" => (Workflow, Some(Role::Failed)),
        "WorkflowExecutionCanceled" | "WorkflowExecutionTerminated" => {
            (Workflow, Some(Role::Cancelled))
        }
        // The run ended and a new run carries the work on: neither landed nor stopped.
        "WorkflowExecutionCancelRequested" | "WorkflowExecutionContinuedAsNew" => (Workflow, None),
        "ActivityTaskScheduled" => (Activity, Some(Role::Accepted)),
        "ActivityTaskStarted" => (Activity, Some(Role::Started)),
        "ActivityTaskCompleted" => (Activity, Some(Role::Commit)),
        "ActivityTaskFailed" | "ActivityTaskTimedOut" => (Activity, Some(Role::Failed)),
        "ActivityTaskCancelRequested" => (Activity, None),
        "ActivityTaskCanceled" => (Activity, Some(Role::Cancelled)),
        "StartChildWorkflowExecutionInitiated" => (Child, Some(Role::Accepted)),
        "StartChildWorkflowExecutionFailed" => (Child, Some(Role::Failed)),
        "ChildWorkflowExecutionStarted" => (Child, Some(Role::Started)),
        "ChildWorkflowExecutionCompleted" => (Child, Some(Role::Commit)),
        "ChildWorkflowExecutionFailed" | "ChildWorkflowExecutionTimedOut" => {
            (Child, Some(Role::Failed))
        }
        "ChildWorkflowExecutionCanceled" | "ChildWorkflowExecutionTerminated" => {
            (Child, Some(Role::Cancelled))
        }
        // Its role depends on the marker's contents, decided where it is read.
        "MarkerRecorded" => (LocalActivity, None),
        _ => return None,
    })
}

/// `EventType` numbers, for writers that print enums as numbers (temporal/api event_type.proto).
const TYPE_NAMES: [&str; 41] = [
    "Unspecified",
    "WorkflowExecutionStarted",
    "WorkflowExecutionCompleted",
    "WorkflowExecutionFailed",
    "WorkflowExecutionTimedOut",
    "WorkflowTaskScheduled",
    "WorkflowTaskStarted",
    "WorkflowTaskCompleted",
    "WorkflowTaskTimedOut",
    "WorkflowTaskFailed",
    "ActivityTaskScheduled",
    "ActivityTaskStarted",
    "ActivityTaskCompleted",
    "ActivityTaskFailed",
    "ActivityTaskTimedOut",
    "ActivityTaskCancelRequested",
    "ActivityTaskCanceled",
    "TimerStarted",
    "TimerFired",
    "TimerCanceled",
    "WorkflowExecutionCancelRequested",
    "WorkflowExecutionCanceled",
    "RequestCancelExternalWorkflowExecutionInitiated",
    "RequestCancelExternalWorkflowExecutionFailed",
    "ExternalWorkflowExecutionCancelRequested",
    "MarkerRecorded",
    "WorkflowExecutionSignaled",
    "WorkflowExecutionTerminated",
    "WorkflowExecutionContinuedAsNew",
    "StartChildWorkflowExecutionInitiated",
    "StartChildWorkflowExecutionFailed",
    "ChildWorkflowExecutionStarted",
    "ChildWorkflowExecutionCompleted",
    "ChildWorkflowExecutionFailed",
    "ChildWorkflowExecutionCanceled",
    "ChildWorkflowExecutionTimedOut",
    "ChildWorkflowExecutionTerminated",
    "SignalExternalWorkflowExecutionInitiated",
    "SignalExternalWorkflowExecutionFailed",
    "ExternalWorkflowExecutionSignaled",
    "UpsertWorkflowSearchAttributes",
];

/// `EVENT_TYPE_ACTIVITY_TASK_SCHEDULED`, `activity_task_scheduled`, `ActivityTaskScheduled`
/// and `10` all become `ActivityTaskScheduled`.
pub(crate) fn normalise_type(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => n
            .as_u64()
            .and_then(|i| TYPE_NAMES.get(usize::try_from(i).ok()?))
            .map(|s| (*s).to_owned()),
        Value::String(s) => {
            let s = s.trim();
            let s = s.strip_prefix("EVENT_TYPE_").unwrap_or(s);
            if s.is_empty() {
                return None;
            }
            let screaming = s.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
            if !s.contains('_') && !screaming {
                return Some(s.to_owned());
            }
            Some(
                s.split('_')
                    .filter(|w| !w.is_empty())
                    .map(|w| {
                        let lower = w.to_ascii_lowercase();
                        let mut chars = lower.chars();
                        chars.next().map_or_else(String::new, |first| {
                            first.to_ascii_uppercase().to_string() + chars.as_str()
                        })
                    })
                    .collect(),
            )
        }
        _ => None,
    }
}

/// A field by any of its spellings (proto-JSON camelCase, proto field names), not null.
fn field<'v>(obj: &'v Value, names: &[&str]) -> Option<&'v Value> {
    names
        .iter()
        .find_map(|n| obj.get(*n))
        .filter(|v| !v.is_null())
}

/// A string or number field as text (int64 fields are strings in proto-JSON, numbers in
/// older dumps).
fn text(obj: &Value, names: &[&str]) -> Option<String> {
    match field(obj, names)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn attributes(event: &Value) -> &Value {
    static EMPTY: Value = Value::Null;
    event
        .as_object()
        .and_then(|o| {
            o.iter()
                .find(|(k, v)| is_attributes_key(k) && v.is_object())
                .map(|(_, v)| v)
        })
        .unwrap_or(&EMPTY)
}

fn base64(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let text = text.trim();
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
}

/// A payload's value when it holds JSON: `{"metadata": {"encoding": base64("json/plain")},
/// "data": base64(json)}`, or, as the CLI prints JSON payloads by default, the JSON itself.
fn payload_json(payload: &Value) -> Option<Value> {
    let (Some(metadata), Some(Value::String(data))) =
        (payload.get("metadata"), payload.get("data"))
    else {
        // Shorthand: the CLI replaced the payload with the JSON it held.
        return Some(payload.clone()).filter(Value::is_object);
    };
    if let Some(encoding) = metadata.get("encoding").and_then(Value::as_str) {
        let plain = encoding == "json/plain"
            || base64(encoding).is_some_and(|e| e.as_slice() == b"json/plain");
        if !plain {
            return None;
        }
    }
    serde_json::from_slice(&base64(data)?).ok()
}

/// The traceparent an event's header carries: in `_tracer-data`, where the OpenTelemetry
/// interceptors of the TypeScript, Go, Python and Java SDKs put it, else in any header field.
fn header_traceparent(attrs: &Value) -> Option<(String, String)> {
    let fields = attrs.get("header")?.get("fields")?.as_object()?;
    let preferred = fields.get("_tracer-data");
    let others = fields
        .iter()
        .filter(|(k, _)| k.as_str() != "_tracer-data")
        .map(|(_, v)| v);
    preferred.into_iter().chain(others).find_map(|payload| {
        let json = payload_json(payload)?;
        parse_traceparent(json.get("traceparent")?.as_str()?)
    })
}

/// An event's time: RFC 3339 (proto-JSON), Unix nanoseconds as a number or string (Cadence-era
/// dumps), or a `{"seconds", "nanos"}` object.
fn event_time(event: &Value) -> Result<(u64, u64), String> {
    let Some(value) = field(event, &["eventTime", "event_time", "timestamp"]) else {
        return Err("no eventTime".to_owned());
    };
    if let Value::Object(_) = value {
        return seconds_nanos(value).ok_or_else(|| {
            format!("eventTime {value} is not a {{seconds, nanos}} timestamp in range")
        });
    }
    parse_time(value, TimeUnit::Ns).map_err(|why| format!("eventTime {value} is unusable: {why}"))
}

/// `{"seconds": 1782485061, "nanos": 808639125}`, a protobuf Timestamp as SDKs serialise it.
fn seconds_nanos(value: &Value) -> Option<(u64, u64)> {
    let number = |v: &Value| match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    let seconds = number(value.get("seconds")?)?;
    let nanos = value.get("nanos").map_or(Some(0), number)?;
    if nanos >= 1_000_000_000 {
        return None;
    }
    Some((seconds.checked_mul(1_000_000_000)?.checked_add(nanos)?, 1))
}

/// What the events of one activity (or child workflow) share, from its first event.
#[derive(Default, Clone)]
struct Work {
    /// The activity id, or the child workflow's id.
    id: Option<String>,
    traceparent: Option<(String, String)>,
}

/// The execution the history belongs to, from its `WorkflowExecutionStarted` event.
#[derive(Default)]
struct Execution {
    workflow_id: Option<String>,
    run_id: Option<String>,
    traceparent: Option<(String, String)>,
}

impl Execution {
    /// What qualifies subjects and ids, so that histories of different runs do not share them:
    /// the run id (a run continued-as-new starts its event ids at 1 again under the same
    /// workflow id), else the workflow id.
    fn qualifier(&self) -> Option<&str> {
        self.run_id.as_deref().or(self.workflow_id.as_deref())
    }

    fn qualified(&self, local: &str) -> String {
        match self.qualifier() {
            Some(q) => format!("{q}/{local}"),
            None => local.to_owned(),
        }
    }

    fn add_keys(&self, keys: &mut Keys) {
        for id in [&self.workflow_id, &self.run_id].into_iter().flatten() {
            keys.add(KeyKind::JobId, id);
        }
    }
}

/// Reads one history (its events with their lines) into vendor events.
pub(crate) fn read_history(
    input: &Arc<str>,
    events: &[(Value, u64)],
    out: &mut Vec<VendorEvent>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    // First pass: what later events refer back to (events are not always in time order, nor
    // even in id order in hand-assembled files).
    let mut execution = Execution::default();
    let mut activities: HashMap<String, Work> = HashMap::new();
    // Cadence-era CancelRequested events name the activity id, not the scheduled event.
    let mut scheduled_by_activity_id: HashMap<String, String> = HashMap::new();
    let mut children: HashMap<String, Work> = HashMap::new();
    for (event, _) in events {
        let Some(kind) = field(event, &["eventType", "event_type"]).and_then(normalise_type) else {
            continue;
        };
        let attrs = attributes(event);
        let event_id = text(event, &["eventId", "event_id"]);
        match kind.as_str() {
            "WorkflowExecutionStarted" => {
                execution.workflow_id = text(attrs, &["workflowId", "workflow_id"]);
                execution.run_id = text(
                    attrs,
                    &["originalExecutionRunId", "original_execution_run_id"],
                );
                execution.traceparent = header_traceparent(attrs);
            }
            "ActivityTaskScheduled" => {
                if let Some(id) = event_id {
                    let activity_id = text(attrs, &["activityId", "activity_id"]);
                    if let Some(activity_id) = &activity_id {
                        scheduled_by_activity_id.insert(activity_id.clone(), id.clone());
                    }
                    activities.insert(
                        id,
                        Work {
                            id: activity_id,
                            traceparent: header_traceparent(attrs),
                        },
                    );
                }
            }
            "StartChildWorkflowExecutionInitiated" => {
                if let Some(id) = event_id {
                    children.insert(
                        id,
                        Work {
                            id: text(attrs, &["workflowId", "workflow_id"]),
                            traceparent: header_traceparent(attrs),
                        },
                    );
                }
            }
            _ => {}
        }
    }

    for (event, line) in events {
        let line = *line;
        let Some(kind) = field(event, &["eventType", "event_type"]).and_then(normalise_type) else {
            diagnostics.push(Diagnostic::error(
                input,
                Some(line),
                Code::InvalidRecord,
                "Temporal history event with no usable eventType; skipped",
            ));
            continue;
        };
        let Some((family, mut role)) = family_and_role(&kind) else {
            continue;
        };
        let attrs = attributes(event);
        let event_id = text(event, &["eventId", "event_id"]).unwrap_or_else(|| format!("@{line}"));
        let mut keys = Keys::default();
        let mut kind = kind;
        let mut time_override = None;
        let subject = match family {
            Family::Workflow => {
                execution.add_keys(&mut keys);
                add_traceparent(&mut keys, execution.traceparent.as_ref(), true);
                execution
                    .qualifier()
                    .map_or_else(|| "workflow".to_owned(), |q| format!("workflow:{q}"))
            }
            Family::Activity => {
                let scheduled = if kind == "ActivityTaskScheduled" {
                    event_id.clone()
                } else {
                    text(attrs, &["scheduledEventId", "scheduled_event_id"])
                        .or_else(|| {
                            let activity_id = text(attrs, &["activityId", "activity_id"])?;
                            scheduled_by_activity_id.get(&activity_id).cloned()
                        })
                        .unwrap_or_else(|| "?".to_owned())
                };
                let work = activities.get(&scheduled).cloned().unwrap_or_default();
                let id = work
                    .id
                    .or_else(|| text(attrs, &["activityId", "activity_id"]));
                if let Some(id) = id {
                    keys.add(KeyKind::ObjectId, &id);
                }
                execution.add_keys(&mut keys);
                add_work_traceparent(&mut keys, work.traceparent.as_ref(), &execution);
                execution.qualified(&format!("activity:{scheduled}"))
            }
            Family::Child => {
                let initiated = if kind == "StartChildWorkflowExecutionInitiated" {
                    event_id.clone()
                } else {
                    text(attrs, &["initiatedEventId", "initiated_event_id"])
                        .unwrap_or_else(|| "?".to_owned())
                };
                let work = children.get(&initiated).cloned().unwrap_or_default();
                let execution_of_child = field(attrs, &["workflowExecution", "workflow_execution"]);
                let child_id = work.id.or_else(|| {
                    execution_of_child.and_then(|e| text(e, &["workflowId", "workflow_id"]))
                });
                if let Some(id) = child_id {
                    keys.add(KeyKind::JobId, &id);
                }
                if let Some(run) = execution_of_child.and_then(|e| text(e, &["runId", "run_id"])) {
                    keys.add(KeyKind::JobId, &run);
                }
                add_work_traceparent(&mut keys, work.traceparent.as_ref(), &execution);
                execution.qualified(&format!("child:{initiated}"))
            }
            Family::LocalActivity => {
                let Some(marker) = local_activity(attrs) else {
                    continue;
                };
                kind = if marker.failed {
                    "LocalActivityFailed".to_owned()
                } else {
                    "LocalActivityCompleted".to_owned()
                };
                role = Some(if marker.failed {
                    Role::Failed
                } else {
                    Role::Commit
                });
                time_override = marker.completed;
                if let Some(id) = &marker.activity_id {
                    keys.add(KeyKind::ObjectId, id);
                }
                execution.add_keys(&mut keys);
                add_traceparent(&mut keys, execution.traceparent.as_ref(), false);
                let local = marker.activity_id.unwrap_or_else(|| event_id.clone());
                execution.qualified(&format!("local-activity:{local}"))
            }
        };
        let (time, precision) = match time_override.map_or_else(|| event_time(event), Ok) {
            Ok(t) => t,
            Err(why) => {
                diagnostics.push(Diagnostic::error(
                    input,
                    Some(line),
                    Code::InvalidValue,
                    format!("Temporal {kind} event {event_id}: {why}; the event is skipped"),
                ));
                continue;
            }
        };
        out.push(VendorEvent {
            vendor: VENDOR.to_owned(),
            id: execution.qualified(&event_id),
            kind,
            role,
            time,
            precision,
            keys: keys.0,
            subject: Some(subject),
            origin: Origin {
                input: input.clone(),
                line,
            },
        });
    }
}

/// The work's own traceparent (trace and span), else the workflow's trace id alone: the
/// activity runs in the workflow's trace even when its own header was not recorded.
fn add_work_traceparent(keys: &mut Keys, own: Option<&(String, String)>, execution: &Execution) {
    match own {
        Some(tp) => add_traceparent(keys, Some(tp), true),
        None => add_traceparent(keys, execution.traceparent.as_ref(), false),
    }
}

fn add_traceparent(keys: &mut Keys, tp: Option<&(String, String)>, with_span: bool) {
    if let Some((trace, span)) = tp {
        keys.add(KeyKind::TraceId, trace);
        if with_span {
            keys.add(KeyKind::SpanId, span);
        }
    }
}

/// A local activity, as recorded in a marker: local activities run inside the workflow worker
/// and leave no Scheduled/Started/Completed events, only this.
struct LocalActivity {
    activity_id: Option<String>,
    /// When it finished, if the marker says (Core-based SDKs record `complete_time`); else the
    /// marker's own time is used, which is when the workflow task that recorded it completed.
    completed: Option<(u64, u64)>,
    failed: bool,
}

fn local_activity(attrs: &Value) -> Option<LocalActivity> {
    let name = text(attrs, &["markerName", "marker_name"])?;
    // `core_local_activity`: the Core-based SDKs (TypeScript, Python, .NET, Ruby);
    // `LocalActivity`: Go and Java.
    if name != "core_local_activity" && name != "LocalActivity" {
        return None;
    }
    let data = field(attrs, &["details"])
        .and_then(|d| d.get("data"))
        .and_then(|d| d.get("payloads").and_then(|p| p.get(0)).or(Some(d)))
        .and_then(payload_json);
    let data = data.as_ref();
    let failed = field(attrs, &["failure"]).is_some()
        || data
            .and_then(|d| d.get("ErrReason"))
            .and_then(Value::as_str)
            .is_some_and(|r| !r.is_empty());
    Some(LocalActivity {
        activity_id: data.and_then(|d| text(d, &["activity_id", "ActivityID", "activityId"])),
        completed: data
            .and_then(|d| d.get("complete_time"))
            .and_then(seconds_nanos),
        failed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_dialects_normalise_to_one_spelling() {
        for v in [
            json!("EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"),
            json!("ActivityTaskScheduled"),
            json!("activity_task_scheduled"),
            json!(10),
        ] {
            assert_eq!(
                normalise_type(&v).as_deref(),
                Some("ActivityTaskScheduled"),
                "{v}"
            );
        }
        assert_eq!(
            normalise_type(&json!("EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW")).as_deref(),
            Some("WorkflowExecutionContinuedAsNew")
        );
        assert_eq!(normalise_type(&json!(99)), None);
    }

    #[test]
    fn tracer_data_headers_decode_in_both_payload_forms() {
        let encoded = json!({"header": {"fields": {"_tracer-data": {
            "metadata": {"encoding": "anNvbi9wbGFpbg=="},
            "data": "eyJ0cmFjZXBhcmVudCI6IjAwLTUxZDRhNmEyMTRkNTMzYTUxMzQ0ZTc3MDIwOGM2MTEyLTc4N2Q2MTE2OTI0ZGRmMTQtMDEifQ=="
        }}}});
        let expected = Some((
            "51d4a6a214d533a51344e770208c6112".to_owned(),
            "787d6116924ddf14".to_owned(),
        ));
        assert_eq!(header_traceparent(&encoded), expected);
        let shorthand = json!({"header": {"fields": {"_tracer-data": {
            "traceparent": "00-51d4a6a214d533a51344e770208c6112-787d6116924ddf14-01"
        }}}});
        assert_eq!(header_traceparent(&shorthand), expected);
        let binary = json!({"header": {"fields": {"_tracer-data": {
            "metadata": {"encoding": "YmluYXJ5L251bGw="}, "data": "e30="
        }}}});
        assert_eq!(header_traceparent(&binary), None);
    }
}

//! The one list of span attributes any stage reads. A span kept by the second pass over a
//! large export holds only these, so a key read anywhere but missing here would change
//! results only for files over the two-pass threshold: every key the stages read by name is a
//! constant of `model::semconv` (a test holds this list to that module), and the others are
//! named by the rules.

use rustc_hash::FxHashSet;

use super::Rules;
use crate::model::semconv::{
    DB_COLLECTION, DB_OPERATION, DB_QUERY_SUMMARY, DB_QUERY_TEXT, DB_SYSTEM, ERROR_TYPE,
    GEN_AI_OPERATION_NAME, HOST_NAME, HTTP_REQUEST_METHOD, HTTP_RESPONSE_STATUS_CODE,
    MCP_METHOD_NAME, MESSAGING_MESSAGE_ID, MESSAGING_OPERATION_TYPE, RPC_STATUS_CODE,
    SERVICE_INSTANCE_ID, SERVICE_NAME, TELEMETRY_SDK_LANGUAGE, URL_FULL, URL_PATH,
};

/// The semantic-convention keys the stages read by name, whatever the rules say.
fn convention_keys() -> impl Iterator<Item = &'static str> {
    [
        SERVICE_NAME,
        HOST_NAME,
        TELEMETRY_SDK_LANGUAGE,
        SERVICE_INSTANCE_ID,
        GEN_AI_OPERATION_NAME,
        DB_QUERY_SUMMARY,
        ERROR_TYPE,
        MCP_METHOD_NAME,
        MESSAGING_MESSAGE_ID,
    ]
    .into_iter()
    .chain(HTTP_REQUEST_METHOD)
    .chain(HTTP_RESPONSE_STATUS_CODE)
    .chain(URL_FULL)
    .chain(URL_PATH)
    .chain(DB_SYSTEM)
    .chain(DB_OPERATION)
    .chain(DB_QUERY_TEXT)
    .chain(DB_COLLECTION)
    .chain(RPC_STATUS_CODE)
    .chain(MESSAGING_OPERATION_TYPE)
}

/// The span attributes the audit reads: these keys, and every key that starts with one of the
/// prefixes (the tool calls a model span lists, one attribute per field).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AttributesRead {
    /// Looked up for every attribute of every span the second pass keeps: a fast hash.
    pub keys: FxHashSet<String>,
    pub prefixes: Vec<String>,
}

impl AttributesRead {
    pub fn contains(&self, key: &str) -> bool {
        self.keys.contains(key) || self.prefixes.iter().any(|p| key.starts_with(p.as_str()))
    }
}

impl Rules {
    /// Every span attribute the audit may read: the conventions' keys and those the rules
    /// name (conversation ids, tool calls, abort signals, join keys, deadline headers and the
    /// ids a cancel may name).
    pub fn attributes_read(&self) -> AttributesRead {
        let mut keys: FxHashSet<String> = convention_keys().map(str::to_owned).collect();
        keys.extend(self.conversation.id_attributes.iter().cloned());
        for matcher in &self.tool_call.matchers {
            keys.extend(matcher.attribute.iter().cloned());
            keys.extend(matcher.id_attributes.iter().cloned());
            keys.extend(matcher.name_attributes.iter().cloned());
        }
        let join = &self.join;
        for list in [
            &join.idempotency_key,
            &join.request_id,
            &join.message_id,
            &join.job_id,
            &join.object_id,
        ] {
            keys.extend(list.iter().cloned());
        }
        keys.extend(self.abort.inferred.disconnect_attributes.iter().cloned());
        // What would have stopped a late write: deadline headers, ids a cancel may name.
        keys.extend(self.prevention.deadline.attributes().map(|(k, _)| k));
        keys.extend(self.prevention.cancel.id_attributes.iter().cloned());
        keys.insert(self.tool_call.from_model_calls.attribute.clone());
        AttributesRead {
            keys,
            prefixes: vec![self.tool_call.from_model_calls.prefix.clone()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys of exception events, which spans do not carry (events keep theirs whole).
    const EVENT_KEYS: [&str; 2] = ["exception.type", "exception.message"];

    #[test]
    fn every_convention_key_is_kept() {
        let read = Rules::default().attributes_read();
        let semconv = include_str!("../model/semconv.rs");
        let mut checked = 0;
        for literal in semconv.split('"').skip(1).step_by(2) {
            if literal.contains('.') && !EVENT_KEYS.contains(&literal) {
                assert!(
                    read.contains(literal),
                    "{literal} is not in attributes_read"
                );
                checked += 1;
            }
        }
        assert!(checked > 20, "only {checked} keys found in semconv.rs");
    }
}

//! The agent's side of a trace: which spans are a turn's top-level agent span, which are tool
//! calls (and their names and call ids), and which attribute names the conversation.

use std::borrow::Cow;

use super::{Rules, ToolMatcher};
use crate::model::semconv::GEN_AI_OPERATION_NAME;
use crate::model::{Attributes, Span};

pub fn is_agent_span(span: &Span, rules: &Rules) -> bool {
    if let Some(op) = span.attributes.text(GEN_AI_OPERATION_NAME)
        && rules
            .turn
            .agent_operations
            .iter()
            .any(|o| o.eq_ignore_ascii_case(&op))
    {
        return true;
    }
    let first_word = span.name.split(' ').next().unwrap_or("");
    rules
        .turn
        .agent_span_names
        .iter()
        .any(|n| **n == *span.name || *n == first_word)
}

/// The tool matcher a span satisfies, if any.
pub fn tool_matcher<'r>(span: &Span, rules: &'r Rules) -> Option<&'r ToolMatcher> {
    rules.tool_call.matchers.iter().find(|m| {
        let by_attribute = m.attribute.as_ref().is_some_and(|key| {
            span.attributes
                .text(key)
                .is_some_and(|v| m.values.iter().any(|want| want.eq_ignore_ascii_case(&v)))
        });
        let by_name = m.span_name.as_ref().is_some_and(|prefix| {
            *span.name == **prefix
                || span
                    .name
                    .strip_prefix(prefix.as_str())
                    .is_some_and(|rest| rest.starts_with(' '))
        });
        by_attribute || by_name
    })
}

impl ToolMatcher {
    /// The tool's name on a span this matcher matched: its name attribute, else the span name.
    pub fn tool_name(&self, span: &Span) -> String {
        first_text(span, &self.name_attributes).unwrap_or_else(|| span.name.to_string())
    }

    /// The tool call id on a span this matcher matched.
    pub fn call_id(&self, span: &Span) -> Option<String> {
        first_text(span, &self.id_attributes)
    }
}

fn first_text(span: &Span, keys: &[String]) -> Option<String> {
    keys.iter()
        .find_map(|k| span.attributes.text(k))
        .map(|v| v.into_owned())
        .filter(|v| !v.is_empty())
}

/// The conversation id a span names: the first of the rules' keys among its attributes, else
/// among its resource's.
pub fn conversation_id<'s>(span: &'s Span, rules: &Rules) -> Option<Cow<'s, str>> {
    let first = |attributes: &'s Attributes| {
        rules
            .conversation
            .id_attributes
            .iter()
            .find_map(|k| attributes.text(k).filter(|v| !v.is_empty()))
    };
    first(&span.attributes).or_else(|| first(&span.resource.attributes))
}

/// Whether a span is a model call that lists the tool calls it asked for (OpenInference's LLM
/// spans).
pub fn is_model_span(span: &Span, rules: &Rules) -> bool {
    let model = &rules.tool_call.from_model_calls;
    span.attributes.text(&model.attribute).is_some_and(|v| {
        model
            .values
            .iter()
            .any(|want| want.eq_ignore_ascii_case(&v))
    })
}

/// The tool calls a model span asked for, as (tool name, call id), in the order it listed
/// them: `{prefix}{i}.message.tool_calls.{j}{suffix}` by message `i`, then call `j`.
pub fn model_tool_calls(span: &Span, rules: &Rules) -> Vec<(String, String)> {
    let model = &rules.tool_call.from_model_calls;
    let mut calls: std::collections::BTreeMap<(u64, u64), (Option<String>, Option<String>)> =
        Default::default();
    for kv in span.attributes.iter() {
        let Some(rest) = kv.key.strip_prefix(model.prefix.as_str()) else {
            continue;
        };
        let (field, rest) = if let Some(rest) = rest.strip_suffix(model.id_suffix.as_str()) {
            (0, rest)
        } else if let Some(rest) = rest.strip_suffix(model.name_suffix.as_str()) {
            (1, rest)
        } else {
            continue;
        };
        // `{i}.message.tool_calls.{j}`
        let mut parts = rest.split('.');
        let (Some(i), Some("message"), Some("tool_calls"), Some(j), None) = (
            parts.next().and_then(|i| i.parse().ok()),
            parts.next(),
            parts.next(),
            parts.next().and_then(|j| j.parse().ok()),
            parts.next(),
        ) else {
            continue;
        };
        let Some(text) = kv.value.as_text().filter(|t| !t.is_empty()) else {
            continue;
        };
        let entry = calls.entry((i, j)).or_default();
        match field {
            0 => entry.1 = Some(text.into_owned()),
            _ => entry.0 = Some(text.into_owned()),
        }
    }
    calls
        .into_values()
        .filter_map(|(name, id)| Some((name.unwrap_or_default(), id?)))
        .collect()
}

//! The renderers on hostile text: the small scenario (a finding of each category) with its
//! names, services, tool names and ids, conversation ids, routes and messages replaced by
//! arbitrary strings (each distinct original by one string, so the join stays what it was),
//! read, joined, classified and judged as `scan` does, then written in every format and as
//! `explain`'s timelines. Never a panic; the JSON and SARIF reports parse; JUnit holds no
//! character XML 1.0 forbids; and no control character (ESC among them) or bidirectional
//! override reaches the terminal table, the timelines or the diagnostics raw.
#![no_main]

use std::collections::HashMap;

use abortaudit::report::OutputFormat;
use abortaudit::rules::Rules;
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

#[derive(Arbitrary, Debug)]
struct Input {
    /// Replacements, in the order the originals are first met.
    strings: Vec<String>,
    /// Whether to replace span names too (the turn's title, the table's operations).
    span_names: bool,
}

/// Attributes whose values are names and ids rather than the conventions' keywords.
const NAMES: &[&str] = &[
    "service.name",
    "service.instance.id",
    "gen_ai.tool.name",
    "gen_ai.tool.call.id",
    "gen_ai.conversation.id",
    "gen_ai.agent.name",
    "gen_ai.agent.id",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "url.path",
    "url.full",
    "http.route",
    "server.address",
    "user_agent.original",
    "messaging.destination.name",
    "messaging.system",
    "exception.message",
    "db.collection.name",
    "db.namespace",
    "db.system.name",
];

struct Replace<'a> {
    strings: &'a [String],
    seen: HashMap<String, usize>,
}

impl Replace<'_> {
    fn text(&mut self, value: &mut Value) {
        let Some(original) = value.as_str() else {
            return;
        };
        let next = self.seen.len();
        let n = *self.seen.entry(original.to_owned()).or_insert(next);
        if let Some(new) = self.strings.get(n) {
            *value = Value::String(new.clone());
        }
    }

    fn attributes(&mut self, attributes: &mut Value) {
        for kv in attributes.as_array_mut().into_iter().flatten() {
            if kv["key"].as_str().is_some_and(|k| NAMES.contains(&k)) {
                self.text(&mut kv["value"]["stringValue"]);
            }
        }
    }
}

fuzz_target!(|input: Input| {
    let mut replace = Replace {
        strings: &input.strings,
        seen: HashMap::new(),
    };
    let mut traces = String::new();
    for line in abortaudit_fuzz::small_scenario().lines() {
        let mut record: Value = serde_json::from_str(line).expect("the scenario is JSON");
        for resource in record["resourceSpans"].as_array_mut().into_iter().flatten() {
            replace.attributes(&mut resource["resource"]["attributes"]);
            for scope in resource["scopeSpans"].as_array_mut().into_iter().flatten() {
                replace.text(&mut scope["scope"]["name"]);
                for span in scope["spans"].as_array_mut().into_iter().flatten() {
                    if input.span_names {
                        replace.text(&mut span["name"]);
                    }
                    replace.attributes(&mut span["attributes"]);
                    replace.text(&mut span["status"]["message"]);
                    for event in span["events"].as_array_mut().into_iter().flatten() {
                        replace.attributes(&mut event["attributes"]);
                    }
                }
            }
        }
        traces.push_str(&record.to_string());
        traces.push('\n');
    }
    let rules = Rules::default();
    let mut inputs = abortaudit_fuzz::inputs(traces.as_bytes(), None);
    inputs.event_logs = vec![abortaudit::ingest::Source::Path(abortaudit_fuzz::scratch(
        "events.jsonl",
        abortaudit_fuzz::SCENARIO_EVENTS.as_bytes(),
    ))];
    let read = abortaudit_fuzz::read_whole(&inputs, &rules);
    if read.has_errors() {
        return;
    }
    let reports = abortaudit_fuzz::audit_and_report(&read, &rules, None, &OutputFormat::ALL);
    serde_json::from_slice::<Value>(reports.get(OutputFormat::Json))
        .expect("the JSON report is JSON");
    serde_json::from_slice::<Value>(reports.get(OutputFormat::Sarif))
        .expect("the SARIF report is JSON");
    abortaudit_fuzz::assert_terminal_safe("the table", reports.get(OutputFormat::Table));
    abortaudit_fuzz::assert_terminal_safe("the timeline", &reports.explain);
    abortaudit_fuzz::assert_terminal_safe("the diagnostics", &reports.stderr);
    let junit = std::str::from_utf8(reports.get(OutputFormat::Junit)).expect("JUnit is UTF-8");
    if let Some(c) = junit.chars().find(|&c| {
        matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}')
    }) {
        panic!("JUnit holds U+{:04X}, which XML 1.0 forbids", c as u32);
    }
});

//! Abort logs (`--aborts`): JSON lines of `conversation_id`, `time` (RFC 3339 or Unix
//! nanoseconds, as a number or text), `trace_id` and `reason`. The log is read with the small
//! scenario's traces and its records are placed on their turns (times within their precision
//! and the skew), then the audit is reported: never a panic, the JSON report parses, and no
//! reason or id reaches the terminal table or timeline raw.
#![no_main]

use abortaudit::report::OutputFormat;
use abortaudit::rules::Rules;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let rules = Rules::default();
    let traces = abortaudit_fuzz::small_scenario();
    let inputs = abortaudit_fuzz::inputs(traces.as_bytes(), Some(data));
    let read = abortaudit_fuzz::read_whole(&inputs, &rules);
    if read.has_errors() {
        return;
    }
    let reports = abortaudit_fuzz::audit_and_report(
        &read,
        &rules,
        None,
        &[OutputFormat::Json, OutputFormat::Table],
    );
    serde_json::from_slice::<serde_json::Value>(reports.get(OutputFormat::Json))
        .expect("the JSON report is JSON");
    abortaudit_fuzz::assert_terminal_safe("the table", reports.get(OutputFormat::Table));
    abortaudit_fuzz::assert_terminal_safe("the diagnostics", &reports.stderr);
    abortaudit_fuzz::assert_terminal_safe("the timeline", &reports.explain);
});

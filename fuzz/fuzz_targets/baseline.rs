//! Baselines (`scan --baseline REPORT`): any bytes are a baseline or an error, never a panic;
//! a baseline that loads judges the small scenario's findings (known, new, gone) and the JSON
//! and Markdown reports, which list the gone ones, are written.
#![no_main]

use abortaudit::report::OutputFormat;
use abortaudit::rules::Rules;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = abortaudit_fuzz::scratch("baseline.json", data);
    let Ok(baseline) = abortaudit::ingest::read_baseline(&path) else {
        return;
    };
    let rules = Rules::default();
    let read = abortaudit_fuzz::small_scenario_read();
    let reports = abortaudit_fuzz::audit_and_report(
        read,
        &rules,
        Some(&baseline),
        &[
            OutputFormat::Json,
            OutputFormat::Markdown,
            OutputFormat::Table,
        ],
    );
    serde_json::from_slice::<serde_json::Value>(reports.get(OutputFormat::Json))
        .expect("the JSON report is JSON");
    abortaudit_fuzz::assert_terminal_safe("the table", reports.get(OutputFormat::Table));
});

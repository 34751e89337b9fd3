//! The rules file (`abortaudit.toml` → `Rules`): any text is rules or an error, never a panic;
//! rules that load print as TOML (`abortaudit rules`) that loads back to the same rules; and
//! the small scenario is audited under them (the second pass's attribute list, the vendor
//! mappings, the join, the gate) with a JSON report that parses.
#![no_main]

use abortaudit::report::OutputFormat;
use abortaudit::rules::Rules;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(rules) = Rules::from_toml(text) else {
        return;
    };
    let printed = rules.to_toml();
    let again = Rules::from_toml(&printed)
        .unwrap_or_else(|e| panic!("printed rules do not load: {e:#}\n{printed}"));
    assert!(
        again == rules,
        "printed rules load as other rules:\n{printed}"
    );
    let _ = rules.attributes_read();
    let _ = rules.effective_vendors();
    let read = abortaudit_fuzz::small_scenario_read_with(&rules);
    if read.has_errors() {
        return;
    }
    let reports = abortaudit_fuzz::audit_and_report(&read, &rules, None, &[OutputFormat::Json]);
    serde_json::from_slice::<serde_json::Value>(reports.get(OutputFormat::Json))
        .expect("the JSON report is JSON");
});

//! Vendor event logs through the built-in mappings (Stripe, Standard Webhooks/Svix, Mailgun,
//! SendGrid, GitHub workflow runs and jobs) and Temporal histories: `--events` reads them with
//! `vendor::parse_events`. Never panics; what is read is counted per vendor.
#![no_main]

use abortaudit::rules::Rules;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    static RULES: std::sync::OnceLock<Rules> = std::sync::OnceLock::new();
    let rules = RULES.get_or_init(Rules::default);
    if let Ok(read) = abortaudit::ingest::vendor::parse_events("events", data, rules) {
        let counted: u64 = read.by_vendor.values().sum();
        assert_eq!(
            counted,
            read.events.len() as u64,
            "events counted per vendor"
        );
    }
    // Among the trace inputs, an event log is recognised by content.
    abortaudit_fuzz::read_any(data);
});

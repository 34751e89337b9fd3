//! OTLP/JSON Lines read in two passes (the survey, then the kept traces read back), as `scan`
//! reads a large export: `survey_above: 0` sends any input through it. The bytes may ask for
//! gzip or zstd and carry an abort log (`abortaudit_fuzz::two_pass_input`). Never panics, and the
//! audit of what was read is reported as JSON.
#![no_main]

use abortaudit::rules::Rules;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (traces, aborts) = abortaudit_fuzz::two_pass_input(data);
    let rules = Rules::default();
    let inputs = abortaudit_fuzz::inputs(&traces, aborts);
    let read = abortaudit_fuzz::read_two_pass(&inputs, &rules, &Default::default());
    if !read.ingested.has_errors() {
        abortaudit_fuzz::scan_json(&read.ingested, &rules);
    }
});

//! Zipkin v2 JSON (span array, single span, list of traces, JSON Lines): whatever the bytes, the reader never panics and every input ends as spans, a
//! diagnostic, an error or empty. The input is sniffed by content as the CLI does (plain, gzip or
//! zstd); the seed corpus steers the fuzzer to this format.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    abortaudit_fuzz::read_any(data);
});

//! The two-pass invariant (docs/architecture.md): the same bytes read whole and in two passes
//! give the same audit. A difference is a crash.
//!
//! The bytes are an OTLP/JSON Lines export, optionally gzip- or zstd-compressed and followed by
//! an abort log (`abortaudit_fuzz::two_pass_input`). Three reads:
//!
//! - whole, as `inspect` and `explain` read;
//! - in two passes as `scan` reads a large export (the traces that matter kept): the findings
//!   and the summary must be the whole read's, and its diagnostics some of the whole read's
//!   (a span of a trace that does not matter goes unread, so a bad value in it goes
//!   unreported: docs/large-exports.md, "What is and is not checked");
//! - in two passes keeping every trace the whole read has a span of: then each span must be
//!   the whole read's (with the attributes the audit reads, and of the events' only those that
//!   say what an exception was), and the diagnostics the same.
#![no_main]

use abortaudit::model::{Code, Diagnostic, Span};
use abortaudit::rules::Rules;
use abortaudit::rules::abort::EXCEPTION_ATTRIBUTES;
use libfuzzer_sys::fuzz_target;
use rustc_hash::FxHashSet;

fuzz_target!(|data: &[u8]| {
    let (traces, aborts) = abortaudit_fuzz::two_pass_input(data);
    let rules = Rules::default();
    let inputs = abortaudit_fuzz::inputs(&traces, aborts);
    let whole = abortaudit_fuzz::read_whole(&inputs, &rules);
    let two = abortaudit_fuzz::read_two_pass(&inputs, &rules, &FxHashSet::default());
    if !two.streamed {
        // Not OTLP/JSON Lines: both reads are the same whole read.
        return;
    }
    let errors =
        |i: &abortaudit::ingest::Ingested| i.errors().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(
        whole.has_errors(),
        two.ingested.has_errors(),
        "an input error in one read only: whole {:?}, two passes {:?}",
        errors(&whole),
        errors(&two.ingested)
    );

    // Every trace kept: the spans and diagnostics themselves.
    let every_trace: FxHashSet<_> = whole.spans.iter().map(|s| s.trace_id).collect();
    let full = abortaudit_fuzz::read_two_pass(&inputs, &rules, &every_trace);
    let read = rules.attributes_read();
    let expected: Vec<Span> = whole
        .spans
        .iter()
        .map(|s| {
            let mut s = s.clone();
            s.attributes.0.retain(|kv| read.contains(&kv.key));
            // Of an event's attributes, those that say what an exception was.
            let mut events = s.events.to_vec();
            for event in &mut events {
                event
                    .attributes
                    .0
                    .retain(|kv| EXCEPTION_ATTRIBUTES.contains(&&*kv.key));
            }
            s.events = events.into();
            s
        })
        .collect();
    if expected != full.ingested.spans {
        let at = expected
            .iter()
            .zip(&full.ingested.spans)
            .position(|(a, b)| a != b);
        panic!(
            "the spans read back differ from the whole read's: {} spans whole, {} in two passes; first difference at {at:?}:\nwhole: {:#?}\ntwo passes: {:#?}",
            expected.len(),
            full.ingested.spans.len(),
            at.and_then(|i| expected.get(i)),
            at.and_then(|i| full.ingested.spans.get(i)),
        );
    }
    // Known difference (fuzz/README.md): on text that is not JSON the reads may stop at
    // different places (an escape serde_json refuses, the syntax error after it), so the
    // message of a `malformed-json` diagnostic is not compared, only its line.
    let diagnostics = |i: &abortaudit::ingest::Ingested| -> Vec<Diagnostic> {
        i.diagnostics()
            .cloned()
            .map(|mut d| {
                if d.code == Code::MalformedJson {
                    d.message.clear();
                }
                // Likewise serde_json's words for a mistyped value differ between the typed
                // whole read and the raw first pass ("expected a sequence at line 1 column 860",
                // "expected a list of attributes"): only what was skipped is compared.
                if d.code == Code::InvalidOtlp
                    && let Some(at) = d.message.find(':')
                {
                    d.message.truncate(at);
                }
                d
            })
            .collect()
    };
    let whole_diagnostics = diagnostics(&whole);
    let (whole_only, two_only) = difference(&whole_diagnostics, &diagnostics(&full.ingested));
    check_two_only(&whole_diagnostics, &two_only);
    // Known differences (fuzz/README.md): the second pass skips the attributes the audit does
    // not read, so a bad value there goes unreported (`invalid-value`) and two copies of a span
    // that differ only there are plain duplicates (`conflicting-duplicate`); a span whose trace
    // or span id is unusable is never read back (`invalid-id`, see `check_two_only`; with an
    // unusable span id the whole read keeps no span of it, so its trace is not kept), so what
    // else the whole read says of it (a missing time…) goes unsaid: any diagnostic of a line
    // with such a span.
    let unusable_id_on = |line: Option<u64>| {
        whole_diagnostics.iter().any(|w| {
            w.code == Code::InvalidId
                && w.line == line
                && (w.message.contains(": traceId ") || w.message.contains(": spanId "))
        })
    };
    for d in &whole_only {
        assert!(
            matches!(
                d.code,
                Code::InvalidValue | Code::ConflictingDuplicate | Code::InvalidId
            ) || unusable_id_on(d.line),
            "a diagnostic of the whole read only, with every trace kept: {d:?}"
        );
    }

    // The traces that matter kept: the audit.
    if whole.has_errors() {
        return;
    }
    let a = abortaudit_fuzz::scan_json(&whole, &rules);
    let b = abortaudit_fuzz::scan_json(&two.ingested, &rules);
    assert_eq!(a["findings"], b["findings"], "findings differ");
    let mut summary_a = a["summary"].clone();
    let mut summary_b = b["summary"].clone();
    summary_a["diagnostics"] = serde_json::Value::Null;
    summary_b["diagnostics"] = serde_json::Value::Null;
    assert_eq!(summary_a, summary_b, "summaries differ");
    let (_, two_only) = difference(&whole_diagnostics, &diagnostics(&two.ingested));
    check_two_only(&whole_diagnostics, &two_only);
});

/// What each list has that the other has not, counting repeats.
fn difference(whole: &[Diagnostic], two: &[Diagnostic]) -> (Vec<Diagnostic>, Vec<Diagnostic>) {
    let mut whole_only = whole.to_vec();
    let mut two_only = Vec::new();
    for d in two {
        match whole_only.iter().position(|w| w == d) {
            Some(at) => {
                whole_only.remove(at);
            }
            None => two_only.push(d.clone()),
        }
    }
    (whole_only, two_only)
}

/// The two-pass read says nothing the whole read does not, but for one known difference: the
/// first pass words the diagnostic of a span whose trace id is unusable otherwise ("a span's
/// traceId" rather than "span NAME: traceId", and nothing of its span id and links), so such
/// an `invalid-id` diagnostic is held only to a line where the whole read has one.
fn check_two_only(whole: &[Diagnostic], two_only: &[Diagnostic]) {
    for d in two_only {
        assert!(
            d.code == Code::InvalidId
                && whole
                    .iter()
                    .any(|w| w.code == Code::InvalidId && w.line == d.line),
            "a diagnostic of the two-pass read only: {d:?}"
        );
    }
}

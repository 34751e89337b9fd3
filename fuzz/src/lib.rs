//! What the fuzz targets share: scratch files (the two-pass read, abort logs and baselines are
//! read from paths), the reads whole and in two passes through the library's public API, and
//! the audit and its reports as `scan` makes them.

use std::path::PathBuf;

use abortaudit::classify::{self, Gate, GatePolicy};
use abortaudit::correlate;
use abortaudit::ingest::{self, IngestOptions, Ingested, InputSet, Source};
use abortaudit::model::{Baseline, Category, TraceId};
use abortaudit::report::{self, OutputFormat, ScanView, Summary, Timeline};
use abortaudit::rules::Rules;
use rustc_hash::FxHashSet;

/// A compressed input may decompress to this much at most: bombs are refused quickly, and the
/// fuzzer's memory limit is never reached by a legitimate read.
pub const MAX_DECOMPRESSED: u64 = 16 << 20;

/// A file of this process's own (libFuzzer runs one input at a time per process), on tmpfs
/// when there is one.
pub fn scratch(name: &str, bytes: &[u8]) -> PathBuf {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("abortaudit-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("a scratch file");
    path
}

/// Inputs of one trace file and, optionally, one abort log, written to scratch files.
pub fn inputs(traces: &[u8], aborts: Option<&[u8]>) -> InputSet {
    InputSet {
        traces: vec![Source::Path(scratch("traces", traces))],
        event_logs: Vec::new(),
        abort_logs: aborts
            .map(|a| vec![Source::Path(scratch("aborts.jsonl", a))])
            .unwrap_or_default(),
    }
}

pub fn options(survey_above: u64) -> IngestOptions {
    IngestOptions {
        max_decompressed: Some(MAX_DECOMPRESSED),
        survey_above,
        ..IngestOptions::default()
    }
}

/// Every input read whole, as `inspect` and `explain` read them.
pub fn read_whole(inputs: &InputSet, rules: &Rules) -> Ingested {
    ingest::ingest_inputs(inputs, &options(u64::MAX), rules)
}

/// What a two-pass read gave.
pub struct TwoPass {
    pub ingested: Ingested,
    /// Whether any input was read in two passes at all.
    pub streamed: bool,
    /// The traces the second pass read back.
    pub kept: FxHashSet<TraceId>,
}

/// Every OTLP/JSON Lines input read in two passes (`survey_above: 0`), as `scan` reads a large
/// export: the traces that matter, and any of `also_keep`, are read back.
pub fn read_two_pass(inputs: &InputSet, rules: &Rules, also_keep: &FxHashSet<TraceId>) -> TwoPass {
    let options = options(0);
    let hidden = indicatif::ProgressBar::hidden();
    let plan = ingest::plan(inputs, &options);
    let streamed = plan.streamed_bytes() > 0;
    let first = ingest::first_pass(plan, &options, rules, &hidden);
    let signals = first.signals(rules);
    let mut kept = correlate::traces_that_matter(signals.may_abort, &signals.links);
    kept.extend(also_keep.iter().copied());
    let ingested = ingest::second_pass(first, kept.clone(), rules, &hidden);
    TwoPass {
        ingested,
        streamed,
        kept,
    }
}

/// The day suppressions are judged on: fixed, so that a run does not depend on the date.
pub const TODAY: &str = "2026-06-01";

/// Every report `scan` can write, and `explain`'s timeline of each conversation with a finding.
pub struct Reports {
    pub by_format: Vec<(OutputFormat, Vec<u8>)>,
    /// Diagnostics as a terminal format prints them on stderr.
    pub stderr: Vec<u8>,
    pub explain: Vec<u8>,
}

impl Reports {
    pub fn get(&self, format: OutputFormat) -> &[u8] {
        &self
            .by_format
            .iter()
            .find(|(f, _)| *f == format)
            .expect("every format was written")
            .1
    }
}

/// The audit of what was read, as `scan` does it (join, abort log records placed, findings,
/// the gate with the rules' suppressions and an optional baseline), reported in `formats`.
pub fn audit_and_report(
    ingested: &Ingested,
    rules: &Rules,
    baseline: Option<&Baseline>,
    formats: &[OutputFormat],
) -> Reports {
    let mut joined = correlate::join(&ingested.spans, &ingested.events, rules);
    let unplaced = correlate::place_aborts(&mut joined, &ingested.aborts, rules.skew_ns());
    let audit = classify::classify(&joined, rules);
    let fail_on: Vec<Category> = rules.gate.fail_on.clone();
    let gate = Gate::judge(
        &audit,
        &GatePolicy::from_rules(rules, &fail_on, TODAY, baseline),
    );
    let summary = Summary::new(ingested, &joined.facts(), &audit, &gate, unplaced.len());
    let timelines = Timeline::of_findings(&joined, &audit);
    let mut explain = Vec::new();
    for timeline in &timelines {
        report::timeline::explain(timeline, &mut explain).expect("writing to memory");
    }
    let view = ScanView {
        audit: &audit,
        summary: &summary,
        gate: &gate,
        ingested,
        timelines: &timelines,
    };
    let mut stderr = Vec::new();
    let by_format = formats
        .iter()
        .map(|&format| {
            let mut out = Vec::new();
            report::write_scan(format, &view, &mut out, &mut stderr).expect("writing to memory");
            (format, out)
        })
        .collect();
    Reports {
        by_format,
        stderr,
        explain,
    }
}

/// The scan's JSON report of what was read.
pub fn scan_json(ingested: &Ingested, rules: &Rules) -> serde_json::Value {
    let reports = audit_and_report(ingested, rules, None, &[OutputFormat::Json]);
    serde_json::from_slice(reports.get(OutputFormat::Json)).expect("the JSON report is JSON")
}

/// Fails on any character a terminal could act on (C0 and C1 controls, ESC among them, DEL and
/// the bidirectional overrides); only line ends are allowed.
pub fn assert_terminal_safe(what: &str, text: &[u8]) {
    let text = std::str::from_utf8(text).unwrap_or_else(|e| panic!("{what} is not UTF-8: {e}"));
    for (line_no, line) in text.lines().enumerate() {
        if let Some(c) = line.chars().find(|&c| {
            c.is_control()
                || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
        }) {
            panic!(
                "{what}: line {} holds the raw character U+{:04X}: {line:?}",
                line_no + 1,
                c as u32
            );
        }
    }
}

/// Reads `bytes` through the whole-read entry point that sniffs every trace format (and vendor
/// event logs among the traces), and checks what the reader promises: the report serialises,
/// and an input is an error, a diagnostic, spans, or empty.
pub fn read_any(bytes: &[u8]) {
    let (report, spans) = ingest::parse_input_with("input", bytes, &options(u64::MAX));
    serde_json::to_string(&report).expect("an input report serialises");
    let reported = report.error.is_some() || !report.diagnostics.is_empty();
    let spans_read = report.counts.spans > 0 || report.counts.vendor_events > 0;
    let empty = bytes.iter().all(u8::is_ascii_whitespace)
        || bytes
            .strip_prefix(b"\xEF\xBB\xBF")
            .is_some_and(|b| b.iter().all(u8::is_ascii_whitespace));
    assert!(
        reported || spans_read || empty || report.format == ingest::Format::Empty,
        "neither spans nor events nor a diagnostic nor an error: {report:?}"
    );
    assert!(
        spans.len() as u64 <= report.counts.spans,
        "more spans kept ({}) than read ({})",
        spans.len(),
        report.counts.spans
    );
}

/// The scenario fixtures shipped with the repository (traces and the Stripe event log), which
/// have a finding of every category.
const SCENARIO_TRACES: [&str; 3] = [
    include_str!("../../fixtures/scenarios/traces/agent.jsonl"),
    include_str!("../../fixtures/scenarios/traces/vendor.jsonl"),
    include_str!("../../fixtures/scenarios/traces/worker.jsonl"),
];
pub const SCENARIO_EVENTS: &str = include_str!("../../fixtures/scenarios/events/stripe.jsonl");

/// A small audit with findings of every category: the traces of the scenario fixtures' findings
/// and those linked into them, as OTLP/JSON Lines, one `ResourceSpans` a line. Made once per
/// process.
pub fn small_scenario() -> &'static str {
    static SMALL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SMALL.get_or_init(|| {
        let rules = Rules::default();
        let all: String = SCENARIO_TRACES.concat();
        let mut set = inputs(all.as_bytes(), None);
        set.event_logs = vec![Source::Path(scratch(
            "events.jsonl",
            SCENARIO_EVENTS.as_bytes(),
        ))];
        let read = read_whole(&set, &rules);
        let joined = correlate::join(&read.spans, &read.events, &rules);
        let audit = classify::classify(&joined, &rules);
        let mut seen = Vec::new();
        let mut findings = FxHashSet::default();
        for f in &audit.findings {
            if !seen.contains(&f.category) {
                seen.push(f.category);
                findings.insert(f.trace_id);
            }
        }
        let links: Vec<(TraceId, TraceId)> = read
            .spans
            .iter()
            .flat_map(|s| s.links.iter().map(|l| (l.trace_id, s.trace_id)))
            .collect();
        let keep: FxHashSet<String> = correlate::traces_that_matter(findings, &links)
            .iter()
            .map(|t| t.to_string())
            .collect();
        let mut out = String::new();
        for line in all.lines() {
            let mut record: serde_json::Value = serde_json::from_str(line).expect("a fixture line");
            for resource in record["resourceSpans"].as_array_mut().into_iter().flatten() {
                for scope in resource["scopeSpans"].as_array_mut().into_iter().flatten() {
                    if let Some(spans) = scope["spans"].as_array_mut() {
                        spans.retain(|s| {
                            s["traceId"]
                                .as_str()
                                .is_some_and(|t| keep.contains(&t.to_ascii_lowercase()))
                        });
                    }
                }
                if let Some(scopes) = resource["scopeSpans"].as_array_mut() {
                    scopes.retain(|s| s["spans"].as_array().is_some_and(|v| !v.is_empty()));
                }
            }
            if let Some(resources) = record["resourceSpans"].as_array_mut() {
                resources.retain(|r| r["scopeSpans"].as_array().is_some_and(|v| !v.is_empty()));
                for resource in resources.iter() {
                    out.push_str(&serde_json::json!({ "resourceSpans": [resource] }).to_string());
                    out.push('\n');
                }
            }
        }
        out
    })
}

/// The small scenario read whole under `rules`, with the Stripe events.
pub fn small_scenario_read_with(rules: &Rules) -> Ingested {
    let mut set = inputs(small_scenario().as_bytes(), None);
    set.event_logs = vec![Source::Path(scratch(
        "events.jsonl",
        SCENARIO_EVENTS.as_bytes(),
    ))];
    read_whole(&set, rules)
}

/// The small scenario read whole under the default rules. Made once per process.
pub fn small_scenario_read() -> &'static Ingested {
    static READ: std::sync::OnceLock<Ingested> = std::sync::OnceLock::new();
    READ.get_or_init(|| small_scenario_read_with(&Rules::default()))
}

/// How the two-pass targets take their bytes: a first byte 0x01 or 0x02 asks for the rest to
/// be gzip- or zstd-compressed before it is written (both are read in two passes, decompressed
/// as they go), and an abort log may follow the traces after a line `--aborts--`.
pub fn two_pass_input(data: &[u8]) -> (Vec<u8>, Option<&[u8]>) {
    const SEPARATOR: &[u8] = b"\n--aborts--\n";
    let (mode, rest) = match data.first() {
        Some(&m @ (1 | 2)) => (m, &data[1..]),
        _ => (0, data),
    };
    let (traces, aborts) = match rest.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
        Some(at) => (&rest[..at + 1], Some(&rest[at + SEPARATOR.len()..])),
        None => (rest, None),
    };
    let traces = match mode {
        1 => {
            use std::io::Write as _;
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(traces).expect("gzip to memory");
            gz.finish().expect("gzip to memory")
        }
        2 => ruzstd::encoding::compress_to_vec(traces, ruzstd::encoding::CompressionLevel::Fastest),
        _ => traces.to_vec(),
    };
    (traces, aborts)
}

//! `abortaudit scan`: the audit. Inputs are read (large exports in two passes, keeping only the
//! traces that matter), joined, classified, judged by the gate (suppressions and a baseline
//! included) and reported in one format on stdout and any others into files; the gate decides
//! the exit status.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};

use super::{ExitStatus, input_status, progress, refused};
use crate::classify::{Gate, GatePolicy};
use crate::config::ScanConfig;
use crate::model::time::date;
use crate::report::{OutputFormat, ScanView, Summary, Timeline};
use crate::{classify, correlate, ingest, report};

/// Set, a store's scan says on stderr what its queries cost (for benchmarks).
const STORE_STATS: &str = "ABORTAUDIT_STORE_STATS";

/// Where GitHub Actions takes a job's Markdown summary from.
const GITHUB_STEP_SUMMARY: &str = "GITHUB_STEP_SUMMARY";

pub fn run(config: &ScanConfig, out: &mut dyn Write, err: &mut dyn Write) -> Result<ExitStatus> {
    let input = &config.input;
    let rules = &config.rules;
    let baseline = match &config.baseline {
        Some(path) => Some(ingest::read_baseline(path)?),
        None => None,
    };
    let mut ingested = match &input.store {
        // A store's survey runs in SQL, on the server.
        Some(store) => {
            let (ingested, facts) =
                ingest::read_store(store, &input.inputs, &input.options, rules)?;
            if std::env::var_os(STORE_STATS).is_some_and(|v| !v.is_empty()) {
                writeln!(
                    err,
                    "{STORE_STATS}: {} queries, {} rows, {} bytes received",
                    facts.queries, facts.rows_read, facts.bytes_received
                )?;
            }
            ingested
        }
        None => {
            let plan = ingest::plan(&input.inputs, &input.options);
            let progress = progress::bytes(plan.streamed_bytes());
            let first = ingest::first_pass(plan, &input.options, rules, &progress);
            let signals = first.signals(rules);
            let traces = correlate::traces_that_matter(signals.may_abort, &signals.links);
            let ingested = ingest::second_pass(first, traces, rules, &progress);
            progress.finish_and_clear();
            ingested
        }
    };

    if ingested.has_errors() {
        return refused(&ingested, input.strict, err);
    }
    // A survey may keep no span at all (no turn was aborted); only an input with no spans
    // read leaves nothing to audit.
    if ingested.total.spans == 0 {
        bail!("no spans were read from the inputs: there is nothing to audit");
    }
    let mut joined = correlate::join(&ingested.spans, &ingested.events, rules);
    let unplaced = correlate::place_aborts(&mut joined, &ingested.aborts, rules.skew_ns());
    let audit = classify::classify(&joined, rules);
    let today = date(unix_now());
    let gate = Gate::judge(
        &audit,
        &GatePolicy::from_rules(rules, &config.fail_on, &today, baseline.as_ref()),
    );
    for rule in &gate.expired {
        writeln!(
            err,
            "warning: {} expired: it no longer suppresses ({})",
            report::sanitize(&rule.describe()),
            report::sanitize(&rule.reason)
        )?;
    }
    let summary = Summary::new(&ingested, &joined, &audit, &gate, unplaced.len());
    let formats = std::iter::once(config.format).chain(config.outputs.iter().map(|(f, _)| *f));
    // With the GitHub format, the Markdown report goes to the job's summary too.
    let step_summary = std::env::var_os(GITHUB_STEP_SUMMARY)
        .filter(|p| !p.is_empty())
        .filter(|_| formats.clone().any(|f| f == OutputFormat::Github));
    // Timelines are drawn from the spans, which go next: built now, for the conversations with
    // findings only.
    let timelines: Vec<Timeline> =
        if formats.clone().any(OutputFormat::needs_timelines) || step_summary.is_some() {
            let mut conversations: Vec<&str> = audit
                .findings
                .iter()
                .map(|f| f.conversation_id.as_str())
                .collect();
            conversations.dedup();
            conversations
                .into_iter()
                .filter_map(|c| Timeline::build(c, &joined, &audit))
                .collect()
        } else {
            Vec::new()
        };
    // The findings stand on their own: the join and the spans behind them, most of the memory
    // on a large export, are let go. Freeing every span takes a while, so another thread does
    // it while the report is written (which allocates little; the peak is behind us, in the
    // join).
    drop(joined);
    let spans = std::mem::take(&mut ingested.spans);
    rayon::spawn(move || drop(spans));

    let view = ScanView {
        audit: &audit,
        summary: &summary,
        gate: &gate,
        ingested: &ingested,
        timelines: &timelines,
    };
    // The gate's verdict is known: a reader that stops early (`| head`) does not change it.
    match report::write_scan(config.format, &view, out, err) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        written => written?,
    }
    for (format, path) in &config.outputs {
        write_file(path, |file| {
            report::write_scan(*format, &view, file, &mut std::io::sink())
        })?;
    }
    if let Some(path) = step_summary {
        append_file(Path::new(&path), |file| {
            report::write_scan(OutputFormat::Markdown, &view, file, &mut std::io::sink())
        })
        .with_context(|| format!("{GITHUB_STEP_SUMMARY}={}", Path::new(&path).display()))?;
    }
    if let Some(status) = input_status(&ingested, input.strict, err)? {
        return Ok(status);
    }
    Ok(if gate.failed && !config.exit_zero {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn write_file(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let file = File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    let mut file = BufWriter::new(file);
    write(&mut file)
        .and_then(|()| file.flush())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn append_file(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .context("cannot append to it")?;
    let mut file = BufWriter::new(file);
    write(&mut file).and_then(|()| file.flush())?;
    Ok(())
}

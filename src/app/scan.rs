//! `abortaudit scan`: the audit. Inputs are read (large exports in two passes, keeping only the
//! traces that matter), joined, classified, judged by the gate (suppressions and a baseline
//! included) and reported in one format on stdout and any others into files; the gate decides
//! the exit status.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};

use indicatif::ProgressBar;
use rustc_hash::FxHashSet;

use super::{ExitStatus, input_status, progress, refused};
use crate::classify::{Audit, Gate, GatePolicy};
use crate::config::ScanConfig;
use crate::correlate::JoinFacts;
use crate::ingest::Ingested;
use crate::model::time::date;
use crate::model::{Span, TraceId};
use crate::report::{OutputFormat, ScanView, Summary, Timeline};
use crate::rules::Rules;
use crate::util::workers::one_item_a_thread;
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
    let formats = std::iter::once(config.format).chain(config.outputs.iter().map(|(f, _)| *f));
    // With the GitHub format, the Markdown report goes to the job's summary too.
    let step_summary = std::env::var_os(GITHUB_STEP_SUMMARY)
        .filter(|p| !p.is_empty())
        .filter(|_| formats.clone().any(|f| f == OutputFormat::Github));
    let needs_timelines =
        formats.clone().any(OutputFormat::needs_timelines) || step_summary.is_some();
    let audited = match &input.store {
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
            Audited::Whole(ingested)
        }
        None => {
            let plan = ingest::plan(&input.inputs, &input.options);
            let progress = progress::bytes(plan.streamed_bytes());
            // Traces are noted with their conversations, for the groups of the second pass.
            let mut first =
                ingest::first_pass_by_conversation(plan, &input.options, rules, &progress);
            let signals = first.signals(rules);
            let traces = correlate::traces_that_matter(signals.may_abort, &signals.links);
            let audited = match in_groups(
                &mut first,
                &traces,
                &signals.links,
                input.options.scan_group,
                rules,
                needs_timelines,
                &progress,
            ) {
                Some(audited) => audited,
                None => Audited::Whole(ingest::second_pass(first, traces, rules, &progress)),
            };
            progress.finish_and_clear();
            audited
        }
    };
    let (ingested, analysed) = match audited {
        Audited::Whole(mut ingested) => {
            if ingested.has_errors() {
                return refused(&ingested, input.strict, err);
            }
            // A survey may keep no span at all (no turn was aborted); only an input with no
            // spans read leaves nothing to audit.
            if ingested.total.spans == 0 {
                bail!("no spans were read from the inputs: there is nothing to audit");
            }
            let spans = std::mem::take(&mut ingested.spans);
            let analysed = analyse(&spans, &ingested, rules, needs_timelines);
            // Freeing every span takes a while, so another thread does it while the report is
            // written (which allocates little; the peak is behind us, in the join).
            rayon::spawn(move || drop(spans));
            (ingested, analysed)
        }
        Audited::InGroups(ingested, analysed) => (ingested, *analysed),
    };
    let Analysed {
        facts,
        audit,
        unplaced,
        timelines,
        ..
    } = analysed;
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
    let summary = Summary::new(&ingested, &facts, &audit, &gate, unplaced);

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
    let status = if gate.failed && !config.exit_zero {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    };
    // Freeing the findings and what was read takes a while (a hundredth of a large scan),
    // and the command is about to end: another thread does it.
    rayon::spawn(move || drop((audit, ingested, timelines, summary, facts)));
    Ok(status)
}

/// The inputs read, and what the audit found in them.
enum Audited {
    /// Spans to join and classify at once.
    Whole(Ingested),
    /// A large export joined and classified a group of conversations at a time: the inputs as
    /// read (without spans), and what the groups found, put together.
    InGroups(Ingested, Box<Analysed>),
}

/// What the join and the classification found, and the timelines drawn from the join.
#[derive(Default)]
struct Analysed {
    facts: JoinFacts,
    audit: Audit,
    /// Abort log records placed on no turn.
    unplaced: usize,
    timelines: Vec<Timeline>,
    /// The ids of the conversations joined.
    conversations: Vec<String>,
}

/// Joins and classifies `spans` (those of `ingested`, taken out of it), drawing the timelines
/// of the conversations with findings when a format needs them: the spans can go afterwards.
fn analyse(spans: &[Span], ingested: &Ingested, rules: &Rules, timelines: bool) -> Analysed {
    let mut joined = correlate::join(spans, &ingested.events, rules);
    let unplaced = correlate::place_aborts(&mut joined, &ingested.aborts, rules.skew_ns());
    let audit = classify::classify(&joined, rules);
    let timelines = if timelines {
        Timeline::of_findings(&joined, &audit)
    } else {
        Vec::new()
    };
    Analysed {
        facts: joined.facts(),
        audit,
        unplaced: unplaced.len(),
        timelines,
        conversations: joined.conversations.iter().map(|c| c.id.clone()).collect(),
    }
}

/// The second pass and the audit a group of the traces that matter at a time on each thread
/// (see `FirstPass::scan_groups`), so that the spans of a group a thread are in memory at once
/// rather than those of every aborted turn. `None` when the inputs cannot be read so, or when
/// the groups turn out to split a conversation of the join or to say something of their spans:
/// the traces are then read back in one group.
fn in_groups(
    first: &mut ingest::FirstPass,
    traces: &FxHashSet<TraceId>,
    links: &[(TraceId, TraceId)],
    group_text: u64,
    rules: &Rules,
    timelines: bool,
    progress: &ProgressBar,
) -> Option<Audited> {
    // The groups are read and classified side by side, one a thread, so that each thread
    // holds its share of the span text.
    let threads = rayon::current_num_threads().max(1);
    let groups = first.scan_groups(traces, links, (group_text / threads as u64).max(1), threads)?;
    if groups.len() < 2 {
        return None;
    }
    let first = &*first;
    let mut facts = Vec::with_capacity(groups.len());
    let mut analysed = Analysed::default();
    let mut timelines_of: Vec<Timeline> = Vec::new();
    // Every conversation the join found, to tell one split between groups.
    let mut conversations: FxHashSet<String> = FxHashSet::default();
    let mut split = false;
    // A compressed input's kept spans are written out on one more thread while the groups
    // are read, each once they are there.
    std::thread::scope(|scope| {
        if first.spills() {
            scope.spawn(|| first.fill_spills(progress));
        }
        one_item_a_thread(
            groups.into_iter().enumerate().collect(),
            threads,
            |(number, traces)| {
                let mut group = first.read_group(number, traces, rules, progress);
                let spans = std::mem::take(&mut group.ingested.spans);
                let part = analyse(&spans, &group.ingested, rules, timelines);
                drop(spans);
                (part, group.into_facts())
            },
            // Each group's findings put with the others' as it comes, so that they are not held
            // twice.
            |(part, group)| {
                for conversation in part.conversations {
                    if !conversations.insert(conversation) {
                        split = true;
                        return false;
                    }
                }
                analysed.facts.add(&part.facts);
                analysed.unplaced += part.unplaced;
                analysed.audit.add(part.audit);
                timelines_of.extend(part.timelines);
                facts.push(group);
                true
            },
        );
    });
    if split {
        return None;
    }
    let ingested = ingest::combine_groups(facts)?;
    if ingested.has_errors() || ingested.total.spans == 0 {
        return None;
    }
    analysed.audit.sort();
    // In the order of the findings, by conversation.
    timelines_of.sort_by(|a, b| a.conversation.cmp(&b.conversation));
    analysed.timelines = timelines_of;
    Some(Audited::InGroups(ingested, Box::new(analysed)))
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

//! The commands: each orchestrates the stages (ingest → correlate → classify → report) and
//! decides the exit status. One file per subcommand.

mod explain;
mod inspect;
mod progress;
mod rules;
mod scan;

use std::io::Write;

use anyhow::Result;

use crate::config::Task;
use crate::ingest::Ingested;
use crate::report::sanitize;

/// How a run ended, as the process exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// No finding at a failing level.
    Success,
    /// The gate failed: findings in a failing category.
    Failure,
    /// The tool could not do its job.
    Error,
}

impl ExitStatus {
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
            ExitStatus::Error => 2,
        }
    }
}

/// The most threads per core the pool is given: more than a few per core only wait for the
/// cores, and each costs a stack and a share of every parallel loop's pieces (100,000 threads
/// took over 20 s to start).
const THREADS_PER_CORE: usize = 4;

/// Threads allowed whatever the cores, so that runs on a small machine can still be checked
/// against many threads.
const THREADS_AT_LEAST: usize = 16;

/// Has glibc's malloc map every block of a megabyte or more on its own, and so give it back
/// when it is freed. By default glibc raises that threshold to the size of each such block
/// freed (up to 32 MiB), after which blocks of megabytes come from its heaps, where a freed
/// one stays mapped: the buffers of a compressed export's first pass then held about 8 MiB
/// for the rest of the run, above the peak a plain export's scan reaches. No time is lost
/// (blocks that large are mapped, grown and given back as a few calls each).
pub fn give_large_blocks_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a parameter of the allocator, before any thread is started.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// Starts the thread pool: as many threads as cores, or `RAYON_NUM_THREADS` (rayon's own
/// variable) up to `THREADS_PER_CORE` per core (`THREADS_AT_LEAST` at least), saying so on
/// `err` when it asks for more.
pub fn start_thread_pool(err: &mut dyn Write) {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let cap = (cores * THREADS_PER_CORE).max(THREADS_AT_LEAST);
    let asked = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|n| n.trim().parse::<usize>().ok());
    if let Some(asked) = asked.filter(|n| *n > cap) {
        let _ = writeln!(
            err,
            "warning: RAYON_NUM_THREADS={asked} is more threads than {cores} cores can use: using {cap}"
        );
        // Fails only if the pool was started already, when it keeps its threads.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(cap)
            .build_global();
    }
}

/// Runs a resolved task: reports to `out`, diagnostics and errors to `err`.
pub fn run(task: Task, out: &mut dyn Write, err: &mut dyn Write) -> Result<ExitStatus> {
    match task {
        Task::Rules(rules) => rules::run(&rules, out),
        Task::Inspect(config) => inspect::run(&config, out, err),
        Task::Scan(config) => scan::run(&config, out, err),
        Task::Explain(config) => explain::run(&config, out, err),
    }
}

/// An input could not be used, so there is no report: its diagnostics (which say why, often)
/// and the errors go to stderr.
fn refused(ingested: &Ingested, strict: bool, err: &mut dyn Write) -> Result<ExitStatus> {
    crate::report::print_diagnostics(ingested, err)?;
    Ok(input_status(ingested, strict, err)?.unwrap_or(ExitStatus::Error))
}

/// Prints input errors; `Some(Error)` when an input could not be used, or when `--strict` is on
/// and any input produced a diagnostic.
fn input_status(
    ingested: &Ingested,
    strict: bool,
    err: &mut dyn Write,
) -> Result<Option<ExitStatus>> {
    let mut status = None;
    for error in ingested.errors() {
        writeln!(err, "error: {}", sanitize(error))?;
        status = Some(ExitStatus::Error);
    }
    let diagnostics = ingested.diagnostics().count();
    if strict && diagnostics > 0 {
        writeln!(
            err,
            "error: {diagnostics} diagnostics in the inputs and --strict is set"
        )?;
        status = Some(ExitStatus::Error);
    }
    Ok(status)
}

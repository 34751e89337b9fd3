//! The command line, as clap sees it. Nothing here is used past `config`, which turns it into
//! a resolved task.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Exit status:
  0  the gate passed: no finding in a --fail-on category (by default client_gone, late_queued,
     dispatched_after_abort) that is neither suppressed nor in the --baseline; or --exit-zero
  1  the gate failed, whatever the --format and --output
  2  the audit could not be done: bad usage, an unreadable input, or diagnostics under --strict

Start with `abortaudit inspect FILE` to check that your export is understood, then
`abortaudit scan FILE`. Inputs are files, directories (read recursively) or `-` for stdin;
their format is recognised from their content.";

/// Finds writes that landed after a user cancelled an LLM agent conversation.
///
/// abortaudit replays OpenTelemetry trace exports and follows each tool call that was in
/// flight when the user pressed Stop, through the services it called and the queues they fed,
/// to the commits that happened anyway.
#[derive(Debug, Parser)]
#[command(name = "abortaudit", version, after_help = AFTER_HELP, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Audit traces: report every write that landed after a user aborted
    Scan(ScanArgs),
    /// Show one conversation as a timeline around its abort
    Explain(ExplainArgs),
    /// Show what was read from each input: format, spans, traces, diagnostics
    Inspect(InspectArgs),
    /// Print the effective detection rules as TOML (save as abortaudit.toml to edit)
    Rules(RulesArgs),
}

#[derive(Debug, Args)]
pub struct InputArgs {
    /// Trace files or directories (read recursively); `-` reads standard input. `scan` and
    /// `inspect` also read a ClickHouse store, `clickhouse://HOST:PORT/DATABASE?table=otel_traces`
    /// (`https://` for TLS), with --since
    #[arg(value_name = "INPUT", required_unless_present = "events")]
    pub inputs: Vec<PathBuf>,

    /// Vendor event logs (Stripe, Mailgun, SendGrid, GitHub, Temporal, Standard Webhooks, or
    /// any JSON log through a [[vendor]] mapping in the rules); event logs given as INPUT are
    /// recognised too
    #[arg(long, value_name = "LOG")]
    pub events: Vec<PathBuf>,

    /// Abort logs: the user's Stops as a front end recorded them, one JSON object a line
    /// (`conversation_id`, `time` as RFC 3339 or Unix nanoseconds, optional `trace_id`,
    /// `reason`)
    #[arg(long, value_name = "LOG")]
    pub aborts: Vec<PathBuf>,

    /// Exit with status 2 if any input produced a diagnostic (a malformed line, a bad id…)
    #[arg(long)]
    pub strict: bool,

    /// A fixed limit on what one compressed input may decompress to (`512MiB`, `8GiB`,
    /// `unlimited`), in place of the default guard against decompression bombs, which refuses
    /// an input that decompresses more than 300 to 1 past 64 MiB [default:
    /// $ABORTAUDIT_MAX_DECOMPRESSED, else no fixed limit]
    #[arg(long, value_name = "SIZE")]
    pub max_decompressed: Option<String>,

    /// The most input bytes held in memory at once by the inputs being read, all together
    /// (files read whole, what compressed ones decompress to); an input that needs more is
    /// read alone [default: $ABORTAUDIT_MEMORY_BUDGET, else 1GiB]
    #[arg(long, value_name = "SIZE")]
    pub memory_budget: Option<String>,
}

/// The window of a ClickHouse store (`scan` and `inspect`).
#[derive(Debug, Default, Args)]
pub struct StoreArgs {
    /// A store's window starts here: a duration ago (`24h`, `90m`) or an RFC 3339 time;
    /// required for a store
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,

    /// A store's window ends here (a duration ago, or RFC 3339) [default: now]
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,

    /// How far past the window's ends a store is read for the work its aborted turns started
    /// (late workers) [default: 1h]
    #[arg(long, value_name = "DURATION")]
    pub grace: Option<String>,
}

#[derive(Debug, Args)]
pub struct RulesFileArgs {
    /// Detection rules file [default: ./abortaudit.toml when it exists, else built-in rules]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    #[command(flatten)]
    pub input: InputArgs,

    #[command(flatten)]
    pub store: StoreArgs,

    #[command(flatten)]
    pub rules: RulesFileArgs,

    /// Output format
    #[arg(long, short = 'f', value_enum, default_value_t = ScanFormat::Table)]
    pub format: ScanFormat,

    /// Categories that fail the gate (comma-separated), e.g. `client_gone,late_queued`;
    /// `none` never fails [default: client_gone,late_queued,dispatched_after_abort]
    #[arg(long, value_name = "CATEGORIES", value_delimiter = ',')]
    pub fail_on: Option<Vec<String>>,

    /// Report findings but exit with status 0 even when the gate fails
    #[arg(long)]
    pub exit_zero: bool,

    /// Also write a report in FORMAT to PATH (repeatable), e.g. `junit=report.xml`; the exit
    /// status is the same whatever the outputs
    #[arg(long, value_name = "FORMAT=PATH")]
    pub output: Vec<String>,

    /// A previous run's JSON report: only findings it did not have fail the gate, and the
    /// report says which of its findings are gone
    #[arg(long, value_name = "REPORT")]
    pub baseline: Option<PathBuf>,

    /// Ignore the rules file's [[allow]] suppressions
    #[arg(long)]
    pub no_allow: bool,

    /// Clock skew tolerated between hosts, e.g. `250ms`; a write closer to the abort than
    /// this (plus the timestamps' precision) is reported as ambiguous [default: from the rules, 10ms]
    #[arg(long, value_name = "DURATION")]
    pub skew: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScanFormat {
    /// Findings grouped by conversation, for a terminal
    Table,
    /// The stable `abortaudit/v1` schema, for scripts
    Json,
    /// A postmortem page: the findings, their evidence and a Mermaid timeline per conversation
    Markdown,
    /// JUnit XML: a test case per aborted turn, a failure per gating finding
    Junit,
    /// SARIF 2.1.0, for code-scanning dashboards
    Sarif,
    /// GitHub Actions workflow commands (annotations); with GITHUB_STEP_SUMMARY set, the
    /// Markdown report is appended there too
    Github,
    /// One self-contained HTML page with a timeline per conversation
    Html,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The conversation to show (its `gen_ai.conversation.id` or equivalent, or a trace id)
    #[arg(value_name = "CONVERSATION_ID")]
    pub conversation: String,

    #[command(flatten)]
    pub input: InputArgs,

    #[command(flatten)]
    pub rules: RulesFileArgs,

    /// Clock skew tolerated between hosts, e.g. `250ms`
    #[arg(long, value_name = "DURATION")]
    pub skew: Option<String>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    #[command(flatten)]
    pub input: InputArgs,

    #[command(flatten)]
    pub store: StoreArgs,

    #[command(flatten)]
    pub rules: RulesFileArgs,

    /// Output format
    #[arg(long, short = 'f', value_enum, default_value_t = InspectFormat::Table)]
    pub format: InspectFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InspectFormat {
    /// One row per input and a total
    Table,
    /// The stable `abortaudit-inspect/v1` schema
    Json,
}

#[derive(Debug, Args)]
pub struct RulesArgs {
    #[command(flatten)]
    pub rules: RulesFileArgs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }
}

//! The resolved configuration: command-line arguments and the rules file turned into plain
//! data. No clap type goes further than this module.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};

use crate::cli::{Cli, Command, InputArgs, InspectFormat, RulesFileArgs, ScanFormat, StoreArgs};
use crate::ingest::clickhouse::{Store, StoreUrl, Window, is_store_url};
use crate::ingest::{IngestOptions, InputSet, Source};
use crate::model::Category;
use crate::model::time::parse_rfc3339;
use crate::report::{self, OutputFormat};
use crate::rules::Rules;
use crate::util::units::{Nanos, parse_duration, parse_size};

/// What the user asked for, resolved.
#[derive(Debug)]
pub enum Task {
    Inspect(InspectConfig),
    Scan(ScanConfig),
    Explain(ExplainConfig),
    Rules(Rules),
}

/// What to read and how: shared by every command that reads inputs.
#[derive(Debug)]
pub struct InputConfig {
    pub inputs: InputSet,
    pub options: IngestOptions,
    /// Any diagnostic makes the run fail with status 2.
    pub strict: bool,
    /// A ClickHouse store to read instead of trace files, and its window.
    pub store: Option<Store>,
}

#[derive(Debug)]
pub struct InspectConfig {
    pub input: InputConfig,
    pub rules: Rules,
    pub format: report::InspectFormat,
}

#[derive(Debug)]
pub struct ScanConfig {
    pub input: InputConfig,
    pub rules: Rules,
    pub format: OutputFormat,
    /// More reports, written to files.
    pub outputs: Vec<(OutputFormat, PathBuf)>,
    pub fail_on: Vec<Category>,
    pub exit_zero: bool,
    /// A previous run's JSON report.
    pub baseline: Option<PathBuf>,
}

#[derive(Debug)]
pub struct ExplainConfig {
    pub input: InputConfig,
    pub rules: Rules,
    pub conversation: String,
}

/// The environment variable that overrides `DEFAULT_SURVEY_ABOVE` (`0` surveys every
/// OTLP/JSON Lines file, plain or compressed; `unlimited` never surveys).
pub const SURVEY_ABOVE_ENV: &str = "ABORTAUDIT_SURVEY_ABOVE";

/// The environment variable that sets a fixed decompression limit in place of the ratio guard
/// (`4GiB`, `512MiB`, `unlimited`…; `IngestOptions::max_decompressed`).
pub const MAX_DECOMPRESSED_ENV: &str = "ABORTAUDIT_MAX_DECOMPRESSED";

/// The environment variable that overrides `DEFAULT_INSPECT_GROUP` (the span text `inspect`
/// joins at once on a large export; for tests and tuning).
pub const INSPECT_GROUP_ENV: &str = "ABORTAUDIT_INSPECT_GROUP";

/// The environment variable that overrides `DEFAULT_SCAN_GROUP`: small groups let the tests
/// take `scan`'s group-at-a-time second pass on small fixtures.
pub const SCAN_GROUP_ENV: &str = "ABORTAUDIT_SCAN_GROUP";

/// The environment variable that overrides `DEFAULT_MEMORY_BUDGET` (`--memory-budget`).
pub const MEMORY_BUDGET_ENV: &str = "ABORTAUDIT_MEMORY_BUDGET";

pub fn resolve(cli: Cli) -> Result<Task> {
    Ok(match cli.command {
        Command::Inspect(args) => {
            let rules = load_rules(&args.rules)?;
            Task::Inspect(InspectConfig {
                input: input(&args.input, Some(&args.store))?,
                rules,
                format: match args.format {
                    InspectFormat::Table => report::InspectFormat::Table,
                    InspectFormat::Json => report::InspectFormat::Json,
                },
            })
        }
        Command::Scan(args) => {
            let mut rules = load_rules(&args.rules)?;
            if args.no_allow {
                rules.allow.clear();
            }
            if let Some(skew) = args.skew {
                rules.time.skew = parse_skew(&skew)?;
            }
            let fail_on = match args.fail_on {
                Some(list) => parse_categories(&list).context("--fail-on")?,
                None => rules.gate.fail_on.clone(),
            };
            Task::Scan(ScanConfig {
                input: input(&args.input, Some(&args.store))?,
                rules,
                format: match args.format {
                    ScanFormat::Table => OutputFormat::Table,
                    ScanFormat::Json => OutputFormat::Json,
                    ScanFormat::Markdown => OutputFormat::Markdown,
                    ScanFormat::Junit => OutputFormat::Junit,
                    ScanFormat::Sarif => OutputFormat::Sarif,
                    ScanFormat::Github => OutputFormat::Github,
                    ScanFormat::Html => OutputFormat::Html,
                },
                outputs: args
                    .output
                    .iter()
                    .map(|o| parse_output(o))
                    .collect::<Result<_>>()?,
                fail_on,
                exit_zero: args.exit_zero,
                baseline: args.baseline,
            })
        }
        Command::Explain(args) => {
            let mut rules = load_rules(&args.rules)?;
            if let Some(skew) = args.skew {
                rules.time.skew = parse_skew(&skew)?;
            }
            Task::Explain(ExplainConfig {
                input: input(&args.input, None)?,
                rules,
                conversation: args.conversation,
            })
        }
        Command::Rules(args) => Task::Rules(load_rules(&args.rules)?),
    })
}

/// The inputs; `window` is a store's, for the commands that read one (`None`: files only).
fn input(args: &InputArgs, window: Option<&StoreArgs>) -> Result<InputConfig> {
    let (stores, files): (Vec<&PathBuf>, Vec<&PathBuf>) = args
        .inputs
        .iter()
        .partition(|p| is_store_url(&p.to_string_lossy()));
    let store = match stores.as_slice() {
        [_, ..] if window.is_none() => bail!(
            "explain reads files; for a store, `scan --format html` (or markdown) draws the timeline of each conversation with findings"
        ),
        [] => {
            let none = StoreArgs::default();
            let window = window.unwrap_or(&none);
            for (flag, given) in [
                ("--since", &window.since),
                ("--until", &window.until),
                ("--grace", &window.grace),
            ] {
                if given.is_some() {
                    bail!(
                        "{flag} sets a ClickHouse store's window; the inputs name no store (clickhouse://HOST:PORT/DATABASE)"
                    );
                }
            }
            None
        }
        [url] if files.is_empty() => Some(store(
            &url.to_string_lossy(),
            window.expect("a store is refused without a window above"),
        )?),
        [_] => bail!(
            "a ClickHouse store is read alone: give trace files in another run (event logs and abort logs go with --events and --aborts)"
        ),
        _ => bail!(
            "one ClickHouse store at a time: {} were given",
            stores.len()
        ),
    };
    let files: Vec<PathBuf> = files.into_iter().cloned().collect();
    Ok(InputConfig {
        inputs: InputSet {
            traces: sources(&files),
            event_logs: sources(&args.events),
            abort_logs: sources(&args.aborts),
        },
        options: ingest_options(args)?,
        strict: args.strict,
        store,
    })
}

/// The environment variables a store's credentials come from when its URL has none.
pub const CLICKHOUSE_USER_ENV: &str = "CLICKHOUSE_USER";
pub const CLICKHOUSE_PASSWORD_ENV: &str = "CLICKHOUSE_PASSWORD";

/// How far past the window a store is read, by default.
const DEFAULT_GRACE: &str = "1h";

/// A store's URL (credentials from the URL, else the environment) and its window.
fn store(url: &str, args: &StoreArgs) -> Result<Store> {
    let env = |name: &str| std::env::var(name).ok();
    let url = StoreUrl::parse(url, env(CLICKHOUSE_USER_ENV), env(CLICKHOUSE_PASSWORD_ENV))
        .with_context(|| format!("store {}", url.split('@').next_back().unwrap_or(url)))?;
    let now = unix_now_ns();
    let Some(since) = &args.since else {
        bail!(
            "a ClickHouse store needs a window: --since TIME (a duration ago such as 24h, or an RFC 3339 time), and --until (default now)"
        );
    };
    let since = parse_time(since, now).with_context(|| format!("--since {since:?}"))?;
    let until = match &args.until {
        Some(until) => parse_time(until, now).with_context(|| format!("--until {until:?}"))?,
        None => now,
    };
    if since >= until {
        bail!("the window is empty: --since is not before --until");
    }
    let grace = args.grace.as_deref().unwrap_or(DEFAULT_GRACE);
    let grace = parse_duration(grace)
        .map_err(|e| anyhow!(e))
        .with_context(|| format!("--grace {grace:?}"))?;
    Ok(Store {
        url,
        window: Window {
            since,
            until,
            grace,
        },
    })
}

/// A time as `--since` and `--until` take it: RFC 3339, or a duration before `now`.
fn parse_time(text: &str, now: u64) -> Result<u64> {
    if text.contains('T') || text.contains(':') {
        return parse_rfc3339(text).map(|(t, _)| t).map_err(|e| {
            anyhow!("{e}; expected RFC 3339 (2026-11-25T16:00:00Z) or a duration ago (24h)")
        });
    }
    let ago = parse_duration(text)
        .map_err(|e| anyhow!("{e}; expected a duration ago (24h, 90m) or an RFC 3339 time"))?;
    Ok(now.saturating_sub(ago))
}

fn unix_now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Reading options: the flag, else the environment, else the defaults.
fn ingest_options(args: &InputArgs) -> Result<IngestOptions> {
    let mut options = IngestOptions::default();
    let size_from_env = |name: &str| -> Result<Option<u64>> {
        match std::env::var_os(name) {
            None => Ok(None),
            Some(raw) => parse_size(&raw.to_string_lossy())
                .map(Some)
                .map_err(|e| anyhow!("{name}: {e}")),
        }
    };
    if let Some(size) = size_from_env(SURVEY_ABOVE_ENV)? {
        options.survey_above = size;
    }
    if let Some(size) = size_from_env(MAX_DECOMPRESSED_ENV)? {
        options.max_decompressed = Some(size);
    }
    if let Some(size) = size_from_env(INSPECT_GROUP_ENV)? {
        options.inspect_group = size;
    }
    if let Some(size) = size_from_env(SCAN_GROUP_ENV)? {
        options.scan_group = size;
    }
    if let Some(size) = size_from_env(MEMORY_BUDGET_ENV)? {
        options.memory_budget = size;
    }
    if let Some(size) = &args.max_decompressed {
        options.max_decompressed = Some(
            parse_size(size)
                .map_err(|e| anyhow!(e))
                .with_context(|| format!("--max-decompressed {size:?}"))?,
        );
    }
    if let Some(size) = &args.memory_budget {
        options.memory_budget = parse_size(size)
            .map_err(|e| anyhow!(e))
            .with_context(|| format!("--memory-budget {size:?}"))?;
    }
    Ok(options)
}

/// `FORMAT=PATH`.
fn parse_output(text: &str) -> Result<(OutputFormat, PathBuf)> {
    let names = || OutputFormat::ALL.map(OutputFormat::as_str).join(", ");
    let Some((format, path)) = text.split_once('=') else {
        bail!(
            "--output {text:?}: expected FORMAT=PATH, e.g. junit=report.xml (formats: {})",
            names()
        );
    };
    let Some(format) = OutputFormat::from_name(format.trim()) else {
        bail!(
            "--output {text:?}: unknown format {format:?}; expected one of {}",
            names()
        );
    };
    if path.is_empty() {
        bail!("--output {text:?}: no path after `=`");
    }
    Ok((format, PathBuf::from(path)))
}

fn parse_skew(text: &str) -> Result<Nanos> {
    text.parse()
        .map_err(|e: String| anyhow!(e))
        .with_context(|| format!("--skew {text:?}"))
}

fn sources(paths: &[PathBuf]) -> Vec<Source> {
    paths
        .iter()
        .map(|p| {
            if p.as_os_str() == "-" {
                Source::Stdin
            } else {
                Source::Path(p.clone())
            }
        })
        .collect()
}

/// The categories the gate fails on. An empty list (an empty CI variable, `--fail-on ''`) is
/// refused rather than read as `none`: switching the gate off must be said.
fn parse_categories(list: &[String]) -> Result<Vec<Category>> {
    let items: Vec<&str> = list.iter().map(|s| s.trim()).collect();
    if items.is_empty() || items.iter().any(|s| s.is_empty()) {
        bail!(
            "{:?} names an empty category; expected `none` (report without failing) or some of: {}",
            list.join(","),
            Category::ALL.map(Category::as_str).join(", ")
        );
    }
    if items.contains(&"none") && items.len() > 1 {
        bail!("`none` cannot be combined with categories");
    }
    let mut out = Vec::new();
    for item in items {
        if item == "none" {
            continue;
        }
        let category = Category::from_name(item).ok_or_else(|| {
            anyhow!(
                "unknown category {item:?}; expected `none` or some of: {}",
                Category::ALL.map(Category::as_str).join(", ")
            )
        })?;
        if !out.contains(&category) {
            out.push(category);
        }
    }
    Ok(out)
}

const DEFAULT_RULES_FILE: &str = "abortaudit.toml";

fn load_rules(args: &RulesFileArgs) -> Result<Rules> {
    let path: Option<PathBuf> = match &args.config {
        Some(p) => Some(p.clone()),
        None => Some(PathBuf::from(DEFAULT_RULES_FILE)).filter(|p| p.is_file()),
    };
    let Some(path) = path else {
        return Ok(Rules::default());
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read rules file {}", path.display()))?;
    Rules::from_toml(&text).with_context(|| path.display().to_string())
}

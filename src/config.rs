//! The resolved configuration: command-line arguments and the rules file turned into plain
//! data. No clap type goes further than this module.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};

use crate::classify::Category;
use crate::cli::{Cli, Command, InputArgs, InspectFormat, RulesFileArgs, ScanFormat};
use crate::ingest::Source;

/// What the user asked for, resolved.
#[derive(Debug)]
pub enum Task {
    Inspect(InspectConfig),
    Scan(ScanConfig),
    Explain(ExplainConfig),
    Rules(Rules),
}

#[derive(Debug)]
pub struct InspectConfig {
    pub sources: Vec<Source>,
    pub strict: bool,
    pub format: OutputFormat,
}

#[derive(Debug)]
pub struct ScanConfig {
    pub sources: Vec<Source>,
    pub strict: bool,
    pub format: OutputFormat,
    pub rules: Rules,
    pub fail_on: Vec<Category>,
    pub exit_zero: bool,
}

#[derive(Debug)]
pub struct ExplainConfig {
    pub conversation: String,
    pub sources: Vec<Source>,
    pub strict: bool,
    pub rules: Rules,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Json,
}

pub fn resolve(cli: Cli) -> Result<Task> {
    Ok(match cli.command {
        Command::Inspect(args) => Task::Inspect(InspectConfig {
            sources: sources(&args.input),
            strict: args.input.strict,
            format: match args.format {
                InspectFormat::Table => OutputFormat::Table,
                InspectFormat::Json => OutputFormat::Json,
            },
        }),
        Command::Scan(args) => {
            let mut rules = load_rules(&args.rules)?;
            if let Some(skew) = args.skew {
                parse_duration(&skew).with_context(|| format!("--skew {skew:?}"))?;
                rules.time.skew = skew;
            }
            let fail_on = match args.fail_on {
                Some(list) => parse_categories(&list).context("--fail-on")?,
                None => rules.gate.fail_on.clone(),
            };
            Task::Scan(ScanConfig {
                sources: sources(&args.input),
                strict: args.input.strict,
                format: match args.format {
                    ScanFormat::Table => OutputFormat::Table,
                    ScanFormat::Json => OutputFormat::Json,
                },
                rules,
                fail_on,
                exit_zero: args.exit_zero,
            })
        }
        Command::Explain(args) => {
            let mut rules = load_rules(&args.rules)?;
            if let Some(skew) = args.skew {
                parse_duration(&skew).with_context(|| format!("--skew {skew:?}"))?;
                rules.time.skew = skew;
            }
            Task::Explain(ExplainConfig {
                conversation: args.conversation,
                sources: sources(&args.input),
                strict: args.input.strict,
                rules,
            })
        }
        Command::Rules(args) => Task::Rules(load_rules(&args.rules)?),
    })
}

fn sources(args: &InputArgs) -> Vec<Source> {
    args.inputs
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

fn parse_categories(list: &[String]) -> Result<Vec<Category>> {
    let mut out = Vec::new();
    for item in list.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
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
    match path {
        None => Ok(Rules::default()),
        Some(path) => Rules::from_file(&path),
    }
}

// ---------------------------------------------------------------------------------------------
// Detection rules. Every list is what DESIGN.md section 3 names; users extend or narrow them in
// abortaudit.toml. Every struct denies unknown keys, so a typo is an error naming the key
// instead of a rule that silently never matches.

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rules {
    pub conversation: ConversationRules,
    pub turn: TurnRules,
    pub tool_call: ToolCallRules,
    pub abort: AbortRules,
    pub commit: CommitRules,
    pub client_gone: ClientGoneRules,
    pub queued: QueuedRules,
    pub time: TimeRules,
    pub gate: GateRules,
}

impl Rules {
    pub fn from_file(path: &Path) -> Result<Rules> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read rules file {}", path.display()))?;
        let rules: Rules = toml::from_str(&text).map_err(|e| {
            anyhow!(
                "{}: {}",
                path.display(),
                e.to_string().trim_end().replace('\n', "\n  ")
            )
        })?;
        rules
            .validate()
            .with_context(|| format!("{}: invalid rules", path.display()))?;
        Ok(rules)
    }

    fn validate(&self) -> Result<()> {
        parse_duration(&self.time.skew).context("time.skew")?;
        parse_duration(&self.time.in_flight_margin).context("time.in_flight_margin")?;
        Ok(())
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("rules are plain data and always serialise")
    }

    pub fn skew_ns(&self) -> u64 {
        parse_duration(&self.time.skew).unwrap_or(0)
    }

    pub fn in_flight_margin_ns(&self) -> u64 {
        parse_duration(&self.time.in_flight_margin).unwrap_or(0)
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConversationRules {
    /// Span or resource attributes naming the conversation, first present wins. Taken from any
    /// span of a trace and inherited by the whole trace.
    pub id_attributes: Vec<String>,
}

impl Default for ConversationRules {
    fn default() -> Self {
        ConversationRules {
            id_attributes: strings(&[
                "gen_ai.conversation.id",
                "session.id",
                "langfuse.session.id",
                "ai.telemetry.metadata.conversationId",
                "ai.telemetry.metadata.conversation_id",
                "ai.telemetry.metadata.sessionId",
                "ai.telemetry.metadata.session_id",
                "ai.telemetry.metadata.threadId",
                "ai.telemetry.metadata.thread_id",
                "ai.telemetry.metadata.chatId",
                "ai.settings.context.conversationId",
                "ai.settings.context.conversation_id",
                "ai.settings.context.sessionId",
                "ai.settings.context.threadId",
                "traceloop.association.properties.conversation_id",
                "traceloop.association.properties.session_id",
                "traceloop.association.properties.chat_id",
                "conversation.id",
                "thread_id",
                "mcp.session.id",
            ]),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TurnRules {
    /// `gen_ai.operation.name` values of a turn's top-level agent span.
    pub agent_operations: Vec<String>,
    /// Span names (exact, or the name's first word) of a turn's top-level agent span, for SDKs
    /// that set no operation name.
    pub agent_span_names: Vec<String>,
}

impl Default for TurnRules {
    fn default() -> Self {
        TurnRules {
            agent_operations: strings(&["invoke_agent"]),
            agent_span_names: strings(&[
                "invoke_agent",
                "ai.streamText",
                "ai.generateText",
                "ai.streamObject",
                "ai.generateObject",
            ]),
        }
    }
}

/// One way to recognise a tool-call span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolMatcher {
    /// The span matches when this attribute has one of `values` (case-insensitive)…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// …or when its name is this or starts with this followed by a space or a dot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_name: Option<String>,
    /// Attributes holding the tool call id, first present wins.
    #[serde(default)]
    pub id_attributes: Vec<String>,
    /// Attributes holding the tool's name, first present wins (else the span name).
    #[serde(default)]
    pub name_attributes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ToolCallRules {
    #[serde(rename = "match")]
    pub matchers: Vec<ToolMatcher>,
}

impl Default for ToolCallRules {
    fn default() -> Self {
        let attr = |attribute: &str, values: &[&str], id: &[&str], name: &[&str]| ToolMatcher {
            attribute: Some(attribute.to_owned()),
            values: strings(values),
            span_name: None,
            id_attributes: strings(id),
            name_attributes: strings(name),
        };
        ToolCallRules {
            matchers: vec![
                attr(
                    "gen_ai.operation.name",
                    &["execute_tool"],
                    &["gen_ai.tool.call.id"],
                    &["gen_ai.tool.name"],
                ),
                ToolMatcher {
                    attribute: None,
                    values: Vec::new(),
                    span_name: Some("ai.toolCall".to_owned()),
                    id_attributes: strings(&["ai.toolCall.id"]),
                    name_attributes: strings(&["ai.toolCall.name"]),
                },
                attr(
                    "ai.operationId",
                    &["ai.toolCall"],
                    &["ai.toolCall.id"],
                    &["ai.toolCall.name"],
                ),
                attr(
                    "openinference.span.kind",
                    &["TOOL"],
                    &["tool_call.id", "tool.id"],
                    &["tool.name"],
                ),
                attr(
                    "traceloop.span.kind",
                    &["tool"],
                    &["gen_ai.tool.call.id", "traceloop.entity.id"],
                    &["traceloop.entity.name", "gen_ai.tool.name"],
                ),
                attr(
                    "mcp.method.name",
                    &["tools/call"],
                    &["mcp.request.id", "jsonrpc.request.id"],
                    &["gen_ai.tool.name", "mcp.tool.name"],
                ),
            ],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AbortRules {
    /// Span event names that record the user's Stop (case-insensitive).
    pub event_names: Vec<String>,
    /// `exception.type` / `error.type` values of a cancellation; the part after the last `.`
    /// or `:` is compared too, so `asyncio.exceptions.CancelledError` matches `CancelledError`.
    pub exception_types: Vec<String>,
    /// `rpc.grpc.status_code` / `rpc.response.status_code` values meaning CANCELLED.
    pub rpc_cancelled_codes: Vec<String>,
    /// MCP methods of a cancellation notification.
    pub mcp_methods: Vec<String>,
}

impl Default for AbortRules {
    fn default() -> Self {
        AbortRules {
            event_names: strings(&[
                "abort",
                "cancel",
                "cancelled",
                "canceled",
                "user.abort",
                "user.cancel",
            ]),
            exception_types: strings(&[
                "AbortError",
                "CancelledError",
                "asyncio.CancelledError",
                "OperationCanceledException",
                "TaskCanceledException",
                "context.Canceled",
            ]),
            rpc_cancelled_codes: strings(&["1", "CANCELLED"]),
            mcp_methods: strings(&["notifications/cancelled"]),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CommitRules {
    /// Span event names that mark a commit.
    pub event_names: Vec<String>,
    /// Database operations that write; outside a transaction each is its own commit.
    pub write_operations: Vec<String>,
    /// Database operations (or driver span names) that commit a transaction.
    pub commit_operations: Vec<String>,
    /// Database operations (or driver span names) that roll a transaction back.
    pub rollback_operations: Vec<String>,
    /// Database operations that open a transaction.
    pub begin_operations: Vec<String>,
    /// HTTP methods whose server span, lacking finer evidence, infers a commit at its end.
    pub write_methods: Vec<String>,
}

impl Default for CommitRules {
    fn default() -> Self {
        CommitRules {
            event_names: strings(&["commit"]),
            write_operations: strings(&[
                "INSERT", "UPDATE", "DELETE", "UPSERT", "MERGE", "REPLACE",
            ]),
            commit_operations: strings(&[
                "COMMIT",
                "sql.tx.commit",
                "tx.commit",
                "transaction.commit",
            ]),
            rollback_operations: strings(&[
                "ROLLBACK",
                "sql.tx.rollback",
                "tx.rollback",
                "transaction.rollback",
            ]),
            begin_operations: strings(&[
                "BEGIN",
                "START TRANSACTION",
                "sql.tx.begin",
                "sql.conn.begin_tx",
            ]),
            write_methods: strings(&["POST", "PUT", "PATCH", "DELETE"]),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientGoneRules {
    /// HTTP status codes a server records when its client went away.
    pub status_codes: Vec<i64>,
    /// Text in `error.type`, exception types/messages or status messages that names a client
    /// disconnect (case-insensitive substring).
    pub error_markers: Vec<String>,
}

impl Default for ClientGoneRules {
    fn default() -> Self {
        ClientGoneRules {
            status_codes: vec![499],
            error_markers: strings(&[
                "context canceled",
                "ECONNRESET",
                "EPIPE",
                "client disconnected",
                "client gone",
                "BrokenPipe",
                "ConnectionReset",
                "connection reset",
                "broken pipe",
                "aborted",
            ]),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueuedRules {
    /// HTTP statuses that mean "accepted, will run later".
    pub status_codes: Vec<i64>,
}

impl Default for QueuedRules {
    fn default() -> Self {
        QueuedRules {
            status_codes: vec![202],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeRules {
    /// Clock skew tolerated between different hosts (`10ms`, `250ms`, `1s`). A write whose
    /// order against the abort depends on less than this plus the timestamps' precision is
    /// ambiguous. Timestamps from the same host are compared without it.
    pub skew: String,
    /// SDKs end every open span when a turn is aborted, sometimes just before they record the
    /// abort itself: a tool span that ended less than this before the abort was still in flight.
    pub in_flight_margin: String,
}

impl Default for TimeRules {
    fn default() -> Self {
        TimeRules {
            skew: "10ms".to_owned(),
            in_flight_margin: "10ms".to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GateRules {
    /// Categories that make `scan` exit with status 1.
    pub fail_on: Vec<Category>,
}

impl Default for GateRules {
    fn default() -> Self {
        GateRules {
            fail_on: vec![
                Category::ClientGone,
                Category::LateQueued,
                Category::DispatchedAfterAbort,
            ],
        }
    }
}

/// Parses `250ms`, `1.5s`, `500us`, `2m`, `0` into nanoseconds, without going through floats.
pub fn parse_duration(text: &str) -> Result<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale: u64 = match unit.trim() {
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" | "min" => 60_000_000_000,
        "" if number.chars().all(|c| c == '0') && !number.is_empty() => 1,
        "" => bail!("{text:?} has no unit; expected a duration like 250ms, 1s or 500us"),
        other => bail!("unknown unit {other:?} in {text:?}; expected ns, us, ms, s or m"),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        bail!("{text:?} is not a duration; expected a number and a unit, like 250ms");
    }
    let overflow = || anyhow!("{text:?} is too long a duration");
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| overflow())?
    };
    let mut total = whole.checked_mul(scale).ok_or_else(overflow)?;
    let mut place = scale;
    for digit in fraction.bytes() {
        if !digit.is_ascii_digit() {
            bail!("{text:?} is not a duration; expected a number and a unit, like 250ms");
        }
        place /= 10;
        total = total
            .checked_add(u64::from(digit - b'0') * place)
            .ok_or_else(overflow)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_exactly() {
        assert_eq!(parse_duration("250ms").unwrap(), 250_000_000);
        assert_eq!(parse_duration("1.5s").unwrap(), 1_500_000_000);
        assert_eq!(parse_duration("500us").unwrap(), 500_000);
        assert_eq!(parse_duration("0").unwrap(), 0);
        assert_eq!(parse_duration("2m").unwrap(), 120_000_000_000);
        assert!(parse_duration("250").is_err());
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("1.2.3s").is_err());
    }

    #[test]
    fn rules_round_trip_through_toml() {
        let rules = Rules::default();
        let text = rules.to_toml();
        let back: Rules = toml::from_str(&text).unwrap();
        assert_eq!(back, rules);
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let err = toml::from_str::<Rules>("[abort]\nevent_nmes = [\"stop\"]\n").unwrap_err();
        assert!(err.to_string().contains("event_nmes"), "{err}");
        let err = toml::from_str::<Rules>("[abrot]\n").unwrap_err();
        assert!(err.to_string().contains("abrot"), "{err}");
    }

    #[test]
    fn partial_rules_keep_the_other_defaults() {
        let rules: Rules = toml::from_str("[time]\nskew = \"250ms\"\n").unwrap();
        assert_eq!(rules.skew_ns(), 250_000_000);
        assert_eq!(rules.abort, AbortRules::default());
    }
}

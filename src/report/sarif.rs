//! SARIF 2.1.0 through `serde-sarif`'s typed model: a rule per category, a result per finding
//! located at the input line of the span (or vendor event) that shows the write, with the
//! finding's signature as its partial fingerprint so that code-scanning dashboards follow the
//! same problem across runs. Suppressed findings carry an external, accepted suppression with
//! the entry's reason; with `--baseline`, each result has its baseline state. The inputs'
//! diagnostics are the invocation's notifications.

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::json;
use serde_sarif::sarif::{
    ArtifactLocation, Invocation, Location, Message, MultiformatMessageString, Notification,
    PhysicalLocation, PropertyBag, Region, ReportingConfiguration, ReportingDescriptor,
    Result as SarifResult, ResultLevel, Run, Sarif, Suppression, Tool, ToolComponent,
};

use super::{ScanView, words};
use crate::classify::{Finding, Standing};
use crate::model::Category;
use crate::model::diagnostic::{Diagnostic, Severity};

const SCHEMA: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";

/// The partial fingerprint's name: versioned, so that a change of what a signature covers
/// starts new fingerprints instead of matching old ones wrongly.
pub const FINGERPRINT: &str = "abortaudit/signature/v1";

pub fn scan(view: &ScanView<'_>, out: &mut dyn Write) -> std::io::Result<()> {
    let rules: Vec<ReportingDescriptor> = Category::ALL.iter().map(|c| rule(*c)).collect();
    let results: Vec<SarifResult> = view
        .findings()
        .enumerate()
        .map(|(i, (f, standing))| result(view, i, f, standing))
        .collect();
    let notifications: Vec<Notification> = view.ingested.diagnostics().map(notification).collect();
    let driver = ToolComponent::builder()
        .name("abortaudit")
        .version(env!("CARGO_PKG_VERSION"))
        .semantic_version(env!("CARGO_PKG_VERSION"))
        .full_name(concat!("abortaudit ", env!("CARGO_PKG_VERSION")))
        .rules(rules)
        .build();
    let invocation = Invocation::builder()
        .execution_successful(true)
        .tool_execution_notifications(notifications)
        .build();
    let run = Run::builder()
        .tool(Tool::builder().driver(driver).build())
        .invocations(vec![invocation])
        .column_kind(json!("unicodeCodePoints"))
        .results(results)
        .build();
    let sarif = Sarif::builder()
        .schema(SCHEMA)
        .version(json!("2.1.0"))
        .runs(vec![run])
        .build();
    super::json::write_pretty(out, &sarif)?;
    writeln!(out)
}

fn text(text: impl Into<String>) -> MultiformatMessageString {
    MultiformatMessageString::builder().text(text).build()
}

fn default_level(category: Category) -> ResultLevel {
    match category {
        Category::PreCommitAbort => ResultLevel::Note,
        Category::Unverified => ResultLevel::Warning,
        Category::ClientGone | Category::LateQueued | Category::DispatchedAfterAbort => {
            ResultLevel::Error
        }
    }
}

fn rule(category: Category) -> ReportingDescriptor {
    let name: String = category
        .as_str()
        .split('_')
        .map(|w| {
            let mut chars = w.chars();
            chars.next().map_or(String::new(), |c| {
                c.to_uppercase().chain(chars).collect::<String>()
            })
        })
        .collect();
    let mut tags = vec!["abort".to_owned()];
    if category.is_late() {
        tags.push("late-write".to_owned());
    }
    ReportingDescriptor::builder()
        .id(category.as_str())
        .name(name)
        .short_description(text(category.description()))
        .full_description(text(format!(
            "{}: {}.",
            category.as_str(),
            category.description()
        )))
        .help(text(category.help()))
        .default_configuration(
            ReportingConfiguration::builder()
                .level(json!(default_level(category)))
                .build(),
        )
        .properties(PropertyBag::builder().tags(tags).build())
        .build()
}

fn location(input: &str, line: u64) -> Location {
    let artifact = ArtifactLocation::builder().uri(uri(input)).build();
    let physical = if line > 0 {
        PhysicalLocation::builder()
            .artifact_location(artifact)
            .region(Region::builder().start_line(line as i64).build())
            .build()
    } else {
        PhysicalLocation::builder()
            .artifact_location(artifact)
            .build()
    };
    Location::builder().physical_location(physical).build()
}

/// The result of the `index`th finding.
fn result(view: &ScanView<'_>, index: usize, f: &Finding, standing: &Standing) -> SarifResult {
    let level = match standing {
        Standing::Fails => ResultLevel::Error,
        _ if f.category == Category::PreCommitAbort => ResultLevel::Note,
        _ => ResultLevel::Warning,
    };
    let (input, line) = words::origin(f);
    let mut properties = BTreeMap::new();
    properties.insert("conversation_id".to_owned(), json!(f.conversation_id));
    properties.insert("trace_id".to_owned(), json!(f.trace_id.to_string()));
    properties.insert("tool_call".to_owned(), json!(f.tool_call.name));
    properties.insert("abort".to_owned(), json!(words::abort(f)));
    properties.insert("write".to_owned(), json!(words::write(f)));
    properties.insert("vs_abort".to_owned(), json!(words::timing(f)));
    properties.insert("ambiguous".to_owned(), json!(f.ambiguous));
    properties.insert("gate".to_owned(), json!(standing.as_str()));
    properties.insert("evidence".to_owned(), json!(f.evidence));
    if let Some(join) = &f.join {
        properties.insert("join".to_owned(), json!(join));
    }
    let prevention: Vec<serde_json::Value> = f
        .prevention
        .iter()
        .map(|p| {
            json!({
                "mechanism": p.mechanism.as_str(),
                "present": p.present,
                "would_have_stopped": p.would_have_stopped,
                "detail": p.detail,
            })
        })
        .collect();
    properties.insert("prevention".to_owned(), json!(prevention));
    if let Some(compensated) = words::compensated(f) {
        properties.insert("compensated".to_owned(), json!(compensated));
    }
    let rule_index = Category::ALL
        .iter()
        .position(|c| *c == f.category)
        .unwrap_or(0);
    let builder = SarifResult::builder()
        .rule_id(f.category.as_str())
        .rule_index(rule_index as i64)
        .level(level)
        .message(Message::builder().text(words::sentence(f)).build())
        .locations(vec![location(input, line)])
        .partial_fingerprints(BTreeMap::from([(
            FINGERPRINT.to_owned(),
            f.signature.clone(),
        )]))
        .properties(
            PropertyBag::builder()
                .additional_properties(properties)
                .build(),
        );
    let suppressions = view.allow_rule(standing).map(|rule| {
        vec![
            Suppression::builder()
                .kind(json!("external"))
                .status(json!("accepted"))
                .justification(format!(
                    "{} (until {}; {})",
                    rule.reason,
                    rule.until,
                    rule.describe()
                ))
                .build(),
        ]
    });
    let baseline_state = view.gate.baseline.as_ref().map(|baseline| {
        json!(if baseline.had.get(index).copied().unwrap_or(false) {
            "unchanged"
        } else {
            "new"
        })
    });
    // The builder's type changes with each field set, so the optional ones are set here.
    let mut result = builder.build();
    result.suppressions = suppressions;
    result.baseline_state = baseline_state;
    result
}

fn notification(diagnostic: &Diagnostic) -> Notification {
    let level = match diagnostic.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let mut notification = Notification::builder()
        .level(json!(level))
        .message(
            Message::builder()
                .text(format!(
                    "{}: {}",
                    diagnostic.code.as_str(),
                    diagnostic.message
                ))
                .build(),
        )
        .build();
    notification.locations = Some(vec![location(
        &diagnostic.input,
        diagnostic.line.unwrap_or(0),
    )]);
    notification
}

/// A path as a URI reference: relative paths stay relative (to the directory the scan ran
/// in, as code-scanning tools expect), absolute ones become `file://` URIs; anything outside
/// RFC 3986's unreserved characters and `/` is percent-encoded.
fn uri(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 8);
    if path.starts_with('/') {
        out.push_str("file://");
    }
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_uri_references() {
        assert_eq!(uri("traces/agent.jsonl"), "traces/agent.jsonl");
        assert_eq!(
            uri("/tmp/my traces/a#1.json"),
            "file:///tmp/my%20traces/a%231.json"
        );
        assert_eq!(uri("é.json"), "%C3%A9.json");
    }
}

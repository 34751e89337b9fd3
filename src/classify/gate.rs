//! The gate: which findings fail the run. A finding fails it when its category is one the gate
//! fails on and its turn's abort is recorded (or inferred, when those count), unless a
//! suppression accepts it or the baseline already had it. Nothing is hidden: every finding
//! keeps its standing, and the report says why.

use super::{Audit, Finding};
use crate::model::{Baseline, BaselineFinding, Category};
use crate::rules::allow::FindingKey;
use crate::rules::{AllowRule, Rules};

/// What the gate is asked to do.
#[derive(Clone, Copy, Debug)]
pub struct GatePolicy<'a> {
    pub fail_on: &'a [Category],
    /// Whether findings of turns whose abort is only inferred count.
    pub inferred_aborts: bool,
    /// Suppressions (none under `--no-allow`).
    pub allow: &'a [AllowRule],
    /// Today, `YYYY-MM-DD` (UTC): entries past their `until` no longer suppress.
    pub today: &'a str,
    /// A previous run: only findings it did not have fail the gate.
    pub baseline: Option<&'a Baseline>,
    /// Fail on a tool with late writes whose calls show no cancellation protocol at all,
    /// whatever its findings' standings.
    pub fail_on_unprotected_tools: bool,
}

impl<'a> GatePolicy<'a> {
    /// The gate `rules` ask for (their suppressions, whether inferred aborts count, the
    /// unprotected-tools switch), failing on `fail_on` (the rules' list, or `--fail-on`).
    pub fn from_rules(
        rules: &'a Rules,
        fail_on: &'a [Category],
        today: &'a str,
        baseline: Option<&'a Baseline>,
    ) -> Self {
        GatePolicy {
            fail_on,
            inferred_aborts: rules.gate.inferred_aborts,
            allow: &rules.allow,
            today,
            baseline,
            fail_on_unprotected_tools: rules.gate.fail_on_unprotected_tools,
        }
    }
}

/// Where a finding stands with the gate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    /// It fails the gate.
    Fails,
    /// Its category is not one the gate fails on, or its abort is only inferred and those do
    /// not count.
    Passes,
    /// A suppression accepts it: `allow[rule]`.
    Suppressed { rule: usize },
    /// The baseline had it.
    Known,
}

impl Standing {
    /// One of each, for the names test (`Suppressed` stands for all its rules).
    pub const ALL: [Standing; 4] = [
        Standing::Fails,
        Standing::Passes,
        Standing::Suppressed { rule: 0 },
        Standing::Known,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Standing::Fails => "fails",
            Standing::Passes => "passes",
            Standing::Suppressed { .. } => "suppressed",
            Standing::Known => "known",
        }
    }
}

/// The gate's verdict.
#[derive(Clone, Debug, PartialEq)]
pub struct Gate {
    pub fail_on: Vec<Category>,
    pub inferred_aborts: bool,
    pub failed: bool,
    /// One per finding, in the audit's order.
    pub standings: Vec<Standing>,
    /// The suppressions in force (the standings name them by index).
    pub allow: Vec<AllowRule>,
    /// Suppressions past their `until`: they no longer suppress.
    pub expired: Vec<AllowRule>,
    pub baseline: Option<BaselineDiff>,
    /// Whether a tool with late writes and no cancellation protocol fails the gate.
    pub fail_on_unprotected_tools: bool,
    /// Tools with late writes (under an abort that counts for the gate, whatever their
    /// standings) none of whose calls in the aborted turns showed a commit-point check, a
    /// deadline or an out-of-band cancel; by name. Listed whether or not they fail the gate.
    pub unprotected_tools: Vec<String>,
}

/// A run against its baseline.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BaselineDiff {
    pub input: String,
    /// Per finding, in the audit's order: whether the baseline had its signature (whatever
    /// its standing: a suppressed finding may be known too).
    pub had: Vec<bool>,
    /// Findings of this run the baseline had, and those it did not.
    pub known: u64,
    pub new: u64,
    /// Signatures of the baseline this run no longer has, one finding each.
    pub gone: Vec<BaselineFinding>,
}

impl Gate {
    pub fn judge(audit: &Audit, policy: &GatePolicy<'_>) -> Gate {
        let (expired, allow): (Vec<AllowRule>, Vec<AllowRule>) = policy
            .allow
            .iter()
            .cloned()
            .partition(|rule| rule.expired(policy.today));
        let standings: Vec<Standing> = audit
            .findings
            .iter()
            .map(|f| standing(f, policy, &allow))
            .collect();
        let baseline = policy.baseline.map(|baseline| {
            let had: Vec<bool> = audit
                .findings
                .iter()
                .map(|f| baseline.has(&f.signature))
                .collect();
            let known = had.iter().filter(|h| **h).count() as u64;
            let present: std::collections::HashSet<&str> = audit
                .findings
                .iter()
                .map(|f| f.signature.as_str())
                .collect();
            let mut listed = std::collections::HashSet::new();
            let gone = baseline
                .findings
                .iter()
                .filter(|b| !present.contains(b.signature.as_str()))
                .filter(|b| listed.insert(b.signature.as_str()))
                .cloned()
                .collect();
            BaselineDiff {
                input: baseline.input.clone(),
                known,
                new: audit.findings.len() as u64 - known,
                had,
                gone,
            }
        });
        let unprotected_tools = unprotected_tools(audit, policy.inferred_aborts);
        Gate {
            fail_on: policy.fail_on.to_vec(),
            inferred_aborts: policy.inferred_aborts,
            failed: standings.contains(&Standing::Fails)
                || (policy.fail_on_unprotected_tools && !unprotected_tools.is_empty()),
            standings,
            allow,
            expired,
            baseline,
            fail_on_unprotected_tools: policy.fail_on_unprotected_tools,
            unprotected_tools,
        }
    }

    pub fn count(&self, standing: &str) -> u64 {
        self.standings
            .iter()
            .filter(|s| s.as_str() == standing)
            .count() as u64
    }
}

/// Tools with late writes whose calls show no mechanism that stops a write. A late write
/// under an inferred abort counts only when inferred aborts count for the gate.
fn unprotected_tools(audit: &Audit, inferred_aborts: bool) -> Vec<String> {
    audit
        .protocols_by_tool()
        .into_iter()
        .filter(|row| !row.has_protocol())
        .filter(|row| {
            audit.findings.iter().any(|f| {
                f.late && f.tool_call.name == row.name && (inferred_aborts || !f.abort.inferred)
            })
        })
        .map(|row| row.name)
        .collect()
}

fn standing(finding: &Finding, policy: &GatePolicy<'_>, allow: &[AllowRule]) -> Standing {
    let key = FindingKey {
        tool: &finding.tool_call.name,
        service: finding.write.as_ref().map_or("", |w| w.service.as_str()),
        operation: finding.write.as_ref().map_or("", |w| w.operation.as_str()),
        category: finding.category,
        conversation: &finding.conversation_id,
    };
    if let Some(rule) = allow.iter().position(|rule| rule.matches(&key)) {
        return Standing::Suppressed { rule };
    }
    if policy
        .baseline
        .is_some_and(|baseline| baseline.has(&finding.signature))
    {
        return Standing::Known;
    }
    let gating = policy.fail_on.contains(&finding.category)
        && (policy.inferred_aborts || !finding.abort.inferred);
    if gating {
        Standing::Fails
    } else {
        Standing::Passes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::{AbortInfo, ToolCallInfo, WriteInfo};
    use crate::model::ids::signature;
    use crate::model::{Origin, SpanId, TraceId};

    fn finding(tool: &str, operation: &str, category: Category, conversation: &str) -> Finding {
        let origin = Origin {
            input: "t.jsonl".into(),
            line: 1,
        };
        Finding {
            id: format!("{tool}-{conversation}"),
            signature: signature(tool, "payments", operation, category.as_str()),
            category,
            late: category.is_late(),
            ambiguous: false,
            conversation_id: conversation.to_owned(),
            trace_id: TraceId([1; 16]),
            abort: AbortInfo {
                time: 10,
                signal: "abort".to_owned(),
                inferred: false,
            },
            tool_call: ToolCallInfo {
                span_id: SpanId([2; 8]),
                name: tool.to_owned(),
                tool_call_id: None,
                start: 1,
                end: None,
                origin: origin.clone(),
            },
            write: Some(WriteInfo {
                service: "payments".to_owned(),
                operation: operation.to_owned(),
                span_id: None,
                event_id: None,
                commit_time: Some(20),
                inferred: false,
                precision: 1,
                origin,
            }),
            join: Some("parent".to_owned()),
            evidence: Vec::new(),
            prevention: Vec::new(),
            compensated: None,
        }
    }

    fn audit() -> Audit {
        Audit {
            findings: vec![
                finding(
                    "charge",
                    "POST /v1/payments",
                    Category::ClientGone,
                    "conv-a",
                ),
                finding("refund", "POST /v1/refunds", Category::ClientGone, "conv-b"),
                finding("email", "", Category::Unverified, "conv-c"),
            ],
            ..Audit::default()
        }
    }

    fn allow(tool: &str, until: &str) -> AllowRule {
        AllowRule {
            tool: Some(tool.to_owned()),
            service: None,
            operation: None,
            category: None,
            conversation: None,
            reason: "known".to_owned(),
            until: until.to_owned(),
        }
    }

    fn policy<'a>(allow: &'a [AllowRule], baseline: Option<&'a Baseline>) -> GatePolicy<'a> {
        GatePolicy {
            fail_on: &[Category::ClientGone],
            inferred_aborts: true,
            allow,
            today: "2026-12-06",
            baseline,
            fail_on_unprotected_tools: false,
        }
    }

    fn standings(gate: &Gate) -> Vec<&'static str> {
        gate.standings.iter().map(Standing::as_str).collect()
    }

    #[test]
    fn categories_outside_fail_on_pass() {
        let gate = Gate::judge(&audit(), &policy(&[], None));
        assert_eq!(standings(&gate), ["fails", "fails", "passes"]);
        assert!(gate.failed);
    }

    #[test]
    fn a_suppression_accepts_its_findings_until_its_last_day() {
        let rules = [allow("re*", "2026-12-06")];
        let gate = Gate::judge(&audit(), &policy(&rules, None));
        assert_eq!(standings(&gate), ["fails", "suppressed", "passes"]);
        assert_eq!(gate.standings[1], Standing::Suppressed { rule: 0 });
        assert!(gate.expired.is_empty());

        let rules = [allow("re*", "2026-12-05")];
        let gate = Gate::judge(&audit(), &policy(&rules, None));
        assert_eq!(standings(&gate), ["fails", "fails", "passes"]);
        assert_eq!(gate.expired, rules);
        assert!(gate.allow.is_empty());
    }

    #[test]
    fn suppressing_every_gating_finding_passes_the_gate() {
        let mut rule = allow("*", "2030-01-01");
        rule.tool = None;
        rule.category = Some(Category::ClientGone);
        let gate = Gate::judge(&audit(), &policy(&[rule], None));
        assert_eq!(standings(&gate), ["suppressed", "suppressed", "passes"]);
        assert!(!gate.failed);
    }

    #[test]
    fn the_baseline_fails_only_new_signatures_and_names_those_gone() {
        let old = finding(
            "charge",
            "POST /v1/payments",
            Category::ClientGone,
            "conv-old",
        );
        let gone = finding(
            "payout",
            "POST /v1/payouts",
            Category::LateQueued,
            "conv-old",
        );
        let entry = |f: &Finding| BaselineFinding {
            signature: f.signature.clone(),
            category: f.category.as_str().to_owned(),
            tool: f.tool_call.name.clone(),
            service: "payments".to_owned(),
            operation: f.write.as_ref().unwrap().operation.clone(),
            conversation_id: f.conversation_id.clone(),
        };
        let baseline = Baseline {
            input: "main.json".to_owned(),
            findings: vec![entry(&old), entry(&gone)],
        };
        let gate = Gate::judge(&audit(), &policy(&[], Some(&baseline)));
        // The same tool writing the same way in another conversation is the same problem.
        assert_eq!(standings(&gate), ["known", "fails", "passes"]);
        let diff = gate.baseline.unwrap();
        assert_eq!((diff.known, diff.new), (1, 2));
        assert_eq!(diff.had, [true, false, false]);
        assert_eq!(diff.gone, [entry(&gone)]);

        // A suppressed finding the baseline had is still known to it; a signature the
        // baseline had twice is gone once.
        let rules = [allow("charge", "2030-01-01")];
        let twice = Baseline {
            input: "main.json".to_owned(),
            findings: vec![entry(&old), entry(&gone), entry(&gone)],
        };
        let gate = Gate::judge(&audit(), &policy(&rules, Some(&twice)));
        assert_eq!(standings(&gate), ["suppressed", "fails", "passes"]);
        let diff = gate.baseline.unwrap();
        assert_eq!((diff.known, diff.new), (1, 2));
        assert_eq!(diff.gone.len(), 1);
    }
}

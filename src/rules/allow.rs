//! Suppressions: `[[allow]]` entries of the rules file that accept a known late write for a
//! while. A suppressed finding does not fail the gate but is never hidden, and an entry past
//! its `until` date stops suppressing.

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use crate::model::Category;
use crate::util::text::glob;

/// One suppression. Every field given must match the finding (`*` matches any run of
/// characters); `reason` and `until` are required.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowRule {
    /// The tool's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// The service (or vendor) that shows the write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The write's operation (`COMMIT (INSERT payments)`, `POST /v1/payments`) or the vendor
    /// event's type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Category>,
    /// The conversation id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<String>,
    /// Why the finding is accepted, for whoever reads the report.
    pub reason: String,
    /// The last day (`YYYY-MM-DD`, UTC) the entry suppresses.
    pub until: String,
}

/// What a suppression is matched against.
#[derive(Clone, Copy, Debug)]
pub struct FindingKey<'a> {
    pub tool: &'a str,
    pub service: &'a str,
    pub operation: &'a str,
    pub category: Category,
    pub conversation: &'a str,
}

impl AllowRule {
    pub fn matches(&self, key: &FindingKey<'_>) -> bool {
        let field =
            |pattern: &Option<String>, text: &str| pattern.as_deref().is_none_or(|p| glob(p, text));
        field(&self.tool, key.tool)
            && field(&self.service, key.service)
            && field(&self.operation, key.operation)
            && self.category.is_none_or(|c| c == key.category)
            && field(&self.conversation, key.conversation)
    }

    /// Whether the entry is past its last day; `today` is `YYYY-MM-DD`, which orders as text.
    pub fn expired(&self, today: &str) -> bool {
        today > self.until.as_str()
    }

    /// The entry in a few words, to name it in warnings and reports.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (name, value) in [
            ("tool", &self.tool),
            ("service", &self.service),
            ("operation", &self.operation),
            ("conversation", &self.conversation),
        ] {
            if let Some(value) = value {
                parts.push(format!("{name} = {value:?}"));
            }
        }
        if let Some(category) = self.category {
            parts.push(format!("category = {:?}", category.as_str()));
        }
        format!("[[allow]] {} until {}", parts.join(", "), self.until)
    }

    pub(super) fn validate(&self) -> Result<()> {
        if self.reason.trim().is_empty() {
            bail!("`reason` is empty: say why the finding is accepted");
        }
        if !is_date(&self.until) {
            bail!(
                "`until` {:?} is not a date; expected YYYY-MM-DD",
                self.until
            );
        }
        if self.tool.is_none()
            && self.service.is_none()
            && self.operation.is_none()
            && self.category.is_none()
            && self.conversation.is_none()
        {
            bail!(
                "it names no field to match (tool, service, operation, category, conversation), so it would allow every finding"
            );
        }
        Ok(())
    }
}

/// `YYYY-MM-DD`, a day of the calendar (not `2026-02-31`).
fn is_date(text: &str) -> bool {
    text.len() == 10 && chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(tool: Option<&str>, category: Option<Category>, until: &str) -> AllowRule {
        AllowRule {
            tool: tool.map(str::to_owned),
            service: None,
            operation: None,
            category,
            conversation: Some("conv-*".to_owned()),
            reason: "known".to_owned(),
            until: until.to_owned(),
        }
    }

    fn key(tool: &str, conversation: &str) -> FindingKey<'static> {
        FindingKey {
            tool: Box::leak(tool.to_owned().into_boxed_str()),
            service: "payments",
            operation: "COMMIT (INSERT)",
            category: Category::ClientGone,
            conversation: Box::leak(conversation.to_owned().into_boxed_str()),
        }
    }

    #[test]
    fn every_given_field_must_match() {
        let r = rule(Some("create_*"), Some(Category::ClientGone), "2027-01-31");
        assert!(r.matches(&key("create_payment", "conv-1")));
        assert!(!r.matches(&key("refund", "conv-1")));
        assert!(!r.matches(&key("create_payment", "other")));
        let queued = rule(None, Some(Category::LateQueued), "2027-01-31");
        assert!(!queued.matches(&key("create_payment", "conv-1")));
    }

    #[test]
    fn an_entry_suppresses_through_its_last_day() {
        let r = rule(Some("x"), None, "2026-12-06");
        assert!(!r.expired("2026-12-06"));
        assert!(r.expired("2026-12-07"));
        assert!(!r.expired("2026-11-30"));
    }

    #[test]
    fn an_entry_needs_a_reason_a_date_and_a_field() {
        assert!(rule(Some("x"), None, "2026-12-06").validate().is_ok());
        let mut r = rule(Some("x"), None, "2026-13-01");
        assert!(r.validate().unwrap_err().to_string().contains("YYYY-MM-DD"));
        for not_a_day in ["2026-02-31", "2026-2-1", "26-02-01", "2026-02-01T00:00"] {
            r.until = not_a_day.into();
            assert!(r.validate().is_err(), "{not_a_day}");
        }
        r.until = "2028-02-29".into();
        assert!(r.validate().is_ok());
        r.until = "2026-12-01".into();
        r.reason = " ".into();
        assert!(r.validate().unwrap_err().to_string().contains("reason"));
        let mut all = rule(None, None, "2026-12-01");
        all.conversation = None;
        assert!(
            all.validate()
                .unwrap_err()
                .to_string()
                .contains("every finding")
        );
    }
}

//! A previous run's JSON report (`abortaudit/v1`), read as a baseline: its findings' signatures,
//! computed from their fields (so reports written before signatures existed serve too).

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::model::ids::signature;
use crate::model::{Baseline, BaselineFinding};

pub fn read_baseline(path: &Path) -> Result<Baseline> {
    let name = path.display().to_string();
    let text = std::fs::read(path).with_context(|| format!("cannot read the baseline {name}"))?;
    let report: Value = serde_json::from_slice(&text).with_context(|| {
        format!(
            "the baseline {name} is not JSON; expected a report of `abortaudit scan --format json`"
        )
    })?;
    if report["schema"] != "abortaudit/v1" {
        bail!(
            "the baseline {name} is not an abortaudit/v1 report (schema {}); expected the output of `abortaudit scan --format json`",
            report["schema"]
        );
    }
    let Some(findings) = report["findings"].as_array() else {
        bail!("the baseline {name} has no `findings` list");
    };
    let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let mut out = Vec::with_capacity(findings.len());
    for (n, f) in findings.iter().enumerate() {
        let category = text(&f["category"]);
        let tool = text(&f["tool_call"]["name"]);
        if category.is_empty() || tool.is_empty() {
            bail!(
                "the baseline {name}: finding {} has no category or tool call name",
                n + 1
            );
        }
        let service = text(&f["write"]["service"]);
        let operation = text(&f["write"]["operation"]);
        out.push(BaselineFinding {
            signature: signature(&tool, &service, &operation, &category),
            category,
            tool,
            service,
            operation,
            conversation_id: text(&f["conversation_id"]),
        });
    }
    Ok(Baseline {
        input: name,
        findings: out,
    })
}

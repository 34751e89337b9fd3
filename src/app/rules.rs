//! `abortaudit rules`: the effective detection rules, as TOML to save and edit.

use std::io::Write;

use anyhow::Result;

use super::ExitStatus;
use crate::rules::Rules;

const HEADER: &str = "# abortaudit detection rules (the effective ones).\n\
     # Save as abortaudit.toml and edit; every key is optional and unknown keys are errors.\n\n";

pub fn run(rules: &Rules, out: &mut dyn Write) -> Result<ExitStatus> {
    out.write_all(HEADER.as_bytes())?;
    out.write_all(rules.to_toml().as_bytes())?;
    Ok(ExitStatus::Success)
}

//! A previous run's findings, by signature: what `scan --baseline` compares against.

/// One finding of the previous run, as its report gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaselineFinding {
    pub signature: String,
    pub category: String,
    pub tool: String,
    pub service: String,
    pub operation: String,
    pub conversation_id: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Baseline {
    /// The report it was read from.
    pub input: String,
    pub findings: Vec<BaselineFinding>,
}

impl Baseline {
    pub fn has(&self, signature: &str) -> bool {
        self.findings.iter().any(|f| f.signature == signature)
    }
}

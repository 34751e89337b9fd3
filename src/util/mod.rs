//! Vocabulary without a domain: units, text patterns, and work spread over threads.

pub mod text;
pub mod units;
pub mod workers;

//! Vocabulary without a domain: units and text patterns.

pub mod text;
pub mod units;

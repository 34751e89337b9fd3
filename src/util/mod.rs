//! Vocabulary without a domain: units.

pub mod units;

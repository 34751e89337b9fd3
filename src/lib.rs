//! abortaudit: finds writes that landed after a user cancelled an LLM agent conversation.
//!
//! Data flows one way, and each layer imports only those below it:
//!
//! ```text
//! app (one file per command: orchestrates, decides the exit status)   ← config ← cli
//!  └─ report (one renderer per output format)
//!      └─ ingest (inputs → spans and vendor events)   correlate (the causal join)   classify (findings)
//!          └─ rules (every detection rule, and the predicates that apply them)
//!              └─ model (ids, times, spans, events, categories, diagnostics, semconv keys)   util
//! ```
//!
//! `classify` reads `correlate`'s output; no other stage imports another. `tests/layering.rs`
//! holds the code to this picture.

pub mod app;
pub mod classify;
pub mod cli;
pub mod config;
pub mod correlate;
pub mod ingest;
pub mod model;
pub mod report;
pub mod rules;
pub mod util;

#[cfg(test)]
mod testutil;

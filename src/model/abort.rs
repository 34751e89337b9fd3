//! The user's Stop as an abort log records it: the front end that saw the click writes the
//! conversation and the time, which no span may show.

use super::ids::TraceId;
use super::span::Origin;

#[derive(Clone, Debug, PartialEq)]
pub struct AbortRecord {
    pub conversation_id: String,
    /// Unix nanoseconds.
    pub time: u64,
    /// How coarse `time` is (an RFC 3339 time with milliseconds: 1 ms).
    pub precision: u64,
    /// The turn's trace, when the log knows it.
    pub trace_id: Option<TraceId>,
    pub reason: Option<String>,
    pub origin: Origin,
}

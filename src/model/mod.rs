//! The vocabulary every stage shares: ids, times, spans, vendor events, finding categories,
//! diagnostics and the semantic-convention keys. Imports nothing else from the crate.

pub mod abort;
pub mod baseline;
pub mod category;
pub mod diagnostic;
pub mod event;
pub mod ids;
pub mod semconv;
pub mod span;
pub mod time;

pub use abort::AbortRecord;
pub use baseline::{Baseline, BaselineFinding};
pub use category::Category;
pub use diagnostic::{Code, Diagnostic, Severity};
pub use event::{KeyKind, Role, VendorEvent};
pub use ids::{SpanId, TraceId};
pub use span::{
    Attributes, Event, KeyValue, Link, Origin, Resource, Span, SpanKind, Status, StatusCode, Value,
};

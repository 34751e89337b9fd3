//! JSON text read without building values: a cursor that checks and skips (the first pass over
//! a large export), and line numbers of records within a document.

pub(crate) mod cursor;
pub(crate) mod locate;

//! Problems found in the inputs that did not stop the run.
//!
//! Every diagnostic names its input and where in it (line, or byte offset for binary inputs),
//! carries a stable code that scripts can match on, and says what was expected.

use serde::Serialize;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

/// Stable diagnostic codes. The string form is part of the JSON schema: never rename one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Code {
    /// A line or document that is not valid JSON.
    MalformedJson,
    /// The last line of a file has no newline and does not parse: a file still being written.
    TruncatedLine,
    /// Valid JSON whose fields do not have the OTLP types (a number where a list is expected…).
    InvalidOtlp,
    /// A trace or span id that is empty, of the wrong length or not hex/base64.
    InvalidId,
    /// A value the model cannot hold exactly (an out-of-range time, an unknown enum).
    InvalidValue,
    /// A JSON Lines record that holds other telemetry (metrics, logs), not traces.
    NotTraces,
    /// A span without a start or end time.
    MissingTime,
    /// Valid JSON whose fields do not have the types of its format (Jaeger, Zipkin).
    InvalidRecord,
    /// A message of OTLP/protobuf that does not decode.
    InvalidProtobuf,
    /// The last message of a length-framed stream is cut short: a file still being written.
    TruncatedFrame,
    /// Compressed data (gzip, zstd) that is corrupt or cut short.
    CorruptCompression,
    /// Two spans with the same trace id, span id and start but different contents.
    ConflictingDuplicate,
    /// A directory link that leads back into a directory already being read.
    SymlinkLoop,
    /// A key OTLP/JSON does not define, holding a list of objects where spans are expected.
    UnknownField,
    /// A record beyond what abortaudit reads: too long, nested too deep, a number too large.
    OverLimit,
    /// A store's span links were followed as far as the survey goes; traces linked further
    /// were not read.
    LinkDepth,
}

impl Code {
    pub const ALL: [Code; 16] = [
        Code::MalformedJson,
        Code::TruncatedLine,
        Code::InvalidOtlp,
        Code::InvalidId,
        Code::InvalidValue,
        Code::NotTraces,
        Code::MissingTime,
        Code::InvalidRecord,
        Code::InvalidProtobuf,
        Code::TruncatedFrame,
        Code::CorruptCompression,
        Code::ConflictingDuplicate,
        Code::SymlinkLoop,
        Code::UnknownField,
        Code::OverLimit,
        Code::LinkDepth,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Code::MalformedJson => "malformed-json",
            Code::TruncatedLine => "truncated-line",
            Code::InvalidOtlp => "invalid-otlp",
            Code::InvalidId => "invalid-id",
            Code::InvalidValue => "invalid-value",
            Code::NotTraces => "not-traces",
            Code::MissingTime => "missing-time",
            Code::InvalidRecord => "invalid-record",
            Code::InvalidProtobuf => "invalid-protobuf",
            Code::TruncatedFrame => "truncated-frame",
            Code::CorruptCompression => "corrupt-compression",
            Code::ConflictingDuplicate => "conflicting-duplicate",
            Code::SymlinkLoop => "symlink-loop",
            Code::UnknownField => "unknown-field",
            Code::OverLimit => "over-limit",
            Code::LinkDepth => "link-depth",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Code::MalformedJson => "a line or document that is not valid JSON; its spans are lost",
            Code::TruncatedLine => {
                "the last line is incomplete, as when a file is still being written"
            }
            Code::InvalidOtlp => {
                "valid JSON whose fields do not have OTLP's types; the record is skipped"
            }
            Code::InvalidId => {
                "an empty or malformed trace/span id; the span is not used for joins"
            }
            Code::InvalidValue => "a value outside what OTLP allows; the field is ignored",
            Code::NotTraces => "a record of other telemetry (metrics or logs); it is skipped",
            Code::MissingTime => {
                "a span with no start time (taken as 0) or no end time (taken as still open)"
            }
            Code::InvalidRecord => {
                "a Jaeger or Zipkin record whose fields do not have the format's types; it is skipped"
            }
            Code::InvalidProtobuf => "a protobuf message that is not OTLP traces; it is skipped",
            Code::TruncatedFrame => {
                "the last message of a length-framed stream is incomplete, as when a file is still being written"
            }
            Code::CorruptCompression => {
                "gzip or zstd data that is corrupt or cut short; what decoded before it is read"
            }
            Code::ConflictingDuplicate => {
                "two spans share trace id, span id and start but differ; the first is kept"
            }
            Code::SymlinkLoop => {
                "a directory link that leads back into a directory being read; it is not followed"
            }
            Code::UnknownField => {
                "a key OTLP/JSON does not define, holding a list of objects where spans are expected; it is ignored, and any spans in it are not read"
            }
            Code::OverLimit => {
                "a record beyond the limits abortaudit reads (docs/limits.md): a line of 4 GiB or more, nesting deeper than 128 levels, a number beyond the range of a 64-bit float; it is skipped"
            }
            Code::LinkDepth => {
                "a store's span links were followed to the survey's depth; traces linked further were not read"
            }
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Diagnostic {
    pub input: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    pub severity: Severity,
    pub code: Code,
    pub message: String,
}

impl Diagnostic {
    pub fn error(input: &str, line: Option<u64>, code: Code, message: impl Into<String>) -> Self {
        Diagnostic {
            input: input.to_owned(),
            line,
            severity: Severity::Error,
            code,
            message: message.into(),
        }
    }

    pub fn warning(input: &str, line: Option<u64>, code: Code, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(input, line, code, message)
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        match self.line {
            Some(line) => write!(
                f,
                "{}:{line}: {severity}[{}]: {}",
                self.input, self.code, self.message
            ),
            None => write!(
                f,
                "{}: {severity}[{}]: {}",
                self.input, self.code, self.message
            ),
        }
    }
}

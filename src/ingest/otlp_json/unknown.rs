//! Keys OTLP/JSON does not define, where it holds lists of spans. The protobuf JSON mapping
//! ignores unknown fields, so `{"scopeSpan":[…]}` is a valid `ResourceSpans` with no spans: a
//! misspelt key would lose its spans without a word. A record whose envelope, `ResourceSpans`
//! or `ScopeSpans` had an unknown key (`Envelope::has_unknown_keys`, as serde read it) is
//! looked at again here, and each such key that holds a list of objects (what spans, or their
//! groups, are) is named in a warning. Keys holding anything else (a vendor's string, an
//! empty list) cannot hold spans and are left alone.

use super::super::json_text::cursor::{Cursor, each_element};

/// A key OTLP/JSON does not define, holding a list of objects.
#[derive(Debug, PartialEq)]
pub(super) struct UnknownList {
    /// Where the object that has it is in the record (`resourceSpans[0].scopeSpans[1]`), empty
    /// for the record itself.
    pub(super) within: String,
    pub(super) key: String,
    /// The key OTLP/JSON has there for such a list.
    pub(super) expected: &'static str,
    /// Where the key is in the record's text.
    pub(super) offset: usize,
}

impl UnknownList {
    pub(super) fn message(&self) -> String {
        let within = match self.within.as_str() {
            "" => "the record".to_owned(),
            path => path.to_owned(),
        };
        format!(
            "{within} has a key {:?} holding a list of objects, which OTLP/JSON does not define \
             (expected {:?} there); it is ignored, so any spans in it were not read",
            self.key, self.expected
        )
    }
}

/// The keys of `record` (a whole JSON value that serde read as an OTLP envelope) that
/// OTLP/JSON does not define and that hold lists of objects, in the order of the text. The
/// walk stops where the cursor cannot go on (nesting deeper than it reads), keeping what it
/// found before.
pub(super) fn lists_under_unknown_keys(record: &[u8]) -> Vec<UnknownList> {
    let mut found = Vec::new();
    let mut cursor = Cursor::new(record);
    let _ = envelope(&mut cursor, record, "", &mut found);
    found
}

/// A member's key, escapes decoded.
fn decoded_key(cursor: &mut Cursor<'_>, text: &[u8]) -> Option<(String, usize)> {
    let at = cursor.position();
    let (inside, escaped) = cursor.string()?;
    cursor.eat(b':')?;
    let key = if escaped {
        serde_json::from_slice::<String>(&text[inside.start - 1..inside.end + 1]).ok()?
    } else {
        String::from_utf8_lossy(&text[inside]).into_owned()
    };
    Some((key, at))
}

/// Reads an object member by member, keys decoded.
fn members(
    cursor: &mut Cursor<'_>,
    text: &[u8],
    mut member: impl FnMut(&mut Cursor<'_>, String, usize) -> Option<()>,
) -> Option<()> {
    cursor.eat(b'{')?;
    if cursor.eat_if(b'}') {
        return Some(());
    }
    loop {
        let (key, at) = decoded_key(cursor, text)?;
        member(cursor, key, at)?;
        if cursor.eat_if(b'}') {
            return Some(());
        }
        cursor.eat(b',')?;
    }
}

/// Skips the value at the cursor, noting it when it is a list of objects under an unknown key.
fn unknown(
    cursor: &mut Cursor<'_>,
    within: &str,
    key: String,
    offset: usize,
    expected: &'static str,
    found: &mut Vec<UnknownList>,
) -> Option<()> {
    let value = cursor.value()?;
    let mut inner = Cursor::new(&cursor.text()[value]);
    if inner.eat_if(b'[') && inner.peek() == Some(b'{') {
        found.push(UnknownList {
            within: within.to_owned(),
            key,
            expected,
            offset,
        });
    }
    Some(())
}

fn envelope(
    cursor: &mut Cursor<'_>,
    text: &[u8],
    within: &str,
    found: &mut Vec<UnknownList>,
) -> Option<()> {
    let at = |key: &str| match within {
        "" => key.to_owned(),
        _ => format!("{within}.{key}"),
    };
    members(cursor, text, |cursor, key, offset| match key.as_str() {
        "resourceSpans" | "resource_spans" | "batches" => {
            let mut i = 0;
            let path = at(&key);
            each_element(cursor, |cursor| {
                let here = format!("{path}[{i}]");
                i += 1;
                resource_spans(cursor, text, &here, found)
            })
        }
        "result" | "trace" => envelope(cursor, text, &at(&key), found),
        "resourceMetrics" | "resource_metrics" | "resourceLogs" | "resource_logs"
        | "resourceProfiles" | "resource_profiles" => cursor.value().map(drop),
        _ => unknown(cursor, within, key, offset, "resourceSpans", found),
    })
}

fn resource_spans(
    cursor: &mut Cursor<'_>,
    text: &[u8],
    within: &str,
    found: &mut Vec<UnknownList>,
) -> Option<()> {
    members(cursor, text, |cursor, key, offset| match key.as_str() {
        "scopeSpans"
        | "scope_spans"
        | "instrumentationLibrarySpans"
        | "instrumentation_library_spans" => {
            let mut i = 0;
            each_element(cursor, |cursor| {
                let here = format!("{within}.{key}[{i}]");
                i += 1;
                members(cursor, text, |cursor, key, offset| match key.as_str() {
                    "spans"
                    | "scope"
                    | "schemaUrl"
                    | "schema_url"
                    | "instrumentationLibrary"
                    | "instrumentation_library" => cursor.value().map(drop),
                    _ => unknown(cursor, &here, key, offset, "spans", found),
                })
            })
        }
        "resource" | "schemaUrl" | "schema_url" => cursor.value().map(drop),
        _ => unknown(cursor, within, key, offset, "scopeSpans", found),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(record: &str) -> Vec<(String, String, &'static str)> {
        lists_under_unknown_keys(record.as_bytes())
            .into_iter()
            .map(|u| (u.within, u.key, u.expected))
            .collect()
    }

    #[test]
    fn names_unknown_keys_holding_lists_of_objects_where_spans_are_expected() {
        let record = r#"{"resourceSpans":[{"resource":{},"scopeSpan":[{"spans":[]}]},{"scopeSpans":[{"scope":{"name":"x"},"Spans":[{"traceId":"a"}],"spans":[]},{"sp\u0061nz":[{}]}],"schemaUrl":"u"}],"resourceSpanz":[{}]}"#;
        assert_eq!(
            keys(record),
            [
                ("resourceSpans[0]".into(), "scopeSpan".into(), "scopeSpans"),
                (
                    "resourceSpans[1].scopeSpans[0]".into(),
                    "Spans".into(),
                    "spans"
                ),
                (
                    "resourceSpans[1].scopeSpans[1]".into(),
                    "spanz".into(),
                    "spans"
                ),
                (String::new(), "resourceSpanz".into(), "resourceSpans"),
            ]
        );
        // Lists of anything but objects, and other values, cannot hold spans.
        let quiet = r#"{"resourceSpans":[{"scopeSpan":[],"extra":["a"],"n":{"spans":[{}]},"scopeSpans":[{"x":[1]}]}],"y":"[{"}"#;
        assert_eq!(keys(quiet), []);
        // Inside wrappers.
        let wrapped = r#"{"result":{"resourceSpans":[{"scopeSpans":[{"span":[{}]}]}]}}"#;
        assert_eq!(
            keys(wrapped),
            [(
                "result.resourceSpans[0].scopeSpans[0]".into(),
                "span".into(),
                "spans"
            )]
        );
        let message = lists_under_unknown_keys(wrapped.as_bytes())[0].message();
        assert!(
            message.contains(r#"has a key "span" holding a list of objects"#),
            "{message}"
        );
    }
}

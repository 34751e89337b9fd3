//! The first pass's proof that a whole read would build a span, or a resource, without a word.
//!
//! The first pass over a large export must accept and refuse what a whole read accepts and
//! refuses, with the same diagnostics, while building nothing. These checks walk a span's text
//! with the JSON cursor and say yes only when they can tell that serde_json would read it into
//! the wire types (`wire::WireSpan`, `WireResource`) and the converter would build it without a
//! diagnostic: the types of every field the wire types read, a repeated field, escapes serde
//! refuses (lone surrogates), numbers out of range, ids, times, enums and attribute values the
//! converter would diagnose, and nesting. Anything they do not handle, and anything a whole
//! read would say something about, is a no: the record is then read as a whole read reads it
//! (`index::indexed_as_whole`), which gives the diagnostics word for word. So a no is always
//! safe, and these checks may be as narrow as what exporters write; a yes must be right.
//!
//! Fields the wire types do not have (`flags`, `traceState`, `droppedAttributesCount`…) are
//! skipped as serde skips them (`IgnoredAny`): only their syntax is checked.

use super::super::json_text::cursor::{Cursor, PlainAttribute, each_element, each_member};
use super::wire::{KIND_NAMES, STATUS_NAMES, enum_value};
use crate::model::ids::decode_id;
use crate::model::{SpanKind, StatusCode, TraceId};

/// How deep attribute values may nest (`arrayValue` in `arrayValue`…) for these checks: each
/// level is three levels of serde_json's recursion, which stops at 128 counted from the top of
/// the record, where a span's attribute values start at 10. Deeper values are left to serde.
const MAX_VALUE_DEPTH: u32 = 8;

/// The fields of `WireSpan`, as bits, to find a repeated one (an error for serde); 0 is a
/// field it does not have.
const TRACE: u16 = 1;
const SPAN: u16 = 2;
const PARENT: u16 = 4;
const NAME: u16 = 8;
const KIND: u16 = 16;
const START: u16 = 32;
const END: u16 = 64;
const ATTRIBUTES: u16 = 128;
const EVENTS: u16 = 256;
const LINKS: u16 = 512;
const STATUS: u16 = 1024;

/// What `clean_span` notes on its way through a span's attributes, for the survey: the
/// conversation id written plainly under one of `ids`' keys.
pub(super) struct SpanNotes<'k> {
    /// The keys that name a conversation.
    pub ids: &'k KeyFilter,
    /// Where the value of the last attribute of the span's attribute list under one of the
    /// keys lies (between its quotes), when that attribute is written as exporters write
    /// them (`Cursor::plain_attribute`).
    pub conversation: Option<std::ops::Range<usize>>,
    /// One such attribute is escaped or holds an integer.
    pub unplain: bool,
    /// The trace ids of the span's links, in order.
    pub links: Vec<TraceId>,
}

impl<'k> SpanNotes<'k> {
    /// Nothing noted yet, of a span whose conversation is named by `ids`.
    pub(super) fn new(ids: &'k KeyFilter) -> SpanNotes<'k> {
        SpanNotes {
            ids,
            conversation: None,
            unplain: false,
            links: Vec::new(),
        }
    }
}

/// A set of attribute keys, tested at the cost of a bit for most keys that are not in it.
pub(crate) struct KeyFilter {
    /// The lengths of the keys (bit `n`: some key is `n` bytes long; bit 127: 127 or more).
    lengths: u128,
    keys: Vec<Box<[u8]>>,
}

impl KeyFilter {
    pub(crate) fn new<'a>(keys: impl IntoIterator<Item = &'a str>) -> KeyFilter {
        let keys: Vec<Box<[u8]>> = keys.into_iter().map(|k| k.as_bytes().into()).collect();
        let lengths = keys.iter().fold(0, |bits, k| bits | 1 << k.len().min(127));
        KeyFilter { lengths, keys }
    }

    /// Whether `key` (as written, escapes and all) is one of the keys.
    #[inline(always)]
    pub(crate) fn contains(&self, key: &[u8]) -> bool {
        self.lengths >> key.len().min(127) & 1 == 1 && self.keys.iter().any(|k| **k == *key)
    }
}

/// Whether the span at the cursor reads and builds without a diagnostic (see the module's
/// comment); the cursor is then after it. `text` is the whole text the cursor is over.
/// `trace_checked`: the span starts with a trace id already found valid
/// (`index::leading_trace_id`), which need not be decoded again. A span it passes has one
/// attribute list at most (a repeated field is a no), and `notes` says what is in it.
pub(super) fn clean_span(
    cursor: &mut Cursor<'_>,
    text: &str,
    trace_checked: bool,
    notes: &mut SpanNotes<'_>,
) -> Option<()> {
    cursor.eat(b'{')?;
    let mut seen = 0u16;
    if trace_checked {
        // `"traceId":"` and 32 hex digits and `"`.
        cursor.eat_prefix(b"\"traceId\":");
        cursor.string()?;
        // What the cursor sees of the survey's needles from here on is the rest of the span's
        // (`SurveyRules::prefilter_sighted`).
        cursor.sightings();
        seen = TRACE;
        if cursor.eat_if(b'}') {
            return None;
        }
        cursor.eat(b',')?;
    } else if cursor.eat_if(b'}') {
        return None;
    }
    loop {
        let field = match known_span_key(cursor) {
            Some(field) => field,
            None => span_field(cursor.key()?),
        };
        if seen & field != 0 {
            return None;
        }
        seen |= field;
        match field {
            TRACE => id::<16>(cursor, text)?,
            SPAN => id::<8>(cursor, text)?,
            PARENT => {
                // Absent, null or empty: a root. Anything else must be an id.
                if !null(cursor) {
                    let (inside, escaped) = cursor.string()?;
                    if escaped || (!inside.is_empty() && !id_ok::<8>(&text.as_bytes()[inside])) {
                        return None;
                    }
                }
            }
            NAME => optional_string(cursor)?,
            KIND => enumerated(cursor, text, "SPAN_KIND_", KIND_NAMES, |v| {
                SpanKind::from_otlp(v).is_some()
            })?,
            START => {
                time(cursor, text)?;
            }
            // Proto3's unset end, 0, is a span still open: a warning.
            END => {
                if time(cursor, text)? {
                    return None;
                }
            }
            ATTRIBUTES => attributes(cursor, text, 0, |key, attribute| {
                if notes.ids.contains(key) {
                    if attribute.escaped || attribute.int {
                        notes.unplain = true;
                    }
                    notes.conversation = Some(attribute.value.clone());
                }
            })?,
            EVENTS => list(cursor, |cursor| event(cursor, text))?,
            LINKS => list(cursor, |cursor| link(cursor, text, &mut notes.links))?,
            STATUS => {
                if !null(cursor) {
                    status(cursor, text)?;
                }
            }
            _ => {
                cursor.value()?;
            }
        }
        if cursor.eat_if(b'}') {
            break;
        }
        cursor.eat(b',')?;
    }
    // Without ids or times, the converter would say so.
    let required = TRACE | SPAN | START | END;
    (seen & required == required).then_some(())
}

/// The field a span's next key names, with its colon, when it is written as exporters write
/// it: matched at once. Every member of every span is looked up, and reading each key and
/// comparing it made the first pass a tenth slower. `None`: read the key (`span_field`).
#[inline(always)]
fn known_span_key(cursor: &mut Cursor<'_>) -> Option<u16> {
    let start = cursor.position();
    let field = match cursor.text().get(start + 1)? {
        b's' if cursor.eat_prefix(b"\"spanId\":") => SPAN,
        b's' if cursor.eat_prefix(b"\"startTimeUnixNano\":") => START,
        b's' if cursor.eat_prefix(b"\"status\":") => STATUS,
        b'p' if cursor.eat_prefix(b"\"parentSpanId\":") => PARENT,
        b'f' if cursor.eat_prefix(b"\"flags\":") => 0,
        b'n' if cursor.eat_prefix(b"\"name\":") => NAME,
        b'k' if cursor.eat_prefix(b"\"kind\":") => KIND,
        b'e' if cursor.eat_prefix(b"\"endTimeUnixNano\":") => END,
        b'e' if cursor.eat_prefix(b"\"events\":") => EVENTS,
        b'a' if cursor.eat_prefix(b"\"attributes\":") => ATTRIBUTES,
        b'l' if cursor.eat_prefix(b"\"links\":") => LINKS,
        b't' if cursor.eat_prefix(b"\"traceId\":") => TRACE,
        _ => return None,
    };
    cursor.sight_eaten_key(cursor.offset() - start);
    Some(field)
}

/// The field of `WireSpan` a key names (0: none), by its length first.
#[inline]
fn span_field(key: &[u8]) -> u16 {
    match key.len() {
        4 if key == b"name" => NAME,
        4 if key == b"kind" => KIND,
        5 if key == b"links" => LINKS,
        6 if key == b"spanId" => SPAN,
        6 if key == b"events" => EVENTS,
        6 if key == b"status" => STATUS,
        7 if key == b"traceId" => TRACE,
        7 if key == b"span_id" => SPAN,
        8 if key == b"trace_id" => TRACE,
        10 if key == b"attributes" => ATTRIBUTES,
        12 if key == b"parentSpanId" => PARENT,
        14 if key == b"parent_span_id" => PARENT,
        15 if key == b"endTimeUnixNano" => END,
        17 if key == b"startTimeUnixNano" => START,
        18 if key == b"end_time_unix_nano" => END,
        20 if key == b"start_time_unix_nano" => START,
        _ => 0,
    }
}

/// Whether the resource at the cursor reads and converts without a diagnostic.
pub(super) fn clean_resource(cursor: &mut Cursor<'_>, text: &str) -> Option<()> {
    let mut seen = false;
    each_member(cursor, |cursor, key| match key {
        b"attributes" if !seen => {
            seen = true;
            attributes(cursor, text, 0, |_, _| {})
        }
        b"attributes" => None,
        _ => cursor.value().map(drop),
    })
}

/// `null`, consumed if it is next.
fn null(cursor: &mut Cursor<'_>) -> bool {
    if cursor.peek() != Some(b'n') {
        return false;
    }
    cursor.value().is_some()
}

/// A list read element by element, or `null`.
fn list<'a>(
    cursor: &mut Cursor<'a>,
    element: impl FnMut(&mut Cursor<'a>) -> Option<()>,
) -> Option<()> {
    if null(cursor) {
        return Some(());
    }
    each_element(cursor, element)
}

/// An id, written as hex or base64 without escapes, that decodes.
fn id<const N: usize>(cursor: &mut Cursor<'_>, text: &str) -> Option<()> {
    let (inside, escaped) = cursor.string()?;
    (!escaped && id_ok::<N>(&text.as_bytes()[inside])).then_some(())
}

/// Whether `decode_id` takes an id. Two or three a span: hex, as exporters write ids, is
/// checked eight digits at a time without decoding it (hex of the length of an id cannot be
/// base64 of one, so it is valid exactly when it is hex and not all zeros).
#[inline]
fn id_ok<const N: usize>(raw: &[u8]) -> bool {
    if raw.len() != 2 * N {
        return std::str::from_utf8(raw).is_ok_and(|raw| decode_id::<N>(raw).is_ok());
    }
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Whether every byte of `word` (each below 0x80) is between `low` and `high`: with the
    // high bit of each byte set, subtracting `low` leaves it set when the byte is at least
    // `low`; and `high` with it set, less the byte, when the byte is at most `high`.
    let between = |word: u64, low: u8, high: u8| {
        ((word | HIGH) - ONES * u64::from(low)) & (((ONES * u64::from(high)) | HIGH) - word) & HIGH
    };
    let mut zeros = true;
    let mut chunks = raw.chunks_exact(8);
    for byte in chunks.remainder() {
        if !byte.is_ascii_hexdigit() {
            return false;
        }
        zeros &= *byte == b'0';
    }
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        // `between` takes bytes below 0x80: a byte above would borrow from the next (and
        // overflow in the last).
        if word & HIGH != 0 {
            return false;
        }
        // Letters to lower case (digits keep the bit); then 0-9 or a-f in every byte.
        let lower = word | (ONES * 0x20);
        let hex = between(lower, b'0', b'9') | between(lower, b'a', b'f');
        if hex != HIGH {
            return false;
        }
        zeros &= word == ONES * u64::from(b'0');
    }
    // All zeros is OTLP's invalid id.
    !zeros
}

/// A string serde reads as text: escapes that decode to a lone surrogate are an error there.
fn string(cursor: &mut Cursor<'_>) -> Option<()> {
    cursor.surrogates_met();
    let (_, escaped) = cursor.string()?;
    (!escaped || !cursor.surrogates_met()).then_some(())
}

fn optional_string(cursor: &mut Cursor<'_>) -> Option<()> {
    if null(cursor) {
        return Some(());
    }
    string(cursor)
}

/// Whether a string's text holds a `\u` escape of a UTF-16 surrogate, which serde_json
/// refuses unless it is half of a pair (a pair is rare enough to be left to serde too): what
/// `Cursor::surrogates_met` finds on the way, for the tests to hold it to.
#[cfg(test)]
fn surrogate_escape(inside: &[u8]) -> bool {
    let mut at = 0;
    while let Some(i) = memchr::memchr(b'\\', &inside[at..]) {
        let escape = at + i;
        match inside.get(escape + 1) {
            Some(b'u') => {
                let high = inside.get(escape + 2).copied().unwrap_or(0);
                let next = inside.get(escape + 3).copied().unwrap_or(0);
                if high.eq_ignore_ascii_case(&b'd')
                    && matches!(next, b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F')
                {
                    return true;
                }
                at = escape + 6;
            }
            _ => at = escape + 2,
        }
        if at >= inside.len() {
            break;
        }
    }
    false
}

/// A Unix-nanosecond time as `Flexible::as_time` takes it: a string of decimal digits, or an
/// integer, of 64 bits. Whether it is 0.
fn time(cursor: &mut Cursor<'_>, text: &str) -> Option<bool> {
    time_digits(number_text(cursor, text)?.as_bytes())
}

/// Whether `digits` are the decimal digits of an unsigned 64-bit integer (as `str::parse`
/// reads them, without a sign), and whether it is 0. Every span has two times, so this is on
/// the first pass's hot path: eight digits at a time.
#[inline]
pub(super) fn time_digits(digits: &[u8]) -> Option<bool> {
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    if digits.is_empty() || digits.len() > 20 {
        // Leading zeros make longer text that `str::parse` takes: rare, and left to it.
        let value: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
        return digits.iter().all(u8::is_ascii_digit).then_some(value == 0);
    }
    let (mut digit, mut zero) = (true, true);
    let mut chunks = digits.chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().ok()?);
        // Each byte 0x30-0x3f, and still so with 6 added: '0' to '9'.
        digit &= word & HIGH == ZEROS && word.wrapping_add(0x0606_0606_0606_0606) & HIGH == ZEROS;
        zero &= word == ZEROS;
    }
    for &byte in chunks.remainder() {
        digit &= byte.is_ascii_digit();
        zero &= byte == b'0';
    }
    // Twenty digits may be more than a u64 holds.
    let fits = digits.len() < 20 || digits <= b"18446744073709551615".as_slice();
    (digit && fits).then_some(zero)
}

/// An integer as `Flexible::as_i64` takes it: decimal text or a JSON integer, of 64 bits.
fn integer(cursor: &mut Cursor<'_>, text: &str) -> Option<()> {
    signed(number_text(cursor, text)?.as_bytes())
}

/// The text of a number written as a string without escapes, or as a JSON number.
fn number_text<'t>(cursor: &mut Cursor<'_>, text: &'t str) -> Option<&'t str> {
    Some(match cursor.peek()? {
        b'"' => {
            let (inside, escaped) = cursor.string()?;
            if escaped {
                return None;
            }
            &text[inside]
        }
        _ => &text[cursor.value()?],
    })
}

/// Decimal digits as the unsigned 64-bit integer `str::parse` reads in them (no sign, no
/// space): up to 19 digits cannot overflow, and are read in one loop.
#[inline]
pub(super) fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return std::str::from_utf8(digits).ok()?.parse().ok();
    }
    let mut value = 0u64;
    for &byte in digits {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value = value * 10 + u64::from(digit);
    }
    Some(value)
}

/// Whether text is a signed 64-bit integer as `str::parse::<i64>` reads it (an optional `-`,
/// decimal digits); exporters write most integer attributes as such strings.
#[inline]
pub(super) fn signed(text: &[u8]) -> Option<()> {
    let (negative, digits) = match text.strip_prefix(b"-") {
        Some(digits) => (true, digits),
        None => (false, text.strip_prefix(b"+").unwrap_or(text)),
    };
    let value = decimal(digits)?;
    let limit = i64::MAX as u64 + u64::from(negative);
    (value <= limit).then_some(())
}

/// An enum as `Flexible::as_enum` takes it, that `valid` accepts: a small integer, or a name.
fn enumerated(
    cursor: &mut Cursor<'_>,
    text: &str,
    prefix: &str,
    names: &[&str],
    valid: impl Fn(i64) -> bool,
) -> Option<()> {
    if null(cursor) {
        return Some(());
    }
    let value = match cursor.peek()? {
        b'"' => {
            let (inside, escaped) = cursor.string()?;
            if escaped {
                return None;
            }
            enum_value(&text[inside], prefix, names)?
        }
        _ => {
            let token = &text[cursor.value()?];
            // A JSON integer serde reads as one (not a float, not out of range).
            if !token.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            token.parse().ok()?
        }
    };
    valid(value).then_some(())
}

/// An attribute list: `null`, or key-value objects. `plain` is shown each attribute written
/// as exporters write them (`Cursor::plain_attribute`), with its key as written.
fn attributes(
    cursor: &mut Cursor<'_>,
    text: &str,
    depth: u32,
    mut plain: impl FnMut(&[u8], &PlainAttribute),
) -> Option<()> {
    list(cursor, |cursor| {
        cursor.surrogates_met();
        if cursor.peek()? == b'{'
            && let Some(attribute) = cursor.plain_attribute()
        {
            // `{"key":"…","value":{"stringValue":"…"}}` or `"intValue":"…"`, read at once.
            let bytes = text.as_bytes();
            plain(&bytes[attribute.key.clone()], &attribute);
            if attribute.escaped && cursor.surrogates_met() {
                return None;
            }
            if attribute.int
                && (attribute.escaped || signed(&bytes[attribute.value.clone()]).is_none())
            {
                return None;
            }
            return Some(());
        }
        key_value(cursor, text, depth)
    })
}

/// A `KeyValue`: a string `key` and an `AnyValue` (or `null`) `value`, each once.
fn key_value(cursor: &mut Cursor<'_>, text: &str, depth: u32) -> Option<()> {
    let (mut key, mut value) = (false, false);
    each_member(cursor, |cursor, member| match member {
        b"key" if !key => {
            key = true;
            string(cursor)
        }
        b"value" if !value => {
            value = true;
            if null(cursor) {
                return Some(());
            }
            any_value(cursor, text, depth)
        }
        b"key" | b"value" => None,
        _ => cursor.value().map(drop),
    })
}

/// An `AnyValue` whose every field the converter would take without a diagnostic.
fn any_value(cursor: &mut Cursor<'_>, text: &str, depth: u32) -> Option<()> {
    if depth >= MAX_VALUE_DEPTH {
        return None;
    }
    // The fields of `WireAnyValue`, as bits, to find a repeated one.
    let mut seen = 0u8;
    each_member(cursor, |cursor, member| {
        let field = match member {
            b"stringValue" | b"string_value" => {
                optional_string(cursor)?;
                1
            }
            b"boolValue" | b"bool_value" => {
                if !null(cursor) {
                    let literal = &text[cursor.value()?];
                    if literal != "true" && literal != "false" {
                        return None;
                    }
                }
                2
            }
            b"intValue" | b"int_value" => {
                if !null(cursor) {
                    integer(cursor, text)?;
                }
                4
            }
            b"doubleValue" | b"double_value" => {
                if !null(cursor) {
                    double(cursor, text)?;
                }
                8
            }
            b"arrayValue" | b"array_value" => {
                if !null(cursor) {
                    values(cursor, |cursor| {
                        list(cursor, |cursor| any_value(cursor, text, depth + 1))
                    })?;
                }
                16
            }
            b"kvlistValue" | b"kvlist_value" => {
                if !null(cursor) {
                    values(cursor, |cursor| {
                        attributes(cursor, text, depth + 1, |_, _| {})
                    })?;
                }
                32
            }
            // `bytesValue` (base64 to check) and anything else: left to serde.
            _ => return None,
        };
        if seen & field != 0 {
            return None;
        }
        seen |= field;
        Some(())
    })
}

/// An `ArrayValue` or `KeyValueList`: an object whose `values` (once) `read` reads.
fn values<'a>(
    cursor: &mut Cursor<'a>,
    mut read: impl FnMut(&mut Cursor<'a>) -> Option<()>,
) -> Option<()> {
    let mut seen = false;
    each_member(cursor, |cursor, member| match member {
        b"values" if !seen => {
            seen = true;
            read(cursor)
        }
        b"values" => None,
        _ => cursor.value().map(drop),
    })
}

/// A JSON number serde_json reads without error: one whose value is plainly within the range
/// of an f64 (serde refuses one that overflows, as `1e400`; its rounding near the limit is
/// its own, so the margin is wide).
fn double(cursor: &mut Cursor<'_>, text: &str) -> Option<()> {
    if cursor.peek()? == b'"' {
        return None;
    }
    let token = &text[cursor.value()?];
    let value: f64 = token.parse().ok()?;
    (value.is_finite() && value.abs() < 1e300).then_some(())
}

/// A span event: a time (required), a name, attributes.
fn event(cursor: &mut Cursor<'_>, text: &str) -> Option<()> {
    let mut seen = 0u8;
    each_member(cursor, |cursor, member| {
        let field = match member {
            b"timeUnixNano" | b"time_unix_nano" => {
                time(cursor, text)?;
                1
            }
            b"name" => {
                optional_string(cursor)?;
                2
            }
            b"attributes" => {
                attributes(cursor, text, 0, |_, _| {})?;
                4
            }
            _ => return cursor.value().map(drop),
        };
        if seen & field != 0 {
            return None;
        }
        seen |= field;
        Some(())
    })?;
    (seen & 1 == 1).then_some(())
}

/// A span link: both ids (required, valid), attributes; its trace id goes to `trace_ids`.
fn link(cursor: &mut Cursor<'_>, text: &str, trace_ids: &mut Vec<TraceId>) -> Option<()> {
    let mut seen = 0u8;
    each_member(cursor, |cursor, member| {
        let field = match member {
            b"traceId" | b"trace_id" => {
                let (inside, escaped) = cursor.string()?;
                if escaped {
                    return None;
                }
                trace_ids.push(TraceId(decode_id::<16>(&text[inside]).ok()?));
                1
            }
            b"spanId" | b"span_id" => {
                id::<8>(cursor, text)?;
                2
            }
            b"attributes" => {
                attributes(cursor, text, 0, |_, _| {})?;
                4
            }
            _ => return cursor.value().map(drop),
        };
        if seen & field != 0 {
            return None;
        }
        seen |= field;
        Some(())
    })?;
    (seen & 3 == 3).then_some(())
}

/// A status: a message, a code the converter takes.
fn status(cursor: &mut Cursor<'_>, text: &str) -> Option<()> {
    let mut seen = 0u8;
    each_member(cursor, |cursor, member| {
        let field = match member {
            b"message" => {
                optional_string(cursor)?;
                1
            }
            b"code" => {
                enumerated(cursor, text, "STATUS_CODE_", STATUS_NAMES, |v| {
                    StatusCode::from_otlp(v).is_some()
                })?;
                2
            }
            _ => return cursor.value().map(drop),
        };
        if seen & field != 0 {
            return None;
        }
        seen |= field;
        Some(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_as_decode_id_takes_them() {
        let mut ids: Vec<String> = vec![
            "5b8efff798038103".into(),
            "5B8EFFF798038103".into(),
            "0000000000000000".into(),
            "000000000000000g".into(),
            "5b8efff79803810".into(),
            "W47/95gDgQM=".into(),
            "W47_95gDgQM".into(),
        ];
        // Every byte value in every place of a hex id.
        for at in 0..16 {
            for byte in 0x20..0x7fu8 {
                let mut id = b"5b8efff798038103".to_vec();
                id[at] = byte;
                ids.push(String::from_utf8(id).unwrap());
            }
        }
        // Characters of two bytes, at the length of an id.
        ids.push("5b8efff7980381é".into());
        ids.push("é5b8efff7980381".into());
        for id in ids {
            assert_eq!(
                id_ok::<8>(id.as_bytes()),
                decode_id::<8>(&id).is_ok(),
                "{id}"
            );
        }
        // Bytes above ASCII (not text at all, but what a cursor may be given): refused, with
        // no arithmetic overflowing on the way (this runs with overflow checks).
        for at in 0..16 {
            for byte in 0x80..=0xffu8 {
                let mut id = b"5b8efff798038103".to_vec();
                id[at] = byte;
                assert!(!id_ok::<8>(&id), "{id:?}");
            }
        }
    }

    #[test]
    fn times_and_integers_are_checked_as_str_parse_reads_them() {
        for text in [
            "0",
            "00",
            "1795623368000000000",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999",
            "",
            "12a",
            "-1",
            "+1",
            " 1",
            "1.0",
            "000000000000000000001",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "-",
            "/",
            ":",
            "123456789:",
            "1234567/",
        ] {
            let parsed = text.parse::<u64>().ok();
            let plain = text.bytes().all(|b| b.is_ascii_digit());
            let expected = parsed.filter(|_| plain).map(|v| v == 0);
            assert_eq!(time_digits(text.as_bytes()), expected, "{text:?}");
            if signed(text.as_bytes()).is_some() {
                assert!(text.parse::<i64>().is_ok(), "{text:?}");
            }
        }
    }

    #[test]
    fn surrogate_escapes_are_found() {
        assert!(surrogate_escape(br"a\uD800b"));
        assert!(surrogate_escape(br"\udfff"));
        assert!(!surrogate_escape(br"\u00e9 \\uD800 \n"));
        assert!(!surrogate_escape(br"\u"));
        // The cursor finds them as it reads a string.
        for inside in [
            r"a\uD800b",
            r"\udfff",
            r"\uDbFf\u0041",
            r"\u00e9 \\uD800 \n",
            r"\ud7ff \uE000 \\\udc00",
            r"\\\\ud800",
            r"\u0064800",
            r"plain",
            r#"\"\uD\"#,
        ] {
            let quoted = format!("\"{inside}\"");
            let mut cursor = Cursor::new(quoted.as_bytes());
            if cursor.string().is_some() {
                assert_eq!(
                    cursor.surrogates_met(),
                    surrogate_escape(inside.as_bytes()),
                    "{inside}"
                );
                assert!(!cursor.surrogates_met());
            }
        }
    }
}

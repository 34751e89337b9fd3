//! A cursor over JSON text that checks and skips values without building them, for the first
//! pass over a large export (`otlp_json::index_record`), which must check every byte of the
//! file but keeps almost none of it. On the Collector's exports it skips text about twice as
//! fast as serde_json's `IgnoredAny` (bench/README.md has the figures), mostly by matching the
//! fixed parts of attributes (`skip_attribute`), and that pass is most of a scan.
//!
//! It answers `None` both for text that is not JSON and for JSON it does not handle (a string
//! with escapes where a key is read, nesting deeper than `MAX_DEPTH`): the caller then reads
//! the record with serde_json, which says what is wrong, or reads it in full. So it must never
//! accept what serde_json refuses; it may refuse what serde_json accepts. The caller checks
//! that the text is UTF-8 first: bytes are not checked here.

use std::ops::Range;

/// Deeper nesting is left to serde_json, whose own limit (128, counted from the top of the
/// record) this keeps well clear of.
const MAX_DEPTH: u32 = 96;

/// An attribute read by `Cursor::plain_attribute`: where its key's text and its value's text
/// lie (between their quotes), whether the value is `intValue` (else `stringValue`), and
/// whether either has escapes.
pub(crate) struct PlainAttribute {
    pub key: Range<usize>,
    pub int: bool,
    pub value: Range<usize>,
    pub escaped: bool,
}

/// A position in JSON text.
pub(crate) struct Cursor<'a> {
    text: &'a [u8],
    at: usize,
    /// A string read since `surrogates_met` was last asked held a `\u` escape of a UTF-16
    /// surrogate.
    surrogate: bool,
    /// The strings looked out for in every string the cursor goes through, and what it saw.
    lookout: Option<&'a Lookout>,
    sightings: Sightings,
}

/// Strings a cursor looks out for as it goes: each string it reads or skips, key or value, is
/// held to them on the way, at the cost of a table look-up for most (the first pass's
/// prefilter, `otlp_json::survey`, would otherwise search every span's text once more).
///
/// In JSON text the cursor accepts, `"X"` (X without quotes, backslashes or control
/// characters, neither starting nor ending with whitespace or punctuation of JSON's) is in
/// the text exactly where a string is X, or where an escaped string ends with `\"X`: its
/// first quote cannot close a string (only punctuation or whitespace follows one), nor its
/// last open one or be escaped (X's last byte is neither punctuation, whitespace nor a
/// backslash). A cursor sees both (`Sightings`), so that what it saw is what a search of the
/// text for the quoted strings finds, and `\u00` where it starts an escape.
pub(crate) struct Lookout {
    /// For each first byte, the lengths of the strings that start with it (bit `n`: `n`
    /// bytes; bit 63: 63 or more).
    shapes: Box<[u64; 256]>,
    sought: Vec<Sought>,
}

/// A string looked out for, as it is written between its quotes.
struct Sought {
    text: Box<[u8]>,
    /// Seen only as a string just after `"key":` (an attribute's key).
    after_key: bool,
}

/// What a cursor saw since it was last asked (`Cursor::sightings`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sightings {
    /// Bit `i`: the lookout's string `i` was seen,
    pub seen: u64,
    /// and seen more than once.
    pub again: u64,
    /// A `\u00` escape.
    pub escape_00: bool,
}

impl Lookout {
    /// The strings, in order (their bits in `Sightings`), each with whether it is sought only
    /// as an attribute's key (just after `"key":`). `None` for more than 64, for one that is
    /// empty or not as the type's comment says, or for one the cursor reads as a fixed part
    /// of an attribute rather than as a string (`plain_attribute`).
    pub(crate) fn new<'s>(strings: impl IntoIterator<Item = (&'s [u8], bool)>) -> Option<Lookout> {
        const FIXED: [&[u8]; 4] = [b"key", b"value", b"stringValue", b"intValue"];
        let edge = |b: &u8| b" \t\n\r,:[]{}".contains(b);
        let mut shapes = Box::new([0u64; 256]);
        let mut sought = Vec::new();
        for (text, after_key) in strings {
            if text.first().is_none_or(edge)
                || text.last().is_none_or(edge)
                || text.iter().any(|&b| b == b'"' || b == b'\\' || b < 0x20)
                || FIXED.contains(&text)
                || sought.len() == 64
            {
                return None;
            }
            shapes[usize::from(text[0])] |= 1 << text.len().min(63);
            sought.push(Sought {
                text: text.into(),
                after_key,
            });
        }
        Some(Lookout { shapes, sought })
    }

    /// The strings `inside` (a string's text, without escapes, at `start` in `text`) is.
    #[inline(always)]
    fn sight(&self, text: &[u8], start: usize, inside: &[u8], sightings: &mut Sightings) {
        let Some(&first) = inside.first() else {
            return;
        };
        if self.shapes[usize::from(first)] >> inside.len().min(63) & 1 == 0 {
            return;
        }
        self.sight_each(
            inside,
            |after_key| !after_key || start >= 7 && &text[start - 7..start - 1] == b"\"key\":",
            sightings,
        );
    }

    /// The strings an escaped string ends with after an escaped quote (`\"X`), as `"X"`.
    #[cold]
    fn sight_escaped(&self, inside: &[u8], sightings: &mut Sightings) {
        let Some(quote) = memchr::memrchr(b'"', inside) else {
            return;
        };
        // Such a quote is an escape's (the string's text was checked), and the escape's
        // backslash is no `"key":`.
        self.sight_each(&inside[quote + 1..], |after_key| !after_key, sightings);
    }

    fn sight_each(&self, inside: &[u8], placed: impl Fn(bool) -> bool, sightings: &mut Sightings) {
        for (i, sought) in self.sought.iter().enumerate() {
            if *sought.text == *inside && placed(sought.after_key) {
                let bit = 1u64 << i;
                sightings.again |= sightings.seen & bit;
                sightings.seen |= bit;
            }
        }
    }
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(text: &'a [u8]) -> Cursor<'a> {
        Cursor {
            text,
            at: 0,
            surrogate: false,
            lookout: None,
            sightings: Sightings::default(),
        }
    }

    /// A cursor that looks out for `lookout`'s strings.
    pub(crate) fn looking_out(text: &'a [u8], lookout: Option<&'a Lookout>) -> Cursor<'a> {
        Cursor {
            lookout,
            ..Cursor::new(text)
        }
    }

    /// What the cursor saw of its lookout's strings since it was last asked.
    pub(crate) fn sightings(&mut self) -> Sightings {
        std::mem::take(&mut self.sightings)
    }

    /// Holds a key eaten whole (`eat_prefix`, `"…":` of `len` bytes) to the lookout, as if read.
    #[inline(always)]
    pub(crate) fn sight_eaten_key(&mut self, len: usize) {
        if let Some(lookout) = self.lookout {
            let start = self.at - len + 1;
            lookout.sight(
                self.text,
                start,
                &self.text[start..self.at - 2],
                &mut self.sightings,
            );
        }
    }

    /// Whether a string read (or skipped) since the last call held a `\u` escape of a UTF-16
    /// surrogate (`\uD800` to `\uDFFF`), which serde_json refuses in a string it reads as
    /// text unless it is half of a pair: found on the way, rather than by reading the string
    /// again.
    #[inline(always)]
    pub(crate) fn surrogates_met(&mut self) -> bool {
        std::mem::take(&mut self.surrogate)
    }

    /// Where the next token starts, after whitespace.
    pub(crate) fn position(&mut self) -> usize {
        self.skip_whitespace();
        self.at
    }

    /// Where the cursor is, whitespace not skipped: just after what it last read.
    pub(crate) fn offset(&self) -> usize {
        self.at
    }

    /// Consumes `prefix` if the text goes on with it, after whitespace: a key and its colon
    /// written as exporters write them, matched at once rather than read and compared.
    #[inline(always)]
    pub(crate) fn eat_prefix<const N: usize>(&mut self, prefix: &[u8; N]) -> bool {
        self.skip_whitespace();
        let found = self.text[self.at..].first_chunk::<N>() == Some(prefix);
        if found {
            self.at += N;
        }
        found
    }

    /// The text the cursor is over.
    pub(crate) fn text(&self) -> &'a [u8] {
        self.text
    }

    /// Whether only whitespace is left.
    pub(crate) fn at_end(&mut self) -> bool {
        self.skip_whitespace();
        self.at == self.text.len()
    }

    #[inline(always)]
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.text.get(self.at) {
            self.at += 1;
        }
    }

    /// The next byte after whitespace, not consumed.
    #[inline(always)]
    pub(crate) fn peek(&mut self) -> Option<u8> {
        // Exporters write no whitespace between tokens: one test, usually. (Testing the
        // byte once here, not looping from the start, skips a tenth faster.)
        match *self.text.get(self.at)? {
            b' ' | b'\n' | b'\t' | b'\r' => {
                self.skip_whitespace();
                self.text.get(self.at).copied()
            }
            byte => Some(byte),
        }
    }

    /// Consumes `byte`, after whitespace.
    #[inline(always)]
    pub(crate) fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// Consumes `byte` if it comes next, after whitespace.
    #[inline(always)]
    pub(crate) fn eat_if(&mut self, byte: u8) -> bool {
        self.eat(byte).is_some()
    }

    /// An object key and its colon: the text between the quotes, which has no escape.
    #[inline]
    pub(crate) fn key(&mut self) -> Option<&'a [u8]> {
        let (key, escaped) = self.string()?;
        if escaped {
            return None;
        }
        self.eat(b':')?;
        Some(&self.text[key])
    }

    /// A string: where its text lies between the quotes, and whether it has escapes.
    #[inline]
    pub(crate) fn string(&mut self) -> Option<(Range<usize>, bool)> {
        self.eat(b'"')?;
        let start = self.at;
        let (end, escaped) = self.string_end()?;
        Some((start..end - 1, escaped))
    }

    /// Skips the value that comes next, checked; where it lies.
    pub(crate) fn value(&mut self) -> Option<Range<usize>> {
        self.skip_whitespace();
        let start = self.at;
        self.skip_value()?;
        Some(start..self.at)
    }

    /// The end of a string whose opening quote has been consumed, just after its closing
    /// quote, and whether the string has escapes.
    #[inline(always)]
    fn string_end(&mut self) -> Option<(usize, bool)> {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        let text = self.text;
        let start = self.at;
        let mut at = self.at;
        let mut escaped = false;
        loop {
            'special: {
                // Sixteen bytes at a time where the processor compares them at once (message
                // contents and stack traces run to kilobytes), up to the first quote,
                // backslash or control character;
                #[cfg(target_arch = "x86_64")]
                while let Some(chunk) = text.get(at..at + 16) {
                    match first_special_of_16(chunk.try_into().ok()?) {
                        Some(offset) => {
                            at += offset;
                            break 'special;
                        }
                        None => at += 16,
                    }
                }
                // else eight (the bit tricks flag the first such byte exactly; later flags
                // may be spurious), and the last few one by one, below.
                while let Some(chunk) = text.get(at..at + 8) {
                    let word = u64::from_le_bytes(chunk.try_into().ok()?);
                    let quote = word ^ (ONES * u64::from(b'"'));
                    let backslash = word ^ (ONES * u64::from(b'\\'));
                    let found = (quote.wrapping_sub(ONES) & !quote)
                        | (backslash.wrapping_sub(ONES) & !backslash)
                        | (word.wrapping_sub(ONES * 0x20) & !word);
                    let found = found & HIGH;
                    if found != 0 {
                        at += (found.trailing_zeros() / 8) as usize;
                        break 'special;
                    }
                    at += 8;
                }
            }
            match *text.get(at)? {
                b'"' => {
                    self.at = at + 1;
                    if let Some(lookout) = self.lookout {
                        let inside = &text[start..at];
                        if escaped {
                            lookout.sight_escaped(inside, &mut self.sightings);
                        } else {
                            lookout.sight(text, start, inside, &mut self.sightings);
                        }
                    }
                    return Some((self.at, escaped));
                }
                b'\\' => match *text.get(at + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {
                        escaped = true;
                        at += 2;
                    }
                    b'u' => {
                        let digits = text.get(at + 2..at + 6)?;
                        if !digits.iter().all(u8::is_ascii_hexdigit) {
                            return None;
                        }
                        self.sightings.escape_00 |= digits[..2] == *b"00";
                        // D800 to DFFF (the digits are hex).
                        self.surrogate |= digits[0] | 0x20 == b'd'
                            && matches!(digits[1], b'8' | b'9' | b'a'..=b'f' | b'A'..=b'F');
                        escaped = true;
                        at += 6;
                    }
                    _ => return None,
                },
                // Control characters must be escaped.
                0..=0x1f => return None,
                _ => at += 1,
            }
        }
    }

    #[inline(always)]
    fn skip_number(&mut self) -> Option<()> {
        let text = self.text;
        let digits = |at: &mut usize| {
            let start = *at;
            while text.get(*at).is_some_and(u8::is_ascii_digit) {
                *at += 1;
            }
            *at > start
        };
        let mut at = self.at;
        if text.get(at) == Some(&b'-') {
            at += 1;
        }
        match text.get(at)? {
            b'0' => at += 1,
            b'1'..=b'9' => {
                digits(&mut at);
            }
            _ => return None,
        }
        if text.get(at) == Some(&b'.') {
            at += 1;
            if !digits(&mut at) {
                return None;
            }
        }
        if let Some(b'e' | b'E') = text.get(at) {
            at += 1;
            if let Some(b'+' | b'-') = text.get(at) {
                at += 1;
            }
            if !digits(&mut at) {
                return None;
            }
        }
        self.at = at;
        Some(())
    }

    #[inline(always)]
    fn skip_literal(&mut self, literal: &[u8]) -> Option<()> {
        self.text[self.at..].starts_with(literal).then(|| {
            self.at += literal.len();
        })
    }

    /// Skips one value, at the cursor (after whitespace). Iterative: `open` records, for each
    /// enclosing container, whether it is an object (a bit a level).
    fn skip_value(&mut self) -> Option<()> {
        let mut open: u128 = 0;
        let mut depth = 0u32;
        loop {
            // A value.
            match self.peek()? {
                b'"' => {
                    self.at += 1;
                    self.string_end()?;
                }
                b'{' if self.skip_attribute() => {}
                opening @ (b'{' | b'[') => {
                    self.at += 1;
                    let closing = if opening == b'{' { b'}' } else { b']' };
                    if !self.eat_if(closing) {
                        depth += 1;
                        if depth > MAX_DEPTH {
                            return None;
                        }
                        open = (open << 1) | u128::from(opening == b'{');
                        if opening == b'{' {
                            self.member_key()?;
                        }
                        continue;
                    }
                }
                b't' => self.skip_literal(b"true")?,
                b'f' => self.skip_literal(b"false")?,
                b'n' => self.skip_literal(b"null")?,
                _ => self.skip_number()?,
            }
            // After a value: the next member or element, or the ends of containers.
            loop {
                if depth == 0 {
                    return Some(());
                }
                let in_object = open & 1 == 1;
                match self.peek()? {
                    b',' => {
                        self.at += 1;
                        if in_object {
                            self.member_key()?;
                        }
                        break;
                    }
                    b'}' if in_object => {}
                    b']' if !in_object => {}
                    _ => return None,
                }
                self.at += 1;
                open >>= 1;
                depth -= 1;
            }
        }
    }

    /// Skips an object at the cursor if it is an attribute written as exporters write most of
    /// them (see `plain_attribute`): whether it did. Attributes are most of an export's text,
    /// and matching their fixed parts at once skips a file in two thirds of the time token by
    /// token takes.
    #[inline(always)]
    fn skip_attribute(&mut self) -> bool {
        self.plain_attribute().is_some()
    }

    /// An attribute at the cursor written as exporters write most of them,
    /// `{"key":"…","value":{"stringValue":"…"}}` (or `"intValue"`) with no whitespace, read
    /// by matching its fixed parts. `None` for anything else, which leaves the cursor where
    /// it was, for the general case.
    #[inline(always)]
    pub(crate) fn plain_attribute(&mut self) -> Option<PlainAttribute> {
        let start = self.at;
        // The strings read on the way are read again by the general case.
        let sightings = self.sightings;
        let attribute = self.plain_attribute_parts();
        match attribute {
            Some(_) => self.at += 2,
            None => {
                self.at = start;
                self.sightings = sightings;
            }
        }
        attribute
    }

    /// `plain_attribute` up to its closing `}}`, which is checked but not consumed.
    #[inline(always)]
    fn plain_attribute_parts(&mut self) -> Option<PlainAttribute> {
        const KEY: &[u8] = br#"{"key":""#;
        const STRING_VALUE: &[u8] = br#","value":{"stringValue":""#;
        const INT_VALUE: &[u8] = br#","value":{"intValue":""#;
        if !self.text[self.at..].starts_with(KEY) {
            return None;
        }
        self.at += KEY.len();
        let key_start = self.at;
        let (key_end, key_escaped) = self.string_end()?;
        let rest = &self.text[self.at..];
        let int = if rest.starts_with(STRING_VALUE) {
            false
        } else if rest.starts_with(INT_VALUE) {
            true
        } else {
            return None;
        };
        self.at += if int {
            INT_VALUE.len()
        } else {
            STRING_VALUE.len()
        };
        let value_start = self.at;
        let (value_end, value_escaped) = self.string_end()?;
        self.text[self.at..]
            .starts_with(b"}}")
            .then_some(PlainAttribute {
                key: key_start..key_end - 1,
                int,
                value: value_start..value_end - 1,
                escaped: key_escaped || value_escaped,
            })
    }

    /// Skips a member's key (escapes allowed) and its colon.
    #[inline(always)]
    fn member_key(&mut self) -> Option<()> {
        self.eat(b'"')?;
        self.string_end()?;
        self.eat(b':')
    }
}

/// Where the first quote, backslash or control character (which a JSON string must escape)
/// of `chunk` is, if it has one: SSE2, which every x86_64 processor has, compares the sixteen
/// bytes at once (6% fewer instructions for a whole scan than eight at a time with bit tricks).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn first_special_of_16(chunk: &[u8; 16]) -> Option<usize> {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    // SAFETY: SSE2 is part of x86_64 itself, so every processor this is built for has these
    // instructions; the load reads the sixteen bytes `chunk` borrows, with no alignment asked.
    let mask = unsafe {
        let bytes = _mm_loadu_si128(chunk.as_ptr().cast());
        let quote = _mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'\\' as i8));
        // Unsigned: a byte is at most 0x1f where it is its minimum with 0x1f.
        let control = _mm_cmpeq_epi8(_mm_min_epu8(bytes, _mm_set1_epi8(0x1f)), bytes);
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)) as u32
    };
    (mask != 0).then(|| mask.trailing_zeros() as usize)
}

/// Reads a JSON array element by element with `element`, which reads one value.
pub(crate) fn each_element<'a>(
    cursor: &mut Cursor<'a>,
    mut element: impl FnMut(&mut Cursor<'a>) -> Option<()>,
) -> Option<()> {
    cursor.eat(b'[')?;
    if cursor.eat_if(b']') {
        return Some(());
    }
    loop {
        element(cursor)?;
        if cursor.eat_if(b']') {
            return Some(());
        }
        cursor.eat(b',')?;
    }
}

/// Reads a JSON object member by member with `member`, which is given the key (written
/// without escapes) and reads its value.
pub(crate) fn each_member<'a>(
    cursor: &mut Cursor<'a>,
    mut member: impl FnMut(&mut Cursor<'a>, &'a [u8]) -> Option<()>,
) -> Option<()> {
    cursor.eat(b'{')?;
    if cursor.eat_if(b'}') {
        return Some(());
    }
    loop {
        let key = cursor.key()?;
        member(cursor, key)?;
        if cursor.eat_if(b'}') {
            return Some(());
        }
        cursor.eat(b',')?;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn skips(text: &str) -> bool {
        let mut cursor = Cursor::new(text.as_bytes());
        cursor.value().is_some() && cursor.at_end()
    }

    fn serde_accepts(text: &[u8]) -> bool {
        serde_json::from_slice::<serde::de::IgnoredAny>(text).is_ok()
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn sixteen_bytes_at_once_find_what_one_at_a_time_finds() {
        let special = |b: u8| b == b'"' || b == b'\\' || b < 0x20;
        // Every byte value at every place, among bytes around the edges of the classes.
        let fillers = [b'a', b' ', b'!', b'#', b'[', b']', 0x7f, 0x80, 0xc3, 0xff];
        for filler in fillers {
            for place in 0..16 {
                for byte in 0..=255u8 {
                    let mut chunk = [filler; 16];
                    chunk[place] = byte;
                    let expected = chunk.iter().position(|&b| special(b));
                    assert_eq!(
                        first_special_of_16(&chunk),
                        expected,
                        "{chunk:?} (byte {byte:#x} at {place})"
                    );
                }
            }
        }
    }

    #[test]
    fn skips_what_json_allows() {
        for text in [
            "0",
            "-0",
            "-12.5e+3",
            "1E9",
            "true",
            "null",
            r#""""#,
            r#""a\"b\\c\/\b\f\n\r\t\u00e9""#,
            "\"caf\u{e9} \u{1F600}\"",
            " { } ",
            "[]",
            r#"{"a":[1,{"b":null}],"c":{"d":"e"}}"#,
            "[ 1 ,\n\t2\r]",
            r#"{"\u0061":1}"#,
            r#""a string longer than eight bytes, with a \"quote\" after them""#,
            // Attributes, as exporters write them and otherwise.
            r#"[{"key":"a","value":{"stringValue":"b"}},{"key":"c","value":{"intValue":"7"}}]"#,
            r#"{"key":"a","value":{"stringValue":"b"},"more":1}"#,
            r#"{"key":"a","value":{"intValue":7}}"#,
            r#"{"key":"a\"b","value":{"stringValue":"\u0063"}}"#,
            r#"{"key":"a", "value":{"stringValue":"b"}}"#,
            r#"{"key":"a","value":{"stringValue":"b"} }"#,
        ] {
            assert!(skips(text), "{text}");
            assert!(serde_accepts(text.as_bytes()), "{text}");
        }
    }

    #[test]
    fn refuses_what_json_does_not_allow() {
        for text in [
            "",
            "01",
            "-",
            "1.",
            ".5",
            "1e",
            "+1",
            "tru",
            "nul",
            r#""open"#,
            r#""bad \x escape""#,
            r#""\u12g4""#,
            "\"tab\tinside\"",
            "\"newline\ninside a longer string\"",
            "[1,]",
            "[1 2]",
            r#"{"a" 1}"#,
            r#"{"a":1,}"#,
            r#"{a:1}"#,
            "{\"a\":1]",
            "[1}",
            "[[[",
            "1 2",
            r#"{"key":"a","value":{"stringValue":"b"}}}"#,
            r#"{"key":"a","value":{"stringValue":"b}}"#,
            r#"{"key":"a,"value":{"stringValue":"b"}}"#,
            r#"{"key":"a","value":{"stringValue":"b"}"#,
            r#"[{"key":"a","value":{"intValue":"1"}}{"key":"b","value":{"intValue":"2"}}]"#,
        ] {
            assert!(!skips(text), "{text:?}");
            assert!(!serde_accepts(text.as_bytes()), "{text:?}");
        }
    }

    #[test]
    fn leaves_deep_nesting_and_escaped_keys_to_serde() {
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(serde_accepts(deep.as_bytes()));
        assert!(!skips(&deep));
        let mut cursor = Cursor::new(br#"{"sp\u0061ns":1}"#);
        cursor.eat(b'{').unwrap();
        assert_eq!(cursor.key(), None);
    }

    #[test]
    fn a_lookout_sees_its_strings_as_a_search_of_the_text_for_them_quoted_finds_them() {
        let lookout = Lookout::new([(&b"events"[..], false), (&b"a.b"[..], true)]).unwrap();
        for (text, seen, again) in [
            (r#"{"events":[],"x":"events"}"#, 0b01, 0b01),
            (r#"{"x":"say \"events"}"#, 0b01, 0),
            (r#"{"x":"events\n","y":"eventsx","z":"\"events\""}"#, 0, 0),
            (r#"[{"key":"a.b","value":{"stringValue":"a.b"}}]"#, 0b10, 0),
            (r#"{"k":"a.b","x":"\"a.b"}"#, 0, 0),
            (r#"[{"key":"a.b","value":{"arrayValue":{}}}]"#, 0b10, 0),
        ] {
            let mut cursor = Cursor::looking_out(text.as_bytes(), Some(&lookout));
            assert!(cursor.value().is_some(), "{text}");
            let sightings = cursor.sightings();
            assert_eq!((sightings.seen, sightings.again), (seen, again), "{text}");
        }
        let mut cursor = Cursor::looking_out(br#"["\\u00e9","x"]"#, Some(&lookout));
        cursor.value();
        assert!(!cursor.sightings().escape_00);
        let mut cursor = Cursor::looking_out(br#"["\u00e9"]"#, Some(&lookout));
        cursor.value();
        assert!(cursor.sightings().escape_00);
        // Strings a search would find where no string is them.
        for refused in [&b","[..], b"a ", b":a", b"a\"b", b"", b"key"] {
            assert!(Lookout::new([(refused, false)]).is_none(), "{refused:?}");
        }
    }

    #[test]
    fn reads_keys_and_places_values() {
        let text = br#" { "a" : [1, "x"] , "b":{"c":true} }"#;
        let mut cursor = Cursor::new(text);
        cursor.eat(b'{').unwrap();
        assert_eq!(cursor.key(), Some(&b"a"[..]));
        let value = cursor.value().unwrap();
        assert_eq!(&text[value], b"[1, \"x\"]");
        assert!(cursor.eat_if(b','));
        assert_eq!(cursor.key(), Some(&b"b"[..]));
        assert_eq!(
            cursor.value().map(|v| &text[v]),
            Some(&br#"{"c":true}"#[..])
        );
        assert!(cursor.eat_if(b'}'));
        assert!(cursor.at_end());
    }

    /// `text` with each byte in turn replaced by each of `replacements`, dropped, and doubled.
    pub(crate) fn damaged(text: &[u8], replacements: &[u8]) -> impl Iterator<Item = Vec<u8>> {
        (0..text.len()).flat_map(move |at| {
            let replaced = replacements.iter().map(move |&byte| {
                let mut changed = text.to_vec();
                changed[at] = byte;
                changed
            });
            let mut dropped = text.to_vec();
            dropped.remove(at);
            let mut doubled = text.to_vec();
            doubled.insert(at, text[at]);
            replaced.chain([dropped, doubled])
        })
    }

    /// Never accepts what serde_json refuses: checked on mutations of an OTLP record, every
    /// byte replaced, dropped or doubled in turn.
    #[test]
    fn accepts_nothing_serde_json_refuses() {
        let record = concat!(
            r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":"#,
            r#"{"stringValue":"agent"}}]},"scopeSpans":[{"scope":{"name":"x"},"spans":[{"#,
            r#""traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","#,
            r#""kind":3,"startTimeUnixNano":"1700000000000000000","attributes":[{"key":"#,
            r#""n","value":{"doubleValue":-1.5e-3}},{"key":"b","value":{"boolValue":false}}"#,
            r#",{"key":"code","value":{"intValue":"200"}},{"key":"","value":{"stringValue":""}}"#,
            r#",{"key":"e","value":{"stringValue":"caf\u00e9 \"q\" \\ \/"}}],"events":[],"#,
            r#""status":{"code":null}}]}]}]}"#
        );
        let record = record.as_bytes();
        assert!(skips(std::str::from_utf8(record).unwrap()));
        let replacements = b" \t\n\"\\/{}[],:0123456789-+.eEtfnulasrbx\x01\x1f\x7f";
        let (mut checked, mut accepted) = (0, 0);
        let mut check = |text: &[u8]| {
            let mut cursor = Cursor::new(text);
            if cursor.value().is_some() && cursor.at_end() {
                assert!(
                    serde_accepts(text),
                    "accepted what serde_json refuses: {}",
                    String::from_utf8_lossy(text)
                );
                accepted += 1;
            }
            checked += 1;
        };
        for text in damaged(record, replacements) {
            check(&text);
        }
        assert!(checked > 15_000, "{checked}");
        // Much of the damage leaves JSON (a changed letter, a doubled digit).
        assert!(accepted > 3_000, "{accepted}");
    }
}

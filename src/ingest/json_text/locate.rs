//! Line numbers for records of a JSON document, found by searching its text: serde does not
//! report positions of values it parsed successfully, and we only need them for spans (in
//! document order), for the elements of a vendor log's array, and for the rare diagnostic.

use super::cursor::Cursor;

/// Finds `"<key>": "<value>"` pairs in document order.
pub(crate) struct Locator<'t> {
    text: &'t [u8],
    /// Just past the last span located; the next is searched for from here, so two spans with
    /// the same id (Zipkin's shared spans, duplicates) get their own lines.
    pub(crate) cursor: usize,
    pub(crate) cursor_line: u64,
    /// Where the search for the current span began: its other fields lie after this.
    span_from: usize,
    span_from_line: u64,
}

impl<'t> Locator<'t> {
    pub(crate) fn new(text: &'t [u8]) -> Self {
        Locator::starting_at_line(text, 1)
    }

    /// A locator for a record that starts on line `first_line` of its input (one line of JSON
    /// Lines).
    pub(crate) fn starting_at_line(text: &'t [u8], first_line: u64) -> Self {
        Locator {
            text,
            cursor: 0,
            cursor_line: first_line,
            span_from: 0,
            span_from_line: first_line,
        }
    }

    /// The line of the first `"<key>": "<raw>"` (any key spelling given) after the cursor.
    pub(crate) fn find(&self, keys: &[&str], raw: &str) -> Option<(usize, u64)> {
        self.find_from(self.cursor, self.cursor_line, keys, raw)
    }

    /// The same, searching from where the current span's search began, for its other fields.
    pub(crate) fn find_in_span(&self, keys: &[&str], raw: &str) -> Option<(usize, u64)> {
        self.find_from(self.span_from, self.span_from_line, keys, raw)
    }

    fn find_from(
        &self,
        from_pos: usize,
        from_line: u64,
        keys: &[&str],
        raw: &str,
    ) -> Option<(usize, u64)> {
        let needle = format!("\"{raw}\"");
        let hay = self.text.get(from_pos..)?;
        let mut from = 0;
        while let Some(at) = memchr::memmem::find(&hay[from..], needle.as_bytes()) {
            let pos = from + at;
            let before = hay[..pos].trim_ascii_end();
            if let Some(before) = before.strip_suffix(b":") {
                let before = before.trim_ascii_end();
                if keys
                    .iter()
                    .any(|k| before.ends_with(format!("\"{k}\"").as_bytes()))
                {
                    let abs = from_pos + pos;
                    let line = from_line + count_newlines(&self.text[from_pos..abs]);
                    return Some((abs, line));
                }
            }
            from = pos + 1;
        }
        None
    }

    /// Moves the cursor just past a span found at `pos` (on `line`).
    pub(crate) fn advance_to(&mut self, pos: usize, line: u64) {
        self.span_from = self.cursor;
        self.span_from_line = self.cursor_line;
        // `pos` is the opening quote of the value, never a newline: the line stays the same.
        self.cursor = pos + 1;
        self.cursor_line = line;
    }

    /// Locates the next span by its id field and moves past it; the cursor's line when the id
    /// is not found (a missing id, or one written with escapes).
    pub(crate) fn next_span(&mut self, keys: &[&str], raw_id: &str) -> u64 {
        match self.find(keys, raw_id) {
            Some((pos, line)) => {
                self.advance_to(pos, line);
                line
            }
            None => self.cursor_line,
        }
    }
}

pub(crate) fn count_newlines(b: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', b).count() as u64
}

/// The line each element of the array at `path` (keys of nested objects from the root; empty:
/// the root itself is the array) starts on, in a document serde_json has read. `None` when the
/// path does not lead to an array, or the cursor does not handle the text (an escaped key on
/// the way, deep nesting).
pub(crate) fn element_lines(text: &[u8], path: &[&str]) -> Option<Vec<u64>> {
    let mut cursor = Cursor::new(text);
    for key in path {
        cursor.eat(b'{')?;
        loop {
            if cursor.eat_if(b'}') {
                return None;
            }
            cursor.eat_if(b',');
            if cursor.key()? == key.as_bytes() {
                break;
            }
            cursor.value()?;
        }
    }
    cursor.eat(b'[')?;
    let mut starts = Vec::new();
    if !cursor.eat_if(b']') {
        loop {
            starts.push(cursor.value()?.start);
            if cursor.eat_if(b']') {
                break;
            }
            cursor.eat(b',')?;
        }
    }
    let (mut line, mut counted) = (1, 0);
    Some(
        starts
            .into_iter()
            .map(|start| {
                line += count_newlines(&text[counted..start]);
                counted = start;
                line
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_key_value_pairs_in_order_and_twice_when_repeated() {
        let text = b"[\n{\"id\": \"a\"},\n{\"traceId\": \"a\", \"id\": \"a\"}\n]";
        let mut locator = Locator::new(text);
        assert_eq!(locator.next_span(&["id"], "a"), 2);
        assert_eq!(
            locator.next_span(&["id"], "a"),
            3,
            "the second span, not the first again"
        );
        assert_eq!(
            locator.next_span(&["id"], "b"),
            3,
            "not found: the cursor's line"
        );
        let mut offset = Locator::starting_at_line(b"{\"id\":\"a\"}", 7);
        assert_eq!(offset.next_span(&["id"], "a"), 7);
    }

    #[test]
    fn element_lines_follow_the_path() {
        let text = b"{\n \"object\": \"list\",\n \"x\": {\"data\": [1]},\n \"data\": [\n  {\"a\": [1, {\"b\": \"]\"}]},\n\n  \"s\\\"\", 3\n ]\n}";
        assert_eq!(element_lines(text, &["data"]), Some(vec![5, 7, 7]));
        assert_eq!(
            element_lines(b"[\n1,\n[2, 3],\n{}\n]", &[]),
            Some(vec![2, 3, 4])
        );
        assert_eq!(element_lines(b"{\"a\": 1}", &["data"]), None);
        assert_eq!(element_lines(b"[]", &[]), Some(vec![]));
        assert_eq!(
            element_lines(b"[1, 2", &[]),
            None,
            "cut short: no answer, no panic"
        );
    }
}

//! Text from the inputs, made safe for a terminal.

use std::borrow::Cow;

/// Makes text from an input safe to print on a terminal: control characters (C0, DEL, C1),
/// which include the ESC that starts every terminal escape sequence, and the Unicode
/// bidirectional overrides that can reorder what a reader sees, are shown as `\u{…}` escapes.
pub fn sanitize(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| {
        c.is_control() && c != ' '
            || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
    };
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_neutralises_escapes_and_bidi_overrides() {
        assert_eq!(sanitize("plain name"), "plain name");
        assert_eq!(sanitize("red\x1b[31mtext"), "red\\u{1b}[31mtext");
        assert_eq!(sanitize("a\nb\tc"), "a\\u{a}b\\u{9}c");
        assert_eq!(sanitize("x\u{202E}y"), "x\\u{202e}y");
        assert_eq!(sanitize("c1\u{9b}31m"), "c1\\u{9b}31m");
    }
}

//! Text from the inputs, made safe for a terminal.

use std::borrow::Cow;

/// Whether a character must not reach a reader as it is: control characters (C0, DEL, C1),
/// which include the ESC that starts every terminal escape sequence; the bidirectional marks,
/// embeddings, overrides and isolates that reorder what a reader sees; and the invisible
/// characters (zero-width spaces and joiners, word joiner, byte-order mark, line and paragraph
/// separators, tags, the other format characters) that make two different ids look alike.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{0600}'..='\u{0605}'
                | '\u{061C}'
                | '\u{06DD}'
                | '\u{070F}'
                | '\u{08E2}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{110BD}'
                | '\u{110CD}'
                | '\u{13430}'..='\u{1343F}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0001}'
                | '\u{E0020}'..='\u{E007F}'
        )
}

/// Makes text from an input safe to print on a terminal: every `is_unsafe_char` is shown as a
/// `\u{…}` escape.
pub fn sanitize(text: &str) -> Cow<'_, str> {
    let unsafe_char = is_unsafe_char;
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

/// As `sanitize`, but line breaks stay: for messages laid out on several lines (a TOML parse
/// error points at its column under the line it quotes).
pub fn sanitize_lines(text: &str) -> String {
    text.split('\n')
        .map(|line| sanitize(line).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
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
        // Look-alikes: zero-width, word joiner, BOM, line separator, Arabic letter mark, tags.
        for invisible in [
            '\u{200B}',
            '\u{2060}',
            '\u{FEFF}',
            '\u{2028}',
            '\u{061C}',
            '\u{E0041}',
        ] {
            let text = format!("conv{invisible}1");
            assert_eq!(
                sanitize(&text),
                format!("conv\\u{{{:x}}}1", invisible as u32)
            );
        }
        assert_eq!(sanitize("café → ok ✓"), "café → ok ✓");
    }
}

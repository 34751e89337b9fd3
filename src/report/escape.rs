//! Text from the inputs made safe for each output language. Every escape neutralises terminal
//! controls and invisible characters first (`sanitize`), so that what a reader sees is what the
//! input held, then escapes what the language would read as markup.

use super::sanitize;

/// HTML text or attribute value.
pub fn html(text: &str) -> String {
    let text = sanitize(text);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// XML text or attribute value (JUnit): as HTML, whose escapes XML knows too but for `&#39;`.
/// XML 1.0 has no way to write U+FFFE and U+FFFF, even as references: they are shown escaped.
pub fn xml(text: &str) -> String {
    html(text)
        .replace("&#39;", "&apos;")
        .replace('\u{fffe}', "\\u{fffe}")
        .replace('\u{ffff}', "\\u{ffff}")
}

/// Markdown inline text, in a table cell too: what CommonMark, GitHub's extensions or the HTML
/// Markdown may hold would read as formatting, links, code, math, a cell's end, a line break or
/// (at the start of a line) a block is escaped; the rest is left as typed, so that the source
/// stays readable.
pub fn markdown(text: &str) -> String {
    let text = sanitize(text);
    let mut out = String::with_capacity(text.len() + 8);
    let mut chars = text.chars().peekable();
    // Leading spaces would indent the text into a code block: they are written as references,
    // which are text, not indentation.
    while chars.next_if_eq(&' ').is_some() {
        out.push_str("&#32;");
    }
    // What opens a block only at a line's start: a heading, a list item (`-`, `+`, `1.`,
    // `1)`), a thematic break or a setext underline.
    if let Some(&first) = chars.peek() {
        if matches!(first, '#' | '-' | '+' | '=') {
            out.push('\\');
        } else if first.is_ascii_digit() {
            while let Some(digit) = chars.next_if(char::is_ascii_digit) {
                out.push(digit);
            }
            if matches!(chars.peek(), Some('.' | ')')) {
                out.push('\\');
            }
        }
    }
    for c in chars {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '|' => out.push_str("\\|"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '~' | '$' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// A label in a Mermaid chart: only letters, digits, spaces and a few punctuation marks, so
/// that nothing in it reads as Mermaid's syntax (`:`, `;`, `#`, `%%`, `<br>`).
pub fn mermaid(text: &str) -> String {
    let label: String = text
        .chars()
        .map(|c| {
            if c.is_alphanumeric()
                || matches!(c, ' ' | '.' | '_' | '-' | '/' | '(' | ')' | '[' | ']')
            {
                c
            } else {
                '_'
            }
        })
        .collect();
    let label = label.trim();
    if label.is_empty() {
        return "_".to_owned();
    }
    // A line that starts with one of the gantt chart's keywords is read as that statement.
    // Mermaid's lexer reads a keyword up to a word boundary (`gantt-x`, `topAxis.y`) and a
    // line that starts with a date (`2026-11-25 job`) as a date: compare the leading run of
    // ASCII letters and digits, and guard a leading `dddd-`.
    let first = label
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    let b = label.as_bytes();
    let date = b.len() >= 5 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-';
    let label: String = label.chars().take(80).collect();
    if date || MERMAID_KEYWORDS.contains(&first.as_str()) {
        format!("_ {label}")
    } else {
        label
    }
}

const MERMAID_KEYWORDS: [&str; 19] = [
    "gantt",
    "accdescription",
    "title",
    "section",
    "dateformat",
    "axisformat",
    "tickinterval",
    "includes",
    "excludes",
    "todaymarker",
    "inclusiveenddates",
    "topaxis",
    "weekday",
    "weekend",
    "click",
    "acctitle",
    "accdescr",
    "displaymode",
    "vert",
];

/// The message of a GitHub Actions workflow command (the runner's `escapeData`). Line breaks
/// from the inputs are already neutralised by `sanitize`; a report's own line breaks are
/// written as `%0A` between pieces escaped one by one.
pub fn github_data(text: &str) -> String {
    sanitize(text).replace('%', "%25")
}

/// A property of a GitHub Actions workflow command (the runner's `escapeProperty`).
pub fn github_property(text: &str) -> String {
    github_data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "<img src=x onerror=alert(1)> | `x` *y* [z](j:a) \u{1b}[31m\u{202e}\n%:,";

    #[test]
    fn html_and_xml_hold_no_markup() {
        let h = html(HOSTILE);
        assert!(!h.contains('<') && !h.contains('>'), "{h}");
        assert!(h.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(h.contains("\\u{1b}") && h.contains("\\u{202e}") && h.contains("\\u{a}"));
        assert_eq!(xml("it's"), "it&apos;s");
    }

    #[test]
    fn markdown_holds_no_formatting_or_cell_end() {
        let m = markdown(HOSTILE);
        assert!(!m.contains('<'));
        assert!(m.contains("\\|") && m.contains("\\`x\\`") && m.contains("\\*y\\*"));
        assert!(!m.contains('\n'));
        assert_eq!(
            markdown("POST /v1/payments.create"),
            "POST /v1/payments.create"
        );
        assert_eq!(markdown("$x$ ~~y~~"), "\\$x\\$ \\~\\~y\\~\\~");
    }

    #[test]
    fn markdown_opens_no_block_at_the_start() {
        assert_eq!(markdown("# title"), "\\# title");
        assert_eq!(markdown("- item"), "\\- item");
        assert_eq!(markdown("12. item"), "12\\. item");
        assert_eq!(markdown("3) item"), "3\\) item");
        assert_eq!(markdown("2026-12-06"), "2026-12-06");
        assert_eq!(markdown("    code"), "&#32;&#32;&#32;&#32;code");
    }

    #[test]
    fn mermaid_labels_hold_no_syntax() {
        assert_eq!(
            mermaid("POST /v1/payments: 200; #x %%"),
            "POST /v1/payments_ 200_ _x __"
        );
        assert_eq!(mermaid(":::"), "___");
        assert_eq!(mermaid(""), "_");
        assert_eq!(mermaid("click e1 call x()"), "_ click e1 call x()");
        assert_eq!(mermaid("Section 2"), "_ Section 2");
        assert_eq!(mermaid("gantt-client GET"), "_ gantt-client GET");
        assert_eq!(mermaid("2026-11-25 SELECT"), "_ 2026-11-25 SELECT");
        assert_eq!(mermaid("ganttchart"), "ganttchart");
    }

    #[test]
    fn github_commands_escape_as_the_runner_reads() {
        // Line breaks from the inputs are neutralised before the runner's escapes apply.
        assert_eq!(
            github_data("50% done\r\nnext"),
            "50%25 done\\u{d}\\u{a}next"
        );
        assert_eq!(github_property("a:b,c%"), "a%3Ab%2Cc%25");
    }
}

//! Text patterns.

/// `*` matches any run of characters (including none); everything else matches itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    // The shapes rules are written in (`*/cancel`, `refund.created`), without the search.
    match pattern.bytes().filter(|&c| c == b'*').count() {
        0 => pattern == text,
        1 => {
            let (head, tail) = pattern.split_once('*').expect("the pattern has a star");
            text.len() >= head.len() + tail.len() && text.starts_with(head) && text.ends_with(tail)
        }
        _ => search(pattern.as_bytes(), text.as_bytes()),
    }
}

/// `glob` for any pattern: each star taken to extend as little as it can, and then a
/// character further whenever what follows fails.
fn search(p: &[u8], t: &[u8]) -> bool {
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was, and the text position it is currently taken to extend to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_runs() {
        assert!(glob("*.succeeded", "payment_intent.succeeded"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "aXbYbZc"));
        assert!(!glob("*.succeeded", "payment_intent.succeeded.late"));
        assert!(!glob("delivered", "delivered2"));
        assert!(glob("de*ed", "delivered"));
        // The head and the tail of one star do not share characters.
        assert!(!glob("ab*ba", "aba"));
        assert!(glob("ab*ba", "abba"));
        assert!(glob("*/cancel", "/v1/runs/r_1/cancel"));
        assert!(!glob("*/cancel", "/v1/runs/r_1/cancel/2"));
        assert!(glob("*a*", "banana"));
        assert!(!glob("*x*y", "xyz"));
    }

    #[test]
    fn the_shapes_with_one_star_or_none_match_as_the_search_does() {
        let patterns = [
            "", "*", "a", "ab", "*a", "a*", "a*b", "*ab", "ab*", "ab*ba", "b*",
        ];
        let texts = [
            "", "a", "b", "ab", "ba", "aba", "abba", "bab", "aab", "abab",
        ];
        for p in patterns {
            for t in texts {
                assert_eq!(
                    glob(p, t),
                    search(p.as_bytes(), t.as_bytes()),
                    "{p:?} {t:?}"
                );
            }
        }
    }
}

//! What to read: the paths the user gave, standard input, directories walked and globs
//! matched.

use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use crate::model::{Code, Diagnostic};

/// Where to read from: a path as the user gave it, or standard input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Path(PathBuf),
    Stdin,
}

impl Source {
    pub fn display(&self) -> String {
        match self {
            Source::Path(p) => p.display().to_string(),
            Source::Stdin => "<stdin>".to_owned(),
        }
    }
}

/// The files to read, and what the walk of the directories found on the way.
#[derive(Debug, Default, PartialEq)]
pub struct Expanded {
    pub files: Vec<Source>,
    /// Directory links that lead back into a directory being read: each reported once, and not
    /// followed again.
    pub diagnostics: Vec<Diagnostic>,
}

/// Expands directories (recursively, in name order, skipping hidden entries, following links
/// but never around a loop) and glob patterns (a path with `*`, `?` or `[` that does not exist
/// as written; matches in name order) into the files to read. Rotated Collector files
/// (`traces-2024-05-01T10-00-00.000.json`, possibly gzipped) sort before the file still being
/// written (`traces.json`), so a directory is read oldest first. A path that does not exist, or
/// a pattern that matches nothing, is kept, so reading it reports the error.
pub fn expand(sources: &[Source]) -> Expanded {
    let mut out = Expanded::default();
    for source in sources {
        match source {
            Source::Path(p) if p.is_dir() => walk(p, &mut out),
            Source::Path(p) if is_glob(p) && !p.exists() => match glob_matches(p) {
                Some(paths) if !paths.is_empty() => {
                    for path in paths {
                        if path.is_dir() {
                            walk(&path, &mut out);
                        } else {
                            out.files.push(Source::Path(path));
                        }
                    }
                }
                _ => out.files.push(source.clone()),
            },
            other => out.files.push(other.clone()),
        }
    }
    out
}

pub(super) fn is_glob(path: &Path) -> bool {
    path.to_str().is_some_and(|s| s.contains(['*', '?', '[']))
}
/// The paths a glob pattern matches, sorted; `None` for a pattern that is not valid.
fn glob_matches(pattern: &Path) -> Option<Vec<PathBuf>> {
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    let paths = glob::glob_with(pattern.to_str()?, options).ok()?;
    let mut matched: Vec<PathBuf> = paths
        .map(|entry| match entry {
            Ok(path) => path,
            // An unreadable directory: reading it reports the error with its cause.
            Err(e) => e.path().to_owned(),
        })
        .collect();
    matched.sort();
    matched.dedup();
    Some(matched)
}

fn walk(dir: &Path, out: &mut Expanded) {
    let hidden = |entry: &walkdir::DirEntry| {
        entry.depth() > 0
            && entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with('.'))
    };
    let entries = WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| !hidden(e));
    for entry in entries {
        match entry {
            Ok(entry) if entry.file_type().is_dir() => {}
            Ok(entry) => out.files.push(Source::Path(entry.into_path())),
            Err(error) => match (error.loop_ancestor(), error.path()) {
                (Some(ancestor), Some(link)) => out.diagnostics.push(Diagnostic::warning(
                    &link.display().to_string(),
                    None,
                    Code::SymlinkLoop,
                    format!(
                        "a link back to {}, which is already being read; not followed again",
                        ancestor.display()
                    ),
                )),
                // Reading it as a file reports the error with its cause.
                (_, Some(path)) => out.files.push(Source::Path(path.to_owned())),
                (_, None) => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_expand_in_name_order_and_skip_hidden_files() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.json", "a.json", ".hidden.json", "c.txt"] {
            std::fs::write(dir.path().join(name), "{}").unwrap();
        }
        let pattern = dir.path().join("*.json");
        let files = expand(&[Source::Path(pattern)]).files;
        assert_eq!(
            files,
            vec![
                Source::Path(dir.path().join("a.json")),
                Source::Path(dir.path().join("b.json"))
            ]
        );
        let none = dir.path().join("*.nothing");
        assert_eq!(
            expand(&[Source::Path(none.clone())]).files,
            vec![Source::Path(none)]
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_link_loop_is_reported_once_and_each_file_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(dir.path().join("a.json"), "{}").unwrap();
        std::fs::write(sub.join("b.json"), "{}").unwrap();
        std::os::unix::fs::symlink("..", sub.join("up")).unwrap();
        std::os::unix::fs::symlink(".", sub.join("me")).unwrap();
        let expanded = expand(&[Source::Path(dir.path().to_owned())]);
        assert_eq!(
            expanded.files,
            vec![
                Source::Path(dir.path().join("a.json")),
                Source::Path(sub.join("b.json")),
            ]
        );
        let links: Vec<&str> = expanded
            .diagnostics
            .iter()
            .map(|d| d.input.rsplit('/').next().unwrap())
            .collect();
        assert_eq!(links, ["me", "up"], "{:?}", expanded.diagnostics);
        assert!(
            expanded
                .diagnostics
                .iter()
                .all(|d| d.code == Code::SymlinkLoop)
        );
    }
}

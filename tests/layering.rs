//! The code keeps to the layers lib.rs draws: each module imports only those below it, and the
//! three stages do not import one another, except classify reading correlate's output.

use std::path::{Path, PathBuf};

/// Each top-level module of the crate and its layer; a module may import those of lower layers.
const LAYERS: &[(&str, u8)] = &[
    ("model", 0),
    ("util", 0),
    ("cli", 0),
    ("rules", 1),
    ("ingest", 2),
    ("correlate", 2),
    ("classify", 2),
    ("report", 3),
    ("config", 4),
    ("app", 5),
];

/// Imports allowed within a layer: (from, to).
const SIDEWAYS: &[(&str, &str)] = &[("classify", "correlate")];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The crate modules a file names, as `crate::name` in its code (comments left out).
fn crate_references(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                names.push(name);
            }
        }
        // `use crate::{a, b}` names several at once.
        if let Some(group) = code.split("crate::{").nth(1) {
            for part in group.split([',', '}']) {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    names.push(name);
                }
            }
        }
    }
    names
}

#[test]
fn no_module_imports_from_a_layer_above_it_or_a_sibling_stage() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut checked = 0;
    let mut wrong = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let own = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        let Some(own_layer) = layer(&own) else {
            // main.rs, lib.rs and the test span builders stand outside the layers.
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for name in crate_references(&text) {
            if name == own || name == "testutil" {
                continue;
            }
            let Some(their_layer) = layer(&name) else {
                wrong.push(format!(
                    "{}: crate::{name} is no module of the layers",
                    relative.display()
                ));
                continue;
            };
            checked += 1;
            let sideways_allowed = SIDEWAYS.contains(&(own.as_str(), name.as_str()));
            if their_layer > own_layer || (their_layer == own_layer && !sideways_allowed) {
                wrong.push(format!(
                    "{} (layer {own_layer}) imports crate::{name} (layer {their_layer})",
                    relative.display()
                ));
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
    assert!(checked > 100, "only {checked} imports were checked");
}

#[test]
fn clap_stays_in_the_command_line_and_its_resolution() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    for file in files {
        let relative = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if ["cli.rs", "config.rs", "main.rs"].contains(&relative.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for name in crate_references(&text) {
            assert_ne!(name, "cli", "{relative} uses the clap types of cli.rs");
        }
        assert!(!text.contains("clap::"), "{relative} uses clap");
    }
}

#[test]
fn the_reference_finder_sees_grouped_and_inline_paths() {
    let text =
        "use crate::{model, rules::Rules};\nfn f() { crate::report::sanitize(x) } // crate::app";
    assert_eq!(crate_references(text), ["model", "rules", "report"]);
    assert!(crate_references("// use crate::app;").is_empty());
}

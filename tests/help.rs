//! The command line's help is part of the interface: snapshot it so changes are deliberate.

mod common;

use common::bin;

fn help(args: &[&str]) -> String {
    let output = bin().args(args).output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn top_level_help() {
    insta::assert_snapshot!(help(&["--help"]));
}

#[test]
fn scan_help() {
    insta::assert_snapshot!(help(&["scan", "--help"]));
}

#[test]
fn inspect_help() {
    insta::assert_snapshot!(help(&["inspect", "--help"]));
}

#[test]
fn usage_errors_exit_2() {
    let output = bin().args(["scan"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let output = bin()
        .args(["scan", "--format", "xml", "x.json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let output = bin()
        .args(["scan", "--fail-on", "late", "x.json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown category \"late\""), "{stderr}");
}

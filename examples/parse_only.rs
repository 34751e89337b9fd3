//! The parse-only floor of the benchmark (`bench/run.sh`): read the file, split it at newlines,
//! and have serde_json check every line as JSON (`IgnoredAny`: parse, keep nothing), the lines
//! spread over rayon's threads (`RAYON_NUM_THREADS`, default: the cores).
//!
//! ```sh
//! RAYON_NUM_THREADS=2 cargo run --release --example parse_only -- /tmp/bench.jsonl
//! ```
//!
//! Prints the number of non-empty lines (and exits with status 1 if any is not JSON). An audit
//! must parse every byte of OTLP/JSON, so this is the time `abortaudit scan` is measured
//! against: the serde_json floor (abortaudit's own JSON cursor beats `IgnoredAny` on exporter-
//! shaped text). It is kept as fast as a plain parse can be: the file is read in 64 MiB
//! blocks into two buffers that are reused, the next block read while the lines of the current
//! one are parsed. (Reading the whole file into one buffer first is about 60% slower at 1 GB, on
//! faulting in the fresh buffer alone: a floor that slow would flatter the audit.)

use std::fs::File;
use std::io::Read;

use anyhow::{Context, Result, bail};
use rayon::prelude::*;
use serde::de::IgnoredAny;

const BLOCK: u64 = 64 << 20;

/// Appends up to one block of the file to `buf`; 0 at the end of the file.
fn read_block(file: &mut File, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    file.take(BLOCK).read_to_end(buf)
}

/// Parses every non-empty line of `text` on the thread pool: (lines, lines that are not JSON).
fn parse_lines(text: &[u8]) -> (usize, usize) {
    let mut lines: Vec<&[u8]> = Vec::new();
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', text) {
        lines.push(&text[start..end]);
        start = end + 1;
    }
    lines.push(&text[start..]);
    lines.retain(|line| !line.iter().all(u8::is_ascii_whitespace));
    let bad = lines
        .par_iter()
        .filter(|line| serde_json::from_slice::<IgnoredAny>(line).is_err())
        .count();
    (lines.len(), bad)
}

fn main() -> Result<()> {
    let path = std::env::args_os()
        .nth(1)
        .context("usage: parse_only FILE.jsonl")?;
    let mut file = File::open(&path).with_context(|| format!("cannot open {path:?}"))?;
    let mut current: Vec<u8> = Vec::new();
    let mut next: Vec<u8> = Vec::new();
    let mut eof = read_block(&mut file, &mut current)? == 0;
    let (mut lines, mut bad) = (0, 0);
    loop {
        // The complete lines of `current`: up to its last newline, or all of it at the end.
        let cut = if eof {
            current.len()
        } else {
            match memchr::memrchr(b'\n', &current) {
                Some(last) => last + 1,
                None => {
                    // A line longer than a block: read on.
                    eof = read_block(&mut file, &mut current)? == 0;
                    continue;
                }
            }
        };
        next.clear();
        next.extend_from_slice(&current[cut..]);
        let ((n, b), read) = rayon::join(
            || parse_lines(&current[..cut]),
            || {
                if eof {
                    Ok(0)
                } else {
                    read_block(&mut file, &mut next)
                }
            },
        );
        lines += n;
        bad += b;
        if eof {
            break;
        }
        eof = read.with_context(|| format!("cannot read {path:?}"))? == 0;
        std::mem::swap(&mut current, &mut next);
    }
    println!("{lines} lines");
    if bad > 0 {
        bail!("{bad} lines are not JSON");
    }
    Ok(())
}

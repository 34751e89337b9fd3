//! Terminal tables (comfy-table), sized to fit 100 columns. Every string that came from an
//! input goes through `sanitize` first.

use std::io::Write;

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{CellAlignment, ColumnConstraint, ContentArrangement, Table, Width};
use comfy_table::{LineStyle, TableStyle};

use super::{Summary, offset, rfc3339, sanitize};
use crate::classify::{Audit, Category, Finding};
use crate::ingest::{Counts, Ingested};

const WIDTH: u16 = 100;

/// A plain listing: a rule under the header, columns two spaces apart. Narrow enough that
/// eleven count columns fit in 100.
const LISTING: TableStyle = TableStyle::new()
    .header_separator(LineStyle::none().fill('─').junction('─'))
    .bottom_border(LineStyle::none().fill('─').junction('─'));

fn new_table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(WIDTH)
        .set_header(header.to_vec());
    table
}

/// Writes a table with the padding comfy-table leaves at line ends trimmed, so that pasted
/// output has no trailing blanks.
fn write_table(out: &mut dyn Write, table: &Table) -> std::io::Result<()> {
    for line in table.lines() {
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

fn kinds(counts: &Counts) -> String {
    counts
        .kinds
        .iter()
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn count_row(name: String, format: &str, counts: &Counts, diagnostics: usize) -> Vec<String> {
    vec![
        name,
        format.to_owned(),
        counts.lines.to_string(),
        counts.spans.to_string(),
        counts.traces.to_string(),
        counts.services.to_string(),
        counts.events.to_string(),
        counts.links.to_string(),
        counts.duplicates.to_string(),
        diagnostics.to_string(),
        kinds(counts),
    ]
}

pub fn inspect(ingested: &Ingested, out: &mut dyn Write) -> std::io::Result<()> {
    // Paths are listed above the table, numbered: inline, long paths would crush the numbers.
    let paths: Vec<&str> = ingested.inputs.iter().map(|i| i.path.as_str()).collect();
    let common = common_directory(&paths);
    if common.is_empty() {
        writeln!(out, "inputs:")?;
    } else {
        writeln!(out, "inputs in {}", sanitize(common))?;
    }
    for (n, input) in ingested.inputs.iter().enumerate() {
        writeln!(
            out,
            "  [{}] {}",
            n + 1,
            sanitize(&input.path[common.len()..])
        )?;
    }
    let mut table = new_table(&[
        "input",
        "format",
        "lines",
        "spans",
        "traces",
        "svcs",
        "events",
        "links",
        "dups",
        "diags",
        "span kinds",
    ]);
    table.load_style(LISTING);
    for (n, input) in ingested.inputs.iter().enumerate() {
        let format = match &input.error {
            Some(_) => "error",
            None => input.format.as_str(),
        };
        table.add_row(count_row(
            format!("[{}]", n + 1),
            format,
            &input.counts,
            input.diagnostics.len(),
        ));
    }
    if ingested.inputs.len() > 1 {
        let diagnostics = ingested.diagnostics().count();
        table.add_row(count_row(
            "total".to_owned(),
            "",
            &ingested.total,
            diagnostics,
        ));
    }
    for column in 0..=9 {
        if let Some(c) = table.column_mut(column) {
            if column >= 2 {
                c.set_cell_alignment(CellAlignment::Right);
            }
            c.set_constraint(ColumnConstraint::ContentWidth);
        }
    }
    for c in table.column_iter_mut() {
        c.set_padding((0, 1));
    }
    write_table(out, &table)?;
    if ingested.total.unjoinable > 0 {
        writeln!(
            out,
            "{} spans have unusable ids and are left out of joins (see the diagnostics).",
            ingested.total.unjoinable
        )?;
    }
    Ok(())
}

/// The longest directory prefix (ending in `/`) shared by all paths, when there are several.
fn common_directory<'a>(paths: &[&'a str]) -> &'a str {
    let Some((first, rest)) = paths.split_first() else {
        return "";
    };
    if rest.is_empty() {
        return "";
    }
    let mut len = first.len();
    for path in rest {
        len = first
            .bytes()
            .zip(path.bytes())
            .take(len)
            .take_while(|(a, b)| a == b)
            .count();
    }
    match first[..len].rfind('/') {
        Some(slash) => &first[..=slash],
        None => "",
    }
}

fn commit_cell(f: &Finding) -> String {
    let Some(write) = &f.write else {
        return "—".to_owned();
    };
    let Some(delay) = f.delay_ns() else {
        return "not committed".to_owned();
    };
    let relation = if delay >= 0 {
        "after abort"
    } else {
        "before abort"
    };
    let verb = if f.category == Category::PreCommitAbort {
        "rolled back "
    } else {
        ""
    };
    let inferred = if write.inferred { "\n(inferred)" } else { "" };
    format!("{verb}{} {relation}{inferred}", offset(delay))
}

fn category_cell(f: &Finding) -> String {
    if f.ambiguous {
        format!("{}\n(ambiguous)", f.category)
    } else {
        f.category.to_string()
    }
}

pub fn scan(audit: &Audit, summary: &Summary, out: &mut dyn Write) -> std::io::Result<()> {
    let mut findings = audit.findings.iter().peekable();
    while let Some(first) = findings.peek().copied() {
        let conversation = &first.conversation_id;
        writeln!(
            out,
            "conversation {}: aborted at {} ({})",
            sanitize(conversation),
            rfc3339(first.abort.time),
            sanitize(&first.abort.signal)
        )?;
        let mut table = new_table(&[
            "tool call",
            "downstream write",
            "category",
            "commit",
            "join",
        ]);
        while let Some(f) = findings.next_if(|f| f.conversation_id == *conversation) {
            let tool = match &f.tool_call.tool_call_id {
                Some(id) => format!("{}\n{}", sanitize(&f.tool_call.name), sanitize(id)),
                None => sanitize(&f.tool_call.name).into_owned(),
            };
            let write = match &f.write {
                Some(w) => format!("{}\n{}", sanitize(&w.operation), sanitize(&w.service)),
                None => "—".to_owned(),
            };
            table.add_row(vec![
                tool,
                write,
                category_cell(f),
                commit_cell(f),
                f.join.to_owned(),
            ]);
        }
        // Keep the category and commit columns whole; names wrap instead.
        for (column, width) in [(2, 24), (3, 22), (4, 6)] {
            if let Some(c) = table.column_mut(column) {
                c.set_constraint(ColumnConstraint::LowerBoundary(Width::Fixed(width)));
            }
        }
        write_table(out, &table)?;
        writeln!(
            out,
            "  details: abortaudit explain {} <inputs>\n",
            shell_quote(&sanitize(conversation))
        )?;
    }
    writeln!(out, "{}", summary.sentence())
}

/// Quotes a conversation id for a copy-pasteable command line when it needs it.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/@".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

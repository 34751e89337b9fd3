//! Terminal tables (comfy-table), sized to fit 100 columns. Every string that came from an
//! input goes through `sanitize` first.

use std::io::Write;

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{CellAlignment, ColumnConstraint, ContentArrangement, Table, Width};
use comfy_table::{LineStyle, TableStyle};

use super::{InspectView, ScanView, sanitize, words};
use crate::classify::{Finding, Standing};
use crate::ingest::Counts;
use crate::model::Category;
use crate::model::time::rfc3339;

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

/// The most characters of an input's text a cell shows. Laying out a long unbroken word costs
/// the table time in the square of its length (three 1 MB names took a minute), and nobody
/// reads past this in a terminal: the rest is elided, saying how much (JSON has it whole).
const CELL_CHARS: usize = 120;

/// Text from an input for a table cell: neutralised, and elided past `CELL_CHARS`.
fn cell_text(text: &str) -> String {
    let text = sanitize(text);
    let count = text.chars().count();
    if count <= CELL_CHARS {
        return text.into_owned();
    }
    let kept: String = text.chars().take(CELL_CHARS - 20).collect();
    format!("{kept}… (+{} more)", count - (CELL_CHARS - 20))
}

/// Writes a table with the padding comfy-table leaves at line ends trimmed, so that pasted
/// output has no trailing blanks.
fn write_table(out: &mut dyn Write, table: &Table) -> std::io::Result<()> {
    for line in table.lines() {
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// What an input held: span kinds for traces, events per vendor for event logs.
fn kinds(counts: &Counts) -> String {
    let mut parts: Vec<String> = counts
        .kinds
        .iter()
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect();
    parts.extend(
        counts
            .vendors
            .iter()
            .map(|(vendor, n)| format!("{} events {n}", cell_text(vendor))),
    );
    if counts.unmatched_vendor_events > 0 {
        parts.push(format!(
            "{} events joined no tool call",
            counts.unmatched_vendor_events
        ));
    }
    parts.join(", ")
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

pub fn inspect(view: &InspectView<'_>, out: &mut dyn Write) -> std::io::Result<()> {
    let ingested = view.ingested;
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
        "input", "format", "lines", "spans", "traces", "svcs", "events", "links", "dups", "diags",
        "contents",
    ]);
    table.load_style(LISTING);
    for (n, input) in ingested.inputs.iter().enumerate() {
        let format = match &input.error {
            Some(_) => "error".to_owned(),
            None => input.format_label(),
        };
        table.add_row(count_row(
            format!("[{}]", n + 1),
            &format,
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
    let join = &view.join;
    writeln!(
        out,
        "{} agent turns · {} tool calls{} · aborted turns: {} recorded by a span, {} by the abort log, {} inferred from the app's server",
        join.agent_turns,
        join.tool_calls,
        if join.nested_tool_spans > 0 {
            format!(
                " ({} more tool spans are parts of an outer call)",
                join.nested_tool_spans
            )
        } else {
            String::new()
        },
        join.aborted_recorded,
        join.aborted_by_log,
        join.aborted_inferred
    )?;
    if !ingested.aborts.is_empty() {
        writeln!(
            out,
            "{} abort log records, {} naming no turn of the traces",
            ingested.aborts.len(),
            view.abort_records_unplaced
        )?;
    }
    if let Some(store) = view.store {
        writeln!(
            out,
            "store {}: {}; enums spelt {}",
            sanitize(&store.table),
            sanitize(&store.dialect.describe()),
            if store.enums.is_empty() {
                "(no spans)".to_owned()
            } else {
                store.enums.join(" and ")
            }
        )?;
        writeln!(
            out,
            "window {} to {}: {} spans in {} traces; the survey kept {} traces ({} spans read, links followed {} deep, {} of grace); {} queries, {} received",
            store.since,
            store.until,
            store.spans_in_window,
            store.traces_in_window,
            store.traces_read,
            store.rows_read,
            store.link_depth,
            crate::util::units::human_gap(store.grace_ns.parse::<u64>().unwrap_or(0)),
            store.queries,
            crate::util::units::human_size(store.bytes_received)
        )?;
        writeln!(
            out,
            "The turns, tool calls and aborts above are those of the traces the survey kept."
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
    // The shared bytes may end inside a character (`é` and `è` share their first byte): the
    // cut is at the last `/`, which is a character of its own.
    match first.as_bytes()[..len].iter().rposition(|b| *b == b'/') {
        Some(slash) => &first[..=slash],
        None => "",
    }
}

fn commit_cell(f: &Finding) -> String {
    words::timing(f)
        .replace("rolled back ", "rolled back\n")
        .replace(" (inferred)", "\n(inferred)")
}

fn category_cell(f: &Finding, standing: &Standing) -> String {
    let mut cell = f.category.to_string();
    if f.ambiguous {
        cell.push_str("\n(ambiguous)");
    }
    if f.compensated.is_some() {
        cell.push_str("\n(compensated)");
    }
    match standing {
        Standing::Suppressed { .. } => cell.push_str("\n(suppressed)"),
        Standing::Known => cell.push_str("\n(in baseline)"),
        Standing::Fails | Standing::Passes => {}
    }
    cell
}

fn write_cell(f: &Finding) -> String {
    match &f.write {
        Some(w) => format!(
            "{}\n{}\nvia {}",
            cell_text(&w.operation),
            cell_text(&w.service),
            cell_text(f.join.as_deref().unwrap_or("?"))
        ),
        None if f.category == Category::Unverified => "unknown".to_owned(),
        None => "none found".to_owned(),
    }
}

pub fn scan(view: &ScanView<'_>, out: &mut dyn Write) -> std::io::Result<()> {
    let mut findings = view.findings().peekable();
    while let Some((first, _)) = findings.peek().copied() {
        let conversation = &first.conversation_id;
        writeln!(out, "conversation {}", sanitize(conversation))?;
        writeln!(
            out,
            "  aborted at {} by {}",
            rfc3339(first.abort.time),
            sanitize(&first.abort.signal)
        )?;
        let mut table = new_table(&["tool call", "downstream write", "category", "vs abort"]);
        let mut tool_width = 9;
        let mut shown = Vec::new();
        while let Some((f, standing)) =
            findings.next_if(|(f, _)| f.conversation_id == *conversation)
        {
            shown.push(f);
            let name = cell_text(&f.tool_call.name);
            let tool = match &f.tool_call.tool_call_id {
                Some(id) => format!("{name}\n{}", cell_text(id)),
                None => name,
            };
            tool_width = tool
                .lines()
                .map(|l| l.chars().count())
                .max()
                .unwrap_or(0)
                .max(tool_width);
            table.add_row(vec![
                tool,
                write_cell(f),
                category_cell(f, standing),
                commit_cell(f),
            ]);
        }
        // Ids and categories read badly when wrapped: keep them whole, and let the
        // operation and service wrap instead.
        // Widths count the cell padding, one space each side.
        let tool_width = tool_width.min(32) as u16 + 2;
        for (column, width) in [(0, tool_width), (2, 24), (3, 13)] {
            if let Some(c) = table.column_mut(column) {
                c.set_constraint(ColumnConstraint::LowerBoundary(Width::Fixed(width)));
            }
        }
        write_table(out, &table)?;
        for f in &shown {
            writeln!(
                out,
                "  {}: what would have stopped it",
                cell_text(&words::headline(f))
            )?;
            for line in wrap(&sanitize(&words::prevention(f)), WIDTH as usize - 4) {
                writeln!(out, "    {line}")?;
            }
        }
        writeln!(
            out,
            "  timeline: abortaudit explain {} <inputs>\n",
            shell_quote(&sanitize(conversation))
        )?;
    }
    if view.audit.findings.is_empty() {
        writeln!(out, "No writes landed after an abort.")?;
    } else {
        protocols(view, out)?;
    }
    for rule in view.gate.allow.iter().filter(|rule| {
        view.gate
            .standings
            .iter()
            .any(|s| view.allow_rule(s).is_some_and(|r| std::ptr::eq(r, *rule)))
    }) {
        writeln!(
            out,
            "suppressed by {}: {}",
            sanitize(&rule.describe()),
            sanitize(&rule.reason)
        )?;
    }
    for line in view.summary.lines() {
        for part in wrap(&line, WIDTH as usize) {
            writeln!(out, "{part}")?;
        }
    }
    Ok(())
}

/// Words of `text` in lines of at most `width` characters (a longer word gets a line of its own).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// The cancellation protocols of the tool calls in the aborted turns, per tool and per
/// downstream service: how many calls had each mechanism.
fn protocols(view: &ScanView<'_>, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "cancellation protocols: tool calls of the aborted turns that had each mechanism"
    )?;
    for (heading, rows) in [
        ("tool", view.audit.protocols_by_tool()),
        ("service", view.audit.protocols_by_service()),
    ] {
        let mut table = new_table(&[
            heading,
            "calls",
            "late",
            "check",
            "deadline",
            "cancel",
            "idem. key",
            "compensated",
            "protocol",
        ]);
        table.load_style(LISTING);
        for row in &rows {
            let protocol = if row.has_protocol() {
                "yes"
            } else if row.late_writes > 0 {
                "NONE"
            } else {
                "none"
            };
            table.add_row(vec![
                cell_text(&row.name),
                row.calls.to_string(),
                row.late_writes.to_string(),
                row.commit_check.to_string(),
                row.deadline.to_string(),
                row.cancel.to_string(),
                row.idempotency_key.to_string(),
                row.compensated.to_string(),
                protocol.to_owned(),
            ]);
        }
        for column in 1..=7 {
            if let Some(c) = table.column_mut(column) {
                c.set_cell_alignment(CellAlignment::Right);
                c.set_constraint(ColumnConstraint::ContentWidth);
            }
        }
        for c in table.column_iter_mut() {
            c.set_padding((0, 1));
        }
        write_table(out, &table)?;
    }
    for line in wrap(
        "check: the server checked for its client before committing; deadline: a deadline header was sent; cancel: an out-of-band cancel after the abort; NONE: late writes and no check, deadline or cancel",
        WIDTH as usize,
    ) {
        writeln!(out, "{line}")?;
    }
    writeln!(out)?;
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_common_directory_is_cut_at_a_slash_even_inside_a_character() {
        assert_eq!(common_directory(&["d/é.jsonl", "d/è.jsonl"]), "d/");
        assert_eq!(common_directory(&["é.jsonl", "è.jsonl"]), "");
        assert_eq!(common_directory(&["a/b/x", "a/b/y", "a/c"]), "a/");
        assert_eq!(common_directory(&["only/one"]), "");
    }

    #[test]
    fn long_cell_text_is_elided_saying_how_much() {
        let long = "t".repeat(1_000_000);
        let cell = cell_text(&long);
        assert!(cell.chars().count() < 140, "{}", cell.len());
        assert!(cell.ends_with("… (+999900 more)"), "{cell}");
        assert_eq!(cell_text("short"), "short");
    }
}

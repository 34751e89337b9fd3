//! Which of the clickhouseexporter's table layouts a store has, read as the exporter reads it:
//! `DESCRIBE TABLE`. Its attributes are `Map(LowCardinality(String), String)` columns (every
//! value a string), or `JSON` columns (`json: true`, typed values, dotted keys as paths);
//! older tables lack `ScopeName`/`ScopeVersion` and have a signed `Duration`. The enums are
//! spelt `Server`/`Error` by exporters since 2024 and `SPAN_KIND_SERVER`/`STATUS_CODE_ERROR`
//! before, and one table may hold both: every query accepts either. A `Distributed` table
//! needs `GLOBAL IN`, so that each sub-query runs once, on the initiator.

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use super::http::{Client, Params};

/// The columns the audit reads; a table without one of them is not the exporter's.
const REQUIRED: [&str; 18] = [
    "Timestamp",
    "TraceId",
    "SpanId",
    "ParentSpanId",
    "SpanName",
    "SpanKind",
    "ServiceName",
    "ResourceAttributes",
    "SpanAttributes",
    "Duration",
    "StatusCode",
    "StatusMessage",
    "Events.Timestamp",
    "Events.Name",
    "Events.Attributes",
    "Links.TraceId",
    "Links.SpanId",
    "Links.Attributes",
];

/// How attribute values are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Attributes {
    /// `Map(…, String)`: every value as pdata's `AsString` wrote it.
    Map,
    /// `JSON`: typed values; ClickHouse splits dotted keys into paths.
    Json,
}

/// What `DESCRIBE TABLE` and `system.tables` said about a store's table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Dialect {
    pub attributes: Attributes,
    /// `ScopeName` and `ScopeVersion` exist (exporters since 2023).
    pub scope_columns: bool,
    /// `Duration`'s type: `UInt64` (since 2024) or `Int64`.
    pub duration: String,
    /// The table's engine (`MergeTree`, `ReplicatedMergeTree`, `Distributed`…).
    pub engine: String,
    /// The server's time zone (`timezone()`), in which a `DateTime64` comes back as text.
    pub time_zone: String,
}

impl Dialect {
    /// A `JSON` attribute column infers a string that looks like a time (a deadline header's
    /// RFC 3339 value) as `DateTime64`, which keeps the instant and comes back as
    /// `2026-12-06 04:40:44.472000000` in the server's time zone. Only a server in UTC (the
    /// official image's and ClickHouse Cloud's) gives it back as an instant without a time-zone
    /// database: the queries send no setting (`date_time_output_format`), which a read-only
    /// user may not change.
    pub(super) fn json_times_in_utc(&self) -> bool {
        self.attributes == Attributes::Json
            && matches!(
                self.time_zone.as_str(),
                "UTC" | "Etc/UTC" | "Etc/UCT" | "UCT" | "GMT" | "Etc/GMT" | "Universal" | "Zulu"
            )
    }

    pub(super) fn distributed(&self) -> bool {
        self.engine == "Distributed"
    }

    /// `IN` for a sub-query; `GLOBAL IN` over a `Distributed` table.
    pub(super) fn in_(&self) -> &'static str {
        if self.distributed() {
            "GLOBAL IN"
        } else {
            "IN"
        }
    }

    /// An attribute's value as text ('' when absent), `key` being a parameter.
    pub(super) fn attr(&self, column: &str, key: &str) -> String {
        match self.attributes {
            Attributes::Map => format!("{column}[{key}]"),
            Attributes::Json => format!("toString(getSubcolumn({column}, {key}))"),
        }
    }

    /// Whether an attribute is there.
    pub(super) fn has(&self, column: &str, key: &str) -> String {
        match self.attributes {
            Attributes::Map => format!("mapContains({column}, {key})"),
            Attributes::Json => format!("NOT isNull(getSubcolumn({column}, {key}))"),
        }
    }

    /// The dialect in words, for `inspect`.
    pub fn describe(&self) -> String {
        let attributes = match self.attributes {
            Attributes::Map => "Map attribute columns",
            Attributes::Json => "JSON attribute columns (json: true)",
        };
        let scope = if self.scope_columns {
            "ScopeName/ScopeVersion"
        } else {
            "no scope columns (before 2023)"
        };
        format!(
            "{attributes}, {scope}, Duration {}, engine {}",
            self.duration, self.engine
        )
    }
}

#[derive(Deserialize)]
struct Column {
    name: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct Engine {
    engine: String,
}

#[derive(Deserialize)]
struct TimeZone {
    tz: String,
}

/// Reads the table's layout.
pub(super) fn detect(client: &Client, database: &str, table: &str) -> Result<Dialect> {
    let mut params = Params::default();
    let sql = format!(
        "DESCRIBE TABLE {}.{} FORMAT JSONEachRow",
        params.identifier(database),
        params.identifier(table)
    );
    let mut columns: Vec<Column> = Vec::new();
    client.each_row("DESCRIBE TABLE", &sql, &params, |_, row| {
        columns.push(serde_json::from_slice(row)?);
        Ok(())
    })?;
    let kind = |name: &str| {
        columns
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.kind.as_str())
    };
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|c| kind(c).is_none())
        .collect();
    if !missing.is_empty() {
        bail!(
            "{database}.{table} is not a table of the Collector's clickhouseexporter: it has no column {}",
            missing.join(", ")
        );
    }
    let attributes = match kind("SpanAttributes").unwrap_or_default() {
        k if k.starts_with("Map(") => Attributes::Map,
        k if k.starts_with("JSON") || k.starts_with("Object(") => Attributes::Json,
        other => bail!(
            "{database}.{table}: SpanAttributes is {other}; expected the exporter's Map or JSON column"
        ),
    };
    let mut params = Params::default();
    let sql = format!(
        "SELECT engine FROM system.tables WHERE database = {} AND name = {} FORMAT JSONEachRow",
        params.string(database),
        params.string(table)
    );
    let mut engine = None;
    client.each_row("look-up of the table's engine", &sql, &params, |_, row| {
        engine = Some(serde_json::from_slice::<Engine>(row)?.engine);
        Ok(())
    })?;
    let params = Params::default();
    let mut time_zone = String::new();
    client.each_row(
        "look-up of the server's time zone",
        "SELECT timezone() AS tz FORMAT JSONEachRow",
        &params,
        |_, row| {
            time_zone = serde_json::from_slice::<TimeZone>(row)?.tz;
            Ok(())
        },
    )?;
    Ok(Dialect {
        attributes,
        scope_columns: kind("ScopeName").is_some() && kind("ScopeVersion").is_some(),
        duration: kind("Duration").unwrap_or_default().to_owned(),
        engine: engine.unwrap_or_else(|| "unknown".to_owned()),
        time_zone,
    })
}

#!/usr/bin/env python3
"""The ``otel_traces`` schemas of the OpenTelemetry Collector contrib ``clickhouseexporter``.

Each variant is the DDL that some exporter version runs when ``create_schema`` is on,
copied from the exporter's source (paths and commits below) with only the template
placeholders filled in. The exporter also creates ``<table>_trace_id_ts`` and the
materialized view ``<table>_trace_id_ts_mv`` that fills it; those are included.

    python3 schema.py --list
    python3 schema.py --variant current --print
    python3 schema.py --url http://127.0.0.1:PORT --variant current --database otel [--distributed]
    python3 schema.py --write-sql DIR          # one .sql file per variant

Variants (newest first; "≈vX" = the first contrib release after the PR merged, from the
PR's date: the exact release was not verified):

current   internal/sqltemplates/traces_table.sql @ 2bf6b9e1 (2026, Go text/template),
          traces_id_ts_lookup_table.sql @ 1b085030 (AggregatingMergeTree, SimpleAggregateFunction),
          traces_id_ts_lookup_mv.sql (min/max(toDateTime(Timestamp))).
          Timestamp CODEC(Delta(8), ZSTD(1)); Duration UInt64 CODEC(T64, ZSTD(1));
          ALIAS columns ResourceAttributeItems/SpanAttributeItems; PRIMARY KEY
          (ServiceName, SpanName, toDateTime(Timestamp)) ORDER BY (..., Timestamp);
          skip indexes: bloom_filter, or TYPE text(tokenizer = 'array') when the server is
          ClickHouse >= 26.2 (exporter's versionFullTextSearch) -- chdb is 26.9, so the
          exporter would pick "text"; --index bloom gives the older choice.
          SpanKind/StatusCode: "Server", "Error" (span.Kind().String()).
json      internal/sqltemplates/traces_json_table.sql @ 39f94831 (`json: true`, PR #40547,
          2025-06, ≈v0.129; per-pipeline `json` option PR #46553, 2026-03). Map columns
          become JSON; no skip index but idx_duration. Same _trace_id_ts table/MV as current.
v2025     internal/sqltemplates/traces_table.sql @ f92a5763 (printf-style %s templates),
          traces_id_ts_lookup_table.sql @ 61540ced, traces_id_ts_lookup_mv.sql @ 57b29d74:
          Duration UInt64 CODEC(ZSTD(1)); ORDER BY (ServiceName, SpanName, toDateTime(Timestamp))
          (PR #34245, 2024-08, ≈v0.107/0.108); _trace_id_ts Start/End DateTime, MergeTree.
          SpanKind/StatusCode "Server"/"Error" since PR #34799 (2024-08/09, ≈v0.108/0.109).
legacy2023 inline DDL in exporter_traces.go after PR #21919 (2023-05, ≈v0.78): ScopeName and
          ScopeVersion columns; Duration Int64; ORDER BY (ServiceName, SpanName,
          toUnixTimestamp(Timestamp), TraceId); _trace_id_ts with DateTime64(9) Start/End.
          SpanKind/StatusCode "SPAN_KIND_SERVER"/"STATUS_CODE_ERROR" (traceutil.SpanKindStr).
          (Text as in a verbatim third-party copy of that DDL; upstream file at that commit
          was not in the index.)
legacy2022 inline DDL in exporter_traces.go @ 6cc07cc5 / 06be845f: traces support PR #13442
          (2022-08/09, ≈v0.60): no ScopeName/ScopeVersion columns; from PR #18513 (2023-02/03,
          ≈v0.74) until #21919 the scope name/version went into SpanAttributes as
          otel.scope.name / otel.scope.version (load.py --scope-in-attributes, the default
          for this variant). Duration Int64, legacy enum spellings.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chsql import HttpClient, quote_ident  # noqa: E402

# ---------------------------------------------------------------------------------------------
# Per-variant facts used by load.py to map spans the way that exporter version did.

VARIANTS = {
    "current": dict(enums="modern", scope_columns=True, scope_in_attributes=False, duration="UInt64",
                    service_name="AsString", json=False),
    "json": dict(enums="modern", scope_columns=True, scope_in_attributes=False, duration="UInt64",
                 service_name="AsString", json=True),
    "v2025": dict(enums="modern", scope_columns=True, scope_in_attributes=False, duration="UInt64",
                  service_name="AsString", json=False),
    "legacy2023": dict(enums="legacy", scope_columns=True, scope_in_attributes=False, duration="Int64",
                       service_name="Str", json=False),
    "legacy2022": dict(enums="legacy", scope_columns=False, scope_in_attributes=True, duration="Int64",
                       service_name="Str", json=False),
}

# ---------------------------------------------------------------------------------------------
# DDL text. {db} and {t} are back-quoted identifiers, {tname} the bare table name (for
# suffixes), {cluster} "ON CLUSTER x" or "", {engine} e.g. "MergeTree()", {ttl} a TTL clause
# or "".

_NESTED_MAP = """    Events Nested (
        Timestamp DateTime64(9),
        Name LowCardinality(String),
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    Links Nested (
        TraceId String,
        SpanId String,
        TraceState String,
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),"""

CURRENT_TABLE = """CREATE TABLE IF NOT EXISTS {db}.{t} {cluster} (
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Duration UInt64 CODEC(T64, ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
""" + _NESTED_MAP + """
    ResourceAttributeItems Array(String) ALIAS arrayMap(kv -> concat(kv.1, '=', kv.2), CAST(ResourceAttributes, 'Array(Tuple(String, String))')),
    SpanAttributeItems Array(String) ALIAS arrayMap(kv -> concat(kv.1, '=', kv.2), CAST(SpanAttributes, 'Array(Tuple(String, String))')),
{indexes}
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1,
    INDEX idx_lower_span_name lower(SpanName) TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 8
) ENGINE = {engine}
PARTITION BY toDate(Timestamp)
PRIMARY KEY (ServiceName, SpanName, toDateTime(Timestamp))
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp), Timestamp)
{ttl}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1
"""

CURRENT_INDEXES_TEXT = """    INDEX idx_trace_id TraceId TYPE text(tokenizer = 'array'),
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE text(tokenizer = 'array'),
    INDEX idx_res_attr_items ResourceAttributeItems TYPE text(tokenizer = 'array'),
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE text(tokenizer = 'array'),
    INDEX idx_span_attr_items SpanAttributeItems TYPE text(tokenizer = 'array'),"""

CURRENT_INDEXES_BLOOM = """    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,"""

CURRENT_TS_TABLE = """CREATE TABLE IF NOT EXISTS {db}.{ts} {cluster} (
    TraceId String CODEC(ZSTD(1)),
    Start SimpleAggregateFunction(min, DateTime) CODEC(ZSTD(1)),
    End SimpleAggregateFunction(max, DateTime) CODEC(ZSTD(1))
) ENGINE = {ts_engine}
PARTITION BY toStartOfWeek(Start)
ORDER BY (TraceId)
{ts_ttl}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1
"""

CURRENT_TS_MV = """CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{mv} {cluster}
TO {db}.{ts}
AS SELECT
    TraceId,
    min(toDateTime(Timestamp)) AS Start,
    max(toDateTime(Timestamp)) AS End
FROM {db}.{t}
WHERE TraceId != ''
GROUP BY TraceId
"""

JSON_TABLE = """CREATE TABLE IF NOT EXISTS {db}.{t} {cluster} (
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes JSON CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes JSON CODEC(ZSTD(1)),
    Duration UInt64 CODEC(ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (
        Timestamp DateTime64(9),
        Name LowCardinality(String),
        Attributes JSON
    ) CODEC(ZSTD(1)),
    Links Nested (
        TraceId String,
        SpanId String,
        TraceState String,
        Attributes JSON
    ) CODEC(ZSTD(1)),
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1
) ENGINE = {engine}
PARTITION BY toDate(Timestamp)
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp), Timestamp)
{ttl}
SETTINGS index_granularity=8192, ttl_only_drop_parts = 1
"""

_BLOOM_INDEXES_OLD = """    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1"""

V2025_TABLE = """CREATE TABLE IF NOT EXISTS {db}.{t} {cluster} (
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Duration UInt64 CODEC(ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
""" + _NESTED_MAP + """
""" + _BLOOM_INDEXES_OLD + """
) ENGINE = {engine}
PARTITION BY toDate(Timestamp)
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp))
{ttl}
SETTINGS index_granularity=8192, ttl_only_drop_parts = 1
"""

V2025_TS_TABLE = """CREATE TABLE IF NOT EXISTS {db}.{ts} {cluster} (
    TraceId String CODEC(ZSTD(1)),
    Start DateTime CODEC(Delta, ZSTD(1)),
    End DateTime CODEC(Delta, ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.01) GRANULARITY 1
) ENGINE = {engine}
PARTITION BY toDate(Start)
ORDER BY (TraceId, Start)
{ts_ttl}
SETTINGS index_granularity=8192, ttl_only_drop_parts = 1
"""

V2025_TS_MV = """CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{mv} {cluster}
TO {db}.{ts}
AS SELECT
    TraceId,
    min(Timestamp) as Start,
    max(Timestamp) as End
FROM {db}.{t}
WHERE TraceId != ''
GROUP BY TraceId
"""


def _legacy_table(scope_columns: bool) -> str:
    scope = ("     ScopeName String CODEC(ZSTD(1)),\n     ScopeVersion String CODEC(ZSTD(1)),\n"
             if scope_columns else "")
    return ("""CREATE TABLE IF NOT EXISTS {db}.{t} (
     Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
     TraceId String CODEC(ZSTD(1)),
     SpanId String CODEC(ZSTD(1)),
     ParentSpanId String CODEC(ZSTD(1)),
     TraceState String CODEC(ZSTD(1)),
     SpanName LowCardinality(String) CODEC(ZSTD(1)),
     SpanKind LowCardinality(String) CODEC(ZSTD(1)),
     ServiceName LowCardinality(String) CODEC(ZSTD(1)),
     ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
""" + scope + """     SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
     Duration Int64 CODEC(ZSTD(1)),
     StatusCode LowCardinality(String) CODEC(ZSTD(1)),
     StatusMessage String CODEC(ZSTD(1)),
     Events Nested (
         Timestamp DateTime64(9),
         Name LowCardinality(String),
         Attributes Map(LowCardinality(String), String)
     ) CODEC(ZSTD(1)),
     Links Nested (
         TraceId String,
         SpanId String,
         TraceState String,
         Attributes Map(LowCardinality(String), String)
     ) CODEC(ZSTD(1)),
""" + _BLOOM_INDEXES_OLD.replace("    INDEX", "     INDEX") + """
) ENGINE MergeTree()
{ttl}
PARTITION BY toDate(Timestamp)
ORDER BY (ServiceName, SpanName, toUnixTimestamp(Timestamp), TraceId)
SETTINGS index_granularity=8192, ttl_only_drop_parts = 1
""")


LEGACY_TS_TABLE = """create table IF NOT EXISTS {db}.{ts} (
     TraceId String CODEC(ZSTD(1)),
     Start DateTime64(9) CODEC(Delta, ZSTD(1)),
     End DateTime64(9) CODEC(Delta, ZSTD(1)),
     INDEX idx_trace_id TraceId TYPE bloom_filter(0.01) GRANULARITY 1
) ENGINE MergeTree()
{ts_ttl}
ORDER BY (TraceId, toUnixTimestamp(Start))
SETTINGS index_granularity=8192
"""

LEGACY_TS_MV = """CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{mv}
TO {db}.{ts}
AS SELECT
TraceId,
min(Timestamp) as Start,
max(Timestamp) as End
FROM
{db}.{t}
WHERE TraceId!=''
GROUP BY TraceId
"""


def render(variant: str, database: str = "otel", table: str = "otel_traces", ttl_days: int = 0,
           cluster: Optional[str] = None, engine: str = "MergeTree()", index: str = "text",
           create_database: bool = True) -> list[str]:
    """The statements the exporter would run (CREATE DATABASE first if asked)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; one of {', '.join(VARIANTS)}")
    db = quote_ident(database)
    fields = dict(
        db=db, t=quote_ident(table), ts=quote_ident(table + "_trace_id_ts"),
        mv=quote_ident(table + "_trace_id_ts_mv"),
        cluster=f"ON CLUSTER {quote_ident(cluster)}" if cluster else "", engine=engine,
        # AggregatingMergeTree for the lookup table when the spans table is a MergeTree
        # (the exporter's traceIDTsTableEngineString()).
        ts_engine=engine.replace("MergeTree", "AggregatingMergeTree", 1) if "Aggregating" not in engine else engine,
        ttl=f"TTL toDateTime(Timestamp) + toIntervalDay({ttl_days})" if ttl_days > 0 else "",
        ts_ttl=f"TTL toDateTime(Start) + toIntervalDay({ttl_days})" if ttl_days > 0 else "",
    )
    out = []
    if create_database and database != "default":
        out.append(f"CREATE DATABASE IF NOT EXISTS {db} {fields['cluster']}".rstrip())
    if variant == "current":
        idx = CURRENT_INDEXES_TEXT if index == "text" else CURRENT_INDEXES_BLOOM
        out += [CURRENT_TABLE.replace("{indexes}", idx), CURRENT_TS_TABLE, CURRENT_TS_MV]
    elif variant == "json":
        out += [JSON_TABLE, CURRENT_TS_TABLE, CURRENT_TS_MV]
    elif variant == "v2025":
        out += [V2025_TABLE, V2025_TS_TABLE, V2025_TS_MV]
    else:
        if cluster:
            raise ValueError(f"{variant}: that exporter version had no cluster support")
        out += [_legacy_table(variant == "legacy2023"), LEGACY_TS_TABLE, LEGACY_TS_MV]
    return [s.format(**fields) if "{db}" in s else s for s in out]


def distributed(database: str = "otel", table: str = "otel_traces", cluster: str = "abortaudit",
                suffix: str = "_dist") -> list[str]:
    """A Distributed table over the local table (server.py defines cluster `abortaudit`:
    one shard, 127.0.0.1:9000, which the engine treats as itself)."""
    db, t = quote_ident(database), quote_ident(table)
    return [f"CREATE TABLE IF NOT EXISTS {db}.{quote_ident(table + suffix)} AS {db}.{t} "
            f"ENGINE = Distributed({quote_ident(cluster)}, {db}, {t}, cityHash64(TraceId))"]


def drop(database: str, table: str) -> list[str]:
    db = quote_ident(database)
    return [f"DROP TABLE IF EXISTS {db}.{quote_ident(table + s)}" for s in ("_dist", "_trace_id_ts_mv", "_trace_id_ts", "")]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", default="current", choices=list(VARIANTS))
    ap.add_argument("--database", default="otel")
    ap.add_argument("--table", default="otel_traces")
    ap.add_argument("--ttl-days", type=int, default=0)
    ap.add_argument("--index", choices=("text", "bloom"), default="text",
                    help="current variant: skip-index kind (exporter picks text on ClickHouse >= 26.2)")
    ap.add_argument("--cluster", help="render ON CLUSTER (printing only: chdb has no DDL queue)")
    ap.add_argument("--distributed", action="store_true", help="also create <table>_dist (Distributed, cluster abortaudit)")
    ap.add_argument("--drop", action="store_true", help="drop the tables first")
    ap.add_argument("--print", action="store_true", help="print the DDL instead of running it")
    ap.add_argument("--write-sql", metavar="DIR", help="write DIR/<variant>.sql for every variant and exit")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--url", default=os.environ.get("ABORTAUDIT_CH_URL", "http://127.0.0.1:8123"))
    ap.add_argument("--user", default=os.environ.get("ABORTAUDIT_CH_USER", "default"))
    ap.add_argument("--password", default=os.environ.get("ABORTAUDIT_CH_PASSWORD", ""))
    args = ap.parse_args()

    if args.list:
        for name, facts in VARIANTS.items():
            print(f"{name:11} {facts}")
        return
    if args.write_sql:
        os.makedirs(args.write_sql, exist_ok=True)
        for name in VARIANTS:
            with open(os.path.join(args.write_sql, f"{name}.sql"), "w") as f:
                f.write(";\n\n".join(s.strip() for s in render(name, args.database, args.table, args.ttl_days,
                                                                index=args.index)) + ";\n")
        return
    stmts = (drop(args.database, args.table) if args.drop else []) + render(
        args.variant, args.database, args.table, args.ttl_days, args.cluster, index=args.index)
    if args.distributed:
        stmts += distributed(args.database, args.table)
    if args.print:
        print(";\n\n".join(s.strip() for s in stmts) + ";")
        return
    client = HttpClient(args.url, args.user, args.password)
    for s in stmts:
        client.execute(s)
    print(f"[schema] {args.variant}: {args.database}.{args.table} (+ _trace_id_ts, _trace_id_ts_mv"
          f"{', _dist' if args.distributed else ''}) at {args.url}", file=sys.stderr)


if __name__ == "__main__":
    main()

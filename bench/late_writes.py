"""The naive time filter (bench/README.md, "The shared answer") as a DuckDB query.

    bench/.venv/bin/python bench/late_writes.py [--auto-schema] FILE.jsonl

Prints the same JSON object as bench/late_writes.jq: the aborted traces, the late writes, and the
late writes per conversation. DuckDB reads the JSON Lines itself (read_json, newline-delimited).
By default the columns it needs are declared, so it skips schema sampling and parses only those
fields: DuckDB at its best. With --auto-schema it detects the schema itself (read_ndjson_auto), as
a first query usually does. Either way it unnests resourceSpans -> scopeSpans -> spans and picks
the abort events and attributes out of each span with list comprehensions. Threads: DUCKDB_THREADS (default: DuckDB's own, the number
of cores). Times are cast from their decimal strings to UBIGINT: exact, never through a double.
"""

import json
import os
import sys

import duckdb

# Only what the query reads; DuckDB ignores the other keys of each object.
SPAN = (
    "STRUCT("
    "traceId VARCHAR, parentSpanId VARCHAR, endTimeUnixNano VARCHAR, "
    "attributes STRUCT(\"key\" VARCHAR, \"value\" STRUCT(stringValue VARCHAR))[], "
    "events STRUCT(name VARCHAR, timeUnixNano VARCHAR)[]"
    ")"
)
RESOURCE_SPANS = f"STRUCT(scopeSpans STRUCT(spans {SPAN}[])[])[]"

# One pass over the file keeps only the spans that matter (aborted roots and COMMITs) in a small
# temporary table; the join runs over that.
DECLARED = """read_json(?, format = 'newline_delimited', records = true,
                   columns = {resourceSpans: '%s'},
                   maximum_object_size = 1073741824)""" % RESOURCE_SPANS
AUTO = "read_ndjson_auto(?, maximum_object_size = 1073741824)"

MARKS = """
CREATE TEMP TABLE marks AS
WITH resource_spans AS (
    SELECT unnest(resourceSpans) AS rs FROM {source}
),
scope_spans AS (SELECT unnest(rs.scopeSpans) AS ss FROM resource_spans),
spans AS (SELECT unnest(ss.spans) AS s FROM scope_spans),
marked AS (
    SELECT
        s.traceId AS trace_id,
        CASE WHEN coalesce(s.parentSpanId, '') = '' THEN
            list_min([CAST(e.timeUnixNano AS UBIGINT) FOR e IN s.events IF e.name = 'abort'])
        END AS abort_ns,
        [a.value.stringValue FOR a IN s.attributes IF a.key = 'gen_ai.conversation.id'][1]
            AS conversation,
        CASE WHEN len([a FOR a IN s.attributes
                       IF a.key = 'db.operation.name' AND a.value.stringValue = 'COMMIT']) > 0
            THEN CAST(s.endTimeUnixNano AS UBIGINT)
        END AS commit_ns
    FROM spans
)
SELECT * FROM marked WHERE abort_ns IS NOT NULL OR commit_ns IS NOT NULL
"""

LATE = """
WITH aborts AS (
    SELECT trace_id, min(abort_ns) AS abort_ns,
           coalesce(min(conversation), trace_id) AS conversation
    FROM marks WHERE abort_ns IS NOT NULL GROUP BY trace_id
),
per_trace AS (
    SELECT a.trace_id, a.conversation, count(c.commit_ns) AS late
    FROM aborts a
    LEFT JOIN marks c
      ON c.trace_id = a.trace_id AND c.commit_ns IS NOT NULL AND c.commit_ns > a.abort_ns
    GROUP BY a.trace_id, a.conversation
)
SELECT conversation, sum(late)::BIGINT AS late, count(*) AS traces
FROM per_trace GROUP BY conversation ORDER BY conversation
"""


def main() -> None:
    args = sys.argv[1:]
    auto = "--auto-schema" in args
    args = [a for a in args if a != "--auto-schema"]
    if len(args) != 1:
        sys.exit("usage: late_writes.py [--auto-schema] FILE.jsonl")
    con = duckdb.connect()
    threads = os.environ.get("DUCKDB_THREADS")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    con.execute(MARKS.format(source=AUTO if auto else DECLARED), args)
    rows = con.execute(LATE).fetchall()
    out = {
        "aborted_traces": sum(traces for _, _, traces in rows),
        "late_writes": sum(late for _, late, _ in rows),
        "by_conversation": {conv: late for conv, late, _ in rows if late > 0},
    }
    print(json.dumps(out, separators=(",", ":")))


if __name__ == "__main__":
    main()

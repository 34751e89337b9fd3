#!/usr/bin/env python3
"""Load ~10 million generated spans into the engine, and report rows, size and time.

    python3 gen_bench.py --url http://127.0.0.1:PORT [--spans 10000000] [--out /tmp/abortaudit-ch-bench.jsonl]
                         [--variant current] [--database bench] [--mode sql|python] [--verify]

1. Generates OTLP/JSON Lines with the repository's generator
   (examples/gen_collector_otlp.rs, built with `cargo build --release --example gen_collector_otlp`
   if target/release/examples/gen_collector_otlp is missing): about 1,075 bytes per span, so
   10 M spans is a ~10.7 GB file, plus FILE.truth.json. An existing FILE of the same size and
   seed is reused. Keep it out of the repo (default /tmp).
2. Creates the schema (schema.py --variant) and loads the file:
   --mode sql (default): one ``INSERT INTO ... SELECT ... FROM file(FILE, 'JSONAsString')``
     sent to the server: the engine itself parses the OTLP JSON and maps it to rows with
     JSON functions (the mapping of load.py written in SQL; Map variants only). The server
     process must be able to read FILE (same machine).
   --mode python: load.py's mapper + INSERT ... FORMAT JSONEachRow batches over HTTP (exact for
     every value type, ~18k spans/s on one core).
   --verify: first loads the first --verify-spans spans both ways into two scratch tables and
     checks they are identical (EXCEPT both ways over every column), so the SQL mapping is
     proven on this generator's data (it handles the value types the generator emits:
     strings, ints, bools, doubles, arrays of scalars; not kvlists or nested arrays).
3. Prints rows, compressed/uncompressed/on-disk size and load time (and writes them as JSON
   with --report FILE).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from chsql import HttpClient, quote_ident, quote_string  # noqa: E402
import load  # noqa: E402
import schema  # noqa: E402

REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
GENERATOR = os.path.join(REPO, "target", "release", "examples", "gen_collector_otlp")
BYTES_PER_SPAN = 1075  # measured: 100 MB -> 93,232 spans

# ---------------------------------------------------------------------------------------------
# The OTLP -> row mapping in ClickHouse SQL (same rules as load.py; see its docstring).


def _go_string(e: str) -> str:
    # encoding/json string: toJSONString (forward slashes unescaped) + Go's HTML escapes.
    return (f"replaceAll(replaceAll(replaceAll(toJSONString({e}), '<', '\\\\u003c'), '>', '\\\\u003e'), "
            f"'&', '\\\\u0026')")


def _go_float(e: str) -> str:
    # ClickHouse prints the shortest round-trip digits like Go; Go writes "1e+21" where
    # ClickHouse writes "1e21". --verify checks the rest on the actual data.
    return f"replaceRegexpOne(toString({e}), 'e([0-9])', 'e+\\\\1')"


# One typed JSONExtract per input line: ClickHouse parses each line once and fills these
# (named tuples are matched by key; absent keys give NULL / defaults; "357" -> Int64 works).
_SCALAR = ("stringValue Nullable(String), intValue Nullable(Int64), boolValue Nullable(Bool), "
           "doubleValue Nullable(Float64), bytesValue Nullable(String)")
_VALUE = f"Tuple({_SCALAR}, arrayValue Tuple(values Array(Tuple({_SCALAR}))))"
_ATTRS = f"Array(Tuple(key String, value {_VALUE}))"
_SPAN = ("Tuple(traceId String, spanId String, parentSpanId String, traceState String, name String, kind Int32, "
         f"startTimeUnixNano UInt64, endTimeUnixNano UInt64, attributes {_ATTRS}, "
         f"events Array(Tuple(timeUnixNano UInt64, name String, attributes {_ATTRS})), "
         f"links Array(Tuple(traceId String, spanId String, traceState String, attributes {_ATTRS})), "
         "status Tuple(message String, code Int32))")
_LINE = (f"Tuple(resourceSpans Array(Tuple(resource Tuple(attributes {_ATTRS}), "
         f"scopeSpans Array(Tuple(scope Tuple(name String, version String), spans Array({_SPAN}))))))")


def _te(t: str, name: str) -> str:
    return f"tupleElement({t}, '{name}')"


def _scalar_text(v: str) -> str:
    """AsString() of a scalar value tuple (None when it is not a scalar)."""
    sv, iv, bv, dv, yv = (_te(v, n) for n in ("stringValue", "intValue", "boolValue", "doubleValue", "bytesValue"))
    return (f"multiIf(isNotNull({sv}), assumeNotNull({sv}), isNotNull({iv}), toString(assumeNotNull({iv})), "
            f"isNotNull({bv}), if(assumeNotNull({bv}), 'true', 'false'), "
            f"isNotNull({dv}), {_go_float(f'assumeNotNull({dv})')}, isNotNull({yv}), assumeNotNull({yv}), NULL)")


def _scalar_json(v: str) -> str:
    """Go JSON of AsRaw() of an array element."""
    sv, iv, bv, dv = (_te(v, n) for n in ("stringValue", "intValue", "boolValue", "doubleValue"))
    return (f"multiIf(isNotNull({sv}), {_go_string(f'assumeNotNull({sv})')}, "
            f"isNotNull({iv}), toString(assumeNotNull({iv})), isNotNull({bv}), if(assumeNotNull({bv}), 'true', 'false'), "
            f"isNotNull({dv}), {_go_float(f'assumeNotNull({dv})')}, 'null')")


def _as_string(v: str) -> str:
    """pcommon.Value.AsString() of a typed value tuple `v`."""
    arr = _te(_te(v, "arrayValue"), "values")
    return (f"ifNull({_scalar_text(v)}, if(notEmpty({arr}), "
            f"concat('[', arrayStringConcat(arrayMap(av -> {_scalar_json('av')}, {arr}), ','), ']'), ''))")


def _attrs(a: str) -> str:
    """Map(key -> AsString(value)) of a typed attributes array."""
    return f"mapFromArrays(arrayMap(kv -> kv.1, {a}), arrayMap(kv -> {_as_string('kv.2')}, {a}))"


def _hex(e: str) -> str:
    return f"if(trim(BOTH '0' FROM {e}) = '', '', lower({e}))"


def transform_sql(path: str, database: str, table: str, mapper: load.Mapper) -> str:
    """INSERT ... SELECT that maps an OTLP/JSON Lines file to rows inside the engine."""
    if mapper.json:
        raise SystemExit("gen_bench.py --mode sql supports the Map variants; use --mode python for json")
    ra = "tupleElement(tupleElement(r, 'resource'), 'attributes')"
    # pcommon.Map.Get("service.name"): the first such key; "" when absent.
    svc_vals = f"arrayMap(kv -> kv.2, arrayFilter(kv -> kv.1 = 'service.name', {ra}))"
    if mapper.service_as_string:
        service = f"if(empty({svc_vals}), '', {_as_string(f'{svc_vals}[1]')})"
    else:
        service = f"if(empty({svc_vals}), '', ifNull(tupleElement({svc_vals}[1], 'stringValue'), ''))"
    dur = ("CAST(toInt64(sp.endTimeUnixNano) - toInt64(sp.startTimeUnixNano) AS UInt64)" if not mapper.signed_duration
           else "toInt64(sp.endTimeUnixNano) - toInt64(sp.startTimeUnixNano)")
    span_attrs = _attrs("sp.attributes")
    if mapper.scope_in_attributes:
        span_attrs = (f"mapUpdate({span_attrs}, mapFilter((k, v) -> v != '', "
                      f"map('otel.scope.name', ss.1, 'otel.scope.version', ss.2)))")
    kind_keys = "[" + ", ".join(str(k) for k in mapper.kinds) + "]"
    kind_vals = "[" + ", ".join(quote_string(v) for v in mapper.kinds.values()) + "]"
    st_keys = "[" + ", ".join(str(k) for k in mapper.statuses) + "]"
    st_vals = "[" + ", ".join(quote_string(v) for v in mapper.statuses.values()) + "]"
    exprs = {
        "Timestamp": "fromUnixTimestamp64Nano(toInt64(sp.startTimeUnixNano), 'UTC')",
        "TraceId": _hex("sp.traceId"),
        "SpanId": _hex("sp.spanId"),
        "ParentSpanId": _hex("sp.parentSpanId"),
        "TraceState": "sp.traceState",
        "SpanName": "sp.name",
        "SpanKind": f"transform(sp.kind, {kind_keys}, {kind_vals}, '')",
        "ServiceName": "rs.2",
        "ResourceAttributes": "rs.1",
        "ScopeName": "ss.1",
        "ScopeVersion": "ss.2",
        "SpanAttributes": span_attrs,
        "Duration": dur,
        "StatusCode": f"transform(sp.status.code, {st_keys}, {st_vals}, '')",
        "StatusMessage": "sp.status.message",
        "Events.Timestamp": "arrayMap(e -> fromUnixTimestamp64Nano(toInt64(e.timeUnixNano), 'UTC'), sp.events)",
        "Events.Name": "arrayMap(e -> e.name, sp.events)",
        "Events.Attributes": f"arrayMap(e -> {_attrs('e.attributes')}, sp.events)",
        "Links.TraceId": f"arrayMap(l -> {_hex('l.traceId')}, sp.links)",
        "Links.SpanId": f"arrayMap(l -> {_hex('l.spanId')}, sp.links)",
        "Links.TraceState": "arrayMap(l -> l.traceState, sp.links)",
        "Links.Attributes": f"arrayMap(l -> {_attrs('l.attributes')}, sp.links)",
    }
    cols = mapper.columns
    select = ",\n    ".join(exprs[c] for c in cols)
    return f"""INSERT INTO {quote_ident(database)}.{quote_ident(table)} ({", ".join(quote_ident(c) for c in cols)})
SELECT
    {select}
FROM (
    SELECT tupleElement(JSONExtract(json, {quote_string(_LINE)}), 'resourceSpans') AS rss
    FROM file({quote_string(path)}, 'JSONAsString', 'json String')
)
ARRAY JOIN arrayMap(r -> ({_attrs(ra)}, {service}, tupleElement(r, 'scopeSpans')), rss) AS rs
ARRAY JOIN arrayMap(s -> (tupleElement(tupleElement(s, 'scope'), 'name'), tupleElement(tupleElement(s, 'scope'), 'version'),
                          tupleElement(s, 'spans')), rs.3) AS ss
ARRAY JOIN ss.3 AS sp
SETTINGS output_format_json_escape_forward_slashes = 0, session_timezone = 'UTC'
"""


# ---------------------------------------------------------------------------------------------


def ensure_generator() -> str:
    if not os.path.exists(GENERATOR):
        print("[bench] building the generator: cargo build --release --example gen_collector_otlp", file=sys.stderr)
        subprocess.run(["cargo", "build", "--release", "--example", "gen_collector_otlp"], cwd=REPO, check=True)
    return GENERATOR


def generate(out: str, size: int, seed: int) -> dict:
    stamp = out + ".gen.json"
    want = {"size": size, "seed": seed}
    if os.path.exists(out) and os.path.exists(stamp):
        with open(stamp) as f:
            have = json.load(f)
        if {k: have.get(k) for k in want} == want:
            print(f"[bench] reusing {out} ({os.path.getsize(out):,} bytes)", file=sys.stderr)
            return have
    gen = ensure_generator()
    t0 = time.monotonic()
    p = subprocess.run([gen, "--size", str(size), "--seed", str(seed), "--out", out],
                       check=True, capture_output=True, text=True)
    info = dict(want, seconds=round(time.monotonic() - t0, 1), bytes=os.path.getsize(out),
                summary=((p.stderr.strip() or p.stdout.strip()).splitlines() or [""])[-1])
    with open(stamp, "w") as f:
        json.dump(info, f)
    print(f"[bench] generated {out}: {info['bytes']:,} bytes in {info['seconds']}s\n        {info['summary']}",
          file=sys.stderr)
    return info


def head_spans(src: str, dst: str, spans: int) -> int:
    """Copy whole lines of src to dst until at least `spans` spans."""
    n = 0
    with open(src, "rb") as f, open(dst, "wb") as g:
        for line in f:
            g.write(line)
            n += line.count(b'"startTimeUnixNano"')
            if n >= spans:
                break
    return n


def table_stats(client: HttpClient, database: str, table: str) -> dict:
    row = client.execute(
        "SELECT sum(rows), sum(data_compressed_bytes), sum(data_uncompressed_bytes), sum(bytes_on_disk), count() "
        "FROM system.parts WHERE active AND database = {db:String} AND table = {t:String} FORMAT TabSeparated",
        params={"db": database, "t": table}).decode().split()
    rows, comp, uncomp, disk, parts = (int(x) for x in row)
    return {"rows": rows, "compressed_bytes": comp, "uncompressed_bytes": uncomp, "bytes_on_disk": disk, "parts": parts}


def verify(client: HttpClient, path: str, variant: str, database: str, n_spans: int, index: str) -> None:
    sample = path + f".head{n_spans}.jsonl"
    got = head_spans(path, sample, n_spans)
    mapper = load.Mapper(variant)
    for t in ("verify_sql", "verify_py"):
        for s in schema.drop(database, t) + schema.render(variant, database, t, index=index):
            client.execute(s)
    client.execute(transform_sql(sample, database, "verify_sql", mapper))
    load.load(client, [sample], mapper, database, "verify_py", log=open(os.devnull, "w"))
    cols = ", ".join(quote_ident(c) for c in mapper.columns)
    db = quote_ident(database)
    diffs = []
    for a, b in (("verify_sql", "verify_py"), ("verify_py", "verify_sql")):
        n = client.scalar(f"SELECT count() FROM (SELECT {cols} FROM {db}.{quote_ident(a)} "
                          f"EXCEPT SELECT {cols} FROM {db}.{quote_ident(b)})")
        diffs.append(int(n))
    counts = [client.scalar(f"SELECT count() FROM {db}.{quote_ident(t)}") for t in ("verify_sql", "verify_py")]
    for t in ("verify_sql", "verify_py"):
        for s in schema.drop(database, t):
            client.execute(s)
    os.unlink(sample)
    ok = diffs == [0, 0] and counts[0] == counts[1]
    print(f"[bench] verify on the first {got} spans: SQL mapping rows {counts[0]}, load.py rows {counts[1]}, "
          f"rows only in SQL {diffs[0]}, only in load.py {diffs[1]}: {'IDENTICAL' if ok else 'DIFFERENT'}",
          file=sys.stderr)
    if not ok:
        raise SystemExit("gen_bench.py: the SQL mapping differs from load.py on this data; use --mode python")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default=os.environ.get("ABORTAUDIT_CH_URL", "http://127.0.0.1:8123"))
    ap.add_argument("--user", default=os.environ.get("ABORTAUDIT_CH_USER", "default"))
    ap.add_argument("--password", default=os.environ.get("ABORTAUDIT_CH_PASSWORD", ""))
    ap.add_argument("--spans", type=int, default=10_000_000, help="approximate number of spans (default 10M)")
    ap.add_argument("--size", help="generator --size instead of --spans (e.g. 3GB)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", default="/tmp/abortaudit-ch-bench.jsonl", help="generated OTLP file (outside the repo)")
    ap.add_argument("--variant", default="current", choices=list(schema.VARIANTS))
    ap.add_argument("--index", choices=("text", "bloom"), default="text")
    ap.add_argument("--database", default="bench")
    ap.add_argument("--table", default="otel_traces")
    ap.add_argument("--mode", choices=("sql", "python"), default="sql")
    ap.add_argument("--verify", action="store_true", help="prove the SQL mapping equals load.py's on a sample first")
    ap.add_argument("--verify-spans", type=int, default=100_000)
    ap.add_argument("--max-threads", type=int, default=0, help="max_threads for the load (0 = engine default)")
    ap.add_argument("--delete-input", action="store_true", help="delete the generated file after loading")
    ap.add_argument("--report", help="write the measurements as JSON here")
    args = ap.parse_args()

    size = args.size or str(args.spans * BYTES_PER_SPAN)
    gen = generate(args.out, size, args.seed)
    client = HttpClient(args.url, args.user, args.password, timeout=24 * 3600)
    if args.verify and args.mode == "sql":
        verify(client, args.out, args.variant, args.database, args.verify_spans, args.index)

    for s in schema.drop(args.database, args.table) + schema.render(args.variant, args.database, args.table,
                                                                     index=args.index):
        client.execute(s)
    mapper = load.Mapper(args.variant)
    t0 = time.monotonic()
    if args.mode == "sql":
        settings = {"max_threads": str(args.max_threads)} if args.max_threads else {}
        client.execute(transform_sql(os.path.abspath(args.out), args.database, args.table, mapper), settings=settings)
    else:
        load.load(client, [args.out], mapper, args.database, args.table, batch_rows=50_000)
    seconds = time.monotonic() - t0
    stats = table_stats(client, args.database, args.table)
    ts = table_stats(client, args.database, args.table + "_trace_id_ts")
    report = {
        "mode": args.mode, "variant": args.variant, "index": args.index, "input_bytes": gen.get("bytes"),
        "generate_seconds": gen.get("seconds"), "load_seconds": round(seconds, 1),
        "spans_per_second": round(stats["rows"] / seconds) if seconds else None,
        "table": stats, "trace_id_ts": ts,
    }
    mb = 1e6
    print(f"[bench] {args.mode} load of {gen.get('bytes', 0) / mb:,.0f} MB OTLP JSON: {stats['rows']:,} rows in "
          f"{seconds:.1f}s ({report['spans_per_second']:,} spans/s); {args.database}.{args.table}: "
          f"{stats['bytes_on_disk'] / mb:,.1f} MB on disk ({stats['compressed_bytes'] / mb:,.1f} MB compressed, "
          f"{stats['uncompressed_bytes'] / mb:,.1f} MB uncompressed, {stats['parts']} parts); "
          f"_trace_id_ts: {ts['rows']:,} rows, {ts['bytes_on_disk'] / mb:,.1f} MB", file=sys.stderr)
    if args.report:
        with open(args.report, "w") as f:
            json.dump(report, f, indent=2)
    if args.delete_input:
        os.unlink(args.out)
    print(json.dumps(report))


if __name__ == "__main__":
    main()

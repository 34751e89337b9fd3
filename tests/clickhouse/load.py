#!/usr/bin/env python3
"""Load OTLP/JSON trace files into an ``otel_traces`` table the way the Collector's
``clickhouseexporter`` would have written them, through the ClickHouse HTTP interface
(server.py, or a real ClickHouse).

    python3 load.py --url http://127.0.0.1:PORT [--variant current] [--database otel]
                    [--table otel_traces] [--create] PATH...

PATH is a file or a directory (every *.jsonl / *.json in it, sorted). Each line of a
file is one OTLP/JSON ``ExportTraceServiceRequest`` / ``TracesData``
(``{"resourceSpans": [...]}``), as the Collector's file exporter and
fixtures/scenarios/traces/*.jsonl have it; a file holding one pretty-printed object
also works. Default PATH: the repository's fixtures/scenarios/traces.

The mapping follows the exporter's Go code (pushTraceData in exporter_traces.go /
exporter_traces_json.go, internal.AttributesToMap, pdata's Value.AsString):

* Timestamp = span start (DateTime64(9), sent as a UTC 'YYYY-MM-DD hh:mm:ss.nnnnnnnnn'
  string with session_timezone=UTC); Events.Timestamp likewise.
* Duration = end - start in ns: uint64 subtraction that wraps for end < start
  (span.EndTimestamp() - span.StartTimestamp(), 2024+ exporters, UInt64 column), or
  Go's time.Sub (signed, saturating) for the legacy Int64 column.
* TraceId/SpanId/ParentSpanId/Links.* ids: lower-case hex, "" when absent or all zero.
* SpanKind / StatusCode: "Server", "Error", ... (ptrace .String(), modern variants) or
  "SPAN_KIND_SERVER", "STATUS_CODE_ERROR", ... (traceutil.SpanKindStr, legacy variants);
  --enums overrides the variant's spelling.
* ServiceName: resource attribute service.name (AsString(); legacy: Str(), "" unless a string).
* Map columns: every attribute value through pcommon.Value.AsString():
  string as is; int -> decimal; bool -> "true"/"false"; double -> Go's float64AsString
  (shortest repr, plain decimal for 1e-6 <= |x| < 1e21 else "1e+21" / "1e-7" style);
  bytes -> base64; array / kvlist -> Go encoding/json of AsRaw() (compact, map keys
  sorted, <>& escaped as \\u003c \\u003e \\u0026); empty -> "".
  Duplicate keys: the last value wins, at the first key's position.
* JSON variant: the columns get json.Marshal(attrs.AsRaw()) (typed values, keys sorted).
* legacy2022: the scope name/version go into SpanAttributes as otel.scope.name /
  otel.scope.version (no ScopeName/ScopeVersion columns).
"""

from __future__ import annotations

import argparse
import base64
import glob
import json
import math
import os
import re
import sys
import time
from decimal import Decimal
from typing import Iterable, Iterator, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from chsql import HttpClient, quote_ident  # noqa: E402
import schema  # noqa: E402

REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
DEFAULT_FIXTURES = os.path.join(REPO, "fixtures", "scenarios", "traces")

KIND_MODERN = {0: "Unspecified", 1: "Internal", 2: "Server", 3: "Client", 4: "Producer", 5: "Consumer"}
KIND_LEGACY = {0: "SPAN_KIND_UNSPECIFIED", 1: "SPAN_KIND_INTERNAL", 2: "SPAN_KIND_SERVER",
               3: "SPAN_KIND_CLIENT", 4: "SPAN_KIND_PRODUCER", 5: "SPAN_KIND_CONSUMER"}
KIND_BY_NAME = {v: k for k, v in KIND_LEGACY.items()}
STATUS_MODERN = {0: "Unset", 1: "Ok", 2: "Error"}
STATUS_LEGACY = {0: "STATUS_CODE_UNSET", 1: "STATUS_CODE_OK", 2: "STATUS_CODE_ERROR"}
STATUS_BY_NAME = {v: k for k, v in STATUS_LEGACY.items()}

U64 = 1 << 64
I64_MAX = (1 << 63) - 1
I64_MIN = -(1 << 63)

# ---------------------------------------------------------------------------------------------
# Go encoding/json and strconv, as pdata uses them


def go_float(f: float) -> str:
    """pcommon's float64AsString (ES6-style number, as Go's encoding/json)."""
    if math.isnan(f) or math.isinf(f):
        g = "NaN" if math.isnan(f) else ("+Inf" if f > 0 else "-Inf")
        return f"json: unsupported value: {g}"
    return _go_json_float(f)


def _go_json_float(f: float) -> str:
    if f == 0:
        return "-0" if math.copysign(1.0, f) < 0 else "0"
    a = abs(f)
    r = repr(f)
    if a < 1e-6 or a >= 1e21:
        mant, _, exp = r.partition("e")
        if not exp:  # cannot happen for these magnitudes, but be safe
            mant, _, exp = f"{f:.16e}".partition("e")
        sign, digits = exp[0], exp[1:].lstrip("0") or "0"
        if len(digits) < 2:
            digits = "0" + digits
        if sign == "-" and digits[0] == "0":  # Go's clean-up: e-07 -> e-7
            digits = digits[1:]
        return f"{mant}e{sign}{digits}"
    s = format(Decimal(r), "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s


_HTML_ESC = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_HTML_RE = re.compile("[<>&\u2028\u2029]")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def go_string(s: str) -> str:
    if _SURROGATE_RE.search(s):
        s = _SURROGATE_RE.sub("\ufffd", s)
    out = json.dumps(s, ensure_ascii=False)
    if _HTML_RE.search(out):
        out = _HTML_RE.sub(lambda m: _HTML_ESC[m.group(0)], out)
    return out


class UnsupportedValue(ValueError):
    pass


def go_json(x) -> str:
    """encoding/json.Marshal of a pdata AsRaw() value."""
    if x is None:
        return "null"
    if x is True:
        return "true"
    if x is False:
        return "false"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if math.isnan(x) or math.isinf(x):
            raise UnsupportedValue(repr(x))
        return _go_json_float(x)
    if isinstance(x, str):
        return go_string(x)
    if isinstance(x, bytes):
        return '"' + base64.b64encode(x).decode() + '"'
    if isinstance(x, list):
        return "[" + ",".join(go_json(v) for v in x) + "]"
    if isinstance(x, dict):
        return "{" + ",".join(go_string(k) + ":" + go_json(x[k]) for k in sorted(x)) + "}"
    raise TypeError(type(x))


# ---------------------------------------------------------------------------------------------
# OTLP/JSON AnyValue


def as_raw(v: Optional[dict]):
    """pcommon.Value.AsRaw() of an OTLP/JSON AnyValue."""
    if not v:
        return None
    if "stringValue" in v:
        return v["stringValue"]
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "arrayValue" in v:
        return [as_raw(x) for x in (v["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in v:
        m = {}
        for kv in (v["kvlistValue"] or {}).get("values", []):
            m[kv.get("key", "")] = as_raw(kv.get("value"))
        return m
    if "bytesValue" in v:
        return base64.b64decode(v["bytesValue"] or "")
    return None


def as_string(v: Optional[dict]) -> str:
    """pcommon.Value.AsString() of an OTLP/JSON AnyValue."""
    if not v:
        return ""
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        return str(int(v["intValue"]))
    if "boolValue" in v:
        return "true" if v["boolValue"] else "false"
    if "doubleValue" in v:
        return go_float(float(v["doubleValue"]))
    if "arrayValue" in v or "kvlistValue" in v:
        try:
            return go_json(as_raw(v))
        except UnsupportedValue:
            return ""  # json.Marshal failed; AsString ignores the error -> ""
    if "bytesValue" in v:
        return base64.b64encode(base64.b64decode(v["bytesValue"] or "")).decode()
    return ""


def attrs_map(attrs: Optional[list]) -> dict:
    """internal.AttributesToMap: key -> AsString(value), in order, last duplicate wins."""
    m = {}
    for kv in attrs or ():
        m[kv.get("key", "")] = as_string(kv.get("value"))
    return m


def attrs_json(attrs: Optional[list]) -> str:
    """json.Marshal(attrs.AsRaw()) (JSON variant)."""
    m = {}
    for kv in attrs or ():
        m[kv.get("key", "")] = as_raw(kv.get("value"))
    try:
        return go_json(m)
    except UnsupportedValue as e:
        # The exporter's json.Marshal fails too: it returns an error and the whole batch
        # is not inserted.
        raise SystemExit(f"load.py: attribute value {e} (NaN/Inf) cannot be marshalled to JSON; "
                         "the JSON exporter rejects such a batch") from None


# ---------------------------------------------------------------------------------------------
# Spans -> rows

_ts_cache: dict = {}


def ts_text(ns) -> str:
    ns = int(ns or 0)
    sec, frac = divmod(ns, 1_000_000_000)
    base = _ts_cache.get(sec)
    if base is None:
        base = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(sec))
        if len(_ts_cache) > 100_000:
            _ts_cache.clear()
        _ts_cache[sec] = base
    return f"{base}.{frac:09d}"


def hex_id(v: Optional[str]) -> str:
    if not v:
        return ""
    h = v.lower()
    if h.strip("0") == "":
        return ""
    return h


def _enum(v, by_name: dict) -> int:
    if v is None:
        return 0
    if isinstance(v, str) and not v.lstrip("-").isdigit():
        return by_name.get(v, -1)
    return int(v)


class Mapper:
    def __init__(self, variant: str = "current", enums: Optional[str] = None,
                 scope_in_attributes: Optional[bool] = None):
        facts = schema.VARIANTS[variant]
        self.variant = variant
        self.json = facts["json"]
        self.enums = enums or facts["enums"]
        self.kinds = KIND_MODERN if self.enums == "modern" else KIND_LEGACY
        self.statuses = STATUS_MODERN if self.enums == "modern" else STATUS_LEGACY
        self.scope_columns = facts["scope_columns"]
        self.scope_in_attributes = facts["scope_in_attributes"] if scope_in_attributes is None else scope_in_attributes
        self.signed_duration = facts["duration"] == "Int64"
        self.service_as_string = facts["service_name"] == "AsString"
        cols = ["Timestamp", "TraceId", "SpanId", "ParentSpanId", "TraceState", "SpanName", "SpanKind",
                "ServiceName", "ResourceAttributes"]
        if self.scope_columns:
            cols += ["ScopeName", "ScopeVersion"]
        cols += ["SpanAttributes", "Duration", "StatusCode", "StatusMessage", "Events.Timestamp", "Events.Name",
                 "Events.Attributes", "Links.TraceId", "Links.SpanId", "Links.TraceState", "Links.Attributes"]
        self.columns = cols
        self._keys = [json.dumps(c) + ":" for c in cols]

    def service_name(self, res_attrs: list) -> str:
        for kv in res_attrs or ():
            if kv.get("key") == "service.name":  # pcommon.Map.Get: the first match
                v = kv.get("value") or {}
                if self.service_as_string:
                    return as_string(v)
                return v.get("stringValue", "") if "stringValue" in v else ""
        return ""

    def duration(self, start: int, end: int):
        d = end - start
        if self.signed_duration:
            return max(I64_MIN, min(I64_MAX, d))
        return d % U64

    def rows(self, request: dict) -> Iterator[str]:
        """JSONEachRow lines for one ExportTraceServiceRequest / TracesData."""
        dumps = json.dumps
        for rs in request.get("resourceSpans") or ():
            res_attrs = ((rs.get("resource") or {}).get("attributes")) or []
            service = dumps(self.service_name(res_attrs), ensure_ascii=False)
            res_col = attrs_json(res_attrs) if self.json else dumps(attrs_map(res_attrs), ensure_ascii=False)
            for ss in rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or ():
                scope = ss.get("scope") or ss.get("instrumentationLibrary") or {}
                scope_name = scope.get("name", "") or ""
                scope_version = scope.get("version", "") or ""
                scope_cols = [dumps(scope_name, ensure_ascii=False), dumps(scope_version, ensure_ascii=False)]
                for sp in ss.get("spans") or ():
                    start = int(sp.get("startTimeUnixNano") or 0)
                    end = int(sp.get("endTimeUnixNano") or 0)
                    status = sp.get("status") or {}
                    if self.json:
                        span_col = attrs_json(sp.get("attributes"))
                    else:
                        sa = attrs_map(sp.get("attributes"))
                        if self.scope_in_attributes:
                            if scope_name:
                                sa["otel.scope.name"] = scope_name
                            if scope_version:
                                sa["otel.scope.version"] = scope_version
                        span_col = dumps(sa, ensure_ascii=False)
                    events = sp.get("events") or ()
                    links = sp.get("links") or ()
                    if self.json:
                        ev_attrs = "[" + ",".join(attrs_json(e.get("attributes")) for e in events) + "]"
                        ln_attrs = "[" + ",".join(attrs_json(lk.get("attributes")) for lk in links) + "]"
                    else:
                        ev_attrs = dumps([attrs_map(e.get("attributes")) for e in events], ensure_ascii=False)
                        ln_attrs = dumps([attrs_map(lk.get("attributes")) for lk in links], ensure_ascii=False)
                    vals = [
                        '"' + ts_text(start) + '"',
                        '"' + hex_id(sp.get("traceId")) + '"',
                        '"' + hex_id(sp.get("spanId")) + '"',
                        '"' + hex_id(sp.get("parentSpanId")) + '"',
                        dumps(sp.get("traceState", "") or "", ensure_ascii=False),
                        dumps(sp.get("name", "") or "", ensure_ascii=False),
                        '"' + self.kinds.get(_enum(sp.get("kind"), KIND_BY_NAME), "") + '"',
                        service,
                        res_col,
                    ]
                    if self.scope_columns:
                        vals += scope_cols
                    vals += [
                        span_col,
                        str(self.duration(start, end)),
                        '"' + self.statuses.get(_enum(status.get("code"), STATUS_BY_NAME), "") + '"',
                        dumps(status.get("message", "") or "", ensure_ascii=False),
                        dumps([ts_text(e.get("timeUnixNano")) for e in events]),
                        dumps([e.get("name", "") or "" for e in events], ensure_ascii=False),
                        ev_attrs,
                        dumps([hex_id(lk.get("traceId")) for lk in links]),
                        dumps([hex_id(lk.get("spanId")) for lk in links]),
                        dumps([lk.get("traceState", "") or "" for lk in links], ensure_ascii=False),
                        ln_attrs,
                    ]
                    yield "{" + ",".join(k + v for k, v in zip(self._keys, vals)) + "}"


# ---------------------------------------------------------------------------------------------
# Files


def input_files(paths: Iterable[str]) -> list[str]:
    out = []
    for p in paths:
        if os.path.isdir(p):
            found = sorted(glob.glob(os.path.join(p, "*.jsonl")) + glob.glob(os.path.join(p, "*.json")))
            out += [f for f in found if not f.endswith(".truth.json")]
        elif os.path.exists(p):
            out.append(p)
        else:
            raise SystemExit(f"load.py: no such file or directory: {p}")
    return out


def requests_in(path: str) -> Iterator[dict]:
    with open(path, "rb") as f:
        head = f.read(1 << 16)
        f.seek(0)
        text_head = head.lstrip()
        # A single (possibly pretty-printed) object vs JSON Lines.
        if text_head.startswith(b"{") and b"\n" in head and not head.split(b"\n", 1)[0].rstrip().endswith(b"}"):
            yield json.load(f)
            return
        for line in f:
            line = line.strip()
            if line:
                yield json.loads(line)


def insert_sql(database: str, table: str, columns: list[str]) -> str:
    cols = ", ".join(quote_ident(c) for c in columns)
    return f"INSERT INTO {quote_ident(database)}.{quote_ident(table)} ({cols}) FORMAT JSONEachRow"


def load(client: HttpClient, paths: list[str], mapper: Mapper, database: str, table: str,
         batch_rows: int = 20000, log=sys.stderr) -> dict:
    sql = insert_sql(database, table, mapper.columns)
    settings = {"session_timezone": "UTC"}
    total = 0
    batch: list[str] = []
    t0 = time.monotonic()

    def flush():
        nonlocal batch
        if batch:
            client.execute(sql, settings=settings, body=("\n".join(batch) + "\n").encode())
            batch = []

    for path in paths:
        n = 0
        for req in requests_in(path):
            for line in mapper.rows(req):
                batch.append(line)
                n += 1
                if len(batch) >= batch_rows:
                    flush()
        flush()
        total += n
        print(f"[load] {path}: {n} spans", file=log)
    return {"rows": total, "seconds": time.monotonic() - t0}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="*", default=[DEFAULT_FIXTURES])
    ap.add_argument("--url", default=os.environ.get("ABORTAUDIT_CH_URL", "http://127.0.0.1:8123"))
    ap.add_argument("--user", default=os.environ.get("ABORTAUDIT_CH_USER", "default"))
    ap.add_argument("--password", default=os.environ.get("ABORTAUDIT_CH_PASSWORD", ""))
    ap.add_argument("--database", default="otel")
    ap.add_argument("--table", default="otel_traces")
    ap.add_argument("--variant", default="current", choices=list(schema.VARIANTS))
    ap.add_argument("--enums", choices=("modern", "legacy"), help="override the variant's SpanKind/StatusCode spelling")
    ap.add_argument("--scope-in-attributes", action=argparse.BooleanOptionalAction, default=None,
                    help="put otel.scope.name/version into SpanAttributes (default: only for legacy2022)")
    ap.add_argument("--create", action="store_true", help="create the schema of --variant first (schema.py)")
    ap.add_argument("--drop", action="store_true", help="with --create: drop the tables first")
    ap.add_argument("--index", choices=("text", "bloom"), default="text")
    ap.add_argument("--batch-rows", type=int, default=20000)
    ap.add_argument("--print", action="store_true", help="print the JSONEachRow lines instead of inserting")
    args = ap.parse_args()

    mapper = Mapper(args.variant, args.enums, args.scope_in_attributes)
    files = input_files(args.paths)
    if args.print:
        for path in files:
            for req in requests_in(path):
                for line in mapper.rows(req):
                    sys.stdout.write(line + "\n")
        return
    client = HttpClient(args.url, args.user, args.password)
    if args.create:
        stmts = (schema.drop(args.database, args.table) if args.drop else []) + schema.render(
            args.variant, args.database, args.table, index=args.index)
        for s in stmts:
            client.execute(s)
    res = load(client, files, mapper, args.database, args.table, args.batch_rows)
    count = client.scalar(f"SELECT count() FROM {quote_ident(args.database)}.{quote_ident(args.table)}")
    print(f"[load] {res['rows']} spans from {len(files)} file(s) in {res['seconds']:.2f}s "
          f"({args.variant}, enums {mapper.enums}); {args.database}.{args.table} now has {count} rows", file=sys.stderr)


if __name__ == "__main__":
    main()

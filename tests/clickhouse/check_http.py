#!/usr/bin/env python3
"""Checks of server.py's HTTP behaviour, one assertion per line of output.

    python3 check_http.py --url http://127.0.0.1:PORT [--user U --password P]

Needs a running server.py (start.sh) whose exception style is "tagged" (the default).
It creates and drops the database `check_http`. Ends with "N passed, N failed" and
exits non-zero if anything failed. The expectations are the ones a client of real
ClickHouse (25.11+) relies on; README.md lists where server.py differs.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import http.client
import json
import os
import re
import socket
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chsql import HttpClient  # noqa: E402

PASSED, FAILED = [], []


def check(name: str, cond: bool, detail: str = ""):
    (PASSED if cond else FAILED).append(name)
    print(("ok   " if cond else "FAIL ") + name + ("" if cond or not detail else f"  -- {detail}"))


class Raw:
    """One HTTP/1.1 request over a raw socket; returns status, headers, the raw
    (still chunk-encoded) body bytes and whether the chunked body ended properly."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port

    def request(self, method: str, target: str, headers: dict, body: bytes = b""):
        s = socket.create_connection((self.host, self.port), timeout=60)
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host}:{self.port}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body:
            lines.append(f"Content-Length: {len(body)}")
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        data = b""
        while True:
            try:
                piece = s.recv(1 << 16)
            except ConnectionResetError:
                break
            if not piece:
                break
            data += piece
        s.close()
        head, _, rest = data.partition(b"\r\n\r\n")
        status_line, *hlines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split()[1])
        hdrs = {}
        for h in hlines:
            k, _, v = h.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        payload, complete = rest, True
        if "chunked" in hdrs.get("transfer-encoding", ""):
            payload, complete = dechunk(rest)
        return status, hdrs, payload, complete


def dechunk(raw: bytes):
    out, i = b"", 0
    while True:
        j = raw.find(b"\r\n", i)
        if j < 0:
            return out, False
        size = int(raw[i:j].split(b";")[0] or b"0", 16)
        if size == 0:
            return out, True
        if j + 2 + size > len(raw):
            return out + raw[j + 2:], False
        out += raw[j + 2:j + 2 + size]
        i = j + 2 + size + 2


def parse_tagged(body: bytes, tag: str):
    """Split a body into (data, exception message) per ClickHouse 25.11+ framing."""
    marker = b"\r\n__exception__\r\n" + tag.encode() + b"\r\n"
    at = body.rfind(marker)
    if at < 0:
        return body, None
    frame = body[at + len(marker):]
    close = (" " + tag + "\r\n__exception__\r\n").encode()
    if not frame.endswith(close):
        return body, None
    head = frame[: -len(close)]
    msg, _, length = head.rpartition(b"\n")
    ok = length.isdigit() and int(length) == len(msg) + 1  # counts the message and its "\n"
    return body[:at], (msg.decode() if ok else None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--user", default=os.environ.get("ABORTAUDIT_CH_USER", "default"))
    ap.add_argument("--password", default=os.environ.get("ABORTAUDIT_CH_PASSWORD", ""))
    args = ap.parse_args()
    u = urllib.parse.urlsplit(args.url)
    host, port = u.hostname, u.port
    auth = {"X-ClickHouse-User": args.user, **({"X-ClickHouse-Key": args.password} if args.password else {})}
    raw = Raw(host, port)
    ch = HttpClient(args.url, args.user, args.password)

    def get(qs: dict, headers=None, method="GET", body=b""):
        return raw.request(method, "/?" + urllib.parse.urlencode(qs), {**auth, **(headers or {})}, body)

    def post(sql: str, qs=None, headers=None):
        return raw.request("POST", "/?" + urllib.parse.urlencode(qs or {}), {**auth, **(headers or {})}, sql.encode())

    # --- basics
    st, h, b, _ = raw.request("GET", "/ping", {})
    check("GET /ping -> 200 Ok.", st == 200 and b == b"Ok.\n", repr(b))
    st, h, b, _ = raw.request("GET", "/", {})
    check("GET / without query -> Ok.", st == 200 and b == b"Ok.\n")
    st, h, b, _ = get({"query": "SELECT 1"})
    check("GET ?query=SELECT 1 -> 1", st == 200 and b == b"1\n", repr(b))
    check("X-ClickHouse-Format: TabSeparated by default", h.get("x-clickhouse-format") == "TabSeparated")
    check("X-ClickHouse-Query-Id present", bool(h.get("x-clickhouse-query-id")))
    check("X-ClickHouse-Exception-Tag: 16 lower-case alnum", re.fullmatch(r"[a-z0-9]{16}", h.get("x-clickhouse-exception-tag", "")) is not None)
    check("X-ClickHouse-Summary is JSON", isinstance(json.loads(h.get("x-clickhouse-summary", "null")), dict))
    st, h, b, _ = post("SELECT 1 + 1")
    check("POST body query", st == 200 and b == b"2\n")
    st, h, b, _ = raw.request("POST", "/?" + urllib.parse.urlencode({"query": "SELECT 1,"}), auth, b"2")
    check("query = ?query + '\\n' + body", st == 200 and b == b"1\t2\n", repr(b))
    st, h, b, _ = get({"query": "SELECT 1 AS x", "query_id": "my-query-id"})
    check("query_id echoed in X-ClickHouse-Query-Id", h.get("x-clickhouse-query-id") == "my-query-id")

    # --- formats
    st, h, b, _ = get({"query": "SELECT number AS n FROM numbers(2)", "default_format": "JSONEachRow"})
    check("default_format=JSONEachRow", b == b'{"n":0}\n{"n":1}\n' and h.get("x-clickhouse-format") == "JSONEachRow", repr(b))
    st, h, b, _ = get({"query": "SELECT 1 AS n"}, {"X-ClickHouse-Format": "JSONCompactEachRow"})
    check("X-ClickHouse-Format request header = default format", b == b"[1]\n", repr(b))
    st, h, b, _ = get({"query": "SELECT 1 AS n FORMAT CSVWithNames", "default_format": "JSONEachRow"})
    check("FORMAT clause beats default_format", b == b'"n"\n1\n' and h.get("x-clickhouse-format") == "CSVWithNames", repr(b))
    st, h, b, _ = get({"query": "SELECT toUInt32(7) AS n FORMAT RowBinaryWithNamesAndTypes"})
    check("RowBinaryWithNamesAndTypes", b == b"\x01\x01n\x06UInt32\x07\x00\x00\x00", repr(b))
    st, h, b, _ = get({"query": "SELECT 1 AS x WHERE 0 FORMAT JSON"})
    check("empty result keeps the JSON envelope", st == 200 and b'"data":' in b and b'"rows": 0' in b, repr(b[:80]))
    st, h, b, _ = get({"query": "SELECT 1 AS x WHERE 0 FORMAT TSVWithNames"})
    check("empty result keeps the TSVWithNames header", b == b"x\n", repr(b))

    # --- parameters
    # Values are parsed in the "escaped" (TSV) text format: a client escapes \\ \t \n in them.
    st, h, b, _ = get({"query": "SELECT {s:String} AS s, {n:UInt64} + 1 AS n FORMAT JSONEachRow",
                       "param_s": "x'); DROP TABLE t; --\\\\", "param_n": "41"})
    check("param_: String value is data, not SQL", b == b'{"s":"x\'); DROP TABLE t; --\\\\","n":"42"}\n'
          or b == b'{"s":"x\'); DROP TABLE t; --\\\\","n":42}\n', repr(b))
    st, h, b, _ = get({"query": "SELECT {s:String}", "param_s": "ends with a backslash \\"})
    check("param_: an unescaped trailing backslash is an error (code 25)",
          st == 400 and h.get("x-clickhouse-exception-code") == "25", f"{st} {b!r}")
    st, h, b, _ = get({"query": "SELECT {s:String}", "param_s": "a\\tb"})
    check("param_ values are in escaped format (\\t = tab)", b == b"a\\tb\n", repr(b))
    st, h, b, _ = get({"query": "SELECT {a:Array(String)} AS a, {m:Map(String, UInt8)} AS m FORMAT JSONEachRow",
                       "param_a": "['x','y']", "param_m": "{'k':1}"})
    check("param_ Array/Map", b == b'{"a":["x","y"],"m":{"k":1}}\n', repr(b))
    st, h, b, _ = get({"query": "SELECT count() FROM {db:Identifier}.{t:Identifier}", "param_db": "system", "param_t": "one"})
    check("param_ Identifier", b == b"1\n", repr(b))
    st, h, b, _ = get({"query": "SELECT {x:String}"})
    check("missing param -> error 456", st != 200 and h.get("x-clickhouse-exception-code") == "456", f"{st} {b!r}")
    st, h, b, _ = get({"query": "SELECT {n:UInt8}", "param_n": "abc"})
    check("unparsable param -> error", st != 200 and "x-clickhouse-exception-code" in h, f"{st} {b!r}")

    # --- database / settings
    ch.execute("DROP DATABASE IF EXISTS check_http")
    ch.execute("CREATE DATABASE check_http")
    ch.execute("CREATE TABLE check_http.t (a UInt32, s String) ENGINE = MergeTree ORDER BY a")
    st, h, b, _ = get({"query": "SELECT currentDatabase()", "database": "check_http"})
    check("database=", b == b"check_http\n", repr(b))
    st, h, b, _ = get({"query": "SELECT currentDatabase()"}, {"X-ClickHouse-Database": "check_http"})
    check("X-ClickHouse-Database header", b == b"check_http\n", repr(b))
    st, h, b, _ = get({"query": "SELECT 1", "database": "no_such_db"})
    check("unknown database -> 404, code 81", st == 404 and h.get("x-clickhouse-exception-code") == "81", f"{st} {b!r}")
    st, h, b, _ = get({"query": "SELECT getSetting('max_threads'), getSetting('max_result_rows')", "max_threads": "1", "max_result_rows": "7"})
    check("settings as URL params", b == b"1\t7\n", repr(b))
    st, h, b, _ = get({"query": "SELECT 1", "no_such_setting_xyz": "1"})
    check("unknown setting -> 404, code 115", st == 404 and h.get("x-clickhouse-exception-code") == "115", f"{st} {b!r}")
    st, h, b, _ = get({"query": "INSERT INTO check_http.t VALUES (1, 'x')"})
    check("GET is readonly -> code 164", h.get("x-clickhouse-exception-code") == "164", f"{st} {b!r}")

    # --- inserts
    st, h, b, _ = raw.request("POST", "/?" + urllib.parse.urlencode({"query": "INSERT INTO check_http.t FORMAT JSONEachRow"}),
                              auth, b'{"a":1,"s":"one"}\n{"a":2,"s":"two"}\n')
    check("INSERT ... FORMAT in ?query, data in body", st == 200 and b == b"", f"{st} {b!r}")
    summary = json.loads(h.get("x-clickhouse-summary", "{}"))
    check("insert summary written_rows = 2", summary.get("written_rows") == "2", str(summary))
    st, h, b, _ = post("INSERT INTO check_http.t FORMAT TabSeparated\n3\tthree\n")
    check("INSERT with inline data in the body", st == 200, f"{st} {b!r}")
    gz = gzip.compress(b'{"a":4,"s":"four"}\n')
    st, h, b, _ = raw.request("POST", "/?" + urllib.parse.urlencode({"query": "INSERT INTO check_http.t FORMAT JSONEachRow"}),
                              {**auth, "Content-Encoding": "gzip"}, gz)
    check("gzip request body", st == 200, f"{st} {b!r}")
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.putrequest("POST", "/?" + urllib.parse.urlencode({"query": "INSERT INTO check_http.t FORMAT JSONEachRow"}))
    for k, v in auth.items():
        conn.putheader(k, v)
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    for i in range(5, 8):
        piece = json.dumps({"a": i, "s": str(i)}).encode() + b"\n"
        conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
    conn.send(b"0\r\n\r\n")
    r = conn.getresponse()
    r.read()
    check("chunked request body (streamed insert)", r.status == 200, str(r.status))
    r2 = None
    conn.request("GET", "/?query=SELECT+count()+FROM+check_http.t", headers=auth)
    r2 = conn.getresponse()
    check("keep-alive: second request on the same connection", r2.status == 200 and r2.read() == b"7\n")
    conn.close()
    st, h, b, _ = post("INSERT INTO check_http.t FORMAT JSONEachRow\n{\"a\": \"not a number\"}\n")
    check("bad insert data -> error with code", st != 200 and "x-clickhouse-exception-code" in h, f"{st} {b!r}")

    # --- errors
    st, h, b, _ = post("SELEC 1")
    check("syntax error -> 400, code 62", st == 400 and h.get("x-clickhouse-exception-code") == "62", f"{st}")
    check("error body 'Code: 62. DB::Exception: ... (SYNTAX_ERROR) (version X)'",
          re.match(rb"^Code: 62\. DB::Exception: .*\(SYNTAX_ERROR\) \(version [0-9.]+\)\n$", b, re.S) is not None, repr(b[:120]))
    st, h, b, _ = post("SELECT * FROM check_http.nope")
    check("unknown table -> 404, code 60", st == 404 and h.get("x-clickhouse-exception-code") == "60", f"{st}")
    st, h, b, _ = post("SELECT throwIf(1)")
    check("throwIf before any data -> 500, code 395", st == 500 and h.get("x-clickhouse-exception-code") == "395", f"{st}")
    st, h, b, _ = post("SELECT 1; SELECT 2")
    check("multi-statements refused (code 62)", st == 400 and h.get("x-clickhouse-exception-code") == "62", f"{st} {b!r}")

    # --- auth
    if args.password:
        st, h, b, _ = raw.request("GET", "/?query=SELECT+1", {})
        check("no credentials -> 403, code 516", st == 403 and h.get("x-clickhouse-exception-code") == "516", f"{st}")
        basic = base64.b64encode(f"{args.user}:{args.password}".encode()).decode()
        st, h, b, _ = raw.request("GET", "/?query=SELECT+1", {"Authorization": "Basic " + basic})
        check("HTTP Basic auth", st == 200 and b == b"1\n", f"{st}")
        st, h, b, _ = raw.request("GET", "/?" + urllib.parse.urlencode({"query": "SELECT 1", "user": args.user, "password": args.password}), {})
        check("?user=&password= auth", st == 200, f"{st}")
        st, h, b, _ = raw.request("GET", "/?query=SELECT+1", {"X-ClickHouse-User": args.user, "X-ClickHouse-Key": "wrong"})
        check("wrong password -> 403, code 516", st == 403 and h.get("x-clickhouse-exception-code") == "516"
              and b.startswith(f"Code: 516. DB::Exception: {args.user}: Authentication failed".encode()), f"{st} {b!r}")
        st, h, b, _ = raw.request("GET", "/?query=SELECT+1", {**auth, "Authorization": "Basic " + basic})
        check("two auth methods at once -> 403, code 516", st == 403, f"{st}")
    else:
        print("(auth checks skipped: the server has no password)")

    # --- streaming
    st, h, b, complete = post("SELECT number FROM numbers(2000000)")
    check("large result is chunked", "chunked" in h.get("transfer-encoding", ""))
    check("large result complete and correct", complete and b.count(b"\n") == 2000000 and b.endswith(b"1999999\n"))
    tag = None
    st, h, b, complete = post("SELECT throwIf(number = 1500000, 'boom') FROM numbers(3000000) SETTINGS max_block_size = 65536")
    tag = h.get("x-clickhouse-exception-tag", "")
    data, msg = parse_tagged(b, tag)
    check("engine error after data: HTTP 200", st == 200, str(st))
    check("engine error after data: no X-ClickHouse-Exception-Code header", "x-clickhouse-exception-code" not in h)
    check("engine error after data: tagged __exception__ frame", msg is not None and msg.startswith("Code: 395. DB::Exception: boom"), repr(b[-300:]))
    check("engine error after data: chunked body cut (no final 0-chunk)", not complete)
    check("engine error after data: rows before it are intact", data.count(b"\n") > 0 and data.endswith(b"0\n"))

    # fault injection, each style
    for style in ("tagged", "marker", "plain"):
        c2 = http.client.HTTPConnection(host, port, timeout=30)
        c2.request("POST", "/__test__/fault?" + urllib.parse.urlencode(
            {"after_bytes": 100, "count": 1, "style": style, "code": 241, "message": "Memory limit (total) exceeded",
             "match": "check_http_fault"}))
        c2.getresponse().read()
        c2.close()
        st, h, b, complete = post("SELECT number, 'check_http_fault' FROM numbers(100000)")
        if style == "tagged":
            data, msg = parse_tagged(b, h.get("x-clickhouse-exception-tag", ""))
            check("fault tagged: 100 data bytes then frame, body cut", len(data) == 100 and msg is not None
                  and msg.startswith("Code: 241. DB::Exception: Memory limit (total) exceeded. (MEMORY_LIMIT_EXCEEDED)")
                  and not complete, repr(b[-250:]))
        elif style == "marker":
            check("fault marker: \\r\\n__exception__\\r\\nCode: 241... , body cut",
                  b[100:].startswith(b"\r\n__exception__\r\nCode: 241. DB::Exception:") and not complete, repr(b[90:200]))
        else:
            check("fault plain: 'Code: 241. DB::Exception' appended, body ends cleanly",
                  b[100:].startswith(b"Code: 241. DB::Exception:") and b.endswith(b")\n") and complete, repr(b[90:200]))
    st, h, b, complete = post("SELECT number, 'check_http_fault' FROM numbers(1000)")
    check("fault count=1 is used up", st == 200 and complete and b.count(b"\n") == 1000)
    c2 = http.client.HTTPConnection(host, port, timeout=30)
    c2.request("POST", "/__test__/fault?after_bytes=10&count=1&match=check_http_wait")
    c2.getresponse().read()
    c2.close()
    st, h, b, complete = post("SELECT number, 'check_http_wait' FROM numbers(1000)", {"wait_end_of_query": "1"})
    check("wait_end_of_query=1 turns a late failure into HTTP 500 + header", st == 500
          and h.get("x-clickhouse-exception-code") == "395", f"{st}")

    # client goes away mid-stream: the server must survive
    s = socket.create_connection((host, port), timeout=30)
    q = "SELECT number FROM numbers(100000000)"
    s.sendall((f"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {len(q)}\r\n"
               + "".join(f"{k}: {v}\r\n" for k, v in auth.items()) + "\r\n" + q).encode())
    s.recv(1 << 16)
    s.close()
    st, h, b, _ = raw.request("GET", "/ping", {})
    check("server alive after a client hung up mid-stream", st == 200)

    # Distributed over the local cluster
    ch.execute("CREATE TABLE check_http.t_dist AS check_http.t ENGINE = Distributed(abortaudit, check_http, t, rand())")
    st, h, b, _ = post("SELECT count() FROM check_http.t_dist WHERE a GLOBAL IN (SELECT a FROM check_http.t_dist WHERE s = 'one')")
    check("Distributed table + GLOBAL IN", st == 200 and b == b"1\n", f"{st} {b!r}")

    ch.execute("DROP DATABASE check_http")
    print(f"{len(PASSED)} passed, {len(FAILED)} failed")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()

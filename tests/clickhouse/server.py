#!/usr/bin/env python3
"""A loopback HTTP front that speaks ClickHouse's HTTP interface, backed by the real
ClickHouse engine embedded in chdb-core (ClickHouse 26.9 as clickhouse-local).

It exists so that abortaudit's ClickHouse input can be tested without a ClickHouse
server (none installs from the registries reachable here). The SQL is executed by
the real engine: parsing, query parameters ({name:Type}), formats, types, MergeTree,
Map/JSON columns, errors. This file only does the HTTP part. See README.md for what
is and is not emulated.

    .venv/bin/python server.py --port 0 --data-dir /tmp/ch-data --port-file /tmp/ch.port

Implemented (as ClickHouse's HTTP handler does it):
  * GET/POST /, query in ``?query=`` and/or the body (``query`` + "\n" + body);
    ``INSERT ... FORMAT X`` in ``?query=`` with the data as the (streamed) body;
    GET queries run with readonly=2, as in ClickHouse.
  * ``param_NAME=`` -> server-side parameters for ``{NAME:Type}``, substituted by the
    engine itself (chdb passes them to ClickHouse's ReplaceQueryParameterVisitor).
  * ``database=`` / X-ClickHouse-Database, ``default_format=`` / X-ClickHouse-Format,
    ``query_id=``, ``wait_end_of_query=1``; any other URL parameter is a setting
    (``SET name = 'value'``; unknown ones fail with UNKNOWN_SETTING like ClickHouse).
  * auth: X-ClickHouse-User/X-ClickHouse-Key headers, HTTP Basic, or ?user=&password=,
    checked against --user/--password (env ABORTAUDIT_CH_USER / ABORTAUDIT_CH_PASSWORD).
  * errors: ``Code: N. DB::Exception: ... (NAME) (version V)`` with the HTTP status
    of ClickHouse's exceptionCodeToHTTPStatus and X-ClickHouse-Exception-Code.
  * chunked streaming of SELECT results as the engine produces them; an error after
    the first bytes went out is written into the body the way ClickHouse does it
    (--exception-style tagged = 25.11+, marker = 24.11-25.10, plain = older).
  * /ping, GET / -> "Ok.\\n".
  * test switch: /__test__/fault makes the next streamed response(s) fail mid-stream.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hmac
import json
import os
import re
import secrets
import signal
import socket
import string
import sys
import threading
import time
import urllib.parse
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator, Optional

os.environ.setdefault("TZ", "UTC")  # before the engine starts: server timezone UTC unless TZ is set
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chsql import READ_KINDS, quote_ident, quote_string, scan  # noqa: E402

import chdb  # noqa: E402
from chdb import state  # noqa: E402

ENGINE_VERSION = chdb.engine_version  # e.g. 26.9.2.1
DISPLAY_NAME = "abortaudit-chdb"

# URL parameters that are not settings (ClickHouse's HTTPHandler reserves these).
RESERVED_PARAMS = {
    "query", "database", "default_format", "user", "password", "quota_key", "query_id",
    "stacktrace", "role", "buffer_size", "wait_end_of_query", "session_id", "session_timeout",
    "session_check", "compress", "decompress", "client_protocol_version", "close_session",
}

# exceptionCodeToHTTPStatus (src/Server/HTTP/exceptionCodeToHTTPStatus.cpp), by error name.
_STATUS_BY_NAME = {
    "REQUIRED_PASSWORD": 401,
    **{n: 403 for n in ("UNKNOWN_USER", "WRONG_PASSWORD", "AUTHENTICATION_FAILED",
                        "SET_NON_GRANTED_ROLE", "ACCESS_DENIED")},
    **{n: 400 for n in (
        "BAD_ARGUMENTS", "CANNOT_COMPILE_REGEXP", "CANNOT_PARSE_TEXT", "CANNOT_PARSE_ESCAPE_SEQUENCE",
        "CANNOT_PARSE_QUOTED_STRING", "CANNOT_PARSE_DATE", "CANNOT_PARSE_DATETIME",
        "CANNOT_PARSE_NUMBER", "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING", "CANNOT_PARSE_IPV4",
        "CANNOT_PARSE_IPV6", "CANNOT_PARSE_INPUT_ASSERTION_FAILED", "CANNOT_PARSE_UUID",
        "DUPLICATE_COLUMN", "ILLEGAL_COLUMN", "UNKNOWN_ELEMENT_IN_AST", "UNKNOWN_TYPE_OF_AST_NODE",
        "THERE_IS_NO_COLUMN", "TOO_DEEP_AST", "TOO_BIG_AST", "UNEXPECTED_AST_STRUCTURE",
        "SYNTAX_ERROR", "INCORRECT_DATA", "TYPE_MISMATCH", "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE")},
    **{n: 404 for n in (
        "UNKNOWN_TABLE", "UNKNOWN_FUNCTION", "UNKNOWN_IDENTIFIER", "UNKNOWN_TYPE", "UNKNOWN_STORAGE",
        "UNKNOWN_DATABASE", "UNKNOWN_SETTING", "UNKNOWN_DIRECTION_OF_SORTING",
        "UNKNOWN_AGGREGATE_FUNCTION", "UNKNOWN_FORMAT", "UNKNOWN_DATABASE_ENGINE",
        "UNKNOWN_TYPE_OF_QUERY", "UNKNOWN_ROLE")},
    "QUERY_IS_TOO_LARGE": 413,
    "NOT_IMPLEMENTED": 501,
    "SOCKET_TIMEOUT": 503,
    "CANNOT_OPEN_FILE": 503,
    "HTTP_LENGTH_REQUIRED": 411,
    "TIMEOUT_EXCEEDED": 408,
    "CANNOT_SCHEDULE_TASK": 503,
    "UNSUPPORTED_MEDIA_TYPE": 415,
}

# Formats whose output is empty for an empty result: chdb's streaming API yields no
# chunk at all for an empty result, which is right for these; for the others (JSON,
# *WithNames, ...) the prefix/suffix would be lost, so the query is re-run buffered.
_EMPTY_OK_FORMATS = {
    f.lower() for f in (
        "JSONEachRow", "JSONLines", "NDJSON", "JSONCompactEachRow", "JSONStringsEachRow",
        "JSONCompactStringsEachRow", "TabSeparated", "TSV", "TabSeparatedRaw", "TSVRaw", "CSV",
        "RowBinary", "Values", "LineAsString", "RawBLOB", "Null")
}

_FORMAT_ALIASES = {
    "tsv": "TabSeparated", "tsvraw": "TabSeparatedRaw", "raw": "TabSeparatedRaw",
    "tsvwithnames": "TabSeparatedWithNames", "tsvwithnamesandtypes": "TabSeparatedWithNamesAndTypes",
    "jsonlines": "JSONEachRow", "ndjson": "JSONEachRow",
}

_CODE_RE = re.compile(r"Code: (\d+)\.")
_VERSION_TAIL = re.compile(r"\(version [^()]*(\([^()]*\))?\)\s*$")
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TAG_ALPHABET = string.ascii_lowercase + string.digits


class CHError(Exception):
    """An error to answer in ClickHouse's format."""

    def __init__(self, code: int, text: str):
        super().__init__(text)
        self.code = code
        self.text = text


class Engine:
    """One embedded ClickHouse engine (one data directory) shared by all requests."""

    def __init__(self, data_dir: str):
        os.makedirs(data_dir, exist_ok=True)
        self.data_dir = os.path.abspath(data_dir)
        self.db_path = os.path.join(self.data_dir, "chdb")
        self.config_path = os.path.join(self.data_dir, "config.xml")
        with open(self.config_path, "w") as f:
            # tcp_port makes 127.0.0.1:9000 "local" for the cluster below, so that a
            # Distributed table over it runs in-process (nothing listens on 9000).
            f.write(
                "<clickhouse>\n"
                "  <tcp_port>9000</tcp_port>\n"
                "  <remote_servers>\n"
                "    <abortaudit>\n"
                "      <shard><replica><host>127.0.0.1</host><port>9000</port></replica></shard>\n"
                "    </abortaudit>\n"
                "  </remote_servers>\n"
                "</clickhouse>\n"
            )
        # The first connection fixes the engine's path and config; it stays open for
        # the life of the server (the engine stops when its last connection closes).
        self.keeper = state.connect(f"{self.db_path}?config-file={self.config_path}")
        names = self.keeper.query(
            "SELECT number, errorCodeToName(number) FROM numbers(2000) WHERE errorCodeToName(number) != ''",
            "TabSeparated").bytes().decode()
        self.code_name = {}
        for line in names.splitlines():
            num, name = line.split("\t")
            self.code_name[int(num)] = name
        self.name_code = {v: k for k, v in self.code_name.items()}
        fmts = self.keeper.query("SELECT name FROM system.formats", "TabSeparated").bytes().decode()
        self.formats = {n.lower(): n for n in fmts.split()}
        self.timezone = self.keeper.query("SELECT timezone()", "TabSeparatedRaw").bytes().decode().strip()

    def connect(self):
        return state.connect(self.db_path)

    def status_for(self, code: int) -> int:
        return _STATUS_BY_NAME.get(self.code_name.get(code, ""), 500)

    def error(self, name: str, message: str) -> CHError:
        code = self.name_code.get(name, 1001)
        return CHError(code, f"Code: {code}. DB::Exception: {message}. ({name}) (version {ENGINE_VERSION})")

    def from_exception(self, e: BaseException) -> CHError:
        if isinstance(e, CHError):
            return e
        text = str(e).strip()
        for prefix in ("Streaming query failed: ", "Streaming insert append failed: ",
                       "Streaming insert finish failed: ", "Failed to cancel streaming query: "):
            if text.startswith(prefix):
                text = text[len(prefix):]
        m = _CODE_RE.search(text)
        if not m:
            return self.error("STD_EXCEPTION", text or type(e).__name__)
        if not _VERSION_TAIL.search(text):
            text += f" (version {ENGINE_VERSION})"
        return CHError(int(m.group(1)), text)

    def canonical_format(self, name: str) -> str:
        low = name.lower()
        return _FORMAT_ALIASES.get(low) or self.formats.get(low) or name


class Fault:
    """Mid-stream failure injection (the test switch)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.cfg: Optional[dict] = None

    def set(self, params: dict, default_style: str) -> dict:
        cfg = {
            "after_bytes": int(params.get("after_bytes", 0)),
            "code": int(params.get("code", 395)),
            "name": params.get("name", ""),
            "message": params.get("message", "Value passed to 'throwIf' function is non-zero: "
                                             "injected by tests/clickhouse/server.py"),
            "count": int(params.get("count", 1)),  # 0 = every matching response
            "match": params.get("match", ""),
            # Only requests for this database (tests running side by side each have their own).
            "database": params.get("database", ""),
            "style": params.get("style", default_style),
        }
        if cfg["style"] not in ("tagged", "marker", "plain"):
            raise ValueError("style must be tagged, marker or plain")
        with self.lock:
            self.cfg = cfg
        return cfg

    def clear(self):
        with self.lock:
            self.cfg = None

    def take(self, sql: str, database: Optional[str]) -> Optional[dict]:
        """The fault to apply to this response, if any (consumes one of `count`)."""
        with self.lock:
            cfg = self.cfg
            if cfg is None or (cfg["match"] and cfg["match"] not in sql):
                return None
            if cfg["database"] and cfg["database"] != database:
                return None
            if cfg["count"] > 0:
                cfg["count"] -= 1
                if cfg["count"] == 0:
                    self.cfg = None
            return dict(cfg)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, engine: Engine, args):
        super().__init__(addr, Handler)
        self.engine = engine
        self.user = args.user
        self.password = args.password
        self.exception_style = args.exception_style
        self.quiet = args.quiet
        self.fault = Fault()
        if args.fault:
            self.fault.set(dict(urllib.parse.parse_qsl(args.fault)), args.exception_style)


def _summary(read_rows=0, read_bytes=0, written_rows=0, written_bytes=0, result_rows=0, result_bytes=0,
             elapsed_ns=0) -> str:
    return json.dumps({
        "read_rows": str(read_rows), "read_bytes": str(read_bytes), "written_rows": str(written_rows),
        "written_bytes": str(written_bytes), "total_rows_to_read": "0", "result_rows": str(result_rows),
        "result_bytes": str(result_bytes), "elapsed_ns": str(elapsed_ns), "memory_usage": "0",
    }, separators=(",", ":"))


def _content_type(fmt: str) -> str:
    f = fmt.lower()
    if f.startswith(("json", "ndjson")):
        return "application/json; charset=UTF-8"
    if f.startswith(("tabseparated", "tsv")):
        return "text/tab-separated-values; charset=UTF-8"
    if f.startswith("csv"):
        return "text/csv; charset=UTF-8; header=absent"
    if f.startswith(("rowbinary", "native", "parquet", "arrow", "orc", "avro", "msgpack", "protobuf",
                     "capnproto", "bsoneachrow", "npy", "rawblob")):
        return "application/octet-stream"
    return "text/plain; charset=UTF-8"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def version_string(self):  # the Server header
        return f"ClickHouse/{ENGINE_VERSION} (chdb)"

    # ---- plumbing -----------------------------------------------------------------------

    def log_message(self, fmt, *args):  # noqa: A003
        if not self.server.quiet:
            sys.stderr.write("[%s] %s\n" % (time.strftime("%H:%M:%S"), fmt % args))

    def do_GET(self):  # noqa: N802
        self._dispatch("GET")

    def do_POST(self):  # noqa: N802
        self._dispatch("POST")

    def do_PUT(self):  # noqa: N802
        self._dispatch("PUT")

    def do_DELETE(self):  # noqa: N802
        self._dispatch("DELETE")

    def do_HEAD(self):  # noqa: N802
        self._dispatch("HEAD")

    def _new_response_ids(self, params: dict):
        self.query_id = params.get("query_id") or str(uuid.uuid4())
        self.tag = "".join(secrets.choice(_TAG_ALPHABET) for _ in range(16))

    def _common_headers(self):
        self.send_header("X-ClickHouse-Server-Display-Name", DISPLAY_NAME)
        self.send_header("X-ClickHouse-Query-Id", self.query_id)
        self.send_header("X-ClickHouse-Timezone", self.server.engine.timezone)
        if self.server.exception_style == "tagged":
            self.send_header("X-ClickHouse-Exception-Tag", self.tag)
        self.send_header("Keep-Alive", "timeout=10")

    def _send_simple(self, status: int, body: bytes, content_type="text/plain; charset=UTF-8",
                     extra: Optional[dict] = None):
        self.send_response(status)
        self._common_headers()
        self.send_header("Content-Type", content_type)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_error(self, err: CHError):
        status = self.server.engine.status_for(err.code)
        body_unread = not self.body_done
        if body_unread:
            self.close_connection = True
        self._send_simple(status, (err.text + "\n").encode(), extra={
            "X-ClickHouse-Exception-Code": str(err.code),
            "X-ClickHouse-Summary": _summary(),
            **({"Connection": "close"} if body_unread else {}),
        })

    # ---- request body ---------------------------------------------------------------------

    def _raw_body(self) -> Iterator[bytes]:
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise self.server.engine.error("CANNOT_READ_ALL_DATA", "Unexpected end of chunked request body")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    self.body_done = True
                    return
                left = size
                while left:
                    piece = self.rfile.read(min(left, 1 << 20))
                    if not piece:
                        raise self.server.engine.error("CANNOT_READ_ALL_DATA", "Unexpected end of request body")
                    left -= len(piece)
                    yield piece
                self.rfile.readline(3)
        else:
            length = int(self.headers.get("Content-Length") or 0)
            while length > 0:
                piece = self.rfile.read(min(length, 1 << 20))
                if not piece:
                    raise self.server.engine.error("CANNOT_READ_ALL_DATA", "Unexpected end of request body")
                length -= len(piece)
                yield piece
            self.body_done = True

    def _body(self) -> Iterator[bytes]:
        enc = (self.headers.get("Content-Encoding") or "").lower().strip()
        raw = self._raw_body()
        if enc in ("", "identity"):
            yield from raw
            return
        if enc in ("gzip", "x-gzip", "deflate"):
            d = zlib.decompressobj(16 + zlib.MAX_WBITS if "gzip" in enc else zlib.MAX_WBITS)
            for piece in raw:
                out = d.decompress(piece)
                if out:
                    yield out
            tail = d.flush()
            if tail:
                yield tail
            return
        for _ in raw:  # drain, then refuse
            pass
        raise self.server.engine.error("UNKNOWN_COMPRESSION_METHOD",
                                       f"Unknown Content-Encoding {enc!r} (this test server knows gzip and deflate)")

    def _has_body(self) -> bool:
        return bool(self.headers.get("Content-Length", "0") not in ("", "0")
                    or "chunked" in (self.headers.get("Transfer-Encoding") or "").lower())

    # ---- auth -------------------------------------------------------------------------------

    def _authenticate(self, params: dict):
        eng = self.server.engine
        h_user = self.headers.get("X-ClickHouse-User")
        h_key = self.headers.get("X-ClickHouse-Key")
        authz = self.headers.get("Authorization")
        p_user = params.get("user")
        p_pass = params.get("password")
        methods = [m for m, present in (("headers", h_user is not None or h_key is not None),
                                        ("basic", authz is not None),
                                        ("params", p_user is not None or p_pass is not None)) if present]
        if len(methods) > 1:
            raise eng.error("AUTHENTICATION_FAILED", "Invalid authentication: it is not allowed to use "
                            + " and ".join(methods) + " authentication methods simultaneously")
        user, password = "default", ""
        if methods == ["headers"]:
            user, password = h_user or "default", h_key or ""
        elif methods == ["basic"]:
            scheme, _, value = authz.partition(" ")
            if scheme.lower() != "basic":
                raise eng.error("AUTHENTICATION_FAILED", f"Invalid authentication: {scheme} HTTP Authorization scheme is not supported")
            try:
                user, _, password = base64.b64decode(value.strip()).decode().partition(":")
            except Exception:  # noqa: BLE001
                raise eng.error("AUTHENTICATION_FAILED", "Invalid authentication: malformed Basic credentials")
        elif methods == ["params"]:
            user, password = p_user or "default", p_pass or ""
        ok_user = hmac.compare_digest(user.encode(), self.server.user.encode())
        ok_pass = hmac.compare_digest(password.encode(), self.server.password.encode())
        if not (ok_user and ok_pass):
            raise eng.error("AUTHENTICATION_FAILED", f"{user}: Authentication failed: password is incorrect, "
                            "or there is no user with such name")

    # ---- dispatch ---------------------------------------------------------------------------

    def _dispatch(self, method: str):
        parsed = urllib.parse.urlsplit(self.path)
        params = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
        self._new_response_ids(params)
        self.body_done = not self._has_body()
        path = parsed.path
        try:
            if path == "/ping" or path == "/replicas_status":
                return self._send_simple(200, b"Ok.\n")
            if path == "/__test__/fault":
                return self._fault_endpoint(method, params)
            if path != "/":
                body = (f"There is no handle {path}\n\nUse / or /ping for health checks.\n").encode()
                self.close_connection = self._has_body()
                return self._send_simple(404, body)
            if method in ("GET", "HEAD") and "query" not in params and not self._has_body():
                return self._send_simple(200, b"Ok.\n")
            if method not in ("GET", "POST"):
                raise self.server.engine.error("NOT_IMPLEMENTED", f"HTTP method {method} is not supported")
            self._authenticate(params)
            self._query(method, params)
        except CHError as e:
            self._send_error(e)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # noqa: BLE001
            self._send_error(self.server.engine.from_exception(e))

    def _fault_endpoint(self, method: str, params: dict):
        for _ in self._body():
            pass
        if method in ("POST", "PUT"):
            try:
                cfg = self.server.fault.set(params, self.server.exception_style)
            except ValueError as e:
                return self._send_simple(400, (str(e) + "\n").encode())
            return self._send_simple(200, (json.dumps(cfg) + "\n").encode(), "application/json")
        if method == "DELETE":
            self.server.fault.clear()
            return self._send_simple(200, b"{}\n", "application/json")
        return self._send_simple(200, (json.dumps(self.server.fault.cfg) + "\n").encode(), "application/json")

    # ---- queries ------------------------------------------------------------------------------

    def _query(self, method: str, params: dict):
        eng = self.server.engine
        t0 = time.monotonic_ns()
        for unsupported in ("session_id", "compress", "decompress"):
            v = params.get(unsupported)
            if v not in (None, "", "0"):
                raise eng.error("NOT_IMPLEMENTED", f"URL parameter {unsupported} is not supported by this test server")
        qparams = {k[len("param_"):]: v for k, v in params.items() if k.startswith("param_")}
        settings = {k: v for k, v in params.items() if k not in RESERVED_PARAMS and not k.startswith("param_")}
        database = params.get("database") or self.headers.get("X-ClickHouse-Database")
        default_format = params.get("default_format") or self.headers.get("X-ClickHouse-Format") or "TabSeparated"
        wait_end = params.get("wait_end_of_query") == "1" or settings.get("http_wait_end_of_query") in ("1", "true")

        url_query = params.get("query", "")
        insert_stream = None  # (statement, format, body iterator)
        if url_query and self._has_body():
            sc = scan(url_query)
            if sc.kind == "INSERT" and sc.format and url_query[sc.format_end:].strip() == "":
                insert_stream = (url_query[:_format_kw_start(url_query, sc)], sc.format, self._body())
                sql = url_query
            else:
                sql = url_query + "\n" + b"".join(self._body()).decode("utf-8", "surrogateescape")
        elif self._has_body():
            sql = b"".join(self._body()).decode("utf-8", "surrogateescape")
        else:
            sql = url_query
        if not sql.strip():
            raise eng.error("SYNTAX_ERROR", "Empty query")

        sc = scan(sql)
        if insert_stream is None and sc.kind == "INSERT" and sc.format:
            data = sql[sc.format_end:]
            data = re.sub(r"^[ \t]*\r?\n?", "", data, count=1)
            insert_stream = (sql[:_format_kw_start(sql, sc)], sc.format, iter([data.encode("utf-8", "surrogateescape")]))
        if sc.extra_statement_at is not None and insert_stream is None:
            raise eng.error("SYNTAX_ERROR", f"Syntax error (Multi-statements are not allowed): failed at position "
                            f"{sc.extra_statement_at + 1} (end of query)")

        conn = eng.connect()
        try:
            if database:
                conn.query(f"USE {quote_ident(database)}")
            for name, value in settings.items():
                if not _SETTING_NAME.match(name):
                    raise eng.error("UNKNOWN_SETTING", f"Unknown setting '{name}'")
                conn.query(f"SET {name} = {quote_string(value)}")
            if method == "GET" and "readonly" not in settings:
                conn.query("SET readonly = 2")
            out_format = eng.canonical_format(sc.format if (sc.format and insert_stream is None) else default_format)

            if insert_stream is not None:
                stmt, fmt, body = insert_stream
                ins = conn.send_insert(stmt, fmt)
                try:
                    for piece in body:
                        ins.append(piece)
                    res = ins.finish()
                except BaseException:
                    try:
                        ins.cancel()
                    except Exception:  # noqa: BLE001
                        pass
                    raise
                summary = _summary(written_rows=res.rows_written, written_bytes=res.bytes_written,
                                   elapsed_ns=time.monotonic_ns() - t0)
                return self._send_simple(200, b"", "text/plain; charset=UTF-8",
                                         {"X-ClickHouse-Summary": summary, "X-ClickHouse-Format": out_format})

            if sc.kind in ("SELECT", "WITH") and not wait_end:
                return self._stream_select(conn, sql, out_format, qparams, t0, database)

            fault = self.server.fault.take(sql, database) if sc.kind in READ_KINDS else None
            res = conn.query(sql, out_format, params=qparams)
            if fault:  # with wait_end_of_query the failure becomes an ordinary error answer
                raise CHError(fault["code"], self._fault_text(fault))
            payload = res.bytes()
            summary = _summary(res.rows_read(), res.bytes_read(), res.rows_written(), res.bytes_written(),
                               0, len(payload), int(res.elapsed() * 1e9))
            self._send_simple(200, payload, _content_type(out_format),
                              {"X-ClickHouse-Summary": summary, "X-ClickHouse-Format": out_format})
        finally:
            conn.close()

    def _fault_text(self, fault: dict) -> str:
        eng = self.server.engine
        name = fault["name"] or eng.code_name.get(fault["code"], "UNKNOWN_EXCEPTION")
        return f"Code: {fault['code']}. DB::Exception: {fault['message']}. ({name}) (version {ENGINE_VERSION})"

    def _stream_select(self, conn, sql: str, fmt: str, qparams: dict, t0: int, database: Optional[str]):
        eng = self.server.engine
        fault = self.server.fault.take(sql, database)
        stream = conn.send_query(sql, fmt, params=qparams)  # errors here: nothing sent yet
        try:
            first = stream.fetch()
        except Exception:
            stream.close()
            raise
        if first is None and fmt.lower() not in _EMPTY_OK_FORMATS:
            # Empty result of a format with a prefix/suffix: chdb's stream yields nothing,
            # so answer from a buffered run instead (cheap: the result is empty).
            res = conn.query(sql, fmt, params=qparams)
            payload = res.bytes()
            if fault:
                return self._start_chunked_and_fail(fmt, payload, fault, t0)
            return self._send_simple(200, payload, _content_type(fmt), {
                "X-ClickHouse-Summary": _summary(res.rows_read(), res.bytes_read(), elapsed_ns=time.monotonic_ns() - t0),
                "X-ClickHouse-Format": fmt})

        self.send_response(200)
        self._common_headers()
        self.send_header("Content-Type", _content_type(fmt))
        self.send_header("X-ClickHouse-Format", fmt)
        self.send_header("X-ClickHouse-Summary", _summary(elapsed_ns=time.monotonic_ns() - t0))
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sent = 0
        chunk = first
        try:
            while chunk is not None:
                data = chunk.bytes()
                if fault and sent + len(data) >= fault["after_bytes"]:
                    keep = max(0, fault["after_bytes"] - sent)
                    if keep:
                        self._write_chunk(data[:keep])
                    stream.cancel()
                    return self._fail_midstream(self._fault_text(fault), fault["style"])
                if data:
                    self._write_chunk(data)
                    sent += len(data)
                try:
                    chunk = stream.fetch()
                except Exception as e:  # noqa: BLE001  - a real failure after the first bytes
                    return self._fail_midstream(eng.from_exception(e).text, self.server.exception_style)
            if fault:  # result shorter than after_bytes: fail at the end
                return self._fail_midstream(self._fault_text(fault), fault["style"])
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            try:
                stream.cancel()
            except Exception:  # noqa: BLE001
                pass

    def _start_chunked_and_fail(self, fmt, payload, fault, t0):
        self.send_response(200)
        self._common_headers()
        self.send_header("Content-Type", _content_type(fmt))
        self.send_header("X-ClickHouse-Format", fmt)
        self.send_header("X-ClickHouse-Summary", _summary(elapsed_ns=time.monotonic_ns() - t0))
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        keep = payload[:fault["after_bytes"]]
        if keep:
            self._write_chunk(keep)
        self._fail_midstream(self._fault_text(fault), fault["style"])

    def _write_chunk(self, data: bytes):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _fail_midstream(self, message: str, style: str):
        """Write an exception after a 200 + some body, the way ClickHouse does it.

        tagged (25.11+): "\\r\\n__exception__\\r\\n<tag>\\r\\n<message>\\n<len> <tag>\\r\\n__exception__\\r\\n",
            <tag> = the X-ClickHouse-Exception-Tag header, <len> = bytes of "<message>\\n";
            then the chunked body is cut (no terminating 0-chunk), as since 24.11.
        marker (24.11 - 25.10): "\\r\\n__exception__\\r\\n<message>\\n", then the body is cut.
        plain (older): "<message>\\n" appended to the data, and the body ends normally.
        """
        msg = message.encode()
        if style == "tagged":
            tag = self.tag.encode()
            frame = (b"\r\n__exception__\r\n" + tag + b"\r\n" + msg + b"\n"
                     + str(len(msg) + 1).encode() + b" " + tag + b"\r\n__exception__\r\n")
        elif style == "marker":
            frame = b"\r\n__exception__\r\n" + msg + b"\n"
        else:
            frame = msg + b"\n"
        self._write_chunk(frame)
        if style == "plain":
            self.wfile.write(b"0\r\n\r\n")
            return
        # Break the chunked encoding: the client sees the body end without its last chunk.
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _format_kw_start(sql: str, sc) -> int:
    """Offset of the FORMAT keyword whose name ends at sc.format_end."""
    for k, t in enumerate(sc.tokens):
        if t.end == sc.format_end and k > 0:
            return sc.tokens[k - 1].start
    raise AssertionError("FORMAT keyword not found")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=0, help="port; 0 = ephemeral (default)")
    ap.add_argument("--data-dir", required=True, help="engine data directory (created; kept across restarts)")
    ap.add_argument("--port-file", help="write the bound port here once ready")
    ap.add_argument("--pid-file", help="write the pid here")
    ap.add_argument("--user", default=os.environ.get("ABORTAUDIT_CH_USER", "default"))
    ap.add_argument("--password", default=os.environ.get("ABORTAUDIT_CH_PASSWORD", ""))
    ap.add_argument("--exception-style", choices=("tagged", "marker", "plain"),
                    default=os.environ.get("ABORTAUDIT_CH_EXCEPTION_STYLE", "tagged"),
                    help="how an error after the first streamed bytes is written (default tagged = ClickHouse 25.11+)")
    ap.add_argument("--fault", default=os.environ.get("ABORTAUDIT_CH_FAULT", ""),
                    help="start with a mid-stream fault armed, e.g. 'after_bytes=1000&count=0&match=otel_traces'")
    ap.add_argument("--quiet", action="store_true", help="no access log")
    args = ap.parse_args()

    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.host.startswith("127."):
        ap.error("this test server binds loopback addresses only")
    engine = Engine(args.data_dir)
    httpd = Server((args.host, args.port), engine, args)
    port = httpd.server_address[1]
    if args.pid_file:
        with open(args.pid_file, "w") as f:
            f.write(f"{os.getpid()}\n")
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.port_file)
    sys.stderr.write(f"[server] ClickHouse {ENGINE_VERSION} (chdb) on http://{args.host}:{port} data={engine.data_dir}\n")
    sys.stderr.flush()

    def stop(*_):
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        httpd.serve_forever(poll_interval=0.2)
    finally:
        httpd.server_close()
        engine.keeper.close()
        if args.pid_file:
            try:
                os.unlink(args.pid_file)
            except OSError:
                pass


if __name__ == "__main__":
    main()

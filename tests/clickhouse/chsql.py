"""Small helpers shared by server.py, schema.py, load.py and gen_bench.py.

* a minimal ClickHouse SQL lexer (enough to find the statement kind, a top-level
  ``FORMAT`` clause, where inline INSERT data starts, and multi-statements);
* quoting of identifiers and string literals;
* ``HttpClient``: a stdlib-only client of the ClickHouse HTTP interface, used by
  the scripts here to talk to server.py (or to a real ClickHouse server).

Only the Python standard library is imported here, so the scripts that use it can
run with any python3 (they do not need the venv unless they embed chdb).
"""

from __future__ import annotations

import base64
import http.client
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Optional

# ---------------------------------------------------------------------------------------------
# Quoting


def quote_ident(name: str) -> str:
    """Back-quoted identifier, as ClickHouse's ``backQuote``."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def quote_string(value: str) -> str:
    """Single-quoted string literal with ClickHouse escapes."""
    out = ["'"]
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch == "'":
            out.append("\\'")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\0":
            out.append("\\0")
        else:
            out.append(ch)
    out.append("'")
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# Lexer

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_NUMBER = re.compile(r"[0-9][0-9A-Za-z_.]*")


@dataclass
class Token:
    kind: str  # "word", "quoted" (string literal), "ident" (quoted identifier), "punct"
    text: str
    start: int
    end: int
    depth: int  # parenthesis depth before this token


@dataclass
class Scan:
    """What the server needs to know about one query text."""

    kind: str = ""  # upper-cased first keyword: SELECT, WITH, INSERT, CREATE, ...
    format: Optional[str] = None  # FORMAT <name> at top level
    format_end: Optional[int] = None  # offset just past the format name (inline data follows for INSERT)
    extra_statement_at: Optional[int] = None  # offset of a second statement, if any
    tokens: list = field(default_factory=list)


def tokens(sql: str, stop_after_insert_format: bool = True) -> Iterator[Token]:
    """Tokenise ``sql``; skips comments. Stops after ``INSERT ... FORMAT name``."""
    i, n, depth = 0, len(sql), 0
    first_word: Optional[str] = None
    prev_word: Optional[str] = None
    while i < n:
        c = sql[i]
        if c.isspace():
            i += 1
            continue
        if sql.startswith("--", i) or c == "#":
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
            continue
        if sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j < 0 else j + 2
            continue
        if c in "'\"`":
            j = i + 1
            while j < n:
                if sql[j] == "\\":
                    j += 2
                    continue
                if sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:  # doubled quote
                        j += 2
                        continue
                    break
                j += 1
            end = min(j + 1, n)
            yield Token("quoted" if c == "'" else "ident", sql[i:end], i, end, depth)
            i = end
            continue
        m = _WORD.match(sql, i)
        if m:
            word = m.group(0)
            yield Token("word", word, i, m.end(), depth)
            up = word.upper()
            if first_word is None:
                first_word = up
            if (
                stop_after_insert_format
                and first_word == "INSERT"
                and prev_word == "FORMAT"
                and depth == 0
            ):
                return  # inline data follows
            prev_word = up
            i = m.end()
            continue
        m = _NUMBER.match(sql, i)
        if m:
            yield Token("word", m.group(0), i, m.end(), depth)
            prev_word = None
            i = m.end()
            continue
        if c == "(":
            yield Token("punct", c, i, i + 1, depth)
            depth += 1
        elif c == ")":
            depth = max(0, depth - 1)
            yield Token("punct", c, i, i + 1, depth)
        else:
            yield Token("punct", c, i, i + 1, depth)
        prev_word = None if c != "." else prev_word
        i += 1


def scan(sql: str) -> Scan:
    s = Scan()
    toks = list(tokens(sql))
    s.tokens = toks
    for t in toks:
        if t.kind == "word":
            s.kind = t.text.upper()
            break
        if t.kind == "punct" and t.text == "(":
            continue
        break
    if s.kind == "" and toks and toks[0].text == "(":
        s.kind = "SELECT"
    for k, t in enumerate(toks):
        if t.kind == "word" and t.depth == 0 and t.text.upper() == "FORMAT" and k + 1 < len(toks):
            nxt = toks[k + 1]
            after = toks[k + 2] if k + 2 < len(toks) else None
            if nxt.kind == "word" and not (after is not None and after.text == "(" and after.start == nxt.end):
                s.format = nxt.text
                s.format_end = nxt.end
            elif nxt.kind == "ident":
                s.format = nxt.text[1:-1]
                s.format_end = nxt.end
        if t.kind == "punct" and t.text == ";" and t.depth == 0 and s.kind != "INSERT":
            rest = [u for u in toks[k + 1:] if not (u.kind == "punct" and u.text == ";")]
            if rest:
                s.extra_statement_at = rest[0].start
                break
    return s


READ_KINDS = {"SELECT", "WITH", "SHOW", "DESC", "DESCRIBE", "EXPLAIN", "EXISTS", "VALUES", "CHECK"}


# ---------------------------------------------------------------------------------------------
# HTTP client (stdlib only)


class ClickHouseError(Exception):
    def __init__(self, status: int, code: Optional[int], message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


_CODE = re.compile(r"Code: (\d+)\.")


def _parse_url(url: str):
    u = urllib.parse.urlsplit(url)
    if u.scheme not in ("http", ""):
        raise ValueError(f"only http:// URLs are supported here, got {url!r}")
    host = u.hostname or "127.0.0.1"
    port = u.port or 8123
    return host, port


class HttpClient:
    """Tiny client for ClickHouse's HTTP interface.

    ``url`` is ``http://host:port``; credentials go in X-ClickHouse-User/Key headers.
    """

    def __init__(self, url: str, user: str = "default", password: str = "", database: Optional[str] = None,
                 timeout: float = 600.0):
        self.host, self.port = _parse_url(url)
        self.user = user
        self.password = password
        self.database = database
        self.timeout = timeout
        self._conn: Optional[http.client.HTTPConnection] = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self._conn

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _url(self, params: dict) -> str:
        p = dict(params)
        if self.database and "database" not in p:
            p["database"] = self.database
        return "/?" + urllib.parse.urlencode(p)

    def _headers(self) -> dict:
        h = {"X-ClickHouse-User": self.user}
        if self.password:
            h["X-ClickHouse-Key"] = self.password
        return h

    def request(self, body, params: Optional[dict] = None, query: Optional[str] = None,
                method: str = "POST") -> tuple[int, dict, bytes]:
        """Send one request; returns (status, headers, body). Retries once on a stale keep-alive."""
        params = dict(params or {})
        if query is not None:
            params["query"] = query
        url = self._url(params)
        headers = self._headers()
        if isinstance(body, (bytes, bytearray)) or body is None:
            data = body
        elif isinstance(body, str):
            data = body.encode()
        else:  # iterable of bytes: send chunked
            data = body
            headers["Transfer-Encoding"] = "chunked"
        for attempt in (0, 1):
            conn = self._connection()
            try:
                if headers.get("Transfer-Encoding") == "chunked":
                    conn.putrequest(method, url)
                    for k, v in headers.items():
                        conn.putheader(k, v)
                    conn.endheaders()
                    for chunk in data:
                        if chunk:
                            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    conn.send(b"0\r\n\r\n")
                else:
                    conn.request(method, url, body=data, headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
                return resp.status, {k.lower(): v for k, v in resp.getheaders()}, payload
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt or headers.get("Transfer-Encoding") == "chunked":
                    raise
        raise AssertionError("unreachable")

    def execute(self, sql: str, params: Optional[dict] = None, settings: Optional[dict] = None,
                body=None) -> bytes:
        """Run ``sql`` (in the body, or in the URL when ``body`` carries data) and return the body."""
        p = {f"param_{k}": v for k, v in (params or {}).items()}
        p.update(settings or {})
        if body is None:
            status, headers, payload = self.request(sql.encode(), p)
        else:
            status, headers, payload = self.request(body, p, query=sql)
        if status != 200 or "x-clickhouse-exception-code" in headers:
            text = payload.decode(errors="replace").strip()
            m = _CODE.search(text)
            code = int(headers.get("x-clickhouse-exception-code") or (m.group(1) if m else 0)) or None
            raise ClickHouseError(status, code, text)
        return payload

    def scalar(self, sql: str, **kw) -> str:
        return self.execute(sql + " FORMAT TabSeparatedRaw", **kw).decode().rstrip("\n")


def iter_file_chunks(path: str, size: int = 1 << 20) -> Iterable[bytes]:
    with open(path, "rb") as f:
        while True:
            b = f.read(size)
            if not b:
                return
            yield b


def basic_auth_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

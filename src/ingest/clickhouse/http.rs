//! ClickHouse's HTTP interface, as a small blocking client: a query goes in the body of a POST,
//! every value it needs goes as a server-side parameter (`param_NAME` for `{NAME:Type}`), and
//! the answer (`JSONEachRow`) is read as it streams, line by line.
//!
//! ClickHouse may fail after it has started answering (HTTP 200 already sent): it then ends
//! the body with the exception, framed (`__exception__`, 24.11 and later) or as plain text
//! (older), and cuts the connection. Either way the rows read before it are not an answer:
//! the error is reported with the server's message, never what arrived before it.

use std::cell::Cell;
use std::io::{BufRead, BufReader, Read};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};

use super::url::StoreUrl;

/// How long to wait for a connection; a query itself may run as long as the server lets it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// The most of an error's text kept for a message.
const ERROR_TEXT: u64 = 64 << 10;

/// Query parameters: names and their values in ClickHouse's text format.
#[derive(Default)]
pub(super) struct Params(pub(super) Vec<(String, String)>);

impl Params {
    fn next_name(&self) -> String {
        format!("p{}", self.0.len())
    }

    /// A `String` parameter: `{pN:String}`.
    pub(super) fn string(&mut self, value: &str) -> String {
        let name = self.next_name();
        self.0.push((name.clone(), escape(value)));
        format!("{{{name}:String}}")
    }

    /// An `Array(String)` parameter.
    pub(super) fn strings<S: AsRef<str>>(&mut self, values: &[S]) -> String {
        let name = self.next_name();
        let items: Vec<String> = values.iter().map(|v| quote(v.as_ref())).collect();
        self.0
            .push((name.clone(), format!("[{}]", items.join(","))));
        format!("{{{name}:Array(String)}}")
    }

    /// An `Array(Int64)` parameter.
    pub(super) fn ints(&mut self, values: &[i64]) -> String {
        let name = self.next_name();
        let items: Vec<String> = values.iter().map(i64::to_string).collect();
        self.0
            .push((name.clone(), format!("[{}]", items.join(","))));
        format!("{{{name}:Array(Int64)}}")
    }

    pub(super) fn int(&mut self, value: i64) -> String {
        let name = self.next_name();
        self.0.push((name.clone(), value.to_string()));
        format!("{{{name}:Int64}}")
    }

    /// An `Identifier` parameter (a database or table name).
    pub(super) fn identifier(&mut self, name_text: &str) -> String {
        let name = self.next_name();
        self.0.push((name.clone(), escape(name_text)));
        format!("{{{name}:Identifier}}")
    }
}

/// A value in ClickHouse's escaped text format (TSV's), as parameters are read.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out
}

/// A string inside an array parameter: quoted, its quotes, backslashes and control characters
/// escaped (an array's text is read as is, each element as a quoted string).
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// `%XX` for everything but the unreserved characters of a URL.
fn percent_encode(text: &str, out: &mut String) {
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// What the queries cost, for `inspect` and the benchmark.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transfer {
    pub queries: u64,
    pub rows: u64,
    /// Bytes of the answers' bodies, as received.
    pub bytes: u64,
}

pub(super) struct Client {
    agent: ureq::Agent,
    endpoint: String,
    database: String,
    user: String,
    password: String,
    description: String,
    transfer: Cell<Transfer>,
}

impl Client {
    pub(super) fn new(url: &StoreUrl) -> Client {
        let agent = ureq::Agent::config_builder()
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .http_status_as_error(false)
            .build()
            .new_agent();
        Client {
            agent,
            endpoint: url.endpoint(),
            database: url.database.clone(),
            user: url.user.clone(),
            password: url.password.clone(),
            description: url.describe(),
            transfer: Cell::new(Transfer::default()),
        }
    }

    pub(super) fn transfer(&self) -> Transfer {
        self.transfer.get()
    }

    /// Runs `sql` (which ends in `FORMAT JSONEachRow`) and hands each row's text to `row`,
    /// numbered from 1. `what` names the query in errors.
    pub(super) fn each_row(
        &self,
        what: &str,
        sql: &str,
        params: &Params,
        mut row: impl FnMut(u64, &[u8]) -> Result<()>,
    ) -> Result<u64> {
        let mut url = self.endpoint.clone();
        url.push_str("?database=");
        percent_encode(&self.database, &mut url);
        for (name, value) in &params.0 {
            url.push_str("&param_");
            url.push_str(name);
            url.push('=');
            percent_encode(value, &mut url);
        }
        let response = self
            .agent
            .post(&url)
            .header("X-ClickHouse-User", &self.user)
            .header("X-ClickHouse-Key", &self.password)
            .header("Content-Type", "text/plain; charset=utf-8")
            .send(sql.as_bytes())
            .map_err(|e| {
                anyhow!(
                    "cannot query ClickHouse at {} ({what}): {e}",
                    self.description
                )
            })?;
        let mut transfer = self.transfer.get();
        transfer.queries += 1;
        self.transfer.set(transfer);
        let status = response.status();
        let tag = response
            .headers()
            .get("X-ClickHouse-Exception-Tag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .into_body()
            .into_with_config()
            .limit(u64::MAX)
            .reader();
        let mut body = Counting {
            inner: body,
            client: self,
        };
        if !status.is_success() {
            let mut text = String::new();
            let _ = (&mut body).take(ERROR_TEXT).read_to_string(&mut text);
            bail!(
                "ClickHouse at {} refused the {what} (HTTP {}): {}",
                self.description,
                status.as_u16(),
                server_message(&text, tag.as_deref()).unwrap_or_else(|| text.trim().to_owned())
            );
        }
        let mut reader = BufReader::with_capacity(1 << 20, body);
        let mut line = Vec::new();
        let mut rows = 0u64;
        loop {
            line.clear();
            let read = reader.read_until(b'\n', &mut line);
            match read {
                Err(e) => {
                    // What came before the cut may hold the server's exception.
                    let mut tail = line.clone();
                    let _ = (&mut reader).take(ERROR_TEXT).read_to_end(&mut tail);
                    let text = String::from_utf8_lossy(&tail);
                    return Err(match server_message(&text, tag.as_deref()) {
                        Some(message) => anyhow!(
                            "ClickHouse at {} failed during the {what}, after {rows} rows: {message}",
                            self.description
                        ),
                        None => anyhow!(
                            "the answer of ClickHouse at {} to the {what} was cut off after {rows} rows: {e}",
                            self.description
                        ),
                    });
                }
                Ok(0) => break,
                Ok(_) => {}
            }
            let text = line.strip_suffix(b"\n").unwrap_or(&line);
            if text.first() == Some(&b'{')
                && text.last() == Some(&b'}')
                && !looks_like_exception(text)
            {
                rows += 1;
                if let Err(e) = row(rows, text) {
                    return Err(e.context(format!(
                        "row {rows} of the {what} from ClickHouse at {}",
                        self.description
                    )));
                }
                continue;
            }
            // Not a row: the server's exception (framed, or appended as text), or an answer
            // this reader does not understand. Either way what was read is not the answer.
            let mut tail = line.clone();
            let _ = (&mut reader).take(ERROR_TEXT).read_to_end(&mut tail);
            let tail = String::from_utf8_lossy(&tail);
            return Err(match server_message(&tail, tag.as_deref()) {
                Some(message) => anyhow!(
                    "ClickHouse at {} failed during the {what}, after {rows} rows: {message}",
                    self.description
                ),
                None => anyhow!(
                    "ClickHouse at {} answered the {what} with something other than JSONEachRow rows after {rows} rows: {:?}",
                    self.description,
                    tail.chars().take(200).collect::<String>()
                ),
            });
        }
        let mut transfer = self.transfer.get();
        transfer.rows += rows;
        self.transfer.set(transfer);
        Ok(rows)
    }
}

/// A row that is an exception written into the data (servers before 24.11 append it as text,
/// possibly inside a row they had started).
fn looks_like_exception(text: &[u8]) -> bool {
    memchr::memmem::find(text, b"DB::Exception").is_some()
        && memchr::memmem::find(text, b"Code: ").is_some()
        && serde_json::from_slice::<serde::de::IgnoredAny>(text).is_err()
}

/// The server's exception in an answer's text: `Code: N. DB::Exception: …`, without the frame
/// around it.
fn server_message(text: &str, tag: Option<&str>) -> Option<String> {
    let start = text.find("Code: ")?;
    let mut message = &text[start..];
    // A framed exception ends `\n<len> <TAG>\r\n__exception__`.
    if let Some(end) = message.find("__exception__") {
        message = &message[..end];
    }
    if let Some(tag) = tag.filter(|t| !t.is_empty())
        && let Some(end) = message.rfind(tag)
    {
        message = &message[..end];
        message = message
            .trim_end()
            .trim_end_matches(|c: char| c.is_ascii_digit());
    }
    let message = message.trim();
    (!message.is_empty()).then(|| message.chars().take(4000).collect())
}

/// Counts the bytes of an answer as they are read.
struct Counting<'c, R> {
    inner: R,
    client: &'c Client,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut transfer = self.client.transfer.get();
        transfer.bytes += n as u64;
        self.client.transfer.set(transfer);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_escaped_for_clickhouse_text_format() {
        let mut params = Params::default();
        assert_eq!(params.string("a\\b\tc'"), "{p0:String}");
        assert_eq!(params.0[0].1, "a\\\\b\\tc'");
        assert_eq!(params.strings(&["x'y", "z\\"]), "{p1:Array(String)}");
        assert_eq!(params.0[1].1, "['x\\'y','z\\\\']");
        assert_eq!(params.ints(&[499, 1]), "{p2:Array(Int64)}");
        assert_eq!(params.0[2].1, "[499,1]");
        let mut url = String::new();
        percent_encode("a b&c=d'%", &mut url);
        assert_eq!(url, "a%20b%26c%3Dd%27%25");
    }

    #[test]
    fn exceptions_are_found_in_frames_and_in_text() {
        let tagged = "{\"a\":1}\n\r\n__exception__\r\nabcdefgh12345678\r\nCode: 241. DB::Exception: Memory limit exceeded. (MEMORY_LIMIT_EXCEEDED) (version 26.9.2.1)\n119 abcdefgh12345678\r\n__exception__\r\n";
        assert_eq!(
            server_message(tagged, Some("abcdefgh12345678")).unwrap(),
            "Code: 241. DB::Exception: Memory limit exceeded. (MEMORY_LIMIT_EXCEEDED) (version 26.9.2.1)"
        );
        let plain = "{\"a\":1}\nCode: 60. DB::Exception: Unknown table. (UNKNOWN_TABLE)\n";
        assert_eq!(
            server_message(plain, None).unwrap(),
            "Code: 60. DB::Exception: Unknown table. (UNKNOWN_TABLE)"
        );
        assert!(server_message("{\"a\":1}\n", None).is_none());
        assert!(looks_like_exception(
            b"{\"a\":\"xCode: 1. DB::Exception: cut"
        ));
        assert!(!looks_like_exception(
            b"{\"a\":\"Code: 1. DB::Exception: a value\"}"
        ));
    }
}

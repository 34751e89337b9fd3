//! A store's address as the user writes it: `clickhouse://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE?table=TABLE`
//! (ClickHouse's HTTP interface, in plain HTTP; `http://` is the same), or `https://…` for TLS.

use anyhow::{Result, anyhow, bail};

/// The schemes that name a store rather than a file.
const SCHEMES: [&str; 3] = ["clickhouse://", "http://", "https://"];

/// ClickHouse's HTTP ports: 8123 plain, 8443 with TLS.
const HTTP_PORT: u16 = 8123;
const HTTPS_PORT: u16 = 8443;

/// The Collector's clickhouseexporter writes spans to `otel_traces` by default.
pub const DEFAULT_TABLE: &str = "otel_traces";

/// Whether an input names a store (by its scheme) rather than a file.
pub fn is_store_url(text: &str) -> bool {
    let lower = text.get(..14).unwrap_or(text).to_ascii_lowercase();
    SCHEMES.iter().any(|s| lower.starts_with(s))
}

/// Where the spans are and who reads them.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub database: String,
    pub table: String,
    /// From the URL, else `CLICKHOUSE_USER`, else ClickHouse's `default`.
    pub user: String,
    /// From the URL, else `CLICKHOUSE_PASSWORD`, else none.
    pub password: String,
    /// The schema the table follows (`otel`: the Collector's clickhouseexporter). The seam for
    /// other schemas (SigNoz's `signoz_index_v3`…), none of which is read yet.
    pub profile: String,
}

/// Never prints the password.
impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreUrl({} as {:?})", self.describe(), self.user)
    }
}

impl StoreUrl {
    /// Reads a store's URL; credentials the URL lacks come from `env_user` and
    /// `env_password` (`CLICKHOUSE_USER`, `CLICKHOUSE_PASSWORD`).
    pub fn parse(
        text: &str,
        env_user: Option<String>,
        env_password: Option<String>,
    ) -> Result<StoreUrl> {
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| anyhow!("{text:?} is not a store URL"))?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "clickhouse" | "http" => false,
            "https" => true,
            other => {
                bail!("unknown scheme {other:?}: expected clickhouse://, http:// or https:// (TLS)")
            }
        };
        let (authority, rest) = match rest.find(['/', '?', '#']) {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        if rest.contains('#') {
            bail!("a store URL has no fragment (`#…`)");
        }
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        let (host, port) = split_host_port(hostport)?;
        let port = match port {
            Some(port) => port,
            None if tls => HTTPS_PORT,
            None => HTTP_PORT,
        };
        let (url_user, url_password) = match userinfo {
            None => (None, None),
            Some(info) => {
                let (user, password) = match info.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (info, None),
                };
                (
                    Some(percent_decode(user)?),
                    password.map(percent_decode).transpose()?,
                )
            }
        };
        let database = path.trim_start_matches('/');
        if database.contains('/') {
            bail!("the URL's path names one database (`/otel`), not {path:?}");
        }
        let database = match percent_decode(database)? {
            d if d.is_empty() => "default".to_owned(),
            d => d,
        };
        let mut table = DEFAULT_TABLE.to_owned();
        let mut profile = "otel".to_owned();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value)?;
            match key {
                "table" if !value.is_empty() => table = value,
                "profile" => profile = value,
                "table" => bail!("`table=` names no table"),
                other => bail!(
                    "unknown URL parameter {other:?}: a store URL takes `table` (default {DEFAULT_TABLE}) and `profile` (otel)"
                ),
            }
        }
        if profile != "otel" {
            bail!(
                "profile {profile:?} is not known: only `otel` (the Collector's clickhouseexporter schema) is read"
            );
        }
        let user = url_user
            .or(env_user.filter(|u| !u.is_empty()))
            .unwrap_or_else(|| "default".to_owned());
        let password = url_password.or(env_password).unwrap_or_default();
        Ok(StoreUrl {
            tls,
            host,
            port,
            database,
            table,
            user,
            password,
            profile,
        })
    }

    /// The store as reports name it: the URL without credentials.
    pub fn describe(&self) -> String {
        let scheme = if self.tls { "https" } else { "clickhouse" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!(
            "{scheme}://{host}:{}/{}?table={}",
            self.port, self.database, self.table
        )
    }

    /// The HTTP endpoint queries are sent to.
    pub(super) fn endpoint(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{scheme}://{host}:{}/", self.port)
    }
}

fn split_host_port(hostport: &str) -> Result<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| anyhow!("{hostport:?}: an IPv6 address in brackets lacks its `]`"))?;
        match after {
            "" => (host, None),
            p => (
                host,
                Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| anyhow!("{hostport:?}: expected `:PORT` after `]`"))?,
                ),
            ),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        bail!("the store URL names no host");
    }
    if host
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        bail!("{host:?} is not a host name");
    }
    let port = port
        .map(|p| {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| anyhow!("{p:?} is not a port number"))
        })
        .transpose()?;
    Ok((host.to_owned(), port))
}

/// `%XX` escapes, as URLs write reserved characters in user names, passwords and names.
fn percent_decode(text: &str) -> Result<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| anyhow!("{text:?}: `%` must start an escape like %40"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| anyhow!("{text:?} does not decode to UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_the_endpoint_database_table_and_credentials() {
        let url = StoreUrl::parse(
            "clickhouse://ch.internal:9123/otel?table=spans",
            Some("auditor".into()),
            Some("s3cret".into()),
        )
        .unwrap();
        assert_eq!(url.endpoint(), "http://ch.internal:9123/");
        assert_eq!(
            (url.database.as_str(), url.table.as_str()),
            ("otel", "spans")
        );
        assert_eq!(
            (url.user.as_str(), url.password.as_str()),
            ("auditor", "s3cret")
        );
        assert_eq!(
            url.describe(),
            "clickhouse://ch.internal:9123/otel?table=spans"
        );

        // The URL's credentials win over the environment's, escapes decoded; none printed.
        let url = StoreUrl::parse(
            "https://me%40corp:p%3Ass@[::1]/?table=otel_traces",
            Some("other".into()),
            None,
        )
        .unwrap();
        assert!(url.tls);
        assert_eq!(url.port, 8443);
        assert_eq!(url.endpoint(), "https://[::1]:8443/");
        assert_eq!(url.database, "default");
        assert_eq!(
            (url.user.as_str(), url.password.as_str()),
            ("me@corp", "p:ss")
        );
        assert!(!format!("{url:?}").contains("p:ss"));
        assert_eq!(
            url.describe(),
            "https://[::1]:8443/default?table=otel_traces"
        );

        let url = StoreUrl::parse("http://localhost/otel", None, None).unwrap();
        assert_eq!((url.port, url.table.as_str()), (8123, "otel_traces"));
        assert_eq!(url.user, "default");
    }

    #[test]
    fn wrong_urls_are_errors_that_say_why() {
        for (url, why) in [
            ("clickhouse://h:0/db", "port"),
            ("clickhouse://h:x/db", "port"),
            ("clickhouse:///db", "no host"),
            ("clickhouse://h/a/b", "one database"),
            ("clickhouse://h/db?tabel=x", "unknown URL parameter"),
            ("clickhouse://h/db?profile=signoz", "profile"),
            ("clickhouse://h/db?table=", "names no table"),
            ("clickhouse://u:%zz@h/db", "escape"),
        ] {
            let err = StoreUrl::parse(url, None, None).unwrap_err().to_string();
            assert!(err.contains(why), "{url}: {err}");
        }
        assert!(is_store_url("ClickHouse://h/db"));
        assert!(is_store_url("https://h/db"));
        assert!(!is_store_url("traces/clickhouse.jsonl"));
    }
}

//! What would have stopped a late write, as data: the request headers that carry a deadline
//! and how their values read, what a server that honoured one records, the requests that cancel
//! work out of band (`DELETE` on the resource, a `…/cancel` route), and the vendor event types
//! and requests that reverse a write after the fact (a refund after a charge, a delete after a
//! create). The predicates that apply them to spans live beside them.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::{Rules, strings};
use crate::model::Span;
use crate::model::semconv::{
    ERROR_TYPE, EXCEPTION_EVENT, EXCEPTION_MESSAGE, EXCEPTION_TYPE, HTTP_REQUEST_METHOD,
    RPC_STATUS_CODE, URL_FULL, URL_PATH,
};
use crate::model::time::parse_rfc3339;
use crate::rules::evidence::http_status;
use crate::util::text::glob;
use crate::util::units::parse_duration;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PreventionRules {
    pub deadline: DeadlineRules,
    pub cancel: CancelRules,
    pub compensation: CompensationRules,
}

/// How a deadline header's value reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadlineFormat {
    /// gRPC's `grpc-timeout`: up to 8 digits and a unit (`H`, `M`, `S`, `m`, `u`, `n`), after
    /// the request's start.
    GrpcTimeout,
    /// Milliseconds after the request's start (`x-envoy-expected-rq-timeout-ms`).
    Milliseconds,
    /// Seconds after the request's start, a fraction allowed; a duration with a unit
    /// (`250ms`) reads too.
    Seconds,
    /// An absolute time: RFC 3339, or Unix seconds, milliseconds, microseconds or
    /// nanoseconds, told apart by magnitude.
    Timestamp,
}

impl DeadlineFormat {
    pub const ALL: [DeadlineFormat; 4] = [
        DeadlineFormat::GrpcTimeout,
        DeadlineFormat::Milliseconds,
        DeadlineFormat::Seconds,
        DeadlineFormat::Timestamp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeadlineFormat::GrpcTimeout => "grpc_timeout",
            DeadlineFormat::Milliseconds => "milliseconds",
            DeadlineFormat::Seconds => "seconds",
            DeadlineFormat::Timestamp => "timestamp",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadlineHeader {
    /// The header's name, as sent (compared without case).
    pub name: String,
    pub format: DeadlineFormat,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeadlineRules {
    /// Request headers that carry a deadline. Looked for on the request's client and server
    /// spans as `{prefix}{name}` for each of `attribute_prefixes`, the name in lower case, with
    /// `-` as it is and as `_` (OpenTelemetry Python's header capture writes `_`).
    pub headers: Vec<DeadlineHeader>,
    pub attribute_prefixes: Vec<String>,
    /// What a server that gave up because the deadline had passed records: an HTTP status, a
    /// gRPC status, or text in `error.type`, the status message or an exception
    /// (case-insensitive substring).
    pub exceeded_status_codes: Vec<i64>,
    pub exceeded_rpc_codes: Vec<String>,
    pub exceeded_markers: Vec<String>,
}

impl Default for DeadlineRules {
    fn default() -> Self {
        let header = |name: &str, format| DeadlineHeader {
            name: name.to_owned(),
            format,
        };
        DeadlineRules {
            headers: vec![
                header("grpc-timeout", DeadlineFormat::GrpcTimeout),
                header("request-timeout", DeadlineFormat::Seconds),
                header("x-request-deadline", DeadlineFormat::Timestamp),
                header(
                    "x-envoy-expected-rq-timeout-ms",
                    DeadlineFormat::Milliseconds,
                ),
                header("connect-timeout-ms", DeadlineFormat::Milliseconds),
            ],
            attribute_prefixes: strings(&["http.request.header.", "rpc.grpc.request.metadata."]),
            exceeded_status_codes: vec![504],
            exceeded_rpc_codes: strings(&["4", "DEADLINE_EXCEEDED"]),
            exceeded_markers: strings(&[
                "deadline exceeded",
                "deadline_exceeded",
                "DeadlineExceeded",
                "deadline has passed",
            ]),
        }
    }
}

impl DeadlineRules {
    /// Every span attribute a deadline header may be captured as.
    pub fn attributes(&self) -> impl Iterator<Item = (String, &DeadlineHeader)> + '_ {
        self.headers.iter().flat_map(move |header| {
            let name = header.name.to_ascii_lowercase();
            let underscored = name.replace('-', "_");
            self.attribute_prefixes.iter().flat_map(move |prefix| {
                let mut keys = vec![format!("{prefix}{name}")];
                if underscored != name {
                    keys.push(format!("{prefix}{underscored}"));
                }
                keys.into_iter().map(move |k| (k, header))
            })
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CancelRules {
    /// Methods of a request that cancels what its URL names (`DELETE /v1/jobs/{id}`).
    pub methods: Vec<String>,
    /// URL paths of a request that cancels what they name (`*` matches any run of
    /// characters): `POST /v1/runs/{id}/cancel`.
    pub routes: Vec<String>,
    /// Span attributes that hold the id of what a request created, besides the join keys
    /// (`[join]`); a value that is a path or URL (a `Location` header) gives its last segment.
    pub id_attributes: Vec<String>,
}

impl Default for CancelRules {
    fn default() -> Self {
        CancelRules {
            methods: strings(&["DELETE"]),
            routes: strings(&[
                "*/cancel",
                "*:cancel",
                "*/cancellation",
                "*/abort",
                "*:abort",
            ]),
            id_attributes: strings(&[
                "http.response.header.location",
                "http.response.header.content-location",
            ]),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompensationRules {
    /// Vendor event types (`*` matches any run) that reverse an earlier write of the same
    /// vendor: about the same subject, or naming it among their object ids (Stripe's refund
    /// names its payment intent).
    pub event_types: Vec<String>,
    /// Methods and URL paths of a request that reverses what its URL names, after it
    /// committed.
    pub methods: Vec<String>,
    pub routes: Vec<String>,
}

impl Default for CompensationRules {
    fn default() -> Self {
        CompensationRules {
            event_types: strings(&[
                "*.refunded",
                "refund.created",
                "refund.succeeded",
                "*.reversed",
                "*.voided",
                "*.deleted",
            ]),
            methods: strings(&["DELETE"]),
            routes: strings(&["*/refund", "*/refunds", "*/reverse", "*/reversal", "*/void"]),
        }
    }
}

/// A deadline a request carried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deadline {
    /// The attribute it was read from, and its value as captured.
    pub attribute: String,
    pub value: String,
    /// When it passes, Unix nanoseconds.
    pub at: u64,
}

/// The deadline a span's request carried, if a header the rules name was captured on it. A
/// relative value counts from the span's start.
pub fn deadline_of(span: &Span, rules: &Rules) -> Option<Deadline> {
    let deadline = &rules.prevention.deadline;
    // The keys of `DeadlineRules::attributes`, in their order, matched without building them
    // (this runs for every span of every tool call, and most spans have no such key).
    let prefixes = &deadline.attribute_prefixes;
    if !span
        .attributes
        .iter()
        .any(|kv| prefixes.iter().any(|p| kv.key.starts_with(p.as_str())))
    {
        return None;
    }
    for header in &deadline.headers {
        for prefix in prefixes {
            for underscored in [false, true] {
                if underscored && !header.name.contains('-') {
                    continue;
                }
                let Some(kv) = span
                    .attributes
                    .iter()
                    .find(|kv| is_header_key(&kv.key, prefix, &header.name, underscored))
                else {
                    continue;
                };
                let Some(value) = kv.value.as_text() else {
                    continue;
                };
                if let Some(at) = deadline_at(&value, header.format, span.start) {
                    return Some(Deadline {
                        attribute: kv.key.to_string(),
                        value: value.into_owned(),
                        at,
                    });
                }
            }
        }
    }
    None
}

/// Whether `key` is `{prefix}{name}` with the header's name in lower case, and its `-` as `_`
/// when `underscored`: a key of `DeadlineRules::attributes`.
fn is_header_key(key: &str, prefix: &str, name: &str, underscored: bool) -> bool {
    let Some(rest) = key.strip_prefix(prefix) else {
        return false;
    };
    rest.len() == name.len()
        && rest.bytes().zip(name.bytes()).all(|(k, n)| {
            let n = n.to_ascii_lowercase();
            k == if underscored && n == b'-' { b'_' } else { n }
        })
}

/// When a deadline header's value passes, for a request that started at `start`.
pub fn deadline_at(value: &str, format: DeadlineFormat, start: u64) -> Option<u64> {
    let value = value.trim();
    let relative = match format {
        DeadlineFormat::GrpcTimeout => {
            let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
            if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            let scale: u64 = match unit {
                "H" => 3_600_000_000_000,
                "M" => 60_000_000_000,
                "S" => 1_000_000_000,
                "m" => 1_000_000,
                "u" => 1_000,
                "n" => 1,
                _ => return None,
            };
            digits.parse::<u64>().ok()?.checked_mul(scale)?
        }
        DeadlineFormat::Milliseconds => parse_duration(&format!("{value}ms")).ok()?,
        DeadlineFormat::Seconds => {
            let unitless = value.bytes().all(|b| b.is_ascii_digit() || b == b'.');
            if unitless {
                parse_duration(&format!("{value}s")).ok()?
            } else {
                parse_duration(value).ok()?
            }
        }
        DeadlineFormat::Timestamp => return timestamp(value),
    };
    start.checked_add(relative)
}

/// An absolute time: RFC 3339, or a Unix time whose unit its magnitude tells.
fn timestamp(value: &str) -> Option<u64> {
    if let Ok((time, _)) = parse_rfc3339(value) {
        return Some(time);
    }
    if let Some((whole, fraction)) = value.split_once('.') {
        // Unix seconds with a fraction.
        let nanos = parse_duration(&format!("{whole}.{fraction}s")).ok()?;
        return Some(nanos);
    }
    let n: u64 = value.parse().ok()?;
    Some(match n {
        n if n >= 100_000_000_000_000_000 => n,
        n if n >= 100_000_000_000_000 => n.checked_mul(1_000)?,
        n if n >= 100_000_000_000 => n.checked_mul(1_000_000)?,
        n => n.checked_mul(1_000_000_000)?,
    })
}

/// What on a server span says it gave up because the deadline had passed, in the span's words.
pub fn deadline_exceeded_marker(span: &Span, rules: &Rules) -> Option<String> {
    let deadline = &rules.prevention.deadline;
    if let Some(status) = http_status(span).filter(|s| deadline.exceeded_status_codes.contains(s)) {
        return Some(format!("HTTP status {status}"));
    }
    if let Some(code) = RPC_STATUS_CODE
        .iter()
        .find_map(|k| span.attributes.text(k))
        .filter(|c| {
            deadline
                .exceeded_rpc_codes
                .iter()
                .any(|want| want.eq_ignore_ascii_case(c))
        })
    {
        return Some(format!("RPC status {code}"));
    }
    let mut texts: Vec<Cow<'_, str>> = Vec::new();
    texts.extend(span.attributes.text(ERROR_TYPE));
    texts.push(Cow::Borrowed(&span.status.message));
    for event in span.events.iter().filter(|e| e.name == EXCEPTION_EVENT) {
        for key in [EXCEPTION_TYPE, EXCEPTION_MESSAGE] {
            texts.extend(event.attributes.text(key));
        }
    }
    texts.into_iter().find_map(|text| {
        let lower = text.to_ascii_lowercase();
        deadline
            .exceeded_markers
            .iter()
            .any(|m| lower.contains(&m.to_ascii_lowercase()))
            .then(|| text.into_owned())
    })
}

/// A request's URL path: `url.path` (or `http.target`), else the path of `url.full`.
pub fn url_path(span: &Span) -> Option<String> {
    if let Some(path) = URL_PATH.iter().find_map(|k| span.attributes.text(k)) {
        return Some(path.split(['?', '#']).next().unwrap_or("").to_owned());
    }
    let full = URL_FULL.iter().find_map(|k| span.attributes.text(k))?;
    Some(path_of_url(&full).to_owned())
}

/// The path of a URL (`https://host/a/b?q` → `/a/b`); a path is its own.
fn path_of_url(url: &str) -> &str {
    let rest = match url.find("://") {
        Some(scheme) => {
            let after = &url[scheme + 3..];
            match after.find('/') {
                Some(slash) => &after[slash..],
                None => "",
            }
        }
        None => url,
    };
    rest.split(['?', '#']).next().unwrap_or("")
}

/// The last segment of a path or URL: the id of the resource it names.
pub fn last_segment(text: &str) -> &str {
    path_of_url(text)
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("")
}

/// Whether a path names an id: one of its segments is the id, or starts with it followed by
/// `:` (`/v1/runs/run_1:cancel`).
pub fn path_names(path: &str, id: &str) -> bool {
    !id.is_empty()
        && path.split('/').any(|segment| {
            segment == id
                || segment
                    .strip_prefix(id)
                    .is_some_and(|rest| rest.starts_with(':'))
        })
}

/// The method of a request, upper-cased.
fn method(span: &Span) -> Option<String> {
    HTTP_REQUEST_METHOD
        .iter()
        .find_map(|k| span.attributes.text(k))
        .map(|m| m.to_ascii_uppercase())
}

/// How a request matches a list of methods and routes: `DELETE`, or the route pattern its
/// path matched.
fn matches_request(span: &Span, methods: &[String], routes: &[String]) -> Option<String> {
    let method = method(span)?;
    if methods.iter().any(|m| m.eq_ignore_ascii_case(&method)) {
        return Some(method);
    }
    let path = url_path(span)?;
    routes
        .iter()
        .find(|r| glob(r, &path))
        .map(|r| format!("{method} {r}"))
}

/// Whether a request cancels what its URL names: its method or route, in words.
pub fn cancel_request(span: &Span, rules: &Rules) -> Option<String> {
    let cancel = &rules.prevention.cancel;
    matches_request(span, &cancel.methods, &cancel.routes)
}

/// Whether a request reverses what its URL names.
pub fn reversing_request(span: &Span, rules: &Rules) -> Option<String> {
    let compensation = &rules.prevention.compensation;
    matches_request(span, &compensation.methods, &compensation.routes)
}

/// Whether a vendor event type reverses a write.
pub fn compensating_event(kind: &str, rules: &Rules) -> bool {
    rules
        .prevention
        .compensation
        .event_types
        .iter()
        .any(|p| glob(p, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: u64 = 1_000_000_000_000;

    #[test]
    fn deadline_values_read_in_each_format() {
        use DeadlineFormat::*;
        let at = |v: &str, f| deadline_at(v, f, START).map(|t| t as i128 - START as i128);
        assert_eq!(at("100m", GrpcTimeout), Some(100_000_000));
        assert_eq!(at("2S", GrpcTimeout), Some(2_000_000_000));
        assert_eq!(at("1H", GrpcTimeout), Some(3_600_000_000_000));
        assert_eq!(at("123456789m", GrpcTimeout), None, "more than 8 digits");
        assert_eq!(at("10x", GrpcTimeout), None);
        assert_eq!(at("m", GrpcTimeout), None);
        assert_eq!(at("400", Milliseconds), Some(400_000_000));
        assert_eq!(at("0.4", Seconds), Some(400_000_000));
        assert_eq!(at("2", Seconds), Some(2_000_000_000));
        assert_eq!(at("250ms", Seconds), Some(250_000_000));
        assert_eq!(at("soon", Seconds), None);
        let ts = |v: &str| deadline_at(v, Timestamp, START);
        assert_eq!(
            ts("2026-11-25T16:16:10.5Z"),
            Some(1_795_623_370_500_000_000)
        );
        assert_eq!(ts("1795623370"), Some(1_795_623_370_000_000_000));
        assert_eq!(ts("1795623370500"), Some(1_795_623_370_500_000_000));
        assert_eq!(ts("1795623370500000"), Some(1_795_623_370_500_000_000));
        assert_eq!(ts("1795623370500000000"), Some(1_795_623_370_500_000_000));
        assert_eq!(ts("1795623370.25"), Some(1_795_623_370_250_000_000));
        assert_eq!(ts("tomorrow"), None);
    }

    #[test]
    fn header_attributes_cover_both_spellings_and_every_prefix() {
        let rules = DeadlineRules::default();
        let keys: Vec<String> = rules.attributes().map(|(k, _)| k).collect();
        for key in [
            "http.request.header.grpc-timeout",
            "http.request.header.grpc_timeout",
            "rpc.grpc.request.metadata.grpc-timeout",
            "http.request.header.x_request_deadline",
            "http.request.header.x-envoy-expected-rq-timeout-ms",
        ] {
            assert!(keys.iter().any(|k| k == key), "{key}");
        }
    }

    #[test]
    fn a_deadline_is_read_under_every_key_the_attributes_list_and_no_other() {
        use crate::testutil::span;
        let mut rules = Rules::default();
        // A header name in mixed case is looked for in lower case.
        rules.prevention.deadline.headers[1].name = "Request-Timeout".to_owned();
        let keys: Vec<(String, DeadlineFormat)> = rules
            .prevention
            .deadline
            .attributes()
            .map(|(k, h)| (k, h.format))
            .collect();
        for (key, format) in &keys {
            let value = match format {
                DeadlineFormat::GrpcTimeout => "2S",
                DeadlineFormat::Timestamp => "1795623370",
                _ => "2",
            };
            let s = span(1, 1, "POST", "api", 0, 10)
                .attr("other", "x")
                .attr(key, value)
                .build();
            let found = deadline_of(&s, &rules).expect(key);
            assert_eq!(
                (found.attribute.as_str(), found.value.as_str()),
                (key.as_str(), value)
            );
            let upper = span(1, 1, "POST", "api", 0, 10)
                .attr(&key.to_uppercase(), value)
                .build();
            assert_eq!(deadline_of(&upper, &rules), None, "{key}");
        }
        // The first key in the attributes' order whose value reads wins.
        let s = span(1, 1, "POST", "api", 0, 10)
            .attr(&keys[2].0, "2")
            .attr(&keys[0].0, "soon")
            .attr(&keys[1].0, "3S")
            .build();
        assert_eq!(deadline_of(&s, &rules).unwrap().attribute, keys[1].0);
        assert_eq!(
            deadline_of(&span(1, 1, "POST", "api", 0, 10).build(), &rules),
            None
        );
    }

    #[test]
    fn paths_name_ids_by_whole_segments() {
        assert!(path_names("/v1/payouts/job_1", "job_1"));
        assert!(path_names("/v1/runs/job_1/cancel", "job_1"));
        assert!(path_names("/v1/runs/job_1:cancel", "job_1"));
        assert!(!path_names("/v1/payouts/job_10", "job_1"));
        assert!(!path_names("/v1/payouts", ""));
        assert_eq!(last_segment("https://x.test/v1/jobs/j_9?x=1"), "j_9");
        assert_eq!(last_segment("/v1/jobs/j_9/"), "j_9");
        assert_eq!(path_of_url("http://127.0.0.1:80/a/b?c"), "/a/b");
        assert_eq!(path_of_url("http://127.0.0.1:80"), "");
    }
}

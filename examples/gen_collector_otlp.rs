//! Deterministic generator of OTLP/JSON Lines in the OpenTelemetry Collector file exporter's
//! shape, for the benchmark (`bench/run.sh`).
//!
//! ```sh
//! cargo run --release --example gen_collector_otlp -- --size 100MB --seed 42 --out /tmp/bench.jsonl
//! ```
//!
//! What it simulates: a support agent (`support-agent`, Python) holding conversations of several
//! turns; each turn is one trace: an `invoke_agent` root, `chat` spans, `execute_tool` spans whose
//! HTTP client spans reach instrumented services (`payments-api`, `mailer`, `orders-api`,
//! `conversation-store`) or uninstrumented vendors (Twilio, a search SaaS), with database spans
//! (BEGIN/INSERT/UPDATE/COMMIT, SELECT, Redis) under the servers, and queues: a 202 answer with a
//! PRODUCER span, and a CONSUMER span in a new trace (`payments-worker`, `mailer-worker`) linked to
//! the producer, with the worker's writes under it. About 10% of turns are aborted by the user
//! (`--aborted PERMILLE`: 100 by default, 500 aborts half of them); the
//! abort lands while a tool call is in flight (the vendor commits 100-900 ms later: client gone;
//! or rolls back: pre-commit abort; or an uninstrumented vendor: unverified), after a queued tool
//! call returned 202 (the worker runs later: late queued), during a model call (the runtime then
//! ignores it and dispatches a tool call: dispatched after abort), or during a model call with
//! nothing in flight (no finding).
//!
//! `--genai` gives the export the shape GenAI instrumentations write (OpenInference, OpenLLMetry,
//! the GenAI semantic conventions with content capture on): every span of a turn's trace carries
//! the conversation id (as a baggage span processor copies it), and the model calls carry the
//! messages, as `gen_ai.input.messages`/`gen_ai.output.messages` JSON held in string attributes
//! and as `gen_ai.user.message`/`gen_ai.choice` events: escaped text (quotes, newlines, JSON within
//! JSON, non-ASCII), with now and then a stack trace. The turns, aborts and writes are those of the
//! same seed without it (the content is drawn from a random stream of its own), so the expected
//! findings are the same ones; only the bytes per span grow, and the size is reached sooner.
//!
//! The spans are exported as BatchSpanProcessors and a Collector would write them: each service
//! instance flushes what ended in the last 5 s, the Collector merges the batches, and each line is
//! one `{"resourceSpans":[…]}` of 200-500 spans of many traces, grouped by resource and scope.
//! Children therefore come before their parents, and a trace spreads over consecutive lines.
//!
//! Next to the output it writes `<out>.truth.json`: what was generated, the late writes per
//! conversation by the naive time filter of `bench/README.md`, and every finding the real audit
//! should report. Same seed and size, same bytes: the only randomness is the seeded SplitMix64
//! below, and every collection that is iterated is ordered.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap};
use std::fmt::Write as _;
use std::io::{BufWriter, Write as _};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde_json::json;

const US: u64 = 1_000;
const MS: u64 = 1_000_000;
const SEC: u64 = 1_000_000_000;
/// 2026-11-26T00:00:00Z: the day the simulated exports start.
const DAY_START: u64 = 1_795_651_200 * SEC;
/// BatchSpanProcessor schedule delay.
const FLUSH_INTERVAL: u64 = 5 * SEC;
/// No write of an aborted turn commits within this distance of its abort, so that no expected
/// answer depends on the clock-skew tolerance (10 ms by default) or on which side of the abort a
/// sub-millisecond difference falls.
const GUARD: u64 = 50 * MS;
const SCHEMA_URL: &str = "https://opentelemetry.io/schemas/1.34.0";

// ---------------------------------------------------------------------------------------------
// Randomness: SplitMix64, integer-only, so the same seed gives the same bytes everywhere.

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `permille / 1000`.
    fn chance(&mut self, permille: u64) -> bool {
        self.below(1000) < permille
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// Picks by weight: `items` are `(weight, value)`.
    fn weighted<T: Copy>(&mut self, items: &[(u64, T)]) -> T {
        let total: u64 = items.iter().map(|(w, _)| w).sum();
        let mut roll = self.below(total);
        for (w, item) in items {
            if roll < *w {
                return *item;
            }
            roll -= w;
        }
        items[items.len() - 1].1
    }

    fn hex(&mut self, bytes: usize) -> String {
        let mut out = String::with_capacity(bytes * 2);
        while out.len() < bytes * 2 {
            let _ = write!(out, "{:016x}", self.next());
        }
        out.truncate(bytes * 2);
        out
    }

    fn base62(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        (0..len)
            .map(|_| ALPHABET[self.below(62) as usize] as char)
            .collect()
    }

    fn uuid(&mut self) -> String {
        let h = self.hex(16);
        format!(
            "{}-{}-4{}-{}{}-{}",
            &h[0..8],
            &h[8..12],
            &h[13..16],
            ["8", "9", "a", "b"][self.below(4) as usize],
            &h[17..20],
            &h[20..32]
        )
    }

    fn ip(&mut self) -> String {
        format!(
            "10.{}.{}.{}",
            self.range(0, 3),
            self.range(0, 255),
            self.range(2, 254)
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The span model of the generator, and its OTLP/JSON (lowerCamelCase, hex ids, u64 as strings,
// enums as integers: what the Collector's file exporter writes).

enum V {
    S(String),
    I(i64),
    D(&'static str),
    B(bool),
    A(Vec<String>),
}

type Attrs = Vec<(&'static str, V)>;

fn s(text: impl Into<String>) -> V {
    V::S(text.into())
}

fn i(n: u64) -> V {
    V::I(n as i64)
}

fn arr(text: impl Into<String>) -> V {
    V::A(vec![text.into()])
}

struct Event {
    time: u64,
    name: &'static str,
    attrs: Attrs,
}

struct Link {
    trace: String,
    span: String,
    attrs: Attrs,
}

const INTERNAL: u8 = 1;
const SERVER: u8 = 2;
const CLIENT: u8 = 3;
const PRODUCER: u8 = 4;
const CONSUMER: u8 = 5;

struct Span {
    trace: String,
    id: String,
    parent: Option<String>,
    /// The parent is in another process (a server span, a consumer).
    remote_parent: bool,
    name: String,
    kind: u8,
    start: u64,
    end: u64,
    attrs: Attrs,
    events: Vec<Event>,
    links: Vec<Link>,
    /// `(code, message)`; `None` is an unset status.
    status: Option<(u8, String)>,
    res: usize,
    scope: Scope,
    /// A database `COMMIT`: what the naive time filter counts.
    is_commit: bool,
}

impl Span {
    fn shift(&mut self, by: u64) {
        self.start += by;
        self.end += by;
        for e in &mut self.events {
            e.time += by;
        }
    }
}

/// JSON as Python's `json.dumps` writes it by default (`ensure_ascii`): every non-ASCII
/// character as a `\\u` escape, a surrogate pair beyond the BMP; what Python instrumentations
/// put in their message attributes.
fn ascii_json(value: &serde_json::Value) -> String {
    let mut out = String::new();
    for c in value.to_string().chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        }
    }
    out
}

fn push_str(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn push_value(out: &mut String, value: &V) {
    match value {
        V::S(text) => {
            out.push_str("{\"stringValue\":");
            push_str(out, text);
            out.push('}');
        }
        V::I(n) => {
            let _ = write!(out, "{{\"intValue\":\"{n}\"}}");
        }
        V::D(d) => {
            let _ = write!(out, "{{\"doubleValue\":{d}}}");
        }
        V::B(b) => {
            let _ = write!(out, "{{\"boolValue\":{b}}}");
        }
        V::A(items) => {
            out.push_str("{\"arrayValue\":{\"values\":[");
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                out.push_str("{\"stringValue\":");
                push_str(out, item);
                out.push('}');
            }
            out.push_str("]}}");
        }
    }
}

fn push_attrs(out: &mut String, attrs: &[(&'static str, V)]) {
    out.push('[');
    for (n, (key, value)) in attrs.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push_str("{\"key\":");
        push_str(out, key);
        out.push_str(",\"value\":");
        push_value(out, value);
        out.push('}');
    }
    out.push(']');
}

fn span_json(span: &Span) -> String {
    let mut out = String::with_capacity(1024);
    let _ = write!(
        out,
        "{{\"traceId\":\"{}\",\"spanId\":\"{}\"",
        span.trace, span.id
    );
    if let Some(parent) = &span.parent {
        let _ = write!(out, ",\"parentSpanId\":\"{parent}\"");
    }
    let flags = if span.remote_parent { 769 } else { 257 };
    let _ = write!(out, ",\"flags\":{flags},\"name\":");
    push_str(&mut out, &span.name);
    let _ = write!(
        out,
        ",\"kind\":{},\"startTimeUnixNano\":\"{}\",\"endTimeUnixNano\":\"{}\",\"attributes\":",
        span.kind, span.start, span.end
    );
    push_attrs(&mut out, &span.attrs);
    if !span.events.is_empty() {
        out.push_str(",\"events\":[");
        for (n, e) in span.events.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            let _ = write!(out, "{{\"timeUnixNano\":\"{}\",\"name\":", e.time);
            push_str(&mut out, e.name);
            if !e.attrs.is_empty() {
                out.push_str(",\"attributes\":");
                push_attrs(&mut out, &e.attrs);
            }
            out.push('}');
        }
        out.push(']');
    }
    if !span.links.is_empty() {
        out.push_str(",\"links\":[");
        for (n, l) in span.links.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                "{{\"traceId\":\"{}\",\"spanId\":\"{}\"",
                l.trace, l.span
            );
            if !l.attrs.is_empty() {
                out.push_str(",\"attributes\":");
                push_attrs(&mut out, &l.attrs);
            }
            out.push_str(",\"flags\":769}");
        }
        out.push(']');
    }
    match &span.status {
        None => out.push_str(",\"status\":{}"),
        Some((code, message)) => {
            out.push_str(",\"status\":{\"message\":");
            push_str(&mut out, message);
            let _ = write!(out, ",\"code\":{code}}}");
        }
    }
    out.push('}');
    out
}

// ---------------------------------------------------------------------------------------------
// Services, their instances (one resource each) and instrumentation scopes.

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Svc {
    Agent,
    Payments,
    PaymentsWorker,
    Mailer,
    MailerWorker,
    Orders,
    ConversationStore,
}

struct ServiceInfo {
    svc: Svc,
    name: &'static str,
    instances: usize,
    language: &'static str,
    sdk_version: &'static str,
    version: &'static str,
    runtime: &'static str,
    runtime_version: &'static str,
}

const SERVICES: &[ServiceInfo] = &[
    ServiceInfo {
        svc: Svc::Agent,
        name: "support-agent",
        instances: 3,
        language: "python",
        sdk_version: "1.34.1",
        version: "2026.11.3",
        runtime: "cpython",
        runtime_version: "3.12.7",
    },
    ServiceInfo {
        svc: Svc::Payments,
        name: "payments-api",
        instances: 2,
        language: "python",
        sdk_version: "1.34.1",
        version: "4.18.0",
        runtime: "cpython",
        runtime_version: "3.12.7",
    },
    ServiceInfo {
        svc: Svc::PaymentsWorker,
        name: "payments-worker",
        instances: 2,
        language: "python",
        sdk_version: "1.34.1",
        version: "4.18.0",
        runtime: "cpython",
        runtime_version: "3.12.7",
    },
    ServiceInfo {
        svc: Svc::Mailer,
        name: "mailer",
        instances: 2,
        language: "go",
        sdk_version: "1.37.0",
        version: "1.9.2",
        runtime: "go",
        runtime_version: "go1.24.4",
    },
    ServiceInfo {
        svc: Svc::MailerWorker,
        name: "mailer-worker",
        instances: 1,
        language: "go",
        sdk_version: "1.37.0",
        version: "1.9.2",
        runtime: "go",
        runtime_version: "go1.24.4",
    },
    ServiceInfo {
        svc: Svc::Orders,
        name: "orders-api",
        instances: 2,
        language: "java",
        sdk_version: "1.51.0",
        version: "3.2.7",
        runtime: "OpenJDK Runtime Environment",
        runtime_version: "21.0.7+6-LTS",
    },
    ServiceInfo {
        svc: Svc::ConversationStore,
        name: "conversation-store",
        instances: 1,
        language: "nodejs",
        sdk_version: "2.0.1",
        version: "0.14.1",
        runtime: "nodejs",
        runtime_version: "22.16.0",
    },
];

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Scope {
    AgentRuntime,
    OpenAi,
    Httpx,
    FastApi,
    Psycopg,
    AioPika,
    OtelHttp,
    Pgx,
    Sarama,
    SpringWebMvc,
    Jdbc,
    NodeHttp,
    IoRedis,
    WorkerJobs,
}

impl Scope {
    fn name_version(self) -> (&'static str, &'static str) {
        match self {
            Scope::AgentRuntime => ("support-agent.runtime", "2026.11.3"),
            Scope::OpenAi => ("opentelemetry.instrumentation.openai_v2", "2.1b0"),
            Scope::Httpx => ("opentelemetry.instrumentation.httpx", "0.55b1"),
            Scope::FastApi => ("opentelemetry.instrumentation.fastapi", "0.55b1"),
            Scope::Psycopg => ("opentelemetry.instrumentation.psycopg", "0.55b1"),
            Scope::AioPika => ("opentelemetry.instrumentation.aio_pika", "0.55b1"),
            Scope::OtelHttp => (
                "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp",
                "0.62.0",
            ),
            Scope::Pgx => ("github.com/exaring/otelpgx", "0.9.3"),
            Scope::Sarama => (
                "go.opentelemetry.io/contrib/instrumentation/github.com/IBM/sarama/otelsarama",
                "0.43.0",
            ),
            Scope::SpringWebMvc => ("io.opentelemetry.spring-webmvc-6.0", "2.17.0-alpha"),
            Scope::Jdbc => ("io.opentelemetry.jdbc", "2.17.0-alpha"),
            Scope::NodeHttp => ("@opentelemetry/instrumentation-http", "0.202.0"),
            Scope::IoRedis => ("@opentelemetry/instrumentation-ioredis", "0.50.0"),
            Scope::WorkerJobs => ("payments-worker.jobs", "4.18.0"),
        }
    }

    fn json(self) -> String {
        let (name, version) = self.name_version();
        let mut out = String::from("{\"name\":");
        push_str(&mut out, name);
        out.push_str(",\"version\":");
        push_str(&mut out, version);
        out.push('}');
        out
    }
}

struct Resource {
    svc: Svc,
    /// `{"attributes":[…]}`
    json: String,
    /// When this instance's BatchSpanProcessor flushes, within each interval.
    phase: u64,
    ip: String,
}

fn build_resources(rng: &mut Rng) -> Vec<Resource> {
    let mut out = Vec::new();
    for info in SERVICES {
        for _ in 0..info.instances {
            let pod = format!(
                "{}-{}-{}",
                info.name,
                rng.base62(10).to_lowercase(),
                rng.base62(5).to_lowercase()
            );
            let node = format!(
                "ip-10-0-{}-{}.eu-west-1.compute.internal",
                rng.range(0, 3),
                rng.range(2, 254)
            );
            let attrs: Attrs = vec![
                ("service.name", s(info.name)),
                ("service.namespace", s("support")),
                ("service.version", s(info.version)),
                ("service.instance.id", s(rng.uuid())),
                ("deployment.environment.name", s("production")),
                ("host.name", s(pod.clone())),
                ("k8s.namespace.name", s("support-prod")),
                ("k8s.pod.name", s(pod)),
                ("k8s.deployment.name", s(info.name)),
                ("k8s.node.name", s(node)),
                ("cloud.provider", s("aws")),
                ("cloud.region", s("eu-west-1")),
                ("process.runtime.name", s(info.runtime)),
                ("process.runtime.version", s(info.runtime_version)),
                ("telemetry.sdk.name", s("opentelemetry")),
                ("telemetry.sdk.language", s(info.language)),
                ("telemetry.sdk.version", s(info.sdk_version)),
            ];
            let mut json = String::from("{\"attributes\":");
            push_attrs(&mut json, &attrs);
            json.push('}');
            out.push(Resource {
                svc: info.svc,
                json,
                phase: rng.below(FLUSH_INTERVAL),
                ip: rng.ip(),
            });
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Export order: a min-heap on (flush time of the span's instance, end time, sequence).

struct Pending {
    flush: u64,
    end: u64,
    seq: u64,
    res: usize,
    scope: Scope,
    json: String,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.flush, self.end, self.seq).cmp(&(other.flush, other.end, other.seq))
    }
}

// ---------------------------------------------------------------------------------------------
// Ground truth.

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Scenario {
    ClientGone,
    PreCommitAbort,
    LateQueued,
    DispatchedAfterAbort,
    Unverified,
    NothingInFlight,
}

impl Scenario {
    fn as_str(self) -> &'static str {
        match self {
            Scenario::ClientGone => "client_gone",
            Scenario::PreCommitAbort => "pre_commit_abort",
            Scenario::LateQueued => "late_queued",
            Scenario::DispatchedAfterAbort => "dispatched_after_abort",
            Scenario::Unverified => "unverified",
            Scenario::NothingInFlight => "nothing_in_flight",
        }
    }
}

/// A commit point downstream of a tool call (or a rollback, for the pre-commit aborts).
struct WriteRec {
    /// The span that commits: a `COMMIT`, an auto-committed statement, or the `ROLLBACK`.
    span_id: String,
    time: u64,
    /// Reached through a span link (a queue worker), not parent/child.
    via_link: bool,
    rolled_back: bool,
}

struct ToolRec {
    name: &'static str,
    call_id: String,
    start: u64,
    /// Cancelled by the abort while its request was in flight.
    in_flight: bool,
    /// A server span (or a consumer) of its request exists.
    has_downstream: bool,
    writes: Vec<WriteRec>,
}

struct Expected {
    conversation: String,
    trace: String,
    tool_call_id: String,
    tool_name: &'static str,
    category: &'static str,
    late: bool,
    join: Option<&'static str>,
    write_span_id: Option<String>,
    write_time: Option<u64>,
    abort: u64,
}

#[derive(Default)]
struct Truth {
    conversations: u64,
    turns: u64,
    aborted_turns: u64,
    worker_traces: u64,
    tool_calls: u64,
    scenarios: BTreeMap<&'static str, u64>,
    /// Naive time filter: COMMIT spans after the abort in the aborted trace, per conversation.
    time_filter: BTreeMap<String, u64>,
    expected: Vec<Expected>,
    committed_before_abort: u64,
    tool_calls_at_risk: u64,
}

// ---------------------------------------------------------------------------------------------
// The simulation.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tool {
    LookupOrder,
    SearchDocs,
    CreatePayment,
    IssueRefund,
    SchedulePayout,
    SendEmail,
    SendSms,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::LookupOrder => "lookup_order",
            Tool::SearchDocs => "search_docs",
            Tool::CreatePayment => "create_payment",
            Tool::IssueRefund => "issue_refund",
            Tool::SchedulePayout => "schedule_payout",
            Tool::SendEmail => "send_email",
            Tool::SendSms => "send_sms",
        }
    }

    fn description(self) -> &'static str {
        match self {
            Tool::LookupOrder => "Look up an order and its items by order id",
            Tool::SearchDocs => "Search the help center articles",
            Tool::CreatePayment => "Charge the customer's saved payment method",
            Tool::IssueRefund => "Refund a payment, fully or partially",
            Tool::SchedulePayout => "Schedule a payout to the customer's bank account",
            Tool::SendEmail => "Send an e-mail to the customer",
            Tool::SendSms => "Send a text message to the customer's phone",
        }
    }
}

const NORMAL_TOOLS: &[(u64, Tool)] = &[
    (25, Tool::LookupOrder),
    (20, Tool::SearchDocs),
    (15, Tool::CreatePayment),
    (10, Tool::IssueRefund),
    (10, Tool::SchedulePayout),
    (15, Tool::SendEmail),
    (5, Tool::SendSms),
];

const SCENARIOS: &[(u64, Scenario)] = &[
    (35, Scenario::ClientGone),
    (15, Scenario::PreCommitAbort),
    (20, Scenario::LateQueued),
    (8, Scenario::DispatchedAfterAbort),
    (7, Scenario::Unverified),
    (15, Scenario::NothingInFlight),
];

/// What happens to a tool call's request.
#[derive(Clone, Copy)]
enum Plan {
    Normal,
    /// The user aborts at `abort` while the request is in flight; the server then commits
    /// (`rollback: false`) or notices the closed connection and rolls back.
    InFlight {
        abort: u64,
        rollback: bool,
    },
}

#[derive(Clone, Copy)]
enum ChatEnd {
    ToolCalls,
    Stop,
    Cancelled(u64),
}

struct Conversation {
    id: String,
    user: String,
    customer: String,
    channel: &'static str,
    agent: usize,
}

struct Turn {
    trace: String,
    root: String,
    tools: Vec<ToolRec>,
    jobs: Vec<Job>,
    /// End times of COMMIT spans in this trace.
    commits: Vec<u64>,
    input_tokens: u64,
    output_tokens: u64,
}

#[derive(Clone, Copy)]
enum JobKind {
    Payout,
    Email,
}

struct Job {
    kind: JobKind,
    producer_trace: String,
    producer_span: String,
    message_id: String,
    /// When the message is in the queue.
    ready: u64,
    tool: usize,
    /// Run only after the abort (the late-queued scenario).
    after_abort: bool,
}

const CHANNELS: &[&str] = &["web", "web", "web", "ios", "android", "slack"];

const PROMPTS: &[&str] = &[
    "I was charged twice for order #{order}, can you fix it?",
    "Please refund the shipping fee on my last order.",
    "Where is my order {order}? It was supposed to arrive yesterday.",
    "Can you pay out my seller balance to my bank account today?",
    "Charge my saved card for the upgrade to the annual plan.",
    "Send me the invoice for {order} by e-mail please.",
    "Text me when the replacement ships.",
    "Cancel the pending payment, I changed my mind.",
];

const COMPLETIONS: &[&str] = &[
    "I found order {order}. I'm processing the refund of the duplicate charge now.",
    "Your payout has been scheduled; funds usually arrive within one business day.",
    "I've sent the invoice to the e-mail address on file.",
    "The package is with the carrier and should arrive tomorrow.",
    "Done: your card was charged and the plan is upgraded.",
];

const STACK_CANCELLED: &str = "Traceback (most recent call last):\n  File \"/app/agent/runtime.py\", line 412, in run_turn\n    await self._step(turn)\n  File \"/app/agent/runtime.py\", line 377, in _step\n    result = await tool.invoke(call.arguments, timeout=self.tool_timeout)\n  File \"/app/agent/tools/http.py\", line 88, in invoke\n    response = await self.client.request(self.method, url, json=payload, headers=headers)\n  File \"/usr/local/lib/python3.12/site-packages/httpx/_client.py\", line 1540, in request\n    return await self.send(request, auth=auth, follow_redirects=follow_redirects)\nasyncio.exceptions.CancelledError: user pressed Stop\n";

const SYSTEM_PROMPT: &str = "You are \"Ava\", the support agent of Acme.\n\nRules:\n1. Never refund more than the order total.\n2. Ask before charging a card: \"Shall I charge €{amount}?\"\n3. Answer in the customer's language (français, español, 日本語).\n\nTools: refund_payment, charge_card, send_email, payout, lookup_order.";

const STACK_RETRY: &str = "Traceback (most recent call last):\n  File \"/usr/local/lib/python3.12/site-packages/httpx/_transports/default.py\", line 101, in map_httpcore_exceptions\n    yield\n  File \"/usr/local/lib/python3.12/site-packages/httpcore/_async/http11.py\", line 143, in handle_async_request\n    raise exc\nhttpcore.RemoteProtocolError: Server disconnected without sending a response.\n";

const STACK_RATE_LIMIT: &str = "Traceback (most recent call last):\n  File \"/app/agent/llm.py\", line 152, in complete\n    return await self.client.chat.completions.create(**request)\n  File \"/usr/local/lib/python3.12/site-packages/openai/_base_client.py\", line 1549, in request\n    raise self._make_status_error_from_response(err.response) from None\nopenai.RateLimitError: Error code: 429 - {'error': {'message': 'Rate limit reached for gpt-4.1-mini', 'type': 'tokens', 'code': 'rate_limit_exceeded'}}\n";

struct Gen {
    rng: Rng,
    /// Turns aborted, per thousand (`--aborted`).
    aborted_permille: u64,
    resources: Vec<Resource>,
    heap: BinaryHeap<Reverse<Pending>>,
    seq: u64,
    /// Bytes of span JSON generated so far.
    span_bytes: u64,
    spans: u64,
    truth: Truth,
    out: BufWriter<std::fs::File>,
    line_target: usize,
    line: Vec<Pending>,
    bytes_written: u64,
    lines_written: u64,
    /// `(trace, end)` of every COMMIT span emitted during the current turn.
    commit_log: Vec<(String, u64)>,
    /// No declined payments in aborted turns: a rollback before the abort would make the
    /// expected answer depend on rules the benchmark does not mean to test.
    in_aborted_turn: bool,
    /// `--genai`: the content's own random stream, so that the turns stay those of the seed.
    genai: Option<Rng>,
    /// `(trace, conversation id)` of the turn being generated, whose spans `--genai` marks.
    current_turn: Option<(String, String)>,
}

impl Gen {
    fn instance(&mut self, svc: Svc) -> usize {
        let first = self.resources.iter().position(|r| r.svc == svc).unwrap();
        let count = self.resources.iter().filter(|r| r.svc == svc).count();
        first + self.rng.below(count as u64) as usize
    }

    fn span_id(&mut self) -> String {
        self.rng.hex(8)
    }

    #[allow(clippy::too_many_arguments)]
    fn new_span(
        &mut self,
        trace: &str,
        parent: Option<&str>,
        remote_parent: bool,
        name: impl Into<String>,
        kind: u8,
        start: u64,
        end: u64,
        res: usize,
        scope: Scope,
    ) -> Span {
        Span {
            trace: trace.to_owned(),
            id: self.span_id(),
            parent: parent.map(str::to_owned),
            remote_parent,
            name: name.into(),
            kind,
            start,
            end,
            attrs: Vec::new(),
            events: Vec::new(),
            links: Vec::new(),
            status: None,
            res,
            scope,
            is_commit: false,
        }
    }

    fn emit(&mut self, mut span: Span) {
        if self.genai.is_some() {
            self.add_genai_content(&mut span);
        }
        let json = span_json(&span);
        let res = &self.resources[span.res];
        let flush = ((span.end.saturating_sub(res.phase)) / FLUSH_INTERVAL + 1) * FLUSH_INTERVAL
            + res.phase;
        if span.is_commit {
            self.commit_log.push((span.trace.clone(), span.end));
        }
        self.span_bytes += json.len() as u64 + 1;
        self.spans += 1;
        self.seq += 1;
        self.heap.push(Reverse(Pending {
            flush,
            end: span.end,
            seq: self.seq,
            res: span.res,
            scope: span.scope,
            json,
        }));
    }

    /// `--genai`: the conversation id on every span of the turn's trace (a worker's trace is a
    /// new one, which the baggage does not reach), the messages on the model calls, the
    /// result on the tool calls.
    fn add_genai_content(&mut self, span: &mut Span) {
        let Some(rng) = self.genai.as_mut() else {
            return;
        };
        if let Some((trace, conversation)) = &self.current_turn
            && *trace == span.trace
            && !span
                .attrs
                .iter()
                .any(|(k, _)| *k == "gen_ai.conversation.id")
        {
            span.attrs
                .push(("gen_ai.conversation.id", s(conversation.clone())));
        }
        if span.name.starts_with("chat ") {
            let prompt = rng
                .pick(PROMPTS)
                .replace("{order}", &rng.range(100_000, 999_999).to_string());
            let history = rng.range(1, 4);
            let mut input = vec![
                json!({"role": "system", "parts": [{"type": "text", "content": SYSTEM_PROMPT}]}),
            ];
            for _ in 0..history {
                input.push(json!({"role": "user", "parts": [{"type": "text", "content": rng.pick(PROMPTS).replace("{order}", &rng.range(100_000, 999_999).to_string())}]}));
                input.push(json!({"role": "assistant", "parts": [{"type": "text", "content": rng.pick(COMPLETIONS).replace("{order}", &rng.range(100_000, 999_999).to_string())}]}));
            }
            input.push(json!({"role": "user", "parts": [{"type": "text", "content": prompt}]}));
            span.attrs.push((
                "gen_ai.input.messages",
                s(ascii_json(&serde_json::Value::Array(input))),
            ));
            span.events.push(Event {
                time: span.start + 15 * US,
                name: "gen_ai.user.message",
                attrs: vec![(
                    "gen_ai.event.content",
                    s(ascii_json(&json!({"content": prompt, "role": "user"}))),
                )],
            });
            let text = rng
                .pick(COMPLETIONS)
                .replace("{order}", &rng.range(100_000, 999_999).to_string());
            let call = json!({"order_id": rng.range(100_000, 999_999).to_string(), "amount": rng.range(100, 99_999), "note": "customer said: \"please hurry\"\nthanks"});
            let output = json!([{"role": "assistant", "parts": [
                {"type": "text", "content": text},
                {"type": "tool_call", "id": format!("call_{}", rng.base62(24)), "name": "refund_payment", "arguments": call.to_string()},
            ], "finish_reason": "tool_calls"}]);
            span.attrs
                .push(("gen_ai.output.messages", s(ascii_json(&output))));
            span.events.push(Event {
                time: span.end.saturating_sub(25 * US).max(span.start),
                name: "gen_ai.choice",
                attrs: vec![
                    ("gen_ai.response.finish_reasons", arr("tool_calls")),
                    ("gen_ai.event.content", s(ascii_json(&output))),
                ],
            });
            // A retried network error inside the client: a stack trace on a call that succeeded.
            if rng.chance(100) {
                span.events.push(Event {
                    time: span.start + 40 * US,
                    name: "gen_ai.client.retry",
                    attrs: vec![
                        ("error.type", s("httpx.RemoteProtocolError")),
                        ("error.stacktrace", s(STACK_RETRY)),
                    ],
                });
            }
        } else if span.name.starts_with("execute_tool ") {
            let message = rng
                .pick(COMPLETIONS)
                .replace("{order}", &rng.range(100_000, 999_999).to_string());
            let result = json!({"status": "ok", "message": message, "meta": {"latency_ms": rng.range(20, 900), "text": "ünïcödé «quoted» \u{1F4B3}"}});
            span.attrs
                .push(("gen_ai.tool.call.result", s(ascii_json(&result))));
        }
    }

    /// Writes out every span that no span generated later can precede.
    fn drain(&mut self, watermark: Option<u64>) -> Result<()> {
        while let Some(Reverse(top)) = self.heap.peek() {
            if watermark.is_some_and(|w| top.flush >= w) {
                break;
            }
            let Reverse(p) = self.heap.pop().unwrap();
            self.line.push(p);
            if self.line.len() >= self.line_target {
                self.write_line()?;
            }
        }
        if watermark.is_none() && !self.line.is_empty() {
            self.write_line()?;
        }
        Ok(())
    }

    fn write_line(&mut self) -> Result<()> {
        let mut groups: BTreeMap<usize, BTreeMap<Scope, Vec<&str>>> = BTreeMap::new();
        for p in &self.line {
            groups
                .entry(p.res)
                .or_default()
                .entry(p.scope)
                .or_default()
                .push(&p.json);
        }
        let mut out = String::with_capacity(
            self.line.iter().map(|p| p.json.len() + 1).sum::<usize>() + 16 * 1024,
        );
        out.push_str("{\"resourceSpans\":[");
        for (n, (res, scopes)) in groups.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            out.push_str("{\"resource\":");
            out.push_str(&self.resources[*res].json);
            out.push_str(",\"scopeSpans\":[");
            for (m, (scope, spans)) in scopes.iter().enumerate() {
                if m > 0 {
                    out.push(',');
                }
                out.push_str("{\"scope\":");
                out.push_str(&scope.json());
                out.push_str(",\"spans\":[");
                for (k, span) in spans.iter().enumerate() {
                    if k > 0 {
                        out.push(',');
                    }
                    out.push_str(span);
                }
                let _ = write!(out, "],\"schemaUrl\":\"{SCHEMA_URL}\"}}");
            }
            let _ = write!(out, "],\"schemaUrl\":\"{SCHEMA_URL}\"}}");
        }
        out.push_str("]}\n");
        self.out.write_all(out.as_bytes())?;
        self.bytes_written += out.len() as u64;
        self.lines_written += 1;
        self.line.clear();
        self.line_target = self.rng.range(200, 500) as usize;
        Ok(())
    }

    // -- building blocks ---------------------------------------------------------------------

    /// A database span under `parent` (a server or consumer span).
    #[allow(clippy::too_many_arguments)]
    fn db(
        &mut self,
        trace: &str,
        parent: &str,
        res: usize,
        start: u64,
        op: &'static str,
        table: Option<&str>,
        query: &str,
    ) -> Span {
        let dur = match op {
            "BEGIN" | "COMMIT" | "ROLLBACK" => self.rng.range(150 * US, 900 * US),
            _ => self.rng.range(400 * US, 4 * MS),
        };
        let summary = match table {
            Some(t) => format!("{op} {t}"),
            None => op.to_owned(),
        };
        let (scope, namespace, host) = match self.resources[res].svc {
            Svc::Mailer | Svc::MailerWorker => (Scope::Pgx, "mailer", "mailer-db.internal"),
            Svc::Orders => (Scope::Jdbc, "orders", "orders-db.internal"),
            _ => (Scope::Psycopg, "payments", "payments-db.internal"),
        };
        let mut span = self.new_span(
            trace,
            Some(parent),
            false,
            summary.clone(),
            CLIENT,
            start,
            start + dur,
            res,
            scope,
        );
        span.attrs.push(("db.system.name", s("postgresql")));
        span.attrs.push(("db.namespace", s(namespace)));
        span.attrs.push(("db.operation.name", s(op)));
        if let Some(t) = table {
            span.attrs.push(("db.collection.name", s(t)));
        }
        span.attrs.push(("db.query.summary", s(summary)));
        span.attrs.push(("db.query.text", s(query)));
        span.attrs.push(("server.address", s(host)));
        span.attrs.push(("server.port", i(5432)));
        span.attrs.push((
            "network.peer.address",
            s(format!(
                "10.1.{}.{}",
                self.rng.range(0, 3),
                self.rng.range(2, 254)
            )),
        ));
        span.attrs.push(("network.peer.port", i(5432)));
        if op == "SELECT" {
            span.attrs
                .push(("db.response.returned_rows", i(self.rng.range(0, 12))));
        }
        span.is_commit = op == "COMMIT";
        span
    }

    /// An HTTP CLIENT span (httpx) with its standard attributes; the caller adds the status.
    #[allow(clippy::too_many_arguments)]
    fn http_client(
        &mut self,
        trace: &str,
        parent: &str,
        res: usize,
        method: &'static str,
        url: &str,
        host: &str,
        port: u64,
        start: u64,
        end: u64,
    ) -> Span {
        let scope = match self.resources[res].svc {
            Svc::Mailer | Svc::MailerWorker => Scope::OtelHttp,
            _ => Scope::Httpx,
        };
        let mut span = self.new_span(
            trace,
            Some(parent),
            false,
            method,
            CLIENT,
            start,
            end,
            res,
            scope,
        );
        span.attrs.push(("http.request.method", s(method)));
        span.attrs.push(("url.full", s(url)));
        span.attrs.push(("server.address", s(host)));
        span.attrs.push(("server.port", i(port)));
        span.attrs.push((
            "network.protocol.version",
            s(if port == 443 { "2" } else { "1.1" }),
        ));
        span.attrs.push(("network.peer.address", s(self.rng.ip())));
        span.attrs.push(("network.peer.port", i(port)));
        span.attrs.push((
            "user_agent.original",
            s(if scope == Scope::OtelHttp {
                "Go-http-client/1.1"
            } else {
                "python-httpx/0.28.1"
            }),
        ));
        if method != "GET" {
            span.attrs
                .push(("http.request.body.size", i(self.rng.range(120, 900))));
        }
        span
    }

    /// An HTTP SERVER span; the caller adds the response attributes.
    #[allow(clippy::too_many_arguments)]
    fn http_server(
        &mut self,
        id: String,
        trace: &str,
        parent: &str,
        res: usize,
        method: &'static str,
        route: &str,
        path: &str,
        host: &str,
        start: u64,
        end: u64,
        client_ip: &str,
    ) -> Span {
        let scope = match self.resources[res].svc {
            Svc::Mailer => Scope::OtelHttp,
            Svc::Orders => Scope::SpringWebMvc,
            Svc::ConversationStore => Scope::NodeHttp,
            _ => Scope::FastApi,
        };
        let name = format!("{method} {route}");
        let mut span = self.new_span(
            trace,
            Some(parent),
            true,
            name,
            SERVER,
            start,
            end,
            res,
            scope,
        );
        span.id = id;
        span.attrs.push(("http.request.method", s(method)));
        span.attrs.push(("http.route", s(route)));
        span.attrs.push(("url.path", s(path)));
        span.attrs.push(("url.scheme", s("http")));
        span.attrs.push(("server.address", s(host)));
        span.attrs.push(("server.port", i(8080)));
        span.attrs.push(("client.address", s(client_ip)));
        span.attrs.push(("network.peer.address", s(client_ip)));
        span.attrs
            .push(("network.peer.port", i(self.rng.range(32768, 60999))));
        span.attrs.push(("network.protocol.version", s("1.1")));
        span.attrs
            .push(("user_agent.original", s("python-httpx/0.28.1")));
        span
    }

    fn cancelled_event(&mut self, time: u64) -> Event {
        Event {
            time,
            name: "exception",
            attrs: vec![
                ("exception.type", s("asyncio.exceptions.CancelledError")),
                ("exception.message", s("user pressed Stop")),
                ("exception.stacktrace", s(STACK_CANCELLED)),
                ("exception.escaped", s("False")),
            ],
        }
    }

    // -- pieces of a turn --------------------------------------------------------------------

    /// A model call of the turn, with the request attributes every call has.
    fn chat_span(&mut self, conv: &Conversation, turn: &Turn, start: u64, end: u64) -> Span {
        let mut span = self.new_span(
            &turn.trace,
            Some(&turn.root),
            false,
            "chat gpt-4.1-mini",
            CLIENT,
            start,
            end,
            conv.agent,
            Scope::OpenAi,
        );
        span.attrs.push(("gen_ai.operation.name", s("chat")));
        span.attrs.push(("gen_ai.provider.name", s("openai")));
        span.attrs.push(("gen_ai.request.model", s("gpt-4.1-mini")));
        span.attrs.push(("gen_ai.request.temperature", V::D("0.2")));
        span.attrs.push(("gen_ai.request.max_tokens", i(1024)));
        span
    }

    fn chat(&mut self, conv: &Conversation, turn: &mut Turn, start: u64, end: ChatEnd) -> u64 {
        let mut start = start;
        // Now and then a rate limit, and a retry: an exception that is not a cancellation.
        if !matches!(end, ChatEnd::Cancelled(_)) && self.rng.chance(20) {
            let fail_end = start + self.rng.range(60 * MS, 300 * MS);
            let mut span = self.chat_span(conv, turn, start, fail_end);
            span.attrs.push(("server.address", s("api.openai.com")));
            span.attrs.push(("server.port", i(443)));
            span.attrs.push(("error.type", s("openai.RateLimitError")));
            span.attrs.push(("http.response.status_code", i(429)));
            span.events.push(Event {
                time: fail_end - 30 * US,
                name: "exception",
                attrs: vec![
                    ("exception.type", s("openai.RateLimitError")),
                    (
                        "exception.message",
                        s("Error code: 429 - rate_limit_exceeded"),
                    ),
                    ("exception.stacktrace", s(STACK_RATE_LIMIT)),
                    ("exception.escaped", s("False")),
                ],
            });
            span.status = Some((2, "Error code: 429 - rate_limit_exceeded".into()));
            self.emit(span);
            start = fail_end + self.rng.range(200 * MS, 900 * MS);
        }
        let stop = match end {
            ChatEnd::ToolCalls => start + self.rng.range(400 * MS, 2500 * MS),
            ChatEnd::Stop => start + self.rng.range(600 * MS, 4000 * MS),
            ChatEnd::Cancelled(abort) => abort + self.rng.range(150 * US, 1500 * US),
        };
        let mut span = self.chat_span(conv, turn, start, stop);
        span.attrs.push(("gen_ai.request.stream", V::B(true)));
        span.attrs.push(("server.address", s("api.openai.com")));
        span.attrs.push(("server.port", i(443)));
        let order = format!("{}", self.rng.range(100_000, 999_999));
        if self.rng.chance(600) {
            let prompt = self.rng.pick(PROMPTS).replace("{order}", &order);
            span.events.push(Event {
                time: start + 20 * US,
                name: "gen_ai.content.prompt",
                attrs: vec![("gen_ai.prompt", s(prompt))],
            });
        }
        match end {
            ChatEnd::Cancelled(_) => {
                span.events.push(self.cancelled_event(stop - 20 * US));
                span.status = Some((2, "model stream cancelled".into()));
            }
            ChatEnd::ToolCalls | ChatEnd::Stop => {
                let input = self.rng.range(300, 6000);
                let output = self.rng.range(20, 600);
                turn.input_tokens += input;
                turn.output_tokens += output;
                span.attrs
                    .push(("gen_ai.response.model", s("gpt-4.1-mini-2025-04-14")));
                span.attrs.push((
                    "gen_ai.response.id",
                    s(format!("chatcmpl-{}", self.rng.base62(29))),
                ));
                let reason = if matches!(end, ChatEnd::Stop) {
                    "stop"
                } else {
                    "tool_calls"
                };
                span.attrs
                    .push(("gen_ai.response.finish_reasons", arr(reason)));
                span.attrs.push(("gen_ai.usage.input_tokens", i(input)));
                span.attrs.push(("gen_ai.usage.output_tokens", i(output)));
                if matches!(end, ChatEnd::Stop) && self.rng.chance(600) {
                    let text = self.rng.pick(COMPLETIONS).replace("{order}", &order);
                    span.events.push(Event {
                        time: stop - 40 * US,
                        name: "gen_ai.content.completion",
                        attrs: vec![("gen_ai.completion", s(text))],
                    });
                }
            }
        }
        self.emit(span);
        stop
    }

    /// The agent loading (GET) or saving (POST) the conversation's messages.
    fn memory(&mut self, conv: &Conversation, turn: &mut Turn, start: u64, save: bool) -> u64 {
        let store = self.instance(Svc::ConversationStore);
        let method = if save { "POST" } else { "GET" };
        let path = format!("/v1/conversations/{}/messages", conv.id);
        let url = format!("http://conversation-store.internal:8080{path}");
        let server_start = start + self.rng.range(500 * US, 2 * MS);
        let op_start = server_start + self.rng.range(200 * US, 800 * US);
        let (op, query) = if save {
            ("RPUSH", format!("RPUSH conv:{}:messages ?", conv.id))
        } else {
            ("LRANGE", format!("LRANGE conv:{}:messages 0 -1", conv.id))
        };
        let op_end = op_start + self.rng.range(200 * US, 2 * MS);
        let server_end = op_end + self.rng.range(300 * US, 3 * MS);
        let client_end = server_end + self.rng.range(300 * US, 2 * MS);
        let mut client = self.http_client(
            &turn.trace,
            &turn.root,
            conv.agent,
            method,
            &url,
            "conversation-store.internal",
            8080,
            start,
            client_end,
        );
        client
            .attrs
            .push(("http.response.status_code", i(if save { 201 } else { 200 })));
        let client_ip = self.resources[conv.agent].ip.clone();
        let server_id = self.span_id();
        let mut server = self.http_server(
            server_id,
            &turn.trace,
            &client.id,
            store,
            method,
            "/v1/conversations/:id/messages",
            &path,
            "conversation-store.internal",
            server_start,
            server_end,
            &client_ip,
        );
        server
            .attrs
            .push(("http.response.status_code", i(if save { 201 } else { 200 })));
        let mut redis = self.new_span(
            &turn.trace,
            Some(&server.id),
            false,
            op,
            CLIENT,
            op_start,
            op_end,
            store,
            Scope::IoRedis,
        );
        redis.attrs.push(("db.system.name", s("redis")));
        redis.attrs.push(("db.namespace", s("0")));
        redis.attrs.push(("db.operation.name", s(op)));
        redis.attrs.push(("db.query.text", s(query)));
        redis.attrs.push(("server.address", s("redis.internal")));
        redis.attrs.push(("server.port", i(6379)));
        redis.attrs.push(("network.peer.address", s("10.1.0.40")));
        redis.attrs.push(("network.peer.port", i(6379)));
        self.emit(redis);
        self.emit(server);
        self.emit(client);
        client_end
    }

    /// One tool call with everything downstream of it in this trace; queue work is left in
    /// `turn.jobs`. Returns the tool span's end.
    fn tool(
        &mut self,
        conv: &Conversation,
        turn: &mut Turn,
        tool: Tool,
        start: u64,
        plan: Plan,
    ) -> u64 {
        let call_id = format!("call_{}", self.rng.base62(24));
        let tool_span_id = self.span_id();
        let client_start = start + self.rng.range(200 * US, 1500 * US);
        let idem = self.rng.uuid();
        let mut rec = ToolRec {
            name: tool.name(),
            call_id: call_id.clone(),
            start,
            in_flight: matches!(plan, Plan::InFlight { .. }),
            has_downstream: false,
            writes: Vec::new(),
        };
        let amount = self.rng.range(5, 2000) * 100 + *self.rng.pick(&[0u64, 50, 99]);
        let order = format!("ord_{}", self.rng.base62(14));
        let arguments: String;
        // The request: (method, url, host, port, server side).
        let client_end;
        let mut client_status: Option<u64> = None;
        let mut response_headers: Vec<(&'static str, V)> = Vec::new();
        match tool {
            Tool::SearchDocs | Tool::SendSms => {
                let (method, url, host, status, dur) = if tool == Tool::SearchDocs {
                    arguments =
                        format!("{{\"query\": \"refund policy for order {order}\", \"limit\": 5}}");
                    (
                        "GET",
                        "https://kb.helpcenter.example/api/v2/search?q=refund+policy&limit=5"
                            .to_owned(),
                        "kb.helpcenter.example",
                        200,
                        self.rng.range(80 * MS, 700 * MS),
                    )
                } else {
                    arguments = format!(
                        "{{\"to\": \"+4477009{:05}\", \"body\": \"Your replacement for {order} has shipped.\"}}",
                        self.rng.below(100_000)
                    );
                    ("POST", "https://api.twilio.com/2010-04-01/Accounts/AC3f9e2b7d41c08a55e6b1d2c3f4a5b6c7/Messages.json".to_owned(), "api.twilio.com", 201, self.rng.range(150 * MS, 900 * MS))
                };
                client_end = match plan {
                    Plan::Normal => {
                        client_status = Some(status);
                        if tool == Tool::SendSms {
                            response_headers.push((
                                "http.response.header.twilio-request-id",
                                arr(format!("RQ{}", self.rng.hex(16))),
                            ));
                        }
                        client_start + dur
                    }
                    Plan::InFlight { abort, .. } => abort + self.rng.range(200 * US, 1500 * US),
                };
                let mut client = self.http_client(
                    &turn.trace,
                    &tool_span_id,
                    conv.agent,
                    method,
                    &url,
                    host,
                    443,
                    client_start,
                    client_end,
                );
                if method == "POST" {
                    client
                        .attrs
                        .push(("http.request.header.idempotency-key", arr(idem.clone())));
                }
                if let Some(code) = client_status {
                    client.attrs.push(("http.response.status_code", i(code)));
                }
                client.attrs.append(&mut response_headers);
                self.emit(client);
            }
            Tool::LookupOrder => {
                arguments = format!("{{\"order_id\": \"{order}\"}}");
                let res = self.instance(Svc::Orders);
                let path = format!("/api/orders/{order}");
                let url = format!("http://orders-api.internal:8080{path}");
                let server_start = client_start + self.rng.range(800 * US, 3 * MS);
                let server_id = self.span_id();
                let found = self.rng.chance(950);
                let mut t = server_start + self.rng.range(300 * US, MS);
                let mut children = Vec::new();
                let sel = self.db(&turn.trace, &server_id, res, t, "SELECT", Some("orders"), "select o.id, o.status, o.total_cents, o.currency, o.customer_id from orders o where o.public_id=?");
                t = sel.end + self.rng.range(100 * US, 500 * US);
                children.push(sel);
                if found {
                    let items = self.db(&turn.trace, &server_id, res, t, "SELECT", Some("order_items"), "select i.sku, i.quantity, i.price_cents from order_items i where i.order_id=?");
                    t = items.end;
                    children.push(items);
                }
                let server_end = t + self.rng.range(500 * US, 4 * MS);
                client_end = server_end + self.rng.range(300 * US, 2 * MS);
                let code = if found { 200 } else { 404 };
                let mut client = self.http_client(
                    &turn.trace,
                    &tool_span_id,
                    conv.agent,
                    "GET",
                    &url,
                    "orders-api.internal",
                    8080,
                    client_start,
                    client_end,
                );
                client.attrs.push(("http.response.status_code", i(code)));
                let client_ip = self.resources[conv.agent].ip.clone();
                let mut server = self.http_server(
                    server_id.clone(),
                    &turn.trace,
                    &client.id,
                    res,
                    "GET",
                    "/api/orders/{orderId}",
                    &path,
                    "orders-api.internal",
                    server_start,
                    server_end,
                    &client_ip,
                );
                server.attrs.push(("http.response.status_code", i(code)));
                server
                    .attrs
                    .push(("http.response.body.size", i(self.rng.range(300, 4000))));
                for c in children {
                    self.emit(c);
                }
                rec.has_downstream = true;
                self.emit(server);
                self.emit(client);
            }
            Tool::CreatePayment | Tool::IssueRefund | Tool::SchedulePayout => {
                let res = self.instance(Svc::Payments);
                let (route, path, table, insert, extra) = match tool {
                    Tool::CreatePayment => {
                        arguments = format!(
                            "{{\"customer_id\": \"{}\", \"amount_cents\": {amount}, \"currency\": \"eur\", \"description\": \"Upgrade to annual plan\"}}",
                            conv.customer
                        );
                        (
                            "/v1/payments",
                            "/v1/payments".to_owned(),
                            "payments",
                            "INSERT INTO payments (id, customer_id, amount_cents, currency, status, idempotency_key, created_at) VALUES ($1, $2, $3, $4, 'succeeded', $5, now())",
                            None,
                        )
                    }
                    Tool::IssueRefund => {
                        let payment = format!("pay_{}", self.rng.base62(14));
                        arguments = format!(
                            "{{\"payment_id\": \"{payment}\", \"amount_cents\": {amount}, \"reason\": \"duplicate\"}}"
                        );
                        (
                            "/v1/payments/{payment_id}/refunds",
                            format!("/v1/payments/{payment}/refunds"),
                            "refunds",
                            "INSERT INTO refunds (id, payment_id, amount_cents, reason, idempotency_key, created_at) VALUES ($1, $2, $3, $4, $5, now())",
                            Some((
                                "UPDATE",
                                "payments",
                                "UPDATE payments SET refunded_cents = refunded_cents + $1, updated_at = now() WHERE id = $2",
                            )),
                        )
                    }
                    _ => {
                        arguments = format!(
                            "{{\"account_id\": \"acct_{}\", \"amount_cents\": {amount}, \"currency\": \"eur\"}}",
                            self.rng.base62(12)
                        );
                        (
                            "/v1/payouts",
                            "/v1/payouts".to_owned(),
                            "payouts",
                            "INSERT INTO payouts (id, account_id, amount_cents, currency, status, idempotency_key, created_at) VALUES ($1, $2, $3, $4, 'pending', $5, now())",
                            None,
                        )
                    }
                };
                let url = format!("http://payments-api.internal:8080{path}");
                let server_start = client_start + self.rng.range(800 * US, 3 * MS);
                let server_id = self.span_id();
                let mut children: Vec<Span> = Vec::new();
                let mut t = server_start + self.rng.range(300 * US, MS);
                let lookup = self.db(
                    &turn.trace,
                    &server_id,
                    res,
                    t,
                    "SELECT",
                    Some("customers"),
                    "SELECT id, default_payment_method, risk_level FROM customers WHERE id = $1",
                );
                t = lookup.end + self.rng.range(50 * US, 300 * US);
                children.push(lookup);
                let begin = self.db(&turn.trace, &server_id, res, t, "BEGIN", None, "BEGIN");
                t = begin.end + self.rng.range(50 * US, 300 * US);
                children.push(begin);
                let ins = self.db(
                    &turn.trace,
                    &server_id,
                    res,
                    t,
                    "INSERT",
                    Some(table),
                    insert,
                );
                t = ins.end + self.rng.range(50 * US, 300 * US);
                children.push(ins);
                if let Some((op, tbl, q)) = extra {
                    let upd = self.db(&turn.trace, &server_id, res, t, op, Some(tbl), q);
                    t = upd.end + self.rng.range(50 * US, 300 * US);
                    children.push(upd);
                }
                let declined = !self.in_aborted_turn
                    && matches!(plan, Plan::Normal)
                    && tool == Tool::CreatePayment
                    && self.rng.chance(30);
                let mut status_code: u64 = match tool {
                    Tool::SchedulePayout => 202,
                    Tool::CreatePayment => 201,
                    _ => 200,
                };
                let server_end;
                let mut server_error: Option<(&'static str, &'static str)> = None;
                let mut server_events: Vec<Event> = Vec::new();
                if tool == Tool::SchedulePayout {
                    let commit = self.db(&turn.trace, &server_id, res, t, "COMMIT", None, "COMMIT");
                    t = commit.end + self.rng.range(100 * US, 500 * US);
                    rec.writes.push(WriteRec {
                        span_id: commit.id.clone(),
                        time: commit.end,
                        via_link: false,
                        rolled_back: false,
                    });
                    children.push(commit);
                    let message_id = self.rng.uuid();
                    let pub_end = t + self.rng.range(500 * US, 3 * MS);
                    let mut producer = self.new_span(
                        &turn.trace,
                        Some(&server_id),
                        false,
                        "publish payout-jobs",
                        PRODUCER,
                        t,
                        pub_end,
                        res,
                        Scope::AioPika,
                    );
                    producer.attrs.push(("messaging.system", s("rabbitmq")));
                    producer.attrs.push(("messaging.operation.type", s("send")));
                    producer
                        .attrs
                        .push(("messaging.operation.name", s("publish")));
                    producer
                        .attrs
                        .push(("messaging.destination.name", s("payout-jobs")));
                    producer.attrs.push((
                        "messaging.rabbitmq.destination.routing_key",
                        s("payout.create"),
                    ));
                    producer
                        .attrs
                        .push(("messaging.message.id", s(message_id.clone())));
                    producer
                        .attrs
                        .push(("messaging.message.body.size", i(self.rng.range(200, 600))));
                    producer
                        .attrs
                        .push(("server.address", s("rabbitmq.internal")));
                    producer.attrs.push(("server.port", i(5672)));
                    producer
                        .attrs
                        .push(("network.peer.address", s("10.1.0.21")));
                    turn.jobs.push(Job {
                        kind: JobKind::Payout,
                        producer_trace: turn.trace.clone(),
                        producer_span: producer.id.clone(),
                        message_id,
                        ready: pub_end,
                        tool: turn.tools.len(),
                        after_abort: false,
                    });
                    t = pub_end;
                    children.push(producer);
                    response_headers.push((
                        "http.response.header.x-job-id",
                        arr(format!("job_{}", self.rng.hex(8))),
                    ));
                    server_end = t + self.rng.range(500 * US, 3 * MS);
                } else {
                    // The risk check (payments) or the card processor (refunds): the slow part,
                    // between the write and its commit.
                    let (host, vendor_url) = if tool == Tool::CreatePayment {
                        (
                            "api.riskscore.example",
                            "https://api.riskscore.example/v2/score",
                        )
                    } else {
                        ("api.psp.example", "https://api.psp.example/v1/refunds")
                    };
                    let (check_end, fate) = match plan {
                        Plan::Normal => (t + self.rng.range(30 * MS, 250 * MS), None),
                        Plan::InFlight {
                            abort,
                            rollback: false,
                        } => (abort + self.rng.range(100 * MS, 900 * MS) - MS, Some(false)),
                        Plan::InFlight {
                            abort,
                            rollback: true,
                        } => (abort + self.rng.range(50 * MS, 400 * MS), Some(true)),
                    };
                    let mut check = self.http_client(
                        &turn.trace,
                        &server_id,
                        res,
                        "POST",
                        vendor_url,
                        host,
                        443,
                        t,
                        check_end,
                    );
                    check.attrs.push((
                        "http.response.status_code",
                        i(if declined { 402 } else { 200 }),
                    ));
                    t = check_end + self.rng.range(100 * US, 600 * US);
                    children.push(check);
                    if declined || fate == Some(true) {
                        let rb = self.db(
                            &turn.trace,
                            &server_id,
                            res,
                            t,
                            "ROLLBACK",
                            None,
                            "ROLLBACK",
                        );
                        t = rb.end;
                        rec.writes.push(WriteRec {
                            span_id: rb.id.clone(),
                            time: rb.end,
                            via_link: false,
                            rolled_back: true,
                        });
                        children.push(rb);
                        if declined {
                            status_code = 402;
                        } else {
                            status_code = 499;
                            server_error = Some((
                                "499",
                                "client disconnected before the response was written",
                            ));
                        }
                    } else {
                        let commit =
                            self.db(&turn.trace, &server_id, res, t, "COMMIT", None, "COMMIT");
                        t = commit.end;
                        rec.writes.push(WriteRec {
                            span_id: commit.id.clone(),
                            time: commit.end,
                            via_link: false,
                            rolled_back: false,
                        });
                        children.push(commit);
                        if fate == Some(false) {
                            // The response goes to a closed socket; what the server records
                            // varies: nothing, a broken pipe, or nginx's 499.
                            match self.rng.below(3) {
                                0 => {}
                                1 => {
                                    server_error = Some((
                                        "BrokenPipeError",
                                        "client disconnected before the response was written",
                                    ));
                                    server_events.push(Event {
                                        time: t + 200 * US,
                                        name: "exception",
                                        attrs: vec![
                                            ("exception.type", s("BrokenPipeError")),
                                            ("exception.message", s("[Errno 32] Broken pipe")),
                                            ("exception.escaped", s("False")),
                                        ],
                                    });
                                }
                                _ => {
                                    status_code = 499;
                                    server_error = Some(("499", "client closed request"));
                                }
                            }
                        }
                    }
                    if status_code == 200 || status_code == 201 {
                        response_headers.push((
                            "http.response.header.request-id",
                            arr(format!("req_{}", self.rng.base62(14))),
                        ));
                    }
                    server_end = t + self.rng.range(400 * US, 3 * MS);
                }
                client_end = match plan {
                    Plan::Normal => {
                        client_status = Some(status_code);
                        server_end + self.rng.range(300 * US, 2 * MS)
                    }
                    Plan::InFlight { abort, .. } => abort + self.rng.range(200 * US, 1500 * US),
                };
                let mut client = self.http_client(
                    &turn.trace,
                    &tool_span_id,
                    conv.agent,
                    "POST",
                    &url,
                    "payments-api.internal",
                    8080,
                    client_start,
                    client_end,
                );
                client
                    .attrs
                    .push(("http.request.header.idempotency-key", arr(idem.clone())));
                if let Some(code) = client_status {
                    client.attrs.push(("http.response.status_code", i(code)));
                    for (k, v) in &response_headers {
                        if let V::A(items) = v {
                            client.attrs.push((k, V::A(items.clone())));
                        }
                    }
                }
                let client_ip = self.resources[conv.agent].ip.clone();
                let mut server = self.http_server(
                    server_id.clone(),
                    &turn.trace,
                    &client.id,
                    res,
                    "POST",
                    route,
                    &path,
                    "payments-api.internal",
                    server_start,
                    server_end,
                    &client_ip,
                );
                server
                    .attrs
                    .push(("http.request.header.idempotency-key", arr(idem.clone())));
                server
                    .attrs
                    .push(("http.request.body.size", i(self.rng.range(120, 600))));
                server
                    .attrs
                    .push(("http.response.status_code", i(status_code)));
                if let Some((error_type, message)) = server_error {
                    server.attrs.push(("error.type", s(error_type)));
                    server.status = Some((2, message.to_owned()));
                }
                server.events = server_events;
                for c in children {
                    self.emit(c);
                }
                rec.has_downstream = true;
                self.emit(server);
                self.emit(client);
            }
            Tool::SendEmail => {
                arguments = format!(
                    "{{\"to\": \"{}@mail.example\", \"template\": \"invoice\", \"order_id\": \"{order}\"}}",
                    conv.user
                );
                let res = self.instance(Svc::Mailer);
                let url = "http://mailer.internal:8080/v1/messages".to_owned();
                let server_start = client_start + self.rng.range(800 * US, 3 * MS);
                let server_id = self.span_id();
                let mut t = server_start + self.rng.range(200 * US, 800 * US);
                let ins = self.db(&turn.trace, &server_id, res, t, "INSERT", Some("outbox"), "INSERT INTO outbox (id, recipient, template, payload, status, idempotency_key) VALUES ($1, $2, $3, $4, 'queued', $5)");
                t = ins.end + self.rng.range(100 * US, 400 * US);
                rec.writes.push(WriteRec {
                    span_id: ins.id.clone(),
                    time: ins.end,
                    via_link: false,
                    rolled_back: false,
                });
                let message_id = format!("<{}@mailer.internal>", self.rng.hex(12));
                let pub_end = t + self.rng.range(MS, 6 * MS);
                let mut producer = self.new_span(
                    &turn.trace,
                    Some(&server_id),
                    false,
                    "send outbound-email",
                    PRODUCER,
                    t,
                    pub_end,
                    res,
                    Scope::Sarama,
                );
                producer.attrs.push(("messaging.system", s("kafka")));
                producer.attrs.push(("messaging.operation.type", s("send")));
                producer.attrs.push(("messaging.operation.name", s("send")));
                producer
                    .attrs
                    .push(("messaging.destination.name", s("outbound-email")));
                producer.attrs.push((
                    "messaging.destination.partition.id",
                    s(format!("{}", self.rng.below(12))),
                ));
                producer
                    .attrs
                    .push(("messaging.kafka.message.key", s(idem.clone())));
                producer.attrs.push((
                    "messaging.kafka.offset",
                    i(self.rng.range(1_000_000, 9_000_000)),
                ));
                producer
                    .attrs
                    .push(("messaging.message.id", s(message_id.clone())));
                producer.attrs.push(("messaging.client.id", s("mailer")));
                producer
                    .attrs
                    .push(("server.address", s("kafka-0.kafka.internal")));
                producer.attrs.push(("server.port", i(9092)));
                turn.jobs.push(Job {
                    kind: JobKind::Email,
                    producer_trace: turn.trace.clone(),
                    producer_span: producer.id.clone(),
                    message_id: message_id.clone(),
                    ready: pub_end,
                    tool: turn.tools.len(),
                    after_abort: false,
                });
                let server_end = pub_end + self.rng.range(300 * US, 2 * MS);
                client_end = server_end + self.rng.range(300 * US, 2 * MS);
                let mut client = self.http_client(
                    &turn.trace,
                    &tool_span_id,
                    conv.agent,
                    "POST",
                    &url,
                    "mailer.internal",
                    8080,
                    client_start,
                    client_end,
                );
                client
                    .attrs
                    .push(("http.request.header.idempotency-key", arr(idem.clone())));
                client.attrs.push(("http.response.status_code", i(202)));
                client
                    .attrs
                    .push(("http.response.header.x-message-id", arr(message_id)));
                let client_ip = self.resources[conv.agent].ip.clone();
                let mut server = self.http_server(
                    server_id.clone(),
                    &turn.trace,
                    &client.id,
                    res,
                    "POST",
                    "/v1/messages",
                    "/v1/messages",
                    "mailer.internal",
                    server_start,
                    server_end,
                    &client_ip,
                );
                server
                    .attrs
                    .push(("http.request.header.idempotency-key", arr(idem.clone())));
                server.attrs.push(("http.response.status_code", i(202)));
                self.emit(ins);
                self.emit(producer);
                rec.has_downstream = true;
                self.emit(server);
                self.emit(client);
            }
        }
        let tool_end = client_end + self.rng.range(100 * US, MS);
        let mut span = Span {
            trace: turn.trace.clone(),
            id: tool_span_id,
            parent: Some(turn.root.clone()),
            remote_parent: false,
            name: format!("execute_tool {}", tool.name()),
            kind: INTERNAL,
            start,
            end: tool_end,
            attrs: Vec::new(),
            events: Vec::new(),
            links: Vec::new(),
            status: None,
            res: conv.agent,
            scope: Scope::AgentRuntime,
            is_commit: false,
        };
        span.attrs
            .push(("gen_ai.operation.name", s("execute_tool")));
        span.attrs.push(("gen_ai.tool.name", s(tool.name())));
        span.attrs.push(("gen_ai.tool.call.id", s(call_id)));
        span.attrs.push(("gen_ai.tool.type", s("function")));
        span.attrs
            .push(("gen_ai.tool.description", s(tool.description())));
        span.attrs
            .push(("gen_ai.tool.call.arguments", s(arguments)));
        span.attrs.push(("gen_ai.provider.name", s("openai")));
        span.attrs.push(("gen_ai.agent.name", s("support-agent")));
        span.attrs.push((
            "code.function.name",
            s(format!("agent.tools.{}", tool.name())),
        ));
        if let Plan::InFlight { .. } = plan {
            span.events.push(self.cancelled_event(tool_end - 15 * US));
            span.status = Some((2, "tool call cancelled".into()));
        }
        self.emit(span);
        turn.tools.push(rec);
        self.truth.tool_calls += 1;
        tool_end
    }

    /// A queue worker's trace: a CONSUMER root linked to the producer, with its writes, which
    /// are added to the tool call's record.
    fn worker(&mut self, job: &Job, turn: &mut Turn, abort: Option<u64>) {
        let (svc, scope, name) = match job.kind {
            JobKind::Payout => (
                Svc::PaymentsWorker,
                Scope::WorkerJobs,
                "process payout-jobs",
            ),
            JobKind::Email => (Svc::MailerWorker, Scope::Sarama, "process outbound-email"),
        };
        let res = self.instance(svc);
        let start = match (job.after_abort, abort) {
            (true, Some(a)) => a + self.rng.range(200 * MS, 40 * SEC),
            _ => job.ready + self.rng.range(30 * MS, 3 * SEC),
        };
        let trace = self.rng.hex(16);
        let mut consumer = self.new_span(
            &trace, None, false, name, CONSUMER, start, start, res, scope,
        );
        consumer.links.push(Link {
            trace: job.producer_trace.clone(),
            span: job.producer_span.clone(),
            attrs: vec![("messaging.operation.type", s("send"))],
        });
        let mut spans = Vec::new();
        let mut t = start + self.rng.range(200 * US, 2 * MS);
        let commit: (String, u64);
        match job.kind {
            JobKind::Payout => {
                consumer.attrs.push(("messaging.system", s("rabbitmq")));
                consumer
                    .attrs
                    .push(("messaging.operation.type", s("process")));
                consumer
                    .attrs
                    .push(("messaging.operation.name", s("process")));
                consumer
                    .attrs
                    .push(("messaging.destination.name", s("payout-jobs")));
                consumer
                    .attrs
                    .push(("messaging.consumer.group.name", s("payout-workers")));
                consumer
                    .attrs
                    .push(("messaging.message.id", s(job.message_id.clone())));
                consumer.attrs.push((
                    "messaging.rabbitmq.message.delivery_tag",
                    i(self.rng.range(1, 90_000)),
                ));
                consumer
                    .attrs
                    .push(("server.address", s("rabbitmq.internal")));
                consumer.attrs.push(("server.port", i(5672)));
                let b = self.db(&trace, &consumer.id, res, t, "BEGIN", None, "BEGIN");
                t = b.end + 100 * US;
                spans.push(b);
                let sel = self.db(&trace, &consumer.id, res, t, "SELECT", Some("payouts"), "SELECT id, account_id, amount_cents, status FROM payouts WHERE id = $1 FOR UPDATE");
                t = sel.end + 200 * US;
                spans.push(sel);
                let bank_end = t + self.rng.range(80 * MS, 600 * MS);
                let mut bank = self.http_client(
                    &trace,
                    &consumer.id,
                    res,
                    "POST",
                    "https://api.bank.example/v1/transfers",
                    "api.bank.example",
                    443,
                    t,
                    bank_end,
                );
                bank.attrs
                    .push(("http.request.header.idempotency-key", arr(self.rng.uuid())));
                bank.attrs.push(("http.response.status_code", i(201)));
                t = bank_end + 300 * US;
                spans.push(bank);
                let upd = self.db(&trace, &consumer.id, res, t, "UPDATE", Some("payouts"), "UPDATE payouts SET status = 'paid', bank_transfer_id = $1, updated_at = now() WHERE id = $2");
                t = upd.end + 100 * US;
                spans.push(upd);
                let led = self.db(&trace, &consumer.id, res, t, "INSERT", Some("ledger_entries"), "INSERT INTO ledger_entries (id, account_id, amount_cents, kind, payout_id) VALUES ($1, $2, $3, 'payout', $4)");
                t = led.end + 100 * US;
                spans.push(led);
                let c = self.db(&trace, &consumer.id, res, t, "COMMIT", None, "COMMIT");
                t = c.end;
                commit = (c.id.clone(), c.end);
                spans.push(c);
            }
            JobKind::Email => {
                consumer.attrs.push(("messaging.system", s("kafka")));
                consumer
                    .attrs
                    .push(("messaging.operation.type", s("process")));
                consumer
                    .attrs
                    .push(("messaging.operation.name", s("process")));
                consumer
                    .attrs
                    .push(("messaging.destination.name", s("outbound-email")));
                consumer
                    .attrs
                    .push(("messaging.consumer.group.name", s("mailer-worker")));
                consumer.attrs.push((
                    "messaging.destination.partition.id",
                    s(format!("{}", self.rng.below(12))),
                ));
                consumer.attrs.push((
                    "messaging.kafka.offset",
                    i(self.rng.range(1_000_000, 9_000_000)),
                ));
                consumer
                    .attrs
                    .push(("messaging.message.id", s(job.message_id.clone())));
                consumer
                    .attrs
                    .push(("server.address", s("kafka-0.kafka.internal")));
                consumer.attrs.push(("server.port", i(9092)));
                let send_end = t + self.rng.range(120 * MS, 900 * MS);
                let mut send = self.http_client(
                    &trace,
                    &consumer.id,
                    res,
                    "POST",
                    "https://api.sendgrid.com/v3/mail/send",
                    "api.sendgrid.com",
                    443,
                    t,
                    send_end,
                );
                send.attrs.push(("http.response.status_code", i(202)));
                send.attrs.push((
                    "http.response.header.x-message-id",
                    arr(self.rng.base62(22)),
                ));
                t = send_end + 300 * US;
                spans.push(send);
                // Auto-committed: no transaction around it.
                let upd = self.db(
                    &trace,
                    &consumer.id,
                    res,
                    t,
                    "UPDATE",
                    Some("outbox"),
                    "UPDATE outbox SET status = 'sent', sent_at = now() WHERE id = $1",
                );
                t = upd.end;
                commit = (upd.id.clone(), upd.end);
                spans.push(upd);
            }
        }
        consumer.end = t + self.rng.range(200 * US, 2 * MS);
        spans.push(consumer);
        // Keep the commit clear of the abort (see GUARD).
        let mut shift = 0;
        if let Some(a) = abort
            && commit.1 + GUARD > a
            && commit.1 < a + GUARD
        {
            shift = a + GUARD + 10 * MS - commit.1;
        }
        for mut span in spans {
            span.shift(shift);
            self.emit(span);
        }
        turn.tools[job.tool].writes.push(WriteRec {
            span_id: commit.0,
            time: commit.1 + shift,
            via_link: true,
            rolled_back: false,
        });
        turn.tools[job.tool].has_downstream = true;
        self.truth.worker_traces += 1;
    }

    /// One normal step: a model call asking for tools, and the tool calls (sometimes two in
    /// parallel). Returns when the step ends.
    fn normal_step(&mut self, conv: &Conversation, turn: &mut Turn, start: u64) -> u64 {
        let t = self.chat(conv, turn, start, ChatEnd::ToolCalls);
        let parallel = if self.rng.chance(150) { 2 } else { 1 };
        let mut end = t;
        for n in 0..parallel {
            let tool = self.rng.weighted(NORMAL_TOOLS);
            let at = t + 100 * US + n as u64 * self.rng.range(100 * US, 2 * MS);
            end = end.max(self.tool(conv, turn, tool, at, Plan::Normal));
        }
        end + self.rng.range(100 * US, 2 * MS)
    }

    fn turn(&mut self, conv: &Conversation, index: u64, start: u64) -> u64 {
        self.truth.turns += 1;
        let scenario = if self.rng.chance(self.aborted_permille) {
            Some(self.rng.weighted(SCENARIOS))
        } else {
            None
        };
        let mut turn = Turn {
            trace: self.rng.hex(16),
            root: self.span_id(),
            tools: Vec::new(),
            jobs: Vec::new(),
            commits: Vec::new(),
            input_tokens: 0,
            output_tokens: 0,
        };
        self.in_aborted_turn = scenario.is_some();
        self.current_turn = Some((turn.trace.clone(), conv.id.clone()));
        self.commit_log.clear();
        let mut t = start + self.rng.range(50 * US, 500 * US);
        t = self.memory(conv, &mut turn, t, false) + self.rng.range(100 * US, MS);
        let steps = match scenario {
            None => self.rng.weighted(&[(20, 0), (45, 1), (25, 2), (10, 3)]),
            Some(_) => self.rng.weighted(&[(40, 0), (40, 1), (20, 2)]),
        };
        for _ in 0..steps {
            t = self.normal_step(conv, &mut turn, t);
        }
        let abort: Option<u64> = match scenario {
            None => {
                t = self.chat(conv, &mut turn, t, ChatEnd::Stop);
                None
            }
            Some(Scenario::ClientGone) | Some(Scenario::PreCommitAbort) => {
                t = self.chat(conv, &mut turn, t, ChatEnd::ToolCalls);
                let rollback = scenario == Some(Scenario::PreCommitAbort);
                let count = if !rollback && self.rng.chance(150) {
                    2
                } else {
                    1
                };
                let abort = t + self.rng.range(80 * MS, 600 * MS);
                let mut end = t;
                for n in 0..count {
                    let tool = if self.rng.chance(650) {
                        Tool::CreatePayment
                    } else {
                        Tool::IssueRefund
                    };
                    let at = t + 100 * US + n * self.rng.range(100 * US, 2 * MS);
                    end = end.max(self.tool(
                        conv,
                        &mut turn,
                        tool,
                        at,
                        Plan::InFlight { abort, rollback },
                    ));
                }
                t = end;
                Some(abort)
            }
            Some(Scenario::Unverified) => {
                t = self.chat(conv, &mut turn, t, ChatEnd::ToolCalls);
                let abort = t + self.rng.range(150 * MS, 800 * MS);
                t = self.tool(
                    conv,
                    &mut turn,
                    Tool::SendSms,
                    t + 100 * US,
                    Plan::InFlight {
                        abort,
                        rollback: false,
                    },
                );
                Some(abort)
            }
            Some(Scenario::LateQueued) => {
                t = self.chat(conv, &mut turn, t, ChatEnd::ToolCalls);
                let tool = if self.rng.chance(500) {
                    Tool::SchedulePayout
                } else {
                    Tool::SendEmail
                };
                let jobs_before = turn.jobs.len();
                t = self.tool(conv, &mut turn, tool, t + 100 * US, Plan::Normal)
                    + self.rng.range(100 * US, MS);
                for job in &mut turn.jobs[jobs_before..] {
                    job.after_abort = true;
                }
                let abort = t + self.rng.range(300 * MS, 2000 * MS);
                t = self.chat(conv, &mut turn, t, ChatEnd::Cancelled(abort));
                Some(abort)
            }
            Some(Scenario::DispatchedAfterAbort) => {
                let abort = t + self.rng.range(300 * MS, 2000 * MS);
                self.chat(conv, &mut turn, t, ChatEnd::Cancelled(abort));
                // The runtime ignores the abort and runs the tool call it had parsed.
                let at = abort + self.rng.range(60 * MS, 400 * MS);
                t = self.tool(conv, &mut turn, Tool::CreatePayment, at, Plan::Normal);
                Some(abort)
            }
            Some(Scenario::NothingInFlight) => {
                let abort = t + self.rng.range(300 * MS, 3000 * MS);
                t = self.chat(conv, &mut turn, t, ChatEnd::Cancelled(abort));
                Some(abort)
            }
        };
        // The runtime saves the turn (a cancelled one too), then the root span ends.
        let save_at = t + self.rng.range(300 * US, 2 * MS);
        t = self.memory(conv, &mut turn, save_at, true);
        let root_end = t + self.rng.range(200 * US, MS);
        let mut root = Span {
            trace: turn.trace.clone(),
            id: turn.root.clone(),
            parent: None,
            remote_parent: false,
            name: "invoke_agent support-agent".into(),
            kind: INTERNAL,
            start,
            end: root_end,
            attrs: Vec::new(),
            events: Vec::new(),
            links: Vec::new(),
            status: None,
            res: conv.agent,
            scope: Scope::AgentRuntime,
            is_commit: false,
        };
        root.attrs
            .push(("gen_ai.operation.name", s("invoke_agent")));
        root.attrs.push(("gen_ai.provider.name", s("openai")));
        root.attrs.push(("gen_ai.agent.name", s("support-agent")));
        root.attrs
            .push(("gen_ai.agent.id", s("asst_5kQ2vR8mT1xN4pL7")));
        root.attrs.push((
            "gen_ai.agent.description",
            s("Customer support agent for billing, orders and payouts"),
        ));
        root.attrs.push(("gen_ai.request.model", s("gpt-4.1-mini")));
        root.attrs
            .push(("gen_ai.conversation.id", s(conv.id.clone())));
        root.attrs.push(("user.id", s(conv.user.clone())));
        root.attrs.push(("app.channel", s(conv.channel)));
        root.attrs.push(("app.turn.index", i(index)));
        root.attrs
            .push(("gen_ai.usage.input_tokens", i(turn.input_tokens)));
        root.attrs
            .push(("gen_ai.usage.output_tokens", i(turn.output_tokens)));
        if let Some(a) = abort {
            root.events.push(Event {
                time: a,
                name: "abort",
                attrs: vec![
                    ("abort.reason", s("user_stop")),
                    ("abort.source", s("stop_button")),
                ],
            });
            let exception_at = match scenario {
                Some(Scenario::DispatchedAfterAbort) => root_end - 30 * US,
                _ => a + self.rng.range(300 * US, 3 * MS),
            };
            root.events.push(self.cancelled_event(exception_at));
            root.status = Some((2, "turn cancelled by the user".into()));
        }
        self.emit(root);
        self.current_turn = None;
        // The queue workers, now that the abort (if any) is known.
        let jobs = std::mem::take(&mut turn.jobs);
        for job in &jobs {
            self.worker(job, &mut turn, abort);
        }
        turn.commits = self
            .commit_log
            .drain(..)
            .filter(|(trace, _)| *trace == turn.trace)
            .map(|(_, end)| end)
            .collect();
        if let (Some(a), Some(sc)) = (abort, scenario) {
            self.truth.aborted_turns += 1;
            *self.truth.scenarios.entry(sc.as_str()).or_default() += 1;
            self.account_abort(conv, &turn, a);
        }
        root_end
    }

    /// What the audit should find in an aborted turn, and the naive time filter's count.
    fn account_abort(&mut self, conv: &Conversation, turn: &Turn, abort: u64) {
        let late_commits = turn.commits.iter().filter(|&&c| c > abort).count() as u64;
        if late_commits > 0 {
            *self.truth.time_filter.entry(conv.id.clone()).or_default() += late_commits;
        }
        for tool in &turn.tools {
            let expect = |category: &'static str,
                          late: bool,
                          join: Option<&'static str>,
                          write: Option<&WriteRec>| Expected {
                conversation: conv.id.clone(),
                trace: turn.trace.clone(),
                tool_call_id: tool.call_id.clone(),
                tool_name: tool.name,
                category,
                late,
                join,
                write_span_id: write.map(|w| w.span_id.clone()),
                write_time: write.map(|w| w.time),
                abort,
            };
            let mut found = Vec::new();
            if tool.start > abort {
                for w in tool.writes.iter().filter(|w| !w.rolled_back) {
                    found.push(expect(
                        "dispatched_after_abort",
                        true,
                        Some(if w.via_link { "link" } else { "parent" }),
                        Some(w),
                    ));
                }
                if found.is_empty() {
                    found.push(expect("dispatched_after_abort", true, None, None));
                }
            } else {
                self.truth.tool_calls_at_risk += 1;
                for w in &tool.writes {
                    if w.rolled_back {
                        found.push(expect("pre_commit_abort", false, Some("parent"), Some(w)));
                    } else if w.time > abort {
                        if w.via_link {
                            found.push(expect("late_queued", true, Some("link"), Some(w)));
                        } else {
                            found.push(expect("client_gone", true, Some("parent"), Some(w)));
                        }
                    } else {
                        self.truth.committed_before_abort += 1;
                    }
                }
                if tool.in_flight && !tool.has_downstream {
                    found.push(expect("unverified", false, None, None));
                }
            }
            self.truth.expected.extend(found);
        }
    }

    fn conversation(&mut self, start: u64) {
        self.truth.conversations += 1;
        let channel = *self.rng.pick(CHANNELS);
        let conv = Conversation {
            id: self.rng.uuid(),
            user: format!("usr_{}", self.rng.base62(10)),
            customer: format!("cus_{}", self.rng.base62(14)),
            channel,
            agent: self.instance(Svc::Agent),
        };
        let turns = self.rng.range(2, 6);
        let mut t = start;
        for index in 0..turns {
            let end = self.turn(&conv, index, t);
            t = end + self.rng.range(3 * SEC, 45 * SEC);
        }
    }
}

fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1_000,
        "mb" | "m" => 1_000_000,
        "gb" | "g" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        other => bail!(
            "unknown size unit {other:?} in {text:?}; expected B, KB, MB, GB, KiB, MiB or GiB"
        ),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().with_context(|| format!("size {text:?}"))?
    };
    let mut total = whole * scale;
    let mut place = scale;
    for d in fraction.bytes() {
        if !d.is_ascii_digit() {
            bail!("size {text:?} is not a number and a unit");
        }
        place /= 10;
        total += u64::from(d - b'0') * place;
    }
    if total == 0 {
        bail!("size {text:?} is zero");
    }
    Ok(total)
}

struct Args {
    size: u64,
    size_text: String,
    seed: u64,
    aborted_permille: u64,
    genai: bool,
    out: PathBuf,
}

fn parse_args() -> Result<Args> {
    let mut size = None;
    let mut aborted_permille = 100;
    let mut seed = 42;
    let mut out = None;
    let mut genai = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (key, inline) = match arg.split_once('=') {
            Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        let mut value = || -> Result<String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => args.next().with_context(|| format!("{key} needs a value")),
            }
        };
        match key.as_str() {
            "--size" => size = Some(value()?),
            "--seed" => {
                seed = value()?
                    .parse()
                    .context("--seed must be an unsigned integer")?
            }
            "--out" => out = Some(PathBuf::from(value()?)),
            "--genai" => genai = true,
            "--aborted" => {
                aborted_permille = value()?
                    .parse()
                    .ok()
                    .filter(|p| *p <= 1000)
                    .context("--aborted must be a number of turns per thousand, 0 to 1000")?
            }
            "-h" | "--help" => {
                println!(
                    "usage: gen_collector_otlp --size SIZE [--seed N] [--aborted PERMILLE] [--genai] --out FILE\n\nSIZE: 10MB, 100MB, 1GB (decimal) or 64MiB, 1GiB (binary). PERMILLE: turns aborted per thousand (default 100). --genai: the shape GenAI instrumentations write (the conversation id on every span of a turn, message content as escaped JSON).\nWrites FILE (OTLP/JSON Lines, Collector file exporter shape) and FILE.truth.json."
                );
                std::process::exit(0);
            }
            other => bail!(
                "unknown argument {other:?}; usage: gen_collector_otlp --size SIZE [--seed N] [--aborted PERMILLE] [--genai] --out FILE"
            ),
        }
    }
    let size_text = size.context("--size is required (e.g. --size 100MB)")?;
    Ok(Args {
        size: parse_size(&size_text)?,
        size_text,
        seed,
        aborted_permille,
        genai,
        out: out.context("--out is required")?,
    })
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let file = std::fs::File::create(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut rng = Rng(args.seed ^ 0x6162_6f72_7461_7564); // "abortaud"
    let resources = build_resources(&mut rng);
    let mut g = Gen {
        rng,
        aborted_permille: args.aborted_permille,
        resources,
        heap: BinaryHeap::new(),
        seq: 0,
        span_bytes: 0,
        spans: 0,
        truth: Truth::default(),
        out: BufWriter::with_capacity(4 << 20, file),
        line_target: 300,
        line: Vec::new(),
        bytes_written: 0,
        lines_written: 0,
        commit_log: Vec::new(),
        in_aborted_turn: false,
        genai: args.genai.then_some(Rng(args.seed ^ 0x6765_6e61_6900_0000)), // "genai"
        current_turn: None,
    };
    // Span JSON is about 97% of a line; the rest is resource and scope blocks.
    let budget = args.size - args.size / 33;
    let mut start = DAY_START + g.rng.range(0, SEC);
    let mut next_report = 100_000_000;
    while g.span_bytes < budget {
        g.conversation(start);
        start += g.rng.range(50 * MS, 900 * MS);
        g.drain(Some(start))?;
        if g.bytes_written >= next_report {
            eprintln!(
                "gen_collector_otlp: {} MB written",
                g.bytes_written / 1_000_000
            );
            next_report += 100_000_000;
        }
    }
    g.drain(None)?;
    g.out.flush()?;

    let t = &g.truth;
    let late_by_time_filter: u64 = t.time_filter.values().sum();
    let mut by_category: BTreeMap<&str, u64> = BTreeMap::new();
    for e in &t.expected {
        *by_category.entry(e.category).or_default() += 1;
    }
    let late_findings = t.expected.iter().filter(|e| e.late).count();
    let parent_late: BTreeMap<String, u64> = t
        .expected
        .iter()
        .filter(|e| e.late && e.join == Some("parent"))
        .fold(BTreeMap::new(), |mut m, e| {
            *m.entry(e.conversation.clone()).or_default() += 1;
            m
        });
    let expected: Vec<serde_json::Value> = t
        .expected
        .iter()
        .map(|e| {
            json!({
                "conversation_id": e.conversation,
                "trace_id": e.trace,
                "tool_call_id": e.tool_call_id,
                "tool": e.tool_name,
                "category": e.category,
                "late": e.late,
                "join": e.join,
                "write_span_id": e.write_span_id,
                "write_time_unix_nano": e.write_time.map(|t| t.to_string()),
                "abort_time_unix_nano": e.abort.to_string(),
            })
        })
        .collect();
    let truth = json!({
        "schema": "abortaudit-bench-truth/v1",
        "generator": {
            "program": "examples/gen_collector_otlp.rs",
            "seed": args.seed,
            "size": args.size_text,
            "target_bytes": args.size,
            "aborted_permille": args.aborted_permille,
            "genai": args.genai,
        },
        "bytes": g.bytes_written,
        "lines": g.lines_written,
        "spans": g.spans,
        "conversations": t.conversations,
        "turns": t.turns,
        "aborted_turns": t.aborted_turns,
        "worker_traces": t.worker_traces,
        "tool_calls": t.tool_calls,
        "tool_calls_at_risk": t.tool_calls_at_risk,
        "aborted_turns_by_scenario": t.scenarios,
        "committed_before_abort": t.committed_before_abort,
        "time_filter": {
            "definition": "per conversation: COMMIT spans (db.operation.name = COMMIT) of an aborted trace (its root span has an `abort` event) that end after the abort; conversations with none are left out",
            "late_writes": late_by_time_filter,
            "by_conversation": t.time_filter,
        },
        "expected_findings": {
            "total": t.expected.len(),
            "late": late_findings,
            "by_category": by_category,
            "parent_joined_late_by_conversation": parent_late,
            "findings": expected,
        },
    });
    let truth_path = {
        let mut p = args.out.clone().into_os_string();
        p.push(".truth.json");
        PathBuf::from(p)
    };
    let mut truth_bytes = serde_json::to_vec_pretty(&truth)?;
    truth_bytes.push(b'\n');
    std::fs::write(&truth_path, truth_bytes)
        .with_context(|| format!("cannot write {}", truth_path.display()))?;
    eprintln!(
        "gen_collector_otlp: {} bytes, {} lines, {} spans; {} conversations, {} turns, {} aborted ({}), {} worker traces; \
         late writes by the time filter: {}; expected findings: {} ({} late: {}); truth in {}",
        g.bytes_written,
        g.lines_written,
        g.spans,
        t.conversations,
        t.turns,
        t.aborted_turns,
        t.scenarios
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        t.worker_traces,
        late_by_time_filter,
        t.expected.len(),
        late_findings,
        by_category
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        truth_path.display(),
    );
    Ok(())
}

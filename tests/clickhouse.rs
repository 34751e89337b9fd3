//! `scan clickhouse://…` against the real ClickHouse engine (chdb-core, pinned in
//! tests/clickhouse/requirements.txt) behind the loopback HTTP front tests/clickhouse/server.py,
//! with the Collector's clickhouseexporter schema (tests/clickhouse/schema.py) and the fixtures
//! loaded as the exporter maps spans to rows (tests/clickhouse/load.py).
//!
//! The engine is the one at ABORTAUDIT_CLICKHOUSE_URL (what .ci/run starts), else one these
//! tests start from tests/clickhouse/.venv (made by tests/clickhouse/setup.sh) and stop when
//! they end. Without either they are skipped with a note; ABORTAUDIT_REQUIRE_CLICKHOUSE=1
//! makes that a failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::{bin, fixture, json};
use serde_json::Value;

const REQUIRE: &str = "ABORTAUDIT_REQUIRE_CLICKHOUSE";
/// The credentials of an engine these tests start (one given by URL takes its own from
/// ABORTAUDIT_CH_USER / ABORTAUDIT_CH_PASSWORD, as server.py does).
const USER: &str = "auditor";
const PASSWORD: &str = "pa'ss\\word";

/// Wide enough for every fixture.
const SINCE: &str = "2020-01-01T00:00:00Z";
const UNTIL: &str = "2030-01-01T00:00:00Z";

struct Engine {
    /// `http://127.0.0.1:PORT`
    http: String,
    user: String,
    password: String,
}

impl Engine {
    fn store(&self, database: &str, table: &str) -> String {
        format!(
            "{}/{database}?table={table}",
            self.http.replacen("http://", "clickhouse://", 1)
        )
    }

    /// Runs one of the stdlib-only scripts of tests/clickhouse against the engine.
    fn script(&self, script: &str, args: &[&str]) {
        let output = Command::new("python3")
            .arg(root().join("tests/clickhouse").join(script))
            .args([
                "--url",
                &self.http,
                "--user",
                &self.user,
                "--password",
                &self.password,
            ])
            .args(args)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .expect("python3 runs");
        assert!(
            output.status.success(),
            "{script} {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Creates `database` in a schema variant and loads trace files into it.
    fn load(&self, database: &str, variant: &str, traces: &[PathBuf], distributed: bool) {
        let mut schema = vec!["--variant", variant, "--database", database, "--drop"];
        if distributed {
            schema.push("--distributed");
        }
        self.script("schema.py", &schema);
        let mut load: Vec<String> = ["--variant", variant, "--database", database]
            .map(str::to_owned)
            .to_vec();
        load.extend(traces.iter().map(|p| p.display().to_string()));
        let load: Vec<&str> = load.iter().map(String::as_str).collect();
        self.script("load.py", &load);
    }

    /// One statement, through ClickHouse's HTTP interface (curl: these tests need no client).
    fn execute(&self, sql: &str) -> String {
        let output = Command::new("curl")
            .args(["-sS", "--fail-with-body", "-H"])
            .arg(format!("X-ClickHouse-User: {}", self.user))
            .arg("-H")
            .arg(format!("X-ClickHouse-Key: {}", self.password))
            .args(["--data-binary", sql, &format!("{}/", self.http)])
            .output()
            .expect("curl runs");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "{sql}: {text}");
        text
    }

    fn scan(&self, store: &str, args: &[&str]) -> Output {
        bin()
            .args(["scan", store, "--since", SINCE, "--until", UNTIL])
            .args(args)
            .env("CLICKHOUSE_USER", &self.user)
            .env("CLICKHOUSE_PASSWORD", &self.password)
            .output()
            .unwrap()
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The engine, started once for all the tests of this file, or `None` (skipped).
fn engine() -> Option<&'static Engine> {
    static ENGINE: OnceLock<Option<Engine>> = OnceLock::new();
    let engine = ENGINE.get_or_init(|| {
        if let Some(url) = std::env::var_os("ABORTAUDIT_CLICKHOUSE_URL").filter(|u| !u.is_empty()) {
            return Some(Engine {
                http: url.to_string_lossy().trim_end_matches('/').to_owned(),
                user: std::env::var("ABORTAUDIT_CH_USER").unwrap_or_else(|_| "default".into()),
                password: std::env::var("ABORTAUDIT_CH_PASSWORD").unwrap_or_default(),
            });
        }
        let venv = root().join("tests/clickhouse/.venv/bin/python");
        if !venv.exists() {
            return None;
        }
        Some(start())
    });
    if engine.is_none() {
        assert!(
            std::env::var_os(REQUIRE).is_none_or(|v| v.is_empty() || v == "0"),
            "{REQUIRE} is set but there is no ClickHouse engine: run tests/clickhouse/setup.sh, or set ABORTAUDIT_CLICKHOUSE_URL"
        );
        eprintln!(
            "SKIPPED: no ClickHouse engine (tests/clickhouse/setup.sh makes one; or set ABORTAUDIT_CLICKHOUSE_URL); the store tests did not run"
        );
    }
    engine.as_ref()
}

/// Starts server.py in a run directory of its own, with a fresh engine, and a watcher that
/// stops it by its pid when this test process ends (the watcher outlives this process by
/// design: it is never waited for).
#[allow(clippy::zombie_processes)]
fn start() -> Engine {
    let run_dir = std::env::temp_dir().join(format!("abortaudit-ch-tests-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&run_dir);
    let output = Command::new("bash")
        .arg(root().join("tests/clickhouse/start.sh"))
        .arg("--run-dir")
        .arg(&run_dir)
        .args(["--", "--quiet"])
        .env("ABORTAUDIT_CH_USER", USER)
        .env("ABORTAUDIT_CH_PASSWORD", PASSWORD)
        .output()
        .expect("bash runs");
    assert!(
        output.status.success(),
        "tests/clickhouse/start.sh: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let port = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    // The server outlives nothing: stopped by its pid once this process is gone.
    Command::new("bash")
        .arg("-c")
        .arg(format!(
            "while kill -0 {} 2>/dev/null; do sleep 1; done; bash {} --run-dir {} >/dev/null 2>&1; rm -rf {}",
            std::process::id(),
            root().join("tests/clickhouse/stop.sh").display(),
            run_dir.display(),
            run_dir.display()
        ))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the watcher starts");
    Engine {
        http: format!("http://127.0.0.1:{port}"),
        user: USER.to_owned(),
        password: PASSWORD.to_owned(),
    }
}

/// The trace files of a fixture directory, as load.py takes them.
fn traces(dir: &str) -> Vec<PathBuf> {
    vec![fixture(dir).join("traces")]
}

/// A scan's JSON report, checked to have exited 0 (with --exit-zero).
fn report(output: &Output) -> Value {
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    json(&output.stdout)
}

fn scan_files(inputs: &[PathBuf], args: &[&str]) -> Value {
    let output = bin()
        .arg("scan")
        .args(inputs)
        .args(["--format", "json", "--exit-zero"])
        .args(args)
        .output()
        .unwrap();
    report(&output)
}

/// The findings, as text: equal byte for byte, or not.
fn findings(report: &Value) -> String {
    serde_json::to_string_pretty(&report["findings"]).unwrap()
}

/// The findings with every quoted RFC 3339 time in the prevention details written as its
/// instant in UTC nanoseconds. A `JSON` attribute column (the exporter's `json: true`) infers a
/// string that looks like a time as `DateTime64` and keeps the instant, not the text: a
/// deadline header's `2026-12-06T04:40:44.472+00:00` comes back as
/// `2026-12-06T04:40:44.472000000Z`. Everything else stays byte for byte.
fn findings_same_instants(report: &Value) -> String {
    let mut report = report.clone();
    for finding in report["findings"].as_array_mut().unwrap() {
        for mechanism in finding["prevention"].as_array_mut().into_iter().flatten() {
            if let Some(detail) = mechanism["detail"].as_str() {
                mechanism["detail"] = Value::String(instants(detail));
            }
        }
    }
    findings(&report)
}

fn instants(text: &str) -> String {
    text.split('"')
        .enumerate()
        .map(
            |(i, part)| match chrono::DateTime::parse_from_rfc3339(part) {
                Ok(time) if i % 2 == 1 => format!("@{}", time.timestamp_nanos_opt().unwrap()),
                _ => part.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("\"")
}

/// For each fixture directory (each harness), in the dialects where the table differs:
/// the findings from the store are the findings from the files, byte for byte.
struct Case {
    dir: &'static str,
    /// Extra arguments of the scan: vendor event logs, abort logs (paths in the fixture).
    runs: &'static [&'static [&'static str]],
}

const CASES: &[Case] = &[
    Case {
        dir: "scenarios",
        runs: &[&[], &["--events", "events/stripe.jsonl"]],
    },
    Case {
        dir: "scenarios-frameworks",
        runs: &[&[], &["--aborts", "aborts.jsonl"]],
    },
    Case {
        dir: "scenarios-node",
        runs: &[&[], &["--aborts", "aborts.jsonl"]],
    },
    Case {
        dir: "scenarios-prevention",
        runs: &[&[], &["--events", "events/stripe.jsonl"]],
    },
];

const VARIANTS: [&str; 5] = ["current", "json", "v2025", "legacy2023", "legacy2022"];

fn args_in(dir: &Path, run: &[&str]) -> Vec<String> {
    run.iter()
        .map(|a| {
            if a.starts_with("--") {
                (*a).to_owned()
            } else {
                dir.join(a).display().to_string()
            }
        })
        .collect()
}

#[test]
fn every_fixture_gives_the_same_findings_from_the_store_as_from_its_files_in_every_dialect() {
    let Some(engine) = engine() else { return };
    let mut compared = 0;
    for case in CASES {
        let dir = fixture(case.dir);
        for variant in VARIANTS {
            let database = format!("eq_{}_{variant}", case.dir.replace('-', "_"));
            engine.load(&database, variant, &traces(case.dir), false);
            for run in case.runs {
                let args = args_in(&dir, run);
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let files = scan_files(&traces(case.dir), &args);
                let mut store_args = vec!["--format", "json", "--exit-zero"];
                store_args.extend(&args);
                let store =
                    report(&engine.scan(&engine.store(&database, "otel_traces"), &store_args));
                assert!(
                    !files["findings"].as_array().unwrap().is_empty(),
                    "{}: the fixture has findings",
                    case.dir
                );
                let compare = if variant == "json" {
                    findings_same_instants
                } else {
                    findings
                };
                assert_eq!(
                    compare(&store),
                    compare(&files),
                    "{} {variant} {run:?}: the store's findings differ from the files'",
                    case.dir
                );
                assert_eq!(
                    store["summary"]["aborted_turns_by_signal"],
                    files["summary"]["aborted_turns_by_signal"],
                    "{} {variant} {run:?}",
                    case.dir
                );
                assert_eq!(store["diagnostics"], Value::Array(Vec::new()));
                compared += 1;
            }
        }
    }
    assert_eq!(compared, 40);
}

#[test]
fn a_distributed_table_is_read_with_global_in_and_gives_the_same_findings() {
    let Some(engine) = engine() else { return };
    let database = "dist_scenarios_node";
    engine.load(database, "current", &traces("scenarios-node"), true);
    let dir = fixture("scenarios-node");
    let aborts = dir.join("aborts.jsonl").display().to_string();
    let files = scan_files(&traces("scenarios-node"), &["--aborts", &aborts]);
    let store = engine.store(database, "otel_traces_dist");
    let output = engine.scan(
        &store,
        &["--format", "json", "--exit-zero", "--aborts", &aborts],
    );
    assert_eq!(findings(&report(&output)), findings(&files));
    let inspect = bin()
        .args(["inspect", &store, "--since", SINCE, "--format", "json"])
        .env("CLICKHOUSE_USER", &engine.user)
        .env("CLICKHOUSE_PASSWORD", &engine.password)
        .output()
        .unwrap();
    let inspect = report(&inspect);
    assert_eq!(inspect["store"]["dialect"]["engine"], "Distributed");
}

#[test]
fn inspect_on_a_store_shows_the_window_the_dialect_and_the_aborted_turns_by_signal() {
    let Some(engine) = engine() else { return };
    let database = "inspect_legacy";
    engine.load(database, "legacy2022", &traces("scenarios"), false);
    let store = engine.store(database, "otel_traces");
    let output = bin()
        .args([
            "inspect", &store, "--since", SINCE, "--until", UNTIL, "--format", "json",
        ])
        .env("CLICKHOUSE_USER", &engine.user)
        .env("CLICKHOUSE_PASSWORD", &engine.password)
        .output()
        .unwrap();
    let inspect = report(&output);
    let facts = &inspect["store"];
    assert_eq!(facts["spans_in_window"], 192);
    assert_eq!(facts["dialect"]["attributes"], "map");
    assert_eq!(facts["dialect"]["scope_columns"], false);
    assert_eq!(facts["dialect"]["duration"], "Int64");
    assert_eq!(facts["enums"], serde_json::json!(["legacy"]));
    assert_eq!(inspect["inputs"][0]["format"], "clickhouse");
    assert_eq!(inspect["joined"]["aborted_turns_by_signal"]["recorded"], 11);

    let table = bin()
        .args(["inspect", &store, "--since", SINCE, "--until", UNTIL])
        .env("CLICKHOUSE_USER", &engine.user)
        .env("CLICKHOUSE_PASSWORD", &engine.password)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("192 spans in"), "{text}");
    assert!(text.contains("aborted turns: 11 recorded"), "{text}");
    assert!(text.contains("enums spelt legacy"), "{text}");
}

/// Replaces every occurrence of `from` in the fixture's trace files, writing them to `dir`.
fn rewritten(fixture_dir: &str, dir: &Path, edits: &[(&str, &str)]) -> PathBuf {
    let out = dir.join("traces");
    std::fs::create_dir_all(&out).unwrap();
    for entry in std::fs::read_dir(fixture(fixture_dir).join("traces")).unwrap() {
        let path = entry.unwrap().path();
        let mut text = std::fs::read_to_string(&path).unwrap();
        for (from, to) in edits {
            text = text.replace(from, to);
        }
        std::fs::write(out.join(path.file_name().unwrap()), text).unwrap();
    }
    out
}

#[test]
fn a_hostile_conversation_id_and_attribute_key_change_nothing() {
    let Some(engine) = engine() else { return };
    let tmp = tempfile::tempdir().unwrap();
    // As JSON text inside the OTLP files: quotes, backslashes and SQL.
    let hostile_id = r#"conv-'; DROP TABLE otel_traces; --\"\\' OR 1=1 {p0:String}"#;
    let hostile_key = r#"evil'key\\\"]); DROP TABLE otel_traces; --"#;
    let traces = rewritten(
        "scenarios-node",
        tmp.path(),
        &[
            (
                "\"ai.telemetry.metadata.conversationId\"",
                &format!("\"{hostile_key}\""),
            ),
            ("conv-", &format!("{hostile_id}-")),
        ],
    );
    // The rules name the hostile key as the conversation's; the abort log names the hostile
    // conversations (both become query parameters).
    let rules = tmp.path().join("abortaudit.toml");
    std::fs::write(
        &rules,
        format!(
            "[conversation]\nid_attributes = [{}]\n",
            serde_json::to_string(
                &serde_json::from_str::<String>(&format!("\"{hostile_key}\"")).unwrap()
            )
            .unwrap()
        ),
    )
    .unwrap();
    let aborts_text = std::fs::read_to_string(fixture("scenarios-node").join("aborts.jsonl"))
        .unwrap()
        .replace("conv-", &format!("{hostile_id}-"));
    let aborts = tmp.path().join("aborts.jsonl");
    std::fs::write(&aborts, aborts_text).unwrap();

    let database = "hostile";
    engine.load(database, "current", std::slice::from_ref(&traces), false);
    let count = || engine.execute(&format!("SELECT count() FROM {database}.otel_traces"));
    let before = count();
    let config = rules.display().to_string();
    let aborts = aborts.display().to_string();
    let args = ["--config", config.as_str(), "--aborts", aborts.as_str()];
    let files = scan_files(&[traces], &args);
    let mut store_args = vec!["--format", "json", "--exit-zero"];
    store_args.extend(args);
    let store = report(&engine.scan(&engine.store(database, "otel_traces"), &store_args));
    assert_eq!(findings(&store), findings(&files));
    let findings = files["findings"].as_array().unwrap();
    assert!(
        findings.iter().any(|f| f["conversation_id"]
            .as_str()
            .unwrap()
            .contains("DROP TABLE")),
        "the hostile conversations have findings"
    );
    assert_eq!(count(), before, "the table is as it was");
}

/// Arms server.py's test switch: the next streamed SELECT whose SQL holds `matching` fails
/// after `after_bytes` bytes of its answer, in the exception style given; only a query of
/// `database`, so that the tests beside it are left alone.
fn arm_fault(engine: &Engine, database: &str, after_bytes: u64, style: &str) {
    let output = Command::new("curl")
        .args(["-sS", "--fail-with-body", "-X", "POST"])
        .arg(format!(
            "{}/__test__/fault?after_bytes={after_bytes}&count=1&match=abortaudit_seeds&code=241&message=Memory%20limit%20exceeded%20mid-stream&style={style}&database={database}",
            engine.http
        ))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[test]
fn an_exception_mid_stream_is_exit_2_with_the_servers_message_never_a_partial_report() {
    let Some(engine) = engine() else { return };
    let database = "faults";
    engine.load(database, "current", &traces("scenarios"), false);
    let store = engine.store(database, "otel_traces");
    for style in ["tagged", "marker", "plain"] {
        arm_fault(engine, database, 3000, style);
        let output = engine.scan(&store, &["--format", "json"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{style}: {stderr}");
        assert!(
            output.stdout.is_empty(),
            "{style}: no report of what arrived"
        );
        assert!(
            stderr.contains("Code: 241") && stderr.contains("Memory limit exceeded mid-stream"),
            "{style}: {stderr}"
        );
        assert!(
            stderr.contains("failed during the survey"),
            "{style}: {stderr}"
        );
    }
    // Disarmed (count=1), the same scan is whole again.
    let output = engine.scan(&store, &["--format", "json", "--exit-zero"]);
    report(&output);
}

#[test]
fn server_errors_and_refused_credentials_are_exit_2_with_the_servers_message() {
    let Some(engine) = engine() else { return };
    let database = "errors";
    engine.load(database, "current", &traces("scenarios"), false);

    // A table that is not the exporter's.
    engine.execute(&format!(
        "CREATE TABLE IF NOT EXISTS {database}.other (x UInt8) ENGINE = Memory"
    ));
    let output = engine.scan(&engine.store(database, "other"), &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("not a table of the Collector's clickhouseexporter"),
        "{stderr}"
    );

    // No such table: HTTP 404 and ClickHouse's code.
    let output = engine.scan(&engine.store(database, "nope"), &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("HTTP 404") && stderr.contains("Code: 60"),
        "{stderr}"
    );

    // The engine fails before answering (a view that throws): HTTP 500.
    engine.execute(&format!(
        "CREATE VIEW IF NOT EXISTS {database}.broken AS SELECT * FROM {database}.otel_traces WHERE throwIf(SpanName != '', 'this view is broken')"
    ));
    let output = engine.scan(&engine.store(database, "broken"), &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("HTTP 500") && stderr.contains("this view is broken"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());

    // Wrong credentials: 403, and the password is printed nowhere.
    let store = engine.store(database, "otel_traces");
    let output = bin()
        .args(["scan", &store, "--since", SINCE])
        .env("CLICKHOUSE_USER", &engine.user)
        .env("CLICKHOUSE_PASSWORD", "not-the-password")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("HTTP 403") && stderr.contains("Authentication failed"),
        "{stderr}"
    );
    assert!(!stderr.contains("not-the-password"));

    // Credentials in the URL (escaped) win over the environment's.
    let with_credentials = store.replacen(
        "clickhouse://",
        &format!(
            "clickhouse://{}:{}@",
            escape(&engine.user),
            escape(&engine.password)
        ),
        1,
    );
    let output = bin()
        .args([
            "scan",
            &with_credentials,
            "--since",
            SINCE,
            "--until",
            UNTIL,
        ])
        .args(["--format", "json", "--exit-zero"])
        .env("CLICKHOUSE_USER", "nobody")
        .env("CLICKHOUSE_PASSWORD", "wrong")
        .output()
        .unwrap();
    report(&output);

    // A store needs a window; an empty window has nothing to audit.
    let output = engine.scan(&store, &[]);
    report_ok_or(&output, 1);
    let output = bin().args(["scan", &store]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--since"));
    let output = bin()
        .args([
            "scan",
            &store,
            "--since",
            "2019-01-01T00:00:00Z",
            "--until",
            "2019-01-02T00:00:00Z",
        ])
        .env("CLICKHOUSE_USER", &engine.user)
        .env("CLICKHOUSE_PASSWORD", &engine.password)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no spans"));
}

fn report_ok_or(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn escape(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn a_late_worker_past_the_windows_end_is_found_within_the_grace() {
    let Some(engine) = engine() else { return };
    let database = "grace";
    engine.load(database, "current", &traces("scenarios"), false);
    let files = scan_files(&traces("scenarios"), &[]);
    let late = files["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["category"] == "late_queued")
        .expect("the scenarios have a late_queued finding")
        .clone();
    let abort: u64 = late["abort"]["time_unix_nano"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // The window ends just after this turn's abort, before its worker ran.
    let until = format!("{}", abort + 1);
    let until = rfc3339(until.parse().unwrap());
    let store = engine.store(database, "otel_traces");
    let scan = |grace: &str| {
        let output = bin()
            .args([
                "scan", &store, "--since", SINCE, "--until", &until, "--grace", grace,
            ])
            .args(["--format", "json", "--exit-zero"])
            .env("CLICKHOUSE_USER", &engine.user)
            .env("CLICKHOUSE_PASSWORD", &engine.password)
            .output()
            .unwrap();
        report(&output)
    };
    let has_late = |report: &Value| {
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"] == late["id"] && f["category"] == "late_queued")
    };
    assert!(
        has_late(&scan("1h")),
        "the default grace reaches the worker"
    );
    assert!(
        !has_late(&scan("0s")),
        "without grace the worker is past the window"
    );
}

/// Unix nanoseconds as RFC 3339, for --until.
fn rfc3339(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let nanos = ns % 1_000_000_000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

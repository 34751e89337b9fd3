//! `abortaudit inspect` on real exports from other projects (the public corpus), and its
//! contract: JSON schema, exit codes, errors that name the input.

mod common;

use common::{bin, corpus, json};

/// Inspects one corpus file as JSON and returns its input record.
fn inspect_one(path: &std::path::Path) -> (serde_json::Value, i32) {
    let output = bin()
        .args(["inspect", "--format", "json"])
        .arg(path)
        .output()
        .unwrap();
    let report = json(&output.stdout);
    assert_eq!(report["schema"], "abortaudit-inspect/v1");
    (report["inputs"][0].clone(), output.status.code().unwrap())
}

#[test]
fn corpus_otlp_json_files_have_the_documented_span_counts() {
    let Some(dir) = corpus("traces/otlp-json") else {
        return;
    };
    // Counts from ../shared/corpus/README.md.
    for (file, format, spans, links) in [
        (
            "jaeger_apiv3_GetTrace_result-wrapper.json",
            "otlp-json",
            1,
            0,
        ),
        (
            "jaeger_integration_link_attributes_trace.json",
            "otlp-json",
            1,
            3,
        ),
        ("otel-proto_examples_trace.json", "otlp-json", 1, 0),
        (
            "otel-spec_file-exporter_traces-example.jsonl",
            "otlp-json-lines",
            8,
            0,
        ),
    ] {
        let (input, code) = inspect_one(&dir.join(file));
        assert_eq!(code, 0, "{file}");
        assert_eq!(input["format"], format, "{file}");
        assert_eq!(input["compression"], "none", "{file}");
        assert_eq!(input["spans"], spans, "{file}");
        assert_eq!(input["links"], links, "{file}");
    }
}

#[test]
fn the_spec_reference_file_reads_upper_case_hex_ids() {
    let Some(dir) = corpus("traces/otlp-json") else {
        return;
    };
    let (input, _) = inspect_one(&dir.join("otel-proto_examples_trace.json"));
    assert_eq!(input["traces"], 1);
    assert_eq!(input["services"], 1);
    assert_eq!(input["kinds"]["server"], 1);
    assert_eq!(input["diagnostics"].as_array().unwrap().len(), 0);
}

#[test]
fn empty_ids_are_diagnosed_per_span_and_field_and_not_joined() {
    let Some(dir) = corpus("traces/otlp-json") else {
        return;
    };
    let (input, code) = inspect_one(&dir.join("otel-spec_file-exporter_traces-example.jsonl"));
    assert_eq!(code, 0, "diagnostics alone do not fail without --strict");
    assert_eq!(input["lines"], 4);
    assert_eq!(input["spans"], 8);
    assert_eq!(input["unjoinable"], 8);
    assert_eq!(
        input["traces"], 0,
        "spans with empty ids are not joined into traces"
    );
    let diagnostics = input["diagnostics"].as_array().unwrap();
    let span_ids: Vec<&serde_json::Value> = diagnostics
        .iter()
        .filter(|d| {
            d["message"]
                .as_str()
                .unwrap()
                .contains(": spanId \"\" is empty")
        })
        .collect();
    assert_eq!(span_ids.len(), 8);
    for d in diagnostics {
        assert_eq!(d["code"], "invalid-id");
        assert!((1..=4).contains(&d["line"].as_u64().unwrap()), "{d}");
        assert!(d["input"].as_str().unwrap().ends_with(".jsonl"));
    }

    let output = bin()
        .args(["inspect", "--strict"])
        .arg(dir.join("otel-spec_file-exporter_traces-example.jsonl"))
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(2),
        "--strict turns diagnostics into exit 2"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--strict"), "{stderr}");
}

#[test]
fn invalid_ids_name_file_line_and_field() {
    let Some(dir) = corpus("traces/otlp-json-variants") else {
        return;
    };
    let (input, _) = inspect_one(&dir.join("otlp2parquet_invalid_trace_mixed_encoding.json"));
    assert_eq!(input["spans"], 1);
    assert_eq!(input["unjoinable"], 1);
    let diagnostics = input["diagnostics"].as_array().unwrap();
    let trace = diagnostics
        .iter()
        .find(|d| d["message"].as_str().unwrap().contains("traceId \"zzz\""))
        .unwrap();
    assert_eq!(trace["line"], 21, "the line of the traceId field");
    assert_eq!(trace["severity"], "error");
    let span = diagnostics
        .iter()
        .find(|d| d["message"].as_str().unwrap().contains("spanId \"xyz\""))
        .unwrap();
    assert_eq!(span["line"], 22);
    assert!(span["message"].as_str().unwrap().contains("16 hex digits"));
}

#[test]
fn base64_ids_and_enum_names_are_read() {
    let Some(dir) = corpus("traces/otlp-json-variants") else {
        return;
    };
    let (input, code) = inspect_one(&dir.join("otlp2parquet_trace_base64ids_enumnames.json"));
    assert_eq!(code, 0);
    assert_eq!(input["spans"], 2);
    assert_eq!(input["traces"], 1);
    assert_eq!(input["kinds"]["client"], 1);
    assert_eq!(input["kinds"]["server"], 1);
    assert_eq!(input["diagnostics"].as_array().unwrap().len(), 0, "{input}");
}

#[test]
fn foreign_json_is_an_error_saying_what_it_looks_like() {
    // Jaeger and Zipkin JSON are read (tests/formats.rs), vendor event logs too
    // (tests/events.rs); other JSON is refused with what it looks like and what would read it.
    let Some(dir) = corpus("events") else { return };
    let output = bin()
        .args(["inspect", "--format", "json"])
        .arg(dir.join("stripe/openapi_fixtures3_event.json"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let report = json(&output.stdout);
    assert_eq!(report["inputs"][0]["format"], "vendor-json");
    assert_eq!(report["inputs"][0]["vendor_events"], 1);
    assert_eq!(report["inputs"][0]["vendors"]["stripe"], 1);

    let output = bin()
        .arg("inspect")
        .arg(dir.join("stripe/openapi_fixtures3_charge.json"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("charge object, not an event"), "{stderr}");

    let tmp = tempfile::tempdir().unwrap();
    let other = tmp.path().join("other.json");
    std::fs::write(&other, r#"{"hello": "world", "n": 1}"#).unwrap();
    let output = bin().arg("inspect").arg(&other).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("a JSON object with keys"), "{stderr}");
    assert!(
        stderr.contains("other.json"),
        "the error names the input: {stderr}"
    );
    assert!(
        stderr.contains("[[vendor]] mapping"),
        "points at the mappings: {stderr}"
    );
    let v1 = tmp.path().join("zipkin-v1.json");
    std::fs::write(
        &v1,
        r#"[{"traceId":"1","id":"2","name":"get","timestamp":1,"binaryAnnotations":[]}]"#,
    )
    .unwrap();
    let output = bin().arg("inspect").arg(&v1).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Zipkin v1 JSON"), "{stderr}");
}

#[test]
fn the_total_counts_traces_once_across_inputs_and_duplicates_are_kept_once() {
    let Some(dir) = corpus("traces/otlp-json") else {
        return;
    };
    let file = dir.join("otel-proto_examples_trace.json");
    let output = bin()
        .args(["inspect", "--format", "json"])
        .arg(&file)
        .arg(&file)
        .output()
        .unwrap();
    let report = json(&output.stdout);
    assert_eq!(report["inputs"][1]["duplicates"], 1);
    assert_eq!(report["total"]["spans"], 2, "spans read");
    assert_eq!(report["total"]["duplicates"], 1);
    assert_eq!(report["total"]["traces"], 1);
}

#[test]
fn directories_are_read_recursively_and_stdin_is_dash() {
    let Some(dir) = corpus("traces/otlp-json") else {
        return;
    };
    let output = bin()
        .args(["inspect", "--format", "json"])
        .arg(&dir)
        .output()
        .unwrap();
    let report = json(&output.stdout);
    assert_eq!(report["inputs"].as_array().unwrap().len(), 4);
    assert_eq!(report["total"]["spans"], 11);

    let text = std::fs::read(dir.join("otel-proto_examples_trace.json")).unwrap();
    let output = bin()
        .args(["inspect", "--format", "json", "-"])
        .write_stdin(text)
        .output()
        .unwrap();
    let report = json(&output.stdout);
    assert_eq!(report["inputs"][0]["path"], "<stdin>");
    assert_eq!(report["inputs"][0]["spans"], 1);
}

#[test]
fn an_unreadable_input_is_exit_2_with_one_line_naming_it() {
    let output = bin()
        .args(["inspect", "no/such/file.json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("no/such/file.json") && errors[0].contains("cannot read"),
        "{stderr}"
    );
}

#[test]
fn a_truncated_last_line_is_a_warning_and_the_rest_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let line = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"a","startTimeUnixNano":"1","endTimeUnixNano":"2"}]}]}]}"#;
    let path = dir.path().join("export.jsonl");
    std::fs::write(&path, format!("{line}\n{}", &line[..60])).unwrap();
    let output = bin()
        .args(["inspect", "--format", "json"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let report = json(&output.stdout);
    let input = &report["inputs"][0];
    assert_eq!(input["spans"], 1);
    assert_eq!(input["diagnostics"][0]["code"], "truncated-line");
    assert_eq!(input["diagnostics"][0]["severity"], "warning");
    assert_eq!(input["diagnostics"][0]["line"], 2);
}

#[test]
fn an_input_with_no_spans_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty-traces.json");
    std::fs::write(&path, r#"{"resourceSpans":[]}"#).unwrap();
    let output = bin().arg("inspect").arg(&path).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("holds no spans"));
}

/// Runs `abortaudit ARGS` with the environment given: (stdout, stderr, exit code).
fn run_with(env: &[(&str, &str)], args: &[&std::ffi::OsStr]) -> (String, String, Option<i32>) {
    let mut command = bin();
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.args(args).output().unwrap();
    (
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
        output.status.code(),
    )
}

/// The diagnostics of an `inspect` JSON report with their messages left out: the two-pass
/// read's first pass words some damage differently from a whole read (their codes and lines
/// are the same).
fn without_messages(report: &str) -> serde_json::Value {
    let mut report = json(report.as_bytes());
    for input in report["inputs"].as_array_mut().unwrap() {
        for diagnostic in input["diagnostics"].as_array_mut().unwrap() {
            diagnostic.as_object_mut().unwrap().remove("message");
        }
    }
    report
}

#[test]
fn inspect_and_explain_in_two_passes_show_what_a_whole_read_shows() {
    // ABORTAUDIT_SURVEY_ABOVE=0 reads every plain JSON Lines file in two passes, `unlimited`
    // none; ABORTAUDIT_INSPECT_GROUP=1 joins each conversation on its own (one byte of span
    // text a group), `1GiB` all at once.
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let dir = tempfile::tempdir().unwrap();
    // The scenario traces without their vendor log (with one, every input is read whole),
    // with a bad line and a cut-off last line; the frameworks' and Node's, with their abort
    // logs (whose records are placed on turns of their conversations).
    let scenarios = dir.path().join("scenarios");
    std::fs::create_dir(&scenarios).unwrap();
    for name in ["agent.jsonl", "worker.jsonl"] {
        let from = fixtures.join("scenarios/traces").join(name);
        std::fs::copy(from, scenarios.join(name)).unwrap();
    }
    let mut worker = std::fs::read(scenarios.join("worker.jsonl")).unwrap();
    worker.extend_from_slice(b"{not json\n{\"resourceSpans\":[{\"scope");
    std::fs::write(scenarios.join("worker.jsonl"), worker).unwrap();
    let cases = [
        (scenarios, None),
        (
            fixtures.join("scenarios-frameworks/traces"),
            Some(fixtures.join("scenarios-frameworks/aborts.jsonl")),
        ),
        (
            fixtures.join("scenarios-node/traces"),
            Some(fixtures.join("scenarios-node/aborts.jsonl")),
        ),
    ];
    let whole = [("ABORTAUDIT_SURVEY_ABOVE", "unlimited")];
    for (traces, aborts) in &cases {
        let with = |command: &str, conversation: Option<&str>| {
            let mut args: Vec<&std::ffi::OsStr> = vec![command.as_ref()];
            args.extend(conversation.map(std::ffi::OsStr::new));
            args.push(traces.as_os_str());
            if let Some(aborts) = aborts {
                args.extend(["--aborts".as_ref(), aborts.as_os_str()]);
            }
            args.iter().map(|a| a.to_os_string()).collect::<Vec<_>>()
        };
        let what = traces.display();
        let inspect: Vec<_> = with("inspect", None)
            .into_iter()
            .chain(["--format".into(), "json".into()])
            .collect();
        let inspect: Vec<&std::ffi::OsStr> = inspect.iter().map(|a| a.as_os_str()).collect();
        let (expected, _, code) = run_with(&whole, &inspect);
        assert_eq!(code, Some(0), "{what}");
        let expected_json = without_messages(&expected);
        assert!(expected_json["joined"]["agent_turns"].as_u64().unwrap() > 2);
        for group in ["1", "1GiB"] {
            let surveyed = [
                ("ABORTAUDIT_SURVEY_ABOVE", "0"),
                ("ABORTAUDIT_INSPECT_GROUP", group),
            ];
            let (got, _, got_code) = run_with(&surveyed, &inspect);
            assert_eq!(got_code, code, "{what}, groups of {group}");
            assert_eq!(
                without_messages(&got),
                expected_json,
                "{what}, groups of {group}"
            );
        }

        // Every conversation the whole read knows (the error for one it does not lists them),
        // and one it does not.
        let unknown = with("explain", Some("no-such-conversation"));
        let unknown: Vec<&std::ffi::OsStr> = unknown.iter().map(|a| a.as_os_str()).collect();
        let (_, listed, _) = run_with(&whole, &unknown);
        let listed = listed
            .split("conversations found: ")
            .nth(1)
            .unwrap()
            .trim()
            .split(" (and")
            .next()
            .unwrap()
            .to_owned();
        // (Four of them: each is two runs.)
        let conversations: Vec<&str> = listed.split(", ").take(4).collect();
        assert_eq!(conversations.len(), 4, "{listed}");
        for conversation in conversations {
            let explain = with("explain", Some(conversation));
            let explain: Vec<&std::ffi::OsStr> = explain.iter().map(|a| a.as_os_str()).collect();
            let (expected, expected_err, code) = run_with(&whole, &explain);
            let (got, got_err, got_code) = run_with(&[("ABORTAUDIT_SURVEY_ABOVE", "0")], &explain);
            assert_eq!(
                (got_code, &got),
                (code, &expected),
                "{what}: {conversation}"
            );
            // The same diagnostics (codes and lines; see `without_messages`).
            let said = |err: &str| -> Vec<String> {
                err.lines()
                    .map(|l| l.split(": ").take(2).collect::<Vec<_>>().join(": "))
                    .collect()
            };
            assert_eq!(
                said(&got_err),
                said(&expected_err),
                "{what}: {conversation}"
            );
        }
        let (_, err, code) = run_with(&[("ABORTAUDIT_SURVEY_ABOVE", "0")], &unknown);
        assert_eq!(code, Some(2));
        assert!(
            err.contains("no conversation \"no-such-conversation\""),
            "{err}"
        );
    }
}

//! Every trace export users have: OTLP/JSON, OTLP/protobuf (one message or the Collector's
//! length-framed stream), gzip and zstd (whole files and the Collector's per-message zstd
//! frames), Jaeger JSON and Zipkin v2 JSON, read into one model; decompression bombs refused;
//! the same result whatever the number of threads or the order of the inputs.

mod common;

use std::sync::Arc;

use abortaudit::ingest::{
    Format, IngestOptions, Source, expand, ingest_inputs, parse_input, parse_input_with,
};
use abortaudit::model::diagnostic::Code;
use abortaudit::model::{Origin, Span, SpanId, SpanKind, StatusCode, TraceId};
use common::{XorShift, bin, corpus, gzip, json, zstd};
use prost::Message as _;

// ---------------------------------------------------------------------------------------------
// Helpers.

/// The spans with where they were read from blanked out, to compare encodings.
fn normalized(spans: &[Span]) -> Vec<Span> {
    spans
        .iter()
        .map(|s| Span {
            origin: Origin {
                input: Arc::from(""),
                line: 0,
            },
            ..s.clone()
        })
        .collect()
}

/// Reads trace inputs whole, with the default rules.
fn ingest_with(sources: &[Source], options: &IngestOptions) -> abortaudit::ingest::Ingested {
    let inputs = abortaudit::ingest::InputSet {
        traces: sources.to_vec(),
        ..Default::default()
    };
    ingest_inputs(&inputs, options, &abortaudit::rules::Rules::default())
}

fn read(name: &str, bytes: &[u8]) -> (abortaudit::ingest::InputReport, Vec<Span>) {
    let (report, spans) = parse_input(name, bytes);
    assert!(report.error.is_none(), "{name}: {:?}", report.error);
    (report, spans)
}

/// The Collector file exporter's framing: 4-byte big-endian length, then the message.
fn framed<'a>(messages: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for m in messages {
        out.extend_from_slice(&(m.len() as u32).to_be_bytes());
        out.extend_from_slice(m);
    }
    out
}

/// An OTLP/JSON document exercising every field the model keeps: two resources, kinds,
/// statuses, a parent, every attribute type, events and links.
fn otlp_document() -> serde_json::Value {
    serde_json::json!({
      "resourceSpans": [
        {
          "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "agent"}},
            {"key": "host.name", "value": {"stringValue": "box-1"}}
          ]},
          "scopeSpans": [{"scope": {"name": "ai"}, "spans": [
            {
              "traceId": "5b8efff798038103d269b633813fc60c",
              "spanId": "eee19b7ec3c1b174",
              "name": "invoke_agent",
              "kind": 1,
              "startTimeUnixNano": "1700000000000000000",
              "endTimeUnixNano": "1700000005000000000",
              "attributes": [
                {"key": "gen_ai.conversation.id", "value": {"stringValue": "conv-1"}},
                {"key": "n", "value": {"intValue": "-3"}},
                {"key": "ratio", "value": {"doubleValue": 0.25}},
                {"key": "ok", "value": {"boolValue": true}},
                {"key": "raw", "value": {"bytesValue": "AAEC"}},
                {"key": "list", "value": {"arrayValue": {"values": [
                  {"stringValue": "a"}, {"intValue": "7"}
                ]}}},
                {"key": "map", "value": {"kvlistValue": {"values": [
                  {"key": "inner", "value": {"boolValue": false}}
                ]}}}
              ],
              "events": [
                {"timeUnixNano": "1700000001000000000", "name": "abort",
                 "attributes": [{"key": "reason", "value": {"stringValue": "user"}}]}
              ],
              "status": {"code": 2, "message": "aborted"}
            },
            {
              "traceId": "5b8efff798038103d269b633813fc60c",
              "spanId": "eee19b7ec3c1b175",
              "parentSpanId": "eee19b7ec3c1b174",
              "name": "execute_tool charge",
              "kind": 3,
              "startTimeUnixNano": "1700000000500000000",
              "endTimeUnixNano": "1700000002000000000",
              "links": [{
                "traceId": "0af7651916cd43dd8448eb211c80319c",
                "spanId": "b7ad6b7169203331",
                "attributes": [{"key": "link.kind", "value": {"stringValue": "queue"}}]
              }],
              "status": {"code": 1}
            }
          ]}]
        },
        {
          "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "payments"}}
          ]},
          "scopeSpans": [{"spans": [
            {
              "traceId": "5b8efff798038103d269b633813fc60c",
              "spanId": "a1a2a3a4a5a6a7a8",
              "parentSpanId": "eee19b7ec3c1b175",
              "name": "POST /charges",
              "kind": 2,
              "startTimeUnixNano": "1700000000600000000",
              "endTimeUnixNano": "1700000003000000000"
            }
          ]}]
        }
      ]
    })
}

/// OTLP/JSON to OTLP/protobuf with the OpenTelemetry project's own generated messages, so the
/// protobuf reader is checked against an encoder that is not ours.
fn to_protobuf(document: &serde_json::Value) -> Vec<u8> {
    let data: opentelemetry_proto::tonic::trace::v1::TracesData =
        serde_json::from_value(document.clone()).expect("opentelemetry-proto reads the document");
    data.encode_to_vec()
}

/// One protobuf message per resource, for framed streams.
fn protobuf_messages(document: &serde_json::Value) -> Vec<Vec<u8>> {
    document["resourceSpans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rs| to_protobuf(&serde_json::json!({ "resourceSpans": [rs] })))
        .collect()
}

/// A zstd frame of `blocks` RLE blocks of 128 KiB each: 4 bytes a block on disk, 128 KiB
/// each decompressed. 8192 blocks are 32 KiB that decompress to 1 GiB.
fn zstd_rle_bomb(blocks: usize) -> Vec<u8> {
    // Magic; frame header: no content size, not single-segment, no checksum; window 2 MiB.
    let mut out = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58];
    for i in 0..blocks {
        let last = u32::from(i + 1 == blocks);
        let header = last | (1 << 1) | ((128 * 1024) << 3);
        out.extend_from_slice(&header.to_le_bytes()[..3]);
        out.push(b' ');
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Conformance over the public corpus.

#[test]
fn corpus_jaeger_zipkin_and_protobuf_files_have_the_documented_span_counts() {
    let Some(dir) = corpus("traces") else { return };
    // Counts from ../shared/corpus/README.md.
    for (file, format, spans) in [
        (
            "jaeger-json/jaeger_anonymizer_trace_success_span-array.json",
            Format::JaegerJson,
            2,
        ),
        (
            "jaeger-json/jaeger_query_otlp2jaeger-out_api-envelope.json",
            Format::JaegerJson,
            2,
        ),
        (
            "jaeger-json/jaeger_uimodel_ui_01_bare-trace.json",
            Format::JaegerJson,
            5,
        ),
        (
            "zipkin-v2/zipkin-lens_messaging-kafka.json",
            Format::ZipkinV2Json,
            28,
        ),
        ("zipkin-v2/zipkin-lens_skew.json", Format::ZipkinV2Json, 4),
        ("zipkin-v2/zipkin-lens_yelp.json", Format::ZipkinV2Json, 16),
        (
            "zipkin-v2/zipkin_benchmarks_zipkin2-client_single-span.json",
            Format::ZipkinV2Json,
            1,
        ),
        (
            "otlp-protobuf/otlp2parquet_trace.pb",
            Format::OtlpProtobuf,
            2,
        ),
    ] {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let (report, parsed) = read(file, &bytes);
        assert_eq!(report.format, format, "{file}");
        assert_eq!(report.compression.as_str(), "none", "{file}");
        assert_eq!(report.counts.spans, spans, "{file}");
        assert_eq!(parsed.len() as u64, spans, "{file}: every span is joinable");
        for span in &parsed {
            assert!(span.start > 0, "{file}: {span:?}");
            assert!(span.origin.line >= 1, "{file}");
        }
        // The same file compressed is the same spans.
        for (compression, packed) in [("gzip", gzip(&bytes)), ("zstd", zstd(&bytes))] {
            let (report, again) = read(file, &packed);
            assert_eq!(report.compression.as_str(), compression, "{file}");
            assert_eq!(report.format, format, "{file}");
            assert_eq!(
                normalized(&again),
                normalized(&parsed),
                "{file} {compression}"
            );
        }
    }
}

#[test]
fn every_corpus_trace_file_reads_without_panic_and_directories_are_walked() {
    let Some(dir) = corpus("traces") else { return };
    let ingested = ingest_with(&[Source::Path(dir.clone())], &IngestOptions::default());
    assert_eq!(ingested.inputs.len(), 14, "every file under traces/");
    for input in &ingested.inputs {
        assert!(input.error.is_none(), "{}: {:?}", input.path, input.error);
        assert!(input.counts.spans > 0, "{}", input.path);
    }
    // Duplicates: the API envelope's exact copy, the bare trace's reused span id, and the two
    // spans of otlp2parquet's protobuf file, which are those of its base64/enum-name JSON.
    assert_eq!(ingested.total.duplicates, 4);
    let conflicts: Vec<&str> = ingested
        .diagnostics()
        .filter(|d| d.code == Code::ConflictingDuplicate)
        .map(|d| d.input.as_str())
        .collect();
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    assert!(conflicts[0].ends_with("jaeger_uimodel_ui_01_bare-trace.json"));
}

#[test]
fn otlp2parquets_protobuf_and_proto3_json_files_are_the_same_spans() {
    let Some(dir) = corpus("traces") else { return };
    let pb = std::fs::read(dir.join("otlp-protobuf/otlp2parquet_trace.pb")).unwrap();
    let json =
        std::fs::read(dir.join("otlp-json-variants/otlp2parquet_trace_base64ids_enumnames.json"))
            .unwrap();
    let (_, from_pb) = read("pb", &pb);
    let (_, from_json) = read("json", &json);
    assert_eq!(normalized(&from_pb), normalized(&from_json));
}

#[test]
fn inspect_reports_format_and_compression_of_each_file() {
    let Some(dir) = corpus("traces") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let yelp = std::fs::read(dir.join("zipkin-v2/zipkin-lens_yelp.json")).unwrap();
    // A misleading extension: the content decides.
    std::fs::write(tmp.path().join("yelp.txt"), gzip(&yelp)).unwrap();
    let pb = std::fs::read(dir.join("otlp-protobuf/otlp2parquet_trace.pb")).unwrap();
    std::fs::write(tmp.path().join("trace.json"), zstd(&pb)).unwrap();
    let output = bin()
        .args(["inspect", "--format", "json"])
        .arg(tmp.path().join("yelp.txt"))
        .arg(tmp.path().join("trace.json"))
        .arg(dir.join("jaeger-json/jaeger_query_otlp2jaeger-out_api-envelope.json"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let report = json(&output.stdout);
    let inputs = report["inputs"].as_array().unwrap();
    assert_eq!(inputs[0]["format"], "zipkin-v2-json");
    assert_eq!(inputs[0]["compression"], "gzip");
    assert_eq!(inputs[0]["spans"], 16);
    assert_eq!(inputs[1]["format"], "otlp-protobuf");
    assert_eq!(inputs[1]["compression"], "zstd");
    assert_eq!(inputs[1]["spans"], 2);
    assert_eq!(inputs[2]["format"], "jaeger-json");
    assert_eq!(inputs[2]["compression"], "none");
    assert_eq!(
        inputs[2]["duplicates"], 1,
        "an exact copy is a plain duplicate"
    );
}

// ---------------------------------------------------------------------------------------------
// Jaeger.

fn trace_id(hex: &str) -> TraceId {
    let mut id = [0u8; 16];
    for (i, b) in id.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    TraceId(id)
}

fn span_id(hex: &str) -> SpanId {
    let mut id = [0u8; 8];
    for (i, b) in id.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    SpanId(id)
}

#[test]
fn jaeger_ids_times_tags_references_and_logs_map_onto_the_model() {
    let Some(dir) = corpus("traces/jaeger-json") else {
        return;
    };
    let bytes = std::fs::read(dir.join("jaeger_anonymizer_trace_success_span-array.json")).unwrap();
    let (_, spans) = read("anonymizer", &bytes);
    assert_eq!(
        spans[0].trace_id,
        trace_id("00000000000000002be38093ead7a083"),
        "16 hex digits are left-padded to 32"
    );
    assert_eq!(
        spans[0].start, 1_605_223_981_761_425_000,
        "microseconds to ns"
    );
    assert_eq!(spans[0].end, Some(1_605_223_981_761_425_000 + 267_037_000));
    assert_eq!(spans[0].kind, SpanKind::Server, "span.kind tag");
    assert_eq!(spans[0].service(), "16af988c443cff37", "inline process");
    assert_eq!(spans[1].kind, SpanKind::Client);
    assert_eq!(
        spans[1].status.code,
        StatusCode::Error,
        "error tag with the bool written as \"true\""
    );
    assert!(spans[1].attributes.get("error").is_none());
    assert_eq!(spans[1].parent_span_id, Some(span_id("7606ddfe69932d34")));

    let bytes = std::fs::read(dir.join("jaeger_uimodel_ui_01_bare-trace.json")).unwrap();
    let (report, spans) = read("bare", &bytes);
    assert_eq!(report.counts.spans, 5);
    let first = &spans[0];
    assert_eq!(first.events.len(), 2);
    assert_eq!(first.events[0].name, "some-event", "the log's event field");
    assert_eq!(
        first.events[1]
            .attributes
            .get("x")
            .and_then(|v| v.as_text()),
        Some("y".into())
    );
    let tagged = &spans[1];
    assert_eq!(
        tagged.attributes.get("javascript_limit").unwrap().as_int(),
        Some(9_223_372_036_854_775_222),
        "int64 written as a string"
    );
    assert_eq!(tagged.status.code, StatusCode::Error);
    let reference_test = spans.iter().find(|s| &*s.name == "reference-test").unwrap();
    assert_eq!(
        reference_test.parent_span_id,
        Some(span_id("0000000000000002")),
        "CHILD_OF in the same trace is the parent"
    );
    assert_eq!(
        reference_test.links.len(),
        2,
        "the cross-trace CHILD_OF and the FOLLOWS_FROM are links"
    );
    assert_eq!(
        reference_test.links[0].trace_id,
        trace_id("000000000000000000000000000000ff")
    );
    assert_eq!(
        reference_test.links[1]
            .attributes
            .get("opentracing.ref_type")
            .and_then(|v| v.as_text()),
        Some("follows_from".into())
    );
}

#[test]
fn jaegers_reused_span_id_keeps_the_first_span_and_says_so() {
    let Some(dir) = corpus("traces/jaeger-json") else {
        return;
    };
    let ingested = ingest_with(
        &[Source::Path(
            dir.join("jaeger_uimodel_ui_01_bare-trace.json"),
        )],
        &IngestOptions::default(),
    );
    let input = &ingested.inputs[0];
    assert_eq!(input.counts.spans, 5);
    assert_eq!(input.counts.duplicates, 1);
    assert_eq!(ingested.spans.len(), 4);
    assert_eq!(&*ingested.spans[0].name, "test-general-conversion");
    let conflict: Vec<_> = input
        .diagnostics
        .iter()
        .filter(|d| d.code == Code::ConflictingDuplicate)
        .collect();
    assert_eq!(conflict.len(), 1, "{:?}", input.diagnostics);
    assert_eq!(conflict[0].line, Some(39), "the line of the dropped span");
    assert!(conflict[0].message.contains("\"some-operation\""));
}

// ---------------------------------------------------------------------------------------------
// Zipkin.

#[test]
fn zipkin_shared_server_spans_get_their_own_id_under_their_client() {
    let Some(dir) = corpus("traces/zipkin-v2") else {
        return;
    };
    for file in ["zipkin-lens_skew.json", "zipkin-lens_yelp.json"] {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let (_, spans) = read(file, &bytes);
        let mut ids = std::collections::HashSet::new();
        for span in &spans {
            assert!(
                ids.insert((span.trace_id, span.span_id)),
                "{file}: span id {} used twice",
                span.span_id
            );
        }
        let ingested = ingest_with(&[Source::Path(dir.join(file))], &IngestOptions::default());
        assert_eq!(ingested.total.duplicates, 0, "{file}");
    }

    let bytes = std::fs::read(dir.join("zipkin-lens_skew.json")).unwrap();
    let (_, spans) = read("skew", &bytes);
    let client = spans
        .iter()
        .find(|s| s.kind == SpanKind::Client && &*s.name == "post")
        .unwrap();
    let server = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server && &*s.name == "post")
        .unwrap();
    assert_eq!(
        client.span_id,
        span_id("74280ae0c10d8062"),
        "the client keeps the id"
    );
    assert_ne!(server.span_id, client.span_id);
    assert_eq!(server.parent_span_id, Some(client.span_id));
    assert_eq!(
        server
            .attributes
            .get("abortaudit.shared_span_id")
            .and_then(|v| v.as_text()),
        Some("74280ae0c10d8062".into())
    );
    let child = spans.iter().find(|s| &*s.name == "async").unwrap();
    assert_eq!(
        child.parent_span_id,
        Some(server.span_id),
        "work in the server's service hangs under the server"
    );
    // The id is derived from the input alone: the same in every read.
    let (_, again) = read("skew-again", &bytes);
    assert_eq!(normalized(&again), normalized(&spans));
}

#[test]
fn zipkin_fields_map_onto_the_model_and_missing_times_are_reported() {
    let Some(dir) = corpus("traces/zipkin-v2") else {
        return;
    };
    let bytes =
        std::fs::read(dir.join("zipkin_benchmarks_zipkin2-client_single-span.json")).unwrap();
    let (_, spans) = read("single", &bytes);
    let span = &spans[0];
    assert_eq!(span.service(), "frontend");
    assert_eq!(span.kind, SpanKind::Client);
    assert_eq!(span.start, 1_472_470_996_199_000_000);
    assert_eq!(span.end, Some(1_472_470_996_406_000_000));
    assert_eq!(span.events.len(), 2);
    assert_eq!(span.events[0].name, "foo");
    assert_eq!(
        span.attributes.text("peer.service").as_deref(),
        Some("backend")
    );
    assert_eq!(span.attributes.text("http.path").as_deref(), Some("/api"));

    let partial = br#"[
      {"traceId": "a03ee8fff1dcd9b9", "id": "0000000000000001", "name": "no-duration",
       "timestamp": 1571896375322000, "localEndpoint": {"serviceName": "a"}},
      {"traceId": "a03ee8fff1dcd9b9", "id": "0000000000000002", "name": "no-timestamp",
       "kind": "PRODUCER", "annotations": [{"timestamp": 1571896375400000, "value": "ws"}],
       "tags": {"error": "connection reset"}}
    ]"#;
    let (report, spans) = read("partial.json", partial);
    assert_eq!(report.format, Format::ZipkinV2Json);
    assert_eq!(spans.len(), 2, "tolerated, not dropped");
    assert_eq!(spans[0].end, None);
    assert_eq!(
        spans[1].start, 1_571_896_375_400_000_000,
        "first annotation"
    );
    assert_eq!(spans[1].status.code, StatusCode::Error);
    assert_eq!(&*spans[1].status.message, "connection reset");
    let missing: Vec<_> = report
        .diagnostics
        .iter()
        .filter(|d| d.code == Code::MissingTime)
        .map(|d| (d.line, d.message.as_str()))
        .collect();
    assert_eq!(missing.len(), 3, "{missing:?}");
    assert_eq!(missing[0].0, Some(2));
    assert!(missing.iter().any(|(line, m)| *line == Some(4)
        && m.contains("no timestamp")
        && m.contains("first annotation")));
}

#[test]
fn zipkin_list_of_traces_and_jaeger_ids_join_with_otlp() {
    let list_of_traces = br#"[[{"traceId":"2be38093ead7a083","id":"7606ddfe69932d34","name":"a","timestamp":1,"duration":2,"localEndpoint":{"serviceName":"svc"}}],
                              [{"traceId":"4d1e00c0db9010db86154a4ba6e91385","id":"1","name":"b","timestamp":1,"duration":2}]]"#;
    let (_, zipkin) = read("traces.json", list_of_traces);
    assert_eq!(zipkin.len(), 2);
    let otlp = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"00000000000000002be38093ead7a083","spanId":"1111111111111111","parentSpanId":"7606ddfe69932d34","name":"c","startTimeUnixNano":"1","endTimeUnixNano":"2"}]}]}]}"#;
    let (_, otlp) = read("otlp.json", otlp.as_bytes());
    assert_eq!(otlp[0].trace_id, zipkin[0].trace_id, "64-bit ids join");
    assert_eq!(otlp[0].parent_span_id, Some(zipkin[0].span_id));
}

#[test]
fn foreign_json_that_is_not_a_span_is_a_diagnostic_not_a_panic() {
    let text = br#"[{"traceId":"1","id":"2","timestamp":1}, 5, {"traceId":"zz","id":"3","timestamp":"x"}]"#;
    let (report, spans) = parse_input("odd.json", text);
    assert_eq!(report.format, Format::ZipkinV2Json);
    assert_eq!(spans.len(), 1);
    assert_eq!(report.counts.spans, 3);
    assert_eq!(report.counts.unjoinable, 2);
    let codes: Vec<Code> = report.diagnostics.iter().map(|d| d.code).collect();
    assert!(codes.contains(&Code::InvalidRecord), "{codes:?}");
    assert!(codes.contains(&Code::InvalidId), "{codes:?}");
    assert!(codes.contains(&Code::InvalidValue), "{codes:?}");
}

// ---------------------------------------------------------------------------------------------
// One model, whatever the encoding.

#[test]
fn the_same_spans_read_the_same_from_every_encoding() {
    let document = otlp_document();
    let pretty = serde_json::to_vec_pretty(&document).unwrap();
    let (report, reference) = read("doc.json", &pretty);
    assert_eq!(report.format, Format::OtlpJson);
    assert!(report.diagnostics.is_empty(), "{:?}", report.diagnostics);
    assert_eq!(reference.len(), 3);
    let reference = normalized(&reference);

    let line = serde_json::to_vec(&document).unwrap();
    let lines: Vec<u8> = document["resourceSpans"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|rs| {
            let mut l = serde_json::to_vec(&serde_json::json!({ "resourceSpans": [rs] })).unwrap();
            l.push(b'\n');
            l
        })
        .collect();
    let protobuf = to_protobuf(&document);
    let messages = protobuf_messages(&document);
    let framed_protobuf = framed(messages.iter().map(Vec::as_slice));
    let zstd_messages: Vec<Vec<u8>> = messages.iter().map(|m| zstd(m)).collect();
    let zstd_framed_protobuf = framed(zstd_messages.iter().map(Vec::as_slice));
    let json_messages: Vec<Vec<u8>> = lines
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(zstd)
        .collect();
    let zstd_framed_json = framed(json_messages.iter().map(Vec::as_slice));

    for (name, bytes, format, compression) in [
        ("line", line.clone(), Format::OtlpJsonLines, "none"),
        ("lines", lines.clone(), Format::OtlpJsonLines, "none"),
        ("protobuf", protobuf.clone(), Format::OtlpProtobuf, "none"),
        (
            "framed protobuf",
            framed_protobuf.clone(),
            Format::OtlpProtobufFramed,
            "none",
        ),
        ("gzip json", gzip(&pretty), Format::OtlpJson, "gzip"),
        ("zstd json", zstd(&pretty), Format::OtlpJson, "zstd"),
        ("gzip lines", gzip(&lines), Format::OtlpJsonLines, "gzip"),
        (
            "gzip protobuf",
            gzip(&protobuf),
            Format::OtlpProtobuf,
            "gzip",
        ),
        (
            "zstd protobuf",
            zstd(&protobuf),
            Format::OtlpProtobuf,
            "zstd",
        ),
        (
            "zstd-framed protobuf",
            zstd_framed_protobuf.clone(),
            Format::OtlpProtobufFramed,
            "zstd-framed",
        ),
        (
            "zstd-framed json",
            zstd_framed_json,
            Format::OtlpJsonFramed,
            "zstd-framed",
        ),
        (
            "gzip of a zstd-framed stream",
            gzip(&zstd_framed_protobuf),
            Format::OtlpProtobufFramed,
            "gzip+zstd-framed",
        ),
        (
            "gzip of a framed stream",
            gzip(&framed_protobuf),
            Format::OtlpProtobufFramed,
            "gzip",
        ),
    ] {
        let (report, spans) = read(name, &bytes);
        assert_eq!(report.format, format, "{name}");
        assert_eq!(report.compression.as_str(), compression, "{name}");
        assert!(
            report.diagnostics.is_empty(),
            "{name}: {:?}",
            report.diagnostics
        );
        assert_eq!(normalized(&spans), reference, "{name}");
    }

    // In a framed stream a span's line is its message number.
    let (_, spans) = read("framed", &framed_protobuf);
    let lines: Vec<u64> = spans.iter().map(|s| s.origin.line).collect();
    assert_eq!(lines, vec![1, 1, 2]);
}

#[test]
fn a_zstd_file_written_by_the_zstd_tool_is_read() {
    // `zstd -19` of one OTLP/JSON line (with the content checksum the tool writes by default).
    const FRAME: [u8; 208] = [
        0x28, 0xb5, 0x2f, 0xfd, 0x64, 0x3a, 0x00, 0x15, 0x06, 0x00, 0x62, 0x0c, 0x27, 0x19, 0x50,
        0xd7, 0x03, 0xfc, 0x4c, 0x85, 0xe0, 0xd2, 0x04, 0xec, 0xe4, 0xc0, 0x91, 0x5b, 0x5d, 0x15,
        0x33, 0xb7, 0x74, 0x0d, 0x38, 0x99, 0x29, 0x27, 0x84, 0x40, 0x9f, 0xfa, 0xd4, 0xa7, 0x7e,
        0xd8, 0x7c, 0x3f, 0xfe, 0x90, 0xc8, 0x9f, 0xaf, 0x65, 0xda, 0x78, 0x38, 0x43, 0x37, 0xc3,
        0x0f, 0xd7, 0x94, 0xef, 0x8f, 0xc5, 0x7c, 0x9b, 0xf1, 0xf5, 0x31, 0xb0, 0x7c, 0x83, 0x3f,
        0x3f, 0xbe, 0x2c, 0x8a, 0x62, 0x20, 0x16, 0x44, 0x26, 0x14, 0x62, 0x69, 0x42, 0xc5, 0xaf,
        0x8b, 0x2c, 0x06, 0xa5, 0x4a, 0x49, 0x50, 0x57, 0x31, 0x0c, 0xc5, 0xda, 0xc2, 0xb0, 0x15,
        0x91, 0x8b, 0x3c, 0x90, 0xa4, 0xa2, 0xc3, 0xcf, 0xb7, 0xcc, 0xad, 0x54, 0xf3, 0xbd, 0x69,
        0x75, 0x7f, 0xec, 0x53, 0xef, 0x8f, 0xb1, 0xfa, 0x91, 0x95, 0xb1, 0xe6, 0x9b, 0xc3, 0x68,
        0xf7, 0xf1, 0x6f, 0x46, 0xb3, 0x70, 0x2b, 0xee, 0xf4, 0xdd, 0x3f, 0xff, 0xbb, 0xd7, 0xe5,
        0x1c, 0x85, 0x35, 0xe7, 0xf4, 0xc3, 0xf9, 0xd2, 0xfc, 0x9d, 0xe9, 0xe6, 0xdc, 0xaa, 0x39,
        0x6d, 0x5f, 0xfd, 0x61, 0x0d, 0x00, 0xa0, 0x10, 0x4b, 0x2d, 0x45, 0x38, 0xbe, 0x3d, 0xc2,
        0x6c, 0x98, 0x8b, 0xa7, 0x9a, 0xa5, 0x56, 0xa2, 0xb4, 0x8a, 0x30, 0x06, 0x53, 0x65, 0xce,
        0x0e, 0xaa, 0x3b, 0xfa, 0x1c, 0x5f, 0x6d, 0x33, 0x0c, 0xf3, 0x21, 0x5a, 0xfc,
    ];
    let (report, spans) = read("cli.jsonl.zst", &FRAME);
    assert_eq!(report.format, Format::OtlpJsonLines);
    assert_eq!(report.compression.as_str(), "zstd");
    assert!(report.diagnostics.is_empty(), "{:?}", report.diagnostics);
    assert_eq!(spans.len(), 1);
    assert_eq!(&*spans[0].name, "zstd-cli");
    assert_eq!(spans[0].service(), "cli");

    // A flipped byte in the content fails the checksum, or the decoding: never silently.
    let mut corrupt = FRAME;
    corrupt[120] ^= 0x40;
    let (report, _) = parse_input("corrupt.zst", &corrupt);
    assert!(
        report.error.is_some() || !report.diagnostics.is_empty(),
        "{report:?}"
    );
}

/// `lines` OTLP/JSON lines of one span each, every span in a trace of its own, as random as
/// a real export so that zstd writes many blocks.
fn span_lines(lines: usize) -> Vec<u8> {
    let mut random = XorShift(7);
    let mut out = Vec::new();
    for _ in 0..lines {
        let (trace, span, noise) = (random.next(), random.next(), random.next());
        out.extend_from_slice(
            format!(
                r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"svc-{}"}}}}]}},"scopeSpans":[{{"spans":[{{"traceId":"{trace:016x}{noise:016x}","spanId":"{span:016x}","name":"op-{noise:x}","startTimeUnixNano":"{}","endTimeUnixNano":"{}"}}]}}]}}]}}"#,
                noise % 7,
                trace >> 8,
                (trace >> 8) + 1000,
            )
            .as_bytes(),
        );
        out.push(b'\n');
    }
    out
}

#[test]
fn a_cut_zstd_file_keeps_what_decoded_as_gzip_does() {
    // Cut by 1,000 bytes: zstd used to lose the last window of the frame (a quarter of a
    // large file's spans, all of a small file's) where gzip kept all but the last line or so.
    for lines in [2_000, 30_000] {
        let text = span_lines(lines);
        let packed = [
            ("cut.jsonl.zst", zstd::bulk::compress(&text, 3).unwrap()),
            ("cut.jsonl.gz", gzip(&text)),
        ];
        let mut kept = Vec::new();
        for (name, packed) in packed {
            let cut = &packed[..packed.len() - 1000];
            let (report, spans) = read(name, cut);
            assert_eq!(
                report.diagnostics[0].code,
                Code::CorruptCompression,
                "{name}: {:?}",
                report.diagnostics
            );
            kept.push(spans.len());
        }
        // zstd keeps every whole 128 KiB block: at most a block's worth of lines (about 400)
        // fewer than gzip.
        let (zstd_kept, gzip_kept) = (kept[0], kept[1]);
        assert!(
            zstd_kept + 500 >= gzip_kept && gzip_kept < lines,
            "{lines} lines: zstd kept {zstd_kept}, gzip {gzip_kept}"
        );
    }
}

#[test]
fn a_zstd_file_starting_with_a_skippable_frame_is_read() {
    // As `pzstd` writes: a skippable frame (magic 0x184D2A50, its length, its content) first.
    let text = span_lines(50);
    let mut packed = vec![0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4];
    packed.extend_from_slice(&zstd(&text[..text.len() / 2 + 1]));
    packed.extend_from_slice(&[0x5f, 0x2a, 0x4d, 0x18, 0, 0, 0, 0]);
    packed.extend_from_slice(&zstd(&text[text.len() / 2 + 1..]));
    let (report, spans) = read("pzstd.jsonl.zst", &packed);
    assert_eq!(report.format, Format::OtlpJsonLines);
    assert_eq!(report.compression.as_str(), "zstd");
    assert!(report.diagnostics.is_empty(), "{:?}", report.diagnostics);
    assert_eq!(spans.len(), 50);
}

#[test]
fn a_framed_stream_with_a_bad_and_a_cut_message_reads_the_rest() {
    let document = otlp_document();
    let messages = protobuf_messages(&document);
    let mut stream = framed([
        messages[0].as_slice(),
        b"\xff\xff\xff garbage".as_slice(),
        messages[1].as_slice(),
    ]);
    stream.extend_from_slice(&(messages[1].len() as u32).to_be_bytes());
    stream.extend_from_slice(&messages[1][..5]);
    let (report, spans) = read("collector.pb", &stream);
    assert_eq!(report.format, Format::OtlpProtobufFramed);
    assert_eq!(spans.len(), 3);
    assert_eq!(report.counts.lines, 3, "three whole messages");
    let codes: Vec<(Code, Option<u64>)> = report
        .diagnostics
        .iter()
        .map(|d| (d.code, d.line))
        .collect();
    assert_eq!(
        codes,
        vec![(Code::InvalidProtobuf, None), (Code::TruncatedFrame, None)]
    );
    let second = messages[0].len() + 4;
    assert!(
        report.diagnostics[0]
            .message
            .contains(&format!("message 2 at byte offset {second}")),
        "{}",
        report.diagnostics[0].message
    );
}

#[test]
fn protobuf_that_decodes_to_nonsense_is_not_accepted() {
    // Valid protobuf, but a 5-byte trace id: not OTLP traces.
    let nonsense = opentelemetry_proto::tonic::trace::v1::TracesData {
        resource_spans: vec![opentelemetry_proto::tonic::trace::v1::ResourceSpans {
            scope_spans: vec![opentelemetry_proto::tonic::trace::v1::ScopeSpans {
                spans: vec![opentelemetry_proto::tonic::trace::v1::Span {
                    trace_id: vec![1; 5],
                    span_id: vec![2; 8],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec();
    let (report, spans) = parse_input("nonsense.pb", &nonsense);
    assert!(spans.is_empty());
    let error = report.error.unwrap();
    assert!(error.contains("nonsense.pb"), "{error}");
    assert!(error.contains("5-byte trace id"), "{error}");
    assert!(error.contains("length-framed"), "{error}");
}

// ---------------------------------------------------------------------------------------------
// Decompression bombs.

#[test]
fn a_decompression_bomb_is_refused_at_the_limit_with_a_clear_error() {
    let options = IngestOptions {
        max_decompressed: Some(1 << 20),
        ..IngestOptions::default()
    };
    // 131072 RLE blocks: 512 KiB on disk, 16 GiB decompressed.
    let bomb = zstd_rle_bomb(131_072);
    let started = std::time::Instant::now();
    let (report, spans) = parse_input_with("bomb.zst", &bomb, &options);
    assert!(spans.is_empty());
    let error = report.error.unwrap();
    assert!(error.starts_with("bomb.zst: "), "{error}");
    assert!(error.contains("limit of 1 MiB"), "{error}");
    assert!(error.contains("decompression bomb"), "{error}");
    assert!(error.contains("ABORTAUDIT_MAX_DECOMPRESSED"), "{error}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "stopped at the limit, not after 16 GiB"
    );

    let gzip_bomb = gzip(&vec![b' '; 16 << 20]);
    let (report, _) = parse_input_with("bomb.gz", &gzip_bomb, &options);
    assert!(
        report.error.as_deref().unwrap().contains("limit of 1 MiB"),
        "{report:?}"
    );

    // Per-message zstd frames count against one budget for the whole input.
    let small = zstd_rle_bomb(4); // 512 KiB each
    let stream = framed([small.as_slice(), small.as_slice(), small.as_slice()]);
    let (report, _) = parse_input_with("bomb-framed.pb", &stream, &options);
    assert!(
        report.error.as_deref().unwrap().contains("limit of 1 MiB"),
        "{report:?}"
    );

    // Under a limit it fits, it is read (and is not traces).
    let (report, _) = parse_input_with("blank.zst", &zstd_rle_bomb(2), &options);
    assert_eq!(report.format, Format::Empty, "{report:?}");
}

#[test]
fn by_default_a_decompression_bomb_is_refused_by_its_ratio() {
    // No fixed limit: past 64 MiB of output, more than 300 to 1 is a bomb.
    let options = IngestOptions::default();
    assert_eq!(options.max_decompressed, None);
    // 16 GiB from 512 KiB: stopped soon after 64 MiB.
    let bomb = zstd_rle_bomb(131_072);
    let started = std::time::Instant::now();
    let (report, spans) = parse_input_with("bomb.zst", &bomb, &options);
    assert!(spans.is_empty());
    let error = report.error.unwrap();
    assert!(
        error.starts_with("bomb.zst: the zstd data decompresses more than 300 to 1: "),
        "{error}"
    );
    assert!(
        error.contains("stopped at compressed byte offset"),
        "{error}"
    );
    assert!(error.contains("decompression bomb"), "{error}");
    assert!(error.contains("--max-decompressed"), "{error}");
    assert!(error.contains("ABORTAUDIT_MAX_DECOMPRESSED"), "{error}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "stopped by its ratio, not after 16 GiB"
    );

    // gzip reaches about 1,000 to 1 at most: still a bomb.
    let gzip_bomb = gzip(&vec![b' '; 80 << 20]);
    let (report, _) = parse_input_with("bomb.gz", &gzip_bomb, &options);
    let error = report.error.unwrap();
    assert!(
        error.starts_with("bomb.gz: the gzip data decompresses more than 300 to 1: "),
        "{error}"
    );

    // Per-message zstd frames are judged together: 80 MiB from 20 frames of 4 MiB.
    let small = zstd_rle_bomb(32);
    let stream = framed(std::iter::repeat_n(small.as_slice(), 20));
    let (report, _) = parse_input_with("bomb-framed.pb", &stream, &options);
    let error = report.error.unwrap();
    assert!(error.contains("more than 300 to 1"), "{error}");

    // Below 64 MiB, whatever the ratio, it is read (and is not traces).
    let (report, _) = parse_input_with("blank.zst", &zstd_rle_bomb(256), &options);
    assert_eq!(report.format, Format::Empty, "{report:?}");

    // A fixed limit replaces the ratio: `unlimited` reads it all.
    let unlimited = IngestOptions {
        max_decompressed: Some(u64::MAX),
        ..IngestOptions::default()
    };
    let (report, _) = parse_input_with("blank.gz", &gzip_bomb, &unlimited);
    assert_eq!(report.format, Format::Empty, "{report:?}");
}

#[test]
fn the_limit_is_set_with_an_environment_variable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bomb.zst");
    std::fs::write(&path, zstd_rle_bomb(64)).unwrap(); // 8 MiB decompressed
    let output = bin()
        .env("ABORTAUDIT_MAX_DECOMPRESSED", "4MiB")
        .arg("inspect")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("limit of 4 MiB"), "{stderr}");
    assert!(stderr.contains("bomb.zst"), "{stderr}");

    let output = bin()
        .env("ABORTAUDIT_MAX_DECOMPRESSED", "a lot")
        .arg("inspect")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("ABORTAUDIT_MAX_DECOMPRESSED") && stderr.contains("not a size"),
        "{stderr}"
    );
}

#[test]
fn bombs_read_side_by_side_are_refused_within_one_memory_budget() {
    // Four bombs (zstd and gzip) and two genuine inputs in a directory, read on four threads
    // under a memory budget smaller than two of the genuine inputs: the bombs are refused at
    // the limit, and the genuine inputs, read after them where the budget was taken, read as
    // they do without a budget.
    let dir = tempfile::tempdir().unwrap();
    for i in 0..4 {
        let bomb = if i % 2 == 0 {
            zstd_rle_bomb(64) // 8 MiB
        } else {
            gzip(&vec![b' '; 8 << 20])
        };
        std::fs::write(dir.path().join(format!("bomb{i}.json")), bomb).unwrap();
    }
    let text = span_lines(5_000); // 1.5 MB
    std::fs::write(dir.path().join("a.jsonl.gz"), gzip(&text)).unwrap();
    std::fs::write(dir.path().join("b.jsonl"), &text).unwrap();
    let run = |budget: &str| {
        bin()
            .env("RAYON_NUM_THREADS", "4")
            .args(["inspect", "--format", "json", "--max-decompressed", "4MiB"])
            .args(["--memory-budget", budget])
            .arg(dir.path())
            .output()
            .unwrap()
    };
    let tight = run("2MiB");
    common::assert_code(&tight, 2);
    let stderr = String::from_utf8_lossy(&tight.stderr);
    for i in 0..4 {
        assert!(
            stderr.contains(&format!("bomb{i}.json: ")) && stderr.contains("limit of 4 MiB"),
            "{stderr}"
        );
    }
    let loose = run("unlimited");
    assert_eq!(json(&tight.stdout), json(&loose.stdout));
    let inputs = json(&tight.stdout)["inputs"].clone();
    let spans: Vec<u64> = inputs
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["spans"].as_u64().unwrap())
        .collect();
    assert_eq!(spans, [5_000, 5_000, 0, 0, 0, 0]);
}

#[test]
fn a_line_longer_than_the_memory_budget_is_not_held_by_the_two_pass_read() {
    // A bomb can start with a good line and go on with one that never ends.
    let dir = tempfile::tempdir().unwrap();
    let mut text = span_lines(3);
    text.extend_from_slice(&vec![b' '; 40 << 20]);
    let path = dir.path().join("long.jsonl.zst");
    std::fs::write(&path, zstd(&text)).unwrap();
    let output = bin()
        .env("ABORTAUDIT_SURVEY_ABOVE", "0")
        .args(["scan", "--memory-budget", "20MiB"])
        .arg(&path)
        .output()
        .unwrap();
    common::assert_code(&output, 2);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("longer than the memory budget of 20 MiB"),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------------------------
// Many inputs, and the same result whatever the threads or the order.

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

/// A JSON Lines export over 8 MiB (so it is read in parallel chunks), with malformed lines
/// spread through it and a cut last line. Returns the text and the malformed lines' numbers.
fn big_json_lines() -> (Vec<u8>, Vec<u64>) {
    let mut text = Vec::new();
    let mut bad = Vec::new();
    let mut line = 0u64;
    while text.len() < (9 << 20) {
        line += 1;
        if line.is_multiple_of(997) {
            text.extend_from_slice(b"{\"resourceSpans\": [ not json\n");
            bad.push(line);
            continue;
        }
        let record = format!(
            r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"svc-{}"}}}}]}},"scopeSpans":[{{"spans":[{{"traceId":"{:032x}","spanId":"{:016x}","name":"op {line}","kind":2,"startTimeUnixNano":"{}","endTimeUnixNano":"{}","attributes":[{{"key":"line","value":{{"intValue":"{line}"}}}}]}}]}}]}}]}}"#,
            line % 7,
            line / 3 + 1,
            line,
            1_700_000_000_000_000_000u64 + line,
            1_700_000_000_000_000_100u64 + line,
        );
        text.extend_from_slice(record.as_bytes());
        text.push(b'\n');
    }
    text.extend_from_slice(b"{\"resourceSpans\":[{\"scopeSp");
    (text, bad)
}

#[test]
fn a_big_json_lines_file_reads_the_same_on_one_thread_and_on_four() {
    let (text, bad) = big_json_lines();
    let total_lines = text.iter().filter(|b| **b == b'\n').count() as u64 + 1;
    let one = pool(1).install(|| parse_input("big.jsonl", &text));
    let four = pool(4).install(|| parse_input("big.jsonl", &text));
    assert_eq!(
        serde_json::to_value(&one.0).unwrap(),
        serde_json::to_value(&four.0).unwrap()
    );
    assert_eq!(one.1, four.1, "spans, in order, with their lines");
    let (report, spans) = four;
    assert_eq!(report.counts.lines, total_lines);
    assert_eq!(spans.len() as u64, total_lines - 1 - bad.len() as u64);
    for span in spans.iter().step_by(1009) {
        let n = span.attributes.get("line").unwrap().as_int().unwrap() as u64;
        assert_eq!(span.origin.line, n, "absolute line numbers");
    }
    let malformed: Vec<u64> = report
        .diagnostics
        .iter()
        .filter(|d| d.code == Code::MalformedJson)
        .map(|d| d.line.unwrap())
        .collect();
    assert_eq!(malformed, bad);
    let last = report.diagnostics.last().unwrap();
    assert_eq!(
        (last.code, last.line),
        (Code::TruncatedLine, Some(total_lines))
    );
}

/// A directory of inputs in every format, with spans repeated across files.
fn mixed_inputs(dir: &std::path::Path) {
    let document = otlp_document();
    let pretty = serde_json::to_vec_pretty(&document).unwrap();
    let protobuf = to_protobuf(&document);
    std::fs::write(dir.join("a.json"), &pretty).unwrap();
    std::fs::write(dir.join("b.pb"), &protobuf).unwrap();
    std::fs::write(dir.join("c.json.gz"), gzip(&pretty)).unwrap();
    std::fs::write(
        dir.join("d.zst"),
        zstd(&framed(
            protobuf_messages(&document).iter().map(Vec::as_slice),
        )),
    )
    .unwrap();
    if let Some(corpus) = corpus("traces") {
        for (i, file) in [
            "zipkin-v2/zipkin-lens_yelp.json",
            "zipkin-v2/zipkin-lens_messaging-kafka.json",
            "jaeger-json/jaeger_uimodel_ui_01_bare-trace.json",
            "jaeger-json/jaeger_uimodel_ui_01_bare-trace.json",
        ]
        .iter()
        .enumerate()
        {
            std::fs::copy(corpus.join(file), dir.join(format!("e{i}.json"))).unwrap();
        }
    }
    for i in 0..8 {
        let mut doc = document.clone();
        doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["name"] =
            serde_json::json!(format!("variant {}", i % 3));
        std::fs::write(
            dir.join(format!("f{i}.jsonl")),
            serde_json::to_vec(&doc).unwrap(),
        )
        .unwrap();
    }
}

#[test]
fn many_inputs_give_the_same_result_on_any_number_of_threads() {
    let dir = tempfile::tempdir().unwrap();
    mixed_inputs(dir.path());
    let sources = [Source::Path(dir.path().to_owned())];
    let options = IngestOptions::default();
    let one = pool(1).install(|| ingest_with(&sources, &options));
    let four = pool(4).install(|| ingest_with(&sources, &options));
    assert_eq!(one.spans, four.spans);
    assert_eq!(
        serde_json::to_value(&one.inputs).unwrap(),
        serde_json::to_value(&four.inputs).unwrap()
    );
    assert_eq!(one.total, four.total);
    assert!(one.total.duplicates > 0, "the inputs repeat spans");
    assert!(one.errors().next().is_none());
    let conflicts = one
        .diagnostics()
        .filter(|d| d.code == Code::ConflictingDuplicate)
        .count();
    assert!(conflicts > 0, "variants of one span id are reported");
}

#[test]
fn the_order_of_the_inputs_does_not_change_what_is_read() {
    let dir = tempfile::tempdir().unwrap();
    mixed_inputs(dir.path());
    let mut files = expand(&[Source::Path(dir.path().to_owned())]).files;
    let options = IngestOptions::default();
    let forward = ingest_with(&files, &options);
    files.reverse();
    let backward = ingest_with(&files, &options);
    let keys = |spans: &[Span]| {
        let mut k: Vec<(TraceId, SpanId, u64)> = spans
            .iter()
            .map(|s| (s.trace_id, s.span_id, s.start))
            .collect();
        k.sort();
        k
    };
    assert_eq!(keys(&forward.spans), keys(&backward.spans));
    assert_eq!(forward.total.spans, backward.total.spans);
    assert_eq!(forward.total.duplicates, backward.total.duplicates);
    assert_eq!(forward.total.traces, backward.total.traces);
}

#[test]
fn rotated_collector_files_and_globs_are_read_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let line = |n: u64| {
        format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"{n:016x}","name":"n{n}","startTimeUnixNano":"{n}","endTimeUnixNano":"{}"}}]}}]}}]}}"#,
            n + 1
        ) + "\n"
    };
    let d = dir.path();
    // What the Collector's file exporter leaves with rotation (and compression of backups).
    std::fs::write(
        d.join("traces-2024-05-01T10-00-00.000.json.gz"),
        gzip(line(1).as_bytes()),
    )
    .unwrap();
    std::fs::write(d.join("traces-2024-05-01T11-00-00.000.json"), line(2)).unwrap();
    std::fs::write(d.join("traces.json"), line(3)).unwrap();
    std::fs::write(d.join(".traces.json.swp"), "junk").unwrap();

    let ingested = ingest_with(&[Source::Path(d.to_owned())], &IngestOptions::default());
    let names: Vec<&str> = ingested.spans.iter().map(|s| &*s.name).collect();
    assert_eq!(names, ["n1", "n2", "n3"]);
    assert_eq!(ingested.inputs[0].compression.as_str(), "gzip");

    let pattern = d.join("traces-*.json*");
    let ingested = ingest_with(&[Source::Path(pattern)], &IngestOptions::default());
    assert_eq!(ingested.inputs.len(), 2, "the rotated files only");

    let output = bin()
        .arg("inspect")
        .arg(d.join("nothing-*.json"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("nothing-*.json") && stderr.contains("matches no file"),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------------------------
// Hostile binary input, in the style of tests/robustness.rs.

fn outcome_is_reported(name: &str, bytes: &[u8]) {
    let (report, spans) = parse_input(name, bytes);
    let reported = report.error.is_some() || !report.diagnostics.is_empty();
    let clean = spans.len() as u64 == report.counts.spans && report.counts.spans > 0;
    let empty = report.format == Format::Empty;
    assert!(
        reported || clean || empty,
        "{name}: neither spans nor a diagnostic nor an error"
    );
}

#[test]
fn random_bytes_behind_binary_magic_never_panic() {
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    let prefixes: [&[u8]; 5] = [
        &[0x1f, 0x8b],
        &[0x28, 0xb5, 0x2f, 0xfd],
        &[0x0a],
        &[0x00, 0x00, 0x00, 0x10],
        &[0x00, 0x00, 0x00, 0x08, 0x28, 0xb5, 0x2f, 0xfd],
    ];
    for case in 0..3_000 {
        let mut bytes = prefixes[case % prefixes.len()].to_vec();
        let len = (rng.next() % 200) as usize;
        bytes.extend((0..len).map(|_| rng.next() as u8));
        outcome_is_reported(&format!("random-{case}"), &bytes);
    }
}

fn frame_ends(stream: &[u8]) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut at = 0;
    while at + 4 <= stream.len() {
        let len = u32::from_be_bytes(stream[at..at + 4].try_into().unwrap()) as usize;
        at += 4 + len;
        ends.push(at);
    }
    ends
}

#[test]
fn every_truncation_of_each_encoding_is_a_diagnostic_or_an_error() {
    let document = otlp_document();
    let protobuf = to_protobuf(&document);
    let messages = protobuf_messages(&document);
    let zstd_messages: Vec<Vec<u8>> = messages.iter().map(|m| zstd(m)).collect();
    let pretty = serde_json::to_vec(&document).unwrap();
    // An unframed message carries no length: cut exactly between two of its ResourceSpans, it
    // is a valid shorter message, which nobody can tell (that is why the Collector frames
    // them). Those cuts are left out; every other one is inside a length-delimited field.
    let mut boundaries = std::collections::HashSet::new();
    let mut at = 0;
    while at < protobuf.len() {
        assert_eq!(protobuf[at], 0x0a, "field 1, length-delimited");
        let (mut len, mut shift, mut i) = (0usize, 0, at + 1);
        loop {
            len |= usize::from(protobuf[i] & 0x7f) << shift;
            shift += 7;
            i += 1;
            if protobuf[i - 1] & 0x80 == 0 {
                break;
            }
        }
        at = i + len;
        boundaries.insert(at);
    }
    for (name, whole) in [
        ("protobuf", protobuf.clone()),
        ("framed", framed(messages.iter().map(Vec::as_slice))),
        (
            "zstd-framed",
            framed(zstd_messages.iter().map(Vec::as_slice)),
        ),
        ("gzip", gzip(&pretty)),
        ("zstd", zstd(&pretty)),
        ("zstd protobuf", zstd(&protobuf)),
    ] {
        for cut in 1..whole.len() {
            let (report, spans) = parse_input(name, &whole[..cut]);
            // A protobuf message starts with 0x0a, a newline: cut there, it is blank text.
            let blank = whole[..cut].iter().all(u8::is_ascii_whitespace);
            if name == "protobuf" && boundaries.contains(&cut) {
                assert!(
                    report.error.is_none() && spans.len() < 3,
                    "{name} cut at {cut}"
                );
                continue;
            }
            // The same between two messages of a framed stream.
            if name.ends_with("framed") && frame_ends(&whole).contains(&cut) {
                assert!(
                    report.error.is_none() && spans.len() < 3,
                    "{name} cut at {cut}"
                );
                continue;
            }
            assert!(
                report.error.is_some() || !report.diagnostics.is_empty() || blank,
                "{name} cut at {cut} of {}: {} spans read without a word",
                whole.len(),
                spans.len()
            );
        }
    }
}

#[test]
fn flipped_bits_in_binary_inputs_never_panic() {
    let document = otlp_document();
    let protobuf = to_protobuf(&document);
    let messages = protobuf_messages(&document);
    let inputs = [
        protobuf.clone(),
        framed(messages.iter().map(Vec::as_slice)),
        gzip(&protobuf),
        zstd(&protobuf),
    ];
    let mut rng = XorShift(7);
    for case in 0..4_000 {
        let mut bytes = inputs[case % inputs.len()].clone();
        for _ in 0..(1 + rng.next() % 3) {
            let at = (rng.next() as usize) % bytes.len();
            bytes[at] ^= 1 << (rng.next() % 8);
        }
        let (report, spans) = parse_input(&format!("flipped-{case}"), &bytes);
        // A flipped bit may land in a value and go unnoticed; it must never panic, and what is
        // read is counted.
        assert!(spans.len() as u64 <= report.counts.spans);
    }
}

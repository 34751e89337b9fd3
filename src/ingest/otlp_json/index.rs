//! The first pass over a large export: every record located and its spans surveyed without
//! being built. Records in the shape exporters write are checked and walked without serde
//! (`index_record`); any other is read by serde with its spans kept as text.

use std::sync::Arc;

use serde::Deserializer as _;

use super::super::Parsed;
use super::super::json_text::cursor::{Cursor, each_element, each_member};
use super::convert::{Converter, Position};
use super::survey::{
    Fields, Prefiltered, SurveyRules, SurveyVisitor, SurveyedSpan, conversation_in_text,
};
use super::wire::{RawEnvelope, WireResource, without_position};
use crate::model::ids::{decode_id, hash_text};
use crate::model::{Code, TraceId};

/// The first read of a large export, over one block of the file.
pub(crate) struct IndexFilter {
    pub survey: Arc<SurveyRules>,
    /// The address of the block in memory and its offset in the file: a span's bytes, borrowed
    /// from the block, then give its place in the file.
    pub block_address: usize,
    pub block_offset: u64,
}

/// A span as the first read leaves it: surveyed, and where its text is in the file.
pub(crate) struct IndexedSpan {
    pub survey: SurveyedSpan,
    pub offset: u64,
    pub len: u32,
}

impl IndexFilter {
    fn index(&self, raw: &str) -> Result<IndexedSpan, String> {
        let bytes = raw.as_bytes();
        let within = (bytes.as_ptr() as usize)
            .checked_sub(self.block_address)
            .ok_or("a span outside the block being read")?;
        let len = u32::try_from(bytes.len()).map_err(|_| "a span of 4 GiB or more")?;
        let leading = leading_trace_id(bytes);
        let found = match leading {
            Some((_, rest)) => self.survey.prefilter(&bytes[rest..]),
            None => Prefiltered {
                fields: Fields::ALL,
                keys: Fields::ALL,
                one_conversation_key: false,
                may_abort: false,
            },
        };
        let fields = found.fields;
        // A span that only names its conversation (an agent's or a model call's, often) is
        // read from its text when it is written as exporters write it.
        let conversation = match leading {
            Some(_) if found.keys == Fields::CONVERSATION && found.one_conversation_key => {
                conversation_in_text(raw, &self.survey.rules.conversation.id_attributes)
            }
            _ => None,
        };
        let mut survey = match leading {
            Some((trace_id, _)) if fields == Fields::NONE => SurveyedSpan {
                trace_id: Some(trace_id),
                ..SurveyedSpan::default()
            },
            Some((trace_id, _)) if conversation.is_some() => SurveyedSpan {
                trace_id: Some(trace_id),
                conversation: conversation.flatten(),
                ..SurveyedSpan::default()
            },
            _ => serde_json::Deserializer::from_str(raw)
                .deserialize_map(SurveyVisitor {
                    rules: &self.survey.rules,
                    inferred_keys: &self.survey.inferred_keys,
                    fields,
                })
                .map_err(|e| without_position(&e))?,
        };
        survey.may_abort |= found.may_abort;
        Ok(IndexedSpan {
            survey,
            offset: self.block_offset + within as u64,
            len,
        })
    }
}

/// The `ResourceSpans` of a record read by `index_record`: its resource as written, and its
/// spans (a range of the record's list).
pub(super) struct IndexedGroup<'r> {
    resource: &'r str,
    spans: std::ops::Range<usize>,
}

/// The first read of a record written as exporters write it, `{"resourceSpans":[…]}` with
/// `resource`, `scopeSpans` and `spans` under their OTLP/JSON names, without serde: its text
/// is checked and skipped by the JSON cursor, each span located and surveyed on the way.
/// `None` for anything else (another shape, a duplicate, escaped or unknown key, text that is
/// not JSON, a span the survey refuses): the record is then read with serde, which handles
/// every shape and says what is wrong, so both reads give the same result.
pub(super) fn index_record<'r>(
    index: &IndexFilter,
    record: &'r str,
    spans: &mut Vec<IndexedSpan>,
) -> Option<Vec<IndexedGroup<'r>>> {
    let mut cursor = Cursor::new(record.as_bytes());
    let mut groups = Vec::new();
    cursor.eat(b'{')?;
    if cursor.key()? != b"resourceSpans" {
        return None;
    }
    each_element(&mut cursor, |cursor| {
        let first = spans.len();
        let mut resource = None;
        let mut scopes_seen = false;
        each_member(cursor, |cursor, key| {
            match key {
                b"resource" if resource.is_none() && cursor.peek()? == b'{' => {
                    resource = Some(&record[cursor.value()?]);
                }
                b"scopeSpans" if !scopes_seen => {
                    scopes_seen = true;
                    each_element(cursor, |cursor| {
                        let mut spans_seen = false;
                        each_member(cursor, |cursor, key| {
                            match key {
                                b"spans" if !spans_seen => {
                                    spans_seen = true;
                                    each_element(cursor, |cursor| {
                                        if cursor.peek()? != b'{' {
                                            return None;
                                        }
                                        let text = &record[cursor.value()?];
                                        spans.push(index.index(text).ok()?);
                                        Some(())
                                    })?;
                                }
                                // Fields OTLP/JSON defines, and ignored.
                                b"scope"
                                | b"schemaUrl"
                                | b"schema_url"
                                | b"instrumentationLibrary"
                                | b"instrumentation_library" => {
                                    cursor.value()?;
                                }
                                // A second `spans` (an error there), or a key a whole read
                                // would warn of if it held a list of objects.
                                _ => return None,
                            }
                            Some(())
                        })
                    })?;
                }
                b"schemaUrl" | b"schema_url" => {
                    cursor.value()?;
                }
                // Read by serde: a second one (an error there), another spelling, a resource
                // that is not an object, a key OTLP/JSON does not define.
                _ => return None,
            }
            Some(())
        })?;
        groups.push(IndexedGroup {
            resource: resource.unwrap_or(""),
            spans: first..spans.len(),
        });
        Some(())
    })?;
    // Any other top-level key is left to serde.
    cursor.eat(b'}')?;
    cursor.at_end().then_some(groups)
}

thread_local! {
    /// The spans of the record `index_record` reads, a list kept from one record to the next
    /// rather than grown afresh for each (a record holds hundreds).
    static INDEXED: std::cell::RefCell<Vec<IndexedSpan>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The trace id of a span that starts with it, as exporters write spans (`{"traceId":"…",`),
/// and where the rest of the span starts.
pub(super) fn leading_trace_id(span: &[u8]) -> Option<(TraceId, usize)> {
    const HEAD: &[u8] = b"{\"traceId\":\"";
    let hex = span.strip_prefix(HEAD)?.get(..33)?;
    if hex[32] != b'"' {
        return None;
    }
    let id = decode_id::<16>(std::str::from_utf8(&hex[..32]).ok()?).ok()?;
    Some((TraceId(id), HEAD.len() + 33))
}

/// In the first read of a large export, reads a record as `index_record` can: whether it
/// could (if not, nothing was added to `out`).
pub(super) fn indexed_without_serde(
    index: &IndexFilter,
    input: &Arc<str>,
    record: &[u8],
    line_no: u64,
    out: &mut Parsed,
) -> bool {
    let Ok(text) = std::str::from_utf8(record) else {
        return false;
    };
    INDEXED.with_borrow_mut(|spans| {
        spans.clear();
        let Some(groups) = index_record(index, text, spans) else {
            return false;
        };
        let mut converter = Converter {
            input,
            position: Position::Line(line_no),
            out,
        };
        let mut spans = spans.drain(..);
        for group in groups {
            let mut these = spans.by_ref().take(group.spans.len());
            converter.indexed_group(&index.survey, group.resource, &mut these);
            // A group whose resource is refused leaves its spans unread: they are not the
            // next group's.
            these.for_each(drop);
        }
        true
    })
}

/// In the first read of a large export, reads a record in any shape with serde, its spans and
/// resources kept as text: each span is then placed and surveyed. A span the survey refuses
/// refuses the record, as a whole read would.
pub(super) fn indexed_with_serde(
    index: &IndexFilter,
    converter: &mut Converter<'_, '_>,
    envelope: RawEnvelope<'_>,
) -> Result<(), String> {
    let mut groups = Vec::new();
    for group in envelope.into_resource_spans() {
        let resource = group.resource.map_or("", |r| r.get());
        let spans: Vec<IndexedSpan> = group
            .spans()
            .map(|span| index.index(span.get()))
            .collect::<Result<_, _>>()?;
        groups.push((resource, spans));
    }
    for (resource, spans) in groups {
        converter.indexed_group(&index.survey, resource, spans.into_iter());
    }
    Ok(())
}

impl Converter<'_, '_> {
    /// The first read of a large export: the spans of a `ResourceSpans` (whose resource is
    /// written `text`) are placed, surveyed and counted.
    fn indexed_group(
        &mut self,
        survey: &SurveyRules,
        text: &str,
        spans: impl Iterator<Item = IndexedSpan>,
    ) {
        let line = self.current_line();
        let (resource_id, resource) = match self.out.index.resource(text) {
            Some(known) => known,
            None => {
                let wire_resource = match text {
                    "" => None,
                    text => match serde_json::from_str::<WireResource<'_>>(text) {
                        Ok(wire) => Some(wire),
                        Err(e) => {
                            let why = without_position(&e);
                            self.diag(
                                line,
                                Code::InvalidOtlp,
                                format!(
                                    "a resource is not OTLP/JSON: {why}; its spans are skipped"
                                ),
                            );
                            return;
                        }
                    },
                };
                let resource = self.resource(wire_resource);
                let id = self.out.index.add_resource(text, Arc::clone(&resource));
                (id, resource)
            }
        };
        self.out.index.begin_group(resource_id, line);
        let resource_conversation = survey
            .rules
            .conversation
            .id_attributes
            .iter()
            .find_map(|k| resource.attributes.text(k).filter(|v| !v.is_empty()))
            .map(|v| hash_text(&v));
        for IndexedSpan {
            survey: mut span,
            offset,
            len,
        } in spans
        {
            self.out.spans_read += 1;
            if let Some(raw) = span.bad_trace_id.take() {
                self.out.spans_unjoinable += 1;
                let why = decode_id::<16>(&raw).err().unwrap_or_default();
                self.diag(
                    line,
                    Code::InvalidId,
                    format!("a span's traceId {raw:?} {why}; the span is not used for joins"),
                );
            }
            if span.conversation.is_none() {
                span.conversation = resource_conversation;
            }
            span.may_abort |= survey.names_aborted_conversation(&span);
            if let Some(trace) = span.trace_id {
                self.out.index.add_span(offset, len, trace);
            }
            self.out.survey.add(span);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::otlp_json::read_record_with_serde;
    use crate::model::ids::hash_text;
    use std::path::Path;

    /// What the first read makes of a span's text, and what a full survey of it says.
    fn indexed_and_surveyed(text: &str) -> (SurveyedSpan, SurveyedSpan) {
        let rules = crate::rules::Rules::default();
        let filter = IndexFilter {
            survey: Arc::new(SurveyRules::new(&rules)),
            block_address: text.as_ptr() as usize,
            block_offset: 0,
        };
        let indexed = filter.index(text).unwrap();
        assert_eq!((indexed.offset, indexed.len as usize), (0, text.len()));
        let survey = SurveyRules::new(&rules);
        let full = serde_json::Deserializer::from_str(text)
            .deserialize_map(SurveyVisitor {
                rules: &rules,
                inferred_keys: &survey.inferred_keys,
                fields: Fields::ALL,
            })
            .unwrap();
        (indexed.survey, full)
    }

    const TRACE: &str =
        r#"{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174""#;

    /// A record read by the first read of a large export as it is read (without serde where
    /// it can be), and with serde: what each leaves, and whether serde was spared.
    fn indexed_both_ways(record: &[u8]) -> (String, String, bool) {
        let rules = crate::rules::Rules::default();
        let index = IndexFilter {
            survey: Arc::new(SurveyRules::new(&rules)),
            block_address: record.as_ptr() as usize,
            block_offset: 0,
        };
        let input: Arc<str> = Arc::from("export.jsonl");
        let describe = |parsed: Parsed| {
            let survey = &parsed.survey;
            let mut may_abort: Vec<_> = survey.may_abort.iter().collect();
            may_abort.sort();
            let mut conversations: Vec<_> = survey.conversations.iter().collect();
            conversations.sort();
            format!(
                "read {} unjoinable {}\n{}\nmay abort {may_abort:?}\nlinks {:?}\nconversations {conversations:?}\n{:?}",
                parsed.spans_read,
                parsed.spans_unjoinable,
                parsed.index.describe(),
                survey.links,
                parsed.diagnostics
            )
        };
        let with_serde = |out: &mut Parsed| {
            let record = record.trim_ascii_end();
            read_record_with_serde(&input, record, 7, false, out, |converter, envelope| {
                indexed_with_serde(&index, converter, envelope)
            });
        };
        let mut fast = Parsed::default();
        let spared = indexed_without_serde(&index, &input, record, 7, &mut fast);
        if !spared {
            with_serde(&mut fast);
        }
        let mut slow = Parsed::default();
        with_serde(&mut slow);
        (describe(fast), describe(slow), spared)
    }

    #[test]
    fn records_are_indexed_without_serde_as_with_it() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/scenarios/traces");
        let mut records = 0;
        for file in ["agent.jsonl", "vendor.jsonl", "worker.jsonl"] {
            let text = std::fs::read(fixtures.join(file)).unwrap();
            for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let (fast, slow, spared) = indexed_both_ways(line);
                assert_eq!(fast, slow, "{file}");
                // These are what OTel SDKs' exporters write: serde is spared them.
                assert!(spared, "{file}: {}", String::from_utf8_lossy(line));
                records += 1;
            }
        }
        assert!(records > 20, "{records}");
        // Other shapes and spellings (wrappers, snake_case, base64 ids, pretty-printed
        // documents) are left to serde, or read alike.
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/traces");
        for dir in ["otlp-json", "otlp-json-variants"] {
            let Ok(entries) = std::fs::read_dir(corpus.join(dir)) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                let text = std::fs::read(&path).unwrap();
                let records: Vec<&[u8]> = if path.extension().is_some_and(|e| e == "jsonl") {
                    text.split(|b| *b == b'\n')
                        .filter(|l| !l.is_empty())
                        .collect()
                } else {
                    vec![text.trim_ascii_end()]
                };
                for record in records {
                    let (fast, slow, _) = indexed_both_ways(record);
                    assert_eq!(fast, slow, "{}", path.display());
                }
            }
        }
    }

    /// A resource that is an object but not a resource is reported and its group's spans
    /// skipped, in whichever group it comes: the groups after it keep their own spans.
    #[test]
    fn a_refused_resource_skips_only_its_own_spans() {
        let group = |resource: &str, trace: &str| {
            format!(
                r#"{{"resource":{resource},"scopeSpans":[{{"spans":[{{"traceId":"{trace}","spanId":"eee19b7ec3c1b174"}},{{"traceId":"{trace}","spanId":"b7ad6b7169203331"}}]}}]}}"#
            )
        };
        let (a, b) = (
            "5b8efff798038103d269b633813fc60c",
            "0af7651916cd43dd8448eb211c80319c",
        );
        for bad in [
            r#"{"attributes":5}"#,
            r#"{"attributes":[{"key":5}]}"#,
            r#"{"attributes":[],"attributes":[]}"#,
            r#"{"attributes":[{"key":"\uD800"}]}"#,
        ] {
            for groups in [
                [group(bad, a), group("{}", b), group("{}", a)],
                [group("{}", a), group(bad, b), group("{}", b)],
            ] {
                let record = format!(r#"{{"resourceSpans":[{}]}}"#, groups.join(","));
                let (fast, slow, spared) = indexed_both_ways(record.as_bytes());
                assert!(spared, "{record}");
                assert_eq!(fast, slow, "{record}");
                assert!(fast.contains("read 4 "), "{fast}");
                assert!(fast.contains("a resource is not OTLP/JSON"), "{fast}");
            }
        }
    }

    /// Every byte of a record replaced, dropped or doubled in turn: whatever the first read
    /// without serde accepts, it reads as serde does, and it leaves the rest to serde.
    #[test]
    fn a_damaged_record_is_indexed_as_serde_reads_it() {
        let record = concat!(
            r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":"#,
            r#"{"stringValue":"agent"}},{"key":"gen_ai.conversation.id","value":{"stringValue":"c-9"}}]},"#,
            r#""scopeSpans":[{"scope":{"name":"s"},"spans":[{"traceId":"#,
            r#""5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"POST","#,
            r#""kind":3,"attributes":[{"key":"error.type","value":{"stringValue":"cancelled"}}],"#,
            r#""events":[{"timeUnixNano":"1","name":"abort"}],"status":{"code":2}},{"traceId":"#,
            r#""0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331","links":[{"traceId":"#,
            r#""5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174"}]}]}],"schemaUrl":"x"}]}"#
        );
        let record = record.as_bytes();
        let (fast, slow, spared) = indexed_both_ways(record);
        assert!(spared);
        assert_eq!(fast, slow);
        assert!(fast.contains("read 2 "), "{fast}");
        let mut spared_damaged = 0;
        let mut check = |text: &[u8]| {
            let (fast, slow, spared) = indexed_both_ways(text);
            assert_eq!(fast, slow, "{}", String::from_utf8_lossy(text));
            spared_damaged += usize::from(spared);
        };
        for text in
            crate::ingest::json_text::cursor::tests::damaged(record, b" \"\\{}[],:0a_-\x01\xff")
        {
            check(&text);
        }
        // Some damage leaves valid records (a changed id, a doubled digit).
        assert!(spared_damaged > 1000, "{spared_damaged}");
    }

    #[test]
    fn the_prefilter_surveys_a_span_as_a_full_read_does() {
        let spans = [
            // Nothing to find: read from its trace id alone.
            r#","name":"POST","attributes":[{"key":"http.request.method","value":{"stringValue":"POST"}}]}"#,
            r#","name":"turn","events":[{"timeUnixNano":"1","name":"exception","attributes":[{"key":"exception.type","value":{"stringValue":"asyncio.exceptions.CancelledError"}}]}]}"#,
            // An event name spelt with an escape.
            r#","events":[{"timeUnixNano":"1","name":"\u0061bort"}]}"#,
            // A key spelt with an escape.
            r#","\u0065vents":[{"timeUnixNano":"1","name":"abort"}]}"#,
            r#","links":[{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331"}]}"#,
            r#","attributes":[{"key":"gen_ai.conversation.id","value":{"stringValue":"conv-1"}}]}"#,
            // Conversation ids read from the text, and those that need the full survey: an
            // empty one, an escaped one, two keys, a key nested in a list value or an event,
            // a key's name as a value, two attribute lists, another value type.
            r#","name":"chat","attributes":[{"key":"gen_ai.operation.name","value":{"stringValue":"chat"}},{"key":"session.id","value":{"stringValue":"s-1"}},{"key":"n","value":{"intValue":"3"}}],"status":{}}"#,
            r#","attributes":[{"key":"gen_ai.conversation.id","value":{"stringValue":""}}]}"#,
            r#","attributes":[{"key":"gen_ai.conversation.id","value":{"stringValue":"c\"1"}}]}"#,
            r#","attributes":[{"key":"session.id","value":{"stringValue":""}},{"key":"gen_ai.conversation.id","value":{"stringValue":"c-2"}}]}"#,
            r#","attributes":[{"key":"a","value":{"kvlistValue":{"values":[{"key":"session.id","value":{"stringValue":"nested"}}]}}}]}"#,
            r#","attributes":[],"events":[{"name":"log","attributes":[{"key":"session.id","value":{"stringValue":"in-event"}}]}]}"#,
            r#","attributes":[{"key":"a","value":{"stringValue":"session.id"}}]}"#,
            r#","attributes":[{"key":"session.id","value":{"stringValue":"first"}}],"attributes":[]}"#,
            r#","attributes":[{"key":"session.id","value":{"intValue":"7"}}]}"#,
            r#","attributes":[{"key":"session.id","value":{"stringValue":"x","intValue":"7"}}]}"#,
            // Keys that are not the span's own attributes: in a field OTLP has not, in a value
            // of an unknown shape, inside a member name.
            r#","attributes":[],"extra":{"key":"session.id","value":{"stringValue":"v"}}}"#,
            r#","attributes":[{"key":"a","value":{"other":{"key":"session.id","value":{"stringValue":"v"}}}}]}"#,
            r#","attributes":[{"x\"key":"session.id","value":{"stringValue":"v"}}]}"#,
            r#","extra":[{"key":"session.id","value":{"stringValue":"v"}}],"attributes":[]}"#,
            r#","attributes" : [ {"n":1} , {"key":"session.id","value":{"stringValue":"spaced"}}]}"#,
            r#","status":{"code":2,"message":"AbortError: the user pressed Stop"}}"#,
            r#","attributes":[{"key":"rpc.grpc.status_code","value":{"intValue":"1"}}]}"#,
            // A second trace id overrules the first.
            r#","traceId":"0af7651916cd43dd8448eb211c80319c"}"#,
            // HTTP spans, from which an abort may be inferred: a request with no status (cut
            // off?), with one, a server's 499, a status only in an event, a list value or as
            // a value, an ASGI disconnect.
            r#","kind":3,"attributes":[{"key":"http.request.method","value":{"stringValue":"POST"}}]}"#,
            r#","kind":3,"attributes":[{"key":"url.full","value":{"stringValue":"http://x/"}},{"key":"http.response.status_code","value":{"intValue":"200"}}]}"#,
            r#","kind":"SPAN_KIND_SERVER","attributes":[{"key":"http.request.method","value":{"stringValue":"POST"}},{"key":"http.response.status_code","value":{"intValue":499}}]}"#,
            r#","kind":2,"attributes":[{"key":"http.method","value":{"stringValue":"GET"}},{"key":"http.status_code","value":{"intValue":"200"}}],"name":"GET /499"}"#,
            r#","kind":3,"attributes":[{"key":"http.request.method","value":{"stringValue":"POST"}}],"events":[{"name":"e","attributes":[{"key":"http.response.status_code","value":{"intValue":"200"}}]}]}"#,
            r#","kind":3,"attributes":[{"key":"http.request.method","value":{"stringValue":"POST"}},{"key":"m","value":{"kvlistValue":{"values":[{"key":"http.response.status_code","value":{"intValue":"200"}}]}}}]}"#,
            r#","kind":3,"attributes":[{"key":"http.request.method","value":{"stringValue":"POST"}},{"key":"note","value":{"stringValue":"http.response.status_code"}}]}"#,
            r#","kind":1,"attributes":[{"key":"asgi.event.type","value":{"stringValue":"http.disconnect"}}]}"#,
            r#","kind":1,"attributes":[{"key":"asgi.event.type","value":{"stringValue":"http.response.body"}}]}"#,
        ];
        for rest in spans {
            let text = format!("{TRACE}{rest}");
            let (indexed, full) = indexed_and_surveyed(&text);
            assert_eq!(indexed, full, "{text}");
        }
        // What may let an abort be inferred, from the text where it settles it.
        for (rest, may_abort) in [
            (
                r#","kind":3,"attributes":[{"key":"http.request.method","value":{"stringValue":"POST"}}]}"#,
                true,
            ),
            (
                r#","kind":3,"attributes":[{"key":"http.request.method","value":{"stringValue":"POST"}},{"key":"http.response.status_code","value":{"intValue":"200"}}]}"#,
                false,
            ),
            (
                r#","kind":2,"attributes":[{"key":"http.request.method","value":{"stringValue":"POST"}},{"key":"http.response.status_code","value":{"intValue":"499"}}]}"#,
                true,
            ),
            (
                r#","kind":3,"attributes":[{"key":"http.request.method","value":{"stringValue":"GET"}},{"key":"http.response.status_code","value":{"intValue":"499"}}]}"#,
                false,
            ),
            (
                r#","kind":1,"attributes":[{"key":"asgi.event.type","value":{"stringValue":"http.disconnect"}}]}"#,
                true,
            ),
        ] {
            let text = format!("{TRACE}{rest}");
            assert_eq!(indexed_and_surveyed(&text).0.may_abort, may_abort, "{text}");
        }
        // And spans that do not start with their trace id are surveyed in full.
        let late = r#"{"spanId":"eee19b7ec3c1b174","events":[{"timeUnixNano":"1","name":"cancel"}],"traceId":"5b8efff798038103d269b633813fc60c"}"#;
        let (indexed, full) = indexed_and_surveyed(late);
        assert!(indexed.may_abort);
        assert_eq!(indexed, full);
    }

    #[test]
    fn a_conversation_id_is_read_from_the_text_only_where_it_is_plain() {
        let read =
            |rest: &str| conversation_in_text(&format!("{TRACE}{rest}"), &["session.id".into()]);
        let plain = r#","attributes":[{"key":"session.id","value":{"stringValue":"s-1"}}]}"#;
        assert_eq!(read(plain), Some(Some(hash_text("s-1"))));
        let empty = r#","attributes":[{"key":"session.id","value":{"stringValue":""}}]}"#;
        assert_eq!(read(empty), Some(None));
        let later = r#","name":"a]}","attributes" :[{"key":"n","value":{"intValue":"1"}},{"key":"session.id","value":{"stringValue":"s-2"}}]}"#;
        assert_eq!(read(later), Some(Some(hash_text("s-2"))));
        for other in [
            r#","attributes":[{"key":"session.id","value":{"stringValue":"a\u0062"}}]}"#,
            r#","attributes":[{"key":"a","value":{"kvlistValue":{"values":[{"key":"session.id","value":{"stringValue":"s"}}]}}}]}"#,
            r#","attributes":[{"key":"a","value":{"stringValue":"session.id"}}]}"#,
            r#","attributes":[{"key":"session.id","value":{"stringValue":"s"}}],"attributes":[]}"#,
            r#","attributes":[{"key":"session.id","value":{"stringValue":"s","intValue":"1"}}]}"#,
            r#","attributes":[{"key" : "session.id","value":{"stringValue":"s"}}]}"#,
            r#","attributes":[],"extra":{"key":"session.id","value":{"stringValue":"s"}}}"#,
            r#","attributes":[{"key":"a","value":{"o":{"key":"session.id","value":{"stringValue":"s"}}}}]}"#,
            r#","attributes":[{"x\"key":"session.id","value":{"stringValue":"s"}}]}"#,
            r#","name":"attributes","extra":[{"key":"session.id","value":{"stringValue":"s"}}]}"#,
        ] {
            assert_eq!(read(other), None, "{other}");
        }
    }

    #[test]
    fn the_prefilter_names_the_fields_to_read() {
        let survey = SurveyRules::new(&crate::rules::Rules::default());
        let fields = |text: &str| survey.fields_to_read(text.as_bytes());
        assert_eq!(fields(r#","name":"x","attributes":[]}"#), Fields::NONE);
        assert_eq!(
            fields(r#","events":[{"name":"exception"}],"links":[]}"#).0,
            Fields::EVENTS.0 | Fields::LINKS.0
        );
        // The rules' event names match in any case, and with space around the colon.
        assert_eq!(
            fields(r#","events":[{"name" : "User.Abort"}]}"#),
            Fields::EVENTS
        );
        // Events none of whose names can be an abort need not be read.
        assert_eq!(
            fields(r#","events":[{"name":"gen_ai.content.prompt"}],"links":[]}"#),
            Fields::LINKS
        );
        assert_eq!(
            fields(r#","attributes":[{"key":"session.id"}],"status":{"message":""}}"#).0,
            Fields::CONVERSATION.0 | Fields::STATUS.0
        );
        assert_eq!(
            fields(r#","attributes":[{"key":"error.type"}]}"#),
            Fields::ATTRIBUTES
        );
        // A key spelt with `\u00XX` escapes may be any key, but `\/` cannot spell one of the
        // plain keys the default rules want.
        assert_eq!(fields(r#","na\u006de":"x"}"#), Fields::ALL);
        assert_eq!(fields(r#","na\/me":"x"}"#), Fields::NONE);
        assert_eq!(fields(r#","name":"a\"b\\c\n"}"#), Fields::NONE);
    }

    #[test]
    fn rules_naming_other_characters_make_every_escape_suspect() {
        let mut rules = crate::rules::Rules::default();
        rules.conversation.id_attributes.push("app/thread".into());
        let survey = SurveyRules::new(&rules);
        let fields = |text: &str| survey.fields_to_read(text.as_bytes());
        assert_eq!(
            fields(r#","attributes":[{"key":"app\/thread"}]}"#),
            Fields::ALL
        );
        let mut rules = crate::rules::Rules::default();
        rules.abort.event_names.push("user stop".into());
        let survey = SurveyRules::new(&rules);
        let text = r#","events":[{"name":"user\u0020stop"}]}"#;
        assert_eq!(survey.fields_to_read(text.as_bytes()), Fields::ALL);
        let text = r#","events":[{"name":"user\tstop"}]}"#;
        assert_eq!(survey.fields_to_read(text.as_bytes()), Fields::ALL);
    }
}

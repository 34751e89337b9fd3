//! The first pass over a large export: every record located and its spans surveyed without
//! being built, accepted or refused as a whole read would, with the same diagnostics. A record
//! in the shape exporters write, which `check` shows a whole read would build without a word,
//! is checked and walked without serde (`index_record`); any other is read as a whole read
//! reads it, for its diagnostics and counts, and then placed (`indexed_as_whole`).

use std::sync::Arc;

use rustc_hash::FxHashMap;

use serde::Deserializer as _;

use super::super::Parsed;
use super::super::json_text::cursor::{Cursor, Sightings, each_element, each_member};
use super::check::{SpanNotes, clean_resource, clean_span};
use super::convert::{Converter, Position};
use super::read_whole_record;
use super::survey::{
    Fields, Prefiltered, SurveyRules, SurveyVisitor, SurveyedSpan, conversation_noted,
};
use super::wire::{RawEnvelope, WireResource, without_position};
use crate::model::ids::{decode_hex_digits, hash_text};
use crate::model::{Resource, TraceId};

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
    /// Where a span's text, borrowed from the block, is in the file: its offset and length.
    fn place(&self, raw: &str) -> Result<(u64, u32), String> {
        let within = (raw.as_ptr() as usize)
            .checked_sub(self.block_address)
            .ok_or("a span outside the block being read")?;
        let len = u32::try_from(raw.len()).map_err(|_| "a span of 4 GiB or more")?;
        Ok((self.block_offset + within as u64, len))
    }

    /// Places and surveys a span; `leading` is what `leading_trace_id` found in its text,
    /// `noted` what `check::clean_span` noted of it, with the text it noted it in, and
    /// `sighted` what the cursor it checked the span with saw of the survey's lookout.
    fn index(
        &self,
        raw: &str,
        leading: Option<(TraceId, usize)>,
        noted: Option<(&str, &SpanNotes<'_>)>,
        sighted: Option<Sightings>,
    ) -> Result<IndexedSpan, String> {
        let (offset, len) = self.place(raw)?;
        let bytes = raw.as_bytes();
        let found = match (leading, sighted) {
            (Some((_, rest)), Some(sightings)) if self.survey.lookout.is_some() => {
                self.survey.prefilter_sighted(&bytes[rest..], sightings)
            }
            (Some((_, rest)), _) => self.survey.prefilter(&bytes[rest..]),
            (None, _) => Prefiltered {
                fields: Fields::ALL,
                keys: Fields::ALL,
                one_conversation_key: false,
                may_abort: false,
            },
        };
        let fields = found.fields;
        // A span that only names its conversation (an agent's or a model call's, often, with
        // events that cannot be an abort, such as its prompts) is read from its text when it
        // is written as exporters write it.
        let conversation = match (leading, noted) {
            (Some(_), Some((text, notes)))
                if found.fields == Fields::CONVERSATION && found.one_conversation_key =>
            {
                conversation_noted(text, notes)
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
            // A span whose only keys of interest are its links' (a consumer's, linked to the
            // producer's trace): its links as the checks noted them.
            Some((trace_id, _))
                if sighted.is_some_and(|s| self.survey.sees_only_links(s)) && noted.is_some() =>
            {
                let survey = SurveyedSpan {
                    trace_id: Some(trace_id),
                    links_to: noted
                        .map(|(_, notes)| notes.links.clone())
                        .unwrap_or_default(),
                    ..SurveyedSpan::default()
                };
                #[cfg(debug_assertions)]
                assert_eq!(
                    Ok(&survey),
                    serde_json::Deserializer::from_str(raw)
                        .deserialize_map(SurveyVisitor {
                            rules: &self.survey.rules,
                            inferred_keys: &self.survey.inferred_keys,
                            fields,
                        })
                        .map_err(|e| without_position(&e))
                        .as_ref(),
                    "{raw}"
                );
                survey
            }
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
            offset,
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
/// is checked and skipped by the JSON cursor, each span checked (`check::clean_span`), located
/// and surveyed on the way. `None` for anything else (another shape, a duplicate, escaped or
/// unknown key, text that is not JSON, a span a whole read would say something about): the
/// record is then read as a whole read reads it, which handles every shape and says what is
/// wrong, so both reads give the same result. The resources are checked by the caller.
pub(super) fn index_record<'r>(
    index: &IndexFilter,
    record: &'r str,
    spans: &mut Vec<IndexedSpan>,
) -> Option<Vec<IndexedGroup<'r>>> {
    let mut cursor = Cursor::looking_out(record.as_bytes(), index.survey.lookout.as_ref());
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
                                        let start = cursor.position();
                                        let leading = leading_trace_id(&record.as_bytes()[start..]);
                                        let mut notes =
                                            SpanNotes::new(&index.survey.conversation_keys);
                                        clean_span(cursor, record, leading.is_some(), &mut notes)?;
                                        let text = &record[start..cursor.offset()];
                                        let sighted = Some(cursor.sightings());
                                        spans.push(
                                            index
                                                .index(
                                                    text,
                                                    leading,
                                                    Some((record, &notes)),
                                                    sighted,
                                                )
                                                .ok()?,
                                        );
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
                // Read as a whole read does: a second one (an error there), another spelling,
                // a resource that is not an object, a key OTLP/JSON does not define.
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
    // Any other top-level key is left to the whole read.
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
    // The hex digits exporters write, as `decode_id` reads them (not all zeros) but without
    // checking them as UTF-8 first; anything else (base64 padded to 32 characters, which it
    // also reads) is left to the span's full check.
    let id = decode_hex_digits::<16>(&hex[..32]).filter(|id| *id != [0; 16])?;
    Some((TraceId(id), HEAD.len() + 33))
}

/// In the first read of a large export, reads a record as `index_record` can, when a whole read
/// would read it without a diagnostic: whether it could (if not, nothing was added to `out`).
pub(super) fn indexed_without_serde(
    index: &IndexFilter,
    input: &Arc<str>,
    record: &[u8],
    line_no: u64,
    out: &mut Parsed,
) -> bool {
    // Every byte of a large export is checked here: the SIMD check is a few times faster
    // than the standard library's on text that is mostly ASCII.
    let Ok(text) = simdutf8::basic::from_utf8(record) else {
        return false;
    };
    INDEXED.with_borrow_mut(|spans| {
        spans.clear();
        let Some(groups) = index_record(index, text, spans) else {
            return false;
        };
        // Every resource must convert without a diagnostic, before anything is kept.
        let mut resources = Vec::with_capacity(groups.len());
        for group in &groups {
            match out.index.resource(group.resource) {
                Some((_, resource, true)) => resources.push(resource),
                Some((_, _, false)) => return false,
                None => match clean_resource_converted(input, group.resource) {
                    Some(resource) => resources.push(resource),
                    None => return false,
                },
            }
        }
        let mut spans = spans.drain(..);
        for (group, resource) in groups.iter().zip(resources) {
            let id = match out.index.resource(group.resource) {
                Some((id, _, _)) => id,
                None => out.index.add_resource(group.resource, &resource, true),
            };
            let these = spans.by_ref().take(group.spans.len());
            out.spans_read += group.spans.len() as u64;
            indexed_group(out, &index.survey, id, &resource, line_no, these);
        }
        true
    })
}

thread_local! {
    /// The resources `clean_resource_converted` has read on this thread, by their text: an
    /// export has few, and each piece of each block of the first pass (its own `Parsed`) meets
    /// them again.
    static RESOURCES: std::cell::RefCell<FxHashMap<Box<str>, Option<Arc<Resource>>>> =
        std::cell::RefCell::new(FxHashMap::default());
}

/// A resource read from its text, if the checks show that it converts without a diagnostic
/// and it does.
fn clean_resource_converted(input: &Arc<str>, text: &str) -> Option<Arc<Resource>> {
    if let Some(known) = RESOURCES.with_borrow(|known| known.get(text).cloned()) {
        return known;
    }
    let mut cursor = Cursor::new(text.as_bytes());
    let clean = text.is_empty() || (clean_resource(&mut cursor, text).is_some() && cursor.at_end());
    let resource = match clean.then(|| convert_resource(input, text)).flatten() {
        Some((resource, true)) => Some(resource),
        _ => None,
    };
    RESOURCES.with_borrow_mut(|known| {
        // A bound on what an export of ever new resources holds.
        if known.len() >= 1024 {
            known.clear();
        }
        known.insert(text.into(), resource.clone());
    });
    resource
}

/// A resource converted from its text, and whether it converted without a diagnostic (those
/// it had are a whole read's to give); `None` if serde refuses it.
fn convert_resource(input: &Arc<str>, text: &str) -> Option<(Arc<Resource>, bool)> {
    let wire = match text {
        "" => None,
        text => Some(serde_json::from_str::<WireResource<'_>>(text).ok()?),
    };
    let mut scratch = Parsed::default();
    let mut converter = Converter {
        input,
        position: Position::Line(0),
        out: &mut scratch,
    };
    let resource = converter.resource(wire);
    Some((resource, scratch.diagnostics.is_empty()))
}

/// In the first read of a large export, reads a record as a whole read reads it, for its
/// diagnostics and counts (word for word a whole read's), then places the spans it built, with
/// the survey a whole read's spans get (`SurveyRules::survey_built`). A record it refuses
/// leaves no span.
pub(super) fn indexed_as_whole(
    index: &IndexFilter,
    input: &Arc<str>,
    record: &[u8],
    line_no: u64,
    may_be_cut: bool,
    out: &mut Parsed,
) {
    let mut whole = Parsed::default();
    let mut built = Vec::new();
    let read = read_whole_record(input, record, line_no, may_be_cut, &mut whole, &mut |b| {
        built.push(b)
    });
    out.diagnostics.append(&mut whole.diagnostics);
    out.spans_read += whole.spans_read;
    out.spans_unjoinable += whole.spans_unjoinable;
    if !read {
        return;
    }
    // The spans' texts, in the order they were built: a whole read accepted the record, and
    // its text is UTF-8, so serde reads it again with its spans and resources as text.
    let Ok(envelope) = serde_json::from_slice::<RawEnvelope<'_>>(record) else {
        debug_assert!(false, "a record a whole read accepts reads as text");
        return;
    };
    let mut spans = whole.spans.iter();
    let mut built = built.into_iter();
    for group in envelope.into_resource_spans() {
        let text = group.resource.map_or("", |r| r.get());
        let (id, resource) = match out.index.resource(text) {
            Some((id, resource, _)) => (id, resource),
            None => {
                let (resource, clean) = convert_resource(input, text).unwrap_or_else(|| {
                    debug_assert!(false, "a resource a whole read accepts converts");
                    (Arc::new(Resource::default()), false)
                });
                (out.index.add_resource(text, &resource, clean), resource)
            }
        };
        let mut placed = Vec::new();
        for raw in group.spans() {
            if built.next() != Some(true) {
                continue;
            }
            let span = spans.next().expect("a span for each built");
            // A span of 4 GiB or more cannot be placed: a whole read refuses its record first
            // (see `read_record`).
            let Ok((offset, len)) = index.place(raw.get()) else {
                continue;
            };
            placed.push(IndexedSpan {
                survey: index.survey.survey_built(span),
                offset,
                len,
            });
        }
        indexed_group(
            out,
            &index.survey,
            id,
            &resource,
            line_no,
            placed.into_iter(),
        );
    }
}

/// The first read of a large export: the spans of a `ResourceSpans` on `line`, with resource
/// `resource_id`, are placed and surveyed. They were counted, and their diagnostics given, by
/// the caller.
fn indexed_group(
    out: &mut Parsed,
    survey: &SurveyRules,
    resource_id: u32,
    resource: &Resource,
    line: u64,
    spans: impl Iterator<Item = IndexedSpan>,
) {
    out.index.begin_group(resource_id, line);
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
        if span.conversation.is_none() {
            span.conversation = resource_conversation;
        }
        span.may_abort |= survey.names_aborted_conversation(&span);
        if let Some(trace) = span.trace_id {
            out.index.add_span(offset, len, trace);
        }
        out.survey.add(span);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        // What the checks note of a span they pass, as the first pass has them do.
        let mut notes = SpanNotes::new(&filter.survey.conversation_keys);
        let leading = leading_trace_id(text.as_bytes());
        let mut cursor = Cursor::looking_out(text.as_bytes(), filter.survey.lookout.as_ref());
        let clean = clean_span(&mut cursor, text, leading.is_some(), &mut notes);
        let sighted = clean.map(|()| cursor.sightings());
        let indexed = filter
            .index(text, leading, clean.map(|()| (text, &notes)), sighted)
            .unwrap();
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
    /// A span's times, without which the checks would not pass it.
    const TIMES: &str = r#","startTimeUnixNano":"1","endTimeUnixNano":"2""#;

    /// What a read left (the traces that may abort apart), and the traces that may abort.
    type Read = (String, Vec<TraceId>);

    /// A record read by the first read of a large export as it is read (without serde where
    /// it can be), and as a whole read reads it: what each leaves (the traces that may abort
    /// apart), the traces each found may abort, and whether serde was spared. The survey of a
    /// span read from its text errs on the side of keeping, so the first may hold more.
    fn indexed_both_ways(record: &[u8]) -> (Read, Read, bool) {
        let rules = crate::rules::Rules::default();
        let index = IndexFilter {
            survey: Arc::new(SurveyRules::new(&rules)),
            block_address: record.as_ptr() as usize,
            block_offset: 0,
        };
        let input: Arc<str> = Arc::from("export.jsonl");
        let describe = |parsed: Parsed| {
            let survey = &parsed.survey;
            let mut may_abort: Vec<_> = survey.may_abort.iter().copied().collect();
            may_abort.sort_by_key(|t| t.0);
            let mut conversations: Vec<_> = survey.conversations.iter().collect();
            conversations.sort();
            let text = format!(
                "read {} unjoinable {}\n{}\nlinks {:?}\nconversations {conversations:?}\n{:?}",
                parsed.spans_read,
                parsed.spans_unjoinable,
                parsed.index.describe(),
                survey.links,
                parsed.diagnostics
            );
            (text, may_abort)
        };
        let record = record.trim_ascii_end();
        let as_whole = |out: &mut Parsed| indexed_as_whole(&index, &input, record, 7, false, out);
        let mut fast = Parsed::default();
        let spared = indexed_without_serde(&index, &input, record, 7, &mut fast);
        if !spared {
            as_whole(&mut fast);
        }
        let mut slow = Parsed::default();
        as_whole(&mut slow);
        (describe(fast), describe(slow), spared)
    }

    /// Asserts that both reads of `indexed_both_ways` agree.
    fn assert_same(fast: &Read, slow: &Read, what: &str) {
        assert_eq!(fast.0, slow.0, "{what}");
        assert!(
            slow.1.iter().all(|t| fast.1.contains(t)),
            "{what}: {:?} {:?}",
            fast.1,
            slow.1
        );
    }

    #[test]
    fn records_are_indexed_without_serde_as_with_it() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/scenarios/traces");
        let mut records = 0;
        for file in ["agent.jsonl", "vendor.jsonl", "worker.jsonl"] {
            let text = std::fs::read(fixtures.join(file)).unwrap();
            for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let (fast, slow, spared) = indexed_both_ways(line);
                assert_same(&fast, &slow, file);
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
                    assert_same(&fast, &slow, &path.display().to_string());
                }
            }
        }
    }

    /// The leading trace id is taken from its hex digits alone; any other spelling of the same
    /// length (base64 padded to 32 characters, which `decode_id` reads too), all zeros, or
    /// bytes that are not text, is left to the span's full check, which reads it as serde does.
    #[test]
    fn a_leading_trace_id_other_than_hex_digits_is_read_as_serde_reads_it() {
        let span = |trace: &str| {
            format!(
                r#"{{"traceId":"{trace}","spanId":"5b8efff798038103","name":"call","kind":3,"startTimeUnixNano":"1","endTimeUnixNano":"2"}}"#
            )
        };
        let record = |trace: &str| {
            format!(
                r#"{{"resourceSpans":[{{"resource":{{"attributes":[]}},"scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
                span(trace)
            )
        };
        let hex = "5B8EFFF798038103D269B633813FC60C";
        let padded = "W47/95gDgQPSabYzgT/GDA==========";
        assert_eq!(
            leading_trace_id(span(hex).as_bytes()).map(|(id, _)| id),
            Some(TraceId(crate::model::ids::decode_id::<16>(hex).unwrap()))
        );
        for trace in [
            padded,
            "00000000000000000000000000000000",
            "5b8efff798038103d269b633813fc6é",
        ] {
            assert_eq!(leading_trace_id(span(trace).as_bytes()), None, "{trace}");
        }
        for trace in [
            hex,
            padded,
            "00000000000000000000000000000000",
            "5b8efff798038103d269b633813fc6é",
        ] {
            let (fast, slow, _) = indexed_both_ways(record(trace).as_bytes());
            assert_same(&fast, &slow, trace);
        }
        // The padded id is a usable one, read to the same trace as its hex spelling.
        let (padded_read, _, _) = indexed_both_ways(record(padded).as_bytes());
        let (hex_read, _, _) = indexed_both_ways(record(hex).as_bytes());
        assert_eq!(padded_read.0, hex_read.0);
    }

    /// A resource that is an object but not a resource refuses its record, as a whole read
    /// refuses it, in whichever group it comes; one that converts with a diagnostic gives it
    /// on every record that has it, as a whole read does.
    #[test]
    fn a_refused_resource_refuses_its_record_as_a_whole_read_does() {
        let group = |resource: &str, trace: &str| {
            format!(
                r#"{{"resource":{resource},"scopeSpans":[{{"spans":[{{"traceId":"{trace}","spanId":"eee19b7ec3c1b174","startTimeUnixNano":"1","endTimeUnixNano":"2"}},{{"traceId":"{trace}","spanId":"b7ad6b7169203331","startTimeUnixNano":"1","endTimeUnixNano":"2"}}]}}]}}"#
            )
        };
        let (a, b) = (
            "5b8efff798038103d269b633813fc60c",
            "0af7651916cd43dd8448eb211c80319c",
        );
        for (bad, refused) in [
            (r#"{"attributes":5}"#, true),
            (r#"{"attributes":[{"key":5}]}"#, true),
            (r#"{"attributes":[],"attributes":[]}"#, true),
            (r#"{"attributes":[{"key":"\uD800"}]}"#, true),
            (
                r#"{"attributes":[{"key":"n","value":{"intValue":"x"}}]}"#,
                false,
            ),
        ] {
            for groups in [
                [group(bad, a), group("{}", b), group("{}", a)],
                [group("{}", a), group(bad, b), group("{}", b)],
            ] {
                let record = format!(r#"{{"resourceSpans":[{}]}}"#, groups.join(","));
                let (fast, slow, spared) = indexed_both_ways(record.as_bytes());
                assert!(!spared, "{record}");
                assert_same(&fast, &slow, &record);
                let read = if refused { "read 0 " } else { "read 6 " };
                assert!(fast.0.contains(read), "{}", fast.0);
                assert_eq!(fast.0.matches("Diagnostic {").count(), 1, "{}", fast.0);
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
            r#""startTimeUnixNano":"1","endTimeUnixNano":"2","#,
            r#""kind":3,"attributes":[{"key":"error.type","value":{"stringValue":"cancelled"}}],"#,
            r#""events":[{"timeUnixNano":"1","name":"abort"}],"status":{"code":2}},{"traceId":"#,
            r#""0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331","#,
            r#""startTimeUnixNano":"1","endTimeUnixNano":"2","links":[{"traceId":"#,
            r#""5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174"}]}]}],"schemaUrl":"x"}]}"#
        );
        // And one with every kind of value and field the first pass checks.
        let rich = concat!(
            r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":"#,
            r#"{"stringValue":"api"}},{"key":"n","value":{"intValue":7}}],"dropped":0},"#,
            r#""scopeSpans":[{"scope":{"name":"s"},"spans":[{"traceId":"#,
            r#""5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","#,
            r#""parentSpanId":"b7ad6b7169203331","flags":257,"name":"a","kind":"SPAN_KIND_SERVER","#,
            r#""startTimeUnixNano":1,"endTimeUnixNano":"2","attributes":[{"key":"d","#,
            r#""value":{"doubleValue":-1.5e3}},{"key":"b","value":{"boolValue":false}},"#,
            r#"{"key":"a","value":{"arrayValue":{"values":[{"stringValue":"x"},{"intValue":"-9"}]}}},"#,
            r#"{"key":"k","value":{"kvlistValue":{"values":[{"key":"i","value":{"intValue":"1"}}]}}},"#,
            r#"{"key":"e","value":{}},{"key":"s","value":{"stringValue":"café"}}],"#,
            r#""events":[{"timeUnixNano":"3","name":"abort","attributes":[]}],"links":[{"traceId":"#,
            r#""0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331","traceState":""}],"#,
            r#""status":{"message":"m","code":"STATUS_CODE_ERROR"}}]}],"schemaUrl":"x"}]}"#
        );
        for (record, spans) in [(record, 2), (rich, 1)] {
            let record = record.as_bytes();
            let (fast, slow, spared) = indexed_both_ways(record);
            assert!(spared, "{}", String::from_utf8_lossy(record));
            assert_same(&fast, &slow, "the record");
            assert!(fast.0.contains(&format!("read {spans} ")), "{}", fast.0);
        }
        let record = record.as_bytes();
        let mut spared_damaged = 0;
        let mut check = |text: &[u8]| {
            let (fast, slow, spared) = indexed_both_ways(text);
            assert_same(&fast, &slow, &String::from_utf8_lossy(text));
            spared_damaged += usize::from(spared);
        };
        let replacements = b" \"\\{}[],:0a_-\x01\xff";
        for text in crate::ingest::json_text::cursor::tests::damaged(record, replacements).chain(
            crate::ingest::json_text::cursor::tests::damaged(rich.as_bytes(), b"\"\\}0a"),
        ) {
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
            // A conversation id beside events none of which may be an abort, which are not
            // read; with another id in an event, or an event that may be one.
            r#","attributes":[{"key":"gen_ai.conversation.id","value":{"stringValue":"c-1"}}],"events":[{"name":"gen_ai.content.prompt","attributes":[{"key":"gen_ai.prompt","value":{"stringValue":"hi"}}]}]}"#,
            r#","attributes":[{"key":"gen_ai.conversation.id","value":{"stringValue":"c-1"}}],"events":[{"name":"log","attributes":[{"key":"session.id","value":{"stringValue":"c-2"}}]}]}"#,
            r#","attributes":[{"key":"gen_ai.conversation.id","value":{"stringValue":"c-1"}}],"events":[{"name":"exception","attributes":[{"key":"exception.type","value":{"stringValue":"CancelledError"}}]}]}"#,
            r#","events":[{"name":"log","attributes":[{"key":"session.id","value":{"stringValue":"c-2"}}]}],"attributes":[]}"#,
            // JSON text in a value, its escapes escaped (no escape of a key's), and an escaped
            // backslash before an escape that is one.
            r#","attributes":[{"key":"session.id","value":{"stringValue":"s-1"}},{"key":"r","value":{"stringValue":"{\"t\":\"\\u00fcn\\u0065vents\"}"}}]}"#,
            r#","events":[{"name":"\\u0061bort"}],"attributes":[{"key":"session.id","value":{"stringValue":"s-1"}}]}"#,
            r#","events":[{"name":"\\\u0061bort"}],"attributes":[{"key":"session.id","value":{"stringValue":"s-1"}}]}"#,
            r#","events":[{"timeUnixNano":"1","name":"\\abort"}]}"#,
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
            // A status among other digits, and one of its own, spelt as text.
            r#","kind":2,"attributes":[{"key":"http.request.method","value":{"stringValue":"POST"}},{"key":"http.response.status_code","value":{"intValue":"200"}},{"key":"n","value":{"intValue":"14990"}}]}"#,
            r#","kind":2,"attributes":[{"key":"http.request.method","value":{"stringValue":"POST"}},{"key":"http.response.status_code","value":{"stringValue":" +0499"}}]}"#,
            // Links, alone (read from what the checks noted) and with other keys of interest.
            r#","kind":5,"links":[{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331"},{"spanId":"b7ad6b7169203332","trace_id":"1af7651916cd43dd8448eb211c80319c","attributes":[]}]}"#,
            r#","kind":5,"links":[],"attributes":[{"key":"traceId","value":{"stringValue":"traceId"}}]}"#,
            r#","kind":5,"links":[{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331"}],"status":{"message":"cancelled","code":2}}"#,
            r#","kind":5,"links":[{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331"}],"attributes":[{"key":"session.id","value":{"stringValue":"s-1"}}]}"#,
        ];
        for rest in spans {
            let text = format!("{TRACE}{TIMES}{rest}");
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
            let text = format!("{TRACE}{TIMES}{rest}");
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
        let ids = crate::ingest::otlp_json::check::KeyFilter::new(["session.id"]);
        let read = |rest: &str| {
            let text = format!("{TRACE}{TIMES}{rest}");
            let mut notes = SpanNotes::new(&ids);
            clean_span(&mut Cursor::new(text.as_bytes()), &text, true, &mut notes)?;
            conversation_noted(&text, &notes)
        };
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
        // An escaped backslash is no escape; one that follows it may be.
        assert_eq!(fields(r#","name":"a\\u00fc"}"#), Fields::NONE);
        assert_eq!(fields(r#","name":"a\\\\u00fc"}"#), Fields::NONE);
        assert_eq!(fields(r#","name":"a\\\u00fc"}"#), Fields::ALL);
        assert_eq!(fields(r#","\u0065vents":[]}"#), Fields::ALL);
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

//! The survey of a span in the first pass over a large export: its trace, whether it may carry
//! an abort signal (by the rules' predicates, on the wire text), where its links point and the
//! conversation it names; with a prefilter that finds most spans hold none of that and spares
//! reading them.

use std::borrow::Cow;
use std::fmt;

use rustc_hash::FxHashSet;

use serde::de::{self, IgnoredAny, Visitor};

use super::super::json_text::cursor::{Lookout, Sightings};
use super::check::{KeyFilter, SpanNotes};
use super::wire::{
    FILTERED_EVENTS, Flexible, KIND_NAMES, RawStr, STATUS_NAMES, WireKeyValue, WireLink,
    WireStatus, some_attributes, wire_text,
};
use crate::model::SpanKind;
use crate::model::TraceId;
use crate::model::ids::{decode_id, hash_text};
use crate::model::semconv::{
    ERROR_TYPE, EXCEPTION_MESSAGE, EXCEPTION_TYPE, HTTP_REQUEST_METHOD, HTTP_RESPONSE_STATUS_CODE,
    MCP_METHOD_NAME, RPC_STATUS_CODE, URL_FULL,
};
use crate::rules::abort::{self, ABORT_ATTRIBUTES, InferenceHints};

/// The rules as a survey applies them, with a prefilter that spares it reading most spans.
pub(crate) struct SurveyRules {
    pub(super) rules: crate::rules::Rules,
    /// Finds the keys without which a span carries nothing a survey looks for: the start of
    /// each (see `Family`).
    pub(super) prefilter: Prefilter,
    /// For each pattern of the prefilter, the needles that start with it.
    families: Vec<Vec<Needle>>,
    /// The needles, one by key, as the prefilter finds them (for the tests that hold the
    /// families to them).
    #[cfg(test)]
    needles: Vec<(String, Fields)>,
    /// The needles as the first pass's cursor looks out for them while it checks a span,
    /// which spares the search (`prefilter_sighted`): `None` when it cannot (see
    /// `sought_strings`).
    pub(super) lookout: Option<Lookout>,
    /// The fields of each string of the lookout, which of them name a conversation, and
    /// which are a link's keys (`links`, a trace id's).
    sought_fields: Vec<Fields>,
    sought_conversation: u64,
    sought_links: u64,
    /// The keys that name a conversation, for the first pass's checks to note.
    pub(super) conversation_keys: KeyFilter,
    /// `"name"`, for `names_an_abort_event`.
    name_key: memchr::memmem::Finder<'static>,
    /// `kvlistValue`, for `infer_from_text`.
    kvlist: memchr::memmem::Finder<'static>,
    /// The event names that are an abort (`None`: events are always read).
    pub(super) event_names: Option<Vec<String>>,
    /// The attributes a span of the agent's server or an outbound request may infer an abort
    /// from (`[abort.inferred]`): the disconnect attributes, and the HTTP method, URL and
    /// status when a status or a cut-off request can infer one.
    pub(super) inferred_keys: Vec<String>,
    /// The server statuses that infer an abort, as they are written.
    pub(super) status_texts: Vec<String>,
    /// Hashes of the conversations an abort log names: their turns matter however their
    /// spans look.
    pub(super) aborted_conversations: FxHashSet<u64>,
}

pub(super) enum Prefilter {
    Packed(aho_corasick::packed::Searcher),
    Automaton(aho_corasick::AhoCorasick),
    /// Every span is surveyed in full.
    None,
}

impl SurveyRules {
    pub(crate) fn new(rules: &crate::rules::Rules) -> SurveyRules {
        // The keys under which a survey looks (see `SurveyVisitor`): events and a status
        // message may name an abort however the rules spell it, and attributes are wanted by
        // their exact keys. A second trace id sends the span to the full survey.
        let mut keys: Vec<(&str, Fields)> = vec![
            ("traceId", Fields::ALL),
            ("trace_id", Fields::ALL),
            ("events", Fields::EVENTS),
            ("links", Fields::LINKS),
            ("message", Fields::STATUS),
        ];
        keys.extend(
            ABORT_ATTRIBUTES
                .iter()
                .map(|key| (*key, Fields::ATTRIBUTES)),
        );
        keys.extend(
            rules
                .conversation
                .id_attributes
                .iter()
                .map(|key| (key.as_str(), Fields::CONVERSATION)),
        );
        let inferred = &rules.abort.inferred;
        let mut inferred_keys = inferred.disconnect_attributes.clone();
        keys.extend(
            inferred
                .disconnect_attributes
                .iter()
                .map(|key| (key.as_str(), Fields::DISCONNECT)),
        );
        if !inferred.server_status_codes.is_empty() || inferred.cancelled_requests {
            for list in [&HTTP_REQUEST_METHOD, &URL_FULL, &HTTP_RESPONSE_STATUS_CODE] {
                inferred_keys.extend(list.iter().map(|key| (*key).to_owned()));
            }
            keys.extend(
                HTTP_REQUEST_METHOD
                    .iter()
                    .chain(&URL_FULL)
                    .map(|key| (*key, Fields::HTTP)),
            );
        }
        let mut needles: Vec<(String, Fields)> = keys
            .iter()
            .map(|(key, fields)| (format!("\"{key}\""), *fields))
            .collect();
        // A status is looked for as exporters write an attribute's key, so that the key's name
        // as some value does not pass for it (`infer_from_text`); a key written otherwise is
        // not found, which only makes the span a candidate.
        if inferred.cancelled_requests || !inferred.server_status_codes.is_empty() {
            needles.extend(
                HTTP_RESPONSE_STATUS_CODE
                    .iter()
                    .map(|key| (format!("\"key\":\"{key}\""), Fields::HTTP_STATUS)),
            );
        }
        // A key or an event name spelt with escapes sends the span to the full survey
        // (`names_an_abort_event` reads names raw). While every key and rule name is plain
        // ASCII, the only escape that can spell one of their characters is `\u00XX`: any other
        // decodes to a character none of them has. That needle is four bytes long, which
        // leaves Teddy its widest fingerprints; `\u` would halve them and send every `"s…` and
        // `"t…` of a span to verification (a tenth slower first pass).
        let plain = |text: &str| {
            text.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        };
        let all_plain = keys.iter().all(|(key, _)| plain(key))
            && rules.abort.event_names.iter().all(|name| plain(name));
        let escape = if all_plain { "\\u00" } else { "\\" };
        needles.push((escape.to_owned(), Fields::ALL));
        let (patterns, families) = families(&needles);
        // Teddy, the SIMD searcher for a few short needles, runs at several GB/s here; the
        // automaton it falls back to where it cannot be built, at a tenth of that.
        let prefilter = match aho_corasick::packed::Config::new()
            .builder()
            .extend(&patterns)
            .build()
        {
            Some(packed) => Prefilter::Packed(packed),
            None => match aho_corasick::AhoCorasick::new(&patterns) {
                Ok(automaton) => Prefilter::Automaton(automaton),
                Err(_) => Prefilter::None,
            },
        };
        let lookout = (all_plain && !matches!(prefilter, Prefilter::None))
            .then(|| sought_strings(&needles[..needles.len() - 1]))
            .flatten()
            .and_then(Lookout::new);
        let sought_fields: Vec<Fields> = needles.iter().map(|(_, fields)| *fields).collect();
        let sought_conversation = sought_fields
            .iter()
            .take(64)
            .enumerate()
            .filter(|(_, fields)| **fields == Fields::CONVERSATION)
            .fold(0, |bits, (i, _)| bits | 1 << i);
        let sought_links = needles
            .iter()
            .take(64)
            .enumerate()
            .filter(|(_, (text, _))| {
                ["\"links\"", "\"traceId\"", "\"trace_id\""].contains(&text.as_str())
            })
            .fold(0, |bits, (i, _)| bits | 1 << i);
        // An event can only be an abort by its name: one the rules name (in any case), or
        // `exception`. Most spans with events are model calls logging their prompts, so this
        // second look spares them the full survey. A rule naming the empty string matches an
        // event with no name, which this cannot see, so then every event is read.
        let event_names = (!rules.abort.event_names.iter().any(String::is_empty))
            .then(|| rules.abort.event_names.clone());
        let status_texts = inferred
            .server_status_codes
            .iter()
            .map(|code| code.to_string())
            .collect();
        SurveyRules {
            rules: rules.clone(),
            prefilter,
            families,
            #[cfg(test)]
            needles,
            lookout,
            sought_fields,
            sought_conversation,
            sought_links,
            conversation_keys: KeyFilter::new(
                rules.conversation.id_attributes.iter().map(String::as_str),
            ),
            name_key: memchr::memmem::Finder::new(b"\"name\"").into_owned(),
            kvlist: memchr::memmem::Finder::new(b"kvlistValue").into_owned(),
            event_names,
            inferred_keys,
            status_texts,
            aborted_conversations: FxHashSet::default(),
        }
    }

    /// The survey also marks the traces of these conversations (hashed), which an abort log
    /// names.
    pub(crate) fn with_aborted_conversations(mut self, hashes: FxHashSet<u64>) -> SurveyRules {
        self.aborted_conversations = hashes;
        self
    }

    /// The survey of a span a whole read built, by the predicates the join applies to the
    /// spans of inputs read whole (`FirstPass::signals`): what the first pass keeps of a record
    /// it reads as a whole read does.
    pub(crate) fn survey_built(&self, span: &crate::model::Span) -> SurveyedSpan {
        let rules = &self.rules;
        SurveyedSpan {
            trace_id: Some(span.trace_id),
            may_abort: !abort::span_signals(span, rules).is_empty()
                || InferenceHints::of(span, rules).may_infer(rules),
            links_to: span.links.iter().map(|link| link.trace_id).collect(),
            conversation: crate::rules::agent::conversation_id(span, rules)
                .map(|id| hash_text(&id)),
        }
    }

    /// Whether an abort log names the conversation of a surveyed span.
    pub(super) fn names_aborted_conversation(&self, span: &SurveyedSpan) -> bool {
        span.conversation
            .is_some_and(|c| self.aborted_conversations.contains(&c))
    }

    /// The fields of a span a survey must read, from its text after its leading trace id:
    /// those under whose keys a needle was found.
    #[cfg(test)]
    pub(super) fn fields_to_read(&self, rest: &[u8]) -> Fields {
        self.prefilter(rest).fields
    }

    pub(super) fn prefilter(&self, rest: &[u8]) -> Prefiltered {
        let mut found = Prefiltered {
            fields: Fields::NONE,
            keys: Fields::NONE,
            one_conversation_key: false,
            may_abort: false,
        };
        let mut conversation_keys = 0;
        // Every match of a family's start, overlapping or not: each search resumes just after
        // it. The starts of families are none the start of another, so at most one is found
        // at a place, and every needle is found once where its family's start is in it.
        let mut from = 0;
        while from < rest.len() && found.keys != Fields::ALL {
            let next = match &self.prefilter {
                Prefilter::Packed(searcher) => searcher
                    .find_in(rest, aho_corasick::Span::from(from..rest.len()))
                    .map(|m| (m.pattern().as_usize(), m.start())),
                Prefilter::Automaton(automaton) => automaton
                    .find(aho_corasick::Input::new(rest).range(from..))
                    .map(|m| (m.pattern().as_usize(), m.start())),
                Prefilter::None => {
                    found.keys = Fields::ALL;
                    break;
                }
            };
            let Some((family, at)) = next else {
                break;
            };
            for needle in &self.families[family] {
                if needle.is_at(rest, at) {
                    found.keys.0 |= needle.fields.0;
                    conversation_keys += usize::from(needle.fields == Fields::CONVERSATION);
                }
            }
            from = at + 1;
        }
        found.one_conversation_key = conversation_keys == 1;
        self.finish(rest, found)
    }

    /// `prefilter` from what a cursor looking out for the needles (`lookout`) saw as it went
    /// through `rest`, rather than by a search of it: the same answer (the debug build checks
    /// it on every span).
    pub(super) fn prefilter_sighted(&self, rest: &[u8], sightings: Sightings) -> Prefiltered {
        let mut keys = Fields::NONE;
        let mut seen = sightings.seen;
        while seen != 0 {
            keys.0 |= self.sought_fields[seen.trailing_zeros() as usize].0;
            seen &= seen - 1;
        }
        if sightings.escape_00 {
            keys = Fields::ALL;
        }
        let conversation = sightings.seen & self.sought_conversation;
        let found = Prefiltered {
            fields: Fields::NONE,
            keys,
            one_conversation_key: conversation.count_ones() == 1
                && sightings.again & conversation == 0,
            may_abort: false,
        };
        let found = self.finish(rest, found);
        #[cfg(debug_assertions)]
        {
            let searched = self.prefilter(rest);
            assert!(
                searched.keys == found.keys
                    && searched.fields == found.fields
                    && searched.may_abort == found.may_abort
                    && (found.fields != Fields::CONVERSATION
                        || searched.one_conversation_key == found.one_conversation_key),
                "the cursor saw {sightings:?} where the prefilter found {:?} (sighted: {:?}) in {:?}",
                (
                    searched.keys,
                    searched.fields,
                    searched.one_conversation_key
                ),
                (found.keys, found.fields, found.one_conversation_key),
                String::from_utf8_lossy(rest)
            );
        }
        found
    }

    /// Whether the needles the cursor saw in a span are at most `links` and a trace id's key:
    /// the latter sends a span to the full survey, but in a span the checks passed it is no
    /// member of the span's (a link's, or text the survey does not read), so that all the
    /// survey would find are its links' traces.
    pub(super) fn sees_only_links(&self, sightings: Sightings) -> bool {
        !sightings.escape_00 && sightings.seen & !self.sought_links == 0
    }

    /// What the fields found in `rest` leave to read.
    fn finish(&self, rest: &[u8], mut found: Prefiltered) -> Prefiltered {
        found.fields = found.keys;
        self.infer_from_text(rest, &mut found);
        if found.keys.has(Fields::EVENTS)
            && found.keys != Fields::ALL
            && self
                .event_names
                .as_ref()
                .is_some_and(|names| !names_an_abort_event(&self.name_key, rest, names))
        {
            found.fields.0 &= !Fields::EVENTS.0;
        }
        found
    }
}

impl SurveyRules {
    /// Most spans of a large export are HTTP requests and responses, and reading each one's
    /// kind and status to see whether an abort may be inferred from it would slow the first
    /// pass by half. Their text mostly settles it, as `InferenceHints::may_infer` would: with
    /// no status key in it, a request may have been cut off; with one, only a span whose text
    /// holds one of the inferring statuses (`499`) is read. Where a status key may belong to
    /// an event, a link or a list value, the span is read.
    fn infer_from_text(&self, rest: &[u8], found: &mut Prefiltered) {
        let http = found.keys.has(Fields::HTTP) || found.keys.has(Fields::HTTP_STATUS);
        // A status key may also be an event's, a link's, or in a list value's.
        if !http
            || found.keys.has(Fields::EVENTS)
            || found.keys.has(Fields::LINKS)
            || self.kvlist.find(rest).is_some()
        {
            return;
        }
        if !found.keys.has(Fields::HTTP_STATUS) {
            found.may_abort |= self.rules.abort.inferred.cancelled_requests;
        } else if self
            .status_texts
            .iter()
            .any(|code| holds_status(rest, code.as_bytes()))
        {
            return;
        }
        found.fields.0 &= !(Fields::HTTP.0 | Fields::HTTP_STATUS.0);
    }
}

/// Whether `text` may hold the status `code` as a span's status attribute holds it: an integer,
/// or text `Flexible::as_i64` reads as one (`"499"`, `" +0499"`). For a code of plain digits,
/// only where it is a number of its own: no digit after it, nor before it but zeros (the
/// digits of the ids and times around it, `…74990…`, are not a status). Any other code,
/// anywhere.
fn holds_status(text: &[u8], code: &[u8]) -> bool {
    if code.is_empty() || !code.iter().all(u8::is_ascii_digit) {
        return memchr::memmem::find(text, code).is_some();
    }
    memchr::memmem::find_iter(text, code).any(|at| {
        let after = text.get(at + code.len());
        let before = text[..at].iter().rev().find(|&&b| b != b'0');
        !after.is_some_and(u8::is_ascii_digit) && !before.is_some_and(u8::is_ascii_digit)
    })
}

/// A needle of the prefilter: found where its text is, `before` bytes before the start of its
/// family (see `families`); what it says must be read.
struct Needle {
    text: Box<[u8]>,
    before: usize,
    fields: Fields,
}

impl Needle {
    /// Whether the needle is in `text` with its family's start at `at`.
    #[inline]
    fn is_at(&self, text: &[u8], at: usize) -> bool {
        at >= self.before
            && text[at - self.before..]
                .get(..self.text.len())
                .is_some_and(|t| t == &*self.text)
            && (self.text.first() != Some(&b'\\') || starts_an_escape(text, at - self.before))
    }
}

/// Whether the backslash at `at` starts an escape, rather than being the escaped half of a
/// `\\`: in text the cursor checked (strings only hold escapes, and a run of backslashes
/// starts where an escape may), whether the run of backslashes that ends with it is odd. An
/// escaped backslash decodes to a character no key the prefilter looks for has (see
/// `SurveyRules::new`), so that the `\\u00fc` of JSON text held in a string value (a tool's
/// result, a prompt) is no escape.
fn starts_an_escape(text: &[u8], at: usize) -> bool {
    text[..=at]
        .iter()
        .rev()
        .take_while(|&&b| b == b'\\')
        .count()
        % 2
        == 1
}

/// The needles (but the escape's) as strings a cursor looks out for (`Lookout`): `"X"` as X,
/// `"key":"X"` as X after `"key":`. `None` if one is neither.
fn sought_strings(needles: &[(String, Fields)]) -> Option<Vec<(&[u8], bool)>> {
    needles
        .iter()
        .map(|(text, _)| {
            let text = text.as_bytes();
            let (inside, after_key) = match text.strip_prefix(b"\"key\":") {
                Some(value) => (value, true),
                None => (text, false),
            };
            let inside = inside.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
            Some((inside, after_key))
        })
        .collect()
}

/// The prefilter's needles grouped by how they start, as the patterns a searcher looks for
/// and, for each, the needles to check where it is found. Teddy, the SIMD searcher, runs its
/// slim form (twice as wide) on up to 32 patterns and spends its time checking candidates in
/// the buckets a pattern's first four bytes fall in: a key's first dotted segment
/// (`"ai.telemetry.metadata.…` and its six siblings are one `"ai.`) keeps the default rules'
/// 37 needles to 19 patterns, and a status key looked for as `"key":"…"` is looked for from its
/// own quote, since every attribute starts with `"key"`.
///
/// The patterns are such that none starts another, so that at most one is found at a place.
/// Should one needle start another (a key with a quote in it), nothing is grouped: each needle
/// is its own pattern, as it was.
fn families(needles: &[(String, Fields)]) -> (Vec<Vec<u8>>, Vec<Vec<Needle>>) {
    const KEY: &[u8] = b"\"key\":";
    let texts: Vec<&[u8]> = needles.iter().map(|(text, _)| text.as_bytes()).collect();
    let nested = texts.iter().enumerate().any(|(i, a)| {
        texts
            .iter()
            .enumerate()
            .any(|(j, b)| i != j && b.starts_with(a))
    });
    let needle = |text: &[u8], before: usize, fields: Fields| Needle {
        text: text.into(),
        before,
        fields,
    };
    if nested {
        return (
            texts.iter().map(|t| t.to_vec()).collect(),
            texts
                .iter()
                .zip(needles)
                .map(|(text, (_, fields))| vec![needle(text, 0, *fields)])
                .collect(),
        );
    }
    // Each needle's anchor (where its family's start is looked for) and that start.
    let anchored: Vec<(usize, &[u8])> = texts
        .iter()
        .map(|text| {
            let before = if text.len() > KEY.len() + 1 && text.starts_with(KEY) {
                KEY.len()
            } else {
                0
            };
            let anchor = &text[before..];
            let start = match anchor.first() {
                // A key: through its first dot, at least four bytes (Teddy's fingerprint).
                Some(b'"') => anchor
                    .iter()
                    .skip(1)
                    .position(|&b| b == b'.')
                    .map_or(anchor.len(), |dot| (dot + 2).max(4).min(anchor.len())),
                _ => anchor.len(),
            };
            (before, &anchor[..start])
        })
        .collect();
    // The shortest starts, none of which starts another.
    let mut starts: Vec<&[u8]> = anchored.iter().map(|(_, start)| *start).collect();
    starts.sort_by_key(|s| (s.len(), *s));
    starts.dedup();
    let mut patterns: Vec<&[u8]> = Vec::new();
    for start in starts {
        if !patterns.iter().any(|p| start.starts_with(p)) {
            patterns.push(start);
        }
    }
    let mut families: Vec<Vec<Needle>> = patterns.iter().map(|_| Vec::new()).collect();
    for ((before, start), (text, (_, fields))) in anchored.iter().zip(texts.iter().zip(needles)) {
        let family = patterns
            .iter()
            .position(|p| start.starts_with(p))
            .expect("every start begins with a pattern");
        families[family].push(needle(text, *before, *fields));
    }
    (patterns.into_iter().map(<[u8]>::to_vec).collect(), families)
}

/// What the prefilter found in a span's text.
pub(super) struct Prefiltered {
    /// The text shows an abort may be inferred from the span, without reading it.
    pub(super) may_abort: bool,
    /// The fields a survey must read.
    pub(super) fields: Fields,
    /// The fields whose keys are in the text.
    pub(super) keys: Fields,
    /// The text holds exactly one conversation-id key.
    pub(super) one_conversation_key: bool,
}

/// The conversation of a span whose only key of interest is one conversation-id key, read
/// from its text when its attributes are written as exporters write them, from what the
/// first pass's checks noted (`check::clean_span`): that key in an attribute
/// `{"key":"…","value":{"stringValue":"…"}}` of the span's one attribute list, with no
/// escape. `Some(None)`: the id is empty. `None`: the span must be surveyed in full (the key
/// is elsewhere, in another shape, escaped or an integer).
///
/// Like a span read from its trace id alone, such a span is not type-checked by the survey;
/// the checks did that.
pub(super) fn conversation_noted(span: &str, notes: &SpanNotes<'_>) -> Option<Option<u64>> {
    if notes.unplain {
        return None;
    }
    let id = &span[notes.conversation.clone()?];
    Some((!id.is_empty()).then(|| hash_text(id)))
}

/// Whether a span's text has a `"name"` key whose string may name an abort event: `exception`,
/// or one of `names` in any case. The string is taken to end at the next quote: the prefilter
/// let through only escapes that decode to a character no rule name has (see
/// `SurveyRules::new`), so a name cut short at an escaped quote, or holding an escape, could
/// not have matched anyway.
pub(super) fn names_an_abort_event(
    key: &memchr::memmem::Finder<'_>,
    text: &[u8],
    names: &[String],
) -> bool {
    key.find_iter(text).any(|at| {
        let after = text[at + 6..].trim_ascii_start();
        let Some(value) = after.strip_prefix(b":") else {
            return false;
        };
        let Some(value) = value.trim_ascii_start().strip_prefix(b"\"") else {
            // A null or mistyped name: read the events in full and let them say.
            return true;
        };
        let name = &value[..memchr::memchr(b'"', value).unwrap_or(value.len())];
        name == b"exception"
            || names
                .iter()
                .any(|n| n.as_bytes().eq_ignore_ascii_case(name))
    })
}

/// Which fields of a span a survey reads, as bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Fields(pub(super) u8);

impl Fields {
    pub(super) const NONE: Fields = Fields(0);
    pub(super) const EVENTS: Fields = Fields(1);
    pub(super) const LINKS: Fields = Fields(2);
    pub(super) const STATUS: Fields = Fields(4);
    /// The attributes that may record an abort.
    pub(super) const ATTRIBUTES: Fields = Fields(8);
    /// The attributes that name a conversation.
    pub(super) const CONVERSATION: Fields = Fields(16);
    /// The attributes that make a span an HTTP request or response (method, URL),
    pub(super) const HTTP: Fields = Fields(32);
    /// its HTTP status,
    pub(super) const HTTP_STATUS: Fields = Fields(64);
    /// and those that say the client disconnected: with its kind, what an abort may be
    /// inferred from.
    pub(super) const DISCONNECT: Fields = Fields(128);
    pub(super) const INFERRED: Fields = Fields(32 | 64 | 128);
    pub(super) const ALL: Fields = Fields(255);

    /// Whether any of the bits of `field` is set.
    pub(super) fn has(self, field: Fields) -> bool {
        self.0 & field.0 != 0
    }
}

/// What the survey keeps of a span.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct SurveyedSpan {
    /// `None` when the trace id is unusable (diagnosed when the span is surveyed).
    pub trace_id: Option<TraceId>,
    /// It carries something that may be an abort signal (checked properly later).
    pub may_abort: bool,
    /// The traces its links point to.
    pub links_to: Vec<TraceId>,
    /// A conversation id it names, hashed, for counting conversations.
    pub conversation: Option<u64>,
}

pub(super) struct SurveyVisitor<'r> {
    pub(super) rules: &'r crate::rules::Rules,
    pub(super) inferred_keys: &'r [String],
    /// The fields to read; the others cannot hold what a survey looks for.
    pub(super) fields: Fields,
}

impl<'de> Visitor<'de> for SurveyVisitor<'_> {
    type Value = SurveyedSpan;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an OTLP span object")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let rules = self.rules;
        let fields = self.fields;
        let mut span = SurveyedSpan::default();
        let mut raw_trace: Option<Cow<'de, str>> = None;
        let mut kind = None;
        let mut hints: Option<InferenceHints> = None;
        while let Some(RawStr(key)) = map.next_key::<RawStr<'de>>()? {
            match key.as_ref() {
                b"traceId" | b"trace_id" => raw_trace = map.next_value()?,
                b"kind" if fields.has(Fields::INFERRED) => {
                    let value: Option<Flexible> = map.next_value()?;
                    kind = value.and_then(|k| k.as_enum("SPAN_KIND_", KIND_NAMES));
                }
                b"status" if fields.has(Fields::STATUS) => {
                    let status: Option<WireStatus<'de>> = map.next_value()?;
                    if let Some(status) = status {
                        let error = status
                            .code
                            .as_ref()
                            .and_then(|c| c.as_enum("STATUS_CODE_", STATUS_NAMES))
                            == Some(2);
                        span.may_abort |= error
                            && abort::is_abort_status(
                                status.message.as_deref().unwrap_or(""),
                                rules,
                            );
                    }
                }
                b"events" if fields.has(Fields::EVENTS) => {
                    let events = map.next_value_seed(FILTERED_EVENTS)?;
                    for event in &events {
                        let attributes = event.attributes.as_deref().unwrap_or_default();
                        span.may_abort |= abort::is_abort_event(
                            event.name.as_deref().unwrap_or_default(),
                            wire_text(attributes, EXCEPTION_TYPE)
                                .or_else(|| wire_text(attributes, ERROR_TYPE)),
                            wire_text(attributes, EXCEPTION_MESSAGE),
                            rules,
                        );
                    }
                }
                b"links" if fields.has(Fields::LINKS) => {
                    let links: Option<Vec<WireLink<'de>>> = map.next_value()?;
                    span.links_to = links
                        .iter()
                        .flatten()
                        .filter_map(|l| l.trace_id.as_deref().and_then(|t| decode_id::<16>(t).ok()))
                        .map(TraceId)
                        .collect();
                }
                b"attributes"
                    if fields.has(Fields::ATTRIBUTES)
                        || fields.has(Fields::CONVERSATION)
                        || fields.has(Fields::INFERRED) =>
                {
                    let wanted = |key: &str| {
                        ABORT_ATTRIBUTES.contains(&key)
                            || rules.conversation.id_attributes.iter().any(|k| k == key)
                            || self.inferred_keys.iter().any(|k| k == key)
                    };
                    let attributes = map.next_value_seed(some_attributes(&wanted))?;
                    span.may_abort |= abort::is_abort_attribute(
                        wire_text(&attributes, ERROR_TYPE),
                        RPC_STATUS_CODE
                            .iter()
                            .find_map(|key| wire_text(&attributes, key)),
                        wire_text(&attributes, MCP_METHOD_NAME),
                        rules,
                    ) || attributes.iter().any(|kv| {
                        // gRPC status codes are integers.
                        RPC_STATUS_CODE.contains(&kv.key.as_ref())
                            && kv
                                .value
                                .as_ref()
                                .and_then(|v| v.int_value.as_ref())
                                .and_then(Flexible::as_i64)
                                == Some(1)
                    });
                    span.conversation = rules
                        .conversation
                        .id_attributes
                        .iter()
                        .find_map(|k| wire_text(&attributes, k).filter(|v| !v.is_empty()))
                        .map(hash_text);
                    if fields.has(Fields::INFERRED) {
                        hints = Some(inference_hints(&attributes, rules));
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if let Some(mut hints) = hints {
            hints.kind = kind
                .and_then(SpanKind::from_otlp)
                .unwrap_or(SpanKind::Unspecified);
            span.may_abort |= hints.may_infer(rules);
        }
        // An unusable trace id leaves the span unplaced (the first pass reads only spans whose
        // ids it checked this way).
        span.trace_id = decode_id::<16>(&raw_trace.unwrap_or_default())
            .ok()
            .map(TraceId);
        Ok(span)
    }
}

/// What a span's attributes, as written, say toward an inferred abort (its kind is read
/// apart).
fn inference_hints(attributes: &[WireKeyValue<'_>], rules: &crate::rules::Rules) -> InferenceHints {
    let inferred = &rules.abort.inferred;
    let has = |keys: &[&str]| attributes.iter().any(|kv| keys.contains(&kv.key.as_ref()));
    InferenceHints {
        kind: SpanKind::Unspecified,
        disconnect: inferred.disconnect_attributes.iter().any(|key| {
            wire_text(attributes, key)
                .is_some_and(|v| inferred.disconnect_values.iter().any(|want| want == v))
        }),
        is_http: has(&HTTP_REQUEST_METHOD) || has(&URL_FULL),
        http_status: HTTP_RESPONSE_STATUS_CODE.iter().find_map(|key| {
            let value = attributes
                .iter()
                .find(|kv| kv.key == *key)?
                .value
                .as_ref()?;
            value
                .int_value
                .as_ref()
                .and_then(Flexible::as_i64)
                .or_else(|| value.string_value.as_deref()?.trim().parse().ok())
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the prefilter's keys were before its needles were grouped: at every place, the
    /// first needle there (in order), its fields, and how many conversation keys were found.
    fn one_needle_at_a_time(survey: &SurveyRules, rest: &[u8]) -> (Fields, usize) {
        let mut keys = Fields::NONE;
        let mut conversation_keys = 0;
        for at in 0..rest.len() {
            if let Some((_, fields)) = survey.needles.iter().find(|(text, _)| {
                rest[at..].starts_with(text.as_bytes())
                    && (!text.starts_with('\\') || starts_an_escape(rest, at))
            }) {
                keys.0 |= fields.0;
                conversation_keys += usize::from(*fields == Fields::CONVERSATION);
            }
        }
        (keys, conversation_keys)
    }

    fn assert_same(survey: &SurveyRules, rest: &[u8]) {
        let found = survey.prefilter(rest);
        let (keys, conversation_keys) = one_needle_at_a_time(survey, rest);
        let text = String::from_utf8_lossy(rest);
        assert_eq!(found.keys, keys, "{text}");
        if keys != Fields::ALL {
            assert_eq!(found.one_conversation_key, conversation_keys == 1, "{text}");
        }
    }

    /// A fixed sequence of numbers below the `n` each call is given (xorshift from `seed`).
    fn below(mut state: u64) -> impl FnMut(usize) -> usize {
        move |n| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        }
    }

    /// Rule sets whose needles group differently, or not at all.
    fn rule_sets() -> Vec<crate::rules::Rules> {
        let default = crate::rules::Rules::default;
        let mut quoted = default();
        // A key with a quote: one needle starts another, and nothing is grouped.
        quoted.conversation.id_attributes.push("k\":\"x".into());
        quoted.conversation.id_attributes.push("k".into());
        let mut slashed = default();
        slashed.conversation.id_attributes.push("app/thread".into());
        let mut status = default();
        status
            .conversation
            .id_attributes
            .push("http.status_code".into());
        status.conversation.id_attributes.push("a.b".into());
        status.conversation.id_attributes.push("ai".into());
        vec![default(), quoted, slashed, status]
    }

    #[test]
    fn a_status_is_found_where_it_is_a_number_of_its_own() {
        for (text, holds) in [
            (r#"{"intValue":"499"}"#, true),
            (r#"{"intValue":499}"#, true),
            (r#"{"stringValue":" +0499 "}"#, true),
            (r#"{"stringValue":"\t00499"}"#, true),
            (r#"{"intValue":499.0}"#, true),
            (r#"499"#, true),
            (r#"{"intValue":"4990"}"#, false),
            (r#"{"intValue":"1499"}"#, false),
            (r#"{"intValue":"10499"}"#, false),
            (r#""startTimeUnixNano":"1795651202070499168""#, false),
        ] {
            assert_eq!(holds_status(text.as_bytes(), b"499"), holds, "{text}");
        }
        assert!(holds_status(br#"{"intValue":"-1"}"#, b"-1"));
    }

    #[test]
    fn the_default_rules_search_for_few_enough_patterns_for_slim_teddy() {
        let survey = SurveyRules::new(&crate::rules::Rules::default());
        assert!(survey.families.len() <= 32, "{}", survey.families.len());
        assert!(matches!(survey.prefilter, Prefilter::Packed(_)));
    }

    /// The JSON files under `fixtures/`.
    fn fixture_files() -> Vec<std::path::PathBuf> {
        let mut files = Vec::new();
        let mut dirs = vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path
                    .extension()
                    .is_some_and(|e| e == "jsonl" || e == "json")
                {
                    files.push(path);
                }
            }
        }
        assert!(!files.is_empty());
        files
    }

    #[test]
    fn grouped_needles_find_what_each_needle_finds_on_the_fixtures() {
        let files = fixture_files();
        for rules in rule_sets() {
            let survey = SurveyRules::new(&rules);
            for file in &files {
                let text = std::fs::read(file).unwrap();
                for line in text.split(|&b| b == b'\n') {
                    assert_same(&survey, line);
                    // The spans of a record, after their leading trace id's key, as the first
                    // pass hands them over.
                    let mut from = 0;
                    while let Some(at) = memchr::memmem::find(&line[from..], b"{\"traceId\"") {
                        let start = from + at;
                        let end = memchr::memmem::find(&line[start + 1..], b"{\"traceId\"")
                            .map_or(line.len(), |e| start + 1 + e);
                        assert_same(&survey, &line[start + 10..end]);
                        from = start + 1;
                    }
                }
            }
        }
    }

    #[test]
    fn grouped_needles_find_what_each_needle_finds_in_made_up_text() {
        for rules in rule_sets() {
            let survey = SurveyRules::new(&rules);
            let mut pieces: Vec<Vec<u8>> = survey
                .needles
                .iter()
                .flat_map(|(text, _)| {
                    let text = text.as_bytes();
                    // Each needle whole, cut short and cut at its start.
                    [
                        text.to_vec(),
                        text[..text.len() / 2].to_vec(),
                        text[1..].to_vec(),
                    ]
                })
                .collect();
            for extra in [
                "\"key\":",
                "\"",
                ".",
                ":",
                "a",
                "\\",
                "\\\\",
                "\\\\\\",
                "\"ai.",
                "\"http.",
                "{\"key\":\"",
                "\"},",
            ] {
                pieces.push(extra.as_bytes().to_vec());
            }
            let mut next = below(0x2545_f491_4f6c_dd1d);
            for _ in 0..20_000 {
                let mut text = Vec::new();
                for _ in 0..next(12) {
                    text.extend_from_slice(&pieces[next(pieces.len())]);
                }
                assert_same(&survey, &text);
            }
        }
    }

    /// The prefilter from the cursor's sightings of a span, against the prefilter's search of
    /// its text, when `clean_span` passes it: whether it did.
    fn sighted_as_searched(survey: &SurveyRules, span: &str) -> bool {
        use super::super::check::clean_span;
        use super::super::index::leading_trace_id;
        let Some((_, rest)) = leading_trace_id(span.as_bytes()) else {
            return false;
        };
        let mut notes = SpanNotes::new(&survey.conversation_keys);
        let mut cursor = super::super::super::json_text::cursor::Cursor::looking_out(
            span.as_bytes(),
            survey.lookout.as_ref(),
        );
        if clean_span(&mut cursor, span, true, &mut notes).is_none() {
            return false;
        }
        let rest = &span.as_bytes()[rest..];
        let searched = survey.prefilter(rest);
        let sighted = survey.prefilter_sighted(rest, cursor.sightings());
        assert_eq!(
            (searched.keys, searched.fields, searched.may_abort),
            (sighted.keys, sighted.fields, sighted.may_abort),
            "{span}"
        );
        if sighted.fields == Fields::CONVERSATION {
            assert_eq!(
                searched.one_conversation_key, sighted.one_conversation_key,
                "{span}"
            );
        }
        true
    }

    #[test]
    fn the_cursor_sees_what_the_prefilter_finds_in_made_up_spans() {
        let mut compared = 0;
        let mut generated = 0;
        for rules in rule_sets() {
            let survey = SurveyRules::new(&rules);
            if survey.lookout.is_none() {
                continue;
            }
            // Strings as JSON text: the needles' keys, plainly and as an escaped string ends
            // with them or holds them, `\u00` as an escape and as text, and plain words.
            let mut strings: Vec<String> = Vec::new();
            for (needle, _) in &survey.needles {
                let Some(inside) = needle
                    .strip_prefix("\"key\":")
                    .unwrap_or(needle)
                    .strip_prefix('"')
                    .and_then(|n| n.strip_suffix('"'))
                else {
                    continue;
                };
                strings.push(format!("\"{inside}\""));
                strings.push(format!("\"say \\\"{inside}\""));
                strings.push(format!("\"{inside}\\n\""));
                strings.push(format!("\"x\\\\\\\"{inside}\""));
                strings.push(format!("\"{inside}x\""));
            }
            for plain in [
                "\"events\"",
                "\"links\"",
                "\"message\"",
                "\"traceId\"",
                "\"\\u00e9t\\u00e9\"",
                "\"\\\\u00e9\"",
                "\"\\u0041\"",
                "\"\\\"\"",
                "\"\"",
                "\"POST\"",
                "\"499\"",
                "\"exception\"",
                "\"abort\"",
                "\"key\"",
            ] {
                strings.push(plain.to_owned());
            }
            let mut next = below(0x9e37_79b9_7f4a_7c15);
            let pick = |next: &mut dyn FnMut(usize) -> usize| strings[next(strings.len())].clone();
            for _ in 0..4_000 {
                let mut attributes = Vec::new();
                for _ in 0..next(6) {
                    let key = pick(&mut next);
                    let value = pick(&mut next);
                    attributes.push(match next(6) {
                        0 => format!("{{\"key\":{key},\"value\":{{\"intValue\":\"5\"}}}}"),
                        1 => format!(
                            "{{\"key\":{key},\"value\":{{\"kvlistValue\":{{\"values\":[{{\"key\":{},\"value\":{{\"stringValue\":{value}}}}}]}}}}}}",
                            pick(&mut next)
                        ),
                        2 => format!(
                            "{{\"key\":{key},\"value\":{{\"arrayValue\":{{\"values\":[{{\"stringValue\":{value}}}]}}}}}}"
                        ),
                        3 => format!("{{\"value\":{{\"stringValue\":{value}}},\"key\":{key}}}"),
                        4 => format!("{{\"key\": {key}, \"value\": {{\"stringValue\": {value}}}}}"),
                        _ => format!("{{\"key\":{key},\"value\":{{\"stringValue\":{value}}}}}"),
                    });
                }
                let attributes = attributes.join(",");
                let mut span = format!(
                    "{{\"traceId\":\"5b8efff798038103d269b633813fc60c\",\"spanId\":\"eee19b7ec3c1b174\",\"name\":{},\"kind\":{},\"startTimeUnixNano\":\"1\",\"endTimeUnixNano\":\"2\",\"attributes\":[{attributes}]",
                    pick(&mut next),
                    1 + next(5)
                );
                if next(3) == 0 {
                    span.push_str(&format!(
                        ",\"events\":[{{\"timeUnixNano\":\"2\",\"name\":{},\"attributes\":[{attributes}]}}]",
                        pick(&mut next)
                    ));
                }
                if next(4) == 0 {
                    span.push_str(",\"links\":[{\"traceId\":\"5b8efff798038103d269b633813fc60d\",\"spanId\":\"eee19b7ec3c1b175\"}]");
                }
                if next(3) == 0 {
                    span.push_str(&format!(
                        ",\"status\":{{\"message\":{},\"code\":2}}",
                        pick(&mut next)
                    ));
                }
                span.push('}');
                generated += 1;
                compared += usize::from(sighted_as_searched(&survey, &span));
            }
        }
        // Most made-up spans are ones the first pass checks without serde.
        assert!(compared * 2 > generated, "{compared} of {generated}");
    }

    #[test]
    fn the_cursor_sees_what_the_prefilter_finds_in_the_fixtures() {
        let mut compared = 0;
        for rules in rule_sets() {
            let survey = SurveyRules::new(&rules);
            if survey.lookout.is_none() {
                continue;
            }
            for file in fixture_files() {
                let text = String::from_utf8_lossy(&std::fs::read(file).unwrap()).into_owned();
                for line in text.lines() {
                    // Each span of a record, as the cursor would be handed it.
                    let mut from = 0;
                    while let Some(at) = line[from..].find("{\"traceId\"") {
                        let start = from + at;
                        let mut cursor = super::super::super::json_text::cursor::Cursor::new(
                            &line.as_bytes()[start..],
                        );
                        if let Some(span) = cursor.value() {
                            compared += usize::from(sighted_as_searched(
                                &survey,
                                &line[start..start + span.end],
                            ));
                        }
                        from = start + 1;
                    }
                }
            }
        }
        assert!(compared > 1_000, "{compared}");
    }
}

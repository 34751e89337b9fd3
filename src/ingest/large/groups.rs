//! `scan`'s second pass over large plain exports, a group of the traces that matter at a time:
//! each group is read back, joined and classified by the caller, and let go before the next,
//! so that memory follows a group and the findings rather than every aborted turn of the file.
//!
//! A group holds whole conversations (as the first pass names them) and the traces linked into
//! them, which is all the join of a trace looks at. The caller checks what the first pass
//! cannot: that no conversation of the join was split between two groups. It reads the traces
//! in one group instead (`second_pass`) when one was, and so does `combine_groups` when the
//! second pass of a group said anything (a conflicting duplicate, a loop of parents), whose
//! order among the diagnostics only a read of every kept span gives.

use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::HashSet;

use indicatif::ProgressBar;

use super::super::dedup::{InputRead, merge_inputs};
use super::super::sources::Source;
use super::super::{Ingested, otlp_json};
use super::by_conversation::read_kept_of;
use super::index::trace_key;
use super::reader::Encoding;
use super::spill::Spill;
use super::{FirstPass, FirstRead, Surveyed};
use crate::model::TraceId;
use crate::rules::Rules;

/// About this much span text is read back and built at once, shared by the threads (each
/// reads a group of its share). Spans built are about half their text with only the
/// attributes the audit reads, and the join holds a quarter more.
pub const DEFAULT_SCAN_GROUP: u64 = 16 << 20;

/// One group read back: its spans, as a second pass gives them, and what the inputs' reports
/// need of it once its spans are let go.
pub struct Group {
    pub ingested: Ingested,
    /// Per input, the services its spans of the group name.
    services: Vec<HashSet<String>>,
    /// The second pass said something of the group's spans.
    said: bool,
    /// It could not read them: `second_pass` says why, as it says it.
    failed: bool,
}

/// What a group leaves behind for the inputs' reports.
pub struct GroupFacts {
    ingested: Ingested,
    services: Vec<HashSet<String>>,
    said: bool,
    failed: bool,
}

impl Group {
    /// Lets the spans go, keeping the counts.
    pub fn into_facts(self) -> GroupFacts {
        let Group {
            mut ingested,
            services,
            said,
            failed,
        } = self;
        ingested.spans = Vec::new();
        GroupFacts {
            ingested,
            services,
            said,
            failed,
        }
    }
}

/// A component of the kept traces (a conversation's, and those linked into them): its span
/// text, and when it can be read: (the input, how far its written-out kept spans must go).
#[derive(Clone, Copy, Default)]
struct Component {
    text: u64,
    ready: (usize, u64),
}

/// The group of each component (given by their texts, in the order they are read), and how
/// many groups there are: consecutive runs of components of at most about `group_text` bytes,
/// as many groups as a multiple of `threads` and as even as whole components allow, so that
/// the threads reading them one each end together rather than one reading the last group
/// alone (15 groups of 9.6 MB on 2 threads left one idle for a group's time at 1 GB).
fn cut_into_groups(texts: &[u64], group_text: u64, threads: usize) -> (Vec<usize>, usize) {
    let total: u64 = texts.iter().sum();
    let threads = threads.max(1) as u64;
    let wanted = total.div_ceil(group_text.max(1)).max(1);
    let wanted = if wanted > 1 {
        wanted.div_ceil(threads) * threads
    } else {
        1
    };
    let each = total.div_ceil(wanted).max(1);
    // A component goes to the group its middle falls in; a component larger than a group
    // leaves the groups it covers empty, and they are not counted.
    let mut cut = Vec::with_capacity(texts.len());
    let (mut before, mut last, mut groups) = (0u64, None, 0usize);
    for &text in texts {
        let at = ((before + text / 2) / each).min(wanted - 1);
        if last != Some(at) {
            last = Some(at);
            groups += 1;
        }
        cut.push(groups - 1);
        before += text;
    }
    (cut, groups.max(1))
}

/// A small union-find over the kept traces.
struct Components {
    parent: Vec<u32>,
}

impl Components {
    fn root(&mut self, mut at: u32) -> u32 {
        while self.parent[at as usize] != at {
            let up = self.parent[self.parent[at as usize] as usize];
            self.parent[at as usize] = up;
            at = up;
        }
        at
    }

    fn join(&mut self, a: u32, b: u32) {
        let (a, b) = (self.root(a), self.root(b));
        // The smaller index is the root, so that the grouping does not depend on the order of
        // the unions.
        let (low, high) = (a.min(b), a.max(b));
        self.parent[high as usize] = low;
    }
}

impl FirstPass {
    /// The traces that matter cut into groups of at most about `group_text` bytes of span
    /// text, as many as a multiple of `threads` (see `cut_into_groups`), each
    /// holding whole conversations (as the first pass names them: `first_pass_by_conversation`)
    /// and the traces linked into them. `None` when the inputs are not all files read in two
    /// passes, whole and sound (spans read whole are in memory already; what was wrong is
    /// said by one read of the kept spans), or when no file could be made for the kept spans
    /// of a compressed input: with several groups, they are decompressed once more and written
    /// to a file of their own (`spill::Spill`, filled by `fill_spills`), rather than
    /// decompressed again for every group.
    pub fn scan_groups(
        &mut self,
        traces: &FxHashSet<TraceId>,
        links: &[(TraceId, TraceId)],
        group_text: u64,
        threads: usize,
    ) -> Option<Vec<FxHashSet<TraceId>>> {
        let readable = self.inputs.iter().all(|input| {
            matches!(input, FirstRead::Surveyed(s) if s.error.is_none()
                && s.corrupt.is_none()
                && s.parsed.survey.traces.is_some())
        });
        if !readable {
            return None;
        }
        // The places of the spans of the other traces are no longer needed: let go first, so
        // that the text of the groups is counted over the kept spans alone.
        for input in &mut self.inputs {
            if let FirstRead::Surveyed(surveyed) = input {
                surveyed.parsed.index.retain(traces);
            }
        }
        // The span text of the kept traces, by key (two traces sharing a key count each
        // other's: a few bytes too many).
        let mut text_of_key: FxHashMap<u32, u64> = FxHashMap::default();
        for input in &self.inputs {
            if let FirstRead::Surveyed(surveyed) = input {
                for place in &surveyed.parsed.index.spans {
                    *text_of_key.entry(place.trace).or_default() += u64::from(place.len);
                }
            }
        }
        let group_text = group_text.max(1);
        let several = text_of_key.values().sum::<u64>() > group_text;
        // With several groups, a compressed input's kept spans are written out, and a trace is
        // ready to be read once they are: (the input, how far into its file).
        let mut ready_of_key: FxHashMap<u32, (usize, u64)> = FxHashMap::default();
        for (at, input) in self.inputs.iter_mut().enumerate() {
            if let FirstRead::Surveyed(surveyed) = input
                && several
                && surveyed.encoding != Encoding::Plain
            {
                let spill = Spill::new(&surveyed.parsed.index, traces).ok()?;
                for (key, end) in spill.ready_at() {
                    let ready = ready_of_key.entry(key).or_default();
                    *ready = (*ready).max((at, end));
                }
                surveyed.spill = Some(spill);
            }
        }
        let surveyed: Vec<&Surveyed> = self
            .inputs
            .iter()
            .filter_map(|input| match input {
                FirstRead::Surveyed(s) => Some(&**s),
                FirstRead::Whole(_) => None,
            })
            .collect();
        // The kept traces in a fixed order (by id), so that the groups do not depend on the
        // order of a hash set.
        let mut order: Vec<TraceId> = traces.iter().copied().collect();
        order.sort_unstable_by_key(|t| t.0);
        let number: FxHashMap<TraceId, u32> = order
            .iter()
            .enumerate()
            .map(|(i, t)| (*t, i as u32))
            .collect();
        let mut components = Components {
            parent: (0..order.len() as u32).collect(),
        };
        // A conversation's traces together: each with the first kept trace naming it.
        let mut first_of_conversation: FxHashMap<u64, u32> = FxHashMap::default();
        for input in &surveyed {
            for (trace, conversation) in input.parsed.survey.traces.iter().flatten() {
                if let (Some(&i), Some(conversation)) = (number.get(trace), conversation) {
                    let first = *first_of_conversation.entry(*conversation).or_insert(i);
                    components.join(first, i);
                }
            }
        }
        // A trace linked into a kept trace with it.
        for (to, from) in links {
            if let (Some(&a), Some(&b)) = (number.get(to), number.get(from)) {
                components.join(a, b);
            }
        }
        // Each component's text, and when it is ready to be read: when its last trace is.
        let mut of_root: FxHashMap<u32, Component> = FxHashMap::default();
        for (i, trace) in order.iter().enumerate() {
            let key = trace_key(*trace);
            let component = of_root.entry(components.root(i as u32)).or_default();
            component.text += text_of_key.get(&key).copied().unwrap_or(0);
            let ready = ready_of_key.get(&key).copied().unwrap_or_default();
            component.ready = component.ready.max(ready);
        }
        // The components in the order they are ready (then by their first trace), cut into
        // groups of about `group_text`: the first groups can be read while a compressed
        // input's file is still being filled.
        let mut roots: Vec<(u32, Component)> = of_root.into_iter().collect();
        roots.sort_unstable_by_key(|&(root, component)| (component.ready, root));
        let texts: Vec<u64> = roots.iter().map(|(_, c)| c.text).collect();
        let (cut, groups) = cut_into_groups(&texts, group_text, threads);
        let group_of_root: FxHashMap<u32, usize> =
            roots.iter().map(|(root, _)| *root).zip(cut).collect();
        let mut out = vec![FxHashSet::default(); groups];
        for (i, trace) in order.iter().enumerate() {
            out[group_of_root[&components.root(i as u32)]].insert(*trace);
        }
        // What the first pass noted of every trace is no longer needed (the caller has taken
        // the signals).
        for input in &mut self.inputs {
            if let FirstRead::Surveyed(surveyed) = input {
                surveyed.groups = match &surveyed.spill {
                    Some(spill) => spill.places_by_group(&out),
                    None => surveyed.parsed.index.places_by_group(&out),
                };
                let survey = &mut surveyed.parsed.survey;
                survey.traces = None;
                survey.may_abort = FxHashSet::default();
                survey.links = Vec::new();
            }
        }
        Some(out)
    }

    /// Fills the files the kept spans of compressed inputs are written to for the groups
    /// (`scan_groups`), one input after another, while the groups are read: a group waits
    /// until the files hold its spans. A file that cannot be filled leaves its groups unread,
    /// and the inputs are then read in one group.
    pub fn fill_spills(&self, progress: &ProgressBar) {
        /// Whatever becomes of the filling, even a panic, no group is left waiting.
        struct GiveUp<'a>(&'a FirstPass);
        impl Drop for GiveUp<'_> {
            fn drop(&mut self) {
                for input in &self.0.inputs {
                    if let FirstRead::Surveyed(surveyed) = input
                        && let Some(spill) = &surveyed.spill
                    {
                        spill.give_up();
                    }
                }
            }
        }
        let _give_up = GiveUp(self);
        // On this thread alone (a frame decoded at a time), the groups having the others; gzip
        // stretches on all threads, the groups waiting on them: inflating is the slowest
        // decoding there is by far (1.2 GB/s against libzstd's 1.8), and the groups are read
        // the sooner (1 GB gzip -1 with the benchmark's aborted turns: 0.94x the time on one
        // thread; zstd frames decoded on more threads would take more memory to gain little).
        let inflated = self.inputs.iter().any(|input| {
            matches!(input, FirstRead::Surveyed(s)
                if s.spill.is_some() && s.frames.as_ref().is_some_and(|t| t.inflated()))
        });
        let threads = if inflated {
            rayon::current_num_threads()
        } else {
            1
        };
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build();
        let fill = || self.fill_spills_here(progress);
        match pool {
            Ok(pool) => pool.install(fill),
            Err(_) => fill(),
        }
    }

    fn fill_spills_here(&self, progress: &ProgressBar) {
        for input in &self.inputs {
            if let FirstRead::Surveyed(surveyed) = input
                && let (Some(spill), Source::Path(path)) = (&surveyed.spill, &surveyed.source)
            {
                // What went wrong is said by the read in one group.
                let _ = spill.fill(path, surveyed.encoding, surveyed.frames.as_ref(), progress);
            }
        }
    }

    /// Whether the groups wait for files to be filled (`fill_spills`).
    pub fn spills(&self) -> bool {
        self.inputs
            .iter()
            .any(|input| matches!(input, FirstRead::Surveyed(s) if s.spill.is_some()))
    }

    /// Reads back the spans of `traces`, group `number` of `scan_groups`, as `second_pass`
    /// reads those of every kept trace.
    pub fn read_group(
        &self,
        number: usize,
        traces: FxHashSet<TraceId>,
        rules: &Rules,
        progress: &ProgressBar,
    ) -> Group {
        let keep = otlp_json::Keep {
            traces,
            attributes: rules.attributes_read(),
        };
        let mut failed = false;
        let mut reads = Vec::new();
        let mut before = Vec::new();
        for input in &self.inputs {
            let FirstRead::Surveyed(surveyed) = input else {
                unreachable!("groups are read from inputs read in two passes (scan_groups)");
            };
            let report = surveyed.report(Vec::new());
            let spans = match read_kept_of(surveyed, &keep, Some(number), progress) {
                Ok(kept) => kept.spans,
                Err(_) => {
                    failed = true;
                    Vec::new()
                }
            };
            before.push(report.diagnostics.len());
            reads.push(InputRead {
                report,
                spans,
                events: Vec::new(),
                aborts: Vec::new(),
            });
        }
        let mut ingested = merge_inputs(reads, self.conversation_count(rules));
        super::super::consistency::check(&mut ingested, &keep.traces);
        ingested.walk_diagnostics = self.walk_diagnostics.clone();
        failed |= ingested.has_errors();
        let said = ingested
            .inputs
            .iter()
            .zip(before)
            .any(|(report, before)| report.diagnostics.len() != before);
        // The services of each input's spans, which follow one another input by input, as
        // many as its kinds count.
        let mut spans = ingested.spans.iter();
        let services = ingested
            .inputs
            .iter()
            .map(|report| {
                let kept: u64 = report.counts.kinds.values().sum();
                // Borrowed first: a set collected from the spans would be sized for them all.
                let names: HashSet<&str> = spans
                    .by_ref()
                    .take(kept as usize)
                    .map(|span| span.service())
                    .fold(HashSet::new(), |mut names, name| {
                        names.insert(name);
                        names
                    });
                names.into_iter().map(str::to_owned).collect()
            })
            .collect();
        Group {
            ingested,
            services,
            said,
            failed,
        }
    }
}

/// The inputs as `second_pass` reports them, from what each group left; `None` when there were
/// several groups and the second pass said something of one (see the module's comment), or
/// when a group could not be read.
pub fn combine_groups(groups: Vec<GroupFacts>) -> Option<Ingested> {
    if groups.iter().any(|g| g.failed) || (groups.len() > 1 && groups.iter().any(|g| g.said)) {
        return None;
    }
    let mut groups = groups.into_iter();
    let first = groups.next()?;
    let mut ingested = first.ingested;
    let mut services = first.services;
    let mut traces = ingested.total.traces;
    for group in groups {
        for ((report, more), (names, more_names)) in ingested
            .inputs
            .iter_mut()
            .zip(&group.ingested.inputs)
            .zip(services.iter_mut().zip(group.services))
        {
            // What a group counts of its own spans; the rest is the first pass's, in every group.
            let counts = &mut report.counts;
            for (kind, n) in &more.counts.kinds {
                *counts.kinds.entry(kind).or_default() += n;
            }
            counts.events += more.counts.events;
            counts.links += more.counts.links;
            counts.duplicates += more.counts.duplicates;
            // Each trace is in one group.
            counts.traces += more.counts.traces;
            names.extend(more_names);
        }
        traces += group.ingested.total.traces;
    }
    let mut total = super::super::Counts::default();
    for (report, names) in ingested.inputs.iter_mut().zip(&services) {
        report.counts.services = names.len() as u64;
        total.add(&report.counts);
    }
    total.traces = traces;
    total.services = services
        .iter()
        .flatten()
        .collect::<HashSet<&String>>()
        .len() as u64;
    ingested.total = total;
    Some(ingested)
}

#[cfg(test)]
mod tests {
    use super::cut_into_groups;

    #[test]
    fn groups_come_in_multiples_of_the_threads_and_no_larger_than_asked() {
        // 15 components of 10: 150 bytes in groups of at most 20 is 8 groups on 2 threads,
        // not 7 full ones and a half-empty one.
        let texts = vec![10; 15];
        let (cut, groups) = cut_into_groups(&texts, 20, 2);
        assert_eq!(groups, 8);
        assert_eq!(cut.len(), 15);
        let mut sizes = vec![0u64; groups];
        for (group, text) in cut.iter().zip(&texts) {
            sizes[*group] += text;
        }
        assert!(
            sizes.iter().all(|&size| (10..=20).contains(&size)),
            "{sizes:?}"
        );
        // In the order given: a group is a run of consecutive components.
        assert!(
            cut.windows(2).all(|w| w[1] == w[0] || w[1] == w[0] + 1),
            "{cut:?}"
        );
    }

    #[test]
    fn what_fits_in_one_group_stays_in_one() {
        assert_eq!(cut_into_groups(&[5, 5, 5], 100, 2), (vec![0, 0, 0], 1));
        assert_eq!(cut_into_groups(&[], 100, 2), (vec![], 1));
    }

    #[test]
    fn a_component_larger_than_a_group_leaves_no_empty_group_behind() {
        let (cut, groups) = cut_into_groups(&[1, 100, 1, 1], 10, 2);
        assert_eq!(cut.len(), 4);
        assert_eq!(*cut.last().unwrap() + 1, groups);
        // Every group numbered up to the count holds a component.
        for group in 0..groups {
            assert!(cut.contains(&group), "group {group} is empty: {cut:?}");
        }
    }

    #[test]
    fn even_texts_are_cut_evenly() {
        let texts = vec![1; 1000];
        let (cut, groups) = cut_into_groups(&texts, 300, 4);
        assert_eq!(groups, 4);
        let mut sizes = vec![0; groups];
        for group in cut {
            sizes[group] += 1;
        }
        assert_eq!(sizes, vec![250; 4]);
    }
}

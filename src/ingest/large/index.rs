//! Where the first pass found the spans of a large input: 16 bytes a span, whatever its size,
//! grouped by `ResourceSpans` with the line each is on and its resource, read once.

use rustc_hash::{FxHashMap, FxHashSet};
use std::sync::Arc;

use rayon::prelude::*;

use crate::model::{Resource, TraceId};

/// Where the spans of a file are, as the first pass found them.
#[derive(Debug, Default)]
pub(crate) struct SpanIndex {
    /// Every span with a usable trace id, in file order.
    pub(super) spans: Vec<SpanPlace>,
    /// One per `ResourceSpans`, in file order.
    pub(super) groups: Vec<Group>,
    /// The distinct resources, told apart by their text (exports repeat one resource in every
    /// batch).
    pub(super) resources: Vec<Arc<Resource>>,
    pub(super) resource_ids: FxHashMap<Box<str>, u32>,
    /// For each resource, whether it converted without a diagnostic: only then may a record
    /// with it be read without the whole read that gives them.
    pub(super) resource_clean: Vec<bool>,
}

/// 12 bytes a span, whatever its size: the only memory the first pass spends on a span (a
/// gigabyte's index is most of what the first pass holds besides its blocks).
#[derive(Clone, Copy, Debug)]
pub(super) struct SpanPlace {
    /// Where it starts, from its group's `offset`.
    pub(super) start: u32,
    pub(super) len: u32,
    /// `trace_key` of its trace.
    pub(super) trace: u32,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Group {
    /// Its first span in `SpanIndex::spans`; its spans run to the next group's first.
    pub(super) first_span: usize,
    pub(super) resource: u32,
    pub(super) line: u64,
    /// The offset its spans' `start` counts from: the first span's. A span that does not fit
    /// in 32 bits from there (a `ResourceSpans` of more than 4 GiB, or one whose spans are not
    /// in file order) starts another group with the same line and resource.
    pub(super) offset: u64,
}

/// A trace id folded to 32 bits. Two traces may share a key: the second pass then reads a
/// span it does not need, and drops it on its exact trace id.
pub(super) fn trace_key(trace: TraceId) -> u32 {
    let id = u128::from_le_bytes(trace.0);
    let folded = (id as u64) ^ ((id >> 64) as u64);
    (folded.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as u32
}

impl SpanIndex {
    /// A resource already seen, by its text, and whether it converted without a diagnostic.
    pub(crate) fn resource(&self, text: &str) -> Option<(u32, Arc<Resource>, bool)> {
        let id = *self.resource_ids.get(text)?;
        Some((
            id,
            Arc::clone(&self.resources[id as usize]),
            self.resource_clean[id as usize],
        ))
    }

    pub(crate) fn add_resource(
        &mut self,
        text: &str,
        resource: &Arc<Resource>,
        clean: bool,
    ) -> u32 {
        let id = self.resources.len() as u32;
        self.resources.push(Arc::clone(resource));
        self.resource_clean.push(clean);
        self.resource_ids.insert(text.into(), id);
        id
    }

    /// Starts the spans of a `ResourceSpans` on `line`.
    pub(crate) fn begin_group(&mut self, resource: u32, line: u64) {
        self.groups.push(Group {
            first_span: self.spans.len(),
            resource,
            line,
            offset: 0,
        });
    }

    /// Places a span of the group begun last.
    pub(crate) fn add_span(&mut self, offset: u64, len: u32, trace: TraceId) {
        let spans = self.spans.len();
        let group = self
            .groups
            .last_mut()
            .expect("a span is placed in the group begun before it");
        if group.first_span == spans {
            group.offset = offset;
        }
        let start = match offset
            .checked_sub(group.offset)
            .and_then(|start| u32::try_from(start).ok())
        {
            Some(start) => start,
            None => {
                let again = Group {
                    first_span: spans,
                    offset,
                    ..*group
                };
                self.groups.push(again);
                0
            }
        };
        self.spans.push(SpanPlace {
            start,
            len,
            trace: trace_key(trace),
        });
    }

    /// The places of the spans of group `i`: they run to the next group's first.
    fn spans_of(&self, i: usize) -> &[SpanPlace] {
        let end = self
            .groups
            .get(i + 1)
            .map_or(self.spans.len(), |next| next.first_span);
        &self.spans[self.groups[i].first_span..end]
    }

    /// Every span's place as (offset, length, trace key), in order, for tests to compare.
    #[cfg(test)]
    pub(super) fn places(&self) -> Vec<(u64, u32, u32)> {
        (0..self.groups.len())
            .flat_map(|i| {
                let offset = self.groups[i].offset;
                self.spans_of(i)
                    .iter()
                    .map(move |p| (offset + u64::from(p.start), p.len, p.trace))
            })
            .collect()
    }

    /// Everything the index holds, in order, for tests to compare.
    #[cfg(test)]
    pub(crate) fn describe(&self) -> String {
        let mut resources: Vec<_> = self.resource_ids.iter().collect();
        resources.sort();
        format!(
            "spans {:?}\ngroups {:?}\nresources {resources:?} {:?}",
            self.spans, self.groups, self.resources
        )
    }

    /// Renumbers the lines of an index of a part read as if it began the file.
    pub(crate) fn shift_lines(&mut self, by: u64) {
        for group in &mut self.groups {
            group.line += by;
        }
    }

    /// Appends the index of the next part of the same file.
    pub(crate) fn append(&mut self, other: SpanIndex) {
        let mut remap = vec![0u32; other.resources.len()];
        for (text, id) in other.resource_ids {
            remap[id as usize] = match self.resource_ids.get(&text) {
                Some(known) => *known,
                None => {
                    let new = self.resources.len() as u32;
                    self.resources
                        .push(Arc::clone(&other.resources[id as usize]));
                    self.resource_clean.push(other.resource_clean[id as usize]);
                    self.resource_ids.insert(text, new);
                    new
                }
            };
        }
        let base = self.spans.len();
        self.groups.extend(other.groups.into_iter().map(|g| Group {
            first_span: g.first_span + base,
            resource: remap[g.resource as usize],
            ..g
        }));
        self.spans.extend(other.spans);
    }

    /// Lets go of the places of every span but those of `traces` (and of traces sharing their
    /// keys), once the traces that matter are known and the second pass reads them a group at
    /// a time: `kept` then gives what it gave before, from a fraction of the memory.
    pub(super) fn retain(&mut self, traces: &FxHashSet<TraceId>) {
        let keys: FxHashSet<u32> = traces.iter().map(|t| trace_key(*t)).collect();
        // On all threads (a look-up for every span of the file), in file order. A group left
        // with no span places none.
        let kept: Vec<(Group, Vec<SpanPlace>)> = self
            .groups
            .par_iter()
            .enumerate()
            .filter_map(|(i, group)| {
                let places: Vec<SpanPlace> = self
                    .spans_of(i)
                    .iter()
                    .filter(|place| keys.contains(&place.trace))
                    .copied()
                    .collect();
                (!places.is_empty()).then_some((*group, places))
            })
            .collect();
        let mut spans = Vec::with_capacity(kept.iter().map(|(_, places)| places.len()).sum());
        let mut groups = Vec::with_capacity(kept.len());
        for (group, places) in kept {
            groups.push(Group {
                first_span: spans.len(),
                ..group
            });
            spans.extend(places);
        }
        self.spans = spans;
        self.groups = groups;
    }

    /// The spans of the traces kept, in file order, with their lines and resources.
    pub(super) fn kept(&self, traces: &FxHashSet<TraceId>) -> Vec<KeptSpan> {
        let keys: FxHashSet<u32> = traces.iter().map(|t| trace_key(*t)).collect();
        // On all threads (a look-up for every span of the file), in file order.
        self.groups
            .par_iter()
            .enumerate()
            .flat_map_iter(|(i, group)| {
                self.spans_of(i)
                    .iter()
                    .filter(|place| keys.contains(&place.trace))
                    .map(|place| KeptSpan {
                        offset: group.offset + u64::from(place.start),
                        len: place.len,
                        line: group.line,
                        resource: group.resource,
                        trace: place.trace,
                    })
            })
            .collect()
    }
}

impl SpanIndex {
    /// The spans at `places` (indices of the index's places, in order), as `kept` gives them.
    pub(super) fn kept_at(&self, places: &[u32]) -> Vec<KeptSpan> {
        places
            .iter()
            .map(|&place| {
                let place = place as usize;
                let group =
                    &self.groups[self.groups.partition_point(|g| g.first_span <= place) - 1];
                let span = self.spans[place];
                KeptSpan {
                    offset: group.offset + u64::from(span.start),
                    len: span.len,
                    line: group.line,
                    resource: group.resource,
                    trace: span.trace,
                }
            })
            .collect()
    }

    /// The places of the spans of each group of traces, in order (see `places_by_group`).
    pub(super) fn places_by_group(&self, groups: &[FxHashSet<TraceId>]) -> Vec<Vec<u32>> {
        places_by_group(self.spans.iter().map(|place| place.trace), groups)
    }
}

/// Where the spans of each group of traces are among spans whose trace keys are `keys`, in
/// order (a key two groups' traces share puts its spans in both): found at once for every
/// group, as looking them up for one group at a time goes over every span again for each,
/// which grew with the square of the export's size.
pub(super) fn places_by_group(
    keys: impl Iterator<Item = u32>,
    groups: &[FxHashSet<TraceId>],
) -> Vec<Vec<u32>> {
    let mut group_of_key: FxHashMap<u32, u32> = FxHashMap::default();
    let mut more_groups_of_key: FxHashMap<u32, Vec<u32>> = FxHashMap::default();
    for (number, traces) in groups.iter().enumerate() {
        let number = number as u32;
        for trace in traces {
            let key = trace_key(*trace);
            match *group_of_key.entry(key).or_insert(number) {
                first if first == number => {}
                _ => {
                    let more = more_groups_of_key.entry(key).or_default();
                    if !more.contains(&number) {
                        more.push(number);
                    }
                }
            }
        }
    }
    let mut places = vec![Vec::new(); groups.len()];
    for (at, key) in keys.enumerate() {
        if let Some(&group) = group_of_key.get(&key) {
            places[group as usize].push(at as u32);
            for &more in more_groups_of_key.get(&key).into_iter().flatten() {
                places[more as usize].push(at as u32);
            }
        }
    }
    places
}

#[derive(Clone, Copy, Debug)]
pub(super) struct KeptSpan {
    pub(super) offset: u64,
    pub(super) len: u32,
    pub(super) line: u64,
    pub(super) resource: u32,
    /// Its trace's key (`trace_key`).
    pub(super) trace: u32,
}

impl KeptSpan {
    pub(super) fn end(&self) -> u64 {
        self.offset + u64::from(self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_by_group_puts_a_key_two_groups_share_in_both() {
        let trace =
            |lo: u64, hi: u64| TraceId((u128::from(lo) | u128::from(hi) << 64).to_le_bytes());
        // Two traces with one key (their halves fold to the same), and one of their own.
        let (a, b, c) = (trace(1, 0), trace(0, 1), trace(7, 9));
        assert_eq!(trace_key(a), trace_key(b));
        let groups = [
            FxHashSet::from_iter([a]),
            FxHashSet::from_iter([b, c]),
            FxHashSet::default(),
        ];
        let keys = [trace_key(c), trace_key(a), 5, trace_key(b), trace_key(c)];
        let places = places_by_group(keys.into_iter(), &groups);
        assert_eq!(places, vec![vec![1, 3], vec![0, 1, 3, 4], vec![]]);
    }

    #[test]
    fn trace_keys_differ_for_ids_that_differ_in_either_half() {
        let a = TraceId([1; 16]);
        let mut b = a;
        b.0[15] = 2;
        let mut c = a;
        c.0[0] = 2;
        assert_ne!(trace_key(a), trace_key(b));
        assert_ne!(trace_key(a), trace_key(c));
    }
}

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

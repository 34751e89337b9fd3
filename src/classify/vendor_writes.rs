//! Writes shown by the vendor events joined to a tool call: one per piece of work the events
//! are about (a payment intent, a message, a run), its fate being its last word.

use super::writes::{Write, WriteOutcome, WriteSource};
use crate::correlate::{EventJoin, Joined, ToolCall, key_preference};
use crate::model::Role;
use crate::model::time::rfc3339;

/// Writes shown by the vendor events joined to a tool call, one per piece of work the events
/// are about. An event that joined through a request whose spans already show the write
/// corroborates that write instead of reporting it twice.
pub(super) fn add_event_writes(joined: &Joined<'_>, tool: &ToolCall, writes: &mut Vec<Write>) {
    let events = joined.events;
    let mut groups: Vec<((&str, &str), Vec<&EventJoin>)> = Vec::new();
    // Follow-ups (a refund naming the charge) are about the call's work, never writes of it.
    for join in tool.events.iter().filter(|j| !j.follow_up) {
        let event = &events[join.event];
        let key = (
            event.vendor.as_str(),
            event.subject.as_deref().unwrap_or(event.id.as_str()),
        );
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(join),
            None => groups.push((key, vec![join])),
        }
    }
    let role_order = |j: &&EventJoin| match events[j.event].role {
        Some(Role::Accepted) => 0,
        Some(Role::Started) => 1,
        Some(Role::Commit) => 2,
        Some(Role::Cancelled) | Some(Role::Failed) => 3,
        None => 4,
    };
    let outbound_of = |carrier: usize| {
        tool.downstream
            .iter()
            .find(|r| r.span == carrier)
            .and_then(|r| r.outbound)
    };
    for (_, mut members) in groups {
        members.sort_by_key(|j| (events[j.event].time, role_order(j), j.event));
        let last_with = |roles: &[Role]| {
            members
                .iter()
                .copied()
                .rev()
                .find(|j| events[j.event].role.is_some_and(|r| roles.contains(&r)))
        };
        // The work's fate is its last word: an object created and then paid landed when it
        // was paid; one created and then cancelled did not land.
        let commit = last_with(&[Role::Commit]);
        let stopped = last_with(&[Role::Cancelled, Role::Failed]);
        let accepted = members.iter().copied().find(|j| {
            matches!(
                events[j.event].role,
                Some(Role::Accepted) | Some(Role::Started)
            ) && commit.is_none_or(|c| events[j.event].time <= events[c.event].time)
        });
        let stopped_last =
            stopped.filter(|x| commit.is_none_or(|c| events[x.event].time >= events[c.event].time));
        let (outcome, shown) = if let Some(stop) = stopped_last {
            (
                WriteOutcome::RolledBack {
                    time: events[stop.event].time,
                    inferred: false,
                },
                stop,
            )
        } else if let Some(c) = commit {
            (
                WriteOutcome::Committed {
                    time: events[c.event].time,
                    inferred: false,
                },
                c,
            )
        } else {
            match accepted {
                Some(a) => (WriteOutcome::Accepted, a),
                None => continue,
            }
        };
        let event = &events[shown.event];
        let outbound = outbound_of(shown.carrier);
        // The group is joined by the most specific key any of its events carried.
        let strongest = members
            .iter()
            .copied()
            .min_by_key(|j| (j.weak, key_preference(j.key)))
            .unwrap_or(shown);
        let describe = |j: &EventJoin| {
            let e = &events[j.event];
            format!(
                "{} event {} ({}{}) at {}",
                e.vendor,
                e.id,
                e.kind,
                e.role
                    .map(|r| format!(", {}", r.as_str()))
                    .unwrap_or_default(),
                rfc3339(e.time)
            )
        };
        let corroborates = !matches!(outcome, WriteOutcome::Accepted)
            && writes.iter().any(|w| {
                matches!(w.source, WriteSource::Span(_))
                    && (outbound.is_none() || w.outbound == outbound)
            });
        if corroborates {
            for w in writes.iter_mut().filter(|w| {
                matches!(w.source, WriteSource::Span(_))
                    && (outbound.is_none() || w.outbound == outbound)
            }) {
                w.evidence
                    .push(format!("corroborated by {}", describe(shown)));
            }
            continue;
        }
        let mut evidence: Vec<String> = members.iter().take(4).map(|j| describe(j)).collect();
        if members.len() > 4 {
            evidence.push(format!(
                "and {} more events about the same work",
                members.len() - 4
            ));
        }
        let key = if strongest.weak {
            evidence.push(
                "joined on the conversation id alone: the event does not name the call, so it goes to the call that was running when it happened".to_owned(),
            );
            format!("{} (weak)", strongest.key.as_str())
        } else {
            evidence.push(format!(
                "joined on {} {:?}",
                strongest.key.as_str(),
                strongest.value
            ));
            strongest.key.as_str().to_owned()
        };
        let queued = accepted.is_some() && matches!(outcome, WriteOutcome::Committed { .. });
        if queued {
            evidence.push(
                "the work was accepted first and committed later: it ran from a queue".to_owned(),
            );
        }
        if matches!(outcome, WriteOutcome::Accepted) {
            evidence.push(
                "no event says the accepted work completed, failed or was cancelled".to_owned(),
            );
        }
        writes.push(Write {
            outcome,
            source: WriteSource::Event(shown.event),
            operation: event.kind.clone(),
            join: key,
            queued,
            outbound,
            handler: None,
            precision: event.precision.max(1),
            evidence,
            cancelled: false,
        });
    }
}

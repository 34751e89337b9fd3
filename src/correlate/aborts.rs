//! Abort logs joined to turns: a record names its conversation (and perhaps its trace) and the
//! time of the Stop; it aborts the turn of that conversation that was running then.

use super::{Abort, AbortSource, Joined};
use crate::model::AbortRecord;

/// Makes each record the abort of the turn it names, where it is earlier than that turn's own
/// signals (a record confirms a later one: that turn's abort is then no longer only inferred).
/// `skew`: how far the front end's clock may be ahead of the agent's. Returns the records no
/// turn took, as indices into `records`.
pub fn place_aborts(joined: &mut Joined<'_>, records: &[AbortRecord], skew: u64) -> Vec<usize> {
    let mut unplaced = Vec::new();
    for (r, record) in records.iter().enumerate() {
        let Some(turn) = turn_of(joined, record, skew) else {
            unplaced.push(r);
            continue;
        };
        let turn = &mut joined.turns[turn];
        turn.is_agent_turn = true;
        let reason = record
            .reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        let signal = format!(
            "abort log {}:{}{reason}",
            record.origin.input, record.origin.line
        );
        match &mut turn.abort {
            // An earlier signal of the turn stands; the record makes it known, not inferred.
            Some(abort) if abort.time <= record.time => {
                abort.source = abort.source.min(AbortSource::Log);
            }
            previous => {
                let source = previous
                    .as_ref()
                    .map_or(AbortSource::Log, |a| a.source.min(AbortSource::Log));
                *previous = Some(Abort {
                    time: record.time,
                    precision: record.precision,
                    span: None,
                    signal,
                    source,
                });
            }
        }
    }
    unplaced
}

/// The turn a record names: among its conversation's turns (those of its trace, when it names
/// one that is there), the latest that had started by the record's time (give or take the
/// clocks' `skew` and the time's precision: a time written to the second may fall before the
/// turn's start); where none had, the first of its trace.
fn turn_of(joined: &Joined<'_>, record: &AbortRecord, skew: u64) -> Option<usize> {
    let conversation = joined.conversation(&record.conversation_id)?;
    let in_trace: Vec<usize> = conversation
        .turns
        .iter()
        .copied()
        .filter(|t| Some(joined.turns[*t].trace_id) == record.trace_id)
        .collect();
    let candidates = if in_trace.is_empty() {
        &conversation.turns
    } else {
        &in_trace
    };
    let started = candidates
        .iter()
        .copied()
        .filter(|t| {
            joined.turns[*t].start
                <= record
                    .time
                    .saturating_add(skew)
                    .saturating_add(record.precision)
        })
        .max_by_key(|t| (joined.turns[*t].start, *t));
    started.or_else(|| (!in_trace.is_empty()).then(|| in_trace[0]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::correlate::join;
    use crate::model::Origin;
    use crate::rules::Rules;
    use crate::testutil::{agent_turn, tool, trace};
    use std::sync::Arc;

    fn record(conversation: &str, at_ms: u64, trace_n: Option<u8>) -> AbortRecord {
        AbortRecord {
            conversation_id: conversation.to_owned(),
            time: at_ms * 1_000_000,
            precision: 1,
            trace_id: trace_n.map(trace),
            reason: Some("stop".to_owned()),
            origin: Origin {
                input: Arc::from("aborts.jsonl"),
                line: 3,
            },
        }
    }

    #[test]
    fn a_record_aborts_the_turn_running_at_its_time() {
        let spans = vec![
            agent_turn(1, "c1", 0, 1000).build(),
            tool(1, 2, "call_a", 10, 900).build(),
            agent_turn(2, "c1", 2000, 3000).build(),
        ];
        let rules = Rules::default();
        let mut joined = join(&spans, &[], &rules);
        let unplaced = place_aborts(
            &mut joined,
            &[record("c1", 500, None), record("nobody", 500, None)],
            0,
        );
        assert_eq!(unplaced, [1]);
        let aborted: Vec<_> = joined
            .turns
            .iter()
            .map(|t| {
                t.abort
                    .as_ref()
                    .map(|a| (a.time, a.inferred(), a.signal.clone()))
            })
            .collect();
        assert_eq!(
            aborted,
            [
                Some((
                    500_000_000,
                    false,
                    "abort log aborts.jsonl:3 (stop)".to_owned()
                )),
                None
            ]
        );
    }

    #[test]
    fn a_record_naming_a_trace_goes_to_it_even_from_a_clock_behind() {
        let spans = vec![
            agent_turn(1, "c1", 0, 1000).build(),
            agent_turn(2, "c1", 2000, 3000).build(),
        ];
        let rules = Rules::default();
        let mut joined = join(&spans, &[], &rules);
        assert!(place_aborts(&mut joined, &[record("c1", 1990, Some(2))], 0).is_empty());
        assert!(joined.turns[1].abort.is_some());
        assert!(joined.turns[0].abort.is_none());
    }

    #[test]
    fn a_recorded_abort_before_the_record_stays_and_is_confirmed() {
        let spans = vec![
            agent_turn(1, "c1", 0, 1000)
                .event("abort", 300, &[])
                .build(),
        ];
        let rules = Rules::default();
        let mut joined = join(&spans, &[], &rules);
        place_aborts(&mut joined, &[record("c1", 310, None)], 0);
        let abort = joined.turns[0].abort.as_ref().unwrap();
        assert_eq!(abort.time, 300_000_000);
        assert!(abort.signal.contains("\"abort\""));
    }

    #[test]
    fn a_time_written_to_the_second_may_name_a_turn_that_started_within_it() {
        let spans = vec![
            agent_turn(1, "c1", 0, 1000).build(),
            agent_turn(2, "c1", 2300, 3000).build(),
        ];
        let rules = Rules::default();
        let mut joined = join(&spans, &[], &rules);
        // The Stop was clicked in [2 s, 3 s): the second turn had begun by then.
        let mut second = record("c1", 2000, None);
        second.precision = 1_000_000_000;
        assert!(place_aborts(&mut joined, &[second], 0).is_empty());
        assert!(joined.turns[1].abort.is_some());
        assert!(joined.turns[0].abort.is_none());
    }
}

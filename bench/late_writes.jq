# The naive time filter (bench/README.md, "The shared answer"), as one streaming pass of jq:
#
#   jq -c -n -f bench/late_writes.jq FILE.jsonl
#
# For each trace whose root span (no parentSpanId) has an event named `abort`, the abort time A
# is that event's time (the earliest, if several) and the conversation is the root's
# `gen_ai.conversation.id` (the trace id when it has none). A late write is a span of that same
# trace whose `db.operation.name` is `COMMIT` and whose end time is after A. Linked worker
# traces are not followed: this is the time filter DESIGN.md section 4 warns about.
#
# `-n` with `inputs` reads one line (one Collector export) at a time: the file is never slurped.
# Only two small maps are kept: aborted roots and COMMIT end times, both by trace id.
#
# Times are compared as decimal strings: jq 1.6 numbers are IEEE doubles and nanosecond
# timestamps (~1.8e18) are past 2^53, so `tonumber` would round them. Two decimal strings
# without leading zeros compare like the numbers when the longer one is the larger.

def ns_after($a; $b): ($a | length) > ($b | length) or (($a | length) == ($b | length) and $a > $b);
def ns: if type == "number" then tostring else . end;

reduce (inputs | .resourceSpans[]?.scopeSpans[]?.spans[]?) as $s
  ({aborts: {}, commits: {}};
   if (($s.parentSpanId // "") == "") and any($s.events[]?; .name == "abort") then
     .aborts[$s.traceId] = {
       at: ([$s.events[] | select(.name == "abort") | .timeUnixNano | ns] | min_by([length, .])),
       conversation: ([$s.attributes[]? | select(.key == "gen_ai.conversation.id") | .value.stringValue][0] // $s.traceId)
     }
   elif any($s.attributes[]?; .key == "db.operation.name" and .value.stringValue == "COMMIT") then
     .commits[$s.traceId] += [$s.endTimeUnixNano | ns]
   else . end)
| .commits as $commits
| [.aborts | to_entries[]
   | .key as $trace | .value as $abort
   | {conversation: $abort.conversation,
      late: ([($commits[$trace] // [])[] | select(ns_after(.; $abort.at))] | length)}] as $rows
| {
    aborted_traces: ($rows | length),
    late_writes: ([$rows[].late] | add // 0),
    by_conversation: ([$rows[] | select(.late > 0)]
                      | group_by(.conversation)
                      | map({key: .[0].conversation, value: (map(.late) | add)})
                      | from_entries)
  }

-- The whole window of an otel_traces table (the clickhouseexporter's Map schema) as OTLP/JSON
-- Lines, one ExportTraceServiceRequest a span: what "export the window to a file and scan it"
-- transfers. Parameters: {since:Int64}, {until:Int64} (Unix nanoseconds, the window as
-- abortaudit's --since/--until, widened by its --grace). Attribute values go out as strings,
-- as the Map columns hold them.
SELECT concat(
  '{"resourceSpans":[{"resource":{"attributes":',
  toJSONString(arrayMap((k, v) -> CAST((k, tuple(v)), 'Tuple(key String, value Tuple(stringValue String))'), mapKeys(ResourceAttributes), mapValues(ResourceAttributes))),
  '},"scopeSpans":[{"scope":{"name":', toJSONString(ScopeName), ',"version":', toJSONString(ScopeVersion), '},"spans":[{',
  '"traceId":"', TraceId, '","spanId":"', SpanId, '","parentSpanId":"', ParentSpanId, '",',
  '"name":', toJSONString(SpanName), ',',
  '"kind":', toString(indexOf(['Unspecified', 'Internal', 'Server', 'Client', 'Producer', 'Consumer'], initcap(lower(replaceOne(SpanKind, 'SPAN_KIND_', '')))) - 1), ',',
  '"startTimeUnixNano":"', toString(toUnixTimestamp64Nano(Timestamp)), '",',
  '"endTimeUnixNano":"', toString(toUInt64(toUnixTimestamp64Nano(Timestamp)) + toUInt64(Duration)), '",',
  '"attributes":', toJSONString(arrayMap((k, v) -> CAST((k, tuple(v)), 'Tuple(key String, value Tuple(stringValue String))'), mapKeys(SpanAttributes), mapValues(SpanAttributes))), ',',
  '"events":', toJSONString(arrayMap((t, n, a) -> CAST((toString(toUnixTimestamp64Nano(t)), n, arrayMap((k, v) -> CAST((k, tuple(v)), 'Tuple(key String, value Tuple(stringValue String))'), mapKeys(a), mapValues(a))), 'Tuple(timeUnixNano String, name String, attributes Array(Tuple(key String, value Tuple(stringValue String))))'), Events.Timestamp, Events.Name, Events.Attributes)), ',',
  '"links":', toJSONString(arrayMap((t, s) -> CAST((t, s), 'Tuple(traceId String, spanId String)'), Links.TraceId, Links.SpanId)), ',',
  '"status":{"code":', toString(indexOf(['Unset', 'Ok', 'Error'], initcap(lower(replaceOne(StatusCode, 'STATUS_CODE_', '')))) - 1), ',"message":', toJSONString(StatusMessage), '}}]}]}]}'
)
FROM otel_traces
WHERE Timestamp >= fromUnixTimestamp64Nano({since:Int64}) AND Timestamp <= fromUnixTimestamp64Nano({until:Int64})
FORMAT TSVRaw

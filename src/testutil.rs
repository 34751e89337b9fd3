//! Synthetic spans for the unit tests of the join and the classification.

use std::sync::Arc;

use crate::model::{
    Attributes, Event, KeyValue, Link, Origin, Resource, Span, SpanId, SpanKind, Status, TraceId,
    Value,
};

/// A small builder for synthetic spans in tests.
pub struct SpanBuilder(pub Span);

pub fn trace(n: u8) -> TraceId {
    TraceId([n; 16])
}

pub fn span(
    trace_n: u8,
    id: u8,
    name: &str,
    service: &str,
    start_ms: u64,
    end_ms: u64,
) -> SpanBuilder {
    SpanBuilder(Span {
        trace_id: trace(trace_n),
        span_id: SpanId([id; 8]),
        parent_span_id: None,
        name: name.into(),
        kind: SpanKind::Internal,
        start: start_ms * 1_000_000,
        end: Some(end_ms * 1_000_000),
        status: Status::default(),
        attributes: Attributes::default(),
        resource: Arc::new(Resource {
            service_name: service.to_owned(),
            attributes: Attributes::default(),
        }),
        events: Box::default(),
        links: Box::default(),
        origin: Origin {
            input: Arc::from("test"),
            line: 1,
        },
    })
}

impl SpanBuilder {
    pub fn parent(mut self, id: u8) -> Self {
        self.0.parent_span_id = Some(SpanId([id; 8]));
        self
    }
    pub fn kind(mut self, kind: SpanKind) -> Self {
        self.0.kind = kind;
        self
    }
    pub fn attr(mut self, key: &str, value: &str) -> Self {
        self.0.attributes.0.push(KeyValue {
            key: key.into(),
            value: Value::String(value.to_owned()),
        });
        self
    }
    pub fn int(mut self, key: &str, value: i64) -> Self {
        self.0.attributes.0.push(KeyValue {
            key: key.into(),
            value: Value::Int(value),
        });
        self
    }
    pub fn event(mut self, name: &str, at_ms: u64, attrs: &[(&str, &str)]) -> Self {
        let mut events = std::mem::take(&mut self.0.events).into_vec();
        events.push(Event {
            name: name.to_owned(),
            time: at_ms * 1_000_000,
            attributes: Attributes(
                attrs
                    .iter()
                    .map(|(k, v)| KeyValue {
                        key: (*k).into(),
                        value: Value::String((*v).to_owned()),
                    })
                    .collect(),
            ),
        });
        self.0.events = events.into();
        self
    }
    pub fn link(mut self, trace_n: u8, id: u8) -> Self {
        let mut links = std::mem::take(&mut self.0.links).into_vec();
        links.push(Link {
            trace_id: trace(trace_n),
            span_id: SpanId([id; 8]),
            attributes: Attributes::default(),
        });
        self.0.links = links.into();
        self
    }
    /// Times in nanoseconds, where milliseconds are too coarse.
    pub fn at_ns(mut self, start: u64, end: u64) -> Self {
        self.0.start = start;
        self.0.end = Some(end);
        self
    }
    pub fn error(mut self, message: &str) -> Self {
        self.0.status = Status {
            code: crate::model::StatusCode::Error,
            message: message.into(),
        };
        self
    }
    pub fn resource_attr(mut self, key: &str, value: &str) -> Self {
        let mut resource = (*self.0.resource).clone();
        resource.attributes.0.push(KeyValue {
            key: key.into(),
            value: Value::String(value.to_owned()),
        });
        self.0.resource = Arc::new(resource);
        self
    }
    pub fn open(mut self) -> Self {
        self.0.end = None;
        self
    }
    pub fn build(self) -> Span {
        self.0
    }
}

pub fn agent_turn(trace_n: u8, conversation: &str, start_ms: u64, end_ms: u64) -> SpanBuilder {
    span(
        trace_n,
        1,
        "invoke_agent support",
        "agent",
        start_ms,
        end_ms,
    )
    .attr("gen_ai.operation.name", "invoke_agent")
    .attr("gen_ai.conversation.id", conversation)
}

pub fn tool(trace_n: u8, id: u8, call: &str, start_ms: u64, end_ms: u64) -> SpanBuilder {
    span(
        trace_n,
        id,
        "execute_tool refund",
        "agent",
        start_ms,
        end_ms,
    )
    .parent(1)
    .attr("gen_ai.operation.name", "execute_tool")
    .attr("gen_ai.tool.name", "refund")
    .attr("gen_ai.tool.call.id", call)
}

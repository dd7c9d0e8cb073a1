//! Trace context: what a span's parent and its link are.
//!
//! Owns reading the request's ambient context on the request path ([`Clues::read`]: one
//! call of the ambient function and two header lookups, no parsing), and, in the worker,
//! parsing W3C trace context and choosing the parent: the context the client put in
//! `params._meta` (SEP-414) when there is one, with the ambient HTTP context linked;
//! otherwise the ambient context itself. Never makes a span.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use http::{HeaderMap, Version};

use crate::event::trace::Clues;
use opentelemetry::Context;
use opentelemetry::trace::{
    Link, SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
};

/// Where the ambient context comes from: by default the OpenTelemetry context current
/// when the request reaches the layer.
pub(crate) type AmbientFn = Arc<dyn Fn() -> Context + Send + Sync>;

/// Reads the ambient context and the trace headers of a request (on the request path). A
/// panicking ambient function counts as no ambient context.
pub(crate) fn read_clues(headers: &HeaderMap, version: Version, ambient: &AmbientFn) -> Clues {
    let ambient = catch_unwind(AssertUnwindSafe(|| {
        let cx = ambient();
        let span = cx.span();
        let context = span.span_context();
        context.is_valid().then(|| context.clone())
    }))
    .ok()
    .flatten();
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(Box::<str>::from)
    };
    Clues {
        ambient,
        traceparent: text("traceparent"),
        tracestate: text("tracestate"),
        http_version: version,
    }
}

/// The ambient HTTP context: the current span's, else the request's headers'.
fn ambient(clues: &Clues) -> Option<SpanContext> {
    clues.ambient.clone().or_else(|| {
        clues
            .traceparent
            .as_deref()
            .and_then(|parent| remote(parent, clues.tracestate.as_deref()))
    })
}

/// The span's parent context and the link to the ambient context, if any. The client's
/// context from `params._meta` comes first (the MCP request is the client span's child,
/// whatever transport carried it); the ambient HTTP context is then linked. Without one in
/// `_meta`, the ambient context is the parent; without either, the span is a root.
pub(crate) fn parent_and_link(
    meta_traceparent: Option<&str>,
    meta_tracestate: Option<&str>,
    clues: &Clues,
) -> (Context, Option<Link>) {
    let meta = meta_traceparent.and_then(|parent| remote(parent, meta_tracestate));
    let ambient = ambient(clues);
    match (meta, ambient) {
        (Some(meta), ambient) => {
            let link = ambient
                .filter(|a| a.span_id() != meta.span_id() || a.trace_id() != meta.trace_id())
                .map(Link::with_context);
            (Context::new().with_remote_span_context(meta), link)
        }
        (None, Some(ambient)) => (Context::new().with_remote_span_context(ambient), None),
        (None, None) => (Context::new(), None),
    }
}

/// A W3C `traceparent` (with its `tracestate`) as a remote span context, when valid:
/// version `00` exactly 55 characters, a later version at least that with `-` after;
/// lowercase hex; ids not all zero.
pub(crate) fn remote(traceparent: &str, tracestate: Option<&str>) -> Option<SpanContext> {
    let text = traceparent.trim();
    let bytes = text.as_bytes();
    if bytes.len() < 55 || (bytes.len() > 55 && bytes[55] != b'-') {
        return None;
    }
    let version = text.get(0..2)?;
    if version == "ff" || (version == "00" && bytes.len() != 55) {
        return None;
    }
    if [2, 35, 52].iter().any(|&i| bytes[i] != b'-') {
        return None;
    }
    let hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let (trace, span, flags) = (text.get(3..35)?, text.get(36..52)?, text.get(53..55)?);
    if !hex(version) || !hex(trace) || !hex(span) || !hex(flags) {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = SpanId::from_hex(span).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    let state = tracestate
        .and_then(|s| s.parse::<TraceState>().ok())
        .unwrap_or_default();
    let context = SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags & TraceFlags::SAMPLED.to_u8()),
        true,
        state,
    );
    context.is_valid().then_some(context)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn reads_a_valid_traceparent() {
        let cx = remote(PARENT, Some("rojo=00f067aa0ba902b7")).expect("valid");
        assert_eq!(
            cx.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(cx.span_id().to_string(), "00f067aa0ba902b7");
        assert!(cx.is_sampled() && cx.is_remote());
        assert_eq!(cx.trace_state().get("rojo"), Some("00f067aa0ba902b7"));
    }

    #[test]
    fn refuses_malformed_traceparents() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0é",
        ] {
            assert!(remote(bad, None).is_none(), "{bad:?}");
        }
        // A later version may carry more fields.
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future";
        assert!(remote(later, None).is_some());
    }

    #[test]
    fn meta_is_the_parent_and_the_ambient_context_is_linked() {
        let header = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let clues = Clues {
            ambient: None,
            traceparent: Some(header.into()),
            tracestate: None,
            http_version: Version::HTTP_11,
        };
        let (parent, link) = parent_and_link(Some(PARENT), None, &clues);
        assert_eq!(
            parent.span().span_context().span_id().to_string(),
            "00f067aa0ba902b7"
        );
        let link = link.expect("linked");
        assert_eq!(link.span_context.span_id().to_string(), "b7ad6b7169203331");
        // Without `_meta`, the ambient context is the parent.
        let (parent, link) = parent_and_link(None, None, &clues);
        assert_eq!(
            parent.span().span_context().span_id().to_string(),
            "b7ad6b7169203331"
        );
        assert!(link.is_none());
        // Neither: a root.
        let bare = Clues {
            traceparent: None,
            ..clues
        };
        let (parent, _) = parent_and_link(None, None, &bare);
        assert!(!parent.has_active_span());
    }
}

//! Everything a server can hook, in one place.
//!
//! Request hooks run on the request path, synchronously, before the server sees the
//! request, and receive a [`RequestView`] (the request head and its parsed
//! [`McpMessage`]s). Keep them lightweight: read a header, an extension an auth layer set,
//! a field of the arguments; no I/O.
//!
//! | hook | set with | returns | a panic |
//! |---|---|---|---|
//! | who made the request | [`identify`](crate::AnalyticsLayerBuilder::identify) ([`identity::from_header`], [`identity::from_bearer_token`]) | `Option<`[`UserIdentity`]`>` | the event goes out anonymous |
//! | the server's own session key | [`session_key`](crate::AnalyticsLayerBuilder::session_key) | `Option<String>` | grouped as if no key was given |
//! | short labels | [`tags`](crate::AnalyticsLayerBuilder::tags) | `Vec<(String, String)>` | the request's events are dropped |
//! | free-form properties | [`properties`](crate::AnalyticsLayerBuilder::properties) | `Option<serde_json::Value>` | the request's events are dropped |
//!
//! Event hooks run in the background worker, on events about to leave the process:
//!
//! | hook | set with | does | a panic |
//! |---|---|---|---|
//! | whole-event redaction | [`redact_event`](crate::AnalyticsLayerBuilder::redact_event) | changes an [`Event`], or drops it | the event is dropped |
//! | string redaction | [`redact`](crate::AnalyticsLayerBuilder::redact) | replaces strings in payloads and user data | the event is dropped |
//!
//! Every panic is caught and counted ([`Stats::hook_panics`](crate::Stats::hook_panics),
//! [`Dropped`](crate::Dropped)); a request is never affected.
//!
//! ```
//! use tower_mcp_analytics::{AnalyticsLayer, identity};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let layer = AnalyticsLayer::builder()
//!     .identify(identity::from_header("x-user-id"))
//!     .tags(|request| match request.header("x-region") {
//!         Some(region) => vec![("region".to_owned(), region.to_owned())],
//!         None => Vec::new(),
//!     })
//!     .redact(|text| text.starts_with("sk_").then(|| "[secret]".to_owned()))
//!     .build();
//! # }
//! ```
//!
//! Owns the hooks' signatures and their panic-safe running on the request path. Never
//! stores what a hook returned beyond the request it was asked about.

pub mod identity;
mod run;
mod view;

use std::sync::Arc;

pub use crate::event::UserIdentity;
pub(crate) use run::Hooks;
pub use view::{McpMessage, RequestView};

use crate::event::Event;

/// The signature of an `identify` hook.
pub(crate) type IdentifyFn = Arc<dyn Fn(&RequestView<'_>) -> Option<UserIdentity> + Send + Sync>;
/// The signature of a `session_key` hook.
pub(crate) type SessionKeyFn = Arc<dyn Fn(&RequestView<'_>) -> Option<String> + Send + Sync>;
/// The signature of a `tags` hook.
pub(crate) type TagsFn = Arc<dyn Fn(&RequestView<'_>) -> Vec<(String, String)> + Send + Sync>;
/// The signature of a `properties` hook.
pub(crate) type PropertiesFn =
    Arc<dyn Fn(&RequestView<'_>) -> Option<serde_json::Value> + Send + Sync>;
/// The signature of a `redact` hook: a replacement for a string, or `None` to keep it.
pub(crate) type RedactFn = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;
/// The signature of a `redact_event` hook: `false` drops the event.
pub(crate) type RedactEventFn = Arc<dyn Fn(&mut Event) -> bool + Send + Sync>;

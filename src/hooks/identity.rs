//! Who made a request: ready-made `identify` functions ([`from_header`],
//! [`from_bearer_token`]) and the [`UserIdentity`] they return.
//!
//! Owns reading an identity off a request. Never keeps state: which users are new or
//! changed is the worker's business, and the bounds an identity is held to are the
//! event's.

use super::RequestView;
pub use crate::event::UserIdentity;

/// An `identify` function reading the user id from a header.
///
/// ```
/// use tower_mcp_analytics::{AnalyticsLayer, identity};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let layer = AnalyticsLayer::builder().identify(identity::from_header("x-user-id")).build();
/// # }
/// ```
pub fn from_header(
    name: &'static str,
) -> impl Fn(&RequestView<'_>) -> Option<UserIdentity> + Send + Sync + 'static {
    move |request| {
        let value = request.header(name)?.trim();
        (!value.is_empty()).then(|| UserIdentity::new(value))
    }
}

/// An `identify` function that turns the `Authorization: Bearer` token into a stable,
/// anonymous user id (`usr_` + 27 base62 characters of its SHA-256): the same token is the
/// same user, and the token itself never leaves the process.
///
/// ```
/// use tower_mcp_analytics::{AnalyticsLayer, identity};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let layer = AnalyticsLayer::builder().identify(identity::from_bearer_token()).build();
/// # }
/// ```
pub fn from_bearer_token()
-> impl Fn(&RequestView<'_>) -> Option<UserIdentity> + Send + Sync + 'static {
    |request| {
        let value = request.header("authorization")?;
        let (scheme, token) = value.split_once(' ')?;
        let token = token.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
            return None;
        }
        Some(UserIdentity::new(crate::event::ids::derived_id(
            "usr",
            "tower-mcp-analytics/bearer-token",
            token.as_bytes(),
        )))
    }
}

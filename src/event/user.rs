//! [`UserIdentity`]: a user as events carry them, and the bounds an identity is held to.
//!
//! Owns what an identity is and the bounds applied before it leaves the process (an
//! over-long id becomes a stable digest, an over-long name is cut, over-large data is
//! left out). Never decides who a user is: that is the server's `identify` hook.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Longest user id kept as it is; longer ids are replaced by a stable digest of
/// themselves, so that hostile identities cannot grow memory.
pub(crate) const MAX_USER_ID: usize = 256;
/// Longest user name kept; longer names are cut at a character boundary.
pub(crate) const MAX_USER_NAME: usize = 256;
/// Largest user `data` kept, serialised; larger data is left out.
pub(crate) const MAX_USER_DATA: usize = 8 * 1024;

impl UserIdentity {
    /// The identity within the layer's size bounds.
    pub(crate) fn bounded(mut self) -> Self {
        if self.id.len() > MAX_USER_ID {
            let digest = Sha256::digest(self.id.as_bytes());
            self.id = super::ids::derived_id("usr", "tower-mcp-analytics/long-user-id", &digest);
        }
        if let Some(name) = &mut self.name
            && name.len() > MAX_USER_NAME
        {
            let mut end = MAX_USER_NAME;
            while !name.is_char_boundary(end) {
                end -= 1;
            }
            name.truncate(end);
        }
        if self
            .data
            .as_ref()
            .is_some_and(|data| serde_json::to_vec(data).map_or(true, |v| v.len() > MAX_USER_DATA))
        {
            self.data = None;
        }
        self
    }
}

/// A user, as the server's `identify` hook names them.
///
/// ```
/// use tower_mcp_analytics::UserIdentity;
///
/// let user = UserIdentity::new("user-42").with_name("Ada");
/// assert_eq!(user.id, "user-42");
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UserIdentity {
    /// A stable id for the user.
    pub id: String,
    /// A display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Any JSON data about the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl UserIdentity {
    /// A user known by id only.
    ///
    /// ```
    /// # use tower_mcp_analytics::UserIdentity;
    /// assert_eq!(UserIdentity::new("u1").name, None);
    /// ```
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            name: None,
            data: None,
        }
    }

    /// Adds a display name.
    ///
    /// ```
    /// # use tower_mcp_analytics::UserIdentity;
    /// assert_eq!(UserIdentity::new("u1").with_name("Ada").name.as_deref(), Some("Ada"));
    /// ```
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Adds JSON data.
    ///
    /// ```
    /// # use tower_mcp_analytics::UserIdentity;
    /// let user = UserIdentity::new("u1").with_data(serde_json::json!({"plan": "pro"}));
    /// assert_eq!(user.data.unwrap()["plan"], "pro");
    /// ```
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }
}

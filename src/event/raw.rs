//! [`RawJson`]: a payload of an event (arguments, a result, an error's data) as the JSON
//! text it is delivered as.
//!
//! Owns the payload type's contract: the text is always valid JSON, compared and
//! serialised as text, turned into a [`Value`] only when asked. Never parses on its own.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

/// A JSON payload as text: written once by the layer, serialised as it is.
///
/// ```
/// use tower_mcp_analytics::RawJson;
///
/// let payload = RawJson::from_value(&serde_json::json!({"city": "Paris"}))?;
/// assert_eq!(payload.get(), r#"{"city":"Paris"}"#);
/// assert_eq!(payload.to_value()["city"], "Paris");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RawJson(Box<RawValue>);

impl RawJson {
    /// The JSON text.
    ///
    /// ```
    /// # use tower_mcp_analytics::RawJson;
    /// let payload = RawJson::from_value(&serde_json::json!([1, 2]))?;
    /// assert_eq!(payload.get(), "[1,2]");
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// The payload as a [`Value`] (parsed on each call; `Value::Null` if it is nested
    /// deeper than serde_json reads, which the layer's payloads never are).
    ///
    /// ```
    /// # use tower_mcp_analytics::RawJson;
    /// let payload = RawJson::from_value(&serde_json::json!({"n": 1}))?;
    /// assert_eq!(payload.to_value()["n"], 1);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn to_value(&self) -> Value {
        serde_json::from_str(self.0.get()).unwrap_or(Value::Null)
    }

    /// A payload from a value, e.g. to replace one in a `redact_event` hook.
    ///
    /// ```
    /// # use tower_mcp_analytics::RawJson;
    /// let payload = RawJson::from_value(&serde_json::json!("[removed]"))?;
    /// assert_eq!(payload.get(), r#""[removed]""#);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn from_value(value: &Value) -> Result<Self, serde_json::Error> {
        serde_json::value::to_raw_value(value).map(Self)
    }

    /// A payload from JSON text (checked to be JSON).
    ///
    /// ```
    /// # use tower_mcp_analytics::RawJson;
    /// assert!(RawJson::from_json(r#"{"ok":true}"#.to_owned()).is_ok());
    /// assert!(RawJson::from_json("{".to_owned()).is_err());
    /// ```
    pub fn from_json(json: String) -> Result<Self, serde_json::Error> {
        RawValue::from_string(json).map(Self)
    }

    pub(crate) fn from_raw(raw: Box<RawValue>) -> Self {
        Self(raw)
    }

    /// Bytes of JSON text.
    pub(crate) fn len(&self) -> usize {
        self.0.get().len()
    }
}

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

impl fmt::Display for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

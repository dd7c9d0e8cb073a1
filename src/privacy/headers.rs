//! Which request headers events carry: none unless named, sensitive ones masked unless
//! forced.
//!
//! Owns the request-path side of privacy: the list of headers to copy and the masking of
//! credentials. Never copies a header that was not named, and never a query string or a
//! cookie by default.

use http::{HeaderMap, HeaderName};

use super::secrets::REDACTED;

/// Headers replaced by a marker even when named, unless forced. `Mcp-Session-Id` is one:
/// whoever holds it acts in that session.
const SENSITIVE_HEADERS: [&str; 6] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "mcp-session-id",
];

/// The headers to copy into events, each with whether it is forced past the mask.
#[derive(Clone, Debug, Default)]
pub(crate) struct HeaderCapture {
    names: Vec<(HeaderName, bool)>,
}

impl HeaderCapture {
    /// Adds `names` (case-insensitive; invalid ones are logged and ignored); `forced`
    /// copies sensitive ones as they are.
    pub(crate) fn add<'a>(&mut self, names: impl IntoIterator<Item = &'a str>, forced: bool) {
        for name in names {
            match HeaderName::try_from(name.to_ascii_lowercase()) {
                Ok(name) => {
                    self.names.retain(|(known, _)| *known != name);
                    self.names.push((name, forced));
                }
                Err(_) => tracing::warn!(header = name, "invalid header name to capture; ignored"),
            }
        }
    }

    /// The captured headers of a request, sensitive ones masked unless forced.
    pub(crate) fn capture(&self, headers: &HeaderMap) -> Vec<(String, String)> {
        self.names
            .iter()
            .filter_map(|(name, forced)| {
                let value = headers.get(name)?;
                let sensitive = SENSITIVE_HEADERS.contains(&name.as_str());
                let text = if sensitive && !forced {
                    REDACTED.to_owned()
                } else {
                    String::from_utf8_lossy(value.as_bytes()).into_owned()
                };
                Some((name.as_str().to_owned(), text))
            })
            .collect()
    }
}

//! Who may send events and who may read them: an optional ingest API key (Bearer) and an
//! optional dashboard password (HTTP Basic, any user name; or Bearer, for scripts).
//!
//! Owns the comparisons, done in constant time on digests. Never logs a secret.

use base64::Engine;
use http::HeaderMap;
use http::header::AUTHORIZATION;
use sha2::{Digest, Sha256};

/// A secret kept only as its digest.
#[derive(Clone)]
pub struct Secret([u8; 32]);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([hidden])")
    }
}

impl Secret {
    /// Keeps `text`'s digest.
    pub fn new(text: &str) -> Self {
        Self(Sha256::digest(text.as_bytes()).into())
    }

    /// Whether `candidate` is the secret (constant time in its length).
    pub fn matches(&self, candidate: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(candidate.as_bytes()).into();
        digest
            .iter()
            .zip(self.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers.get(AUTHORIZATION)?.to_str().ok()
}

fn scheme<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    let (found, rest) = value.split_once(' ')?;
    found.eq_ignore_ascii_case(name).then(|| rest.trim())
}

/// Whether the request carries `Authorization: Bearer <key>`.
pub fn bearer_matches(headers: &HeaderMap, key: &Secret) -> bool {
    authorization(headers)
        .and_then(|value| scheme(value, "Bearer"))
        .is_some_and(|token| key.matches(token))
}

/// Whether the request carries the dashboard password, as Basic (any user) or Bearer.
pub fn dashboard_allows(headers: &HeaderMap, password: &Secret) -> bool {
    let Some(value) = authorization(headers) else {
        return false;
    };
    if let Some(token) = scheme(value, "Bearer") {
        return password.matches(token);
    }
    scheme(value, "Basic")
        .and_then(|encoded| {
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok()
        })
        .and_then(|decoded| String::from_utf8(decoded).ok())
        .and_then(|pair| pair.split_once(':').map(|(_, pass)| password.matches(pass)))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn a_secret_matches_only_itself() {
        assert!(Secret::new("s3cret").matches("s3cret"));
        assert!(!Secret::new("s3cret").matches("s3cre"));
    }

    #[test]
    fn basic_and_bearer_unlock_the_dashboard() {
        let password = Secret::new("pw");
        assert!(dashboard_allows(&with("Basic YWRtaW46cHc="), &password)); // admin:pw
        assert!(dashboard_allows(&with("bearer pw"), &password));
        assert!(!dashboard_allows(&with("Basic YWRtaW46eA=="), &password)); // admin:x
        assert!(!dashboard_allows(&HeaderMap::new(), &password));
        assert!(bearer_matches(&with("Bearer pw"), &password));
        assert!(!bearer_matches(&with("Basic YWRtaW46cHc="), &password));
    }
}

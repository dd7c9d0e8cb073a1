//! Which identities the worker has seen, so that an identify event goes out only when a
//! user is new or their name or data changed.
//!
//! Bounded: at most `capacity` users, least recently seen evicted (an evicted user who
//! comes back gets a new identify event, which is harmless). Runs in the worker only.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::num::NonZeroUsize;

use lru::LruCache;

use crate::hooks::UserIdentity;

/// Last seen fingerprint of each user's name and data.
pub(crate) struct IdentityCache {
    seen: LruCache<String, u64>,
}

impl IdentityCache {
    pub(crate) fn new(capacity: NonZeroUsize) -> Self {
        Self {
            seen: LruCache::new(capacity),
        }
    }

    /// True when `user` is new, or its name or data differ from the last time.
    pub(crate) fn changed(&mut self, user: &UserIdentity) -> bool {
        let fingerprint = fingerprint(user);
        match self.seen.get_mut(user.id.as_str()) {
            Some(seen) if *seen == fingerprint => false,
            Some(seen) => {
                *seen = fingerprint;
                true
            }
            None => {
                self.seen.put(user.id.clone(), fingerprint);
                true
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.seen.len()
    }
}

fn fingerprint(user: &UserIdentity) -> u64 {
    let mut hasher = DefaultHasher::new();
    user.name.hash(&mut hasher);
    if let Some(data) = &user.data {
        // `Value` is not `Hash`; its canonical text is (object keys are sorted).
        data.to_string().hash(&mut hasher);
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_new_and_changed_identities_only() {
        let mut cache = IdentityCache::new(NonZeroUsize::MIN.saturating_add(9));
        let ada = UserIdentity::new("ada").with_name("Ada");
        assert!(cache.changed(&ada));
        assert!(!cache.changed(&ada));
        assert!(cache.changed(&ada.clone().with_name("Ada L.")));
        assert!(
            cache.changed(
                &ada.clone()
                    .with_name("Ada L.")
                    .with_data(serde_json::json!({"plan": "pro"}))
            )
        );
        assert!(
            !cache.changed(
                &ada.with_name("Ada L.")
                    .with_data(serde_json::json!({"plan": "pro"}))
            )
        );
    }

    #[test]
    fn a_flood_of_identities_stays_at_the_cap() {
        let mut cache = IdentityCache::new(NonZeroUsize::new(1000).unwrap_or(NonZeroUsize::MIN));
        for n in 0..1_000_000 {
            cache.changed(&UserIdentity::new(format!("user-{n}")));
        }
        assert_eq!(cache.len(), 1000);
    }
}

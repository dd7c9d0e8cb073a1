//! Event and session ids: `prefix_` + 27 base62 characters (the KSUID layout: 4 bytes of
//! seconds since 2014-05-13, then 16 bytes of randomness, so ids sort by time).
//!
//! Owns id generation and the one-way derivation of a stable id from a secret-ish key (an
//! `Mcp-Session-Id` header never leaves the process, only its SHA-256-derived id does).
//! Ids are unique, not secret: the random part comes from the standard library's
//! per-process random SipHash keys, not from a cryptographic generator.

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

/// KSUID epoch (2014-05-13T16:53:20Z) in Unix seconds.
const EPOCH: u64 = 1_400_000_000;
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A new time-sortable id: `prefix_` + 27 base62 characters.
pub(crate) fn new_id(prefix: &str, at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let stamp = u32::try_from(secs.saturating_sub(EPOCH)).unwrap_or(u32::MAX);
    let mut raw = [0u8; 20];
    raw[..4].copy_from_slice(&stamp.to_be_bytes());
    raw[4..12].copy_from_slice(&random_u64().to_le_bytes());
    raw[12..].copy_from_slice(&random_u64().to_le_bytes());
    encode(prefix, raw)
}

/// Domain separating ids derived from `Mcp-Session-Id` values from any other derived id.
const MCP_SESSION_DOMAIN: &str = "tower-mcp-analytics/mcp-session-id";

/// The id an `Mcp-Session-Id` value stands for in events (the value itself never leaves
/// the request path).
pub(crate) fn mcp_session_id(raw: &str) -> String {
    derived_id("ses", MCP_SESSION_DOMAIN, raw.as_bytes())
}

/// A stable id derived one-way from `key` within `domain`: the same inputs give the same
/// id on every instance and every run.
pub(crate) fn derived_id(prefix: &str, domain: &str, key: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(domain.as_bytes());
    hasher.update([0]);
    hasher.update(key);
    let digest = hasher.finalize();
    let mut raw = [0u8; 20];
    raw.copy_from_slice(&digest[..20]);
    encode(prefix, raw)
}

/// A uniform random fraction in `[0, 1)` (for jitter; not for secrets).
pub(crate) fn random_fraction() -> f64 {
    (random_u64() >> 11) as f64 / (1u64 << 53) as f64
}

fn random_u64() -> u64 {
    thread_local! {
        static STATE: (RandomState, Cell<u64>) = (RandomState::new(), Cell::new(0));
    }
    STATE.with(|(keys, counter)| {
        let n = counter.get().wrapping_add(1);
        counter.set(n);
        let mut hasher = keys.build_hasher();
        hasher.write_u64(n);
        hasher.finish()
    })
}

/// Base62 of a 160-bit big-endian number, left-padded to 27 characters. Divides by 62^5
/// (which fits a `u32` limb) so the long division runs 6 times rather than 27.
fn encode(prefix: &str, raw: [u8; 20]) -> String {
    const BASE5: u64 = 62 * 62 * 62 * 62 * 62;
    let mut limbs = [0u32; 5];
    for (limb, bytes) in limbs.iter_mut().zip(raw.chunks_exact(4)) {
        *limb = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    }
    let mut digits = [b'0'; 30];
    for group in digits.rchunks_exact_mut(5) {
        let mut rem = 0u64;
        for limb in &mut limbs {
            let acc = (rem << 32) | u64::from(*limb);
            *limb = (acc / BASE5) as u32;
            rem = acc % BASE5;
        }
        for digit in group.iter_mut().rev() {
            *digit = ALPHABET[(rem % 62) as usize];
            rem /= 62;
        }
    }
    // 62^27 > 2^160, so the three leading digits of the 30 are always '0'.
    let digits = &digits[3..];
    let mut out = String::with_capacity(prefix.len() + 28);
    out.push_str(prefix);
    out.push('_');
    out.extend(digits.iter().map(|&b| char::from(b)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ids_have_the_ksuid_shape_and_sort_by_time() {
        let early = new_id("evt", UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        let late = new_id("evt", UNIX_EPOCH + Duration::from_secs(1_700_000_001));
        assert_eq!(early.len(), 4 + 27);
        assert!(early.starts_with("evt_"));
        assert!(early[4..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert!(early < late);
        assert_ne!(
            new_id("evt", SystemTime::now()),
            new_id("evt", SystemTime::now())
        );
    }

    #[test]
    fn encodes_the_extremes() {
        assert_eq!(encode("x", [0; 20]), format!("x_{}", "0".repeat(27)));
        assert_eq!(encode("x", [0xff; 20]), "x_aWgEPTl1tmebfsQzFP4bxwgy80V");
    }

    #[test]
    fn derived_ids_are_stable_and_keyed_by_domain() {
        let a = derived_id("ses", "mcp-session", b"abc");
        assert_eq!(a, derived_id("ses", "mcp-session", b"abc"));
        assert_ne!(a, derived_id("ses", "other", b"abc"));
        assert!(!a.contains("abc"));
    }
}

//! RFC 3339 timestamps for events (UTC, milliseconds).
//!
//! Owns the one date conversion the crate needs, and the type of an injected clock; never
//! reads a clock itself.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of wall-clock time (injectable for tests and demos).
pub(crate) type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Formats a time as `YYYY-MM-DDTHH:MM:SS.mmmZ`. Times before 1970 are clamped to the epoch.
pub(crate) fn rfc3339_millis(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    let mut out = String::with_capacity(24);
    let mut push = |value: u64, width: u32, separator: char| {
        for power in (0..width).rev() {
            let digit = (value / 10u64.pow(power)) % 10;
            out.push(char::from(b'0' + digit as u8));
        }
        out.push(separator);
    };
    push(year, 4, '-');
    push(month, 2, '-');
    push(day, 2, 'T');
    push(rem / 3600, 2, ':');
    push(rem % 3600 / 60, 2, ':');
    push(rem % 60, 2, '.');
    push(u64::from(since.subsec_millis()), 3, 'Z');
    out
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_known_instants() {
        let at = |secs: u64, millis: u64| {
            rfc3339_millis(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis))
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(1_795_341_600, 123), "2026-11-22T10:00:00.123Z");
        assert_eq!(at(4_107_542_399, 999), "2100-02-28T23:59:59.999Z");
    }
}

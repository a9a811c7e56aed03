//! Timestamps: UTC, microsecond precision.
//!
//! Both backends store time as integer microseconds since the Unix epoch, so every
//! timestamp the engine hands out is truncated to microseconds; that makes a JSON Lines
//! export (RFC 3339) and a re-import reproduce values bit for bit.

use chrono::{DateTime, TimeZone, Utc};

/// A point in time, UTC, microsecond precision.
pub type Timestamp = DateTime<Utc>;

/// The current time, truncated to microseconds.
pub fn now() -> Timestamp {
    from_micros(Utc::now().timestamp_micros())
}

/// Microseconds since the epoch.
pub fn to_micros(t: &Timestamp) -> i64 {
    t.timestamp_micros()
}

/// From microseconds since the epoch (saturating at chrono's range).
pub fn from_micros(us: i64) -> Timestamp {
    Utc.timestamp_micros(us)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Truncates a caller-supplied time to the stored precision.
pub fn truncate(t: Timestamp) -> Timestamp {
    from_micros(t.timestamp_micros())
}

//! Small shared encodings: ids, hashes, token estimates, base64 for bytes in JSON.

use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Longest accepted caller-supplied id, in bytes.
pub const MAX_ID_LEN: usize = 128;

/// A new time-ordered id (UUID v7): ids sort by creation time, which keeps B-tree inserts
/// appending at the right edge instead of splitting random pages.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Validates a caller-supplied id: 1–128 bytes of `[A-Za-z0-9_.:@-]`.
pub fn validate_id(field: &str, id: &str) -> Result<()> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(Error::invalid(
            field,
            format!("must be 1 to {MAX_ID_LEN} bytes long"),
        ));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'@' | b'-'))
    {
        return Err(Error::invalid(
            field,
            format!(
                "'{}' may contain only letters, digits and _ . : @ -",
                id.escape_debug()
            ),
        ));
    }
    Ok(())
}

/// The given id after validation, or a fresh one.
pub fn id_or_new(field: &str, id: Option<&str>) -> Result<String> {
    match id {
        Some(id) => {
            validate_id(field, id)?;
            Ok(id.to_owned())
        }
        None => Ok(new_id()),
    }
}

/// Hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Hex HMAC-SHA-256 of a subject's external id, bound to its tenant so the same person in
/// two tenants is not linkable by hash.
pub fn subject_hash(secret: &[u8], tenant: &str, external_id: &str) -> String {
    let mut mac =
        hmac::Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(tenant.as_bytes());
    mac.update(&[0]);
    mac.update(external_id.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Words, as whitespace-separated runs.
pub fn word_count(text: &str) -> i64 {
    text.split_whitespace().count() as i64
}

/// Rough token estimate (about four characters a token for English with BPE tokenisers);
/// callers that know the real count pass it instead.
pub fn estimate_tokens(text: &str) -> i64 {
    (text.chars().count() as i64 + 3) / 4
}

/// Serde adapter: `Vec<u8>` as standard base64 in JSON.
pub mod base64_bytes {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialize.
    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    /// Deserialize.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

/// Column encodings shared by the SQL backends: both store times as microseconds, JSON
/// as its text, and page with the same cursors, so a record and a cursor mean the same on
/// either backend.
pub mod columns {
    use crate::time::{from_micros, to_micros};
    use crate::{Error, Json, Result, Timestamp};

    /// A target from a stored name (`vectors.target`, `keyword_log.target`); `what`
    /// names the row for the corruption report.
    pub fn parse_target(s: &str, what: &str) -> Result<crate::search::Target> {
        use crate::search::Target;
        Target::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| Error::Corrupt(format!("{what} of unknown target '{s}'")))
    }

    /// Microseconds for a timestamp column.
    pub fn ts(t: &Timestamp) -> i64 {
        to_micros(t)
    }

    /// Microseconds for a nullable timestamp column.
    pub fn ts_opt(t: &Option<Timestamp>) -> Option<i64> {
        t.as_ref().map(to_micros)
    }

    /// A timestamp from a column.
    pub fn to_ts(us: i64) -> Timestamp {
        from_micros(us)
    }

    /// A nullable timestamp from a column.
    pub fn to_ts_opt(us: Option<i64>) -> Option<Timestamp> {
        us.map(from_micros)
    }

    /// JSON column text.
    pub fn json_text(v: &Json) -> String {
        serde_json::to_string(v).unwrap_or_else(|_| "null".into())
    }

    /// Nullable JSON column text.
    pub fn json_text_opt(v: &Option<Json>) -> Option<String> {
        v.as_ref().map(json_text)
    }

    /// Any serializable value as JSON text (tag lists, label maps).
    pub fn to_json_text<T: serde::Serialize>(v: &T) -> String {
        serde_json::to_string(v).unwrap_or_else(|_| "null".into())
    }

    /// Parses a JSON column; damage is reported as corruption, not as bad input.
    pub fn parse_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T> {
        serde_json::from_str(s)
            .map_err(|e| Error::Corrupt(format!("stored JSON does not parse: {e}")))
    }

    /// Parses a nullable JSON column.
    pub fn parse_json_opt(s: Option<String>) -> Result<Option<Json>> {
        s.map(|s| parse_json(&s)).transpose()
    }

    /// Cursor for keyset pagination on (time, id), newest first.
    pub fn encode_cursor(us: i64, id: &str) -> String {
        format!("{us}.{id}")
    }

    /// Inverse of [`encode_cursor`]; a malformed cursor is bad input.
    pub fn decode_cursor(s: &str) -> Result<(i64, String)> {
        let (us, id) = s
            .split_once('.')
            .ok_or_else(|| Error::invalid("after", "malformed cursor"))?;
        let us = us
            .parse::<i64>()
            .map_err(|_| Error::invalid("after", "malformed cursor"))?;
        Ok((us, id.to_owned()))
    }

    /// Refuses a record built for another tenant than the scope's: a backend promises
    /// that a write stays inside the scope's tenant, also for callers of the raw
    /// `Store::write`.
    pub fn require_scope_tenant(scope: &crate::Scope, tenant: &str) -> Result<()> {
        if scope.tenant == tenant {
            Ok(())
        } else {
            Err(Error::invalid(
                "tenant_id",
                format!(
                    "record is for tenant '{tenant}' but the scope is '{}'",
                    scope.tenant
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(validate_id("id", "sess_abc-1.2:x@y").is_ok());
        assert!(validate_id("id", "").is_err());
        assert!(validate_id("id", "a b").is_err());
        assert!(validate_id("id", "a'; DROP TABLE x").is_err());
        let a = new_id();
        let b = new_id();
        assert!(a < b, "v7 ids sort by time");
    }

    #[test]
    fn subject_hash_is_keyed_and_tenant_bound() {
        let h1 = subject_hash(b"k1", "t", "alice");
        assert_eq!(h1.len(), 64);
        assert_ne!(h1, subject_hash(b"k2", "t", "alice"));
        assert_ne!(h1, subject_hash(b"k1", "u", "alice"));
        assert_eq!(h1, subject_hash(b"k1", "t", "alice"));
    }
}

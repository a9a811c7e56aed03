//! The tamper-evident audit log: what an entry records and how it is hashed.
//!
//! Each entry's hash is SHA-256 over a canonical JSON array of its fields followed by the
//! previous entry's hash, so editing, deleting or reordering any entry breaks every hash
//! after it. Backends store entries and refuse UPDATE and DELETE in the database itself;
//! the hashing lives here so every backend chains identically.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::codec::sha256_hex;
use crate::model::{AuditEntry, Json};
use crate::time::{Timestamp, to_micros};

/// `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Field names whose values are personal or free text and never copied into the audit log:
/// they are replaced by their length and SHA-256, which still proves what changed.
pub const REDACTED_FIELDS: &[&str] = &[
    "content",
    "summary",
    "reflection",
    "title",
    "parameters",
    "result",
    "state",
    "value",
    "external_id",
];

/// An audit entry before it is chained: what the backend knows when it writes.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditDraft {
    /// Action, `entity.verb`.
    pub action: String,
    /// Kind of record.
    pub resource_type: String,
    /// Record id.
    pub resource_id: String,
    /// Redacted values before.
    pub old_values: Option<Json>,
    /// Redacted values after.
    pub new_values: Option<Json>,
}

impl AuditDraft {
    /// A draft with no values.
    pub fn new(
        action: impl Into<String>,
        resource_type: impl Into<String>,
        resource_id: impl Into<String>,
    ) -> Self {
        AuditDraft {
            action: action.into(),
            resource_type: resource_type.into(),
            resource_id: resource_id.into(),
            old_values: None,
            new_values: None,
        }
    }

    /// Sets the redacted old values.
    pub fn old(mut self, v: &impl Serialize) -> Self {
        self.old_values = Some(redact(v));
        self
    }

    /// Sets the redacted new values.
    pub fn new_values(mut self, v: &impl Serialize) -> Self {
        self.new_values = Some(redact(v));
        self
    }

    /// Sets already-built new values (still redacted).
    pub fn with_json(mut self, v: Json) -> Self {
        self.new_values = Some(redact_json(v));
        self
    }
}

/// Serializes `v` and redacts personal fields at any depth.
pub fn redact(v: &impl Serialize) -> Json {
    redact_json(serde_json::to_value(v).unwrap_or(Json::Null))
}

/// Redacts personal fields at any depth of a JSON value.
pub fn redact_json(v: Json) -> Json {
    match v {
        Json::Object(map) => Json::Object(
            map.into_iter()
                .map(|(k, v)| {
                    if REDACTED_FIELDS.contains(&k.as_str()) && !v.is_null() {
                        let bytes = match &v {
                            Json::String(s) => s.as_bytes().to_vec(),
                            other => serde_json::to_vec(other).unwrap_or_default(),
                        };
                        let red = serde_json::json!({
                            "redacted": true,
                            "bytes": bytes.len(),
                            "sha256": sha256_hex(&bytes),
                        });
                        (k, red)
                    } else {
                        (k, redact_json(v))
                    }
                })
                .collect(),
        ),
        Json::Array(items) => Json::Array(items.into_iter().map(redact_json).collect()),
        other => other,
    }
}

/// The hash of an entry given its fields and the previous hash.
#[allow(clippy::too_many_arguments)]
pub fn entry_hash(
    seq: i64,
    tenant_id: Option<&str>,
    at: &Timestamp,
    actor: &str,
    action: &str,
    resource_type: &str,
    resource_id: &str,
    old_values: Option<&Json>,
    new_values: Option<&Json>,
    context: &Json,
    prev_hash: &str,
) -> String {
    // serde_json without `preserve_order` writes object keys sorted, which makes the
    // encoding canonical: the same values always hash the same after a round trip through
    // the database's JSON text.
    let canonical = serde_json::to_vec(&serde_json::json!([
        seq,
        tenant_id,
        to_micros(at),
        actor,
        action,
        resource_type,
        resource_id,
        old_values,
        new_values,
        context,
    ]))
    .unwrap_or_default();
    let mut h = Sha256::new();
    h.update(&canonical);
    h.update(prev_hash.as_bytes());
    hex::encode(h.finalize())
}

/// Recomputes an entry's hash from its stored fields.
pub fn recompute(e: &AuditEntry) -> String {
    entry_hash(
        e.seq,
        e.tenant_id.as_deref(),
        &e.at,
        &e.actor,
        &e.action,
        &e.resource_type,
        &e.resource_id,
        e.old_values.as_ref(),
        e.new_values.as_ref(),
        &e.context,
        &e.prev_hash,
    )
}

/// Walks entries in `seq` order and reports the first that breaks the chain.
#[derive(Debug, Default)]
pub struct ChainVerifier {
    expected_prev: Option<String>,
    expected_seq: Option<i64>,
    /// Entries checked so far.
    pub checked: u64,
}

impl ChainVerifier {
    /// A verifier for a log that starts at the genesis entry.
    pub fn new() -> Self {
        ChainVerifier {
            expected_prev: Some(GENESIS.to_owned()),
            expected_seq: Some(1),
            checked: 0,
        }
    }

    /// Checks the next entry; the error names it and says what is wrong.
    pub fn check(&mut self, e: &AuditEntry) -> Result<(), String> {
        if let Some(seq) = self.expected_seq
            && e.seq != seq
        {
            return Err(format!(
                "audit entry seq {} found where seq {seq} was expected (an entry was deleted or reordered)",
                e.seq
            ));
        }
        if let Some(prev) = &self.expected_prev
            && &e.prev_hash != prev
        {
            return Err(format!(
                "audit entry seq {} does not link to the entry before it (prev_hash mismatch)",
                e.seq
            ));
        }
        let h = recompute(e);
        if h != e.hash {
            return Err(format!(
                "audit entry seq {} was modified (its hash does not match its contents)",
                e.seq
            ));
        }
        self.expected_prev = Some(e.hash.clone());
        self.expected_seq = Some(e.seq + 1);
        self.checked += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: i64, prev: &str) -> AuditEntry {
        let at = crate::time::from_micros(1_700_000_000_000_000 + seq);
        let ctx = serde_json::json!({"cli": true});
        let nv = redact(&serde_json::json!({"content": "secret", "kind": "fact"}));
        let hash = entry_hash(
            seq,
            Some("t"),
            &at,
            "me",
            "memory.create",
            "memory",
            "m1",
            None,
            Some(&nv),
            &ctx,
            prev,
        );
        AuditEntry {
            seq,
            tenant_id: Some("t".into()),
            at,
            actor: "me".into(),
            action: "memory.create".into(),
            resource_type: "memory".into(),
            resource_id: "m1".into(),
            old_values: None,
            new_values: Some(nv),
            context: ctx,
            prev_hash: prev.into(),
            hash,
        }
    }

    #[test]
    fn chain_detects_edit_delete_reorder() {
        let e1 = entry(1, GENESIS);
        let e2 = entry(2, &e1.hash);
        let e3 = entry(3, &e2.hash);
        let mut v = ChainVerifier::new();
        for e in [&e1, &e2, &e3] {
            v.check(e).unwrap();
        }
        let mut v = ChainVerifier::new();
        v.check(&e1).unwrap();
        assert!(v.check(&e3).unwrap_err().contains("seq 3"));
        let mut edited = e2.clone();
        edited.actor = "mallory".into();
        let mut v = ChainVerifier::new();
        v.check(&e1).unwrap();
        assert!(v.check(&edited).unwrap_err().contains("modified"));
    }

    #[test]
    fn redaction_hides_content() {
        let v = redact(
            &serde_json::json!({"content": "my secret", "nested": [{"value": 1}], "kind": "fact"}),
        );
        let s = v.to_string();
        assert!(!s.contains("my secret"));
        assert!(s.contains("\"kind\":\"fact\""));
        assert_eq!(v["nested"][0]["value"]["redacted"], true);
    }
}

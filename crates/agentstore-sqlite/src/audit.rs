//! Appending to and reading the audit log table.

use agentstore::audit::{AuditDraft, GENESIS, entry_hash};
use agentstore::backend::AuditQuery;
use agentstore::time::now;
use agentstore::{AuditEntry, Page, Result, Scope};
use rusqlite::{Connection, Row};

use crate::sql::{Filter, SqlResult, opt, page, parse_json, parse_json_opt, to_ts, ts};

/// Appends one chained entry for `scope` inside the caller's transaction.
pub(crate) fn append(tx: &Connection, scope: &Scope, draft: AuditDraft) -> Result<()> {
    append_for(tx, Some(&scope.tenant), scope, draft)
}

/// A redacted field of a subject's record keeps its length and, instead of the SHA-256
/// of its text (which anyone can test guesses against), an HMAC of that SHA-256 under a
/// key derived from the subject's data key (`keyring.rs`): unguessable from the log
/// alone, and meaningless to everyone once the subject is erased and its key destroyed.
/// Without field encryption, or for a record without a subject, the SHA-256 stays.
fn key_digests(tx: &Connection, tenant: &str, v: &mut serde_json::Value) -> Result<()> {
    // Without a master key there is no data key to key a digest with: skip the query.
    if !crate::keyring::sealing() {
        return Ok(());
    }
    let Some(subject) = v
        .get("subject_id")
        .and_then(|s| s.as_str())
        .map(str::to_owned)
    else {
        return Ok(());
    };
    let mut redacted: Vec<&mut serde_json::Map<String, serde_json::Value>> = Vec::new();
    if let Some(obj) = v.as_object_mut() {
        for field in obj.values_mut() {
            if let Some(m) = field.as_object_mut()
                && m.get("redacted") == Some(&serde_json::Value::Bool(true))
            {
                redacted.push(m);
            }
        }
    }
    for m in redacted {
        let Some(sha) = m.get("sha256").and_then(|s| s.as_str()).map(str::to_owned) else {
            continue;
        };
        let keyed: Option<String> = tx
            .prepare_cached("SELECT as_digest(?1, ?2, ?3)")
            .db()?
            .query_row(rusqlite::params![tenant, subject, sha], |r| r.get(0))
            .db()?;
        if let Some(h) = keyed {
            m.remove("sha256");
            m.insert("hmac_sha256".into(), h.into());
        }
    }
    Ok(())
}

/// Appends one chained entry with an explicit tenant (None for store-wide operations).
pub(crate) fn append_for(
    tx: &Connection,
    tenant: Option<&str>,
    scope: &Scope,
    d: AuditDraft,
) -> Result<()> {
    let (last_seq, prev): (i64, String) = opt(tx
        .prepare_cached("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .db()?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?))))?
    .unwrap_or((0, GENESIS.to_owned()));
    let seq = last_seq + 1;
    let at = now();
    let mut d = d;
    if let Some(tenant) = tenant {
        for v in [d.old_values.as_mut(), d.new_values.as_mut()]
            .into_iter()
            .flatten()
        {
            key_digests(tx, tenant, v)?;
        }
    }
    let hash = entry_hash(
        seq,
        tenant,
        &at,
        &scope.actor,
        &d.action,
        &d.resource_type,
        &d.resource_id,
        d.old_values.as_ref(),
        d.new_values.as_ref(),
        &scope.context,
        &prev,
    );
    tx.prepare_cached(
        "INSERT INTO audit_log (seq, tenant_id, at, actor, action, resource_type, resource_id,
             old_values, new_values, context, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )
    .db()?
    .execute(rusqlite::params![
        seq,
        tenant,
        ts(&at),
        scope.actor,
        d.action,
        d.resource_type,
        d.resource_id,
        d.old_values.as_ref().map(|v| v.to_string()),
        d.new_values.as_ref().map(|v| v.to_string()),
        scope.context.to_string(),
        prev,
        hash,
    ])
    .db()?;
    Ok(())
}

/// Inserts an entry verbatim (import).
pub(crate) fn insert_verbatim(tx: &Connection, e: &AuditEntry) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO audit_log (seq, tenant_id, at, actor, action, resource_type, resource_id,
             old_values, new_values, context, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )
    .db()?
    .execute(rusqlite::params![
        e.seq,
        e.tenant_id,
        ts(&e.at),
        e.actor,
        e.action,
        e.resource_type,
        e.resource_id,
        e.old_values.as_ref().map(|v| v.to_string()),
        e.new_values.as_ref().map(|v| v.to_string()),
        e.context.to_string(),
        e.prev_hash,
        e.hash,
    ])
    .db()?;
    Ok(())
}

/// Columns in the order [`from_row`] reads them.
pub(crate) const COLUMNS: &str = "seq, tenant_id, at, actor, action, resource_type, resource_id, old_values, new_values, context, prev_hash, hash";

/// An entry from a row selected with [`COLUMNS`].
pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<Result<AuditEntry>> {
    let old: Option<String> = r.get(7)?;
    let new: Option<String> = r.get(8)?;
    let ctx: String = r.get(9)?;
    let (seq, tenant_id, at, actor, action, resource_type, resource_id, prev_hash, hash) = (
        r.get(0)?,
        r.get(1)?,
        r.get::<_, i64>(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(10)?,
        r.get(11)?,
    );
    Ok((|| {
        Ok(AuditEntry {
            seq,
            tenant_id,
            at: to_ts(at),
            actor,
            action,
            resource_type,
            resource_id,
            old_values: parse_json_opt(old)?,
            new_values: parse_json_opt(new)?,
            context: parse_json(&ctx)?,
            prev_hash,
            hash,
        })
    })())
}

/// Entries by filter, in seq order.
pub(crate) fn list(c: &Connection, q: &AuditQuery) -> Result<Page<AuditEntry>> {
    let mut f = Filter::default();
    f.eq_opt("tenant_id", &q.tenant_id)
        .eq_opt("actor", &q.actor)
        .eq_opt("action", &q.action)
        .eq_opt("resource_type", &q.resource_type)
        .eq_opt("resource_id", &q.resource_id);
    if let Some(t) = &q.from {
        f.cond("at >= ?", vec![Box::new(ts(t))]);
    }
    if let Some(t) = &q.to {
        f.cond("at < ?", vec![Box::new(ts(t))]);
    }
    if let Some(s) = q.after_seq {
        f.cond("seq > ?", vec![Box::new(s)]);
    }
    page(
        c,
        &format!("SELECT {COLUMNS} FROM audit_log"),
        &f,
        "seq",
        q.limit,
        from_row,
        |e| e.seq.to_string(),
    )
}

//! Appending to and reading the audit log table.
//!
//! Every write transaction holds the store-wide advisory lock (`crate::WRITE_LOCK`)
//! before it appends, so "the last entry" read here is still the last when the new one
//! is inserted, and the chain stays one line with several servers writing.

use agentstore::audit::{AuditDraft, GENESIS, entry_hash};
use agentstore::backend::AuditQuery;
use agentstore::time::now;
use agentstore::{AuditEntry, Page, Result, Scope};
use postgres::{GenericClient, Row, Transaction};

use crate::sql::{Filter, SqlResult, col, page, parse_json, parse_json_opt, to_ts, ts};

/// Appends one chained entry for `scope` inside the caller's transaction.
pub(crate) fn append(tx: &mut Transaction<'_>, scope: &Scope, draft: AuditDraft) -> Result<()> {
    append_for(tx, Some(&scope.tenant), scope, draft)
}

/// Appends one chained entry with an explicit tenant (None for store-wide operations).
///
/// Redacted fields keep the SHA-256 of their text: the SQLite backend replaces it with
/// an HMAC keyed by the subject's data key when field encryption is on, and this backend
/// has no field encryption (no keyring), which is the SQLite backend's behaviour without
/// a master key.
pub(crate) fn append_for(
    tx: &mut Transaction<'_>,
    tenant: Option<&str>,
    scope: &Scope,
    d: AuditDraft,
) -> Result<()> {
    let (last_seq, prev): (i64, String) = match tx
        .query_opt(
            "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
            &[],
        )
        .db()?
    {
        Some(r) => (col(&r, 0)?, col(&r, 1)?),
        None => (0, GENESIS.to_owned()),
    };
    let seq = last_seq + 1;
    let at = now();
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
    tx.execute(
        "INSERT INTO audit_log (seq, tenant_id, at, actor, action, resource_type, resource_id,
             old_values, new_values, context, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        &[
            &seq,
            &tenant,
            &ts(&at),
            &scope.actor,
            &d.action,
            &d.resource_type,
            &d.resource_id,
            &d.old_values.as_ref().map(|v| v.to_string()),
            &d.new_values.as_ref().map(|v| v.to_string()),
            &scope.context.to_string(),
            &prev,
            &hash,
        ],
    )
    .db()?;
    Ok(())
}

/// Inserts an entry verbatim (import).
pub(crate) fn insert_verbatim(tx: &mut Transaction<'_>, e: &AuditEntry) -> Result<()> {
    tx.execute(
        "INSERT INTO audit_log (seq, tenant_id, at, actor, action, resource_type, resource_id,
             old_values, new_values, context, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        &[
            &e.seq,
            &e.tenant_id,
            &ts(&e.at),
            &e.actor,
            &e.action,
            &e.resource_type,
            &e.resource_id,
            &e.old_values.as_ref().map(|v| v.to_string()),
            &e.new_values.as_ref().map(|v| v.to_string()),
            &e.context.to_string(),
            &e.prev_hash,
            &e.hash,
        ],
    )
    .db()?;
    Ok(())
}

/// Columns in the order [`from_row`] reads them.
pub(crate) const COLUMNS: &str = "seq, tenant_id, at, actor, action, resource_type, resource_id, old_values, new_values, context, prev_hash, hash";

/// An entry from a row selected with [`COLUMNS`].
pub(crate) fn from_row(r: &Row) -> Result<AuditEntry> {
    let old: Option<String> = col(r, 7)?;
    let new: Option<String> = col(r, 8)?;
    let ctx: String = col(r, 9)?;
    Ok(AuditEntry {
        seq: col(r, 0)?,
        tenant_id: col(r, 1)?,
        at: to_ts(col(r, 2)?),
        actor: col(r, 3)?,
        action: col(r, 4)?,
        resource_type: col(r, 5)?,
        resource_id: col(r, 6)?,
        old_values: parse_json_opt(old)?,
        new_values: parse_json_opt(new)?,
        context: parse_json(&ctx)?,
        prev_hash: col(r, 10)?,
        hash: col(r, 11)?,
    })
}

/// Entries by filter, in seq order.
pub(crate) fn list(c: &mut impl GenericClient, q: &AuditQuery) -> Result<Page<AuditEntry>> {
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

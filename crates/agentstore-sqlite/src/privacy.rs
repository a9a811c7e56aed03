//! GDPR for the SQLite store: everything about one subject, read in one snapshot, and
//! its erasure from every table, full-text index and vector in one transaction.

use agentstore::audit::AuditDraft;
use agentstore::backend::{Erasure, SubjectExport, WriteResult};
use agentstore::{Error, Result, Scope, Timestamp};
use rusqlite::Connection;

use crate::audit;
use crate::checkpoints::{
    CHECKPOINT_COLUMNS, PENDING_WRITE_COLUMNS, checkpoint_row, pending_write_row,
};
use crate::documents::{CHUNK_COLUMNS, DOCUMENT_COLUMNS, chunk_row, document_row};
use crate::memories::{MEMORY_COLUMNS, memory_row};
use crate::sessions::{EVENT_COLUMNS, SESSION_COLUMNS, event_row, session_row};
use crate::sql::*;
use crate::telemetry::{USAGE_COLUMNS, usage_row};
use crate::tenants::get_subject;

/// The full-text tables, each external-content over its record table.
const FTS_TABLES: [&str; 3] = ["memories_fts", "chunks_fts", "events_fts"];

/// Ids selected by `sql` (one text column) with the tenant and subject as ?1 and ?2.
fn ids(c: &Connection, sql: &str, tenant: &str, subject: &str) -> Result<Vec<String>> {
    c.prepare_cached(sql)
        .db()?
        .query_map([tenant, subject], |r| r.get(0))
        .db()?
        .map(|r| r.db())
        .collect()
}

fn count(c: &Connection, sql: &str, p: &[&dyn rusqlite::ToSql]) -> Result<u64> {
    let n: i64 = c
        .prepare_cached(sql)
        .db()?
        .query_row(p, |r| r.get(0))
        .db()?;
    Ok(n as u64)
}

pub(crate) fn export_subject(
    c: &Connection,
    tenant: &str,
    id: &str,
    at: Timestamp,
) -> Result<Option<SubjectExport>> {
    let Some(subject) = get_subject(c, tenant, id)? else {
        return Ok(None);
    };
    let p: [&dyn rusqlite::ToSql; 2] = [&tenant, &id];
    let sessions = collect_rows(
        c,
        &format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE tenant_id = ?1 AND subject_id = ?2
             ORDER BY rid"
        ),
        &p,
        session_row,
    )?;
    let session_ids = to_json_text(&sessions.iter().map(|s| &s.id).collect::<Vec<_>>());
    let sp: [&dyn rusqlite::ToSql; 2] = [&tenant, &session_ids];
    let in_sessions = "tenant_id = ?1 AND session_id IN (SELECT value FROM json_each(?2))";
    let events = collect_rows(
        c,
        &format!("SELECT {EVENT_COLUMNS} FROM events WHERE {in_sessions} ORDER BY session_id, seq"),
        &sp,
        event_row,
    )?;
    let checkpoints = collect_rows(
        c,
        &format!("SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE {in_sessions} ORDER BY rid"),
        &sp,
        checkpoint_row,
    )?;
    let pending_writes = collect_rows(
        c,
        &format!(
            "SELECT {PENDING_WRITE_COLUMNS} FROM checkpoint_writes WHERE {in_sessions}
             ORDER BY rid"
        ),
        &sp,
        pending_write_row,
    )?;
    let usage = collect_rows(
        c,
        &format!("SELECT {USAGE_COLUMNS} FROM usage_records WHERE {in_sessions} ORDER BY rid"),
        &sp,
        usage_row,
    )?;
    let memories = collect_rows(
        c,
        &format!(
            "SELECT {MEMORY_COLUMNS} FROM memories WHERE tenant_id = ?1 AND subject_id = ?2
             ORDER BY rid"
        ),
        &p,
        memory_row,
    )?;
    let documents = collect_rows(
        c,
        &format!(
            "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE tenant_id = ?1 AND subject_id = ?2
             ORDER BY rid"
        ),
        &p,
        document_row,
    )?;
    let document_ids = to_json_text(&documents.iter().map(|d| &d.id).collect::<Vec<_>>());
    let chunks = c
        .prepare_cached(&format!(
            "SELECT {CHUNK_COLUMNS} FROM chunks
             WHERE tenant_id = ?1 AND document_id IN (SELECT value FROM json_each(?2))
             ORDER BY document_id, idx"
        ))
        .db()?
        .query_map([tenant, document_ids.as_str()], chunk_row)
        .db()?
        .map(|r| r.db())
        .collect::<Result<Vec<_>>>()?;
    let mut resources: Vec<&str> = vec![id];
    resources.extend(sessions.iter().map(|s| s.id.as_str()));
    resources.extend(checkpoints.iter().map(|c| c.id.as_str()));
    resources.extend(memories.iter().map(|m| m.id.as_str()));
    resources.extend(documents.iter().map(|d| d.id.as_str()));
    let resources = to_json_text(&resources);
    let audit = collect_rows(
        c,
        &format!(
            "SELECT {} FROM audit_log
             WHERE tenant_id = ?1 AND resource_id IN (SELECT value FROM json_each(?2))
             ORDER BY seq",
            audit::COLUMNS
        ),
        &[&tenant, &resources],
        audit::from_row,
    )?;
    Ok(Some(SubjectExport {
        exported_at: at,
        subject,
        sessions,
        events,
        checkpoints,
        pending_writes,
        usage,
        memories,
        documents,
        chunks,
        audit,
    }))
}

/// Turns FTS5's secure-delete on or off for every full-text table. With it off (the
/// default, and the fast path for ordinary deletes) a deleted row's tokens stay in the
/// index file beside a delete marker until segments merge; with it on they are removed
/// at once. The setting is stored in the table, so it is set inside the transaction.
pub(crate) fn fts_secure_delete(tx: &Connection, on: bool) -> Result<()> {
    for t in FTS_TABLES {
        tx.execute(
            &format!("INSERT INTO {t} ({t}, rank) VALUES ('secure-delete', ?1)"),
            [i64::from(on)],
        )
        .db()?;
    }
    Ok(())
}

pub(crate) fn erase_subject(tx: &Connection, scope: &Scope, id: &str) -> Result<WriteResult> {
    let tenant = scope.tenant.as_str();
    if get_subject(tx, tenant, id)?.is_none() {
        return Err(Error::not_found("subject", id));
    }
    fts_secure_delete(tx, true)?;
    let p: [&dyn rusqlite::ToSql; 2] = [&tenant, &id];
    let sessions = ids(
        tx,
        "SELECT id FROM sessions WHERE tenant_id = ?1 AND subject_id = ?2",
        tenant,
        id,
    )?;
    let list = to_json_text(&sessions);
    let sp: [&dyn rusqlite::ToSql; 2] = [&tenant, &list];
    let in_sessions = "tenant_id = ?1 AND session_id IN (SELECT value FROM json_each(?2))";
    let vector_log_end = count(tx, "SELECT COALESCE(MAX(seq), 0) FROM vector_log", &[])?;
    let events = count(
        tx,
        &format!("SELECT COUNT(*) FROM events WHERE {in_sessions}"),
        &sp,
    )?;
    let checkpoints = count(
        tx,
        &format!("SELECT COUNT(*) FROM checkpoints WHERE {in_sessions}"),
        &sp,
    )?;
    let usage_records = tx
        .prepare_cached(&format!("DELETE FROM usage_records WHERE {in_sessions}"))
        .db()?
        .execute(sp)
        .db()? as u64;
    // Another subject's (or nobody's) session under one of these stays, detached: its
    // parent is this subject's personal data.
    tx.prepare_cached(
        "UPDATE sessions SET parent_id = NULL
         WHERE tenant_id = ?1 AND parent_id IN (SELECT value FROM json_each(?2))
           AND subject_id IS NOT ?3",
    )
    .db()?
    .execute(rusqlite::params![tenant, list, id])
    .db()?;
    // One statement, so a parent and its child of the same subject leave together; their
    // events and checkpoints follow by ON DELETE CASCADE, with the triggers that remove
    // full-text entries and vectors.
    let sessions = tx
        .prepare_cached("DELETE FROM sessions WHERE tenant_id = ?1 AND subject_id = ?2")
        .db()?
        .execute(p)
        .db()? as u64;
    let memories = tx
        .prepare_cached("DELETE FROM memories WHERE tenant_id = ?1 AND subject_id = ?2")
        .db()?
        .execute(p)
        .db()? as u64;
    let chunks = count(
        tx,
        "SELECT COUNT(*) FROM chunks WHERE tenant_id = ?1 AND document_id IN
             (SELECT id FROM documents WHERE tenant_id = ?1 AND subject_id = ?2)",
        &p,
    )?;
    let documents = tx
        .prepare_cached("DELETE FROM documents WHERE tenant_id = ?1 AND subject_id = ?2")
        .db()?
        .execute(p)
        .db()? as u64;
    let vectors = count(
        tx,
        "SELECT COUNT(*) FROM vector_log WHERE seq > ?1 AND op = 0",
        &[&(vector_log_end as i64)],
    )?;
    tx.prepare_cached("DELETE FROM subjects WHERE tenant_id = ?1 AND id = ?2")
        .db()?
        .execute(p)
        .db()?;
    fts_secure_delete(tx, false)?;
    let report = Erasure {
        subject_id: id.to_owned(),
        sessions,
        events,
        checkpoints,
        usage_records,
        memories,
        documents,
        chunks,
        vectors,
    };
    audit::append(
        tx,
        scope,
        AuditDraft::new("subject.erase", "subject", id).with_json(serde_json::to_value(&report)?),
    )?;
    Ok(WriteResult::Erased(report))
}

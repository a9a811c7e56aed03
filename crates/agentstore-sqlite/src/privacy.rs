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
use crate::documents::{CHUNK_SELECT, DOCUMENT_SELECT, chunk_row, document_row};
use crate::memories::{MEMORY_SELECT, memory_row};
use crate::sessions::{EVENT_SELECT, SESSION_SELECT, event_row, session_row};
use crate::sql::*;
use crate::telemetry::{USAGE_COLUMNS, usage_row};
use crate::tenants::get_subject;

/// The full-text tables (contentless, migration 8).
pub(crate) const FTS_TABLES: [&str; 3] = ["memories_fts", "chunks_fts", "events_fts"];

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

/// Runs one statement; returns the rows it changed.
fn exec(c: &Connection, sql: &str, p: &[&dyn rusqlite::ToSql]) -> Result<u64> {
    Ok(c.prepare_cached(sql).db()?.execute(p).db()? as u64)
}

/// `tenant_id = ?1 AND` one of these, with ?2 the subject id or a JSON array of ids.
const OF_SUBJECT: &str = "subject_id = ?2";
const IN_SESSIONS: &str = "session_id IN (SELECT value FROM json_each(?2))";
const IN_DOCUMENTS: &str = "document_id IN (SELECT value FROM json_each(?2))";
const IN_RESOURCES: &str = "resource_id IN (SELECT value FROM json_each(?2))";

/// Every row of `table` in the tenant where `cond` holds for `arg`, in `order`.
fn select<T>(
    c: &Connection,
    (columns, table): (&str, &str),
    cond: &str,
    order: &str,
    (tenant, arg): (&str, &str),
    row: RowFn<T>,
) -> Result<Vec<T>> {
    collect_rows(
        c,
        &format!("SELECT {columns} FROM {table} WHERE tenant_id = ?1 AND {cond} ORDER BY {order}"),
        &[&tenant, &arg],
        row,
    )
}

/// A JSON array of the ids, for `json_each`.
fn id_list<'a>(ids: impl Iterator<Item = &'a str>) -> String {
    to_json_text(&ids.collect::<Vec<_>>())
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
    let of_subject = (tenant, id);
    let sessions = select(
        c,
        (SESSION_SELECT, "sessions"),
        OF_SUBJECT,
        "rid",
        of_subject,
        session_row,
    )?;
    let session_ids = id_list(sessions.iter().map(|s| s.id.as_str()));
    let of_sessions = (tenant, session_ids.as_str());
    let events = select(
        c,
        (EVENT_SELECT, "events"),
        IN_SESSIONS,
        "session_id, seq",
        of_sessions,
        event_row,
    )?;
    let checkpoints = select(
        c,
        (CHECKPOINT_COLUMNS, "checkpoints"),
        IN_SESSIONS,
        "rid",
        of_sessions,
        checkpoint_row,
    )?;
    let pending_writes = select(
        c,
        (PENDING_WRITE_COLUMNS, "checkpoint_writes"),
        IN_SESSIONS,
        "rid",
        of_sessions,
        pending_write_row,
    )?;
    let usage = select(
        c,
        (USAGE_COLUMNS, "usage_records"),
        IN_SESSIONS,
        "rid",
        of_sessions,
        usage_row,
    )?;
    let memories = select(
        c,
        (MEMORY_SELECT, "memories"),
        OF_SUBJECT,
        "rid",
        of_subject,
        memory_row,
    )?;
    let documents = select(
        c,
        (DOCUMENT_SELECT, "documents"),
        OF_SUBJECT,
        "rid",
        of_subject,
        document_row,
    )?;
    let document_ids = id_list(documents.iter().map(|d| d.id.as_str()));
    let chunks = select(
        c,
        (CHUNK_SELECT, "chunks"),
        IN_DOCUMENTS,
        "document_id, idx",
        (tenant, &document_ids),
        |r| chunk_row(r).map(Ok),
    )?;
    let resources = id_list(
        std::iter::once(id)
            .chain(sessions.iter().map(|s| s.id.as_str()))
            .chain(checkpoints.iter().map(|c| c.id.as_str()))
            .chain(memories.iter().map(|m| m.id.as_str()))
            .chain(documents.iter().map(|d| d.id.as_str())),
    );
    let audit = select(
        c,
        (audit::COLUMNS, "audit_log"),
        IN_RESOURCES,
        "seq",
        (tenant, &resources),
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

/// Rewrites every full-text index without the rows deleted so far. The indexes are
/// contentless with `contentless_delete` (migration 8): a delete marks the row with a
/// tombstone and its tokens stay in the index pages until their segments are merged,
/// which FTS5's secure-delete option cannot change for such tables (it needs the
/// deleted text, which the index does not have). `optimize` merges every segment into
/// one without them, and `secure_delete` zeroes the freed pages. It costs a pass over
/// each index, so only erasures and sweeps that removed something pay it.
pub(crate) fn fts_purge(tx: &Connection) -> Result<()> {
    for t in FTS_TABLES {
        tx.execute(&format!("INSERT INTO {t} ({t}) VALUES ('optimize')"), [])
            .db()?;
    }
    Ok(())
}

pub(crate) fn erase_subject(tx: &Connection, scope: &Scope, id: &str) -> Result<WriteResult> {
    let tenant = scope.tenant.as_str();
    if get_subject(tx, tenant, id)?.is_none() {
        return Err(Error::not_found("subject", id));
    }
    let p: [&dyn rusqlite::ToSql; 2] = [&tenant, &id];
    let sessions = ids(
        tx,
        "SELECT id FROM sessions WHERE tenant_id = ?1 AND subject_id = ?2",
        tenant,
        id,
    )?;
    let list = to_json_text(&sessions);
    let sp: [&dyn rusqlite::ToSql; 2] = [&tenant, &list];
    let where_ = |table: &str, cond: &str| format!("{table} WHERE tenant_id = ?1 AND {cond}");
    let count_in_sessions = |table: &str| {
        count(
            tx,
            &format!("SELECT COUNT(*) FROM {}", where_(table, IN_SESSIONS)),
            &sp,
        )
    };
    let delete_of_subject = |table: &str| {
        exec(
            tx,
            &format!("DELETE FROM {}", where_(table, OF_SUBJECT)),
            &p,
        )
    };
    let vector_log_end = count(tx, "SELECT COALESCE(MAX(seq), 0) FROM vector_log", &[])?;
    let events = count_in_sessions("events")?;
    let checkpoints = count_in_sessions("checkpoints")?;
    let usage_records = exec(
        tx,
        &format!("DELETE FROM {}", where_("usage_records", IN_SESSIONS)),
        &sp,
    )?;
    // Another subject's (or nobody's) session under one of these stays, detached: its
    // parent is this subject's personal data.
    exec(
        tx,
        "UPDATE sessions SET parent_id = NULL
         WHERE tenant_id = ?1 AND parent_id IN (SELECT value FROM json_each(?2))
           AND subject_id IS NOT ?3",
        &[&tenant, &list, &id],
    )?;
    // One statement, so a parent and its child of the same subject leave together; their
    // events and checkpoints follow by ON DELETE CASCADE, with the triggers that remove
    // full-text entries and vectors.
    let sessions = delete_of_subject("sessions")?;
    let memories = delete_of_subject("memories")?;
    let chunks = count(
        tx,
        "SELECT COUNT(*) FROM chunks WHERE tenant_id = ?1 AND document_id IN
             (SELECT id FROM documents WHERE tenant_id = ?1 AND subject_id = ?2)",
        &p,
    )?;
    let documents = delete_of_subject("documents")?;
    let vectors = count(
        tx,
        "SELECT COUNT(*) FROM vector_log WHERE seq > ?1 AND op = 0",
        &[&(vector_log_end as i64)],
    )?;
    exec(
        tx,
        "DELETE FROM subjects WHERE tenant_id = ?1 AND id = ?2",
        &p,
    )?;
    fts_purge(tx)?;
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
        // Set by the backend once the transaction has committed (`keyring.rs`).
        data_key_destroyed: false,
    };
    audit::append(
        tx,
        scope,
        AuditDraft::new("subject.erase", "subject", id).with_json(report.tombstone()),
    )?;
    Ok(WriteResult::Erased(report))
}

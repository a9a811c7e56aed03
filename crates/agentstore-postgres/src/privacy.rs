//! GDPR for the PostgreSQL store: everything about one subject, read in one snapshot, and
//! its erasure from every table and vector in one transaction.
//!
//! Unlike the SQLite backend there is no full-text index to purge afterwards: the
//! `tsvector` is a column of the row itself, so a deleted row's lexemes leave with it
//! (its dead tuple, as every deleted row's, is reclaimed by VACUUM). There is no field
//! encryption either, hence no per-subject data key to destroy.

use agentstore::audit::AuditDraft;
use agentstore::backend::{Erasure, SubjectExport, WriteResult};
use agentstore::{Error, Result, Scope, Timestamp};
use postgres::types::ToSql;
use postgres::{GenericClient, Transaction};

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

/// Ids selected by `sql` (one text column) with the tenant and subject as $1 and $2.
fn ids(c: &mut impl GenericClient, sql: &str, tenant: &str, subject: &str) -> Result<Vec<String>> {
    c.query(sql, &[&tenant, &subject])
        .db()?
        .iter()
        .map(|r| col(r, 0))
        .collect()
}

/// The one BIGINT that `sql` selects.
fn count(c: &mut impl GenericClient, sql: &str, p: &[&(dyn ToSql + Sync)]) -> Result<u64> {
    let r = c.query_one(sql, p).db()?;
    let n: i64 = col(&r, 0)?;
    Ok(n as u64)
}

/// Runs one statement; returns the rows it changed.
fn exec(c: &mut impl GenericClient, sql: &str, p: &[&(dyn ToSql + Sync)]) -> Result<u64> {
    c.execute(sql, p).db()
}

/// `tenant_id = $1 AND` one of these, with $2 the subject id or an array of ids.
const OF_SUBJECT: &str = "subject_id = $2";
const IN_SESSIONS: &str = "session_id = ANY($2)";
const IN_DOCUMENTS: &str = "document_id = ANY($2)";
const IN_RESOURCES: &str = "resource_id = ANY($2)";

/// Every row of `table` in the tenant where `cond` holds for `arg`, in `order`.
fn select<T>(
    c: &mut impl GenericClient,
    (columns, table): (&str, &str),
    cond: &str,
    order: &str,
    (tenant, arg): (&str, &(dyn ToSql + Sync)),
    row: RowFn<T>,
) -> Result<Vec<T>> {
    collect_rows(
        c,
        &format!("SELECT {columns} FROM {table} WHERE tenant_id = $1 AND {cond} ORDER BY {order}"),
        &[&tenant, arg],
        row,
    )
}

/// The ids as a text array parameter, for `= ANY($2)`.
fn id_list<'a>(ids: impl Iterator<Item = &'a str>) -> Vec<String> {
    ids.map(str::to_owned).collect()
}

pub(crate) fn export_subject(
    c: &mut impl GenericClient,
    tenant: &str,
    id: &str,
    at: Timestamp,
) -> Result<Option<SubjectExport>> {
    let Some(subject) = get_subject(c, tenant, id)? else {
        return Ok(None);
    };
    let of_subject: (&str, &(dyn ToSql + Sync)) = (tenant, &id);
    let sessions = select(
        c,
        (SESSION_COLUMNS, "sessions"),
        OF_SUBJECT,
        "rid",
        of_subject,
        session_row,
    )?;
    let session_ids = id_list(sessions.iter().map(|s| s.id.as_str()));
    let of_sessions: (&str, &(dyn ToSql + Sync)) = (tenant, &session_ids);
    let events = select(
        c,
        (EVENT_COLUMNS, "events"),
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
        (MEMORY_COLUMNS, "memories"),
        OF_SUBJECT,
        "rid",
        of_subject,
        memory_row,
    )?;
    let documents = select(
        c,
        (DOCUMENT_COLUMNS, "documents"),
        OF_SUBJECT,
        "rid",
        of_subject,
        document_row,
    )?;
    let document_ids = id_list(documents.iter().map(|d| d.id.as_str()));
    let chunks = select(
        c,
        (CHUNK_COLUMNS, "chunks"),
        IN_DOCUMENTS,
        "document_id, idx",
        (tenant, &document_ids),
        chunk_row,
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

/// Vectors of the records an erasure removes: the events of `$2` (the subject's
/// sessions), and the memories and the documents' chunks of subject `$3`. Counted before
/// the deletes (the vectors then leave with their records, by trigger); each part is a
/// lookup by the `(target, record_rid, model)` key.
const ERASED_VECTORS: &str = "SELECT
    (SELECT COUNT(*) FROM vectors v JOIN events e ON v.target = 'event' AND v.record_rid = e.rid
     WHERE e.tenant_id = $1 AND e.session_id = ANY($2))
  + (SELECT COUNT(*) FROM vectors v JOIN memories m ON v.target = 'memory' AND v.record_rid = m.rid
     WHERE m.tenant_id = $1 AND m.subject_id = $3)
  + (SELECT COUNT(*) FROM vectors v JOIN chunks c ON v.target = 'chunk' AND v.record_rid = c.rid
     JOIN documents d ON d.tenant_id = c.tenant_id AND d.id = c.document_id
     WHERE d.tenant_id = $1 AND d.subject_id = $3)";

pub(crate) fn erase_subject(
    tx: &mut Transaction<'_>,
    scope: &Scope,
    id: &str,
) -> Result<WriteResult> {
    let tenant = scope.tenant.as_str();
    if get_subject(tx, tenant, id)?.is_none() {
        return Err(Error::not_found("subject", id));
    }
    let p: [&(dyn ToSql + Sync); 2] = [&tenant, &id];
    let list = ids(
        tx,
        "SELECT id FROM sessions WHERE tenant_id = $1 AND subject_id = $2",
        tenant,
        id,
    )?;
    let sp: [&(dyn ToSql + Sync); 2] = [&tenant, &list];
    let where_ = |table: &str, cond: &str| format!("{table} WHERE tenant_id = $1 AND {cond}");
    let count_in_sessions = |tx: &mut Transaction<'_>, table: &str| {
        count(
            tx,
            &format!("SELECT COUNT(*) FROM {}", where_(table, IN_SESSIONS)),
            &sp,
        )
    };
    let delete_of_subject = |tx: &mut Transaction<'_>, table: &str| {
        exec(
            tx,
            &format!("DELETE FROM {}", where_(table, OF_SUBJECT)),
            &p,
        )
    };
    let vectors = count(tx, ERASED_VECTORS, &[&tenant, &list, &id])?;
    let events = count_in_sessions(tx, "events")?;
    let checkpoints = count_in_sessions(tx, "checkpoints")?;
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
         WHERE tenant_id = $1 AND parent_id = ANY($2) AND subject_id IS DISTINCT FROM $3",
        &[&tenant, &list, &id],
    )?;
    // One statement, so a parent and its child of the same subject leave together (the
    // foreign key is checked at the end of the statement); their events and checkpoints
    // follow by ON DELETE CASCADE, with the triggers that remove vectors.
    let sessions = delete_of_subject(tx, "sessions")?;
    let memories = delete_of_subject(tx, "memories")?;
    let chunks = count(
        tx,
        "SELECT COUNT(*) FROM chunks WHERE tenant_id = $1 AND document_id IN
             (SELECT id FROM documents WHERE tenant_id = $1 AND subject_id = $2)",
        &p,
    )?;
    let documents = delete_of_subject(tx, "documents")?;
    exec(
        tx,
        "DELETE FROM subjects WHERE tenant_id = $1 AND id = $2",
        &p,
    )?;
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
        // No field encryption in this backend: there is no data key to destroy.
        data_key_destroyed: false,
    };
    audit::append(
        tx,
        scope,
        AuditDraft::new("subject.erase", "subject", id).with_json(report.tombstone()),
    )?;
    Ok(WriteResult::Erased(report))
}

//! Documents and chunks: dedupe by hash, replace by id or source path.
//!
//! A document's chunks are only ever written together with it: replacing a document
//! deletes all its chunks and inserts the new set in the same transaction, so a reader
//! never sees chunks of two versions mixed.

use agentstore::audit::AuditDraft;
use agentstore::backend::{DocumentQuery, WriteResult};
use agentstore::{
    Chunk, Document, DocumentOutcome, Error, Json, Namespace, Page, Result, Scope, Timestamp,
};
use rusqlite::{Connection, Row, params};

use crate::audit;
use crate::sql::*;
use crate::tenants::{require_refs, require_tenant};

pub(crate) const DOCUMENT_COLUMNS: &str = "id, tenant_id, namespace, title, doc_type, source_path, source_url, content_hash, word_count, content, subject_id, chunk_size, chunk_overlap, metadata, created_at, updated_at";
/// [`DOCUMENT_COLUMNS`] for reading: sealed fields opened (`keyring.rs`).
pub(crate) const DOCUMENT_SELECT: &str = "id, tenant_id, namespace, as_open(title), doc_type, source_path, source_url, content_hash, word_count, as_open(content), subject_id, chunk_size, chunk_overlap, metadata, created_at, updated_at";

pub(crate) const CHUNK_COLUMNS: &str = "id, tenant_id, document_id, idx, content, content_hash, start, \"end\", word_count, token_count, query_count, last_queried_at, created_at";
/// [`CHUNK_COLUMNS`] for reading: the content opened (`keyring.rs`).
pub(crate) const CHUNK_SELECT: &str = "id, tenant_id, document_id, idx, as_open(content), content_hash, start, \"end\", word_count, token_count, query_count, last_queried_at, created_at";

pub(crate) fn document_row(r: &Row<'_>) -> rusqlite::Result<Result<Document>> {
    let nsv: String = r.get(2)?;
    let meta: String = r.get(13)?;
    let d = Document {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        namespace: to_ns(&nsv),
        title: r.get(3)?,
        doc_type: r.get(4)?,
        source_path: r.get(5)?,
        source_url: r.get(6)?,
        content_hash: r.get(7)?,
        word_count: r.get(8)?,
        content: r.get(9)?,
        subject_id: r.get(10)?,
        chunk_size: r.get(11)?,
        chunk_overlap: r.get(12)?,
        metadata: Json::Null,
        created_at: to_ts(r.get(14)?),
        updated_at: to_ts(r.get(15)?),
    };
    Ok(parse_json(&meta).map(|metadata| Document { metadata, ..d }))
}

pub(crate) fn chunk_row(r: &Row<'_>) -> rusqlite::Result<Chunk> {
    Ok(Chunk {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        document_id: r.get(2)?,
        idx: r.get(3)?,
        content: r.get(4)?,
        content_hash: r.get(5)?,
        start: r.get(6)?,
        end: r.get(7)?,
        word_count: r.get(8)?,
        token_count: r.get(9)?,
        query_count: r.get(10)?,
        last_queried_at: to_ts_opt(r.get(11)?),
        created_at: to_ts(r.get(12)?),
    })
}

/// Maps a unique violation on `(tenant_id, id)` of `table` to `AlreadyExists`. SQLite
/// names the constraint's columns in order, so the message ends in `table.id` exactly for
/// that constraint (and not for `chunks.idx`).
fn id_taken(
    table: &'static str,
    entity: &'static str,
    id: &str,
) -> impl FnOnce(rusqlite::Error) -> Error {
    move |err| match &err {
        rusqlite::Error::SqliteFailure(f, Some(msg))
            if f.code == rusqlite::ErrorCode::ConstraintViolation
                && msg.ends_with(&format!("{table}.id")) =>
        {
            Error::AlreadyExists {
                entity,
                id: id.to_owned(),
            }
        }
        _ => db_err(err),
    }
}

/// Inserts a complete document verbatim (also used by import).
pub(crate) fn insert_document(tx: &Connection, d: &Document) -> Result<()> {
    tx.prepare_cached(&format!(
        "INSERT INTO documents ({DOCUMENT_COLUMNS}) VALUES (?1, ?2, ?3, as_seal(?2, ?11, ?4),
             ?5, ?6, ?7, ?8, ?9, as_seal(?2, ?11, ?10), ?11, ?12, ?13, ?14, ?15, ?16)"
    ))
    .db()?
    .execute(params![
        d.id,
        d.tenant_id,
        ns(&d.namespace),
        d.title,
        d.doc_type,
        d.source_path,
        d.source_url,
        d.content_hash,
        d.word_count,
        d.content,
        d.subject_id,
        d.chunk_size,
        d.chunk_overlap,
        json_text(&d.metadata),
        ts(&d.created_at),
        ts(&d.updated_at),
    ])
    .map_err(id_taken("documents", "document", &d.id))?;
    Ok(())
}

/// Inserts a complete chunk verbatim (also used by import).
pub(crate) fn insert_chunk(tx: &Connection, c: &Chunk) -> Result<()> {
    tx.prepare_cached(&format!(
        "INSERT INTO chunks ({CHUNK_COLUMNS}) VALUES (?1, ?2, ?3, ?4,
             as_seal(?2, (SELECT subject_id FROM documents WHERE tenant_id = ?2 AND id = ?3), ?5),
             ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
    ))
    .db()?
    .execute(params![
        c.id,
        c.tenant_id,
        c.document_id,
        c.idx,
        c.content,
        c.content_hash,
        c.start,
        c.end,
        c.word_count,
        c.token_count,
        c.query_count,
        ts_opt(&c.last_queried_at),
        ts(&c.created_at),
    ])
    .map_err(id_taken("chunks", "chunk", &c.id))?;
    Ok(())
}

/// Inserts `chunks` as the chunks of document `document_id`.
fn insert_chunks(tx: &Connection, document_id: &str, chunks: Vec<Chunk>) -> Result<usize> {
    let n = chunks.len();
    for c in chunks {
        insert_chunk(
            tx,
            &Chunk {
                document_id: document_id.to_owned(),
                ..c
            },
        )?;
    }
    Ok(n)
}

fn find_one(c: &Connection, sql: &str, p: &[&dyn rusqlite::ToSql]) -> Result<Option<Document>> {
    opt(c.prepare_cached(sql).db()?.query_row(p, document_row))?.transpose()
}

fn by_source_path(
    c: &Connection,
    tenant: &str,
    ns_: &Namespace,
    path: &str,
) -> Result<Option<Document>> {
    find_one(
        c,
        &format!(
            "SELECT {DOCUMENT_SELECT} FROM documents
             WHERE tenant_id = ?1 AND namespace = ?2 AND source_path = ?3 ORDER BY rid LIMIT 1"
        ),
        params![tenant, ns(ns_), path],
    )
}

fn by_hash(c: &Connection, tenant: &str, ns_: &Namespace, hash: &str) -> Result<Option<String>> {
    opt(c
        .prepare_cached(
            "SELECT id FROM documents
             WHERE tenant_id = ?1 AND namespace = ?2 AND content_hash = ?3 ORDER BY rid LIMIT 1",
        )
        .db()?
        .query_row(params![tenant, ns(ns_), hash], |r| r.get(0)))
}

fn audit_values(d: &Document, chunks: usize) -> Result<Json> {
    let mut v = serde_json::to_value(d)?;
    if let Some(o) = v.as_object_mut() {
        o.insert("chunks".into(), chunks.into());
    }
    Ok(v)
}

fn replace(
    tx: &Connection,
    scope: &Scope,
    old: Document,
    d: Document,
    chunks: Vec<Chunk>,
) -> Result<DocumentOutcome> {
    let doc = Document {
        id: old.id.clone(),
        created_at: old.created_at,
        ..d
    };
    tx.prepare_cached(
        "UPDATE documents SET namespace = ?1, title = as_seal(?14, ?9, ?2), doc_type = ?3,
             source_path = ?4, source_url = ?5, content_hash = ?6, word_count = ?7,
             content = as_seal(?14, ?9, ?8), subject_id = ?9,
             chunk_size = ?10, chunk_overlap = ?11, metadata = ?12, updated_at = ?13
         WHERE tenant_id = ?14 AND id = ?15",
    )
    .db()?
    .execute(params![
        ns(&doc.namespace),
        doc.title,
        doc.doc_type,
        doc.source_path,
        doc.source_url,
        doc.content_hash,
        doc.word_count,
        doc.content,
        doc.subject_id,
        doc.chunk_size,
        doc.chunk_overlap,
        json_text(&doc.metadata),
        ts(&doc.updated_at),
        doc.tenant_id,
        doc.id,
    ])
    .db()?;
    let removed = tx
        .prepare_cached("DELETE FROM chunks WHERE tenant_id = ?1 AND document_id = ?2")
        .db()?
        .execute([&doc.tenant_id, &doc.id])
        .db()?;
    let n = insert_chunks(tx, &doc.id, chunks)?;
    let mut new_values = audit_values(&doc, n)?;
    if let Some(o) = new_values.as_object_mut() {
        o.insert("chunks_removed".into(), removed.into());
    }
    audit::append(
        tx,
        scope,
        AuditDraft::new("document.replace", "document", &doc.id)
            .old(&old)
            .with_json(new_values),
    )?;
    Ok(DocumentOutcome::Replaced {
        id: doc.id,
        chunks: n,
    })
}

fn create(
    tx: &Connection,
    scope: &Scope,
    d: Document,
    chunks: Vec<Chunk>,
) -> Result<DocumentOutcome> {
    insert_document(tx, &d)?;
    let n = insert_chunks(tx, &d.id, chunks)?;
    audit::append(
        tx,
        scope,
        AuditDraft::new("document.create", "document", &d.id).with_json(audit_values(&d, n)?),
    )?;
    Ok(DocumentOutcome::Created {
        id: d.id,
        chunks: n,
    })
}

/// Applies [`agentstore::WriteOp::PutDocument`]: an existing document is found by id,
/// then by (namespace, source path); identical content leaves everything as it is.
pub(crate) fn put(
    tx: &Connection,
    scope: &Scope,
    d: Document,
    chunks: Vec<Chunk>,
) -> Result<WriteResult> {
    require_scope_tenant(scope, &d.tenant_id)?;
    chunks
        .iter()
        .try_for_each(|c| require_scope_tenant(scope, &c.tenant_id))?;
    require_tenant(tx, &d.tenant_id)?;
    require_refs(tx, &d.tenant_id, d.subject_id.as_deref(), None, None)?;
    let existing = match get(tx, &d.tenant_id, &d.id)? {
        Some(found) => Some(found),
        None => match &d.source_path {
            Some(path) => by_source_path(tx, &d.tenant_id, &d.namespace, path)?,
            None => None,
        },
    };
    let outcome = match existing {
        Some(old) if old.content_hash == d.content_hash => {
            DocumentOutcome::Unchanged { id: old.id }
        }
        Some(old) => replace(tx, scope, old, d, chunks)?,
        None => match by_hash(tx, &d.tenant_id, &d.namespace, &d.content_hash)? {
            Some(id) => DocumentOutcome::Unchanged { id },
            None => create(tx, scope, d, chunks)?,
        },
    };
    Ok(WriteResult::Document(outcome))
}

pub(crate) fn delete(tx: &Connection, scope: &Scope, id: &str) -> Result<WriteResult> {
    let old = get(tx, &scope.tenant, id)?.ok_or_else(|| Error::not_found("document", id))?;
    let chunks: i64 = tx
        .prepare_cached("SELECT COUNT(*) FROM chunks WHERE tenant_id = ?1 AND document_id = ?2")
        .db()?
        .query_row([&scope.tenant, id], |r| r.get(0))
        .db()?;
    // Chunks go with the document through ON DELETE CASCADE.
    tx.prepare_cached("DELETE FROM documents WHERE tenant_id = ?1 AND id = ?2")
        .db()?
        .execute([&scope.tenant, id])
        .db()?;
    audit::append(
        tx,
        scope,
        AuditDraft::new("document.delete", "document", id)
            .old(&old)
            .with_json(serde_json::json!({"chunks_deleted": chunks})),
    )?;
    Ok(WriteResult::None)
}

/// Counts one query hit on each distinct chunk id; unknown ids are ignored.
pub(crate) fn record_queries(
    tx: &Connection,
    scope: &Scope,
    ids: &[String],
    at: Timestamp,
) -> Result<WriteResult> {
    bump_counters(
        tx,
        scope,
        "UPDATE chunks SET query_count = query_count + 1, last_queried_at = ?1
         WHERE tenant_id = ?2 AND id = ?3",
        ids,
        at,
        "chunk.query",
        "chunk",
    )
}

// ------------------------------------------------------------------------- reads

pub(crate) fn get(c: &Connection, tenant: &str, id: &str) -> Result<Option<Document>> {
    find_one(
        c,
        &format!("SELECT {DOCUMENT_SELECT} FROM documents WHERE tenant_id = ?1 AND id = ?2"),
        params![tenant, id],
    )
}

pub(crate) fn list(c: &Connection, tenant: &str, q: &DocumentQuery) -> Result<Page<Document>> {
    if let Some(p) = &q.namespace_prefix {
        p.validate()?;
    }
    let mut f = Filter::tenant(tenant);
    f.ns_prefix("namespace", &q.namespace_prefix)
        .eq_opt("doc_type", &q.doc_type)
        .eq_opt("source_path", &q.source_path)
        .eq_opt("subject_id", &q.subject_id);
    if let Some(after) = &q.after {
        let (us, id) = decode_cursor(after)?;
        f.cond(
            "(created_at, id) < (?, ?)",
            vec![Box::new(us), Box::new(id)],
        );
    }
    page(
        c,
        &format!("SELECT {DOCUMENT_SELECT} FROM documents"),
        &f,
        "created_at DESC, id DESC",
        q.limit,
        document_row,
        |d| encode_cursor(ts(&d.created_at), &d.id),
    )
}

pub(crate) fn list_chunks(c: &Connection, tenant: &str, document_id: &str) -> Result<Vec<Chunk>> {
    c.prepare_cached(&format!(
        "SELECT {CHUNK_SELECT} FROM chunks WHERE tenant_id = ?1 AND document_id = ?2 ORDER BY idx"
    ))
    .db()?
    .query_map([tenant, document_id], chunk_row)
    .db()?
    .collect::<rusqlite::Result<Vec<_>>>()
    .db()
}

pub(crate) fn get_chunk(c: &Connection, tenant: &str, id: &str) -> Result<Option<Chunk>> {
    opt(c
        .prepare_cached(&format!(
            "SELECT {CHUNK_SELECT} FROM chunks WHERE tenant_id = ?1 AND id = ?2"
        ))
        .db()?
        .query_row([tenant, id], chunk_row))
}

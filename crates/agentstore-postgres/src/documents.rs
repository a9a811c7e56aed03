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
use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{GenericClient, Row, Transaction};

use crate::audit;
use crate::sql::*;
use crate::tenants::{require_refs, require_tenant};

/// Every column but `rid`, in [`document_row`] order. No column is sealed (this backend
/// has no field encryption), so the list reads and writes alike.
pub(crate) const DOCUMENT_COLUMNS: &str = "id, tenant_id, namespace, title, doc_type, source_path, source_url, content_hash, word_count, content, subject_id, chunk_size, chunk_overlap, metadata, created_at, updated_at";

/// Every column but `rid` and the generated `fts`, in [`chunk_row`] order.
pub(crate) const CHUNK_COLUMNS: &str = "id, tenant_id, document_id, idx, content, content_hash, start, \"end\", word_count, token_count, query_count, last_queried_at, created_at";

pub(crate) fn document_row(r: &Row) -> Result<Document> {
    let nsv: String = col(r, 2)?;
    let meta: String = col(r, 13)?;
    Ok(Document {
        id: col(r, 0)?,
        tenant_id: col(r, 1)?,
        namespace: to_ns(&nsv),
        title: col(r, 3)?,
        doc_type: col(r, 4)?,
        source_path: col(r, 5)?,
        source_url: col(r, 6)?,
        content_hash: col(r, 7)?,
        word_count: col(r, 8)?,
        content: col(r, 9)?,
        subject_id: col(r, 10)?,
        chunk_size: col(r, 11)?,
        chunk_overlap: col(r, 12)?,
        metadata: parse_json(&meta)?,
        created_at: to_ts(col(r, 14)?),
        updated_at: to_ts(col(r, 15)?),
    })
}

pub(crate) fn chunk_row(r: &Row) -> Result<Chunk> {
    Ok(Chunk {
        id: col(r, 0)?,
        tenant_id: col(r, 1)?,
        document_id: col(r, 2)?,
        idx: col(r, 3)?,
        content: col(r, 4)?,
        content_hash: col(r, 5)?,
        start: col(r, 6)?,
        end: col(r, 7)?,
        word_count: col(r, 8)?,
        token_count: col(r, 9)?,
        query_count: col(r, 10)?,
        last_queried_at: to_ts_opt(col(r, 11)?),
        created_at: to_ts(col(r, 12)?),
    })
}

/// Maps a unique violation on `(tenant_id, id)` of `table` to `AlreadyExists`.
/// PostgreSQL names the violated constraint; `UNIQUE (tenant_id, id)` has the default
/// name `{table}_tenant_id_id_key` (and `chunks.idx`'s constraint another one).
fn id_taken(
    table: &'static str,
    entity: &'static str,
    id: &str,
) -> impl FnOnce(postgres::Error) -> Error {
    move |err| {
        let is_id = err
            .as_db_error()
            .filter(|d| *d.code() == SqlState::UNIQUE_VIOLATION)
            .and_then(|d| d.constraint())
            .is_some_and(|c| c == format!("{table}_tenant_id_id_key"));
        if is_id {
            Error::AlreadyExists {
                entity,
                id: id.to_owned(),
            }
        } else {
            db_err(err)
        }
    }
}

/// Inserts a complete document verbatim (also used by import).
pub(crate) fn insert_document(tx: &mut Transaction<'_>, d: &Document) -> Result<()> {
    tx.execute(
        &format!(
            "INSERT INTO documents ({DOCUMENT_COLUMNS}) VALUES ($1, $2, $3, $4,
                 $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
        ),
        &[
            &d.id,
            &d.tenant_id,
            &ns(&d.namespace),
            &d.title,
            &d.doc_type,
            &d.source_path,
            &d.source_url,
            &d.content_hash,
            &d.word_count,
            &d.content,
            &d.subject_id,
            &d.chunk_size,
            &d.chunk_overlap,
            &json_text(&d.metadata),
            &ts(&d.created_at),
            &ts(&d.updated_at),
        ],
    )
    .map_err(id_taken("documents", "document", &d.id))?;
    Ok(())
}

/// Inserts a complete chunk verbatim (also used by import).
pub(crate) fn insert_chunk(tx: &mut Transaction<'_>, c: &Chunk) -> Result<()> {
    tx.execute(
        &format!(
            "INSERT INTO chunks ({CHUNK_COLUMNS}) VALUES ($1, $2, $3, $4, $5,
                 $6, $7, $8, $9, $10, $11, $12, $13)"
        ),
        &[
            &c.id,
            &c.tenant_id,
            &c.document_id,
            &c.idx,
            &c.content,
            &c.content_hash,
            &c.start,
            &c.end,
            &c.word_count,
            &c.token_count,
            &c.query_count,
            &ts_opt(&c.last_queried_at),
            &ts(&c.created_at),
        ],
    )
    .map_err(id_taken("chunks", "chunk", &c.id))?;
    Ok(())
}

/// Inserts `chunks` as the chunks of document `document_id`.
fn insert_chunks(tx: &mut Transaction<'_>, document_id: &str, chunks: Vec<Chunk>) -> Result<usize> {
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

fn find_one(
    c: &mut impl GenericClient,
    sql: &str,
    p: &[&(dyn ToSql + Sync)],
) -> Result<Option<Document>> {
    one_row(c, sql, p, document_row)
}

fn by_source_path(
    c: &mut impl GenericClient,
    tenant: &str,
    ns_: &Namespace,
    path: &str,
) -> Result<Option<Document>> {
    find_one(
        c,
        &format!(
            "SELECT {DOCUMENT_COLUMNS} FROM documents
             WHERE tenant_id = $1 AND namespace = $2 AND source_path = $3 ORDER BY rid LIMIT 1"
        ),
        &[&tenant, &ns(ns_), &path],
    )
}

fn by_hash(
    c: &mut impl GenericClient,
    tenant: &str,
    ns_: &Namespace,
    hash: &str,
) -> Result<Option<String>> {
    c.query_opt(
        "SELECT id FROM documents
         WHERE tenant_id = $1 AND namespace = $2 AND content_hash = $3 ORDER BY rid LIMIT 1",
        &[&tenant, &ns(ns_), &hash],
    )
    .db()?
    .map(|r| col(&r, 0))
    .transpose()
}

fn audit_values(d: &Document, chunks: usize) -> Result<Json> {
    let mut v = serde_json::to_value(d)?;
    if let Some(o) = v.as_object_mut() {
        o.insert("chunks".into(), chunks.into());
    }
    Ok(v)
}

fn replace(
    tx: &mut Transaction<'_>,
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
    tx.execute(
        "UPDATE documents SET namespace = $1, title = $2, doc_type = $3,
             source_path = $4, source_url = $5, content_hash = $6, word_count = $7,
             content = $8, subject_id = $9,
             chunk_size = $10, chunk_overlap = $11, metadata = $12, updated_at = $13
         WHERE tenant_id = $14 AND id = $15",
        &[
            &ns(&doc.namespace),
            &doc.title,
            &doc.doc_type,
            &doc.source_path,
            &doc.source_url,
            &doc.content_hash,
            &doc.word_count,
            &doc.content,
            &doc.subject_id,
            &doc.chunk_size,
            &doc.chunk_overlap,
            &json_text(&doc.metadata),
            &ts(&doc.updated_at),
            &doc.tenant_id,
            &doc.id,
        ],
    )
    .db()?;
    let removed = tx
        .execute(
            "DELETE FROM chunks WHERE tenant_id = $1 AND document_id = $2",
            &[&doc.tenant_id, &doc.id],
        )
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
    tx: &mut Transaction<'_>,
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
    tx: &mut Transaction<'_>,
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

pub(crate) fn delete(tx: &mut Transaction<'_>, scope: &Scope, id: &str) -> Result<WriteResult> {
    let old = get(tx, &scope.tenant, id)?.ok_or_else(|| Error::not_found("document", id))?;
    let chunks: i64 = col(
        &tx.query_one(
            "SELECT COUNT(*) FROM chunks WHERE tenant_id = $1 AND document_id = $2",
            &[&scope.tenant, &id],
        )
        .db()?,
        0,
    )?;
    // Chunks go with the document through ON DELETE CASCADE.
    tx.execute(
        "DELETE FROM documents WHERE tenant_id = $1 AND id = $2",
        &[&scope.tenant, &id],
    )
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
    tx: &mut Transaction<'_>,
    scope: &Scope,
    ids: &[String],
    at: Timestamp,
) -> Result<WriteResult> {
    bump_counters(
        tx,
        scope,
        "UPDATE chunks SET query_count = query_count + 1, last_queried_at = $1
         WHERE tenant_id = $2 AND id = $3",
        ids,
        at,
        "chunk.query",
        "chunk",
    )
}

// ------------------------------------------------------------------------- reads

pub(crate) fn get(c: &mut impl GenericClient, tenant: &str, id: &str) -> Result<Option<Document>> {
    find_one(
        c,
        &format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE tenant_id = $1 AND id = $2"),
        &[&tenant, &id],
    )
}

pub(crate) fn list(
    c: &mut impl GenericClient,
    tenant: &str,
    q: &DocumentQuery,
) -> Result<Page<Document>> {
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
        &format!("SELECT {DOCUMENT_COLUMNS} FROM documents"),
        &f,
        "created_at DESC, id DESC",
        q.limit,
        document_row,
        |d| encode_cursor(ts(&d.created_at), &d.id),
    )
}

pub(crate) fn list_chunks(
    c: &mut impl GenericClient,
    tenant: &str,
    document_id: &str,
) -> Result<Vec<Chunk>> {
    collect_rows(
        c,
        &format!(
            "SELECT {CHUNK_COLUMNS} FROM chunks WHERE tenant_id = $1 AND document_id = $2 ORDER BY idx"
        ),
        &[&tenant, &document_id],
        chunk_row,
    )
}

pub(crate) fn get_chunk(
    c: &mut impl GenericClient,
    tenant: &str,
    id: &str,
) -> Result<Option<Chunk>> {
    one_row(
        c,
        &format!("SELECT {CHUNK_COLUMNS} FROM chunks WHERE tenant_id = $1 AND id = $2"),
        &[&tenant, &id],
        chunk_row,
    )
}

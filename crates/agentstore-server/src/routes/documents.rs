//! Documents and their chunks.

use agentstore::backend::DocumentQuery;
use agentstore::{Chunk, Document, DocumentOutcome, KeyScope, NewDocument, Page};
use axum::extract::State;
use axum::http::StatusCode;
use schemars::JsonSchema;
use serde::Deserialize;

use super::memories::Ids;
use super::{Body, Count, Items, P, Q, Reply, namespace};
use crate::AppState;
use crate::api::{Api, op};
use crate::auth::Caller;
use crate::error::ApiError;

pub(super) fn routes(api: Api) -> Api {
    use KeyScope::{Read, Write};
    api.route(
        "post",
        "/v1/documents",
        op(
            "putDocument",
            "documents",
            "Store a document: chunk, embed and index it; unchanged content is a no-op, changed content replaces the old chunks",
            Write,
        )
        .body::<NewDocument>()
        .ok::<DocumentOutcome>(),
        put,
    )
    .route(
        "get",
        "/v1/documents",
        op("listDocuments", "documents", "List documents, newest first", Read)
            .query::<DocumentList>()
            .ok::<Page<Document>>(),
        list,
    )
    .route(
        "get",
        "/v1/documents/{id}",
        op("getDocument", "documents", "Get a document", Read).ok::<Document>(),
        get,
    )
    .route(
        "delete",
        "/v1/documents/{id}",
        op("deleteDocument", "documents", "Delete a document and its chunks", Write),
        delete,
    )
    .route(
        "get",
        "/v1/documents/{id}/chunks",
        op("listChunks", "documents", "A document's chunks in order", Read).ok::<Items<Chunk>>(),
        chunks,
    )
    .route(
        "post",
        "/v1/chunks/touch",
        op(
            "touchChunks",
            "documents",
            "Count a retrieval of each chunk (query count and time), e.g. the hits an answer used",
            Write,
        )
        .body::<Ids>()
        .ok::<Count>(),
        touch_chunks,
    )
}

async fn touch_chunks(State(st): State<AppState>, c: Caller, Body(b): Body<Ids>) -> Reply<Count> {
    let scope = c.scope();
    let count = st
        .run(move |s| s.record_chunk_queries(&scope, &b.ids))
        .await?;
    Ok(axum::Json(Count { count }))
}

/// Filters for listing documents.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(default)]
#[serde(deny_unknown_fields)]
pub(crate) struct DocumentList {
    /// Namespace prefix, as `a/b/c`.
    namespace: Option<String>,
    /// Document type.
    doc_type: Option<String>,
    /// Source path.
    source_path: Option<String>,
    /// Subject.
    subject_id: Option<String>,
    /// Page size (default 100, at most 1000).
    limit: Option<usize>,
    /// Cursor: `next` of the previous page.
    after: Option<String>,
}

async fn put(
    State(st): State<AppState>,
    c: Caller,
    Body(d): Body<NewDocument>,
) -> Reply<DocumentOutcome> {
    let scope = c.scope();
    Ok(axum::Json(
        st.run(move |s| s.put_document(&scope, d)).await?,
    ))
}

async fn list(
    State(st): State<AppState>,
    c: Caller,
    Q(q): Q<DocumentList>,
) -> Reply<Page<Document>> {
    let scope = c.scope();
    let page = st
        .run(move |s| {
            let query = DocumentQuery {
                namespace_prefix: namespace(q.namespace.as_deref())?,
                doc_type: q.doc_type,
                source_path: q.source_path,
                subject_id: q.subject_id,
                limit: q.limit.unwrap_or(0),
                after: q.after,
            };
            s.list_documents(&scope, query)
        })
        .await?;
    Ok(axum::Json(page))
}

async fn get(State(st): State<AppState>, c: Caller, P(id): P<String>) -> Reply<Document> {
    let scope = c.scope();
    Ok(axum::Json(
        st.run(move |s| s.get_document(&scope, &id)).await?,
    ))
}

async fn delete(
    State(st): State<AppState>,
    c: Caller,
    P(id): P<String>,
) -> Result<StatusCode, ApiError> {
    let scope = c.scope();
    st.run(move |s| s.delete_document(&scope, &id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn chunks(State(st): State<AppState>, c: Caller, P(id): P<String>) -> Reply<Items<Chunk>> {
    let scope = c.scope();
    let items = st.run(move |s| s.list_chunks(&scope, &id)).await?;
    Ok(axum::Json(Items { items }))
}

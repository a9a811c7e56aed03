//! Memories: upsert by key, read, list, history, forget, invalidate.

use agentstore::backend::{MemoryOrder, MemoryQuery};
use agentstore::search::MetadataCondition;
use agentstore::{KeyScope, Memory, NewMemory, Page, Timestamp, UpsertOutcome};
use axum::extract::State;
use axum::http::StatusCode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Body, Count, Items, P, Q, Reply, namespace};
use crate::AppState;
use crate::api::{Api, op};
use crate::auth::Caller;
use crate::error::ApiError;

pub(super) fn routes(api: Api) -> Api {
    use KeyScope::{Read, Write};
    api.route(
        "post",
        "/v1/memories",
        op(
            "remember",
            "memories",
            "Store a memory; with a key, supersede the key's current version",
            Write,
        )
        .body::<NewMemory>()
        .ok::<UpsertOutcome>(),
        remember,
    )
    .route(
        "post",
        "/v1/memories/batch",
        op(
            "rememberMany",
            "memories",
            "Store memories atomically",
            Write,
        )
        .body::<MemoryBatch>()
        .ok::<Vec<UpsertOutcome>>(),
        remember_many,
    )
    .route(
        "get",
        "/v1/memories",
        op("listMemories", "memories", "List memories", Read)
            .query::<MemoryList>()
            .ok::<Page<Memory>>(),
        list,
    )
    .route(
        "get",
        "/v1/memories/by-key",
        op(
            "getMemoryByKey",
            "memories",
            "The version of a key valid now, or at a time",
            Read,
        )
        .query::<ByKey>()
        .ok::<Memory>(),
        by_key,
    )
    .route(
        "get",
        "/v1/memories/history",
        op(
            "memoryHistory",
            "memories",
            "Every version of a key, oldest first",
            Read,
        )
        .query::<ByKey>()
        .ok::<Items<Memory>>(),
        history,
    )
    .route(
        "get",
        "/v1/memories/{id}",
        op("getMemory", "memories", "Get a memory", Read).ok::<Memory>(),
        get,
    )
    .route(
        "delete",
        "/v1/memories/{id}",
        op("forget", "memories", "Delete a memory version", Write),
        forget,
    )
    .route(
        "post",
        "/v1/memories/{id}/invalidate",
        op(
            "invalidateMemory",
            "memories",
            "End a memory's validity now, without a successor",
            Write,
        ),
        invalidate,
    )
    .route(
        "post",
        "/v1/memories/touch",
        op(
            "touchMemories",
            "memories",
            "Count a read of each memory (access count and time)",
            Write,
        )
        .body::<Ids>()
        .ok::<Count>(),
        touch,
    )
}

/// Memories to store in one transaction.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub(crate) struct MemoryBatch {
    /// The memories.
    memories: Vec<NewMemory>,
}

/// Record ids.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub(crate) struct Ids {
    /// The ids.
    pub(crate) ids: Vec<String>,
}

/// Filters for listing memories.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(default)]
#[serde(deny_unknown_fields)]
pub(crate) struct MemoryList {
    /// Namespace prefix, as `a/b/c`.
    namespace: Option<String>,
    /// Any of these kinds (repeat for several).
    kind: Vec<String>,
    /// Upsert key.
    key: Option<String>,
    /// Tier: working, short or long.
    tier: Option<String>,
    /// Topic.
    topic: Option<String>,
    /// Domain.
    domain: Option<String>,
    /// Must carry every one of these tags (repeat for several).
    tag: Vec<String>,
    /// Subject.
    subject_id: Option<String>,
    /// Agent.
    agent_id: Option<String>,
    /// Derived from this session.
    source_session: Option<String>,
    /// Pinned only (true) or unpinned only (false).
    pinned: Option<bool>,
    /// Minimum importance.
    min_importance: Option<f64>,
    /// Minimum confidence.
    min_confidence: Option<f64>,
    /// Minimum success rate; memories without one do not match.
    min_success_rate: Option<f64>,
    /// Changed (created or updated in place) at or after this time (RFC 3339).
    updated_from: Option<Timestamp>,
    /// A metadata condition `path:op:value` (op: eq, ne, lt, lte, gt, gte), e.g.
    /// `mastery:lt:0.5`; repeat for several, all must hold. Numbers, `true`, `false` and
    /// `null` are read as JSON, anything else as a string (`"0.5"` quoted for the string).
    metadata: Vec<String>,
    /// Versions valid at this time (RFC 3339); default: current versions.
    valid_at: Option<Timestamp>,
    /// Include memories past their expiry.
    include_expired: bool,
    /// Order, each descending with ties newest first: recent (default), priority,
    /// importance, confidence, success_rate (memories without one last), access_count,
    /// updated (last change).
    order: Option<MemoryOrder>,
    /// Page size (default 100, at most 1000).
    limit: Option<usize>,
    /// Cursor: `next` of the previous page.
    after: Option<String>,
}

/// A memory key in a namespace.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ByKey {
    /// Namespace, as `a/b/c` (default: the root).
    #[serde(default)]
    namespace: Option<String>,
    /// The key.
    key: String,
    /// The version valid at this time (RFC 3339); default: now. Ignored by history.
    #[serde(default)]
    as_of: Option<Timestamp>,
}

async fn remember(
    State(st): State<AppState>,
    c: Caller,
    Body(m): Body<NewMemory>,
) -> Reply<UpsertOutcome> {
    let scope = c.scope();
    Ok(axum::Json(st.run(move |s| s.remember(&scope, m)).await?))
}

async fn remember_many(
    State(st): State<AppState>,
    c: Caller,
    Body(b): Body<MemoryBatch>,
) -> Reply<Vec<UpsertOutcome>> {
    let scope = c.scope();
    Ok(axum::Json(
        st.run(move |s| s.remember_many(&scope, b.memories)).await?,
    ))
}

async fn list(State(st): State<AppState>, c: Caller, Q(q): Q<MemoryList>) -> Reply<Page<Memory>> {
    let scope = c.scope();
    let page = st
        .run(move |s| {
            let query = MemoryQuery {
                namespace_prefix: namespace(q.namespace.as_deref())?,
                kinds: q.kind,
                key: q.key,
                tier: q.tier,
                topic: q.topic,
                domain: q.domain,
                tags: q.tag,
                subject_id: q.subject_id,
                agent_id: q.agent_id,
                source_session: q.source_session,
                pinned: q.pinned,
                min_importance: q.min_importance,
                min_confidence: q.min_confidence,
                min_success_rate: q.min_success_rate,
                updated_from: q.updated_from,
                metadata: q
                    .metadata
                    .iter()
                    .map(|m| MetadataCondition::parse(m))
                    .collect::<agentstore::Result<_>>()?,
                valid_at: q.valid_at,
                include_expired: q.include_expired,
                order: q.order.unwrap_or_default(),
                limit: q.limit.unwrap_or(0),
                after: q.after,
            };
            s.list_memories(&scope, query)
        })
        .await?;
    Ok(axum::Json(page))
}

async fn by_key(State(st): State<AppState>, c: Caller, Q(q): Q<ByKey>) -> Reply<Memory> {
    let scope = c.scope();
    let m = st
        .run(move |s| {
            let ns = namespace(q.namespace.as_deref())?.unwrap_or_default();
            s.get_memory_by_key(&scope, &ns, &q.key, q.as_of)
        })
        .await?;
    Ok(axum::Json(m))
}

async fn history(State(st): State<AppState>, c: Caller, Q(q): Q<ByKey>) -> Reply<Items<Memory>> {
    let scope = c.scope();
    let items = st
        .run(move |s| {
            let ns = namespace(q.namespace.as_deref())?.unwrap_or_default();
            s.memory_history(&scope, &ns, &q.key)
        })
        .await?;
    Ok(axum::Json(Items { items }))
}

async fn get(State(st): State<AppState>, c: Caller, P(id): P<String>) -> Reply<Memory> {
    let scope = c.scope();
    Ok(axum::Json(
        st.run(move |s| s.get_memory(&scope, &id)).await?,
    ))
}

async fn forget(
    State(st): State<AppState>,
    c: Caller,
    P(id): P<String>,
) -> Result<StatusCode, ApiError> {
    let scope = c.scope();
    st.run(move |s| s.forget(&scope, &id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn invalidate(
    State(st): State<AppState>,
    c: Caller,
    P(id): P<String>,
) -> Result<StatusCode, ApiError> {
    let scope = c.scope();
    st.run(move |s| s.invalidate_memory(&scope, &id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn touch(State(st): State<AppState>, c: Caller, Body(b): Body<Ids>) -> Reply<Count> {
    let scope = c.scope();
    let count = st.run(move |s| s.touch_memories(&scope, &b.ids)).await?;
    Ok(axum::Json(Count { count }))
}

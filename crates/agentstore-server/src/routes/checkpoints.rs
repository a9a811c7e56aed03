//! Checkpoints of agent state per thread (session), as graph-agent checkpointers use them.

use agentstore::backend::CheckpointQuery;
use agentstore::{Checkpoint, KeyScope, NewCheckpoint, NewPendingWrite, PendingWrite};
use axum::extract::State;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Body, Count, Created, Items, P, Q, Reply, created};
use crate::AppState;
use crate::api::{Api, op};
use crate::auth::Caller;

pub(super) fn routes(api: Api) -> Api {
    use KeyScope::{Read, Write};
    api.route(
        "post",
        "/v1/checkpoints",
        op("putCheckpoint", "checkpoints", "Store a checkpoint", Write)
            .body::<NewCheckpoint>()
            .created::<Checkpoint>(),
        put,
    )
    .route(
        "get",
        "/v1/checkpoints",
        op(
            "listCheckpoints",
            "checkpoints",
            "A thread's checkpoints, newest first",
            Read,
        )
        .query::<CheckpointList>()
        .ok::<Items<Checkpoint>>(),
        list,
    )
    .route(
        "get",
        "/v1/checkpoints/latest",
        op(
            "latestCheckpoint",
            "checkpoints",
            "A thread's newest checkpoint",
            Read,
        )
        .query::<Thread>()
        .ok::<Checkpoint>(),
        latest,
    )
    .route(
        "get",
        "/v1/checkpoints/{id}",
        op("getCheckpoint", "checkpoints", "A checkpoint by id", Read)
            .query::<Thread>()
            .ok::<Checkpoint>(),
        get,
    )
    .route(
        "put",
        "/v1/checkpoints/{id}/writes",
        op(
            "putPendingWrites",
            "checkpoints",
            "Record writes made against a checkpoint that are not applied yet",
            Write,
        )
        .query::<Thread>()
        .body::<WriteBatch>()
        .ok::<Count>(),
        put_writes,
    )
    .route(
        "get",
        "/v1/checkpoints/{id}/writes",
        op(
            "pendingWrites",
            "checkpoints",
            "A checkpoint's pending writes",
            Read,
        )
        .query::<Thread>()
        .ok::<Items<PendingWrite>>(),
        writes,
    )
}

/// A thread: session id and checkpoint namespace.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Thread {
    /// Thread = session id.
    session_id: String,
    /// Checkpoint namespace (default empty).
    #[serde(default)]
    checkpoint_ns: String,
}

/// A thread and a window of its checkpoints.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckpointList {
    /// Thread = session id.
    session_id: String,
    /// Checkpoint namespace (default empty).
    #[serde(default)]
    checkpoint_ns: String,
    /// Only checkpoints older than this checkpoint id (the cursor).
    #[serde(default)]
    before: Option<String>,
    /// Most results (default 100, at most 1000).
    #[serde(default)]
    limit: Option<usize>,
}

/// Pending writes to record.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub(crate) struct WriteBatch {
    /// The writes.
    writes: Vec<NewPendingWrite>,
}

async fn put(
    State(st): State<AppState>,
    c: Caller,
    Body(n): Body<NewCheckpoint>,
) -> Created<Checkpoint> {
    let scope = c.scope();
    Ok(created(st.run(move |s| s.put_checkpoint(&scope, n)).await?))
}

async fn list(
    State(st): State<AppState>,
    c: Caller,
    Q(q): Q<CheckpointList>,
) -> Reply<Items<Checkpoint>> {
    let scope = c.scope();
    let query = CheckpointQuery {
        session_id: q.session_id,
        checkpoint_ns: q.checkpoint_ns,
        before: q.before,
        limit: q.limit.unwrap_or(0),
    };
    let items = st.run(move |s| s.list_checkpoints(&scope, query)).await?;
    Ok(axum::Json(Items { items }))
}

async fn latest(State(st): State<AppState>, c: Caller, Q(t): Q<Thread>) -> Reply<Checkpoint> {
    let scope = c.scope();
    Ok(axum::Json(
        st.run(move |s| s.get_checkpoint(&scope, &t.session_id, &t.checkpoint_ns, None))
            .await?,
    ))
}

async fn get(
    State(st): State<AppState>,
    c: Caller,
    P(id): P<String>,
    Q(t): Q<Thread>,
) -> Reply<Checkpoint> {
    let scope = c.scope();
    Ok(axum::Json(
        st.run(move |s| s.get_checkpoint(&scope, &t.session_id, &t.checkpoint_ns, Some(&id)))
            .await?,
    ))
}

async fn put_writes(
    State(st): State<AppState>,
    c: Caller,
    P(id): P<String>,
    Q(t): Q<Thread>,
    Body(b): Body<WriteBatch>,
) -> Reply<Count> {
    let scope = c.scope();
    let count = st
        .run(move |s| s.put_pending_writes(&scope, &t.session_id, &t.checkpoint_ns, &id, b.writes))
        .await?;
    Ok(axum::Json(Count { count }))
}

async fn writes(
    State(st): State<AppState>,
    c: Caller,
    P(id): P<String>,
    Q(t): Q<Thread>,
) -> Reply<Items<PendingWrite>> {
    let scope = c.scope();
    let items = st
        .run(move |s| s.pending_writes(&scope, &t.session_id, &t.checkpoint_ns, &id))
        .await?;
    Ok(axum::Json(Items { items }))
}

//! Key-value entries with TTL and named locks with fencing tokens.

use agentstore::{Json, KeyScope, KvEntry, Lock};
use axum::extract::State;
use axum::http::StatusCode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Body, Count, Items, P, Q, Reply};
use crate::AppState;
use crate::api::{Api, op};
use crate::auth::Caller;
use crate::error::ApiError;

pub(super) fn routes(api: Api) -> Api {
    use KeyScope::{Read, Write};
    api.route(
        "put",
        "/v1/kv/{key}",
        op(
            "kvSet",
            "kv",
            "Set a key, with an optional time to live",
            Write,
        )
        .body::<KvSet>()
        .ok::<KvEntry>(),
        kv_set,
    )
    .route(
        "get",
        "/v1/kv/{key}",
        op("kvGet", "kv", "Get a live key", Read).ok::<KvEntry>(),
        kv_get,
    )
    .route(
        "delete",
        "/v1/kv/{key}",
        op("kvDelete", "kv", "Delete a key", Write),
        kv_delete,
    )
    .route(
        "post",
        "/v1/kv/{key}/incr",
        op(
            "kvIncr",
            "kv",
            "Add to a counter; a new key gets the TTL (fixed-window rate limits)",
            Write,
        )
        .body::<KvIncr>()
        .ok::<Counter>(),
        kv_incr,
    )
    .route(
        "post",
        "/v1/kv/{key}/expire",
        op(
            "kvExpire",
            "kv",
            "Set or clear a live key's time to live without rewriting its value",
            Write,
        )
        .body::<KvExpire>(),
        kv_expire,
    )
    .route(
        "get",
        "/v1/kv",
        op(
            "kvList",
            "kv",
            "Live keys with a prefix, in key order",
            Read,
        )
        .query::<KvList>()
        .ok::<Items<KvEntry>>(),
        kv_list,
    )
    .route(
        "delete",
        "/v1/kv",
        op(
            "kvDeletePrefix",
            "kv",
            "Delete every key with a prefix",
            Write,
        )
        .query::<KvPrefix>()
        .ok::<Count>(),
        kv_delete_prefix,
    )
    .route(
        "post",
        "/v1/locks/{name}/acquire",
        op(
            "lockAcquire",
            "locks",
            "Acquire a lock for a lease; the token fences writes made under it",
            Write,
        )
        .body::<LockAcquire>()
        .ok::<Lock>(),
        lock_acquire,
    )
    .route(
        "post",
        "/v1/locks/{name}/renew",
        op(
            "lockRenew",
            "locks",
            "Extend a lease held with this token",
            Write,
        )
        .body::<LockRenew>()
        .ok::<Lock>(),
        lock_renew,
    )
    .route(
        "post",
        "/v1/locks/{name}/release",
        op(
            "lockRelease",
            "locks",
            "Release a lock held with this token",
            Write,
        )
        .body::<LockToken>()
        .ok::<Lock>(),
        lock_release,
    )
    .route(
        "get",
        "/v1/locks/{name}",
        op("getLock", "locks", "A lock's state", Read).ok::<Lock>(),
        get_lock,
    )
}

/// A value and its time to live.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub(crate) struct KvSet {
    /// Any JSON value.
    value: Json,
    /// Time to live in milliseconds (default: forever).
    #[serde(default)]
    ttl_ms: Option<u64>,
}

/// A new time to live.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub(crate) struct KvExpire {
    /// Time to live in milliseconds from now; null: the key never expires. Required, so
    /// that a misspelled field cannot make a key permanent.
    #[serde(deserialize_with = "Option::deserialize")]
    #[schemars(schema_with = "required_nullable_ms")]
    ttl_ms: Option<u64>,
}

/// The schema of `Option<u64>`, for a field that must be present: schemars makes an
/// `Option` field optional, and its `required` attribute drops the null.
fn required_nullable_ms(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    g.subschema_for::<Option<u64>>()
}

/// An increment.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub(crate) struct KvIncr {
    /// Amount to add (default 1).
    #[serde(default = "one")]
    by: i64,
    /// Time to live of a new key, in milliseconds.
    #[serde(default)]
    ttl_ms: Option<u64>,
}

fn one() -> i64 {
    1
}

/// A counter's value after an increment.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub(crate) struct Counter {
    /// The new value.
    value: i64,
}

/// A key prefix and page size.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct KvList {
    /// Key prefix (default: every key).
    #[serde(default)]
    prefix: String,
    /// Most entries (default 100, at most 1000).
    #[serde(default)]
    limit: Option<usize>,
}

/// A key prefix.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct KvPrefix {
    /// Key prefix; must not be empty.
    prefix: String,
}

/// Who wants a lock, for how long.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub(crate) struct LockAcquire {
    /// Holder name (e.g. a worker id).
    holder: String,
    /// Lease in milliseconds.
    ttl_ms: u64,
}

/// A lease extension.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub(crate) struct LockRenew {
    /// The token from acquire.
    token: i64,
    /// New lease in milliseconds from now.
    ttl_ms: u64,
}

/// A lock token.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub(crate) struct LockToken {
    /// The token from acquire.
    token: i64,
}

async fn kv_set(
    State(st): State<AppState>,
    c: Caller,
    P(key): P<String>,
    Body(b): Body<KvSet>,
) -> Reply<KvEntry> {
    let scope = c.scope();
    Ok(axum::Json(
        st.run(move |s| s.kv_set(&scope, &key, b.value, b.ttl_ms))
            .await?,
    ))
}

async fn kv_get(State(st): State<AppState>, c: Caller, P(key): P<String>) -> Reply<KvEntry> {
    let scope = c.scope();
    let k = key.clone();
    st.run(move |s| s.kv_get(&scope, &k))
        .await?
        .map(axum::Json)
        .ok_or_else(|| agentstore::Error::not_found("kv", key).into())
}

async fn kv_delete(
    State(st): State<AppState>,
    c: Caller,
    P(key): P<String>,
) -> Result<StatusCode, ApiError> {
    let scope = c.scope();
    let k = key.clone();
    if st.run(move |s| s.kv_delete(&scope, &k)).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(agentstore::Error::not_found("kv", key).into())
    }
}

async fn kv_expire(
    State(st): State<AppState>,
    c: Caller,
    P(key): P<String>,
    Body(b): Body<KvExpire>,
) -> Result<StatusCode, ApiError> {
    let scope = c.scope();
    let k = key.clone();
    if st.run(move |s| s.kv_expire(&scope, &k, b.ttl_ms)).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(agentstore::Error::not_found("kv", key).into())
    }
}

async fn kv_incr(
    State(st): State<AppState>,
    c: Caller,
    P(key): P<String>,
    Body(b): Body<KvIncr>,
) -> Reply<Counter> {
    let scope = c.scope();
    let value = st
        .run(move |s| s.kv_incr(&scope, &key, b.by, b.ttl_ms))
        .await?;
    Ok(axum::Json(Counter { value }))
}

async fn kv_list(State(st): State<AppState>, c: Caller, Q(q): Q<KvList>) -> Reply<Items<KvEntry>> {
    let scope = c.scope();
    let items = st
        .run(move |s| s.kv_list(&scope, &q.prefix, q.limit.unwrap_or(0)))
        .await?;
    Ok(axum::Json(Items { items }))
}

async fn kv_delete_prefix(
    State(st): State<AppState>,
    c: Caller,
    Q(q): Q<KvPrefix>,
) -> Reply<Count> {
    let scope = c.scope();
    let count = st
        .run(move |s| s.kv_delete_prefix(&scope, &q.prefix))
        .await?;
    Ok(axum::Json(Count { count }))
}

async fn lock_acquire(
    State(st): State<AppState>,
    c: Caller,
    P(name): P<String>,
    Body(b): Body<LockAcquire>,
) -> Reply<Lock> {
    let scope = c.scope();
    Ok(axum::Json(
        st.run(move |s| s.lock_acquire(&scope, &name, &b.holder, b.ttl_ms))
            .await?,
    ))
}

async fn lock_renew(
    State(st): State<AppState>,
    c: Caller,
    P(name): P<String>,
    Body(b): Body<LockRenew>,
) -> Reply<Lock> {
    let scope = c.scope();
    Ok(axum::Json(
        st.run(move |s| s.lock_renew(&scope, &name, b.token, b.ttl_ms))
            .await?,
    ))
}

async fn lock_release(
    State(st): State<AppState>,
    c: Caller,
    P(name): P<String>,
    Body(b): Body<LockToken>,
) -> Reply<Lock> {
    let scope = c.scope();
    Ok(axum::Json(
        st.run(move |s| s.lock_release(&scope, &name, b.token))
            .await?,
    ))
}

async fn get_lock(State(st): State<AppState>, c: Caller, P(name): P<String>) -> Reply<Lock> {
    let scope = c.scope();
    let n = name.clone();
    st.run(move |s| s.get_lock(&scope, &n))
        .await?
        .map(axum::Json)
        .ok_or_else(|| agentstore::Error::not_found("lock", name).into())
}

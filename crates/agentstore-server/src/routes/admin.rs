//! Tenant administration: API keys, the audit log and retention rules.

use agentstore::backend::{AuditQuery, RetentionEntity, RetentionRule};
use agentstore::{ApiKey, AuditEntry, CreatedApiKey, KeyScope, Page, Timestamp};
use axum::extract::State;
use axum::http::StatusCode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Body, Created, Items, P, Q, Reply, created};
use crate::AppState;
use crate::api::{Api, op};
use crate::auth::Caller;
use crate::error::ApiError;

pub(super) fn routes(api: Api) -> Api {
    use KeyScope::Admin;
    api.route(
        "post",
        "/v1/keys",
        op(
            "createKey",
            "keys",
            "Create an API key for this tenant; the secret is in this response only",
            Admin,
        )
        .body::<NewKey>()
        .created::<CreatedApiKey>(),
        create_key,
    )
    .route(
        "get",
        "/v1/keys",
        op(
            "listKeys",
            "keys",
            "This tenant's API keys (never their secrets)",
            Admin,
        )
        .ok::<Items<ApiKey>>(),
        list_keys,
    )
    .route(
        "delete",
        "/v1/keys/{id}",
        op(
            "revokeKey",
            "keys",
            "Revoke an API key; it stops working at once (on other servers of a group without a shared Redis, within a second)",
            Admin,
        ),
        revoke_key,
    )
    .route(
        "get",
        "/v1/audit",
        op(
            "listAudit",
            "audit",
            "This tenant's audit log in order, with filters",
            Admin,
        )
        .query::<AuditList>()
        .ok::<Page<AuditEntry>>(),
        list_audit,
    )
    .route(
        "get",
        "/v1/retention",
        op(
            "listRetention",
            "retention",
            "This tenant's retention rules: how long records of each entity (and kind) are \
             kept after their last change",
            Admin,
        )
        .ok::<Items<RetentionRule>>(),
        list_retention,
    )
    .route(
        "put",
        "/v1/retention",
        op(
            "setRetention",
            "retention",
            "Set one retention rule, or remove it with days null; the sweep (the server's \
             sweeper, and maintenance) then removes older records. Returns every rule",
            Admin,
        )
        .body::<SetRetention>()
        .ok::<Items<RetentionRule>>(),
        set_retention,
    )
}

/// One retention rule to set or remove.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub(crate) struct SetRetention {
    /// What the rule keeps for a limited time.
    entity: RetentionEntity,
    /// Only this kind (a session or memory kind, a document type, a metric name); absent
    /// for every kind.
    #[serde(default)]
    kind: Option<String>,
    /// Days a record is kept after its last change; null removes the rule.
    days: Option<i64>,
}

async fn list_retention(State(st): State<AppState>, c: Caller) -> Reply<Items<RetentionRule>> {
    let scope = c.scope();
    let items = st.run(move |s| s.list_retention(&scope)).await?;
    Ok(axum::Json(Items { items }))
}

async fn set_retention(
    State(st): State<AppState>,
    c: Caller,
    Body(b): Body<SetRetention>,
) -> Reply<Items<RetentionRule>> {
    let scope = c.scope();
    let items = st
        .run(move |s| s.set_retention(&scope, b.entity, b.kind.as_deref(), b.days))
        .await?;
    Ok(axum::Json(Items { items }))
}

/// A key to create.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub(crate) struct NewKey {
    /// A label for people.
    name: String,
    /// What the key allows.
    scopes: Vec<KeyScope>,
    /// When the key stops working (RFC 3339), if ever.
    #[serde(default)]
    expires_at: Option<Timestamp>,
}

/// Filters of the audit log.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(default)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditList {
    /// Actor (e.g. `api_key:<id>`).
    actor: Option<String>,
    /// Action (e.g. `memory.remember`).
    action: Option<String>,
    /// Resource type (e.g. `memory`).
    resource_type: Option<String>,
    /// Resource id.
    resource_id: Option<String>,
    /// From (inclusive, RFC 3339).
    from: Option<Timestamp>,
    /// To (exclusive, RFC 3339).
    to: Option<Timestamp>,
    /// Only entries after this seq (the cursor: `next` of the previous page).
    after_seq: Option<i64>,
    /// Page size (default 100, at most 1000).
    limit: Option<usize>,
}

async fn create_key(
    State(st): State<AppState>,
    c: Caller,
    Body(k): Body<NewKey>,
) -> Created<CreatedApiKey> {
    let scope = c.scope();
    Ok(created(
        st.run(move |s| s.create_api_key(&scope, &k.name, &k.scopes, k.expires_at))
            .await?,
    ))
}

async fn list_keys(State(st): State<AppState>, c: Caller) -> Reply<Items<ApiKey>> {
    let scope = c.scope();
    let items = st.run(move |s| s.list_api_keys(&scope)).await?;
    Ok(axum::Json(Items { items }))
}

async fn revoke_key(
    State(st): State<AppState>,
    c: Caller,
    P(id): P<String>,
) -> Result<StatusCode, ApiError> {
    let scope = c.scope();
    let revoked = id.clone();
    st.run(move |s| s.revoke_api_key(&scope, &id)).await?;
    st.shared.key_revoked(&revoked).await;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_audit(
    State(st): State<AppState>,
    c: Caller,
    Q(q): Q<AuditList>,
) -> Reply<Page<AuditEntry>> {
    let query = AuditQuery {
        // Always the caller's tenant: the store-wide log is for operators (the CLI).
        tenant_id: Some(c.key.tenant_id.clone()),
        actor: q.actor,
        action: q.action,
        resource_type: q.resource_type,
        resource_id: q.resource_id,
        from: q.from,
        to: q.to,
        after_seq: q.after_seq,
        limit: q.limit.unwrap_or(0),
    };
    Ok(axum::Json(st.run(move |s| s.list_audit(query)).await?))
}

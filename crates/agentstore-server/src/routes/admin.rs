//! Tenant administration: API keys and the audit log.

use agentstore::backend::AuditQuery;
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
            "Revoke an API key; it stops working at once",
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
    st.run(move |s| s.revoke_api_key(&scope, &id)).await?;
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

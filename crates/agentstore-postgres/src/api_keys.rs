//! API keys of the HTTP server: stored by the SHA-256 of their secret, revocable.

use agentstore::audit::AuditDraft;
use agentstore::backend::WriteResult;
use agentstore::{ApiKey, Error, KeyScope, Result, Scope, Timestamp};
use postgres::{GenericClient, Row, Transaction};

use crate::audit;
use crate::sql::*;
use crate::tenants::require_tenant;

const COLUMNS: &str = "id, tenant_id, name, prefix, scopes, created_at, expires_at, revoked_at";

fn key_row(r: &Row) -> Result<ApiKey> {
    let scopes: String = col(r, 4)?;
    Ok(ApiKey {
        id: col(r, 0)?,
        tenant_id: col(r, 1)?,
        name: col(r, 2)?,
        prefix: col(r, 3)?,
        scopes: parse_json::<Vec<KeyScope>>(&scopes)?,
        created_at: to_ts(col(r, 5)?),
        expires_at: to_ts_opt(col(r, 6)?),
        revoked_at: to_ts_opt(col(r, 7)?),
    })
}

pub(crate) fn create(
    tx: &mut Transaction<'_>,
    scope: &Scope,
    key: ApiKey,
    hash: &str,
) -> Result<WriteResult> {
    require_scope_tenant(scope, &key.tenant_id)?;
    require_tenant(tx, &key.tenant_id)?;
    tx.execute(
        &format!(
            "INSERT INTO api_keys ({COLUMNS}, key_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ),
        &[
            &key.id,
            &key.tenant_id,
            &key.name,
            &key.prefix,
            &to_json_text(&key.scopes),
            &ts(&key.created_at),
            &ts_opt(&key.expires_at),
            &ts_opt(&key.revoked_at),
            &hash,
        ],
    )
    .db()?;
    // The audit entry carries the key without its hash: the hash of a random secret
    // reveals nothing, but there is no reason to copy it anywhere.
    audit::append(
        tx,
        scope,
        AuditDraft::new("api_key.create", "api_key", &key.id).new_values(&key),
    )?;
    Ok(WriteResult::Id(key.id))
}

pub(crate) fn revoke(
    tx: &mut Transaction<'_>,
    scope: &Scope,
    id: &str,
    at: Timestamp,
) -> Result<WriteResult> {
    let old = get(tx, &scope.tenant, id)?.ok_or_else(|| Error::not_found("api_key", id))?;
    if old.revoked_at.is_some() {
        return Ok(WriteResult::None);
    }
    tx.execute(
        "UPDATE api_keys SET revoked_at = $1 WHERE tenant_id = $2 AND id = $3",
        &[&ts(&at), &scope.tenant, &id],
    )
    .db()?;
    let new = ApiKey {
        revoked_at: Some(at),
        ..old.clone()
    };
    audit::append(
        tx,
        scope,
        AuditDraft::new("api_key.revoke", "api_key", id)
            .old(&old)
            .new_values(&new),
    )?;
    Ok(WriteResult::None)
}

fn get(c: &mut impl GenericClient, tenant: &str, id: &str) -> Result<Option<ApiKey>> {
    Ok(collect_rows(
        c,
        &format!("SELECT {COLUMNS} FROM api_keys WHERE tenant_id = $1 AND id = $2"),
        &[&tenant, &id],
        key_row,
    )?
    .pop())
}

pub(crate) fn by_hash(c: &mut impl GenericClient, hash: &str) -> Result<Option<ApiKey>> {
    Ok(collect_rows(
        c,
        &format!("SELECT {COLUMNS} FROM api_keys WHERE key_hash = $1"),
        &[&hash],
        key_row,
    )?
    .pop())
}

pub(crate) fn list(c: &mut impl GenericClient, tenant: &str) -> Result<Vec<ApiKey>> {
    collect_rows(
        c,
        &format!("SELECT {COLUMNS} FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, id"),
        &[&tenant],
        key_row,
    )
}

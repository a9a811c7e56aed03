//! API keys of the HTTP server: stored by the SHA-256 of their secret, revocable.

use agentstore::audit::AuditDraft;
use agentstore::backend::WriteResult;
use agentstore::{ApiKey, Error, KeyScope, Result, Scope, Timestamp};
use rusqlite::{Connection, Row, params};

use crate::audit;
use crate::sql::*;
use crate::tenants::require_tenant;

const COLUMNS: &str = "id, tenant_id, name, prefix, scopes, created_at, expires_at, revoked_at";

fn key_row(r: &Row<'_>) -> rusqlite::Result<Result<ApiKey>> {
    let scopes: String = r.get(4)?;
    let key = ApiKey {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        name: r.get(2)?,
        prefix: r.get(3)?,
        scopes: Vec::new(),
        created_at: to_ts(r.get(5)?),
        expires_at: to_ts_opt(r.get(6)?),
        revoked_at: to_ts_opt(r.get(7)?),
    };
    Ok(parse_json::<Vec<KeyScope>>(&scopes).map(|scopes| ApiKey { scopes, ..key }))
}

pub(crate) fn create(
    tx: &Connection,
    scope: &Scope,
    key: ApiKey,
    hash: &str,
) -> Result<WriteResult> {
    require_scope_tenant(scope, &key.tenant_id)?;
    require_tenant(tx, &key.tenant_id)?;
    tx.prepare_cached(&format!(
        "INSERT INTO api_keys ({COLUMNS}, key_hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
    ))
    .db()?
    .execute(params![
        key.id,
        key.tenant_id,
        key.name,
        key.prefix,
        to_json_text(&key.scopes),
        ts(&key.created_at),
        ts_opt(&key.expires_at),
        ts_opt(&key.revoked_at),
        hash,
    ])
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
    tx: &Connection,
    scope: &Scope,
    id: &str,
    at: Timestamp,
) -> Result<WriteResult> {
    let old = get(tx, &scope.tenant, id)?.ok_or_else(|| Error::not_found("api_key", id))?;
    if old.revoked_at.is_some() {
        return Ok(WriteResult::None);
    }
    tx.prepare_cached("UPDATE api_keys SET revoked_at = ?1 WHERE tenant_id = ?2 AND id = ?3")
        .db()?
        .execute(params![ts(&at), scope.tenant, id])
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

fn get(c: &Connection, tenant: &str, id: &str) -> Result<Option<ApiKey>> {
    Ok(collect_rows(
        c,
        &format!("SELECT {COLUMNS} FROM api_keys WHERE tenant_id = ?1 AND id = ?2"),
        &[&tenant, &id],
        key_row,
    )?
    .pop())
}

pub(crate) fn by_hash(c: &Connection, hash: &str) -> Result<Option<ApiKey>> {
    Ok(collect_rows(
        c,
        &format!("SELECT {COLUMNS} FROM api_keys WHERE key_hash = ?1"),
        &[&hash],
        key_row,
    )?
    .pop())
}

pub(crate) fn list(c: &Connection, tenant: &str) -> Result<Vec<ApiKey>> {
    collect_rows(
        c,
        &format!("SELECT {COLUMNS} FROM api_keys WHERE tenant_id = ?1 ORDER BY created_at, id"),
        &[&tenant],
        key_row,
    )
}

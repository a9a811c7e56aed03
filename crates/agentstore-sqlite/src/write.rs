//! Dispatch of [`WriteOp`]s to the module that owns each entity.

use agentstore::backend::{WriteOp, WriteResult};
use agentstore::{Result, Scope};
use rusqlite::Connection;

use crate::{checkpoints, documents, infra, memories, sessions, telemetry, tenants};

/// Applies one op inside the caller's transaction (which also holds its audit entry).
pub(crate) fn apply(tx: &Connection, scope: &Scope, op: WriteOp) -> Result<WriteResult> {
    match op {
        WriteOp::CreateTenant(t) => tenants::create_tenant(tx, scope, t),
        WriteOp::CreateSubject(s) => tenants::create_subject(tx, scope, s),
        WriteOp::SetConsent {
            id,
            consent,
            parental_consent_by,
            at,
        } => tenants::set_consent(tx, scope, &id, consent, parental_consent_by, at),
        WriteOp::PutAgent(a) => tenants::put_agent(tx, scope, a),
        WriteOp::CreateSession(s) => sessions::create_session(tx, scope, s),
        WriteOp::UpdateSession { id, update, at } => {
            sessions::update_session(tx, scope, &id, update, at)
        }
        WriteOp::DeleteSession { id } => sessions::delete_session(tx, scope, &id),
        WriteOp::AppendEvents { session_id, events } => {
            sessions::append_events(tx, scope, &session_id, events)
        }
        WriteOp::Remember(m) => memories::remember(tx, scope, m),
        WriteOp::Forget { id } => memories::forget(tx, scope, &id),
        WriteOp::Invalidate { id, at } => memories::invalidate(tx, scope, &id, at),
        WriteOp::TouchMemories { ids, at } => memories::touch(tx, scope, &ids, at),
        WriteOp::PutDocument { document, chunks } => documents::put(tx, scope, document, chunks),
        WriteOp::DeleteDocument { id } => documents::delete(tx, scope, &id),
        WriteOp::RecordChunkQueries { ids, at } => documents::record_queries(tx, scope, &ids, at),
        WriteOp::PutCheckpoint(c) => checkpoints::put(tx, scope, c),
        WriteOp::PutPendingWrites(w) => checkpoints::put_writes(tx, scope, w),
        WriteOp::RecordUsage(u) => telemetry::record_usage(tx, scope, u),
        WriteOp::RecordMetrics(m) => telemetry::record_metrics(tx, scope, m),
        WriteOp::KvSet {
            key,
            value,
            expires_at,
            at,
        } => infra::kv_set(tx, scope, &key, value, expires_at, at),
        WriteOp::KvIncr {
            key,
            by,
            expires_at,
            at,
        } => infra::kv_incr(tx, scope, &key, by, expires_at, at),
        WriteOp::KvExpire {
            key,
            expires_at,
            at,
        } => infra::kv_expire(tx, scope, &key, expires_at, at),
        WriteOp::KvDelete { key } => infra::kv_delete(tx, scope, &key),
        WriteOp::KvDeletePrefix { prefix } => infra::kv_delete_prefix(tx, scope, &prefix),
        WriteOp::LockAcquire {
            name,
            holder,
            expires_at,
            at,
        } => infra::lock_acquire(tx, scope, &name, &holder, expires_at, at),
        WriteOp::LockRenew {
            name,
            token,
            expires_at,
            at,
        } => infra::lock_renew(tx, scope, &name, token, expires_at, at),
        WriteOp::LockRelease { name, token } => infra::lock_release(tx, scope, &name, token),
        WriteOp::SweepExpired { at } => infra::sweep_expired(tx, scope, at),
        _ => Err(agentstore::Error::invalid(
            "op",
            "not supported by the sqlite backend",
        )),
    }
}

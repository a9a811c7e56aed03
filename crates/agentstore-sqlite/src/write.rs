//! Dispatch of [`WriteOp`]s to the module that owns each entity.

use agentstore::backend::{WriteOp, WriteResult};
use agentstore::search::Target;
use agentstore::{DocumentOutcome, Result, Scope, UpsertOutcome};
use rusqlite::Connection;

use crate::vectors::{self, Existing};
use crate::{api_keys, checkpoints, documents, infra, memories, sessions, telemetry, tenants};

/// True when applying `op` may add vectors, so the caller should bring the in-memory
/// index up to date after the commit rather than at the next search.
pub(crate) fn adds_vectors(op: &WriteOp) -> bool {
    match op {
        WriteOp::Remember { vector, .. } => vector.is_some(),
        WriteOp::PutDocument { vectors, .. } => !vectors.is_empty(),
        WriteOp::AppendEvents { vectors, .. } => vectors.iter().any(Option::is_some),
        WriteOp::PutVectors { .. } => true,
        _ => false,
    }
}

/// Rows of the keyword-indexed tables (events, memories, chunks) the op adds.
pub(crate) fn keyword_rows(op: &WriteOp) -> u64 {
    match op {
        WriteOp::AppendEvents { events, .. } => events.len() as u64,
        WriteOp::Remember { .. } => 1,
        WriteOp::PutDocument { chunks, .. } => chunks.len() as u64,
        _ => 0,
    }
}

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
        WriteOp::UpdateSubject { id, update, at } => {
            tenants::update_subject(tx, scope, &id, update, at)
        }
        WriteOp::PutAgent(a) => tenants::put_agent(tx, scope, a),
        WriteOp::CreateSession(s) => sessions::create_session(tx, scope, s),
        WriteOp::UpdateSession { id, update, at } => {
            sessions::update_session(tx, scope, &id, update, at)
        }
        WriteOp::DeleteSession { id } => sessions::delete_session(tx, scope, &id),
        WriteOp::AppendEvents {
            session_id,
            events,
            vectors: embeddings,
        } => {
            let r = sessions::append_events(tx, scope, &session_id, events)?;
            if let WriteResult::Events(stored) = &r {
                for (e, v) in stored.iter().zip(&embeddings) {
                    if let Some(v) = v {
                        vectors::put(tx, &e.tenant_id, Target::Event, &e.id, v, Existing::Replace)?;
                    }
                }
            }
            Ok(r)
        }
        WriteOp::Remember { memory, vector } => {
            let tenant = memory.tenant_id.clone();
            let r = memories::remember(tx, scope, memory)?;
            if let (Some(v), WriteResult::Memory(o)) = (&vector, &r) {
                // New content gets its vector; the same content keeps the one it has.
                let existing = match o {
                    UpsertOutcome::Created { .. } | UpsertOutcome::Superseded { .. } => {
                        Existing::Replace
                    }
                    _ => Existing::Keep,
                };
                vectors::put(tx, &tenant, Target::Memory, o.id(), v, existing)?;
            }
            Ok(r)
        }
        WriteOp::Forget { id } => memories::forget(tx, scope, &id),
        WriteOp::Invalidate { id, at } => memories::invalidate(tx, scope, &id, at),
        WriteOp::TouchMemories { ids, at } => memories::touch(tx, scope, &ids, at),
        WriteOp::PutDocument {
            document,
            chunks,
            vectors: embeddings,
        } => {
            let tenant = document.tenant_id.clone();
            let ids: Vec<String> = chunks.iter().map(|c| c.id.clone()).collect();
            let r = documents::put(tx, scope, document, chunks)?;
            if let WriteResult::Document(
                DocumentOutcome::Created { .. } | DocumentOutcome::Replaced { .. },
            ) = &r
            {
                for (id, v) in ids.iter().zip(&embeddings) {
                    vectors::put(tx, &tenant, Target::Chunk, id, v, Existing::Replace)?;
                }
            }
            Ok(r)
        }
        WriteOp::DeleteDocument { id } => documents::delete(tx, scope, &id),
        WriteOp::EraseSubject { id } => crate::privacy::erase_subject(tx, scope, &id),
        WriteOp::SetRetention {
            entity,
            kind,
            days,
            at,
        } => infra::set_retention(tx, scope, entity, &kind, days, at),
        WriteOp::RecordChunkQueries { ids, at } => documents::record_queries(tx, scope, &ids, at),
        WriteOp::PutCheckpoint(c) => checkpoints::put(tx, scope, c),
        WriteOp::PutPendingWrites(w) => checkpoints::put_writes(tx, scope, w),
        WriteOp::RecordUsage(u) => telemetry::record_usage(tx, scope, u),
        WriteOp::RecordMetrics(m) => telemetry::record_metrics(tx, scope, m),
        WriteOp::Audit(draft) => {
            crate::audit::append(tx, scope, draft)?;
            Ok(WriteResult::None)
        }
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
        WriteOp::DeclareVectorModel {
            model,
            dimension,
            metric,
        } => vectors::declare(
            tx,
            scope,
            &model,
            dimension,
            metric,
            crate::sql::ts(&agentstore::time::now()),
        ),
        WriteOp::PutVectors { target, items } => vectors::put_many(tx, scope, target, &items),
        WriteOp::DropVectors { model } => vectors::drop_model(tx, scope, &model),
        WriteOp::CreateApiKey { key, hash } => api_keys::create(tx, scope, key, &hash),
        WriteOp::RevokeApiKey { id, at } => api_keys::revoke(tx, scope, &id, at),
        _ => Err(agentstore::Error::invalid(
            "op",
            "not supported by the sqlite backend",
        )),
    }
}

//! Checkpoints of agent state per thread, and their pending writes.
//!
//! A thread is a session; inside it, checkpoints live in a checkpoint namespace and are
//! ordered by insertion (`rid`), which is what "latest" and "history" mean. Replacing a
//! checkpoint (same session, namespace and id) updates the row in place: it keeps its
//! position in the history, its `created_at` and its pending writes, the way graph-agent
//! checkpointers treat a re-put of the same checkpoint id.

use std::collections::BTreeMap;

use agentstore::audit::AuditDraft;
use agentstore::backend::{CheckpointQuery, WriteResult};
use agentstore::{Checkpoint, Error, Payload, PendingWrite, Result, Scope};
use postgres::{GenericClient, Row, Transaction};

use crate::audit;
use crate::sql::*;
use crate::tenants::require_writable_session;

pub(crate) const CHECKPOINT_COLUMNS: &str = "tenant_id, session_id, checkpoint_ns, id, parent_id, state_format, state, metadata, created_at";

/// A checkpoint from a row selected with [`CHECKPOINT_COLUMNS`].
pub(crate) fn checkpoint_row(r: &Row) -> Result<Checkpoint> {
    let format: String = col(r, 5)?;
    let state: Vec<u8> = col(r, 6)?;
    let meta: String = col(r, 7)?;
    Ok(Checkpoint {
        tenant_id: col(r, 0)?,
        session_id: col(r, 1)?,
        checkpoint_ns: col(r, 2)?,
        id: col(r, 3)?,
        parent_id: col(r, 4)?,
        state: Payload::from_bytes(&format, state)?,
        metadata: parse_json(&meta)?,
        created_at: to_ts(col(r, 8)?),
    })
}

pub(crate) fn insert_checkpoint(tx: &mut impl GenericClient, c: &Checkpoint) -> Result<()> {
    tx.execute(
        &format!(
            "INSERT INTO checkpoints ({CHECKPOINT_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ),
        &[
            &c.tenant_id,
            &c.session_id,
            &c.checkpoint_ns,
            &c.id,
            &c.parent_id,
            &c.state.format(),
            &c.state.to_bytes(),
            &json_text(&c.metadata),
            &ts(&c.created_at),
        ],
    )
    .db()?;
    Ok(())
}

fn checkpoint_exists(
    c: &mut impl GenericClient,
    tenant: &str,
    session: &str,
    ns: &str,
    id: &str,
) -> Result<bool> {
    Ok(c.query_opt(
        "SELECT 1 FROM checkpoints
             WHERE tenant_id = $1 AND session_id = $2 AND checkpoint_ns = $3 AND id = $4",
        &[&tenant, &session, &ns, &id],
    )
    .db()?
    .is_some())
}

pub(crate) fn put(tx: &mut Transaction<'_>, scope: &Scope, c: Checkpoint) -> Result<WriteResult> {
    require_scope_tenant(scope, &c.tenant_id)?;
    require_writable_session(tx, &c.tenant_id, &c.session_id)?;
    if let Some(parent) = &c.parent_id {
        if parent == &c.id {
            return Err(Error::invalid(
                "parent_id",
                "a checkpoint cannot be its own parent",
            ));
        }
        if !checkpoint_exists(tx, &c.tenant_id, &c.session_id, &c.checkpoint_ns, parent)? {
            return Err(Error::not_found("checkpoint", parent.as_str()));
        }
    }
    match get(
        tx,
        &c.tenant_id,
        &c.session_id,
        &c.checkpoint_ns,
        Some(&c.id),
    )? {
        None => {
            insert_checkpoint(tx, &c)?;
            audit::append(
                tx,
                scope,
                AuditDraft::new("checkpoint.put", "checkpoint", &c.id).new_values(&c),
            )?;
        }
        Some(old) => {
            tx.execute(
                "UPDATE checkpoints SET parent_id = $1, state_format = $2, state = $3, metadata = $4
                 WHERE tenant_id = $5 AND session_id = $6 AND checkpoint_ns = $7 AND id = $8",
                &[
                    &c.parent_id,
                    &c.state.format(),
                    &c.state.to_bytes(),
                    &json_text(&c.metadata),
                    &c.tenant_id,
                    &c.session_id,
                    &c.checkpoint_ns,
                    &c.id,
                ],
            )
            .db()?;
            audit::append(
                tx,
                scope,
                AuditDraft::new("checkpoint.put", "checkpoint", &c.id)
                    .old(&old)
                    .new_values(&c),
            )?;
        }
    }
    Ok(WriteResult::Id(c.id))
}

pub(crate) const PENDING_WRITE_COLUMNS: &str = "tenant_id, session_id, checkpoint_ns, checkpoint_id, task_id, idx, channel, value_format, value, created_at";

/// A pending write from a row selected with [`PENDING_WRITE_COLUMNS`].
pub(crate) fn pending_write_row(r: &Row) -> Result<PendingWrite> {
    let format: String = col(r, 7)?;
    let value: Vec<u8> = col(r, 8)?;
    Ok(PendingWrite {
        tenant_id: col(r, 0)?,
        session_id: col(r, 1)?,
        checkpoint_ns: col(r, 2)?,
        checkpoint_id: col(r, 3)?,
        task_id: col(r, 4)?,
        idx: col(r, 5)?,
        channel: col(r, 6)?,
        value: Payload::from_bytes(&format, value)?,
        created_at: to_ts(col(r, 9)?),
    })
}

pub(crate) fn insert_pending_write(tx: &mut impl GenericClient, w: &PendingWrite) -> Result<()> {
    tx.execute(
        &format!(
            "INSERT INTO checkpoint_writes ({PENDING_WRITE_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ),
        &[
            &w.tenant_id,
            &w.session_id,
            &w.checkpoint_ns,
            &w.checkpoint_id,
            &w.task_id,
            &w.idx,
            &w.channel,
            &w.value.format(),
            &w.value.to_bytes(),
            &ts(&w.created_at),
        ],
    )
    .db()?;
    Ok(())
}

pub(crate) fn put_writes(
    tx: &mut Transaction<'_>,
    scope: &Scope,
    writes: Vec<PendingWrite>,
) -> Result<WriteResult> {
    // One audit entry per checkpoint written to; a batch normally targets one checkpoint.
    let mut per_checkpoint: BTreeMap<(&str, &str, &str), Vec<&PendingWrite>> = BTreeMap::new();
    for w in &writes {
        require_scope_tenant(scope, &w.tenant_id)?;
        per_checkpoint
            .entry((&w.session_id, &w.checkpoint_ns, &w.checkpoint_id))
            .or_default()
            .push(w);
    }
    for ((session, ns, id), ws) in &per_checkpoint {
        if !checkpoint_exists(tx, &scope.tenant, session, ns, id)? {
            return Err(Error::not_found("checkpoint", *id));
        }
        for w in ws {
            let updated = tx
                .execute(
                    "UPDATE checkpoint_writes SET channel = $1, value_format = $2, value = $3,
                         created_at = $4
                     WHERE tenant_id = $5 AND session_id = $6 AND checkpoint_ns = $7
                         AND checkpoint_id = $8 AND task_id = $9 AND idx = $10",
                    &[
                        &w.channel,
                        &w.value.format(),
                        &w.value.to_bytes(),
                        &ts(&w.created_at),
                        &w.tenant_id,
                        &w.session_id,
                        &w.checkpoint_ns,
                        &w.checkpoint_id,
                        &w.task_id,
                        &w.idx,
                    ],
                )
                .db()?;
            if updated == 0 {
                insert_pending_write(tx, w)?;
            }
        }
        let tasks: Vec<&str> = ws.iter().map(|w| w.task_id.as_str()).collect();
        audit::append(
            tx,
            scope,
            AuditDraft::new("checkpoint.writes", "checkpoint", *id).with_json(serde_json::json!({
                "session_id": session,
                "checkpoint_ns": ns,
                "count": ws.len(),
                "tasks": tasks,
            })),
        )?;
    }
    Ok(WriteResult::Count(writes.len() as u64))
}

pub(crate) fn get(
    c: &mut impl GenericClient,
    tenant: &str,
    session_id: &str,
    ns: &str,
    id: Option<&str>,
) -> Result<Option<Checkpoint>> {
    match id {
        Some(id) => one_row(
            c,
            &format!(
                "SELECT {CHECKPOINT_COLUMNS} FROM checkpoints
                 WHERE tenant_id = $1 AND session_id = $2 AND checkpoint_ns = $3 AND id = $4"
            ),
            &[&tenant, &session_id, &ns, &id],
            checkpoint_row,
        ),
        None => one_row(
            c,
            &format!(
                "SELECT {CHECKPOINT_COLUMNS} FROM checkpoints
                 WHERE tenant_id = $1 AND session_id = $2 AND checkpoint_ns = $3
                 ORDER BY rid DESC LIMIT 1"
            ),
            &[&tenant, &session_id, &ns],
            checkpoint_row,
        ),
    }
}

pub(crate) fn list(
    c: &mut impl GenericClient,
    tenant: &str,
    q: &CheckpointQuery,
) -> Result<Vec<Checkpoint>> {
    let before_rid: i64 = match &q.before {
        None => i64::MAX,
        Some(before) => c
            .query_opt(
                "SELECT rid FROM checkpoints
                 WHERE tenant_id = $1 AND session_id = $2 AND checkpoint_ns = $3 AND id = $4",
                &[&tenant, &q.session_id, &q.checkpoint_ns, before],
            )
            .db()?
            .map(|r| col::<i64>(&r, 0))
            .transpose()?
            .ok_or_else(|| Error::not_found("checkpoint", before.as_str()))?,
    };
    let limit = i64::try_from(q.limit.max(1)).unwrap_or(i64::MAX);
    collect_rows(
        c,
        &format!(
            "SELECT {CHECKPOINT_COLUMNS} FROM checkpoints
             WHERE tenant_id = $1 AND session_id = $2 AND checkpoint_ns = $3 AND rid < $4
             ORDER BY rid DESC LIMIT $5"
        ),
        &[
            &tenant,
            &q.session_id,
            &q.checkpoint_ns,
            &before_rid,
            &limit,
        ],
        checkpoint_row,
    )
}

pub(crate) fn pending_writes(
    c: &mut impl GenericClient,
    tenant: &str,
    session_id: &str,
    ns: &str,
    checkpoint_id: &str,
) -> Result<Vec<PendingWrite>> {
    collect_rows(
        c,
        &format!(
            "SELECT {PENDING_WRITE_COLUMNS} FROM checkpoint_writes
             WHERE tenant_id = $1 AND session_id = $2 AND checkpoint_ns = $3 AND checkpoint_id = $4
             ORDER BY task_id, idx"
        ),
        &[&tenant, &session_id, &ns, &checkpoint_id],
        pending_write_row,
    )
}

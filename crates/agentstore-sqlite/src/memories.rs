//! Memories: upsert by key with versioning, dedupe by content hash, as-of reads.
//!
//! Every version of a keyed memory is its own row. The current version has `valid_to`
//! unset, and the partial unique index `memories_current_key` keeps that to one per
//! (tenant, namespace, key); superseding closes the old row before inserting the new one
//! in the same transaction, so a reader sees either the old current version or the new one.

use std::collections::BTreeSet;

use agentstore::audit::AuditDraft;
use agentstore::backend::{MemoryQuery, WriteResult};
use agentstore::memory_cursor::{self, CursorValue, MemoryCursor};
use agentstore::{Error, Json, Memory, Namespace, Page, Result, Scope, Timestamp, UpsertOutcome};
use rusqlite::{Connection, Row, params};

use crate::audit;
use crate::sql::*;
use crate::tenants::{require_refs, require_tenant};

pub(crate) const MEMORY_COLUMNS: &str = "id, tenant_id, namespace, kind, key, content, summary, tier, importance, confidence, success_rate, pinned, priority, topic, domain, tags, source_sessions, source_events, subject_id, agent_id, access_count, last_accessed_at, token_count, content_hash, valid_from, valid_to, superseded_by, expires_at, metadata, created_at, updated_at";
/// [`MEMORY_COLUMNS`] for reading: sealed fields opened (`keyring.rs`).
pub(crate) const MEMORY_SELECT: &str = "id, tenant_id, namespace, kind, key, as_open(content), as_open(summary), tier, importance, confidence, success_rate, pinned, priority, topic, domain, tags, source_sessions, source_events, subject_id, agent_id, access_count, last_accessed_at, token_count, content_hash, valid_from, valid_to, superseded_by, expires_at, metadata, created_at, updated_at";

pub(crate) fn memory_row(r: &Row<'_>) -> rusqlite::Result<Result<Memory>> {
    let nsv: String = r.get(2)?;
    let tags: String = r.get(15)?;
    let sessions: String = r.get(16)?;
    let events: String = r.get(17)?;
    let meta: String = r.get(28)?;
    let m = Memory {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        namespace: to_ns(&nsv),
        kind: r.get(3)?,
        key: r.get(4)?,
        content: r.get(5)?,
        summary: r.get(6)?,
        tier: r.get(7)?,
        importance: r.get(8)?,
        confidence: r.get(9)?,
        success_rate: r.get(10)?,
        pinned: r.get(11)?,
        priority: r.get(12)?,
        topic: r.get(13)?,
        domain: r.get(14)?,
        tags: Vec::new(),
        source_sessions: Vec::new(),
        source_events: Vec::new(),
        subject_id: r.get(18)?,
        agent_id: r.get(19)?,
        access_count: r.get(20)?,
        last_accessed_at: to_ts_opt(r.get(21)?),
        token_count: r.get(22)?,
        content_hash: r.get(23)?,
        valid_from: to_ts(r.get(24)?),
        valid_to: to_ts_opt(r.get(25)?),
        superseded_by: r.get(26)?,
        expires_at: to_ts_opt(r.get(27)?),
        metadata: Json::Null,
        created_at: to_ts(r.get(29)?),
        updated_at: to_ts(r.get(30)?),
    };
    Ok((|| {
        Ok(Memory {
            tags: parse_json(&tags)?,
            source_sessions: parse_json(&sessions)?,
            source_events: parse_json(&events)?,
            metadata: parse_json(&meta)?,
            ..m
        })
    })())
}

/// Inserts a complete memory verbatim (also used by import).
pub(crate) fn insert_memory(tx: &Connection, m: &Memory) -> Result<()> {
    let (content, summary) = if crate::keyring::sealing() {
        ("as_seal(?2, ?19, ?6)", "as_seal(?2, ?19, ?7)")
    } else {
        ("?6", "?7")
    };
    tx.prepare_cached(&format!(
        "INSERT INTO memories ({MEMORY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5,
             {content}, {summary}, ?8, ?9, ?10,
             ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26,
             ?27, ?28, ?29, ?30, ?31)"
    ))
    .db()?
    .execute(params![
        m.id,
        m.tenant_id,
        ns(&m.namespace),
        m.kind,
        m.key,
        m.content,
        m.summary,
        m.tier,
        m.importance,
        m.confidence,
        m.success_rate,
        m.pinned,
        m.priority,
        m.topic,
        m.domain,
        to_json_text(&m.tags),
        to_json_text(&m.source_sessions),
        to_json_text(&m.source_events),
        m.subject_id,
        m.agent_id,
        m.access_count,
        ts_opt(&m.last_accessed_at),
        m.token_count,
        m.content_hash,
        ts(&m.valid_from),
        ts_opt(&m.valid_to),
        m.superseded_by,
        ts_opt(&m.expires_at),
        json_text(&m.metadata),
        ts(&m.created_at),
        ts(&m.updated_at),
    ])
    .map_err(|err| match &err {
        rusqlite::Error::SqliteFailure(f, Some(msg))
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            if msg.ends_with("memories.id") {
                Error::AlreadyExists {
                    entity: "memory",
                    id: m.id.clone(),
                }
            } else if msg.ends_with("memories.key") {
                Error::AlreadyExists {
                    entity: "memory key",
                    id: m.key.clone().unwrap_or_default(),
                }
            } else {
                db_err(err)
            }
        }
        _ => db_err(err),
    })?;
    Ok(())
}

fn require_new_id(tx: &Connection, m: &Memory) -> Result<()> {
    if get(tx, &m.tenant_id, &m.id)?.is_some() {
        return Err(Error::AlreadyExists {
            entity: "memory",
            id: m.id.clone(),
        });
    }
    Ok(())
}

fn create(tx: &Connection, scope: &Scope, m: &Memory) -> Result<UpsertOutcome> {
    require_new_id(tx, m)?;
    insert_memory(tx, m)?;
    audit::append(
        tx,
        scope,
        AuditDraft::new("memory.create", "memory", &m.id).new_values(m),
    )?;
    Ok(UpsertOutcome::Created { id: m.id.clone() })
}

/// Same key, same content: the existing version takes the new descriptive fields but
/// keeps its identity, validity and read counters, so references and as-of reads of it
/// stay valid.
fn update_in_place(
    tx: &Connection,
    scope: &Scope,
    old: Memory,
    m: Memory,
) -> Result<UpsertOutcome> {
    let new = Memory {
        id: old.id.clone(),
        access_count: old.access_count,
        last_accessed_at: old.last_accessed_at,
        valid_from: old.valid_from,
        valid_to: old.valid_to,
        superseded_by: old.superseded_by.clone(),
        created_at: old.created_at,
        ..m
    };
    tx.prepare_cached(
        // A memory moved to another subject is sealed again under that subject's key,
        // so erasing either subject takes exactly its own text.
        "UPDATE memories SET kind = ?1, summary = as_seal(?20, ?14, ?2), tier = ?3,
             content = CASE WHEN subject_id IS ?14 THEN content
                            ELSE as_seal(?20, ?14, as_open(content)) END,
             importance = ?4,
             confidence = ?5, success_rate = ?6, pinned = ?7, priority = ?8, topic = ?9,
             domain = ?10, tags = ?11, source_sessions = ?12, source_events = ?13,
             subject_id = ?14, agent_id = ?15, token_count = ?16, expires_at = ?17,
             metadata = ?18, updated_at = ?19
         WHERE tenant_id = ?20 AND id = ?21",
    )
    .db()?
    .execute(params![
        new.kind,
        new.summary,
        new.tier,
        new.importance,
        new.confidence,
        new.success_rate,
        new.pinned,
        new.priority,
        new.topic,
        new.domain,
        to_json_text(&new.tags),
        to_json_text(&new.source_sessions),
        to_json_text(&new.source_events),
        new.subject_id,
        new.agent_id,
        new.token_count,
        ts_opt(&new.expires_at),
        json_text(&new.metadata),
        ts(&new.updated_at),
        new.tenant_id,
        new.id,
    ])
    .db()?;
    audit::append(
        tx,
        scope,
        AuditDraft::new("memory.update", "memory", &new.id)
            .old(&old)
            .new_values(&new),
    )?;
    Ok(UpsertOutcome::Updated { id: new.id })
}

/// Same key, new content: the old version is closed where the new one starts. A new
/// version back-dated before the old one started closes the old one at its own start
/// (an empty interval) instead, so no interval is ever inverted and as-of reads never
/// find two versions valid at once.
fn supersede(tx: &Connection, scope: &Scope, old: Memory, m: &Memory) -> Result<UpsertOutcome> {
    require_new_id(tx, m)?;
    // Versions of a key form one chain in commit order. The engine stamps `valid_from`
    // before the write lock is taken, so a writer that lost the race to another process
    // can arrive with a start earlier than the version it now replaces; starting it where
    // that version starts keeps the intervals ordered and disjoint, and `history` (ordered
    // by valid_from) then lists versions in the order they became current.
    let mut m = m.clone();
    m.valid_from = m.valid_from.max(old.valid_from);
    let m = &m;
    let closed_at = m.valid_from;
    tx.prepare_cached(
        "UPDATE memories SET valid_to = ?1, superseded_by = ?2, updated_at = ?3
         WHERE tenant_id = ?4 AND id = ?5",
    )
    .db()?
    .execute(params![
        ts(&closed_at),
        m.id,
        ts(&m.updated_at),
        old.tenant_id,
        old.id
    ])
    .db()?;
    insert_memory(tx, m)?;
    audit::append(
        tx,
        scope,
        // The old version stays in the table (closed, not deleted), so naming it is
        // enough; repeating its fields would double the audit row of every upsert.
        AuditDraft::new("memory.supersede", "memory", &m.id)
            .old(&serde_json::json!({
                "id": old.id,
                "content_hash": old.content_hash,
                "valid_to": closed_at,
            }))
            .new_values(m),
    )?;
    Ok(UpsertOutcome::Superseded {
        id: m.id.clone(),
        previous: old.id,
    })
}

/// A current, unexpired memory in the namespace holding the same content, oldest first.
fn duplicate_of(tx: &Connection, m: &Memory) -> Result<Option<String>> {
    opt(tx
        .prepare_cached(
            "SELECT id FROM memories
             WHERE tenant_id = ?1 AND namespace = ?2 AND content_hash = ?3
               AND valid_to IS NULL AND (expires_at IS NULL OR expires_at > ?4)
             ORDER BY rid LIMIT 1",
        )
        .db()?
        .query_row(
            params![
                m.tenant_id,
                ns(&m.namespace),
                m.content_hash,
                ts(&m.created_at)
            ],
            |r| r.get(0),
        ))
}

/// Applies [`agentstore::WriteOp::Remember`]. The caller's id is only checked where a
/// row would be inserted: an update in place or a dedupe keeps the existing id, which
/// makes a retried `remember` idempotent.
pub(crate) fn remember(tx: &Connection, scope: &Scope, m: Memory) -> Result<WriteResult> {
    require_scope_tenant(scope, &m.tenant_id)?;
    require_tenant(tx, &m.tenant_id)?;
    require_refs(
        tx,
        &m.tenant_id,
        m.subject_id.as_deref(),
        m.agent_id.as_deref(),
        None,
    )?;
    let outcome = match &m.key {
        Some(key) => match current_by_key(tx, &m.tenant_id, &m.namespace, key)? {
            Some(old) if old.content_hash == m.content_hash => update_in_place(tx, scope, old, m)?,
            Some(old) => supersede(tx, scope, old, &m)?,
            None => create(tx, scope, &m)?,
        },
        None => match duplicate_of(tx, &m)? {
            Some(id) => UpsertOutcome::Deduplicated { id },
            None => create(tx, scope, &m)?,
        },
    };
    Ok(WriteResult::Memory(outcome))
}

pub(crate) fn forget(tx: &Connection, scope: &Scope, id: &str) -> Result<WriteResult> {
    let old = get(tx, &scope.tenant, id)?.ok_or_else(|| Error::not_found("memory", id))?;
    // A predecessor's `superseded_by` keeps naming this id: it records what happened,
    // and a dangling successor is what a reader of history should see after a forget.
    tx.prepare_cached("DELETE FROM memories WHERE tenant_id = ?1 AND id = ?2")
        .db()?
        .execute([&scope.tenant, id])
        .db()?;
    audit::append(
        tx,
        scope,
        AuditDraft::new("memory.forget", "memory", id).old(&old),
    )?;
    Ok(WriteResult::None)
}

pub(crate) fn invalidate(
    tx: &Connection,
    scope: &Scope,
    id: &str,
    at: Timestamp,
) -> Result<WriteResult> {
    let old = get(tx, &scope.tenant, id)?.ok_or_else(|| Error::not_found("memory", id))?;
    if let Some(to) = old.valid_to {
        return Err(Error::Conflict(format!(
            "memory '{id}' is no longer valid since {}",
            to.to_rfc3339()
        )));
    }
    // A version that only becomes valid later is closed at its start, never before it.
    let valid_to = at.max(old.valid_from);
    tx.prepare_cached(
        "UPDATE memories SET valid_to = ?1, updated_at = ?2 WHERE tenant_id = ?3 AND id = ?4",
    )
    .db()?
    .execute(params![ts(&valid_to), ts(&at), scope.tenant, id])
    .db()?;
    audit::append(
        tx,
        scope,
        AuditDraft::new("memory.invalidate", "memory", id)
            .old(&old)
            .with_json(serde_json::json!({"valid_to": valid_to})),
    )?;
    Ok(WriteResult::None)
}

/// Counts one read of each distinct id; a repeated id in one call is one read.
pub(crate) fn touch(
    tx: &Connection,
    scope: &Scope,
    ids: &[String],
    at: Timestamp,
) -> Result<WriteResult> {
    bump_counters(
        tx,
        scope,
        "UPDATE memories SET access_count = access_count + 1, last_accessed_at = ?1
         WHERE tenant_id = ?2 AND id = ?3",
        ids,
        at,
        "memory.access",
        "memory",
    )
}

// ------------------------------------------------------------------------- reads

fn query_memories(c: &Connection, sql: &str, p: &[&dyn rusqlite::ToSql]) -> Result<Vec<Memory>> {
    collect_rows(c, sql, p, memory_row)
}

pub(crate) fn get(c: &Connection, tenant: &str, id: &str) -> Result<Option<Memory>> {
    opt(c
        .prepare_cached(&format!(
            "SELECT {MEMORY_SELECT} FROM memories WHERE tenant_id = ?1 AND id = ?2"
        ))
        .db()?
        .query_row([tenant, id], memory_row))?
    .transpose()
}

fn current_by_key(
    c: &Connection,
    tenant: &str,
    ns_: &Namespace,
    key: &str,
) -> Result<Option<Memory>> {
    get_by_key(c, tenant, ns_, key, None)
}

/// The version with `key` valid at `as_of`, or the current one (`valid_to` unset). Expiry
/// is not applied here: a lookup by key names one record, like a lookup by id.
pub(crate) fn get_by_key(
    c: &Connection,
    tenant: &str,
    ns_: &Namespace,
    key: &str,
    as_of: Option<Timestamp>,
) -> Result<Option<Memory>> {
    let nsv = ns(ns_);
    let mut items = match as_of {
        None => query_memories(
            c,
            &format!(
                "SELECT {MEMORY_SELECT} FROM memories
                 WHERE tenant_id = ?1 AND namespace = ?2 AND key = ?3 AND valid_to IS NULL"
            ),
            params![tenant, nsv, key],
        )?,
        Some(t) => query_memories(
            c,
            &format!(
                "SELECT {MEMORY_SELECT} FROM memories
                 WHERE tenant_id = ?1 AND namespace = ?2 AND key = ?3
                   AND valid_from <= ?4 AND (valid_to IS NULL OR valid_to > ?4)
                 ORDER BY valid_from DESC, rid DESC LIMIT 1"
            ),
            params![tenant, nsv, key, ts(&t)],
        )?,
    };
    Ok(items.pop())
}

pub(crate) fn history(
    c: &Connection,
    tenant: &str,
    ns_: &Namespace,
    key: &str,
) -> Result<Vec<Memory>> {
    query_memories(
        c,
        &format!(
            "SELECT {MEMORY_SELECT} FROM memories
             WHERE tenant_id = ?1 AND namespace = ?2 AND key = ?3
             ORDER BY valid_from, rid"
        ),
        params![tenant, ns(ns_), key],
    )
}

/// Binds a cursor condition's values for SQLite.
fn cursor_params(values: Vec<CursorValue>) -> Params {
    values
        .into_iter()
        .map(|v| -> Box<dyn rusqlite::ToSql> {
            match v {
                CursorValue::Bool(b) => Box::new(b),
                CursorValue::Int(i) => Box::new(i),
                CursorValue::Float(x) => Box::new(x),
                CursorValue::Text(t) => Box::new(t),
            }
        })
        .collect()
}

fn json_contains(f: &mut Filter, column: &str, value: &str) {
    f.cond(
        format!("EXISTS (SELECT 1 FROM json_each(memories.{column}) WHERE json_each.value = ?)"),
        vec![Box::new(value.to_owned())],
    );
}

pub(crate) fn list(
    c: &Connection,
    tenant: &str,
    q: &MemoryQuery,
    now: Timestamp,
) -> Result<Page<Memory>> {
    if let Some(p) = &q.namespace_prefix {
        p.validate()?;
    }
    let mut f = Filter::tenant(tenant);
    f.ns_prefix("namespace", &q.namespace_prefix)
        .eq_opt("key", &q.key)
        .eq_opt("tier", &q.tier)
        .eq_opt("topic", &q.topic)
        .eq_opt("domain", &q.domain)
        .eq_opt("subject_id", &q.subject_id)
        .eq_opt("agent_id", &q.agent_id)
        .eq_opt("pinned", &q.pinned);
    if !q.kinds.is_empty() {
        let marks = vec!["?"; q.kinds.len()].join(", ");
        f.cond(
            format!("kind IN ({marks})"),
            q.kinds
                .iter()
                .map(|k| Box::new(k.clone()) as Box<dyn rusqlite::ToSql>)
                .collect(),
        );
    }
    for tag in q.tags.iter().collect::<BTreeSet<_>>() {
        json_contains(&mut f, "tags", tag);
    }
    if let Some(s) = &q.source_session {
        json_contains(&mut f, "source_sessions", s);
    }
    if let Some(min) = q.min_importance {
        if !min.is_finite() {
            return Err(Error::invalid("min_importance", "must be a finite number"));
        }
        f.cond("importance >= ?", vec![Box::new(min)]);
    }
    for (field, column, min) in [
        ("min_confidence", "confidence", q.min_confidence),
        ("min_success_rate", "success_rate", q.min_success_rate),
    ] {
        if let Some(min) = min {
            if !min.is_finite() {
                return Err(Error::invalid(field, "must be a finite number"));
            }
            f.cond(format!("{column} >= ?"), vec![Box::new(min)]);
        }
    }
    if let Some(t) = &q.updated_from {
        f.cond("updated_at >= ?", vec![Box::new(ts(t))]);
    }
    for m in &q.metadata {
        crate::search::metadata_cond(&mut f, "metadata", m);
    }
    match &q.valid_at {
        None => {
            f.cond("valid_to IS NULL", vec![]);
        }
        Some(t) => {
            f.cond(
                "valid_from <= ? AND (valid_to IS NULL OR valid_to > ?)",
                vec![Box::new(ts(t)), Box::new(ts(t))],
            );
        }
    }
    if !q.include_expired {
        f.cond(
            "(expires_at IS NULL OR expires_at > ?)",
            vec![Box::new(ts(&now))],
        );
    }
    if let Some(after) = &q.after {
        let (cond, values) = MemoryCursor::parse(q.order, after)?.condition();
        f.cond(cond, cursor_params(values));
    }
    let order_by = memory_cursor::order_by(q.order);
    page(
        c,
        &format!("SELECT {MEMORY_SELECT} FROM memories"),
        &f,
        &order_by,
        q.limit,
        memory_row,
        |m| MemoryCursor::of(q.order, m),
    )
}

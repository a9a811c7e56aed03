//! Sessions and their append-only events.

use agentstore::audit::AuditDraft;
use agentstore::backend::{EventQuery, SessionQuery, WriteResult};
use agentstore::{Error, Event, Json, Page, Result, Scope, Session, SessionUpdate, Timestamp};
use rusqlite::{Connection, Row, params};

use crate::audit;
use crate::sql::*;
use crate::tenants::{require_refs, require_tenant, require_writable_session};

pub(crate) const SESSION_COLUMNS: &str = "id, tenant_id, namespace, kind, status, title, domain, task_type, subject_id, agent_id, parent_id, started_at, ended_at, success, reward, reflection, priority, metadata, expires_at, created_at, updated_at";
/// [`SESSION_COLUMNS`] for reading: sealed fields opened (`keyring.rs`).
pub(crate) const SESSION_SELECT: &str = "id, tenant_id, namespace, kind, status, as_open(title), domain, task_type, subject_id, agent_id, parent_id, started_at, ended_at, success, reward, as_open(reflection), priority, metadata, expires_at, created_at, updated_at";

pub(crate) fn session_row(r: &Row<'_>) -> rusqlite::Result<Result<Session>> {
    let nsv: String = r.get(2)?;
    let meta: String = r.get(17)?;
    let s = Session {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        namespace: to_ns(&nsv),
        kind: r.get(3)?,
        status: r.get(4)?,
        title: r.get(5)?,
        domain: r.get(6)?,
        task_type: r.get(7)?,
        subject_id: r.get(8)?,
        agent_id: r.get(9)?,
        parent_id: r.get(10)?,
        started_at: to_ts(r.get(11)?),
        ended_at: to_ts_opt(r.get(12)?),
        success: r.get(13)?,
        reward: r.get(14)?,
        reflection: r.get(15)?,
        priority: r.get(16)?,
        metadata: Json::Null,
        expires_at: to_ts_opt(r.get(18)?),
        created_at: to_ts(r.get(19)?),
        updated_at: to_ts(r.get(20)?),
    };
    Ok(parse_json(&meta).map(|metadata| Session { metadata, ..s }))
}

pub(crate) fn insert_session(tx: &Connection, s: &Session) -> Result<()> {
    tx.prepare_cached(&format!(
        "INSERT INTO sessions ({SESSION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5,
             as_seal(?2, ?9, ?6), ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
             as_seal(?2, ?9, ?16), ?17, ?18, ?19, ?20, ?21)"
    ))
    .db()?
    .execute(params![
        s.id,
        s.tenant_id,
        ns(&s.namespace),
        s.kind,
        s.status,
        s.title,
        s.domain,
        s.task_type,
        s.subject_id,
        s.agent_id,
        s.parent_id,
        ts(&s.started_at),
        ts_opt(&s.ended_at),
        s.success,
        s.reward,
        s.reflection,
        s.priority,
        json_text(&s.metadata),
        ts_opt(&s.expires_at),
        ts(&s.created_at),
        ts(&s.updated_at),
    ])
    .db()?;
    Ok(())
}

pub(crate) fn create_session(tx: &Connection, scope: &Scope, s: Session) -> Result<WriteResult> {
    require_scope_tenant(scope, &s.tenant_id)?;
    require_tenant(tx, &s.tenant_id)?;
    if get_session(tx, &s.tenant_id, &s.id)?.is_some() {
        return Err(Error::AlreadyExists {
            entity: "session",
            id: s.id,
        });
    }
    require_refs(
        tx,
        &s.tenant_id,
        s.subject_id.as_deref(),
        s.agent_id.as_deref(),
        s.parent_id.as_deref(),
    )?;
    insert_session(tx, &s)?;
    audit::append(
        tx,
        scope,
        AuditDraft::new("session.create", "session", &s.id).new_values(&s),
    )?;
    Ok(WriteResult::Id(s.id))
}

pub(crate) fn update_session(
    tx: &Connection,
    scope: &Scope,
    id: &str,
    u: SessionUpdate,
    at: Timestamp,
) -> Result<WriteResult> {
    let old = get_session(tx, &scope.tenant, id)?.ok_or_else(|| Error::not_found("session", id))?;
    u.check_subject(old.subject_id.as_deref())?;
    if let Some(agent) = &u.agent_id {
        require_refs(tx, &scope.tenant, None, agent.as_deref(), None)?;
    }
    let s = u.apply(&old, at)?;
    tx.prepare_cached(
        "UPDATE sessions SET status = ?1, title = as_seal(?11, subject_id, ?2), ended_at = ?3,
             success = ?4, reward = ?5, reflection = as_seal(?11, subject_id, ?6), priority = ?7, metadata = ?8, expires_at = ?9, updated_at = ?10,
             agent_id = ?13
         WHERE tenant_id = ?11 AND id = ?12",
    )
    .db()?
    .execute(params![
        s.status,
        s.title,
        ts_opt(&s.ended_at),
        s.success,
        s.reward,
        s.reflection,
        s.priority,
        json_text(&s.metadata),
        ts_opt(&s.expires_at),
        ts(&s.updated_at),
        s.tenant_id,
        s.id,
        s.agent_id,
    ])
    .db()?;
    audit::append(
        tx,
        scope,
        AuditDraft::new("session.update", "session", id)
            .old(&old)
            .new_values(&u),
    )?;
    Ok(WriteResult::Session(Box::new(s)))
}

/// Deletes a session's rows (events, checkpoints and pending writes cascade); returns the
/// number of events removed. A session with child sessions is refused rather than
/// leaving children pointing at nothing.
pub(crate) fn delete_session_rows(tx: &Connection, tenant: &str, id: &str) -> Result<u64> {
    let children: i64 = tx
        .prepare_cached("SELECT COUNT(*) FROM sessions WHERE tenant_id = ?1 AND parent_id = ?2")
        .db()?
        .query_row([tenant, id], |r| r.get(0))
        .db()?;
    if children > 0 {
        return Err(Error::Conflict(format!(
            "session '{id}' has {children} child session(s); delete them first"
        )));
    }
    let events: i64 = tx
        .prepare_cached("SELECT COUNT(*) FROM events WHERE tenant_id = ?1 AND session_id = ?2")
        .db()?
        .query_row([tenant, id], |r| r.get(0))
        .db()?;
    tx.prepare_cached("DELETE FROM sessions WHERE tenant_id = ?1 AND id = ?2")
        .db()?
        .execute([tenant, id])
        .db()?;
    Ok(events as u64)
}

pub(crate) fn delete_session(tx: &Connection, scope: &Scope, id: &str) -> Result<WriteResult> {
    let old = get_session(tx, &scope.tenant, id)?.ok_or_else(|| Error::not_found("session", id))?;
    let events = delete_session_rows(tx, &scope.tenant, id)?;
    audit::append(
        tx,
        scope,
        AuditDraft::new("session.delete", "session", id)
            .old(&old)
            .with_json(serde_json::json!({"events_deleted": events})),
    )?;
    Ok(WriteResult::Count(events))
}

pub(crate) fn get_session(c: &Connection, tenant: &str, id: &str) -> Result<Option<Session>> {
    opt(c
        .prepare_cached(&format!(
            "SELECT {SESSION_SELECT} FROM sessions WHERE tenant_id = ?1 AND id = ?2"
        ))
        .db()?
        .query_row([tenant, id], session_row))?
    .transpose()
}

pub(crate) fn list_sessions(
    c: &Connection,
    tenant: &str,
    q: &SessionQuery,
) -> Result<Page<Session>> {
    let mut f = Filter::tenant(tenant);
    f.ns_prefix("namespace", &q.namespace_prefix)
        .eq_opt("kind", &q.kind)
        .eq_opt("status", &q.status)
        .eq_opt("subject_id", &q.subject_id)
        .eq_opt("agent_id", &q.agent_id)
        .eq_opt("parent_id", &q.parent_id)
        .eq_opt("domain", &q.domain)
        .eq_opt("task_type", &q.task_type);
    if let Some(t) = &q.started_from {
        f.cond("started_at >= ?", vec![Box::new(ts(t))]);
    }
    if let Some(t) = &q.started_to {
        f.cond("started_at < ?", vec![Box::new(ts(t))]);
    }
    if !q.include_expired {
        f.cond(
            "(expires_at IS NULL OR expires_at > ?)",
            vec![Box::new(ts(&agentstore::time::now()))],
        );
    }
    if let Some(after) = &q.after {
        let (us, id) = decode_cursor(after)?;
        f.cond(
            "(started_at < ? OR (started_at = ? AND id < ?))",
            vec![Box::new(us), Box::new(us), Box::new(id)],
        );
    }
    page(
        c,
        &format!("SELECT {SESSION_SELECT} FROM sessions"),
        &f,
        "started_at DESC, id DESC",
        q.limit,
        session_row,
        |s| encode_cursor(ts(&s.started_at), &s.id),
    )
}

// ------------------------------------------------------------------------- events

pub(crate) const EVENT_COLUMNS: &str = "id, tenant_id, session_id, seq, kind, role, content, tool_name, parameters, result, success, duration_ms, tokens, cost, metadata, created_at";
/// [`EVENT_COLUMNS`] for reading: sealed fields opened (`keyring.rs`).
pub(crate) const EVENT_SELECT: &str = "id, tenant_id, session_id, seq, kind, role, as_open(content), tool_name, as_open(parameters), as_open(result), success, duration_ms, tokens, cost, metadata, created_at";

pub(crate) fn event_row(r: &Row<'_>) -> rusqlite::Result<Result<Event>> {
    let params_: Option<String> = r.get(8)?;
    let result: Option<String> = r.get(9)?;
    let meta: String = r.get(14)?;
    let e = Event {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        session_id: r.get(2)?,
        seq: r.get(3)?,
        kind: r.get(4)?,
        role: r.get(5)?,
        content: r.get(6)?,
        tool_name: r.get(7)?,
        parameters: None,
        result: None,
        success: r.get(10)?,
        duration_ms: r.get(11)?,
        tokens: r.get(12)?,
        cost: r.get(13)?,
        metadata: Json::Null,
        created_at: to_ts(r.get(15)?),
    };
    Ok((|| {
        Ok(Event {
            parameters: parse_json_opt(params_)?,
            result: parse_json_opt(result)?,
            metadata: parse_json(&meta)?,
            ..e
        })
    })())
}

pub(crate) fn insert_event(tx: &Connection, e: &Event) -> Result<()> {
    // Appends are the hottest write: without field encryption they skip the session
    // lookup and the three function calls (measured: 50% instead of 70% of the bare
    // loop on batched appends, bench/results/foundation.md).
    let sql = if crate::keyring::sealing() {
        // The session's subject, looked up once, decides whose key seals the fields.
        format!(
            "INSERT INTO events ({EVENT_COLUMNS})
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, as_seal(?2, s.subject_id, ?7), ?8,
                    as_seal(?2, s.subject_id, ?9), as_seal(?2, s.subject_id, ?10),
                    ?11, ?12, ?13, ?14, ?15, ?16
             FROM (SELECT (SELECT subject_id FROM sessions WHERE tenant_id = ?2 AND id = ?3)
                   AS subject_id) s"
        )
    } else {
        format!(
            "INSERT INTO events ({EVENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,
             ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
        )
    };
    tx.prepare_cached(&sql)
        .db()?
        .execute(params![
            e.id,
            e.tenant_id,
            e.session_id,
            e.seq,
            e.kind,
            e.role,
            e.content,
            e.tool_name,
            json_text_opt(&e.parameters),
            json_text_opt(&e.result),
            e.success,
            e.duration_ms,
            e.tokens,
            e.cost,
            json_text(&e.metadata),
            ts(&e.created_at),
        ])
        .map_err(|err| match &err {
            rusqlite::Error::SqliteFailure(f, Some(m))
                if f.code == rusqlite::ErrorCode::ConstraintViolation
                    && m.contains("events.id") =>
            {
                Error::AlreadyExists {
                    entity: "event",
                    id: e.id.clone(),
                }
            }
            _ => db_err(err),
        })?;
    Ok(())
}

pub(crate) fn append_events(
    tx: &Connection,
    scope: &Scope,
    session_id: &str,
    mut events: Vec<Event>,
) -> Result<WriteResult> {
    require_writable_session(tx, &scope.tenant, session_id)?;
    // The writer holds the database's write lock (BEGIN IMMEDIATE) for the whole
    // transaction, so reading the last seq and inserting after it cannot interleave with
    // another writer, in this process or another.
    let last: i64 = tx
        .prepare_cached(
            "SELECT COALESCE(MAX(seq), 0) FROM events WHERE tenant_id = ?1 AND session_id = ?2",
        )
        .db()?
        .query_row([&scope.tenant, session_id], |r| r.get(0))
        .db()?;
    for (i, e) in events.iter_mut().enumerate() {
        e.seq = last + 1 + i as i64;
        e.tenant_id = scope.tenant.clone();
        e.session_id = session_id.to_owned();
        insert_event(tx, e)?;
    }
    if let (Some(first), Some(lastev)) = (events.first(), events.last()) {
        // One audit entry per append call: a batch is one operation, and an entry per
        // event would double the rows written by the hottest path.
        audit::append(
            tx,
            scope,
            AuditDraft::new("event.append", "session", session_id).with_json(serde_json::json!({
                "count": events.len(),
                "first_seq": first.seq,
                "last_seq": lastev.seq,
                "first_id": first.id,
                "last_id": lastev.id,
            })),
        )?;
    }
    Ok(WriteResult::Events(events))
}

pub(crate) fn get_event(c: &Connection, tenant: &str, id: &str) -> Result<Option<Event>> {
    opt(c
        .prepare_cached(&format!(
            "SELECT {EVENT_SELECT} FROM events WHERE tenant_id = ?1 AND id = ?2"
        ))
        .db()?
        .query_row([tenant, id], event_row))?
    .transpose()
}

pub(crate) fn list_events(c: &Connection, tenant: &str, q: &EventQuery) -> Result<Page<Event>> {
    require_refs(c, tenant, None, None, Some(&q.session_id))?;
    let mut f = Filter::tenant(tenant);
    f.eq("session_id", q.session_id.clone());
    if let Some(s) = q.after_seq {
        f.cond("seq > ?", vec![Box::new(s)]);
    }
    if let Some(s) = q.before_seq {
        f.cond("seq < ?", vec![Box::new(s)]);
    }
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
    f.eq_opt("tool_name", &q.tool_name);
    // A descending page continues with `before_seq` = the cursor, an ascending one with
    // `after_seq`.
    let order = if q.descending { "seq DESC" } else { "seq ASC" };
    page(
        c,
        &format!("SELECT {EVENT_SELECT} FROM events"),
        &f,
        order,
        q.limit,
        event_row,
        |e| e.seq.to_string(),
    )
}

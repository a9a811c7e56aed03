//! Sessions and their append-only events.

use agentstore::audit::AuditDraft;
use agentstore::backend::{EventQuery, SessionQuery, WriteResult};
use agentstore::{Error, Event, Page, Result, Scope, Session, SessionUpdate, Timestamp};
use postgres::error::SqlState;
use postgres::{GenericClient, Row, Statement, Transaction};

use crate::audit;
use crate::sql::*;
use crate::tenants::{require_refs, require_tenant, require_writable_session};

pub(crate) const SESSION_COLUMNS: &str = "id, tenant_id, namespace, kind, status, title, domain, task_type, subject_id, agent_id, parent_id, started_at, ended_at, success, reward, reflection, priority, metadata, expires_at, created_at, updated_at";
/// [`SESSION_COLUMNS`] for reading. The SQLite backend opens sealed fields here; this
/// backend has no field encryption, so both lists are the same (the name stays for the
/// modules ported from SQLite that select with it).
#[allow(dead_code)]
pub(crate) const SESSION_SELECT: &str = SESSION_COLUMNS;

/// A session from a row selected with [`SESSION_COLUMNS`].
pub(crate) fn session_row(r: &Row) -> Result<Session> {
    let nsv: String = col(r, 2)?;
    let meta: String = col(r, 17)?;
    Ok(Session {
        id: col(r, 0)?,
        tenant_id: col(r, 1)?,
        namespace: to_ns(&nsv),
        kind: col(r, 3)?,
        status: col(r, 4)?,
        title: col(r, 5)?,
        domain: col(r, 6)?,
        task_type: col(r, 7)?,
        subject_id: col(r, 8)?,
        agent_id: col(r, 9)?,
        parent_id: col(r, 10)?,
        started_at: to_ts(col(r, 11)?),
        ended_at: to_ts_opt(col(r, 12)?),
        success: col(r, 13)?,
        reward: col(r, 14)?,
        reflection: col(r, 15)?,
        priority: col(r, 16)?,
        metadata: parse_json(&meta)?,
        expires_at: to_ts_opt(col(r, 18)?),
        created_at: to_ts(col(r, 19)?),
        updated_at: to_ts(col(r, 20)?),
    })
}

pub(crate) fn insert_session(tx: &mut impl GenericClient, s: &Session) -> Result<()> {
    tx.execute(
        &format!(
            "INSERT INTO sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8,
                 $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)"
        ),
        &[
            &s.id,
            &s.tenant_id,
            &ns(&s.namespace),
            &s.kind,
            &s.status,
            &s.title,
            &s.domain,
            &s.task_type,
            &s.subject_id,
            &s.agent_id,
            &s.parent_id,
            &ts(&s.started_at),
            &ts_opt(&s.ended_at),
            &s.success,
            &s.reward,
            &s.reflection,
            &s.priority,
            &json_text(&s.metadata),
            &ts_opt(&s.expires_at),
            &ts(&s.created_at),
            &ts(&s.updated_at),
        ],
    )
    .db()?;
    Ok(())
}

pub(crate) fn create_session(
    tx: &mut Transaction<'_>,
    scope: &Scope,
    s: Session,
) -> Result<WriteResult> {
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
    tx: &mut Transaction<'_>,
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
    tx.execute(
        "UPDATE sessions SET status = $1, title = $2, ended_at = $3, success = $4, reward = $5,
             reflection = $6, priority = $7, metadata = $8, expires_at = $9, updated_at = $10,
             agent_id = $13
         WHERE tenant_id = $11 AND id = $12",
        &[
            &s.status,
            &s.title,
            &ts_opt(&s.ended_at),
            &s.success,
            &s.reward,
            &s.reflection,
            &s.priority,
            &json_text(&s.metadata),
            &ts_opt(&s.expires_at),
            &ts(&s.updated_at),
            &s.tenant_id,
            &s.id,
            &s.agent_id,
        ],
    )
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
pub(crate) fn delete_session_rows(
    tx: &mut impl GenericClient,
    tenant: &str,
    id: &str,
) -> Result<u64> {
    let r = tx
        .query_one(
            "SELECT COUNT(*) FROM sessions WHERE tenant_id = $1 AND parent_id = $2",
            &[&tenant, &id],
        )
        .db()?;
    let children: i64 = col(&r, 0)?;
    if children > 0 {
        return Err(Error::Conflict(format!(
            "session '{id}' has {children} child session(s); delete them first"
        )));
    }
    let r = tx
        .query_one(
            "SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND session_id = $2",
            &[&tenant, &id],
        )
        .db()?;
    let events: i64 = col(&r, 0)?;
    tx.execute(
        "DELETE FROM sessions WHERE tenant_id = $1 AND id = $2",
        &[&tenant, &id],
    )
    .db()?;
    Ok(events as u64)
}

pub(crate) fn delete_session(
    tx: &mut Transaction<'_>,
    scope: &Scope,
    id: &str,
) -> Result<WriteResult> {
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

pub(crate) fn get_session(
    c: &mut impl GenericClient,
    tenant: &str,
    id: &str,
) -> Result<Option<Session>> {
    one_row(
        c,
        &format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE tenant_id = $1 AND id = $2"),
        &[&tenant, &id],
        session_row,
    )
}

pub(crate) fn list_sessions(
    c: &mut impl GenericClient,
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
        &format!("SELECT {SESSION_COLUMNS} FROM sessions"),
        &f,
        "started_at DESC, id DESC",
        q.limit,
        session_row,
        |s| encode_cursor(ts(&s.started_at), &s.id),
    )
}

// ------------------------------------------------------------------------- events

pub(crate) const EVENT_COLUMNS: &str = "id, tenant_id, session_id, seq, kind, role, content, tool_name, parameters, result, success, duration_ms, tokens, cost, metadata, created_at";
/// [`EVENT_COLUMNS`] for reading: the same list here, as [`SESSION_SELECT`].
#[allow(dead_code)]
pub(crate) const EVENT_SELECT: &str = EVENT_COLUMNS;

/// An event from a row selected with [`EVENT_COLUMNS`].
pub(crate) fn event_row(r: &Row) -> Result<Event> {
    let params_: Option<String> = col(r, 8)?;
    let result: Option<String> = col(r, 9)?;
    let meta: String = col(r, 14)?;
    Ok(Event {
        id: col(r, 0)?,
        tenant_id: col(r, 1)?,
        session_id: col(r, 2)?,
        seq: col(r, 3)?,
        kind: col(r, 4)?,
        role: col(r, 5)?,
        content: col(r, 6)?,
        tool_name: col(r, 7)?,
        parameters: parse_json_opt(params_)?,
        result: parse_json_opt(result)?,
        success: col(r, 10)?,
        duration_ms: col(r, 11)?,
        tokens: col(r, 12)?,
        cost: col(r, 13)?,
        metadata: parse_json(&meta)?,
        created_at: to_ts(col(r, 15)?),
    })
}

/// The INSERT of one event, numbered for [`EVENT_COLUMNS`].
fn insert_event_sql() -> String {
    format!(
        "INSERT INTO events ({EVENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,
         $10, $11, $12, $13, $14, $15, $16)"
    )
}

/// Runs the prepared [`insert_event_sql`] for `e`. A duplicate event id is
/// `AlreadyExists`, found by the unique constraint rather than by a lookup: appends are
/// the hottest write.
fn insert_event_with(tx: &mut impl GenericClient, st: &Statement, e: &Event) -> Result<()> {
    tx.execute(
        st,
        &[
            &e.id,
            &e.tenant_id,
            &e.session_id,
            &e.seq,
            &e.kind,
            &e.role,
            &e.content,
            &e.tool_name,
            &json_text_opt(&e.parameters),
            &json_text_opt(&e.result),
            &e.success,
            &e.duration_ms,
            &e.tokens,
            &e.cost,
            &json_text(&e.metadata),
            &ts(&e.created_at),
        ],
    )
    .map_err(|err| {
        let duplicate_id = err.as_db_error().is_some_and(|d| {
            *d.code() == SqlState::UNIQUE_VIOLATION
                && d.constraint() == Some("events_tenant_id_id_key")
        });
        if duplicate_id {
            Error::AlreadyExists {
                entity: "event",
                id: e.id.clone(),
            }
        } else {
            db_err(err)
        }
    })?;
    Ok(())
}

pub(crate) fn insert_event(tx: &mut impl GenericClient, e: &Event) -> Result<()> {
    let st = tx.prepare(&insert_event_sql()).db()?;
    insert_event_with(tx, &st, e)
}

pub(crate) fn append_events(
    tx: &mut Transaction<'_>,
    scope: &Scope,
    session_id: &str,
    mut events: Vec<Event>,
) -> Result<WriteResult> {
    require_writable_session(tx, &scope.tenant, session_id)?;
    // The writer holds the store-wide advisory write lock for the whole transaction, so
    // reading the last seq and inserting after it cannot interleave with another writer,
    // on this server or another.
    let r = tx
        .query_one(
            "SELECT COALESCE(MAX(seq), 0) FROM events WHERE tenant_id = $1 AND session_id = $2",
            &[&scope.tenant, &session_id],
        )
        .db()?;
    let last: i64 = col(&r, 0)?;
    // One statement prepared for the whole batch: a prepare per event would double the
    // round trips of the hottest write.
    let st = if events.is_empty() {
        None
    } else {
        Some(tx.prepare(&insert_event_sql()).db()?)
    };
    for (i, e) in events.iter_mut().enumerate() {
        e.seq = last + 1 + i as i64;
        e.tenant_id = scope.tenant.clone();
        e.session_id = session_id.to_owned();
        if let Some(st) = &st {
            insert_event_with(tx, st, e)?;
        }
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

pub(crate) fn get_event(
    c: &mut impl GenericClient,
    tenant: &str,
    id: &str,
) -> Result<Option<Event>> {
    one_row(
        c,
        &format!("SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = $1 AND id = $2"),
        &[&tenant, &id],
        event_row,
    )
}

pub(crate) fn list_events(
    c: &mut impl GenericClient,
    tenant: &str,
    q: &EventQuery,
) -> Result<Page<Event>> {
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
                .map(|k| Box::new(k.clone()) as Param)
                .collect(),
        );
    }
    f.eq_opt("tool_name", &q.tool_name);
    // A descending page continues with `before_seq` = the cursor, an ascending one with
    // `after_seq`.
    let order = if q.descending { "seq DESC" } else { "seq ASC" };
    page(
        c,
        &format!("SELECT {EVENT_COLUMNS} FROM events"),
        &f,
        order,
        q.limit,
        event_row,
        |e| e.seq.to_string(),
    )
}

//! Sessions and their events.

use agentstore::backend::{EventQuery, SessionQuery};
use agentstore::{Event, KeyScope, NewEvent, NewSession, Page, Session, SessionUpdate, Timestamp};
use axum::extract::State;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Body, Count, Created, P, Q, Reply, created, namespace};
use crate::AppState;
use crate::api::{Api, op};
use crate::auth::Caller;

pub(super) fn routes(api: Api) -> Api {
    use KeyScope::{Read, Write};
    api.route(
        "post",
        "/v1/sessions",
        op("createSession", "sessions", "Create a session", Write)
            .body::<NewSession>()
            .created::<Session>(),
        create,
    )
    .route(
        "get",
        "/v1/sessions",
        op(
            "listSessions",
            "sessions",
            "List sessions, newest first",
            Read,
        )
        .query::<SessionList>()
        .ok::<Page<Session>>(),
        list,
    )
    .route(
        "get",
        "/v1/sessions/{id}",
        op("getSession", "sessions", "Get a session", Read).ok::<Session>(),
        get,
    )
    .route(
        "patch",
        "/v1/sessions/{id}",
        op(
            "updateSession",
            "sessions",
            "Change a session's status, outcome and other fields, or reassign it to \
             another agent (its subject cannot change)",
            Write,
        )
        .body::<SessionUpdate>()
        .ok::<Session>(),
        update,
    )
    .route(
        "delete",
        "/v1/sessions/{id}",
        op(
            "deleteSession",
            "sessions",
            "Delete a session with its events and checkpoints",
            Write,
        )
        .ok::<Count>(),
        delete,
    )
    .route(
        "post",
        "/v1/sessions/{id}/events",
        op(
            "appendEvent",
            "events",
            "Append one event to a session",
            Write,
        )
        .body::<NewEvent>()
        .created::<Event>(),
        append,
    )
    .route(
        "post",
        "/v1/sessions/{id}/events/batch",
        op(
            "appendEvents",
            "events",
            "Append events to a session atomically, in order",
            Write,
        )
        .body::<EventBatch>()
        .created::<Vec<Event>>(),
        append_batch,
    )
    .route(
        "get",
        "/v1/sessions/{id}/events",
        op(
            "listEvents",
            "events",
            "A session's events in seq order",
            Read,
        )
        .query::<EventList>()
        .ok::<Page<Event>>(),
        list_events,
    )
    .route(
        "get",
        "/v1/events/{id}",
        op("getEvent", "events", "Get an event", Read).ok::<Event>(),
        get_event,
    )
}

/// Filters for listing sessions.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(default)]
#[serde(deny_unknown_fields)]
pub(crate) struct SessionList {
    /// Namespace prefix, as `a/b/c`.
    namespace: Option<String>,
    /// Kind.
    kind: Option<String>,
    /// Status.
    status: Option<String>,
    /// Subject.
    subject_id: Option<String>,
    /// Agent.
    agent_id: Option<String>,
    /// Parent session.
    parent_id: Option<String>,
    /// Domain.
    domain: Option<String>,
    /// Task type.
    task_type: Option<String>,
    /// Started at or after (RFC 3339).
    started_from: Option<Timestamp>,
    /// Started before (RFC 3339).
    started_to: Option<Timestamp>,
    /// Include sessions past their expiry.
    include_expired: bool,
    /// Page size (default 100, at most 1000).
    limit: Option<usize>,
    /// Cursor: `next` of the previous page.
    after: Option<String>,
}

async fn create(
    State(st): State<AppState>,
    c: Caller,
    Body(s): Body<NewSession>,
) -> Created<Session> {
    let scope = c.scope();
    Ok(created(
        st.run(move |store| store.create_session(&scope, s)).await?,
    ))
}

async fn list(State(st): State<AppState>, c: Caller, Q(q): Q<SessionList>) -> Reply<Page<Session>> {
    let scope = c.scope();
    let page = st
        .run(move |store| {
            let query = SessionQuery {
                namespace_prefix: namespace(q.namespace.as_deref())?,
                kind: q.kind,
                status: q.status,
                subject_id: q.subject_id,
                agent_id: q.agent_id,
                parent_id: q.parent_id,
                domain: q.domain,
                task_type: q.task_type,
                started_from: q.started_from,
                started_to: q.started_to,
                include_expired: q.include_expired,
                limit: q.limit.unwrap_or(0),
                after: q.after,
            };
            store.list_sessions(&scope, query)
        })
        .await?;
    Ok(axum::Json(page))
}

async fn get(State(st): State<AppState>, c: Caller, P(id): P<String>) -> Reply<Session> {
    let scope = c.scope();
    Ok(axum::Json(
        st.run(move |s| s.get_session(&scope, &id)).await?,
    ))
}

async fn update(
    State(st): State<AppState>,
    c: Caller,
    P(id): P<String>,
    Body(u): Body<SessionUpdate>,
) -> Reply<Session> {
    let scope = c.scope();
    Ok(axum::Json(
        st.run(move |s| s.update_session(&scope, &id, u)).await?,
    ))
}

async fn delete(State(st): State<AppState>, c: Caller, P(id): P<String>) -> Reply<Count> {
    let scope = c.scope();
    let count = st.run(move |s| s.delete_session(&scope, &id)).await?;
    Ok(axum::Json(Count { count }))
}

/// Events to append in one transaction.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub(crate) struct EventBatch {
    /// The events, in order.
    events: Vec<NewEvent>,
}

async fn append(
    State(st): State<AppState>,
    c: Caller,
    P(id): P<String>,
    Body(e): Body<NewEvent>,
) -> Created<Event> {
    let scope = c.scope();
    Ok(created(
        st.run(move |s| s.append_event(&scope, &id, e)).await?,
    ))
}

async fn append_batch(
    State(st): State<AppState>,
    c: Caller,
    P(id): P<String>,
    Body(b): Body<EventBatch>,
) -> Created<Vec<Event>> {
    let scope = c.scope();
    Ok(created(
        st.run(move |s| s.append_events(&scope, &id, b.events))
            .await?,
    ))
}

/// Filters for listing a session's events.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(default)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventList {
    /// Only events with a greater seq (the cursor: `next` of the previous page).
    after_seq: Option<i64>,
    /// Only events with a smaller seq.
    before_seq: Option<i64>,
    /// Only these kinds (repeat the parameter for several).
    kind: Vec<String>,
    /// Only events of this tool (exact match).
    tool_name: Option<String>,
    /// Newest first.
    descending: bool,
    /// Page size (default 100, at most 1000).
    limit: Option<usize>,
}

async fn list_events(
    State(st): State<AppState>,
    c: Caller,
    P(id): P<String>,
    Q(q): Q<EventList>,
) -> Reply<Page<Event>> {
    let scope = c.scope();
    let query = EventQuery {
        session_id: id,
        after_seq: q.after_seq,
        before_seq: q.before_seq,
        kinds: q.kind,
        tool_name: q.tool_name,
        descending: q.descending,
        limit: q.limit.unwrap_or(0),
    };
    Ok(axum::Json(
        st.run(move |s| s.list_events(&scope, query)).await?,
    ))
}

async fn get_event(State(st): State<AppState>, c: Caller, P(id): P<String>) -> Reply<Event> {
    let scope = c.scope();
    Ok(axum::Json(st.run(move |s| s.get_event(&scope, &id)).await?))
}

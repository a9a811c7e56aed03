//! Agents and subjects.

use agentstore::backend::{AgentQuery, Erasure, SubjectExport};
use agentstore::{Agent, AgentStats, KeyScope, NewAgent, NewSubject, Page, Subject, SubjectUpdate};
use axum::extract::State;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Body, Created, P, Q, Reply, created, namespace};
use crate::AppState;
use crate::api::{Api, op};
use crate::auth::Caller;

pub(super) fn routes(api: Api) -> Api {
    use KeyScope::{Admin, Read, Write};
    api.route(
        "post",
        "/v1/agents",
        op(
            "putAgent",
            "agents",
            "Register an agent, or replace the one with the same id",
            Write,
        )
        .body::<NewAgent>()
        .ok::<Agent>(),
        put_agent,
    )
    .route(
        "get",
        "/v1/agents",
        op("listAgents", "agents", "List agents", Read)
            .query::<AgentList>()
            .ok::<Page<Agent>>(),
        list_agents,
    )
    .route(
        "get",
        "/v1/agents/{id}",
        op("getAgent", "agents", "Get an agent", Read).ok::<Agent>(),
        get_agent,
    )
    .route(
        "get",
        "/v1/agents/{id}/stats",
        op(
            "agentStats",
            "agents",
            "Statistics from an agent's sessions, events and usage",
            Read,
        )
        .ok::<AgentStats>(),
        agent_stats,
    )
    .route(
        "post",
        "/v1/subjects",
        op(
            "createSubject",
            "subjects",
            "Create a data subject; its external id is stored only as a keyed hash",
            Write,
        )
        .body::<NewSubject>()
        .created::<Subject>(),
        create_subject,
    )
    .route(
        "post",
        "/v1/subjects/lookup",
        op(
            "findSubject",
            "subjects",
            "Find a subject by the caller's external id (an email, a user id), which the \
             store knows only as its keyed hash; sent in the body so that it stays out of \
             URLs and request logs. 404 `not_found` when no subject has it",
            Read,
        )
        .body::<SubjectLookup>()
        .ok::<Subject>(),
        find_subject,
    )
    .route(
        "get",
        "/v1/subjects/{id}",
        op("getSubject", "subjects", "Get a subject", Read).ok::<Subject>(),
        get_subject,
    )
    .route(
        "patch",
        "/v1/subjects/{id}",
        op(
            "updateSubject",
            "subjects",
            "Change a subject's metadata (keys merged in, `null` removes a key) or \
             retention (`null`: the tenant's rules); consent has its own route",
            Write,
        )
        .body::<SubjectUpdate>()
        .ok::<Subject>(),
        update_subject,
    )
    .route(
        "delete",
        "/v1/subjects/{id}",
        op(
            "eraseSubject",
            "subjects",
            "Erase a subject and its personal data everywhere (GDPR erasure): sessions with \
             their events, checkpoints and usage, every memory version, documents with \
             their chunks, their full-text entries and vectors. Cannot be undone; the audit \
             log keeps a tombstone with counts only",
            Admin,
        )
        .ok::<Erasure>(),
        erase_subject,
    )
    .route(
        "get",
        "/v1/subjects/{id}/export",
        op(
            "exportSubject",
            "subjects",
            "Everything stored about a subject, and the audit entries about it, as one \
             document (GDPR access request)",
            Admin,
        )
        .ok::<SubjectExport>(),
        export_subject,
    )
    .route(
        "put",
        "/v1/subjects/{id}/consent",
        op(
            "setConsent",
            "subjects",
            "Record consent, and parental consent with who recorded it",
            Write,
        )
        .body::<Consent>()
        .ok::<Subject>(),
        set_consent,
    )
}

/// Filters for listing agents.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(default)]
#[serde(deny_unknown_fields)]
pub(crate) struct AgentList {
    /// Namespace prefix, as `a/b/c`.
    namespace: Option<String>,
    /// Active only (true) or inactive only (false).
    active: Option<bool>,
    /// Agent type.
    agent_type: Option<String>,
    /// Must carry this tag.
    tag: Option<String>,
    /// Page size (default 100, at most 1000).
    limit: Option<usize>,
    /// Cursor: `next` of the previous page.
    after: Option<String>,
}

/// The caller's id for a subject.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub(crate) struct SubjectLookup {
    /// The external id the subject was created with (compared exactly).
    external_id: String,
}

/// A consent decision.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub(crate) struct Consent {
    /// Consent given.
    consent: bool,
    /// Who recorded parental consent (for subjects under 13), if given.
    #[serde(default)]
    parental_consent_by: Option<String>,
}

async fn put_agent(State(st): State<AppState>, c: Caller, Body(a): Body<NewAgent>) -> Reply<Agent> {
    let scope = c.scope();
    Ok(axum::Json(st.run(move |s| s.put_agent(&scope, a)).await?))
}

async fn list_agents(
    State(st): State<AppState>,
    c: Caller,
    Q(q): Q<AgentList>,
) -> Reply<Page<Agent>> {
    let scope = c.scope();
    let page = st
        .run(move |s| {
            let query = AgentQuery {
                namespace_prefix: namespace(q.namespace.as_deref())?,
                active: q.active,
                agent_type: q.agent_type,
                tag: q.tag,
                limit: q.limit.unwrap_or(0),
                after: q.after,
            };
            s.list_agents(&scope, query)
        })
        .await?;
    Ok(axum::Json(page))
}

async fn get_agent(State(st): State<AppState>, c: Caller, P(id): P<String>) -> Reply<Agent> {
    let scope = c.scope();
    Ok(axum::Json(st.run(move |s| s.get_agent(&scope, &id)).await?))
}

async fn agent_stats(State(st): State<AppState>, c: Caller, P(id): P<String>) -> Reply<AgentStats> {
    let scope = c.scope();
    Ok(axum::Json(
        st.run(move |s| s.agent_stats(&scope, &id)).await?,
    ))
}

async fn create_subject(
    State(st): State<AppState>,
    c: Caller,
    Body(n): Body<NewSubject>,
) -> Created<Subject> {
    let scope = c.scope();
    Ok(created(st.run(move |s| s.create_subject(&scope, n)).await?))
}

async fn get_subject(State(st): State<AppState>, c: Caller, P(id): P<String>) -> Reply<Subject> {
    let scope = c.scope();
    Ok(axum::Json(
        st.run(move |s| s.get_subject(&scope, &id)).await?,
    ))
}

async fn find_subject(
    State(st): State<AppState>,
    c: Caller,
    Body(b): Body<SubjectLookup>,
) -> Reply<Subject> {
    let scope = c.scope();
    Ok(axum::Json(
        st.run(move |s| {
            // The error names no id: the external id is personal data and error
            // messages reach logs.
            s.find_subject(&scope, &b.external_id)?
                .ok_or_else(|| agentstore::Error::not_found("subject", "with this external id"))
        })
        .await?,
    ))
}

async fn update_subject(
    State(st): State<AppState>,
    c: Caller,
    P(id): P<String>,
    Body(u): Body<SubjectUpdate>,
) -> Reply<Subject> {
    let scope = c.scope();
    Ok(axum::Json(
        st.run(move |s| s.update_subject(&scope, &id, u)).await?,
    ))
}

async fn set_consent(
    State(st): State<AppState>,
    c: Caller,
    P(id): P<String>,
    Body(b): Body<Consent>,
) -> Reply<Subject> {
    let scope = c.scope();
    Ok(axum::Json(
        st.run(move |s| s.set_consent(&scope, &id, b.consent, b.parental_consent_by.as_deref()))
            .await?,
    ))
}

async fn erase_subject(State(st): State<AppState>, c: Caller, P(id): P<String>) -> Reply<Erasure> {
    let scope = c.scope();
    let erased = st.run(move |s| s.erase_subject(&scope, &id)).await?;
    // This server's embedding cache is empty now; the group's others are told to follow.
    st.shared.embeddings_flushed().await;
    Ok(axum::Json(erased))
}

async fn export_subject(
    State(st): State<AppState>,
    c: Caller,
    P(id): P<String>,
) -> Reply<SubjectExport> {
    let scope = c.scope();
    Ok(axum::Json(
        st.run(move |s| s.export_subject(&scope, &id)).await?,
    ))
}

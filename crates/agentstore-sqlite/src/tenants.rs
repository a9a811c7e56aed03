//! Tenants, subjects and agents.

use agentstore::audit::AuditDraft;
use agentstore::backend::{AgentQuery, WriteResult};
use agentstore::{
    Agent, AgentStats, Error, Page, Result, Scope, Subject, SubjectUpdate, Tenant, Timestamp,
};
use rusqlite::{Connection, Row, params};

use crate::audit;
use crate::sql::*;

/// Fails with `NotFound` unless the tenant exists.
pub(crate) fn require_tenant(c: &Connection, tenant: &str) -> Result<()> {
    exists(
        c,
        "SELECT 1 FROM tenants WHERE id = ?1",
        &[&tenant],
        "tenant",
        tenant,
    )
}

/// Fails with `NotFound { entity, id }` unless `sql` (with params) returns a row.
pub(crate) fn exists(
    c: &Connection,
    sql: &str,
    p: &[&dyn rusqlite::ToSql],
    entity: &'static str,
    id: &str,
) -> Result<()> {
    let found = opt(c.prepare_cached(sql).db()?.query_row(p, |_| Ok(())))?;
    found.ok_or_else(|| Error::not_found(entity, id))
}

/// Fails with `NotFound` unless the session exists in the tenant, and with
/// `ConsentRequired` when it belongs to a subject under 13 without recorded parental
/// consent: events and checkpoints are the subject's personal data.
pub(crate) fn require_writable_session(c: &Connection, tenant: &str, session: &str) -> Result<()> {
    let gate = opt(c
        .prepare_cached(
            "SELECT s.subject_id, COALESCE(j.age_gated AND j.parental_consent_at IS NULL, 0)
             FROM sessions s
             LEFT JOIN subjects j ON j.tenant_id = s.tenant_id AND j.id = s.subject_id
             WHERE s.tenant_id = ?1 AND s.id = ?2",
        )
        .db()?
        .query_row([tenant, session], |r| {
            Ok((r.get::<_, Option<String>>(0)?, r.get::<_, bool>(1)?))
        }))?;
    match gate {
        None => Err(Error::not_found("session", session)),
        Some((Some(subject), true)) => Err(Error::ConsentRequired { subject }),
        Some(_) => Ok(()),
    }
}

/// Checks that optional references exist in the tenant, naming the missing one; a
/// subject must also accept personal data (see [`require_writable_session`]).
pub(crate) fn require_refs(
    c: &Connection,
    tenant: &str,
    subject: Option<&str>,
    agent: Option<&str>,
    session: Option<&str>,
) -> Result<()> {
    if let Some(id) = subject {
        let gate = opt(c
            .prepare_cached(
                "SELECT age_gated AND parental_consent_at IS NULL FROM subjects
                 WHERE tenant_id = ?1 AND id = ?2",
            )
            .db()?
            .query_row([tenant, id], |r| r.get::<_, bool>(0)))?;
        match gate {
            None => return Err(Error::not_found("subject", id)),
            Some(true) => {
                return Err(Error::ConsentRequired {
                    subject: id.to_owned(),
                });
            }
            Some(false) => {}
        }
    }
    if let Some(id) = agent {
        exists(
            c,
            "SELECT 1 FROM agents WHERE tenant_id = ?1 AND id = ?2",
            &[&tenant, &id],
            "agent",
            id,
        )?;
    }
    if let Some(id) = session {
        exists(
            c,
            "SELECT 1 FROM sessions WHERE tenant_id = ?1 AND id = ?2",
            &[&tenant, &id],
            "session",
            id,
        )?;
    }
    Ok(())
}

pub(crate) fn create_tenant(tx: &Connection, scope: &Scope, t: Tenant) -> Result<WriteResult> {
    require_scope_tenant(scope, &t.id)?;
    if get_tenant(tx, &t.id)?.is_some() {
        return Err(Error::AlreadyExists {
            entity: "tenant",
            id: t.id,
        });
    }
    insert_tenant(tx, &t)?;
    audit::append(
        tx,
        scope,
        AuditDraft::new("tenant.create", "tenant", &t.id).new_values(&t),
    )?;
    Ok(WriteResult::Id(t.id))
}

pub(crate) fn insert_tenant(tx: &Connection, t: &Tenant) -> Result<()> {
    tx.prepare_cached("INSERT INTO tenants (id, name, created_at) VALUES (?1, ?2, ?3)")
        .db()?
        .execute(params![t.id, t.name, ts(&t.created_at)])
        .db()?;
    Ok(())
}

fn tenant_row(r: &Row<'_>) -> rusqlite::Result<Tenant> {
    Ok(Tenant {
        id: r.get(0)?,
        name: r.get(1)?,
        created_at: to_ts(r.get(2)?),
    })
}

pub(crate) fn get_tenant(c: &Connection, id: &str) -> Result<Option<Tenant>> {
    opt(c
        .prepare_cached("SELECT id, name, created_at FROM tenants WHERE id = ?1")
        .db()?
        .query_row([id], tenant_row))
}

pub(crate) fn list_tenants(c: &Connection) -> Result<Vec<Tenant>> {
    c.prepare_cached("SELECT id, name, created_at FROM tenants ORDER BY rid")
        .db()?
        .query_map([], tenant_row)
        .db()?
        .collect::<rusqlite::Result<Vec<_>>>()
        .db()
}

// ------------------------------------------------------------------------- subjects

pub(crate) const SUBJECT_COLUMNS: &str = "id, tenant_id, external_id_hash, consent, consent_at, age_gated, parental_consent_at, parental_consent_by, retention_days, metadata, created_at, updated_at, strict";

pub(crate) fn subject_row(r: &Row<'_>) -> rusqlite::Result<Result<Subject>> {
    let meta: String = r.get(9)?;
    let s = Subject {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        external_id_hash: r.get(2)?,
        consent: r.get(3)?,
        consent_at: to_ts_opt(r.get(4)?),
        age_gated: r.get(5)?,
        parental_consent_at: to_ts_opt(r.get(6)?),
        parental_consent_by: r.get(7)?,
        retention_days: r.get(8)?,
        metadata: serde_json::Value::Null,
        created_at: to_ts(r.get(10)?),
        updated_at: to_ts(r.get(11)?),
        strict: r.get(12)?,
    };
    Ok(parse_json(&meta).map(|metadata| Subject { metadata, ..s }))
}

pub(crate) fn insert_subject(tx: &Connection, s: &Subject) -> Result<()> {
    tx.prepare_cached(&format!(
        "INSERT INTO subjects ({SUBJECT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
    ))
    .db()?
    .execute(params![
        s.id,
        s.tenant_id,
        s.external_id_hash,
        s.consent,
        ts_opt(&s.consent_at),
        s.age_gated,
        ts_opt(&s.parental_consent_at),
        s.parental_consent_by,
        s.retention_days,
        json_text(&s.metadata),
        ts(&s.created_at),
        ts(&s.updated_at),
        s.strict,
    ])
    .db()?;
    Ok(())
}

pub(crate) fn create_subject(tx: &Connection, scope: &Scope, s: Subject) -> Result<WriteResult> {
    require_scope_tenant(scope, &s.tenant_id)?;
    require_tenant(tx, &s.tenant_id)?;
    if get_subject(tx, &s.tenant_id, &s.id)?.is_some()
        || find_subject(tx, &s.tenant_id, &s.external_id_hash)?.is_some()
    {
        return Err(Error::AlreadyExists {
            entity: "subject",
            id: s.id,
        });
    }
    insert_subject(tx, &s)?;
    audit::append(
        tx,
        scope,
        AuditDraft::new("subject.create", "subject", &s.id).new_values(&s),
    )?;
    Ok(WriteResult::Id(s.id))
}

pub(crate) fn set_consent(
    tx: &Connection,
    scope: &Scope,
    id: &str,
    consent: bool,
    parental_by: Option<String>,
    at: Timestamp,
) -> Result<WriteResult> {
    let old = get_subject(tx, &scope.tenant, id)?.ok_or_else(|| Error::not_found("subject", id))?;
    let consent_at = if consent {
        old.consent_at.or(Some(at))
    } else {
        None
    };
    let (pc_at, pc_by) = match parental_by {
        Some(by) => (Some(at), Some(by)),
        None => (old.parental_consent_at, old.parental_consent_by.clone()),
    };
    tx.prepare_cached(
        "UPDATE subjects SET consent = ?1, consent_at = ?2, parental_consent_at = ?3,
             parental_consent_by = ?4, updated_at = ?5 WHERE tenant_id = ?6 AND id = ?7",
    )
    .db()?
    .execute(params![
        consent,
        ts_opt(&consent_at),
        ts_opt(&pc_at),
        pc_by,
        ts(&at),
        scope.tenant,
        id
    ])
    .db()?;
    audit::append(
        tx,
        scope,
        AuditDraft::new("subject.consent", "subject", id)
            .old(&serde_json::json!({"consent": old.consent, "parental_consent_by": old.parental_consent_by}))
            .new_values(&serde_json::json!({"consent": consent, "parental_consent_by": pc_by})),
    )?;
    Ok(WriteResult::None)
}

pub(crate) fn update_subject(
    tx: &Connection,
    scope: &Scope,
    id: &str,
    u: SubjectUpdate,
    at: Timestamp,
) -> Result<WriteResult> {
    let old = get_subject(tx, &scope.tenant, id)?.ok_or_else(|| Error::not_found("subject", id))?;
    let s = u.apply(&old);
    tx.prepare_cached(
        "UPDATE subjects SET metadata = ?1, retention_days = ?2, updated_at = ?3
         WHERE tenant_id = ?4 AND id = ?5",
    )
    .db()?
    .execute(params![
        json_text(&s.metadata),
        s.retention_days,
        ts(&at),
        scope.tenant,
        id
    ])
    .db()?;
    audit::append(
        tx,
        scope,
        AuditDraft::new("subject.update", "subject", id)
            .old(&old)
            .new_values(&u),
    )?;
    Ok(WriteResult::None)
}

pub(crate) fn get_subject(c: &Connection, tenant: &str, id: &str) -> Result<Option<Subject>> {
    opt(c
        .prepare_cached(&format!(
            "SELECT {SUBJECT_COLUMNS} FROM subjects WHERE tenant_id = ?1 AND id = ?2"
        ))
        .db()?
        .query_row([tenant, id], subject_row))?
    .transpose()
}

pub(crate) fn find_subject(c: &Connection, tenant: &str, hash: &str) -> Result<Option<Subject>> {
    opt(c
        .prepare_cached(&format!(
            "SELECT {SUBJECT_COLUMNS} FROM subjects WHERE tenant_id = ?1 AND external_id_hash = ?2"
        ))
        .db()?
        .query_row([tenant, hash], subject_row))?
    .transpose()
}

// ------------------------------------------------------------------------- agents

pub(crate) const AGENT_COLUMNS: &str = "id, tenant_id, namespace, name, agent_type, model_provider, model_name, capabilities, tags, active, experimental, metadata, created_at, updated_at";

pub(crate) fn agent_row(r: &Row<'_>) -> rusqlite::Result<Result<Agent>> {
    let ns: String = r.get(2)?;
    let caps: String = r.get(7)?;
    let tags: String = r.get(8)?;
    let meta: String = r.get(11)?;
    let (id, tenant_id, name, agent_type, model_provider, model_name, active, experimental) = (
        r.get(0)?,
        r.get(1)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(9)?,
        r.get(10)?,
    );
    let (created, updated): (i64, i64) = (r.get(12)?, r.get(13)?);
    Ok((|| {
        Ok(Agent {
            id,
            tenant_id,
            namespace: to_ns(&ns),
            name,
            agent_type,
            model_provider,
            model_name,
            capabilities: parse_json(&caps)?,
            tags: parse_json(&tags)?,
            active,
            experimental,
            metadata: parse_json(&meta)?,
            created_at: to_ts(created),
            updated_at: to_ts(updated),
        })
    })())
}

pub(crate) fn insert_agent(tx: &Connection, a: &Agent) -> Result<()> {
    tx.prepare_cached(&format!(
        "INSERT INTO agents ({AGENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
    ))
    .db()?
    .execute(params![
        a.id,
        a.tenant_id,
        ns(&a.namespace),
        a.name,
        a.agent_type,
        a.model_provider,
        a.model_name,
        json_text(&a.capabilities),
        to_json_text(&a.tags),
        a.active,
        a.experimental,
        json_text(&a.metadata),
        ts(&a.created_at),
        ts(&a.updated_at),
    ])
    .db()?;
    Ok(())
}

pub(crate) fn put_agent(tx: &Connection, scope: &Scope, a: Agent) -> Result<WriteResult> {
    require_scope_tenant(scope, &a.tenant_id)?;
    require_tenant(tx, &a.tenant_id)?;
    let by_name: Option<String> = opt(tx
        .prepare_cached("SELECT id FROM agents WHERE tenant_id = ?1 AND name = ?2")
        .db()?
        .query_row([&a.tenant_id, &a.name], |r| r.get(0)))?;
    if by_name.as_ref().is_some_and(|id| id != &a.id) {
        return Err(Error::AlreadyExists {
            entity: "agent",
            id: a.name,
        });
    }
    match get_agent(tx, &a.tenant_id, &a.id)? {
        None => {
            insert_agent(tx, &a)?;
            audit::append(
                tx,
                scope,
                AuditDraft::new("agent.create", "agent", &a.id).new_values(&a),
            )?;
        }
        Some(old) => {
            tx.prepare_cached(
                "UPDATE agents SET namespace = ?1, name = ?2, agent_type = ?3, model_provider = ?4,
                     model_name = ?5, capabilities = ?6, tags = ?7, active = ?8, experimental = ?9,
                     metadata = ?10, updated_at = ?11 WHERE tenant_id = ?12 AND id = ?13",
            )
            .db()?
            .execute(params![
                ns(&a.namespace),
                a.name,
                a.agent_type,
                a.model_provider,
                a.model_name,
                json_text(&a.capabilities),
                to_json_text(&a.tags),
                a.active,
                a.experimental,
                json_text(&a.metadata),
                ts(&a.updated_at),
                a.tenant_id,
                a.id,
            ])
            .db()?;
            audit::append(
                tx,
                scope,
                AuditDraft::new("agent.update", "agent", &a.id)
                    .old(&old)
                    .new_values(&a),
            )?;
        }
    }
    Ok(WriteResult::Id(a.id))
}

pub(crate) fn get_agent(c: &Connection, tenant: &str, id: &str) -> Result<Option<Agent>> {
    opt(c
        .prepare_cached(&format!(
            "SELECT {AGENT_COLUMNS} FROM agents WHERE tenant_id = ?1 AND id = ?2"
        ))
        .db()?
        .query_row([tenant, id], agent_row))?
    .transpose()
}

pub(crate) fn list_agents(c: &Connection, tenant: &str, q: &AgentQuery) -> Result<Page<Agent>> {
    let mut f = Filter::tenant(tenant);
    f.ns_prefix("namespace", &q.namespace_prefix)
        .eq_opt("active", &q.active)
        .eq_opt("agent_type", &q.agent_type);
    if let Some(tag) = &q.tag {
        f.cond(
            "EXISTS (SELECT 1 FROM json_each(agents.tags) WHERE json_each.value = ?)",
            vec![Box::new(tag.clone())],
        );
    }
    if let Some(after) = &q.after {
        f.cond("name > ?", vec![Box::new(after.clone())]);
    }
    page(
        c,
        &format!("SELECT {AGENT_COLUMNS} FROM agents"),
        &f,
        "name",
        q.limit,
        agent_row,
        |a| a.name.clone(),
    )
}

pub(crate) fn agent_stats(c: &Connection, tenant: &str, id: &str) -> Result<AgentStats> {
    let (sessions, succeeded, failed, avg_duration_us): (i64, i64, i64, Option<f64>) = c
        .prepare_cached(
            "SELECT COUNT(*), COALESCE(SUM(success = 1), 0), COALESCE(SUM(success = 0), 0),
                    AVG(CASE WHEN ended_at IS NOT NULL THEN ended_at - started_at END)
             FROM sessions WHERE tenant_id = ?1 AND agent_id = ?2",
        )
        .db()?
        .query_row([tenant, id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .db()?;
    let (usage_calls, input_tokens, output_tokens, cost): (i64, i64, i64, f64) = c
        .prepare_cached(
            "SELECT COUNT(*), COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0),
                    COALESCE(SUM(COALESCE(actual_cost, estimated_cost)), 0.0)
             FROM usage_records WHERE tenant_id = ?1 AND agent_id = ?2",
        )
        .db()?
        .query_row([tenant, id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .db()?;
    let finished = succeeded + failed;
    Ok(AgentStats {
        agent_id: id.into(),
        sessions,
        succeeded,
        failed,
        success_rate: (finished > 0).then(|| succeeded as f64 / finished as f64),
        avg_duration_ms: avg_duration_us.map(|us| us / 1000.0),
        usage_calls,
        input_tokens,
        output_tokens,
        cost,
    })
}

//! Usage records and metric points.
//!
//! Both are append-heavy series read by time window; the engine aggregates, downsamples
//! and ranks what these queries return, so the SQL here only filters and orders.

use std::collections::BTreeSet;

use agentstore::audit::AuditDraft;
use agentstore::backend::{MetricQuery, UsageQuery, WriteResult};
use agentstore::{Error, MetricPoint, Result, Scope, UsageRecord};
use rusqlite::{Connection, Row, params};

use crate::audit;
use crate::sql::*;
use crate::tenants::{require_refs, require_tenant};

// ------------------------------------------------------------------------- usage

pub(crate) const USAGE_COLUMNS: &str = "id, tenant_id, session_id, agent_id, provider, model, operation, input_tokens, output_tokens, estimated_cost, actual_cost, latency_ms, quality_score, success, metadata, created_at";

pub(crate) fn usage_row(r: &Row<'_>) -> rusqlite::Result<Result<UsageRecord>> {
    let meta: String = r.get(14)?;
    let u = UsageRecord {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        session_id: r.get(2)?,
        agent_id: r.get(3)?,
        provider: r.get(4)?,
        model: r.get(5)?,
        operation: r.get(6)?,
        input_tokens: r.get(7)?,
        output_tokens: r.get(8)?,
        estimated_cost: r.get(9)?,
        actual_cost: r.get(10)?,
        latency_ms: r.get(11)?,
        quality_score: r.get(12)?,
        success: r.get(13)?,
        metadata: serde_json::Value::Null,
        created_at: to_ts(r.get(15)?),
    };
    Ok(parse_json(&meta).map(|metadata| UsageRecord { metadata, ..u }))
}

pub(crate) fn insert_usage(tx: &Connection, u: &UsageRecord) -> Result<()> {
    tx.prepare_cached(&format!(
        "INSERT INTO usage_records ({USAGE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,
             ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
    ))
    .db()?
    .execute(params![
        u.id,
        u.tenant_id,
        u.session_id,
        u.agent_id,
        u.provider,
        u.model,
        u.operation,
        u.input_tokens,
        u.output_tokens,
        u.estimated_cost,
        u.actual_cost,
        u.latency_ms,
        u.quality_score,
        u.success,
        json_text(&u.metadata),
        ts(&u.created_at),
    ])
    .map_err(|err| match &err {
        rusqlite::Error::SqliteFailure(f, Some(m))
            if f.code == rusqlite::ErrorCode::ConstraintViolation
                && m.contains("usage_records.id") =>
        {
            Error::AlreadyExists {
                entity: "usage",
                id: u.id.clone(),
            }
        }
        _ => db_err(err),
    })?;
    Ok(())
}

pub(crate) fn record_usage(
    tx: &Connection,
    scope: &Scope,
    records: Vec<UsageRecord>,
) -> Result<WriteResult> {
    require_tenant(tx, &scope.tenant)?;
    for u in &records {
        require_scope_tenant(scope, &u.tenant_id)?;
        require_refs(
            tx,
            &scope.tenant,
            None,
            u.agent_id.as_deref(),
            u.session_id.as_deref(),
        )?;
        insert_usage(tx, u)?;
    }
    if let (Some(first), Some(last)) = (records.first(), records.last()) {
        // One entry per call, like event appends: usage is recorded on every model call,
        // and an entry per record would double the rows that path writes.
        audit::append(
            tx,
            scope,
            AuditDraft::new("usage.record", "usage", &first.id).with_json(serde_json::json!({
                "count": records.len(),
                "first_id": first.id,
                "last_id": last.id,
                "input_tokens": records.iter().map(|u| u.input_tokens).sum::<i64>(),
                "output_tokens": records.iter().map(|u| u.output_tokens).sum::<i64>(),
            })),
        )?;
    }
    Ok(WriteResult::Count(records.len() as u64))
}

pub(crate) fn list_usage(c: &Connection, tenant: &str, q: &UsageQuery) -> Result<Vec<UsageRecord>> {
    let mut f = Filter::tenant(tenant);
    f.eq_opt("session_id", &q.session_id)
        .eq_opt("agent_id", &q.agent_id)
        .eq_opt("provider", &q.provider)
        .eq_opt("model", &q.model);
    if let Some(t) = &q.from {
        f.cond("created_at >= ?", vec![Box::new(ts(t))]);
    }
    if let Some(t) = &q.to {
        f.cond("created_at < ?", vec![Box::new(ts(t))]);
    }
    let sql = format!(
        "SELECT {USAGE_COLUMNS} FROM usage_records {} ORDER BY created_at, rid",
        f.where_sql()
    );
    c.prepare_cached(&sql)
        .db()?
        .query_map(f.param_refs().as_slice(), usage_row)
        .db()?
        .map(|r| r.db().and_then(|x| x))
        .collect()
}

// ------------------------------------------------------------------------- metrics

pub(crate) const METRIC_COLUMNS: &str = "tenant_id, name, labels, value, at";

pub(crate) fn metric_row(r: &Row<'_>) -> rusqlite::Result<Result<MetricPoint>> {
    let labels: String = r.get(2)?;
    let (tenant_id, name, value, at): (String, String, f64, i64) =
        (r.get(0)?, r.get(1)?, r.get(3)?, r.get(4)?);
    Ok(parse_json(&labels).map(|labels| MetricPoint {
        tenant_id,
        name,
        labels,
        value,
        at: to_ts(at),
    }))
}

pub(crate) fn insert_metric(tx: &Connection, p: &MetricPoint) -> Result<()> {
    // A BTreeMap serializes with sorted keys: the canonical label text the schema expects,
    // so one label set always has one spelling.
    tx.prepare_cached(&format!(
        "INSERT INTO metric_points ({METRIC_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5)"
    ))
    .db()?
    .execute(params![
        p.tenant_id,
        p.name,
        to_json_text(&p.labels),
        p.value,
        ts(&p.at),
    ])
    .db()?;
    Ok(())
}

pub(crate) fn record_metrics(
    tx: &Connection,
    scope: &Scope,
    points: Vec<MetricPoint>,
) -> Result<WriteResult> {
    require_tenant(tx, &scope.tenant)?;
    for p in &points {
        require_scope_tenant(scope, &p.tenant_id)?;
        if !p.value.is_finite() {
            return Err(Error::invalid("value", "must be a finite number"));
        }
        insert_metric(tx, p)?;
    }
    if let Some(first) = points.first() {
        let names: BTreeSet<&str> = points.iter().map(|p| p.name.as_str()).collect();
        audit::append(
            tx,
            scope,
            AuditDraft::new("metric.record", "metric", &first.name).with_json(serde_json::json!({
                "count": points.len(),
                "names": names,
            })),
        )?;
    }
    Ok(WriteResult::Count(points.len() as u64))
}

pub(crate) fn metric_points(
    c: &Connection,
    tenant: &str,
    q: &MetricQuery,
) -> Result<Vec<MetricPoint>> {
    let mut f = Filter::tenant(tenant);
    f.eq("name", q.name.clone());
    if let Some(t) = &q.from {
        f.cond("at >= ?", vec![Box::new(ts(t))]);
    }
    if let Some(t) = &q.to {
        f.cond("at < ?", vec![Box::new(ts(t))]);
    }
    let sql = format!(
        "SELECT {METRIC_COLUMNS} FROM metric_points {} ORDER BY at, rid",
        f.where_sql()
    );
    // Labels are matched here rather than with json_extract: a label key may hold any
    // character, and SQLite's JSON path syntax has no escape for a quote inside a key.
    // The name and time window already narrow the scan through the series index.
    let mut out = Vec::new();
    let mut st = c.prepare_cached(&sql).db()?;
    let rows = st.query_map(f.param_refs().as_slice(), metric_row).db()?;
    for r in rows {
        let p = r.db()??;
        if q.labels.iter().all(|(k, v)| p.labels.get(k) == Some(v)) {
            out.push(p);
        }
    }
    Ok(out)
}

//! Usage records and metric points.
//!
//! Both are append-heavy series read by time window; the engine aggregates, downsamples
//! and ranks what these queries return, so the SQL here only filters and orders.

use std::collections::BTreeSet;

use agentstore::audit::AuditDraft;
use agentstore::backend::{MetricQuery, UsageQuery, WriteResult};
use agentstore::{Error, MetricPoint, Result, Scope, UsageRecord};
use postgres::error::SqlState;
use postgres::{GenericClient, Row, Transaction};

use crate::audit;
use crate::sql::*;
use crate::tenants::{require_refs, require_tenant};

// ------------------------------------------------------------------------- usage

pub(crate) const USAGE_COLUMNS: &str = "id, tenant_id, session_id, agent_id, provider, model, operation, input_tokens, output_tokens, estimated_cost, actual_cost, latency_ms, quality_score, success, metadata, created_at";

/// A usage record from a row selected with [`USAGE_COLUMNS`].
pub(crate) fn usage_row(r: &Row) -> Result<UsageRecord> {
    let meta: String = col(r, 14)?;
    Ok(UsageRecord {
        id: col(r, 0)?,
        tenant_id: col(r, 1)?,
        session_id: col(r, 2)?,
        agent_id: col(r, 3)?,
        provider: col(r, 4)?,
        model: col(r, 5)?,
        operation: col(r, 6)?,
        input_tokens: col(r, 7)?,
        output_tokens: col(r, 8)?,
        estimated_cost: col(r, 9)?,
        actual_cost: col(r, 10)?,
        latency_ms: col(r, 11)?,
        quality_score: col(r, 12)?,
        success: col(r, 13)?,
        metadata: parse_json(&meta)?,
        created_at: to_ts(col(r, 15)?),
    })
}

/// Inserts one record. A duplicate id is `AlreadyExists`, found by the unique
/// constraint rather than by a lookup (usage is recorded on every model call).
pub(crate) fn insert_usage(tx: &mut impl GenericClient, u: &UsageRecord) -> Result<()> {
    tx.execute(
        &format!(
            "INSERT INTO usage_records ({USAGE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7,
                 $8, $9, $10, $11, $12, $13, $14, $15, $16)"
        ),
        &[
            &u.id,
            &u.tenant_id,
            &u.session_id,
            &u.agent_id,
            &u.provider,
            &u.model,
            &u.operation,
            &u.input_tokens,
            &u.output_tokens,
            &u.estimated_cost,
            &u.actual_cost,
            &u.latency_ms,
            &u.quality_score,
            &u.success,
            &json_text(&u.metadata),
            &ts(&u.created_at),
        ],
    )
    .map_err(|err| {
        let duplicate_id = err.as_db_error().is_some_and(|d| {
            *d.code() == SqlState::UNIQUE_VIOLATION
                && d.constraint() == Some("usage_records_tenant_id_id_key")
        });
        if duplicate_id {
            Error::AlreadyExists {
                entity: "usage",
                id: u.id.clone(),
            }
        } else {
            db_err(err)
        }
    })?;
    Ok(())
}

pub(crate) fn record_usage(
    tx: &mut Transaction<'_>,
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

pub(crate) fn list_usage(
    c: &mut impl GenericClient,
    tenant: &str,
    q: &UsageQuery,
) -> Result<Vec<UsageRecord>> {
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
    collect_rows(c, &sql, f.param_refs().as_slice(), usage_row)
}

// ------------------------------------------------------------------------- metrics

pub(crate) const METRIC_COLUMNS: &str = "tenant_id, name, labels, value, at";

/// A metric point from a row selected with [`METRIC_COLUMNS`].
pub(crate) fn metric_row(r: &Row) -> Result<MetricPoint> {
    let labels: String = col(r, 2)?;
    Ok(MetricPoint {
        tenant_id: col(r, 0)?,
        name: col(r, 1)?,
        labels: parse_json(&labels)?,
        value: col(r, 3)?,
        at: to_ts(col(r, 4)?),
    })
}

pub(crate) fn insert_metric(tx: &mut impl GenericClient, p: &MetricPoint) -> Result<()> {
    // A BTreeMap serializes with sorted keys: the canonical label text the schema expects,
    // so one label set always has one spelling.
    tx.execute(
        &format!("INSERT INTO metric_points ({METRIC_COLUMNS}) VALUES ($1, $2, $3, $4, $5)"),
        &[
            &p.tenant_id,
            &p.name,
            &to_json_text(&p.labels),
            &p.value,
            &ts(&p.at),
        ],
    )
    .db()?;
    Ok(())
}

pub(crate) fn record_metrics(
    tx: &mut Transaction<'_>,
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
    c: &mut impl GenericClient,
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
    // Labels are matched here rather than in SQL, as in the SQLite backend: the stored
    // text is then only ever parsed by `metric_row` (a damaged value is `Corrupt`, not a
    // cast error), and the name and time window already narrow the scan through the
    // series index.
    Ok(
        collect_rows(c, &sql, f.param_refs().as_slice(), metric_row)?
            .into_iter()
            .filter(|p| q.labels.iter().all(|(k, v)| p.labels.get(k) == Some(v)))
            .collect(),
    )
}

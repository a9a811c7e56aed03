//! The `vectors` table (migration 0004): writes inside a record's transaction, and the
//! reads the engine asks for (stored vectors, models, records without a vector).
//!
//! Vectors are stored as little-endian f32 bytes. A record has at most one vector per
//! model (`UNIQUE (target, record_rid, model)`); replacing one deletes the row and inserts
//! a new one, so the log the index follows only ever sees inserts and deletes.

use agentstore::audit::AuditDraft;
use agentstore::backend::{TextToEmbed, VectorModelInfo, WriteResult};
use agentstore::search::Target;
use agentstore::{Embedding, Error, Metric, Result, Scope};
use rusqlite::{Connection, OptionalExtension, params};

use crate::audit;
use crate::sql::*;

/// The record table of a target.
pub(crate) fn table(target: Target) -> &'static str {
    match target {
        Target::Memory => "memories",
        Target::Chunk => "chunks",
        Target::Event => "events",
    }
}

/// f32 values as stored.
pub(crate) fn encode(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Stored bytes as f32 values; a length that is not a multiple of 4 is damage.
pub(crate) fn decode(b: &[u8]) -> Result<Vec<f32>> {
    if !b.len().is_multiple_of(4) {
        return Err(Error::Corrupt(format!(
            "a stored vector has {} bytes, not a multiple of 4",
            b.len()
        )));
    }
    Ok(b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// Applies `DeclareVectorModel`.
pub(crate) fn declare(
    tx: &Connection,
    scope: &Scope,
    model: &str,
    dimension: usize,
    metric: Metric,
    at: i64,
) -> Result<WriteResult> {
    match model_of(tx, model)? {
        Some((d, m)) if d == dimension && m == metric => {}
        Some((d, m)) => {
            return Err(Error::Conflict(format!(
                "vector model '{model}' is {d}-dimensional with metric {}, not {dimension} with {}",
                m.as_str(),
                metric.as_str()
            )));
        }
        None => {
            tx.prepare_cached(
                "INSERT INTO vector_models (model, dimension, metric, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .db()?
            .execute(params![model, dimension as i64, metric.as_str(), at])
            .db()?;
            audit::append_for(
                tx,
                None,
                scope,
                AuditDraft::new("vector_model.declare", "vector_model", model).with_json(
                    serde_json::json!({"dimension": dimension, "metric": metric.as_str()}),
                ),
            )?;
        }
    }
    Ok(WriteResult::None)
}

/// A model's dimension and metric.
pub(crate) fn model_of(c: &Connection, model: &str) -> Result<Option<(usize, Metric)>> {
    let row: Option<(i64, String)> = c
        .prepare_cached("SELECT dimension, metric FROM vector_models WHERE model = ?1")
        .db()?
        .query_row([model], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .db()?;
    row.map(|(d, m)| {
        Metric::parse(&m)
            .map(|m| (d as usize, m))
            .map_err(|_| Error::Corrupt(format!("vector model '{model}' has metric '{m}'")))
    })
    .transpose()
}

/// The rid of a record in the tenant, if it exists.
pub(crate) fn record_rid(
    c: &Connection,
    target: Target,
    tenant: &str,
    id: &str,
) -> Result<Option<i64>> {
    c.prepare_cached(&format!(
        "SELECT rid FROM {} WHERE tenant_id = ?1 AND id = ?2",
        table(target)
    ))
    .db()?
    .query_row([tenant, id], |r| r.get(0))
    .optional()
    .db()
}

/// How [`put`] treats a record that already has a vector of the model.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Existing {
    /// Replace it (new content, or an explicit re-embedding).
    Replace,
    /// Keep it (same content: the vector it has is as good).
    Keep,
}

/// Stores the vector of a record, after checking its model is declared with this
/// dimension. `NotFound` when the record is not in the tenant.
pub(crate) fn put(
    tx: &Connection,
    tenant: &str,
    target: Target,
    id: &str,
    e: &Embedding,
    existing: Existing,
) -> Result<()> {
    let Some((dimension, _)) = model_of(tx, &e.model)? else {
        return Err(Error::invalid(
            "vector",
            format!("vector model '{}' has not been declared", e.model),
        ));
    };
    if e.vector.len() != dimension {
        return Err(Error::invalid(
            "vector",
            format!(
                "has {} values, vector model '{}' has {dimension}",
                e.vector.len(),
                e.model
            ),
        ));
    }
    let rid = record_rid(tx, target, tenant, id)?
        .ok_or_else(|| Error::not_found(target_entity(target), id))?;
    if existing == Existing::Replace {
        tx.prepare_cached(
            "DELETE FROM vectors WHERE target = ?1 AND record_rid = ?2 AND model = ?3",
        )
        .db()?
        .execute(params![target.as_str(), rid, e.model])
        .db()?;
    }
    tx.prepare_cached(
        "INSERT OR IGNORE INTO vectors (tenant_id, target, record_rid, model, vector)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .db()?
    .execute(params![
        tenant,
        target.as_str(),
        rid,
        e.model,
        encode(&e.vector)
    ])
    .db()?;
    Ok(())
}

fn target_entity(target: Target) -> &'static str {
    match target {
        Target::Memory => "memory",
        Target::Chunk => "chunk",
        Target::Event => "event",
    }
}

/// Applies `PutVectors`.
pub(crate) fn put_many(
    tx: &Connection,
    scope: &Scope,
    target: Target,
    items: &[(String, Embedding)],
) -> Result<WriteResult> {
    for (id, e) in items {
        put(tx, &scope.tenant, target, id, e, Existing::Replace)?;
    }
    if !items.is_empty() {
        audit::append(
            tx,
            scope,
            AuditDraft::new("vectors.put", "vector_model", &items[0].1.model)
                .with_json(serde_json::json!({"target": target.as_str(), "records": items.len()})),
        )?;
    }
    Ok(WriteResult::Count(items.len() as u64))
}

/// Applies `DropVectors`.
pub(crate) fn drop_model(tx: &Connection, scope: &Scope, model: &str) -> Result<WriteResult> {
    let n = tx
        .prepare_cached("DELETE FROM vectors WHERE model = ?1 AND tenant_id = ?2")
        .db()?
        .execute([model, &scope.tenant])
        .db()?;
    audit::append(
        tx,
        scope,
        AuditDraft::new("vectors.drop", "vector_model", model)
            .with_json(serde_json::json!({"vectors_deleted": n})),
    )?;
    Ok(WriteResult::Count(n as u64))
}

/// Applies [`agentstore::Backend::get_vectors`].
pub(crate) fn get_many(
    c: &Connection,
    tenant: &str,
    model: &str,
    records: &[(Target, String)],
) -> Result<Vec<Option<Vec<f32>>>> {
    records
        .iter()
        .map(|(target, id)| {
            let blob: Option<Vec<u8>> = c
                .prepare_cached(&format!(
                    "SELECT v.vector FROM {} r JOIN vectors v
                       ON v.target = ?1 AND v.record_rid = r.rid AND v.model = ?2
                     WHERE r.tenant_id = ?3 AND r.id = ?4",
                    table(*target)
                ))
                .db()?
                .query_row(params![target.as_str(), model, tenant, id], |r| r.get(0))
                .optional()
                .db()?;
            blob.map(|b| decode(&b)).transpose()
        })
        .collect()
}

/// Declared models with their dimension and metric, without counting their vectors
/// (the index catch-up runs this after every write that carries vectors).
pub(crate) fn declared(c: &Connection) -> Result<Vec<(String, usize, Metric)>> {
    let rows: Vec<(String, i64, String)> = c
        .prepare_cached("SELECT model, dimension, metric FROM vector_models ORDER BY model")
        .db()?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .db()?
        .collect::<rusqlite::Result<_>>()
        .db()?;
    rows.into_iter()
        .map(|(model, d, metric)| match Metric::parse(&metric) {
            Ok(m) => Ok((model, d as usize, m)),
            Err(_) => Err(Error::Corrupt(format!(
                "vector model '{model}' has metric '{metric}'"
            ))),
        })
        .collect()
}

/// Applies [`agentstore::Backend::vector_models`].
pub(crate) fn models(c: &Connection) -> Result<Vec<VectorModelInfo>> {
    declared(c)?
        .into_iter()
        .map(|(model, dimension, metric)| {
            let n: i64 = c
                .prepare_cached("SELECT COUNT(*) FROM vectors WHERE model = ?1")
                .db()?
                .query_row([&model], |r| r.get(0))
                .db()?;
            Ok(VectorModelInfo {
                model,
                dimension,
                metric,
                vectors: n as u64,
            })
        })
        .collect()
}

/// Applies [`agentstore::Backend::missing_vectors`].
pub(crate) fn missing(
    c: &Connection,
    tenant: &str,
    target: Target,
    model: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<TextToEmbed>> {
    let text_cond = match target {
        Target::Event => "AND r.content IS NOT NULL AND r.content != ''",
        _ => "",
    };
    let sql = format!(
        "SELECT r.id, as_open(r.content) FROM {table} r
         WHERE r.tenant_id = ?1 AND r.id > ?2 {text_cond}
           AND NOT EXISTS (SELECT 1 FROM vectors v
                           WHERE v.target = ?3 AND v.record_rid = r.rid AND v.model = ?4)
         ORDER BY r.id LIMIT ?5",
        table = table(target),
    );
    c.prepare_cached(&sql)
        .db()?
        .query_map(
            params![
                tenant,
                after.unwrap_or(""),
                target.as_str(),
                model,
                limit as i64
            ],
            |r| {
                Ok(TextToEmbed {
                    id: r.get(0)?,
                    text: r.get(1)?,
                })
            },
        )
        .db()?
        .collect::<rusqlite::Result<_>>()
        .db()
}

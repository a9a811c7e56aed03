//! The `vectors` table (migration 0002): writes inside a record's transaction, the reads
//! the engine asks for (stored vectors, models, records without a vector), and
//! nearest-neighbour candidates.
//!
//! Vectors are pgvector `vector` values. A record has at most one vector per model
//! (`UNIQUE (target, record_rid, model)`); replacing one deletes the row and inserts a
//! new one, as the SQLite backend does.
//!
//! ## The index
//!
//! pgvector indexes a column of one dimension only, and the column holds every model's
//! vectors. So declaring a model creates a partial HNSW index of its own on the
//! expression `embedding::vector(D)` with the model's operator class, restricted to
//! `model = '<model>'` (a literal: the planner matches a partial index's predicate only
//! against constants). Approximate queries repeat that expression and predicate so the
//! planner can use the index; exact queries order by the uncast column, which no index
//! matches. pgvector's HNSW takes at most [`HNSW_MAX_DIMENSION`] dimensions: a larger
//! model has no index and is always searched exactly.
//!
//! ## Search and filters
//!
//! Every filter is applied in SQL exactly as for keyword search ([`crate::search`]),
//! one query per target:
//!
//! - with the exact flag (or for a model without an index) every matching vector is
//!   compared;
//! - otherwise one scan reads at most [`EXACT_MAX`] + 1 matching vectors and counts
//!   them; when at most [`EXACT_MAX`] match, that scan compares all of them and answers
//!   (a selective filter never costs recall, and costs one scan);
//! - otherwise the HNSW index is scanned with pgvector's iterative scan, which keeps
//!   walking the graph until enough rows pass the filters; a few more than asked for
//!   are fetched (the relaxed order may swap close neighbours) and sorted exactly. When
//!   the scan ends before that many pass, the exact path answers instead.

use agentstore::audit::AuditDraft;
use agentstore::backend::{Candidate, TextToEmbed, VectorModelInfo, VectorQuery, WriteResult};
use agentstore::search::{DEFAULT_EF, Target};
use agentstore::{Embedding, Error, Metric, Result, Scope};
use postgres::{GenericClient, Transaction};

use crate::audit;
use crate::search::{Shape, apply_filter, shape};
use crate::sql::*;

/// Most matching vectors of a target compared exactly instead of through the index.
pub(crate) const EXACT_MAX: usize = 10_000;
/// Most dimensions pgvector's HNSW indexes for the `vector` type.
pub(crate) const HNSW_MAX_DIMENSION: usize = 2_000;
/// Largest `hnsw.ef_search` pgvector accepts.
const MAX_EF_SEARCH: usize = 1_000;

/// The record table of a target.
pub(crate) fn table(target: Target) -> &'static str {
    match target {
        Target::Memory => "memories",
        Target::Chunk => "chunks",
        Target::Event => "events",
    }
}

/// A string as an SQL literal: quotes doubled, and as an `E''` string (backslashes
/// doubled) when it holds a backslash, so it reads the same whatever
/// `standard_conforming_strings` says. Only for text that must be a constant in the
/// statement (a partial index's predicate); everything else is bound.
fn literal(s: &str) -> String {
    if s.contains('\\') {
        format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// The HNSW index of a model: a hash of the id, which may hold any character.
pub(crate) fn index_name(model: &str) -> String {
    let h = agentstore::codec::sha256_hex(model.as_bytes());
    format!("vectors_hnsw_{}", &h[..16])
}

/// pgvector's operator class of a metric.
fn opclass(metric: Metric) -> &'static str {
    match metric {
        Metric::Cosine => "vector_cosine_ops",
        Metric::Dot => "vector_ip_ops",
        Metric::L2 => "vector_l2_ops",
    }
}

/// pgvector's distance operator of a metric (lower is closer): cosine distance,
/// negated inner product, Euclidean distance.
fn distance_op(metric: Metric) -> &'static str {
    match metric {
        Metric::Cosine => "<=>",
        Metric::Dot => "<#>",
        Metric::L2 => "<->",
    }
}

/// The similarity (higher is better, as the SQLite backend reports it: cosine
/// similarity, dot product, negated Euclidean distance) of a distance `d` written in
/// SQL.
fn score_sql(metric: Metric, d: &str) -> String {
    match metric {
        Metric::Cosine => format!("(1 - {d})"),
        Metric::Dot | Metric::L2 => format!("(-{d})"),
    }
}

/// [`score_sql`] in Rust, for distances read back.
fn score_of(metric: Metric, d: f64) -> f64 {
    match metric {
        Metric::Cosine => 1.0 - d,
        Metric::Dot | Metric::L2 => -d,
    }
}

/// Applies `DeclareVectorModel`. A new model also gets its HNSW index (module docs),
/// created in the same transaction.
pub(crate) fn declare(
    tx: &mut Transaction<'_>,
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
            create_model(tx, model, dimension, metric, at)?;
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

/// Inserts a model's row and creates its HNSW index (for a dimension pgvector can index).
pub(crate) fn create_model(
    tx: &mut Transaction<'_>,
    model: &str,
    dimension: usize,
    metric: Metric,
    at: i64,
) -> Result<()> {
    let dim = i64::try_from(dimension).map_err(|_| Error::invalid("dimension", "is too large"))?;
    tx.execute(
        "INSERT INTO vector_models (model, dimension, metric, created_at)
         VALUES ($1, $2, $3, $4)",
        &[&model, &dim, &metric.as_str(), &at],
    )
    .db()?;
    if dimension <= HNSW_MAX_DIMENSION {
        tx.batch_execute(&format!(
            "CREATE INDEX IF NOT EXISTS {name} ON vectors
             USING hnsw ((embedding::vector({dimension})) {ops})
             WHERE model = {lit}",
            name = index_name(model),
            ops = opclass(metric),
            lit = literal(model),
        ))
        .db()?;
    }
    Ok(())
}

/// A model's dimension and metric.
pub(crate) fn model_of(c: &mut impl GenericClient, model: &str) -> Result<Option<(usize, Metric)>> {
    let Some(r) = c
        .query_opt(
            "SELECT dimension, metric FROM vector_models WHERE model = $1",
            &[&model],
        )
        .db()?
    else {
        return Ok(None);
    };
    let d: i64 = col(&r, 0)?;
    let m: String = col(&r, 1)?;
    let d = usize::try_from(d)
        .map_err(|_| Error::Corrupt(format!("vector model '{model}' has dimension {d}")))?;
    Metric::parse(&m)
        .map(|m| Some((d, m)))
        .map_err(|_| Error::Corrupt(format!("vector model '{model}' has metric '{m}'")))
}

/// The rid of a record in the tenant, if it exists.
pub(crate) fn record_rid(
    c: &mut impl GenericClient,
    target: Target,
    tenant: &str,
    id: &str,
) -> Result<Option<i64>> {
    c.query_opt(
        &format!(
            "SELECT rid FROM {} WHERE tenant_id = $1 AND id = $2",
            table(target)
        ),
        &[&tenant, &id],
    )
    .db()?
    .map(|r| col(&r, 0))
    .transpose()
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
    tx: &mut Transaction<'_>,
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
        tx.execute(
            "DELETE FROM vectors WHERE target = $1 AND record_rid = $2 AND model = $3",
            &[&target.as_str(), &rid, &e.model],
        )
        .db()?;
    }
    tx.execute(
        "INSERT INTO vectors (tenant_id, target, record_rid, model, embedding)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (target, record_rid, model) DO NOTHING",
        &[
            &tenant,
            &target.as_str(),
            &rid,
            &e.model,
            &pgvector::Vector::from(e.vector.clone()),
        ],
    )
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
    tx: &mut Transaction<'_>,
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

/// Applies `DropVectors`: the tenant's vectors of the model go; the declaration (and
/// with it the index) stays, as other tenants may use the model.
pub(crate) fn drop_model(
    tx: &mut Transaction<'_>,
    scope: &Scope,
    model: &str,
) -> Result<WriteResult> {
    let n = tx
        .execute(
            "DELETE FROM vectors WHERE model = $1 AND tenant_id = $2",
            &[&model, &scope.tenant],
        )
        .db()?;
    audit::append(
        tx,
        scope,
        AuditDraft::new("vectors.drop", "vector_model", model)
            .with_json(serde_json::json!({"vectors_deleted": n})),
    )?;
    Ok(WriteResult::Count(n))
}

/// Applies [`agentstore::Backend::get_vectors`].
pub(crate) fn get_many(
    c: &mut impl GenericClient,
    tenant: &str,
    model: &str,
    records: &[(Target, String)],
) -> Result<Vec<Option<Vec<f32>>>> {
    records
        .iter()
        .map(|(target, id)| {
            let row = c
                .query_opt(
                    &format!(
                        "SELECT v.embedding FROM {} r JOIN vectors v
                           ON v.target = $1 AND v.record_rid = r.rid AND v.model = $2
                         WHERE r.tenant_id = $3 AND r.id = $4",
                        table(*target)
                    ),
                    &[&target.as_str(), &model, &tenant, id],
                )
                .db()?;
            row.map(|r| col::<pgvector::Vector>(&r, 0).map(|v| v.to_vec()))
                .transpose()
        })
        .collect()
}

/// Declared models with their dimension and metric, without counting their vectors.
pub(crate) fn declared(c: &mut impl GenericClient) -> Result<Vec<(String, usize, Metric)>> {
    c.query(
        "SELECT model, dimension, metric FROM vector_models ORDER BY model",
        &[],
    )
    .db()?
    .iter()
    .map(|r| {
        let model: String = col(r, 0)?;
        let d: i64 = col(r, 1)?;
        let metric: String = col(r, 2)?;
        let d = usize::try_from(d)
            .map_err(|_| Error::Corrupt(format!("vector model '{model}' has dimension {d}")))?;
        match Metric::parse(&metric) {
            Ok(m) => Ok((model, d, m)),
            Err(_) => Err(Error::Corrupt(format!(
                "vector model '{model}' has metric '{metric}'"
            ))),
        }
    })
    .collect()
}

/// Applies [`agentstore::Backend::vector_models`].
pub(crate) fn models(c: &mut impl GenericClient) -> Result<Vec<VectorModelInfo>> {
    declared(c)?
        .into_iter()
        .map(|(model, dimension, metric)| {
            let n: i64 = col(
                &c.query_one("SELECT COUNT(*) FROM vectors WHERE model = $1", &[&model])
                    .db()?,
                0,
            )?;
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
    c: &mut impl GenericClient,
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
        "SELECT r.id, r.content FROM {table} r
         WHERE r.tenant_id = $1 AND r.id > $2 {text_cond}
           AND NOT EXISTS (SELECT 1 FROM vectors v
                           WHERE v.target = $3 AND v.record_rid = r.rid AND v.model = $4)
         ORDER BY r.id LIMIT $5",
        table = table(target),
    );
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    c.query(
        &sql,
        &[
            &tenant,
            &after.unwrap_or(""),
            &target.as_str(),
            &model,
            &limit,
        ],
    )
    .db()?
    .iter()
    .map(|r| {
        Ok(TextToEmbed {
            id: col(r, 0)?,
            text: col(r, 1)?,
        })
    })
    .collect()
}

/// Applies [`agentstore::Backend::vector_candidates`]; `c` is a read-only snapshot
/// transaction (the approximate path sets planner options with `SET LOCAL`).
pub(crate) fn candidates(
    c: &mut impl GenericClient,
    tenant: &str,
    q: &VectorQuery,
) -> Result<Vec<Candidate>> {
    let Some((dimension, metric)) = model_of(c, &q.model)? else {
        return Ok(Vec::new());
    };
    if q.vector.len() != dimension {
        return Err(Error::invalid(
            "vector",
            format!(
                "has {} values, vector model '{}' has {}",
                q.vector.len(),
                q.model,
                dimension
            ),
        ));
    }
    if q.limit == 0 {
        return Ok(Vec::new());
    }
    let ask = Ask {
        tenant,
        q,
        dimension,
        metric,
        vector: pgvector::Vector::from(q.vector.clone()),
    };
    let mut out = Vec::new();
    for &target in &q.targets {
        if q.filter.applies_to(target) {
            out.extend(ask.target(c, target)?);
        }
    }
    out.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| (a.target, &a.id).cmp(&(b.target, &b.id)))
    });
    out.truncate(q.limit);
    Ok(out)
}

/// One vector query's parts shared by its targets.
struct Ask<'a> {
    tenant: &'a str,
    q: &'a VectorQuery,
    dimension: usize,
    metric: Metric,
    vector: pgvector::Vector,
}

impl Ask<'_> {
    /// The model's vectors of the target in the tenant, with no condition on their
    /// records (`v.model` as a literal, so the model's indexes apply).
    fn unfiltered(&self, target: Target) -> Filter {
        let mut f = Filter::default();
        f.cond(format!("v.model = {}", literal(&self.q.model)), vec![]);
        f.eq("v.target", target.as_str());
        f.eq("v.tenant_id", self.tenant.to_owned());
        f
    }

    /// The vectors of the model in the tenant whose records pass every filter: FROM,
    /// the filter, and whether that filter keeps every vector of the target (it adds no
    /// condition on the records, as for chunks searched without filters).
    fn filtered(&self, target: Target) -> (String, Filter, bool) {
        let s: Shape = shape(target);
        let mut f = self.unfiltered(target);
        f.eq("r.tenant_id", self.tenant.to_owned());
        let own = f.conditions();
        apply_filter(&mut f, &s, target, &self.q.filter, self.q.now);
        let from = format!(
            "vectors v JOIN {table} r ON r.rid = v.record_rid {parent}",
            table = s.table,
            parent = s.parent,
        );
        let keeps_all = f.conditions() == own;
        (from, f, keeps_all)
    }

    /// The best `q.limit` candidates of one target, best first (ties by id).
    fn target(&self, c: &mut impl GenericClient, target: Target) -> Result<Vec<Candidate>> {
        let (from, f, keeps_all) = self.filtered(target);
        let importance = shape(target).importance;
        if self.q.exact || self.dimension > HNSW_MAX_DIMENSION {
            return self.exact(c, target, &from, &f, importance);
        }
        let limit = self.q.limit;
        let (n, hits) = self.capped(c, target, &from, &f, keeps_all, importance)?;
        if n <= EXACT_MAX {
            return Ok(hits);
        }
        let fetch = limit.saturating_mul(2).max(limit.saturating_add(10));
        if fetch <= EXACT_MAX {
            let hits = self.approximate(c, target, &from, &f, importance, fetch)?;
            if hits.len() >= fetch {
                return Ok(hits.into_iter().take(limit).collect());
            }
            // The scan stopped (pgvector's hnsw.max_scan_tuples) before enough rows
            // passed the filters: compare with all of them instead.
        }
        self.exact(c, target, &from, &f, importance)
    }

    /// How many vectors match, counted up to [`EXACT_MAX`] + 1, and when that is at most
    /// [`EXACT_MAX`] (so they are all of them) the best `q.limit` of them, compared
    /// exactly. The count reads no vector: counting inside a LIMITed subquery that
    /// selects a constant lets PostgreSQL stop at the cap and skip the embeddings. (A
    /// window `COUNT(*) OVER ()` beside the embeddings, which this replaced, counted
    /// every match before the LIMIT and spilled their vectors to temporary files: 193 ms
    /// per query at 50,000 chunks, against 6 ms for the HNSW scan itself.)
    ///
    /// When the filter keeps every vector (`keeps_all`), the vectors are counted alone
    /// on their `(model, tenant_id, target)` index, without the joins to the records
    /// and their parents: 0.7 ms instead of 18 ms for 10,001 chunks. A vector's record
    /// and parent exist (they take their vectors with them when deleted), so the two
    /// counts agree; and the count only picks the path, each of which applies the
    /// whole filter.
    fn capped(
        &self,
        c: &mut impl GenericClient,
        target: Target,
        from: &str,
        f: &Filter,
        keeps_all: bool,
        importance: &str,
    ) -> Result<(usize, Vec<Candidate>)> {
        let alone;
        let (count_from, count_filter) = if keeps_all {
            alone = self.unfiltered(target);
            ("vectors v", &alone)
        } else {
            (from, f)
        };
        let sql = format!(
            "SELECT COUNT(*) FROM (SELECT 1 FROM {count_from} {where_} LIMIT {cap}) x",
            where_ = count_filter.where_sql(),
            cap = EXACT_MAX + 1,
        );
        let n: i64 = col(
            &c.query_one(&sql, count_filter.param_refs().as_slice())
                .db()?,
            0,
        )?;
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        if n > EXACT_MAX {
            return Ok((n, Vec::new()));
        }
        Ok((n, self.exact(c, target, from, f, importance)?))
    }

    /// Every matching vector compared: ordered by the uncast column, which no index
    /// matches, so the planner scans and sorts.
    fn exact(
        &self,
        c: &mut impl GenericClient,
        target: Target,
        from: &str,
        f: &Filter,
        importance: &str,
    ) -> Result<Vec<Candidate>> {
        let d = format!(
            "(v.embedding {op} ${n}::vector)",
            op = distance_op(self.metric),
            n = f.next_param()
        );
        let sql = format!(
            "SELECT r.id, r.created_at, {importance}, {score} AS score
             FROM {from} {where_} ORDER BY score DESC, r.id LIMIT {limit}",
            score = score_sql(self.metric, &d),
            where_ = f.where_sql(),
            limit = self.q.limit,
        );
        let mut params = f.param_refs();
        params.push(&self.vector);
        c.query(&sql, params.as_slice())
            .db()?
            .iter()
            .map(|r| {
                Ok(Candidate {
                    target,
                    id: col(r, 0)?,
                    created_at: to_ts(col(r, 1)?),
                    importance: col(r, 2)?,
                    score: col(r, 3)?,
                })
            })
            .collect()
    }

    /// Up to `fetch` candidates through the model's HNSW index, sorted exactly.
    fn approximate(
        &self,
        c: &mut impl GenericClient,
        target: Target,
        from: &str,
        f: &Filter,
        importance: &str,
        fetch: usize,
    ) -> Result<Vec<Candidate>> {
        let ef = self
            .q
            .ef
            .unwrap_or(DEFAULT_EF)
            .max(fetch)
            .clamp(1, MAX_EF_SEARCH);
        // The index expression and the ORDER BY must be the same for the planner to use
        // the index. The filters' selectivity is guessed (a metadata condition is
        // estimated at almost no rows), and a wrong guess would make the planner sort
        // every matching row instead; with sorting disabled the index scan is the only
        // plan left, and the iterative scan keeps it going until `fetch` rows pass.
        c.batch_execute(&format!(
            "SET LOCAL hnsw.ef_search = {ef};
             SET LOCAL hnsw.iterative_scan = relaxed_order;
             SET LOCAL enable_sort = off"
        ))
        .db()?;
        let sql = format!(
            "SELECT r.id, r.created_at, {importance},
                    v.embedding::vector({dim}) {op} ${n}::vector({dim}) AS d
             FROM {from} {where_} ORDER BY d LIMIT {fetch}",
            dim = self.dimension,
            op = distance_op(self.metric),
            n = f.next_param(),
            where_ = f.where_sql(),
        );
        let mut params = f.param_refs();
        params.push(&self.vector);
        let rows = c.query(&sql, params.as_slice());
        // After a failed query the transaction is aborted and this fails too: the
        // query's error is the one to report.
        let reset = c.batch_execute("SET LOCAL enable_sort TO DEFAULT");
        let rows = rows.db()?;
        reset.db()?;
        let mut hits = rows
            .iter()
            .map(|r| {
                Ok(Candidate {
                    target,
                    id: col(r, 0)?,
                    created_at: to_ts(col(r, 1)?),
                    importance: col(r, 2)?,
                    score: score_of(self.metric, col(r, 3)?),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
        Ok(hits)
    }
}

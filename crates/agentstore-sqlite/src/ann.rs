//! The approximate nearest-neighbour index of the embedded store: one HNSW graph
//! ([`agentstore_vector::VectorIndex`]) per vector model, in memory, derived from the
//! `vectors` table and snapshotted under `index/`.
//!
//! ## Keeping the index and the table in agreement
//!
//! The table is the truth. Triggers append every vector insert and delete to `vector_log`
//! inside the writing transaction (migration 0004), and each in-memory index remembers
//! the last log entry it has applied (its watermark). Before a search, and after a write
//! that carried vectors, [`Ann::sync`] reads the log past the watermark in one read
//! snapshot and applies it. Vector ids are never reused (`AUTOINCREMENT`), so an insert
//! whose row is gone by now is simply skipped and the delete that removed it applied.
//!
//! A snapshot file stores the index with its watermark and the log's epoch. On first use
//! a snapshot is loaded if it belongs to this log incarnation and its watermark lies
//! between the truncation mark and the log's end; the log is then replayed from the
//! watermark. Anything else — a damaged file (the snapshot is checksummed), a snapshot
//! from another epoch, from the future (an older database restored beside a newer index)
//! or older than the truncated log — is discarded and the index rebuilt from the table.
//! So after a SIGKILL at any moment the index agrees with the table once it is used;
//! it is never silently wrong.
//!
//! ## Search and filters
//!
//! Every vector carries its tenant and target in memory, so the graph search itself only
//! returns the tenant's vectors of the wanted targets. The other filters live in SQL:
//!
//! - a filter beyond the defaults is first run in SQL with a cap of [`EXACT_MAX`] rows;
//!   when it matches fewer, those vectors are compared exactly (a 1% filter over a
//!   million vectors is answered exactly, so selective filters never cost recall);
//! - otherwise the graph is searched for candidates, SQL keeps those that pass every
//!   filter (current memory versions, expiry, ...), and the search widens fourfold until
//!   enough pass, falling back to the exact path past [`POSTFILTER_MAX`] candidates;
//! - a tenant with at most [`EXACT_MAX`] vectors is searched exactly: at that size a scan
//!   costs less than a graph search.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use agentstore::backend::{Candidate, VectorQuery};
use agentstore::search::{DEFAULT_EF, SearchFilter, Target};
use agentstore::{Error, Metric, Result};
use agentstore_vector::{Hit, IndexError, IndexParams, VectorIndex};
use parking_lot::RwLock;
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

use crate::search::{Shape, apply_filter, shape};
use crate::sql::*;
use crate::vectors;

/// Most matching vectors compared exactly instead of through the graph.
pub(crate) const EXACT_MAX: usize = 20_000;
/// Most graph candidates checked against the filters before falling back to exact search.
pub(crate) const POSTFILTER_MAX: usize = 20_000;
/// Changes applied since the last snapshot after which a model's index is snapshotted
/// again (also at close and in `maintenance`), bounding the replay after a crash.
const SNAPSHOT_EVERY: usize = 50_000;
/// Threads for building or catching up an index in bulk.
const BUILD_THREADS: usize = 2;

/// What a snapshot file records beside the graph.
#[derive(Debug, Serialize, Deserialize)]
struct SnapshotMeta {
    format: u32,
    model: String,
    epoch: String,
    watermark: i64,
}

const SNAPSHOT_FORMAT: u32 = 1;

/// Tenant (interned) and target of a vector.
#[derive(Clone, Copy, Debug)]
struct Attr {
    tenant: u32,
    target: Target,
}

struct ModelIndex {
    index: VectorIndex,
    dimension: usize,
    /// Last log entry applied.
    watermark: i64,
    /// Watermark of the snapshot on disk (0: none).
    saved: i64,
    /// Changes applied since that snapshot.
    unsaved: usize,
    attrs: HashMap<u64, Attr>,
    counts: HashMap<(u32, Target), usize>,
}

impl ModelIndex {
    fn new(dimension: usize, metric: Metric, params: &IndexParams) -> Self {
        ModelIndex {
            index: VectorIndex::new(dimension, to_index_metric(metric), params.clone()),
            dimension,
            watermark: 0,
            saved: 0,
            unsaved: 0,
            attrs: HashMap::new(),
            counts: HashMap::new(),
        }
    }

    fn add_attr(&mut self, vid: u64, a: Attr) {
        if self.attrs.insert(vid, a).is_none() {
            *self.counts.entry((a.tenant, a.target)).or_default() += 1;
        }
    }

    fn remove(&mut self, vid: u64) {
        self.index.remove(vid);
        if let Some(a) = self.attrs.remove(&vid)
            && let Some(n) = self.counts.get_mut(&(a.tenant, a.target))
        {
            *n = n.saturating_sub(1);
        }
    }
}

#[derive(Default)]
struct State {
    /// The log incarnation the indexes follow (None until first use).
    epoch: Option<String>,
    models: HashMap<String, ModelIndex>,
    tenants: HashMap<String, u32>,
}

impl State {
    fn tenant_code(&mut self, tenant: &str) -> u32 {
        let next = self.tenants.len() as u32;
        *self.tenants.entry(tenant.to_owned()).or_insert(next)
    }
}

/// The in-memory indexes of one store.
pub(crate) struct Ann {
    dir: PathBuf,
    params: IndexParams,
    state: RwLock<State>,
}

fn to_index_metric(m: Metric) -> agentstore_vector::Metric {
    match m {
        Metric::Cosine => agentstore_vector::Metric::Cosine,
        Metric::Dot => agentstore_vector::Metric::Dot,
        Metric::L2 => agentstore_vector::Metric::L2,
        // Metric is non_exhaustive only in spirit: a new metric needs a kernel here.
        #[allow(unreachable_patterns)]
        _ => agentstore_vector::Metric::Cosine,
    }
}

fn index_err(e: IndexError) -> Error {
    match e {
        IndexError::DimensionMismatch { expected, actual } => Error::invalid(
            "vector",
            format!("has {actual} values, the model has {expected}"),
        ),
        IndexError::NonFinite | IndexError::ZeroVector => Error::invalid("vector", e.to_string()),
        IndexError::Io { path, source } => Error::io(path, source),
        other => Error::Corrupt(other.to_string()),
    }
}

/// The log's end, truncation mark and epoch, from one snapshot.
fn log_state(c: &Connection) -> Result<(i64, i64, String)> {
    c.prepare_cached(
        "SELECT (SELECT COALESCE(MAX(seq), 0) FROM vector_log), truncated_through, epoch
         FROM vector_log_state WHERE id = 1",
    )
    .db()?
    .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
    .db()
}

impl Ann {
    pub(crate) fn new(dir: PathBuf, params: IndexParams) -> Self {
        // As an index holds them (clamped), so a loaded snapshot compares equal.
        let params = VectorIndex::new(1, agentstore_vector::Metric::Cosine, params)
            .params()
            .clone();
        Ann {
            dir,
            params,
            state: RwLock::new(State::default()),
        }
    }

    /// The snapshot file of a model: a hash of the id, which may hold any character.
    fn snapshot_path(&self, model: &str) -> PathBuf {
        let h = agentstore::codec::sha256_hex(model.as_bytes());
        self.dir.join(format!("vectors-{}.hnsw", &h[..24]))
    }

    /// Brings every model's index up to the log's end as of `c`'s snapshot (see the
    /// module docs). Loads or rebuilds indexes on first use. When nothing is new this is
    /// two small reads under the shared lock.
    pub(crate) fn sync(&self, c: &Connection) -> Result<()> {
        let (end, truncated, epoch) = log_state(c)?;
        let declared = vectors::declared(c)?;
        {
            let st = self.state.read();
            let current = st.epoch.as_deref() == Some(epoch.as_str())
                && declared.len() == st.models.len()
                && st.models.values().all(|m| m.watermark >= end);
            if current {
                return Ok(());
            }
        }
        let mut st = self.state.write();
        if st.epoch.as_deref() != Some(epoch.as_str()) {
            st.models.clear();
            st.epoch = Some(epoch.clone());
        }
        let names: HashSet<&str> = declared.iter().map(|d| d.0.as_str()).collect();
        st.models.retain(|m, _| names.contains(m.as_str()));
        for (model, dimension, metric) in &declared {
            if !st.models.contains_key(model) {
                let mi = self.open_model(
                    c, &mut st, model, *dimension, *metric, &epoch, end, truncated,
                )?;
                st.models.insert(model.clone(), mi);
            }
            let behind = st.models[model].watermark < end;
            if behind {
                if st.models[model].watermark < truncated {
                    let mi = self.build_model(c, &mut st, model, *dimension, *metric, end)?;
                    st.models.insert(model.clone(), mi);
                } else {
                    replay(c, &mut st, model, end)?;
                }
            }
        }
        let due: Vec<String> = st
            .models
            .iter()
            .filter(|(_, m)| m.unsaved >= SNAPSHOT_EVERY)
            .map(|(k, _)| k.clone())
            .collect();
        for model in due {
            // A snapshot only shortens the replay after a crash; the index in memory is
            // already right, so a failed save (a full disk) must not fail the search. It is
            // tried again after the next batch of changes and at close.
            if self.save_model(&mut st, &model).is_err()
                && let Some(m) = st.models.get_mut(&model)
            {
                m.unsaved = 0;
            }
        }
        Ok(())
    }

    /// A model's index from its snapshot when that can be trusted (module docs), else
    /// built from the table.
    #[allow(clippy::too_many_arguments)]
    fn open_model(
        &self,
        c: &Connection,
        st: &mut State,
        model: &str,
        dimension: usize,
        metric: Metric,
        epoch: &str,
        end: i64,
        truncated: i64,
    ) -> Result<ModelIndex> {
        let path = self.snapshot_path(model);
        if path.exists()
            && let Ok((mut index, meta)) = VectorIndex::load(&path)
            && let Ok(meta) = serde_json::from_slice::<SnapshotMeta>(&meta)
            && meta.format == SNAPSHOT_FORMAT
            && meta.model == model
            && meta.epoch == epoch
            && meta.watermark >= truncated
            && meta.watermark <= end
            && index.dim() == dimension
            && index.metric() == to_index_metric(metric)
            // A graph of another degree is rebuilt. Another build breadth or traversal mode
            // is taken on without a rebuild (`retune`): a 1M snapshot from before the
            // defaults changed (ef_construction 128, f32 traversal) would otherwise cost
            // minutes of rebuilding on the first search after an upgrade.
            && index.retune(&self.params)
        {
            let mut mi = ModelIndex {
                index,
                dimension,
                watermark: meta.watermark,
                saved: meta.watermark,
                unsaved: 0,
                attrs: HashMap::new(),
                counts: HashMap::new(),
            };
            // A vector's tenant and target never change, so the current rows give the
            // attributes of every vector the snapshot holds that still exists; the replay
            // removes the others.
            for (vid, tenant, target, _) in stored(c, model, false)? {
                if mi.index.contains(vid) {
                    let a = Attr {
                        tenant: st.tenant_code(&tenant),
                        target: parse_target(&target, "vector")?,
                    };
                    mi.add_attr(vid, a);
                }
            }
            for vid in mi.index.keys() {
                if !mi.attrs.contains_key(&vid) {
                    // Deleted since the snapshot; the replay will say so too.
                    mi.index.remove(vid);
                }
            }
            return Ok(mi);
        }
        self.build_model(c, st, model, dimension, metric, end)
    }

    /// A model's index built from every stored vector, at watermark `end`.
    fn build_model(
        &self,
        c: &Connection,
        st: &mut State,
        model: &str,
        dimension: usize,
        metric: Metric,
        end: i64,
    ) -> Result<ModelIndex> {
        let mut mi = ModelIndex::new(dimension, metric, &self.params);
        let rows = stored(c, model, true)?;
        let mut items = Vec::with_capacity(rows.len());
        for (vid, tenant, target, blob) in rows {
            let a = Attr {
                tenant: st.tenant_code(&tenant),
                target: parse_target(&target, "vector")?,
            };
            mi.add_attr(vid, a);
            items.push((vid, vectors::decode(&blob.unwrap_or_default())?));
        }
        mi.index
            .insert_batch(&items, BUILD_THREADS)
            .map_err(index_err)?;
        mi.watermark = end;
        mi.unsaved = items.len();
        Ok(mi)
    }

    fn save_model(&self, st: &mut State, model: &str) -> Result<()> {
        let epoch = st.epoch.clone().unwrap_or_default();
        let Some(mi) = st.models.get_mut(model) else {
            return Ok(());
        };
        if mi.saved == mi.watermark && mi.unsaved == 0 {
            return Ok(());
        }
        fs_err::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let meta = serde_json::to_vec(&SnapshotMeta {
            format: SNAPSHOT_FORMAT,
            model: model.to_owned(),
            epoch,
            watermark: mi.watermark,
        })?;
        mi.index
            .save(&self.snapshot_path(model), &meta)
            .map_err(index_err)?;
        mi.saved = mi.watermark;
        mi.unsaved = 0;
        Ok(())
    }

    /// Snapshots every index with unsaved changes; returns the lowest watermark now on
    /// disk over all loaded models (None when nothing is loaded), which is how far the
    /// log may be truncated.
    pub(crate) fn save_all(&self) -> Result<Option<i64>> {
        let mut st = self.state.write();
        let names: Vec<String> = st.models.keys().cloned().collect();
        for m in &names {
            self.save_model(&mut st, m)?;
        }
        Ok(st.models.values().map(|m| m.saved).min())
    }

    /// Vectors and bytes in memory, for stats.
    pub(crate) fn memory(&self) -> (usize, usize) {
        let st = self.state.read();
        st.models.values().fold((0, 0), |(n, b), m| {
            (n + m.index.len(), b + m.index.memory_bytes())
        })
    }

    /// Per loaded model: vectors in the index (for verify's comparison with the table).
    pub(crate) fn counts(&self) -> HashMap<String, usize> {
        self.state
            .read()
            .models
            .iter()
            .map(|(k, m)| (k.clone(), m.index.len()))
            .collect()
    }

    /// Applies [`agentstore::Backend::vector_candidates`]; `c` is a read snapshot at or
    /// after the last [`Ann::sync`].
    pub(crate) fn candidates(
        &self,
        c: &Connection,
        tenant: &str,
        q: &VectorQuery,
    ) -> Result<Vec<Candidate>> {
        let st = self.state.read();
        let Some(mi) = st.models.get(&q.model) else {
            return Ok(Vec::new());
        };
        if q.vector.len() != mi.dimension {
            return Err(Error::invalid(
                "vector",
                format!(
                    "has {} values, vector model '{}' has {}",
                    q.vector.len(),
                    q.model,
                    mi.dimension
                ),
            ));
        }
        let Some(&tcode) = st.tenants.get(tenant) else {
            return Ok(Vec::new());
        };
        let targets: Vec<Target> = q
            .targets
            .iter()
            .copied()
            .filter(|t| q.filter.applies_to(*t))
            .collect();
        let in_partition: usize = targets
            .iter()
            .map(|t| mi.counts.get(&(tcode, *t)).copied().unwrap_or(0))
            .sum();
        if in_partition == 0 || q.limit == 0 {
            return Ok(Vec::new());
        }
        let attrs = &mi.attrs;
        let partition = move |vid: u64| {
            attrs
                .get(&vid)
                .is_some_and(|a| a.tenant == tcode && targets.contains(&a.target))
        };
        let plain = q.filter == SearchFilter::default();
        let ask = Ask { c, tenant, q };
        // Selective filter: ask SQL which vectors match, compare with all of them.
        if !plain || q.exact {
            let cap = if q.exact { None } else { Some(EXACT_MAX + 1) };
            let allowed = ask.rows(Restrict::All { limit: cap })?;
            if cap.is_none_or(|cap| allowed.len() < cap) {
                let keys: Vec<u64> = allowed.keys().copied().collect();
                let hits = mi
                    .index
                    .exact_keys(&q.vector, q.limit, &keys)
                    .map_err(index_err)?;
                return Ok(with_details(hits, &allowed, q.limit));
            }
        }
        // Graph (or, for a small tenant, a scan of its partition) and SQL for the rest of
        // the filter, widening until enough candidates pass.
        let exact = q.exact || in_partition <= EXACT_MAX;
        let mut k = q.limit;
        let mut ef = q.ef.unwrap_or(DEFAULT_EF).max(k);
        loop {
            let hits = if exact {
                mi.index.exact(&q.vector, k, Some(&partition))
            } else {
                mi.index.search(&q.vector, k, ef, Some(&partition))
            }
            .map_err(index_err)?;
            let vids: Vec<u64> = hits.iter().map(|h| h.key).collect();
            let passing = ask.rows(Restrict::Vids(&vids))?;
            let exhausted = hits.len() < k || k >= in_partition;
            let found = hits.iter().filter(|h| passing.contains_key(&h.key)).count();
            if found >= q.limit || exhausted {
                return Ok(with_details(hits, &passing, q.limit));
            }
            if k >= POSTFILTER_MAX {
                let allowed = ask.rows(Restrict::All { limit: None })?;
                let keys: Vec<u64> = allowed.keys().copied().collect();
                let hits = mi
                    .index
                    .exact_keys(&q.vector, q.limit, &keys)
                    .map_err(index_err)?;
                return Ok(with_details(hits, &allowed, q.limit));
            }
            k = (k * 4).min(POSTFILTER_MAX);
            ef = ef.max(k);
        }
    }
}

/// Hits in order with their records' details, keeping those that have details.
fn with_details(hits: Vec<Hit>, details: &HashMap<u64, Details>, limit: usize) -> Vec<Candidate> {
    hits.into_iter()
        .filter_map(|h| {
            details.get(&h.key).map(|d| Candidate {
                target: d.target,
                id: d.id.clone(),
                score: f64::from(h.score),
                created_at: to_ts(d.created_at),
                importance: d.importance,
            })
        })
        .take(limit)
        .collect()
}

/// What a candidate needs from its record.
struct Details {
    target: Target,
    id: String,
    created_at: i64,
    importance: Option<f64>,
}

/// Which vectors a filter query looks at.
enum Restrict<'a> {
    /// Every vector of the model in the tenant (at most `limit` rows).
    All { limit: Option<usize> },
    /// Only these.
    Vids(&'a [u64]),
}

/// The filter part of a vector query, run in SQL.
struct Ask<'a> {
    c: &'a Connection,
    tenant: &'a str,
    q: &'a VectorQuery,
}

impl Ask<'_> {
    /// Vectors of the model in the tenant whose records pass every filter, with their
    /// details.
    fn rows(&self, restrict: Restrict<'_>) -> Result<HashMap<u64, Details>> {
        let mut out = HashMap::new();
        if let Restrict::Vids(v) = restrict
            && v.is_empty()
        {
            return Ok(out);
        }
        for &target in &self.q.targets {
            if !self.q.filter.applies_to(target) {
                continue;
            }
            let s: Shape = shape(target);
            let mut f = Filter::default();
            f.eq("v.model", self.q.model.clone());
            f.eq("v.target", target.as_str());
            f.eq("v.tenant_id", self.tenant.to_owned());
            f.eq("r.tenant_id", self.tenant.to_owned());
            // Driving from the candidate vectors when there are few; otherwise SQLite
            // picks the order, so a selective record filter (a session, a subject) can
            // drive through its index.
            let (from, limit) = match restrict {
                Restrict::Vids(v) => {
                    f.cond(
                        "v.vid IN (SELECT value FROM json_each(?))",
                        vec![Box::new(to_json_text(&v))],
                    );
                    (
                        format!("vectors v CROSS JOIN {} r ON r.rid = v.record_rid", s.table),
                        String::new(),
                    )
                }
                Restrict::All { limit } => (
                    format!("vectors v JOIN {} r ON r.rid = v.record_rid", s.table),
                    limit.map(|l| format!("LIMIT {l}")).unwrap_or_default(),
                ),
            };
            apply_filter(&mut f, &s, target, &self.q.filter, self.q.now);
            let sql = format!(
                "SELECT v.vid, r.id, r.created_at, {importance} FROM {from} {parent} {where_} {limit}",
                importance = s.importance,
                parent = s.parent,
                where_ = f.where_sql(),
            );
            let mut stmt = self.c.prepare_cached(&sql).db()?;
            let rows = stmt
                .query_map(f.param_refs().as_slice(), |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        Details {
                            target,
                            id: r.get(1)?,
                            created_at: r.get(2)?,
                            importance: r.get(3)?,
                        },
                    ))
                })
                .db()?;
            for row in rows {
                let (vid, d) = row.db()?;
                out.insert(vid as u64, d);
            }
        }
        Ok(out)
    }
}

/// A stored vector of a model: vid, tenant, target and, when asked for, its bytes.
type StoredRow = (u64, String, String, Option<Vec<u8>>);

/// Every stored vector of a model, in vid order.
fn stored(c: &Connection, model: &str, with_vectors: bool) -> Result<Vec<StoredRow>> {
    let sql = if with_vectors {
        "SELECT vid, tenant_id, target, vector FROM vectors WHERE model = ?1 ORDER BY vid"
    } else {
        "SELECT vid, tenant_id, target, NULL FROM vectors WHERE model = ?1 ORDER BY vid"
    };
    c.prepare_cached(sql)
        .db()?
        .query_map([model], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .db()?
        .collect::<rusqlite::Result<Vec<_>>>()
        .db()
}

/// Applies the log after a model's watermark up to `end`.
fn replay(c: &Connection, st: &mut State, model: &str, end: i64) -> Result<()> {
    let from = st.models[model].watermark;
    let rows = c
        .prepare_cached(
            "SELECT l.vid, l.op, v.tenant_id, v.target, v.vector
             FROM vector_log l LEFT JOIN vectors v ON v.vid = l.vid AND l.op = 1
             WHERE l.seq > ?1 AND l.seq <= ?2 AND l.model = ?3",
        )
        .db()?
        .query_map(params![from, end, model], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<Vec<u8>>>(4)?,
            ))
        })
        .db()?
        .collect::<rusqlite::Result<Vec<_>>>()
        .db()?;
    let mut inserts = Vec::new();
    let mut deletes = Vec::new();
    let mut attrs = Vec::new();
    for (vid, op, tenant, target, blob) in rows {
        let vid = vid as u64;
        match (op, tenant, target, blob) {
            (1, Some(tenant), Some(target), Some(blob)) => {
                attrs.push((
                    vid,
                    Attr {
                        tenant: st.tenant_code(&tenant),
                        target: parse_target(&target, "vector")?,
                    },
                ));
                inserts.push((vid, vectors::decode(&blob)?));
            }
            // An insert whose row is gone: a later delete in the log removes it.
            (1, ..) => {}
            _ => deletes.push(vid),
        }
    }
    let mi = st
        .models
        .get_mut(model)
        .ok_or_else(|| Error::Corrupt(format!("index of '{model}' vanished")))?;
    // vids are never reused, so inserts and deletes commute.
    let threads = if inserts.len() > 1000 {
        BUILD_THREADS
    } else {
        1
    };
    mi.index
        .insert_batch(&inserts, threads)
        .map_err(index_err)?;
    for (vid, a) in attrs {
        mi.add_attr(vid, a);
    }
    for vid in &deletes {
        mi.remove(*vid);
    }
    mi.unsaved += inserts.len() + deletes.len();
    mi.watermark = end;
    Ok(())
}

/// Removes log entries every snapshot on disk has applied, in the caller's write
/// transaction. `through`: the lowest saved watermark ([`Ann::save_all`]).
pub(crate) fn truncate_log(tx: &Connection, through: i64) -> Result<u64> {
    let n = tx
        .prepare_cached("DELETE FROM vector_log WHERE seq <= ?1")
        .db()?
        .execute([through])
        .db()?;
    tx.prepare_cached(
        "UPDATE vector_log_state SET truncated_through = MAX(truncated_through, ?1) WHERE id = 1",
    )
    .db()?
    .execute([through])
    .db()?;
    Ok(n as u64)
}

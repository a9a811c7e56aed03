//! JSON Lines export and import of every entity, as in the SQLite backend (same order,
//! same checks, same messages), so a file moves between the backends unchanged.
//!
//! Export walks each table by `rid` (insertion order), type by type, so every record
//! comes after the records it refers to; import inserts records verbatim in file order
//! and checks each reference explicitly first, so an error names the missing record
//! instead of reporting a bare foreign-key failure.

use std::collections::BTreeMap;

use agentstore::audit::{AuditDraft, ChainVerifier};
use agentstore::backend::{ImportReport, Record, VectorModelRecord, VectorRecord};
use agentstore::search::Target;
use agentstore::{Error, Metric, Result, Scope};
use postgres::types::ToSql;
use postgres::{Row, Transaction};

use crate::checkpoints::{
    CHECKPOINT_COLUMNS, PENDING_WRITE_COLUMNS, checkpoint_row, insert_checkpoint,
    insert_pending_write, pending_write_row,
};
use crate::documents::{CHUNK_COLUMNS, DOCUMENT_COLUMNS, chunk_row, document_row};
use crate::infra::{KV_COLUMNS, LOCK_COLUMNS, insert_kv, insert_lock, kv_row, lock_row};
use crate::memories::{MEMORY_COLUMNS, insert_memory, memory_row};
use crate::sessions::{EVENT_COLUMNS, SESSION_COLUMNS, event_row, insert_event, session_row};
use crate::sql::{SqlResult, col, ns, to_ts, ts};
use crate::telemetry::{METRIC_COLUMNS, USAGE_COLUMNS, insert_metric, insert_usage};
use crate::telemetry::{metric_row, usage_row};
use crate::tenants::{AGENT_COLUMNS, SUBJECT_COLUMNS, agent_row, insert_agent, subject_row};
use crate::{audit, documents, sessions, tenants, vectors};

/// Rows fetched per round trip while exporting: a whole table is never held in memory.
const EXPORT_BATCH: i32 = 1000;

/// Streams `SELECT columns FROM table ORDER BY order` through `row` into `out`, in
/// batches through a portal of the caller's snapshot transaction.
fn each<T>(
    c: &mut Transaction<'_>,
    table: &str,
    columns: &str,
    order: &str,
    row: fn(&Row) -> Result<T>,
    wrap: impl Fn(T) -> Record,
    out: &mut dyn FnMut(Record) -> Result<()>,
) -> Result<()> {
    let portal = c
        .bind(
            format!("SELECT {columns} FROM {table} ORDER BY {order}").as_str(),
            &[],
        )
        .db()?;
    loop {
        let rows = c.query_portal(&portal, EXPORT_BATCH).db()?;
        for r in &rows {
            out(wrap(row(r)?))?;
        }
        if rows.len() < EXPORT_BATCH as usize {
            return Ok(());
        }
    }
}

/// Every record, in the order of docs/format.md, from the caller's read transaction.
pub(crate) fn export(
    c: &mut Transaction<'_>,
    out: &mut dyn FnMut(Record) -> Result<()>,
) -> Result<()> {
    for t in tenants::list_tenants(c)? {
        out(Record::Tenant(t))?;
    }
    each(
        c,
        "subjects",
        SUBJECT_COLUMNS,
        "rid",
        subject_row,
        Record::Subject,
        out,
    )?;
    each(
        c,
        "agents",
        AGENT_COLUMNS,
        "rid",
        agent_row,
        Record::Agent,
        out,
    )?;
    each(
        c,
        "sessions",
        SESSION_COLUMNS,
        "rid",
        session_row,
        Record::Session,
        out,
    )?;
    each(
        c,
        "events",
        EVENT_COLUMNS,
        "rid",
        event_row,
        Record::Event,
        out,
    )?;
    each(
        c,
        "memories",
        MEMORY_COLUMNS,
        "rid",
        memory_row,
        Record::Memory,
        out,
    )?;
    each(
        c,
        "documents",
        DOCUMENT_COLUMNS,
        "rid",
        document_row,
        Record::Document,
        out,
    )?;
    each(
        c,
        "chunks",
        CHUNK_COLUMNS,
        "rid",
        chunk_row,
        Record::Chunk,
        out,
    )?;
    each(
        c,
        "checkpoints",
        CHECKPOINT_COLUMNS,
        "rid",
        checkpoint_row,
        Record::Checkpoint,
        out,
    )?;
    each(
        c,
        "checkpoint_writes",
        PENDING_WRITE_COLUMNS,
        "rid",
        pending_write_row,
        Record::PendingWrite,
        out,
    )?;
    each(
        c,
        "usage_records",
        USAGE_COLUMNS,
        "rid",
        usage_row,
        Record::Usage,
        out,
    )?;
    each(
        c,
        "metric_points",
        METRIC_COLUMNS,
        "rid",
        metric_row,
        Record::Metric,
        out,
    )?;
    each(c, "kv_entries", KV_COLUMNS, "rid", kv_row, Record::Kv, out)?;
    each(c, "locks", LOCK_COLUMNS, "rid", lock_row, Record::Lock, out)?;
    for t in tenants::list_tenants(c)? {
        for rule in crate::infra::list_retention(c, &t.id)? {
            out(Record::Retention(rule))?;
        }
    }
    each(
        c,
        "audit_log",
        audit::COLUMNS,
        "seq",
        audit::from_row,
        Record::Audit,
        out,
    )?;
    export_vectors(c, out)
}

/// Vector models, then every vector, target by target in insertion order: after the
/// records they belong to, so an import meets each record before its vectors.
fn export_vectors(
    c: &mut Transaction<'_>,
    out: &mut dyn FnMut(Record) -> Result<()>,
) -> Result<()> {
    let models = c
        .query(
            "SELECT model, dimension, metric, created_at FROM vector_models ORDER BY model",
            &[],
        )
        .db()?;
    for r in &models {
        let model: String = col(r, 0)?;
        let dimension: i64 = col(r, 1)?;
        let metric: String = col(r, 2)?;
        let metric = Metric::parse(&metric)
            .map_err(|_| Error::Corrupt(format!("vector model '{model}' has metric '{metric}'")))?;
        out(Record::VectorModel(VectorModelRecord {
            model,
            dimension: usize::try_from(dimension)
                .map_err(|_| Error::Corrupt(format!("a vector model has dimension {dimension}")))?,
            metric,
            created_at: to_ts(col(r, 3)?),
        }))?;
    }
    for target in [Target::Memory, Target::Chunk, Target::Event] {
        let portal = c
            .bind(
                format!(
                    "SELECT v.tenant_id, r.id, v.model, v.embedding FROM vectors v
                     JOIN {} r ON r.rid = v.record_rid
                     WHERE v.target = $1 ORDER BY v.vid",
                    vectors::table(target)
                )
                .as_str(),
                &[&target.as_str()],
            )
            .db()?;
        loop {
            let rows = c.query_portal(&portal, EXPORT_BATCH).db()?;
            for r in &rows {
                out(Record::Vector(VectorRecord {
                    tenant_id: col(r, 0)?,
                    target,
                    record_id: col(r, 1)?,
                    model: col(r, 2)?,
                    vector: col::<pgvector::Vector>(r, 3)?.to_vec(),
                }))?;
            }
            if rows.len() < EXPORT_BATCH as usize {
                break;
            }
        }
    }
    Ok(())
}

/// Why one record was refused, for a person.
type Refusal = std::result::Result<(), String>;

/// True when `sql` with `p` returns a row.
fn found(
    tx: &mut Transaction<'_>,
    sql: &str,
    p: &[&(dyn ToSql + Sync)],
) -> std::result::Result<bool, String> {
    tx.query_opt(sql, p)
        .map(|r| r.is_some())
        .map_err(|e| format!("cannot check the store: {e}"))
}

/// Refuses the record unless the referenced `parent` exists (earlier in the file means
/// already inserted in this transaction).
fn require(
    tx: &mut Transaction<'_>,
    entity: &str,
    parent: &str,
    id: &str,
    tenant: &str,
    sql: &str,
    p: &[&(dyn ToSql + Sync)],
) -> Refusal {
    if found(tx, sql, p)? {
        Ok(())
    } else {
        Err(format!(
            "{entity} refers to {parent} '{id}' of tenant '{tenant}' that is neither earlier in the file nor in the store"
        ))
    }
}

fn require_tenant(tx: &mut Transaction<'_>, entity: &str, tenant: &str) -> Refusal {
    if found(tx, "SELECT 1 FROM tenants WHERE id = $1", &[&tenant])? {
        Ok(())
    } else {
        Err(format!(
            "{entity} refers to tenant '{tenant}' that is neither earlier in the file nor in the store"
        ))
    }
}

/// Refuses the record when `sql` finds a row already holding its identity.
fn refuse_if(
    tx: &mut Transaction<'_>,
    sql: &str,
    p: &[&(dyn ToSql + Sync)],
    what: String,
) -> Refusal {
    if found(tx, sql, p)? {
        Err(what)
    } else {
        Ok(())
    }
}

fn taken(entity: &str, id: &str, tenant: &str) -> String {
    format!("{entity} '{id}' already exists in tenant '{tenant}'")
}

/// Checks and inserts one record.
fn import_one(
    tx: &mut Transaction<'_>,
    rec: &Record,
    audit: &mut Option<ChainVerifier>,
) -> Refusal {
    let insert = |r: Result<()>| r.map_err(|e| e.to_string());
    match rec {
        Record::Tenant(t) => {
            refuse_if(
                tx,
                "SELECT 1 FROM tenants WHERE id = $1",
                &[&t.id],
                format!("tenant '{}' already exists", t.id),
            )?;
            insert(tenants::insert_tenant(tx, t))
        }
        Record::Subject(s) => {
            let t = s.tenant_id.as_str();
            require_tenant(tx, "subject", t)?;
            refuse_if(
                tx,
                "SELECT 1 FROM subjects WHERE tenant_id = $1 AND id = $2",
                &[&t, &s.id],
                taken("subject", &s.id, t),
            )?;
            refuse_if(
                tx,
                "SELECT 1 FROM subjects WHERE tenant_id = $1 AND external_id_hash = $2",
                &[&t, &s.external_id_hash],
                format!(
                    "subject '{}' has the external id of another subject of tenant '{t}'",
                    s.id
                ),
            )?;
            insert(tenants::insert_subject(tx, s))
        }
        Record::Agent(a) => {
            let t = a.tenant_id.as_str();
            require_tenant(tx, "agent", t)?;
            refuse_if(
                tx,
                "SELECT 1 FROM agents WHERE tenant_id = $1 AND id = $2",
                &[&t, &a.id],
                taken("agent", &a.id, t),
            )?;
            refuse_if(
                tx,
                "SELECT 1 FROM agents WHERE tenant_id = $1 AND name = $2",
                &[&t, &a.name],
                format!("an agent named '{}' already exists in tenant '{t}'", a.name),
            )?;
            insert(insert_agent(tx, a))
        }
        Record::Session(s) => {
            let t = s.tenant_id.as_str();
            require_tenant(tx, "session", t)?;
            refuse_if(
                tx,
                "SELECT 1 FROM sessions WHERE tenant_id = $1 AND id = $2",
                &[&t, &s.id],
                taken("session", &s.id, t),
            )?;
            require_subject_agent(tx, "session", t, &s.subject_id, &s.agent_id)?;
            if let Some(p) = &s.parent_id {
                require(
                    tx,
                    "session",
                    "parent session",
                    p,
                    t,
                    "SELECT 1 FROM sessions WHERE tenant_id = $1 AND id = $2",
                    &[&t, &p],
                )?;
            }
            insert(sessions::insert_session(tx, s))
        }
        Record::Event(e) => {
            let t = e.tenant_id.as_str();
            require(
                tx,
                "event",
                "session",
                &e.session_id,
                t,
                "SELECT 1 FROM sessions WHERE tenant_id = $1 AND id = $2",
                &[&t, &e.session_id],
            )?;
            refuse_if(
                tx,
                "SELECT 1 FROM events WHERE tenant_id = $1 AND id = $2",
                &[&t, &e.id],
                taken("event", &e.id, t),
            )?;
            refuse_if(
                tx,
                "SELECT 1 FROM events WHERE tenant_id = $1 AND session_id = $2 AND seq = $3",
                &[&t, &e.session_id, &e.seq],
                format!(
                    "session '{}' of tenant '{t}' already has an event with seq {}",
                    e.session_id, e.seq
                ),
            )?;
            insert(insert_event(tx, e))
        }
        Record::Memory(m) => {
            let t = m.tenant_id.as_str();
            require_tenant(tx, "memory", t)?;
            refuse_if(
                tx,
                "SELECT 1 FROM memories WHERE tenant_id = $1 AND id = $2",
                &[&t, &m.id],
                taken("memory", &m.id, t),
            )?;
            require_subject_agent(tx, "memory", t, &m.subject_id, &m.agent_id)?;
            if let (Some(key), None) = (&m.key, &m.valid_to) {
                refuse_if(
                    tx,
                    "SELECT 1 FROM memories WHERE tenant_id = $1 AND namespace = $2 AND key = $3
                         AND valid_to IS NULL",
                    &[&t, &ns(&m.namespace), &key],
                    format!(
                        "memory '{}' is a current version of key '{key}', which already has one in its namespace in tenant '{t}'",
                        m.id
                    ),
                )?;
            }
            insert(insert_memory(tx, m))
        }
        Record::Document(d) => {
            let t = d.tenant_id.as_str();
            require_tenant(tx, "document", t)?;
            refuse_if(
                tx,
                "SELECT 1 FROM documents WHERE tenant_id = $1 AND id = $2",
                &[&t, &d.id],
                taken("document", &d.id, t),
            )?;
            require_subject_agent(tx, "document", t, &d.subject_id, &None)?;
            insert(documents::insert_document(tx, d))
        }
        Record::Chunk(c) => {
            let t = c.tenant_id.as_str();
            require(
                tx,
                "chunk",
                "document",
                &c.document_id,
                t,
                "SELECT 1 FROM documents WHERE tenant_id = $1 AND id = $2",
                &[&t, &c.document_id],
            )?;
            refuse_if(
                tx,
                "SELECT 1 FROM chunks WHERE tenant_id = $1 AND id = $2",
                &[&t, &c.id],
                taken("chunk", &c.id, t),
            )?;
            refuse_if(
                tx,
                "SELECT 1 FROM chunks WHERE tenant_id = $1 AND document_id = $2 AND idx = $3",
                &[&t, &c.document_id, &c.idx],
                format!(
                    "document '{}' of tenant '{t}' already has a chunk at index {}",
                    c.document_id, c.idx
                ),
            )?;
            insert(documents::insert_chunk(tx, c))
        }
        Record::Checkpoint(c) => {
            let t = c.tenant_id.as_str();
            require(
                tx,
                "checkpoint",
                "session",
                &c.session_id,
                t,
                "SELECT 1 FROM sessions WHERE tenant_id = $1 AND id = $2",
                &[&t, &c.session_id],
            )?;
            refuse_if(
                tx,
                "SELECT 1 FROM checkpoints WHERE tenant_id = $1 AND session_id = $2
                     AND checkpoint_ns = $3 AND id = $4",
                &[&t, &c.session_id, &c.checkpoint_ns, &c.id],
                format!(
                    "checkpoint '{}' of session '{}' (namespace '{}') already exists in tenant '{t}'",
                    c.id, c.session_id, c.checkpoint_ns
                ),
            )?;
            insert(insert_checkpoint(tx, c))
        }
        Record::PendingWrite(w) => {
            let t = w.tenant_id.as_str();
            require(
                tx,
                "pending write",
                "checkpoint",
                &w.checkpoint_id,
                t,
                "SELECT 1 FROM checkpoints WHERE tenant_id = $1 AND session_id = $2
                     AND checkpoint_ns = $3 AND id = $4",
                &[&t, &w.session_id, &w.checkpoint_ns, &w.checkpoint_id],
            )?;
            refuse_if(
                tx,
                "SELECT 1 FROM checkpoint_writes WHERE tenant_id = $1 AND session_id = $2
                     AND checkpoint_ns = $3 AND checkpoint_id = $4 AND task_id = $5 AND idx = $6",
                &[
                    &t,
                    &w.session_id,
                    &w.checkpoint_ns,
                    &w.checkpoint_id,
                    &w.task_id,
                    &w.idx,
                ],
                format!(
                    "pending write {} of task '{}' on checkpoint '{}' already exists in tenant '{t}'",
                    w.idx, w.task_id, w.checkpoint_id
                ),
            )?;
            insert(insert_pending_write(tx, w))
        }
        Record::Usage(u) => {
            let t = u.tenant_id.as_str();
            require_tenant(tx, "usage record", t)?;
            refuse_if(
                tx,
                "SELECT 1 FROM usage_records WHERE tenant_id = $1 AND id = $2",
                &[&t, &u.id],
                taken("usage record", &u.id, t),
            )?;
            insert(insert_usage(tx, u))
        }
        Record::Metric(m) => {
            require_tenant(tx, "metric point", &m.tenant_id)?;
            insert(insert_metric(tx, m))
        }
        Record::Kv(k) => {
            let t = k.tenant_id.as_str();
            require_tenant(tx, "key-value entry", t)?;
            refuse_if(
                tx,
                "SELECT 1 FROM kv_entries WHERE tenant_id = $1 AND key = $2",
                &[&t, &k.key],
                taken("key", &k.key, t),
            )?;
            insert(insert_kv(tx, k))
        }
        Record::Lock(l) => {
            let t = l.tenant_id.as_str();
            require_tenant(tx, "lock", t)?;
            refuse_if(
                tx,
                "SELECT 1 FROM locks WHERE tenant_id = $1 AND name = $2",
                &[&t, &l.name],
                taken("lock", &l.name, t),
            )?;
            insert(insert_lock(tx, l))
        }
        Record::Retention(r) => {
            let t = r.tenant_id.as_str();
            require_tenant(tx, "retention rule", t)?;
            let what = format!("{} {}", r.entity.as_str(), r.kind);
            refuse_if(
                tx,
                "SELECT 1 FROM retention_rules WHERE tenant_id = $1 AND entity = $2 AND kind = $3",
                &[&t, &r.entity.as_str(), &r.kind],
                taken("retention rule", &what, t),
            )?;
            insert(
                tx.execute(
                    "INSERT INTO retention_rules (tenant_id, entity, kind, days, updated_at)
                     VALUES ($1, $2, $3, $4, $5)",
                    &[
                        &t,
                        &r.entity.as_str(),
                        &r.kind,
                        &r.days,
                        &crate::sql::ts(&r.updated_at),
                    ],
                )
                .db()
                .map(drop),
            )
        }
        Record::VectorModel(m) => match vectors::model_of(tx, &m.model) {
            Err(e) => Err(e.to_string()),
            // Models are store-wide: the store's declaration stands when it agrees.
            Ok(Some((d, metric))) if d == m.dimension && metric == m.metric => Ok(()),
            Ok(Some((d, metric))) => Err(format!(
                "vector model '{}' is {}-dimensional with metric {} here, {d} with {} in the store",
                m.model,
                m.dimension,
                m.metric.as_str(),
                metric.as_str()
            )),
            Ok(None) => insert(vectors::create_model(
                tx,
                &m.model,
                m.dimension,
                m.metric,
                ts(&m.created_at),
            )),
        },
        Record::Vector(v) => {
            let t = v.tenant_id.as_str();
            let entity = v.target.as_str();
            match vectors::model_of(tx, &v.model).map_err(|e| e.to_string())? {
                None => {
                    return Err(format!(
                        "vector refers to vector model '{}' that is neither earlier in the file nor in the store",
                        v.model
                    ));
                }
                Some((d, _)) if d != v.vector.len() => {
                    return Err(format!(
                        "vector of {entity} '{}' has {} values, vector model '{}' has {d}",
                        v.record_id,
                        v.vector.len(),
                        v.model
                    ));
                }
                Some(_) => {}
            }
            let rid = vectors::record_rid(tx, v.target, t, &v.record_id)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| {
                    format!(
                        "vector refers to {entity} '{}' of tenant '{t}' that is neither earlier in the file nor in the store",
                        v.record_id
                    )
                })?;
            refuse_if(
                tx,
                "SELECT 1 FROM vectors WHERE target = $1 AND record_rid = $2 AND model = $3",
                &[&entity, &rid, &v.model],
                format!(
                    "{entity} '{}' of tenant '{t}' already has a vector of model '{}'",
                    v.record_id, v.model
                ),
            )?;
            insert(
                tx.execute(
                    "INSERT INTO vectors (tenant_id, target, record_rid, model, embedding)
                     VALUES ($1, $2, $3, $4, $5)",
                    &[
                        &t,
                        &entity,
                        &rid,
                        &v.model,
                        &pgvector::Vector::from(v.vector.clone()),
                    ],
                )
                .db()
                .map(drop),
            )
        }
        Record::Audit(a) => {
            let Some(chain) = audit else {
                return Err(
                    "the store already has audit entries; audit records can only be imported into an empty store"
                        .into(),
                );
            };
            // A forged or damaged history is refused here, with its line, rather than
            // imported and reported later by `verify`.
            chain.check(a)?;
            refuse_if(
                tx,
                "SELECT 1 FROM audit_log WHERE seq = $1",
                &[&a.seq],
                format!("audit entry seq {} appears twice", a.seq),
            )?;
            insert(audit::insert_verbatim(tx, a))
        }
    }
}

fn require_subject_agent(
    tx: &mut Transaction<'_>,
    entity: &str,
    tenant: &str,
    subject: &Option<String>,
    agent: &Option<String>,
) -> Refusal {
    if let Some(id) = subject {
        require(
            tx,
            entity,
            "subject",
            id,
            tenant,
            "SELECT 1 FROM subjects WHERE tenant_id = $1 AND id = $2",
            &[&tenant, &id],
        )?;
    }
    if let Some(id) = agent {
        require(
            tx,
            entity,
            "agent",
            id,
            tenant,
            "SELECT 1 FROM agents WHERE tenant_id = $1 AND id = $2",
            &[&tenant, &id],
        )?;
    }
    Ok(())
}

/// Inserts every record verbatim inside the caller's transaction, then appends one
/// store-wide audit entry with the counts. The first refused record aborts the import;
/// the caller's transaction then rolls back, so the store is unchanged.
pub(crate) fn import(
    tx: &mut Transaction<'_>,
    scope: &Scope,
    records: &mut dyn Iterator<Item = Result<(u64, Record)>>,
) -> Result<ImportReport> {
    // Decided once, before the first record: imported audit entries are the store's
    // whole history, so they may only start a log, never be spliced into one, and they
    // must chain from the genesis hash like the log they were exported from.
    let empty_log = !found(tx, "SELECT 1 FROM audit_log LIMIT 1", &[])
        .map_err(|m| Error::Database(m.into()))?;
    let mut audit = empty_log.then(ChainVerifier::new);
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut lines = 0u64;
    for item in records {
        let (line, rec) = item?;
        lines = lines.max(line);
        import_one(tx, &rec, &mut audit).map_err(|message| Error::Import { line, message })?;
        *counts.entry(rec.type_name().to_owned()).or_default() += 1;
    }
    audit::append_for(
        tx,
        None,
        scope,
        AuditDraft::new("store.import", "store", "import").new_values(&counts),
    )?;
    Ok(ImportReport { counts, lines })
}

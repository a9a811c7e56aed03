//! Full-text candidates from the FTS5 indexes of migration 0003.
//!
//! One query per target, all in one read transaction. Each drives from the FTS5 index
//! (`CROSS JOIN` pins that order: SQLite never reorders the left side of a CROSS JOIN), so
//! the MATCH finds the matching rows first and the join to the record table by `rid`
//! (its INTEGER PRIMARY KEY) applies the tenant and the filters. Every value is a bound
//! parameter; the only text spliced into SQL is this module's own column names and the
//! comparison operators of [`MetadataOp::sql`].
//!
//! BM25 statistics (document count, average length, how many documents hold a term) are
//! those of the whole index, every tenant included, so a score depends slightly on other
//! tenants' text; which records match does not.

use agentstore::Result;
use agentstore::backend::{Candidate, KeywordQuery};
use agentstore::search::{MetadataCondition, MetadataOp, SearchFilter, Target};
use rusqlite::Connection;

use crate::sql::*;

/// How one target is queried: its full-text index, its record table (alias `r`), its
/// parent (alias `p`), and where each filter field lives. Vector queries
/// (crate::ann) use the same shapes with the `vectors` table in front.
pub(crate) struct Shape {
    /// FTS5 table.
    pub fts: &'static str,
    /// Record table, joined as `r`.
    pub table: &'static str,
    /// Join of the parent as `p` (empty when the filters need none).
    pub parent: &'static str,
    /// Importance column (memories) or NULL.
    pub importance: &'static str,
    /// Encoded namespace column.
    namespace: &'static str,
    /// Column the kinds filter matches.
    kind: &'static str,
    /// Subject column.
    subject: &'static str,
    /// Agent column (None: the target has none).
    agent: Option<&'static str>,
    /// Metadata column the conditions read.
    metadata: &'static str,
}

pub(crate) fn shape(target: Target) -> Shape {
    match target {
        Target::Memory => Shape {
            fts: "memories_fts",
            table: "memories",
            parent: "",
            importance: "r.importance",
            namespace: "r.namespace",
            kind: "r.kind",
            subject: "r.subject_id",
            agent: Some("r.agent_id"),
            metadata: "r.metadata",
        },
        Target::Chunk => Shape {
            fts: "chunks_fts",
            table: "chunks",
            parent: "JOIN documents p ON p.tenant_id = r.tenant_id AND p.id = r.document_id",
            importance: "NULL",
            namespace: "p.namespace",
            kind: "p.doc_type",
            subject: "p.subject_id",
            agent: None,
            metadata: "p.metadata",
        },
        Target::Event => Shape {
            fts: "events_fts",
            table: "events",
            parent: "JOIN sessions p ON p.tenant_id = r.tenant_id AND p.id = r.session_id",
            importance: "NULL",
            namespace: "p.namespace",
            kind: "r.kind",
            subject: "p.subject_id",
            agent: Some("p.agent_id"),
            metadata: "r.metadata",
        },
    }
}

/// Applies [`agentstore::Backend::keyword_candidates`].
pub(crate) fn keyword_candidates(
    c: &Connection,
    tenant: &str,
    q: &KeywordQuery,
) -> Result<Vec<Candidate>> {
    let mut out = Vec::new();
    for &target in &q.targets {
        if q.filter.applies_to(target) {
            out.extend(target_candidates(c, tenant, q, target)?);
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

fn target_candidates(
    c: &Connection,
    tenant: &str,
    q: &KeywordQuery,
    target: Target,
) -> Result<Vec<Candidate>> {
    let s = shape(target);
    let mut f = Filter::default();
    f.cond(
        format!("{} MATCH ?", s.fts),
        vec![Box::new(q.expression.clone())],
    );
    f.eq("r.tenant_id", tenant.to_owned());
    apply_filter(&mut f, &s, target, &q.filter, q.now);
    let sql = format!(
        "SELECT r.id, -bm25({fts}) AS score, r.created_at, {importance}
         FROM {fts} CROSS JOIN {table} r ON r.rid = {fts}.rowid {parent}
         {where_} ORDER BY score DESC, r.id LIMIT {limit}",
        fts = s.fts,
        table = s.table,
        importance = s.importance,
        parent = s.parent,
        where_ = f.where_sql(),
        limit = q.limit.max(1),
    );
    c.prepare_cached(&sql)
        .db()?
        .query_map(f.param_refs().as_slice(), |r| {
            Ok(Candidate {
                target,
                id: r.get(0)?,
                score: r.get(1)?,
                created_at: to_ts(r.get(2)?),
                importance: r.get(3)?,
            })
        })
        .db()?
        .collect::<rusqlite::Result<Vec<_>>>()
        .db()
}

fn json_contains(f: &mut Filter, column: &str, value: &str) {
    f.cond(
        format!("EXISTS (SELECT 1 FROM json_each({column}) WHERE json_each.value = ?)"),
        vec![Box::new(value.to_owned())],
    );
}

/// The conditions of `filter` for `target` (see
/// [`agentstore::Backend::keyword_candidates`]), over the aliases of `s`.
pub(crate) fn apply_filter(
    f: &mut Filter,
    s: &Shape,
    target: Target,
    filter: &SearchFilter,
    now: agentstore::Timestamp,
) {
    f.ns_prefix(s.namespace, &filter.namespace_prefix);
    if !filter.kinds.is_empty() {
        let marks = vec!["?"; filter.kinds.len()].join(", ");
        f.cond(
            format!("{} IN ({marks})", s.kind),
            filter
                .kinds
                .iter()
                .map(|k| Box::new(k.clone()) as Box<dyn rusqlite::ToSql>)
                .collect(),
        );
    }
    f.eq_opt(s.subject, &filter.subject_id);
    if let Some(agent) = s.agent {
        f.eq_opt(agent, &filter.agent_id);
    }
    if let Some(t) = &filter.from {
        f.cond("r.created_at >= ?", vec![Box::new(ts(t))]);
    }
    if let Some(t) = &filter.to {
        f.cond("r.created_at < ?", vec![Box::new(ts(t))]);
    }
    match target {
        Target::Memory => {
            for tag in &filter.tags {
                json_contains(f, "r.tags", tag);
            }
            if let Some(session) = &filter.session_id {
                json_contains(f, "r.source_sessions", session);
            }
            match &filter.valid_at {
                None => {
                    f.cond("r.valid_to IS NULL", vec![]);
                }
                Some(t) => {
                    f.cond(
                        "r.valid_from <= ? AND (r.valid_to IS NULL OR r.valid_to > ?)",
                        vec![Box::new(ts(t)), Box::new(ts(t))],
                    );
                }
            }
            f.cond(
                "(r.expires_at IS NULL OR r.expires_at > ?)",
                vec![Box::new(ts(&now))],
            );
        }
        Target::Event => {
            f.eq_opt("r.session_id", &filter.session_id);
            f.cond(
                "(p.expires_at IS NULL OR p.expires_at > ?)",
                vec![Box::new(ts(&now))],
            );
        }
        Target::Chunk => {}
    }
    for m in &filter.metadata {
        metadata_cond(f, s.metadata, m);
    }
}

/// One metadata condition (semantics on [`MetadataCondition`]). `json_type` tells the
/// JSON types apart, which `json_extract` alone does not: it returns 1 for both `true`
/// and the number 1, and SQLite orders every number before every string.
pub(crate) fn metadata_cond(f: &mut Filter, column: &str, m: &MetadataCondition) {
    let path = m.json_path();
    let ty = format!("json_type({column}, ?)");
    let val = format!("json_extract({column}, ?)");
    let (sql, params): (String, Params) = match &m.value {
        serde_json::Value::Number(n) => {
            let v: Box<dyn rusqlite::ToSql> = match n.as_i64() {
                Some(i) => Box::new(i),
                None => Box::new(n.as_f64().unwrap_or(f64::NAN)),
            };
            (
                format!(
                    "({ty} IN ('integer', 'real') AND {val} {op} ?)",
                    op = eq_op(m.op)
                ),
                vec![Box::new(path.clone()), Box::new(path), v],
            )
        }
        serde_json::Value::String(v) => (
            format!("({ty} = 'text' AND {val} {op} ?)", op = eq_op(m.op)),
            vec![Box::new(path.clone()), Box::new(path), Box::new(v.clone())],
        ),
        serde_json::Value::Bool(b) => (
            format!("{ty} = ?"),
            vec![Box::new(path), Box::new(if *b { "true" } else { "false" })],
        ),
        // Validation leaves only null here: arrays and objects are refused by the engine.
        _ => (format!("{ty} = 'null'"), vec![Box::new(path)]),
    };
    if m.op == MetadataOp::Ne {
        // A missing path makes the equality NULL; "not equal" includes those records.
        f.cond(format!("NOT COALESCE({sql}, 0)"), params);
    } else {
        f.cond(sql, params);
    }
}

/// The operator inside the typed comparison: `ne` is written as NOT of `eq`.
fn eq_op(op: MetadataOp) -> &'static str {
    match op {
        MetadataOp::Ne => MetadataOp::Eq.sql(),
        other => other.sql(),
    }
}

/// True when events were appended since the event index last caught up.
pub(crate) fn events_pending(c: &Connection) -> Result<bool> {
    c.prepare_cached(
        "SELECT (SELECT COALESCE(MAX(rid), 0) FROM events)
              > (SELECT indexed_rid FROM fts_progress WHERE name = 'events')",
    )
    .db()?
    .query_row([], |r| r.get(0))
    .db()
}

/// Indexes every event above the mark in one bulk insert and moves the mark, in the
/// caller's write transaction; returns how many events were indexed. See migration 0003
/// for why events are not indexed by a trigger.
pub(crate) fn index_pending_events(tx: &Connection) -> Result<u64> {
    let (mark, max): (i64, i64) = tx
        .prepare_cached(
            "SELECT (SELECT indexed_rid FROM fts_progress WHERE name = 'events'),
                    (SELECT COALESCE(MAX(rid), 0) FROM events)",
        )
        .db()?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .db()?;
    if max <= mark {
        return Ok(0);
    }
    let n = tx
        .prepare_cached(
            "INSERT INTO events_fts (rowid, content, tool_name)
             SELECT rid, as_index(content), as_index(tool_name, content) FROM events
             WHERE rid > ?1 AND rid <= ?2",
        )
        .db()?
        .execute([mark, max])
        .db()?;
    tx.prepare_cached("UPDATE fts_progress SET indexed_rid = ?1 WHERE name = 'events'")
        .db()?
        .execute([max])
        .db()?;
    Ok(n as u64)
}

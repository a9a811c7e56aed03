//! Full-text candidates from the generated `fts` tsvector columns of events, memories
//! and chunks (migration 0001), each with a GIN index.
//!
//! One query per target, all in the caller's read snapshot. The query words become one
//! tsquery that ORs them (see [`TSQUERY`]); the GIN index finds the matching rows, the
//! tenant and the filters are applied in the same query, and `ts_rank_cd` scores them.
//! Every value is a bound parameter; the only text spliced into SQL is this module's own
//! column names and the comparison operators of [`MetadataOp::sql`].
//!
//! `ts_rank_cd` (cover density) needs no corpus statistics, so unlike SQLite's BM25 a
//! score does not depend on other tenants' text. The engine fuses by rank, not by score.

use agentstore::Result;
use agentstore::backend::{Candidate, KeywordQuery};
use agentstore::search::{MetadataCondition, MetadataOp, SearchFilter, Target, is_unspaced_script};

use postgres::GenericClient;

use crate::sql::*;

/// How one target is queried: its record table (alias `r`, with its `fts` column), its
/// parent (alias `p`), and where each filter field lives. Vector queries
/// (crate::vectors) use the same shapes with the `vectors` table in front.
pub(crate) struct Shape {
    /// Record table, joined as `r`.
    pub table: &'static str,
    /// Join of the parent as `p` (empty when the filters need none).
    pub parent: &'static str,
    /// Importance column (memories) or a typed NULL.
    pub importance: &'static str,
    /// Encoded namespace column.
    namespace: &'static str,
    /// Column the kinds filter matches.
    kind: &'static str,
    /// Subject column.
    subject: &'static str,
    /// Agent column (None: the target has none).
    agent: Option<&'static str>,
    /// Metadata column the conditions read (JSON text).
    metadata: &'static str,
}

pub(crate) fn shape(target: Target) -> Shape {
    match target {
        Target::Memory => Shape {
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
            table: "chunks",
            parent: "JOIN documents p ON p.tenant_id = r.tenant_id AND p.id = r.document_id",
            importance: "NULL::double precision",
            namespace: "p.namespace",
            kind: "p.doc_type",
            subject: "p.subject_id",
            agent: None,
            metadata: "p.metadata",
        },
        Target::Event => Shape {
            table: "events",
            parent: "JOIN sessions p ON p.tenant_id = r.tenant_id AND p.id = r.session_id",
            importance: "NULL::double precision",
            namespace: "p.namespace",
            kind: "r.kind",
            subject: "p.subject_id",
            agent: Some("p.agent_id"),
            metadata: "r.metadata",
        },
    }
}

/// The tsquery matching any of the words in `$1` (text[]), `$2` (bool[]: that word is
/// in a script written without spaces) telling which are prefix queries.
///
/// Each word becomes `phraseto_tsquery('agentstore_english', word)`: the word normalised (stemmed)
/// as the indexed text was, and a word the parser splits into several tokens a phrase of
/// them, as an FTS5 quoted string is. A word in a script written without spaces is a
/// prefix query (`'word':*`), as the FTS5 expression marks it with `*`
/// ([`agentstore::search::fts5_expression`]): the parser keeps a run of such characters
/// as one token. Its text is quoted as a tsquery lexeme (quotes and backslashes
/// doubled), so nothing in it is read as an operator. Words that normalise to nothing
/// (stop words) are left out: `to_tsvector` tells them first, since the tsquery
/// functions would send a NOTICE for each (which the client logs), and `numnode = 0`
/// catches the rest. The others are parenthesised and joined with `|` in their
/// canonical text form, which reads back as the same query. No word left: NULL, which
/// matches nothing.
const TSQUERY: &str = r#"SELECT string_agg('(' || x.t::text || ')', ' | ')::tsquery AS query
    FROM (SELECT CASE WHEN length(to_tsvector('agentstore_english', u.w)) = 0 THEN NULL
                      WHEN u.p
                      THEN to_tsquery('agentstore_english', '''' || replace(replace(u.w, '\', '\\'), '''', '''''') || ''':*')
                      ELSE phraseto_tsquery('agentstore_english', u.w) END AS t
          FROM unnest($1::text[], $2::bool[]) AS u(w, p)) x
    WHERE numnode(x.t) > 0"#;

/// Applies [`agentstore::Backend::keyword_candidates`].
pub(crate) fn keyword_candidates(
    c: &mut impl GenericClient,
    tenant: &str,
    q: &KeywordQuery,
) -> Result<Vec<Candidate>> {
    let mut out = Vec::new();
    if q.terms.is_empty() {
        return Ok(out);
    }
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
    c: &mut impl GenericClient,
    tenant: &str,
    q: &KeywordQuery,
    target: Target,
) -> Result<Vec<Candidate>> {
    let s = shape(target);
    let mut f = Filter::default();
    // $1 and $2 are the words of [`TSQUERY`]; the filter numbers its own from $3.
    // PostgreSQL text cannot hold U+0000, so no stored word contains it: it is dropped
    // from the words rather than refusing the whole query.
    let words: Vec<String> = q.terms.iter().map(|t| t.replace('\0', "")).collect();
    let prefix: Vec<bool> = q
        .terms
        .iter()
        .map(|t| t.chars().any(is_unspaced_script))
        .collect();
    f.params.push(Box::new(words));
    f.params.push(Box::new(prefix));
    // The query is computed once (a materialised CTE read by two InitPlans), so the GIN
    // index sees a constant to search for.
    f.cond("r.fts @@ (SELECT query FROM q)", vec![]);
    f.eq("r.tenant_id", tenant.to_owned());
    apply_filter(&mut f, &s, target, &q.filter, q.now);
    let sql = format!(
        "WITH q AS MATERIALIZED ({TSQUERY})
         SELECT r.id, ts_rank_cd(r.fts, (SELECT query FROM q))::double precision AS score,
                r.created_at, {importance}
         FROM {table} r {parent}
         {where_} ORDER BY score DESC, r.id LIMIT {limit}",
        importance = s.importance,
        table = s.table,
        parent = s.parent,
        where_ = f.where_sql(),
        limit = q.limit.max(1),
    );
    let rows = c.query(&sql, f.param_refs().as_slice()).db()?;
    rows.iter()
        .map(|r| {
            Ok(Candidate {
                target,
                id: col(r, 0)?,
                score: col(r, 1)?,
                created_at: to_ts(col(r, 2)?),
                importance: col(r, 3)?,
            })
        })
        .collect()
}

/// `value` is an element of the JSON array in text column `column` (JSON equality: a
/// string element equals the string, never a number).
fn json_contains(f: &mut Filter, column: &str, value: &str) {
    f.cond(
        format!("({column}::jsonb @> jsonb_build_array(?::text))"),
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
                .map(|k| Box::new(k.clone()) as Param)
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

/// The value at a condition's path: `column::jsonb -> 'seg1' -> 'seg2' ...` with each
/// segment bound as text, plus those parameters. `->` with a text key reads object
/// members only (never an array element), as SQLite's quoted path `$."a"."0"` does;
/// a missing member gives NULL.
fn json_value(column: &str, m: &MetadataCondition) -> (String, Vec<Param>) {
    let mut sql = format!("({column}::jsonb");
    let mut params: Vec<Param> = Vec::new();
    for seg in m.segments() {
        sql.push_str(" -> ?::text");
        params.push(Box::new(seg.to_owned()));
    }
    sql.push(')');
    (sql, params)
}

/// One metadata condition (semantics on [`MetadataCondition`]). `jsonb_typeof` tells the
/// JSON types apart; numbers compare as jsonb numbers (numerically, 7 = 7.0), strings as
/// their text under the "C" collation (byte-wise, as SQLite compares them). Every
/// comparison is between jsonb values or texts, so none can fail on a value of another
/// type, whatever order the conditions are evaluated in.
pub(crate) fn metadata_cond(f: &mut Filter, column: &str, m: &MetadataCondition) {
    let (val, path) = json_value(column, m);
    // `val` appears twice where the type is checked before comparing: its segments are
    // bound once more for the second.
    let path2 = || json_value(column, m).1;
    let (sql, params): (String, Vec<Param>) = match &m.value {
        serde_json::Value::Number(n) => {
            let (cast, v): (&str, Param) = match n.as_i64() {
                Some(i) => ("bigint", Box::new(i)),
                None => ("double precision", Box::new(n.as_f64().unwrap_or(f64::NAN))),
            };
            let mut p = path;
            p.extend(path2());
            p.push(v);
            (
                format!(
                    "(jsonb_typeof({val}) = 'number' AND {val} {op} to_jsonb(?::{cast}))",
                    op = eq_op(m.op)
                ),
                p,
            )
        }
        serde_json::Value::String(v) => {
            let mut p = path;
            p.extend(path2());
            p.push(Box::new(v.clone()));
            (
                format!(
                    "(jsonb_typeof({val}) = 'string' AND ({val} #>> '{{}}') COLLATE \"C\" {op} ?::text)",
                    op = eq_op(m.op)
                ),
                p,
            )
        }
        serde_json::Value::Bool(b) => {
            let mut p = path;
            p.push(Box::new(*b));
            (format!("({val} = to_jsonb(?::boolean))"), p)
        }
        // Validation leaves only null here: arrays and objects are refused by the engine.
        _ => (format!("(jsonb_typeof({val}) = 'null')"), path),
    };
    if m.op == MetadataOp::Ne {
        // A missing path makes the equality NULL; "not equal" includes those records.
        f.cond(format!("NOT COALESCE({sql}, FALSE)"), params);
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

//! Conversions between agentstore values and PostgreSQL columns, shared by every module.
//!
//! Column encodings are the SQLite backend's (`agentstore::codec::columns`), so records,
//! cursors and exports mean the same on both.

use agentstore::{Error, Namespace, Result};
use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{GenericClient, Row};

pub(crate) use agentstore::codec::columns::{
    decode_cursor, encode_cursor, json_text, json_text_opt, parse_json, parse_json_opt,
    require_scope_tenant, to_json_text, to_ts, to_ts_opt, ts, ts_opt,
};

/// Namespace column text.
pub(crate) fn ns(n: &Namespace) -> String {
    n.encode()
}

/// A namespace from its column.
pub(crate) fn to_ns(s: &str) -> Namespace {
    Namespace::decode(s)
}

/// Maps a PostgreSQL error to an agentstore error. Unique and foreign-key violations are
/// normally caught earlier by explicit checks that name the record; this is the safety
/// net, so the message stays generic. A lost connection is `Busy`: the pool replaces the
/// connection and the caller may retry.
pub(crate) fn db_err(e: postgres::Error) -> Error {
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        if *code == SqlState::UNIQUE_VIOLATION || *code == SqlState::EXCLUSION_VIOLATION {
            return Error::Conflict(db.message().to_owned());
        }
        if *code == SqlState::FOREIGN_KEY_VIOLATION {
            return Error::Conflict(
                "the write references a record that does not exist, or the record is still referenced"
                    .into(),
            );
        }
        // PostgreSQL text cannot hold U+0000 (SQLite's can): a value with it is refused,
        // and changes nothing.
        if *code == SqlState::CHARACTER_NOT_IN_REPERTOIRE
            || *code == SqlState::UNTRANSLATABLE_CHARACTER
        {
            return Error::invalid(
                "text",
                "the PostgreSQL backend cannot store or compare text holding the NUL character (U+0000)",
            );
        }
        if *code == SqlState::RAISE_EXCEPTION || *code == SqlState::CHECK_VIOLATION {
            return Error::Conflict(db.message().to_owned());
        }
        if *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED
            || *code == SqlState::LOCK_NOT_AVAILABLE
            || *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW
        {
            return Error::Busy;
        }
    } else if e.is_closed() || is_io(&e) {
        // A connection is lost in one of two ways: closed (the server's end shut in
        // order), or an I/O error on the socket (reset, broken pipe: a server stopped or
        // killed under a query, a network cut). Both are the lost connection of the doc
        // above. The second used to come out as a database error ("error communicating
        // with the server"), which the HTTP server answers as its own fault (500) instead
        // of 503 with Retry-After, though a retry on a new connection is what works
        // (tests/postgres.rs resets a connection mid-transaction).
        return Error::Busy;
    }
    // The client's own Display of a server error is only "db error": keep the server's
    // message, detail and SQLSTATE, which say what went wrong.
    if let Some(db) = e.as_db_error() {
        let mut m = format!("{} (SQLSTATE {})", db.message(), db.code().code());
        if let Some(d) = db.detail() {
            m.push_str(": ");
            m.push_str(d);
        }
        return Error::Database(m.into());
    }
    Error::Database(Box::new(e))
}

/// Whether the client failed reading or writing its socket (its error kind `Io`, whose
/// source is the I/O error).
fn is_io(e: &postgres::Error) -> bool {
    std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
}

/// `?` adapter for postgres results.
pub(crate) trait SqlResult<T> {
    /// Maps the error with [`db_err`].
    fn db(self) -> Result<T>;
}

impl<T> SqlResult<T> for std::result::Result<T, postgres::Error> {
    fn db(self) -> Result<T> {
        self.map_err(db_err)
    }
}

/// A boxed SQL parameter of a dynamic query.
pub(crate) type Param = Box<dyn ToSql + Sync + Send>;

/// A WHERE clause builder for list queries with optional filters; it numbers the `$n`
/// placeholders itself. Write conditions with `?` for each parameter: [`Filter::cond`]
/// renumbers them.
#[derive(Default)]
pub(crate) struct Filter {
    conds: Vec<String>,
    /// Parameters in order.
    pub params: Vec<Param>,
}

impl Filter {
    /// A filter starting with `tenant_id = $1`.
    pub fn tenant(tenant: &str) -> Self {
        let mut f = Filter::default();
        f.eq("tenant_id", tenant.to_owned());
        f
    }

    /// Adds `column = $n`.
    pub fn eq<T: ToSql + Sync + Send + 'static>(&mut self, column: &str, v: T) -> &mut Self {
        self.cond(format!("{column} = ?"), vec![Box::new(v)])
    }

    /// Adds `column = $n` when `v` is set.
    pub fn eq_opt<T: ToSql + Sync + Send + Clone + 'static>(
        &mut self,
        column: &str,
        v: &Option<T>,
    ) -> &mut Self {
        if let Some(v) = v {
            self.eq(column, v.clone());
        }
        self
    }

    /// Adds a raw condition whose `?` marks stand for `params` in order.
    pub fn cond(&mut self, sql: impl AsRef<str>, params: Vec<Param>) -> &mut Self {
        let sql = number_placeholders(sql.as_ref(), self.params.len());
        self.conds.push(sql);
        self.params.extend(params);
        self
    }

    /// Adds a namespace prefix condition on `column`.
    pub fn ns_prefix(&mut self, column: &str, prefix: &Option<Namespace>) -> &mut Self {
        if let Some(p) = prefix
            && let (lo, Some(hi)) = p.prefix_range()
        {
            self.cond(
                format!("({column} >= ? AND {column} < ?)"),
                vec![Box::new(lo), Box::new(hi)],
            );
        }
        self
    }

    /// How many conditions the filter holds.
    pub fn conditions(&self) -> usize {
        self.conds.len()
    }

    /// The next parameter's number (`$n`), for SQL appended after the WHERE clause.
    pub fn next_param(&self) -> usize {
        self.params.len() + 1
    }

    /// `WHERE ...` (or empty).
    pub fn where_sql(&self) -> String {
        if self.conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.conds.join(" AND "))
        }
    }

    /// Parameters as the postgres client expects them.
    pub fn param_refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|b| b.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// Replaces each `?` outside string literals with `$n`, numbering from `after + 1`.
pub(crate) fn number_placeholders(sql: &str, after: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = after;
    let mut in_str = false;
    for ch in sql.chars() {
        match ch {
            '\'' => {
                in_str = !in_str;
                out.push(ch);
            }
            '?' if !in_str => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(ch),
        }
    }
    out
}

/// Decoder of one row into a record; errors report damaged stored values.
pub(crate) type RowFn<T> = fn(&Row) -> Result<T>;

/// Every row of `sql` decoded with `row`.
pub(crate) fn collect_rows<T>(
    c: &mut impl GenericClient,
    sql: &str,
    p: &[&(dyn ToSql + Sync)],
    row: RowFn<T>,
) -> Result<Vec<T>> {
    c.query(sql, p).db()?.iter().map(row).collect()
}

/// At most one row of `sql` decoded with `row`.
pub(crate) fn one_row<T>(
    c: &mut impl GenericClient,
    sql: &str,
    p: &[&(dyn ToSql + Sync)],
    row: RowFn<T>,
) -> Result<Option<T>> {
    c.query_opt(sql, p).db()?.as_ref().map(row).transpose()
}

/// One page of `select` (a `SELECT … FROM table`) under `f`, in `order_by` order. One row
/// more than `limit` is fetched to learn whether a next page exists; its cursor is
/// `cursor` of the page's last item.
pub(crate) fn page<T>(
    c: &mut impl GenericClient,
    select: &str,
    f: &Filter,
    order_by: &str,
    limit: usize,
    row: RowFn<T>,
    cursor: impl Fn(&T) -> String,
) -> Result<agentstore::Page<T>> {
    let limit = limit.max(1);
    let sql = format!(
        "{select} {} ORDER BY {order_by} LIMIT {}",
        f.where_sql(),
        limit + 1
    );
    let mut items = collect_rows(c, &sql, f.param_refs().as_slice(), row)?;
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(cursor)
    } else {
        None
    };
    Ok(agentstore::Page { items, next })
}

/// A column read, with a type mismatch reported as corruption rather than a panic.
pub(crate) fn col<'a, T: postgres::types::FromSql<'a>>(r: &'a Row, i: usize) -> Result<T> {
    r.try_get(i)
        .map_err(|e| Error::Corrupt(format!("column {i} cannot be read: {e}")))
}

/// Runs `update_sql` (`$1` = time, `$2` = tenant, `$3` = id) once per distinct id and
/// appends ONE audit entry for the call naming the count and first / last id: read
/// counters are bumped on every recall or search, and an entry per record would make
/// the audit log the largest table. Unknown ids are ignored. Returns the rows changed.
pub(crate) fn bump_counters(
    tx: &mut postgres::Transaction<'_>,
    scope: &agentstore::Scope,
    update_sql: &str,
    ids: &[String],
    at: agentstore::Timestamp,
    action: &str,
    resource_type: &str,
) -> Result<agentstore::backend::WriteResult> {
    let st = tx.prepare(update_sql).db()?;
    let mut hit = Vec::new();
    for id in ids.iter().collect::<std::collections::BTreeSet<_>>() {
        if tx.execute(&st, &[&ts(&at), &scope.tenant, id]).db()? > 0 {
            hit.push(id.as_str());
        }
    }
    if let (Some(first), Some(last)) = (hit.first(), hit.last()) {
        crate::audit::append(
            tx,
            scope,
            agentstore::audit::AuditDraft::new(action, resource_type, *first).with_json(
                serde_json::json!({"count": hit.len(), "first_id": first, "last_id": last}),
            ),
        )?;
    }
    Ok(agentstore::backend::WriteResult::Count(hit.len() as u64))
}

//! Conversions between agentstore values and SQLite columns, shared by every module.

use agentstore::{Error, Namespace, Result};
use rusqlite::ErrorCode;

pub(crate) use agentstore::codec::columns::{
    decode_cursor, encode_cursor, json_text, json_text_opt, parse_json, parse_json_opt,
    parse_target, require_scope_tenant, to_json_text, to_ts, to_ts_opt, ts, ts_opt,
};

/// Namespace column text.
pub(crate) fn ns(n: &Namespace) -> String {
    n.encode()
}

/// A namespace from its column.
pub(crate) fn to_ns(s: &str) -> Namespace {
    Namespace::decode(s)
}

/// SQL condition and parameters selecting `column` at or under a namespace prefix.
/// Returns None for the root prefix (no condition needed).
pub(crate) fn ns_prefix_cond(column: &str, prefix: &Namespace) -> Option<(String, Vec<String>)> {
    match prefix.prefix_range() {
        (_, None) => None,
        (lo, Some(hi)) => Some((format!("({column} >= ? AND {column} < ?)"), vec![lo, hi])),
    }
}

/// Maps a SQLite error to an agentstore error. Unique and foreign-key violations are
/// normally caught earlier by explicit checks that name the record; this is the
/// safety net, so the message stays generic.
pub(crate) fn db_err(e: rusqlite::Error) -> Error {
    let text = match &e {
        rusqlite::Error::SqliteFailure(_, Some(m)) => Some(m.clone()),
        rusqlite::Error::UserFunctionError(m) => Some(m.to_string()),
        _ => None,
    };
    if let Some(msg) = text {
        if let Some(m) = msg.strip_prefix(crate::keyring::UNAVAILABLE_PREFIX) {
            return Error::KeyUnavailable(m.to_owned());
        }
        if let Some(m) = msg.strip_prefix(crate::keyring::CORRUPT_PREFIX) {
            return Error::Corrupt(m.to_owned());
        }
    }
    if let rusqlite::Error::SqliteFailure(f, msg) = &e {
        match f.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => return Error::Busy,
            ErrorCode::ConstraintViolation => {
                let m = msg.clone().unwrap_or_default();
                if m.contains("FOREIGN KEY") {
                    return Error::Conflict(
                        "the write references a record that does not exist, or the record is still referenced"
                            .into(),
                    );
                }
                return Error::Conflict(m);
            }
            _ => {}
        }
    }
    Error::Database(Box::new(e))
}

/// `?` adapter for rusqlite results.
pub(crate) trait SqlResult<T> {
    /// Maps the error with [`db_err`].
    fn db(self) -> Result<T>;
}

impl<T> SqlResult<T> for rusqlite::Result<T> {
    fn db(self) -> Result<T> {
        self.map_err(db_err)
    }
}

/// `Some(row)` or `None` for a query expected to return at most one row.
pub(crate) fn opt<T>(r: rusqlite::Result<T>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
        Err(e) => Err(db_err(e)),
    }
}

/// Boxed SQL parameters built up by dynamic filters.
pub(crate) type Params = Vec<Box<dyn rusqlite::ToSql>>;

/// A WHERE clause builder for list queries with optional filters.
#[derive(Default)]
pub(crate) struct Filter {
    conds: Vec<String>,
    /// Parameters in order.
    pub params: Params,
}

impl Filter {
    /// A filter starting with `tenant_id = ?`.
    pub fn tenant(tenant: &str) -> Self {
        let mut f = Filter::default();
        f.eq("tenant_id", tenant.to_owned());
        f
    }

    /// Adds `column = ?`.
    pub fn eq<T: rusqlite::ToSql + 'static>(&mut self, column: &str, v: T) -> &mut Self {
        self.conds.push(format!("{column} = ?"));
        self.params.push(Box::new(v));
        self
    }

    /// Adds `column = ?` when `v` is set.
    pub fn eq_opt<T: rusqlite::ToSql + Clone + 'static>(
        &mut self,
        column: &str,
        v: &Option<T>,
    ) -> &mut Self {
        if let Some(v) = v {
            self.eq(column, v.clone());
        }
        self
    }

    /// Adds a raw condition with its parameters.
    pub fn cond(&mut self, sql: impl Into<String>, params: Params) -> &mut Self {
        self.conds.push(sql.into());
        self.params.extend(params);
        self
    }

    /// Adds a namespace prefix condition on `column`.
    pub fn ns_prefix(&mut self, column: &str, prefix: &Option<Namespace>) -> &mut Self {
        if let Some(p) = prefix
            && let Some((sql, ps)) = ns_prefix_cond(column, p)
        {
            self.conds.push(sql);
            for v in ps {
                self.params.push(Box::new(v));
            }
        }
        self
    }

    /// `WHERE ...` (or empty).
    pub fn where_sql(&self) -> String {
        if self.conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.conds.join(" AND "))
        }
    }

    /// Parameters as rusqlite expects them.
    pub fn param_refs(&self) -> Vec<&dyn rusqlite::ToSql> {
        self.params.iter().map(|b| b.as_ref()).collect()
    }
}

/// Decoder of one row into a record; the inner `Result` reports damaged stored JSON.
pub(crate) type RowFn<T> = fn(&rusqlite::Row<'_>) -> rusqlite::Result<Result<T>>;

/// Every row of `sql` decoded with `row`.
pub(crate) fn collect_rows<T>(
    c: &rusqlite::Connection,
    sql: &str,
    p: &[&dyn rusqlite::ToSql],
    row: RowFn<T>,
) -> Result<Vec<T>> {
    c.prepare_cached(sql)
        .db()?
        .query_map(p, row)
        .db()?
        .map(|r| r.db().and_then(|x| x))
        .collect()
}

/// One page of `select` (a `SELECT … FROM table`) under `f`, in `order_by` order. One row
/// more than `limit` is fetched to learn whether a next page exists; its cursor is
/// `cursor` of the page's last item.
pub(crate) fn page<T>(
    c: &rusqlite::Connection,
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

/// Runs `update_sql` (`?1` = time, `?2` = tenant, `?3` = id) once per distinct id and
/// appends ONE audit entry for the call naming the count and first / last id: read
/// counters are bumped on every recall or search, and an entry per record would make
/// the audit log the largest table. Unknown ids are ignored. Returns the rows changed.
pub(crate) fn bump_counters(
    tx: &rusqlite::Connection,
    scope: &agentstore::Scope,
    update_sql: &str,
    ids: &[String],
    at: agentstore::Timestamp,
    action: &str,
    resource_type: &str,
) -> Result<agentstore::backend::WriteResult> {
    let mut st = tx.prepare_cached(update_sql).db()?;
    let mut hit = Vec::new();
    for id in ids.iter().collect::<std::collections::BTreeSet<_>>() {
        if st
            .execute(rusqlite::params![ts(&at), scope.tenant, id])
            .db()?
            > 0
        {
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

//! Key-value entries with TTL, named locks with fencing tokens, retention rules, and the
//! sweep that removes what expired or outlived its retention.
//!
//! An entry whose `expires_at` is at or before "now" is treated as absent by every read
//! and write here, whether or not the sweep has removed its row yet. Versions and lock
//! tokens never go back, even across expiry and release, so a client comparing a version
//! or presenting a token cannot be fooled by a key or lock that was recreated meanwhile.

use agentstore::audit::AuditDraft;
use agentstore::backend::{RetentionEntity, RetentionRule, SweepReport, WriteResult};
use agentstore::{Error, Json, KvEntry, Lock, Result, Scope, Timestamp};
use postgres::types::ToSql;
use postgres::{GenericClient, Row, Transaction};

use crate::audit;
use crate::sessions::delete_session_rows;
use crate::sql::*;
use crate::tenants::require_tenant;

fn live_at(expires_at: Option<Timestamp>, at: Timestamp) -> bool {
    expires_at.is_none_or(|e| e > at)
}

/// The smallest string greater than every string that starts with `prefix`, or None when
/// there is none (empty prefix, or only U+10FFFF characters). The key column is
/// `COLLATE "C"`, which compares the UTF-8 bytes and so orders like code points (as
/// SQLite's memcmp does), so `key >= prefix AND key < upper` selects exactly the keys
/// with the prefix as an index range, with no LIKE pattern to escape.
fn prefix_upper(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(c) = chars.pop() {
        let next = match c {
            '\u{D7FF}' => Some('\u{E000}'),
            c => char::from_u32(c as u32 + 1),
        };
        if let Some(n) = next {
            chars.push(n);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// A tenant filter selecting keys that start with `prefix`.
fn prefix_filter(tenant: &str, prefix: &str) -> Filter {
    let mut f = Filter::tenant(tenant);
    match prefix_upper(prefix) {
        Some(upper) => f.cond(
            "key >= ? AND key < ?",
            vec![Box::new(prefix.to_owned()), Box::new(upper)],
        ),
        None => f.cond("key >= ?", vec![Box::new(prefix.to_owned())]),
    };
    f
}

fn require_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::invalid("key", "must not be empty"));
    }
    Ok(())
}

// ------------------------------------------------------------------------- key-value

pub(crate) const KV_COLUMNS: &str = "tenant_id, key, value, expires_at, version, updated_at";

pub(crate) fn kv_row(r: &Row) -> Result<KvEntry> {
    let value: String = col(r, 2)?;
    Ok(KvEntry {
        tenant_id: col(r, 0)?,
        key: col(r, 1)?,
        value: parse_json(&value)?,
        expires_at: to_ts_opt(col(r, 3)?),
        version: col(r, 4)?,
        updated_at: to_ts(col(r, 5)?),
    })
}

pub(crate) fn insert_kv(tx: &mut Transaction<'_>, e: &KvEntry) -> Result<()> {
    tx.execute(
        &format!("INSERT INTO kv_entries ({KV_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"),
        &[
            &e.tenant_id,
            &e.key,
            &json_text(&e.value),
            &ts_opt(&e.expires_at),
            &e.version,
            &ts(&e.updated_at),
        ],
    )
    .db()?;
    Ok(())
}

/// The stored row, live or not.
fn kv_raw(c: &mut impl GenericClient, tenant: &str, key: &str) -> Result<Option<KvEntry>> {
    one_row(
        c,
        &format!("SELECT {KV_COLUMNS} FROM kv_entries WHERE tenant_id = $1 AND key = $2"),
        &[&tenant, &key],
        kv_row,
    )
}

/// Writes `e` over the row that `existed` says is there, or inserts it.
fn kv_store(tx: &mut Transaction<'_>, e: &KvEntry, existed: bool) -> Result<()> {
    if !existed {
        return insert_kv(tx, e);
    }
    tx.execute(
        "UPDATE kv_entries SET value = $1, expires_at = $2, version = $3, updated_at = $4
         WHERE tenant_id = $5 AND key = $6",
        &[
            &json_text(&e.value),
            &ts_opt(&e.expires_at),
            &e.version,
            &ts(&e.updated_at),
            &e.tenant_id,
            &e.key,
        ],
    )
    .db()?;
    Ok(())
}

pub(crate) fn kv_set(
    tx: &mut Transaction<'_>,
    scope: &Scope,
    key: &str,
    value: Json,
    expires_at: Option<Timestamp>,
    at: Timestamp,
) -> Result<WriteResult> {
    require_tenant(tx, &scope.tenant)?;
    require_key(key)?;
    let old = kv_raw(tx, &scope.tenant, key)?;
    let e = KvEntry {
        tenant_id: scope.tenant.clone(),
        key: key.to_owned(),
        value,
        expires_at,
        version: old.as_ref().map_or(1, |o| o.version + 1),
        updated_at: at,
    };
    kv_store(tx, &e, old.is_some())?;
    let mut draft = AuditDraft::new("kv.set", "kv", key).new_values(&e);
    if let Some(o) = old.as_ref().filter(|o| live_at(o.expires_at, at)) {
        draft = draft.old(o);
    }
    audit::append(tx, scope, draft)?;
    Ok(WriteResult::Kv(Some(e)))
}

pub(crate) fn kv_incr(
    tx: &mut Transaction<'_>,
    scope: &Scope,
    key: &str,
    by: i64,
    expires_at: Option<Timestamp>,
    at: Timestamp,
) -> Result<WriteResult> {
    require_tenant(tx, &scope.tenant)?;
    require_key(key)?;
    let old = kv_raw(tx, &scope.tenant, key)?;
    let live = old.as_ref().filter(|o| live_at(o.expires_at, at));
    let (value, expires_at) = match live {
        Some(o) => {
            let cur = o
                .value
                .as_i64()
                .ok_or_else(|| Error::Conflict(format!("key '{key}' does not hold an integer")))?;
            let next = cur
                .checked_add(by)
                .ok_or_else(|| Error::Conflict(format!("counter '{key}' would overflow")))?;
            (next, o.expires_at)
        }
        // A missing or expired counter starts a new window: that is what makes a counter
        // with a TTL a fixed-window rate limiter.
        None => (by, expires_at),
    };
    let e = KvEntry {
        tenant_id: scope.tenant.clone(),
        key: key.to_owned(),
        value: Json::from(value),
        expires_at,
        version: old.as_ref().map_or(1, |o| o.version + 1),
        updated_at: at,
    };
    kv_store(tx, &e, old.is_some())?;
    audit::append(
        tx,
        scope,
        AuditDraft::new("kv.incr", "kv", key).with_json(serde_json::json!({
            "by": by,
            "value": value,
            "expires_at": e.expires_at,
            "version": e.version,
        })),
    )?;
    Ok(WriteResult::Kv(Some(e)))
}

pub(crate) fn kv_expire(
    tx: &mut Transaction<'_>,
    scope: &Scope,
    key: &str,
    expires_at: Option<Timestamp>,
    at: Timestamp,
) -> Result<WriteResult> {
    let Some(old) = kv_raw(tx, &scope.tenant, key)?.filter(|o| live_at(o.expires_at, at)) else {
        return Ok(WriteResult::Kv(None));
    };
    let e = KvEntry {
        expires_at,
        version: old.version + 1,
        updated_at: at,
        ..old.clone()
    };
    kv_store(tx, &e, true)?;
    audit::append(
        tx,
        scope,
        AuditDraft::new("kv.expire", "kv", key)
            .old(&serde_json::json!({"expires_at": old.expires_at, "version": old.version}))
            .new_values(&serde_json::json!({"expires_at": e.expires_at, "version": e.version})),
    )?;
    Ok(WriteResult::Kv(Some(e)))
}

pub(crate) fn kv_delete(tx: &mut Transaction<'_>, scope: &Scope, key: &str) -> Result<WriteResult> {
    let Some(old) = kv_raw(tx, &scope.tenant, key)? else {
        return Ok(WriteResult::Count(0));
    };
    tx.execute(
        "DELETE FROM kv_entries WHERE tenant_id = $1 AND key = $2",
        &[&scope.tenant, &key],
    )
    .db()?;
    audit::append(tx, scope, AuditDraft::new("kv.delete", "kv", key).old(&old))?;
    // An expired row is removed all the same, but it did not exist for the caller.
    let live = live_at(old.expires_at, agentstore::time::now());
    Ok(WriteResult::Count(u64::from(live)))
}

pub(crate) fn kv_delete_prefix(
    tx: &mut Transaction<'_>,
    scope: &Scope,
    prefix: &str,
) -> Result<WriteResult> {
    // An empty prefix would empty the tenant's whole cache; that is far more often a
    // missing variable than an intent, so it is refused.
    if prefix.is_empty() {
        return Err(Error::invalid("prefix", "must not be empty"));
    }
    let f = prefix_filter(&scope.tenant, prefix);
    let mut counted = prefix_filter(&scope.tenant, prefix);
    counted.cond(
        "(expires_at IS NULL OR expires_at > ?)",
        vec![Box::new(ts(&agentstore::time::now()))],
    );
    let live: i64 = col(
        &tx.query_one(
            &format!("SELECT COUNT(*) FROM kv_entries {}", counted.where_sql()),
            counted.param_refs().as_slice(),
        )
        .db()?,
        0,
    )?;
    let removed = tx
        .execute(
            &format!("DELETE FROM kv_entries {}", f.where_sql()),
            f.param_refs().as_slice(),
        )
        .db()?;
    if removed > 0 {
        audit::append(
            tx,
            scope,
            AuditDraft::new("kv.delete_prefix", "kv", prefix).with_json(serde_json::json!({
                "prefix": prefix,
                "count": live,
                "rows_removed": removed,
            })),
        )?;
    }
    Ok(WriteResult::Count(live as u64))
}

pub(crate) fn kv_get(
    c: &mut impl GenericClient,
    tenant: &str,
    key: &str,
    now: Timestamp,
) -> Result<Option<KvEntry>> {
    Ok(kv_raw(c, tenant, key)?.filter(|e| live_at(e.expires_at, now)))
}

pub(crate) fn kv_list(
    c: &mut impl GenericClient,
    tenant: &str,
    prefix: &str,
    now: Timestamp,
    limit: usize,
) -> Result<Vec<KvEntry>> {
    let mut f = prefix_filter(tenant, prefix);
    f.cond(
        "(expires_at IS NULL OR expires_at > ?)",
        vec![Box::new(ts(&now))],
    );
    let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
    let n = f.next_param();
    f.params.push(Box::new(limit));
    collect_rows(
        c,
        &format!(
            "SELECT {KV_COLUMNS} FROM kv_entries {} ORDER BY key LIMIT ${n}",
            f.where_sql()
        ),
        f.param_refs().as_slice(),
        kv_row,
    )
}

// ------------------------------------------------------------------------- locks

pub(crate) const LOCK_COLUMNS: &str = "tenant_id, name, holder, token, acquired_at, expires_at";

pub(crate) fn lock_row(r: &Row) -> Result<Lock> {
    Ok(Lock {
        tenant_id: col(r, 0)?,
        name: col(r, 1)?,
        holder: col(r, 2)?,
        token: col(r, 3)?,
        acquired_at: to_ts_opt(col(r, 4)?),
        expires_at: to_ts_opt(col(r, 5)?),
    })
}

pub(crate) fn insert_lock(tx: &mut Transaction<'_>, l: &Lock) -> Result<()> {
    tx.execute(
        &format!("INSERT INTO locks ({LOCK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"),
        &[
            &l.tenant_id,
            &l.name,
            &l.holder,
            &l.token,
            &ts_opt(&l.acquired_at),
            &ts_opt(&l.expires_at),
        ],
    )
    .db()?;
    Ok(())
}

fn update_lock(tx: &mut Transaction<'_>, l: &Lock) -> Result<()> {
    tx.execute(
        "UPDATE locks SET holder = $1, token = $2, acquired_at = $3, expires_at = $4
         WHERE tenant_id = $5 AND name = $6",
        &[
            &l.holder,
            &l.token,
            &ts_opt(&l.acquired_at),
            &ts_opt(&l.expires_at),
            &l.tenant_id,
            &l.name,
        ],
    )
    .db()?;
    Ok(())
}

fn lease_end(expires_at: Timestamp, at: Timestamp) -> Result<()> {
    if expires_at <= at {
        return Err(Error::invalid("expires_at", "the lease must end after now"));
    }
    Ok(())
}

pub(crate) fn lock_acquire(
    tx: &mut Transaction<'_>,
    scope: &Scope,
    name: &str,
    holder: &str,
    expires_at: Timestamp,
    at: Timestamp,
) -> Result<WriteResult> {
    require_tenant(tx, &scope.tenant)?;
    if name.is_empty() {
        return Err(Error::invalid("name", "must not be empty"));
    }
    if holder.is_empty() {
        return Err(Error::invalid("holder", "must not be empty"));
    }
    lease_end(expires_at, at)?;
    let old = get_lock(tx, &scope.tenant, name)?;
    if let Some(o) = &old
        && let Some(current) = &o.holder
        && current != holder
        && live_at(o.expires_at, at)
    {
        return Err(Error::LockHeld {
            name: name.into(),
            holder: current.clone(),
            expires_at: o.expires_at.map(|e| e.to_rfc3339()).unwrap_or_default(),
        });
    }
    let l = Lock {
        tenant_id: scope.tenant.clone(),
        name: name.to_owned(),
        holder: Some(holder.to_owned()),
        // Re-acquiring, even by the same holder, issues a new token: a write still in
        // flight under the old lease must be refused once the new one starts.
        token: old.as_ref().map_or(1, |o| o.token + 1),
        acquired_at: Some(at),
        expires_at: Some(expires_at),
    };
    match &old {
        None => insert_lock(tx, &l)?,
        Some(_) => update_lock(tx, &l)?,
    }
    let mut draft = AuditDraft::new("lock.acquire", "lock", name).new_values(&l);
    if let Some(o) = &old {
        draft = draft.old(o);
    }
    audit::append(tx, scope, draft)?;
    Ok(WriteResult::Lock(l))
}

fn stale(name: &str, token: i64, lock: Option<&Lock>) -> Error {
    Error::StaleToken {
        name: name.into(),
        token,
        current: lock.map_or(0, |l| l.token),
    }
}

pub(crate) fn lock_renew(
    tx: &mut Transaction<'_>,
    scope: &Scope,
    name: &str,
    token: i64,
    expires_at: Timestamp,
    at: Timestamp,
) -> Result<WriteResult> {
    lease_end(expires_at, at)?;
    let old = get_lock(tx, &scope.tenant, name)?;
    let Some(o) = old
        .as_ref()
        .filter(|o| o.token == token && o.holder.is_some() && o.expires_at.is_some_and(|e| e > at))
    else {
        return Err(stale(name, token, old.as_ref()));
    };
    let l = Lock {
        expires_at: Some(expires_at),
        ..o.clone()
    };
    update_lock(tx, &l)?;
    audit::append(
        tx,
        scope,
        AuditDraft::new("lock.renew", "lock", name)
            .old(o)
            .new_values(&l),
    )?;
    Ok(WriteResult::Lock(l))
}

pub(crate) fn lock_release(
    tx: &mut Transaction<'_>,
    scope: &Scope,
    name: &str,
    token: i64,
) -> Result<WriteResult> {
    let old = get_lock(tx, &scope.tenant, name)?;
    // Releasing an expired lease nobody has taken over is allowed: it only makes explicit
    // what expiry already did.
    let Some(o) = old
        .as_ref()
        .filter(|o| o.token == token && o.holder.is_some())
    else {
        return Err(stale(name, token, old.as_ref()));
    };
    // The row stays (holder cleared) so the next acquisition's token is still larger.
    let l = Lock {
        holder: None,
        acquired_at: None,
        expires_at: None,
        ..o.clone()
    };
    update_lock(tx, &l)?;
    audit::append(
        tx,
        scope,
        AuditDraft::new("lock.release", "lock", name)
            .old(o)
            .new_values(&l),
    )?;
    Ok(WriteResult::Lock(l))
}

pub(crate) fn get_lock(
    c: &mut impl GenericClient,
    tenant: &str,
    name: &str,
) -> Result<Option<Lock>> {
    one_row(
        c,
        &format!("SELECT {LOCK_COLUMNS} FROM locks WHERE tenant_id = $1 AND name = $2"),
        &[&tenant, &name],
        lock_row,
    )
}

// ------------------------------------------------------------------------- sweep

/// Microseconds in a day: rules count days, timestamps are microseconds.
const DAY_MICROS: i64 = 86_400_000_000;

/// SQL that is true when the row aliased `x`, last changed at `x.{changed}`, has outlived
/// the shortest retention rule of `entity` for its kind (`x.{kind}`, or '' only when
/// `kind` is None) or, with `subject`, its subject's `retention_days`. $1 is the tenant,
/// $2 the sweep's time.
///
/// The cutoff is computed in NUMERIC: a huge `days` (a subject's `retention_days` has no
/// upper bound) would overflow BIGINT and fail the sweep, where SQLite's arithmetic
/// turns to floating point and simply keeps the row. `$2` is cast so that its type is
/// BIGINT in every statement, whatever the expression it first appears in.
fn outlived(entity: &str, changed: &str, kind: Option<&str>, subject: Option<&str>) -> String {
    let kinds = match kind {
        Some(k) => format!("('', x.{k})"),
        None => "('')".into(),
    };
    let mut sql = format!(
        "x.{changed} <= $2::bigint - {DAY_MICROS}::numeric * (SELECT MIN(r.days) FROM retention_rules r
             WHERE r.tenant_id = $1 AND r.entity = '{entity}' AND r.kind IN {kinds})"
    );
    if let Some(col) = subject {
        sql.push_str(&format!(
            " OR x.{changed} <= $2::bigint - {DAY_MICROS}::numeric * (SELECT j.retention_days FROM subjects j
                 WHERE j.tenant_id = $1 AND j.id = x.{col})"
        ));
    }
    sql
}

/// Deletes the tenant's rows of `table` (aliased `x`) that match `cond`; `p` is the
/// tenant and the sweep's time ($1, $2).
fn delete_where(
    tx: &mut Transaction<'_>,
    table: &str,
    cond: &str,
    p: &[&(dyn ToSql + Sync)],
) -> Result<u64> {
    tx.execute(
        &format!("DELETE FROM {table} AS x WHERE x.tenant_id = $1 AND ({cond})"),
        p,
    )
    .db()
}

/// Removes what expired or outlived its retention, in the SQLite backend's order, and
/// releases expired locks. The SQLite backend then purges its FTS5 indexes of what left;
/// here the generated `tsvector` columns leave with their rows, and the vectors with
/// theirs (triggers), so there is nothing more to do.
pub(crate) fn sweep_expired(
    tx: &mut Transaction<'_>,
    scope: &Scope,
    at: Timestamp,
) -> Result<WriteResult> {
    require_tenant(tx, &scope.tenant)?;
    let tenant = scope.tenant.as_str();
    let cutoff = ts(&at);
    let mut report = SweepReport::default();
    let p: [&(dyn ToSql + Sync); 2] = [&tenant, &cutoff];
    // Without a rule the retention conditions are all false, and leaving them out keeps
    // the expiry deletes on their `expires_at` plans instead of scanning every row.
    let any_rule: bool = col(
        &tx.query_one(
            "SELECT EXISTS (SELECT 1 FROM retention_rules WHERE tenant_id = $1)
                 OR EXISTS (SELECT 1 FROM subjects
                            WHERE tenant_id = $1 AND retention_days IS NOT NULL)",
            &[&tenant],
        )
        .db()?,
        0,
    )?;
    let outlived = |entity: &str, changed: &str, kind: Option<&str>, subject: Option<&str>| {
        if any_rule {
            outlived(entity, changed, kind, subject)
        } else {
            // False, and names $2 so that every statement binds the same parameters.
            "$2::bigint IS NULL".to_owned()
        }
    };
    // Sessions go leaves first: each pass removes the doomed sessions that no longer have
    // children, so a doomed tree disappears bottom-up over a few passes, while a doomed
    // parent of a live child stays until that child is gone.
    let doomed_leaves = format!(
        "SELECT x.id FROM sessions x
         WHERE x.tenant_id = $1
           AND ((x.expires_at IS NOT NULL AND x.expires_at <= $2) OR {})
           AND NOT EXISTS (SELECT 1 FROM sessions c
                           WHERE c.tenant_id = x.tenant_id AND c.parent_id = x.id)
         ORDER BY x.rid",
        outlived("session", "updated_at", Some("kind"), Some("subject_id"))
    );
    let doomed_leaves = tx.prepare(&doomed_leaves).db()?;
    loop {
        let leaves: Vec<String> = tx
            .query(&doomed_leaves, &p)
            .db()?
            .iter()
            .map(|r| col(r, 0))
            .collect::<Result<_>>()?;
        if leaves.is_empty() {
            break;
        }
        for id in &leaves {
            report.events += delete_session_rows(tx, tenant, id)?;
            report.sessions += 1;
        }
    }
    report.memories = delete_where(
        tx,
        "memories",
        &format!(
            "(x.expires_at IS NOT NULL AND x.expires_at <= $2) OR {}",
            outlived("memory", "updated_at", Some("kind"), Some("subject_id"))
        ),
        &p,
    )?;
    report.documents = delete_where(
        tx,
        "documents",
        &outlived(
            "document",
            "updated_at",
            Some("doc_type"),
            Some("subject_id"),
        ),
        &p,
    )?;
    report.usage = delete_where(
        tx,
        "usage_records",
        &outlived("usage", "created_at", None, None),
        &p,
    )?;
    report.metric_points = delete_where(
        tx,
        "metric_points",
        &outlived("metric", "at", Some("name"), None),
        &p,
    )?;
    report.kv = tx
        .execute(
            "DELETE FROM kv_entries
             WHERE tenant_id = $1 AND expires_at IS NOT NULL AND expires_at <= $2",
            &p,
        )
        .db()?;
    report.locks = tx
        .execute(
            "UPDATE locks SET holder = NULL, acquired_at = NULL, expires_at = NULL
             WHERE tenant_id = $1 AND holder IS NOT NULL AND expires_at <= $2",
            &p,
        )
        .db()?;
    if report.removed() + report.locks > 0 {
        let mut values = serde_json::to_value(&report)?;
        values["at"] = serde_json::to_value(at)?;
        audit::append(
            tx,
            scope,
            AuditDraft::new("retention.sweep", "tenant", tenant).with_json(values),
        )?;
    }
    Ok(WriteResult::Swept(report))
}

// ------------------------------------------------------------------------- retention

pub(crate) fn set_retention(
    tx: &mut Transaction<'_>,
    scope: &Scope,
    entity: RetentionEntity,
    kind: &str,
    days: Option<i64>,
    at: Timestamp,
) -> Result<WriteResult> {
    require_tenant(tx, &scope.tenant)?;
    let entity_name = entity.as_str();
    let p: [&(dyn ToSql + Sync); 3] = [&scope.tenant, &entity_name, &kind];
    let old: Option<i64> = tx
        .query_opt(
            "SELECT days FROM retention_rules WHERE tenant_id = $1 AND entity = $2 AND kind = $3",
            &p,
        )
        .db()?
        .map(|r| col(&r, 0))
        .transpose()?;
    match days {
        Some(d) => {
            tx.execute(
                "INSERT INTO retention_rules (tenant_id, entity, kind, days, updated_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (tenant_id, entity, kind)
                 DO UPDATE SET days = excluded.days, updated_at = excluded.updated_at",
                &[&scope.tenant, &entity_name, &kind, &d, &ts(&at)],
            )
            .db()?;
        }
        None => {
            tx.execute(
                "DELETE FROM retention_rules WHERE tenant_id = $1 AND entity = $2 AND kind = $3",
                &p,
            )
            .db()?;
        }
    }
    let rule = |d: Option<i64>| serde_json::json!({"entity": entity, "kind": kind, "days": d});
    audit::append(
        tx,
        scope,
        AuditDraft::new("retention.set", "tenant", &scope.tenant)
            .old(&rule(old))
            .new_values(&rule(days)),
    )?;
    Ok(WriteResult::None)
}

pub(crate) fn list_retention(
    c: &mut impl GenericClient,
    tenant: &str,
) -> Result<Vec<RetentionRule>> {
    c.query(
        "SELECT entity, kind, days, updated_at FROM retention_rules WHERE tenant_id = $1
         ORDER BY entity, kind",
        &[&tenant],
    )
    .db()?
    .iter()
    .map(|r| {
        let entity: String = col(r, 0)?;
        Ok(RetentionRule {
            tenant_id: tenant.to_owned(),
            entity: RetentionEntity::parse(&entity)
                .ok_or_else(|| Error::Corrupt(format!("unknown retention entity '{entity}'")))?,
            kind: col(r, 1)?,
            days: col(r, 2)?,
            updated_at: to_ts(col(r, 3)?),
        })
    })
    .collect()
}

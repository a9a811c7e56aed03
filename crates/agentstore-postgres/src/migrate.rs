//! Versioned, checksummed up/down migrations of the PostgreSQL schema.
//!
//! The bookkeeping (what is applied, pending, unknown or changed) is shared with the
//! SQLite backend (`agentstore::migration`); the scripts are this backend's own, in
//! `migrations/`. Migrating runs in one transaction that first takes an advisory lock, so
//! when several servers start at once against a new database, one migrates and the
//! others wait, re-read the applied set and find nothing left to do. PostgreSQL runs DDL
//! inside transactions, so a failed migration leaves nothing half done.

pub use agentstore::migration::{Migration, MigrationState, MigrationStatus};
use agentstore::migration::{check_status, latest_of, mismatch, status_of};
use agentstore::time::now;
use agentstore::{Error, Result};
use postgres::{Client, GenericClient, Transaction};

use crate::sql::{SqlResult, ts};

/// The advisory lock migrations hold (distinct from the write lock).
const MIGRATE_LOCK: i64 = 0x6167_656e_7473_6d67;

/// Every migration this binary knows, in order.
pub static MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "core",
        up: include_str!("../migrations/0001_core.up.sql"),
        down: include_str!("../migrations/0001_core.down.sql"),
    },
    Migration {
        version: 2,
        name: "vectors",
        up: include_str!("../migrations/0002_vectors.up.sql"),
        down: include_str!("../migrations/0002_vectors.down.sql"),
    },
];

/// The latest schema version this binary knows.
pub fn latest_version() -> i64 {
    latest_of(MIGRATIONS)
}

fn ensure_table(c: &mut impl GenericClient) -> Result<()> {
    c.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version     BIGINT PRIMARY KEY,
            name        TEXT NOT NULL,
            checksum    TEXT NOT NULL,
            applied_at  BIGINT NOT NULL
        )",
    )
    .db()
}

fn table_exists(c: &mut impl GenericClient, name: &str) -> Result<bool> {
    Ok(c.query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
        .db()?
        .get(0))
}

fn applied(c: &mut impl GenericClient) -> Result<Vec<(i64, String, String, i64)>> {
    if !table_exists(c, "schema_migrations")? {
        return Ok(Vec::new());
    }
    Ok(c.query(
        "SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version",
        &[],
    )
    .db()?
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
    .collect())
}

/// What is applied and what is pending (reads only: a database never migrated shows
/// every migration pending).
pub fn status(c: &mut impl GenericClient) -> Result<MigrationStatus> {
    Ok(status_of(&applied(c)?, MIGRATIONS))
}

/// Refuses a database whose applied migrations differ from the binary's.
pub fn check(c: &mut impl GenericClient) -> Result<()> {
    check_status(&status(c)?)
}

/// A migration transaction: the migration lock, then the bookkeeping table.
fn locked(c: &mut Client) -> Result<Transaction<'_>> {
    let mut tx = c.transaction().db()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])
        .db()?;
    ensure_table(&mut tx)?;
    Ok(tx)
}

/// Applies pending migrations up to `to` (default: latest) in one transaction, recorded
/// in the audit log as done by `actor` (once the log exists). Returns the versions
/// applied.
pub fn up_locked(c: &mut Client, to: Option<i64>, actor: &str) -> Result<Vec<i64>> {
    let target = to.unwrap_or_else(latest_version);
    if target < 0 || target > latest_version() {
        return Err(Error::invalid(
            "to",
            format!(
                "no migration {target}; this binary knows 1 to {}",
                latest_version()
            ),
        ));
    }
    let mut tx = locked(c)?;
    let st = status(&mut tx)?;
    mismatch(&st)?;
    let mut done = Vec::new();
    for m in MIGRATIONS {
        if m.version > target || m.version <= st.current {
            continue;
        }
        tx.batch_execute(m.up).map_err(|e| {
            Error::SchemaMismatch(format!(
                "migration {} ({}) failed: {}",
                m.version,
                m.name,
                crate::sql::db_err(e)
            ))
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)",
            &[&m.version, &m.name, &m.checksum(), &ts(&now())],
        )
        .db()?;
        done.push(m.version);
    }
    audit_migration(&mut tx, actor, "schema.migrate_up", st.current, &done)?;
    tx.commit().db()?;
    Ok(done)
}

/// Rolls back to version `to` (default: one step) in one transaction, recorded in the
/// audit log as done by `actor` (unless the rollback removed the log itself). Returns
/// the versions rolled back, newest first.
pub fn down_locked(c: &mut Client, to: Option<i64>, actor: &str) -> Result<Vec<i64>> {
    let mut tx = locked(c)?;
    let st = status(&mut tx)?;
    mismatch(&st)?;
    let target = to.unwrap_or((st.current - 1).max(0));
    if target < 0 || target > st.current {
        return Err(Error::invalid(
            "to",
            format!("must be between 0 and the current version {}", st.current),
        ));
    }
    let mut done = Vec::new();
    for m in MIGRATIONS.iter().rev() {
        if m.version <= target || m.version > st.current {
            continue;
        }
        tx.batch_execute(m.down).map_err(|e| {
            Error::SchemaMismatch(format!(
                "rollback of {} ({}) failed: {}",
                m.version,
                m.name,
                crate::sql::db_err(e)
            ))
        })?;
        tx.execute(
            "DELETE FROM schema_migrations WHERE version = $1",
            &[&m.version],
        )
        .db()?;
        done.push(m.version);
    }
    audit_migration(&mut tx, actor, "schema.migrate_down", st.current, &done)?;
    tx.commit().db()?;
    Ok(done)
}

/// A store-wide audit entry for a schema change of an existing store, in the
/// migration's own transaction. The entry is chained under the write lock, like every
/// other append.
fn audit_migration(
    tx: &mut Transaction<'_>,
    actor: &str,
    action: &str,
    from: i64,
    versions: &[i64],
) -> Result<()> {
    // A new store (from version 0) has no history to record, and an import wants its
    // log empty.
    if versions.is_empty() || !table_exists(tx, "audit_log")? || from == 0 {
        return Ok(());
    }
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&crate::WRITE_LOCK])
        .db()?;
    let to = status(tx)?.current;
    let draft = agentstore::audit::AuditDraft::new(action, "schema", to.to_string())
        .new_values(&serde_json::json!({ "from": from, "to": to, "versions": versions }));
    crate::audit::append_for(tx, None, &agentstore::Scope::new("", actor), draft)
}

/// A plain connection for the `migrate` commands: they must reach a database that
/// [`crate::open`] refuses (pending or unknown migrations).
fn connect(url: &str) -> Result<Client> {
    Client::connect(url, postgres::NoTls)
        .map_err(|e| Error::Config(format!("cannot connect to PostgreSQL: {e}")))
}

/// [`status`] of the database at `url`.
pub fn status_at(url: &str) -> Result<MigrationStatus> {
    status(&mut connect(url)?)
}

/// [`up_locked`] on the database at `url`.
pub fn up_at(url: &str, to: Option<i64>, actor: &str) -> Result<Vec<i64>> {
    up_locked(&mut connect(url)?, to, actor)
}

/// [`down_locked`] on the database at `url`.
pub fn down_at(url: &str, to: Option<i64>, actor: &str) -> Result<Vec<i64>> {
    down_locked(&mut connect(url)?, to, actor)
}

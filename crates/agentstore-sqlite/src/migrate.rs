//! Versioned, checksummed up/down migrations.
//!
//! Written here rather than taken from a crate: rusqlite_migration has no checksums and
//! refinery no down migrations, and both pin an older rusqlite (see CRATES.md). The
//! runner is small: each migration is a pair of SQL files compiled into the binary, its
//! checksum is the SHA-256 of the up script, and `schema_migrations` records what was
//! applied. Migrating runs inside one `BEGIN EXCLUSIVE` transaction, so two processes
//! never migrate at once: the second waits for the first, then re-reads the applied set
//! and finds nothing left to do.

pub use agentstore::migration::{Migration, MigrationState, MigrationStatus};
use agentstore::migration::{check_status, latest_of, mismatch, status_of};
use agentstore::time::now;
use agentstore::{Error, Result};
use rusqlite::{Connection, TransactionBehavior};

use crate::sql::{SqlResult, ts};

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
        name: "access_indexes",
        up: include_str!("../migrations/0002_access_indexes.up.sql"),
        down: include_str!("../migrations/0002_access_indexes.down.sql"),
    },
    Migration {
        version: 3,
        name: "fulltext",
        up: include_str!("../migrations/0003_fulltext.up.sql"),
        down: include_str!("../migrations/0003_fulltext.down.sql"),
    },
    Migration {
        version: 4,
        name: "vectors",
        up: include_str!("../migrations/0004_vectors.up.sql"),
        down: include_str!("../migrations/0004_vectors.down.sql"),
    },
    Migration {
        version: 5,
        name: "keyword_log",
        up: include_str!("../migrations/0005_keyword_log.up.sql"),
        down: include_str!("../migrations/0005_keyword_log.down.sql"),
    },
    Migration {
        version: 6,
        name: "api_keys",
        up: include_str!("../migrations/0006_api_keys.up.sql"),
        down: include_str!("../migrations/0006_api_keys.down.sql"),
    },
    Migration {
        version: 7,
        name: "retention",
        up: include_str!("../migrations/0007_retention.up.sql"),
        down: include_str!("../migrations/0007_retention.down.sql"),
    },
    Migration {
        version: 8,
        name: "field_encryption",
        up: include_str!("../migrations/0008_field_encryption.up.sql"),
        down: include_str!("../migrations/0008_field_encryption.down.sql"),
    },
];

/// The latest version this binary knows.
pub fn latest_version() -> i64 {
    latest_of(MIGRATIONS)
}

fn ensure_table(conn: &Connection) -> Result<()> {
    // Migrations call the field-encryption functions (0008); a bare connection gets the
    // keyring-less ones.
    crate::keyring::Keyring::ensure_functions(conn)?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version     INTEGER PRIMARY KEY,
            name        TEXT NOT NULL,
            checksum    TEXT NOT NULL,
            applied_at  INTEGER NOT NULL
        )",
    )
    .db()
}

fn applied(conn: &Connection) -> Result<Vec<(i64, String, String, i64)>> {
    let mut st = conn
        .prepare(
            "SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version",
        )
        .db()?;
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .db()?
        .collect::<rusqlite::Result<Vec<_>>>()
        .db()
}

/// What is applied and what is pending.
pub fn status(conn: &Connection) -> Result<MigrationStatus> {
    ensure_table(conn)?;
    Ok(status_of(&applied(conn)?, MIGRATIONS))
}

/// Refuses a database whose applied migrations differ from the binary's.
pub fn check(conn: &Connection) -> Result<()> {
    check_status(&status(conn)?)
}

/// Applies pending migrations up to `to` (default: latest), all in one transaction.
/// Returns the versions applied.
pub fn up(conn: &mut Connection, to: Option<i64>) -> Result<Vec<i64>> {
    up_by(conn, to, "agentstore")
}

/// [`up`], recorded in the audit log as done by `actor` (once the log exists).
pub fn up_by(conn: &mut Connection, to: Option<i64>, actor: &str) -> Result<Vec<i64>> {
    ensure_table(conn)?;
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
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Exclusive)
        .db()?;
    let st = status(&tx)?;
    mismatch(&st)?;
    let mut done = Vec::new();
    for m in MIGRATIONS {
        if m.version > target || m.version <= st.current {
            continue;
        }
        tx.execute_batch(m.up).map_err(|e| {
            Error::SchemaMismatch(format!("migration {} ({}) failed: {e}", m.version, m.name))
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![m.version, m.name, m.checksum(), ts(&now())],
        )
        .db()?;
        done.push(m.version);
    }
    audit_migration(&tx, actor, "schema.migrate_up", st.current, &done)?;
    tx.commit().db()?;
    Ok(done)
}

/// Rolls back to version `to` (default: one step), in one transaction. Returns the
/// versions rolled back, newest first.
pub fn down(conn: &mut Connection, to: Option<i64>) -> Result<Vec<i64>> {
    down_by(conn, to, "agentstore")
}

/// [`down`], recorded in the audit log as done by `actor` (unless the rollback removed
/// the log itself).
pub fn down_by(conn: &mut Connection, to: Option<i64>, actor: &str) -> Result<Vec<i64>> {
    ensure_table(conn)?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Exclusive)
        .db()?;
    let st = status(&tx)?;
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
        tx.execute_batch(m.down).map_err(|e| {
            Error::SchemaMismatch(format!(
                "rollback of {} ({}) failed: {e}",
                m.version, m.name
            ))
        })?;
        tx.execute(
            "DELETE FROM schema_migrations WHERE version = ?1",
            [m.version],
        )
        .db()?;
        done.push(m.version);
    }
    audit_migration(&tx, actor, "schema.migrate_down", st.current, &done)?;
    tx.commit().db()?;
    Ok(done)
}

/// A store-wide audit entry for a schema change of an existing store, in the
/// migration's own transaction.
fn audit_migration(
    tx: &Connection,
    actor: &str,
    action: &str,
    from: i64,
    versions: &[i64],
) -> Result<()> {
    let has_log: bool = tx
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_log')",
            [],
            |r| r.get(0),
        )
        .db()?;
    // A new store (from version 0) has no history to record, and an import wants its
    // log empty.
    if versions.is_empty() || !has_log || from == 0 {
        return Ok(());
    }
    let to = status(tx)?.current;
    let draft = agentstore::audit::AuditDraft::new(action, "schema", to.to_string())
        .new_values(&serde_json::json!({ "from": from, "to": to, "versions": versions }));
    crate::audit::append_for(tx, None, &agentstore::Scope::new("", actor), draft)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(conn: &Connection) -> Vec<String> {
        let mut st = conn
            .prepare("SELECT type || ' ' || name FROM sqlite_master WHERE name != 'schema_migrations' AND name NOT LIKE 'sqlite_%' ORDER BY 1")
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn up_down_up_round_trip() {
        let mut c = Connection::open_in_memory().unwrap();
        assert!(matches!(
            check(&c),
            Err(Error::SchemaPending { pending: 8, .. })
        ));
        assert_eq!(up(&mut c, Some(1)).unwrap(), vec![1]);
        let v1 = schema(&c);
        assert_eq!(up(&mut c, Some(2)).unwrap(), vec![2]);
        let v2 = schema(&c);
        assert_eq!(up(&mut c, Some(3)).unwrap(), vec![3]);
        let v3 = schema(&c);
        assert_eq!(up(&mut c, Some(4)).unwrap(), vec![4]);
        let v4 = schema(&c);
        assert_eq!(up(&mut c, Some(5)).unwrap(), vec![5]);
        let v5 = schema(&c);
        assert_eq!(up(&mut c, Some(6)).unwrap(), vec![6]);
        let v6 = schema(&c);
        assert_eq!(up(&mut c, Some(7)).unwrap(), vec![7]);
        let v7 = schema(&c);
        assert_eq!(up(&mut c, None).unwrap(), vec![8]);
        check(&c).unwrap();
        let full = schema(&c);
        assert_eq!(down(&mut c, Some(7)).unwrap(), vec![8]);
        assert_eq!(schema(&c), v7);
        assert_eq!(down(&mut c, Some(6)).unwrap(), vec![7]);
        assert_eq!(schema(&c), v6);
        assert_eq!(down(&mut c, Some(5)).unwrap(), vec![6]);
        assert_eq!(schema(&c), v5);
        assert_eq!(down(&mut c, Some(3)).unwrap(), vec![5, 4]);
        assert_eq!(schema(&c), v3);
        up(&mut c, Some(4)).unwrap();
        assert_eq!(schema(&c), v4);
        assert_eq!(down(&mut c, None).unwrap(), vec![4]);
        assert_eq!(schema(&c), v3);
        assert_eq!(down(&mut c, Some(2)).unwrap(), vec![3]);
        assert_eq!(schema(&c), v2);
        assert_eq!(down(&mut c, Some(1)).unwrap(), vec![2]);
        assert_eq!(schema(&c), v1);
        assert_eq!(down(&mut c, Some(0)).unwrap(), vec![1]);
        assert!(schema(&c).is_empty());
        up(&mut c, None).unwrap();
        assert_eq!(schema(&c), full);
        assert!(up(&mut c, Some(99)).is_err());
    }

    /// Rows written before migration 3 are searchable after it, and stay in step with
    /// their table through the triggers.
    #[test]
    fn fulltext_indexes_existing_rows() {
        let mut c = Connection::open_in_memory().unwrap();
        up(&mut c, Some(2)).unwrap();
        c.execute_batch(
            "INSERT INTO tenants (id, name, created_at) VALUES ('t', 't', 0);
             INSERT INTO memories (tenant_id, id, kind, content, tier, importance, confidence,
                 content_hash, valid_from, created_at, updated_at)
             VALUES ('t', 'm1', 'fact', 'The cafés were running late', 'long', 0.5, 1, 'h', 0, 0, 0);
             INSERT INTO sessions (tenant_id, id, kind, status, started_at, created_at, updated_at)
             VALUES ('t', 's1', 'task', 'active', 0, 0, 0);
             INSERT INTO events (tenant_id, id, session_id, seq, kind, content, tool_name, created_at)
             VALUES ('t', 'e1', 's1', 1, 'tool_call', NULL, 'web_search', 0);",
        )
        .unwrap();
        up(&mut c, None).unwrap();
        let hits = |c: &Connection, table: &str, q: &str| -> i64 {
            c.query_row(
                &format!("SELECT COUNT(*) FROM {table} WHERE {table} MATCH ?1"),
                [q],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!(hits(&c, "memories_fts", "cafe AND runs"), 1);
        assert_eq!(hits(&c, "events_fts", "search"), 1);
        c.execute(
            "UPDATE memories SET content = 'walking' WHERE id = 'm1'",
            [],
        )
        .unwrap();
        assert_eq!(hits(&c, "memories_fts", "runs"), 0);
        assert_eq!(hits(&c, "memories_fts", "walk"), 1);
        c.execute("DELETE FROM sessions WHERE id = 's1'", [])
            .unwrap();
        assert_eq!(hits(&c, "events_fts", "search"), 0);
        c.execute_batch(
            "INSERT INTO memories_fts (memories_fts) VALUES ('integrity-check');
                         INSERT INTO events_fts (events_fts) VALUES ('integrity-check');",
        )
        .unwrap();
    }

    #[test]
    fn refuses_edited_or_newer_migrations() {
        let mut c = Connection::open_in_memory().unwrap();
        up(&mut c, None).unwrap();
        c.execute(
            "UPDATE schema_migrations SET checksum = 'x' WHERE version = 1",
            [],
        )
        .unwrap();
        let e = check(&c).unwrap_err();
        assert_eq!(e.code(), "schema_mismatch");
        c.execute(
            "UPDATE schema_migrations SET checksum = ?1 WHERE version = 1",
            [MIGRATIONS[0].checksum()],
        )
        .unwrap();
        c.execute(
            "INSERT INTO schema_migrations VALUES (99, 'future', 'x', 0)",
            [],
        )
        .unwrap();
        assert!(
            check(&c)
                .unwrap_err()
                .to_string()
                .contains("newer agentstore")
        );
    }
}

//! `migrate status|up|down` on a plain connection to the database file (or to the
//! PostgreSQL database of `--database-url`).
//!
//! These cannot go through `agentstore_sqlite::open`: it refuses a database with pending
//! or unknown migrations, which is exactly the state these commands exist to inspect and
//! fix.

use std::time::Duration;

use agentstore::Error;
use agentstore_sqlite::migrate;
use rusqlite::{Connection, OpenFlags};
use serde_json::json;

use crate::config::Config;
use crate::output::{Outcome, Table, or_dash};

/// Same wait as the store's default busy timeout: a running writer finishes its
/// transaction, then the migration proceeds.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

fn connect(cfg: &Config) -> agentstore::Result<Connection> {
    let dir = agentstore_sqlite::DataDir::new(&cfg.data_dir);
    let path = dir.db_path();
    if !path.exists() {
        return Err(Error::Config(format!(
            "no agentstore database at {}; run `agentstore init` first",
            path.display()
        )));
    }
    let db = |e: rusqlite::Error| Error::Database(Box::new(e));
    // No CREATE flag: a mistyped --data-dir must not leave an empty database behind.
    let conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(db)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(db)?;
    Ok(conn)
}

/// [`connect`] for running migrations: with the store's keyring, so that a migration
/// that rebuilds the full-text indexes reads encrypted fields as the store does.
fn connect_to_migrate(cfg: &Config) -> agentstore::Result<Connection> {
    let conn = connect(cfg)?;
    agentstore_sqlite::register_store_functions(
        &conn,
        agentstore_sqlite::DataDir::new(&cfg.data_dir).root(),
        cfg.master_key.clone(),
    )?;
    Ok(conn)
}

fn current_status(cfg: &Config) -> agentstore::Result<migrate::MigrationStatus> {
    match &cfg.database_url {
        Some(url) => agentstore_postgres::migrate::status_at(url),
        None => migrate::status(&connect(cfg)?),
    }
}

fn known(cfg: &Config) -> &'static [migrate::Migration] {
    match &cfg.database_url {
        Some(_) => agentstore_postgres::migrate::MIGRATIONS,
        None => migrate::MIGRATIONS,
    }
}

pub fn status(cfg: &Config) -> anyhow::Result<Outcome> {
    let st = current_status(cfg)?;
    let mut t = Table::new(&["VERSION", "NAME", "STATE", "APPLIED AT"]);
    for m in &st.migrations {
        t.row(vec![
            m.version.to_string(),
            m.name.clone(),
            m.state.clone(),
            or_dash(m.applied_at.as_deref()),
        ]);
    }
    let pending = st
        .migrations
        .iter()
        .filter(|m| m.state == "pending")
        .count();
    let summary = if pending == 0 {
        format!("schema version {} (up to date)", st.current)
    } else {
        format!(
            "schema version {}, {pending} pending (this binary knows up to {}); run `agentstore migrate up`",
            st.current, st.latest
        )
    };
    Outcome::new(&st, format!("{}\n{summary}\n", t.render()))
}

pub fn up(cfg: &Config, to: Option<i64>) -> anyhow::Result<Outcome> {
    let applied = match &cfg.database_url {
        Some(url) => agentstore_postgres::migrate::up_at(url, to, &cfg.actor)?,
        None => migrate::up_by(&mut connect_to_migrate(cfg)?, to, &cfg.actor)?,
    };
    let current = current_status(cfg)?.current;
    let text = if applied.is_empty() {
        format!("nothing to apply; schema version {current}\n")
    } else {
        format!(
            "applied {}; schema version {current}\n",
            list_versions(known(cfg), &applied)
        )
    };
    Outcome::new(json!({ "applied": applied, "current": current }), text)
}

pub fn down(cfg: &Config, to: Option<i64>, force: bool) -> anyhow::Result<Outcome> {
    let current = current_status(cfg)?.current;
    let target = to.unwrap_or((current - 1).max(0));
    if target < 1 && current >= 1 && !force {
        return Err(Error::invalid(
            "to",
            "rolling back migration 1 drops every table and all data; pass --force to do it",
        )
        .into());
    }
    let rolled_back = match &cfg.database_url {
        Some(url) => agentstore_postgres::migrate::down_at(url, Some(target), &cfg.actor)?,
        None => migrate::down_by(&mut connect_to_migrate(cfg)?, Some(target), &cfg.actor)?,
    };
    let current = current_status(cfg)?.current;
    let text = if rolled_back.is_empty() {
        format!("nothing to roll back; schema version {current}\n")
    } else {
        format!(
            "rolled back {}; schema version {current}\n",
            list_versions(known(cfg), &rolled_back)
        )
    };
    Outcome::new(
        json!({ "rolled_back": rolled_back, "current": current }),
        text,
    )
}

fn list_versions(known: &[migrate::Migration], v: &[i64]) -> String {
    let names: Vec<String> = v
        .iter()
        .map(|n| {
            let name = known
                .iter()
                .find(|m| m.version == *n)
                .map_or("?", |m| m.name);
            format!("{n} ({name})")
        })
        .collect();
    names.join(", ")
}

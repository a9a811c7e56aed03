//! Library calls for each resolved command.

mod admin;
mod migrate;
mod read;
mod search;
mod transfer;
mod write;

use agentstore::Store;
use agentstore_sqlite::OpenOptions;

use crate::config::{Command, Config};
use crate::output::Outcome;

/// Runs the command.
pub fn run(cfg: &Config) -> anyhow::Result<Outcome> {
    match &cfg.command {
        Command::Init => admin::init(cfg),
        Command::MigrateStatus => migrate::status(cfg),
        Command::MigrateUp { to } => migrate::up(cfg, *to),
        Command::MigrateDown { to, force } => migrate::down(cfg, *to, *force),
        Command::Import(input) => transfer::import(cfg, input),
        Command::Export { out } => transfer::export(cfg, out.as_deref()),
        Command::Backup { dir } => admin::backup(cfg, dir),
        Command::Restore { dir, force } => admin::restore(cfg, dir, *force),
        Command::Verify { backup } => admin::verify(cfg, backup.as_deref()),
        Command::Stats => admin::stats(cfg),
        Command::Maintenance { vacuum } => admin::maintenance(cfg, *vacuum),
        Command::Tenants => read::tenants(cfg),
        Command::Sessions(q) => read::sessions(cfg, q.clone()),
        Command::Events(q) => read::events(cfg, q.clone()),
        Command::Memories(q) => read::memories(cfg, q.clone()),
        Command::MemoryGet { id } => read::memory_get(cfg, id),
        Command::MemoryKey {
            namespace,
            key,
            as_of,
        } => read::memory_key(cfg, namespace, key, *as_of),
        Command::Audit {
            limit,
            after,
            all_tenants,
        } => read::audit(cfg, *limit, *after, *all_tenants),
        Command::Search(req) => search::search(cfg, (**req).clone()),
        Command::Remember(m) => write::remember(cfg, (**m).clone()),
        Command::SessionCreate(s) => write::session_create(cfg, (**s).clone()),
        Command::EventAppend { session_id, event } => {
            write::event_append(cfg, session_id, (**event).clone())
        }
    }
}

/// Open options for the configured data directory; the store must already exist.
fn options(cfg: &Config) -> OpenOptions {
    OpenOptions::new(&cfg.data_dir).durability(cfg.durability)
}

/// Opens the existing store.
fn open(cfg: &Config) -> anyhow::Result<Store> {
    Ok(agentstore_sqlite::open(&options(cfg))?)
}

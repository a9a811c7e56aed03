//! Library calls for each resolved command.

mod admin;
mod ingest;
mod migrate;
mod privacy;
mod read;
mod search;
mod serve;
mod transfer;
mod write;

use std::sync::Arc;

use agentstore::Store;
use agentstore_sqlite::OpenOptions;

use crate::config::{Command, Config, EmbeddingConfig};
use crate::output::Outcome;

/// Runs the command.
pub fn run(cfg: &Config) -> anyhow::Result<Outcome> {
    match &cfg.command {
        Command::Init => admin::init(cfg),
        Command::Serve(s) => serve::serve(cfg, s),
        Command::KeysCreate {
            scopes,
            name,
            expires_at,
        } => serve::keys_create(cfg, scopes, name, *expires_at),
        Command::KeysList => serve::keys_list(cfg),
        Command::Mcp => serve::mcp(cfg),
        Command::KeysRevoke { id } => serve::keys_revoke(cfg, id),
        Command::KeysGenerateMaster => serve::keys_generate_master(),
        Command::KeysRotateMaster { new_key_file } => serve::keys_rotate_master(cfg, new_key_file),
        Command::KeysBackupKeyring { out } => serve::keys_backup_keyring(cfg, out),
        Command::KeysRestoreKeyring { from } => serve::keys_restore_keyring(cfg, from),
        Command::MigrateStatus => migrate::status(cfg),
        Command::MigrateUp { to } => migrate::up(cfg, *to),
        Command::MigrateDown { to, force } => migrate::down(cfg, *to, *force),
        Command::Copy { from, to } => transfer::copy(cfg, from, to),
        Command::Import(input) => transfer::import(cfg, input),
        Command::Export { out } => transfer::export(cfg, out.as_deref()),
        Command::Backup { dir } => admin::backup(cfg, dir),
        Command::Restore { dir, force } => admin::restore(cfg, dir, *force),
        Command::Verify { backup } => admin::verify(cfg, backup.as_deref()),
        Command::Stats => admin::stats(cfg),
        Command::ExportSubject { id, out } => privacy::export_subject(cfg, id, out.as_deref()),
        Command::EraseSubject { id } => privacy::erase_subject(cfg, id),
        Command::Retention(change) => privacy::retention(cfg, change.as_ref()),
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
        Command::Reembed { keep_old, batch } => search::reembed(cfg, *keep_old, *batch),
        Command::Remember(m) => write::remember(cfg, (**m).clone()),
        Command::Ingest(req) => ingest::ingest(cfg, req),
        Command::SessionCreate(s) => write::session_create(cfg, (**s).clone()),
        Command::EventAppend { session_id, event } => {
            write::event_append(cfg, session_id, (**event).clone())
        }
    }
}

/// Open options for the configured data directory; the store must already exist.
fn options(cfg: &Config) -> OpenOptions {
    let mut o = OpenOptions::new(&cfg.data_dir).durability(cfg.durability);
    o.master_key = cfg.master_key.clone();
    if let Some(mode) = cfg.keyword_index {
        o.keyword_index = mode;
    }
    o
}

/// Opens the configured store: the PostgreSQL database when a URL is given, else the
/// data directory. With `create`, a store that does not exist yet is made (schema and
/// subject secret); without, a missing store is an error.
pub(crate) fn open_store(cfg: &Config, create: bool) -> agentstore::Result<Store> {
    match &cfg.database_url {
        Some(url) => {
            if cfg.master_key.is_some() {
                return Err(agentstore::Error::Config(
                    "field encryption (a master key) needs the SQLite backend: the PostgreSQL backend has no keyring".into(),
                ));
            }
            let o = agentstore_postgres::PgOptions::new(url.clone());
            agentstore_postgres::open(&if create { o.create() } else { o })
        }
        None => agentstore_sqlite::open(&if create {
            options(cfg).create()
        } else {
            options(cfg)
        }),
    }
}

/// Opens the existing store, with the configured embedder.
fn open(cfg: &Config) -> anyhow::Result<Store> {
    let store = open_store(cfg, false)?;
    Ok(with_embedder(cfg, store)?)
}

/// Embeddings computed in one process are cached by model and text hash: re-ingesting
/// or re-asking the same text costs one hash, not a model run.
const EMBEDDING_CACHE_ENTRIES: u64 = 10_000;

/// The store with the embedder of `cfg`, if one is configured. Loading the model reads
/// its files only; nothing is downloaded.
fn with_embedder(cfg: &Config, store: Store) -> agentstore::Result<Store> {
    use agentstore_embed::{BertEmbedder, Cached, OpenAiCompatible, OpenAiOptions};
    let store = store.embed_events(cfg.embed_events);
    let embedder: Arc<dyn agentstore::Embedder> = match &cfg.embedding {
        None => return Ok(store),
        Some(EmbeddingConfig::Local(dir)) => Arc::new(Cached::new(
            BertEmbedder::load(dir)?,
            EMBEDDING_CACHE_ENTRIES,
        )),
        Some(EmbeddingConfig::Endpoint {
            url,
            model,
            dimension,
        }) => {
            let mut o = OpenAiOptions::new(url.clone(), model.clone(), *dimension);
            o.api_key = std::env::var("AGENTSTORE_EMBEDDING_API_KEY").ok();
            Arc::new(Cached::new(
                OpenAiCompatible::new(o)?,
                EMBEDDING_CACHE_ENTRIES,
            ))
        }
    };
    Ok(store.with_embedder(embedder))
}

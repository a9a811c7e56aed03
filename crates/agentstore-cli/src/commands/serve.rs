//! serve, keys.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Arc;

use agentstore::{KeyScope, Timestamp};
use agentstore_server::{Server, ServerOptions};
use serde_json::json;

use super::admin::ensure_tenant;
use super::{open, options};
use crate::config::Config;
use crate::output::{Outcome, Table, time};
use crate::serve_config::{LogFormat, ServeSettings};

pub fn serve(cfg: &Config, s: &ServeSettings) -> anyhow::Result<Outcome> {
    init_logging(s)?;
    let store = Arc::new(open(cfg)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("agentstore-http")
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(s.addr).await?;
        let local = listener.local_addr()?;
        // The first line of stdout names the bound address (the port, when 0 was asked
        // for), so scripts and tests can find the server.
        let mut out = std::io::stdout().lock();
        writeln!(out, "agentstore listening on http://{local}")?;
        out.flush()?;
        drop(out);
        tracing::info!(addr = %local, preset = %s.preset, data_dir = %cfg.data_dir.display(), "serving");
        let server = Server::new(
            store,
            &ServerOptions {
                max_body_bytes: s.max_body_bytes,
                rate_per_second: s.rate_per_second,
                rate_burst: s.rate_burst,
                mcp_allowed_hosts: s.mcp_allowed_hosts.clone(),
                sweep_interval: (s.sweep_interval_secs > 0)
                    .then(|| std::time::Duration::from_secs(s.sweep_interval_secs)),
                redis_url: s.redis_url.clone(),
            },
        );
        server
            .serve(listener, agentstore_server::shutdown_signal())
            .await?;
        anyhow::Ok(())
    })?;
    tracing::info!("stopped");
    Outcome::new(json!({"stopped": true}), "server stopped\n".into())
}

pub fn mcp(cfg: &Config) -> anyhow::Result<Outcome> {
    // Quiet: a desktop agent shows stderr to its user.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .with_writer(std::io::stderr)
        .try_init();
    let store = super::open_store(cfg, true)?;
    ensure_tenant(&store, &cfg.scope())?;
    let store = Arc::new(super::with_embedder(cfg, store)?);
    let scope = cfg.scope();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(agentstore_server::mcp::serve_stdio(store, scope))?;
    // stdout belongs to the protocol: nothing more is printed there.
    Ok(Outcome::streamed())
}

fn init_logging(s: &ServeSettings) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&s.log_level)
        .map_err(|e| agentstore::Error::invalid("log.level", format!("'{}': {e}", s.log_level)))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second server in the same process (tests) keeps the first subscriber.
    let _ = match s.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    Ok(())
}

pub fn keys_create(
    cfg: &Config,
    scopes: &[KeyScope],
    name: &str,
    expires_at: Option<Timestamp>,
) -> anyhow::Result<Outcome> {
    let store = super::open_store(cfg, false)?;
    let scope = cfg.scope();
    ensure_tenant(&store, &scope)?;
    let created = store.create_api_key(&scope, name, scopes, expires_at)?;
    let k = &created.key;
    let text = format!(
        "created API key {} for tenant {} (scopes: {})\n\n    {}\n\nThe secret is shown only now; the store keeps a hash of it.\n",
        k.id,
        k.tenant_id,
        scope_list(&k.scopes),
        created.secret
    );
    Outcome::new(&created, text)
}

fn scope_list(scopes: &[KeyScope]) -> String {
    scopes
        .iter()
        .map(KeyScope::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

pub fn keys_list(cfg: &Config) -> anyhow::Result<Outcome> {
    let store = super::open_store(cfg, false)?;
    let keys = store.list_api_keys(&cfg.scope())?;
    let mut t = Table::new(&["id", "name", "prefix", "scopes", "created", "state"]);
    for k in &keys {
        let state = match (&k.revoked_at, &k.expires_at) {
            (Some(r), _) => format!("revoked {}", time(r)),
            (None, Some(e)) if *e <= agentstore::time::now() => format!("expired {}", time(e)),
            (None, Some(e)) => format!("expires {}", time(e)),
            (None, None) => "active".into(),
        };
        t.row(vec![
            k.id.clone(),
            k.name.clone(),
            k.prefix.clone(),
            scope_list(&k.scopes),
            time(&k.created_at),
            state,
        ]);
    }
    let mut text = t.render();
    let _ = writeln!(text, "{} key(s)", keys.len());
    Outcome::new(json!({ "items": keys }), text)
}

pub fn keys_generate_master() -> anyhow::Result<Outcome> {
    let key = agentstore_sqlite::MasterKey::generate();
    Outcome::new(
        json!({ "master_key": key.to_hex(), "id": key.id() }),
        format!("{}\n", key.to_hex()),
    )
}

pub fn keys_rotate_master(cfg: &Config, new_key_file: &std::path::Path) -> anyhow::Result<Outcome> {
    let text = fs_err::read_to_string(new_key_file)?;
    let new = agentstore_sqlite::MasterKey::from_hex(&text).map_err(|_| {
        agentstore::Error::invalid("new-key-file", "must hold 64 hex digits (32 bytes)")
    })?;
    let backend = agentstore_sqlite::SqliteBackend::open(&options(cfg))?;
    let old = backend.master_key_id().ok_or_else(|| {
        agentstore::Error::Config(
            "field encryption is off: give the current master key (--master-key-file or \
             AGENTSTORE_MASTER_KEY) to rotate it"
                .into(),
        )
    })?;
    let n = backend.rotate_master_key(new.clone())?;
    let store = agentstore_sqlite::open(&options_with_key(cfg, new.clone()))?;
    let values = json!({ "from": old, "to": new.id(), "data_keys": n });
    store.audit_action(
        &cfg.scope(),
        "keyring.rotate_master",
        "keyring",
        new.id(),
        &values,
    )?;
    Outcome::new(
        values,
        format!(
            "re-wrapped {n} data key(s): master key {old} -> {}\n",
            new.id()
        ),
    )
}

pub fn keys_backup_keyring(cfg: &Config, out: &std::path::Path) -> anyhow::Result<Outcome> {
    let backend = agentstore_sqlite::SqliteBackend::open(&options(cfg))?;
    let n = backend.backup_keyring(out)?;
    let master = backend.master_key_id().unwrap_or_default();
    drop(backend);
    let store = agentstore_sqlite::open(&options(cfg))?;
    // The path is the operator's, not personal data; the audit says where a copy went.
    let values =
        json!({ "out": out.display().to_string(), "data_keys": n, "master_key_id": master });
    store.audit_action(&cfg.scope(), "keyring.backup", "keyring", &master, &values)?;
    Outcome::new(
        values,
        format!(
            "wrote {} ({n} data key(s), wrapped by master key {master})\n",
            out.display()
        ),
    )
}

pub fn keys_restore_keyring(cfg: &Config, from: &std::path::Path) -> anyhow::Result<Outcome> {
    let n = agentstore_sqlite::restore_keyring(&options(cfg), from)?;
    // Opening checks the restored keyring against the master key. The copy may be older
    // than an erasure: the keys of subjects that no longer exist go at once.
    let backend = agentstore_sqlite::SqliteBackend::open(&options(cfg))?;
    let destroyed = backend.destroy_orphan_keys()?;
    drop(backend);
    let store = agentstore_sqlite::open(&options(cfg))?;
    let values = json!({
        "from": from.display().to_string(),
        "data_keys": n,
        "destroyed_without_subject": destroyed,
    });
    store.audit_action(
        &cfg.scope(),
        "keyring.restore",
        "keyring",
        "keys.db",
        &values,
    )?;
    Outcome::new(
        values,
        format!(
            "restored {} data key(s) from {}; destroyed {destroyed} whose subject was erased since\n",
            n - destroyed,
            from.display()
        ),
    )
}

fn options_with_key(
    cfg: &Config,
    key: agentstore_sqlite::MasterKey,
) -> agentstore_sqlite::OpenOptions {
    let mut o = options(cfg);
    o.master_key = Some(agentstore_sqlite::MasterKeySource::Key(key));
    o
}

pub fn keys_revoke(cfg: &Config, id: &str) -> anyhow::Result<Outcome> {
    let store = super::open_store(cfg, false)?;
    store.revoke_api_key(&cfg.scope(), id)?;
    // Servers sharing a Redis cache keys for up to 10 s while they listen for
    // revocations: tell them now, as a revocation through a server does. Best effort: the
    // revocation is stored, and the cache bound still holds if Redis is away.
    let mut note = String::new();
    if let Ok(url) = std::env::var("AGENTSTORE_REDIS_URL")
        && !url.trim().is_empty()
        && let Err(e) = agentstore_server::shared::announce_key_revoked(&url, id)
    {
        note =
            format!(" (servers not told through Redis: {e}; they stop accepting it within 10 s)");
    }
    Outcome::new(
        json!({ "revoked": id }),
        format!("revoked API key {id}{note}\n"),
    )
}

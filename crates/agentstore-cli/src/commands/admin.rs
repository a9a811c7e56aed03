//! init, backup, restore, verify, stats, maintenance.

use std::fmt::Write as _;
use std::path::Path;

use agentstore::backend::{BackupManifest, VerifyReport};
use agentstore::{Error, Scope, Store, Tenant, WriteOp};
use serde_json::json;

use super::{open, options};
use crate::config::Config;
use crate::output::{Outcome, Table, human_bytes, time};

pub fn init(cfg: &Config) -> anyhow::Result<Outcome> {
    if cfg.database_url.is_some() {
        return init_postgres(cfg);
    }
    let store = agentstore_sqlite::open(&options(cfg).create())?;
    let (tenant, created) = ensure_tenant(&store, &cfg.scope())?;
    let dir = fs_err::canonicalize(&cfg.data_dir)?;
    let db = agentstore_sqlite::DataDir::new(&dir).db_path();
    let version = agentstore_sqlite::migrate::latest_version();
    let text = format!(
        "initialised agentstore in {}\n  database  {} (schema version {version})\n  tenant    {} ({})\n",
        dir.display(),
        db.display(),
        tenant.id,
        if created {
            "created"
        } else {
            "already existed"
        },
    );
    Outcome::new(
        json!({
            "data_dir": dir,
            "database": db,
            "schema_version": version,
            "tenant": tenant,
            "tenant_created": created,
        }),
        text,
    )
}

/// `init` of a store in PostgreSQL: the schema (migrations run once, whoever starts
/// first), the subject secret and the tenant.
fn init_postgres(cfg: &Config) -> anyhow::Result<Outcome> {
    let store = super::open_store(cfg, true)?;
    let (tenant, created) = ensure_tenant(&store, &cfg.scope())?;
    let version = agentstore_postgres::migrate::latest_version();
    let text = format!(
        "initialised agentstore in PostgreSQL (schema version {version})\n  tenant    {} ({})\n",
        tenant.id,
        if created {
            "created"
        } else {
            "already existed"
        },
    );
    Outcome::new(
        json!({
            "backend": "postgres",
            "schema_version": version,
            "tenant": tenant,
            "tenant_created": created,
        }),
        text,
    )
}

/// Creates the scope's tenant unless it exists; true when created.
///
/// `Store::ensure_tenant` writes with an empty request context; writing the op here
/// records `init` in the audit entry like every other CLI write.
pub(super) fn ensure_tenant(store: &Store, scope: &Scope) -> agentstore::Result<(Tenant, bool)> {
    if let Some(t) = store.backend().get_tenant(&scope.tenant)? {
        return Ok((t, false));
    }
    let tenant = Tenant {
        id: scope.tenant.clone(),
        name: scope.tenant.clone(),
        created_at: agentstore::time::now(),
    };
    match store.write(scope, vec![WriteOp::CreateTenant(tenant.clone())]) {
        Ok(_) => Ok((tenant, true)),
        // Another process created it between our read and our write.
        Err(Error::AlreadyExists { .. }) => Ok((store.get_tenant(&scope.tenant)?, false)),
        Err(e) => Err(e),
    }
}

/// What a message calls the configured store.
fn store_name(cfg: &Config) -> String {
    match cfg.database_url {
        Some(_) => "the PostgreSQL database".into(),
        None => cfg.data_dir.display().to_string(),
    }
}

pub fn backup(cfg: &Config, dir: &Path) -> anyhow::Result<Outcome> {
    let manifest = open(cfg)?.backup(dir)?;
    let text = format!(
        "backup of {} written to {}\n{}",
        store_name(cfg),
        dir.display(),
        describe_manifest(&manifest)
    );
    Outcome::new(&manifest, text)
}

pub fn restore(cfg: &Config, dir: &Path, force: bool) -> anyhow::Result<Outcome> {
    if cfg.database_url.is_some() {
        return Err(Error::invalid(
            "database-url",
            "restore writes a data directory; a PostgreSQL backup (store.jsonl) goes into an empty database with `agentstore --database-url URL import DIR/store.jsonl`",
        )
        .into());
    }
    let manifest = agentstore_sqlite::restore(dir, &cfg.data_dir, force)?;
    // The entry goes into the restored store's log, after its own history. A backup of
    // an older schema waits for `migrate up` before anything can be written to it.
    match agentstore_sqlite::open(&options(cfg)) {
        Ok(store) => store.audit_action(
            &cfg.scope(),
            "store.restore",
            "store",
            "",
            &json!({ "backup": dir, "created_at": manifest.created_at, "schema_version": manifest.schema_version }),
        )?,
        Err(agentstore::Error::SchemaPending { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let text = format!(
        "restored {} into {}\n{}",
        dir.display(),
        cfg.data_dir.display(),
        describe_manifest(&manifest)
    );
    Outcome::new(
        json!({ "data_dir": cfg.data_dir, "backup": dir, "manifest": manifest }),
        text,
    )
}

fn describe_manifest(m: &BackupManifest) -> String {
    let mut t = Table::new(&["FILE", "SIZE", "SHA-256"]);
    for f in &m.files {
        t.row(vec![f.path.clone(), human_bytes(f.bytes), f.sha256.clone()]);
    }
    format!(
        "  taken {} by agentstore {} ({} backend, schema version {})\n\n{}",
        time(&m.created_at),
        m.agentstore_version,
        m.backend,
        m.schema_version,
        t.render()
    )
}

pub fn verify(cfg: &Config, backup: Option<&Path>) -> anyhow::Result<Outcome> {
    let (target, path, report) = match backup {
        Some(dir) => ("backup", dir, agentstore_sqlite::verify_backup(dir)?),
        None => ("store", cfg.data_dir.as_path(), open(cfg)?.verify()?),
    };
    let name = match backup {
        Some(dir) => dir.display().to_string(),
        None => store_name(cfg),
    };
    let mut out = Outcome::new(
        json!({ "target": target, "path": path, "ok": report.ok(), "checks": report.checks }),
        format!("verifying {target} {name}\n{}", describe_checks(&report)),
    )?;
    out.ok = report.ok();
    Ok(out)
}

fn describe_checks(r: &VerifyReport) -> String {
    let width = r.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let mut s = String::new();
    for c in &r.checks {
        let mark = if c.ok { '✓' } else { '✗' };
        let _ = writeln!(s, "  {mark} {:width$}  {}", c.name, c.detail);
    }
    let failed = r.checks.iter().filter(|c| !c.ok).count();
    if failed == 0 {
        let _ = writeln!(s, "all {} checks passed", r.checks.len());
    } else {
        let _ = writeln!(s, "{failed} of {} checks failed", r.checks.len());
    }
    s
}

pub fn stats(cfg: &Config) -> anyhow::Result<Outcome> {
    let stats = open(cfg)?.stats()?;
    let mut t = Table::new(&["ENTITY", "ROWS", "SIZE"]);
    for e in &stats.entities {
        t.row(vec![
            e.entity.clone(),
            e.rows.to_string(),
            human_bytes(e.bytes),
        ]);
    }
    let mut files = Table::new(&["FILE", "SIZE"]);
    for (name, bytes) in &stats.files {
        files.row(vec![name.clone(), human_bytes(*bytes)]);
    }
    let total: u64 = stats.files.values().sum();
    files.row(vec!["total".into(), human_bytes(total)]);
    let text = format!(
        "{}\n{}\nschema version {}\n",
        t.render(),
        files.render(),
        stats.schema_version
    );
    Outcome::new(&stats, text)
}

pub fn maintenance(cfg: &Config, vacuum: bool) -> anyhow::Result<Outcome> {
    let store = open(cfg)?;
    let r = store.maintenance(vacuum)?;
    store.audit_action(
        &cfg.scope(),
        "store.maintenance",
        "store",
        "",
        &json!({ "vacuum": vacuum, "steps": r.steps, "swept": r.swept }),
    )?;
    let w = &r.swept;
    let mut text = String::from("maintenance done\n");
    for step in &r.steps {
        let _ = writeln!(text, "  - {step}");
    }
    let _ = writeln!(
        text,
        "swept {} sessions ({} events), {} memories, {} kv entries; released {} locks",
        w.sessions, w.events, w.memories, w.kv, w.locks
    );
    let _ = writeln!(
        text,
        "size {} before, {} after",
        human_bytes(r.bytes_before),
        human_bytes(r.bytes_after)
    );
    Outcome::new(&r, text)
}

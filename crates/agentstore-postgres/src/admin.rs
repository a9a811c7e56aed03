//! Store-wide operations of the PostgreSQL backend: the subject secret, stats, verify,
//! maintenance and backup.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use agentstore::audit::ChainVerifier;
use agentstore::backend::*;
use agentstore::codec::sha256_hex;
use agentstore::time::now;
use agentstore::{Error, Result, Scope};
use postgres::GenericClient;

use crate::sql::SqlResult;
use crate::{PgBackend, audit, infra, migrate, tenants};

/// The tables `stats` counts, as the SQLite backend names them.
const ENTITY_TABLES: &[&str] = &[
    "tenants",
    "subjects",
    "agents",
    "sessions",
    "events",
    "memories",
    "documents",
    "chunks",
    "checkpoints",
    "checkpoint_writes",
    "usage_records",
    "metric_points",
    "audit_log",
    "kv_entries",
    "locks",
    "vectors",
];

/// How many problems a failed check lists before summarising the rest.
const MAX_LISTED: usize = 5;

/// The file of a backup: every record as JSON Lines, in export order.
pub const BACKUP_FILE: &str = "store.jsonl";

/// Makes the store's subject secret once: 32 bytes from PostgreSQL's strong random
/// source (`gen_random_uuid` draws from it; two UUIDs hashed give 244 random bits), so
/// every server of the store hashes external ids alike without sharing a file.
pub(crate) fn ensure_subject_secret(c: &mut impl GenericClient) -> Result<()> {
    c.execute(
        "INSERT INTO store_meta (key, value)
         VALUES ('subject_secret',
                 encode(sha256(convert_to(gen_random_uuid()::text || gen_random_uuid()::text, 'UTF8')), 'hex'))
         ON CONFLICT (key) DO NOTHING",
        &[],
    )
    .db()?;
    Ok(())
}

/// The subject secret (see [`ensure_subject_secret`]).
pub(crate) fn subject_secret(c: &mut impl GenericClient) -> Result<Vec<u8>> {
    let row = c
        .query_opt(
            "SELECT value FROM store_meta WHERE key = 'subject_secret'",
            &[],
        )
        .db()?
        .ok_or_else(|| {
            Error::Config(
                "the database has the agentstore schema but no subject secret: open it once with create".into(),
            )
        })?;
    let hex_text: String = row.get(0);
    hex::decode(hex_text.trim())
        .map_err(|_| Error::Corrupt("store_meta.subject_secret is not hex".into()))
}

// ------------------------------------------------------------------------- stats

/// Rows and on-disk bytes (table, indexes and TOAST) per entity, and the database size.
pub(crate) fn stats(c: &mut impl GenericClient) -> Result<Stats> {
    let mut entities = Vec::with_capacity(ENTITY_TABLES.len());
    for table in ENTITY_TABLES {
        let row = c
            .query_one(
                &format!("SELECT COUNT(*), pg_total_relation_size('{table}') FROM {table}"),
                &[],
            )
            .db()?;
        entities.push(EntityStats {
            entity: (*table).to_owned(),
            rows: row.get::<_, i64>(0) as u64,
            bytes: row.get::<_, i64>(1) as u64,
        });
    }
    let db_bytes: i64 = c
        .query_one("SELECT pg_database_size(current_database())", &[])
        .db()?
        .get(0);
    let mut files = BTreeMap::new();
    files.insert("database".to_owned(), db_bytes as u64);
    Ok(Stats {
        entities,
        files,
        schema_version: migrate::status(c)?.current,
    })
}

// ------------------------------------------------------------------------- verify

/// Runs every check on one snapshot (the caller's REPEATABLE READ transaction). A failed
/// check is reported, not returned as an error: the caller wants to see all of them.
pub(crate) fn verify(c: &mut impl GenericClient) -> Result<VerifyReport> {
    let mut r = VerifyReport::default();
    check_schema(c, &mut r)?;
    // PostgreSQL enforces foreign keys on every write; nothing can be left dangling
    // short of disabling triggers, so there is no after-the-fact check to run.
    r.push(
        "foreign_keys",
        true,
        "enforced by PostgreSQL on every write",
    );
    let checksums: String = c.query_one("SHOW data_checksums", &[]).db()?.get(0);
    r.push(
        "integrity",
        true,
        format!("pages are checked by PostgreSQL itself (data_checksums = {checksums})"),
    );
    check_audit_chain(c, &mut r)?;
    check_event_seq(c, &mut r)?;
    check_vectors(c, &mut r)?;
    Ok(r)
}

fn check_schema(c: &mut impl GenericClient, r: &mut VerifyReport) -> Result<()> {
    let st = migrate::status(c)?;
    let problems: Vec<String> = st
        .migrations
        .iter()
        .filter(|m| m.state != "applied")
        .map(|m| format!("migration {} ({}) is {}", m.version, m.name, m.state))
        .collect();
    if problems.is_empty() {
        r.push(
            "schema",
            true,
            format!(
                "version {} of {}; applied migrations match this binary's checksums",
                st.current, st.latest
            ),
        );
    } else {
        r.push("schema", false, problems.join("; "));
    }
    Ok(())
}

/// Walks the whole hash chain; see the SQLite backend's check for what it can and
/// cannot reveal.
fn check_audit_chain(c: &mut impl GenericClient, r: &mut VerifyReport) -> Result<()> {
    let rows = c
        .query(
            &format!("SELECT {} FROM audit_log ORDER BY seq", audit::COLUMNS),
            &[],
        )
        .db()?;
    let mut v = ChainVerifier::new();
    for row in &rows {
        let seq: i64 = row.get(0);
        let entry = match audit::from_row(row) {
            Ok(e) => e,
            Err(e) => {
                r.push(
                    "audit_chain",
                    false,
                    format!("audit entry seq {seq} cannot be read: {e}"),
                );
                return Ok(());
            }
        };
        if let Err(msg) = v.check(&entry) {
            r.push("audit_chain", false, msg);
            return Ok(());
        }
    }
    r.push(
        "audit_chain",
        true,
        format!("{} entries chained from the genesis hash", v.checked),
    );
    Ok(())
}

fn check_event_seq(c: &mut impl GenericClient, r: &mut VerifyReport) -> Result<()> {
    let rows = c
        .query(
            "SELECT tenant_id, session_id, COUNT(*), COUNT(DISTINCT seq), MIN(seq), MAX(seq)
             FROM events GROUP BY tenant_id, session_id
             HAVING MIN(seq) != 1 OR MAX(seq) != COUNT(*) OR COUNT(DISTINCT seq) != COUNT(*)
             ORDER BY tenant_id, session_id",
            &[],
        )
        .db()?;
    if rows.is_empty() {
        r.push(
            "event_seq",
            true,
            "every session's events are numbered 1..n",
        );
        return Ok(());
    }
    let mut bad: Vec<String> = rows
        .iter()
        .take(MAX_LISTED)
        .map(|row| {
            let (tenant, session): (String, String) = (row.get(0), row.get(1));
            let (n, distinct, lo, hi): (i64, i64, i64, i64) =
                (row.get(2), row.get(3), row.get(4), row.get(5));
            format!(
                "session '{session}' of tenant '{tenant}' has {n} events ({distinct} distinct seqs) numbered {lo} to {hi}"
            )
        })
        .collect();
    if rows.len() > bad.len() {
        bad.push(format!("and {} more session(s)", rows.len() - bad.len()));
    }
    r.push("event_seq", false, bad.join("; "));
    Ok(())
}

fn check_vectors(c: &mut impl GenericClient, r: &mut VerifyReport) -> Result<()> {
    let bad_len: i64 = c
        .query_one(
            "SELECT COUNT(*) FROM vectors v JOIN vector_models m ON m.model = v.model
             WHERE vector_dims(v.embedding) != m.dimension",
            &[],
        )
        .db()?
        .get(0);
    let mut orphans = 0i64;
    for (target, table) in [
        ("memory", "memories"),
        ("chunk", "chunks"),
        ("event", "events"),
    ] {
        let n: i64 = c
            .query_one(
                &format!(
                    "SELECT COUNT(*) FROM vectors v WHERE v.target = $1 AND NOT EXISTS
                       (SELECT 1 FROM {table} r WHERE r.rid = v.record_rid AND r.tenant_id = v.tenant_id)"
                ),
                &[&target],
            )
            .db()?
            .get(0);
        orphans += n;
    }
    r.push(
        "vectors",
        bad_len == 0 && orphans == 0,
        if bad_len == 0 && orphans == 0 {
            "every vector has its model's dimension and a record".to_owned()
        } else {
            format!("{bad_len} vector(s) of the wrong length, {orphans} without their record")
        },
    );
    Ok(())
}

// ------------------------------------------------------------------------- maintenance

/// Sweeps expired records tenant by tenant (one short write transaction each, so live
/// writers wait for short sweeps rather than one long one), then VACUUM ANALYZE: dead
/// rows of the sweep are reclaimed and planner statistics refreshed. `opts.vacuum`
/// asks for VACUUM FULL, which rewrites the tables and returns space to the file system
/// but locks each table while it runs.
pub(crate) fn maintenance(b: &PgBackend, opts: &MaintenanceOptions) -> Result<MaintenanceReport> {
    let size = |b: &PgBackend| -> Result<u64> {
        let n: i64 = b
            .conn()?
            .query_one("SELECT pg_database_size(current_database())", &[])
            .db()?
            .get(0);
        Ok(n as u64)
    };
    let mut rep = MaintenanceReport {
        bytes_before: size(b)?,
        ..Default::default()
    };
    if opts.sweep {
        let tenants = tenants::list_tenants(&mut *b.conn()?)?;
        for t in &tenants {
            let scope = Scope::new(t.id.clone(), "maintenance");
            if let WriteResult::Swept(s) =
                b.write_tx(|tx| infra::sweep_expired(tx, &scope, opts.now))?
            {
                rep.swept.add(&s);
            }
        }
        let s = &rep.swept;
        rep.steps.push(format!(
            "sweep: {} tenant(s); removed {} session(s) with {} event(s), {} memories, {} document(s), {} usage record(s), {} metric point(s), {} key(s); released {} lock(s)",
            tenants.len(),
            s.sessions,
            s.events,
            s.memories,
            s.documents,
            s.usage,
            s.metric_points,
            s.kv,
            s.locks
        ));
    }
    let mut c = b.conn()?;
    if opts.vacuum {
        c.batch_execute("VACUUM (FULL, ANALYZE)").db()?;
        rep.steps
            .push("vacuum full: tables rewritten, space returned, statistics refreshed".into());
    } else {
        c.batch_execute("VACUUM (ANALYZE)").db()?;
        rep.steps
            .push("vacuum: dead rows reclaimed, planner statistics refreshed".into());
    }
    drop(c);
    rep.bytes_after = size(b)?;
    Ok(rep)
}

// ------------------------------------------------------------------------- backup

/// An online, consistent copy: every record exported from one snapshot into
/// `store.jsonl` in the empty directory `out`, with a manifest. A PostgreSQL server is
/// backed up by its own tools too (pg_dump, base backups); this copy is agentstore's own
/// format, which `agentstore import` loads into either backend.
pub(crate) fn backup(b: &PgBackend, out: &Path) -> Result<BackupManifest> {
    let io = |e: std::io::Error| Error::Io {
        path: out.to_path_buf(),
        source: e,
    };
    if out.exists() && std::fs::read_dir(out).map_err(io)?.next().is_some() {
        return Err(Error::invalid(
            "backup_dir",
            format!("{} is not empty", out.display()),
        ));
    }
    std::fs::create_dir_all(out).map_err(io)?;
    let path = out.join(BACKUP_FILE);
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).map_err(io)?);
    let mut schema_version = 0;
    b.snapshot(|c| {
        schema_version = migrate::status(c)?.current;
        crate::transfer::export(c, &mut |rec: Record| {
            serde_json::to_writer(&mut file, &rec)
                .map_err(|e| Error::Corrupt(format!("record does not serialise: {e}")))?;
            file.write_all(b"\n").map_err(io)
        })
    })?;
    let f = file.into_inner().map_err(|e| io(e.into_error()))?;
    f.sync_all().map_err(io)?;
    drop(f);
    let bytes = std::fs::read(&path).map_err(io)?;
    let manifest = BackupManifest {
        format: 1,
        backend: "postgres".into(),
        schema_version,
        created_at: now(),
        agentstore_version: env!("CARGO_PKG_VERSION").into(),
        files: vec![ManifestFile {
            path: BACKUP_FILE.into(),
            bytes: bytes.len() as u64,
            sha256: sha256_hex(&bytes),
        }],
    };
    let text = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| Error::Corrupt(format!("manifest does not serialise: {e}")))?;
    std::fs::write(out.join("manifest.json"), text).map_err(io)?;
    Ok(manifest)
}

//! Stats, verify, maintenance, backup and restore of the data directory.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use agentstore::audit::ChainVerifier;
use agentstore::backend::{
    BackupManifest, EntityStats, MaintenanceOptions, MaintenanceReport, ManifestFile, Stats,
    VerifyReport, WriteResult,
};
use agentstore::{Error, Result, Scope};
use rusqlite::{Connection, OpenFlags};
use sha2::{Digest, Sha256};

use crate::conn::{Connections, DB_FILE, DataDir, INDEX_DIR, OpenOptions, SECRET_FILE};
use crate::sql::SqlResult;
use crate::{audit, infra, migrate, tenants};

/// Name of the manifest inside a backup directory.
const MANIFEST_FILE: &str = "manifest.json";
/// Manifest format this binary writes and reads.
const MANIFEST_FORMAT: u32 = 1;

/// Tables holding records, in the order stats lists them.
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

// ------------------------------------------------------------------------- stats

/// Row counts, on-disk bytes per table and file sizes.
///
/// Bytes come from the `dbstat` virtual table, which the bundled SQLite is compiled with
/// (libsqlite3-sys sets `SQLITE_ENABLE_DBSTAT_VTAB`). It walks every page of the file, so
/// `stats` costs a full read of the database; should a build without it ever be used, the
/// query fails and every table reports 0 bytes rather than failing the whole command.
pub(crate) fn stats(c: &Connection, dir: &DataDir) -> Result<Stats> {
    let bytes = table_bytes(c).unwrap_or_default();
    let mut entities = Vec::with_capacity(ENTITY_TABLES.len());
    for table in ENTITY_TABLES {
        let rows: i64 = c
            .prepare_cached(&format!("SELECT COUNT(*) FROM {table}"))
            .db()?
            .query_row([], |r| r.get(0))
            .db()?;
        entities.push(EntityStats {
            entity: (*table).to_owned(),
            rows: rows as u64,
            bytes: bytes.get(*table).copied().unwrap_or(0),
        });
    }
    let db = dir.db_path();
    let mut files = BTreeMap::new();
    files.insert(DB_FILE.to_owned(), file_len(&db));
    files.insert(format!("{DB_FILE}-wal"), file_len(&suffixed(&db, "-wal")));
    files.insert(format!("{DB_FILE}-shm"), file_len(&suffixed(&db, "-shm")));
    files.insert(SECRET_FILE.to_owned(), file_len(&dir.secret_path()));
    files.insert(format!("{INDEX_DIR}/"), dir_len(&dir.index_dir()));
    Ok(Stats {
        entities,
        files,
        schema_version: migrate::status(c)?.current,
    })
}

/// Bytes per table, its indexes included (an index's `tbl_name` is its table).
fn table_bytes(c: &Connection) -> rusqlite::Result<HashMap<String, u64>> {
    // The second argument of dbstat asks for one aggregated row per b-tree instead of one
    // row per page.
    let mut st = c.prepare(
        "SELECT m.tbl_name, SUM(d.pgsize) FROM dbstat('main', 1) AS d
         JOIN sqlite_schema AS m ON m.name = d.name GROUP BY m.tbl_name",
    )?;
    st.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
    })?
    .collect()
}

fn suffixed(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn dir_len(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_len(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

/// Database plus write-ahead log: what maintenance can shrink.
pub(crate) fn store_bytes(dir: &DataDir) -> u64 {
    let db = dir.db_path();
    file_len(&db) + file_len(&suffixed(&db, "-wal"))
}

// ------------------------------------------------------------------------- verify

/// Runs every check on one read snapshot. A failed check is reported, not returned as
/// an error: the caller wants to see all of them.
pub(crate) fn verify(c: &Connection) -> Result<VerifyReport> {
    verify_with(c, false)
}

/// The checks of [`verify`]; `allow_pending` accepts a schema older than the binary's
/// (a backup taken by an earlier version, which `migrate up` brings forward after restore).
fn verify_with(c: &Connection, allow_pending: bool) -> Result<VerifyReport> {
    let mut r = VerifyReport::default();
    check_integrity(c, &mut r)?;
    check_foreign_keys(c, &mut r)?;
    check_schema(c, allow_pending, &mut r)?;
    check_audit_chain(c, &mut r)?;
    check_event_seq(c, &mut r)?;
    check_vectors(c, &mut r)?;
    Ok(r)
}

/// Every stored vector has its model's length and belongs to an existing record of its
/// own tenant (the delete triggers of migration 0004 keep it so; a raw edit may not).
fn check_vectors(c: &Connection, r: &mut VerifyReport) -> Result<()> {
    let exists: bool = c
        .prepare("SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'vectors'")
        .db()?
        .query_row([], |row| row.get(0))
        .db()?;
    if !exists {
        return Ok(());
    }
    let bad_len: i64 = c
        .prepare(
            "SELECT COUNT(*) FROM vectors v JOIN vector_models m ON m.model = v.model
             WHERE length(v.vector) != 4 * m.dimension",
        )
        .db()?
        .query_row([], |row| row.get(0))
        .db()?;
    let mut orphans = 0i64;
    for (target, table) in [
        ("memory", "memories"),
        ("chunk", "chunks"),
        ("event", "events"),
    ] {
        orphans += c
            .prepare(&format!(
                "SELECT COUNT(*) FROM vectors v WHERE v.target = ?1 AND NOT EXISTS
                   (SELECT 1 FROM {table} r WHERE r.rid = v.record_rid AND r.tenant_id = v.tenant_id)"
            ))
            .db()?
            .query_row([target], |row| row.get::<_, i64>(0))
            .db()?;
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

fn check_integrity(c: &Connection, r: &mut VerifyReport) -> Result<()> {
    // FTS5 keeps each index's segment list per connection. A query reloads it when
    // another connection has changed the index, but the integrity check (xIntegrity)
    // does not: on a pooled reader that last searched before an erasure's `optimize`,
    // it reads segments that are gone and reports corruption where there is none
    // (seen on SQLite 3.54; the same store checks clean from a fresh connection). One
    // query per index first brings the list up to date.
    for t in crate::privacy::FTS_TABLES {
        c.query_row(
            &format!("SELECT COUNT(*) FROM (SELECT rowid FROM {t} WHERE {t} MATCH 'a' LIMIT 1)"),
            [],
            |_| Ok(()),
        )
        .db()?;
    }
    let mut st = c
        .prepare(&format!("PRAGMA integrity_check({})", MAX_LISTED))
        .db()?;
    let lines = st
        .query_map([], |row| row.get::<_, String>(0))
        .db()?
        .collect::<rusqlite::Result<Vec<_>>>()
        .db()?;
    let ok = lines.len() == 1 && lines[0] == "ok";
    r.push("integrity", ok, lines.join("; "));
    Ok(())
}

fn check_foreign_keys(c: &Connection, r: &mut VerifyReport) -> Result<()> {
    let mut st = c.prepare("PRAGMA foreign_key_check").db()?;
    let mut dangling: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut rows = st.query([]).db()?;
    while let Some(row) = rows.next().db()? {
        let table: String = row.get(0).db()?;
        let parent: String = row.get(2).db()?;
        *dangling.entry((table, parent)).or_default() += 1;
    }
    if dangling.is_empty() {
        r.push("foreign_keys", true, "every reference resolves");
    } else {
        let detail = dangling
            .iter()
            .map(|((t, p), n)| format!("{n} row(s) of {t} refer to missing {p}"))
            .collect::<Vec<_>>()
            .join("; ");
        r.push("foreign_keys", false, detail);
    }
    Ok(())
}

fn check_schema(c: &Connection, allow_pending: bool, r: &mut VerifyReport) -> Result<()> {
    let st = migrate::status(c)?;
    let problems: Vec<String> = st
        .migrations
        .iter()
        .filter(|m| m.state != "applied" && !(allow_pending && m.state == "pending"))
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

/// Streams the log in `seq` order through the chain verifier. Edits, deletions and
/// reorderings anywhere break the chain at the first affected entry; removing entries
/// from the end leaves a valid shorter chain, which only a copy of the last hash kept
/// elsewhere (a backup manifest, an external log) can reveal.
fn check_audit_chain(c: &Connection, r: &mut VerifyReport) -> Result<()> {
    let mut st = c
        .prepare(&format!(
            "SELECT {} FROM audit_log ORDER BY seq",
            audit::COLUMNS
        ))
        .db()?;
    let mut rows = st.query([]).db()?;
    let mut v = ChainVerifier::new();
    while let Some(row) = rows.next().db()? {
        let seq: i64 = row.get(0).db()?;
        let entry = match audit::from_row(row).db()? {
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

fn check_event_seq(c: &Connection, r: &mut VerifyReport) -> Result<()> {
    let mut st = c
        .prepare(
            "SELECT tenant_id, session_id, COUNT(*), COUNT(DISTINCT seq), MIN(seq), MAX(seq)
             FROM events GROUP BY tenant_id, session_id
             HAVING MIN(seq) != 1 OR MAX(seq) != COUNT(*) OR COUNT(DISTINCT seq) != COUNT(*)
             ORDER BY tenant_id, session_id",
        )
        .db()?;
    let mut rows = st.query([]).db()?;
    let mut bad = Vec::new();
    let mut total = 0usize;
    while let Some(row) = rows.next().db()? {
        total += 1;
        if bad.len() < MAX_LISTED {
            let (tenant, session): (String, String) = (row.get(0).db()?, row.get(1).db()?);
            let (n, distinct, lo, hi): (i64, i64, i64, i64) = (
                row.get(2).db()?,
                row.get(3).db()?,
                row.get(4).db()?,
                row.get(5).db()?,
            );
            bad.push(format!(
                "session '{session}' of tenant '{tenant}' has {n} events ({distinct} distinct seqs) numbered {lo} to {hi}"
            ));
        }
    }
    if total == 0 {
        r.push(
            "event_seq",
            true,
            "every session's events are numbered 1..n",
        );
    } else {
        if total > bad.len() {
            bad.push(format!("and {} more session(s)", total - bad.len()));
        }
        r.push("event_seq", false, bad.join("; "));
    }
    Ok(())
}

// ------------------------------------------------------------------------- maintenance

/// Sweeps expired records, lets SQLite refresh its planner statistics, checkpoints the
/// WAL and, when asked, rebuilds the file.
pub(crate) fn maintenance(
    conns: &Connections,
    dir: &DataDir,
    opts: &MaintenanceOptions,
) -> Result<MaintenanceReport> {
    let mut rep = MaintenanceReport {
        bytes_before: store_bytes(dir),
        ..Default::default()
    };
    if opts.sweep {
        let tenants = conns.read(tenants::list_tenants)?;
        for t in &tenants {
            // One transaction per tenant: the write lock is held for one tenant's sweep at
            // a time, so live writers wait for short sweeps rather than one long one.
            let scope = Scope::new(t.id.clone(), "maintenance");
            if let WriteResult::Swept(s) =
                conns.write(|tx| infra::sweep_expired(tx, &scope, opts.now))?
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
    let indexed = conns.write(crate::search::index_pending_events)?;
    rep.steps.push(format!(
        "fulltext: {indexed} event(s) added to the keyword index"
    ));
    conns.with_writer(|w| w.execute_batch("PRAGMA optimize").db())?;
    rep.steps
        .push("optimize: planner statistics refreshed".into());
    rep.steps.push(conns.with_writer(|w| checkpoint(w))?);
    if opts.vacuum {
        conns.with_writer(|w| w.execute_batch("VACUUM").db())?;
        rep.steps
            .push("vacuum: database rebuilt, free pages returned".into());
        // VACUUM writes the rebuilt pages through the WAL; the file shrinks only once they
        // are checkpointed back into it.
        rep.steps.push(conns.with_writer(|w| checkpoint(w))?);
    }
    rep.bytes_after = store_bytes(dir);
    Ok(rep)
}

/// `wal_checkpoint(TRUNCATE)`, described for the report. A reader still on an old
/// snapshot makes it partial (busy), which is reported rather than treated as an error.
pub(crate) fn checkpoint(w: &Connection) -> Result<String> {
    let (busy, log, done): (i64, i64, i64) = w
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .db()?;
    Ok(if busy != 0 {
        format!("checkpoint: partial, {done} of {log} WAL frames copied (readers were active)")
    } else {
        "checkpoint: WAL copied into the database and truncated".into()
    })
}

// ------------------------------------------------------------------------- backup

/// Refuses a path with a `..` component: paths come from command lines and config files,
/// and a backup or restore must not be steered outside the directory the operator named.
fn no_parent_dirs(field: &str, p: &Path) -> Result<()> {
    if p.components().any(|c| c == Component::ParentDir) {
        return Err(Error::invalid(
            field,
            format!("{} must not contain '..' components", p.display()),
        ));
    }
    Ok(())
}

/// `p` made absolute with symlinks resolved; for a path that does not exist yet, its
/// parent resolved and its name appended.
fn resolved(p: &Path) -> Option<PathBuf> {
    match std::fs::canonicalize(p) {
        Ok(c) => Some(c),
        Err(_) => {
            let parent = match p.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            Some(std::fs::canonicalize(parent).ok()?.join(p.file_name()?))
        }
    }
}

/// True when one of the directories is the other or inside it: a backup written into
/// the store it copies would copy itself, and a restore over its own backup would
/// destroy its source.
fn overlapping(a: &Path, b: &Path) -> bool {
    match (resolved(a), resolved(b)) {
        (Some(a), Some(b)) => a.starts_with(&b) || b.starts_with(&a),
        _ => false,
    }
}

fn io(p: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::io(p, e)
}

/// True when `p` is an empty directory.
fn is_empty_dir(p: &Path) -> Result<bool> {
    Ok(std::fs::read_dir(p).map_err(io(p))?.next().is_none())
}

/// fsyncs a directory so the names created in it survive a power cut. Windows cannot
/// open a directory as a file and makes renames durable on its own.
fn sync_dir(p: &Path) -> Result<()> {
    #[cfg(unix)]
    std::fs::File::open(p)
        .and_then(|f| f.sync_all())
        .map_err(io(p))?;
    #[cfg(not(unix))]
    let _ = p;
    Ok(())
}

fn sync_file(p: &Path) -> Result<()> {
    std::fs::File::open(p)
        .and_then(|f| f.sync_all())
        .map_err(io(p))
}

/// Size and hex SHA-256 of a file, streamed.
fn hash_file(p: &Path) -> Result<(u64, String)> {
    let mut f = std::fs::File::open(p).map_err(io(p))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(io(p))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((n, hex::encode(h.finalize())))
}

/// Copies a file, fsyncs the copy and returns its size and SHA-256 computed from the
/// bytes written (one read of the source for both).
fn copy_hashed(from: &Path, to: &Path) -> Result<(u64, String)> {
    let mut src = std::fs::File::open(from).map_err(io(from))?;
    let mut dst = std::fs::File::create(to).map_err(io(to))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = src.read(&mut buf).map_err(io(from))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        dst.write_all(&buf[..k]).map_err(io(to))?;
        n += k as u64;
    }
    dst.sync_all().map_err(io(to))?;
    Ok((n, hex::encode(h.finalize())))
}

#[cfg(unix)]
fn make_private(p: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).map_err(io(p))
}

#[cfg(not(unix))]
fn make_private(_p: &Path) -> Result<()> {
    Ok(())
}

/// Files under `root/rel`, as `/`-separated paths relative to `root`, sorted.
fn list_files(root: &Path, rel: &str, out: &mut Vec<String>) -> Result<()> {
    let dir = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(&dir, e)),
    };
    let mut names = Vec::new();
    for e in rd {
        let e = e.map_err(io(&dir))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let ty = e.file_type().map_err(io(&dir))?;
        names.push((name, ty.is_dir()));
    }
    names.sort();
    for (name, is_dir) in names {
        let path = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        if is_dir {
            list_files(root, &path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// The database copy: SQLite's online backup API, all pages in one step.
///
/// Measured on a 104 MiB database (250k event rows with two indexes, WAL mode, bundled
/// SQLite 3.54, warm page cache, 2 cores; copy plus fsync, three rounds): the backup API
/// took 0.21 / 0.48 / 0.49 s, `VACUUM INTO` 0.32 / 0.58 / 0.67 s. The backup API copies
/// pages verbatim, while `VACUUM INTO` re-walks every b-tree and writes it out anew; it
/// only wins on size, and only when the source has many free pages, which
/// `maintenance --vacuum` addresses anyway. One step of all pages holds a single read
/// transaction for the whole copy: in WAL mode that never blocks writers, and the copy is
/// the snapshot at its start. Copying in several smaller steps would release the snapshot
/// in between, and SQLite restarts such a backup whenever another connection writes,
/// which under a steady stream of appends might never finish.
fn copy_database(src_path: &Path, dst_path: &Path) -> Result<()> {
    let src = crate::conn::open_connection(
        src_path,
        &OpenOptions::default(),
        true,
        &crate::keyring::Keyring::disabled(),
    )?;
    let mut dst = Connection::open(dst_path).db()?;
    {
        let b = rusqlite::backup::Backup::new(&src, &mut dst).db()?;
        let mut tries = 0;
        loop {
            match b.step(-1).db()? {
                rusqlite::backup::StepResult::Done => break,
                // Busy / Locked: the source is momentarily locked (a checkpoint restart);
                // More cannot happen with -1 but is retried the same way.
                _ if tries < 200 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(25));
                }
                _ => return Err(Error::Busy),
            }
        }
    }
    // The copied header says WAL, as the source's does. A backup is a single file that
    // must stay byte-identical while it is verified and restored, so switch it to a
    // rollback journal: opening it read-only then creates no -wal or -shm beside it. The
    // restored store switches back to WAL when it is opened.
    let mode: String = dst
        .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
        .db()?;
    if !mode.eq_ignore_ascii_case("delete") {
        return Err(Error::Corrupt(format!(
            "the backup copy stayed in journal mode '{mode}'"
        )));
    }
    dst.close().map_err(|(_, e)| crate::sql::db_err(e))?;
    sync_file(dst_path)
}

/// An online, consistent copy of the store into `out` (absent or empty).
pub(crate) fn backup(conns: &Connections, dir: &DataDir, out: &Path) -> Result<BackupManifest> {
    no_parent_dirs("backup directory", out)?;
    if overlapping(out, dir.root()) {
        return Err(Error::invalid(
            "backup directory",
            format!(
                "{} must be outside the data directory {}",
                out.display(),
                dir.root().display()
            ),
        ));
    }
    match std::fs::symlink_metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(out, e)),
        Ok(m) if !m.is_dir() => {
            return Err(Error::invalid(
                "backup directory",
                format!("{} exists and is not a directory", out.display()),
            ));
        }
        Ok(_) if !is_empty_dir(out)? => {
            return Err(Error::AlreadyExists {
                entity: "non-empty backup directory",
                id: out.display().to_string(),
            });
        }
        Ok(_) => {}
    }
    std::fs::create_dir_all(out).map_err(io(out))?;

    let mut files = Vec::new();
    let db_out = out.join(DB_FILE);
    copy_database(conns.path(), &db_out)?;
    let (bytes, sha256) = hash_file(&db_out)?;
    files.push(ManifestFile {
        path: DB_FILE.into(),
        bytes,
        sha256,
    });
    let schema_version = {
        let c = open_backup_db(&db_out)?;
        migrate::status(&c)?.current
    };

    let secret = dir.secret_path();
    if secret.exists() {
        let to = out.join(SECRET_FILE);
        let (bytes, sha256) = copy_hashed(&secret, &to)?;
        make_private(&to)?;
        files.push(ManifestFile {
            path: SECRET_FILE.into(),
            bytes,
            sha256,
        });
    }

    let mut index_files = Vec::new();
    list_files(dir.root(), INDEX_DIR, &mut index_files)?;
    for rel in index_files {
        let to = out.join(&rel);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let (bytes, sha256) = copy_hashed(&dir.root().join(&rel), &to)?;
        files.push(ManifestFile {
            path: rel,
            bytes,
            sha256,
        });
    }
    let mut dirs: BTreeSet<PathBuf> = files
        .iter()
        .filter_map(|f| out.join(&f.path).parent().map(Path::to_path_buf))
        .collect();
    dirs.insert(out.to_path_buf());
    for d in dirs.iter().rev() {
        sync_dir(d)?;
    }

    let manifest = BackupManifest {
        format: MANIFEST_FORMAT,
        backend: "sqlite".into(),
        schema_version,
        created_at: agentstore::time::now(),
        agentstore_version: env!("CARGO_PKG_VERSION").into(),
        files,
    };
    // Written last and renamed into place: a backup interrupted at any earlier point has
    // no manifest.json and fails verification instead of restoring half a store.
    let tmp = out.join(format!("{MANIFEST_FILE}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        serde_json::to_writer_pretty(&mut f, &manifest)
            .map_err(|e| Error::io(&tmp, std::io::Error::other(e)))?;
        f.write_all(b"\n").map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    let path = out.join(MANIFEST_FILE);
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    sync_dir(out)?;
    Ok(manifest)
}

/// Opens a backup's database without creating anything beside it.
fn open_backup_db(p: &Path) -> Result<Connection> {
    Connection::open_with_flags(
        p,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .db()
}

/// Reads and parses `manifest.json` of a backup directory.
pub fn read_manifest(backup_dir: &Path) -> Result<BackupManifest> {
    let path = backup_dir.join(MANIFEST_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(if backup_dir.is_dir() {
                Error::Corrupt(format!(
                    "{} has no {MANIFEST_FILE}; the backup is incomplete or this is not a backup directory",
                    backup_dir.display()
                ))
            } else {
                Error::invalid(
                    "backup directory",
                    format!("{} does not exist", backup_dir.display()),
                )
            });
        }
        Err(e) => return Err(Error::io(&path, e)),
    };
    serde_json::from_str(&text)
        .map_err(|e| Error::Corrupt(format!("{} does not parse: {e}", path.display())))
}

/// Why a manifest path is unsafe to join onto a directory, if it is.
fn unsafe_manifest_path(p: &str) -> Option<&'static str> {
    if p.is_empty() {
        return Some("is empty");
    }
    if p.contains('\\') {
        return Some("contains a backslash");
    }
    if !Path::new(p)
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return Some("is absolute or contains '.' or '..'");
    }
    if p == MANIFEST_FILE {
        return Some("names the manifest itself");
    }
    None
}

/// Checks a backup directory against its manifest and the database inside it.
pub fn verify_backup(backup_dir: &Path) -> Result<VerifyReport> {
    no_parent_dirs("backup directory", backup_dir)?;
    let mut r = VerifyReport::default();
    let manifest = match read_manifest(backup_dir) {
        Ok(m) => m,
        Err(Error::Corrupt(msg)) => {
            r.push("manifest", false, msg);
            return Ok(r);
        }
        Err(e) => return Err(e),
    };
    let mut problems = Vec::new();
    if manifest.format != MANIFEST_FORMAT {
        problems.push(format!(
            "format {} (this binary reads format {MANIFEST_FORMAT})",
            manifest.format
        ));
    }
    if manifest.backend != "sqlite" {
        problems.push(format!(
            "written by the '{}' backend, not 'sqlite'",
            manifest.backend
        ));
    }
    let mut seen = BTreeSet::new();
    for f in &manifest.files {
        if let Some(why) = unsafe_manifest_path(&f.path) {
            problems.push(format!("file path '{}' {why}", f.path.escape_debug()));
        } else if !seen.insert(f.path.as_str()) {
            problems.push(format!("file '{}' is listed twice", f.path));
        }
    }
    if !seen.contains(DB_FILE) {
        problems.push(format!("{DB_FILE} is not listed"));
    }
    if !problems.is_empty() {
        // With an untrustworthy file list there is nothing safe to compare against.
        r.push("manifest", false, problems.join("; "));
        return Ok(r);
    }
    r.push(
        "manifest",
        true,
        format!(
            "format {}, schema version {}, {} file(s), written by agentstore {} at {}",
            manifest.format,
            manifest.schema_version,
            manifest.files.len(),
            manifest.agentstore_version,
            manifest.created_at.to_rfc3339()
        ),
    );

    let mut bad = Vec::new();
    for f in &manifest.files {
        let p = backup_dir.join(&f.path);
        match hash_file(&p) {
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                bad.push(format!("{} is missing", f.path));
            }
            Err(e) => return Err(e),
            Ok((bytes, _)) if bytes != f.bytes => bad.push(format!(
                "{} is {bytes} bytes, the manifest says {}",
                f.path, f.bytes
            )),
            Ok((_, sha)) if sha != f.sha256 => {
                bad.push(format!(
                    "{} does not match its SHA-256 in the manifest",
                    f.path
                ));
            }
            Ok(_) => {}
        }
    }
    let mut present = Vec::new();
    list_files(backup_dir, "", &mut present)?;
    for p in present {
        if p != MANIFEST_FILE && !seen.contains(p.as_str()) {
            bad.push(format!("{p} is not listed in the manifest"));
        }
    }
    if bad.is_empty() {
        r.push(
            "files",
            true,
            format!(
                "{} file(s) match their sizes and SHA-256",
                manifest.files.len()
            ),
        );
    } else {
        r.push("files", false, bad.join("; "));
    }

    let db = backup_dir.join(DB_FILE);
    if !db.is_file() {
        r.push("integrity", false, format!("{DB_FILE} is missing"));
        return Ok(r);
    }
    let c = open_backup_db(&db)?;
    let tx = c.unchecked_transaction().db()?;
    let db_report = match verify_with(&tx, true) {
        Ok(rep) => rep,
        // An unreadable file (not a database at all) is a failed check, not an error.
        Err(e @ (Error::Database(_) | Error::Corrupt(_))) => {
            r.push("integrity", false, e.to_string());
            return Ok(r);
        }
        Err(e) => return Err(e),
    };
    r.checks.extend(db_report.checks);
    let version = migrate::status(&tx).map(|s| s.current).unwrap_or(-1);
    if version != manifest.schema_version {
        r.push(
            "schema_version",
            false,
            format!(
                "the database is at schema version {version}, the manifest says {}",
                manifest.schema_version
            ),
        );
    }
    Ok(r)
}

/// Restores a verified backup into an empty (or, with `force`, replaced) data directory.
///
/// The files are copied into a temporary directory beside `data_dir` and renamed into
/// place, so `data_dir` is never half restored. With `force`, the old directory is moved
/// aside first and removed only after the new one is in place. No store may have
/// `data_dir` open meanwhile.
pub fn restore(backup_dir: &Path, data_dir: &Path, force: bool) -> Result<BackupManifest> {
    no_parent_dirs("backup directory", backup_dir)?;
    no_parent_dirs("data directory", data_dir)?;
    if overlapping(backup_dir, data_dir) {
        return Err(Error::invalid(
            "data directory",
            format!(
                "{} must be outside the backup directory {} and not contain it",
                data_dir.display(),
                backup_dir.display()
            ),
        ));
    }
    let report = verify_backup(backup_dir)?;
    if let Some(failed) = report.checks.iter().find(|c| !c.ok) {
        return Err(Error::Corrupt(format!(
            "backup {} failed the '{}' check: {}",
            backup_dir.display(),
            failed.name,
            failed.detail
        )));
    }
    let manifest = read_manifest(backup_dir)?;

    // None: absent; Some(true): empty directory; Some(false): holds something.
    let existing = match std::fs::symlink_metadata(data_dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(data_dir, e)),
        Ok(m) if !m.is_dir() => {
            return Err(Error::invalid(
                "data directory",
                format!("{} exists and is not a directory", data_dir.display()),
            ));
        }
        Ok(_) => Some(is_empty_dir(data_dir)?),
    };
    if existing == Some(false) && !force {
        return Err(Error::AlreadyExists {
            entity: "non-empty data directory",
            id: data_dir.display().to_string(),
        });
    }
    let name = data_dir
        .file_name()
        .ok_or_else(|| {
            Error::invalid(
                "data directory",
                format!("{} has no final component", data_dir.display()),
            )
        })?
        .to_string_lossy()
        .into_owned();
    let parent = match data_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(io(&parent))?;
    let tag = format!("{}-{:016x}", std::process::id(), rand::random::<u64>());
    let tmp = parent.join(format!(".{name}.restore-{tag}"));
    std::fs::create_dir(&tmp).map_err(io(&tmp))?;
    let filled = fill_restore_dir(backup_dir, &tmp, &manifest).and_then(|()| {
        if existing == Some(false) {
            keep_keyring(data_dir, &tmp)
        } else {
            Ok(())
        }
    });
    if let Err(e) = filled {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }

    match existing {
        None => std::fs::rename(&tmp, data_dir).map_err(io(data_dir)),
        Some(true) => std::fs::remove_dir(data_dir)
            .and_then(|()| std::fs::rename(&tmp, data_dir))
            .map_err(io(data_dir)),
        Some(false) => {
            let aside = parent.join(format!(".{name}.replaced-{tag}"));
            std::fs::rename(data_dir, &aside).map_err(io(data_dir))?;
            match std::fs::rename(&tmp, data_dir) {
                Ok(()) => {
                    sync_dir(&parent)?;
                    std::fs::remove_dir_all(&aside).map_err(io(&aside))
                }
                Err(e) => {
                    // Put the old store back so a failed restore changes nothing.
                    let _ = std::fs::rename(&aside, data_dir);
                    Err(Error::io(data_dir, e))
                }
            }
        }
    }
    .inspect_err(|_| {
        let _ = std::fs::remove_dir_all(&tmp);
    })?;
    sync_dir(&parent)?;
    Ok(manifest)
}

/// The keyring is not part of a backup (crypto-shredding: an erased subject's data key
/// must not come back with an old copy of the store), so a restore over a data directory
/// keeps the keyring that is there: copied with SQLite's backup API, consistent even if
/// its WAL holds the last changes.
fn keep_keyring(data_dir: &Path, restored: &Path) -> Result<()> {
    let from = data_dir.join(crate::keyring::KEYRING_FILE);
    if !from.exists() {
        return Ok(());
    }
    let to = restored.join(crate::keyring::KEYRING_FILE);
    let src =
        Connection::open_with_flags(&from, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).db()?;
    let mut dst = Connection::open(&to).db()?;
    rusqlite::backup::Backup::new(&src, &mut dst)
        .db()?
        .run_to_completion(256, Duration::from_millis(25), None)
        .db()?;
    dst.close().map_err(|(_, e)| crate::sql::db_err(e))?;
    make_private(&to)?;
    sync_file(&to)
}

/// Copies every manifest file into `dir`, checking each against the manifest again
/// while copying (the backup may have changed since it was verified).
fn fill_restore_dir(backup_dir: &Path, dir: &Path, manifest: &BackupManifest) -> Result<()> {
    let mut dirs = BTreeSet::new();
    dirs.insert(dir.to_path_buf());
    for f in &manifest.files {
        let to = dir.join(&f.path);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
            dirs.insert(parent.to_path_buf());
        }
        let (bytes, sha256) = copy_hashed(&backup_dir.join(&f.path), &to)?;
        if bytes != f.bytes || sha256 != f.sha256 {
            return Err(Error::Corrupt(format!(
                "{} changed while it was being restored",
                f.path
            )));
        }
        if f.path == SECRET_FILE {
            make_private(&to)?;
        }
    }
    let index = dir.join(INDEX_DIR);
    std::fs::create_dir_all(&index).map_err(io(&index))?;
    dirs.insert(index);
    for d in dirs.iter().rev() {
        sync_dir(d)?;
    }
    Ok(())
}

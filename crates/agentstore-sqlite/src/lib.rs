//! The embedded agentstore backend: one data directory holding a SQLite database in WAL
//! mode.
//!
//! A key design decision: one writer connection behind a mutex and a pool of read-only
//! connections. SQLite allows one writer at a time anyway; serialising writers in-process
//! avoids busy-waiting on the file lock, while WAL lets readers run beside the writer
//! without blocking. Each [`Backend::write`] call is one `BEGIN IMMEDIATE` transaction,
//! so a batch of ops costs one commit.
//!
//! ```
//! use agentstore::{NewEvent, NewMemory, NewSession, Namespace, Scope};
//! use agentstore_sqlite::OpenOptions;
//!
//! # let tmp = tempfile::tempdir()?;
//! # let dir = tmp.path().join("agentstore-data");
//! let store = agentstore_sqlite::open(&OpenOptions::new(&dir).create())?;
//! store.ensure_tenant("me", "acme")?;
//! let scope = Scope::new("acme", "me");
//!
//! let session = store.create_session(&scope, NewSession::new("conversation"))?;
//! let events = store.append_events(&scope, &session.id, vec![
//!     NewEvent::message("user", "I prefer short answers."),
//!     NewEvent::message("assistant", "Noted."),
//! ])?;
//! assert_eq!(events[1].seq, 2);
//!
//! let mut m = NewMemory::new("The user prefers short answers.");
//! m.kind = "preference".into();
//! m.key = Some("answer-style".into());
//! store.remember(&scope, m)?; // upsert by key; versions keep history
//! let current = store.get_memory_by_key(&scope, &Namespace::root(), "answer-style", None)?;
//! assert_eq!(current.content, "The user prefers short answers.");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

mod admin;
mod ann;
mod api_keys;
mod audit;
mod checkpoints;
mod conn;
mod documents;
mod infra;
mod keyring;
mod keyword_index;
mod memories;
pub mod migrate;
mod privacy;
mod search;
mod sessions;
mod sql;
mod telemetry;
mod tenants;
mod transfer;
mod vectors;
mod write;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use agentstore::backend::*;
use agentstore::*;

pub use admin::{read_manifest, restore, verify_backup};
pub use agentstore_vector::{IndexParams, Quantization};
pub use conn::{DataDir, Durability, OpenOptions, pragmas};
pub use keyring::{KEYRING_FILE, MasterKey, MasterKeySource};
pub use keyword_index::KeywordIndexMode;

/// Registers the store's SQL functions on a bare connection to its database, with the
/// keyring of `data_dir` (`agentstore migrate` runs on such a connection). Migrations
/// rebuild the full-text indexes through these functions: with a keyring-less
/// connection, the encrypted fields of a store that has one would be indexed as nothing.
/// A store with a keyring needs its master key here as everywhere.
pub fn register_store_functions(
    conn: &rusqlite::Connection,
    data_dir: &Path,
    master_key: Option<MasterKeySource>,
) -> agentstore::Result<()> {
    keyring::Keyring::open(data_dir, master_key)?.register(conn)
}

/// The SQLite backend. Open it with [`open`] or [`SqliteBackend::open`].
pub struct SqliteBackend {
    conns: Arc<conn::Connections>,
    dir: DataDir,
    /// The vector indexes, derived from the `vectors` table (see `ann.rs`).
    ann: ann::Ann,
    /// The keyword index of large stores, derived from the record tables (see
    /// `keyword_index.rs`); FTS5 answers when it is not ready.
    keywords: keyword_index::KeywordIndex,
}

impl std::fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteBackend")
            .field("dir", &self.dir.root())
            .finish_non_exhaustive()
    }
}

/// Puts a keyring copy from [`SqliteBackend::backup_keyring`] into the data directory of
/// `opts`, whose own keyring must be missing or hold no data key; the copy must be wrapped
/// by the master key of `opts` (`agentstore keys restore-keyring`, see `keyring.rs`).
/// Returns how many data keys it holds.
pub fn restore_keyring(opts: &OpenOptions, from: &Path) -> Result<usize> {
    let Some(source) = &opts.master_key else {
        return Err(Error::Config(
            "restoring a keyring needs the master key that wraps it (AGENTSTORE_MASTER_KEY \
             or AGENTSTORE_MASTER_KEY_FILE)"
                .into(),
        ));
    };
    if !opts.data_dir.is_dir() {
        return Err(Error::invalid(
            "data directory",
            format!("{} is not a data directory", opts.data_dir.display()),
        ));
    }
    keyring::restore(&opts.data_dir, from, source)
}

/// Opens (and with `opts.create`, initialises) the store in a data directory and returns
/// the engine over it.
pub fn open(opts: &OpenOptions) -> Result<Store> {
    let backend = SqliteBackend::open(opts)?;
    let secret = backend.dir.subject_secret(opts.create)?;
    Ok(Store::new(Arc::new(backend), secret, opts.limits.clone()))
}

impl SqliteBackend {
    /// Opens the backend. Refuses a database whose migrations differ from the binary's
    /// unless `opts.migrate` is set, in which case pending migrations are applied.
    pub fn open(opts: &OpenOptions) -> Result<Self> {
        let dir = DataDir::new(&opts.data_dir);
        let conns = Arc::new(conn::Connections::open(&dir, opts)?);
        let ann = ann::Ann::new(dir.index_dir(), opts.vector_index.clone());
        let keywords = keyword_index::KeywordIndex::new(opts.keyword_index);
        Ok(SqliteBackend {
            conns,
            dir,
            ann,
            keywords,
        })
    }

    /// Brings the in-memory vector indexes up to every committed vector.
    fn sync_vectors(&self) -> Result<()> {
        self.conns.read(|c| self.ann.sync(c))
    }

    /// Snapshots the vector indexes and, when every declared model's index is loaded and
    /// saved, drops the log entries all snapshots hold. Returns a line for reports.
    pub(crate) fn snapshot_vectors(&self) -> Result<String> {
        self.sync_vectors()?;
        let through = self.ann.save_all()?;
        let loaded = self.ann.counts().len();
        let declared = self.read(vectors::declared)?.len();
        match through {
            Some(w) if loaded == declared => {
                let n = self.conns.write(|tx| ann::truncate_log(tx, w))?;
                Ok(format!(
                    "vectors: {loaded} index(es) snapshotted; {n} log entries dropped"
                ))
            }
            _ => Ok(format!("vectors: {loaded} index(es) snapshotted")),
        }
    }

    /// After an erasure (or a sweep) has committed, moves its bytes out of the files too:
    /// the WAL, which still holds the pages as they were before, is copied into the
    /// database (where `secure_delete` has zeroed the freed space) and truncated, and the
    /// vector index snapshots are rewritten without the removed vectors. Both are best effort: a
    /// reader on an old snapshot can keep the WAL from being truncated, and the next
    /// checkpoint or `maintenance` finishes the job; the rows are gone either way.
    fn after_removal(&self) {
        if let Err(e) = self.conns.with_writer(|w| admin::checkpoint(w)) {
            tracing::warn!(error = %e, "checkpoint after a removal failed");
        }
        if let Err(e) = self.snapshot_vectors() {
            tracing::warn!(error = %e, "vector snapshot after a removal failed");
        }
        // The in-memory keyword index of a large store drops the removed records now
        // rather than at the next search.
        if let Err(e) = self.conns.read(|c| self.keywords.warm(&self.conns, c)) {
            tracing::warn!(error = %e, "keyword index update after a removal failed");
        }
    }

    /// A strict subject's data key is made before the write that creates the subject, so
    /// that a field sealed in the same write already finds it strict. A write that then
    /// fails leaves a key without a subject, which `maintenance` destroys.
    fn strict_keys_first(&self, ops: &[WriteOp]) -> Result<()> {
        for op in ops {
            if let WriteOp::CreateSubject(s) = op
                && s.strict
            {
                if !self.conns.keyring().enabled() {
                    return Err(Error::invalid(
                        "strict",
                        "strict privacy needs field encryption: open the store with a master key",
                    ));
                }
                // A subject of that id already exists: the write fails with
                // `already_exists`, and its key (if any) must not turn strict.
                if self
                    .read_one(|c| tenants::get_subject(c, &s.tenant_id, &s.id))?
                    .is_some()
                {
                    continue;
                }
                self.conns
                    .keyring()
                    .create_subject_key(&s.tenant_id, &s.id, true)?;
            }
        }
        Ok(())
    }

    /// Crypto-shredding: after an erasure has committed, the subject's data key goes. The
    /// rows went first, so a failure here leaves a key without data, never data without
    /// its key; `maintenance` destroys such keys.
    fn destroy_erased_keys(&self, scope: &Scope, out: &mut [WriteResult]) -> Result<()> {
        for r in out.iter_mut() {
            if let WriteResult::Erased(e) = r {
                e.data_key_destroyed = self
                    .conns
                    .keyring()
                    .destroy_subject_key(&scope.tenant, &e.subject_id)?;
                if e.data_key_destroyed {
                    // The tombstone was written before the key went; this entry is the
                    // log's record that it did.
                    self.conns.write(|tx| {
                        crate::audit::append(
                            tx,
                            scope,
                            agentstore::audit::AuditDraft::new(
                                "subject.key_destroy",
                                "subject",
                                &e.subject_id,
                            ),
                        )
                    })?;
                }
            }
        }
        Ok(())
    }

    /// Re-wraps every subject's data key under `new` and makes it the master key
    /// (`agentstore keys rotate-master`). Returns how many keys were re-wrapped.
    pub fn rotate_master_key(&self, new: MasterKey) -> Result<usize> {
        self.conns.keyring().rotate_master(new)
    }

    /// Writes a checked copy of the keyring (subjects' data keys, wrapped) to `out`, a new
    /// file (`agentstore keys backup-keyring`). Returns how many data keys it holds.
    pub fn backup_keyring(&self, out: &Path) -> Result<usize> {
        self.conns.keyring().backup(out)
    }

    /// Destroys the data keys whose subject no longer exists: left by an erasure whose key
    /// destruction failed after its rows had gone, or brought back by a keyring copy older
    /// than an erasure. Part of every maintenance. Returns how many went.
    pub fn destroy_orphan_keys(&self) -> Result<usize> {
        self.conns.keyring().destroy_orphans(|tenant, subject| {
            Ok(self
                .read_one(|c| tenants::get_subject(c, tenant, subject))?
                .is_some())
        })
    }

    /// The id of the master key in use; None when field encryption is off.
    pub fn master_key_id(&self) -> Option<String> {
        self.conns.keyring().master_id()
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        self.dir.root()
    }

    /// Path of the database file.
    pub fn db_path(&self) -> PathBuf {
        self.dir.db_path()
    }

    fn read<T>(&self, f: impl FnOnce(&rusqlite::Connection) -> Result<T>) -> Result<T> {
        self.conns.read(f)
    }

    /// For reads that are one SQL statement (see `Connections::read_one`).
    fn read_one<T>(&self, f: impl FnOnce(&rusqlite::Connection) -> Result<T>) -> Result<T> {
        self.conns.read_one(f)
    }
}

impl Backend for SqliteBackend {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn write(&self, scope: &Scope, ops: Vec<WriteOp>) -> Result<Vec<WriteResult>> {
        let vectors = ops.iter().any(write::adds_vectors);
        let keyword_rows: u64 = ops.iter().map(write::keyword_rows).sum();
        self.strict_keys_first(&ops)?;
        let mut out: Vec<WriteResult> = self.conns.write(|tx| {
            ops.into_iter()
                .map(|op| write::apply(tx, scope, op))
                .collect()
        })?;
        // Index new vectors now, so the next search does not pay for them; deletes are
        // cheap and are picked up by the search itself. The write has committed: a failure
        // here must not report it as failed, and the next search retries the catch-up and
        // reports the error there.
        if vectors {
            let _ = self.sync_vectors();
        }
        self.keywords.after_write(&self.conns, keyword_rows);
        self.destroy_erased_keys(scope, &mut out)?;
        // An erasure, or a sweep that removed something: its bytes leave the files too.
        let removed = out.iter().any(|r| match r {
            WriteResult::Erased(_) => true,
            WriteResult::Swept(s) => s.removed() > 0,
            _ => false,
        });
        if removed {
            self.after_removal();
        }
        Ok(out)
    }

    fn get_tenant(&self, id: &str) -> Result<Option<Tenant>> {
        self.read_one(|c| tenants::get_tenant(c, id))
    }

    fn list_tenants(&self) -> Result<Vec<Tenant>> {
        self.read(tenants::list_tenants)
    }

    fn get_subject(&self, tenant: &str, id: &str) -> Result<Option<Subject>> {
        self.read_one(|c| tenants::get_subject(c, tenant, id))
    }

    fn find_subject(&self, tenant: &str, hash: &str) -> Result<Option<Subject>> {
        self.read_one(|c| tenants::find_subject(c, tenant, hash))
    }

    fn list_retention(&self, tenant: &str) -> Result<Vec<RetentionRule>> {
        self.read_one(|c| infra::list_retention(c, tenant))
    }

    fn export_subject(
        &self,
        tenant: &str,
        id: &str,
        at: Timestamp,
    ) -> Result<Option<SubjectExport>> {
        self.read(|c| privacy::export_subject(c, tenant, id, at))
    }

    fn get_agent(&self, tenant: &str, id: &str) -> Result<Option<Agent>> {
        self.read_one(|c| tenants::get_agent(c, tenant, id))
    }

    fn list_agents(&self, tenant: &str, q: &AgentQuery) -> Result<Page<Agent>> {
        self.read(|c| tenants::list_agents(c, tenant, q))
    }

    fn agent_stats(&self, tenant: &str, id: &str) -> Result<AgentStats> {
        self.read(|c| tenants::agent_stats(c, tenant, id))
    }

    fn get_session(&self, tenant: &str, id: &str) -> Result<Option<Session>> {
        self.read_one(|c| sessions::get_session(c, tenant, id))
    }

    fn list_sessions(&self, tenant: &str, q: &SessionQuery) -> Result<Page<Session>> {
        self.read(|c| sessions::list_sessions(c, tenant, q))
    }

    fn get_event(&self, tenant: &str, id: &str) -> Result<Option<Event>> {
        self.read_one(|c| sessions::get_event(c, tenant, id))
    }

    fn list_events(&self, tenant: &str, q: &EventQuery) -> Result<Page<Event>> {
        self.read(|c| sessions::list_events(c, tenant, q))
    }

    fn get_memory(&self, tenant: &str, id: &str) -> Result<Option<Memory>> {
        self.read_one(|c| memories::get(c, tenant, id))
    }

    fn get_memory_by_key(
        &self,
        tenant: &str,
        namespace: &Namespace,
        key: &str,
        as_of: Option<Timestamp>,
    ) -> Result<Option<Memory>> {
        self.read(|c| memories::get_by_key(c, tenant, namespace, key, as_of))
    }

    fn memory_history(
        &self,
        tenant: &str,
        namespace: &Namespace,
        key: &str,
    ) -> Result<Vec<Memory>> {
        self.read(|c| memories::history(c, tenant, namespace, key))
    }

    fn list_memories(&self, tenant: &str, q: &MemoryQuery, now: Timestamp) -> Result<Page<Memory>> {
        self.read(|c| memories::list(c, tenant, q, now))
    }

    fn get_document(&self, tenant: &str, id: &str) -> Result<Option<Document>> {
        self.read_one(|c| documents::get(c, tenant, id))
    }

    fn list_documents(&self, tenant: &str, q: &DocumentQuery) -> Result<Page<Document>> {
        self.read(|c| documents::list(c, tenant, q))
    }

    fn list_chunks(&self, tenant: &str, document_id: &str) -> Result<Vec<Chunk>> {
        self.read(|c| documents::list_chunks(c, tenant, document_id))
    }

    fn get_chunk(&self, tenant: &str, id: &str) -> Result<Option<Chunk>> {
        self.read_one(|c| documents::get_chunk(c, tenant, id))
    }

    fn keyword_candidates(&self, tenant: &str, q: &KeywordQuery) -> Result<Vec<Candidate>> {
        if let Some(found) = self.read(|c| self.keywords.candidates(&self.conns, c, tenant, q))? {
            return Ok(found);
        }
        // Bring the event index up to every event committed so far (migration 0003);
        // the check is one read, the catch-up a bulk insert only when events arrived.
        if q.targets.contains(&agentstore::search::Target::Event)
            && self.read_one(search::events_pending)?
        {
            self.conns.write(search::index_pending_events)?;
        }
        self.read(|c| search::keyword_candidates(c, tenant, q))
    }

    fn vector_candidates(&self, tenant: &str, q: &VectorQuery) -> Result<Vec<Candidate>> {
        self.sync_vectors()?;
        self.read(|c| self.ann.candidates(c, tenant, q))
    }

    fn get_vectors(
        &self,
        tenant: &str,
        model: &str,
        records: &[(agentstore::search::Target, String)],
    ) -> Result<Vec<Option<Vec<f32>>>> {
        self.read(|c| vectors::get_many(c, tenant, model, records))
    }

    fn vector_models(&self) -> Result<Vec<VectorModelInfo>> {
        self.read(vectors::models)
    }

    fn missing_vectors(
        &self,
        tenant: &str,
        target: agentstore::search::Target,
        model: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TextToEmbed>> {
        self.read(|c| vectors::missing(c, tenant, target, model, after, limit))
    }

    fn get_checkpoint(
        &self,
        tenant: &str,
        session_id: &str,
        checkpoint_ns: &str,
        id: Option<&str>,
    ) -> Result<Option<Checkpoint>> {
        self.read(|c| checkpoints::get(c, tenant, session_id, checkpoint_ns, id))
    }

    fn list_checkpoints(&self, tenant: &str, q: &CheckpointQuery) -> Result<Vec<Checkpoint>> {
        self.read(|c| checkpoints::list(c, tenant, q))
    }

    fn pending_writes(
        &self,
        tenant: &str,
        session_id: &str,
        checkpoint_ns: &str,
        checkpoint_id: &str,
    ) -> Result<Vec<PendingWrite>> {
        self.read(|c| {
            checkpoints::pending_writes(c, tenant, session_id, checkpoint_ns, checkpoint_id)
        })
    }

    fn list_usage(&self, tenant: &str, q: &UsageQuery) -> Result<Vec<UsageRecord>> {
        self.read(|c| telemetry::list_usage(c, tenant, q))
    }

    fn metric_points(&self, tenant: &str, q: &MetricQuery) -> Result<Vec<MetricPoint>> {
        self.read(|c| telemetry::metric_points(c, tenant, q))
    }

    fn kv_get(&self, tenant: &str, key: &str, now: Timestamp) -> Result<Option<KvEntry>> {
        self.read_one(|c| infra::kv_get(c, tenant, key, now))
    }

    fn kv_list(
        &self,
        tenant: &str,
        prefix: &str,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<KvEntry>> {
        self.read(|c| infra::kv_list(c, tenant, prefix, now, limit))
    }

    fn get_lock(&self, tenant: &str, name: &str) -> Result<Option<Lock>> {
        self.read_one(|c| infra::get_lock(c, tenant, name))
    }

    fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>> {
        self.read_one(|c| api_keys::by_hash(c, hash))
    }

    fn list_api_keys(&self, tenant: &str) -> Result<Vec<ApiKey>> {
        self.read_one(|c| api_keys::list(c, tenant))
    }

    fn list_audit(&self, q: &AuditQuery) -> Result<Page<AuditEntry>> {
        self.read(|c| audit::list(c, q))
    }

    fn export(&self, out: &mut dyn FnMut(Record) -> Result<()>) -> Result<()> {
        self.read(|c| transfer::export(c, out))
    }

    fn import(
        &self,
        scope: &Scope,
        records: &mut dyn Iterator<Item = Result<(u64, Record)>>,
    ) -> Result<ImportReport> {
        self.conns.write(|tx| transfer::import(tx, scope, records))
    }

    fn stats(&self) -> Result<Stats> {
        let mut stats = self.read(|c| admin::stats(c, &self.dir))?;
        self.sync_vectors()?;
        let (vectors, bytes) = self.ann.memory();
        stats.entities.push(EntityStats {
            entity: "vector_index (memory)".into(),
            rows: vectors as u64,
            bytes: bytes as u64,
        });
        let (docs, bytes) = self.keywords.size();
        stats.entities.push(EntityStats {
            entity: "keyword_index (memory)".into(),
            rows: docs,
            bytes,
        });
        Ok(stats)
    }

    fn verify(&self) -> Result<VerifyReport> {
        let mut report = self.read(admin::verify)?;
        // The index against the table, both as of one read snapshot.
        let index_check = self.read(|c| {
            self.ann.sync(c)?;
            let counts = self.ann.counts();
            let mut bad = Vec::new();
            for m in vectors::models(c)? {
                let n = counts.get(&m.model).copied().unwrap_or(0) as u64;
                if n != m.vectors {
                    bad.push(format!(
                        "{}: {} in the table, {n} in the index",
                        m.model, m.vectors
                    ));
                }
            }
            Ok(bad)
        })?;
        report.push(
            "vector_index",
            index_check.is_empty(),
            if index_check.is_empty() {
                "every model's index holds exactly the table's vectors".to_owned()
            } else {
                index_check.join("; ")
            },
        );
        Ok(report)
    }

    fn warm(&self) -> Result<()> {
        self.sync_vectors()?;
        self.read(|c| self.keywords.warm(&self.conns, c))
    }

    fn maintenance(&self, opts: &MaintenanceOptions) -> Result<MaintenanceReport> {
        let mut rep = admin::maintenance(&self.conns, &self.dir, opts)?;
        rep.steps.push(self.snapshot_vectors()?);
        if self.conns.keyring().enabled() {
            let n = self.destroy_orphan_keys()?;
            rep.steps.push(format!(
                "keyring: {n} data key(s) without a subject destroyed ({})",
                self.conns.keyring().path().display()
            ));
        }
        let protect = self.keywords.watermark();
        let n = self
            .conns
            .write(|tx| keyword_index::truncate_log(tx, protect))?;
        rep.steps
            .push(format!("keyword index: {n} log entries dropped"));
        rep.bytes_after = admin::store_bytes(&self.dir);
        Ok(rep)
    }

    fn backup(&self, dir: &Path) -> Result<BackupManifest> {
        // Snapshot the indexes before the database is copied: the copy then holds every
        // log entry past the snapshots' watermarks, and a restored store replays them.
        self.snapshot_vectors()?;
        admin::backup(&self.conns, &self.dir, dir)
    }
}

impl Drop for SqliteBackend {
    fn drop(&mut self) {
        // Best effort: a snapshot saves the next open a replay of the log, but nothing
        // depends on it, since the log and the table are the truth.
        let _ = self.ann.save_all();
    }
}

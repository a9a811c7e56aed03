//! The agentstore backend for several servers: PostgreSQL with the pgvector extension.
//!
//! The same tables as the SQLite backend (see `migrations/`), the same write semantics
//! behind the same [`Backend`] trait, so the engine fuses, ranks and validates exactly as
//! it does on SQLite, and one conformance suite tests both. What differs:
//!
//! - **Writers.** Every [`Backend::write`] is one transaction that first takes a
//!   transaction-scoped advisory lock. Writes of every server are serialised, as SQLite
//!   serialises its writers: the audit log's hash chain needs one order of appends, and
//!   the semantics the engine relies on (a session's next `seq`, a key's current memory
//!   version, a lock's token) are read-then-write. Readers never wait for it.
//! - **Keywords**: a generated `tsvector` column and a GIN index per searchable table,
//!   ranked with `ts_rank_cd` (the engine fuses by rank, not by score).
//! - **Vectors**: a pgvector column; declaring a model creates a partial HNSW index of
//!   its dimension (`vectors.rs`).
//! - **Field encryption** is not available: the SQLite backend seals fields with its own
//!   keyring file, which a shared database has no place for; opening with a master key is
//!   refused (`config_error`) rather than ignored.
//!
//! Connections come from an r2d2 pool of the synchronous `postgres` client. The server
//! calls the store on tokio's blocking pool, where a synchronous client is at home.

#![warn(missing_docs)]

mod admin;
mod api_keys;
mod audit;
mod checkpoints;
mod documents;
mod infra;
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

use std::path::Path;
use std::sync::Arc;

use agentstore::backend::*;
use agentstore::*;
use postgres::{GenericClient, NoTls};
use r2d2_postgres::PostgresConnectionManager;

use crate::sql::SqlResult;

type Pool = r2d2::Pool<PostgresConnectionManager<NoTls>>;

/// The advisory lock every write transaction holds (`pg_advisory_xact_lock`): a constant
/// of our own, "agentstr" in ASCII, so it cannot clash with another application's.
pub(crate) const WRITE_LOCK: i64 = 0x6167_656e_7473_7472;

/// How to open a PostgreSQL store.
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// `postgres://user@host:port/database` (libpq key=value strings work too).
    pub url: String,
    /// Create the schema in an empty database.
    pub create: bool,
    /// Apply pending migrations instead of refusing a database that is behind.
    pub migrate: bool,
    /// Most connections the pool keeps open.
    pub pool_size: u32,
    /// Size limits of the engine.
    pub limits: Limits,
}

impl PgOptions {
    /// Options for `url` with the defaults: no create, no migrate, 16 connections.
    pub fn new(url: impl Into<String>) -> Self {
        PgOptions {
            url: url.into(),
            create: false,
            migrate: false,
            pool_size: 16,
            limits: Limits::default(),
        }
    }

    /// Creates the schema in an empty database (and applies pending migrations).
    pub fn create(mut self) -> Self {
        self.create = true;
        self.migrate = true;
        self
    }
}

/// The PostgreSQL backend. Open it with [`open`] or [`PgBackend::open`].
pub struct PgBackend {
    pool: Pool,
    url: String,
    /// Rows written since this process last refreshed the planner's statistics.
    rows_since_analyze: std::sync::atomic::AtomicU64,
}

/// Rows written (by one process) after which it runs ANALYZE on the searched tables.
/// Autovacuum would, within a minute or so; until then the planner, knowing nothing of a
/// bulk load, picked plans for filtered vector searches that took seconds instead of
/// milliseconds right after one (measured: 6-9 s against 13 ms at 21,000 memories).
const ANALYZE_AFTER_ROWS: u64 = 10_000;

impl std::fmt::Debug for PgBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgBackend").finish_non_exhaustive()
    }
}

/// Opens (and with `opts.create`, initialises) the store in a PostgreSQL database and
/// returns the engine over it.
pub fn open(opts: &PgOptions) -> Result<Store> {
    let backend = PgBackend::open(opts)?;
    let secret = backend.subject_secret()?;
    Ok(Store::new(Arc::new(backend), secret, opts.limits.clone()))
}

impl PgBackend {
    /// Connects, then checks the schema: migrations are applied once even when several
    /// servers start together (they take a session advisory lock first), and a database
    /// whose migrations differ from the binary's is refused unless `opts.migrate`.
    pub fn open(opts: &PgOptions) -> Result<Self> {
        let config: postgres::Config = opts
            .url
            .parse()
            .map_err(|e| Error::Config(format!("bad PostgreSQL URL: {e}")))?;
        let manager = PostgresConnectionManager::new(config, NoTls);
        let pool = r2d2::Pool::builder()
            .max_size(opts.pool_size.max(1))
            .min_idle(Some(1))
            // r2d2 would run a query on every checkout to test the connection: one more
            // round trip on every read and write. A connection that broke is noticed
            // when its call fails (busy) and dropped on return (`has_broken`).
            .test_on_check_out(false)
            .connection_timeout(std::time::Duration::from_secs(10))
            .build(manager)
            .map_err(|e| Error::Config(format!("cannot connect to PostgreSQL: {e}")))?;
        let backend = PgBackend {
            pool,
            url: opts.url.clone(),
            rows_since_analyze: std::sync::atomic::AtomicU64::new(0),
        };
        {
            let mut c = backend.conn()?;
            if opts.migrate {
                migrate::up_locked(&mut c, None, "open")?;
            } else {
                migrate::check(&mut *c)?;
            }
            if opts.create {
                admin::ensure_subject_secret(&mut *c)?;
            }
            let ctype: String = c
                .query_one(
                    "SELECT datctype FROM pg_database WHERE datname = current_database()",
                    &[],
                )
                .db()?
                .get(0);
            if !ctype.to_ascii_lowercase().replace('-', "").contains("utf8") {
                tracing::warn!(
                    lc_ctype = %ctype,
                    "the database's LC_CTYPE is not a UTF-8 locale: PostgreSQL's text search then cannot tell non-ASCII letters from punctuation, and keyword search of such text suffers; create the database with a UTF-8 locale (e.g. C.UTF-8)"
                );
            }
        }
        Ok(backend)
    }

    /// The URL the store was opened with (for messages; it may hold a password).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A pooled connection.
    pub(crate) fn conn(&self) -> Result<r2d2::PooledConnection<PostgresConnectionManager<NoTls>>> {
        self.pool.get().map_err(|e| {
            tracing::warn!(error = %e, "no PostgreSQL connection");
            Error::Busy
        })
    }

    fn subject_secret(&self) -> Result<Vec<u8>> {
        admin::subject_secret(&mut *self.conn()?)
    }

    /// A read of one statement, on a pooled connection.
    fn read<T>(&self, f: impl FnOnce(&mut postgres::Client) -> Result<T>) -> Result<T> {
        let mut c = self.conn()?;
        f(&mut c)
    }

    /// A read of several statements from one snapshot (REPEATABLE READ, read only).
    pub(crate) fn snapshot<T>(
        &self,
        f: impl FnOnce(&mut postgres::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut c = self.conn()?;
        let mut tx = c
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .db()?;
        let out = f(&mut tx)?;
        tx.commit().db()?;
        Ok(out)
    }

    /// Counts rows written and, past [`ANALYZE_AFTER_ROWS`], refreshes the statistics of
    /// the tables searches filter and join (the write has committed: a failure here is
    /// logged, never reported as the write's).
    fn after_rows(&self, rows: u64) {
        use std::sync::atomic::Ordering;
        if rows == 0
            || self.rows_since_analyze.fetch_add(rows, Ordering::Relaxed) + rows
                < ANALYZE_AFTER_ROWS
        {
            return;
        }
        self.rows_since_analyze.store(0, Ordering::Relaxed);
        let analyzed = self.conn().and_then(|mut c| {
            c.batch_execute("ANALYZE memories, chunks, events, sessions, documents, vectors")
                .db()
        });
        if let Err(e) = analyzed {
            tracing::warn!(error = %e, "ANALYZE after a bulk write failed");
        }
    }

    /// One write transaction under the store-wide write lock.
    pub(crate) fn write_tx<T>(
        &self,
        f: impl FnOnce(&mut postgres::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut c = self.conn()?;
        let mut tx = c.transaction().db()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])
            .db()?;
        let out = f(&mut tx)?;
        tx.commit().db()?;
        Ok(out)
    }
}

impl Backend for PgBackend {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn write(&self, scope: &Scope, ops: Vec<WriteOp>) -> Result<Vec<WriteResult>> {
        for op in &ops {
            if let WriteOp::CreateSubject(s) = op
                && s.strict
            {
                return Err(Error::invalid(
                    "strict",
                    "strict privacy needs field encryption, which the PostgreSQL backend does not have",
                ));
            }
        }
        let rows: u64 = ops.iter().map(write::rows_added).sum();
        let out = self.write_tx(|tx| {
            ops.into_iter()
                .map(|op| write::apply(tx, scope, op))
                .collect()
        })?;
        self.after_rows(rows);
        Ok(out)
    }

    fn get_tenant(&self, id: &str) -> Result<Option<Tenant>> {
        self.read(|c| tenants::get_tenant(c, id))
    }

    fn list_tenants(&self) -> Result<Vec<Tenant>> {
        self.read(tenants::list_tenants)
    }

    fn get_subject(&self, tenant: &str, id: &str) -> Result<Option<Subject>> {
        self.read(|c| tenants::get_subject(c, tenant, id))
    }

    fn find_subject(&self, tenant: &str, hash: &str) -> Result<Option<Subject>> {
        self.read(|c| tenants::find_subject(c, tenant, hash))
    }

    fn list_retention(&self, tenant: &str) -> Result<Vec<RetentionRule>> {
        self.read(|c| infra::list_retention(c, tenant))
    }

    fn export_subject(
        &self,
        tenant: &str,
        id: &str,
        at: Timestamp,
    ) -> Result<Option<SubjectExport>> {
        self.snapshot(|c| privacy::export_subject(c, tenant, id, at))
    }

    fn get_agent(&self, tenant: &str, id: &str) -> Result<Option<Agent>> {
        self.read(|c| tenants::get_agent(c, tenant, id))
    }

    fn list_agents(&self, tenant: &str, q: &AgentQuery) -> Result<Page<Agent>> {
        self.read(|c| tenants::list_agents(c, tenant, q))
    }

    fn agent_stats(&self, tenant: &str, id: &str) -> Result<AgentStats> {
        self.snapshot(|c| tenants::agent_stats(c, tenant, id))
    }

    fn get_session(&self, tenant: &str, id: &str) -> Result<Option<Session>> {
        self.read(|c| sessions::get_session(c, tenant, id))
    }

    fn list_sessions(&self, tenant: &str, q: &SessionQuery) -> Result<Page<Session>> {
        self.read(|c| sessions::list_sessions(c, tenant, q))
    }

    fn get_event(&self, tenant: &str, id: &str) -> Result<Option<Event>> {
        self.read(|c| sessions::get_event(c, tenant, id))
    }

    fn list_events(&self, tenant: &str, q: &EventQuery) -> Result<Page<Event>> {
        self.snapshot(|c| sessions::list_events(c, tenant, q))
    }

    fn get_memory(&self, tenant: &str, id: &str) -> Result<Option<Memory>> {
        self.read(|c| memories::get(c, tenant, id))
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
        self.read(|c| documents::get(c, tenant, id))
    }

    fn list_documents(&self, tenant: &str, q: &DocumentQuery) -> Result<Page<Document>> {
        self.read(|c| documents::list(c, tenant, q))
    }

    fn list_chunks(&self, tenant: &str, document_id: &str) -> Result<Vec<Chunk>> {
        self.snapshot(|c| documents::list_chunks(c, tenant, document_id))
    }

    fn get_chunk(&self, tenant: &str, id: &str) -> Result<Option<Chunk>> {
        self.read(|c| documents::get_chunk(c, tenant, id))
    }

    fn keyword_candidates(&self, tenant: &str, q: &KeywordQuery) -> Result<Vec<Candidate>> {
        self.snapshot(|c| search::keyword_candidates(c, tenant, q))
    }

    fn vector_candidates(&self, tenant: &str, q: &VectorQuery) -> Result<Vec<Candidate>> {
        self.snapshot(|c| vectors::candidates(c, tenant, q))
    }

    fn get_vectors(
        &self,
        tenant: &str,
        model: &str,
        records: &[(agentstore::search::Target, String)],
    ) -> Result<Vec<Option<Vec<f32>>>> {
        self.snapshot(|c| vectors::get_many(c, tenant, model, records))
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
        self.read(|c| infra::kv_get(c, tenant, key, now))
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
        self.read(|c| infra::get_lock(c, tenant, name))
    }

    fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>> {
        self.read(|c| api_keys::by_hash(c, hash))
    }

    fn list_api_keys(&self, tenant: &str) -> Result<Vec<ApiKey>> {
        self.read(|c| api_keys::list(c, tenant))
    }

    fn list_audit(&self, q: &AuditQuery) -> Result<Page<AuditEntry>> {
        self.read(|c| audit::list(c, q))
    }

    fn export(&self, out: &mut dyn FnMut(Record) -> Result<()>) -> Result<()> {
        self.snapshot(|c| transfer::export(c, out))
    }

    fn import(
        &self,
        scope: &Scope,
        records: &mut dyn Iterator<Item = Result<(u64, Record)>>,
    ) -> Result<ImportReport> {
        let report = self.write_tx(|tx| transfer::import(tx, scope, records))?;
        self.after_rows(report.counts.values().sum());
        Ok(report)
    }

    fn stats(&self) -> Result<Stats> {
        self.snapshot(|c| admin::stats(c))
    }

    fn verify(&self) -> Result<VerifyReport> {
        self.snapshot(|c| admin::verify(c))
    }

    fn maintenance(&self, opts: &MaintenanceOptions) -> Result<MaintenanceReport> {
        admin::maintenance(self, opts)
    }

    fn backup(&self, dir: &Path) -> Result<BackupManifest> {
        admin::backup(self, dir)
    }
}

/// Whether `c` answers: for health checks.
pub fn ping(c: &mut impl GenericClient) -> Result<()> {
    c.simple_query("SELECT 1").db().map(|_| ())
}

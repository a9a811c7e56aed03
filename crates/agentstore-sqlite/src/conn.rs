//! The data directory, connection setup and the writer / reader split.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentstore::{Error, Limits, Result};
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::keyring::{Keyring, MasterKeySource};
use crate::migrate;
use crate::sql::SqlResult;

/// Name of the database file inside the data directory.
pub const DB_FILE: &str = "agentstore.db";
/// Name of the file holding the secret that keys subject-id hashes.
pub const SECRET_FILE: &str = "secret.key";
/// Directory reserved for index files (vector indexes) added by later versions.
pub const INDEX_DIR: &str = "index";

/// Layout of a data directory:
///
/// ```text
/// agentstore-data/
///   agentstore.db        SQLite database (WAL mode; -wal and -shm beside it while open)
///   secret.key           32 random bytes keying HMAC-SHA-256 of subjects' external ids
///   index/               reserved for index files (vector indexes)
/// ```
#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The layout rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The database file.
    pub fn db_path(&self) -> PathBuf {
        self.root.join(DB_FILE)
    }

    /// The secret file.
    pub fn secret_path(&self) -> PathBuf {
        self.root.join(SECRET_FILE)
    }

    /// The index directory.
    pub fn index_dir(&self) -> PathBuf {
        self.root.join(INDEX_DIR)
    }

    /// Reads the subject secret, creating it when `create` is set and it is missing.
    pub fn subject_secret(&self, create: bool) -> Result<Vec<u8>> {
        let path = self.secret_path();
        match fs_err::read(&path) {
            Ok(b) if b.len() == 32 => Ok(b),
            Ok(b) => Err(Error::Corrupt(format!(
                "{} holds {} bytes, expected 32",
                path.display(),
                b.len()
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let secret: [u8; 32] = rand::random();
                if write_private_new(&path, &secret)? {
                    Ok(secret.to_vec())
                } else {
                    // Another process created the store at the same moment and won:
                    // everyone must use its secret, or subject hashes would disagree.
                    self.subject_secret(false)
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::Config(format!(
                "{} is missing; subjects' id hashes cannot be computed without it",
                path.display()
            ))),
            Err(e) => Err(Error::io(&path, e)),
        }
    }
}

/// Creates `path` readable only by its owner, complete or not at all: the bytes go to a
/// temp file unique to this call, which is then hard-linked to `path`. The link fails if
/// `path` exists, so of several processes creating a store at once exactly one wins.
/// Returns false when another process's file was there first.
fn write_private_new(path: &Path, bytes: &[u8]) -> Result<bool> {
    use std::io::Write;
    let tmp = path.with_extension(format!(
        "tmp.{}.{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let result = (|| {
        let mut f = opts.open(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(Error::io(path, e)),
        }
    })();
    // Best effort: a leftover temp file is harmless and the result above is what counts.
    let _ = std::fs::remove_file(&tmp);
    result
}

/// How hard a commit works to survive a power cut.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous = FULL`: the WAL is fsynced at every commit, so an acknowledged write
    /// survives power loss and OS crashes. The default: a memory store that forgets what
    /// it acknowledged is worse than a slow one.
    #[default]
    Full,
    /// `synchronous = NORMAL`: fsync only at checkpoints. Survives a crash of the process
    /// (the crash test kills writers with SIGKILL), but a power cut may lose the last
    /// commits. Several times faster for single-row transactions.
    Normal,
}

/// Options for opening a store.
///
/// ## Defaults
/// - `data_dir`: `./agentstore-data`
/// - `create`: false (opening a missing store is an error, so a typo in a path does not
///   silently start an empty store)
/// - `migrate`: false (a store with pending migrations refuses to open until
///   `agentstore migrate up`, so upgrades are deliberate)
/// - `durability`: [`Durability::Full`]
/// - `readers`: 4 pooled read connections
/// - `busy_timeout`: 5 s waiting for another process's write lock
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// The data directory.
    pub data_dir: PathBuf,
    /// Create the directory and database when missing.
    pub create: bool,
    /// Apply pending migrations on open.
    pub migrate: bool,
    /// Commit durability.
    pub durability: Durability,
    /// Maximum pooled read connections.
    pub readers: usize,
    /// How long to wait for another process's lock.
    pub busy_timeout: Duration,
    /// Input size limits.
    pub limits: Limits,
    /// When the in-memory keyword index of large stores is built (`keyword_index.rs`).
    pub keyword_index: crate::KeywordIndexMode,
    /// Parameters of the in-memory vector indexes: graph degree, build breadth, and
    /// whether the graph is traversed on int8 codes with exact f32 rescoring (the default,
    /// [`crate::Quantization::I8`]: lower latency once the vectors outgrow the CPU caches,
    /// 25% more memory) or on the f32 rows. An index snapshot built with another degree
    /// or breadth is rebuilt; one that differs only in the traversal mode is kept.
    pub vector_index: crate::IndexParams,
    /// The master key wrapping subjects' data keys (`keyring.rs`). With one, subjects'
    /// personal fields are encrypted; a store that has a keyring refuses to open without
    /// it.
    pub master_key: Option<MasterKeySource>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            data_dir: PathBuf::from("./agentstore-data"),
            create: false,
            migrate: false,
            durability: Durability::Full,
            readers: 4,
            busy_timeout: Duration::from_secs(5),
            limits: Limits::default(),
            keyword_index: crate::KeywordIndexMode::default(),
            vector_index: crate::IndexParams::default(),
            master_key: None,
        }
    }
}

impl OpenOptions {
    /// Options for `dir` with defaults elsewhere.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        OpenOptions {
            data_dir: dir.into(),
            ..Default::default()
        }
    }

    /// Create when missing and migrate to the latest schema (what `init` does).
    pub fn create(mut self) -> Self {
        self.create = true;
        self.migrate = true;
        self
    }

    /// Sets durability.
    pub fn durability(mut self, d: Durability) -> Self {
        self.durability = d;
        self
    }
}

/// The pragmas every agentstore connection runs after opening, for `d`. Public so the
/// benchmark's bare-rusqlite ceiling runs with exactly the same settings.
pub fn pragmas(d: Durability) -> String {
    let sync = match d {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    format!(
        // journal_mode=WAL: readers never block the writer nor the writer them, and a
        //   commit appends to the log instead of rewriting pages.
        // synchronous: see Durability.
        // foreign_keys: SQLite leaves them off by default; our composite keys enforce
        //   tenant isolation and parent/child integrity in the database itself.
        // cache_size=-65536: 64 MiB page cache per connection (negative = KiB), enough
        //   to keep the hot indexes of a few-GB store in memory.
        // mmap_size: reads of up to 1 GiB of the file through the page cache without a
        //   read() syscall per page.
        // temp_store=MEMORY: sorts and temp b-trees for ORDER BY stay off disk.
        // journal_size_limit: truncate the WAL back to 64 MiB after checkpoints so one
        //   large import does not leave a huge file behind.
        // wal_autocheckpoint=16384 pages (64 MiB): the default of 1,000 pages made a
        //   batch of 100 memory upserts (each touching several index pages) checkpoint on
        //   almost every commit; checkpointing less often writes a page that is dirtied
        //   repeatedly back once. Measured +22% on batched upserts (bench/README.md).
        // secure_delete: a deleted row's bytes are overwritten with zeros rather than left
        //   in free space, so forgotten, swept and erased text leaves the file (GDPR;
        //   the erasure test greps the data directory for it).
        "PRAGMA journal_mode = WAL;
         PRAGMA secure_delete = ON;
         PRAGMA synchronous = {sync};
         PRAGMA foreign_keys = ON;
         PRAGMA cache_size = -65536;
         PRAGMA mmap_size = 1073741824;
         PRAGMA temp_store = MEMORY;
         PRAGMA journal_size_limit = 67108864;
         PRAGMA wal_autocheckpoint = 16384;"
    )
}

/// Opens one connection with the pragmas every agentstore connection uses.
pub(crate) fn open_connection(
    path: &Path,
    opts: &OpenOptions,
    read_only: bool,
    keyring: &Arc<Keyring>,
) -> Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI
    };
    let conn = Connection::open_with_flags(path, flags).db()?;
    conn.busy_timeout(opts.busy_timeout).db()?;
    // Statements are prepared once per connection and reused; the list and filter
    // queries have many shapes, so the default cache of 16 would thrash.
    conn.set_prepared_statement_cache_capacity(256);
    conn.execute_batch(&pragmas(opts.durability)).db()?;
    if read_only {
        conn.execute_batch("PRAGMA query_only = ON;").db()?;
    }
    keyring.register(&conn)?;
    Ok(conn)
}

/// The writer connection and the pool of readers.
pub(crate) struct Connections {
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    path: PathBuf,
    opts: OpenOptions,
    keyring: Arc<Keyring>,
}

impl Connections {
    pub(crate) fn open(dir: &DataDir, opts: &OpenOptions) -> Result<Self> {
        let path = dir.db_path();
        if opts.create {
            fs_err::create_dir_all(dir.root()).map_err(|e| Error::io(dir.root(), e))?;
            fs_err::create_dir_all(dir.index_dir()).map_err(|e| Error::io(dir.index_dir(), e))?;
        } else if !path.exists() {
            return Err(Error::Config(format!(
                "no agentstore database at {}; run `agentstore init` first",
                path.display()
            )));
        }
        // Several processes opening a new store at once race on the first schema writes
        // (WAL switch, migration table), and SQLite can answer SQLITE_BUSY there without
        // waiting in its busy handler, to avoid a lock-upgrade deadlock. Opening is
        // idempotent (migrations are one exclusive transaction), so it is retried whole
        // within the busy timeout.
        let keyring = Keyring::open(dir.root(), opts.master_key.clone())?;
        let started = std::time::Instant::now();
        let writer = loop {
            let attempt = (|| {
                let mut writer = open_connection(&path, opts, false, &keyring)?;
                if opts.migrate {
                    migrate::up(&mut writer, None)?;
                }
                migrate::check(&writer)?;
                Ok(writer)
            })();
            match attempt {
                Err(Error::Busy) if started.elapsed() < opts.busy_timeout => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => break other?,
            }
        };
        Ok(Connections {
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
            path,
            opts: opts.clone(),
            keyring,
        })
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction on the writer; commits on `Ok`.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let _sealing = crate::keyring::Sealing::set(self.keyring.enabled());
        // IMMEDIATE takes the write lock up front: a transaction that reads and then
        // writes cannot fail half-way with SQLITE_BUSY when another process wrote between.
        let tx = w
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .db()?;
        let out = f(&tx)?;
        tx.commit().db()?;
        Ok(out)
    }

    /// Runs `f` with exclusive use of the writer connection, outside any transaction
    /// (checkpoints, VACUUM).
    pub(crate) fn with_writer<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut w)
    }

    /// Runs `f` on a pooled read connection inside one read transaction, so everything
    /// it reads comes from one snapshot.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.with_reader(|conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Deferred)
                .db()?;
            let out = f(&tx)?;
            tx.finish().db()?;
            Ok(out)
        })
    }

    /// Runs a read made of a single statement on a pooled connection. SQLite gives one
    /// statement its own read transaction, so an explicit BEGIN / COMMIT around it would
    /// only add two statement executions to every point read.
    pub(crate) fn read_one<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.with_reader(|conn| f(conn))
    }

    fn with_reader<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let conn = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut conn = match conn {
            Some(c) => c,
            None => open_connection(&self.path, &self.opts, true, &self.keyring)?,
        };
        let out = f(&mut conn);
        let mut pool = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < self.opts.readers.max(1) {
            pool.push(conn);
        }
        out
    }

    /// The keyring of subjects' data keys.
    pub(crate) fn keyring(&self) -> &Arc<Keyring> {
        &self.keyring
    }

    /// The database path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

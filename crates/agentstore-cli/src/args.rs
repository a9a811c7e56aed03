//! Raw command-line arguments, exactly as typed.
//!
//! Like ripgrep's `LowArgs`, these only hold what the user wrote; clap checks the shape
//! (which flags exist, which take values). Turning strings into namespaces, times and
//! library queries happens in [`crate::config`], so every value error there becomes an
//! `agentstore::Error` with a stable code.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// agentstore: the storage and memory engine for AI agents.
#[derive(Debug, Parser)]
#[command(name = "agentstore", version, propagate_version = true)]
pub struct RawArgs {
    /// Data directory of the store [default: ./agentstore-data, or for `serve` the
    /// config file's store.data_dir].
    #[arg(long, global = true, env = "AGENTSTORE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// A PostgreSQL database (with the pgvector extension) holds the store instead of a
    /// data directory: postgres://user[:password]@host[:port]/database. Several servers
    /// can share it [or the serve config file's store.database_url].
    #[arg(
        long,
        global = true,
        env = "AGENTSTORE_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,

    /// Machine output: one JSON document on stdout (errors too).
    #[arg(long, global = true)]
    pub json: bool,

    /// Tenant every read and write is confined to.
    #[arg(
        long,
        global = true,
        env = "AGENTSTORE_TENANT",
        default_value = "default",
        value_name = "T"
    )]
    pub tenant: String,

    /// Actor recorded in the audit log [default: cli:$USER, or cli].
    #[arg(long, global = true, env = "AGENTSTORE_ACTOR", value_name = "NAME")]
    pub actor: Option<String>,

    /// Commit durability: `full` survives power loss, `normal` only process crashes
    /// [default: full, or for `serve` the config file's store.durability].
    #[arg(long, global = true, value_enum)]
    pub durability: Option<DurabilityArg>,

    /// Directory of a local sentence-embedding model (config.json, tokenizer.json,
    /// model.safetensors; `scripts/fetch-model.sh` puts all-MiniLM-L6-v2 in
    /// .models/all-MiniLM-L6-v2). Memories and chunks are then embedded on write and
    /// searches become hybrid (keyword + vector) by default.
    #[arg(long, global = true, env = "AGENTSTORE_MODEL_DIR", value_name = "DIR")]
    pub model_dir: Option<PathBuf>,

    /// Base URL of an OpenAI-compatible embeddings endpoint (instead of --model-dir), e.g.
    /// http://127.0.0.1:8080/v1; the key comes from AGENTSTORE_EMBEDDING_API_KEY.
    #[arg(
        long,
        global = true,
        env = "AGENTSTORE_EMBEDDING_URL",
        value_name = "URL"
    )]
    pub embedding_url: Option<String>,

    /// Model name sent to the embeddings endpoint.
    #[arg(
        long,
        global = true,
        env = "AGENTSTORE_EMBEDDING_MODEL",
        value_name = "NAME"
    )]
    pub embedding_model: Option<String>,

    /// Dimension of the endpoint model's vectors.
    #[arg(
        long,
        global = true,
        env = "AGENTSTORE_EMBEDDING_DIM",
        value_name = "N"
    )]
    pub embedding_dim: Option<usize>,

    /// File holding the master key (64 hex digits) that wraps each subject's data key:
    /// with one, subjects' personal fields are encrypted at rest (docs/privacy.md). The
    /// key itself may come from AGENTSTORE_MASTER_KEY instead. `keys generate-master`
    /// prints a new one.
    #[arg(
        long,
        global = true,
        env = "AGENTSTORE_MASTER_KEY_FILE",
        value_name = "FILE"
    )]
    pub master_key_file: Option<PathBuf>,

    /// The master key as 64 hex digits; from the environment only (a flag would show it
    /// in the process list).
    #[arg(
        long = "master-key-from-env",
        global = true,
        env = "AGENTSTORE_MASTER_KEY",
        hide = true,
        hide_env_values = true
    )]
    pub master_key: Option<String>,

    /// Embed events' content too (off by default: appends stay fast).
    #[arg(long, global = true, env = "AGENTSTORE_EMBED_EVENTS")]
    pub embed_events: bool,

    #[command(subcommand)]
    pub command: RawCommand,
}

/// `--durability` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DurabilityArg {
    /// fsync the WAL at every commit.
    Full,
    /// fsync only at checkpoints.
    Normal,
}

/// `retention` subcommands (none: list the rules).
#[derive(Debug, Subcommand)]
pub enum RetentionAction {
    /// Keep ENTITY's records (session, memory, document, usage, metric) DAYS days after
    /// their last change.
    Set {
        /// session, memory, document, usage or metric.
        entity: String,
        /// Days to keep (1 to 365000).
        days: i64,
        /// Only this kind (session or memory kind, document type, metric name).
        #[arg(long, value_name = "KIND")]
        kind: Option<String>,
    },
    /// Remove the rule for ENTITY (and --kind): its records are kept again.
    Clear {
        /// session, memory, document, usage or metric.
        entity: String,
        /// The rule's kind.
        #[arg(long, value_name = "KIND")]
        kind: Option<String>,
    },
    /// List the rules.
    List,
}

/// `keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Create a key for --tenant; its secret is printed once and never stored.
    Create {
        /// Scopes, comma-separated: read, write, admin.
        #[arg(long, value_name = "LIST", default_value = "read,write")]
        scopes: String,
        /// A label for people.
        #[arg(long, value_name = "NAME", default_value = "cli")]
        name: String,
        /// Days until the key expires [default: never].
        #[arg(long, value_name = "DAYS")]
        expires_in_days: Option<u32>,
    },
    /// List the tenant's keys (never their secrets).
    List,
    /// Print a new random master key (64 hex digits) for field encryption; store it in
    /// a file readable only by the server's user.
    GenerateMaster,
    /// Re-wrap every subject's data key under a new master key, in one transaction. The
    /// current key comes from --master-key-file / AGENTSTORE_MASTER_KEY as usual. A
    /// running server that reads its key from a file follows once that file holds the
    /// new key: write the new key to it first, then rotate.
    RotateMaster {
        /// File holding the new master key.
        #[arg(long, value_name = "FILE")]
        new_key_file: PathBuf,
    },
    /// Write a checked copy of the keyring (subjects' data keys, wrapped by the master
    /// key) to a new file, for disaster recovery. Backups never hold the keyring; keep
    /// this copy apart from them and short-lived: a copy taken before an erasure can
    /// still decrypt that subject in older backups (docs/privacy.md).
    BackupKeyring {
        /// The file to write (mode 0600); it must not exist.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Put a keyring copy from backup-keyring back into a data directory whose keyring
    /// was lost (missing, or empty because the store was opened again since). A keyring
    /// holding any data key is never replaced. Stop every process using the store first.
    RestoreKeyring {
        /// The copy written by backup-keyring.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
    },
    /// Revoke a key; it stops working at once.
    Revoke {
        /// Key id.
        id: String,
    },
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum RawCommand {
    /// Create the data directory and database, migrate it and create the tenant.
    Init,
    /// Serve the REST API (/v1, /v1/openapi.json, /healthz, /readyz, /metrics) until
    /// SIGINT or SIGTERM; requests in flight are finished before exit.
    Serve {
        /// Listen address [default: the preset's, 127.0.0.1:8080].
        #[arg(long, value_name = "HOST:PORT")]
        addr: Option<String>,
        /// TOML configuration file (see docs/server.md); environment variables
        /// AGENTSTORE_* override it, flags override both.
        #[arg(long, env = "AGENTSTORE_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
        /// Defaults to start from: dev, test or prod [default: dev, or the file's].
        #[arg(long, env = "AGENTSTORE_PRESET", value_name = "NAME")]
        preset: Option<String>,
    },
    /// Serve the MCP tools (remember, recall, forget, append_event, get_session_context,
    /// search_documents) on stdin/stdout for a desktop agent, as --tenant.
    Mcp,
    /// Create, list and revoke the tenant's API keys for the server.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Show, set and clear the tenant's retention rules: how many days records of an
    /// entity (and kind) are kept after their last change. `maintenance` and the
    /// server's sweeper remove older records.
    Retention {
        #[command(subcommand)]
        action: Option<RetentionAction>,
    },
    /// Show, apply or roll back schema migrations.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Copy a whole store into a new, empty one, on the same or the other backend, then
    /// verify it: counts and SHA-256 per record type and per vector model. A location
    /// is `sqlite:DIR` (a data directory) or a `postgres://` URL.
    Copy {
        /// Where to read: `sqlite:DIR` or `postgres://...`.
        #[arg(long, value_name = "LOCATION")]
        from: String,
        /// Where to write (created, must be empty): `sqlite:DIR` or `postgres://...`.
        #[arg(long, value_name = "LOCATION")]
        to: String,
    },
    /// Load a JSON Lines export in one transaction (into a new store when none exists).
    Import {
        /// File to read, or `-` for stdin.
        file: String,
    },
    /// Write every record as JSON Lines (with --json and no --out, the lines are the
    /// machine output).
    Export {
        /// Write to this file instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Everything stored about a subject (its sessions, events, checkpoints, usage,
    /// memories with every version, documents, chunks, and the audit entries about them)
    /// as one JSON document: a GDPR access request.
    ExportSubject {
        /// Subject id.
        id: String,
        /// Write to this file instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Erase a subject and its personal data everywhere (rows, full-text entries,
    /// vectors; the freed bytes are zeroed): a GDPR erasure, which cannot be undone. The
    /// audit log keeps a tombstone that holds only counts.
    EraseSubject {
        /// Subject id.
        id: String,
    },
    /// Take an online, consistent backup into an empty directory.
    Backup {
        /// Target directory (must not exist or be empty).
        dir: PathBuf,
    },
    /// Restore a backup into the data directory.
    Restore {
        /// Backup directory.
        dir: PathBuf,
        /// Replace an existing store.
        #[arg(long)]
        force: bool,
    },
    /// Check the store (or a backup) for damage; exit code 1 when a check fails.
    Verify {
        /// Check this backup directory against its manifest instead of the store.
        #[arg(long, value_name = "DIR")]
        backup: Option<PathBuf>,
    },
    /// Rows and bytes per entity, and the store's files.
    Stats,
    /// Remove expired records, optimise, checkpoint the WAL and vacuum.
    Maintenance {
        /// Skip rebuilding the database file.
        #[arg(long)]
        no_vacuum: bool,
    },
    /// List tenants.
    Tenants,
    /// List sessions, newest first.
    Sessions {
        /// Only this kind (conversation, episode, task, ...).
        #[arg(long, value_name = "K")]
        kind: Option<String>,
        /// Most to show (1 to 1000).
        #[arg(long, value_name = "N", default_value_t = 20)]
        limit: usize,
    },
    /// List a session's events in order.
    Events {
        /// Session id.
        session_id: String,
        /// Most to show (1 to 1000).
        #[arg(long, value_name = "N", default_value_t = 20)]
        limit: usize,
    },
    /// List current memories, newest first.
    Memories {
        /// Namespace prefix, as a/b.
        #[arg(long, value_name = "a/b")]
        namespace: Option<String>,
        /// Only this kind (fact, preference, pattern, ...); repeat for several.
        #[arg(long, value_name = "K")]
        kind: Vec<String>,
        /// Most to show (1 to 1000).
        #[arg(long, value_name = "N", default_value_t = 20)]
        limit: usize,
    },
    /// Read one memory.
    Memory {
        #[command(subcommand)]
        action: MemoryAction,
    },
    /// List audit entries of the tenant in log order.
    Audit {
        /// Most to show (1 to 1000).
        #[arg(long, value_name = "N", default_value_t = 20)]
        limit: usize,
        /// Only entries after this sequence number.
        #[arg(long, value_name = "SEQ")]
        after: Option<i64>,
        /// Entries of every tenant and store-wide operations.
        #[arg(long)]
        all_tenants: bool,
    },
    /// Search memories, document chunks and events by keyword (BM25, English stemming).
    Search {
        /// Query text. Any word may match; records matching more and rarer words rank
        /// higher. Quotes, `*`, `-`, `:` and AND / OR / NOT are searched as text, never
        /// as operators.
        text: String,
        /// Only this kind of record; repeat for several [default: all].
        #[arg(long, value_enum, value_name = "TARGET")]
        target: Vec<TargetArg>,
        /// Namespace prefix, as a/b (a chunk's document's, an event's session's).
        #[arg(long, value_name = "a/b")]
        namespace: Option<String>,
        /// Only this kind (memory kind, event kind, or a chunk's document type); repeat
        /// for several.
        #[arg(long, value_name = "K")]
        kind: Vec<String>,
        /// Only events of this session and memories derived from it.
        #[arg(long, value_name = "ID")]
        session: Option<String>,
        /// Most hits to show (1 to 1000).
        #[arg(long, value_name = "N", default_value_t = 10)]
        limit: usize,
        /// Favour recent records: a score halves every SECS seconds of age.
        #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
        half_life: Option<f64>,
        /// keyword (BM25), vector, or hybrid [default: hybrid with an embedder, else
        /// keyword].
        #[arg(long, value_enum, value_name = "MODE")]
        mode: Option<ModeArg>,
        /// Weighted fusion instead of reciprocal rank fusion: the keyword list's weight
        /// (the vector list gets 1 - W).
        #[arg(long, value_name = "W")]
        keyword_weight: Option<f64>,
        /// Multiply a memory's score by 1 + W x importance.
        #[arg(long, value_name = "W")]
        importance_weight: Option<f64>,
        /// Diversify by maximal marginal relevance (1: relevance only, 0: diversity only).
        #[arg(long, value_name = "LAMBDA")]
        mmr: Option<f64>,
        /// Search breadth of the vector index (larger: slower, closer to exact).
        #[arg(long, value_name = "N")]
        ef: Option<usize>,
        /// Compare with every vector instead of using the index.
        #[arg(long)]
        exact: bool,
    },
    /// Embed every record that has no vector of the configured model yet, in every
    /// tenant, then (unless --keep-old) delete the vectors of other models. Readers keep
    /// searching with the old model's vectors until they are deleted.
    Reembed {
        /// Keep the vectors of other models.
        #[arg(long)]
        keep_old: bool,
        /// Records per batch (one transaction each).
        #[arg(long, value_name = "N", default_value_t = 256)]
        batch: usize,
    },
    /// Load text, Markdown and JSON Lines files as documents for retrieval (RAG).
    ///
    /// Directories are walked recursively; a changed file replaces its document, an
    /// unchanged one is left alone. Every file is checked before anything is written.
    Ingest {
        /// Files or directories.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Namespace of the documents, as a/b [default: the root].
        #[arg(long, value_name = "a/b")]
        namespace: Option<String>,
        /// Document type instead of the format's (text, markdown, jsonl).
        #[arg(long, value_name = "T")]
        doc_type: Option<String>,
        /// Longest chunk, in characters (16 to 100000) [default: 1000].
        #[arg(long, value_name = "N")]
        chunk_size: Option<usize>,
        /// Characters shared by neighbouring chunks, less than half the chunk size
        /// [default: 100, or a tenth of --chunk-size when only that is given].
        #[arg(long, value_name = "N")]
        chunk_overlap: Option<usize>,
        /// Only files in directories whose name (or, for a pattern with `/`, path below
        /// the directory) matches; `*`, `?` and `**`; repeat for several.
        #[arg(long, value_name = "PATTERN")]
        glob: Vec<String>,
    },
    /// Store a memory (an upsert when --key is given).
    Remember {
        /// The memory's text.
        content: String,
        /// Upsert key: new content under the same key supersedes the current version.
        #[arg(long, value_name = "K")]
        key: Option<String>,
        /// Namespace, as a/b.
        #[arg(long, value_name = "a/b")]
        namespace: Option<String>,
        /// Kind (default fact).
        #[arg(long, value_name = "K")]
        kind: Option<String>,
    },
    /// Create sessions.
    Session {
        #[command(subcommand)]
        action: SessionAction,
    },
    /// Append events.
    Event {
        #[command(subcommand)]
        action: EventAction,
    },
}

/// `search --mode` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// BM25 full text.
    Keyword,
    /// Nearest vectors.
    Vector,
    /// Both, fused.
    Hybrid,
}

/// `search --target` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TargetArg {
    /// Memories.
    Memory,
    /// Document chunks.
    Chunk,
    /// Session events.
    Event,
}

/// `migrate` actions.
#[derive(Debug, Subcommand)]
pub enum MigrateAction {
    /// Show applied and pending migrations.
    Status,
    /// Apply pending migrations.
    Up {
        /// Stop at this version (default: the latest).
        #[arg(long, value_name = "N")]
        to: Option<i64>,
    },
    /// Roll back migrations (one step by default).
    Down {
        /// Roll back to this version.
        #[arg(long, value_name = "N")]
        to: Option<i64>,
        /// Allow rolling back migration 1, which drops every table and all data.
        #[arg(long)]
        force: bool,
    },
}

/// `memory` actions.
#[derive(Debug, Subcommand)]
pub enum MemoryAction {
    /// A memory version by id.
    Get {
        /// Memory id.
        id: String,
    },
    /// The version of a key, current or as of a time.
    Key {
        /// Namespace as a/b (`/` for the root).
        namespace: String,
        /// Key.
        key: String,
        /// The version valid at this RFC 3339 time instead of the current one.
        #[arg(long, value_name = "RFC3339")]
        as_of: Option<String>,
    },
}

/// `session` actions.
#[derive(Debug, Subcommand)]
pub enum SessionAction {
    /// Start a session; prints its id.
    Create {
        /// conversation, episode, task, learning, evolution_round, run, or custom.
        kind: String,
        /// Title.
        #[arg(long, value_name = "T")]
        title: Option<String>,
    },
}

/// `event` actions.
#[derive(Debug, Subcommand)]
pub enum EventAction {
    /// Append an event to a session.
    Append {
        /// Session id.
        session_id: String,
        /// message, step, tool_call, decision, ...
        #[arg(long, value_name = "K")]
        kind: String,
        /// user, assistant, system, tool, ...
        #[arg(long, value_name = "R")]
        role: Option<String>,
        /// Text content.
        content: String,
    },
}

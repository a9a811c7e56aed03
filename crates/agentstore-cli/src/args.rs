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
    /// Data directory of the store.
    #[arg(
        long,
        global = true,
        env = "AGENTSTORE_DATA_DIR",
        default_value = "./agentstore-data",
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,

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

    /// Commit durability: `full` survives power loss, `normal` only process crashes.
    #[arg(long, global = true, value_enum, default_value_t = DurabilityArg::Full)]
    pub durability: DurabilityArg,

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

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum RawCommand {
    /// Create the data directory and database, migrate it and create the tenant.
    Init,
    /// Show, apply or roll back schema migrations.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
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

//! One error type for the whole engine.
//!
//! Variants are grouped by what the caller does next: fix the request (`InvalidInput`,
//! `TooLarge`, `NotFound`, `AlreadyExists`, `Conflict`, `ConsentRequired`, `LockHeld`,
//! `StaleToken`, `Import`),
//! fix the deployment (`SchemaMismatch`, `SchemaPending`, `Config`), or retry / escalate
//! (`Busy`, `Io`, `Database`, `Corrupt`, `Embedding`). Every variant has a stable [`Error::code`] that
//! the CLI prints and the server will map to an HTTP status in one table.

use std::path::PathBuf;

/// Result alias used across agentstore crates.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in agentstore.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The record does not exist in this tenant. Records of other tenants are reported the
    /// same way, so a caller cannot probe for ids it does not own.
    #[error("{entity} '{id}' not found")]
    NotFound {
        /// Kind of record, e.g. `session`.
        entity: &'static str,
        /// The id the caller asked for.
        id: String,
    },
    /// A record with this identity already exists.
    #[error("{entity} '{id}' already exists")]
    AlreadyExists {
        /// Kind of record.
        entity: &'static str,
        /// The conflicting id or key.
        id: String,
    },
    /// A field failed validation; nothing was written.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// Name of the offending field.
        field: String,
        /// What is wrong with it, for a person.
        reason: String,
    },
    /// A field exceeds its size limit; nothing was written.
    #[error("{field} is {size} bytes, more than the limit of {limit} bytes")]
    TooLarge {
        /// Name of the offending field.
        field: String,
        /// Its size in bytes.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The write conflicts with the current state (e.g. an append-only record was to be changed).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Personal data of a subject under 13 is refused until parental consent is recorded
    /// (COPPA); nothing was written.
    #[error(
        "subject '{subject}' is under 13 and has no recorded parental consent: personal data \
         is not stored until it is (PUT /v1/subjects/{subject}/consent with \
         parental_consent_by)"
    )]
    ConsentRequired {
        /// The subject.
        subject: String,
    },
    /// An encrypted field whose data key is not in the keyring: its subject was erased
    /// (the key destroyed), or this is a restored copy of the store without the keys.
    #[error("key unavailable: an encrypted field cannot be read: {0}")]
    KeyUnavailable(String),
    /// A named lock is held by someone else.
    #[error("lock '{name}' is held by '{holder}' until {expires_at}")]
    LockHeld {
        /// Lock name.
        name: String,
        /// Current holder.
        holder: String,
        /// When the current lease runs out (RFC 3339).
        expires_at: String,
    },
    /// A fencing token is no longer the current one for its lock.
    #[error("fencing token {token} for lock '{name}' is stale (current: {current})")]
    StaleToken {
        /// Lock name.
        name: String,
        /// The token presented.
        token: i64,
        /// The lock's current token (0 if never acquired).
        current: i64,
    },
    /// A JSON Lines import failed on one line; the whole import was rolled back.
    #[error("line {line}: {message}")]
    Import {
        /// 1-based line number in the input.
        line: u64,
        /// What is wrong with that line.
        message: String,
    },
    /// The database was written by a different set of migrations than this binary knows.
    #[error("schema mismatch: {0}")]
    SchemaMismatch(String),
    /// The database is older than this binary; it must be migrated before use.
    #[error(
        "the database has {pending} pending migration(s) (at version {current}, binary expects {latest}); run `agentstore migrate up`"
    )]
    SchemaPending {
        /// Applied version.
        current: i64,
        /// Latest version known to the binary.
        latest: i64,
        /// Number of migrations not applied yet.
        pending: usize,
    },
    /// Invalid configuration (data directory, options).
    #[error("configuration: {0}")]
    Config(String),
    /// Integrity checks found damage (database, audit chain or backup manifest).
    #[error("corrupt: {0}")]
    Corrupt(String),
    /// The database stayed locked by another process longer than the busy timeout.
    #[error("database is busy; retry later")]
    Busy,
    /// A file-system operation failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The embedder failed (model files, inference, or an embeddings endpoint). `code` is
    /// the embedder's own stable code (e.g. `transport_error`, `timeout`), kept so an
    /// operator can tell a broken model directory from an unreachable endpoint.
    #[error("embedding failed ({code}): {message}")]
    Embedding {
        /// The embedder's error code.
        code: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The storage backend failed in a way the engine cannot classify.
    #[error("database error: {0}")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// Stable machine-readable code. These strings are API: never rename one.
    pub fn code(&self) -> &'static str {
        match self {
            Error::NotFound { .. } => "not_found",
            Error::AlreadyExists { .. } => "already_exists",
            Error::InvalidInput { .. } => "invalid_input",
            Error::TooLarge { .. } => "too_large",
            Error::Conflict(_) => "conflict",
            Error::ConsentRequired { .. } => "consent_required",
            Error::KeyUnavailable(_) => "key_unavailable",
            Error::LockHeld { .. } => "lock_held",
            Error::StaleToken { .. } => "stale_token",
            Error::Import { .. } => "import_error",
            Error::SchemaMismatch(_) => "schema_mismatch",
            Error::SchemaPending { .. } => "schema_pending",
            Error::Config(_) => "config_error",
            Error::Corrupt(_) => "corrupt",
            Error::Busy => "busy",
            Error::Io { .. } => "io_error",
            Error::Embedding { .. } => "embedding_error",
            Error::Database(_) => "database_error",
        }
    }

    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidInput {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::NotFound`].
    pub fn not_found(entity: &'static str, id: impl Into<String>) -> Self {
        Error::NotFound {
            entity,
            id: id.into(),
        }
    }

    /// Shorthand for [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// True when the caller sent something wrong (as opposed to a server-side failure).
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            Error::NotFound { .. }
                | Error::AlreadyExists { .. }
                | Error::InvalidInput { .. }
                | Error::TooLarge { .. }
                | Error::Conflict(_)
                | Error::ConsentRequired { .. }
                | Error::LockHeld { .. }
                | Error::StaleToken { .. }
                | Error::Import { .. }
        )
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::invalid("json", e.to_string())
    }
}

//! Raw arguments resolved into what the commands run with (ripgrep's `HiArgs`).
//!
//! Every value the user typed is checked here, before the store is opened: a bad
//! namespace, time, limit or tenant id becomes an `agentstore::Error::InvalidInput`
//! (exit code 2) and nothing is touched.

use std::path::PathBuf;

use agentstore::backend::{EventQuery, MemoryQuery, RetentionEntity, SessionQuery};
use agentstore::codec::validate_id;
use agentstore::search::{Fusion, SearchFilter, SearchMode, SearchRequest, Target};
use agentstore::text::ChunkOptions;
use agentstore::{
    Error, Limits, Namespace, NewEvent, NewMemory, NewSession, Result, Scope, Timestamp,
};
use agentstore_sqlite::Durability;

use crate::args::{
    DurabilityArg, EventAction, KeysAction, MemoryAction, MigrateAction, ModeArg, RawArgs,
    RawCommand, RetentionAction, SessionAction, TargetArg,
};

/// Largest page the engine serves in one call.
const MAX_LIMIT: usize = 1000;

/// Everything a command needs, validated.
#[derive(Debug)]
pub struct Config {
    /// Data directory.
    pub data_dir: PathBuf,
    /// PostgreSQL URL of the store (instead of the data directory).
    pub database_url: Option<String>,
    /// Machine output.
    pub json: bool,
    /// Tenant.
    pub tenant: String,
    /// Audit actor.
    pub actor: String,
    /// Commit durability.
    pub durability: Durability,
    /// When the keyword index is built (None: the engine's default).
    pub keyword_index: Option<agentstore_sqlite::KeywordIndexMode>,
    /// Where vectors come from (None: only vectors the caller sends).
    pub embedding: Option<EmbeddingConfig>,
    /// Embed events too.
    pub embed_events: bool,
    /// The master key of field encryption, if any.
    pub master_key: Option<agentstore_sqlite::MasterKeySource>,
    /// What to do.
    pub command: Command,
}

/// The embedder a command's store uses.
#[derive(Debug, Clone)]
pub enum EmbeddingConfig {
    /// A local model directory.
    Local(PathBuf),
    /// An OpenAI-compatible endpoint.
    Endpoint {
        /// Base URL.
        url: String,
        /// Model name.
        model: String,
        /// Vector length.
        dimension: usize,
    },
}

/// Where `import` reads from.
#[derive(Debug)]
pub enum Input {
    /// Standard input.
    Stdin,
    /// A file.
    File(PathBuf),
}

/// What `ingest` loads and how.
#[derive(Debug)]
pub struct IngestRequest {
    /// Files and directories as given.
    pub paths: Vec<PathBuf>,
    /// Namespace of every document.
    pub namespace: Namespace,
    /// Overrides the format's document type (a JSON Lines line's own `doc_type` wins).
    pub doc_type: Option<String>,
    /// Chunking of every document.
    pub chunking: ChunkOptions,
    /// Patterns a file found in a directory must match (any of them); empty: all.
    pub globs: Vec<String>,
}

/// A resolved subcommand, carrying library request types where one exists.
#[derive(Debug)]
pub enum Command {
    Init,
    Serve(Box<crate::serve_config::ServeSettings>),
    KeysCreate {
        scopes: Vec<agentstore::KeyScope>,
        name: String,
        expires_at: Option<Timestamp>,
    },
    Mcp,
    KeysList,
    KeysGenerateMaster,
    KeysRotateMaster {
        new_key_file: PathBuf,
    },
    KeysBackupKeyring {
        out: PathBuf,
    },
    KeysRestoreKeyring {
        from: PathBuf,
    },
    KeysRevoke {
        id: String,
    },
    MigrateStatus,
    MigrateUp {
        to: Option<i64>,
    },
    MigrateDown {
        to: Option<i64>,
        force: bool,
    },
    Copy {
        from: String,
        to: String,
    },
    Import(Input),
    Export {
        out: Option<PathBuf>,
    },
    ExportSubject {
        id: String,
        out: Option<PathBuf>,
    },
    /// Set (days Some), clear (None) or, with no entity, list the retention rules.
    Retention(Option<(RetentionEntity, Option<String>, Option<i64>)>),
    EraseSubject {
        id: String,
    },
    Backup {
        dir: PathBuf,
    },
    Restore {
        dir: PathBuf,
        force: bool,
    },
    Verify {
        backup: Option<PathBuf>,
    },
    Stats,
    Maintenance {
        vacuum: bool,
    },
    Tenants,
    Sessions(SessionQuery),
    Events(EventQuery),
    Memories(MemoryQuery),
    MemoryGet {
        id: String,
    },
    MemoryKey {
        namespace: Namespace,
        key: String,
        as_of: Option<Timestamp>,
    },
    Audit {
        limit: usize,
        after: Option<i64>,
        all_tenants: bool,
    },
    Search(Box<SearchRequest>),
    Reembed {
        keep_old: bool,
        batch: usize,
    },
    Remember(Box<NewMemory>),
    Ingest(Box<IngestRequest>),
    SessionCreate(Box<NewSession>),
    EventAppend {
        session_id: String,
        event: Box<NewEvent>,
    },
}

impl Command {
    /// The subcommand as typed, recorded in the audit context of every write.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Init => "init",
            Command::Serve(_) => "serve",
            Command::KeysCreate { .. } => "keys create",
            Command::KeysList => "keys list",
            Command::KeysGenerateMaster => "keys generate-master",
            Command::KeysRotateMaster { .. } => "keys rotate-master",
            Command::Mcp => "mcp",
            Command::KeysRevoke { .. } => "keys revoke",
            Command::KeysBackupKeyring { .. } => "keys backup-keyring",
            Command::KeysRestoreKeyring { .. } => "keys restore-keyring",
            Command::MigrateStatus => "migrate status",
            Command::MigrateUp { .. } => "migrate up",
            Command::MigrateDown { .. } => "migrate down",
            Command::Copy { .. } => "copy",
            Command::Import(_) => "import",
            Command::Export { .. } => "export",
            Command::Backup { .. } => "backup",
            Command::Restore { .. } => "restore",
            Command::Verify { .. } => "verify",
            Command::Stats => "stats",
            Command::ExportSubject { .. } => "export-subject",
            Command::Retention(_) => "retention",
            Command::EraseSubject { .. } => "erase-subject",
            Command::Maintenance { .. } => "maintenance",
            Command::Tenants => "tenants",
            Command::Sessions(_) => "sessions",
            Command::Events(_) => "events",
            Command::Memories(_) => "memories",
            Command::MemoryGet { .. } => "memory get",
            Command::MemoryKey { .. } => "memory key",
            Command::Audit { .. } => "audit",
            Command::Search(_) => "search",
            Command::Reembed { .. } => "reembed",
            Command::Remember(_) => "remember",
            Command::Ingest(_) => "ingest",
            Command::SessionCreate(_) => "session create",
            Command::EventAppend { .. } => "event append",
        }
    }
}

impl Config {
    /// Validates raw arguments. `user` is `$USER`, passed in so the default actor is
    /// decided in one visible place.
    pub fn resolve(raw: RawArgs, user: Option<String>) -> Result<Config> {
        validate_id("tenant", &raw.tenant)?;
        let actor = match raw.actor {
            Some(a) => {
                if a.trim().is_empty() || a.chars().any(char::is_control) {
                    return Err(Error::invalid(
                        "actor",
                        "must be non-empty text without control characters",
                    ));
                }
                a
            }
            None => match user.filter(|u| !u.is_empty()) {
                Some(u) => format!("cli:{u}"),
                None => "cli".to_owned(),
            },
        };
        let command = resolve_command(raw.command)?;
        // `serve` may name its store in its config file; a flag (or its variable) wins.
        let file = match &command {
            Command::Serve(s) => s.store.clone(),
            _ => Default::default(),
        };
        let model_dir = match (&raw.model_dir, &raw.embedding_url) {
            (None, None) => file.model_dir,
            _ => raw.model_dir,
        };
        let embedding = match (model_dir, raw.embedding_url) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "model-dir",
                    "give either --model-dir or --embedding-url, not both",
                ));
            }
            (Some(dir), None) => Some(EmbeddingConfig::Local(dir)),
            (None, Some(url)) => {
                let model = raw
                    .embedding_model
                    .filter(|m| !m.trim().is_empty())
                    .ok_or_else(|| {
                        Error::invalid("embedding-model", "an endpoint needs --embedding-model")
                    })?;
                let dimension = raw
                    .embedding_dim
                    .filter(|d| (1..=agentstore::embedding::MAX_DIMENSION).contains(d))
                    .ok_or_else(|| {
                        Error::invalid(
                            "embedding-dim",
                            "an endpoint needs --embedding-dim between 1 and 8192",
                        )
                    })?;
                Some(EmbeddingConfig::Endpoint {
                    url,
                    model,
                    dimension,
                })
            }
            (None, None) => None,
        };
        let master_key = match (raw.master_key, raw.master_key_file.or(file.master_key_file)) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "master-key-file",
                    "give either AGENTSTORE_MASTER_KEY or a master key file, not both",
                ));
            }
            (Some(hex), None) => Some(agentstore_sqlite::MasterKeySource::Key(
                agentstore_sqlite::MasterKey::from_hex(&hex).map_err(|_| {
                    Error::invalid("AGENTSTORE_MASTER_KEY", "must be 64 hex digits (32 bytes)")
                })?,
            )),
            (None, Some(path)) => Some(agentstore_sqlite::MasterKeySource::File(path)),
            (None, None) => None,
        };
        Ok(Config {
            master_key,
            embedding,
            embed_events: raw.embed_events || file.embed_events == Some(true),
            database_url: raw
                .database_url
                .or(file.database_url)
                .filter(|u| !u.trim().is_empty()),
            data_dir: raw
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("./agentstore-data")),
            json: raw.json,
            tenant: raw.tenant,
            actor,
            durability: match raw.durability {
                Some(DurabilityArg::Full) => Durability::Full,
                Some(DurabilityArg::Normal) => Durability::Normal,
                None => file.durability.unwrap_or_default(),
            },
            keyword_index: file.keyword_index,
            command,
        })
    }

    /// The scope of this invocation's reads and writes; the context names the command
    /// for the audit log.
    pub fn scope(&self) -> Scope {
        Scope::new(&self.tenant, &self.actor)
            .with_context(serde_json::json!({ "command": self.command.name() }))
    }
}

fn resolve_command(raw: RawCommand) -> Result<Command> {
    Ok(match raw {
        RawCommand::Init => Command::Init,
        RawCommand::Serve {
            addr,
            config,
            preset,
        } => Command::Serve(Box::new(crate::serve_config::ServeSettings::resolve(
            config.as_deref(),
            preset.as_deref(),
            addr.as_deref(),
            &crate::serve_config::env_vars(),
        )?)),
        RawCommand::Mcp => Command::Mcp,
        RawCommand::Keys { action } => match action {
            KeysAction::Create {
                scopes,
                name,
                expires_in_days,
            } => Command::KeysCreate {
                scopes: scopes
                    .split(',')
                    .map(agentstore::KeyScope::parse)
                    .collect::<Result<_>>()?,
                name,
                expires_at: expires_in_days
                    .map(|d| agentstore::time::now() + chrono::Duration::days(i64::from(d))),
            },
            KeysAction::List => Command::KeysList,
            KeysAction::GenerateMaster => Command::KeysGenerateMaster,
            KeysAction::RotateMaster { new_key_file } => Command::KeysRotateMaster { new_key_file },
            KeysAction::BackupKeyring { out } => Command::KeysBackupKeyring { out },
            KeysAction::RestoreKeyring { from } => Command::KeysRestoreKeyring { from },
            KeysAction::Revoke { id } => {
                validate_id("id", &id)?;
                Command::KeysRevoke { id }
            }
        },
        RawCommand::Migrate { action } => match action {
            MigrateAction::Status => Command::MigrateStatus,
            MigrateAction::Up { to } => Command::MigrateUp { to },
            MigrateAction::Down { to, force } => Command::MigrateDown { to, force },
        },
        RawCommand::Copy { from, to } => Command::Copy { from, to },
        RawCommand::Import { file } => Command::Import(if file == "-" {
            Input::Stdin
        } else {
            Input::File(file.into())
        }),
        RawCommand::Export { out } => Command::Export { out },
        RawCommand::Retention { action } => {
            let entity = |e: &str| {
                RetentionEntity::parse(e).ok_or_else(|| {
                    Error::invalid(
                        "entity",
                        format!("'{e}' is not session, memory, document, usage or metric"),
                    )
                })
            };
            Command::Retention(match action {
                None | Some(RetentionAction::List) => None,
                Some(RetentionAction::Set {
                    entity: e,
                    days,
                    kind,
                }) => Some((entity(&e)?, kind, Some(days))),
                Some(RetentionAction::Clear { entity: e, kind }) => Some((entity(&e)?, kind, None)),
            })
        }
        RawCommand::ExportSubject { id, out } => {
            validate_id("subject", &id)?;
            Command::ExportSubject { id, out }
        }
        RawCommand::EraseSubject { id } => {
            validate_id("subject", &id)?;
            Command::EraseSubject { id }
        }
        RawCommand::Backup { dir } => Command::Backup { dir },
        RawCommand::Restore { dir, force } => Command::Restore { dir, force },
        RawCommand::Verify { backup } => Command::Verify { backup },
        RawCommand::Stats => Command::Stats,
        RawCommand::Maintenance { no_vacuum } => Command::Maintenance { vacuum: !no_vacuum },
        RawCommand::Tenants => Command::Tenants,
        RawCommand::Sessions { kind, limit } => Command::Sessions(SessionQuery {
            kind,
            limit: limit_of(limit)?,
            ..Default::default()
        }),
        RawCommand::Events { session_id, limit } => {
            validate_id("session_id", &session_id)?;
            Command::Events(EventQuery {
                session_id,
                limit: limit_of(limit)?,
                ..Default::default()
            })
        }
        RawCommand::Memories {
            namespace,
            kind,
            limit,
        } => Command::Memories(MemoryQuery {
            namespace_prefix: namespace
                .as_deref()
                .map(Namespace::parse_path)
                .transpose()?,
            kinds: kind,
            limit: limit_of(limit)?,
            ..Default::default()
        }),
        RawCommand::Memory { action } => match action {
            MemoryAction::Get { id } => {
                validate_id("id", &id)?;
                Command::MemoryGet { id }
            }
            MemoryAction::Key {
                namespace,
                key,
                as_of,
            } => Command::MemoryKey {
                namespace: Namespace::parse_path(&namespace)?,
                key,
                as_of: as_of.as_deref().map(parse_time).transpose()?,
            },
        },
        RawCommand::Audit {
            limit,
            after,
            all_tenants,
        } => Command::Audit {
            limit: limit_of(limit)?,
            after,
            all_tenants,
        },
        RawCommand::Search {
            text,
            target,
            namespace,
            kind,
            session,
            limit,
            half_life,
            mode,
            keyword_weight,
            importance_weight,
            mmr,
            ef,
            exact,
        } => {
            if let Some(s) = &session {
                validate_id("session", s)?;
            }
            let fusion = match keyword_weight {
                None => Fusion::default(),
                Some(w) if (0.0..=1.0).contains(&w) => Fusion::Weighted {
                    keyword: w,
                    vector: 1.0 - w,
                },
                Some(_) => {
                    return Err(Error::invalid("keyword-weight", "must be between 0 and 1"));
                }
            };
            let req = SearchRequest {
                targets: target
                    .into_iter()
                    .map(|t| match t {
                        TargetArg::Memory => Target::Memory,
                        TargetArg::Chunk => Target::Chunk,
                        TargetArg::Event => Target::Event,
                    })
                    .collect(),
                filter: SearchFilter {
                    namespace_prefix: namespace
                        .as_deref()
                        .map(Namespace::parse_path)
                        .transpose()?,
                    kinds: kind,
                    session_id: session,
                    ..Default::default()
                },
                limit: limit_of(limit)?,
                recency_half_life_secs: half_life,
                mode: mode.map(|m| match m {
                    ModeArg::Keyword => SearchMode::Keyword,
                    ModeArg::Vector => SearchMode::Vector,
                    ModeArg::Hybrid => SearchMode::Hybrid,
                }),
                fusion,
                importance_weight,
                mmr_lambda: mmr,
                ef,
                exact,
                ..SearchRequest::text(text)
            };
            // The store is opened with the default limits, so these are the ones it applies;
            // whether it can embed query text is known only once it is opened.
            req.validate(&Limits::default(), true)?;
            Command::Search(Box::new(req))
        }
        RawCommand::Reembed { keep_old, batch } => {
            if batch == 0 || batch > 10_000 {
                return Err(Error::invalid("batch", "must be 1 to 10000"));
            }
            Command::Reembed { keep_old, batch }
        }
        RawCommand::Remember {
            content,
            key,
            namespace,
            kind,
        } => {
            let mut m = NewMemory::new(content);
            m.key = key;
            if let Some(ns) = namespace {
                m.namespace = Namespace::parse_path(&ns)?;
            }
            if let Some(k) = kind {
                m.kind = k;
            }
            Command::Remember(Box::new(m))
        }
        RawCommand::Ingest {
            paths,
            namespace,
            doc_type,
            chunk_size,
            chunk_overlap,
            glob,
        } => Command::Ingest(Box::new(IngestRequest {
            paths,
            namespace: namespace
                .as_deref()
                .map(Namespace::parse_path)
                .transpose()?
                .unwrap_or_else(Namespace::root),
            doc_type: doc_type.map(check_doc_type).transpose()?,
            chunking: chunking_of(chunk_size, chunk_overlap)?,
            globs: glob
                .into_iter()
                .map(|g| {
                    if g.is_empty() || g.chars().any(char::is_control) {
                        Err(Error::invalid(
                            "glob",
                            "must be a non-empty pattern without control characters",
                        ))
                    } else {
                        Ok(g)
                    }
                })
                .collect::<Result<_>>()?,
        })),
        RawCommand::Session {
            action: SessionAction::Create { kind, title },
        } => {
            let mut s = NewSession::new(kind);
            s.title = title;
            Command::SessionCreate(Box::new(s))
        }
        RawCommand::Event {
            action:
                EventAction::Append {
                    session_id,
                    kind,
                    role,
                    content,
                },
        } => Command::EventAppend {
            session_id,
            event: Box::new(NewEvent {
                kind,
                role,
                content: Some(content),
                ..Default::default()
            }),
        },
    })
}

fn limit_of(n: usize) -> Result<usize> {
    if (1..=MAX_LIMIT).contains(&n) {
        Ok(n)
    } else {
        Err(Error::invalid(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ))
    }
}

/// The store applies the same rule; checking here names the flag and fails before any
/// file is read.
fn check_doc_type(t: String) -> Result<String> {
    if t.trim().is_empty() || t.chars().any(char::is_control) {
        return Err(Error::invalid(
            "doc_type",
            "must be non-empty text without control characters",
        ));
    }
    if t.len() > Limits::default().max_short_field {
        return Err(Error::invalid("doc_type", "is too long"));
    }
    Ok(t)
}

/// A chunk size alone keeps the default overlap's proportion (a tenth), so
/// `--chunk-size 100` works without also lowering `--chunk-overlap`.
fn chunking_of(size: Option<usize>, overlap: Option<usize>) -> Result<ChunkOptions> {
    let default = ChunkOptions::default();
    let opts = ChunkOptions {
        size: size.unwrap_or(default.size),
        overlap: overlap.unwrap_or(match size {
            Some(s) => s / 10,
            None => default.overlap,
        }),
    };
    // Same bounds as `ChunkOptions::validate`, worded with the flags the user typed.
    if !(16..=100_000).contains(&opts.size) {
        return Err(Error::invalid(
            "chunk_size",
            "must be between 16 and 100000 characters",
        ));
    }
    if opts.overlap * 2 >= opts.size {
        return Err(Error::invalid(
            "chunk_overlap",
            format!("must be less than half of the chunk size ({})", opts.size),
        ));
    }
    opts.validate()?;
    Ok(opts)
}

fn parse_time(s: &str) -> Result<Timestamp> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| agentstore::time::truncate(t.to_utc()))
        .map_err(|e| {
            Error::invalid(
                "as_of",
                format!("'{s}' is not an RFC 3339 time such as 2025-01-31T12:00:00Z ({e})"),
            )
        })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn resolve(args: &[&str]) -> Result<Config> {
        let raw =
            RawArgs::try_parse_from(std::iter::once("agentstore").chain(args.iter().copied()))
                .expect("arguments parse");
        Config::resolve(raw, Some("ada".into()))
    }

    #[test]
    fn defaults_and_scope_context() {
        let c = resolve(&["sessions"]).unwrap();
        assert_eq!(c.actor, "cli:ada");
        let scope = c.scope();
        assert_eq!(scope.context["command"], "sessions");
        let c = Config::resolve(
            RawArgs::try_parse_from(["agentstore", "--tenant", "t1", "tenants"]).unwrap(),
            None,
        )
        .unwrap();
        assert_eq!((c.tenant.as_str(), c.actor.as_str()), ("t1", "cli"));
    }

    #[test]
    fn values_are_checked_before_anything_runs() {
        let code = |args: &[&str]| resolve(args).unwrap_err().code();
        assert_eq!(code(&["--tenant", "a b", "tenants"]), "invalid_input");
        assert_eq!(code(&["sessions", "--limit", "0"]), "invalid_input");
        assert_eq!(code(&["memories", "--namespace", "a//b"]), "invalid_input");
        assert_eq!(
            code(&["memory", "key", "a", "k", "--as-of", "yesterday"]),
            "invalid_input"
        );
        assert_eq!(code(&["--actor", " ", "tenants"]), "invalid_input");
        assert_eq!(code(&["search", "x", "--half-life", "-1"]), "invalid_input");
        assert_eq!(code(&["search", " "]), "invalid_input");
        assert_eq!(code(&["search", "x", "--session", "a b"]), "invalid_input");
        assert_eq!(code(&["search", "x", "--limit", "1001"]), "invalid_input");
        assert_eq!(code(&["ingest", "d", "--chunk-size", "8"]), "invalid_input");
        assert_eq!(
            code(&[
                "ingest",
                "d",
                "--chunk-size",
                "100",
                "--chunk-overlap",
                "50"
            ]),
            "invalid_input"
        );
        assert_eq!(code(&["ingest", "d", "--doc-type", " "]), "invalid_input");
        assert_eq!(
            code(&["ingest", "d", "--namespace", "a//b"]),
            "invalid_input"
        );
        assert_eq!(code(&["ingest", "d", "--glob", ""]), "invalid_input");
    }

    #[test]
    fn ingest_chunking_defaults() {
        let chunking = |args: &[&str]| match resolve(args).unwrap().command {
            Command::Ingest(r) => (r.chunking.size, r.chunking.overlap),
            other => panic!("expected ingest, got {other:?}"),
        };
        assert_eq!(chunking(&["ingest", "d"]), (1000, 100));
        assert_eq!(chunking(&["ingest", "d", "--chunk-size", "200"]), (200, 20));
        assert_eq!(
            chunking(&["ingest", "d", "--chunk-size", "200", "--chunk-overlap", "0"]),
            (200, 0)
        );
        assert_eq!(
            chunking(&["ingest", "d", "--chunk-overlap", "10"]),
            (1000, 10)
        );
    }

    #[test]
    fn parses_namespaces_and_times() {
        let c = resolve(&[
            "memory",
            "key",
            "/",
            "tz",
            "--as-of",
            "2025-03-01T10:00:00.1234567+01:00",
        ])
        .unwrap();
        let Command::MemoryKey {
            namespace, as_of, ..
        } = c.command
        else {
            panic!("expected memory key, got {:?}", c.command);
        };
        assert_eq!(namespace, Namespace::root());
        assert_eq!(
            as_of.unwrap().to_rfc3339(),
            "2025-03-01T09:00:00.123456+00:00"
        );
    }
}

//! The contract between the engine and a storage backend.
//!
//! Backends store records and return candidates; the engine ([`crate::Store`]) validates
//! input, builds complete records (ids, hashes, chunks, timestamps) and computes
//! aggregates, so every backend behaves the same. A backend promises:
//!
//! - [`Backend::write`] applies all its ops in one transaction: all or nothing, each op
//!   appending its audit entry in that same transaction;
//! - every read and write is confined to the tenant named by the [`Scope`] (or the
//!   `tenant` argument); a record of another tenant is reported as not found;
//! - events get `seq` values strictly increasing per session, also under concurrent
//!   writers in other threads or processes;
//! - `export` yields records in an order `import` accepts (parents before children) from
//!   one consistent snapshot.

use std::collections::BTreeMap;
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::embedding::{Embedding, Metric};
use crate::error::Result;
use crate::model::*;
use crate::namespace::Namespace;
use crate::search::{SearchFilter, Target};
use crate::time::Timestamp;

/// Who is writing, for which tenant, with what request context (for the audit log).
#[derive(Clone, Debug, PartialEq)]
pub struct Scope {
    /// Tenant every read and write is confined to.
    pub tenant: String,
    /// Actor recorded in audit entries.
    pub actor: String,
    /// Request context recorded in audit entries (request id, remote address, command).
    pub context: Json,
}

impl Scope {
    /// A scope for `tenant` acting as `actor` with no context.
    pub fn new(tenant: impl Into<String>, actor: impl Into<String>) -> Self {
        Scope {
            tenant: tenant.into(),
            actor: actor.into(),
            context: Json::Object(Default::default()),
        }
    }

    /// The same scope with a request context.
    pub fn with_context(mut self, context: Json) -> Self {
        self.context = context;
        self
    }
}

/// One write. The engine builds complete records; the backend applies the semantics
/// documented on each variant inside its transaction.
#[derive(Clone, Debug)]
#[non_exhaustive]
// A memory inline makes every op as large as a memory; ops are built once per write and
// moved, never copied in a loop, so boxing it would only add an allocation per upsert.
#[allow(clippy::large_enum_variant)]
pub enum WriteOp {
    /// Insert a tenant (`AlreadyExists` if present). Result: `Id`.
    CreateTenant(Tenant),
    /// Insert a subject; its external-id hash is unique per tenant. Result: `Id`.
    CreateSubject(Subject),
    /// Record consent (and parental consent, with who recorded it). Result: `None`.
    SetConsent {
        /// Subject id.
        id: String,
        /// Consent given.
        consent: bool,
        /// Parental consent recorded by this actor, if any.
        parental_consent_by: Option<String>,
        /// Time of the change.
        at: Timestamp,
    },
    /// Apply a [`SubjectUpdate`] (metadata merged as for sessions). Result: `None`.
    UpdateSubject {
        /// Subject id.
        id: String,
        /// Changes.
        update: SubjectUpdate,
        /// Time of the change.
        at: Timestamp,
    },
    /// Insert, or replace the agent with the same id (keeping `created_at`); names are
    /// unique per tenant. Result: `Id`.
    PutAgent(Agent),
    /// Insert a session; subject, agent and parent must exist in the tenant. Result: `Id`.
    CreateSession(Session),
    /// Apply a [`SessionUpdate`]. Result: `Session` (the updated row).
    UpdateSession {
        /// Session id.
        id: String,
        /// Changes.
        update: SessionUpdate,
        /// Time of the change.
        at: Timestamp,
    },
    /// Delete a session with its events, checkpoints and pending writes. Result: `Count`
    /// (events removed).
    DeleteSession {
        /// Session id.
        id: String,
    },
    /// Append events to a session; `seq` of the drafts is ignored and assigned, strictly
    /// increasing from the session's last. Result: `Events` (with seqs).
    AppendEvents {
        /// Session id.
        session_id: String,
        /// Events to append in order.
        events: Vec<Event>,
        /// Empty, or one entry per event: its vector, if it has one.
        vectors: Vec<Option<Embedding>>,
    },
    /// Store a memory with the semantics of [`UpsertOutcome`]: with a key, the current
    /// version with that key in the namespace is updated in place (same content hash) or
    /// superseded (new content: the old version's `valid_to` and the new one's
    /// `valid_from` become the later of the two starts, so versions stay ordered and
    /// disjoint in commit order); without a key, a current, unexpired memory with the same
    /// content hash in the namespace deduplicates it. Result: `Memory`.
    ///
    /// `vector` belongs to the memory now holding the content: a new version gets it; an
    /// updated or deduplicating memory (same content) gets it only if it has no vector of
    /// that model yet.
    Remember {
        /// The memory.
        memory: Memory,
        /// Its content's vector.
        vector: Option<Embedding>,
    },
    /// Delete a memory (every field, not just close it). Result: `None`.
    Forget {
        /// Memory id.
        id: String,
    },
    /// Close a memory's validity at `at` without a successor. Result: `None`.
    Invalidate {
        /// Memory id.
        id: String,
        /// End of validity.
        at: Timestamp,
    },
    /// Count a read of each memory. Unknown ids are ignored. Result: `Count` (touched).
    TouchMemories {
        /// Memory ids.
        ids: Vec<String>,
        /// Time of the read.
        at: Timestamp,
    },
    /// Store a document and its chunks with the semantics of [`DocumentOutcome`]: same id
    /// or same (namespace, source path) → unchanged if the hash matches, else replaced
    /// (chunks rewritten); otherwise a document with the same content hash in the namespace
    /// → unchanged; otherwise created. Result: `Document`.
    PutDocument {
        /// The document.
        document: Document,
        /// Its chunks (document_id = document.id; the backend rewrites it when it replaces
        /// an existing document found by source path).
        chunks: Vec<Chunk>,
        /// Empty, or one vector per chunk, in chunk order; stored with the chunks when they
        /// are written (created or replaced), ignored when the document is unchanged.
        vectors: Vec<Embedding>,
    },
    /// Set (`days` Some) or remove (None) the tenant's retention rule for `entity` and
    /// `kind`. Result: `None`.
    SetRetention {
        /// Entity.
        entity: RetentionEntity,
        /// Kind ("" = every kind).
        kind: String,
        /// Days, or None to remove the rule.
        days: Option<i64>,
        /// Time of the change.
        at: Timestamp,
    },
    /// Erase a subject and its personal data everywhere: its sessions (with their
    /// events, checkpoints and usage records), every version of its memories, its
    /// documents (with their chunks), with their full-text entries and vectors, then the
    /// subject itself. The audit log keeps a `subject.erase` tombstone that holds counts
    /// only. Result: `Erased`.
    EraseSubject {
        /// Subject id.
        id: String,
    },
    /// Delete a document and its chunks. Result: `None`.
    DeleteDocument {
        /// Document id.
        id: String,
    },
    /// Count a query hit on each chunk. Result: `Count`.
    RecordChunkQueries {
        /// Chunk ids.
        ids: Vec<String>,
        /// Time.
        at: Timestamp,
    },
    /// Insert or replace a checkpoint (same session, namespace and id). Result: `Id`.
    PutCheckpoint(Checkpoint),
    /// Insert or replace pending writes keyed by (checkpoint, task, idx); the checkpoint
    /// must exist. Result: `Count`.
    PutPendingWrites(Vec<PendingWrite>),
    /// Insert usage records. Result: `Count`.
    RecordUsage(Vec<UsageRecord>),
    /// Insert metric points. Result: `Count`.
    RecordMetrics(Vec<MetricPoint>),
    /// Record an administrative action in the audit log (migrations, maintenance,
    /// restores, re-embedding, master-key rotation): the entry only, values redacted.
    /// Result: `None`.
    Audit(crate::audit::AuditDraft),
    /// Set a key (version + 1). Result: `Kv` (the entry).
    KvSet {
        /// Key.
        key: String,
        /// Value.
        value: Json,
        /// Expiry.
        expires_at: Option<Timestamp>,
        /// Time of the write.
        at: Timestamp,
    },
    /// Add `by` to an integer value (missing or expired counts as 0); a new or expired key
    /// gets `expires_at`, an existing one keeps its expiry. Result: `Kv`.
    KvIncr {
        /// Key.
        key: String,
        /// Increment.
        by: i64,
        /// Expiry for a new key.
        expires_at: Option<Timestamp>,
        /// Time of the write.
        at: Timestamp,
    },
    /// Change a live key's expiry. Result: `Kv` (None when missing or expired).
    KvExpire {
        /// Key.
        key: String,
        /// New expiry (None: never).
        expires_at: Option<Timestamp>,
        /// Time of the write.
        at: Timestamp,
    },
    /// Delete a key. Result: `Count` (0 or 1).
    KvDelete {
        /// Key.
        key: String,
    },
    /// Delete every key starting with `prefix`. Result: `Count`.
    KvDeletePrefix {
        /// Prefix.
        prefix: String,
    },
    /// Acquire a lock for `holder` if free, expired or already held by `holder`; the token
    /// increases on every acquisition. `LockHeld` otherwise. Result: `Lock`.
    LockAcquire {
        /// Lock name.
        name: String,
        /// Holder.
        holder: String,
        /// Lease end.
        expires_at: Timestamp,
        /// Now.
        at: Timestamp,
    },
    /// Extend a lease; `StaleToken` unless `token` is current and unexpired. Result: `Lock`.
    LockRenew {
        /// Lock name.
        name: String,
        /// Token from acquire.
        token: i64,
        /// New lease end.
        expires_at: Timestamp,
        /// Now.
        at: Timestamp,
    },
    /// Release; `StaleToken` unless `token` is current. Result: `Lock`.
    LockRelease {
        /// Lock name.
        name: String,
        /// Token from acquire.
        token: i64,
    },
    /// Declare a vector model: the first declaration records its dimension and metric; a
    /// later one must agree (`Conflict` otherwise). Every op carrying vectors of a model
    /// requires it to be declared. Result: `None`.
    DeclareVectorModel {
        /// Model id.
        model: String,
        /// Vector length.
        dimension: usize,
        /// Comparison.
        metric: Metric,
    },
    /// Set the vectors of existing records (`NotFound` for an unknown record), replacing
    /// each record's vector of the same model. Result: `Count`.
    PutVectors {
        /// Kind of the records.
        target: Target,
        /// Record id and its vector.
        items: Vec<(String, Embedding)>,
    },
    /// Delete every vector of a model in the scope's tenant. Result: `Count`.
    DropVectors {
        /// Model id.
        model: String,
    },
    /// Remove every record whose `expires_at` is at or before `at` in the scope's tenant:
    /// sessions (with events, checkpoints), memories, KV entries; release expired locks.
    /// Also remove the records older than a retention rule of the tenant (or their
    /// subject's `retention_days`) allows, measured from their last change: sessions,
    /// memories, documents, usage records, metric points. Full-text entries go with
    /// their records for good (FTS5 secure-delete). Result: `Swept`.
    SweepExpired {
        /// Cut-off.
        at: Timestamp,
    },
    /// Store an API key under the SHA-256 (hex) of its secret. Result: `Id`.
    CreateApiKey {
        /// The key.
        key: ApiKey,
        /// Hex SHA-256 of the secret.
        hash: String,
    },
    /// Revoke a key of the scope's tenant (`NotFound` otherwise; revoking twice keeps
    /// the first time). Result: `None`.
    RevokeApiKey {
        /// Key id.
        id: String,
        /// Time of revocation.
        at: Timestamp,
    },
}

/// What one [`WriteOp`] produced.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum WriteResult {
    /// Nothing to report.
    None,
    /// The id written.
    Id(String),
    /// A count.
    Count(u64),
    /// Updated session.
    Session(Box<Session>),
    /// Appended events.
    Events(Vec<Event>),
    /// Memory outcome.
    Memory(UpsertOutcome),
    /// Document outcome.
    Document(DocumentOutcome),
    /// KV entry.
    Kv(Option<KvEntry>),
    /// Lock state.
    Lock(Lock),
    /// Sweep report.
    Swept(SweepReport),
    /// What an erasure removed.
    Erased(Erasure),
}

/// What erasing a subject removed (counts only: the report, like the audit tombstone,
/// holds no personal data).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Erasure {
    /// The erased subject's id.
    pub subject_id: String,
    /// Sessions removed.
    pub sessions: u64,
    /// Events removed with them.
    pub events: u64,
    /// Checkpoints removed with them.
    pub checkpoints: u64,
    /// Usage records of those sessions removed.
    pub usage_records: u64,
    /// Memories removed, every version.
    pub memories: u64,
    /// Documents removed.
    pub documents: u64,
    /// Chunks removed with them.
    pub chunks: u64,
    /// Vectors removed with those records.
    pub vectors: u64,
    /// Whether the subject's data key was destroyed (field encryption on): copies of its
    /// encrypted fields elsewhere, in backups, can no longer be read.
    #[serde(default)]
    pub data_key_destroyed: bool,
}

impl Erasure {
    /// The erasure's audit entry: its counts. Whether the data key went is not known
    /// inside the erasing transaction (it goes after the commit), so the tombstone does
    /// not claim it; a `subject.key_destroy` entry follows when it does.
    pub fn tombstone(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.remove("data_key_destroyed");
        }
        v
    }
}

/// Everything stored about one subject, for a GDPR access request: the subject, the
/// records that are its personal data, and the audit entries about any of them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SubjectExport {
    /// When the export was taken (one consistent snapshot).
    pub exported_at: Timestamp,
    /// The subject.
    pub subject: Subject,
    /// Its sessions.
    pub sessions: Vec<Session>,
    /// The events of those sessions, by session then seq.
    pub events: Vec<Event>,
    /// The checkpoints of those sessions.
    pub checkpoints: Vec<Checkpoint>,
    /// Pending writes of those checkpoints.
    pub pending_writes: Vec<PendingWrite>,
    /// Usage records of those sessions.
    pub usage: Vec<UsageRecord>,
    /// Its memories, every version.
    pub memories: Vec<Memory>,
    /// Its documents.
    pub documents: Vec<Document>,
    /// The chunks of those documents.
    pub chunks: Vec<Chunk>,
    /// Audit entries about the subject or any record above, oldest first (their values
    /// are redacted as in the audit log).
    pub audit: Vec<AuditEntry>,
}

/// Records removed by a sweep: expired ones, and those older than a retention rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SweepReport {
    /// Sessions removed.
    pub sessions: u64,
    /// Events removed with them.
    pub events: u64,
    /// Memories removed.
    pub memories: u64,
    /// Documents removed (with their chunks).
    #[serde(default)]
    pub documents: u64,
    /// Usage records removed.
    #[serde(default)]
    pub usage: u64,
    /// Metric points removed.
    #[serde(default)]
    pub metric_points: u64,
    /// KV entries removed.
    pub kv: u64,
    /// Locks released.
    pub locks: u64,
}

impl SweepReport {
    /// Adds another sweep's counts.
    pub fn add(&mut self, o: &SweepReport) {
        self.sessions += o.sessions;
        self.events += o.events;
        self.memories += o.memories;
        self.documents += o.documents;
        self.usage += o.usage;
        self.metric_points += o.metric_points;
        self.kv += o.kv;
        self.locks += o.locks;
    }

    /// Records removed (locks released are not records).
    pub fn removed(&self) -> u64 {
        self.sessions + self.memories + self.documents + self.usage + self.metric_points + self.kv
    }
}

/// What a retention rule keeps for a limited time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RetentionEntity {
    /// Sessions (kind: the session kind), with their events and checkpoints.
    Session,
    /// Memories, every version (kind: the memory kind).
    Memory,
    /// Documents with their chunks (kind: the document type).
    Document,
    /// Usage records (no kind).
    Usage,
    /// Metric points (kind: the metric name).
    Metric,
}

impl RetentionEntity {
    /// The name used in storage and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            RetentionEntity::Session => "session",
            RetentionEntity::Memory => "memory",
            RetentionEntity::Document => "document",
            RetentionEntity::Usage => "usage",
            RetentionEntity::Metric => "metric",
        }
    }

    /// Parses [`RetentionEntity::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [
            RetentionEntity::Session,
            RetentionEntity::Memory,
            RetentionEntity::Document,
            RetentionEntity::Usage,
            RetentionEntity::Metric,
        ]
        .into_iter()
        .find(|e| e.as_str() == s)
    }
}

/// How long a tenant keeps the records of one entity (and kind): a sweep removes those
/// whose last change is older than `days`. The shortest rule that matches a record
/// applies, and a subject's `retention_days` on top.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RetentionRule {
    /// Owning tenant.
    pub tenant_id: String,
    /// Entity.
    pub entity: RetentionEntity,
    /// Kind ("" = every kind of the entity).
    pub kind: String,
    /// Days a record is kept after its last change.
    pub days: i64,
    /// When the rule was set.
    pub updated_at: Timestamp,
}

/// Filter for listing agents.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct AgentQuery {
    /// Namespace prefix.
    pub namespace_prefix: Option<Namespace>,
    /// Only active / inactive.
    pub active: Option<bool>,
    /// Agent type.
    pub agent_type: Option<String>,
    /// Must carry this tag.
    pub tag: Option<String>,
    /// Page size (engine default 100, max 1000).
    pub limit: usize,
    /// Cursor.
    pub after: Option<String>,
}

/// Filter for listing sessions, newest first.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct SessionQuery {
    /// Namespace prefix.
    pub namespace_prefix: Option<Namespace>,
    /// Kind.
    pub kind: Option<String>,
    /// Status.
    pub status: Option<String>,
    /// Subject.
    pub subject_id: Option<String>,
    /// Agent.
    pub agent_id: Option<String>,
    /// Parent session.
    pub parent_id: Option<String>,
    /// Domain.
    pub domain: Option<String>,
    /// Task type.
    pub task_type: Option<String>,
    /// Started at or after.
    pub started_from: Option<Timestamp>,
    /// Started before.
    pub started_to: Option<Timestamp>,
    /// Include sessions past their expiry (not swept yet).
    pub include_expired: bool,
    /// Page size.
    pub limit: usize,
    /// Cursor.
    pub after: Option<String>,
}

/// Filter for listing a session's events in `seq` order.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct EventQuery {
    /// Session.
    pub session_id: String,
    /// Only events with seq greater than this.
    pub after_seq: Option<i64>,
    /// Only events with seq less than this.
    pub before_seq: Option<i64>,
    /// Only these kinds (empty: all).
    pub kinds: Vec<String>,
    /// Only events of this tool.
    pub tool_name: Option<String>,
    /// Newest first instead of oldest first.
    pub descending: bool,
    /// Page size.
    pub limit: usize,
}

/// Order for listing memories.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemoryOrder {
    /// Newest first.
    #[default]
    Recent,
    /// Pinned first, then priority, then newest.
    Priority,
    /// Importance, then newest.
    Importance,
    /// Confidence, then newest.
    Confidence,
    /// Success rate, then newest; memories without one come last.
    SuccessRate,
    /// Reads recorded with `touch`, then newest.
    AccessCount,
    /// Last change, newest first.
    Updated,
}

/// Filter for listing memories.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct MemoryQuery {
    /// Namespace prefix.
    pub namespace_prefix: Option<Namespace>,
    /// Kinds (empty: all).
    pub kinds: Vec<String>,
    /// Upsert key.
    pub key: Option<String>,
    /// Tier.
    pub tier: Option<String>,
    /// Topic.
    pub topic: Option<String>,
    /// Domain.
    pub domain: Option<String>,
    /// Must carry all these tags.
    pub tags: Vec<String>,
    /// Subject.
    pub subject_id: Option<String>,
    /// Agent.
    pub agent_id: Option<String>,
    /// Derived from this session.
    pub source_session: Option<String>,
    /// Pinned only / unpinned only.
    pub pinned: Option<bool>,
    /// Minimum importance.
    pub min_importance: Option<f64>,
    /// Minimum confidence.
    pub min_confidence: Option<f64>,
    /// Minimum success rate (memories without one do not match).
    pub min_success_rate: Option<f64>,
    /// Changed at or after this time.
    pub updated_from: Option<Timestamp>,
    /// Conditions on the metadata, all of which must hold (as search's).
    #[serde(default)]
    pub metadata: Vec<crate::search::MetadataCondition>,
    /// Versions valid at this time; None: current versions (valid_to unset).
    pub valid_at: Option<Timestamp>,
    /// Include memories past their expiry (not swept yet).
    pub include_expired: bool,
    /// Order.
    pub order: MemoryOrder,
    /// Page size.
    pub limit: usize,
    /// Cursor.
    pub after: Option<String>,
}

/// Filter for listing documents, newest first.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct DocumentQuery {
    /// Namespace prefix.
    pub namespace_prefix: Option<Namespace>,
    /// Type.
    pub doc_type: Option<String>,
    /// Source path.
    pub source_path: Option<String>,
    /// Subject.
    pub subject_id: Option<String>,
    /// Page size.
    pub limit: usize,
    /// Cursor.
    pub after: Option<String>,
}

/// Filter for a thread's checkpoints, newest first.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct CheckpointQuery {
    /// Thread = session id.
    pub session_id: String,
    /// Checkpoint namespace.
    pub checkpoint_ns: String,
    /// Only checkpoints older than this checkpoint id.
    pub before: Option<String>,
    /// Max results.
    pub limit: usize,
}

/// Filter for usage records in a time window.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct UsageQuery {
    /// From (inclusive).
    pub from: Option<Timestamp>,
    /// To (exclusive).
    pub to: Option<Timestamp>,
    /// Session.
    pub session_id: Option<String>,
    /// Agent.
    pub agent_id: Option<String>,
    /// Provider.
    pub provider: Option<String>,
    /// Model.
    pub model: Option<String>,
}

/// Filter for metric points, in time order.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct MetricQuery {
    /// Metric name.
    pub name: String,
    /// Points must carry all these labels with these values.
    pub labels: BTreeMap<String, String>,
    /// From (inclusive).
    pub from: Option<Timestamp>,
    /// To (exclusive).
    pub to: Option<Timestamp>,
}

/// Filter for the audit log, in `seq` order.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct AuditQuery {
    /// Tenant (None: all, for store administrators).
    pub tenant_id: Option<String>,
    /// Actor.
    pub actor: Option<String>,
    /// Action.
    pub action: Option<String>,
    /// Resource type.
    pub resource_type: Option<String>,
    /// Resource id.
    pub resource_id: Option<String>,
    /// From (inclusive).
    pub from: Option<Timestamp>,
    /// To (exclusive).
    pub to: Option<Timestamp>,
    /// Only entries after this seq.
    pub after_seq: Option<i64>,
    /// Page size.
    pub limit: usize,
}

/// A full-text candidate query, built by the engine from a validated
/// [`crate::search::SearchRequest`].
#[derive(Clone, Debug, PartialEq)]
pub struct KeywordQuery {
    /// An FTS5 expression built by [`crate::search::fts5_expression`]: quoted terms joined
    /// by `OR`, never text the user wrote. Pass it to `MATCH` as a bound parameter.
    pub expression: String,
    /// The words the expression ORs, for a backend whose full-text syntax is not FTS5.
    pub terms: Vec<String>,
    /// Where to look: distinct, non-empty, each one [`SearchFilter::applies_to`].
    pub targets: Vec<Target>,
    /// Filters, validated (metadata paths are `[A-Za-z0-9_-]+` segments).
    pub filter: SearchFilter,
    /// Most candidates to return over all targets.
    pub limit: usize,
    /// Current time: records whose expiry (memories; events: their session's) is at or
    /// before it are left out, as list calls leave them out.
    pub now: Timestamp,
}

/// A nearest-neighbour candidate query, built by the engine from a validated
/// [`crate::search::SearchRequest`].
#[derive(Clone, Debug, PartialEq)]
pub struct VectorQuery {
    /// Model of the query vector; only vectors of this model are compared.
    pub model: String,
    /// The query vector (checked: finite, the model's dimension when known).
    pub vector: Vec<f32>,
    /// Where to look, as for [`KeywordQuery::targets`].
    pub targets: Vec<Target>,
    /// Filters, exactly as for [`KeywordQuery::filter`].
    pub filter: SearchFilter,
    /// Most candidates to return over all targets.
    pub limit: usize,
    /// Current time, as for [`KeywordQuery::now`].
    pub now: Timestamp,
    /// Search breadth of an approximate index (None: the backend's default). Larger is
    /// slower and closer to exact.
    pub ef: Option<usize>,
    /// Compare with every matching vector instead of using the approximate index.
    pub exact: bool,
}

/// A vector model known to a store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VectorModelInfo {
    /// Model id.
    pub model: String,
    /// Vector length.
    pub dimension: usize,
    /// Comparison.
    pub metric: Metric,
    /// Vectors stored, all tenants.
    pub vectors: u64,
}

/// A record's text to embed, for backfills and re-embedding.
#[derive(Clone, Debug, PartialEq)]
pub struct TextToEmbed {
    /// Record id.
    pub id: String,
    /// The text a store embeds for it (memory and chunk content; event content).
    pub text: String,
}

/// A record matching a [`KeywordQuery`] or a [`VectorQuery`].
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// Kind of record.
    pub target: Target,
    /// Record id.
    pub id: String,
    /// Relevance, higher is better: BM25 for keyword candidates (SQLite's `bm25()`
    /// negated), the metric's similarity for vector candidates.
    pub score: f64,
    /// The record's creation time, so the engine can weight by recency without loading
    /// every candidate.
    pub created_at: Timestamp,
    /// A memory's importance (None for chunks and events), for importance weighting.
    pub importance: Option<f64>,
}

/// A declared vector model, as exported. Models are store-wide, like the schema: an
/// import into a store that already declares the model with the same dimension and
/// metric keeps the store's declaration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VectorModelRecord {
    /// Model id.
    pub model: String,
    /// Vector length.
    pub dimension: usize,
    /// Comparison.
    pub metric: Metric,
    /// When the model was first declared.
    pub created_at: Timestamp,
}

/// One record's vector of one model, as exported. Vectors come after every record and
/// model they refer to, so an export can be imported in one pass.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VectorRecord {
    /// Tenant of the record.
    pub tenant_id: String,
    /// The record's kind.
    pub target: Target,
    /// The record's id in the tenant.
    pub record_id: String,
    /// Model id.
    pub model: String,
    /// The vector's values: JSON numbers, which round-trip every f32 exactly.
    pub vector: Vec<f32>,
}

/// One line of a JSON Lines export: a record and its type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Record {
    Tenant(Tenant),
    Subject(Subject),
    Agent(Agent),
    Session(Session),
    Event(Event),
    Memory(Memory),
    Document(Document),
    Chunk(Chunk),
    Checkpoint(Checkpoint),
    PendingWrite(PendingWrite),
    Usage(UsageRecord),
    Metric(MetricPoint),
    Audit(AuditEntry),
    Kv(KvEntry),
    Lock(Lock),
    Retention(RetentionRule),
    VectorModel(VectorModelRecord),
    Vector(VectorRecord),
}

impl Record {
    /// The `type` tag.
    pub fn type_name(&self) -> &'static str {
        match self {
            Record::Tenant(_) => "tenant",
            Record::Subject(_) => "subject",
            Record::Agent(_) => "agent",
            Record::Session(_) => "session",
            Record::Event(_) => "event",
            Record::Memory(_) => "memory",
            Record::Document(_) => "document",
            Record::Chunk(_) => "chunk",
            Record::Checkpoint(_) => "checkpoint",
            Record::PendingWrite(_) => "pending_write",
            Record::Usage(_) => "usage",
            Record::Metric(_) => "metric",
            Record::Audit(_) => "audit",
            Record::Kv(_) => "kv",
            Record::Lock(_) => "lock",
            Record::Retention(_) => "retention",
            Record::VectorModel(_) => "vector_model",
            Record::Vector(_) => "vector",
        }
    }
}

/// Counts of imported records by type.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ImportReport {
    /// Records per `type`.
    pub counts: BTreeMap<String, u64>,
    /// Lines read.
    pub lines: u64,
}

/// Rows and bytes of one entity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EntityStats {
    /// Entity name.
    pub entity: String,
    /// Rows.
    pub rows: u64,
    /// Bytes on disk (table and its indexes), where the backend can tell.
    pub bytes: u64,
}

/// Store-wide statistics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Stats {
    /// Per entity.
    pub entities: Vec<EntityStats>,
    /// Files of the store and their sizes.
    pub files: BTreeMap<String, u64>,
    /// Schema version.
    pub schema_version: i64,
}

/// One named check of `verify`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Check {
    /// Name, e.g. `integrity`.
    pub name: String,
    /// Passed.
    pub ok: bool,
    /// What was found.
    pub detail: String,
}

/// Result of `verify`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VerifyReport {
    /// Checks run.
    pub checks: Vec<Check>,
}

impl VerifyReport {
    /// True when every check passed.
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// Adds a check.
    pub fn push(&mut self, name: &str, ok: bool, detail: impl Into<String>) {
        self.checks.push(Check {
            name: name.into(),
            ok,
            detail: detail.into(),
        });
    }
}

/// What `maintenance` does.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct MaintenanceOptions {
    /// Remove expired records in every tenant.
    pub sweep: bool,
    /// Rebuild the database file to return free pages to the file system.
    pub vacuum: bool,
    /// Cut-off for the sweep.
    pub now: Timestamp,
}

/// What `maintenance` did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MaintenanceReport {
    /// Records swept, summed over tenants.
    pub swept: SweepReport,
    /// Store bytes before.
    pub bytes_before: u64,
    /// Store bytes after.
    pub bytes_after: u64,
    /// Steps performed, in order.
    pub steps: Vec<String>,
}

/// One file in a backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ManifestFile {
    /// Path relative to the backup directory.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Hex SHA-256.
    pub sha256: String,
}

/// `manifest.json` of a backup directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BackupManifest {
    /// Manifest format version.
    pub format: u32,
    /// Backend that wrote it (`sqlite`).
    pub backend: String,
    /// Schema version of the database in the backup.
    pub schema_version: i64,
    /// When the backup was taken.
    pub created_at: Timestamp,
    /// agentstore version that wrote it.
    pub agentstore_version: String,
    /// Files and checksums.
    pub files: Vec<ManifestFile>,
}

/// The storage contract. See the module docs for what a backend promises.
pub trait Backend: Send + Sync + 'static {
    /// Backend name for messages and manifests.
    fn name(&self) -> &'static str;

    /// Applies `ops` in one transaction with their audit entries; results in op order.
    fn write(&self, scope: &Scope, ops: Vec<WriteOp>) -> Result<Vec<WriteResult>>;

    /// A tenant by id.
    fn get_tenant(&self, id: &str) -> Result<Option<Tenant>>;
    /// All tenants.
    fn list_tenants(&self) -> Result<Vec<Tenant>>;

    /// A subject by id.
    fn get_subject(&self, tenant: &str, id: &str) -> Result<Option<Subject>>;
    /// A subject by its external-id hash.
    fn find_subject(&self, tenant: &str, external_id_hash: &str) -> Result<Option<Subject>>;
    /// The tenant's retention rules, by entity and kind.
    fn list_retention(&self, tenant: &str) -> Result<Vec<RetentionRule>>;
    /// Everything about a subject, read in one snapshot (None: no such subject).
    fn export_subject(
        &self,
        tenant: &str,
        id: &str,
        at: Timestamp,
    ) -> Result<Option<SubjectExport>>;

    /// An agent by id.
    fn get_agent(&self, tenant: &str, id: &str) -> Result<Option<Agent>>;
    /// Agents by filter, by name.
    fn list_agents(&self, tenant: &str, q: &AgentQuery) -> Result<Page<Agent>>;
    /// Statistics derived from the agent's sessions and usage.
    fn agent_stats(&self, tenant: &str, id: &str) -> Result<AgentStats>;

    /// A session by id.
    fn get_session(&self, tenant: &str, id: &str) -> Result<Option<Session>>;
    /// Sessions by filter, newest first.
    fn list_sessions(&self, tenant: &str, q: &SessionQuery) -> Result<Page<Session>>;

    /// An event by id.
    fn get_event(&self, tenant: &str, id: &str) -> Result<Option<Event>>;
    /// A session's events in seq order (`NotFound` for an unknown session).
    fn list_events(&self, tenant: &str, q: &EventQuery) -> Result<Page<Event>>;

    /// A memory version by id.
    fn get_memory(&self, tenant: &str, id: &str) -> Result<Option<Memory>>;
    /// The version with `key` valid at `as_of` (None: the current version).
    fn get_memory_by_key(
        &self,
        tenant: &str,
        namespace: &Namespace,
        key: &str,
        as_of: Option<Timestamp>,
    ) -> Result<Option<Memory>>;
    /// Every version with `key`, oldest first.
    fn memory_history(&self, tenant: &str, namespace: &Namespace, key: &str)
    -> Result<Vec<Memory>>;
    /// Memories by filter (`now` decides expiry).
    fn list_memories(&self, tenant: &str, q: &MemoryQuery, now: Timestamp) -> Result<Page<Memory>>;

    /// A document by id.
    fn get_document(&self, tenant: &str, id: &str) -> Result<Option<Document>>;
    /// Documents by filter, newest first.
    fn list_documents(&self, tenant: &str, q: &DocumentQuery) -> Result<Page<Document>>;
    /// A document's chunks in order.
    fn list_chunks(&self, tenant: &str, document_id: &str) -> Result<Vec<Chunk>>;
    /// A chunk by id.
    fn get_chunk(&self, tenant: &str, id: &str) -> Result<Option<Chunk>>;

    /// The best `q.limit` full-text matches of `q.expression` over `q.targets`, best first
    /// (ties by target, then id), from one snapshot, with every filter of `q.filter`
    /// applied in the query:
    ///
    /// - namespace prefix, subject: the memory's; a chunk's document's; an event's
    ///   session's. Agent: the memory's, an event's session's. Session: an event's own, a
    ///   memory's `source_sessions`. Tags (all of them): memories. Kinds (any of them):
    ///   memory kind, event kind, a chunk's document type;
    /// - `from` (inclusive) and `to` (exclusive) on `created_at`;
    /// - memories: the versions valid at `valid_at` (`valid_from <= t < valid_to`), or
    ///   the current ones (`valid_to` unset) when it is None; not expired at `q.now`.
    ///   Events: their session not expired at `q.now`;
    /// - metadata conditions as documented on [`crate::search::MetadataCondition`]
    ///   (chunks: their document's metadata).
    ///
    /// A filter field a target does not have excludes the target (see
    /// [`SearchFilter::applies_to`]).
    fn keyword_candidates(&self, tenant: &str, q: &KeywordQuery) -> Result<Vec<Candidate>>;

    /// The `q.limit` records whose vectors of `q.model` are most similar to `q.vector`,
    /// best first (ties by target, then id), with every filter applied exactly as for
    /// [`Backend::keyword_candidates`]. A selective filter must not cost recall: when few
    /// records match, compare with all of them. An unknown model has no candidates.
    fn vector_candidates(&self, tenant: &str, q: &VectorQuery) -> Result<Vec<Candidate>>;

    /// The stored vectors of `model` of these records, in order (None where a record has
    /// none or is not in the tenant). Cosine vectors come back as stored, not normalised.
    fn get_vectors(
        &self,
        tenant: &str,
        model: &str,
        records: &[(Target, String)],
    ) -> Result<Vec<Option<Vec<f32>>>>;

    /// Every declared vector model with its vector count.
    fn vector_models(&self) -> Result<Vec<VectorModelInfo>>;

    /// Records of `target` in the tenant that have text but no vector of `model`, in id
    /// order after `after`, at most `limit` (memories: every version; events: those with
    /// content).
    fn missing_vectors(
        &self,
        tenant: &str,
        target: Target,
        model: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TextToEmbed>>;

    /// A checkpoint by id, or the latest of the thread when `id` is None.
    fn get_checkpoint(
        &self,
        tenant: &str,
        session_id: &str,
        checkpoint_ns: &str,
        id: Option<&str>,
    ) -> Result<Option<Checkpoint>>;
    /// A thread's checkpoints, newest first.
    fn list_checkpoints(&self, tenant: &str, q: &CheckpointQuery) -> Result<Vec<Checkpoint>>;
    /// Pending writes of a checkpoint, by (task, idx).
    fn pending_writes(
        &self,
        tenant: &str,
        session_id: &str,
        checkpoint_ns: &str,
        checkpoint_id: &str,
    ) -> Result<Vec<PendingWrite>>;

    /// Usage records in a window, oldest first (the engine aggregates them).
    fn list_usage(&self, tenant: &str, q: &UsageQuery) -> Result<Vec<UsageRecord>>;
    /// Metric points in a window, oldest first (the engine downsamples and ranks them).
    fn metric_points(&self, tenant: &str, q: &MetricQuery) -> Result<Vec<MetricPoint>>;

    /// A live (unexpired at `now`) KV entry.
    fn kv_get(&self, tenant: &str, key: &str, now: Timestamp) -> Result<Option<KvEntry>>;
    /// Live keys with a prefix, sorted, at most `limit`.
    fn kv_list(
        &self,
        tenant: &str,
        prefix: &str,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<KvEntry>>;
    /// A lock's state.
    fn get_lock(&self, tenant: &str, name: &str) -> Result<Option<Lock>>;

    /// The key whose secret hashes (SHA-256, hex) to `hash`, in any tenant: the server
    /// learns a request's tenant from its key.
    fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>>;
    /// A tenant's keys, revoked ones included, oldest first.
    fn list_api_keys(&self, tenant: &str) -> Result<Vec<ApiKey>>;

    /// Audit entries by filter.
    fn list_audit(&self, q: &AuditQuery) -> Result<Page<AuditEntry>>;

    /// Every record of every tenant, parents before children, from one snapshot.
    fn export(&self, out: &mut dyn FnMut(Record) -> Result<()>) -> Result<()>;
    /// Inserts exported records verbatim in one transaction, then appends one audit entry
    /// for the import. Audit records are accepted only while the store's audit log is
    /// empty. Errors carry the input line number; nothing is written on error.
    fn import(
        &self,
        scope: &Scope,
        records: &mut dyn Iterator<Item = Result<(u64, Record)>>,
    ) -> Result<ImportReport>;

    /// Counts and sizes.
    fn stats(&self) -> Result<Stats>;
    /// Integrity, foreign keys, audit chain, schema checksums.
    fn verify(&self) -> Result<VerifyReport>;
    /// Loads or builds the derived indexes a search would otherwise build on first use,
    /// so that a server's first queries do not pay for them. A backend without such
    /// indexes does nothing.
    fn warm(&self) -> Result<()> {
        Ok(())
    }
    /// Sweep, optimise, checkpoint, vacuum.
    fn maintenance(&self, opts: &MaintenanceOptions) -> Result<MaintenanceReport>;
    /// An online, consistent copy of the store into the empty directory `dir`, with a
    /// manifest.
    fn backup(&self, dir: &Path) -> Result<BackupManifest>;
}

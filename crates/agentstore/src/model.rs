//! The data model of SPEC §2: one struct per stored entity, plus the `New*` structs a
//! caller fills to create one. Stored structs are exactly what export writes and import
//! reads, so they derive `Serialize` and `Deserialize` with every field.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::namespace::Namespace;
use crate::time::Timestamp;

/// Free-form JSON (metadata, parameters, results, capabilities).
pub type Json = serde_json::Value;

fn empty_object() -> Json {
    Json::Object(Default::default())
}

/// The isolation boundary; every other record belongs to exactly one tenant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Tenant {
    /// Tenant id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Creation time.
    pub created_at: Timestamp,
}

/// An end user / data subject. Its external id is kept only as an HMAC-SHA-256 hash.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Subject {
    /// Subject id (internal).
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Hex HMAC-SHA-256 of the external id under the store's secret.
    pub external_id_hash: String,
    /// Whether the subject consented to processing.
    pub consent: bool,
    /// When consent was recorded.
    pub consent_at: Option<Timestamp>,
    /// Subject is under 13: personal data needs parental consent first.
    pub age_gated: bool,
    /// When parental consent was recorded.
    pub parental_consent_at: Option<Timestamp>,
    /// Who recorded parental consent.
    pub parental_consent_by: Option<String>,
    /// Retention in days for this subject's records (None: tenant default).
    pub retention_days: Option<i64>,
    /// Strict privacy: with field encryption on, none of the subject's text enters a
    /// full-text index, so keyword search does not find its records (vector search
    /// still does). Set at creation only.
    #[serde(default)]
    pub strict: bool,
    /// Free-form metadata (no personal data here; it is not encrypted).
    #[serde(default = "empty_object")]
    pub metadata: Json,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// Input for creating a subject.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct NewSubject {
    /// Internal id; generated when absent.
    pub id: Option<String>,
    /// The caller's id for this person (email, user id). Hashed, never stored.
    pub external_id: String,
    /// Consent given.
    #[serde(default)]
    pub consent: bool,
    /// Under 13.
    #[serde(default)]
    pub age_gated: bool,
    /// Retention in days.
    pub retention_days: Option<i64>,
    /// Strict privacy (see [`Subject::strict`]); needs field encryption.
    #[serde(default)]
    pub strict: bool,
    /// Metadata.
    #[serde(default = "empty_object")]
    pub metadata: Json,
}

impl NewSubject {
    /// A subject known to the caller as `external_id`, with nothing else set.
    pub fn new(external_id: impl Into<String>) -> Self {
        NewSubject {
            external_id: external_id.into(),
            ..Default::default()
        }
    }
}

impl Default for NewSubject {
    fn default() -> Self {
        NewSubject {
            id: None,
            external_id: String::new(),
            consent: false,
            age_gated: false,
            retention_days: None,
            strict: false,
            metadata: empty_object(),
        }
    }
}

/// Changes to a subject; an absent field is left as it is. Consent has its own call
/// (`set_consent`), and the external id and strictness are fixed at creation.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct SubjectUpdate {
    /// Metadata keys to merge in (a JSON object; `null` values remove keys).
    pub metadata: Option<Json>,
    /// Retention in days for the subject's records; `null` returns to the tenant's
    /// rules.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<i64>")]
    pub retention_days: Option<Option<i64>>,
}

/// A registered agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Agent {
    /// Agent id.
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Namespace.
    pub namespace: Namespace,
    /// Unique name within the tenant.
    pub name: String,
    /// Agent type (planner, coder, ...).
    pub agent_type: Option<String>,
    /// Model provider.
    pub model_provider: Option<String>,
    /// Model name.
    pub model_name: Option<String>,
    /// Capabilities (JSON).
    #[serde(default = "empty_object")]
    pub capabilities: Json,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Active.
    pub active: bool,
    /// Experimental.
    pub experimental: bool,
    /// Metadata.
    #[serde(default = "empty_object")]
    pub metadata: Json,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// Input for registering (or replacing, same id) an agent.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct NewAgent {
    /// Id; generated when absent. An existing id is updated in place.
    pub id: Option<String>,
    /// Namespace.
    #[serde(default)]
    pub namespace: Namespace,
    /// Unique name within the tenant.
    pub name: String,
    /// Agent type.
    pub agent_type: Option<String>,
    /// Model provider.
    pub model_provider: Option<String>,
    /// Model name.
    pub model_name: Option<String>,
    /// Capabilities.
    #[serde(default = "empty_object")]
    pub capabilities: Json,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Active (default true).
    #[serde(default = "yes")]
    pub active: bool,
    /// Experimental.
    #[serde(default)]
    pub experimental: bool,
    /// Metadata.
    #[serde(default = "empty_object")]
    pub metadata: Json,
}

fn yes() -> bool {
    true
}

impl NewAgent {
    /// An active agent with just a name.
    pub fn named(name: impl Into<String>) -> Self {
        NewAgent {
            id: None,
            namespace: Namespace::root(),
            name: name.into(),
            agent_type: None,
            model_provider: None,
            model_name: None,
            capabilities: empty_object(),
            tags: Vec::new(),
            active: true,
            experimental: false,
            metadata: empty_object(),
        }
    }
}

/// Statistics derived from an agent's sessions, events and usage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentStats {
    /// Agent id.
    pub agent_id: String,
    /// Sessions run by the agent.
    pub sessions: i64,
    /// Sessions with outcome success = true.
    pub succeeded: i64,
    /// Sessions with outcome success = false.
    pub failed: i64,
    /// succeeded / (succeeded + failed), when any finished.
    pub success_rate: Option<f64>,
    /// Mean of ended_at - started_at over ended sessions, in milliseconds.
    pub avg_duration_ms: Option<f64>,
    /// Model calls recorded for the agent.
    pub usage_calls: i64,
    /// Input tokens over those calls.
    pub input_tokens: i64,
    /// Output tokens over those calls.
    pub output_tokens: i64,
    /// Actual cost (estimated where actual is missing).
    pub cost: f64,
}

/// One unit of agent work: a conversation, episode, task, learning session, evolution
/// round or run (`kind`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Session {
    /// Session id.
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Namespace.
    pub namespace: Namespace,
    /// conversation, episode, task, learning, evolution_round, run, or a custom kind.
    pub kind: String,
    /// Free status (active, completed, failed, archived, ...).
    pub status: String,
    /// Title.
    pub title: Option<String>,
    /// Domain.
    pub domain: Option<String>,
    /// Task type.
    pub task_type: Option<String>,
    /// Subject this session is about.
    pub subject_id: Option<String>,
    /// Agent running it.
    pub agent_id: Option<String>,
    /// Parent session.
    pub parent_id: Option<String>,
    /// Start.
    pub started_at: Timestamp,
    /// End.
    pub ended_at: Option<Timestamp>,
    /// Outcome: success.
    pub success: Option<bool>,
    /// Outcome: reward score.
    pub reward: Option<f64>,
    /// Outcome: reflection text.
    pub reflection: Option<String>,
    /// Priority (higher first).
    pub priority: i64,
    /// Metadata.
    #[serde(default = "empty_object")]
    pub metadata: Json,
    /// Expiry; swept by maintenance with its events.
    pub expires_at: Option<Timestamp>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// Input for creating a session.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct NewSession {
    /// Id; generated when absent.
    pub id: Option<String>,
    /// Namespace.
    #[serde(default)]
    pub namespace: Namespace,
    /// Kind.
    pub kind: String,
    /// Status (default `active`).
    pub status: Option<String>,
    /// Title.
    pub title: Option<String>,
    /// Domain.
    pub domain: Option<String>,
    /// Task type.
    pub task_type: Option<String>,
    /// Subject.
    pub subject_id: Option<String>,
    /// Agent.
    pub agent_id: Option<String>,
    /// Parent session.
    pub parent_id: Option<String>,
    /// Start (default now).
    pub started_at: Option<Timestamp>,
    /// Priority.
    #[serde(default)]
    pub priority: i64,
    /// Metadata.
    #[serde(default = "empty_object")]
    pub metadata: Json,
    /// Expiry.
    pub expires_at: Option<Timestamp>,
}

impl NewSession {
    /// A session of `kind` with defaults everywhere else.
    pub fn new(kind: impl Into<String>) -> Self {
        NewSession {
            id: None,
            namespace: Namespace::root(),
            kind: kind.into(),
            status: None,
            title: None,
            domain: None,
            task_type: None,
            subject_id: None,
            agent_id: None,
            parent_id: None,
            started_at: None,
            priority: 0,
            metadata: empty_object(),
            expires_at: None,
        }
    }
}

/// Changes to a session; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct SessionUpdate {
    /// New status.
    pub status: Option<String>,
    /// New title.
    pub title: Option<String>,
    /// End time.
    pub ended_at: Option<Timestamp>,
    /// Outcome: success.
    pub success: Option<bool>,
    /// Outcome: reward.
    pub reward: Option<f64>,
    /// Outcome: reflection.
    pub reflection: Option<String>,
    /// Priority.
    pub priority: Option<i64>,
    /// Metadata keys to merge in (a JSON object; `null` values remove keys).
    pub metadata: Option<Json>,
    /// Expiry.
    pub expires_at: Option<Timestamp>,
    /// Reassign the session to this agent; `null` leaves it without one.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub agent_id: Option<Option<String>>,
    /// Cannot change: only the session's current subject (or `null` when it has none) is
    /// accepted. A session's events, checkpoints and texts are that subject's personal
    /// data: sealed under the subject's key when fields are encrypted, kept out of the
    /// keyword index for a strict subject, exported and erased with the subject. Moving
    /// them to another person would need all of that redone, so work for another subject
    /// goes into a new session. The field is here so that such a request is refused
    /// with this reason rather than ignored.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub subject_id: Option<Option<String>>,
}

impl SessionUpdate {
    /// Refuses a `subject_id` other than the session's current one (see
    /// [`SessionUpdate::subject_id`]).
    pub fn check_subject(&self, current: Option<&str>) -> crate::Result<()> {
        match &self.subject_id {
            Some(wanted) if wanted.as_deref() != current => Err(crate::Error::invalid(
                "subject_id",
                "a session's subject cannot change: its events, checkpoints and texts are \
                 that subject's personal data (encrypted under its key, exported and erased \
                 with it); start a new session for the other subject",
            )),
            _ => Ok(()),
        }
    }

    /// The session after this update, made at `at`. The backend checks the subject
    /// ([`SessionUpdate::check_subject`]) and that a new agent exists; this refuses an end
    /// before the start.
    pub fn apply(&self, old: &Session, at: Timestamp) -> crate::Result<Session> {
        let mut s = old.clone();
        if let Some(agent) = &self.agent_id {
            s.agent_id.clone_from(agent);
        }
        if let Some(v) = &self.status {
            s.status.clone_from(v);
        }
        if let Some(v) = &self.title {
            s.title = Some(v.clone());
        }
        if let Some(v) = self.ended_at {
            if v < s.started_at {
                return Err(crate::Error::invalid(
                    "ended_at",
                    "is before the session started",
                ));
            }
            s.ended_at = Some(v);
        }
        if let Some(v) = self.success {
            s.success = Some(v);
        }
        if let Some(v) = self.reward {
            s.reward = Some(v);
        }
        if let Some(v) = &self.reflection {
            s.reflection = Some(v.clone());
        }
        if let Some(v) = self.priority {
            s.priority = v;
        }
        if let Some(m) = &self.metadata {
            merge_metadata(&mut s.metadata, m.clone());
        }
        if let Some(v) = self.expires_at {
            s.expires_at = Some(v);
        }
        s.updated_at = at;
        Ok(s)
    }
}

impl SubjectUpdate {
    /// The subject after this update (metadata merged, retention replaced).
    pub fn apply(&self, old: &Subject) -> Subject {
        let mut s = old.clone();
        if let Some(m) = &self.metadata {
            merge_metadata(&mut s.metadata, m.clone());
        }
        if let Some(days) = self.retention_days {
            s.retention_days = days;
        }
        s
    }
}

/// Merges `patch` into `base`: keys with `null` values are removed.
pub fn merge_metadata(base: &mut Json, patch: Json) {
    if let (Some(b), Json::Object(p)) = (base.as_object_mut(), patch) {
        for (k, v) in p {
            if v.is_null() {
                b.remove(&k);
            } else {
                b.insert(k, v);
            }
        }
    }
}

/// A field that is present in the input, `null` or not: `Some(None)` for `null`, while
/// an absent field stays `None` through `#[serde(default)]`.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// An append-only entry in a session, totally ordered by `seq`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Event {
    /// Event id.
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Session.
    pub session_id: String,
    /// Position in the session, from 1, strictly increasing.
    pub seq: i64,
    /// message, step, tool_call, decision, interaction, comment, or custom.
    pub kind: String,
    /// user, assistant, system, tool, ...
    pub role: Option<String>,
    /// Text content.
    pub content: Option<String>,
    /// Tool name.
    pub tool_name: Option<String>,
    /// Tool parameters / decision inputs.
    pub parameters: Option<Json>,
    /// Result.
    pub result: Option<Json>,
    /// Success.
    pub success: Option<bool>,
    /// Duration in milliseconds.
    pub duration_ms: Option<i64>,
    /// Tokens used.
    pub tokens: Option<i64>,
    /// Cost.
    pub cost: Option<f64>,
    /// Metadata.
    #[serde(default = "empty_object")]
    pub metadata: Json,
    /// Time of the event.
    pub created_at: Timestamp,
}

/// Input for appending an event.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct NewEvent {
    /// Id; generated when absent.
    pub id: Option<String>,
    /// Kind.
    pub kind: String,
    /// Role.
    pub role: Option<String>,
    /// Content.
    pub content: Option<String>,
    /// Tool name.
    pub tool_name: Option<String>,
    /// Parameters.
    pub parameters: Option<Json>,
    /// Result.
    pub result: Option<Json>,
    /// Success.
    pub success: Option<bool>,
    /// Duration.
    pub duration_ms: Option<i64>,
    /// Tokens.
    pub tokens: Option<i64>,
    /// Cost.
    pub cost: Option<f64>,
    /// Metadata.
    pub metadata: Option<Json>,
    /// Time (default now).
    pub created_at: Option<Timestamp>,
    /// A vector of the store's vector model for this event, computed by the caller. Events
    /// are embedded by the store only when it was opened with `embed_events`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
}

impl NewEvent {
    /// A message event.
    pub fn message(role: impl Into<String>, content: impl Into<String>) -> Self {
        NewEvent {
            kind: "message".into(),
            role: Some(role.into()),
            content: Some(content.into()),
            ..Default::default()
        }
    }
}

/// Long-lived knowledge: facts, context, summaries, patterns, knowledge states, evidence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Memory {
    /// Memory id (one id per version).
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Namespace.
    pub namespace: Namespace,
    /// fact, context, summary, pattern, knowledge, evidence, preference, or custom.
    pub kind: String,
    /// Upsert key, unique among current versions within (tenant, namespace).
    pub key: Option<String>,
    /// Content.
    pub content: String,
    /// Summary.
    pub summary: Option<String>,
    /// working, short or long.
    pub tier: String,
    /// Importance 0..1.
    pub importance: f64,
    /// Confidence / credibility 0..1.
    pub confidence: f64,
    /// Success rate 0..1 (patterns).
    pub success_rate: Option<f64>,
    /// Pinned.
    pub pinned: bool,
    /// Priority (higher first).
    pub priority: i64,
    /// Topic.
    pub topic: Option<String>,
    /// Domain.
    pub domain: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Source sessions.
    pub source_sessions: Vec<String>,
    /// Source events.
    pub source_events: Vec<String>,
    /// Subject.
    pub subject_id: Option<String>,
    /// Agent.
    pub agent_id: Option<String>,
    /// Reads recorded with `touch`.
    pub access_count: i64,
    /// Last recorded read.
    pub last_accessed_at: Option<Timestamp>,
    /// Token count (caller's, or estimated).
    pub token_count: i64,
    /// Hex SHA-256 of the content.
    pub content_hash: String,
    /// Start of validity.
    pub valid_from: Timestamp,
    /// End of validity (set when superseded or invalidated).
    pub valid_to: Option<Timestamp>,
    /// The version that replaced this one.
    pub superseded_by: Option<String>,
    /// Expiry.
    pub expires_at: Option<Timestamp>,
    /// Metadata.
    pub metadata: Json,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// Input for `remember` (insert, or upsert when `key` is set).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct NewMemory {
    /// Id; generated when absent.
    pub id: Option<String>,
    /// Namespace.
    #[serde(default)]
    pub namespace: Namespace,
    /// Kind (default `fact`).
    #[serde(default = "default_memory_kind")]
    pub kind: String,
    /// Upsert key.
    pub key: Option<String>,
    /// Content.
    pub content: String,
    /// Summary.
    pub summary: Option<String>,
    /// Tier (default `long`).
    pub tier: Option<String>,
    /// Importance (default 0.5).
    pub importance: Option<f64>,
    /// Confidence (default 1.0).
    pub confidence: Option<f64>,
    /// Success rate.
    pub success_rate: Option<f64>,
    /// Pinned.
    #[serde(default)]
    pub pinned: bool,
    /// Priority.
    #[serde(default)]
    pub priority: i64,
    /// Topic.
    pub topic: Option<String>,
    /// Domain.
    pub domain: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Source sessions.
    #[serde(default)]
    pub source_sessions: Vec<String>,
    /// Source events.
    #[serde(default)]
    pub source_events: Vec<String>,
    /// Subject.
    pub subject_id: Option<String>,
    /// Agent.
    pub agent_id: Option<String>,
    /// Token count (estimated from the content when absent).
    pub token_count: Option<i64>,
    /// Validity start (default now).
    pub valid_from: Option<Timestamp>,
    /// Expiry.
    pub expires_at: Option<Timestamp>,
    /// Metadata.
    #[serde(default = "empty_object")]
    pub metadata: Json,
    /// A vector of the store's vector model for the content, computed by the caller;
    /// without one, a store with an embedder embeds the content itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
}

fn default_memory_kind() -> String {
    "fact".into()
}

impl NewMemory {
    /// A fact with the given content and defaults elsewhere.
    pub fn new(content: impl Into<String>) -> Self {
        NewMemory {
            id: None,
            namespace: Namespace::root(),
            kind: default_memory_kind(),
            key: None,
            content: content.into(),
            summary: None,
            tier: None,
            importance: None,
            confidence: None,
            success_rate: None,
            pinned: false,
            priority: 0,
            topic: None,
            domain: None,
            tags: Vec::new(),
            source_sessions: Vec::new(),
            source_events: Vec::new(),
            subject_id: None,
            agent_id: None,
            token_count: None,
            valid_from: None,
            expires_at: None,
            metadata: empty_object(),
            vector: None,
        }
    }
}

/// What `remember` did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum UpsertOutcome {
    /// A new memory was stored.
    Created {
        /// Its id.
        id: String,
    },
    /// Same key, same content: the current version's other fields were updated in place.
    Updated {
        /// Its id.
        id: String,
    },
    /// Same key, new content: the old version was closed (`valid_to`, `superseded_by`) and
    /// a new version stored.
    Superseded {
        /// The new version.
        id: String,
        /// The version it replaced.
        previous: String,
    },
    /// No key, and a current memory in the namespace already has this content: nothing stored.
    Deduplicated {
        /// The existing memory.
        id: String,
    },
}

impl UpsertOutcome {
    /// The id of the memory now holding the content.
    pub fn id(&self) -> &str {
        match self {
            UpsertOutcome::Created { id }
            | UpsertOutcome::Updated { id }
            | UpsertOutcome::Superseded { id, .. }
            | UpsertOutcome::Deduplicated { id } => id,
        }
    }
}

/// A source text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Document {
    /// Document id.
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Namespace.
    pub namespace: Namespace,
    /// Title.
    pub title: Option<String>,
    /// Type (text, markdown, jsonl, attachment, generated, ...).
    pub doc_type: String,
    /// Source path.
    pub source_path: Option<String>,
    /// Source URL.
    pub source_url: Option<String>,
    /// Hex SHA-256 of the content.
    pub content_hash: String,
    /// Words in the content.
    pub word_count: i64,
    /// Full content.
    pub content: String,
    /// Subject.
    pub subject_id: Option<String>,
    /// Chunk size used (characters).
    pub chunk_size: i64,
    /// Chunk overlap used (characters).
    pub chunk_overlap: i64,
    /// Metadata.
    pub metadata: Json,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// A piece of a document, the unit of retrieval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Chunk {
    /// Chunk id.
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Document.
    pub document_id: String,
    /// Position in the document, from 0.
    pub idx: i64,
    /// Text.
    pub content: String,
    /// Hex SHA-256 of the text.
    pub content_hash: String,
    /// Byte offset of the text in the document.
    pub start: i64,
    /// Byte offset one past the end.
    pub end: i64,
    /// Words.
    pub word_count: i64,
    /// Estimated tokens.
    pub token_count: i64,
    /// Times returned by a query.
    pub query_count: i64,
    /// Last time returned by a query.
    pub last_queried_at: Option<Timestamp>,
    /// Creation time.
    pub created_at: Timestamp,
}

/// Input for storing a document.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct NewDocument {
    /// Id; generated when absent. An existing id with new content replaces its chunks.
    pub id: Option<String>,
    /// Namespace.
    #[serde(default)]
    pub namespace: Namespace,
    /// Title.
    pub title: Option<String>,
    /// Type (default `text`).
    pub doc_type: Option<String>,
    /// Source path. A document with the same path in the namespace is replaced.
    pub source_path: Option<String>,
    /// Source URL.
    pub source_url: Option<String>,
    /// Content.
    pub content: String,
    /// Subject.
    pub subject_id: Option<String>,
    /// Chunking (default 1000 characters, 100 overlap).
    #[serde(default)]
    pub chunking: crate::text::ChunkOptions,
    /// Metadata.
    #[serde(default = "empty_object")]
    pub metadata: Json,
}

impl NewDocument {
    /// A text document with default chunking.
    pub fn new(content: impl Into<String>) -> Self {
        NewDocument {
            id: None,
            namespace: Namespace::root(),
            title: None,
            doc_type: None,
            source_path: None,
            source_url: None,
            content: content.into(),
            subject_id: None,
            chunking: Default::default(),
            metadata: empty_object(),
        }
    }
}

/// What `put_document` did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum DocumentOutcome {
    /// New document and chunks.
    Created {
        /// Document id.
        id: String,
        /// Chunks stored.
        chunks: usize,
    },
    /// Same id or source path with new content: old chunks replaced.
    Replaced {
        /// Document id.
        id: String,
        /// Chunks stored.
        chunks: usize,
    },
    /// Identical content already stored (same id, source path or content hash): nothing done.
    Unchanged {
        /// Existing document id.
        id: String,
    },
}

impl DocumentOutcome {
    /// The document id.
    pub fn id(&self) -> &str {
        match self {
            DocumentOutcome::Created { id, .. }
            | DocumentOutcome::Replaced { id, .. }
            | DocumentOutcome::Unchanged { id } => id,
        }
    }
}

/// Opaque state: JSON, or bytes (base64 in JSON form).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "format", content = "data", rename_all = "snake_case")]
pub enum Payload {
    /// A JSON value.
    Json(Json),
    /// Raw bytes.
    Bytes(
        #[serde(with = "crate::codec::base64_bytes")]
        #[schemars(with = "String")]
        Vec<u8>,
    ),
}

impl Payload {
    /// Format tag stored beside the bytes.
    pub fn format(&self) -> &'static str {
        match self {
            Payload::Json(_) => "json",
            Payload::Bytes(_) => "bytes",
        }
    }

    /// Storage bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Payload::Json(v) => serde_json::to_vec(v).unwrap_or_default(),
            Payload::Bytes(b) => b.clone(),
        }
    }

    /// From storage bytes and format tag.
    pub fn from_bytes(format: &str, bytes: Vec<u8>) -> crate::Result<Self> {
        match format {
            "json" => Ok(Payload::Json(serde_json::from_slice(&bytes).map_err(
                |e| crate::Error::Corrupt(format!("stored JSON payload: {e}")),
            )?)),
            "bytes" => Ok(Payload::Bytes(bytes)),
            other => Err(crate::Error::Corrupt(format!(
                "unknown payload format '{other}'"
            ))),
        }
    }

    /// Size in bytes as stored.
    pub fn len(&self) -> usize {
        match self {
            Payload::Json(v) => serde_json::to_vec(v).map(|v| v.len()).unwrap_or(0),
            Payload::Bytes(b) => b.len(),
        }
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A snapshot of agent state in a thread (a session), as graph-agent checkpointers keep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Checkpoint {
    /// Owning tenant.
    pub tenant_id: String,
    /// Thread = session id.
    pub session_id: String,
    /// Checkpoint namespace ("" by default).
    pub checkpoint_ns: String,
    /// Checkpoint id, unique in (session, ns).
    pub id: String,
    /// Parent checkpoint.
    pub parent_id: Option<String>,
    /// State.
    pub state: Payload,
    /// Metadata.
    pub metadata: Json,
    /// Creation time.
    pub created_at: Timestamp,
}

/// Input for storing a checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct NewCheckpoint {
    /// Thread = session id.
    pub session_id: String,
    /// Checkpoint namespace.
    #[serde(default)]
    pub checkpoint_ns: String,
    /// Id; generated (time-ordered) when absent.
    pub id: Option<String>,
    /// Parent.
    pub parent_id: Option<String>,
    /// State.
    pub state: Payload,
    /// Metadata.
    #[serde(default = "empty_object")]
    pub metadata: Json,
}

/// A write recorded against a checkpoint that has not been applied yet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PendingWrite {
    /// Owning tenant.
    pub tenant_id: String,
    /// Thread = session id.
    pub session_id: String,
    /// Checkpoint namespace.
    pub checkpoint_ns: String,
    /// Checkpoint id.
    pub checkpoint_id: String,
    /// Task that produced the write.
    pub task_id: String,
    /// Index of the write within the task.
    pub idx: i64,
    /// Channel written.
    pub channel: String,
    /// Value.
    pub value: Payload,
    /// Creation time.
    pub created_at: Timestamp,
}

/// Input for one pending write.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct NewPendingWrite {
    /// Task id.
    pub task_id: String,
    /// Index within the task.
    pub idx: i64,
    /// Channel.
    pub channel: String,
    /// Value.
    pub value: Payload,
}

/// One model call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UsageRecord {
    /// Record id.
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Session.
    pub session_id: Option<String>,
    /// Agent.
    pub agent_id: Option<String>,
    /// Provider.
    pub provider: String,
    /// Model.
    pub model: String,
    /// Operation (chat, embed, ...).
    pub operation: Option<String>,
    /// Input tokens.
    pub input_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// Estimated cost.
    pub estimated_cost: Option<f64>,
    /// Actual cost.
    pub actual_cost: Option<f64>,
    /// Latency in milliseconds.
    pub latency_ms: Option<f64>,
    /// Quality score 0..1.
    pub quality_score: Option<f64>,
    /// Success.
    pub success: bool,
    /// Metadata.
    pub metadata: Json,
    /// Time of the call.
    pub created_at: Timestamp,
}

/// Input for one usage record.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct NewUsage {
    /// Id; generated when absent.
    pub id: Option<String>,
    /// Session.
    pub session_id: Option<String>,
    /// Agent.
    pub agent_id: Option<String>,
    /// Provider.
    pub provider: String,
    /// Model.
    pub model: String,
    /// Operation.
    pub operation: Option<String>,
    /// Input tokens.
    #[serde(default)]
    pub input_tokens: i64,
    /// Output tokens.
    #[serde(default)]
    pub output_tokens: i64,
    /// Estimated cost.
    pub estimated_cost: Option<f64>,
    /// Actual cost.
    pub actual_cost: Option<f64>,
    /// Latency.
    pub latency_ms: Option<f64>,
    /// Quality.
    pub quality_score: Option<f64>,
    /// Success (default true).
    #[serde(default = "yes")]
    pub success: bool,
    /// Metadata.
    #[serde(default = "empty_object")]
    pub metadata: Json,
    /// Time (default now).
    pub created_at: Option<Timestamp>,
}

/// One sample of a named, labelled series.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MetricPoint {
    /// Owning tenant.
    pub tenant_id: String,
    /// Metric name.
    pub name: String,
    /// Labels; the full label set identifies the series.
    pub labels: BTreeMap<String, String>,
    /// Value.
    pub value: f64,
    /// Sample time.
    pub at: Timestamp,
}

/// Input for one metric point.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct NewMetricPoint {
    /// Metric name.
    pub name: String,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Value.
    pub value: f64,
    /// Time (default now).
    pub at: Option<Timestamp>,
}

/// One tamper-evident audit entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AuditEntry {
    /// Position in the log, from 1.
    pub seq: i64,
    /// Tenant the change belongs to (None for store-wide operations).
    pub tenant_id: Option<String>,
    /// Time.
    pub at: Timestamp,
    /// Who (API key id, CLI user, `system`).
    pub actor: String,
    /// What, e.g. `event.append`.
    pub action: String,
    /// Kind of record changed.
    pub resource_type: String,
    /// Id of the record changed.
    pub resource_id: String,
    /// Values before (personal fields redacted).
    pub old_values: Option<Json>,
    /// Values after (personal fields redacted).
    pub new_values: Option<Json>,
    /// Request context (request id, remote address, command line).
    pub context: Json,
    /// Hex SHA-256 of the previous entry (64 zeros for the first).
    pub prev_hash: String,
    /// Hex SHA-256 over this entry's fields and `prev_hash`.
    pub hash: String,
}

/// A key-value cache entry with optional TTL.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KvEntry {
    /// Owning tenant.
    pub tenant_id: String,
    /// Key.
    pub key: String,
    /// Value.
    pub value: Json,
    /// Expiry.
    pub expires_at: Option<Timestamp>,
    /// Incremented on each write.
    pub version: i64,
    /// Last write.
    pub updated_at: Timestamp,
}

/// A named lock (lease) with a fencing token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Lock {
    /// Owning tenant.
    pub tenant_id: String,
    /// Lock name.
    pub name: String,
    /// Current holder (None when released).
    pub holder: Option<String>,
    /// Fencing token of the latest acquisition; strictly increasing per lock.
    pub token: i64,
    /// When acquired.
    pub acquired_at: Option<Timestamp>,
    /// When the lease runs out.
    pub expires_at: Option<Timestamp>,
}

/// A page of results with the cursor for the next one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Page<T> {
    /// Items.
    pub items: Vec<T>,
    /// Pass as `after` to get the next page; None when this is the last.
    pub next: Option<String>,
}

/// What an API key allows. `admin` implies `write`, which implies `read`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum KeyScope {
    /// Read records and search.
    Read,
    /// Create, change and delete records.
    Write,
    /// Tenant administration: keys, audit log, erasure.
    Admin,
}

impl KeyScope {
    /// Parses `read`, `write` or `admin`.
    pub fn parse(s: &str) -> crate::Result<Self> {
        match s.trim() {
            "read" => Ok(KeyScope::Read),
            "write" => Ok(KeyScope::Write),
            "admin" => Ok(KeyScope::Admin),
            other => Err(crate::Error::invalid(
                "scopes",
                format!("unknown scope '{other}' (expected read, write or admin)"),
            )),
        }
    }

    /// The scope's name.
    pub fn as_str(&self) -> &'static str {
        match self {
            KeyScope::Read => "read",
            KeyScope::Write => "write",
            KeyScope::Admin => "admin",
        }
    }
}

/// An API key of the HTTP server. Its secret is shown once, when the key is created;
/// the store keeps only a SHA-256 of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApiKey {
    /// Key id (not secret).
    pub id: String,
    /// The tenant every request made with this key is confined to.
    pub tenant_id: String,
    /// A label for people.
    pub name: String,
    /// The secret's first characters, so a person can tell keys apart.
    pub prefix: String,
    /// What the key allows.
    pub scopes: Vec<KeyScope>,
    /// When created.
    pub created_at: Timestamp,
    /// When the key stops working, if ever.
    pub expires_at: Option<Timestamp>,
    /// When revoked; a revoked key never works again.
    pub revoked_at: Option<Timestamp>,
}

impl ApiKey {
    /// Whether the key grants `scope` at `now` (not revoked, not expired). `admin`
    /// grants everything, `write` grants `read`.
    pub fn allows(&self, scope: KeyScope, now: Timestamp) -> bool {
        self.revoked_at.is_none()
            && self.expires_at.is_none_or(|e| e > now)
            && self.scopes.iter().any(|s| *s >= scope)
    }
}

/// A key just created, with its secret (shown only this once).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CreatedApiKey {
    /// The key.
    pub key: ApiKey,
    /// The secret to send as `Authorization: Bearer <secret>`.
    pub secret: String,
}

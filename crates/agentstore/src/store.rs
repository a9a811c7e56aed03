//! The engine: validates input, builds complete records and computes aggregates, then
//! calls a [`Backend`]. Everything a user does goes through [`Store`].

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::backend::*;
use crate::codec::{
    estimate_tokens, id_or_new, new_id, sha256_hex, subject_hash, validate_id, word_count,
};
use crate::embedding::{Embedder, Embedding, Metric, VectorModel};
use crate::error::{Error, Result};
use crate::model::*;
use crate::namespace::Namespace;
use crate::search::{
    self, HitRecord, Ranked, ScoreComponents, SearchHit, SearchMode, SearchRequest, Target,
};
use crate::text::chunk_text;
use crate::time::{Timestamp, now, truncate};

/// What every API key secret starts with, so a leaked one is easy to find by scanning.
pub const API_KEY_PREFIX: &str = "ask_";

/// Size limits applied to every write.
///
/// ## Defaults
/// - `max_content_bytes`: 1 MiB. A memory or event is a unit of recall; anything larger
///   belongs in a document, which is chunked.
/// - `max_document_bytes`: 32 MiB.
/// - `max_json_bytes`: 256 KiB for metadata, parameters, results and KV values.
/// - `max_state_bytes`: 16 MiB for checkpoint state and pending-write values.
/// - `max_batch`: 10,000 items in one batched call.
/// - `max_short_field`: 1,024 bytes for kinds, names, statuses, tags and similar.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Limits {
    /// Memory / event content.
    pub max_content_bytes: usize,
    /// Document content.
    pub max_document_bytes: usize,
    /// JSON fields.
    pub max_json_bytes: usize,
    /// Checkpoint state.
    pub max_state_bytes: usize,
    /// Items per batch.
    pub max_batch: usize,
    /// Short text fields.
    pub max_short_field: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_content_bytes: 1 << 20,
            max_document_bytes: 32 << 20,
            max_json_bytes: 256 << 10,
            max_state_bytes: 16 << 20,
            max_batch: 10_000,
            max_short_field: 1024,
        }
    }
}

/// Default and maximum page sizes for list calls.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

fn page_limit(limit: usize) -> usize {
    match limit {
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    }
}

/// How usage records are grouped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UsageGroup {
    /// By model (`provider/model`).
    Model,
    /// By agent id.
    Agent,
    /// One group over everything.
    All,
}

/// Aggregate of usage records for one group and time bucket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UsageAggregate {
    /// Group key (model, agent id or `all`).
    pub group: String,
    /// Bucket start when bucketed.
    pub bucket: Option<Timestamp>,
    /// Calls.
    pub calls: u64,
    /// Successful calls.
    pub successes: u64,
    /// successes / calls.
    pub success_rate: f64,
    /// Input tokens.
    pub input_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// Sum of estimated cost.
    pub estimated_cost: f64,
    /// Sum of actual cost.
    pub actual_cost: f64,
    /// Mean latency over calls that reported one.
    pub avg_latency_ms: Option<f64>,
    /// Mean quality over calls that reported one.
    pub avg_quality: Option<f64>,
}

/// One downsampled bucket of a metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MetricBucket {
    /// Bucket start.
    pub start: Timestamp,
    /// Points.
    pub count: u64,
    /// Mean.
    pub avg: f64,
    /// Minimum.
    pub min: f64,
    /// Maximum.
    pub max: f64,
    /// Sum.
    pub sum: f64,
}

/// Latest value of one series, for leaderboards.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SeriesValue {
    /// Series labels.
    pub labels: BTreeMap<String, String>,
    /// Latest value.
    pub value: f64,
    /// Its time.
    pub at: Timestamp,
}

/// What [`Store::embed_missing`] did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EmbedReport {
    /// The model embedded with.
    pub model: String,
    /// Records embedded per target (`memory`, `chunk`, `event`).
    pub embedded: BTreeMap<String, u64>,
}

/// The agentstore engine over one backend. Cheap to clone; share it between threads.
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
    limits: Limits,
    subject_secret: Arc<Vec<u8>>,
    /// Embeds memories and chunks on write and query text on search.
    embedder: Option<Arc<dyn Embedder>>,
    /// The model of the vectors this store writes and searches (the embedder's, or one
    /// declared for caller-supplied vectors).
    vector_model: Option<VectorModel>,
    /// Metric of vectors written without a configured model, and of the embedder's.
    metric: Metric,
    /// Embed events' content too (off by default: events are the hot write path).
    embed_events: bool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend.name())
            .field("limits", &self.limits)
            .field("vector_model", &self.vector_model)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// An engine over `backend`. `subject_secret` keys the HMAC of subjects' external ids.
    pub fn new(backend: Arc<dyn Backend>, subject_secret: Vec<u8>, limits: Limits) -> Self {
        Store {
            backend,
            limits,
            subject_secret: Arc::new(subject_secret),
            embedder: None,
            vector_model: None,
            metric: Metric::default(),
            embed_events: false,
        }
    }

    /// This store with an embedder: memories and chunks are embedded as they are written,
    /// and query text is embedded for vector and hybrid search. Its model becomes the
    /// store's vector model (metric: cosine, or the one set by [`Store::with_metric`]).
    pub fn with_embedder(mut self, embedder: Arc<dyn Embedder>) -> Self {
        self.vector_model = Some(VectorModel {
            id: embedder.model_id().to_owned(),
            dimension: embedder.dimension(),
            metric: self.metric,
        });
        self.embedder = Some(embedder);
        self
    }

    /// This store with a declared vector model for caller-supplied vectors (no embedder):
    /// vectors must have its dimension and are recorded under its id. Without either, a
    /// caller's vectors are recorded under [`crate::embedding::external_model_id`].
    pub fn with_vector_model(mut self, model: VectorModel) -> Self {
        self.metric = model.metric;
        self.vector_model = Some(model);
        self
    }

    /// The metric for the vector model (default cosine). It is recorded with the model's
    /// first vector; a store that already has vectors of the model keeps its metric and
    /// refuses a different one with `conflict`.
    pub fn with_metric(mut self, metric: Metric) -> Self {
        self.metric = metric;
        if let Some(m) = &mut self.vector_model {
            m.metric = metric;
        }
        self
    }

    /// Whether events are embedded on append (default off; caller-supplied event vectors
    /// are always stored).
    pub fn embed_events(mut self, on: bool) -> Self {
        self.embed_events = on;
        self
    }

    /// The store's embedder, if any.
    pub fn embedder(&self) -> Option<&Arc<dyn Embedder>> {
        self.embedder.as_ref()
    }

    /// The store's vector model, if one is configured.
    pub fn vector_model(&self) -> Option<&VectorModel> {
        self.vector_model.as_ref()
    }

    /// The backend (for admin tools and tests).
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Applies raw ops in one transaction. Prefer the typed methods, which validate.
    pub fn write(&self, scope: &Scope, ops: Vec<WriteOp>) -> Result<Vec<WriteResult>> {
        self.backend.write(scope, ops)
    }

    fn write_one(&self, scope: &Scope, op: WriteOp) -> Result<WriteResult> {
        let mut r = self.backend.write(scope, vec![op])?;
        Ok(r.pop().unwrap_or(WriteResult::None))
    }

    // ---------------------------------------------------------------- validation helpers

    fn short(&self, field: &str, v: &str) -> Result<()> {
        if v.len() > self.limits.max_short_field {
            return Err(Error::TooLarge {
                field: field.into(),
                size: v.len(),
                limit: self.limits.max_short_field,
            });
        }
        Ok(())
    }

    fn short_opt(&self, field: &str, v: Option<&String>) -> Result<()> {
        v.map_or(Ok(()), |v| self.short(field, v))
    }

    fn label(&self, field: &str, v: &str) -> Result<()> {
        if v.trim().is_empty() {
            return Err(Error::invalid(field, "must not be empty"));
        }
        self.short(field, v)?;
        if v.chars().any(char::is_control) {
            return Err(Error::invalid(field, "must not contain control characters"));
        }
        Ok(())
    }

    fn content(&self, field: &str, v: &str, limit: usize) -> Result<()> {
        if v.len() > limit {
            return Err(Error::TooLarge {
                field: field.into(),
                size: v.len(),
                limit,
            });
        }
        Ok(())
    }

    fn json(&self, field: &str, v: &Json) -> Result<()> {
        let size = serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX);
        if size > self.limits.max_json_bytes {
            return Err(Error::TooLarge {
                field: field.into(),
                size,
                limit: self.limits.max_json_bytes,
            });
        }
        Ok(())
    }

    fn object(&self, field: &str, v: &Json) -> Result<()> {
        if !v.is_object() {
            return Err(Error::invalid(field, "must be a JSON object"));
        }
        self.json(field, v)
    }

    fn score(field: &str, v: Option<f64>) -> Result<()> {
        if let Some(v) = v
            && !(0.0..=1.0).contains(&v)
        {
            return Err(Error::invalid(field, "must be between 0 and 1"));
        }
        Ok(())
    }

    fn finite(field: &str, v: Option<f64>) -> Result<()> {
        if let Some(v) = v
            && !v.is_finite()
        {
            return Err(Error::invalid(field, "must be a finite number"));
        }
        Ok(())
    }

    fn batch<T>(&self, field: &str, items: &[T]) -> Result<()> {
        if items.len() > self.limits.max_batch {
            return Err(Error::invalid(
                field,
                format!("at most {} items per call", self.limits.max_batch),
            ));
        }
        Ok(())
    }

    fn opt_id(field: &str, v: Option<&String>) -> Result<()> {
        v.map_or(Ok(()), |v| validate_id(field, v))
    }

    fn tags(&self, tags: &[String]) -> Result<()> {
        if tags.len() > 64 {
            return Err(Error::invalid("tags", "at most 64 tags"));
        }
        tags.iter().try_for_each(|t| self.label("tags", t))
    }

    // ---------------------------------------------------------------- tenants, subjects

    /// Creates a tenant.
    pub fn create_tenant(&self, actor: &str, id: &str, name: &str) -> Result<Tenant> {
        validate_id("tenant", id)?;
        self.label("name", name)?;
        let t = Tenant {
            id: id.into(),
            name: name.into(),
            created_at: now(),
        };
        self.write_one(&Scope::new(id, actor), WriteOp::CreateTenant(t.clone()))?;
        Ok(t)
    }

    /// Creates the tenant unless it exists.
    pub fn ensure_tenant(&self, actor: &str, id: &str) -> Result<Tenant> {
        match self.backend.get_tenant(id)? {
            Some(t) => Ok(t),
            None => match self.create_tenant(actor, id, id) {
                Err(Error::AlreadyExists { .. }) => self
                    .backend
                    .get_tenant(id)?
                    .ok_or_else(|| Error::not_found("tenant", id)),
                other => other,
            },
        }
    }

    /// A tenant by id.
    pub fn get_tenant(&self, id: &str) -> Result<Tenant> {
        self.backend
            .get_tenant(id)?
            .ok_or_else(|| Error::not_found("tenant", id))
    }

    /// All tenants.
    pub fn list_tenants(&self) -> Result<Vec<Tenant>> {
        self.backend.list_tenants()
    }

    /// Checks the scope's tenant id. Whether the tenant exists is the backend's check,
    /// inside the write transaction (the `Backend` contract); asking here too would cost
    /// every write an extra read.
    fn validate_tenant(scope: &Scope) -> Result<()> {
        validate_id("tenant", &scope.tenant)
    }

    /// The keyed hash under which a subject's external id is stored.
    pub fn subject_hash(&self, tenant: &str, external_id: &str) -> String {
        subject_hash(&self.subject_secret, tenant, external_id)
    }

    /// Creates a subject; only the keyed hash of `external_id` is stored.
    pub fn create_subject(&self, scope: &Scope, s: NewSubject) -> Result<Subject> {
        Self::validate_tenant(scope)?;
        if s.external_id.is_empty() {
            return Err(Error::invalid("external_id", "must not be empty"));
        }
        self.short("external_id", &s.external_id)?;
        self.object("metadata", &s.metadata)?;
        if s.retention_days.is_some_and(|d| d <= 0) {
            return Err(Error::invalid("retention_days", "must be positive"));
        }
        let at = now();
        let subject = Subject {
            id: id_or_new("id", s.id.as_deref())?,
            tenant_id: scope.tenant.clone(),
            external_id_hash: self.subject_hash(&scope.tenant, &s.external_id),
            consent: s.consent,
            consent_at: s.consent.then_some(at),
            age_gated: s.age_gated,
            parental_consent_at: None,
            parental_consent_by: None,
            retention_days: s.retention_days,
            strict: s.strict,
            metadata: s.metadata,
            created_at: at,
            updated_at: at,
        };
        self.write_one(scope, WriteOp::CreateSubject(subject.clone()))?;
        Ok(subject)
    }

    /// A subject by id.
    pub fn get_subject(&self, scope: &Scope, id: &str) -> Result<Subject> {
        self.backend
            .get_subject(&scope.tenant, id)?
            .ok_or_else(|| Error::not_found("subject", id))
    }

    /// A subject by the caller's external id.
    pub fn find_subject(&self, scope: &Scope, external_id: &str) -> Result<Option<Subject>> {
        if external_id.is_empty() {
            return Err(Error::invalid("external_id", "must not be empty"));
        }
        self.short("external_id", external_id)?;
        self.backend.find_subject(
            &scope.tenant,
            &self.subject_hash(&scope.tenant, external_id),
        )
    }

    /// Changes a subject's metadata (merged) or retention.
    pub fn update_subject(&self, scope: &Scope, id: &str, u: SubjectUpdate) -> Result<Subject> {
        Self::validate_tenant(scope)?;
        if let Some(m) = &u.metadata {
            self.object("metadata", m)?;
        }
        if let Some(Some(d)) = u.retention_days
            && d <= 0
        {
            return Err(Error::invalid("retention_days", "must be positive"));
        }
        self.write_one(
            scope,
            WriteOp::UpdateSubject {
                id: id.into(),
                update: u,
                at: now(),
            },
        )?;
        self.get_subject(scope, id)
    }

    /// Records consent, and parental consent with the actor who recorded it.
    pub fn set_consent(
        &self,
        scope: &Scope,
        id: &str,
        consent: bool,
        parental_consent_by: Option<&str>,
    ) -> Result<Subject> {
        if let Some(by) = parental_consent_by {
            self.label("parental_consent_by", by)?;
        }
        self.write_one(
            scope,
            WriteOp::SetConsent {
                id: id.into(),
                consent,
                parental_consent_by: parental_consent_by.map(str::to_owned),
                at: now(),
            },
        )?;
        self.get_subject(scope, id)
    }

    /// Everything stored about a subject, as one JSON-ready document (GDPR access).
    /// Who took a copy of whose data is itself recorded: the export leaves a
    /// `subject.export` audit entry with its counts.
    pub fn export_subject(&self, scope: &Scope, id: &str) -> Result<SubjectExport> {
        let export = self
            .backend
            .export_subject(&scope.tenant, id, now())?
            .ok_or_else(|| Error::not_found("subject", id))?;
        let counts = serde_json::json!({
            "sessions": export.sessions.len(),
            "events": export.events.len(),
            "checkpoints": export.checkpoints.len(),
            "memories": export.memories.len(),
            "documents": export.documents.len(),
            "chunks": export.chunks.len(),
            "usage": export.usage.len(),
            "audit": export.audit.len(),
        });
        self.audit_action(scope, "subject.export", "subject", id, &counts)?;
        Ok(export)
    }

    /// Records an administrative action (a migration, maintenance, a restore, a key
    /// rotation) in the audit log; `values` are redacted like every entry's.
    pub fn audit_action(
        &self,
        scope: &Scope,
        action: &str,
        resource_type: &str,
        resource_id: &str,
        values: &impl serde::Serialize,
    ) -> Result<()> {
        Self::validate_tenant(scope)?;
        let draft =
            crate::audit::AuditDraft::new(action, resource_type, resource_id).new_values(values);
        self.write_one(scope, WriteOp::Audit(draft)).map(|_| ())
    }

    /// Drops every vector the embedding cache holds (nothing without one). The store does
    /// this itself after an erasure or a sweep that removed records; a server calls it
    /// when another server of its group erased or swept (their caches are their own).
    pub fn clear_embedding_cache(&self) {
        if let Some(e) = &self.embedder {
            e.clear_cache();
        }
    }

    /// Erases a subject and its personal data everywhere (GDPR erasure; see
    /// [`WriteOp::EraseSubject`]). The audit log keeps a tombstone with counts only.
    pub fn erase_subject(&self, scope: &Scope, id: &str) -> Result<Erasure> {
        match self.write_one(scope, WriteOp::EraseSubject { id: id.into() })? {
            WriteResult::Erased(r) => {
                // The cache maps text hashes to vectors: no text, but vectors of the
                // subject's texts, which the erasure removed everywhere else.
                if let Some(e) = &self.embedder {
                    e.clear_cache();
                }
                Ok(r)
            }
            other => Err(Error::Corrupt(format!(
                "erase_subject: unexpected backend result {other:?}"
            ))),
        }
    }

    // ---------------------------------------------------------------- agents

    /// Registers an agent, or replaces the one with the same id.
    pub fn put_agent(&self, scope: &Scope, a: NewAgent) -> Result<Agent> {
        Self::validate_tenant(scope)?;
        a.namespace.validate()?;
        self.label("name", &a.name)?;
        for (f, v) in [
            ("agent_type", &a.agent_type),
            ("model_provider", &a.model_provider),
            ("model_name", &a.model_name),
        ] {
            self.short_opt(f, v.as_ref())?;
        }
        self.json("capabilities", &a.capabilities)?;
        self.object("metadata", &a.metadata)?;
        self.tags(&a.tags)?;
        let at = now();
        let agent = Agent {
            id: id_or_new("id", a.id.as_deref())?,
            tenant_id: scope.tenant.clone(),
            namespace: a.namespace,
            name: a.name,
            agent_type: a.agent_type,
            model_provider: a.model_provider,
            model_name: a.model_name,
            capabilities: a.capabilities,
            tags: a.tags,
            active: a.active,
            experimental: a.experimental,
            metadata: a.metadata,
            created_at: at,
            updated_at: at,
        };
        self.write_one(scope, WriteOp::PutAgent(agent.clone()))?;
        self.get_agent(scope, &agent.id)
    }

    /// An agent by id.
    pub fn get_agent(&self, scope: &Scope, id: &str) -> Result<Agent> {
        self.backend
            .get_agent(&scope.tenant, id)?
            .ok_or_else(|| Error::not_found("agent", id))
    }

    /// Agents by filter.
    pub fn list_agents(&self, scope: &Scope, mut q: AgentQuery) -> Result<Page<Agent>> {
        q.limit = page_limit(q.limit);
        self.backend.list_agents(&scope.tenant, &q)
    }

    /// Statistics derived from an agent's sessions and usage.
    pub fn agent_stats(&self, scope: &Scope, id: &str) -> Result<AgentStats> {
        self.get_agent(scope, id)?;
        self.backend.agent_stats(&scope.tenant, id)
    }

    // ---------------------------------------------------------------- sessions, events

    /// Starts a session.
    pub fn create_session(&self, scope: &Scope, s: NewSession) -> Result<Session> {
        Self::validate_tenant(scope)?;
        s.namespace.validate()?;
        self.label("kind", &s.kind)?;
        if let Some(st) = &s.status {
            self.label("status", st)?;
        }
        self.short_opt("title", s.title.as_ref())?;
        self.short_opt("domain", s.domain.as_ref())?;
        self.short_opt("task_type", s.task_type.as_ref())?;
        Self::opt_id("subject_id", s.subject_id.as_ref())?;
        Self::opt_id("agent_id", s.agent_id.as_ref())?;
        Self::opt_id("parent_id", s.parent_id.as_ref())?;
        self.object("metadata", &s.metadata)?;
        let at = now();
        let session = Session {
            id: id_or_new("id", s.id.as_deref())?,
            tenant_id: scope.tenant.clone(),
            namespace: s.namespace,
            kind: s.kind,
            status: s.status.unwrap_or_else(|| "active".into()),
            title: s.title,
            domain: s.domain,
            task_type: s.task_type,
            subject_id: s.subject_id,
            agent_id: s.agent_id,
            parent_id: s.parent_id,
            started_at: s.started_at.map(truncate).unwrap_or(at),
            ended_at: None,
            success: None,
            reward: None,
            reflection: None,
            priority: s.priority,
            metadata: s.metadata,
            expires_at: s.expires_at.map(truncate),
            created_at: at,
            updated_at: at,
        };
        self.write_one(scope, WriteOp::CreateSession(session.clone()))?;
        Ok(session)
    }

    /// A session by id.
    pub fn get_session(&self, scope: &Scope, id: &str) -> Result<Session> {
        self.backend
            .get_session(&scope.tenant, id)?
            .ok_or_else(|| Error::not_found("session", id))
    }

    /// Updates status, outcome, priority, metadata, expiry or agent of a session (its
    /// subject cannot change; see [`SessionUpdate::subject_id`]).
    pub fn update_session(&self, scope: &Scope, id: &str, u: SessionUpdate) -> Result<Session> {
        if let Some(st) = &u.status {
            self.label("status", st)?;
        }
        if let Some(agent) = &u.agent_id {
            Self::opt_id("agent_id", agent.as_ref())?;
        }
        self.short_opt("title", u.title.as_ref())?;
        if let Some(r) = &u.reflection {
            self.content("reflection", r, self.limits.max_content_bytes)?;
        }
        Self::finite("reward", u.reward)?;
        if let Some(m) = &u.metadata {
            self.object("metadata", m)?;
        }
        let u = SessionUpdate {
            ended_at: u.ended_at.map(truncate),
            expires_at: u.expires_at.map(truncate),
            ..u
        };
        match self.write_one(
            scope,
            WriteOp::UpdateSession {
                id: id.into(),
                update: u,
                at: now(),
            },
        )? {
            WriteResult::Session(s) => Ok(*s),
            _ => self.get_session(scope, id),
        }
    }

    /// Deletes a session with its events and checkpoints; returns the events removed.
    pub fn delete_session(&self, scope: &Scope, id: &str) -> Result<u64> {
        match self.write_one(scope, WriteOp::DeleteSession { id: id.into() })? {
            WriteResult::Count(n) => Ok(n),
            _ => Ok(0),
        }
    }

    /// Sessions by filter, newest first.
    pub fn list_sessions(&self, scope: &Scope, mut q: SessionQuery) -> Result<Page<Session>> {
        q.limit = page_limit(q.limit);
        self.backend.list_sessions(&scope.tenant, &q)
    }

    fn build_event(
        &self,
        scope: &Scope,
        session_id: &str,
        e: NewEvent,
        at: Timestamp,
    ) -> Result<Event> {
        self.label("kind", &e.kind)?;
        self.short_opt("role", e.role.as_ref())?;
        self.short_opt("tool_name", e.tool_name.as_ref())?;
        if let Some(c) = &e.content {
            self.content("content", c, self.limits.max_content_bytes)?;
        }
        for (f, v) in [("parameters", &e.parameters), ("result", &e.result)] {
            if let Some(v) = v {
                self.json(f, v)?;
            }
        }
        if let Some(m) = &e.metadata {
            self.object("metadata", m)?;
        }
        Self::finite("cost", e.cost)?;
        Ok(Event {
            id: id_or_new("id", e.id.as_deref())?,
            tenant_id: scope.tenant.clone(),
            session_id: session_id.into(),
            seq: 0,
            kind: e.kind,
            role: e.role,
            content: e.content,
            tool_name: e.tool_name,
            parameters: e.parameters,
            result: e.result,
            success: e.success,
            duration_ms: e.duration_ms,
            tokens: e.tokens,
            cost: e.cost,
            metadata: e
                .metadata
                .unwrap_or_else(|| Json::Object(Default::default())),
            created_at: e.created_at.map(truncate).unwrap_or(at),
        })
    }

    /// Appends one event; returns it with its `seq`.
    pub fn append_event(&self, scope: &Scope, session_id: &str, e: NewEvent) -> Result<Event> {
        let mut v = self.append_events(scope, session_id, vec![e])?;
        v.pop()
            .ok_or_else(|| Error::Database("no event returned".into()))
    }

    /// Appends events in order, in one transaction; returns them with their seqs.
    pub fn append_events(
        &self,
        scope: &Scope,
        session_id: &str,
        events: Vec<NewEvent>,
    ) -> Result<Vec<Event>> {
        validate_id("session_id", session_id)?;
        self.batch("events", &events)?;
        let at = now();
        let mut given = Vec::with_capacity(events.len());
        let events = events
            .into_iter()
            .map(|mut e| {
                given.push(e.vector.take());
                self.build_event(scope, session_id, e, at)
            })
            .collect::<Result<Vec<_>>>()?;
        let embed = self.embed_events;
        let texts: Vec<Option<&str>> = events
            .iter()
            .map(|e| e.content.as_deref().filter(|_| embed))
            .collect();
        let (declare, vectors) = self.vectors_for("vector", given, &texts)?;
        let mut ops: Vec<WriteOp> = declare.into_iter().collect();
        let skip = ops.len();
        ops.push(WriteOp::AppendEvents {
            session_id: session_id.into(),
            events,
            vectors,
        });
        match self.backend.write(scope, ops)?.into_iter().nth(skip) {
            Some(WriteResult::Events(v)) => Ok(v),
            other => Err(Error::Database(
                format!("unexpected result {other:?}").into(),
            )),
        }
    }

    /// Vectors for records about to be written: the caller's where given (checked against
    /// the vector model), else the embedder's for each `Some` text when there is an
    /// embedder. Returns the op declaring the model (when any vector is present) and one
    /// entry per record. Embedding happens before the write transaction, so a slow
    /// embedder never holds the write lock.
    fn vectors_for(
        &self,
        field: &str,
        given: Vec<Option<Vec<f32>>>,
        texts: &[Option<&str>],
    ) -> Result<(Option<WriteOp>, Vec<Option<Embedding>>)> {
        let mut out: Vec<Option<Vec<f32>>> = given;
        let model = self.vector_model();
        for v in out.iter().flatten() {
            crate::embedding::check_vector(field, v, model.map(|m| m.dimension))?;
        }
        if let Some(e) = &self.embedder {
            let pending: Vec<usize> = (0..out.len())
                .filter(|&i| out[i].is_none() && texts.get(i).copied().flatten().is_some())
                .collect();
            if !pending.is_empty() {
                let batch: Vec<&str> = pending.iter().filter_map(|&i| texts[i]).collect();
                let vectors = e.embed(&batch)?;
                if vectors.len() != batch.len() {
                    return Err(Error::Embedding {
                        code: "bad_response",
                        message: format!(
                            "{} returned {} vectors for {} texts",
                            e.model_id(),
                            vectors.len(),
                            batch.len()
                        ),
                    });
                }
                for (i, v) in pending.into_iter().zip(vectors) {
                    crate::embedding::check_vector(field, &v, Some(e.dimension()))?;
                    out[i] = Some(v);
                }
            }
        }
        let Some(first) = out.iter().flatten().next() else {
            return Ok((None, out.into_iter().map(|_| None).collect()));
        };
        let model = self.write_model(first.len());
        let declare = WriteOp::DeclareVectorModel {
            model: model.id.clone(),
            dimension: model.dimension,
            metric: model.metric,
        };
        let vectors = out
            .into_iter()
            .map(|v| {
                v.map(|vector| Embedding {
                    model: model.id.clone(),
                    vector,
                })
            })
            .collect();
        Ok((Some(declare), vectors))
    }

    /// The model vectors of length `dimension` are written under.
    fn write_model(&self, dimension: usize) -> VectorModel {
        match self.vector_model() {
            Some(m) => m.clone(),
            None => VectorModel {
                id: crate::embedding::external_model_id(dimension),
                dimension,
                metric: self.metric,
            },
        }
    }

    /// An event by id.
    pub fn get_event(&self, scope: &Scope, id: &str) -> Result<Event> {
        self.backend
            .get_event(&scope.tenant, id)?
            .ok_or_else(|| Error::not_found("event", id))
    }

    /// A session's events in seq order.
    pub fn list_events(&self, scope: &Scope, mut q: EventQuery) -> Result<Page<Event>> {
        q.limit = page_limit(q.limit);
        self.backend.list_events(&scope.tenant, &q)
    }

    // ---------------------------------------------------------------- memories

    fn build_memory(&self, scope: &Scope, m: NewMemory, at: Timestamp) -> Result<Memory> {
        m.namespace.validate()?;
        self.label("kind", &m.kind)?;
        if let Some(k) = &m.key {
            self.label("key", k)?;
        }
        if m.content.is_empty() {
            return Err(Error::invalid("content", "must not be empty"));
        }
        self.content("content", &m.content, self.limits.max_content_bytes)?;
        if let Some(s) = &m.summary {
            self.content("summary", s, self.limits.max_content_bytes)?;
        }
        let tier = m.tier.unwrap_or_else(|| "long".into());
        if !matches!(tier.as_str(), "working" | "short" | "long") {
            return Err(Error::invalid("tier", "must be working, short or long"));
        }
        Self::score("importance", m.importance)?;
        Self::score("confidence", m.confidence)?;
        Self::score("success_rate", m.success_rate)?;
        self.short_opt("topic", m.topic.as_ref())?;
        self.short_opt("domain", m.domain.as_ref())?;
        self.tags(&m.tags)?;
        for s in m.source_sessions.iter().chain(&m.source_events) {
            validate_id("source", s)?;
        }
        Self::opt_id("subject_id", m.subject_id.as_ref())?;
        Self::opt_id("agent_id", m.agent_id.as_ref())?;
        self.object("metadata", &m.metadata)?;
        if m.token_count.is_some_and(|t| t < 0) {
            return Err(Error::invalid("token_count", "must not be negative"));
        }
        Ok(Memory {
            id: id_or_new("id", m.id.as_deref())?,
            tenant_id: scope.tenant.clone(),
            namespace: m.namespace,
            kind: m.kind,
            key: m.key,
            token_count: m.token_count.unwrap_or_else(|| estimate_tokens(&m.content)),
            content_hash: sha256_hex(m.content.as_bytes()),
            content: m.content,
            summary: m.summary,
            tier,
            importance: m.importance.unwrap_or(0.5),
            confidence: m.confidence.unwrap_or(1.0),
            success_rate: m.success_rate,
            pinned: m.pinned,
            priority: m.priority,
            topic: m.topic,
            domain: m.domain,
            tags: m.tags,
            source_sessions: m.source_sessions,
            source_events: m.source_events,
            subject_id: m.subject_id,
            agent_id: m.agent_id,
            access_count: 0,
            last_accessed_at: None,
            valid_from: m.valid_from.map(truncate).unwrap_or(at),
            valid_to: None,
            superseded_by: None,
            expires_at: m.expires_at.map(truncate),
            metadata: m.metadata,
            created_at: at,
            updated_at: at,
        })
    }

    /// Stores a memory (see [`UpsertOutcome`] for dedupe and upsert-by-key).
    pub fn remember(&self, scope: &Scope, m: NewMemory) -> Result<UpsertOutcome> {
        let mut v = self.remember_many(scope, vec![m])?;
        v.pop()
            .ok_or_else(|| Error::Database("no outcome returned".into()))
    }

    /// Stores several memories in one transaction.
    pub fn remember_many(&self, scope: &Scope, ms: Vec<NewMemory>) -> Result<Vec<UpsertOutcome>> {
        Self::validate_tenant(scope)?;
        self.batch("memories", &ms)?;
        let at = now();
        let mut given = Vec::with_capacity(ms.len());
        let memories = ms
            .into_iter()
            .map(|mut m| {
                given.push(m.vector.take());
                self.build_memory(scope, m, at)
            })
            .collect::<Result<Vec<_>>>()?;
        let texts: Vec<Option<&str>> = memories.iter().map(|m| Some(m.content.as_str())).collect();
        let (declare, vectors) = self.vectors_for("vector", given, &texts)?;
        let mut ops: Vec<WriteOp> = declare.into_iter().collect();
        let skip = ops.len();
        ops.extend(
            memories
                .into_iter()
                .zip(vectors)
                .map(|(memory, vector)| WriteOp::Remember { memory, vector }),
        );
        self.backend
            .write(scope, ops)?
            .into_iter()
            .skip(skip)
            .map(|r| match r {
                WriteResult::Memory(o) => Ok(o),
                other => Err(Error::Database(
                    format!("unexpected result {other:?}").into(),
                )),
            })
            .collect()
    }

    /// A memory version by id.
    pub fn get_memory(&self, scope: &Scope, id: &str) -> Result<Memory> {
        self.backend
            .get_memory(&scope.tenant, id)?
            .ok_or_else(|| Error::not_found("memory", id))
    }

    /// The version of `key` valid at `as_of` (None: current).
    pub fn get_memory_by_key(
        &self,
        scope: &Scope,
        namespace: &Namespace,
        key: &str,
        as_of: Option<Timestamp>,
    ) -> Result<Memory> {
        self.backend
            .get_memory_by_key(&scope.tenant, namespace, key, as_of)?
            .ok_or_else(|| Error::not_found("memory", key))
    }

    /// All versions of `key`, oldest first.
    pub fn memory_history(
        &self,
        scope: &Scope,
        namespace: &Namespace,
        key: &str,
    ) -> Result<Vec<Memory>> {
        self.backend.memory_history(&scope.tenant, namespace, key)
    }

    /// Memories by filter.
    pub fn list_memories(&self, scope: &Scope, mut q: MemoryQuery) -> Result<Page<Memory>> {
        q.limit = page_limit(q.limit);
        for m in &q.metadata {
            m.validate()?;
        }
        self.backend.list_memories(&scope.tenant, &q, now())
    }

    /// Counts a read of each memory (access count and time).
    pub fn touch_memories(&self, scope: &Scope, ids: &[String]) -> Result<u64> {
        self.batch("ids", ids)?;
        match self.write_one(
            scope,
            WriteOp::TouchMemories {
                ids: ids.to_vec(),
                at: now(),
            },
        )? {
            WriteResult::Count(n) => Ok(n),
            _ => Ok(0),
        }
    }

    /// Counts a retrieval of each chunk (`query_count`, `last_queried_at`): a caller
    /// that used search hits in an answer records which ones it used. Returns how many
    /// chunks of the tenant were counted; unknown ids are skipped.
    pub fn record_chunk_queries(&self, scope: &Scope, ids: &[String]) -> Result<u64> {
        self.batch("ids", ids)?;
        match self.write_one(
            scope,
            WriteOp::RecordChunkQueries {
                ids: ids.to_vec(),
                at: now(),
            },
        )? {
            WriteResult::Count(n) => Ok(n),
            _ => Ok(0),
        }
    }

    /// Deletes a memory version.
    pub fn forget(&self, scope: &Scope, id: &str) -> Result<()> {
        self.write_one(scope, WriteOp::Forget { id: id.into() })
            .map(|_| ())
    }

    /// Ends a memory's validity now, without a successor.
    pub fn invalidate_memory(&self, scope: &Scope, id: &str) -> Result<()> {
        self.write_one(
            scope,
            WriteOp::Invalidate {
                id: id.into(),
                at: now(),
            },
        )
        .map(|_| ())
    }

    // ---------------------------------------------------------------- documents

    /// Stores a document, chunking it (see [`DocumentOutcome`]).
    pub fn put_document(&self, scope: &Scope, d: NewDocument) -> Result<DocumentOutcome> {
        let mut out = self.put_documents(scope, vec![d])?;
        out.pop()
            .ok_or_else(|| Error::Database("a write of one document returned nothing".into()))
    }

    /// Stores documents as [`Store::put_document`] does, all in one transaction, with
    /// their chunks embedded in one call to the embedder: many small documents (an
    /// ingest of a JSON Lines file, say) then fill the model's batches and share one
    /// commit. Any invalid document refuses the whole batch; nothing is written.
    pub fn put_documents(
        &self,
        scope: &Scope,
        docs: Vec<NewDocument>,
    ) -> Result<Vec<DocumentOutcome>> {
        Self::validate_tenant(scope)?;
        let at = now();
        let prepared = docs
            .into_iter()
            .map(|d| self.prepare_document(scope, d, at))
            .collect::<Result<Vec<_>>>()?;
        let mut outcomes: Vec<Option<DocumentOutcome>> = vec![None; prepared.len()];
        let mut to_write = Vec::with_capacity(prepared.len());
        for (i, (document, chunks)) in prepared.into_iter().enumerate() {
            if self.embedder.is_some()
                && let Some(id) = self.unchanged_document(scope, &document)?
            {
                // Embedding is the slow part of a put; an unchanged document needs none,
                // and the backend would report it unchanged anyway.
                outcomes[i] = Some(DocumentOutcome::Unchanged { id });
            } else {
                to_write.push((i, document, chunks));
            }
        }
        if to_write.is_empty() {
            return Ok(outcomes.into_iter().flatten().collect());
        }
        let texts: Vec<Option<&str>> = to_write
            .iter()
            .flat_map(|(_, _, chunks)| chunks.iter().map(|c| Some(c.content.as_str())))
            .collect();
        let given = vec![None; texts.len()];
        let (declare, vectors) = self.vectors_for("vector", given, &texts)?;
        drop(texts);
        let mut vectors = vectors.into_iter();
        let mut ops: Vec<WriteOp> = declare.into_iter().collect();
        let skip = ops.len();
        let mut slots = Vec::with_capacity(to_write.len());
        for (i, document, chunks) in to_write {
            let vectors = vectors.by_ref().take(chunks.len()).flatten().collect();
            slots.push(i);
            ops.push(WriteOp::PutDocument {
                document,
                chunks,
                vectors,
            });
        }
        let results = self.backend.write(scope, ops)?;
        for (i, r) in slots.into_iter().zip(results.into_iter().skip(skip)) {
            match r {
                WriteResult::Document(o) => outcomes[i] = Some(o),
                other => {
                    return Err(Error::Database(
                        format!("unexpected result {other:?}").into(),
                    ));
                }
            }
        }
        outcomes
            .into_iter()
            .map(|o| o.ok_or_else(|| Error::Database("a document write returned no result".into())))
            .collect()
    }

    /// Validates a new document and cuts it into chunks, without touching the store.
    fn prepare_document(
        &self,
        scope: &Scope,
        d: NewDocument,
        at: Timestamp,
    ) -> Result<(Document, Vec<Chunk>)> {
        d.namespace.validate()?;
        d.chunking.validate()?;
        self.content("content", &d.content, self.limits.max_document_bytes)?;
        if d.content.trim().is_empty() {
            return Err(Error::invalid("content", "must not be empty"));
        }
        self.short_opt("title", d.title.as_ref())?;
        self.short_opt("source_path", d.source_path.as_ref())?;
        self.short_opt("source_url", d.source_url.as_ref())?;
        Self::opt_id("subject_id", d.subject_id.as_ref())?;
        let doc_type = d.doc_type.unwrap_or_else(|| "text".into());
        self.label("doc_type", &doc_type)?;
        self.object("metadata", &d.metadata)?;
        let id = id_or_new("id", d.id.as_deref())?;
        let chunks: Vec<Chunk> = chunk_text(&d.content, d.chunking)?
            .into_iter()
            .enumerate()
            .map(|(i, c)| Chunk {
                id: new_id(),
                tenant_id: scope.tenant.clone(),
                document_id: id.clone(),
                idx: i as i64,
                content_hash: sha256_hex(c.text.as_bytes()),
                start: c.start as i64,
                end: c.end as i64,
                word_count: word_count(&c.text),
                token_count: estimate_tokens(&c.text),
                content: c.text,
                query_count: 0,
                last_queried_at: None,
                created_at: at,
            })
            .collect();
        let document = Document {
            id,
            tenant_id: scope.tenant.clone(),
            namespace: d.namespace,
            title: d.title,
            doc_type,
            source_path: d.source_path,
            source_url: d.source_url,
            content_hash: sha256_hex(d.content.as_bytes()),
            word_count: word_count(&d.content),
            content: d.content,
            subject_id: d.subject_id,
            chunk_size: d.chunking.size as i64,
            chunk_overlap: d.chunking.overlap as i64,
            metadata: d.metadata,
            created_at: at,
            updated_at: at,
        };
        Ok((document, chunks))
    }

    /// The id of a stored document that `d` would leave unchanged (same id or same
    /// namespace and source path, same content), found without writing.
    fn unchanged_document(&self, scope: &Scope, d: &Document) -> Result<Option<String>> {
        let t = &scope.tenant;
        if let Some(old) = self.backend.get_document(t, &d.id)? {
            return Ok((old.content_hash == d.content_hash).then_some(old.id));
        }
        let Some(path) = &d.source_path else {
            return Ok(None);
        };
        let page = self.backend.list_documents(
            t,
            &DocumentQuery {
                namespace_prefix: Some(d.namespace.clone()),
                source_path: Some(path.clone()),
                limit: MAX_PAGE,
                ..Default::default()
            },
        )?;
        Ok(page
            .items
            .into_iter()
            .find(|old| old.namespace == d.namespace)
            .filter(|old| old.content_hash == d.content_hash)
            .map(|old| old.id))
    }

    /// A document by id.
    pub fn get_document(&self, scope: &Scope, id: &str) -> Result<Document> {
        self.backend
            .get_document(&scope.tenant, id)?
            .ok_or_else(|| Error::not_found("document", id))
    }

    /// Documents by filter.
    pub fn list_documents(&self, scope: &Scope, mut q: DocumentQuery) -> Result<Page<Document>> {
        q.limit = page_limit(q.limit);
        self.backend.list_documents(&scope.tenant, &q)
    }

    /// A document's chunks in order.
    pub fn list_chunks(&self, scope: &Scope, document_id: &str) -> Result<Vec<Chunk>> {
        self.get_document(scope, document_id)?;
        self.backend.list_chunks(&scope.tenant, document_id)
    }

    /// Deletes a document and its chunks.
    pub fn delete_document(&self, scope: &Scope, id: &str) -> Result<()> {
        self.write_one(scope, WriteOp::DeleteDocument { id: id.into() })
            .map(|_| ())
    }

    // ---------------------------------------------------------------- search

    /// One search over memories, chunks and events; see [`crate::search`] for the steps
    /// and formulas, and [`SearchRequest::mode`] for how the mode is chosen.
    ///
    /// Candidates and records are read in separate snapshots: a record deleted between the
    /// two is skipped (the next candidate takes its place), and one changed in between is
    /// returned as it is now.
    pub fn search(&self, scope: &Scope, req: SearchRequest) -> Result<Vec<SearchHit>> {
        validate_id("tenant", &scope.tenant)?;
        let plan = req.plan(&self.limits, self.embedder.is_some())?;
        if plan.targets.is_empty() {
            return Ok(Vec::new());
        }
        let at = now();
        let reranks = req.recency_half_life_secs.is_some()
            || req.importance_weight.is_some()
            || req.mmr_lambda.is_some();
        let wanted = if plan.mode == SearchMode::Hybrid && !reranks {
            (plan.limit * search::HYBRID_CANDIDATE_FACTOR).max(search::MIN_HYBRID_CANDIDATES)
        } else {
            (plan.limit * search::CANDIDATE_FACTOR).max(search::MIN_CANDIDATES)
        };
        let by_key = |a: &Candidate, b: &Candidate| (a.target, &a.id).cmp(&(b.target, &b.id));
        let ranked_list = |mut cands: Vec<Candidate>| {
            // Backends promise this order; sorting again keeps ranks independent of that.
            cands.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| by_key(a, b)));
            cands
        };
        let keyword_query = match (&plan.expression, plan.mode) {
            (Some(expression), SearchMode::Keyword | SearchMode::Hybrid) => Some(KeywordQuery {
                expression: expression.clone(),
                terms: plan.terms.clone(),
                targets: plan.targets.clone(),
                filter: req.filter.clone(),
                limit: wanted,
                now: at,
            }),
            _ => None,
        };
        let keyword_list = |q: &KeywordQuery| -> Result<Vec<Candidate>> {
            Ok(ranked_list(
                self.backend.keyword_candidates(&scope.tenant, q)?,
            ))
        };
        let vector_list = || -> Result<Option<(String, Vec<Candidate>)>> {
            if plan.mode == SearchMode::Keyword {
                return Ok(None);
            }
            let (model, vector) = self.query_vector(&req)?;
            let cands = self.backend.vector_candidates(
                &scope.tenant,
                &VectorQuery {
                    model: model.clone(),
                    vector,
                    targets: plan.targets.clone(),
                    filter: req.filter.clone(),
                    limit: wanted,
                    now: at,
                    ef: req.ef,
                    exact: req.exact,
                },
            )?;
            Ok(Some((model, ranked_list(cands))))
        };
        // A hybrid search runs its two retrievals side by side: its latency is then the
        // slower of the two (plus a thread start, some 30 µs), not their sum. The keyword
        // retrieval, the slower one at scale, stays on the calling thread: at 1M chunks it
        // took 4.9 ms p50 on a fresh thread against 4.0 ms on the caller's (3.5 ms with
        // no vector search beside it), and it is on the critical path. The vector side
        // has the slack to pay for the new thread.
        let (keyword, vector) = match &keyword_query {
            Some(q) if plan.mode == SearchMode::Hybrid => std::thread::scope(|s| {
                let vector = s.spawn(vector_list);
                let keyword = keyword_list(q);
                let vector = vector
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p));
                (keyword, vector)
            }),
            Some(q) => (keyword_list(q), Ok(None)),
            None => (Ok(Vec::new()), vector_list()),
        };
        let keyword: Vec<Candidate> = keyword?;
        let (query_model, vector) = match vector? {
            Some((model, list)) => (Some(model), list),
            None => (None, Vec::new()),
        };

        // One entry per distinct record, with its place in each list.
        let mut index: BTreeMap<(Target, String), usize> = BTreeMap::new();
        let mut cands: Vec<Candidate> = Vec::new();
        let mut ranked: Vec<Ranked> = Vec::new();
        for (list, c) in keyword
            .into_iter()
            .enumerate()
            .map(|x| (0, x))
            .chain(vector.into_iter().enumerate().map(|x| (1, x)))
        {
            let (i, c) = c;
            let slot = *index.entry((c.target, c.id.clone())).or_insert_with(|| {
                cands.push(c.clone());
                ranked.push(Ranked::default());
                cands.len() - 1
            });
            let place = Some((i + 1, c.score));
            if list == 0 {
                ranked[slot].keyword = place;
            } else {
                ranked[slot].vector = place;
            }
        }
        let fused = search::fuse(&ranked, &req.fusion);
        let now_us = crate::time::to_micros(&at);
        let mut scored: Vec<(Candidate, ScoreComponents, f64)> = cands
            .into_iter()
            .zip(ranked)
            .zip(fused)
            .map(|((c, r), fused)| {
                let age_secs =
                    now_us.saturating_sub(crate::time::to_micros(&c.created_at)) as f64 / 1e6;
                let recency = req
                    .recency_half_life_secs
                    .map(|h| search::recency_factor(age_secs, h));
                let importance = req
                    .importance_weight
                    .zip(c.importance)
                    .map(|(w, i)| search::importance_factor(w, i));
                let score = fused * recency.unwrap_or(1.0) * importance.unwrap_or(1.0);
                let components = ScoreComponents {
                    keyword: r.keyword.map(|k| k.1),
                    keyword_rank: r.keyword.map(|k| k.0),
                    vector: r.vector.map(|v| v.1),
                    vector_rank: r.vector.map(|v| v.0),
                    fused,
                    recency,
                    importance,
                };
                (c, components, score)
            })
            .collect();
        scored.sort_by(|a, b| b.2.total_cmp(&a.2).then_with(|| by_key(&a.0, &b.0)));

        let hit = |(c, components, score): (Candidate, ScoreComponents, f64)| {
            Ok::<_, Error>(
                self.hit_record(scope, c.target, &c.id)?
                    .map(|record| SearchHit {
                        target: c.target,
                        id: c.id,
                        score,
                        components,
                        record,
                    }),
            )
        };
        let Some(lambda) = req.mmr_lambda else {
            let mut hits = Vec::with_capacity(plan.limit);
            for s in scored {
                if hits.len() == plan.limit {
                    break;
                }
                hits.extend(hit(s)?);
            }
            return Ok(hits);
        };
        // MMR compares every candidate with the hits picked, so all of them are loaded.
        let mut pool = Vec::with_capacity(scored.len());
        for s in scored {
            pool.extend(hit(s)?);
        }
        let vectors: Vec<Option<Vec<f32>>> = match &query_model {
            Some(model) => {
                let refs: Vec<(Target, String)> =
                    pool.iter().map(|h| (h.target, h.id.clone())).collect();
                self.backend.get_vectors(&scope.tenant, model, &refs)?
            }
            None => vec![None; pool.len()],
        };
        let words: Vec<_> = pool
            .iter()
            .map(|h| search::word_set(&h.record.searchable_text()))
            .collect();
        let relevance: Vec<f64> = pool.iter().map(|h| h.score).collect();
        let order = search::mmr_order(&relevance, lambda, plan.limit, |i, j| {
            match (&vectors[i], &vectors[j]) {
                (Some(a), Some(b)) => crate::embedding::cosine(a, b).max(0.0),
                _ => search::jaccard(&words[i], &words[j]),
            }
        });
        let mut pool: Vec<Option<SearchHit>> = pool.into_iter().map(Some).collect();
        Ok(order.into_iter().filter_map(|i| pool[i].take()).collect())
    }

    /// Vector models known to the store, with their vector counts.
    pub fn vector_models(&self) -> Result<Vec<VectorModelInfo>> {
        self.backend.vector_models()
    }

    /// Embeds every record of the scope's tenant that has text but no vector of the
    /// store's model: memories, chunks, and events when the store embeds events. This is
    /// the backfill after an embedder is added, and the first half of moving to a new
    /// model (`agentstore reembed`): the old model's vectors stay in place and keep
    /// answering searches of readers configured with it until
    /// [`Store::drop_other_vector_models`]. Work goes in batches of `batch` records, one
    /// transaction each, so other readers and writers are never blocked for long.
    /// `progress` gets the running count.
    pub fn embed_missing(
        &self,
        scope: &Scope,
        batch: usize,
        progress: &mut dyn FnMut(u64),
    ) -> Result<EmbedReport> {
        Self::validate_tenant(scope)?;
        let Some(e) = self.embedder.clone() else {
            return Err(Error::Config(
                "embedding records needs an embedder (a model directory or endpoint)".into(),
            ));
        };
        let model = e.model_id().to_owned();
        let batch = batch.clamp(1, self.limits.max_batch);
        let mut report = EmbedReport {
            model: model.clone(),
            embedded: BTreeMap::new(),
        };
        let mut total = 0u64;
        let targets: &[Target] = if self.embed_events {
            &Target::ALL
        } else {
            &[Target::Memory, Target::Chunk]
        };
        for &target in targets {
            let mut after: Option<String> = None;
            let mut n = 0u64;
            loop {
                let todo = self.backend.missing_vectors(
                    &scope.tenant,
                    target,
                    &model,
                    after.as_deref(),
                    batch,
                )?;
                let Some(last) = todo.last() else { break };
                after = Some(last.id.clone());
                let texts: Vec<Option<&str>> = todo.iter().map(|t| Some(t.text.as_str())).collect();
                let (declare, vectors) =
                    self.vectors_for("vector", vec![None; todo.len()], &texts)?;
                let items: Vec<(String, Embedding)> = todo
                    .iter()
                    .zip(vectors)
                    .filter_map(|(t, v)| v.map(|v| (t.id.clone(), v)))
                    .collect();
                n += items.len() as u64;
                total += items.len() as u64;
                let mut ops: Vec<WriteOp> = declare.into_iter().collect();
                ops.push(WriteOp::PutVectors { target, items });
                self.backend.write(scope, ops)?;
                progress(total);
            }
            report.embedded.insert(target.as_str().to_owned(), n);
        }
        Ok(report)
    }

    /// Deletes the scope's tenant's vectors of every model other than the store's: the
    /// second half of moving to a new model. Returns how many were deleted.
    pub fn drop_other_vector_models(&self, scope: &Scope) -> Result<u64> {
        Self::validate_tenant(scope)?;
        let Some(keep) = self.vector_model().map(|m| m.id.clone()) else {
            return Err(Error::Config(
                "no vector model configured: nothing to keep".into(),
            ));
        };
        let ops: Vec<WriteOp> = self
            .backend
            .vector_models()?
            .into_iter()
            .filter(|m| m.model != keep)
            .map(|m| WriteOp::DropVectors { model: m.model })
            .collect();
        if ops.is_empty() {
            return Ok(0);
        }
        Ok(self
            .backend
            .write(scope, ops)?
            .into_iter()
            .map(|r| match r {
                WriteResult::Count(n) => n,
                _ => 0,
            })
            .sum())
    }

    /// The query vector of a vector or hybrid search and its model: the request's own, or
    /// its text embedded by the store's embedder.
    fn query_vector(&self, req: &SearchRequest) -> Result<(String, Vec<f32>)> {
        if let Some(v) = &req.vector {
            let model = match (&req.model, self.vector_model()) {
                (Some(m), _) => m.clone(),
                (None, Some(m)) => {
                    crate::embedding::check_vector("vector", v, Some(m.dimension))?;
                    m.id.clone()
                }
                (None, None) => crate::embedding::external_model_id(v.len()),
            };
            return Ok((model, v.clone()));
        }
        let (Some(e), Some(text)) = (&self.embedder, req.text.as_deref()) else {
            return Err(Error::invalid(
                "mode",
                "vector search needs a query vector, or query text and a store with an embedder",
            ));
        };
        let v = e.embed(&[text])?.pop().ok_or_else(|| Error::Embedding {
            code: "bad_response",
            message: format!("{} returned no vector", e.model_id()),
        })?;
        crate::embedding::check_vector("vector", &v, Some(e.dimension()))?;
        Ok((e.model_id().to_owned(), v))
    }

    /// The record of a hit; None when it cannot be shown: deleted since it was found, or
    /// sealed under an erased subject's destroyed key (rows restored from a backup older
    /// than the erasure). Such a hit is left out rather than failing the whole search:
    /// the other hits are readable, and reading the record itself still answers
    /// `key_unavailable`.
    fn hit_record(&self, scope: &Scope, target: Target, id: &str) -> Result<Option<HitRecord>> {
        let t = &scope.tenant;
        let found = match target {
            Target::Memory => self
                .backend
                .get_memory(t, id)
                .map(|r| r.map(HitRecord::Memory)),
            Target::Chunk => self
                .backend
                .get_chunk(t, id)
                .map(|r| r.map(HitRecord::Chunk)),
            Target::Event => self
                .backend
                .get_event(t, id)
                .map(|r| r.map(HitRecord::Event)),
        };
        match found {
            Err(Error::KeyUnavailable(_)) => Ok(None),
            other => other,
        }
    }

    // ---------------------------------------------------------------- checkpoints

    /// Stores a checkpoint of a thread (session).
    pub fn put_checkpoint(&self, scope: &Scope, c: NewCheckpoint) -> Result<Checkpoint> {
        validate_id("session_id", &c.session_id)?;
        self.short("checkpoint_ns", &c.checkpoint_ns)?;
        Self::opt_id("parent_id", c.parent_id.as_ref())?;
        if c.state.len() > self.limits.max_state_bytes {
            return Err(Error::TooLarge {
                field: "state".into(),
                size: c.state.len(),
                limit: self.limits.max_state_bytes,
            });
        }
        self.object("metadata", &c.metadata)?;
        let cp = Checkpoint {
            tenant_id: scope.tenant.clone(),
            session_id: c.session_id,
            checkpoint_ns: c.checkpoint_ns,
            id: id_or_new("id", c.id.as_deref())?,
            parent_id: c.parent_id,
            state: c.state,
            metadata: c.metadata,
            created_at: now(),
        };
        self.write_one(scope, WriteOp::PutCheckpoint(cp.clone()))?;
        Ok(cp)
    }

    /// The latest checkpoint of a thread, or one by id.
    pub fn get_checkpoint(
        &self,
        scope: &Scope,
        session_id: &str,
        checkpoint_ns: &str,
        id: Option<&str>,
    ) -> Result<Checkpoint> {
        self.backend
            .get_checkpoint(&scope.tenant, session_id, checkpoint_ns, id)?
            .ok_or_else(|| Error::not_found("checkpoint", id.unwrap_or(session_id)))
    }

    /// A thread's checkpoints, newest first.
    pub fn list_checkpoints(
        &self,
        scope: &Scope,
        mut q: CheckpointQuery,
    ) -> Result<Vec<Checkpoint>> {
        q.limit = page_limit(q.limit);
        self.backend.list_checkpoints(&scope.tenant, &q)
    }

    /// Records pending writes against a checkpoint.
    pub fn put_pending_writes(
        &self,
        scope: &Scope,
        session_id: &str,
        checkpoint_ns: &str,
        checkpoint_id: &str,
        writes: Vec<NewPendingWrite>,
    ) -> Result<u64> {
        self.batch("writes", &writes)?;
        let at = now();
        let writes = writes
            .into_iter()
            .map(|w| {
                self.label("task_id", &w.task_id)?;
                self.label("channel", &w.channel)?;
                if w.value.len() > self.limits.max_state_bytes {
                    return Err(Error::TooLarge {
                        field: "value".into(),
                        size: w.value.len(),
                        limit: self.limits.max_state_bytes,
                    });
                }
                Ok(PendingWrite {
                    tenant_id: scope.tenant.clone(),
                    session_id: session_id.into(),
                    checkpoint_ns: checkpoint_ns.into(),
                    checkpoint_id: checkpoint_id.into(),
                    task_id: w.task_id,
                    idx: w.idx,
                    channel: w.channel,
                    value: w.value,
                    created_at: at,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        match self.write_one(scope, WriteOp::PutPendingWrites(writes))? {
            WriteResult::Count(n) => Ok(n),
            _ => Ok(0),
        }
    }

    /// Pending writes of a checkpoint.
    pub fn pending_writes(
        &self,
        scope: &Scope,
        session_id: &str,
        checkpoint_ns: &str,
        checkpoint_id: &str,
    ) -> Result<Vec<PendingWrite>> {
        let writes =
            self.backend
                .pending_writes(&scope.tenant, session_id, checkpoint_ns, checkpoint_id)?;
        if writes.is_empty() {
            // No writes, or no such checkpoint in this tenant: say which.
            self.get_checkpoint(scope, session_id, checkpoint_ns, Some(checkpoint_id))?;
        }
        Ok(writes)
    }

    // ---------------------------------------------------------------- usage, metrics

    /// Records model calls.
    pub fn record_usage(&self, scope: &Scope, items: Vec<NewUsage>) -> Result<Vec<UsageRecord>> {
        Self::validate_tenant(scope)?;
        self.batch("usage", &items)?;
        let at = now();
        let recs = items
            .into_iter()
            .map(|u| {
                self.label("provider", &u.provider)?;
                self.label("model", &u.model)?;
                self.short_opt("operation", u.operation.as_ref())?;
                Self::opt_id("session_id", u.session_id.as_ref())?;
                Self::opt_id("agent_id", u.agent_id.as_ref())?;
                if u.input_tokens < 0 || u.output_tokens < 0 {
                    return Err(Error::invalid("tokens", "must not be negative"));
                }
                for (f, v) in [
                    ("estimated_cost", u.estimated_cost),
                    ("actual_cost", u.actual_cost),
                    ("latency_ms", u.latency_ms),
                ] {
                    Self::finite(f, v)?;
                }
                Self::score("quality_score", u.quality_score)?;
                self.object("metadata", &u.metadata)?;
                Ok(UsageRecord {
                    id: id_or_new("id", u.id.as_deref())?,
                    tenant_id: scope.tenant.clone(),
                    session_id: u.session_id,
                    agent_id: u.agent_id,
                    provider: u.provider,
                    model: u.model,
                    operation: u.operation,
                    input_tokens: u.input_tokens,
                    output_tokens: u.output_tokens,
                    estimated_cost: u.estimated_cost,
                    actual_cost: u.actual_cost,
                    latency_ms: u.latency_ms,
                    quality_score: u.quality_score,
                    success: u.success,
                    metadata: u.metadata,
                    created_at: u.created_at.map(truncate).unwrap_or(at),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        self.write_one(scope, WriteOp::RecordUsage(recs.clone()))?;
        Ok(recs)
    }

    /// Usage aggregated per model, agent or overall, optionally in time buckets.
    pub fn usage_aggregate(
        &self,
        scope: &Scope,
        q: &UsageQuery,
        group: UsageGroup,
        bucket_secs: Option<i64>,
    ) -> Result<Vec<UsageAggregate>> {
        let bucket_us = bucket_micros(bucket_secs)?;
        let recs = self.backend.list_usage(&scope.tenant, q)?;
        let mut groups: BTreeMap<(String, Option<i64>), Vec<&UsageRecord>> = BTreeMap::new();
        for r in &recs {
            let g = match group {
                UsageGroup::Model => format!("{}/{}", r.provider, r.model),
                UsageGroup::Agent => r.agent_id.clone().unwrap_or_else(|| "-".into()),
                UsageGroup::All => "all".into(),
            };
            let b = bucket_us.map(|us| floor_to(r.created_at.timestamp_micros(), us));
            groups.entry((g, b)).or_default().push(r);
        }
        Ok(groups
            .into_iter()
            .map(|((group, b), rs)| {
                let calls = rs.len() as u64;
                let successes = rs.iter().filter(|r| r.success).count() as u64;
                let mean = |f: &dyn Fn(&UsageRecord) -> Option<f64>| {
                    let v: Vec<f64> = rs.iter().filter_map(|r| f(r)).collect();
                    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
                };
                UsageAggregate {
                    group,
                    bucket: b.map(crate::time::from_micros),
                    calls,
                    successes,
                    success_rate: successes as f64 / calls as f64,
                    input_tokens: rs.iter().map(|r| r.input_tokens).sum(),
                    output_tokens: rs.iter().map(|r| r.output_tokens).sum(),
                    estimated_cost: rs.iter().filter_map(|r| r.estimated_cost).sum(),
                    actual_cost: rs.iter().filter_map(|r| r.actual_cost).sum(),
                    avg_latency_ms: mean(&|r| r.latency_ms),
                    avg_quality: mean(&|r| r.quality_score),
                }
            })
            .collect())
    }

    /// Records metric points.
    pub fn record_metrics(&self, scope: &Scope, points: Vec<NewMetricPoint>) -> Result<u64> {
        Self::validate_tenant(scope)?;
        self.batch("points", &points)?;
        let at = now();
        let pts = points
            .into_iter()
            .map(|p| {
                self.label("name", &p.name)?;
                if p.labels.len() > 32 {
                    return Err(Error::invalid("labels", "at most 32 labels"));
                }
                for (k, v) in &p.labels {
                    self.label("labels", k)?;
                    self.short("labels", v)?;
                }
                Self::finite("value", Some(p.value))?;
                Ok(MetricPoint {
                    tenant_id: scope.tenant.clone(),
                    name: p.name,
                    labels: p.labels,
                    value: p.value,
                    at: p.at.map(truncate).unwrap_or(at),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let n = pts.len() as u64;
        self.write_one(scope, WriteOp::RecordMetrics(pts))?;
        Ok(n)
    }

    /// Raw points of a metric in a window.
    pub fn metric_range(&self, scope: &Scope, q: &MetricQuery) -> Result<Vec<MetricPoint>> {
        self.backend.metric_points(&scope.tenant, q)
    }

    /// Points merged into fixed buckets (avg / min / max / count / sum).
    pub fn metric_downsample(
        &self,
        scope: &Scope,
        q: &MetricQuery,
        bucket_secs: i64,
    ) -> Result<Vec<MetricBucket>> {
        let us = bucket_micros(Some(bucket_secs))?.unwrap_or(1);
        let mut out: BTreeMap<i64, MetricBucket> = BTreeMap::new();
        for p in self.backend.metric_points(&scope.tenant, q)? {
            let b = floor_to(p.at.timestamp_micros(), us);
            let e = out.entry(b).or_insert(MetricBucket {
                start: crate::time::from_micros(b),
                count: 0,
                avg: 0.0,
                min: f64::INFINITY,
                max: f64::NEG_INFINITY,
                sum: 0.0,
            });
            e.count += 1;
            e.sum += p.value;
            e.min = e.min.min(p.value);
            e.max = e.max.max(p.value);
        }
        Ok(out
            .into_values()
            .map(|mut b| {
                b.avg = b.sum / b.count as f64;
                b
            })
            .collect())
    }

    /// Leaderboard: the latest value of each series of a metric, highest first.
    pub fn metric_top_k(
        &self,
        scope: &Scope,
        q: &MetricQuery,
        k: usize,
    ) -> Result<Vec<SeriesValue>> {
        let mut latest: BTreeMap<BTreeMap<String, String>, SeriesValue> = BTreeMap::new();
        for p in self.backend.metric_points(&scope.tenant, q)? {
            // Points come oldest first, so the last one seen per series is its latest.
            latest.insert(
                p.labels.clone(),
                SeriesValue {
                    labels: p.labels,
                    value: p.value,
                    at: p.at,
                },
            );
        }
        let mut v: Vec<SeriesValue> = latest.into_values().collect();
        v.sort_by(|a, b| {
            b.value
                .total_cmp(&a.value)
                .then_with(|| a.labels.cmp(&b.labels))
        });
        v.truncate(k);
        Ok(v)
    }

    // ---------------------------------------------------------------- key-value, locks

    fn kv_key(&self, key: &str) -> Result<()> {
        if key.is_empty() {
            return Err(Error::invalid("key", "must not be empty"));
        }
        self.short("key", key)
    }

    fn expiry(ttl_ms: Option<u64>, at: Timestamp) -> Result<Option<Timestamp>> {
        ttl_ms
            .map(|ms| {
                i64::try_from(ms)
                    .ok()
                    .and_then(|ms| at.checked_add_signed(chrono::Duration::milliseconds(ms)))
                    .ok_or_else(|| Error::invalid("ttl_ms", "too large"))
            })
            .transpose()
    }

    /// Sets a key, with an optional time to live.
    pub fn kv_set(
        &self,
        scope: &Scope,
        key: &str,
        value: Json,
        ttl_ms: Option<u64>,
    ) -> Result<KvEntry> {
        Self::validate_tenant(scope)?;
        self.kv_key(key)?;
        self.json("value", &value)?;
        let at = now();
        match self.write_one(
            scope,
            WriteOp::KvSet {
                key: key.into(),
                value,
                expires_at: Self::expiry(ttl_ms, at)?,
                at,
            },
        )? {
            WriteResult::Kv(Some(e)) => Ok(e),
            other => Err(Error::Database(
                format!("unexpected result {other:?}").into(),
            )),
        }
    }

    /// A live key.
    pub fn kv_get(&self, scope: &Scope, key: &str) -> Result<Option<KvEntry>> {
        self.backend.kv_get(&scope.tenant, key, now())
    }

    /// Live keys with a prefix.
    pub fn kv_list(&self, scope: &Scope, prefix: &str, limit: usize) -> Result<Vec<KvEntry>> {
        self.backend
            .kv_list(&scope.tenant, prefix, now(), page_limit(limit))
    }

    /// Adds to a counter; a new key gets the TTL (fixed-window rate limits).
    pub fn kv_incr(&self, scope: &Scope, key: &str, by: i64, ttl_ms: Option<u64>) -> Result<i64> {
        Self::validate_tenant(scope)?;
        self.kv_key(key)?;
        let at = now();
        match self.write_one(
            scope,
            WriteOp::KvIncr {
                key: key.into(),
                by,
                expires_at: Self::expiry(ttl_ms, at)?,
                at,
            },
        )? {
            WriteResult::Kv(Some(e)) => e
                .value
                .as_i64()
                .ok_or_else(|| Error::Conflict(format!("key '{key}' does not hold an integer"))),
            other => Err(Error::Database(
                format!("unexpected result {other:?}").into(),
            )),
        }
    }

    /// Changes a live key's TTL; false when the key is missing or expired.
    pub fn kv_expire(&self, scope: &Scope, key: &str, ttl_ms: Option<u64>) -> Result<bool> {
        let at = now();
        Ok(matches!(
            self.write_one(
                scope,
                WriteOp::KvExpire {
                    key: key.into(),
                    expires_at: Self::expiry(ttl_ms, at)?,
                    at,
                },
            )?,
            WriteResult::Kv(Some(_))
        ))
    }

    /// Deletes a key; true when it existed.
    pub fn kv_delete(&self, scope: &Scope, key: &str) -> Result<bool> {
        Ok(matches!(
            self.write_one(scope, WriteOp::KvDelete { key: key.into() })?,
            WriteResult::Count(1..)
        ))
    }

    /// Deletes every key with a prefix; returns how many.
    pub fn kv_delete_prefix(&self, scope: &Scope, prefix: &str) -> Result<u64> {
        match self.write_one(
            scope,
            WriteOp::KvDeletePrefix {
                prefix: prefix.into(),
            },
        )? {
            WriteResult::Count(n) => Ok(n),
            _ => Ok(0),
        }
    }

    fn lock_result(r: WriteResult) -> Result<Lock> {
        match r {
            WriteResult::Lock(l) => Ok(l),
            other => Err(Error::Database(
                format!("unexpected result {other:?}").into(),
            )),
        }
    }

    /// Acquires a named lock for `ttl_ms`; the returned token fences writes made under it.
    pub fn lock_acquire(
        &self,
        scope: &Scope,
        name: &str,
        holder: &str,
        ttl_ms: u64,
    ) -> Result<Lock> {
        Self::validate_tenant(scope)?;
        self.label("name", name)?;
        self.label("holder", holder)?;
        if ttl_ms == 0 {
            return Err(Error::invalid("ttl_ms", "must be positive"));
        }
        let at = now();
        Self::lock_result(self.write_one(
            scope,
            WriteOp::LockAcquire {
                name: name.into(),
                holder: holder.into(),
                expires_at: Self::expiry(Some(ttl_ms), at)?.unwrap_or(at),
                at,
            },
        )?)
    }

    /// Extends a lease held with `token`.
    pub fn lock_renew(&self, scope: &Scope, name: &str, token: i64, ttl_ms: u64) -> Result<Lock> {
        let at = now();
        Self::lock_result(self.write_one(
            scope,
            WriteOp::LockRenew {
                name: name.into(),
                token,
                expires_at: Self::expiry(Some(ttl_ms), at)?.unwrap_or(at),
                at,
            },
        )?)
    }

    /// Releases a lock held with `token`.
    pub fn lock_release(&self, scope: &Scope, name: &str, token: i64) -> Result<Lock> {
        Self::lock_result(self.write_one(
            scope,
            WriteOp::LockRelease {
                name: name.into(),
                token,
            },
        )?)
    }

    /// A lock's state.
    pub fn get_lock(&self, scope: &Scope, name: &str) -> Result<Option<Lock>> {
        self.backend.get_lock(&scope.tenant, name)
    }

    /// `Ok` when `token` is the current, unexpired token of the lock (a fencing check
    /// before a guarded write); `StaleToken` otherwise.
    pub fn check_fencing_token(&self, scope: &Scope, name: &str, token: i64) -> Result<()> {
        let lock = self.get_lock(scope, name)?;
        let current = lock.as_ref().map_or(0, |l| l.token);
        let live = lock
            .as_ref()
            .is_some_and(|l| l.holder.is_some() && l.expires_at.is_some_and(|e| e > now()));
        if current == token && live {
            Ok(())
        } else {
            Err(Error::StaleToken {
                name: name.into(),
                token,
                current,
            })
        }
    }

    // ---------------------------------------------------------------- API keys

    /// Creates an API key for the scope's tenant. The returned secret is the only copy:
    /// the store keeps its SHA-256.
    pub fn create_api_key(
        &self,
        scope: &Scope,
        name: &str,
        scopes: &[KeyScope],
        expires_at: Option<Timestamp>,
    ) -> Result<CreatedApiKey> {
        Self::validate_tenant(scope)?;
        self.label("name", name)?;
        if scopes.is_empty() {
            return Err(Error::invalid(
                "scopes",
                "at least one of read, write, admin",
            ));
        }
        let at = now();
        if expires_at.is_some_and(|e| e <= at) {
            return Err(Error::invalid("expires_at", "must be in the future"));
        }
        let mut random = [0u8; 32];
        getrandom::fill(&mut random)
            .map_err(|e| Error::Config(format!("no secure random numbers: {e}")))?;
        let secret = format!("{API_KEY_PREFIX}{}", hex::encode(random));
        let mut scopes = scopes.to_vec();
        scopes.sort();
        scopes.dedup();
        let key = ApiKey {
            id: new_id(),
            tenant_id: scope.tenant.clone(),
            name: name.to_owned(),
            prefix: secret[..API_KEY_PREFIX.len() + 8].to_owned(),
            scopes,
            created_at: at,
            expires_at: expires_at.map(truncate),
            revoked_at: None,
        };
        self.write_one(
            scope,
            WriteOp::CreateApiKey {
                key: key.clone(),
                hash: sha256_hex(secret.as_bytes()),
            },
        )?;
        Ok(CreatedApiKey { key, secret })
    }

    /// The tenant's keys, revoked ones included, oldest first.
    pub fn list_api_keys(&self, scope: &Scope) -> Result<Vec<ApiKey>> {
        Self::validate_tenant(scope)?;
        self.backend.list_api_keys(&scope.tenant)
    }

    /// Revokes a key of the scope's tenant; it stops working at once.
    pub fn revoke_api_key(&self, scope: &Scope, id: &str) -> Result<()> {
        validate_id("id", id)?;
        self.write_one(
            scope,
            WriteOp::RevokeApiKey {
                id: id.into(),
                at: now(),
            },
        )?;
        Ok(())
    }

    /// The live key (not revoked, not expired) whose secret this is; None for anything
    /// else, including text that is not a secret at all.
    pub fn authenticate(&self, secret: &str) -> Result<Option<ApiKey>> {
        if !secret.starts_with(API_KEY_PREFIX) || secret.len() > 256 {
            return Ok(None);
        }
        let at = now();
        Ok(self
            .backend
            .api_key_by_hash(&sha256_hex(secret.as_bytes()))?
            .filter(|k| k.revoked_at.is_none() && k.expires_at.is_none_or(|e| e > at)))
    }

    // ---------------------------------------------------------------- audit, admin

    /// Audit entries by filter.
    pub fn list_audit(&self, mut q: AuditQuery) -> Result<Page<AuditEntry>> {
        q.limit = page_limit(q.limit);
        self.backend.list_audit(&q)
    }

    /// Removes expired records of one tenant, and those past its retention rules.
    pub fn sweep_expired(&self, scope: &Scope) -> Result<SweepReport> {
        match self.write_one(scope, WriteOp::SweepExpired { at: now() })? {
            WriteResult::Swept(r) => {
                self.after_sweep(&r);
                Ok(r)
            }
            _ => Ok(SweepReport::default()),
        }
    }

    /// Records that left by retention leave the embedding cache too (it holds vectors of
    /// their texts, keyed by text hash).
    fn after_sweep(&self, r: &SweepReport) {
        if r.removed() > 0
            && let Some(e) = &self.embedder
        {
            e.clear_cache();
        }
    }

    /// [`Store::sweep_expired`] for every tenant, as `actor` (one transaction each).
    pub fn sweep_all(&self, actor: &str) -> Result<SweepReport> {
        let mut total = SweepReport::default();
        for t in self.backend.list_tenants()? {
            total.add(&self.sweep_expired(&Scope::new(&t.id, actor))?);
        }
        Ok(total)
    }

    /// Sets (`days` Some) or removes (None) the tenant's retention rule for `entity` and
    /// `kind` (None: every kind); returns the tenant's rules after the change.
    pub fn set_retention(
        &self,
        scope: &Scope,
        entity: RetentionEntity,
        kind: Option<&str>,
        days: Option<i64>,
    ) -> Result<Vec<RetentionRule>> {
        Self::validate_tenant(scope)?;
        let kind = kind.unwrap_or_default();
        if !kind.is_empty() {
            self.label("kind", kind)?;
            if entity == RetentionEntity::Usage {
                return Err(Error::invalid(
                    "kind",
                    "usage records have no kind: a usage rule covers all of them",
                ));
            }
        }
        if let Some(d) = days
            && !(1..=365_000).contains(&d)
        {
            return Err(Error::invalid("days", "must be between 1 and 365000"));
        }
        self.write_one(
            scope,
            WriteOp::SetRetention {
                entity,
                kind: kind.to_owned(),
                days,
                at: now(),
            },
        )?;
        self.list_retention(scope)
    }

    /// The tenant's retention rules.
    pub fn list_retention(&self, scope: &Scope) -> Result<Vec<RetentionRule>> {
        self.backend.list_retention(&scope.tenant)
    }

    /// Writes every record as JSON Lines; returns the number of lines.
    pub fn export_jsonl(
        &self,
        out: &mut dyn std::io::Write,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64> {
        let mut n = 0u64;
        self.backend.export(&mut |rec| {
            serde_json::to_writer(&mut *out, &rec)
                .map_err(|e| Error::io("export", std::io::Error::other(e)))?;
            out.write_all(b"\n").map_err(|e| Error::io("export", e))?;
            n += 1;
            progress(n);
            Ok(())
        })?;
        out.flush().map_err(|e| Error::io("export", e))?;
        Ok(n)
    }

    /// Imports JSON Lines written by [`Store::export_jsonl`] in one transaction. Each line
    /// is validated like an API write; the first bad line aborts the import with its
    /// number and nothing is written.
    pub fn import_jsonl(
        &self,
        scope: &Scope,
        input: &mut dyn BufRead,
        progress: &mut dyn FnMut(u64),
    ) -> Result<ImportReport> {
        let limits = self.limits.clone();
        let mut line_no = 0u64;
        let mut buf = String::new();
        let mut iter = std::iter::from_fn(|| {
            loop {
                buf.clear();
                line_no += 1;
                match input.read_line(&mut buf) {
                    Ok(0) => return None,
                    Ok(_) => {}
                    Err(e) => {
                        return Some(Err(Error::Import {
                            line: line_no,
                            message: format!("cannot read: {e}"),
                        }));
                    }
                }
                progress(line_no);
                if buf.trim().is_empty() {
                    continue;
                }
                let rec = serde_json::from_str::<Record>(buf.trim_end())
                    .map_err(|e| Error::Import {
                        line: line_no,
                        message: describe_json_error(&buf, &e),
                    })
                    .and_then(|r| {
                        validate_record(&r, &limits).map_err(|e| Error::Import {
                            line: line_no,
                            message: e.to_string(),
                        })?;
                        Ok(r)
                    });
                return Some(rec.map(|r| (line_no, r)));
            }
        });
        self.backend.import(scope, &mut iter)
    }

    /// Counts and sizes.
    pub fn stats(&self) -> Result<Stats> {
        self.backend.stats()
    }

    /// Integrity checks.
    pub fn verify(&self) -> Result<VerifyReport> {
        self.backend.verify()
    }

    /// Loads the derived search indexes now rather than at the first search (see
    /// [`Backend::warm`]); a server calls it as it starts.
    pub fn warm(&self) -> Result<()> {
        self.backend.warm()
    }

    /// Sweep, optimise, checkpoint and optionally vacuum.
    pub fn maintenance(&self, vacuum: bool) -> Result<MaintenanceReport> {
        let r = self.backend.maintenance(&MaintenanceOptions {
            sweep: true,
            vacuum,
            now: now(),
        })?;
        self.after_sweep(&r.swept);
        Ok(r)
    }

    /// Online backup into an empty directory.
    pub fn backup(&self, dir: &Path) -> Result<BackupManifest> {
        self.backend.backup(dir)
    }
}

fn bucket_micros(bucket_secs: Option<i64>) -> Result<Option<i64>> {
    match bucket_secs {
        None => Ok(None),
        Some(s) if s > 0 && s <= 366 * 86_400 => Ok(Some(s * 1_000_000)),
        Some(_) => Err(Error::invalid(
            "bucket_secs",
            "must be between 1 second and 366 days",
        )),
    }
}

fn floor_to(us: i64, bucket: i64) -> i64 {
    us.div_euclid(bucket) * bucket
}

fn describe_json_error(line: &str, e: &serde_json::Error) -> String {
    if e.is_syntax() || e.is_eof() {
        return format!("not valid JSON ({e})");
    }
    match serde_json::from_str::<Json>(line)
        .ok()
        .and_then(|v| v.get("type").cloned())
    {
        None => "missing \"type\" field".into(),
        Some(t) => format!("invalid {t} record: {e}"),
    }
}

/// Validates an imported record's ids, namespaces and sizes like an API write.
fn validate_record(r: &Record, limits: &Limits) -> Result<()> {
    let too_large = |field: &str, size: usize, limit: usize| {
        if size > limit {
            Err(Error::TooLarge {
                field: field.into(),
                size,
                limit,
            })
        } else {
            Ok(())
        }
    };
    let tenant = |t: &str| validate_id("tenant_id", t);
    // Model ids are labels, not identifiers: "org/model-name" is a usual one.
    let model_id = |m: &str| {
        if m.trim().is_empty() || m.chars().any(char::is_control) {
            return Err(Error::invalid(
                "model",
                "must be a non-empty model id without control characters",
            ));
        }
        too_large("model", m.len(), limits.max_short_field)
    };
    match r {
        Record::Tenant(t) => validate_id("id", &t.id),
        Record::Subject(s) => {
            tenant(&s.tenant_id)?;
            validate_id("id", &s.id)
        }
        Record::Agent(a) => {
            tenant(&a.tenant_id)?;
            validate_id("id", &a.id)?;
            a.namespace.validate()
        }
        Record::Session(s) => {
            tenant(&s.tenant_id)?;
            validate_id("id", &s.id)?;
            s.namespace.validate()
        }
        Record::Event(e) => {
            tenant(&e.tenant_id)?;
            validate_id("id", &e.id)?;
            validate_id("session_id", &e.session_id)?;
            if e.seq < 1 {
                return Err(Error::invalid("seq", "must be at least 1"));
            }
            too_large(
                "content",
                e.content.as_ref().map_or(0, String::len),
                limits.max_content_bytes,
            )
        }
        Record::Memory(m) => {
            tenant(&m.tenant_id)?;
            validate_id("id", &m.id)?;
            m.namespace.validate()?;
            too_large("content", m.content.len(), limits.max_content_bytes)?;
            if sha256_hex(m.content.as_bytes()) != m.content_hash {
                return Err(Error::invalid("content_hash", "does not match the content"));
            }
            Ok(())
        }
        Record::Document(d) => {
            tenant(&d.tenant_id)?;
            validate_id("id", &d.id)?;
            d.namespace.validate()?;
            too_large("content", d.content.len(), limits.max_document_bytes)
        }
        Record::Chunk(c) => {
            tenant(&c.tenant_id)?;
            validate_id("id", &c.id)?;
            validate_id("document_id", &c.document_id)
        }
        Record::Checkpoint(c) => {
            tenant(&c.tenant_id)?;
            validate_id("id", &c.id)?;
            too_large("state", c.state.len(), limits.max_state_bytes)
        }
        Record::PendingWrite(w) => {
            tenant(&w.tenant_id)?;
            too_large("value", w.value.len(), limits.max_state_bytes)
        }
        Record::Usage(u) => {
            tenant(&u.tenant_id)?;
            validate_id("id", &u.id)
        }
        Record::Metric(m) => {
            tenant(&m.tenant_id)?;
            if !m.value.is_finite() {
                return Err(Error::invalid("value", "must be a finite number"));
            }
            Ok(())
        }
        Record::Audit(a) => {
            if let Some(t) = &a.tenant_id {
                tenant(t)?;
            }
            Ok(())
        }
        Record::Kv(k) => tenant(&k.tenant_id),
        Record::Lock(l) => tenant(&l.tenant_id),
        Record::Retention(r) => {
            tenant(&r.tenant_id)?;
            if r.days <= 0 {
                return Err(Error::invalid("days", "must be positive"));
            }
            Ok(())
        }
        Record::VectorModel(m) => {
            model_id(&m.model)?;
            if m.dimension == 0 || m.dimension > crate::embedding::MAX_DIMENSION {
                return Err(Error::invalid(
                    "dimension",
                    format!("must be 1 to {}", crate::embedding::MAX_DIMENSION),
                ));
            }
            Ok(())
        }
        Record::Vector(v) => {
            tenant(&v.tenant_id)?;
            validate_id("record_id", &v.record_id)?;
            model_id(&v.model)?;
            crate::embedding::check_vector("vector", &v.vector, None)
        }
    }
}

-- Indexes for the access patterns of the reference platforms: recent sessions by kind,
-- status, agent or subject; memories by namespace, kind, topic and importance; documents
-- by hash (dedupe) and source path (re-ingest); usage and metrics by time.

CREATE INDEX sessions_recent ON sessions (tenant_id, started_at DESC, id DESC);
CREATE INDEX sessions_namespace ON sessions (tenant_id, namespace);
CREATE INDEX sessions_kind ON sessions (tenant_id, kind, status);
CREATE INDEX sessions_agent ON sessions (tenant_id, agent_id) WHERE agent_id IS NOT NULL;
CREATE INDEX sessions_subject ON sessions (tenant_id, subject_id) WHERE subject_id IS NOT NULL;
CREATE INDEX sessions_parent ON sessions (tenant_id, parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX sessions_expiry ON sessions (expires_at) WHERE expires_at IS NOT NULL;

CREATE INDEX memories_recent ON memories (tenant_id, created_at DESC, id DESC);
CREATE INDEX memories_namespace ON memories (tenant_id, namespace, kind);
CREATE INDEX memories_hash ON memories (tenant_id, namespace, content_hash);
CREATE INDEX memories_key_history ON memories (tenant_id, namespace, key, valid_from)
    WHERE key IS NOT NULL;
CREATE INDEX memories_topic ON memories (tenant_id, topic) WHERE topic IS NOT NULL;
CREATE INDEX memories_importance ON memories (tenant_id, importance DESC);
CREATE INDEX memories_subject ON memories (tenant_id, subject_id) WHERE subject_id IS NOT NULL;
CREATE INDEX memories_agent ON memories (tenant_id, agent_id) WHERE agent_id IS NOT NULL;
CREATE INDEX memories_expiry ON memories (expires_at) WHERE expires_at IS NOT NULL;

CREATE INDEX documents_recent ON documents (tenant_id, created_at DESC, id DESC);
CREATE INDEX documents_hash ON documents (tenant_id, namespace, content_hash);
CREATE INDEX documents_source ON documents (tenant_id, namespace, source_path)
    WHERE source_path IS NOT NULL;
CREATE INDEX documents_subject ON documents (tenant_id, subject_id) WHERE subject_id IS NOT NULL;

CREATE INDEX checkpoints_thread ON checkpoints (tenant_id, session_id, checkpoint_ns, rid DESC);

CREATE INDEX usage_time ON usage_records (tenant_id, created_at);
CREATE INDEX usage_agent ON usage_records (tenant_id, agent_id, created_at)
    WHERE agent_id IS NOT NULL;
CREATE INDEX usage_session ON usage_records (tenant_id, session_id) WHERE session_id IS NOT NULL;

CREATE INDEX metric_points_series ON metric_points (tenant_id, name, at);

CREATE INDEX audit_log_resource ON audit_log (tenant_id, resource_type, resource_id);
CREATE INDEX audit_log_actor ON audit_log (tenant_id, actor);
CREATE INDEX audit_log_time ON audit_log (at);

CREATE INDEX kv_expiry ON kv_entries (expires_at) WHERE expires_at IS NOT NULL;

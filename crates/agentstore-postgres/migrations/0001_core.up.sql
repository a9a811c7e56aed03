-- agentstore core schema for PostgreSQL: the same tables, columns and constraints as the
-- SQLite backend's (crates/agentstore-sqlite/migrations), so one engine and one
-- conformance suite serve both. Differences, and why:
-- * `rid` is a BIGINT identity: insertion order for export, as SQLite's rowid;
-- * every TEXT column is COLLATE "C": namespace prefixes are byte ranges and keyset
--   pagination orders by id and name byte-wise, exactly as SQLite compares, whatever
--   the database's own collation;
-- * booleans are BOOLEAN, floats DOUBLE PRECISION, checkpoint state BYTEA;
-- * full text is a generated `tsvector` column with a GIN index per searchable table
--   (PostgreSQL full text instead of FTS5), vectors a pgvector column (0002).
-- Times are BIGINT microseconds since the Unix epoch (UTC); JSON is TEXT, as written, so a
-- record reads back byte for byte (jsonb would reorder keys); filters cast it to jsonb.

-- Store-wide settings: `subject_secret` (hex), the key of subjects' external-id hashes,
-- made when the store is created (the SQLite backend keeps it in a file).
CREATE TABLE store_meta (
    key    TEXT COLLATE "C" PRIMARY KEY,
    value  TEXT COLLATE "C" NOT NULL
);

-- Full text: English stemming as in the SQLite backend's FTS5 tables (porter), and
-- accents folded as FTS5's unicode61 folds them ("cafe" finds "café"): a configuration of
-- our own that runs words with non-ASCII letters through `unaccent` before stemming.
-- (unaccent ships with PostgreSQL's contrib modules and is a trusted extension.)
CREATE EXTENSION IF NOT EXISTS unaccent;
CREATE TEXT SEARCH CONFIGURATION agentstore_english (COPY = english);
ALTER TEXT SEARCH CONFIGURATION agentstore_english
    ALTER MAPPING FOR hword, hword_part, word WITH unaccent, english_stem;

CREATE TABLE tenants (
    rid         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          TEXT COLLATE "C" NOT NULL UNIQUE,
    name        TEXT COLLATE "C" NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE subjects (
    rid                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id            TEXT COLLATE "C" NOT NULL REFERENCES tenants(id),
    id                   TEXT COLLATE "C" NOT NULL,
    external_id_hash     TEXT COLLATE "C" NOT NULL,
    consent              BOOLEAN NOT NULL DEFAULT FALSE,
    consent_at           BIGINT,
    age_gated            BOOLEAN NOT NULL DEFAULT FALSE,
    parental_consent_at  BIGINT,
    parental_consent_by  TEXT COLLATE "C",
    retention_days       BIGINT,
    metadata             TEXT COLLATE "C" NOT NULL DEFAULT '{}',
    strict               BOOLEAN NOT NULL DEFAULT FALSE,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, external_id_hash)
);

CREATE TABLE agents (
    rid             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id       TEXT COLLATE "C" NOT NULL REFERENCES tenants(id),
    id              TEXT COLLATE "C" NOT NULL,
    namespace       TEXT COLLATE "C" NOT NULL DEFAULT '',
    name            TEXT COLLATE "C" NOT NULL,
    agent_type      TEXT COLLATE "C",
    model_provider  TEXT COLLATE "C",
    model_name      TEXT COLLATE "C",
    capabilities    TEXT COLLATE "C" NOT NULL DEFAULT '{}',
    tags            TEXT COLLATE "C" NOT NULL DEFAULT '[]',
    active          BOOLEAN NOT NULL DEFAULT TRUE,
    experimental    BOOLEAN NOT NULL DEFAULT FALSE,
    metadata        TEXT COLLATE "C" NOT NULL DEFAULT '{}',
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, name)
);

CREATE TABLE sessions (
    rid          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    TEXT COLLATE "C" NOT NULL REFERENCES tenants(id),
    id           TEXT COLLATE "C" NOT NULL,
    namespace    TEXT COLLATE "C" NOT NULL DEFAULT '',
    kind         TEXT COLLATE "C" NOT NULL,
    status       TEXT COLLATE "C" NOT NULL,
    title        TEXT COLLATE "C",
    domain       TEXT COLLATE "C",
    task_type    TEXT COLLATE "C",
    subject_id   TEXT COLLATE "C",
    agent_id     TEXT COLLATE "C",
    parent_id    TEXT COLLATE "C",
    started_at   BIGINT NOT NULL,
    ended_at     BIGINT,
    success      BOOLEAN,
    reward       DOUBLE PRECISION,
    reflection   TEXT COLLATE "C",
    priority     BIGINT NOT NULL DEFAULT 0,
    metadata     TEXT COLLATE "C" NOT NULL DEFAULT '{}',
    expires_at   BIGINT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, subject_id) REFERENCES subjects(tenant_id, id),
    FOREIGN KEY (tenant_id, agent_id) REFERENCES agents(tenant_id, id),
    FOREIGN KEY (tenant_id, parent_id) REFERENCES sessions(tenant_id, id)
);

-- Append-only: the trigger below refuses UPDATE; rows leave only with their session.
CREATE TABLE events (
    rid          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    TEXT COLLATE "C" NOT NULL,
    id           TEXT COLLATE "C" NOT NULL,
    session_id   TEXT COLLATE "C" NOT NULL,
    seq          BIGINT NOT NULL CHECK (seq >= 1),
    kind         TEXT COLLATE "C" NOT NULL,
    role         TEXT COLLATE "C",
    content      TEXT COLLATE "C",
    tool_name    TEXT COLLATE "C",
    parameters   TEXT COLLATE "C",
    result       TEXT COLLATE "C",
    success      BOOLEAN,
    duration_ms  BIGINT,
    tokens       BIGINT,
    cost         DOUBLE PRECISION,
    metadata     TEXT COLLATE "C" NOT NULL DEFAULT '{}',
    created_at   BIGINT NOT NULL,
    fts          tsvector GENERATED ALWAYS AS (
        to_tsvector('agentstore_english', coalesce(content, '') || ' ' || coalesce(tool_name, ''))) STORED,
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, session_id, seq),
    FOREIGN KEY (tenant_id, session_id) REFERENCES sessions(tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX events_fts ON events USING gin (fts);

-- The message comes from the trigger's argument (TG_ARGV): trigger functions take none.
CREATE FUNCTION agentstore_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', TG_ARGV[0];
END $$;

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
    FOR EACH ROW EXECUTE FUNCTION agentstore_refuse('events are append-only');

CREATE TABLE memories (
    rid               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id         TEXT COLLATE "C" NOT NULL REFERENCES tenants(id),
    id                TEXT COLLATE "C" NOT NULL,
    namespace         TEXT COLLATE "C" NOT NULL DEFAULT '',
    kind              TEXT COLLATE "C" NOT NULL,
    key               TEXT COLLATE "C",
    content           TEXT COLLATE "C" NOT NULL,
    summary           TEXT COLLATE "C",
    tier              TEXT COLLATE "C" NOT NULL,
    importance        DOUBLE PRECISION NOT NULL,
    confidence        DOUBLE PRECISION NOT NULL,
    success_rate      DOUBLE PRECISION,
    pinned            BOOLEAN NOT NULL DEFAULT FALSE,
    priority          BIGINT NOT NULL DEFAULT 0,
    topic             TEXT COLLATE "C",
    domain            TEXT COLLATE "C",
    tags              TEXT COLLATE "C" NOT NULL DEFAULT '[]',
    source_sessions   TEXT COLLATE "C" NOT NULL DEFAULT '[]',
    source_events     TEXT COLLATE "C" NOT NULL DEFAULT '[]',
    subject_id        TEXT COLLATE "C",
    agent_id          TEXT COLLATE "C",
    access_count      BIGINT NOT NULL DEFAULT 0,
    last_accessed_at  BIGINT,
    token_count       BIGINT NOT NULL DEFAULT 0,
    content_hash      TEXT COLLATE "C" NOT NULL,
    valid_from        BIGINT NOT NULL,
    valid_to          BIGINT,
    superseded_by     TEXT COLLATE "C",
    expires_at        BIGINT,
    metadata          TEXT COLLATE "C" NOT NULL DEFAULT '{}',
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    fts               tsvector GENERATED ALWAYS AS (
        to_tsvector('agentstore_english', content || ' ' || coalesce(summary, '') || ' ' ||
                    coalesce(topic, '') || ' ' || tags)) STORED,
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, subject_id) REFERENCES subjects(tenant_id, id),
    FOREIGN KEY (tenant_id, agent_id) REFERENCES agents(tenant_id, id)
);
CREATE INDEX memories_fts ON memories USING gin (fts);

-- One current version per key: superseded versions have valid_to set.
CREATE UNIQUE INDEX memories_current_key
    ON memories (tenant_id, namespace, key) WHERE key IS NOT NULL AND valid_to IS NULL;

CREATE TABLE documents (
    rid            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id      TEXT COLLATE "C" NOT NULL REFERENCES tenants(id),
    id             TEXT COLLATE "C" NOT NULL,
    namespace      TEXT COLLATE "C" NOT NULL DEFAULT '',
    title          TEXT COLLATE "C",
    doc_type       TEXT COLLATE "C" NOT NULL,
    source_path    TEXT COLLATE "C",
    source_url     TEXT COLLATE "C",
    content_hash   TEXT COLLATE "C" NOT NULL,
    word_count     BIGINT NOT NULL,
    content        TEXT COLLATE "C" NOT NULL,
    subject_id     TEXT COLLATE "C",
    chunk_size     BIGINT NOT NULL,
    chunk_overlap  BIGINT NOT NULL,
    metadata       TEXT COLLATE "C" NOT NULL DEFAULT '{}',
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, subject_id) REFERENCES subjects(tenant_id, id)
);

CREATE TABLE chunks (
    rid              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id        TEXT COLLATE "C" NOT NULL,
    id               TEXT COLLATE "C" NOT NULL,
    document_id      TEXT COLLATE "C" NOT NULL,
    idx              BIGINT NOT NULL,
    content          TEXT COLLATE "C" NOT NULL,
    content_hash     TEXT COLLATE "C" NOT NULL,
    start            BIGINT NOT NULL,
    "end"            BIGINT NOT NULL,
    word_count       BIGINT NOT NULL,
    token_count      BIGINT NOT NULL,
    query_count      BIGINT NOT NULL DEFAULT 0,
    last_queried_at  BIGINT,
    created_at       BIGINT NOT NULL,
    fts              tsvector GENERATED ALWAYS AS (to_tsvector('agentstore_english', content)) STORED,
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, document_id, idx),
    FOREIGN KEY (tenant_id, document_id) REFERENCES documents(tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX chunks_fts ON chunks USING gin (fts);

CREATE TABLE checkpoints (
    rid            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id      TEXT COLLATE "C" NOT NULL,
    session_id     TEXT COLLATE "C" NOT NULL,
    checkpoint_ns  TEXT COLLATE "C" NOT NULL DEFAULT '',
    id             TEXT COLLATE "C" NOT NULL,
    parent_id      TEXT COLLATE "C",
    state_format   TEXT COLLATE "C" NOT NULL CHECK (state_format IN ('json', 'bytes')),
    state          BYTEA NOT NULL,
    metadata       TEXT COLLATE "C" NOT NULL DEFAULT '{}',
    created_at     BIGINT NOT NULL,
    UNIQUE (tenant_id, session_id, checkpoint_ns, id),
    FOREIGN KEY (tenant_id, session_id) REFERENCES sessions(tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE checkpoint_writes (
    rid            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id      TEXT COLLATE "C" NOT NULL,
    session_id     TEXT COLLATE "C" NOT NULL,
    checkpoint_ns  TEXT COLLATE "C" NOT NULL,
    checkpoint_id  TEXT COLLATE "C" NOT NULL,
    task_id        TEXT COLLATE "C" NOT NULL,
    idx            BIGINT NOT NULL,
    channel        TEXT COLLATE "C" NOT NULL,
    value_format   TEXT COLLATE "C" NOT NULL CHECK (value_format IN ('json', 'bytes')),
    value          BYTEA NOT NULL,
    created_at     BIGINT NOT NULL,
    UNIQUE (tenant_id, session_id, checkpoint_ns, checkpoint_id, task_id, idx),
    FOREIGN KEY (tenant_id, session_id, checkpoint_ns, checkpoint_id)
        REFERENCES checkpoints(tenant_id, session_id, checkpoint_ns, id) ON DELETE CASCADE
);

CREATE TABLE usage_records (
    rid             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id       TEXT COLLATE "C" NOT NULL REFERENCES tenants(id),
    id              TEXT COLLATE "C" NOT NULL,
    session_id      TEXT COLLATE "C",
    agent_id        TEXT COLLATE "C",
    provider        TEXT COLLATE "C" NOT NULL,
    model           TEXT COLLATE "C" NOT NULL,
    operation       TEXT COLLATE "C",
    input_tokens    BIGINT NOT NULL DEFAULT 0,
    output_tokens   BIGINT NOT NULL DEFAULT 0,
    estimated_cost  DOUBLE PRECISION,
    actual_cost     DOUBLE PRECISION,
    latency_ms      DOUBLE PRECISION,
    quality_score   DOUBLE PRECISION,
    success         BOOLEAN NOT NULL,
    metadata        TEXT COLLATE "C" NOT NULL DEFAULT '{}',
    created_at      BIGINT NOT NULL,
    UNIQUE (tenant_id, id)
);

-- Labels are canonical JSON (sorted keys), so equal label sets compare equal as text.
CREATE TABLE metric_points (
    rid        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  TEXT COLLATE "C" NOT NULL REFERENCES tenants(id),
    name       TEXT COLLATE "C" NOT NULL,
    labels     TEXT COLLATE "C" NOT NULL DEFAULT '{}',
    value      DOUBLE PRECISION NOT NULL,
    at         BIGINT NOT NULL
);

-- Tamper-evident: UPDATE and DELETE are refused by the triggers below, and each row's
-- hash covers the previous row's hash (see agentstore::audit). Writers append under a
-- transaction-scoped advisory lock, so the chain stays one line with several servers.
CREATE TABLE audit_log (
    seq            BIGINT PRIMARY KEY,
    tenant_id      TEXT COLLATE "C",
    at             BIGINT NOT NULL,
    actor          TEXT COLLATE "C" NOT NULL,
    action         TEXT COLLATE "C" NOT NULL,
    resource_type  TEXT COLLATE "C" NOT NULL,
    resource_id    TEXT COLLATE "C" NOT NULL,
    old_values     TEXT COLLATE "C",
    new_values     TEXT COLLATE "C",
    context        TEXT COLLATE "C" NOT NULL DEFAULT '{}',
    prev_hash      TEXT COLLATE "C" NOT NULL,
    hash           TEXT COLLATE "C" NOT NULL
);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION agentstore_refuse('the audit log is append-only');
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION agentstore_refuse('the audit log is append-only');

CREATE TABLE kv_entries (
    rid         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   TEXT COLLATE "C" NOT NULL REFERENCES tenants(id),
    key         TEXT COLLATE "C" NOT NULL,
    value       TEXT COLLATE "C" NOT NULL,
    expires_at  BIGINT,
    version     BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (tenant_id, key)
);

-- A released lock keeps its row so the next acquisition's token is still larger.
CREATE TABLE locks (
    rid          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    TEXT COLLATE "C" NOT NULL REFERENCES tenants(id),
    name         TEXT COLLATE "C" NOT NULL,
    holder       TEXT COLLATE "C",
    token        BIGINT NOT NULL,
    acquired_at  BIGINT,
    expires_at   BIGINT,
    UNIQUE (tenant_id, name)
);

CREATE TABLE api_keys (
    rid         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          TEXT COLLATE "C" NOT NULL UNIQUE,
    tenant_id   TEXT COLLATE "C" NOT NULL REFERENCES tenants(id),
    name        TEXT COLLATE "C" NOT NULL,
    key_hash    TEXT COLLATE "C" NOT NULL UNIQUE,
    prefix      TEXT COLLATE "C" NOT NULL,
    scopes      TEXT COLLATE "C" NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT
);

CREATE TABLE retention_rules (
    tenant_id   TEXT COLLATE "C" NOT NULL REFERENCES tenants(id),
    entity      TEXT COLLATE "C" NOT NULL CHECK (entity IN ('session', 'memory', 'document', 'usage', 'metric')),
    kind        TEXT COLLATE "C" NOT NULL DEFAULT '',
    days        BIGINT NOT NULL CHECK (days > 0),
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, entity, kind)
);

-- Access paths, as in the SQLite backend's 0002_access_indexes.
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
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, created_at);

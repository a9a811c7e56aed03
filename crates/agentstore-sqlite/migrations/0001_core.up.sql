-- agentstore core schema.
--
-- Conventions (see docs/format.md):
-- * every table has an INTEGER rowid `rid`: insertion order for export, and the rowid
--   that FTS5 external-content tables need later;
-- * records are identified by (tenant_id, id); ids of different tenants never collide,
--   and composite foreign keys make a reference to another tenant's record impossible;
-- * times are INTEGER microseconds since the Unix epoch (UTC), names end in `_at`;
-- * JSON is stored as TEXT, booleans as 0/1, namespaces encoded as segments each
--   followed by U+001F so prefix queries are range scans.

CREATE TABLE tenants (
    rid         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE subjects (
    rid                  INTEGER PRIMARY KEY,
    tenant_id            TEXT NOT NULL REFERENCES tenants(id),
    id                   TEXT NOT NULL,
    external_id_hash     TEXT NOT NULL,
    consent              INTEGER NOT NULL DEFAULT 0,
    consent_at           INTEGER,
    age_gated            INTEGER NOT NULL DEFAULT 0,
    parental_consent_at  INTEGER,
    parental_consent_by  TEXT,
    retention_days       INTEGER,
    metadata             TEXT NOT NULL DEFAULT '{}',
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, external_id_hash)
);

CREATE TABLE agents (
    rid             INTEGER PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id),
    id              TEXT NOT NULL,
    namespace       TEXT NOT NULL DEFAULT '',
    name            TEXT NOT NULL,
    agent_type      TEXT,
    model_provider  TEXT,
    model_name      TEXT,
    capabilities    TEXT NOT NULL DEFAULT '{}',
    tags            TEXT NOT NULL DEFAULT '[]',
    active          INTEGER NOT NULL DEFAULT 1,
    experimental    INTEGER NOT NULL DEFAULT 0,
    metadata        TEXT NOT NULL DEFAULT '{}',
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, name)
);

CREATE TABLE sessions (
    rid          INTEGER PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    id           TEXT NOT NULL,
    namespace    TEXT NOT NULL DEFAULT '',
    kind         TEXT NOT NULL,
    status       TEXT NOT NULL,
    title        TEXT,
    domain       TEXT,
    task_type    TEXT,
    subject_id   TEXT,
    agent_id     TEXT,
    parent_id    TEXT,
    started_at   INTEGER NOT NULL,
    ended_at     INTEGER,
    success      INTEGER,
    reward       REAL,
    reflection   TEXT,
    priority     INTEGER NOT NULL DEFAULT 0,
    metadata     TEXT NOT NULL DEFAULT '{}',
    expires_at   INTEGER,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, subject_id) REFERENCES subjects(tenant_id, id),
    FOREIGN KEY (tenant_id, agent_id) REFERENCES agents(tenant_id, id),
    FOREIGN KEY (tenant_id, parent_id) REFERENCES sessions(tenant_id, id)
);

-- Append-only: the trigger below refuses UPDATE; rows leave only with their session.
CREATE TABLE events (
    rid          INTEGER PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    id           TEXT NOT NULL,
    session_id   TEXT NOT NULL,
    seq          INTEGER NOT NULL CHECK (seq >= 1),
    kind         TEXT NOT NULL,
    role         TEXT,
    content      TEXT,
    tool_name    TEXT,
    parameters   TEXT,
    result       TEXT,
    success      INTEGER,
    duration_ms  INTEGER,
    tokens       INTEGER,
    cost         REAL,
    metadata     TEXT NOT NULL DEFAULT '{}',
    created_at   INTEGER NOT NULL,
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, session_id, seq),
    FOREIGN KEY (tenant_id, session_id) REFERENCES sessions(tenant_id, id) ON DELETE CASCADE
);

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;

CREATE TABLE memories (
    rid               INTEGER PRIMARY KEY,
    tenant_id         TEXT NOT NULL REFERENCES tenants(id),
    id                TEXT NOT NULL,
    namespace         TEXT NOT NULL DEFAULT '',
    kind              TEXT NOT NULL,
    key               TEXT,
    content           TEXT NOT NULL,
    summary           TEXT,
    tier              TEXT NOT NULL,
    importance        REAL NOT NULL,
    confidence        REAL NOT NULL,
    success_rate      REAL,
    pinned            INTEGER NOT NULL DEFAULT 0,
    priority          INTEGER NOT NULL DEFAULT 0,
    topic             TEXT,
    domain            TEXT,
    tags              TEXT NOT NULL DEFAULT '[]',
    source_sessions   TEXT NOT NULL DEFAULT '[]',
    source_events     TEXT NOT NULL DEFAULT '[]',
    subject_id        TEXT,
    agent_id          TEXT,
    access_count      INTEGER NOT NULL DEFAULT 0,
    last_accessed_at  INTEGER,
    token_count       INTEGER NOT NULL DEFAULT 0,
    content_hash      TEXT NOT NULL,
    valid_from        INTEGER NOT NULL,
    valid_to          INTEGER,
    superseded_by     TEXT,
    expires_at        INTEGER,
    metadata          TEXT NOT NULL DEFAULT '{}',
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, subject_id) REFERENCES subjects(tenant_id, id),
    FOREIGN KEY (tenant_id, agent_id) REFERENCES agents(tenant_id, id)
);

-- One current version per key: superseded versions have valid_to set.
CREATE UNIQUE INDEX memories_current_key
    ON memories (tenant_id, namespace, key) WHERE key IS NOT NULL AND valid_to IS NULL;

CREATE TABLE documents (
    rid            INTEGER PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants(id),
    id             TEXT NOT NULL,
    namespace      TEXT NOT NULL DEFAULT '',
    title          TEXT,
    doc_type       TEXT NOT NULL,
    source_path    TEXT,
    source_url     TEXT,
    content_hash   TEXT NOT NULL,
    word_count     INTEGER NOT NULL,
    content        TEXT NOT NULL,
    subject_id     TEXT,
    chunk_size     INTEGER NOT NULL,
    chunk_overlap  INTEGER NOT NULL,
    metadata       TEXT NOT NULL DEFAULT '{}',
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, subject_id) REFERENCES subjects(tenant_id, id)
);

CREATE TABLE chunks (
    rid              INTEGER PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    id               TEXT NOT NULL,
    document_id      TEXT NOT NULL,
    idx              INTEGER NOT NULL,
    content          TEXT NOT NULL,
    content_hash     TEXT NOT NULL,
    start            INTEGER NOT NULL,
    "end"            INTEGER NOT NULL,
    word_count       INTEGER NOT NULL,
    token_count      INTEGER NOT NULL,
    query_count      INTEGER NOT NULL DEFAULT 0,
    last_queried_at  INTEGER,
    created_at       INTEGER NOT NULL,
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, document_id, idx),
    FOREIGN KEY (tenant_id, document_id) REFERENCES documents(tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE checkpoints (
    rid            INTEGER PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    session_id     TEXT NOT NULL,
    checkpoint_ns  TEXT NOT NULL DEFAULT '',
    id             TEXT NOT NULL,
    parent_id      TEXT,
    state_format   TEXT NOT NULL CHECK (state_format IN ('json', 'bytes')),
    state          BLOB NOT NULL,
    metadata       TEXT NOT NULL DEFAULT '{}',
    created_at     INTEGER NOT NULL,
    UNIQUE (tenant_id, session_id, checkpoint_ns, id),
    FOREIGN KEY (tenant_id, session_id) REFERENCES sessions(tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE checkpoint_writes (
    rid            INTEGER PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    session_id     TEXT NOT NULL,
    checkpoint_ns  TEXT NOT NULL,
    checkpoint_id  TEXT NOT NULL,
    task_id        TEXT NOT NULL,
    idx            INTEGER NOT NULL,
    channel        TEXT NOT NULL,
    value_format   TEXT NOT NULL CHECK (value_format IN ('json', 'bytes')),
    value          BLOB NOT NULL,
    created_at     INTEGER NOT NULL,
    UNIQUE (tenant_id, session_id, checkpoint_ns, checkpoint_id, task_id, idx),
    FOREIGN KEY (tenant_id, session_id, checkpoint_ns, checkpoint_id)
        REFERENCES checkpoints(tenant_id, session_id, checkpoint_ns, id) ON DELETE CASCADE
);

CREATE TABLE usage_records (
    rid             INTEGER PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id),
    id              TEXT NOT NULL,
    session_id      TEXT,
    agent_id        TEXT,
    provider        TEXT NOT NULL,
    model           TEXT NOT NULL,
    operation       TEXT,
    input_tokens    INTEGER NOT NULL DEFAULT 0,
    output_tokens   INTEGER NOT NULL DEFAULT 0,
    estimated_cost  REAL,
    actual_cost     REAL,
    latency_ms      REAL,
    quality_score   REAL,
    success         INTEGER NOT NULL,
    metadata        TEXT NOT NULL DEFAULT '{}',
    created_at      INTEGER NOT NULL,
    UNIQUE (tenant_id, id)
);

-- Labels are canonical JSON (sorted keys), so equal label sets compare equal as text.
CREATE TABLE metric_points (
    rid        INTEGER PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants(id),
    name       TEXT NOT NULL,
    labels     TEXT NOT NULL DEFAULT '{}',
    value      REAL NOT NULL,
    at         INTEGER NOT NULL
);

-- Tamper-evident: UPDATE and DELETE are refused by the triggers below, and each row's
-- hash covers the previous row's hash (see agentstore::audit).
CREATE TABLE audit_log (
    seq            INTEGER PRIMARY KEY,
    tenant_id      TEXT,
    at             INTEGER NOT NULL,
    actor          TEXT NOT NULL,
    action         TEXT NOT NULL,
    resource_type  TEXT NOT NULL,
    resource_id    TEXT NOT NULL,
    old_values     TEXT,
    new_values     TEXT,
    context        TEXT NOT NULL DEFAULT '{}',
    prev_hash      TEXT NOT NULL,
    hash           TEXT NOT NULL
);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

CREATE TABLE kv_entries (
    rid         INTEGER PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    expires_at  INTEGER,
    version     INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (tenant_id, key)
);

-- A released lock keeps its row so the next acquisition's token is still larger.
CREATE TABLE locks (
    rid          INTEGER PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    name         TEXT NOT NULL,
    holder       TEXT,
    token        INTEGER NOT NULL,
    acquired_at  INTEGER,
    expires_at   INTEGER,
    UNIQUE (tenant_id, name)
);

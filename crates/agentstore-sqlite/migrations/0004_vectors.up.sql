-- Vectors of memories, chunks and events, one per record and model.
--
-- The table is the source of truth; the approximate (HNSW) index lives in memory and in
-- snapshots under index/, and is derived from this table: `vector_log` records every
-- insert and delete in the writing transaction (triggers below), and an index snapshot
-- remembers the last log entry it includes. Opening a store replays the log after that
-- entry, so after a crash the index agrees with the table again (and a snapshot that
-- cannot be trusted is rebuilt from the table). See crates/agentstore-sqlite/src/ann.rs.

-- Every vector names its model; a model's dimension and metric are fixed at its first
-- vector, so vectors of different models are never compared.
CREATE TABLE vector_models (
    model       TEXT PRIMARY KEY,
    dimension   INTEGER NOT NULL CHECK (dimension BETWEEN 1 AND 8192),
    metric      TEXT NOT NULL CHECK (metric IN ('cosine', 'dot', 'l2')),
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- AUTOINCREMENT: a vid is never reused, so a log entry names one vector forever, and
-- replaying inserts and deletes needs no ordering between them.
CREATE TABLE vectors (
    vid         INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   TEXT NOT NULL,
    target      TEXT NOT NULL CHECK (target IN ('memory', 'chunk', 'event')),
    record_rid  INTEGER NOT NULL,
    model       TEXT NOT NULL REFERENCES vector_models(model),
    -- little-endian f32 values, dimension × 4 bytes
    vector      BLOB NOT NULL,
    UNIQUE (target, record_rid, model)
);
CREATE INDEX vectors_model ON vectors (model, tenant_id, target);

CREATE TRIGGER vectors_no_update BEFORE UPDATE ON vectors
BEGIN
    SELECT RAISE(ABORT, 'vectors are replaced, not updated');
END;

CREATE TABLE vector_log (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    vid    INTEGER NOT NULL,
    model  TEXT NOT NULL,
    op     INTEGER NOT NULL CHECK (op IN (0, 1))  -- 1 insert, 0 delete
);

-- Log entries at or below `truncated_through` have been removed: an index snapshot older
-- than that cannot be brought up to date from the log and is rebuilt from `vectors`.
-- `epoch` is new every time this table is created: a snapshot written for another
-- incarnation of the log (before a migrate down and up) is never replayed onto this one.
CREATE TABLE vector_log_state (
    id                 INTEGER PRIMARY KEY CHECK (id = 1),
    truncated_through  INTEGER NOT NULL,
    epoch              TEXT NOT NULL
);
INSERT INTO vector_log_state (id, truncated_through, epoch)
VALUES (1, 0, lower(hex(randomblob(16))));

CREATE TRIGGER vectors_log_insert AFTER INSERT ON vectors
BEGIN
    INSERT INTO vector_log (vid, model, op) VALUES (new.vid, new.model, 1);
END;

CREATE TRIGGER vectors_log_delete AFTER DELETE ON vectors
BEGIN
    INSERT INTO vector_log (vid, model, op) VALUES (old.vid, old.model, 0);
END;

-- A record's vectors leave with it, in the same transaction (also when a session or a
-- document takes its events or chunks with it through ON DELETE CASCADE).
CREATE TRIGGER memories_vectors_delete AFTER DELETE ON memories
BEGIN
    DELETE FROM vectors WHERE target = 'memory' AND record_rid = old.rid;
END;

CREATE TRIGGER chunks_vectors_delete AFTER DELETE ON chunks
BEGIN
    DELETE FROM vectors WHERE target = 'chunk' AND record_rid = old.rid;
END;

CREATE TRIGGER events_vectors_delete AFTER DELETE ON events
BEGIN
    DELETE FROM vectors WHERE target = 'event' AND record_rid = old.rid;
END;

-- Vectors of memories, chunks and events, one per record and model, in pgvector columns.
--
-- Every vector names its model; a model's dimension and metric are fixed when it is
-- declared. pgvector can only index a column of one dimension, so the column is the
-- untyped `vector` and declaring a model creates a partial HNSW index for it on the
-- expression `embedding::vector(D)` (see src/vectors.rs); queries of that model use
-- the same expression and predicate, so the planner picks that index.

CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE vector_models (
    model       TEXT COLLATE "C" PRIMARY KEY,
    dimension   BIGINT NOT NULL CHECK (dimension BETWEEN 1 AND 8192),
    metric      TEXT COLLATE "C" NOT NULL CHECK (metric IN ('cosine', 'dot', 'l2')),
    created_at  BIGINT NOT NULL
);

CREATE TABLE vectors (
    vid         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   TEXT COLLATE "C" NOT NULL,
    target      TEXT COLLATE "C" NOT NULL CHECK (target IN ('memory', 'chunk', 'event')),
    record_rid  BIGINT NOT NULL,
    model       TEXT COLLATE "C" NOT NULL REFERENCES vector_models(model),
    embedding   vector NOT NULL,
    UNIQUE (target, record_rid, model)
);
CREATE INDEX vectors_model ON vectors (model, tenant_id, target);

-- A record's vectors leave with it, in the same transaction (also when a session or a
-- document takes its events or chunks with it through ON DELETE CASCADE).
CREATE FUNCTION agentstore_drop_vectors() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM vectors WHERE target = TG_ARGV[0] AND record_rid = OLD.rid;
    RETURN OLD;
END $$;

CREATE TRIGGER memories_vectors_delete AFTER DELETE ON memories
    FOR EACH ROW EXECUTE FUNCTION agentstore_drop_vectors('memory');
CREATE TRIGGER chunks_vectors_delete AFTER DELETE ON chunks
    FOR EACH ROW EXECUTE FUNCTION agentstore_drop_vectors('chunk');
CREATE TRIGGER events_vectors_delete AFTER DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION agentstore_drop_vectors('event');

-- The per-model HNSW indexes go with the table. The `vector` extension stays: other
-- schemas of the database may use it.
DROP TRIGGER events_vectors_delete ON events;
DROP TRIGGER chunks_vectors_delete ON chunks;
DROP TRIGGER memories_vectors_delete ON memories;
DROP FUNCTION agentstore_drop_vectors();
DROP TABLE vectors, vector_models;

-- Field encryption (crates/agentstore-sqlite/src/keyring.rs).
--
-- A subject's personal fields may now be stored sealed (a BLOB under the subject's data
-- key), so the full-text indexes can no longer read their text from the record tables
-- as the external-content tables of migration 3 did. They become contentless tables
-- with contentless_delete: the index is fed the opened text by the triggers
-- (`as_index`, an application function that decrypts, and returns NULL for a strict
-- subject so nothing of its text enters the index), and a row leaves the index by its
-- rowid alone. That also means a subject whose data key was destroyed can still be
-- deleted from a restored copy, where its text can no longer be decrypted.
--
-- The tokenizer and the indexed columns are those of migration 3.

ALTER TABLE subjects ADD COLUMN strict INTEGER NOT NULL DEFAULT 0;

DROP TRIGGER memories_fts_update;
DROP TRIGGER memories_fts_delete;
DROP TRIGGER memories_fts_insert;
DROP TABLE memories_fts;
DROP TRIGGER chunks_fts_update;
DROP TRIGGER chunks_fts_delete;
DROP TRIGGER chunks_fts_insert;
DROP TABLE chunks_fts;
DROP TRIGGER events_fts_delete;
DROP TABLE events_fts;

CREATE VIRTUAL TABLE memories_fts USING fts5(
    content, summary, topic, tags,
    content = '', contentless_delete = 1,
    tokenize = 'porter unicode61 remove_diacritics 2'
);

-- topic and tags stay clear in the record, but a strict subject keeps them out of the
-- index too: as_index(x, content) is NULL when content is sealed under a strict key.
CREATE TRIGGER memories_fts_insert AFTER INSERT ON memories
BEGIN
    INSERT INTO memories_fts (rowid, content, summary, topic, tags)
    VALUES (new.rid, as_index(new.content), as_index(new.summary),
            as_index(new.topic, new.content), as_index(new.tags, new.content));
END;

CREATE TRIGGER memories_fts_delete AFTER DELETE ON memories
BEGIN
    DELETE FROM memories_fts WHERE rowid = old.rid;
END;

CREATE TRIGGER memories_fts_update AFTER UPDATE OF content, summary, topic, tags ON memories
BEGIN
    DELETE FROM memories_fts WHERE rowid = old.rid;
    INSERT INTO memories_fts (rowid, content, summary, topic, tags)
    VALUES (new.rid, as_index(new.content), as_index(new.summary),
            as_index(new.topic, new.content), as_index(new.tags, new.content));
END;

CREATE VIRTUAL TABLE chunks_fts USING fts5(
    content,
    content = '', contentless_delete = 1,
    tokenize = 'porter unicode61 remove_diacritics 2'
);

CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks
BEGIN
    INSERT INTO chunks_fts (rowid, content) VALUES (new.rid, as_index(new.content));
END;

CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks
BEGIN
    DELETE FROM chunks_fts WHERE rowid = old.rid;
END;

CREATE TRIGGER chunks_fts_update AFTER UPDATE OF content ON chunks
BEGIN
    DELETE FROM chunks_fts WHERE rowid = old.rid;
    INSERT INTO chunks_fts (rowid, content) VALUES (new.rid, as_index(new.content));
END;

-- Events are still indexed in bulk before a search (fts_progress, migration 3).
CREATE VIRTUAL TABLE events_fts USING fts5(
    content, tool_name,
    content = '', contentless_delete = 1,
    tokenize = 'porter unicode61 remove_diacritics 2'
);

CREATE TRIGGER events_fts_delete AFTER DELETE ON events
BEGIN
    DELETE FROM events_fts
    WHERE rowid = old.rid
      AND old.rid <= (SELECT indexed_rid FROM fts_progress WHERE name = 'events');
    UPDATE fts_progress
    SET indexed_rid = MIN(indexed_rid, COALESCE((SELECT MAX(rid) FROM events), 0))
    WHERE name = 'events';
END;

INSERT INTO memories_fts (rowid, content, summary, topic, tags)
SELECT rid, as_index(content), as_index(summary), as_index(topic, content),
       as_index(tags, content)
FROM memories;
INSERT INTO chunks_fts (rowid, content) SELECT rid, as_index(content) FROM chunks;
INSERT INTO events_fts (rowid, content, tool_name)
SELECT rid, as_index(content), as_index(tool_name, content) FROM events
WHERE rid <= (SELECT indexed_rid FROM fts_progress WHERE name = 'events');

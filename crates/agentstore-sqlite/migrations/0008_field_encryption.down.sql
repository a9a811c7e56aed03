-- Back to migration 3's external-content tables. They read the text from the record
-- tables, so rows sealed under a subject's key are indexed as their ciphertext (useless
-- but harmless): go down only on a store that never had a master key.
DROP TRIGGER events_fts_delete;
DROP TABLE events_fts;
DROP TRIGGER chunks_fts_update;
DROP TRIGGER chunks_fts_delete;
DROP TRIGGER chunks_fts_insert;
DROP TABLE chunks_fts;
DROP TRIGGER memories_fts_update;
DROP TRIGGER memories_fts_delete;
DROP TRIGGER memories_fts_insert;
DROP TABLE memories_fts;

CREATE VIRTUAL TABLE memories_fts USING fts5(
    content, summary, topic, tags,
    content = 'memories', content_rowid = 'rid',
    tokenize = 'porter unicode61 remove_diacritics 2'
);

CREATE TRIGGER memories_fts_insert AFTER INSERT ON memories
BEGIN
    INSERT INTO memories_fts (rowid, content, summary, topic, tags)
    VALUES (new.rid, new.content, new.summary, new.topic, new.tags);
END;

CREATE TRIGGER memories_fts_delete AFTER DELETE ON memories
BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, content, summary, topic, tags)
    VALUES ('delete', old.rid, old.content, old.summary, old.topic, old.tags);
END;

CREATE TRIGGER memories_fts_update AFTER UPDATE OF content, summary, topic, tags ON memories
BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, content, summary, topic, tags)
    VALUES ('delete', old.rid, old.content, old.summary, old.topic, old.tags);
    INSERT INTO memories_fts (rowid, content, summary, topic, tags)
    VALUES (new.rid, new.content, new.summary, new.topic, new.tags);
END;

CREATE VIRTUAL TABLE chunks_fts USING fts5(
    content,
    content = 'chunks', content_rowid = 'rid',
    tokenize = 'porter unicode61 remove_diacritics 2'
);

CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks
BEGIN
    INSERT INTO chunks_fts (rowid, content) VALUES (new.rid, new.content);
END;

CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks
BEGIN
    INSERT INTO chunks_fts (chunks_fts, rowid, content) VALUES ('delete', old.rid, old.content);
END;

CREATE TRIGGER chunks_fts_update AFTER UPDATE OF content ON chunks
BEGIN
    INSERT INTO chunks_fts (chunks_fts, rowid, content) VALUES ('delete', old.rid, old.content);
    INSERT INTO chunks_fts (rowid, content) VALUES (new.rid, new.content);
END;

CREATE VIRTUAL TABLE events_fts USING fts5(
    content, tool_name,
    content = 'events', content_rowid = 'rid',
    tokenize = 'porter unicode61 remove_diacritics 2'
);

CREATE TRIGGER events_fts_delete AFTER DELETE ON events
BEGIN
    INSERT INTO events_fts (events_fts, rowid, content, tool_name)
    SELECT 'delete', old.rid, old.content, old.tool_name
    WHERE old.rid <= (SELECT indexed_rid FROM fts_progress WHERE name = 'events');
    UPDATE fts_progress
    SET indexed_rid = MIN(indexed_rid, COALESCE((SELECT MAX(rid) FROM events), 0))
    WHERE name = 'events';
END;

INSERT INTO memories_fts (memories_fts) VALUES ('rebuild');
INSERT INTO chunks_fts (chunks_fts) VALUES ('rebuild');
-- The external-content rebuild indexes every event; the mark follows.
INSERT INTO events_fts (events_fts) VALUES ('rebuild');
UPDATE fts_progress SET indexed_rid = COALESCE((SELECT MAX(rid) FROM events), 0)
WHERE name = 'events';

ALTER TABLE subjects DROP COLUMN strict;

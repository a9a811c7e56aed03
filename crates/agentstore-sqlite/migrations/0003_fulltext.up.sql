-- Full-text (BM25) indexes over the searchable text of memories, chunks and events.
--
-- External-content FTS5 tables: the text lives once, in the record tables; the index
-- refers to records by their `rid`. Memories and chunks are kept in step by the triggers
-- below, inside the writing transaction; events are indexed in bulk just before a search
-- (see fts_progress). Either way a record committed before a search starts is found and
-- a deleted one never matches. Tokenizer: unicode61 (Unicode letters and digits form words, case
-- folded, diacritics removed so "café" matches "cafe") under porter (English stemming,
-- so "running" matches "runs"). unicode61 does not segment scripts written without
-- spaces: a run of CJK characters is one token (docs/search.md).
--
-- The indexes hold no tenant column: a query joins back to the record table and filters
-- there (crates/agentstore-sqlite/src/search.rs).

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

-- Only when an indexed column is written: closing a version (valid_to) and counting
-- reads (access_count) leave the index alone.
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

-- Events are indexed after the fact, not by an insert trigger: indexing in the append
-- transaction cut batched appends from 70% to 11% of a bare insert loop (FTS5 costs
-- 5-27 us per event; bench/README.md). Instead `fts_progress` records the highest event
-- rid in the index, and the backend indexes everything above it in one bulk insert
-- before a search that includes events (and in maintenance), in the same transaction as
-- the new mark, so the index never disagrees with the mark after a crash. A search
-- therefore always sees every event committed before it started.
CREATE VIRTUAL TABLE events_fts USING fts5(
    content, tool_name,
    content = 'events', content_rowid = 'rid',
    tokenize = 'porter unicode61 remove_diacritics 2'
);

CREATE TABLE fts_progress (
    name         TEXT PRIMARY KEY,
    indexed_rid  INTEGER NOT NULL
);

-- Events leave only with their session. An indexed event leaves the index with it; one
-- not yet indexed has nothing to remove. SQLite may hand a deleted maximum rid to the
-- next insert, so the mark is lowered to the highest remaining rid: every row at or
-- below it is still indexed, and a reused rid lands above it and gets indexed.
CREATE TRIGGER events_fts_delete AFTER DELETE ON events
BEGIN
    INSERT INTO events_fts (events_fts, rowid, content, tool_name)
    SELECT 'delete', old.rid, old.content, old.tool_name
    WHERE old.rid <= (SELECT indexed_rid FROM fts_progress WHERE name = 'events');
    UPDATE fts_progress
    SET indexed_rid = MIN(indexed_rid, COALESCE((SELECT MAX(rid) FROM events), 0))
    WHERE name = 'events';
END;

-- Index the records written before this migration.
INSERT INTO memories_fts (memories_fts) VALUES ('rebuild');
INSERT INTO chunks_fts (chunks_fts) VALUES ('rebuild');
INSERT INTO events_fts (events_fts) VALUES ('rebuild');
INSERT INTO fts_progress (name, indexed_rid)
VALUES ('events', COALESCE((SELECT MAX(rid) FROM events), 0));

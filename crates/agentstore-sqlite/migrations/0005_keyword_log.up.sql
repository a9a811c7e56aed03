-- Change log for the in-memory keyword index of large stores
-- (crates/agentstore-sqlite/src/keyword_index.rs).
--
-- That index finds new records by their rid: a row with a rid above the index's mark for
-- its table is new. What a rid scan cannot see, a deleted row or rewritten text, is
-- recorded here by triggers, in the writing transaction; inserts write nothing here, so
-- appends pay no extra cost. An entry only names a record: the index reads the record's
-- current row (or finds it gone) and re-indexes it, so applying an entry twice is
-- harmless.
--
-- SQLite gives a new row the highest rid + 1, so after the highest rows are deleted a
-- new row can get a rid at or below an index's mark. A delete therefore also records
-- `floor`, the highest rid left in the table: an index applying the entry lowers its mark
-- to it and so rescans every rid that may have been handed out again.

CREATE TABLE keyword_log (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    target  TEXT NOT NULL CHECK (target IN ('memory', 'chunk', 'event')),
    rid     INTEGER NOT NULL,
    floor   INTEGER  -- deletes: the table's highest remaining rid; NULL for text rewrites
);

-- As vector_log_state (migration 0004): entries at or below `truncated_through` are gone,
-- so an index older than that is rebuilt; `epoch` names this incarnation of the log.
CREATE TABLE keyword_log_state (
    id                 INTEGER PRIMARY KEY CHECK (id = 1),
    truncated_through  INTEGER NOT NULL,
    epoch              TEXT NOT NULL
);
INSERT INTO keyword_log_state (id, truncated_through, epoch)
VALUES (1, 0, lower(hex(randomblob(16))));

CREATE TRIGGER memories_keyword_delete AFTER DELETE ON memories
BEGIN
    INSERT INTO keyword_log (target, rid, floor)
    VALUES ('memory', old.rid, (SELECT COALESCE(MAX(rid), 0) FROM memories));
END;

CREATE TRIGGER memories_keyword_update AFTER UPDATE OF content, summary, topic, tags ON memories
BEGIN
    INSERT INTO keyword_log (target, rid) VALUES ('memory', old.rid);
END;

CREATE TRIGGER chunks_keyword_delete AFTER DELETE ON chunks
BEGIN
    INSERT INTO keyword_log (target, rid, floor)
    VALUES ('chunk', old.rid, (SELECT COALESCE(MAX(rid), 0) FROM chunks));
END;

CREATE TRIGGER chunks_keyword_update AFTER UPDATE OF content ON chunks
BEGIN
    INSERT INTO keyword_log (target, rid) VALUES ('chunk', old.rid);
END;

CREATE TRIGGER events_keyword_delete AFTER DELETE ON events
BEGIN
    INSERT INTO keyword_log (target, rid, floor)
    VALUES ('event', old.rid, (SELECT COALESCE(MAX(rid), 0) FROM events));
END;

CREATE TRIGGER events_keyword_update AFTER UPDATE OF content, tool_name ON events
BEGIN
    INSERT INTO keyword_log (target, rid) VALUES ('event', old.rid);
END;

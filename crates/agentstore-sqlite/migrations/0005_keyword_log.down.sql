DROP TRIGGER events_keyword_update;
DROP TRIGGER events_keyword_delete;
DROP TRIGGER chunks_keyword_update;
DROP TRIGGER chunks_keyword_delete;
DROP TRIGGER memories_keyword_update;
DROP TRIGGER memories_keyword_delete;
DROP TABLE keyword_log_state;
DROP TABLE keyword_log;

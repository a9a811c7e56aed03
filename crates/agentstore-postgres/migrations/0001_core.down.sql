DROP TABLE retention_rules, api_keys, locks, kv_entries, audit_log, metric_points,
    usage_records, checkpoint_writes, checkpoints, chunks, documents, memories, events,
    sessions, agents, subjects, tenants, store_meta;
DROP FUNCTION agentstore_refuse();
-- The unaccent extension stays: other schemas of the database may use it.
DROP TEXT SEARCH CONFIGURATION agentstore_english;

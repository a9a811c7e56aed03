-- Retention rules: how many days a tenant keeps records of one entity (and kind). The
-- sweep (maintenance, and the server's sweeper) removes records whose last change is
-- older; `kind` '' is every kind of that entity, and the shortest matching rule wins. A
-- subject's `retention_days` applies to its records on top of these.
CREATE TABLE retention_rules (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    entity      TEXT NOT NULL CHECK (entity IN ('session', 'memory', 'document', 'usage', 'metric')),
    kind        TEXT NOT NULL DEFAULT '',
    days        INTEGER NOT NULL CHECK (days > 0),
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, entity, kind)
) WITHOUT ROWID;

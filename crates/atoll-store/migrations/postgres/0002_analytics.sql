-- Analytics: per-app settings, the event registry and saved funnels.
-- The events themselves live in the event store (WAL + Parquet), not here.
CREATE TABLE analytics_settings (
    app_id TEXT PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
    reject_unregistered BIGINT NOT NULL DEFAULT 0,
    retention_days BIGINT NOT NULL DEFAULT 365,
    updated_at BIGINT NOT NULL
);

CREATE TABLE analytics_events (
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    event_id TEXT NOT NULL,
    display_name TEXT NOT NULL,
    description TEXT NOT NULL,
    attributes TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (app_id, event_id)
);

CREATE TABLE analytics_funnels (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    definition TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (app_id, name)
);

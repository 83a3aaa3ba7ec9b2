-- Push: templates, vendor credentials (sealed), settings, tasks, messages (one
-- per target, rendered), deliveries (one per message and device: the work
-- queue and the per-device status) and daily counters.

CREATE TABLE push_templates (
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    url TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (app_id, name)
);

-- A vendor channel of an app. `sealed` is the credentials JSON encrypted with
-- the server's secrets key; `summary` holds the non-secret identifiers.
CREATE TABLE push_channels (
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    channel TEXT NOT NULL,
    sealed TEXT NOT NULL,
    summary TEXT NOT NULL,
    rate_per_sec INTEGER NOT NULL,
    concurrency INTEGER NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (app_id, channel)
);

-- Per-app settings (PushSettings as JSON; the receipt secret sealed apart).
CREATE TABLE push_settings (
    app_id TEXT PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
    settings TEXT NOT NULL,
    receipt_secret TEXT,
    updated_at BIGINT NOT NULL
);

-- A send. `spec` is what the messages share and, for a broadcast, the
-- audience; `expand_after` is the last device id a broadcast has expanded
-- (its deliveries are inserted in the same transaction, so a restart resumes
-- exactly there). A recurring task is a parent that makes child tasks at
-- `next_run`.
CREATE TABLE push_tasks (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    spec TEXT NOT NULL,
    parent_id TEXT,
    created_at BIGINT NOT NULL,
    send_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    next_run BIGINT,
    expand_after TEXT,
    updated_at BIGINT NOT NULL
);
CREATE INDEX push_tasks_app ON push_tasks (app_id, created_at);
CREATE INDEX push_tasks_state ON push_tasks (state, send_at);

-- One message per target, rendered (`content`: title, body, style, click,
-- extras, collapse key, silent, priority, vendor options as JSON).
CREATE TABLE push_messages (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    task_id TEXT NOT NULL REFERENCES push_tasks(id) ON DELETE CASCADE,
    msg_key TEXT,
    target_type TEXT NOT NULL,
    target TEXT NOT NULL,
    content TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
-- Business ids are unique per app (NULLs, messages without one, are distinct).
CREATE UNIQUE INDEX push_messages_key ON push_messages (app_id, msg_key);
CREATE INDEX push_messages_task ON push_messages (task_id);

-- One delivery of a message to a device. `state`: pending (due at `due_at`),
-- sending (claimed; `due_at` is the lease end), waiting (for the device to
-- come online), sent, arrived, opened, ignored, failed, capped, expired,
-- revoked, collapsed. `channel` is the channel used or planned (`atoll` for
-- Atoll's own connection), `token` the vendor token chosen at expansion.
CREATE TABLE push_deliveries (
    msg_id TEXT NOT NULL REFERENCES push_messages(id) ON DELETE CASCADE,
    device_id TEXT NOT NULL,
    app_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    platform TEXT NOT NULL,
    state TEXT NOT NULL,
    channel TEXT NOT NULL,
    token TEXT,
    collapse_key TEXT,
    notify INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    due_at BIGINT NOT NULL,
    reason TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    sent_at BIGINT,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (msg_id, device_id)
);
CREATE INDEX push_deliveries_due ON push_deliveries (state, due_at);
CREATE INDEX push_deliveries_device ON push_deliveries (app_id, device_id, state);
CREATE INDEX push_deliveries_task ON push_deliveries (task_id, state, channel);
CREATE INDEX push_deliveries_sent ON push_deliveries (app_id, device_id, sent_at);

-- Daily counters (the core indexes), by the UTC day of the event.
CREATE TABLE push_stats (
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    day BIGINT NOT NULL,
    platform TEXT NOT NULL,
    channel TEXT NOT NULL,
    kind TEXT NOT NULL,
    targeted BIGINT NOT NULL,
    sent BIGINT NOT NULL,
    arrived BIGINT NOT NULL,
    opened BIGINT NOT NULL,
    ignored BIGINT NOT NULL,
    failed BIGINT NOT NULL,
    capped BIGINT NOT NULL,
    expired BIGINT NOT NULL,
    revoked BIGINT NOT NULL,
    PRIMARY KEY (app_id, day, platform, channel, kind)
);

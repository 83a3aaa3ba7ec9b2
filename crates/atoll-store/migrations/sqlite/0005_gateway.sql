-- Gateway: API groups (backends), APIs keyed by operation type, app-wide
-- settings, a revision per app that snapshots compare against, and the
-- workspaces' payload-encryption keys.

-- A backend. `spec` is the group's settings as JSON (ApiGroupSpec): they are
-- read whole into the runtime snapshot, never queried by field.
CREATE TABLE gateway_groups (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (app_id, name)
);

-- An API. `spec` is its settings as JSON (ApiSpec, group by name).
CREATE TABLE gateway_apis (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    operation_type TEXT NOT NULL,
    group_id TEXT NOT NULL REFERENCES gateway_groups(id),
    spec TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (app_id, operation_type)
);
CREATE INDEX gateway_apis_group ON gateway_apis (group_id);

-- App-wide limits (GatewaySettings as JSON).
CREATE TABLE gateway_settings (
    app_id TEXT PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
    spec TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Bumped in the same transaction as every gateway change of the app, so a
-- node's snapshot is rebuilt when (and only when) it is stale.
CREATE TABLE gateway_revisions (
    app_id TEXT PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
    revision BIGINT NOT NULL
);

-- Payload-encryption key pairs, one current key per suite (expires_at NULL)
-- and rotated-out keys that still open envelopes until expires_at.
CREATE TABLE gateway_keys (
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    key_id TEXT NOT NULL,
    suite TEXT NOT NULL,
    key_pair TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    PRIMARY KEY (workspace_id, key_id)
);

-- Platform tables: users, workspaces, members, apps, tokens, sessions, audit, devices.
-- Times are Unix milliseconds. Booleans are 0/1 integers (portable across backends).
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    instance_admin BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

CREATE TABLE workspaces (
    id TEXT PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE members (
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    added_at BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX members_by_user ON members(user_id);

CREATE TABLE apps (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    app_key TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    platforms TEXT NOT NULL,
    secret TEXT NOT NULL,
    previous_secret TEXT,
    previous_secret_until BIGINT,
    secret_rotated_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX apps_by_workspace ON apps(workspace_id);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    last_used_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX api_tokens_by_workspace ON api_tokens(workspace_id);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_by_expiry ON sessions(expires_at);

CREATE TABLE audit_log (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id TEXT,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    object_type TEXT NOT NULL,
    object_id TEXT NOT NULL,
    summary TEXT NOT NULL
);
CREATE INDEX audit_by_workspace ON audit_log(workspace_id, id);

CREATE TABLE devices (
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    device_id TEXT NOT NULL,
    platform TEXT,
    os TEXT,
    os_version TEXT,
    model TEXT,
    app_version TEXT,
    channel TEXT,
    locale TEXT,
    region TEXT,
    network TEXT,
    user_id TEXT,
    bound_at BIGINT,
    first_seen_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    PRIMARY KEY (app_id, device_id)
);
CREATE INDEX devices_by_user ON devices(app_id, user_id);

CREATE TABLE app_users (
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    most_recent_device TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (app_id, user_id)
);

CREATE TABLE device_push_tokens (
    app_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    token TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (app_id, device_id, channel),
    FOREIGN KEY (app_id, device_id) REFERENCES devices(app_id, device_id) ON DELETE CASCADE
);

-- Small key/value table for the store's own bookkeeping (conformance tests, flags).
CREATE TABLE kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Delivery: uploaded id lists for target rules, workspace signing keys,
-- packages, releases, delta patches between package versions, release stats.

-- An uploaded list of device or user ids, replaced as a whole. The ids are
-- kept as one newline-separated text: lists are read whole into memory.
CREATE TABLE target_lists (
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    id_count BIGINT NOT NULL,
    ids TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (app_id, name)
);

-- One Ed25519 key per workspace signs every package manifest.
CREATE TABLE signing_keys (
    workspace_id TEXT PRIMARY KEY REFERENCES workspaces(id) ON DELETE CASCADE,
    key_id TEXT NOT NULL,
    public_key TEXT NOT NULL,
    secret_key TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- One uploaded version of a resource; the file is a content-addressed blob.
CREATE TABLE packages (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    platform TEXT NOT NULL,
    version TEXT NOT NULL,
    for_app_version TEXT NOT NULL, -- '' unless a hotpatch
    file_name TEXT,
    size BIGINT NOT NULL,
    sha256 TEXT,
    store_url TEXT,
    manifest TEXT NOT NULL,
    signature TEXT NOT NULL,
    key_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    UNIQUE (app_id, kind, resource_id, platform, version, for_app_version)
);
CREATE INDEX packages_by_resource ON packages(app_id, kind, resource_id, platform, created_at);

CREATE TABLE releases (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    package_id TEXT NOT NULL REFERENCES packages(id),
    stage TEXT NOT NULL,
    status TEXT NOT NULL,
    percent_millis BIGINT NOT NULL,
    whitelist TEXT,
    rule TEXT,
    app_versions TEXT,
    mode TEXT NOT NULL,
    force_below TEXT,
    notes TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE INDEX releases_by_app ON releases(app_id, updated_at);

-- A patch from one package to a later one of the same resource, made in the
-- background. `state` is pending, ready or failed (with the reason in `error`).
CREATE TABLE delta_patches (
    from_package TEXT NOT NULL REFERENCES packages(id) ON DELETE CASCADE,
    to_package TEXT NOT NULL REFERENCES packages(id) ON DELETE CASCADE,
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    state TEXT NOT NULL,
    sha256 TEXT,
    size BIGINT,
    error TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (from_package, to_package)
);

-- Counters per release, UTC day and the version devices came from.
CREATE TABLE release_stats (
    release_id TEXT NOT NULL REFERENCES releases(id) ON DELETE CASCADE,
    day TEXT NOT NULL,
    from_version TEXT NOT NULL,
    checks BIGINT NOT NULL,
    offered BIGINT NOT NULL,
    downloaded BIGINT NOT NULL,
    installed BIGINT NOT NULL,
    failed BIGINT NOT NULL,
    PRIMARY KEY (release_id, day, from_version)
);

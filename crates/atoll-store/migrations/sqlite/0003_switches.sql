-- Switches (remote config): every publish stores the app's whole set of switches
-- as a new version, with who published it, why, and what changed. The newest
-- version is the one in force; rollback publishes an old document again.
CREATE TABLE switch_versions (
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    version BIGINT NOT NULL,
    published_at BIGINT NOT NULL,
    author TEXT NOT NULL,
    message TEXT NOT NULL,
    document TEXT NOT NULL,
    diff TEXT NOT NULL,
    PRIMARY KEY (app_id, version)
);

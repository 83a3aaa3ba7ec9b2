-- Sync: biz types, the data log per stream, idempotence keys, stream heads,
-- device cursors (sync points) and daily delivery counters.

-- A biz type. `spec` is its settings as JSON (BizTypeSpec).
CREATE TABLE sync_biz_types (
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    spec TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (app_id, id)
);

-- One stream of a biz type (`d:<device>`, `u:<user>` or `g`): the newest
-- sequence number handed out, and the floor below which data was trimmed while
-- still valid (a cursor under it gets an explicit resync).
CREATE TABLE sync_streams (
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    biz_type TEXT NOT NULL,
    stream TEXT NOT NULL,
    head BIGINT NOT NULL,
    floor BIGINT NOT NULL,
    PRIMARY KEY (app_id, biz_type, stream)
);

-- The data, in sequence order per stream. `filter` is the DeliveryFilter as
-- JSON, absent when the datum is for every device of its target.
CREATE TABLE sync_data (
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    biz_type TEXT NOT NULL,
    stream TEXT NOT NULL,
    seq BIGINT NOT NULL,
    msg_id TEXT NOT NULL,
    third_msg_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    filter TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (app_id, biz_type, stream, seq)
);
CREATE INDEX sync_data_expiry ON sync_data (expires_at);

-- Idempotence: one row per accepted order, kept for the biz type's retention
-- even when the datum itself was trimmed, so a repeat is still recognised.
CREATE TABLE sync_keys (
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    biz_type TEXT NOT NULL,
    link_token TEXT NOT NULL,
    third_msg_id TEXT NOT NULL,
    msg_id TEXT NOT NULL,
    stream TEXT NOT NULL,
    seq BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (app_id, biz_type, link_token, third_msg_id)
);
CREATE INDEX sync_keys_age ON sync_keys (created_at);

-- A device's sync point on a stream: everything up to `acked` was processed;
-- `attempts` counts unacknowledged deliveries of the datum after it.
CREATE TABLE sync_cursors (
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    device_id TEXT NOT NULL,
    biz_type TEXT NOT NULL,
    stream TEXT NOT NULL,
    acked BIGINT NOT NULL,
    attempts INTEGER NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (app_id, device_id, biz_type, stream)
);
CREATE INDEX sync_cursors_stream ON sync_cursors (app_id, biz_type, stream);

-- Delivery counters per biz type and UTC day.
CREATE TABLE sync_stats (
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    biz_type TEXT NOT NULL,
    day BIGINT NOT NULL,
    sent BIGINT NOT NULL,
    delivered BIGINT NOT NULL,
    acknowledged BIGINT NOT NULL,
    dropped BIGINT NOT NULL,
    PRIMARY KEY (app_id, biz_type, day)
);

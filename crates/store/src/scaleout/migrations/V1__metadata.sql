-- skymeter's metadata in PostgreSQL (`skymeter server --metadata postgres://…`): everything
-- but points, which live in the TSDB. Times are BIGINT nanoseconds since the epoch, as in
-- the embedded store, so that both keep the same values to the nanosecond.

CREATE TABLE server_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);

-- Batch ids, for dedupe across every server sharing this database.
CREATE TABLE batches (
    id UUID PRIMARY KEY,
    agent_id TEXT NOT NULL,
    task TEXT NOT NULL,
    collected_at BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    resources INTEGER NOT NULL,
    points INTEGER NOT NULL,
    costs INTEGER NOT NULL,
    errors JSONB,
    content_hash BYTEA NOT NULL
);
CREATE INDEX batches_received ON batches (received_at);

-- The series catalog: what identifies each series (its skymeter key), for
-- `GET /api/v1/series` and `/api/v1/points`, with its extent (written by each server every
-- few seconds: see `ScaleOutStore`).
CREATE TABLE series (
    id TEXT PRIMARY KEY,
    metric TEXT NOT NULL,
    unit TEXT NOT NULL,
    stat TEXT NOT NULL,
    prom_name TEXT NOT NULL,
    resource_key TEXT NOT NULL,
    provider TEXT NOT NULL,
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    labels JSONB NOT NULL,
    key JSONB NOT NULL,
    first_ts BIGINT NOT NULL,
    last_ts BIGINT NOT NULL,
    points BIGINT NOT NULL
) WITH (fillfactor = 70);
CREATE INDEX series_metric ON series (metric, id);
CREATE INDEX series_resource ON series (resource_key, id);
-- No index on first_ts, last_ts or points: widening a series' extent, done for every batch,
-- then updates the row in place (a HOT update) without touching an index.
CREATE INDEX series_prom_name ON series (prom_name);

CREATE TABLE resources (
    key TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    rid TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    tags JSONB NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    record JSONB NOT NULL
);
CREATE INDEX resources_name ON resources (name, key);
CREATE INDEX resources_kind ON resources (kind, key);
CREATE INDEX resources_last_seen ON resources (last_seen, key);
CREATE INDEX resources_first_seen ON resources (first_seen, key);
CREATE INDEX resources_par ON resources (provider, account, region);
CREATE INDEX resources_tags ON resources USING GIN (tags jsonb_path_ops);

CREATE TABLE resource_history (
    n BIGSERIAL PRIMARY KEY,
    key TEXT NOT NULL,
    at BIGINT NOT NULL,
    changes JSONB NOT NULL
);
CREATE INDEX resource_history_key ON resource_history (key, at);

-- Cost lines, keyed as in the embedded store: a line whose key is stored replaces it unless
-- the stored one came from a batch collected later.
CREATE TABLE costs (
    n BIGSERIAL PRIMARY KEY,
    provider TEXT NOT NULL,
    provider_name TEXT NOT NULL,
    service TEXT NOT NULL,
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    resource TEXT NOT NULL,
    sku TEXT NOT NULL,
    category TEXT NOT NULL,
    source TEXT NOT NULL,
    currency TEXT NOT NULL,
    start_ns BIGINT NOT NULL,
    end_ns BIGINT NOT NULL,
    billed DOUBLE PRECISION NOT NULL,
    effective DOUBLE PRECISION NOT NULL,
    price_date TEXT,
    collected_at BIGINT NOT NULL,
    record JSONB NOT NULL,
    UNIQUE (source, provider_name, account, region, service, resource, sku, category, start_ns, end_ns, currency)
);
CREATE INDEX costs_start ON costs (start_ns);
CREATE INDEX costs_end ON costs (end_ns);

CREATE TABLE agents (
    id TEXT PRIMARY KEY,
    registration JSONB NOT NULL,
    registered_at BIGINT NOT NULL,
    last_heartbeat BIGINT NOT NULL,
    stats JSONB NOT NULL
);

CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    scopes JSONB NOT NULL,
    created_at BIGINT NOT NULL,
    hash BYTEA NOT NULL
);

-- The outbox: one row per message to send, written in the same transaction as the journey step
-- (or broadcast) that asked for it. `idempotency_key` (run_id:step) is unique: a replayed step
-- can never queue a second message.
CREATE TABLE deliveries (
    id TEXT PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    customer_id TEXT NOT NULL,
    template TEXT NOT NULL,
    channels {json} NOT NULL,
    channel TEXT,
    provider TEXT,
    purpose TEXT NOT NULL,
    data {json} NOT NULL,
    run_id TEXT,
    journey TEXT,
    step TEXT,
    broadcast_id TEXT,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    due_at DOUBLE PRECISION NOT NULL,
    lease_owner TEXT,
    lease_until DOUBLE PRECISION,
    provider_message_id TEXT,
    error TEXT,
    decisions {json} NOT NULL,
    cost DOUBLE PRECISION,
    segments INTEGER,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (due_at) WHERE status IN ('queued', 'deferred');
CREATE INDEX deliveries_customer ON deliveries (customer_id, created_at);
CREATE INDEX deliveries_run ON deliveries (run_id);
CREATE INDEX deliveries_provider_message ON deliveries (provider_message_id);

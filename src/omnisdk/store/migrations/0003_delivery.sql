-- The outbox: one row per message to send, written in the same transaction as the journey step
-- (or broadcast) that asked for it. `idempotency_key` (run_id:step) is unique: a replayed step
-- can never queue a second message. The dispatcher claims due rows with a lease
-- (`lease_owner`, `lease_until`); a row left `sending` after its lease expired was cut off by a
-- crash mid-call and is reconciled by its provider's crash policy.
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
    -- where it went (email, phone, token): a hard bounce drops this identifier from the profile
    address TEXT,
    error TEXT,
    decisions {json} NOT NULL,
    cost DOUBLE PRECISION,
    segments INTEGER,
    -- channels of the waterfall that ended in a permanent error, skipped from then on
    failed_channels {json} NOT NULL DEFAULT '[]',
    -- the waterfall's timing: try the next channel if this one is not delivered within N seconds
    fallback_after DOUBLE PRECISION,
    fallback_due DOUBLE PRECISION,
    -- the delivery whose timed fallback queued this one
    parent_id TEXT,
    sent_at DOUBLE PRECISION,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (due_at) WHERE status IN ('queued', 'deferred');
CREATE INDEX deliveries_sending ON deliveries (lease_until) WHERE status = 'sending';
CREATE INDEX deliveries_fallback ON deliveries (fallback_due) WHERE fallback_due IS NOT NULL;
CREATE INDEX deliveries_customer ON deliveries (customer_id, created_at);
CREATE INDEX deliveries_run ON deliveries (run_id);
CREATE INDEX deliveries_provider_message ON deliveries (provider_message_id);

-- Webhook events already handled, by (provider, event id): providers retry their webhooks.
CREATE TABLE webhook_events (
    provider TEXT NOT NULL,
    event_id TEXT NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (provider, event_id)
);

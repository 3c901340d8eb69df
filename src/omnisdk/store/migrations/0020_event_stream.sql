-- The outbound event stream (store/_events.py): one row per touchpoint recorded and per delivery
-- status change, written in the same transaction as the change. `seq` is given out in commit order
-- (the writer takes a transaction-level lock just before it commits, on PostgreSQL), so a reader
-- that has seen `seq` n never finds a smaller one later: `omni.events(after=cursor)` resumes.
CREATE TABLE events (
    seq {pk},
    kind TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    customer_id TEXT,
    name TEXT NOT NULL,
    channel TEXT,
    data {json} NOT NULL,
    occurred_at DOUBLE PRECISION NOT NULL,
    recorded_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX events_kind ON events (kind, seq);

-- Per configured event webhook endpoint: how far the stream has been taken into its outbox.
CREATE TABLE event_webhook_cursors (
    endpoint TEXT PRIMARY KEY,
    seq {bigint} NOT NULL
);

-- Per endpoint, the events taken but not yet acknowledged; a customer's oldest is sent first and
-- blocks their later ones (in order per customer), other customers' go on.
CREATE TABLE event_webhook_outbox (
    endpoint TEXT NOT NULL,
    seq {bigint} NOT NULL,
    customer_key TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    due_at DOUBLE PRECISION NOT NULL,
    last_status TEXT,
    PRIMARY KEY (endpoint, seq)
);
CREATE INDEX event_webhook_outbox_customer ON event_webhook_outbox (endpoint, customer_key, seq);

-- Trace context (W3C traceparent) of whoever queued a delivery, so the worker's spans join its trace.
ALTER TABLE deliveries ADD COLUMN traceparent TEXT;

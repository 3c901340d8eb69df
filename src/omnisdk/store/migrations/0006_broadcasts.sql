-- Broadcasts: one message to a segment. The row is the whole plan (what, to whom, when) and the
-- progress of queueing it: `after_customer` is the last customer id queued (a keyset cursor over
-- customers.id), committed in the same transaction as that page's deliveries, so a worker that dies
-- mid-broadcast loses nothing and the next one resumes after it. Each delivery carries
-- `broadcast_id` and the idempotency key `broadcast:{id}:{customer_id}`: a page queued twice adds nothing.
CREATE TABLE broadcasts (
    id TEXT PRIMARY KEY,
    name TEXT,
    template TEXT NOT NULL,
    channels {json} NOT NULL,
    purpose TEXT NOT NULL,
    data {json} NOT NULL,
    -- the segment compiled for this store (`?` marks over `customers AS c`), its parameters, and
    -- the positions of "now" among them (bound to `evaluated_at`)
    segment_sql TEXT NOT NULL,
    segment_params {json} NOT NULL,
    segment_now {json} NOT NULL,
    -- 'at': due at send_at; 'local_time': at local_time (on/after local_date) in each customer's
    -- zone; 'best': at each customer's best time within within_seconds of send_at
    timing TEXT NOT NULL,
    send_at DOUBLE PRECISION NOT NULL,
    local_time TEXT,
    local_date TEXT,
    within_seconds DOUBLE PRECISION,
    -- scheduled, enqueueing, enqueued (every recipient queued), cancelled, failed
    status TEXT NOT NULL,
    start_at DOUBLE PRECISION NOT NULL,
    evaluated_at DOUBLE PRECISION,
    audience {bigint},
    after_customer TEXT NOT NULL,
    enqueued {bigint} NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until DOUBLE PRECISION,
    error TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    enqueued_at DOUBLE PRECISION
);
CREATE INDEX broadcasts_due ON broadcasts (start_at) WHERE status IN ('scheduled', 'enqueueing');

-- Progress of a broadcast: its deliveries counted by status.
CREATE INDEX deliveries_broadcast ON deliveries (broadcast_id, status) WHERE broadcast_id IS NOT NULL

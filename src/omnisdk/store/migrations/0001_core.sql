-- Customers, identities, consent ledger, touchpoints and the merge log.
CREATE TABLE customers (
    id TEXT PRIMARY KEY,
    traits {json} NOT NULL,
    timezone TEXT,
    locale TEXT,
    address {json},
    preferred_channels {json} NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    merged_into TEXT
);

CREATE TABLE identities (
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (kind, value)
);
CREATE INDEX identities_customer ON identities (customer_id);

CREATE TABLE consents (
    id {pk},
    customer_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    purpose TEXT NOT NULL,
    granted INTEGER NOT NULL,
    source TEXT NOT NULL,
    recorded_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX consents_customer ON consents (customer_id, channel, purpose, recorded_at);

-- `seq` orders ingestion; `routed` = 0 until the journey runtime has matched the touchpoint
-- against triggers, exit goals and waits (a durable queue without a second table).
CREATE TABLE touchpoints (
    seq {pk},
    id TEXT NOT NULL UNIQUE,
    customer_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    name TEXT NOT NULL,
    properties {json} NOT NULL,
    occurred_at DOUBLE PRECISION NOT NULL,
    recorded_at DOUBLE PRECISION NOT NULL,
    routed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX touchpoints_customer_time ON touchpoints (customer_id, occurred_at);
CREATE INDEX touchpoints_unrouted ON touchpoints (seq) WHERE routed = 0;

CREATE TABLE merges (
    id {pk},
    winner_id TEXT NOT NULL,
    loser_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    merged_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX merges_loser ON merges (loser_id);

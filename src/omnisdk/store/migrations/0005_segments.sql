-- Who is in each watched segment, so entering and leaving can trigger journeys.
CREATE TABLE segment_members (
    segment TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    entered_at DOUBLE PRECISION NOT NULL,
    seen_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (segment, customer_id)
);
CREATE INDEX segment_members_seen ON segment_members (segment, seen_at);

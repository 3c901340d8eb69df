-- The preference ledger: what each customer chose per topic (`*`: every marketing topic) and
-- channel (`all`: every channel), append-only like `consents`; the latest entry wins. `source`
-- says who changed it ("preference-centre", "one-click unsubscribe", "api"), `evidence` what
-- the change rests on (the signed link's request: time, IP, user agent).
CREATE TABLE preferences (
    id {pk},
    customer_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    channel TEXT NOT NULL,
    subscribed INTEGER NOT NULL,
    source TEXT NOT NULL,
    evidence TEXT,
    recorded_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX preferences_customer ON preferences (customer_id, recorded_at);

-- Double opt-in: a marketing grant asked for on a channel configured `[consent.double_opt_in]`
-- waits here until the customer confirms it (the signed link in the confirmation email, or a YES
-- reply to the SMS prompt). Confirmed requests keep their evidence; unconfirmed ones expire.
CREATE TABLE opt_in_requests (
    id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    purpose TEXT NOT NULL,
    source TEXT NOT NULL,
    -- pending, confirmed, expired
    status TEXT NOT NULL,
    requested_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    confirmed_at DOUBLE PRECISION,
    evidence TEXT,
    delivery_id TEXT
);
CREATE INDEX opt_in_requests_customer ON opt_in_requests (customer_id, channel, status);

-- Keys omnisdk generates once per store and every worker shares: the key that signs tracked
-- links and unsubscribe links when the config gives none (webhooks.signing_key).
CREATE TABLE signing_keys (
    name TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
)

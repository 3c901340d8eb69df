-- Verified webhook requests, by (provider, nonce): the nonce is the scheme's own (Mailgun's token)
-- or the digest of the request. The same nonce with another digest is a replay and is refused;
-- rows older than `webhooks.replay_retention_seconds` are pruned.
CREATE TABLE webhook_requests (
    provider TEXT NOT NULL,
    nonce TEXT NOT NULL,
    digest TEXT NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (provider, nonce)
);
CREATE INDEX webhook_requests_received ON webhook_requests (provider, received_at);

-- What a consent change rests on: the provider's message id of the STOP/START/YES reply, the
-- delivery id of a double opt-in prompt answered, the event id of an unsubscribe.
ALTER TABLE consents ADD COLUMN evidence TEXT;

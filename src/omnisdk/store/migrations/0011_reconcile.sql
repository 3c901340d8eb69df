-- What a lookup at the provider needs to settle a delivery whose send outcome is unknown (a
-- dropped connection after the request was written, a read timeout, a crash or cancellation
-- while `sending`): when the call that may have gone out started, the content it carried (kept
-- only for providers that can be asked, `Capabilities.reconcile`), and how often it was looked up.
ALTER TABLE deliveries ADD COLUMN attempted_at DOUBLE PRECISION;
ALTER TABLE deliveries ADD COLUMN sent_content {json};
ALTER TABLE deliveries ADD COLUMN lookups INTEGER NOT NULL DEFAULT 0;

-- The decision log as append-only rows: who decided what about a delivery, when, by which policy
-- and why. Each entry is inserted once and never rewritten (the JSON `deliveries.decisions` column
-- was rewritten whole on every change); `Delivery.decisions` and the skip reasons of the reports
-- read these rows, in `seq` order. The logs stored so far move here, and their JSON is emptied.
CREATE TABLE delivery_decisions (
    seq {pk},
    delivery_id TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    -- who decided: dispatcher, journey, broadcast, app
    actor TEXT NOT NULL,
    -- what was decided: send, skip, defer, sent, retry, failover, fallback, failed, in_doubt, ...
    outcome TEXT NOT NULL,
    channel TEXT,
    -- the policy that decided a skip or defer (consent, quiet_hours, frequency_cap, ...)
    policy TEXT,
    reason TEXT NOT NULL,
    until DOUBLE PRECISION,
    -- every policy looked at for a send decision, as the policies report them
    checks {json}
);
CREATE INDEX delivery_decisions_delivery ON delivery_decisions (delivery_id, seq);
{sqlite}
INSERT INTO delivery_decisions (delivery_id, at, actor, outcome, channel, policy, reason, until, checks)
SELECT d.id,
       CASE WHEN json_type(e.value, '$.at') IN ('integer', 'real') THEN json_extract(e.value, '$.at')
            ELSE d.updated_at END,
       'dispatcher',
       COALESCE(CAST(json_extract(e.value, '$.action') AS TEXT), 'unknown'),
       CAST(json_extract(e.value, '$.channel') AS TEXT),
       NULL,
       COALESCE(CAST(json_extract(e.value, '$.reason') AS TEXT), ''),
       CASE WHEN json_type(e.value, '$.until') IN ('integer', 'real') THEN json_extract(e.value, '$.until') END,
       CASE WHEN json_type(e.value, '$.checks') = 'array' THEN json_extract(e.value, '$.checks') END
FROM deliveries AS d,
     json_each(CASE WHEN json_valid(d.decisions) AND json_type(d.decisions) = 'array' THEN d.decisions
                    ELSE '[]' END) AS e
WHERE e.type = 'object'
ORDER BY d.rowid, e.key;
UPDATE deliveries SET decisions = '[]'
WHERE json_valid(decisions) AND json_type(decisions) = 'array' AND decisions <> '[]';
{end}
{postgresql}
INSERT INTO delivery_decisions (delivery_id, at, actor, outcome, channel, policy, reason, until, checks)
SELECT d.id,
       CASE WHEN jsonb_typeof(e.value -> 'at') = 'number' THEN CAST(e.value ->> 'at' AS DOUBLE PRECISION)
            ELSE d.updated_at END,
       'dispatcher',
       COALESCE(e.value ->> 'action', 'unknown'),
       e.value ->> 'channel',
       NULL,
       COALESCE(e.value ->> 'reason', ''),
       CASE WHEN jsonb_typeof(e.value -> 'until') = 'number' THEN CAST(e.value ->> 'until' AS DOUBLE PRECISION) END,
       CASE WHEN jsonb_typeof(e.value -> 'checks') = 'array' THEN e.value -> 'checks' END
FROM deliveries AS d
CROSS JOIN LATERAL jsonb_array_elements(
    CASE WHEN jsonb_typeof(d.decisions) = 'array' THEN d.decisions ELSE CAST('[]' AS JSONB) END
) WITH ORDINALITY AS e(value, n)
WHERE jsonb_typeof(e.value) = 'object'
ORDER BY d.id, e.n;
UPDATE deliveries SET decisions = CAST('[]' AS JSONB)
WHERE jsonb_typeof(decisions) = 'array' AND decisions <> CAST('[]' AS JSONB);
{end}

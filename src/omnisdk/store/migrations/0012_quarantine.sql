-- Rows that could not be decoded, moved here by the read that found them (`omnisdk quarantine`).
-- `origin` is the table the row came from and `row_key` its primary key (JSON object); `row_values`
-- is every column as it was stored (JSON text, type-tagged where JSON has no spelling: bytes, NaN),
-- so `repair` can put the row back exactly; nothing here is ever deleted except by `drop`.
CREATE TABLE quarantine (
    id {pk},
    origin TEXT NOT NULL,
    row_key TEXT NOT NULL,
    row_values TEXT NOT NULL,
    error_type TEXT NOT NULL,
    error TEXT NOT NULL,
    quarantined_at DOUBLE PRECISION NOT NULL,
    repair_error TEXT
);
CREATE INDEX quarantine_origin ON quarantine (origin, id)

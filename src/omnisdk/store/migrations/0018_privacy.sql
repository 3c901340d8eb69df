-- Erasure requests (`omni.forget`): one row per request, its progress and what it removed.
-- `subject` holds what the erasure needs to go on after a crash (the customer ids and the values to
-- scrub from free text) only while the request is open; it is set to NULL when the request is done,
-- so the finished row says when, by whom and how many rows per table, and nothing about whom.
CREATE TABLE forget_requests (
    id TEXT PRIMARY KEY,
    requested_by TEXT NOT NULL,
    reason TEXT NOT NULL,
    -- erasing, notifying (plugins told, some failed: retried), done
    status TEXT NOT NULL,
    subject {json},
    -- {"table": last key processed} and the tables done
    progress {json} NOT NULL,
    -- {"table": rows deleted or anonymised}
    removed {json} NOT NULL,
    -- {"plugin": "error"} of the last `forget_requested` call that failed, and how often it was tried
    plugin_errors {json} NOT NULL,
    plugin_attempts INTEGER NOT NULL DEFAULT 0,
    due_at DOUBLE PRECISION,
    requested_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    finished_at DOUBLE PRECISION
);
CREATE INDEX forget_requests_open ON forget_requests (due_at) WHERE status <> 'done';

-- What stays of a forgotten customer: a keyed hash (HMAC-SHA256) of each normalised identifier, so
-- an import, identify or consent of the same address later is recognised without storing it.
CREATE TABLE suppressions (
    digest TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    request_id TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);

-- The last pass of each retention rule (`[retention]`): when, and how many rows it removed in all.
CREATE TABLE retention_runs (
    name TEXT PRIMARY KEY,
    last_run_at DOUBLE PRECISION NOT NULL,
    removed {bigint} NOT NULL DEFAULT 0
)

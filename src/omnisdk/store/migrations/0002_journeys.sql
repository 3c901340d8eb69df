-- Journey runs and their step log.
--
-- A run is due when `due_at` <= now. Claiming a run sets `lease_owner` and pushes `due_at` to the
-- end of the lease, so a run whose worker died becomes due again when its lease runs out.
-- `active_key` is the customer id while a run is active (NULL once it ended, and for journeys with
-- reentry "always"): the unique index keeps one active run per customer per journey even when
-- several workers route triggers at once. It is not rewritten by profile merges; the runtime
-- resolves two active runs on a merged profile itself.
CREATE TABLE journey_runs (
    id TEXT PRIMARY KEY,
    journey TEXT NOT NULL,
    version TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    active_key TEXT,
    status TEXT NOT NULL,
    trigger {json},
    trigger_seq {bigint} NOT NULL,
    step TEXT,
    wait_event TEXT,
    due_at DOUBLE PRECISION,
    lease_owner TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    reason TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    ended_at DOUBLE PRECISION
);
CREATE INDEX journey_runs_due ON journey_runs (due_at) WHERE status IN ('running', 'waiting');
CREATE INDEX journey_runs_customer ON journey_runs (customer_id, journey);
-- active_key first: an index led by `journey` would tempt SQLite's planner away from
-- journey_runs_due when claiming (a sort of every run of the journey instead of an index range).
CREATE UNIQUE INDEX journey_runs_one_active ON journey_runs (active_key, journey);

-- One row per step a run executed: the memo replay reads back (`result` wraps the value as "v", so
-- a JSON string survives PostgreSQL's JSONB decoding). (run_id, step) is the primary key,
-- so a step can be recorded once per run, whatever crashes and retries happen.
CREATE TABLE journey_steps (
    run_id TEXT NOT NULL,
    step TEXT NOT NULL,
    kind TEXT NOT NULL,
    args {json} NOT NULL,
    result {json} NOT NULL,
    done INTEGER NOT NULL,
    recorded_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, step)
);

-- Cursors of the runtime's own feeds (the merges it already reconciled).
CREATE TABLE journey_cursors (
    name TEXT PRIMARY KEY,
    position {bigint} NOT NULL
);

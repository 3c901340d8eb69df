-- Who was exposed to which variant of an experiment, once per customer and experiment: the first
-- exposure is the one that counts (later calls, replays and other runs find it and change nothing).
-- `run_id` and `journey` say where it happened (NULL when the app recorded it itself).
CREATE TABLE experiment_exposures (
    experiment TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    variant TEXT NOT NULL,
    run_id TEXT,
    journey TEXT,
    exposed_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (experiment, customer_id)
);
CREATE INDEX experiment_exposures_variant ON experiment_exposures (experiment, variant);

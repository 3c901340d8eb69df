-- Predicted customer value (omnisdk.commerce: BG/NBD + Gamma-Gamma). One row per fit of the models:
-- its parameters, when it was fitted, and how far the purchases were scored with it (`scored_seq`, the
-- last Order Completed touchpoint seen, so the next run rescores only customers who bought since).
CREATE TABLE prediction_models (
    id {pk},
    fitted_at DOUBLE PRECISION NOT NULL,
    params {json} NOT NULL,
    customers INTEGER NOT NULL,
    scored_seq {bigint} NOT NULL,
    scored_at DOUBLE PRECISION NOT NULL
);

-- Each customer's latest prediction: over `horizon_days` from `scored_at` (the end of the purchases it
-- read), with model `model_id`. A merge keeps one row for the winner, marked `stale`: the next run rescores it.
CREATE TABLE predictions (
    customer_id TEXT PRIMARY KEY,
    expected_purchases DOUBLE PRECISION NOT NULL,
    probability_alive DOUBLE PRECISION NOT NULL,
    churn_risk DOUBLE PRECISION NOT NULL,
    expected_order_value DOUBLE PRECISION NOT NULL,
    predicted_clv DOUBLE PRECISION NOT NULL,
    horizon_days DOUBLE PRECISION NOT NULL,
    scored_at DOUBLE PRECISION NOT NULL,
    model_id {bigint} NOT NULL,
    stale INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX predictions_stale ON predictions (customer_id) WHERE stale = 1;
CREATE INDEX predictions_clv ON predictions (predicted_clv);
CREATE INDEX predictions_churn ON predictions (churn_risk);

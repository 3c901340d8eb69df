-- The population prior of send-time optimisation: engagement by local hour of the day, summed over
-- every customer, per channel ("*": purchases, which count for every channel; "": all signals).
-- Computed by one aggregate query and kept here, so workers share it and refresh it once a day.
CREATE TABLE sendtime_prior (
    channel TEXT NOT NULL,
    hour INTEGER NOT NULL,
    weight DOUBLE PRECISION NOT NULL,
    computed_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (channel, hour)
)

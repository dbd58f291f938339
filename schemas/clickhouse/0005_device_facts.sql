-- Per-device contributions (pm-metrics/1 §3 and §8 decompose by device): a run
-- recomputes only the devices it touched, on the days around those it touched,
-- and re-aggregates each touched site-day from the current row of every device
-- (its newest committed run's). visitors and media_reach are counts of devices.

-- Every additive §3 figure of a device on a site and day: its visits (by the day
-- of their first event), the IVT tallies by rule, beside counted_events and play_ms.
ALTER TABLE device_days
    ADD COLUMN pageviews UInt64 DEFAULT 0,
    ADD COLUMN visits UInt64 DEFAULT 0,
    ADD COLUMN engaged_visits UInt64 DEFAULT 0,
    ADD COLUMN engaged_ms UInt64 DEFAULT 0,
    ADD COLUMN media_starts UInt64 DEFAULT 0,
    ADD COLUMN media_completes UInt64 DEFAULT 0,
    ADD COLUMN ivt_events UInt64 DEFAULT 0,
    ADD COLUMN ivt_ua UInt64 DEFAULT 0,
    ADD COLUMN ivt_datacenter UInt64 DEFAULT 0,
    ADD COLUMN ivt_rate UInt64 DEFAULT 0;

-- The same per device and §8 value: the counted events of the device that day
-- with that value, and the visits whose first event has it. A row belongs to the
-- device-day generation of its run (the device_days row of the same run).
CREATE TABLE IF NOT EXISTS device_values
(
    site_id         String,
    day             Date,
    dimension       String,
    value           String,
    device_id       String,
    run_id          String,
    pageviews       UInt64,
    visits          UInt64,
    engaged_visits  UInt64,
    engaged_ms      UInt64,
    media_starts    UInt64,
    media_completes UInt64,
    play_ms         UInt64,
    counted_events  UInt64
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (site_id, day, dimension, value, device_id);

-- §8 per site, day, dimension and value, a generation per site-day like
-- daily_facts (same run, same current_generations), with distinct-count
-- sketches so that months merge from days.
CREATE TABLE IF NOT EXISTS daily_breakdowns
(
    site_id         String,
    day             Date,
    run_id          String,
    dimension       String,
    value           String,
    pageviews       UInt64,
    visits          UInt64,
    engaged_visits  UInt64,
    engaged_ms      UInt64,
    media_starts    UInt64,
    media_completes UInt64,
    play_ms         UInt64,
    visitors        AggregateFunction(uniqCombined, String),
    media_reach     AggregateFunction(uniqCombined, String)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (site_id, day, dimension, value, run_id);

-- Visits are per device now (device_days.visits, device_values.visits); the
-- one-row-per-visit table had no reader.
DROP TABLE IF EXISTS visits;

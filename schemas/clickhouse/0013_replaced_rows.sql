-- Site-day sums by difference (pipelines/generations.py). A run's new generation of
-- a site-day is the previous generation, less the rows of the device-days the run
-- recomputed, plus their new rows: its cost follows the devices recomputed, not the
-- devices stored.

-- Each device-day a run recomputed that had a current row before: the run whose
-- row it replaced.
CREATE TABLE IF NOT EXISTS replaced_device_days
(
    run_id       String,
    site_id      String,
    day          Date,
    device_id    String,
    replaced_run String
)
ENGINE = MergeTree
ORDER BY (run_id, site_id, day, device_id);

-- The distinct-count sketches a run rebuilt from all current rows, because a device
-- it recomputed left them (a sketch takes members, it cannot lose one): a §8 value's
-- (daily_breakdowns), or with dimension and value '' the site-day's own
-- (daily_sketches).
CREATE TABLE IF NOT EXISTS rebuilt_sketches
(
    run_id    String,
    site_id   String,
    day       Date,
    dimension String,
    value     String
)
ENGINE = MergeTree
ORDER BY (run_id, site_id, day, dimension, value);

-- daily_breakdowns sorted by generation before value: a site-day's current rows are
-- one range, so a run reading the previous generation, and a reader the current
-- one, skip the older generations instead of reading their sketches.
CREATE TABLE IF NOT EXISTS daily_breakdowns_by_generation AS daily_breakdowns
ENGINE = MergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (site_id, day, run_id, dimension, value);

INSERT INTO daily_breakdowns_by_generation SELECT * FROM daily_breakdowns;

DROP TABLE daily_breakdowns;

RENAME TABLE daily_breakdowns_by_generation TO daily_breakdowns;

-- The devices of a run's facts scope that had committed device rows before it,
-- within the days it reads (pipelines/incremental.py, `plan_facts`): found once
-- per run by one pass over device_days, then read as one range of this table by
-- the plan's counts, each partition's read of stored events and the replaced rows
-- of the new generation (pipelines/generations.py). Each of the three passed
-- over device_days of the whole read range to find them again; a run of new
-- devices has none, and then none of the three reads stored rows for them.
CREATE TABLE IF NOT EXISTS devices_with_history
(
    run_id    String,
    site_id   String,
    device_id String
)
ENGINE = MergeTree
ORDER BY (run_id, site_id, device_id);

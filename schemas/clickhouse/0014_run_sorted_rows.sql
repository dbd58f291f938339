-- The rows a run reads back sorted by run first: its own events, device_days and
-- device_values rows are one range of each sort key (a run's facts phase reads
-- them, pipelines/incremental.py and pipelines/generations.py), where sorted by
-- site they were spread over every granule of the touched sites. A 100,000-event
-- run into a store of 5,000,000 events read every stored event and every stored
-- device_values row to find its own (bench/incremental_facts.py). Readers by
-- site and day (exports, ranking, recomputation) read the same granules as
-- before: a site's rows are one range within each run's.
CREATE TABLE IF NOT EXISTS events_by_run AS events
ENGINE = MergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (run_id, site_id, device_id, ts, event_id);

INSERT INTO events_by_run SELECT * FROM events;

DROP TABLE events;

RENAME TABLE events_by_run TO events;

CREATE TABLE IF NOT EXISTS device_days_by_run AS device_days
ENGINE = MergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (run_id, site_id, day, device_id);

INSERT INTO device_days_by_run SELECT * FROM device_days;

DROP TABLE device_days;

RENAME TABLE device_days_by_run TO device_days;

CREATE TABLE IF NOT EXISTS device_values_by_run AS device_values
ENGINE = MergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (run_id, site_id, day, dimension, value, device_id);

INSERT INTO device_values_by_run SELECT * FROM device_values;

DROP TABLE device_values;

RENAME TABLE device_values_by_run TO device_values;

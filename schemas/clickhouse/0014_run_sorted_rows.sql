-- The rows a run reads back sorted by run first: its own events, device_days and
-- device_values rows are one range of each sort key (a run's facts phase reads
-- them, pipelines/incremental.py and pipelines/generations.py), where sorted by
-- site they were spread over every granule of the touched sites. A 100,000-event
-- run into a store of 5,000,000 events read every stored event and every stored
-- device_values row to find its own (bench/incremental_facts.py). A reader of
-- a site's events or device rows (recomputation) finds them as one range within
-- each run's; exports and the ranking read the daily_* tables, unchanged here.
--
-- Each table is copied, then swapped in by one RENAME: an interrupted copy is
-- dropped and made again when the migration runs again (never appended to, so
-- no row is stored twice), and the old table is dropped only once the new one
-- holds its name.

DROP TABLE IF EXISTS events_by_run;

CREATE TABLE events_by_run AS events
ENGINE = MergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (run_id, site_id, device_id, ts, event_id);

INSERT INTO events_by_run SELECT * FROM events;

DROP TABLE IF EXISTS events_before_0014;

RENAME TABLE events TO events_before_0014, events_by_run TO events;

DROP TABLE events_before_0014;

DROP TABLE IF EXISTS device_days_by_run;

CREATE TABLE device_days_by_run AS device_days
ENGINE = MergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (run_id, site_id, day, device_id);

INSERT INTO device_days_by_run SELECT * FROM device_days;

DROP TABLE IF EXISTS device_days_before_0014;

RENAME TABLE device_days TO device_days_before_0014, device_days_by_run TO device_days;

DROP TABLE device_days_before_0014;

DROP TABLE IF EXISTS device_values_by_run;

CREATE TABLE device_values_by_run AS device_values
ENGINE = MergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (run_id, site_id, day, dimension, value, device_id);

INSERT INTO device_values_by_run SELECT * FROM device_values;

DROP TABLE IF EXISTS device_values_before_0014;

RENAME TABLE device_values TO device_values_before_0014, device_values_by_run TO device_values;

DROP TABLE device_values_before_0014;

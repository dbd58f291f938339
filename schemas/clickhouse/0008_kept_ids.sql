-- The ids dedup looks up (docs/standard.md §2 step 2): one row per kept event, sorted
-- by a 64-bit hash of (site_id, event_id), so a run finds the earlier copies of
-- its ids by reading one narrow UInt64 column (PREWHERE) and the rest only for
-- the granules that hold a match. `events` is sorted for the facts step (device
-- by device), which made that lookup a scan of its string columns; sorted by
-- the strings themselves it still compares string tuples for every row read.
-- Weekly partitions of received_at: a lookup reads only the weeks within 7 days
-- of what it probes, however long the history.
CREATE TABLE IF NOT EXISTS kept_ids
(
    id_hash     UInt64 DEFAULT cityHash64(site_id, event_id),
    site_id     String,
    event_id    String,
    received_at Int64,
    run_id      String
)
ENGINE = MergeTree
PARTITION BY toMonday(toDate(toDateTime(intDiv(received_at, 1000))))
ORDER BY id_hash;

-- Stores made before this table: the ids of the events they hold.
INSERT INTO kept_ids (site_id, event_id, received_at, run_id)
SELECT site_id, event_id, received_at, run_id FROM events;

-- Copies a run kept in one of its steps and then found to be later than a copy
-- read in a later step (smaller received_at): before the run commits, each is
-- moved from `events` and `kept_ids` to `duplicate_events` (pipelines/steps.py).
CREATE TABLE IF NOT EXISTS replaced_copies
(
    site_id     String,
    event_id    String,
    received_at Int64,
    run_id      String
)
ENGINE = MergeTree
ORDER BY (run_id, site_id, event_id);

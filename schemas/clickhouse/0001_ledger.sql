-- The run ledger. One row per state change of a run; a run's state is the highest
-- status it reached (started < committed; started < failed < abandoned), so the
-- table is append-only and needs no mutation to move a run along.
CREATE TABLE IF NOT EXISTS runs
(
    run_id          String,
    status          Enum8('started' = 1, 'committed' = 2, 'failed' = 3, 'abandoned' = 4),
    updated_ms      UInt64,
    source_kind     String,
    kafka_group     String,
    metrics_version String,
    zone            String,
    lines_read      UInt64,
    replayed        UInt64,
    rejected        UInt64,
    duplicates      UInt64,
    kept            UInt64,
    checksum        String,
    detail          String
)
ENGINE = MergeTree
ORDER BY (run_id, updated_ms);

-- Runs whose results count: every reader filters on this view, so the rows of a
-- run that died half way are never seen.
CREATE VIEW IF NOT EXISTS committed_runs AS
SELECT run_id
FROM runs
GROUP BY run_id
HAVING max(status) = 'committed';

-- What each run read: a file (by content hash) and its line range, or a Kafka
-- partition and its offset range, with counts and a checksum of the bytes read.
CREATE TABLE IF NOT EXISTS run_sources
(
    run_id         String,
    source_index   UInt32,
    source_id      String,
    name           String,
    first_position UInt64,
    last_position  UInt64,
    records        UInt64,
    bytes          UInt64,
    checksum       String
)
ENGINE = MergeTree
ORDER BY (source_id, run_id, first_position);

-- Facts are recomputed per (site, local day). Each recomputation is a generation
-- tagged with its run; readers take, per site and day, the newest generation of
-- a committed run (view current_generations), so a re-run replaces, never adds.
CREATE TABLE IF NOT EXISTS fact_generations
(
    site_id String,
    day     Date,
    run_id  String
)
ENGINE = MergeTree
ORDER BY (site_id, day, run_id);

CREATE VIEW IF NOT EXISTS current_generations AS
SELECT site_id, day, max(generation) AS run_id
FROM
(
    SELECT site_id, day, run_id AS generation
    FROM fact_generations
    WHERE run_id IN (SELECT run_id FROM committed_runs)
)
GROUP BY site_id, day;

-- The additive metrics of docs/standard.md §3 and the IVT tallies by rule.
CREATE TABLE IF NOT EXISTS daily_facts
(
    site_id         String,
    day             Date,
    run_id          String,
    metrics_version String,
    pageviews       UInt64,
    visits          UInt64,
    engaged_visits  UInt64,
    engaged_ms      UInt64,
    media_starts    UInt64,
    media_completes UInt64,
    play_ms         UInt64,
    counted_events  UInt64,
    ivt_events      UInt64,
    ivt_ua          UInt64,
    ivt_datacenter  UInt64,
    ivt_rate        UInt64
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (site_id, day, run_id);

-- One row per visit, on the day of its first event.
CREATE TABLE IF NOT EXISTS visits
(
    site_id    String,
    day        Date,
    device_id  String,
    run_id     String,
    start_ts   Int64,
    end_ts     Int64,
    events     UInt32,
    pageviews  UInt32,
    engaged_ms UInt64,
    play_ms    UInt64,
    engaged    UInt8
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (site_id, day, device_id, start_ts);

-- One row per device with a counted event on a site and day: the exact basis
-- of visitors and media_reach, from which the sketches below are built.
CREATE TABLE IF NOT EXISTS device_days
(
    site_id        String,
    day            Date,
    device_id      String,
    run_id         String,
    counted_events UInt64,
    play_ms        UInt64
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (site_id, day, device_id);

-- Distinct-count sketches per site and day; a month merges its days' states.
CREATE TABLE IF NOT EXISTS daily_sketches
(
    site_id     String,
    day         Date,
    run_id      String,
    visitors    AggregateFunction(uniqCombined, String),
    media_reach AggregateFunction(uniqCombined, String)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (site_id, day, run_id);

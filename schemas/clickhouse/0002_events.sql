-- Kept events: valid, first copies (docs/standard.md §2 steps 1-2), IVT not yet decided.
-- The facts of a site and day are recomputed from these rows, so a later batch
-- can extend a visit or push a device over the SIVT rate. Only what the metrics
-- and an audit trail need is kept; the raw event stays in Kafka or its file.
-- Sorted as the facts step reads it: a site's events device by device, in time.
CREATE TABLE IF NOT EXISTS events
(
    site_id     String,
    day         Date,
    device_id   String,
    ts          Int64,
    event_id    String,
    received_at Int64,
    type        Enum8('page_view' = 1, 'engagement' = 2, 'media' = 3),
    ua_ivt      UInt8,
    ip_class    Enum8('residential' = 1, 'datacenter' = 2, 'unknown' = 3),
    value_ms    UInt32,
    action      Enum8('' = 0, 'start' = 1, 'heartbeat' = 2, 'pause' = 3, 'end' = 4),
    source_id   String,
    position    UInt64,
    run_id      String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (site_id, device_id, ts, event_id);

-- Refused events, first-class data: the reason, the raw line, where it came from.
CREATE TABLE IF NOT EXISTS rejected_events
(
    run_id    String,
    source_id String,
    position  UInt64,
    reason    Enum8('not_json' = 1, 'not_object' = 2, 'missing_field' = 3, 'wrong_type' = 4,
                    'invalid_value' = 5, 'personal_data' = 6, 'ts_out_of_window' = 7),
    detail    String,
    site_id   String,
    raw       String
)
ENGINE = MergeTree
ORDER BY (run_id, reason, source_id, position);

-- Copies removed as duplicates, first-class data like the rejects: which copy
-- (source and position), of which id, counted on the local day of its own ts.
-- A copy found here or in `events` again is a replay and changes nothing.
CREATE TABLE IF NOT EXISTS duplicate_events
(
    site_id     String,
    day         Date,
    event_id    String,
    received_at Int64,
    source_id   String,
    position    UInt64,
    kind        Enum8('within_run' = 1, 'across_runs' = 2),
    run_id      String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (site_id, day, event_id);

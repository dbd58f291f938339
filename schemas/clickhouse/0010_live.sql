-- Live figures (pressmeter pipeline live, docs/live.md): preliminary, per minute.
-- Each row is the whole state of its minute, written again whenever the minute
-- changes (new or late events, a replay after a restart). `version` is the
-- number of events behind the row; a minute's state only grows, so the row with
-- the highest version is the newest. ReplacingMergeTree keeps it when parts merge;
-- until then readers ask for it: `FINAL`, or argMax(column, version).
-- `status` says what the figures are: live ones are always 'preliminary' (the
-- batch's daily facts are the figures outlets are ranked on).

-- An outlet's minute. Sorted for the live panel's "last N minutes of outlet X".
-- readers / viewers: distinct devices with a counted reading (page view,
-- engagement) / media event in the 5 minutes ending with this one.
-- concurrent_plays: distinct play_id with a counted media event in the minute.
-- play_ms: Σ min(played_ms, 60000) of the minute's counted media events
-- (play minutes = play_ms / 60000).
CREATE TABLE IF NOT EXISTS live_site_minutes
(
    site_id          String,
    minute           DateTime,
    page_views       UInt32,
    play_ms          UInt64,
    readers          UInt32,
    viewers          UInt32,
    concurrent_plays UInt32,
    ivt_events       UInt32,
    version          UInt64,
    status           Enum8('preliminary' = 1) DEFAULT 'preliminary',
    written_ms       UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(minute)
ORDER BY (site_id, minute);

-- A TV or radio channel's minute (channel_id of the media events; none: no row).
-- Sorted by minute first, for "every channel now": the latest minutes of all
-- channels are one short range, filtered by the outlets of a category.
CREATE TABLE IF NOT EXISTS live_channel_minutes
(
    minute           DateTime,
    site_id          String,
    channel_id       String,
    concurrent_plays UInt32,
    play_ms          UInt64,
    version          UInt64,
    status           Enum8('preliminary' = 1) DEFAULT 'preliminary',
    written_ms       UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(minute)
ORDER BY (minute, site_id, channel_id);

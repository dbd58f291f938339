-- The channel ranking of a closed month (docs/standard.md §5), frozen as the outlet
-- ranking is (0011_closed_months.sql): rows tagged with the close's id, read only
-- for a recorded revision, never updated or deleted.
--
-- Revisions recorded before this migration froze no channel ranking: they keep
-- channels_ranked = 0, and reading their channel ranking says so.
ALTER TABLE closed_months ADD COLUMN channels_ranked UInt8 DEFAULT 0;

-- Each ranked channel (a `channel` value of §8 of a tv or radio outlet): its
-- category, rank, outlet and name at the time of the close, and the figures it
-- was ranked on as the ranking showed them. Its share is its play_ms over the
-- sum of its category's rows.
CREATE TABLE IF NOT EXISTS closed_channel_ranking
(
    month           String,
    revision        UInt32,
    close_id        String,
    category        String,
    rank            UInt32,
    site_id         String,
    name            String,
    channel         String,
    pageviews       UInt64,
    visits          UInt64,
    engaged_visits  UInt64,
    visitors        UInt64,
    engaged_ms      UInt64,
    media_starts    UInt64,
    media_completes UInt64,
    play_ms         UInt64,
    media_reach     UInt64
)
ENGINE = MergeTree
ORDER BY (month, revision, category, rank, site_id, channel);

-- What a revision changed in the channel ranking against the revision before it,
-- per channel and figure: the old and the new value and their difference.
CREATE TABLE IF NOT EXISTS closed_channel_changes
(
    month    String,
    revision UInt32,
    close_id String,
    site_id  String,
    channel  String,
    figure   String,
    old      Int64,
    new      Int64,
    delta    Int64
)
ENGINE = MergeTree
ORDER BY (month, revision, site_id, channel, figure);

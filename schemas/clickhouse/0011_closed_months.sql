-- Closed months (docs/standard.md §5): each close that finds the month changed writes a
-- new numbered revision; no row is ever updated or deleted. A revision is the
-- row in `closed_months`, written last: the figure, ranking and change rows of a
-- close carry its close_id, and readers take only those of a recorded revision,
-- so a close that died half way leaves rows nobody reads.
-- Sorted by (month, revision): "the newest revision of M" reads M's few rows.
CREATE TABLE IF NOT EXISTS closed_months
(
    month           String,
    revision        UInt32,
    close_id        String,
    closed_ms       UInt64,
    inputs_hash     String,
    input_runs      UInt32,
    metrics_version String,
    list_versions   String,
    zone            String,
    ranked          UInt8
)
ENGINE = MergeTree
ORDER BY (month, revision);

-- The docs/standard.md §4 month row of every site, as frozen by one revision
-- (`ama` is derived from play_ms and the month's minutes, as in the export).
CREATE TABLE IF NOT EXISTS closed_month_figures
(
    month            String,
    revision         UInt32,
    close_id         String,
    site_id          String,
    pageviews        UInt64,
    visits           UInt64,
    engaged_visits   UInt64,
    visitors         UInt64,
    engaged_ms       UInt64,
    media_starts     UInt64,
    media_completes  UInt64,
    play_ms          UInt64,
    media_reach      UInt64,
    ivt_events       UInt64,
    duplicate_events UInt64,
    counted_events   UInt64
)
ENGINE = MergeTree
ORDER BY (month, revision, site_id);

-- The ranking of a revision (docs/standard.md §5), when an outlet registry was given:
-- each outlet's category, name and rank at the time of the close, and the
-- figures it was ranked on, as the ranking showed them, and whether its IVT rate
-- was flagged (above the threshold of the close).
CREATE TABLE IF NOT EXISTS closed_month_ranking
(
    month            String,
    revision         UInt32,
    close_id         String,
    category         String,
    rank             UInt32,
    site_id          String,
    name             String,
    flagged          UInt8,
    pageviews        UInt64,
    visits           UInt64,
    engaged_visits   UInt64,
    visitors         UInt64,
    engaged_ms       UInt64,
    media_starts     UInt64,
    media_completes  UInt64,
    play_ms          UInt64,
    media_reach      UInt64,
    ivt_events       UInt64,
    duplicate_events UInt64,
    counted_events   UInt64
)
ENGINE = MergeTree
ORDER BY (month, revision, category, rank, site_id);

-- What a revision changed against the one before it: per site and figure, the
-- old and the new value and their difference (new - old). Revision 1 has none.
CREATE TABLE IF NOT EXISTS closed_month_changes
(
    month    String,
    revision UInt32,
    close_id String,
    site_id  String,
    figure   String,
    old      Int64,
    new      Int64,
    delta    Int64
)
ENGINE = MergeTree
ORDER BY (month, revision, site_id, figure);

-- What every rule needs to be applied again to stored events (pm-metrics/1 §7):
-- the §8 dimensions ('' when missing, empty or `(none)`), the hosts of the
-- referrer and of the page (lower case, no `www.`; '?' for a non-empty URL
-- without a host, which no host equals), and the user agent by its id, so that
-- the bot verdict is taken at facts time under the current list. Rows stored
-- before this migration have ua_id 0: their verdict is the one taken at ingest
-- (ua_ivt), and their dimensions are '' (none).
ALTER TABLE events
    ADD COLUMN section String DEFAULT '',
    ADD COLUMN content_id String DEFAULT '',
    ADD COLUMN channel_id String DEFAULT '',
    ADD COLUMN stream String DEFAULT '',
    ADD COLUMN province String DEFAULT '',
    ADD COLUMN device_type String DEFAULT '',
    ADD COLUMN referrer_host String DEFAULT '',
    ADD COLUMN url_host String DEFAULT '',
    ADD COLUMN ua_id UInt64 DEFAULT 0;

-- Each distinct user agent once per run that met it first (a run's rows go with
-- it if it dies); ua_id = cityHash64(ua).
CREATE TABLE IF NOT EXISTS user_agents
(
    ua_id  UInt64,
    ua     String,
    run_id String
)
ENGINE = MergeTree
ORDER BY ua_id;

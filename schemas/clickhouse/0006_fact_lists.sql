-- The version (content hash) of each list a run's facts were computed under
-- (schemas/bots.txt, search.txt, social.txt: pm-metrics/1 §7), so a figure's
-- provenance names the lists it came from, and a recomputation under a new list
-- is seen as one.
CREATE TABLE IF NOT EXISTS fact_lists
(
    run_id  String,
    list    String,
    version String
)
ENGINE = MergeTree
ORDER BY (run_id, list);

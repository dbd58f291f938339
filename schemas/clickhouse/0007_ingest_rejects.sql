-- Events the ingest service refused (its dead letters, Kafka topic
-- pm.events.rejected.v1) are loaded into rejected_events beside the pipeline's
-- own rejects. `stage` says who refused a row; `refused_ms` is when the ingest
-- service did (its received_at), 0 for the pipeline's rows, which count on the
-- day of their run. Plain ALTER ... ADD COLUMN: ClickHouse 18.16 and chDB alike.
ALTER TABLE rejected_events
    ADD COLUMN stage Enum8('pipeline' = 1, 'ingest' = 2) DEFAULT 'pipeline',
    ADD COLUMN refused_ms UInt64 DEFAULT 0;

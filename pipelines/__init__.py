"""Apache Beam pipelines that turn canonical events into pm-metrics/1 facts.

The transforms (parse, deduplicate, facts) never read or write; `batch` picks the
sources and sinks, so the same transforms serve files, Kafka and tests.
"""

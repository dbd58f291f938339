"""The live pipeline: preliminary per-minute figures from the event stream.

    command.py       `pressmeter pipeline live`: arguments, then run.run_live
    run.py           the job: options (Prism by default), the pipeline, stop on SIGTERM
    kafka_stream.py  the unbounded Kafka source (a splittable DoFn on confluent-kafka)
    watermark.py     a partition's watermark, moved on with the wall clock while it is idle
    minutes.py       LiveFigures' steps: parse, dedup, carried devices, minute figures
    figures.py       a minute's figures from its events summarized per device (no Beam)
    sinks.py         figures to ClickHouse, then positions to the consumer group
    timing.py        lateness, state lifetime, the live horizon

docs/live.md describes the figures, lateness, restarts, and how to run on Flink.
The package imports no Beam here, so the CLI starts fast.
"""

from pressmeter.pipelines.live.timing import LiveTiming

__all__ = ["LiveTiming"]

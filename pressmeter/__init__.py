"""Pressmeter: open press audience measurement to the pm-metrics/1 standard."""

METRICS_VERSION = "pm-metrics/1"

__all__ = ["METRICS_VERSION"]

"""Pressmeter: open press audience measurement to the pm-metrics/1 standard."""

import os

# Nothing here does linear algebra, yet the OpenBLAS that numpy loads starts a
# worker thread per core, which spins after each call: about 1% of a batch run's
# CPU (perf). Set before numpy is first imported; an operator's setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

METRICS_VERSION = "pm-metrics/1"

__all__ = ["METRICS_VERSION"]

"""Synthetic press traffic for demos, tests and benchmarks (`pressmeter simulate`).

Writes an outlet registry and a JSON Lines file of canonical events
(docs/standard.md §1) that look like a national press market: a few big outlets
and a long tail (Zipf), a daily rhythm in the reporting zone, readers who come
back across days, TV and radio plays with heartbeats, every breakdown dimension
of §8 (sections, articles, channels live and on demand, provinces, devices,
referrers of every source class), and the dirt a real collector sees (bots,
data-centre traffic, rate bursts, retried duplicates, late and broken lines),
each in a small known share that the summary counts, so the pipeline's
rejects, duplicates and IVT can be checked against what was injected.

Modules, by concern: `outlets` (the market: outlets, sections, articles),
`audience` (devices, user agents, provinces, referrers), `traffic` (what a
visit sends), `plan` (how many visits, hour by local hour), `writer` (lines,
noise, file), `simulation` (one run) and `command` (the CLI).
"""

from pressmeter.simulator.command import add_arguments, format_summary, run
from pressmeter.simulator.outlets import SimulatedOutlet, build_outlets
from pressmeter.simulator.simulation import SimulationSummary, default_registry_path, simulate
from pressmeter.simulator.writer import NOISE, NoiseShares

__all__ = [
    "NOISE",
    "NoiseShares",
    "SimulatedOutlet",
    "SimulationSummary",
    "add_arguments",
    "build_outlets",
    "default_registry_path",
    "format_summary",
    "run",
    "simulate",
]

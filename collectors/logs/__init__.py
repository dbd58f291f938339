"""Importers of server logs into canonical events: `hls` turns CDN/HLS access
logs of live TV and radio streams into media events (`pressmeter import hls-logs`)."""

from __future__ import annotations

from typing import Any

from pressmeter.collectors.logs.formats import DEFAULT_SEGMENT_PATTERN, NGINX_COMBINED

__all__ = [
    "DEFAULT_SEGMENT_PATTERN",
    "NGINX_COMBINED",
    "HlsImport",
    "ImportReport",
    "LineProblem",
    "import_logs",
]


def __getattr__(name: str) -> Any:
    # The importer loads the ingest's enrichment (and its dependencies) only when used.
    if name in ("HlsImport", "ImportReport", "LineProblem", "import_logs"):
        from pressmeter.collectors.logs import hls

        return getattr(hls, name)
    raise AttributeError(name)

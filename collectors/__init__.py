"""Collectors: where events enter Pressmeter (ingest service, SDK, importers, simulator)."""

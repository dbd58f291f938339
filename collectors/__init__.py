"""Collectors: where events enter Pressmeter (ingest service, SDK, importers).

The traffic simulator is not one: it lives in `pressmeter.simulator`.
"""

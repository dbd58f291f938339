"""`pressmeter pipeline live` refuses bad settings and unreachable servers in one line."""

from __future__ import annotations

from pathlib import Path

from support import cli, one_error_line


def test_lateness_out_of_range_is_refused(tmp_path: Path) -> None:
    line = one_error_line(cli("pipeline", "live", "--allowed-lateness", "-5", cwd=tmp_path))
    assert "--allowed-lateness must be between 0 and 3600 seconds, not -5.0" in line


def test_unreachable_kafka_is_one_line(tmp_path: Path) -> None:
    result = cli("pipeline", "live", "--kafka", "127.0.0.1:1", cwd=tmp_path)
    assert "cannot reach Kafka at 127.0.0.1:1" in one_error_line(result)

"""Where a batch run reads: JSON Lines files (plain or .gz) or a bounded slice of a
Kafka topic. Planning (what to read) happens before the pipeline, so the ledger
records it; the DoFns here read only what was planned, and report for each
source what they read (`SourceRead`), which the ledger keeps.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

import apache_beam as beam

from pressmeter.errors import InputError
from pressmeter.pipelines.parse import LineBatch

if TYPE_CHECKING:
    from pressmeter.pipelines.kafka_slices import SliceReader

__all__ = [
    "READS",
    "FileSource",
    "KafkaSlice",
    "ReadFileLinesFn",
    "ReadKafkaSliceFn",
    "ReadPlanned",
    "SourceRead",
    "plan_files",
]

log = logging.getLogger(__name__)
READS = "reads"
BATCH_LINES = 20_000
_PROGRESS_EVERY_S = 5.0


@dataclass(frozen=True)
class SourceRead:
    """What one source gave a run: the ledger's `run_sources` row."""

    source_index: int
    source_id: str
    name: str
    first_position: int
    last_position: int
    records: int
    bytes: int
    checksum: str


@dataclass(frozen=True)
class FileSource:
    """A JSON Lines file, named by the hash of its bytes: the same file read again
    under any name is the same copy of its events."""

    index: int
    path: str
    size: int
    sha256: str

    @property
    def source_id(self) -> str:
        return f"file:sha256:{self.sha256}"


def plan_files(paths: list[str]) -> list[FileSource]:
    """Check every file can be read and fingerprint it, before anything is written."""
    planned = []
    for index, path in enumerate(paths):
        try:
            with open(path, "rb") as handle:
                digest = hashlib.file_digest(handle, "sha256")
            size = os.path.getsize(path)
        except OSError as exc:
            raise InputError(f"cannot read input file {path}: {exc.strerror or exc}") from exc
        planned.append(FileSource(index, os.path.abspath(path), size, digest.hexdigest()))
    return planned


class _Progress:
    """Logs how far a long read has come, every few seconds."""

    def __init__(self, name: str, total: int | None) -> None:
        self.name, self.total = name, total
        self.started = self.last = time.monotonic()

    def update(self, records: int, done: int) -> None:
        now = time.monotonic()
        if now - self.last < _PROGRESS_EVERY_S:
            return
        self.last = now
        rate = records / max(now - self.started, 1e-9)
        share = f" ({100 * done / self.total:.0f}%)" if self.total else ""
        log.info("reading %s: %d records%s, %.0f records/s", self.name, records, share, rate)


def _open_lines(path: str) -> tuple[IO[bytes], IO[bytes]]:
    """(line reader, raw file for progress); .gz files are decompressed."""
    raw = open(path, "rb")  # noqa: SIM115 - closed by the caller
    return (gzip.open(raw) if path.endswith(".gz") else raw), raw


def _read_lines(reader: IO[bytes], chunk_bytes: int = 1 << 23) -> Iterator[list[bytes]]:
    """Lists of lines (without their newline), read and split a large chunk at a
    time: much cheaper than iterating over a file line by line."""
    rest = b""
    while chunk := reader.read(chunk_bytes):
        lines = chunk.split(b"\n")
        lines[0] = rest + lines[0]
        rest = lines.pop()
        if lines:
            yield lines
    if rest:
        yield [rest]


class ReadFileLinesFn(beam.DoFn):
    """FileSource → a LineBatch per 8 MiB read, then its SourceRead (tagged)."""

    def process(self, source: FileSource) -> Iterator[object]:
        reader, raw = _open_lines(source.path)
        progress = _Progress(source.path, source.size)
        first = 1
        try:
            with reader:
                for lines in _read_lines(reader):
                    yield LineBatch(source.index, source.source_id, first, lines)
                    first += len(lines)
                    progress.update(first - 1, raw.tell())
        except (OSError, EOFError) as exc:
            raise InputError(f"cannot read input file {source.path}: {exc}") from exc
        finally:
            raw.close()
        records = first - 1
        yield beam.pvalue.TaggedOutput(
            READS,
            SourceRead(
                source.index,
                source.source_id,
                source.path,
                1,
                records,
                records,
                source.size,
                source.sha256,
            ),
        )


@dataclass(frozen=True)
class KafkaSlice:
    """Offsets [start, end) of one partition: fixed when the run starts."""

    index: int
    bootstrap: str
    topic: str
    partition: int
    start: int
    end: int

    @property
    def source_id(self) -> str:
        return f"kafka:{self.topic}/{self.partition}"


class ReadKafkaSliceFn(beam.DoFn):
    """KafkaSlice → LineBatch of consecutive offsets, then its SourceRead (tagged).

    One consumer serves every slice this DoFn instance reads (made on the first,
    closed in teardown). The checksum is the SHA-256 of the values read, in offset
    order."""

    def setup(self) -> None:
        self._reader: SliceReader | None = None

    def teardown(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def process(self, part: KafkaSlice) -> Iterator[object]:
        from pressmeter.pipelines.kafka_slices import SliceReader

        if self._reader is None:
            self._reader = SliceReader(part.bootstrap)
        digest = hashlib.sha256()
        records = total_bytes = 0
        progress = _Progress(part.source_id, part.end - part.start)
        update = digest.update
        for first, values in self._reader.read(part, BATCH_LINES):
            for value in values:  # cheaper than hashing a joined copy
                update(value)
            total_bytes += sum(map(len, values))
            records += len(values)
            progress.update(records, records)
            yield LineBatch(part.index, part.source_id, first, values)
        yield beam.pvalue.TaggedOutput(
            READS,
            SourceRead(
                part.index,
                part.source_id,
                f"{part.topic}/{part.partition}",
                part.start,
                part.end - 1,
                records,
                total_bytes,
                digest.hexdigest(),
            ),
        )


class ReadPlanned(beam.PTransform):
    """Planned sources → line batches (main) and what each gave (tagged `reads`)."""

    def __init__(self, sources: list, read_fn: beam.DoFn) -> None:
        super().__init__()
        self.sources = sources
        self.read_fn = read_fn

    def expand(self, pipeline: beam.Pipeline) -> beam.pvalue.DoOutputsTuple:
        return (
            pipeline
            | "PlannedSources" >> beam.Create(self.sources)
            | "ReadRecords"
            >> beam.ParDo(self.read_fn)
            .with_output_types(LineBatch)
            .with_outputs(READS, main="lines")
        )

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
import numpy as np

from pressmeter.errors import InputError
from pressmeter.pipelines.parse import LineBatch

if TYPE_CHECKING:
    from pressmeter.pipelines.kafka_slices import SliceReader

__all__ = [
    "READS",
    "FileChunk",
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
_BLOCK_BYTES = 1 << 23
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
    under any name is the same copy of its events. `chunk_starts` are the byte
    offsets (of the decompressed text) where each run of `chunk_lines` lines
    starts, so a run can read the file a bounded chunk at a time."""

    index: int
    path: str
    size: int
    sha256: str
    lines: int = 0
    chunk_lines: int = 0
    chunk_starts: tuple[int, ...] = (0,)
    text_size: int = 0

    @property
    def source_id(self) -> str:
        return f"file:sha256:{self.sha256}"

    def chunks(self) -> list[FileChunk]:
        """The file as consecutive chunks of at most `chunk_lines` lines (one if empty)."""
        ends = [*self.chunk_starts[1:], self.text_size]
        return [
            FileChunk(
                self,
                1 + n * self.chunk_lines,
                start,
                end,
                min(self.chunk_lines, self.lines - n * self.chunk_lines),
            )
            for n, (start, end) in enumerate(zip(self.chunk_starts, ends))
        ]


@dataclass(frozen=True)
class FileChunk:
    """Lines first_position.. of a file: bytes [start, end) of its text."""

    source: FileSource
    first_position: int
    start: int
    end: int
    records: int

    @property
    def source_id(self) -> str:
        return self.source.source_id


def plan_files(paths: list[str], chunk_lines: int = 1 << 62) -> list[FileSource]:
    """Check every file can be read, fingerprint it and find where its chunks of
    `chunk_lines` lines start, before anything is written."""
    planned = []
    for index, path in enumerate(paths):
        try:
            with open(path, "rb") as handle:
                digest = hashlib.file_digest(handle, "sha256")
            size = os.path.getsize(path)
            reader, raw = _open_lines(path)
            with reader, raw:
                lines, starts, text_size = _chunk_starts(reader, chunk_lines)
        except (OSError, EOFError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise InputError(f"cannot read input file {path}: {why}") from exc
        planned.append(
            FileSource(
                index,
                os.path.abspath(path),
                size,
                digest.hexdigest(),
                lines,
                chunk_lines,
                starts,
                text_size,
            )
        )
    return planned


def _chunk_starts(reader: IO[bytes], chunk_lines: int) -> tuple[int, tuple[int, ...], int]:
    """(lines, offsets where every `chunk_lines`-th line starts, text bytes), one pass.

    A last line without its newline is a line; the offsets are those of the
    decompressed text for .gz files."""
    starts = [0]
    newlines = offset = 0
    last = b"\n"
    while block := reader.read(_BLOCK_BYTES):
        count = block.count(b"\n")
        next_cut = len(starts) * chunk_lines
        if newlines + count >= next_cut:
            ends = np.flatnonzero(np.frombuffer(block, np.uint8) == 10)
            while newlines + count >= next_cut:
                starts.append(offset + int(ends[next_cut - newlines - 1]) + 1)
                next_cut += chunk_lines
        newlines += count
        offset += len(block)
        last = block[-1:]
    lines = newlines + (last != b"\n")
    if len(starts) > 1 and starts[-1] == offset:
        starts.pop()  # the file ends exactly at a cut: no empty last chunk
    return lines, tuple(starts), offset


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


# .gz readers left where a chunk ended: the next step's chunk of the same file goes
# on from there rather than decompressing the file again from its start (seeking
# in a gzip stream does), while the runner keeps this process, as the local one does.
_PARKED: dict[tuple[str, int], tuple[IO[bytes], IO[bytes]]] = {}


def _open_at(path: str, offset: int) -> tuple[IO[bytes], IO[bytes]]:
    """(line reader at `offset` of the text, raw file), a parked one if it is there."""
    parked = _PARKED.pop((path, offset), None)
    if parked is not None:
        return parked
    reader, raw = _open_lines(path)
    reader.seek(offset)
    return reader, raw


def _park(source: FileSource, offset: int, reader: IO[bytes], raw: IO[bytes]) -> None:
    """Keep a .gz reader for the chunk that starts at `offset`; close anything else."""
    if source.path.endswith(".gz") and offset < source.text_size:
        _PARKED[(source.path, offset)] = (reader, raw)
        return
    reader.close()
    raw.close()


def _read_lines(reader: IO[bytes], limit: int) -> Iterator[list[bytes]]:
    """Lists of the lines (without their newline) of the next `limit` bytes, read
    and split a large block at a time: much cheaper than line by line."""
    rest = b""
    while limit > 0 and (block := reader.read(min(_BLOCK_BYTES, limit))):
        limit -= len(block)
        lines = block.split(b"\n")
        lines[0] = rest + lines[0]
        rest = lines.pop()
        if lines:
            yield lines
    if rest:
        yield [rest]


class ReadFileLinesFn(beam.DoFn):
    """FileChunk → a LineBatch per 8 MiB read, then its SourceRead (tagged)."""

    def process(self, chunk: FileChunk) -> Iterator[object]:
        source = chunk.source
        progress = _Progress(source.path, source.size)
        first = chunk.first_position
        try:
            reader, raw = _open_at(source.path, chunk.start)
            try:
                for lines in _read_lines(reader, chunk.end - chunk.start):
                    yield LineBatch(source.index, source.source_id, first, lines)
                    first += len(lines)
                    progress.update(first - chunk.first_position, raw.tell())
            except BaseException:
                reader.close()
                raw.close()
                raise
        except (OSError, EOFError) as exc:
            raise InputError(f"cannot read input file {source.path}: {exc}") from exc
        _park(source, chunk.end, reader, raw)
        records = first - chunk.first_position
        if records != chunk.records:
            raise InputError(
                f"input file {source.path} changed while it was read: lines "
                f"{chunk.first_position}.. held {records} lines, not {chunk.records}"
            )
        yield beam.pvalue.TaggedOutput(
            READS,
            SourceRead(
                source.index,
                source.source_id,
                source.path,
                chunk.first_position,
                first - 1,
                records,
                chunk.end - chunk.start,
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

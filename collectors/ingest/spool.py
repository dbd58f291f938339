"""The write-ahead spool: where a request's Kafka messages go when Kafka has not
acknowledged them in time, so that a 2xx answer still means "durable".

Layout, in the worker's own folder (locked with `flock`, one process each):

    00000000000000000001.wal    frames: >IIQ (length, CRC-32, batch seq) + payload
    00000000000000000001.done   8-byte batch seqs whose messages Kafka acknowledged

A payload is one request's messages, msgpack `[[topic, key, value], ...]`.
`append` returns once the frame is written and fdatasync'd (group commit: the
appends that arrive while one sync runs share the next one). `mark_done` only
appends to the .done file, without a sync: a process killed with `kill -9`
loses nothing the kernel holds, and after a power loss the worst case is that
an acknowledged batch is sent again (same event ids: the pipeline counts
them as duplicates, docs/standard.md §2). A segment whose batches are all done is
deleted. On open, the batches not marked done are found again, in order; a
frame cut short by a crash (never acknowledged to the client) is truncated.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

__all__ = ["BatchRef", "Message", "Spool", "SpoolFull"]

Message = tuple[str, bytes, bytes]  # topic, key, value
_HEADER = struct.Struct(">IIQ")
_SEQ = struct.Struct(">Q")
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(list[tuple[str, bytes, bytes]]).decode


class SpoolFull(Exception):
    """The spool holds its configured maximum: the request must be retried later."""


@dataclass(frozen=True)
class BatchRef:
    """Where one spooled request lies."""

    seq: int
    segment: int
    offset: int
    length: int


@dataclass
class _Segment:
    number: int
    size: int = 0
    live: set[int] = field(default_factory=set)


@dataclass
class _Pending:
    frame: bytes
    seq: int
    future: asyncio.Future[BatchRef]


class Spool:
    """One worker's spool folder. Use from one asyncio loop."""

    def __init__(self, folder: Path, max_bytes: int, segment_bytes: int) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._segments: dict[int, _Segment] = {}
        self._pending: list[_Pending] = []
        self._pending_bytes = 0
        # Batches taken from _pending and not yet in a segment's live set (being
        # written): still live, or the sink would see an empty spool mid-write.
        self._writing = 0
        self._flushing: asyncio.Task[None] | None = None
        self._io = ThreadPoolExecutor(1, thread_name_prefix="spool")
        self._wal_fd = -1
        self._done_fds: dict[int, int] = {}
        self._next_seq = 1
        folder.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(folder / "LOCK", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise RuntimeError(f"spool {folder} is in use by another process") from None
        self.recovered = self._recover()
        self._active = _Segment(max(self._segments, default=0) + 1)
        self._open_active()

    # ----------------------------------------------------------- recovery

    def _path(self, number: int, suffix: str) -> Path:
        return self.folder / f"{number:020d}.{suffix}"

    def _recover(self) -> list[BatchRef]:
        """The batches not marked done, oldest first; cut torn tails off."""
        refs: list[BatchRef] = []
        numbers = sorted(int(p.stem) for p in self.folder.glob("*.wal") if p.stem.isdigit())
        for number in numbers:
            wal = self._path(number, "wal")
            data = wal.read_bytes()
            done_path = self._path(number, "done")
            done_bytes = done_path.read_bytes() if done_path.exists() else b""
            usable = len(done_bytes) - len(done_bytes) % _SEQ.size
            done = {s for (s,) in _SEQ.iter_unpack(done_bytes[:usable])}
            segment = _Segment(number)
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, crc, seq = _HEADER.unpack_from(data, offset)
                end = offset + _HEADER.size + length
                if end > len(data) or zlib.crc32(data[offset + _HEADER.size : end]) != crc:
                    break
                self._next_seq = max(self._next_seq, seq + 1)
                if seq not in done:
                    refs.append(BatchRef(seq, number, offset, end - offset))
                    segment.live.add(seq)
                offset = end
            if offset != len(data):
                with open(wal, "r+b") as handle:  # a frame cut short by a crash
                    handle.truncate(offset)
                    os.fsync(handle.fileno())
            segment.size = offset
            if segment.live:
                self._segments[number] = segment
            else:
                self._delete(number)
        return refs

    def _open_active(self) -> None:
        number = self._active.number
        self._wal_fd = os.open(
            self._path(number, "wal"), os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600
        )
        self._segments[number] = self._active
        dir_fd = os.open(self.folder, os.O_RDONLY)  # the new file's name is durable too
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    # ------------------------------------------------------------ writing

    @property
    def live_bytes(self) -> int:
        """Bytes on disk in segments that still hold unacknowledged batches."""
        return sum(s.size for s in self._segments.values() if s.live) + self._pending_bytes

    @property
    def live_batches(self) -> int:
        return (
            sum(len(s.live) for s in self._segments.values()) + len(self._pending) + self._writing
        )

    async def append(self, messages: list[Message]) -> BatchRef:
        """Write one batch durably; raises SpoolFull when it would not fit."""
        payload = _encode(messages)
        seq = self._next_seq
        frame = _HEADER.pack(len(payload), zlib.crc32(payload), seq) + payload
        if self.live_bytes + len(frame) > self.max_bytes:
            raise SpoolFull(f"spool holds {self.live_bytes} of {self.max_bytes} bytes")
        self._next_seq += 1
        future: asyncio.Future[BatchRef] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(frame, seq, future))
        self._pending_bytes += len(frame)
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())
        return await asyncio.shield(future)

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            group, self._pending = self._pending, []
            self._writing = len(group)
            size = sum(len(p.frame) for p in group)
            full = self._active.size + size > self.segment_bytes
            if self._active.size and (full or not self._active.live):
                await loop.run_in_executor(self._io, self._rotate)
            segment, start = self._active, self._active.size
            try:
                await loop.run_in_executor(self._io, self._write, b"".join(p.frame for p in group))
            except OSError as exc:
                self._pending_bytes -= size
                self._writing = 0
                for p in group:
                    p.future.set_exception(exc)
                continue
            self._pending_bytes -= size
            offset = start
            for p in group:
                segment.live.add(p.seq)
                p.future.set_result(BatchRef(p.seq, segment.number, offset, len(p.frame)))
                offset += len(p.frame)
            segment.size = offset
            self._writing = 0

    def _write(self, data: bytes) -> None:
        os.write(self._wal_fd, data)
        os.fdatasync(self._wal_fd)

    def _rotate(self) -> None:
        os.close(self._wal_fd)
        old = self._active
        self._active = _Segment(old.number + 1)
        self._open_active()
        if not old.live:
            self._delete(old.number)

    # ------------------------------------------------- reading, acknowledging

    def read(self, ref: BatchRef) -> list[Message]:
        """The messages of a spooled batch."""
        with open(self._path(ref.segment, "wal"), "rb") as handle:
            frame = os.pread(handle.fileno(), ref.length, ref.offset)
        return [tuple(m) for m in _decode(frame[_HEADER.size :])]  # type: ignore[misc]

    def mark_done(self, ref: BatchRef) -> None:
        """Kafka acknowledged every message of `ref`: never send it again."""
        segment = self._segments.get(ref.segment)
        if self._lock_fd < 0 or segment is None or ref.seq not in segment.live:
            return
        fd = self._done_fds.get(ref.segment)
        if fd is None:
            fd = os.open(
                self._path(ref.segment, "done"), os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600
            )
            self._done_fds[ref.segment] = fd
        os.write(fd, _SEQ.pack(ref.seq))
        segment.live.discard(ref.seq)
        if not segment.live and segment is not self._active:
            self._delete(ref.segment)

    def _delete(self, number: int) -> None:
        self._segments.pop(number, None)
        fd = self._done_fds.pop(number, None)
        if fd is not None:
            os.close(fd)
        self._path(number, "wal").unlink(missing_ok=True)
        self._path(number, "done").unlink(missing_ok=True)

    def close(self) -> None:
        self._io.shutdown(wait=True)
        for fd in [self._wal_fd, *self._done_fds.values()]:
            if fd >= 0:
                os.close(fd)
        self._done_fds.clear()
        self._wal_fd = -1
        if not self._active.live:
            self._delete(self._active.number)
        os.close(self._lock_fd)
        self._lock_fd = -1

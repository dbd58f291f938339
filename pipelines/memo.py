"""Per-value work done once per distinct value: user agents, URLs and the like
repeat a great deal across events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Memo"]

T = TypeVar("T")


class Memo(Generic[T]):
    """`compute` of each value of a column, each distinct value computed once and
    remembered (up to `memory` values, past which the memory starts again)."""

    def __init__(self, compute: Callable[[str], T], memory: int = 100_000) -> None:
        self.compute, self.memory = compute, memory
        self._seen: dict[str, T] = {}

    def __call__(self, values: list[str]) -> list[T]:
        seen = self._seen
        if len(seen) > self.memory:
            seen.clear()
        known = list(map(seen.get, values))  # one C-level pass; None where not seen yet
        if None in known:
            for index, value in enumerate(values):
                if known[index] is None:
                    known[index] = seen.setdefault(value, self.compute(value))
        return known  # type: ignore[return-value]

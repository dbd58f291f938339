"""The dimensions of the standard's §8 (docs/standard.md §8): the value each
counted event has in each, as integer codes with their texts.

Six dimensions are event fields, stored as they came ('' for none); `source` is
the class of the referrer of the first event of the event's visit.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pressmeter.metrics import DIMENSIONS, NONE_VALUE
from pressmeter.pipelines.referrers import SOURCE_CLASSES, source_class_codes
from pressmeter.pipelines.visits import Visits

__all__ = ["DimensionValues", "field_values", "source_values", "values_by_dimension"]


@dataclass(frozen=True)
class DimensionValues:
    """One dimension's value of each counted event (`codes`, aligned with the
    counted rows) and of each visit's first event (`visit_codes`); `texts[code]`."""

    dimension: str
    codes: np.ndarray
    visit_codes: np.ndarray
    texts: list[str]


def field_values(dimension: str, column: pa.ChunkedArray, visits: Visits) -> DimensionValues:
    """§8 `section` … `device_type`: the event's own field; '' shows as `(none)`."""
    encoded = pc.dictionary_encode(column.combine_chunks())
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    texts = [text or NONE_VALUE for text in encoded.dictionary.to_pylist()]
    return DimensionValues(dimension, codes[visits.rows], codes[visits.first], texts)


def source_values(referrer_hosts: pa.Array, url_hosts: pa.Array, visits: Visits) -> DimensionValues:
    """§8 `source`: every event of a visit has the class of the referrer of the
    visit's first event (pipelines/referrers.py); the hosts are those of the
    first events, visit by visit."""
    visit_codes = source_class_codes(referrer_hosts, url_hosts)
    return DimensionValues("source", visit_codes[visits.number], visit_codes, list(SOURCE_CLASSES))


def values_by_dimension(columns: pa.Table, visits: Visits) -> Iterator[DimensionValues]:
    """The values of every §8 dimension, in §8's order."""
    for dimension, field in DIMENSIONS.items():
        if field is None:
            firsts = pa.array(visits.first)
            yield source_values(
                columns["referrer_host"].take(firsts).combine_chunks(),
                columns["url_host"].take(firsts).combine_chunks(),
                visits,
            )
        else:
            yield field_values(dimension, columns[field], visits)

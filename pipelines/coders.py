"""Beam coders for the batches that flow between our transforms.

Beam samples element sizes for its metrics by encoding elements; with its
generic fallback coder that means pickling whole batches (hundreds of MB per
run). These coders encode the same way but estimate sizes from what the batch
already knows, and carry Arrow tables in Arrow's own IPC format.
"""

from __future__ import annotations

import pickle
from typing import Any

import apache_beam as beam
import pyarrow as pa

__all__ = ["ArrowTableCoder", "BatchCoder", "register", "typed_outputs"]


class ArrowTableCoder(beam.coders.Coder):
    """An Arrow table as an IPC stream."""

    def encode(self, table: pa.Table) -> bytes:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return sink.getvalue().to_pybytes()

    def decode(self, encoded: bytes) -> pa.Table:
        return pa.ipc.open_stream(encoded).read_all()

    def estimate_size(self, table: pa.Table) -> int:
        return table.nbytes

    def is_deterministic(self) -> bool:
        return False

    def to_type_hint(self) -> Any:
        return pa.Table


class BatchCoder(beam.coders.Coder):
    """Our batch dataclasses (pickled), sized by their own `nbytes`."""

    def encode(self, value: Any) -> bytes:
        return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)

    def decode(self, encoded: bytes) -> Any:
        return pickle.loads(encoded)

    def estimate_size(self, value: Any) -> int:
        return value.nbytes

    def is_deterministic(self) -> bool:
        return False


def typed_outputs(outputs: beam.pvalue.DoOutputsTuple, **types: type) -> None:
    """Declare the element types of tagged outputs (Beam's `with_output_types`
    reaches only the main output), so that they get the coders above."""
    for tag, element_type in types.items():
        outputs[tag].element_type = element_type


def register(*batch_types: type) -> None:
    """Use these coders for Arrow tables and the given batch types."""
    beam.coders.registry.register_coder(pa.Table, ArrowTableCoder)
    for batch_type in batch_types:
        beam.coders.registry.register_coder(batch_type, BatchCoder)

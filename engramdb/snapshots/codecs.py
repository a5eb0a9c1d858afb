"""Vector codecs of the snapshot's ``vectors`` part: float32, float16 and int8."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from engramdb._types import FloatMatrix
from engramdb.errors import SnapshotError, ValidationError
from engramdb.snapshots.manifest import VectorEncoding

__all__ = ["VECTOR_CODECS", "VectorCodec", "vector_codec"]


class VectorCodec(Protocol):
    """Turns a float32 matrix into the ``vectors`` part and back."""

    name: str

    def encode(self, vectors: FloatMatrix) -> tuple[pa.Table, VectorEncoding]:
        """The part's table and the encoding record for the manifest."""
        ...

    def decode(self, table: pa.Table, encoding: VectorEncoding, dim: int) -> FloatMatrix:
        """A float32 ``(rows, dim)`` matrix, ready for the store."""
        ...


def _fixed(values: np.ndarray, dim: int) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(values).ravel()), dim)


def _flat(table: pa.Table, column: str, dtype: pa.DataType, dim: int) -> np.ndarray:
    if column not in table.column_names:
        raise SnapshotError(f"vectors part has no {column!r} column; the file is damaged")
    col = table.column(column)
    want = pa.list_(dtype, dim)
    if col.type != want:
        raise SnapshotError(
            f"vectors part column {column!r} has type {col.type}, not {want}; the file is damaged"
        )
    arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    if arr.null_count:
        raise SnapshotError("vectors part has missing vectors; the file is damaged")
    flat = arr.flatten()  # honours a slice offset, unlike .values
    if flat.null_count:
        raise SnapshotError("vectors part has missing values; the file is damaged")
    values: np.ndarray = flat.to_numpy(zero_copy_only=False)
    return values.reshape(len(arr), dim)


def _unit_rows(n: int, dim: int, fill: Any) -> FloatMatrix:
    """Dequantize and normalize in blocks of rows: one cache-friendly pass, not four."""
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, _BLOCK_ROWS):
        block = out[start : start + _BLOCK_ROWS]
        fill(block, slice(start, start + _BLOCK_ROWS))
        norms = np.sqrt(np.einsum("ij,ij->i", block, block))
        block /= np.maximum(norms, 1e-12)[:, None]
    return out


_BLOCK_ROWS = 2048


class Float32Codec:
    """Vectors as stored: exact."""

    name = "float32"

    def encode(self, vectors: FloatMatrix) -> tuple[pa.Table, VectorEncoding]:
        dim = vectors.shape[1]
        return pa.table({"vector": _fixed(vectors.astype(np.float32, copy=False), dim)}), (
            VectorEncoding(encoding="float32")
        )

    def decode(self, table: pa.Table, encoding: VectorEncoding, dim: int) -> FloatMatrix:
        return _flat(table, "vector", pa.float32(), dim)


class Float16Codec:
    """Half precision: half the size, cosine error around 1e-5."""

    name = "float16"

    def encode(self, vectors: FloatMatrix) -> tuple[pa.Table, VectorEncoding]:
        dim = vectors.shape[1]
        return pa.table({"vector": _fixed(vectors.astype(np.float16), dim)}), VectorEncoding(
            encoding="float16"
        )

    def decode(self, table: pa.Table, encoding: VectorEncoding, dim: int) -> FloatMatrix:
        half = _flat(table, "vector", pa.float16(), dim)
        return _unit_rows(len(half), dim, lambda out, rows: np.copyto(out, half[rows]))


class Int8Codec:
    """Scalar quantization: a per-dimension offset and a per-vector scale, a quarter the size."""

    name = "int8"

    def encode(self, vectors: FloatMatrix) -> tuple[pa.Table, VectorEncoding]:
        n, dim = vectors.shape
        offset = vectors.mean(axis=0, dtype=np.float64).astype(np.float32) if n else None
        if offset is None:
            offset = np.zeros(dim, np.float32)
        centred = vectors - offset
        scale = (np.abs(centred).max(axis=1) / 127.0).astype(np.float32) if n else np.zeros(0)
        scale = np.where(scale > 0, scale, np.float32(1.0)).astype(np.float32)
        q = np.clip(np.rint(centred / scale[:, None]), -127, 127).astype(np.int8)
        table = pa.table({"vector": _fixed(q, dim), "scale": pa.array(scale, pa.float32())})
        return table, VectorEncoding(encoding="int8", offset=tuple(offset.tolist()))

    def decode(self, table: pa.Table, encoding: VectorEncoding, dim: int) -> FloatMatrix:
        q = _flat(table, "vector", pa.int8(), dim)
        if "scale" not in table.column_names or table.schema.field("scale").type != pa.float32():
            raise SnapshotError("vectors part column 'scale' is not float32; the file is damaged")
        scale = table.column("scale").to_numpy()
        if encoding.offset is None or len(encoding.offset) != dim:
            raise SnapshotError(f"int8 vectors need {dim} offsets in the manifest; it is damaged")
        offset = np.asarray(encoding.offset, dtype=np.float32)

        def fill(out: FloatMatrix, rows: slice) -> None:
            np.copyto(out, q[rows])
            out *= scale[rows, None]
            out += offset

        return _unit_rows(len(q), dim, fill)


VECTOR_CODECS: dict[str, VectorCodec] = {
    c.name: c for c in (Float32Codec(), Float16Codec(), Int8Codec())
}


def vector_codec(name: object) -> VectorCodec:
    """The codec for ``vectors=`` (``float32``, ``float16`` or ``int8``)."""
    if not isinstance(name, str) or name not in VECTOR_CODECS:
        raise ValidationError(
            f"vectors {name!r} is not a vector encoding; use one of {', '.join(VECTOR_CODECS)}"
        )
    return VECTOR_CODECS[name]

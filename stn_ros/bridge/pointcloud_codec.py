"""Convert between ``sensor_msgs/PointCloud2`` messages and numpy structured arrays.

Pure numpy (``sensor_msgs_py`` is not required). Decoding duck-types the
message; encoding imports ``sensor_msgs`` lazily.

Conventions:

* Encoded clouds are unorganized (height 1, width N), fields packed in the
  given order with no padding, host byte order, ``data`` as
  ``array.array('B')``.
* Decoded clouds are 1-D structured arrays of ``height * width`` points with
  one field per PointField (``count > 1`` gives a subarray field), packed,
  native-endian and owning their memory; reshape to ``(height, width)`` for
  organized clouds. Padding between fields/points/rows is skipped.
* ``data`` must hold at least ``row_step * height`` bytes; extra is ignored.
"""

from __future__ import annotations

import array
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from .image_codec import as_byte_array

# sensor_msgs/PointField datatype constants.
INT8, UINT8, INT16, UINT16, INT32, UINT32, FLOAT32, FLOAT64 = range(1, 9)

DATATYPE_DTYPES: dict[int, np.dtype] = {
    INT8: np.dtype(np.int8),
    UINT8: np.dtype(np.uint8),
    INT16: np.dtype(np.int16),
    UINT16: np.dtype(np.uint16),
    INT32: np.dtype(np.int32),
    UINT32: np.dtype(np.uint32),
    FLOAT32: np.dtype(np.float32),
    FLOAT64: np.dtype(np.float64),
}
"""PointField datatype -> native numpy dtype."""

_KIND_SIZE_DATATYPE = {(dt.kind, dt.itemsize): code for code, dt in DATATYPE_DTYPES.items()}

DECODE_ERROR_REASONS: frozenset[str] = frozenset({'bad_field', 'bad_step', 'short_data', 'bad_data'})


class PointCloudDecodeError(ValueError):
    """A cloud that cannot be decoded; ``reason`` is one of DECODE_ERROR_REASONS."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _to_packed(points: Mapping[str, Any] | np.ndarray) -> np.ndarray:
    """Return a 1-D packed native structured array of the points."""
    if isinstance(points, Mapping):
        if not points:
            raise ValueError('points dict has no fields')
        columns = {}
        for name, values in points.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f'field names must be non-empty strings, got {name!r}')
            column = np.asarray(values, dtype=np.float32)
            if column.ndim != 1:
                raise ValueError(f'field {name!r} must be 1-D, got shape {column.shape}')
            columns[name] = column
        lengths = {name: len(column) for name, column in columns.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f'fields have different lengths: {lengths}')
        packed = np.empty(next(iter(lengths.values())), [(n, np.float32) for n in columns])
        for name, column in columns.items():
            packed[name] = column
        return packed

    if not isinstance(points, np.ndarray) or points.dtype.names is None:
        raise TypeError(f'points must be a dict of arrays or a structured array, got {type(points).__name__}')
    if points.ndim != 1:
        raise ValueError(f'structured points must be 1-D, got shape {points.shape}')
    formats = []
    for name in points.dtype.names:
        field = points.dtype.fields[name][0]
        base, shape = field.subdtype if field.subdtype else (field, ())
        if (base.kind, base.itemsize) not in _KIND_SIZE_DATATYPE or len(shape) > 1:
            raise ValueError(
                f'field {name!r} has unsupported dtype {field}; use (u)int8/16/32,'
                ' float32/64, optionally with a 1-D count'
            )
        native = base.newbyteorder('=')
        formats.append((name, native, shape) if shape else (name, native))
    packed = np.empty(points.shape[0], formats)
    for name in points.dtype.names:
        packed[name] = points[name]
    return packed


def encode_pointcloud(
    points: Mapping[str, Any] | np.ndarray,
    header: Any = None,
    is_dense: bool | None = None,
) -> Any:
    """Build an unorganized ``sensor_msgs.msg.PointCloud2`` (height 1, width N).

    ``points`` is either a dict of equal-length 1-D arrays (each becomes a
    FLOAT32 field, values cast to float32) or a 1-D structured array whose
    fields are (u)int8/16/32 or float32/64, optionally with a 1-D subarray
    (PointField ``count``). ``is_dense`` defaults to "every float is finite".
    N may be 0. Raises TypeError/ValueError for unsupported input.
    """
    from sensor_msgs.msg import PointCloud2, PointField

    packed = _to_packed(points)
    fields = []
    for name in packed.dtype.names:
        field, offset = packed.dtype.fields[name][:2]
        base, shape = field.subdtype if field.subdtype else (field, ())
        fields.append(
            PointField(
                name=name,
                offset=offset,
                datatype=_KIND_SIZE_DATATYPE[(base.kind, base.itemsize)],
                count=int(np.prod(shape, dtype=int)),
            )
        )
    if is_dense is None:
        is_dense = all(
            bool(np.isfinite(packed[name]).all())
            for name in packed.dtype.names
            if packed.dtype.fields[name][0].base.kind == 'f'
        )
    data = array.array('B')
    data.frombytes(packed.view(np.uint8))

    msg = PointCloud2()
    if header is not None:
        msg.header = header
    msg.height = 1
    msg.width = packed.shape[0]
    msg.fields = fields
    msg.is_bigendian = sys.byteorder == 'big'
    msg.point_step = packed.dtype.itemsize
    msg.row_step = packed.dtype.itemsize * packed.shape[0]
    msg.is_dense = bool(is_dense)
    msg.data = data
    return msg


def _wire_dtype(msg: Any) -> tuple[np.dtype, np.dtype]:
    """Return (wire dtype with offsets/itemsize/byte order, packed native dtype)."""
    fields = list(msg.fields)
    point_step = int(msg.point_step)
    if not fields:
        raise PointCloudDecodeError('bad_field', 'cloud has no fields')
    order = '>' if msg.is_bigendian else '<'
    names: list[str] = []
    wire: list[Any] = []
    native: list[Any] = []
    offsets: list[int] = []
    for field in fields:
        name, datatype = field.name, int(field.datatype)
        offset, count = int(field.offset), int(field.count)
        if not name:
            raise PointCloudDecodeError('bad_field', f'field at offset {offset} has an empty name')
        if name in names:
            raise PointCloudDecodeError('bad_field', f'duplicate field name {name!r}')
        if datatype not in DATATYPE_DTYPES:
            raise PointCloudDecodeError('bad_field', f'field {name!r} has unknown datatype {datatype} (valid: 1..8)')
        if count < 1:
            raise PointCloudDecodeError('bad_field', f'field {name!r} has count {count} < 1')
        base = DATATYPE_DTYPES[datatype]
        end = offset + count * base.itemsize
        if end > point_step:
            raise PointCloudDecodeError(
                'bad_field',
                f'field {name!r} ends at byte {end} (offset {offset} + {count} * '
                f'{base.itemsize} bytes) > point_step {point_step}',
            )
        names.append(name)
        offsets.append(offset)
        wire.append((base.newbyteorder(order), (count,)) if count > 1 else base.newbyteorder(order))
        native.append((name, base, (count,)) if count > 1 else (name, base))
    wire_dtype = np.dtype({'names': names, 'formats': wire, 'offsets': offsets, 'itemsize': point_step})
    return wire_dtype, np.dtype(native)


def decode_pointcloud(msg: Any) -> np.ndarray:
    """Decode a PointCloud2 to a 1-D packed native structured array.

    Honours ``point_step``, ``row_step``, field offsets/counts and
    ``is_bigendian``; all PointField datatypes (INT8..FLOAT64). Raises
    PointCloudDecodeError with reason ``bad_field`` (unknown datatype, count
    < 1, field past ``point_step``, empty/duplicate name, no fields),
    ``bad_step`` (``row_step < width * point_step``), ``short_data``
    (fewer than ``row_step * height`` bytes) or ``bad_data``.
    """
    wire_dtype, native_dtype = _wire_dtype(msg)
    height, width = int(msg.height), int(msg.width)
    point_step, row_step = int(msg.point_step), int(msg.row_step)
    if height * width == 0:
        return np.empty(0, native_dtype)
    if row_step < width * point_step:
        raise PointCloudDecodeError(
            'bad_step',
            f'row_step {row_step} < width {width} * point_step {point_step} = {width * point_step}',
        )
    try:
        buf = as_byte_array(msg.data)
    except (TypeError, ValueError) as exc:
        raise PointCloudDecodeError('bad_data', str(exc)) from None
    needed = row_step * height
    if buf.size < needed:
        raise PointCloudDecodeError(
            'short_data',
            f'data has {buf.size} bytes < row_step {row_step} * height {height} = {needed}',
        )
    src = np.ndarray((height, width), dtype=wire_dtype, buffer=buf, strides=(row_step, point_step))
    out = np.empty((height, width), native_dtype)
    for name in native_dtype.names:
        out[name] = src[name]  # per-field copy skips padding and swaps bytes
    return out.reshape(-1)

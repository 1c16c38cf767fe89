"""Tests for stn_ros.bridge.pointcloud_codec (no ROS graph, no rclpy)."""

import array
import struct
import sys
import types

import numpy as np
import pytest
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from stn_ros.bridge.pointcloud_codec import (
    DECODE_ERROR_REASONS,
    PointCloudDecodeError,
    decode_pointcloud,
    encode_pointcloud,
)

HOST_BIG = sys.byteorder == 'big'


def field(name, offset, datatype, count=1):
    return PointField(name=name, offset=offset, datatype=datatype, count=count)


def cloud(fields, data, *, height=1, width, point_step, row_step=None, big=False):
    msg = PointCloud2()
    msg.height = height
    msg.width = width
    msg.fields = fields
    msg.is_bigendian = big
    msg.point_step = point_step
    msg.row_step = width * point_step if row_step is None else row_step
    msg.data = array.array('B', data)
    return msg


# --- encode / round trip -------------------------------------------------------


def test_dict_round_trip():
    rng = np.random.default_rng(1)
    points = {name: rng.standard_normal(5).astype(np.float32) for name in ('x', 'y', 'z', 'intensity')}
    header = Header(frame_id='map')

    msg = encode_pointcloud(points, header=header)

    assert isinstance(msg, PointCloud2)
    assert msg.header.frame_id == 'map'
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (1, 5, 16, 80)
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ('x', 0, PointField.FLOAT32, 1),
        ('y', 4, PointField.FLOAT32, 1),
        ('z', 8, PointField.FLOAT32, 1),
        ('intensity', 12, PointField.FLOAT32, 1),
    ]
    assert msg.is_bigendian == HOST_BIG and msg.is_dense is True
    assert type(msg.data) is array.array and msg.data.typecode == 'B' and len(msg.data) == 80
    assert struct.unpack_from('=f', bytes(msg.data), 16 + 8)[0] == points['z'][1]

    out = decode_pointcloud(msg)
    assert out.shape == (5,) and out.dtype.names == ('x', 'y', 'z', 'intensity')
    for name, values in points.items():
        assert out[name].dtype == np.float32
        np.testing.assert_array_equal(out[name], values)


def test_dict_values_cast_to_float32_and_is_dense():
    msg = encode_pointcloud({'x': np.array([1.0, np.nan]), 'y': [2, 3]})
    assert [f.datatype for f in msg.fields] == [PointField.FLOAT32] * 2
    assert msg.is_dense is False
    out = decode_pointcloud(msg)
    np.testing.assert_array_equal(out['x'], np.float32([1.0, np.nan]))
    np.testing.assert_array_equal(out['y'], np.float32([2, 3]))

    assert encode_pointcloud({'x': [np.inf]}, is_dense=True).is_dense is True
    assert encode_pointcloud({'x': [np.inf]}).is_dense is False


@pytest.mark.parametrize('as_structured', [False, True])
def test_zero_points_round_trip(as_structured):
    if as_structured:
        points = np.zeros(0, [('x', np.float32), ('ring', np.uint16)])
    else:
        points = {'x': np.zeros(0), 'y': np.zeros(0), 'z': np.zeros(0)}

    msg = encode_pointcloud(points)

    assert (msg.height, msg.width, msg.row_step, len(msg.data)) == (1, 0, 0, 0)
    assert msg.point_step == (6 if as_structured else 12)
    assert msg.is_dense is True
    out = decode_pointcloud(msg)
    assert out.shape == (0,)
    assert out.dtype.names == (('x', 'ring') if as_structured else ('x', 'y', 'z'))


ALL_TYPES = [
    ('i8', np.int8, PointField.INT8),
    ('u8', np.uint8, PointField.UINT8),
    ('i16', np.int16, PointField.INT16),
    ('u16', np.uint16, PointField.UINT16),
    ('i32', np.int32, PointField.INT32),
    ('u32', np.uint32, PointField.UINT32),
    ('f32', np.float32, PointField.FLOAT32),
    ('f64', np.float64, PointField.FLOAT64),
]


def test_structured_round_trip_all_datatypes_and_count():
    dtype = [(name, np_type) for name, np_type, _ in ALL_TYPES] + [('normal', np.float32, (3,))]
    points = np.zeros(4, dtype)
    for name, np_type, _ in ALL_TYPES:
        info = np.finfo(np_type) if np.dtype(np_type).kind == 'f' else np.iinfo(np_type)
        points[name] = [info.min, info.max, 0, 1]
    points['normal'] = np.arange(12, dtype=np.float32).reshape(4, 3)

    msg = encode_pointcloud(points)

    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ('i8', 0, 1, 1),
        ('u8', 1, 2, 1),
        ('i16', 2, 3, 1),
        ('u16', 4, 4, 1),
        ('i32', 6, 5, 1),
        ('u32', 10, 6, 1),
        ('f32', 14, 7, 1),
        ('f64', 18, 8, 1),
        ('normal', 26, 7, 3),
    ]
    assert (msg.point_step, msg.row_step) == (38, 152)
    out = decode_pointcloud(msg)
    assert out.dtype == np.dtype(dtype)
    for name in points.dtype.names:
        np.testing.assert_array_equal(out[name], points[name])


def test_structured_byte_order_and_padding_are_normalised():
    src_dtype = np.dtype({'names': ['x', 'label'], 'formats': ['>f4', '>i4'], 'offsets': [0, 8], 'itemsize': 16})
    points = np.zeros(2, src_dtype)
    points['x'] = [1.5, -3.0]
    points['label'] = [7, -9]

    msg = encode_pointcloud(points)

    assert msg.is_bigendian == HOST_BIG
    assert (msg.point_step, [f.offset for f in msg.fields]) == (8, [0, 4])
    assert bytes(msg.data) == struct.pack('=fifi', 1.5, 7, -3.0, -9)
    out = decode_pointcloud(msg)
    np.testing.assert_array_equal(out['x'], [1.5, -3.0])
    np.testing.assert_array_equal(out['label'], [7, -9])
    assert out.dtype['x'].isnative


@pytest.mark.parametrize(
    'points, exc, text',
    [
        ({}, ValueError, 'points dict has no fields'),
        ({'x': [1, 2], 'y': [1]}, ValueError, "fields have different lengths: {'x': 2, 'y': 1}"),
        ({'xyz': np.zeros((3, 3))}, ValueError, "field 'xyz' must be 1-D, got shape (3, 3)"),
        ({'': [1.0]}, ValueError, "field names must be non-empty strings, got ''"),
        (np.zeros((3, 3), np.float32), TypeError, 'got ndarray'),
        ([1, 2, 3], TypeError, 'got list'),
        (
            np.zeros((2, 2), [('x', 'f4')]),
            ValueError,
            'structured points must be 1-D, got shape (2, 2)',
        ),
        (np.zeros(2, [('t', 'u8')]), ValueError, "field 't' has unsupported dtype uint64"),
        (np.zeros(2, [('ok', '?')]), ValueError, "field 'ok' has unsupported dtype bool"),
        (
            np.zeros(2, [('m', 'f4', (2, 2))]),
            ValueError,
            "field 'm' has unsupported dtype ('<f4', (2, 2))",
        ),
    ],
)
def test_encode_errors(points, exc, text):
    with pytest.raises(exc) as info:
        encode_pointcloud(points)
    assert text in str(info.value)


# --- decode of hand-made clouds ------------------------------------------------


def test_decode_big_endian_padded_point_step():
    fields = [field('x', 0, 7), field('y', 4, 7), field('z', 8, 7), field('ring', 12, 4)]
    points = [(1.0, -2.5, 3.25, 7), (0.5, 1e3, -1e-3, 65535)]
    # point_step 20: 14 bytes of fields, then 6 bytes of junk.
    data = b''.join(struct.pack('>fffH', *p) + b'\xab' * 6 for p in points)

    out = decode_pointcloud(cloud(fields, data, width=2, point_step=20, big=True))

    assert out.dtype == np.dtype([('x', 'f4'), ('y', 'f4'), ('z', 'f4'), ('ring', 'u2')])
    np.testing.assert_array_equal(out['x'], np.float32([1.0, 0.5]))
    np.testing.assert_array_equal(out['y'], np.float32([-2.5, 1e3]))
    np.testing.assert_array_equal(out['z'], np.float32([3.25, -1e-3]))
    np.testing.assert_array_equal(out['ring'], [7, 65535])


@pytest.mark.parametrize('big', [False, True])
def test_decode_every_datatype(big):
    order = '>' if big else '<'
    fmt = order + 'bBhHiIfd'
    sizes = [1, 1, 2, 2, 4, 4, 4, 8]
    offsets = list(np.cumsum([0] + sizes[:-1]))
    fields = [field(name, int(off), code) for (name, _, code), off in zip(ALL_TYPES, offsets, strict=True)]
    rows = [
        (-128, 255, -32768, 65535, -(2**31), 2**32 - 1, 0.125, -1e300),
        (1, 2, 3, 4, 5, 6, 7.5, 8.25),
    ]
    data = b''.join(struct.pack(fmt, *row) for row in rows)

    out = decode_pointcloud(cloud(fields, data, width=2, point_step=26, big=big))

    for column, (name, np_type, _) in enumerate(ALL_TYPES):
        assert out[name].dtype == np_type
        np.testing.assert_array_equal(out[name], [rows[0][column], rows[1][column]])


def test_decode_organized_row_padding_and_unordered_fields():
    # 2x2 organized cloud: fields listed out of offset order, count-2 field,
    # point_step 12 (10 used), row_step 28 (24 used).
    fields = [
        field('intensity', 8, PointField.UINT16),
        field('uv', 0, PointField.FLOAT32, count=2),
    ]
    rows = [[(0.5, 1.5, 10), (2.5, 3.5, 11)], [(4.5, 5.5, 12), (6.5, 7.5, 13)]]
    data = b''.join(b''.join(struct.pack('<ffH', *p) + b'\xcc\xcc' for p in row) + b'\xdd' * 4 for row in rows)

    out = decode_pointcloud(cloud(fields, data, height=2, width=2, point_step=12, row_step=28))

    assert out.shape == (4,)
    assert out.dtype.names == ('intensity', 'uv') and out.dtype['uv'].shape == (2,)
    np.testing.assert_array_equal(out['intensity'], [10, 11, 12, 13])
    np.testing.assert_array_equal(out['uv'], [[0.5, 1.5], [2.5, 3.5], [4.5, 5.5], [6.5, 7.5]])
    assert out.flags.owndata or out.base.flags.owndata


@pytest.mark.parametrize(
    'data_type',
    [bytes, bytearray, list, lambda b: np.frombuffer(b, np.uint8)],
    ids=['bytes', 'bytearray', 'list', 'ndarray'],
)
def test_decode_data_container_types(data_type):
    raw = struct.pack('<2f', 1.25, -4.0)
    msg = types.SimpleNamespace(
        fields=[types.SimpleNamespace(name='x', offset=0, datatype=7, count=1)],
        height=1,
        width=2,
        point_step=4,
        row_step=8,
        is_bigendian=False,
        data=data_type(raw),
    )
    np.testing.assert_array_equal(decode_pointcloud(msg)['x'], [1.25, -4.0])


def test_decode_accepts_oversized_data():
    data = struct.pack('<2f', 1.0, 2.0) + b'\x00' * 5
    out = decode_pointcloud(cloud([field('x', 0, 7)], data, width=2, point_step=4))
    np.testing.assert_array_equal(out['x'], [1.0, 2.0])


@pytest.mark.parametrize(
    'kwargs, reason, text',
    [
        (dict(fields=[]), 'bad_field', 'cloud has no fields'),
        (
            dict(fields=[field('x', 0, 9)]),
            'bad_field',
            "field 'x' has unknown datatype 9 (valid: 1..8)",
        ),
        (dict(fields=[field('x', 0, 0)]), 'bad_field', "field 'x' has unknown datatype 0"),
        (dict(fields=[field('x', 0, 7, count=0)]), 'bad_field', "field 'x' has count 0 < 1"),
        (dict(fields=[field('', 4, 7)]), 'bad_field', 'field at offset 4 has an empty name'),
        (
            dict(fields=[field('x', 0, 7), field('x', 4, 7)]),
            'bad_field',
            "duplicate field name 'x'",
        ),
        (
            dict(fields=[field('x', 6, 7)]),
            'bad_field',
            "field 'x' ends at byte 10 (offset 6 + 1 * 4 bytes) > point_step 8",
        ),
        (
            dict(fields=[field('n', 0, 8, count=2)]),
            'bad_field',
            "field 'n' ends at byte 16 (offset 0 + 2 * 8 bytes) > point_step 8",
        ),
        (dict(row_step=23), 'bad_step', 'row_step 23 < width 3 * point_step 8 = 24'),
        (dict(data=bytes(23)), 'short_data', 'data has 23 bytes < row_step 24 * height 1 = 24'),
        (
            dict(height=2, data=bytes(40)),
            'short_data',
            'data has 40 bytes < row_step 24 * height 2 = 48',
        ),
    ],
)
def test_decode_errors(kwargs, reason, text):
    msg = types.SimpleNamespace(
        fields=[field('x', 0, 7), field('y', 4, 7)],
        height=1,
        width=3,
        point_step=8,
        row_step=24,
        is_bigendian=False,
        data=bytes(48),
    )
    for key, value in kwargs.items():
        setattr(msg, key, value)
    with pytest.raises(PointCloudDecodeError) as info:
        decode_pointcloud(msg)
    assert info.value.reason == reason and reason in DECODE_ERROR_REASONS
    assert text in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize('data', [object(), [0, 256, 1, 2, 3, 4, 5, 6], np.zeros(6, np.float32)])
def test_decode_bad_data(data):
    msg = types.SimpleNamespace(
        fields=[field('x', 0, 7)],
        height=1,
        width=2,
        point_step=4,
        row_step=8,
        is_bigendian=False,
        data=data,
    )
    with pytest.raises(PointCloudDecodeError) as info:
        decode_pointcloud(msg)
    assert info.value.reason == 'bad_data'


def test_decode_zero_points_still_validates_fields():
    empty = cloud([field('x', 0, 7), field('i', 4, 2)], b'', width=0, point_step=5)
    out = decode_pointcloud(empty)
    assert out.shape == (0,) and out.dtype == np.dtype([('x', 'f4'), ('i', 'u1')])
    with pytest.raises(PointCloudDecodeError) as info:
        decode_pointcloud(cloud([field('x', 0, 42)], b'', width=0, point_step=4))
    assert info.value.reason == 'bad_field'

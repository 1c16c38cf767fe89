"""Tests for stn_ros.bridge.image_codec (no ROS graph, no rclpy)."""

import array
import gc
import os
import struct
import subprocess
import sys
import types

import numpy as np
import pytest
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from stn_ros.bridge.image_codec import (
    DECODE_ERROR_REASONS,
    DEPTH_ENCODINGS,
    ENCODINGS,
    ImageDecodeError,
    decode_depth_m,
    decode_image,
    depth_pixels,
    encode_image,
)

HOST_BIG = sys.byteorder == 'big'


def random_image(encoding, height=5, width=7, seed=0):
    rng = np.random.default_rng(seed)
    dtype, channels = ENCODINGS[encoding]
    shape = (height, width) if channels == 1 else (height, width, channels)
    if dtype.kind == 'f':
        return (rng.standard_normal(shape) * 100).astype(dtype)
    return rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)


def make_msg(encoding, height, width, step, data, big=False):
    msg = Image()
    msg.encoding = encoding
    msg.height = height
    msg.width = width
    msg.step = step
    msg.is_bigendian = int(big)
    msg.data = array.array('B', data)
    return msg


# --- encode / round trip -------------------------------------------------------


@pytest.mark.parametrize('encoding', sorted(ENCODINGS))
def test_round_trip_every_encoding(encoding):
    image = random_image(encoding)
    dtype, channels = ENCODINGS[encoding]

    msg = encode_image(image, encoding)

    assert isinstance(msg, Image)
    assert (msg.height, msg.width, msg.encoding) == (5, 7, encoding)
    assert msg.step == 7 * channels * dtype.itemsize
    assert msg.is_bigendian == int(HOST_BIG)
    assert isinstance(msg.data, array.array) and msg.data.typecode == 'B'
    assert len(msg.data) == msg.step * 5
    assert bytes(msg.data) == image.tobytes()

    out = decode_image(msg)
    assert out.dtype == dtype and out.shape == image.shape
    np.testing.assert_array_equal(out, image)


def test_encode_writes_array_not_ndarray():
    msg = encode_image(np.zeros((480, 640, 3), np.uint8), 'bgr8')
    assert not isinstance(msg.data, np.ndarray)
    assert type(msg.data) is array.array and msg.data.typecode == 'B'
    assert len(msg.data) == 480 * 640 * 3


@pytest.mark.parametrize(
    'encoding, shape, step',
    [('mono8', (0, 4), 4), ('bgr8', (0, 4, 3), 12), ('32FC1', (0, 4), 16), ('16UC1', (0, 3), 6)],
)
def test_encode_empty_tile(encoding, shape, step):
    dtype, _ = ENCODINGS[encoding]
    msg = encode_image(np.zeros(shape, dtype), encoding)
    assert (msg.height, msg.width, msg.step) == (0, shape[1], step)
    assert len(msg.data) == 0


def test_encode_header_and_msg_cls():
    header = Header(frame_id='cam')
    header.stamp.sec = 12
    msg = encode_image(np.ones((2, 3), np.uint8), 'mono8', header=header)
    assert msg.header.frame_id == 'cam' and msg.header.stamp.sec == 12

    plain = encode_image(np.ones((2, 3), np.uint16), '16UC1', msg_cls=types.SimpleNamespace)
    assert isinstance(plain, types.SimpleNamespace)
    assert (plain.height, plain.width, plain.step, plain.encoding) == (2, 3, 6, '16UC1')
    assert not hasattr(plain, 'header')
    np.testing.assert_array_equal(decode_image(plain), np.ones((2, 3), np.uint16))


def test_encode_single_channel_hw1_and_non_contiguous_and_byteswapped():
    base = np.arange(24, dtype=np.uint16).reshape(4, 6)
    msg = encode_image(base[:, ::2], 'mono16')
    assert (msg.width, msg.step) == (3, 6)
    np.testing.assert_array_equal(decode_image(msg), base[:, ::2])

    msg = encode_image(base[..., None], '16UC1')
    assert decode_image(msg).shape == (4, 6)

    swapped = base.astype('>u2')
    msg = encode_image(swapped, '16UC1')
    assert msg.is_bigendian == int(HOST_BIG)
    np.testing.assert_array_equal(decode_image(msg), base)


@pytest.mark.parametrize(
    'image, encoding, exc, text',
    [
        (np.zeros((2, 2), np.uint8), 'yuv422', ValueError, "unsupported encoding 'yuv422'"),
        ([[1, 2]], 'mono8', TypeError, 'image must be a numpy array, got list'),
        (
            np.zeros((2, 2), np.float64),
            '32FC1',
            ValueError,
            "'32FC1' needs dtype float32, got float64",
        ),
        (np.zeros((2, 2), np.uint8), '16UC1', ValueError, "'16UC1' needs dtype uint16, got uint8"),
        (
            np.zeros((2, 2), np.uint8),
            'bgr8',
            ValueError,
            "'bgr8' needs shape (H, W, 3), got (2, 2)",
        ),
        (
            np.zeros((2, 2, 4), np.uint8),
            'rgb8',
            ValueError,
            "'rgb8' needs shape (H, W, 3), got (2, 2, 4)",
        ),
        (
            np.zeros((2, 2, 3), np.uint8),
            'mono8',
            ValueError,
            'needs shape (H, W) or (H, W, 1), got (2, 2, 3)',
        ),
    ],
)
def test_encode_errors(image, encoding, exc, text):
    with pytest.raises(exc) as info:
        encode_image(image, encoding)
    assert text in str(info.value)


# --- decode: layout, byte order, buffers -------------------------------------


def test_decode_padded_step_skips_junk():
    # bgr8 2x3: 9 pixel bytes per row + 3 bytes of 0xEE padding.
    rows = [bytes(range(1, 10)), bytes(range(11, 20))]
    data = b''.join(row + b'\xee' * 3 for row in rows)
    out = decode_image(make_msg('bgr8', 2, 3, 12, data))
    expected = np.array([list(range(1, 10)), list(range(11, 20))], np.uint8).reshape(2, 3, 3)
    np.testing.assert_array_equal(out, expected)
    assert out.flags.c_contiguous and not (out == 0xEE).any()


def test_decode_odd_step_16bit():
    # Padding of one byte leaves rows 2-byte misaligned; must still decode.
    data = struct.pack('<3H', 1, 2, 3) + b'\x99' + struct.pack('<3H', 400, 500, 65535) + b'\x99'
    out = decode_image(make_msg('mono16', 2, 3, 7, data))
    np.testing.assert_array_equal(out, [[1, 2, 3], [400, 500, 65535]])


@pytest.mark.parametrize('encoding', ['mono16', '16UC1'])
def test_decode_big_endian_16bit(encoding):
    data = struct.pack('>4H', 1, 258, 4660, 65534)
    out = decode_image(make_msg(encoding, 2, 2, 4, data, big=True))
    assert out.dtype == np.uint16 and out.dtype.isnative
    np.testing.assert_array_equal(out, [[1, 258], [4660, 65534]])


def test_decode_big_endian_float_with_padding():
    data = struct.pack('>2f', 1.5, -2.25) + b'\x00\x01' + struct.pack('>2f', 3.0e-3, 1e6) + b'\x02\x03'
    out = decode_image(make_msg('32FC1', 2, 2, 10, data, big=True))
    assert out.dtype == np.float32 and out.dtype.isnative
    np.testing.assert_array_equal(out, np.array([[1.5, -2.25], [3.0e-3, 1e6]], np.float32))


def test_decode_big_endian_flag_ignored_for_8bit():
    out = decode_image(make_msg('rgb8', 1, 2, 6, bytes([1, 2, 3, 4, 5, 6]), big=True))
    np.testing.assert_array_equal(out, [[[1, 2, 3], [4, 5, 6]]])


def test_decode_accepts_oversized_data():
    out = decode_image(make_msg('mono8', 2, 2, 2, bytes([1, 2, 3, 4, 9, 9, 9])))
    np.testing.assert_array_equal(out, [[1, 2], [3, 4]])


@pytest.mark.parametrize(
    'convert',
    [
        bytes,
        bytearray,
        lambda b: array.array('B', b),
        list,
        tuple,
        memoryview,
        lambda b: np.frombuffer(b, np.uint8).copy(),
    ],
    ids=['bytes', 'bytearray', 'array', 'list', 'tuple', 'memoryview', 'ndarray'],
)
def test_decode_data_container_types(convert):
    raw = struct.pack('<6H', 0, 1, 2, 1000, 2000, 65535)
    msg = types.SimpleNamespace(encoding='16UC1', height=2, width=3, step=6, is_bigendian=0, data=convert(raw))
    out = decode_image(msg)
    np.testing.assert_array_equal(out, [[0, 1, 2], [1000, 2000, 65535]])


def test_decoded_array_owns_memory_and_outlives_message():
    data = bytearray(range(12))
    msg = types.SimpleNamespace(encoding='mono8', height=3, width=4, step=4, is_bigendian=0, data=data)
    out = decode_image(msg)
    assert out.flags.owndata and out.flags.writeable
    data[:] = b'\xff' * 12  # publisher reuses its buffer
    del msg, data
    gc.collect()
    np.testing.assert_array_equal(out, np.arange(12, dtype=np.uint8).reshape(3, 4))
    out[0, 0] = 7  # writable without touching any message


# --- decode errors -----------------------------------------------------------


@pytest.mark.parametrize(
    'msg, reason, text',
    [
        (
            make_msg('yuv422', 2, 2, 4, bytes(8)),
            'unknown_encoding',
            "unsupported encoding 'yuv422'; supported: 16UC1,",
        ),
        (make_msg('', 2, 2, 4, bytes(8)), 'unknown_encoding', "unsupported encoding ''"),
        (
            make_msg('mono8', 0, 640, 640, b''),
            'zero_size',
            'image has zero size: height 0, width 640',
        ),
        (
            make_msg('bgr8', 480, 0, 0, b''),
            'zero_size',
            'image has zero size: height 480, width 0',
        ),
        (
            make_msg('bgr8', 1, 640, 1919, bytes(1919)),
            'bad_step',
            'step 1919 < width 640 * 3 channels * 1 byte = 1920',
        ),
        (
            make_msg('mono16', 1, 10, 19, bytes(19)),
            'bad_step',
            'step 19 < width 10 * 1 channel * 2 bytes = 20',
        ),
        (
            make_msg('32FC1', 2, 3, 12, bytes(23)),
            'short_data',
            'data has 23 bytes < step 12 * height 2 = 24',
        ),
        (
            make_msg('mono8', 2, 3, 4, bytes(7)),
            'short_data',
            'data has 7 bytes < step 4 * height 2 = 8',
        ),
    ],
    ids=[
        'unknown',
        'empty-encoding',
        'zero-height',
        'zero-width',
        'step-8bit',
        'step-16bit',
        'short',
        'short-padded',
    ],
)
def test_decode_errors(msg, reason, text):
    with pytest.raises(ImageDecodeError) as info:
        decode_image(msg)
    assert info.value.reason == reason
    assert reason in DECODE_ERROR_REASONS
    assert text in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    'data, text',
    [
        ([1, 2, 300, 4], 'data list is not all ints in [0, 255]'),
        (object(), 'data of type object is not a byte buffer'),
        (np.zeros(4, np.uint16), 'data array has dtype uint16, expected uint8'),
    ],
)
def test_decode_bad_data(data, text):
    msg = types.SimpleNamespace(encoding='mono8', height=2, width=2, step=2, is_bigendian=0, data=data)
    with pytest.raises(ImageDecodeError) as info:
        decode_image(msg)
    assert info.value.reason == 'bad_data'
    assert text in str(info.value)


# --- depth -------------------------------------------------------------------


@pytest.mark.parametrize('encoding', ['16UC1'])
@pytest.mark.parametrize('big', [False, True])
def test_depth_millimetres_to_metres(encoding, big):
    mm = [0, 1, 1500, 65535]
    data = struct.pack(('>' if big else '<') + '4H', *mm)
    depth = decode_depth_m(make_msg(encoding, 2, 2, 4, data, big=big))
    assert depth.dtype == np.float32 and depth.shape == (2, 2)
    assert np.isnan(depth[0, 0])
    np.testing.assert_array_equal(depth.ravel()[1:], np.float32([0.001, 1.5, 65.535]))


def test_depth_float_metres_invalid_to_nan():
    values = [0.0, -0.0, np.nan, np.inf, -np.inf, 2.5, 0.25, -1.0]
    depth = decode_depth_m(make_msg('32FC1', 2, 4, 16, struct.pack('<8f', *values)))
    assert depth.dtype == np.float32 and depth.shape == (2, 4)
    np.testing.assert_array_equal(np.isnan(depth).ravel(), [1, 1, 1, 1, 1, 0, 0, 1])
    np.testing.assert_array_equal(depth.ravel()[5:7], np.float32([2.5, 0.25]))


def test_depth_from_encoded_round_trip():
    mm = np.array([[0, 250], [1000, 4321]], np.uint16)
    depth = decode_depth_m(encode_image(mm, '16UC1'))
    np.testing.assert_allclose(depth, [[np.nan, 0.25], [1.0, 4.321]], rtol=1e-7)


@pytest.mark.parametrize('encoding', ['bgr8', 'mono8', '8UC1', 'mono16', 'yuv422'])
def test_depth_rejects_non_depth(encoding):
    with pytest.raises(ImageDecodeError) as info:
        decode_depth_m(make_msg(encoding, 1, 1, 3, bytes(3)))
    assert info.value.reason == 'not_depth'
    assert f'encoding {encoding!r} is not a depth encoding; expected one of 16UC1, 32FC1' in str(info.value)


def test_depth_propagates_decode_errors():
    with pytest.raises(ImageDecodeError) as info:
        decode_depth_m(make_msg('16UC1', 2, 2, 4, bytes(6)))
    assert info.value.reason == 'short_data'


# --- cv_bridge comparison ------------------------------------------------------

# Probed against PyPI cv-bridge 1.13.0.post0 with numpy 2 / OpenCV 5: it decodes
# these correctly only with native (little-endian) data and unpadded step. It is
# wrong for 16UC1 (uint8), padded step (ignored), any multi-channel encoding
# (OpenCV 5 channel bits) and big-endian data (ndarray.newbyteorder is gone).
CV_BRIDGE_CORRECT = ['mono8', '8UC1', 'mono16', '32FC1']


@pytest.mark.skipif(HOST_BIG, reason='cv_bridge cases probed on a little-endian host')
@pytest.mark.parametrize('encoding', CV_BRIDGE_CORRECT)
def test_matches_cv_bridge(encoding):
    cv_bridge = pytest.importorskip('cv_bridge')
    image = random_image(encoding, height=6, width=9, seed=3)
    msg = encode_image(image, encoding)
    expected = cv_bridge.CvBridge().imgmsg_to_cv2(msg)
    out = decode_image(msg)
    assert out.dtype == expected.dtype and out.shape == expected.shape
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(out, image)


def test_module_imports_neither_rclpy_nor_sensor_msgs():
    code = (
        'import sys, stn_ros.bridge.image_codec, stn_ros.bridge.pointcloud_codec;'
        "print(sorted(m for m in ('rclpy', 'sensor_msgs', 'cv2', 'cv_bridge')"
        ' if m in sys.modules))'
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get('PYTHONPATH', '')]))
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True, env=env)
    assert result.stdout.strip() == '[]'


@pytest.mark.parametrize('encoding', sorted(DEPTH_ENCODINGS))
def test_depth_pixels_is_the_inverse_of_decode_depth_m(encoding):
    depth_m = np.array([[0.5, 1.2345, np.nan], [0.0, 3.0, 65.0]], np.float32)
    decoded = decode_depth_m(encode_image(depth_pixels(depth_m, encoding), encoding))
    readings = np.isfinite(depth_m) & (depth_m > 0)
    np.testing.assert_allclose(decoded[readings], depth_m[readings], atol=5e-4 if encoding == '16UC1' else 0)
    assert np.isnan(decoded[~readings]).all()
    with pytest.raises(ValueError, match='not a depth encoding'):
        depth_pixels(depth_m, 'mono16')

"""stn_node under abuse, over real topics: fuzzed images, overload, a camera that pauses, bad weights files."""

from __future__ import annotations

import array
import os
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import rclpy
import torch
from rclpy.impl.implementation_singleton import rclpy_implementation
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import Image

from images import smooth_image
from ros_harness import (
    ROOT,
    Consumer,
    NodeProcess,
    camera_qos,
    publish_and_collect,
    ros_probe,
    spin_until,
    stamp_key,
    stamped,
    subscription_reliability,
)
from stn_ros.bridge.image_codec import DEPTH_ENCODINGS, ENCODINGS, ImageDecodeError
from stn_ros.core import save_spatial_transformer
from stn_ros.perception.stn.canonicalizer import identity_model
from stn_ros.perception.stn.frame import decode_frame
from stn_ros.ros.health import NodeHealth

NODE = 'stn_node'
SEED = 20_150_605
UINT32_MAX = 2**32 - 1
UNKNOWN_ENCODINGS = ['yuv422', 'bayer_rggb8', '', 'MONO8', '32FC3', '8SC1', 'jpeg', 'bgr8 ']
FUZZ_CASES = [
    'valid',
    'unknown_encoding',
    'zero_size',
    'huge_claim',
    'wrong_step',
    'truncated',
    'oversized',
    'nan_depth',
    'big_endian_depth',
]


@pytest.fixture
def probe():
    with ros_probe('robustness_probe') as node:
        yield node


@contextmanager
def full_frame_node(probe, ns: str, *params: str) -> Iterator[tuple[NodeProcess, object, Consumer]]:
    """stn_node (one full-frame crop per image, CPU) reading ``/<ns>/image`` from a RELIABLE publisher."""
    topic = f'/{ns}/image'
    publisher = probe.create_publisher(Image, topic, camera_qos(ReliabilityPolicy.RELIABLE))
    node = NodeProcess(
        NODE,
        '-p',
        'crop_source:=full_frame',
        '-p',
        'device:=cpu',
        *params,
        '-r',
        f'image:={topic}',
        '-r',
        f'__ns:=/{ns}',
    )
    consumer = Consumer(probe, f'/{ns}/stn_node')
    try:
        # Past the node's switch to a reliable subscription: nothing published from here on is lost.
        assert spin_until(
            probe,
            lambda: (
                subscription_reliability(probe, topic) == [ReliabilityPolicy.RELIABLE]
                and publisher.get_subscription_count() == 1
            ),
            30,
        ), node.stop()
        yield node, publisher, consumer
    finally:
        output = node.stop()
        print(output)
    assert 'Traceback' not in output and 'processing failed' not in output


def diagnostics(consumer: Consumer) -> dict[str, str]:
    return consumer.latest_diagnostics('stn_node')


def count(consumer: Consumer, key: str) -> int:
    return int(diagnostics(consumer).get(key, -1))


def stamp_s(stamp: tuple[int, int]) -> float:
    return stamp[0] + stamp[1] * 1e-9


# --- 1. fuzzed images ---------------------------------------------------------------------------------


def pixel_bytes(
    rng: np.random.Generator, encoding: str, height: int, width: int, big_endian: bool, special_depth: bool
) -> bytes:
    """Random pixels of ``encoding`` in the wire byte order, rows unpadded."""
    dtype, channels = ENCODINGS[encoding]
    shape = (height, width, channels)
    if dtype.kind == 'f':
        values = rng.uniform(0.3, 2.0, shape).astype(np.float32)  # metres
        if special_depth:
            specials = np.array([np.nan, np.inf, -np.inf, 0.0, -1.0], np.float32)
            mask = rng.random(shape) < rng.choice([0.1, 0.5, 1.0])
            values[mask] = rng.choice(specials, int(mask.sum()))
    else:
        values = rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)
    return values.astype(dtype.newbyteorder('>' if big_endian else '<')).tobytes()


def fuzzed_image(rng: np.random.Generator, sec: int) -> Image:
    case = rng.choice(FUZZ_CASES)
    if case == 'nan_depth':
        encoding = '32FC1'
    elif case == 'big_endian_depth':
        encoding = str(rng.choice(sorted(DEPTH_ENCODINGS)))
    else:
        encoding = str(rng.choice(sorted(ENCODINGS)))
    dtype, channels = ENCODINGS[encoding]
    height, width = int(rng.integers(1, 48)), int(rng.integers(1, 64))
    big_endian = case == 'big_endian_depth' or rng.random() < 0.3
    row = width * channels * dtype.itemsize
    step = row + int(rng.integers(0, 9)) if rng.random() < 0.5 else row
    rows = np.frombuffer(pixel_bytes(rng, encoding, height, width, big_endian, case == 'nan_depth'), np.uint8).reshape(
        height, row
    )
    padded = rng.integers(0, 256, (height, step), dtype=np.uint8)  # padding is junk the decoder must skip
    padded[:, :row] = rows
    data = padded.tobytes()
    if case == 'unknown_encoding':
        encoding = str(rng.choice(UNKNOWN_ENCODINGS))
    elif case == 'zero_size':
        height, width = (0, width) if rng.random() < 0.5 else (height, 0)
    elif case == 'huge_claim':
        height, width = (int(rng.choice([65_536, 1_000_000, UINT32_MAX])) for _ in range(2))
        step = min(UINT32_MAX, width * channels * dtype.itemsize + int(rng.integers(0, 2)))
        data = data[: int(rng.integers(0, 64))]
    elif case == 'wrong_step':
        step = int(rng.integers(0, 2 * step + 2))
    elif case == 'truncated':
        data = data[: int(rng.integers(0, len(data)))]
    elif case == 'oversized':
        data += rng.bytes(int(rng.integers(1, 5000)))
    msg = Image(height=height, width=width, encoding=encoding, is_bigendian=int(big_endian), step=step)
    msg.data = array.array('B', data)
    msg.header.stamp.sec, msg.header.frame_id = sec, 'fuzz'
    return msg


def codec_rejects(msg: Image) -> str | None:
    """The node's own decoding of ``msg``: the bad-input reason, or None when it decodes."""
    try:
        decode_frame(msg)
    except ImageDecodeError as exc:
        return exc.reason
    return None


@pytest.mark.timeout(120)
def test_fuzzed_images_are_counted_by_reason_and_good_frames_keep_flowing(probe):
    rng = np.random.default_rng(SEED)
    fuzz = [fuzzed_image(rng, sec=2000 + i) for i in range(80)]
    reasons = [codec_rejects(msg) for msg in fuzz]
    expected = Counter(reason for reason in reasons if reason is not None)
    assert set(expected) >= {'unknown_encoding', 'zero_size', 'bad_step', 'short_data'}, expected
    assert 20 <= reasons.count(None) <= 60  # the seed gives a mix of both
    depth = [
        msg for msg, reason in zip(fuzz, reasons, strict=True) if reason is None and msg.encoding in DEPTH_ENCODINGS
    ]
    assert any(msg.is_bigendian for msg in depth) and any(np.isnan(decode_frame(msg).pixels).any() for msg in depth)
    good = [stamped(smooth_image(96, 128, 3, seed=k).astype(np.uint8), 'bgr8', sec=1000 + k) for k in range(11)]

    with full_frame_node(probe, 'fuzz', '-p', 'diagnostics_period:=0.1') as (node, publisher, consumer):
        publish_and_collect(probe, publisher, consumer, good[0])
        assert spin_until(probe, lambda: count(consumer, 'frames processed') >= 1, 10)
        spin_until(probe, lambda: False, 0.6)  # a repeat of the first frame is processed by now
        processed_before = count(consumer, 'frames processed')
        bad_so_far = 0
        for number, (msg, reason) in enumerate(zip(fuzz, reasons, strict=True)):
            # One message at a time, each seen through before the next: nothing is replaced unprocessed.
            publisher.publish(msg)
            what = (
                f'fuzzed #{number} ({msg.encoding!r} {msg.height}x{msg.width} step {msg.step} '
                f'data {len(msg.data)} big-endian {msg.is_bigendian}, codec: {reason})'
            )
            if reason is None:
                assert spin_until(probe, lambda: consumer.has(stamp_key(msg)), 10), (
                    f'no output for {what}: {diagnostics(consumer)}'
                )
                assert (consumer.tiles[stamp_key(msg)].height, consumer.records[stamp_key(msg)].width) == (32, 1)
            else:
                bad_so_far += 1
                assert spin_until(probe, lambda: count(consumer, 'bad inputs') >= bad_so_far, 10), (
                    f'not counted: {what}: {diagnostics(consumer)}'
                )
            if number % 8 == 7:
                frame = good[1 + number // 8]
                publisher.publish(frame)
                assert spin_until(probe, lambda: consumer.has(stamp_key(frame)), 10), f'no output after {what}'
        assert node.alive()

        decodable = reasons.count(None) + len(fuzz) // 8
        spin_until(probe, lambda: count(consumer, 'frames processed') - processed_before >= decodable, 5)
        values = diagnostics(consumer)
        counted = {
            key.removeprefix('bad input: '): int(value)
            for key, value in values.items()
            if key.startswith('bad input: ')
        }
        assert counted == dict(expected) and int(values['bad inputs']) == sum(expected.values()) == bad_so_far
        assert int(values['frames processed']) - processed_before == decodable
        assert int(values['frames dropped (latest wins)']) == 0
        assert not any(stamp_key(msg) in consumer.tiles for msg, reason in zip(fuzz, reasons, strict=True) if reason)


# --- 2. overload ----------------------------------------------------------------------------------------

FLOOD_S, FLOOD_HZ = 3.0, 1500  # a 640x480 full frame takes the node 2.5-4 ms on an idle core here, ~50 ms when busy


def flood(probe, publisher, msg: Image, seconds: float) -> tuple[list[tuple[int, int]], int]:
    """Publish ``msg`` restamped at FLOOD_HZ for ``seconds``, receiving outputs in between (so that their
    arrival times are true). Returns the stamps sent and how many writes DDS refused: with the reader
    starved of CPU the shared-memory segment can run full, as it would for a real camera."""
    published, refused = [], 0
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        msg.header.stamp = probe.get_clock().now().to_msg()
        try:
            publisher.publish(msg)
            published.append(stamp_key(msg))
        except rclpy_implementation.RCLError:
            refused += 1
        next_frame = started + (len(published) + refused) / FLOOD_HZ
        while (wait := next_frame - time.monotonic()) > 0:
            rclpy.spin_once(probe, timeout_sec=wait)
    return published, refused


@pytest.mark.timeout(90)
def test_overload_drops_stale_frames_keeps_latency_bounded_and_counts_the_drops(probe):
    msg = stamped(smooth_image(480, 640, 3).astype(np.uint8), 'bgr8', sec=1)
    with full_frame_node(probe, 'flood') as (node, publisher, consumer):
        msg.header.stamp = probe.get_clock().now().to_msg()
        publish_and_collect(probe, publisher, consumer, msg)
        published, refused = flood(probe, publisher, msg, FLOOD_S)
        assert spin_until(probe, lambda: consumer.has(published[-1]), 10), 'the latest frame was not processed'
        assert node.alive()

        outputs = [stamp for stamp in published if stamp in consumer.record_arrivals]
        ages = [consumer.record_arrivals[stamp] - stamp_s(stamp) for stamp in outputs]
        print(
            f'{len(published)} frames sent ({refused} refused), {len(outputs)} outputs, '
            f'age median {np.median(ages):.3f} s, max {max(ages):.3f} s'
        )
        assert len(published) >= FLOOD_S * FLOOD_HZ / 4  # far more than the node can take (< 250 Hz)
        assert 3 <= len(outputs) < 0.75 * len(published)  # overloaded, and still making progress
        assert max(ages) < 1.5  # bounded: no queue builds up (a few processing times, with margin for a busy CI)

        # Every frame the node received was processed or counted as dropped (a newer one replaced it).
        def accounted(values):
            return bool(values) and int(values['frames received']) == int(values['frames processed']) + int(
                values['frames dropped (latest wins)']
            ) + int(values['bad inputs'])

        assert spin_until(
            probe,
            lambda: (
                accounted(diagnostics(consumer)) and int(diagnostics(consumer)['frames processed']) >= len(outputs) + 1
            ),
            5,
        ), diagnostics(consumer)
        values = diagnostics(consumer)
        print(values)
        assert int(values['frames dropped (latest wins)']) >= 1 and int(values['bad inputs']) == 0, values
        assert float(values['latency p99 (ms)']) < 1000.0, values

        flood(probe, publisher, msg, 1.0)
        node.stop()  # while it is busy: a clean exit (checked on leaving the block)
        assert node.process.returncode == 0, node.output


# --- 3. a camera that pauses ----------------------------------------------------------------------------

PAUSE_S = NodeHealth().stale_after_s + 1.0  # the gap threshold is not a node parameter


@pytest.mark.timeout(90)
def test_a_camera_pause_is_reported_as_a_gap_and_output_resumes(probe):
    picture = smooth_image(96, 128).astype(np.uint8)
    with full_frame_node(probe, 'pause', '-p', 'diagnostics_period:=0.25') as (node, publisher, consumer):
        publish_and_collect(probe, publisher, consumer, stamped(picture, 'mono8', sec=1))

        def stream(first_sec: int, frames: int = 10) -> tuple[list[Image], list[float]]:
            sent, times = [], []
            for k in range(frames):
                sent.append(stamped(picture, 'mono8', sec=first_sec + k))
                publisher.publish(sent[-1])
                times.append(time.monotonic())
                spin_until(probe, lambda: False, 0.1)  # ~10 Hz
            return sent, times

        before, before_times = stream(100)
        paused_statuses = []
        spin_until(
            probe,
            lambda: False,
            PAUSE_S - 0.1,
            step=lambda: paused_statuses.append(diagnostics(consumer).get('_message')),
        )
        after, after_times = stream(200)
        pause = after_times[0] - before_times[-1]

        assert spin_until(probe, lambda: consumer.has(stamp_key(after[-1])), 10)
        for sent in (before, after):  # at 10 Hz a dropped frame is rare, not forbidden (latest wins)
            assert sum(consumer.has(stamp_key(msg)) for msg in sent) >= 8
        assert any(message.startswith('no input for') for message in paused_statuses if message), set(paused_statuses)
        assert spin_until(probe, lambda: count(consumer, 'input gaps') >= 1, 5)
        values = diagnostics(consumer)
        assert int(values['input gaps']) == 1, values
        assert abs(float(values['longest input gap (s)']) - pause) < 0.3, (pause, values)
        assert node.alive()


# --- 4. weights files -------------------------------------------------------------------------------------


def stn_checkpoint(tmp_path, name='stn.pt', metadata=None):
    path = tmp_path / name
    save_spatial_transformer(identity_model(), path, metadata)
    return path


def truncated(tmp_path):
    data = stn_checkpoint(tmp_path, 'whole.pt').read_bytes()
    path = tmp_path / 'truncated.pt'
    path.write_bytes(data[: len(data) // 2])
    return path


def wrong_shape(tmp_path):
    path = stn_checkpoint(tmp_path)
    blob = torch.load(path, weights_only=True)
    name, tensor = next(iter(blob['state_dict'].items()))
    blob['state_dict'][name] = torch.zeros((tensor.shape[0] + 1,) + tuple(tensor.shape[1:]))
    torch.save(blob, path)
    return path


def bad_metadata(tmp_path):
    path = stn_checkpoint(tmp_path)
    blob = torch.load(path, weights_only=True)
    blob['metadata'] = 5
    torch.save(blob, path)
    return path


class RunsCode:
    """Pickles as a call of ``os.system``: what a malicious weights file holds."""

    def __reduce__(self):
        return os.system, ('echo this must never run',)


def pickled_code(tmp_path):
    blob = torch.load(stn_checkpoint(tmp_path), weights_only=True)
    blob['metadata'] = {'card': RunsCode()}
    torch.save(blob, tmp_path / 'code.pt')
    return tmp_path / 'code.pt'


def write(tmp_path, data: bytes):
    (tmp_path / 'file.pt').write_bytes(data)
    return tmp_path / 'file.pt'


WEIGHTS = {
    'random bytes': (
        lambda tmp: write(tmp, np.random.default_rng(SEED).bytes(4096)),
        'not a readable torch checkpoint',
    ),
    'empty file': (lambda tmp: write(tmp, b''), 'not a readable torch checkpoint'),
    'truncated checkpoint': (truncated, 'not a readable torch checkpoint'),
    'GQ-CNN checkpoint': (lambda tmp: ROOT / 'weights' / 'gqcnn.pt', 'not an stn_ros Spatial Transformer checkpoint'),
    'state_dict of the wrong shape': (wrong_shape, 'does not match its own config'),
    'metadata not a dict': (bad_metadata, 'metadata'),
    'roi_side_m not a number': (lambda tmp: stn_checkpoint(tmp, metadata={'roi_side_m': [0.1]}), 'roi_side_m'),
    'pickled code': (pickled_code, 'names code to run when loaded, refused (Trying to load unsupported GLOBAL'),
}


def gqcnn_wrong_shape(tmp_path):
    blob = torch.load(ROOT / 'weights' / 'gqcnn.pt', weights_only=True)
    name = next(iter(blob['state_dict']))
    blob['state_dict'][name] = torch.zeros(3, 3)
    torch.save(blob, tmp_path / 'gqcnn.pt')
    return tmp_path / 'gqcnn.pt'


GQCNN_WEIGHTS = {
    'random bytes': (
        lambda tmp: write(tmp, np.random.default_rng(SEED).bytes(4096)),
        'not a readable torch checkpoint',
    ),
    'STN checkpoint': (stn_checkpoint, 'not an stn_ros GQ-CNN checkpoint'),
    'state_dict of the wrong shape': (gqcnn_wrong_shape, 'does not match its own config'),
}


BAD_WEIGHTS = [(NODE, case, *WEIGHTS[case]) for case in WEIGHTS] + [
    ('grasp_quality_node', case, *GQCNN_WEIGHTS[case]) for case in GQCNN_WEIGHTS
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize('executable,case,make,message', BAD_WEIGHTS, ids=[f'{e}: {c}' for e, c, _, _ in BAD_WEIGHTS])
def test_a_bad_weights_file_is_one_clear_start_up_error(tmp_path, executable, case, make, message):
    path = make(tmp_path)
    node = NodeProcess(
        executable, '-p', f'weights:={path}', '-p', 'device:=cpu', params_file=ROOT / 'config' / f'{executable}.yaml'
    )
    try:
        assert node.wait(timeout=45) == 1, node.output
    finally:
        node.stop()
    lines = [line for line in node.output.splitlines() if 'cannot start' in line]
    assert len(lines) == 1 and message in lines[0] and str(path) in lines[0], node.output
    assert 'torch.load' not in lines[0] and 'weights_only' not in lines[0]  # never advice to load unsafely
    assert 'this must never run' not in node.output
    assert 'Traceback' not in node.output

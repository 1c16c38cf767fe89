"""Self-check: real ROS 2 (rclpy) starts on loopback, and ``stn_node``'s own per-frame path canonicalizes a frame.

The frame is a synthetic depth scene encoded as the ``sensor_msgs/Image`` (``16UC1``) and ``CameraInfo`` a camera
publishes; the node's steps (:class:`~stn_ros.perception.stn.steps.StnPipeline`: decode, proposals, the shipped
grasp STN with the node's declared defaults, which ``config/stn_node.yaml`` sets too; the messages it publishes)
run on it as ``stn_node`` runs them, without a graph. Two checks: the published transforms record reproduces every
crop of the published tile (``cv2.warpPerspective`` with its ``H``, what a consumer does), and the torch sampler (the
CUDA path) gives the crops of the OpenCV one (the CPU path). Writes the node's debug picture (each crop's sampling
quadrilateral) above the crops.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from stn_ros.ros.loopback_env import apply_loopback_ros_env

DEPTH_TOLERANCE_M = 0.001
"""Crops of the two samplers, and of the tile and the published ``H``, agree within a millimetre where both have a
reading (OpenCV interpolates with 1/32-pixel fixed-point weights, torch exactly), as the device agreement asks."""


def check_ros() -> str:
    """Start rclpy on loopback, make a node with a publisher, shut down; returns the RMW name."""
    import rclpy
    from rclpy.utilities import get_rmw_implementation_identifier
    from sensor_msgs.msg import Image

    rclpy.init()
    try:
        node = rclpy.create_node('stn_selfcheck')
        node.create_publisher(Image, '~/probe', 1)
        node.destroy_node()
        return get_rmw_implementation_identifier()
    finally:
        rclpy.shutdown()


def camera_messages(seed: int = 1) -> tuple[object, object]:
    """``(Image 16UC1, CameraInfo)`` of one synthetic prism scene, with one header, as ``synthetic_camera``
    publishes them."""
    from builtin_interfaces.msg import Time
    from sensor_msgs.msg import CameraInfo
    from std_msgs.msg import Header

    from stn_ros.bridge.camera_info import camera_info_message
    from stn_ros.bridge.image_codec import encode_image
    from stn_ros.sim.prisms.camera_frames import synthetic_frame

    frame = synthetic_frame(seed, 0, '16UC1')
    header = Header(stamp=Time(sec=1, nanosec=0), frame_id='camera_depth_optical_frame')
    return encode_image(frame.depth, '16UC1', header=header), camera_info_message(
        frame.scene.camera, header, CameraInfo
    )


def difference(first: np.ndarray, second: np.ndarray) -> tuple[float, int]:
    """The largest difference of two sets of depth crops where both have a reading, and how many pixels only one
    has."""
    both = np.isfinite(first) & np.isfinite(second)
    return float(np.abs(first - second)[both].max(initial=0.0)), int((np.isfinite(first) != np.isfinite(second)).sum())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Check the installation: rclpy on loopback, and stn_node's own per-frame steps (the shipped "
        'grasp STN, the default parameters) on a synthetic depth frame; writes a picture of the crops.'
    )
    parser.add_argument(
        '--output',
        type=Path,
        default=Path('out/selfcheck.png'),
        help='where to write the picture (default: %(default)s)',
    )
    parser.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N (default: %(default)s)')
    args = parser.parse_args(argv)

    apply_loopback_ros_env()
    rmw = check_ros()
    print(f'rclpy: ok ({rmw}, loopback only)')

    from stn_ros.bridge.camera_info import PinholeCamera
    from stn_ros.bridge.image_codec import decode_image
    from stn_ros.bridge.pointcloud_codec import decode_pointcloud
    from stn_ros.core import resolve_device
    from stn_ros.core.sampler import warp_perspective_opencv
    from stn_ros.perception.frame_report import FrameReport
    from stn_ros.perception.stn.canonicalizer import load_model
    from stn_ros.perception.stn.steps import StnPipeline, debug_picture, stn_messages
    from stn_ros.perception.stn.transforms_record import parse_record
    from stn_ros.perception.visualize import crop_strip, stack_panels
    from stn_ros.ros.parameter_specs import default_values, gripper_from
    from stn_ros.ros.stn_parameters import PARAMETERS

    device = resolve_device(args.device)
    values = default_values(PARAMETERS)  # what stn_node runs with when nothing is set
    size = tuple(values['output_size'])
    model = load_model(values['weights'])
    if model.warning:
        print(f'note: {model.warning}')
    image_msg, info_msg = camera_messages()
    camera = (PinholeCamera.from_camera_info(info_msg), info_msg.header.frame_id)
    pipeline = StnPipeline.for_gripper(model, device, size, gripper_from(values))
    report = FrameReport()
    started = time.perf_counter()
    frame = pipeline.decode(image_msg, report)
    result = pipeline.canonicalize(frame, image_msg, values, camera, report) if frame is not None else None
    if result is None:
        print(f'FAILED: stn_node steps gave no crops: {report.last_messages}', file=sys.stderr)
        return 1
    tile_msg, record_msg = stn_messages(result.tile, frame.tile_encoding, result.record, image_msg.header)
    elapsed_ms = (time.perf_counter() - started) * 1e3
    count = len(result.crops)
    print(
        f'stn_node steps on {device}: {model.description}; {image_msg.width}x{image_msg.height} {image_msg.encoding} '
        f'-> {count // max(result.hypotheses_per_object, 1)} objects x {result.hypotheses_per_object} hypotheses = '
        f'{count} crops of {size[1]}x{size[0]} in {elapsed_ms:.0f} ms (the first frame: warm-up included)'
    )

    # What a consumer gets: the tile and the record, decoded; each crop again from the source through its H.
    tile = decode_image(tile_msg).reshape(count, *size)
    homographies = parse_record(decode_pointcloud(record_msg)).homographies
    again = warp_perspective_opencv(frame.pixels, homographies, size, border_value=float('nan'))
    record_diff, record_nan = difference(tile, again)
    print(
        f'the published H reproduces the tile: max difference {record_diff * 1e3:.4f} mm, {record_nan} NaN mismatches'
    )
    # The other sampler (the node takes OpenCV on a CPU, torch on CUDA) on the same frame: the same crops.
    other = 'torch' if pipeline.canonicalizer.sampler == 'opencv' else 'opencv'
    other_pipeline = StnPipeline.for_gripper(model, device, size, gripper_from(values), sampler=other)
    other_result = other_pipeline.canonicalize(frame, image_msg, values, camera, FrameReport())
    sampler_diff, sampler_nan = difference(result.crops, other_result.crops)
    print(
        f'{pipeline.canonicalizer.sampler} vs {other} sampling: max difference {sampler_diff * 1e3:.4f} mm, '
        f'{sampler_nan} NaN mismatches'
    )

    picture = debug_picture(frame, result)
    picture = stack_panels(picture, crop_strip(result.crops, max_width=picture.shape[1]))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.output), picture)
    print(f'picture: {args.output.resolve()}')
    failed = [
        what
        for what, (diff, nan) in {
            'the published H does not reproduce the tile': (record_diff, record_nan),
            'the torch and OpenCV samplers disagree': (sampler_diff, sampler_nan),
        }.items()
        if diff > DEPTH_TOLERANCE_M or nan
    ]
    if report.bad_inputs or not count:
        failed.append(f'stn_node steps: {count} crops, bad inputs {dict(report.bad_inputs)}')
    for what in failed:
        print(f'FAILED: {what}', file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())

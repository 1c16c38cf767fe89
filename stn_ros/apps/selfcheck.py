"""Self-check: real ROS 2 (rclpy) starts on loopback, and one STN forward pass canonicalizes crops.

Writes a picture of the crops' sampling quadrilaterals on a synthetic image and the crops themselves.
The STN is identity-initialised (untrained): each crop is its ROI, sampled once from the source by
both the torch and the OpenCV path, which must agree.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from stn_ros.ros.loopback_env import apply_loopback_ros_env


def synthetic_scene(height: int = 480, width: int = 640, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A grey image with a few rotated boxes and discs; returns ``(image uint8, rois (N, 4))``."""
    rng = np.random.default_rng(seed)
    image = np.full((height, width), 40, np.uint8)
    image += rng.integers(0, 12, size=image.shape, dtype=np.uint8)
    rois = []
    for index in range(4):
        mask = np.zeros_like(image)
        center = (float(rng.uniform(90, width - 90)), float(rng.uniform(90, height - 90)))
        if index % 2 == 0:
            box = cv2.boxPoints((center, tuple(rng.uniform(40, 110, 2)), float(rng.uniform(0, 180))))
            cv2.fillConvexPoly(mask, np.round(box).astype(np.int32), 255)
        else:
            cv2.circle(mask, (int(center[0]), int(center[1])), int(rng.uniform(20, 50)), 255, -1)
        image[mask > 0] = int(rng.integers(120, 250))
        x, y, w, h = cv2.boundingRect(mask)
        side = max(w, h) + 10
        rois.append([x + w / 2 - side / 2, y + h / 2 - side / 2, side, side])
    return image, np.asarray(rois, np.float32)


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description='Check the installation: rclpy on loopback and one STN forward pass over crops '
        'of a synthetic image; writes a picture of the crops.'
    )
    parser.add_argument(
        '--output',
        type=Path,
        default=Path('out/selfcheck.png'),
        help='where to write the picture (default: %(default)s)',
    )
    parser.add_argument('--family', default='similarity', help='transform family (default: %(default)s)')
    parser.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N (default: %(default)s)')
    args = parser.parse_args(argv)

    apply_loopback_ros_env()
    rmw = check_ros()
    print(f'rclpy: ok ({rmw}, loopback only)')

    from stn_ros.core import SpatialTransformer, canonicalize_crops, canonicalize_crops_opencv, resolve_device
    from stn_ros.perception.visualize import crop_quadrilaterals, crop_strip, draw_quadrilaterals, stack_panels

    device = resolve_device(args.device)
    image, rois = synthetic_scene()
    stn = SpatialTransformer(args.family, output_size=(64, 64), input_mean=128.0, input_std=64.0).eval()
    started = time.perf_counter()
    crops, transforms = canonicalize_crops_opencv(stn, image, torch.from_numpy(rois))
    elapsed_ms = (time.perf_counter() - started) * 1e3
    with torch.no_grad():
        stn_device = stn.to(device)
        source = torch.from_numpy(image).to(device).float()[None]
        torch_crops, _ = canonicalize_crops(stn_device, source, torch.from_numpy(rois).to(device))
    difference = float(np.abs(torch_crops[:, 0].cpu().numpy() - crops.astype(np.float32)).max())
    print(
        f'STN ({args.family}, identity-initialised) on {device}: {len(rois)} crops of 64x64 from '
        f'{image.shape[1]}x{image.shape[0]} in {elapsed_ms:.1f} ms; torch vs OpenCV sampling: max '
        f'difference {difference:.2f} grey levels'
    )
    quads = crop_quadrilaterals(transforms.homographies.numpy(), (64, 64))
    picture = stack_panels(draw_quadrilaterals(image, quads), crop_strip(crops, max_width=image.shape[1]))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.output), picture)
    print(f'picture: {args.output.resolve()}')
    if difference > 2.0:  # OpenCV interpolates with 1/32-pixel fixed-point weights; torch exactly
        print('FAILED: torch and OpenCV sampling disagree', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())

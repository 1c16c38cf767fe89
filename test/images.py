"""Test images: smooth content (bilinear sampling of them is well-conditioned), depth tables with boxes."""

import numpy as np

from stn_ros.bridge.camera_info import PinholeCamera
from stn_ros.bridge.image_codec import encode_image
from stn_ros.evaluation.device_agreement import DuckImage
from stn_ros.perception.stn.frame import decode_frame


def smooth_image(height: int, width: int, channels: int = 0, seed: int = 0) -> np.ndarray:
    """Float32 image of low-frequency sinusoids in 0..255, ``(H, W)`` or ``(H, W, C)``."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    planes = []
    for _ in range(max(channels, 1)):
        image = np.zeros((height, width))
        for _ in range(3):
            fx, fy = rng.uniform(0.02, 0.08, 2)
            phase = rng.uniform(0, 2 * np.pi)
            image += np.sin(fx * xs + fy * ys + phase)
        planes.append(127.5 + 40.0 * image)
    stacked = np.stack(planes, axis=-1) if channels else planes[0]
    return stacked.astype(np.float32)


def depth_scene(boxes, height=480, width=640, table_m=0.75) -> np.ndarray:
    """Millimetre depth of a table with boxes (x, y, w, h in pixels, height above the table in m)."""
    depth = np.full((height, width), table_m, np.float64)
    for x, y, w, h, above in boxes:
        depth[y : y + h, x : x + w] = table_m - above
    rng = np.random.default_rng(1)
    depth += rng.normal(0, 0.001, depth.shape)
    mm = np.round(depth * 1000).astype(np.uint16)
    mm[rng.random(mm.shape) < 0.01] = 0  # dropouts
    return mm


CAMERA = PinholeCamera(525.0, 525.0, 319.5, 239.5, 640, 480)


def boxes_depth_frame(objects: int):
    """A decoded 640x480 16UC1 frame of ``objects`` boxes on a table (1 % dropouts) and their boxes (x, y, w, h).
    Decoded from a duck-typed Image, so a machine without ROS (``sensor_msgs``) makes it too."""
    depth = np.full((480, 640), 0.75)
    rng = np.random.default_rng(objects)
    boxes = []
    for index in range(objects):
        x, y = 20 + (index % 8) * 75, 30 + (index // 8) * 140
        w, h = (int(v) for v in rng.integers(25, 60, 2))
        depth[y : y + h, x : x + w] = 0.75 - rng.uniform(0.02, 0.08)
        boxes.append((x, y, w, h))
    mm = np.round(depth * 1000).astype(np.uint16)
    mm[rng.random(mm.shape) < 0.01] = 0
    return decode_frame(encode_image(mm, '16UC1', msg_cls=DuckImage)), np.array(boxes, np.float32)

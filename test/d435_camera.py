"""A D435-class active stereo depth camera's frames and camera_info (not the package's own synthetic ones):
848x480 16UC1 millimetres, noise growing with depth, holes, shadows beside objects, flying pixels on edges."""

import numpy as np
from sensor_msgs.msg import CameraInfo

WIDTH, HEIGHT = 848, 480
FX = FY = 424.0  # a D435's depth intrinsics at 848x480, roughly
CX, CY = 423.5, 239.5
BOXES = [(300, 150, 120, 90, 0.06), (520, 260, 80, 80, 0.10)]  # x, y, w, h pixels; height above the table, m


def d435_like_depth(seed: int = 0, table_m: float = 0.72) -> np.ndarray:
    """``(480, 848)`` uint16 mm: a slightly tilted table with boxes, as an active stereo camera sees it."""
    rng = np.random.default_rng(seed)
    rows = np.arange(HEIGHT, dtype=np.float64)[:, None]
    depth = np.repeat(table_m + 0.00008 * (rows - CY), WIDTH, axis=1)  # tilted a little
    for x, y, w, h, above in BOXES:
        depth[y : y + h, x : x + w] = table_m - above
    edges = np.zeros(depth.shape, bool)
    for x, y, w, h, _ in BOXES:
        edges[y : y + h, x - 1 : x + 1] = edges[y : y + h, x + w - 1 : x + w + 1] = True
    flying = edges & (rng.random(depth.shape) < 0.5)  # flying pixels: between object and table
    depth[flying] = table_m - rng.uniform(0.0, 0.05, flying.sum())
    depth += rng.normal(0.0, 1.0, depth.shape) * 0.002 * depth**2  # stereo noise grows with depth squared
    mm = np.round(depth * 1000.0).astype(np.uint16)
    for x, y, _, h, _ in BOXES:
        mm[y : y + h, x - 6 : x] = 0  # the projector's shadow left of each object
    mm[rng.random(mm.shape) < 0.02] = 0  # holes
    mm[:, :8] = 0  # the left band a stereo pair cannot match
    return mm


def camera_info(fx=FX, fy=FY, cx=CX, cy=CY, width=WIDTH, height=HEIGHT, frame_id='camera_depth_optical_frame'):
    info = CameraInfo(width=width, height=height)
    info.k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    info.header.frame_id = frame_id
    return info

"""The benchmarks' input: a depth frame of N boxes on a table (640x480 unless asked), and its camera."""

from __future__ import annotations

import numpy as np

from stn_ros.bridge.camera_info import PinholeCamera

CAMERA = PinholeCamera(525.0, 525.0, 319.5, 239.5, 640, 480)


def camera_for(width: int, height: int) -> PinholeCamera:
    """:data:`CAMERA`'s lens on a ``width x height`` sensor (the focal length scaled with the width)."""
    scale = width / CAMERA.width
    return PinholeCamera(CAMERA.fx * scale, CAMERA.fy * scale, (width - 1) / 2, (height - 1) / 2, width, height)


def depth_frame_mm(objects: int, seed: int, width: int = 640, height: int = 480) -> np.ndarray:
    """A tilted table 0.75 m away with ``objects`` boxes on a grid, 1 mm noise, 1% dropouts (uint16 mm).

    Other sizes than 640x480 are the same scene seen by :func:`camera_for`: every length in pixels scales
    with the width.
    """
    rng = np.random.default_rng(seed)
    scale = width / 640
    rows, cols = np.mgrid[0:height, 0:width]
    depth = 0.75 + 0.0002 / scale * (rows - height / 2)  # tilted a little
    grid = int(np.ceil(np.sqrt(objects)))
    for index in range(objects):
        cell_w, cell_h = width // grid, height // grid
        w = int(rng.integers(20, min(640 // grid - 20, 140)) * scale)
        h = int(rng.integers(20, min(480 // grid - 20, 140)) * scale)
        x = (index % grid) * cell_w + int(rng.integers(5, 640 // grid - w / scale - 5) * scale)
        y = (index // grid) * cell_h + int(rng.integers(5, 480 // grid - h / scale - 5) * scale)
        depth[y : y + h, x : x + w] -= rng.uniform(0.03, 0.12)
    depth += rng.normal(0, 0.001, depth.shape)
    mm = np.round(depth * 1000).astype(np.uint16)
    mm[rng.random(mm.shape) < 0.01] = 0
    return mm

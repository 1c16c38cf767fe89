"""The benchmarks' input: a 640x480 depth frame of N boxes on a table, and its camera."""

from __future__ import annotations

import numpy as np

from stn_ros.perception.camera import PinholeCamera

CAMERA = PinholeCamera(525.0, 525.0, 319.5, 239.5, 640, 480)


def depth_frame_mm(objects: int, seed: int) -> np.ndarray:
    """A tilted table 0.75 m away with ``objects`` boxes on a grid, 1 mm noise, 1% dropouts (uint16 mm)."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:480, 0:640]
    depth = 0.75 + 0.0002 * (rows - 240)  # tilted a little
    grid = int(np.ceil(np.sqrt(objects)))
    for index in range(objects):
        cell_w, cell_h = 640 // grid, 480 // grid
        w, h = rng.integers(20, min(cell_w - 20, 140)), rng.integers(20, min(cell_h - 20, 140))
        x = (index % grid) * cell_w + rng.integers(5, cell_w - w - 5)
        y = (index // grid) * cell_h + rng.integers(5, cell_h - h - 5)
        depth[y : y + h, x : x + w] -= rng.uniform(0.03, 0.12)
    depth += rng.normal(0, 0.001, depth.shape)
    mm = np.round(depth * 1000).astype(np.uint16)
    mm[rng.random(mm.shape) < 0.01] = 0
    return mm

"""Test images with known, smooth content (bilinear sampling of them is well-conditioned)."""

import numpy as np


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

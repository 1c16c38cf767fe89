"""Bilinear sampling of one source image at many grids or homographies (torch and OpenCV paths).

Both paths follow :mod:`stn_ros.core.coords`: pixel centres at integers, zeros outside the image.
The torch path is differentiable and runs on any device; the OpenCV path is the fast CPU inference path
and samples from the published pixel-space ``H`` itself.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from stn_ros.core.coords import ALIGN_CORNERS, PADDING_MODE, normalized_to_pixel


def _as_batched_source(source: torch.Tensor) -> torch.Tensor:
    if source.ndim == 3:
        source = source.unsqueeze(0)
    if source.ndim != 4 or source.shape[0] != 1:
        raise ValueError(f'source must be one image (C, H, W) or (1, C, H, W), got {tuple(source.shape)}')
    return source


def sample_grids(source: torch.Tensor, grids: torch.Tensor) -> torch.Tensor:
    """Sample one source ``(C, H, W)`` at ``B`` normalized grids ``(B, h, w, 2)`` -> ``(B, C, h, w)``.

    The grids are stacked into one tall grid so that a single ``grid_sample`` reads the one source:
    no per-crop copy of the full-resolution image. ``B = 0`` or an empty grid gives an empty output.
    """
    source = _as_batched_source(source)
    if grids.ndim != 4 or grids.shape[-1] != 2:
        raise ValueError(f'grids must be (B, h, w, 2), got {tuple(grids.shape)}')
    batch, height, width, _ = grids.shape
    channels = source.shape[1]
    if batch * height * width == 0:
        return source.new_zeros(batch, channels, height, width)
    tall = grids.reshape(1, batch * height, width, 2).to(source.dtype)
    out = F.grid_sample(source, tall, mode='bilinear', padding_mode=PADDING_MODE,
                        align_corners=ALIGN_CORNERS)
    return out.reshape(channels, batch, height, width).transpose(0, 1)


def warp_perspective_opencv(source: np.ndarray, homographies: np.ndarray,
                            output_size: tuple[int, int]) -> np.ndarray:
    """``cv2.warpPerspective`` of ``source`` ``(H, W[, C])`` with each pixel-space ``H`` ``(B, 3, 3)``.

    Returns ``(B, h, w[, C])`` of the source dtype. ``H`` maps output pixel to source pixel (it is
    passed with ``WARP_INVERSE_MAP``), exactly as published in the transforms record.
    """
    height, width = output_size
    homographies = np.asarray(homographies, dtype=np.float64).reshape(-1, 3, 3)
    out = np.empty((len(homographies), height, width) + source.shape[2:], dtype=source.dtype)
    if height * width == 0:
        return out
    for i, h in enumerate(homographies):
        cv2.warpPerspective(source, h, (width, height), dst=out[i],
                            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out


def remap_opencv(source: np.ndarray, grids: torch.Tensor | np.ndarray) -> np.ndarray:
    """``cv2.remap`` of ``source`` ``(H, W[, C])`` at normalized grids ``(B, h, w, 2)`` (e.g. TPS)."""
    grids = torch.as_tensor(grids, dtype=torch.float64)
    to_pixel = normalized_to_pixel(*source.shape[:2], dtype=torch.float64)
    maps = (grids @ to_pixel[:2, :2].T + to_pixel[:2, 2]).to(torch.float32).numpy()
    batch, height, width = maps.shape[:3]
    out = np.zeros((batch, height, width) + source.shape[2:], dtype=source.dtype)
    if height * width == 0:
        return out
    for i in range(batch):
        cv2.remap(source, maps[i, ..., 0], maps[i, ..., 1], cv2.INTER_LINEAR, dst=out[i],
                  borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out

"""Bilinear sampling of one source image at many grids or homographies (torch and OpenCV paths).

Both paths follow :mod:`stn_ros.core.coords`: pixel centres at integers. ``border_value`` says what
samples outside the image read:

* ``0`` (default): taps outside the image count as zeros (``grid_sample``'s zero padding).
* ``NaN``: for depth, where NaN means "no reading". A sample is NaN when any of its bilinear taps with a
  non-negligible weight lies outside the image or on a NaN pixel; otherwise it interpolates the valid
  taps only. Never is a reading blended with a zero. (Both paths do this by sampling the NaN-free
  values and a validity map, because OpenCV's warps spread a NaN over the whole output.)

The torch path is differentiable and runs on any device; the OpenCV path is the fast CPU inference path
and samples from the published pixel-space ``H`` itself.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from stn_ros.core.coords import ALIGN_CORNERS, PADDING_MODE, normalized_to_pixel

# A NaN-mode sample is valid when its valid taps carry at least this much of the bilinear weight.
VALID_WEIGHT = 1.0 - 1e-3


def _nan_mode(border_value: float) -> bool:
    if border_value == 0:
        return False
    if np.isnan(border_value):
        return True
    raise ValueError(f'border_value must be 0 or NaN, got {border_value}')


def _as_batched_source(source: torch.Tensor) -> torch.Tensor:
    if source.ndim == 3:
        source = source.unsqueeze(0)
    if source.ndim != 4 or source.shape[0] != 1:
        raise ValueError(f'source must be one image (C, H, W) or (1, C, H, W), got {tuple(source.shape)}')
    return source


def sample_grids(source: torch.Tensor, grids: torch.Tensor, border_value: float = 0.0) -> torch.Tensor:
    """Sample one source ``(C, H, W)`` at ``B`` normalized grids ``(B, h, w, 2)`` -> ``(B, C, h, w)``.

    The grids are stacked into one tall grid so that a single ``grid_sample`` reads the one source:
    no per-crop copy of the full-resolution image. ``B = 0`` or an empty grid gives an empty output.
    """
    nan_mode = _nan_mode(border_value)
    source = _as_batched_source(source)
    if grids.ndim != 4 or grids.shape[-1] != 2:
        raise ValueError(f'grids must be (B, h, w, 2), got {tuple(grids.shape)}')
    batch, height, width, _ = grids.shape
    channels = source.shape[1]
    if batch * height * width == 0:
        return source.new_zeros(batch, channels, height, width)
    if nan_mode:
        valid = torch.isfinite(source).all(dim=1, keepdim=True)
        source = torch.cat((torch.where(valid, source, 0.0), valid.to(source.dtype)), dim=1)
    tall = grids.reshape(1, batch * height, width, 2).to(source.dtype)
    out = F.grid_sample(source, tall, mode='bilinear', padding_mode=PADDING_MODE, align_corners=ALIGN_CORNERS)
    out = out.reshape(source.shape[1], batch, height, width).transpose(0, 1)
    if nan_mode:
        weight = out[:, -1:]
        out = torch.where(weight >= VALID_WEIGHT, out[:, :-1] / weight.clamp_min(VALID_WEIGHT), torch.nan)
    return out


def _sample_nan_aware(sample, source: np.ndarray) -> np.ndarray:
    """NaN mode on the OpenCV path: ``sample`` the NaN-free values and the validity separately.

    ``sample(image)`` warps a ``(H, W[, C])`` float32 image to ``(B, h, w[, C])`` with a zero border, so
    taps outside the image have zero validity. Returns float32 with NaN where the valid taps carry
    less than ``VALID_WEIGHT`` of the bilinear weight.
    """
    valid = np.isfinite(source)
    if source.ndim == 3:
        valid = valid.all(axis=-1)
    filled = np.where(valid[..., None] if source.ndim == 3 else valid, source, 0).astype(np.float32, copy=False)
    weight = sample(valid.astype(np.float32))
    values = sample(filled)
    weight = weight[..., None] if source.ndim == 3 else weight
    return np.where(weight >= VALID_WEIGHT, values / np.maximum(weight, VALID_WEIGHT), np.nan).astype(np.float32)


def warp_perspective_opencv(
    source: np.ndarray, homographies: np.ndarray, output_size: tuple[int, int], border_value: float = 0.0
) -> np.ndarray:
    """``cv2.warpPerspective`` of ``source`` ``(H, W[, C])`` with each pixel-space ``H`` ``(B, 3, 3)``.

    Returns ``(B, h, w[, C])`` of the source dtype (float32 in NaN mode). ``H`` maps output pixel to
    source pixel (it is passed with ``WARP_INVERSE_MAP``), exactly as published in the transforms record.
    """
    if _nan_mode(border_value):
        return _sample_nan_aware(lambda image: warp_perspective_opencv(image, homographies, output_size), source)
    height, width = output_size
    homographies = np.asarray(homographies, dtype=np.float64).reshape(-1, 3, 3)
    out = np.empty((len(homographies), height, width) + source.shape[2:], dtype=source.dtype)
    if height * width == 0:
        return out
    for i, h in enumerate(homographies):
        cv2.warpPerspective(
            source,
            h,
            (width, height),
            dst=out[i],
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
    return out


def remap_opencv(source: np.ndarray, grids: torch.Tensor | np.ndarray, border_value: float = 0.0) -> np.ndarray:
    """``cv2.remap`` of ``source`` ``(H, W[, C])`` at normalized grids ``(B, h, w, 2)`` (e.g. TPS)."""
    if _nan_mode(border_value):
        return _sample_nan_aware(lambda image: remap_opencv(image, grids), source)
    grids = torch.as_tensor(grids, dtype=torch.float64)
    to_pixel = normalized_to_pixel(*source.shape[:2], dtype=torch.float64)
    maps = (grids @ to_pixel[:2, :2].T + to_pixel[:2, 2]).to(torch.float32).numpy()
    batch, height, width = maps.shape[:3]
    out = np.empty((batch, height, width) + source.shape[2:], dtype=source.dtype)
    if height * width == 0:
        return out
    for i in range(batch):
        cv2.remap(
            source,
            maps[i, ..., 0],
            maps[i, ..., 1],
            cv2.INTER_LINEAR,
            dst=out[i],
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
    return out

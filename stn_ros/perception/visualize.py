"""Pictures of what the STN did: sampling quadrilaterals on the source, crops side by side."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np


def crop_quadrilaterals(homographies: np.ndarray, output_size: Sequence[int]) -> np.ndarray:
    """Source-pixel corners ``(B, 4, 2)`` of each crop's outer edge (clockwise from top-left)."""
    height, width = output_size
    corners = np.array(
        [[-0.5, -0.5, 1], [width - 0.5, -0.5, 1], [width - 0.5, height - 0.5, 1], [-0.5, height - 0.5, 1]],
        dtype=np.float64,
    )
    mapped = np.einsum('bij,kj->bki', np.asarray(homographies, dtype=np.float64).reshape(-1, 3, 3), corners)
    return mapped[..., :2] / mapped[..., 2:]


def to_bgr8(image: np.ndarray) -> np.ndarray:
    """Any 1- or 3-channel image -> displayable bgr8 (float/uint16 are min-max scaled, NaN black)."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        finite = np.isfinite(image)
        values = image[finite]
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
        scaled = (np.where(finite, image, low) - low) / max(high - low, 1e-12) * 255.0
        image = np.where(finite, scaled, 0).astype(np.uint8)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return image


def draw_quadrilaterals(image: np.ndarray, quads: np.ndarray, color=(0, 255, 0), thickness: int = 2) -> np.ndarray:
    """bgr8 copy of ``image`` with each quadrilateral drawn and its top edge (crop row 0) marked."""
    canvas = to_bgr8(image).copy()
    for index, quad in enumerate(np.asarray(quads)):
        if not np.isfinite(quad).all():
            continue
        points = np.round(quad).astype(np.int32)
        cv2.polylines(canvas, [points], True, color, thickness, cv2.LINE_AA)
        cv2.line(canvas, tuple(points[0]), tuple(points[1]), (0, 0, 255), thickness, cv2.LINE_AA)
        cv2.putText(
            canvas, str(index), tuple(points[0] + [3, 14]), cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 1, cv2.LINE_AA
        )
    return canvas


def crop_strip(
    crops: np.ndarray, scale: int = 3, labels: Sequence[str] | None = None, max_width: int | None = None
) -> np.ndarray:
    """Crops ``(B, h, w[, C])`` side by side as one bgr8 image, each enlarged ``scale`` times and labelled (default:
    its index). With ``max_width``, in rows no wider than that (at least one crop a row), the last padded black."""
    tiles = []
    for index, crop in enumerate(crops):
        tile = cv2.resize(to_bgr8(crop), None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        label = labels[index] if labels is not None else str(index)
        cv2.putText(tile, label, (3, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 255, 0), 1, cv2.LINE_AA)
        tiles.append(cv2.copyMakeBorder(tile, 2, 2, 2, 2, cv2.BORDER_CONSTANT, value=(255, 255, 255)))
    if not tiles:
        return np.zeros((1, 1, 3), np.uint8)
    per_row = len(tiles) if max_width is None else max(1, min(len(tiles), max_width // tiles[0].shape[1]))
    blank = np.zeros_like(tiles[0])
    tiles += [blank] * (-len(tiles) % per_row)
    return np.vstack([np.hstack(tiles[start : start + per_row]) for start in range(0, len(tiles), per_row)])


def stack_panels(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """``top`` above ``bottom`` (bgr8), the narrower one padded on the right with black."""
    width = max(top.shape[1], bottom.shape[1])
    pad = [cv2.copyMakeBorder(p, 0, 0, 0, width - p.shape[1], cv2.BORDER_CONSTANT, value=0) for p in (top, bottom)]
    return np.vstack(pad)


def draw_grasps(
    canvas: np.ndarray,
    centres: np.ndarray,
    angles: np.ndarray,
    widths_px: np.ndarray,
    qualities: np.ndarray,
    best: int | None = None,
) -> np.ndarray:
    """Parallel-jaw grasps on a bgr8 ``canvas`` (in place): the closing line and both jaws, coloured by
    quality (red 0 -> green 1); the best grasp thicker, in white."""
    for index, ((u, v), angle, width, quality) in enumerate(zip(centres, angles, widths_px, qualities, strict=True)):
        if not (np.isfinite(u) and np.isfinite(v)):
            continue
        half = 0.5 * (width if np.isfinite(width) and width > 0 else 20.0) + 4.0
        axis = np.array([np.cos(angle), np.sin(angle)])
        across = np.array([-axis[1], axis[0]]) * 6.0
        ends = [np.array([u, v]) - half * axis, np.array([u, v]) + half * axis]
        colour = (255, 255, 255) if index == best else (0, int(255 * quality), int(255 * (1 - quality)))
        thickness = 3 if index == best else 2
        pt = lambda p: tuple(int(round(c)) for c in p)  # noqa: E731
        cv2.line(canvas, pt(ends[0]), pt(ends[1]), colour, 1, cv2.LINE_AA)
        for end in ends:
            cv2.line(canvas, pt(end - across), pt(end + across), colour, thickness, cv2.LINE_AA)
    return canvas

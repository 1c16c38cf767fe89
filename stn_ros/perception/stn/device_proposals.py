"""Depth proposals' per-pixel work in torch, on the frame's device: the table-plane fit, the object threshold and the
cuts at depth edges, so a frame already on CUDA (the canonicalizer's copy) is not read back whole.

The same arithmetic as :mod:`stn_ros.perception.stn.proposals`' numpy (its RANSAC hypotheses drawn there, on the
host, by the same numpy generator): the plane in float64 as numpy fits it, the mask in float32 as numpy thresholds
it. Nothing here reads a value back to the host until :func:`object_masks` downloads its result, once; the
connected components stay on the host (OpenCV).
"""

from __future__ import annotations

import numpy as np
import torch


def fit_table_plane_torch(
    depth: torch.Tensor, index: np.ndarray, samples: np.ndarray, tolerance: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """RANSAC then two weighted refits of the inverse-depth plane ``1 / z = a * u + b * v + c`` of ``depth``.

    Args:
        depth: ``(H, W)`` float32 metres on any device (a strided view is fine); only the sampled pixels are read.
        index: ``(n,)`` flat indices (row-major in ``depth``'s shape) of valid pixels, drawn on the host.
        samples: ``(I, 3)`` indices into ``index``: the 3-point hypotheses.
        tolerance: metres; inliers are within it of the plane in depth.

    Returns:
        ``plane`` ``(3,)`` float64 ``(a, b, c)`` and ``found`` ``()`` bool (False: no hypothesis had 3 inliers, the
        numpy fit's None), both on ``depth``'s device, neither read on the host.
    """
    if depth.ndim != 2:
        raise ValueError(f'depth must be an (H, W) tensor, got shape {tuple(depth.shape)}')
    draws = np.concatenate((np.asarray(index, np.int64), np.asarray(samples, np.int64).reshape(-1)))
    draws = _to_device(draws, depth.device)
    index_t, samples_t = draws[: len(index)], draws[len(index) :].view(-1, 3)
    rows, cols = torch.div(index_t, depth.shape[1], rounding_mode='floor'), index_t % depth.shape[1]
    z = depth[rows, cols].double()
    design = torch.stack((cols, rows, torch.ones_like(cols)), dim=1).double()  # (n, 3)
    inverse = 1.0 / z
    inverse_tolerance = tolerance / (z * z)  # a depth error e is an inverse-depth error e / z^2
    points = torch.cat((design[:, :2], inverse[:, None]), dim=1)[samples_t]  # (I, 3, 3) (u, v, 1/z)
    normals = torch.linalg.cross(points[:, 1] - points[:, 0], points[:, 2] - points[:, 0])
    a = -normals[:, 0] / normals[:, 2]  # collinear triples: inf/NaN planes, never with an inlier
    b = -normals[:, 1] / normals[:, 2]
    c = points[:, 0, 2] - a * points[:, 0, 0] - b * points[:, 0, 1]
    inliers = _inliers(torch.stack((a, b, c), dim=1), design, inverse, inverse_tolerance)  # (I, n)
    counts = inliers.sum(dim=1)
    best = torch.argmax(counts).view(1)  # the first of equal counts, as numpy's
    # index_select, not inliers[best]: indexing by a 0-dim tensor reads it on the host
    first = _weighted_plane(design, z, inliers.index_select(0, best)[0])
    refit = _inliers(first[None], design, inverse, inverse_tolerance)[0]
    second = _weighted_plane(design, z, refit)
    # numpy's refit loop stops after the first refit when it leaves fewer than 3 inliers.
    plane = torch.where(refit.sum() >= 3, second, first)
    return plane, counts.max() >= 3


def object_mask_torch(depth: torch.Tensor, plane: torch.Tensor, threshold: float) -> torch.Tensor:
    """``(H, W)`` bool: valid pixels closer than the plane ``(3,)`` (float64, cast to float32 as numpy's is) by more
    than ``threshold`` metres; the same float32 operations, in the same order, as the numpy mask."""
    height, width = depth.shape
    a, b, c = plane.float()
    columns = torch.arange(width, dtype=torch.float32, device=depth.device)
    rows = torch.arange(height, dtype=torch.float32, device=depth.device)
    inverse_plane = a * columns + (b * rows + c)[:, None]
    closer = (depth + torch.tensor(threshold, dtype=torch.float32, device=depth.device)) * inverse_plane < 1.0
    return closer & (depth > 0) & (depth < torch.inf)


def depth_along_normal_torch(depth: torch.Tensor, plane: torch.Tensor, distance: torch.Tensor) -> torch.Tensor:
    """``(H, W)`` float32 metres along the table's normal of each reading (the numpy
    :func:`~stn_ros.perception.stn.proposals.depth_along_normal_image`, the same float32 operations in the same
    order): ``plane`` ``(3,)`` and ``distance`` ``()`` float64 on the device."""
    height, width = depth.shape
    a, b, c = (plane * distance).float()
    columns = torch.arange(width, dtype=torch.float32, device=depth.device)
    rows = torch.arange(height, dtype=torch.float32, device=depth.device)
    return depth * (a * columns + (b * rows + c)[:, None])


def table_distance_torch(plane: torch.Tensor, intrinsics: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The camera's distance ``()`` float64 to the plane ``(3,)`` (inverse depth over the pixels of ``intrinsics``
    ``(3, 3)``, float64) and whether it is a table the camera looks at ``()`` bool, as
    :meth:`~stn_ros.perception.geometry.table_view.TablePlane.from_inverse_depth` decides; neither read on the host."""
    scaled = intrinsics.T @ plane  # n / d
    length = torch.linalg.vector_norm(scaled)
    looks_at = torch.isfinite(length) & (length > 0) & (scaled[2] > 0)
    return 1.0 / length, looks_at


def depth_cut_torch(mask: torch.Tensor, depth: torch.Tensor, jump: float) -> torch.Tensor:
    """``(H, W)`` bool: ``mask`` without the object pixels more than ``jump`` metres behind a 4-neighbouring object
    pixel (:func:`~stn_ros.perception.stn.proposals.split_at_depth_edges`' cut)."""
    jump_t = torch.tensor(jump, dtype=torch.float32, device=depth.device)  # compared in float32, as numpy does
    down = (depth[1:] - depth[:-1]) * (mask[1:] & mask[:-1])  # NaN stays NaN: never beyond the jump
    right = (depth[:, 1:] - depth[:, :-1]) * (mask[:, 1:] & mask[:, :-1])
    behind = torch.zeros_like(mask)
    behind[1:] |= down > jump_t
    behind[:-1] |= down < -jump_t
    behind[:, 1:] |= right > jump_t
    behind[:, :-1] |= right < -jump_t
    return mask & ~behind


def object_masks(
    depth: torch.Tensor,
    index: np.ndarray,
    samples: np.ndarray,
    threshold: float,
    jump: float,
    intrinsics: np.ndarray | None = None,
    occlusion_jump: float = 0.0,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray] | None:
    """The object mask of ``depth`` and its cut at depth edges (``jump`` 0: None), ``(H, W)`` uint8, and the plane
    ``(3,)`` float64, on the host, in one download; None when the plane fit finds no plane. ``index``, ``samples``: the
    host's RANSAC draws (:func:`fit_table_plane_torch`); inliers are within ``threshold / 2`` of the plane.

    ``intrinsics``: ``(3, 3)`` ``K`` of ``depth``'s pixels; with it and a plane the camera looks at, object pixels are
    higher than ``threshold`` above the table along its normal and the cut is a jump in height (the numpy path's
    rules, :func:`~stn_ros.perception.stn.proposals.depth_proposals`), else today's closer-along-the-ray rules; there,
    with ``jump`` > 0, ``occlusion_jump`` > 0 also cuts at jumps in depth along the rays
    (``ProposalConfig.occlusion_jump``)."""
    plane, found = fit_table_plane_torch(depth, index, samples, 0.5 * threshold)
    mask = object_mask_torch(depth, plane, threshold)
    edges, occluded = depth, None
    if intrinsics is not None:
        distance, looks_at = table_distance_torch(plane, _to_device(np.asarray(intrinsics, np.float64), depth.device))
        along = depth_along_normal_torch(depth, plane, distance)
        limit = (distance - threshold).float()
        higher = (along < limit) & (depth > 0) & (depth < torch.inf)
        mask = torch.where(looks_at, higher, mask)
        edges = torch.where(looks_at, along, depth)
        if jump > 0 and occlusion_jump > 0:  # not where the camera looks at no table: the numpy path has none there
            occluded = depth_cut_torch(mask, depth, occlusion_jump) | ~looks_at
    cut = depth_cut_torch(mask, edges, jump) if jump > 0 else None
    if cut is not None and occluded is not None:
        cut &= occluded
    parts = [found.view(1), plane.contiguous().view(torch.uint8), mask.reshape(-1)]
    if cut is not None:
        parts.append(cut.reshape(-1))
    packed = torch.cat([part.to(torch.uint8) for part in parts]).cpu().numpy()  # the one read back: waits for it
    if not packed[0]:
        return None
    plane_host = packed[1:25].copy().view(np.float64)
    masks = packed[25:].reshape(-1, *depth.shape)
    return masks[0], (masks[1] if cut is not None else None), plane_host


def _to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A small host array on ``device``; on CUDA through pinned memory, asynchronously (a blocking copy from pageable
    memory would wait for the stream, the frame's upload included)."""
    tensor = torch.from_numpy(array)
    return tensor.pin_memory().to(device, non_blocking=True) if device.type == 'cuda' else tensor


def _inliers(
    planes: torch.Tensor, design: torch.Tensor, inverse: torch.Tensor, tolerance: torch.Tensor
) -> torch.Tensor:
    """``(P, n)`` bool: points ``(u, v, 1/z)`` within ``tolerance`` ``(n,)`` of ``(P, 3)`` planes."""
    return (planes @ design.T - inverse).abs() < tolerance


def _weighted_plane(design: torch.Tensor, z: torch.Tensor, inliers: torch.Tensor) -> torch.Tensor:
    """Least-squares inverse-depth plane of the ``inliers`` ``(n,)`` bool, rows weighted by ``z^2`` (depth residuals).

    Outliers get weight 0 instead of being dropped (a shape that depends on values would read them on the host), and
    the 3x3 normal equations are solved in closed form: ``torch.linalg``'s solvers check their result on the host.
    """
    weights = torch.where(inliers, z * z, 0.0)
    rows = design * weights[:, None]  # (1/z) * z^2 = z: the right-hand side is z
    gram = rows.T @ rows
    moment = rows.T @ (z * inliers)
    adjugate = torch.stack(
        (
            torch.linalg.cross(gram[1], gram[2]),
            torch.linalg.cross(gram[2], gram[0]),
            torch.linalg.cross(gram[0], gram[1]),
        ),
        dim=1,
    )  # columns: gram @ adjugate = det * I
    return adjugate @ moment / torch.dot(gram[0], adjugate[:, 0])

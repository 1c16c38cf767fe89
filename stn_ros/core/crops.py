"""Canonical crops of one full-resolution source: the STN looks small, the output is sampled once.

For each region of interest (ROI) the localization net sees the ROI resampled to its small input size.
The output grid is the composition *crop-to-source* ∘ *STN transform*, sampled once from the source:
no crop-then-warp double resampling, and pixels just outside the ROI come from the real image.

ROIs are ``(x, y, w, h)`` in source pixels, as ``cv::Rect``: the ROI covers columns ``x .. x + w - 1``
and rows ``y .. y + h - 1`` (fractional values are allowed). The published pixel-space ``H`` of a crop
maps crop pixel ``(col, row, 1)`` to source pixel (see :mod:`stn_ros.core.coords`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from stn_ros.core.coords import base_grid
from stn_ros.core.families import apply_homogeneous, homography_grid, pixel_frames, pixel_homography
from stn_ros.core.sampler import remap_opencv, sample_grids, warp_perspective_opencv
from stn_ros.core.spatial_transformer import SpatialTransformer

Localize = Callable[[torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]
"""``localize(small, count)``: :meth:`SpatialTransformer.localize_ranked`'s contract, the seam where an inference
backend (:mod:`stn_ros.models.backends`) runs the localization net instead of the module itself."""


@dataclass
class CropTransforms:
    """Where each canonical crop comes from in the source.

    Attributes:
        params: STN parameters ``(B, num_params)`` (in the ROI's normalized frame).
        matrices: normalized crop -> normalized source maps ``(B, 3, 3)``. For TPS, the
            least-squares affine fit of the spline (the spline itself is in ``grids``).
        homographies: pixel-space ``H`` ``(B, 3, 3)`` float64, crop pixel -> source pixel; exact for
            linear families, the affine fit for TPS (``exact`` is False then).
        grids: composed normalized source grids ``(B, h, w, 2)`` for TPS, ``None`` for linear families.
        exact: whether ``homographies`` reproduce the crops exactly.
        probabilities: ``(B,)`` each crop's hypothesis' probability among the localization net's K
            (the softmax of their scores; 1 for a one-hypothesis net).
        hypotheses_per_roi: crops per ROI, object-major: crop ``i`` is hypothesis ``i % hypotheses_per_roi``
            (0 = the best-scored) of ROI ``i // hypotheses_per_roi``.
    """

    params: torch.Tensor
    matrices: torch.Tensor
    homographies: torch.Tensor
    grids: torch.Tensor | None
    exact: bool
    probabilities: torch.Tensor | None = None
    hypotheses_per_roi: int = 1

    def source_grids(self, output_size: Sequence[int]) -> torch.Tensor:
        """Normalized source grids ``(B, h, w, 2)`` of the crops."""
        if self.grids is not None:
            return self.grids
        return homography_grid(self.matrices, *output_size)


def check_roi_sizes(rois: np.ndarray | torch.Tensor) -> None:
    """Raise ``ValueError`` when an ROI ``(x, y, w, h)`` of ``rois`` ``(B, 4)`` has a width or height that is not
    positive. On a device tensor this reads the sizes back (a wait for the device): check the host ROIs instead."""
    sizes = rois[:, 2:]
    if len(sizes) and not bool((sizes > 0).all()):
        raise ValueError(f'ROI width and height must be positive, got {sizes.tolist()}')


def roi_matrix(rois: torch.Tensor, source_size: Sequence[int], check_sizes: bool = True) -> torch.Tensor:
    """``(B, 4)`` ROIs ``(x, y, w, h)`` -> ``(B, 3, 3)`` normalized crop -> normalized source maps.

    ``check_sizes`` False skips :func:`check_roi_sizes`, for a caller that checked its ROIs on the host: on a device,
    the check waits for it, and a CUDA graph cannot be captured around it.

    >>> roi_matrix(torch.tensor([[0.0, 0.0, 4.0, 2.0]]), (2, 4))[0]  # the whole image: identity
    tensor([[1., 0., 0.],
            [0., 1., 0.],
            [0., 0., 1.]])
    """
    if rois.ndim != 2 or rois.shape[1] != 4:
        raise ValueError(f'rois must be a (B, 4) tensor of (x, y, w, h), got {tuple(rois.shape)}')
    if check_sizes:
        check_roi_sizes(rois)
    height, width = source_size
    x, y, w, h = rois.unbind(dim=1)
    zeros, ones = torch.zeros_like(x), torch.ones_like(x)
    rows = (w / width, zeros, (2 * x + w) / width - 1, zeros, h / height, (2 * y + h) / height - 1, zeros, zeros, ones)
    return torch.stack(rows, dim=-1).reshape(-1, 3, 3)


def fit_affine(grids: torch.Tensor) -> torch.Tensor:
    """Least-squares affine ``(B, 3, 3)`` from output normalized coords to the grids ``(B, h, w, 2)``."""
    batch, height, width, _ = grids.shape
    points = base_grid(height, width, dtype=torch.float64, device=grids.device).reshape(-1, 2)
    design = torch.cat((points, torch.ones_like(points[:, :1])), dim=1)  # (N, 3), same for every crop
    solution = torch.linalg.pinv(design) @ grids.reshape(batch, -1, 2).double()  # (B, 3, 2)
    bottom = points.new_tensor([0.0, 0.0, 1.0]).expand(batch, 1, 3)
    return torch.cat((solution.transpose(1, 2), bottom), dim=1).to(grids.dtype)


def localization_crops(
    localization_source: torch.Tensor, rois: torch.Tensor, size: Sequence[int], check_sizes: bool = True
) -> torch.Tensor:
    """What the localization net sees: each ROI of ``(C, H, W)`` resampled to ``size``, ``(B, C, h, w)``.

    Non-finite pixels (depth without a reading) read as 0. ``check_sizes``: as for :func:`roi_matrix`.
    """
    to_source = roi_matrix(rois, tuple(localization_source.shape[-2:]), check_sizes)
    return sample_localization_crops(localization_source, homography_grid(to_source, *size))


def sample_localization_crops(localization_source: torch.Tensor, grids: torch.Tensor) -> torch.Tensor:
    """:func:`localization_crops` from the ROIs' grids ``(B, h, w, 2)`` (``homography_grid`` of :func:`roi_matrix`)."""
    small = sample_grids(localization_source, grids)
    return torch.nan_to_num(small, nan=0.0, posinf=0.0, neginf=0.0)  # never a NaN θ


def linear_crop_transforms(
    stn: SpatialTransformer,
    small: torch.Tensor,
    to_source: torch.Tensor,
    hypotheses: int,
    frames: tuple[torch.Tensor, torch.Tensor],
    localize: Localize | None = None,
) -> CropTransforms:
    """:func:`crop_transforms` of a linear family from what the localization net sees (``small``, ``(B, C, h, w)``)
    and each ROI's :func:`roi_matrix` ``to_source`` ``(B, 3, 3)``; ``frames``: the
    :func:`~stn_ros.core.families.pixel_frames` of the source and output sizes (float64); ``localize``: as for
    :func:`crop_transforms`. Only device work, no host data (with the torch net): what a CUDA graph captures."""
    ranked, probabilities = (stn.localize_ranked if localize is None else localize)(small, hypotheses)
    per_roi = ranked.shape[1]
    params, probabilities = ranked.flatten(0, 1), probabilities.flatten()
    if per_roi > 1:
        to_source = to_source.repeat_interleave(per_roi, dim=0)
    matrices = to_source @ stn.family.matrix(params)
    homographies = frames[0] @ matrices.detach().double() @ frames[1]
    return CropTransforms(params, matrices, homographies, None, True, probabilities, per_roi)


def scale_by_field(samples: torch.Tensor, grids: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
    """``samples`` ``(B, C, h, w)`` taken at normalized source grids ``(B, h, w, 2)``, each multiplied by the affine
    field ``field . (x, y, 1)`` ``(3,)`` at its sample point (e.g. a depth reading re-expressed along a plane's normal).
    """
    f = field.to(grids.dtype)
    return samples * (grids[..., 0] * f[0] + grids[..., 1] * f[1] + f[2])[:, None].to(samples.dtype)


def crop_transforms(
    stn: SpatialTransformer,
    localization_source: torch.Tensor,
    rois: torch.Tensor,
    output_size: Sequence[int] | None = None,
    hypotheses: int = 1,
    check_sizes: bool = True,
    localize: Localize | None = None,
    view_to_source: torch.Tensor | None = None,
    value_field: torch.Tensor | None = None,
) -> CropTransforms:
    """Run the localization net on each ROI and compose ROI and STN maps (no output sampling).

    Args:
        stn: the Spatial Transformer.
        localization_source: ``(C, H, W)`` float image the localization net reads
            (``C = stn.in_channels``); the same size as the source the crops are sampled from.
            Non-finite pixels (depth without a reading) read as 0.
        rois: ``(B, 4)`` ``(x, y, w, h)`` in source pixels.
        output_size: ``(h, w)`` of the crops; the STN's own by default.
        hypotheses: crops per ROI, its best-scored hypotheses in descending score (clamped to the net's K);
            the transforms are object-major (see :class:`CropTransforms`). The first of each ROI is the
            one crop of ``hypotheses`` 1, to the bit.
        check_sizes: False for ROIs checked on the host (:func:`roi_matrix`): nothing then waits for the device.
        localize: what runs the localization net (:data:`Localize`); ``stn.localize_ranked`` by default.
        view_to_source: ``(3, 3)`` normalized map from a *view* of the source's size to the source (a projective
            one: a camera turned about its centre): the ROIs are then in the view's pixels and each crop's map is
            ``view_to_source @ roi_matrix``, still one resampling of the source.
        value_field: ``(3,)``: what the localization net sees is multiplied by this affine field of the normalized
            source coordinates (:func:`scale_by_field`), e.g. depth re-expressed along a plane's normal.
    """
    output_size = tuple(output_size or stn.output_size)
    source_size = tuple(localization_source.shape[-2:])
    rois = torch.as_tensor(rois, dtype=localization_source.dtype, device=localization_source.device)
    if check_sizes:
        check_roi_sizes(rois)
    to_source = roi_matrix(rois, source_size, check_sizes=False)
    if view_to_source is not None:
        to_source = view_to_source.to(to_source) @ to_source
    localization_grids = homography_grid(to_source, *stn.localization_size)
    small = sample_localization_crops(localization_source, localization_grids)
    if value_field is not None:
        small = scale_by_field(small, localization_grids, value_field)
    family = stn.family
    localize = stn.localize_ranked if localize is None else localize
    if family.is_linear:
        frames = pixel_frames(source_size, output_size, dtype=torch.float64, device=localization_source.device)
        return linear_crop_transforms(stn, small, to_source, hypotheses, frames, localize)
    ranked, probabilities = localize(small, hypotheses)
    per_roi = ranked.shape[1]
    params, probabilities = ranked.flatten(0, 1), probabilities.flatten()
    if per_roi > 1:
        to_source = to_source.repeat_interleave(per_roi, dim=0)
    crop_grids = family.grid(params, *output_size)
    grids = apply_homogeneous(to_source, crop_grids.reshape(len(params), -1, 2)).reshape(crop_grids.shape)
    matrices = to_source @ fit_affine(crop_grids)
    homographies = pixel_homography(matrices.detach().double(), source_size, output_size)
    return CropTransforms(params, matrices, homographies, grids, False, probabilities, per_roi)


def canonicalize_crops(
    stn: SpatialTransformer,
    source: torch.Tensor,
    rois: torch.Tensor,
    output_size: Sequence[int] | None = None,
    localization_source: torch.Tensor | None = None,
    border_value: float = 0.0,
) -> tuple[torch.Tensor, CropTransforms]:
    """Differentiable canonical crops ``(B, C, h, w)`` sampled once from ``source`` ``(C, H, W)``.

    ``localization_source`` (default: ``source``) is what the localization net reads, e.g. the
    source converted to the modality the checkpoint was trained on. ``border_value`` (0 or NaN) is
    what samples outside the source read (see :mod:`stn_ros.core.sampler`).
    """
    output_size = tuple(output_size or stn.output_size)
    source = source if source.is_floating_point() else source.float()
    transforms = crop_transforms(stn, source if localization_source is None else localization_source, rois, output_size)
    return sample_grids(source, transforms.source_grids(output_size), border_value), transforms


def canonicalize_crops_opencv(
    stn: SpatialTransformer,
    source: np.ndarray,
    rois: torch.Tensor,
    output_size: Sequence[int] | None = None,
    localization_source: torch.Tensor | None = None,
    border_value: float = 0.0,
) -> tuple[np.ndarray, CropTransforms]:
    """CPU inference path: same transforms, crops ``(B, h, w[, C])`` sampled by OpenCV from ``H``.

    ``source`` is ``(H, W[, C])`` in any dtype OpenCV warps (the crops keep it); the localization net
    reads ``localization_source`` ``(C, H, W)`` (default: ``source`` as float32).
    """
    output_size = tuple(output_size or stn.output_size)
    if localization_source is None:
        image = torch.from_numpy(np.ascontiguousarray(source, dtype=np.float32))
        localization_source = image.unsqueeze(0) if image.ndim == 2 else image.permute(2, 0, 1)
    with torch.no_grad():
        transforms = crop_transforms(stn, localization_source, rois, output_size)
    return sample_crops_opencv(source, transforms, output_size, border_value), transforms


def sample_crops_opencv(
    source: np.ndarray, transforms: CropTransforms, output_size: Sequence[int], border_value: float = 0.0
) -> np.ndarray:
    """Crops ``(B, h, w[, C])`` of ``source`` ``(H, W[, C])``: ``warpPerspective`` from the published
    ``H`` for linear families, ``remap`` of the spline grid for TPS."""
    if transforms.exact:
        return warp_perspective_opencv(source, transforms.homographies.cpu().numpy(), tuple(output_size), border_value)
    return remap_opencv(source, transforms.grids.detach().cpu(), border_value)

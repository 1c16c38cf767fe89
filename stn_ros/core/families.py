"""Transform families of the Spatial Transformer: parameters -> sampling grid.

Every family maps *normalized output* coordinates to *normalized input* coordinates (see
:mod:`stn_ros.core.coords`); its parameters live in that normalized space, so a trained localization
net does not depend on the pixel size of its input. Linear families also give the 3x3 matrix of that map
(:meth:`TransformFamily.matrix`); :func:`pixel_homography` turns it into pixel space.

=============  ====  ======  ==========================================================
family         code  params  layout (identity)
=============  ====  ======  ==========================================================
translation    0     2       ``tx, ty`` (0, 0)
attention      1     3       ``s, tx, ty``: isotropic scale + translation, a crop (1, 0, 0)
similarity     2     4       ``a, b, tx, ty`` with ``a = s cos r, b = s sin r`` (1, 0, 0, 0)
affine         3     6       row-major 2x3 ``[[a, b, tx], [c, d, ty]]`` (1, 0, 0, 0, 1, 0)
projective     4     8       row-major 3x3 with ``h22 = 1`` (1, 0, 0, 0, 1, 0, 0, 0)
tps            5     2K      offsets ``dx_0, dy_0, dx_1, ...`` of K control points (zeros)
=============  ====  ======  ==========================================================

The code is the integer published in the ``family`` field of the transforms record.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from stn_ros.core.coords import base_grid, normalized_to_pixel, pixel_to_normalized

# Homogeneous coordinates with |w| below this are pushed to +-EPS: a projective map whose horizon
# crosses the output then gives far-away (zero-padded) samples instead of inf/NaN.
HOMOGENEOUS_EPS = 1e-6


def _check_params(params: torch.Tensor, num_params: int, name: str) -> None:
    if params.ndim != 2 or params.shape[1] != num_params:
        raise ValueError(f'{name} parameters must be a (B, {num_params}) tensor, got shape {tuple(params.shape)}')


class TransformFamily(ABC):
    """A family of spatial transforms: parameter count, identity, and the grid it builds."""

    name: str
    code: int
    num_params: int
    is_linear: bool = True

    @abstractmethod
    def identity(self, *, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
        """Parameters of the identity transform, shape ``(num_params,)``."""

    def matrix(self, params: torch.Tensor) -> torch.Tensor:
        """``(B, num_params)`` -> ``(B, 3, 3)`` normalized output -> normalized input matrices."""
        _check_params(params, self.num_params, self.name)
        return self._matrix(params)

    def _matrix(self, params: torch.Tensor) -> torch.Tensor:
        raise TypeError(f'the {self.name} family is not linear: it has no 3x3 matrix, use grid()')

    def grid(self, params: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Sampling grid ``(B, height, width, 2)`` of normalized input ``(x, y)`` per output pixel."""
        return homography_grid(self.matrix(params), height, width)

    def config(self) -> dict:
        """What rebuilds this family with :func:`make_family` (stored in checkpoints)."""
        return {'name': self.name}

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.config()})'


def _rows(params: torch.Tensor, *columns) -> torch.Tensor:
    """Build ``(B, 3, 3)`` from nine per-row entries, each a ``(B,)`` tensor or a float constant."""
    batch = params.shape[0]
    entries = [c if isinstance(c, torch.Tensor) else params.new_full((batch,), float(c)) for c in columns]
    return torch.stack(entries, dim=-1).reshape(batch, 3, 3)


class Translation(TransformFamily):
    name, code, num_params = 'translation', 0, 2

    def identity(self, *, dtype=torch.float32, device=None):
        return torch.zeros(2, dtype=dtype, device=device)

    def _matrix(self, p):
        return _rows(p, 1, 0, p[:, 0], 0, 1, p[:, 1], 0, 0, 1)


class Attention(TransformFamily):
    name, code, num_params = 'attention', 1, 3

    def identity(self, *, dtype=torch.float32, device=None):
        return torch.tensor([1.0, 0.0, 0.0], dtype=dtype, device=device)

    def _matrix(self, p):
        return _rows(p, p[:, 0], 0, p[:, 1], 0, p[:, 0], p[:, 2], 0, 0, 1)


class Similarity(TransformFamily):
    name, code, num_params = 'similarity', 2, 4

    def identity(self, *, dtype=torch.float32, device=None):
        return torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=dtype, device=device)

    def _matrix(self, p):
        a, b = p[:, 0], p[:, 1]
        return _rows(p, a, -b, p[:, 2], b, a, p[:, 3], 0, 0, 1)


class Affine(TransformFamily):
    name, code, num_params = 'affine', 3, 6

    def identity(self, *, dtype=torch.float32, device=None):
        return torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0], dtype=dtype, device=device)

    def _matrix(self, p):
        # The bottom row made on p's device (no host data): a CUDA graph captures this.
        return torch.cat((p, p.new_zeros(p.shape[0], 2), p.new_ones(p.shape[0], 1)), dim=1).reshape(-1, 3, 3)


class Projective(TransformFamily):
    name, code, num_params = 'projective', 4, 8

    def identity(self, *, dtype=torch.float32, device=None):
        return torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0], dtype=dtype, device=device)

    def _matrix(self, p):
        return torch.cat((p, p.new_ones(p.shape[0], 1)), dim=1).reshape(-1, 3, 3)


class ThinPlateSpline(TransformFamily):
    """Thin-plate spline through ``grid_size x grid_size`` control points on a regular grid.

    Control point ``k`` sits at ``c_k`` (row-major over the grid spanning ``[-1, 1]^2``); the parameters
    are the offsets ``d_k`` so that output point ``c_k`` samples input ``c_k + d_k``. Between control
    points the map is the minimum-bending-energy spline, so zero offsets are the identity and offsets
    that come from one affine map give exactly that affine map.
    """

    name, code, is_linear = 'tps', 5, False
    REGULARIZER = 1e-6  # added to the kernel block: keeps the float64 solve well-posed

    def __init__(self, grid_size: int = 4):
        if grid_size < 2:
            raise ValueError(f'TPS needs grid_size >= 2 (at least 4 control points), got {grid_size}')
        self.grid_size = grid_size
        self.num_params = 2 * grid_size * grid_size
        ticks = torch.linspace(-1.0, 1.0, grid_size, dtype=torch.float64)
        ys, xs = torch.meshgrid(ticks, ticks, indexing='ij')
        self.control_points = torch.stack((xs.flatten(), ys.flatten()), dim=-1)  # (K, 2) float64
        self._inverse_system = self._solve_system()
        self._basis_cache: dict[tuple, torch.Tensor] = {}

    def config(self) -> dict:
        return {'name': self.name, 'grid_size': self.grid_size}

    def identity(self, *, dtype=torch.float32, device=None):
        return torch.zeros(self.num_params, dtype=dtype, device=device)

    @staticmethod
    def _radial(sq_dist: torch.Tensor) -> torch.Tensor:
        # U(r) = r^2 log r^2, with U(0) = 0 (the limit) rather than the NaN of 0 * log 0.
        return torch.where(sq_dist > 0, sq_dist * torch.log(sq_dist.clamp_min(1e-300)), torch.zeros_like(sq_dist))

    def _features(self, points: torch.Tensor) -> torch.Tensor:
        """``(N, 2)`` float64 points -> ``(N, K + 3)`` rows ``[U(|p - c_k|)..., 1, x, y]``."""
        sq = ((points[:, None, :] - self.control_points[None, :, :]) ** 2).sum(-1)
        return torch.cat((self._radial(sq), torch.ones_like(points[:, :1]), points), dim=1)

    def _solve_system(self) -> torch.Tensor:
        """Columns of the inverse TPS system that take control-point targets to spline coefficients."""
        k = self.control_points.shape[0]
        system = torch.zeros(k + 3, k + 3, dtype=torch.float64)
        features = self._features(self.control_points)
        system[:k, :] = features
        system[:k, :k] += self.REGULARIZER * torch.eye(k, dtype=torch.float64)
        system[k:, :k] = features[:, k:].T
        return torch.linalg.solve(system, torch.eye(k + 3, dtype=torch.float64)[:, :k])  # (K+3, K)

    def basis(self, height: int, width: int, *, dtype: torch.dtype, device) -> torch.Tensor:
        """``(H*W, K)`` weights: grid = base grid + basis @ offsets (linear in the offsets)."""
        key = (height, width, dtype, str(device))
        if key not in self._basis_cache:
            points = base_grid(height, width, dtype=torch.float64).reshape(-1, 2)
            weights = self._features(points) @ self._inverse_system
            self._basis_cache[key] = weights.to(dtype=dtype, device=device)
        return self._basis_cache[key]

    def grid(self, params: torch.Tensor, height: int, width: int) -> torch.Tensor:
        _check_params(params, self.num_params, self.name)
        offsets = params.reshape(params.shape[0], -1, 2)
        basis = self.basis(height, width, dtype=params.dtype, device=params.device)
        base = base_grid(height, width, dtype=params.dtype, device=params.device)
        return base + (basis @ offsets).reshape(params.shape[0], height, width, 2)


FAMILIES: dict[str, type[TransformFamily]] = {
    cls.name: cls for cls in (Translation, Attention, Similarity, Affine, Projective, ThinPlateSpline)
}


def make_family(name: str | dict, **kwargs) -> TransformFamily:
    """Family by name (or by its :meth:`TransformFamily.config` dict), e.g. ``make_family('tps', grid_size=3)``."""
    if isinstance(name, dict):
        kwargs = {k: v for k, v in name.items() if k != 'name'} | kwargs
        name = name['name']
    if name not in FAMILIES:
        raise ValueError(f'unknown transform family {name!r}; choose one of {sorted(FAMILIES)}')
    return FAMILIES[name](**kwargs)


def apply_homogeneous(matrix: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Apply ``(B, 3, 3)`` matrices to ``(B, N, 2)`` or ``(N, 2)`` points, with a safe division."""
    ones = torch.ones_like(points[..., :1])
    mapped = torch.cat((points, ones), dim=-1) @ matrix.transpose(-1, -2)
    w = mapped[..., 2:]
    w = torch.where(w.abs() < HOMOGENEOUS_EPS, torch.where(w < 0, -HOMOGENEOUS_EPS, HOMOGENEOUS_EPS).to(w.dtype), w)
    return mapped[..., :2] / w


def homography_grid(matrix: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Sampling grid ``(B, H, W, 2)`` of the normalized map ``matrix`` ``(B, 3, 3)``.

    Works for every linear family (for affine ones the homogeneous ``w`` is 1). A zero-size output gives
    an empty grid.
    """
    if matrix.ndim != 3 or matrix.shape[1:] != (3, 3):
        raise ValueError(f'matrix must be a (B, 3, 3) tensor, got shape {tuple(matrix.shape)}')
    points = base_grid(height, width, dtype=matrix.dtype, device=matrix.device).reshape(-1, 2)
    return apply_homogeneous(matrix, points).reshape(matrix.shape[0], height, width, 2)


def pixel_homography(matrix: torch.Tensor, input_size: tuple[int, int], output_size: tuple[int, int]) -> torch.Tensor:
    """Pixel-space ``H`` of a normalized map: output pixel ``(col, row, 1)`` -> input pixel.

    ``input_size`` and ``output_size`` are ``(height, width)``. ``cv2.warpPerspective(src, H, (w, h),
    flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)`` then reproduces the sampled output.
    """
    kw = {'dtype': matrix.dtype, 'device': matrix.device}
    return normalized_to_pixel(*input_size, **kw) @ matrix @ pixel_to_normalized(*output_size, **kw)


def pixel_frames(
    input_size: tuple[int, int], output_size: tuple[int, int], *, dtype: torch.dtype, device: torch.device | str
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two constant matrices of :func:`pixel_homography`: normalized -> input pixel ``(3, 3)`` and output pixel ->
    normalized ``(3, 3)``, so that ``H = frames[0] @ matrix @ frames[1]``.

    Made of host data: build them outside a function that a CUDA graph captures and pass them in.
    """
    kw = {'dtype': dtype, 'device': device}
    return normalized_to_pixel(*input_size, **kw), pixel_to_normalized(*output_size, **kw)

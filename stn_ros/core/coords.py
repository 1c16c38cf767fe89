"""The one coordinate convention used by every grid, matrix and sampler in stn_ros.

Pixel coordinates are ``(x, y) = (col, row)`` with the origin at the *centre* of the top-left pixel:
pixel ``(i, j)`` covers ``[i - 0.5, i + 0.5] x [j - 0.5, j + 0.5]``. This is OpenCV's convention, so a
pixel-space matrix from stn_ros can be handed to ``cv2.warpPerspective`` unchanged.

Normalized coordinates are torch's ``align_corners=False`` ones: ``-1`` and ``+1`` are the outer *edges*
of the image, ``x_n = (2 x + 1) / W - 1``. Every grid is built and sampled with ``ALIGN_CORNERS``.
Samples that fall outside the image read zeros (``PADDING_MODE``); for depth, zero means "no reading".
"""

from __future__ import annotations

import torch

ALIGN_CORNERS = False
PADDING_MODE = 'zeros'


def _check_size(height: int, width: int) -> None:
    if height <= 0 or width <= 0:
        raise ValueError(f'image size must be positive, got height={height}, width={width}')


def pixel_to_normalized(
    height: int, width: int, *, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    """3x3 matrix taking homogeneous pixel ``(x, y, 1)`` of an ``height x width`` image to normalized.

    >>> pixel_to_normalized(2, 4) @ torch.tensor([-0.5, -0.5, 1.0])
    tensor([-1., -1.,  1.])
    """
    _check_size(height, width)
    return torch.tensor(
        [[2.0 / width, 0.0, 1.0 / width - 1.0], [0.0, 2.0 / height, 1.0 / height - 1.0], [0.0, 0.0, 1.0]],
        dtype=dtype,
        device=device,
    )


def normalized_to_pixel(
    height: int, width: int, *, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    """3x3 matrix taking homogeneous normalized ``(x_n, y_n, 1)`` to pixel; inverse of the above.

    >>> normalized_to_pixel(2, 4) @ torch.tensor([1.0, 1.0, 1.0])
    tensor([3.5000, 1.5000, 1.0000])
    """
    _check_size(height, width)
    return torch.tensor(
        [[width / 2.0, 0.0, (width - 1.0) / 2.0], [0.0, height / 2.0, (height - 1.0) / 2.0], [0.0, 0.0, 1.0]],
        dtype=dtype,
        device=device,
    )


def base_grid(
    height: int, width: int, *, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    """Normalized coordinates of the pixel centres of an ``height x width`` output, ``(H, W, 2)``.

    The last axis is ``(x_n, y_n)``, as ``torch.nn.functional.grid_sample`` expects.
    """
    xs = (2.0 * torch.arange(width, dtype=dtype, device=device) + 1.0) / width - 1.0
    ys = (2.0 * torch.arange(height, dtype=dtype, device=device) + 1.0) / height - 1.0
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing='ij')
    return torch.stack((grid_x, grid_y), dim=-1)

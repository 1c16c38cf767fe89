"""Crops of one source: composed sampling, OpenCV path, published H, ROI maps."""

import cv2
import numpy as np
import pytest
import torch

from images import smooth_image
from stn_ros.core import (
    FAMILIES,
    SpatialTransformer,
    canonicalize_crops,
    canonicalize_crops_opencv,
    crop_transforms,
    roi_matrix,
)

ROIS = torch.tensor([[20.0, 15.0, 48.0, 48.0], [60.0, 30.0, 40.0, 56.0], [5.0, 60.0, 64.0, 32.0]])


def trained_looking_stn(name: str, seed: int = 0, **kwargs) -> SpatialTransformer:
    """An STN whose localization gives non-identity, input-dependent transforms."""
    torch.manual_seed(seed)
    stn = (
        SpatialTransformer(
            name, localization_size=(16, 16), output_size=(24, 24), input_mean=127.5, input_std=40.0, **kwargs
        )
        .double()
        .eval()
    )
    with torch.no_grad():
        stn.localization.regressor.weight.normal_(0.0, 0.01)
        stn.localization.regressor.bias.add_(0.1 * torch.randn_like(stn.localization.regressor.bias))
    return stn


def test_roi_matrix_of_the_whole_image_is_the_identity_and_rejects_bad_rois():
    torch.testing.assert_close(roi_matrix(torch.tensor([[0.0, 0.0, 64.0, 48.0]]), (48, 64))[0], torch.eye(3))
    with pytest.raises(ValueError, match='positive'):
        roi_matrix(torch.tensor([[0.0, 0.0, 0.0, 5.0]]), (48, 64))
    with pytest.raises(ValueError, match=r'\(B, 4\)'):
        roi_matrix(torch.zeros(2, 3), (48, 64))


@pytest.mark.parametrize('name', list(FAMILIES))
def test_composed_sampling_equals_crop_then_warp(name, device):
    source = torch.from_numpy(smooth_image(100, 120)).double()[None].to(device)
    stn = trained_looking_stn(name).to(device)
    with torch.no_grad():
        crops, transforms = canonicalize_crops(stn, source, ROIS.double().to(device))
    for i, (x, y, w, h) in enumerate(ROIS.int().tolist()):
        cropped = source[:, y : y + h, x : x + w][None]
        with torch.no_grad():
            twice = stn.sample(cropped, transforms.params[i : i + 1])[0]
        grid = stn.family.grid(transforms.params[i : i + 1].detach(), 24, 24)[0]
        col = (grid[..., 0] + 1) * w / 2 - 0.5
        row = (grid[..., 1] + 1) * h / 2 - 0.5
        inside = (col > 1) & (col < w - 2) & (row > 1) & (row < h - 2)  # away from the crop's border
        assert inside.float().mean() > 0.5
        torch.testing.assert_close(crops[i][:, inside], twice[:, inside], atol=1e-9, rtol=0)


def test_the_localization_net_sees_the_roi_small():
    source = torch.from_numpy(smooth_image(100, 120)).double()[None]
    stn = trained_looking_stn('affine')
    seen = []
    stn.localization.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    with torch.no_grad():
        crop_transforms(stn, source, ROIS.double())
    assert seen[0].shape == (3, 1, 16, 16)
    x, y, w, h = ROIS[0].int().tolist()
    resized = cv2.resize(source[0, y : y + h, x : x + w].numpy(), (16, 16), interpolation=cv2.INTER_LINEAR)
    normalized = (torch.from_numpy(resized) - 127.5) / 40.0
    # 48 -> 16 is an exact factor of 3: bilinear samples at the centre pixel of each 3x3 block.
    torch.testing.assert_close(seen[0][0, 0], normalized, atol=1e-9, rtol=0)


@pytest.mark.parametrize('name', list(FAMILIES))
@pytest.mark.parametrize('dtype', [np.float32, np.uint8])
def test_opencv_path_gives_the_torch_pixels(name, dtype):
    image = smooth_image(100, 120, channels=3).astype(dtype)
    stn = trained_looking_stn(name, in_channels=3).float()
    with torch.no_grad():
        torch_crops, _ = canonicalize_crops(stn, torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1), ROIS)
    cv_crops, transforms = canonicalize_crops_opencv(stn, image, ROIS)
    assert cv_crops.dtype == dtype and cv_crops.shape == (3, 24, 24, 3)
    expected = torch_crops.permute(0, 2, 3, 1).numpy()
    # 1/32-pixel fixed-point interpolation in OpenCV (plus rounding for uint8).
    tolerance = 0.3 if dtype == np.float32 else 1.0
    assert np.abs(cv_crops.astype(np.float32) - expected).max() <= tolerance
    assert transforms.exact == stn.family.is_linear


@pytest.mark.parametrize('name', [n for n in FAMILIES if n != 'tps'])
def test_published_h_reproduces_the_crop_with_warp_perspective(name):
    image = smooth_image(100, 120)
    stn = trained_looking_stn(name).float()
    crops, transforms = canonicalize_crops_opencv(stn, image, ROIS)
    for crop, h in zip(crops, transforms.homographies.numpy(), strict=True):
        again = cv2.warpPerspective(image, h, (24, 24), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        np.testing.assert_array_equal(again, crop)


def source_pixels_of_grids(grids, source_size):
    height, width = source_size
    return (grids + 1) * torch.tensor([width, height], dtype=grids.dtype) / 2 - 0.5


def h_pixels(homographies, size):
    rows, cols = torch.meshgrid(torch.arange(float(size[0])), torch.arange(float(size[1])), indexing='ij')
    points = torch.stack([cols, rows, torch.ones_like(rows)], -1).double().reshape(-1, 3)
    mapped = points @ homographies.transpose(1, 2)
    return (mapped[..., :2] / mapped[..., 2:]).reshape(len(homographies), *size, 2)


def test_tps_h_is_exact_for_an_affine_spline_and_a_least_squares_fit_otherwise():
    source = torch.from_numpy(smooth_image(100, 120)).double()[None]
    stn = trained_looking_stn('tps', family_options={'grid_size': 3})
    with torch.no_grad():  # offsets of one affine map: the spline is that map, and so is its fit
        control = stn.family.control_points
        stn.localization.regressor.weight.zero_()
        affine = torch.tensor([[0.9, -0.2], [0.25, 1.1]], dtype=torch.float64)
        stn.localization.regressor.bias.copy_((control @ affine.T + 0.05 - control).flatten())
        _, exact = canonicalize_crops(stn, source, ROIS.double())
    assert not exact.exact
    torch.testing.assert_close(
        h_pixels(exact.homographies, (24, 24)), source_pixels_of_grids(exact.grids, (100, 120)), atol=1e-6, rtol=0
    )
    stn = trained_looking_stn('tps', family_options={'grid_size': 3})
    with torch.no_grad():
        _, bent = canonicalize_crops(stn, source, ROIS.double())
    residual = h_pixels(bent.homographies, (24, 24)) - source_pixels_of_grids(bent.grids, (100, 120))
    assert torch.isfinite(residual).all() and residual.abs().max() > 0.1  # really bent
    # A least-squares fit with a constant term leaves residuals of zero mean.
    torch.testing.assert_close(residual.mean(dim=(1, 2)), torch.zeros(3, 2, dtype=torch.float64), atol=1e-6, rtol=0)


def test_no_rois_gives_no_crops():
    stn = trained_looking_stn('similarity').float()
    crops, transforms = canonicalize_crops_opencv(stn, smooth_image(50, 60), torch.zeros(0, 4))
    assert crops.shape == (0, 24, 24) and transforms.homographies.shape == (0, 3, 3)
    torch_crops, _ = canonicalize_crops(stn, torch.rand(1, 50, 60), torch.zeros(0, 4))
    assert torch_crops.shape == (0, 1, 24, 24)


def test_rois_beyond_the_image_read_zeros_there():
    image = smooth_image(40, 40) + 10.0
    stn = SpatialTransformer('attention', output_size=(20, 20)).eval()
    crops, _ = canonicalize_crops_opencv(stn, image, torch.tensor([[30.0, 30.0, 20.0, 20.0]]))
    assert (crops[0, :10, :10] > 0).all() and (crops[0, 11:, 11:] == 0).all()


@pytest.mark.parametrize('name', ['similarity', 'projective', 'tps'])
def test_depth_sources_read_nan_outside_and_at_holes_on_both_paths(name):
    depth = smooth_image(60, 80) / 100.0
    depth[20:24, 30:34] = np.nan  # a hole: no reading
    rois = torch.tensor([[-10.0, -8.0, 40.0, 40.0], [20.0, 10.0, 30.0, 30.0]])
    stn = trained_looking_stn(name).float()
    cv_crops, _ = canonicalize_crops_opencv(stn, depth, rois, border_value=float('nan'))
    with torch.no_grad():
        torch_crops, _ = canonicalize_crops(
            stn,
            torch.from_numpy(depth)[None],
            rois,
            localization_source=torch.from_numpy(np.nan_to_num(depth))[None],
            border_value=float('nan'),
        )
    torch_crops = torch_crops[:, 0].numpy()
    assert np.isnan(cv_crops[0, 0, 0]) and np.isnan(torch_crops[0, 0, 0])  # outside the image
    assert np.isnan(cv_crops[1]).any()  # the hole is in the second ROI
    both = ~np.isnan(cv_crops) & ~np.isnan(torch_crops)
    disagree = np.isnan(cv_crops) != np.isnan(torch_crops)
    # NaN masks agree except where a sample sits within OpenCV's 1/32-pixel step of a tap boundary.
    assert disagree.mean() < 0.01
    assert np.abs(cv_crops[both] - torch_crops[both]).max() < 0.01


def test_border_value_must_be_zero_or_nan():
    with pytest.raises(ValueError, match='border_value must be 0 or NaN'):
        canonicalize_crops_opencv(
            trained_looking_stn('affine').float(),
            smooth_image(20, 20),
            torch.tensor([[0.0, 0.0, 10.0, 10.0]]),
            border_value=5.0,
        )

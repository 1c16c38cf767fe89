"""Transform families: identity, pixel-space H against OpenCV, TPS, gradients, no NaN."""

import cv2
import numpy as np
import pytest
import torch

from images import smooth_image
from stn_ros.core import FAMILIES, SpatialTransformer, make_family, pixel_homography
from stn_ros.core.coords import normalized_to_pixel, pixel_to_normalized
from stn_ros.core.families import HOMOGENEOUS_EPS, homography_grid
from stn_ros.core.sampler import sample_grids

LINEAR = [name for name in FAMILIES if make_family(name).is_linear]
EXPECTED_PARAMS = {'translation': 2, 'attention': 3, 'similarity': 4, 'affine': 6, 'projective': 8, 'tps': 32}


def random_params(family, batch, generator, spread=0.15):
    """Parameters near the identity that keep the sampled region inside the input."""
    noise = spread * torch.randn(batch, family.num_params, generator=generator, dtype=torch.float64)
    if family.name == 'projective':
        noise[:, 6:] *= 0.3  # perspective terms: keep the horizon far from the image
    return family.identity(dtype=torch.float64) + noise


def sample_one(image: torch.Tensor, family, params, size):
    return SpatialTransformer(family).sample(image, params, size)


@pytest.mark.parametrize('name', list(FAMILIES))
def test_parameter_count_and_identity(name):
    family = make_family(name)
    assert family.num_params == EXPECTED_PARAMS[name]
    assert family.identity().shape == (family.num_params,)
    assert family.code == list(FAMILIES).index(name)


@pytest.mark.parametrize('name', list(FAMILIES))
def test_identity_parameters_reproduce_the_input(name):
    family = make_family(name)
    image = torch.from_numpy(smooth_image(24, 30, channels=3)).permute(2, 0, 1)[None]
    out = sample_one(image, family, family.identity()[None], (24, 30))
    torch.testing.assert_close(out, image, atol=1e-4, rtol=0)


@pytest.mark.parametrize('name', LINEAR)
def test_pixel_homography_matches_opencv_warp_perspective(name):
    family = make_family(name)
    source = smooth_image(96, 128)
    generator = torch.Generator().manual_seed(FAMILIES[name].code)
    params = random_params(family, 4, generator)
    out_size = (40, 56)
    ours = sample_one(torch.from_numpy(source).double()[None, None].expand(4, 1, -1, -1), family, params, out_size)[
        :, 0
    ].numpy()
    homographies = pixel_homography(family.matrix(params), source.shape, out_size).numpy()
    for i, h in enumerate(homographies):
        theirs = cv2.warpPerspective(source, h, out_size[::-1], flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        # Compare where the sample lies at least 2 px inside the source (away from the padding).
        rows, cols = np.mgrid[0 : out_size[0], 0 : out_size[1]]
        mapped = np.einsum('ij,jhw->ihw', h, np.stack([cols, rows, np.ones_like(rows)]).astype(float))
        x, y = mapped[0] / mapped[2], mapped[1] / mapped[2]
        inside = (x > 2) & (x < source.shape[1] - 3) & (y > 2) & (y < source.shape[0] - 3)
        assert inside.mean() > 0.5  # the comparison covers most of the output
        # OpenCV interpolates with 1/32-pixel fixed-point weights; the image changes < 6 levels/px.
        assert np.abs(ours[i] - theirs)[inside].max() < 0.3


@pytest.mark.parametrize('name', LINEAR)
def test_pixel_homography_is_the_normalized_map_in_pixels(name):
    family = make_family(name)
    params = random_params(family, 3, torch.Generator().manual_seed(1))
    in_size, out_size = (48, 64), (20, 24)
    h = pixel_homography(family.matrix(params), in_size, out_size)
    grid = homography_grid(family.matrix(params), *out_size)  # normalized input coords per output pixel
    rows, cols = torch.meshgrid(torch.arange(20.0), torch.arange(24.0), indexing='ij')
    homogeneous = torch.stack([cols, rows, torch.ones_like(rows)], -1).double().reshape(-1, 3)
    pix = (homogeneous @ h.transpose(1, 2)).reshape(3, 20, 24, 3)
    pix = pix[..., :2] / pix[..., 2:]
    expected = (grid + 1) * torch.tensor([64.0, 48.0], dtype=torch.float64) / 2 - 0.5
    torch.testing.assert_close(pix, expected)


def test_coordinate_matrices_are_inverse():
    product = normalized_to_pixel(7, 11, dtype=torch.float64) @ pixel_to_normalized(7, 11, dtype=torch.float64)
    torch.testing.assert_close(product, torch.eye(3, dtype=torch.float64))


def test_tps_zero_offsets_are_the_identity_grid():
    tps = make_family('tps', grid_size=3)
    grid = tps.grid(tps.identity()[None], 17, 23)
    torch.testing.assert_close(grid, homography_grid(torch.eye(3)[None], 17, 23), atol=1e-6, rtol=0)


@pytest.mark.parametrize('grid_size', [2, 3, 4, 6])
def test_tps_with_affine_offsets_equals_the_affine_family(grid_size):
    tps, affine = make_family('tps', grid_size=grid_size), make_family('affine')
    params = random_params(affine, 3, torch.Generator().manual_seed(grid_size), spread=0.3)
    matrix = affine.matrix(params)
    control = tps.control_points  # (K, 2) float64
    targets = control @ matrix[:, :2, :2].transpose(1, 2) + matrix[:, None, :2, 2]
    offsets = (targets - control).reshape(3, -1)
    torch.testing.assert_close(tps.grid(offsets, 15, 19), affine.grid(params, 15, 19), atol=1e-6, rtol=0)


def test_tps_control_points_go_where_their_offsets_say():
    tps = make_family('tps', grid_size=2)  # control points at the corners (+-1), i.e. pixel edges
    offsets = 0.2 * torch.randn(1, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    basis = tps.basis(5, 5, dtype=torch.float64, device='cpu')
    assert torch.isfinite(basis).all()
    # Evaluate the spline at the control points themselves: they land on control + offset.
    features = tps._features(tps.control_points) @ tps._inverse_system
    landed = tps.control_points + features @ offsets.reshape(-1, 2)
    torch.testing.assert_close(landed, tps.control_points + offsets.reshape(-1, 2), atol=1e-5, rtol=0)


@pytest.mark.parametrize('name', list(FAMILIES))
def test_gradcheck_through_grid_and_sampling(name):
    family = make_family(name, **({'grid_size': 2} if name == 'tps' else {}))
    image = torch.from_numpy(smooth_image(12, 14)).double()[None, None]
    params = random_params(family, 1, torch.Generator().manual_seed(7), spread=0.1).requires_grad_()
    torch.autograd.gradcheck(lambda p: family.grid(p, 6, 7), (params,))
    torch.autograd.gradcheck(lambda p: sample_one(image, family, p, (6, 7)), (params,), atol=1e-4)


def test_projective_with_a_zero_denominator_stays_finite():
    family = make_family('projective')
    # w = 1 + 4 x_n is exactly 0 at the output column whose x_n = -0.25 (width 4), negative left of it.
    params = torch.tensor([[1.0, 0, 0, 0, 1, 0, 4.0, 0]], dtype=torch.float64, requires_grad=True)
    grid = family.grid(params, 3, 4)
    assert torch.isfinite(grid).all()
    assert grid.abs().max() >= 0.5 / HOMOGENEOUS_EPS  # pushed far away: a zero-padded sample
    image = torch.from_numpy(smooth_image(8, 8)).double()[None, None]
    out = sample_one(image, family, params, (3, 4))
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(params.grad).all()
    assert (out[..., 1] == 0).all()


@pytest.mark.parametrize('name', list(FAMILIES))
def test_grids_that_leave_the_image_read_zeros(name):
    family = make_family(name)
    params = family.identity()[None].clone()
    if name == 'tps':
        params += 50.0
    elif name == 'projective':
        params[0, [2, 5]] = 50.0
    else:
        params[0, -2:] = 50.0  # every family but TPS ends with (tx, ty)
    image = torch.rand(1, 2, 10, 10) + 1.0
    out = sample_one(image, family, params, (5, 5))
    assert torch.isfinite(out).all() and (out == 0).all()


def test_tps_with_many_control_points_is_finite_and_exact_at_identity():
    tps = make_family('tps', grid_size=10)
    grid = tps.grid(tps.identity()[None] + 1e3, 9, 9)
    assert torch.isfinite(grid).all()
    torch.testing.assert_close(
        tps.grid(tps.identity()[None], 9, 9), homography_grid(torch.eye(3)[None], 9, 9), atol=1e-5, rtol=0
    )


def test_bad_arguments_are_named_errors():
    with pytest.raises(ValueError, match='unknown transform family'):
        make_family('perspective')
    with pytest.raises(ValueError, match=r'affine parameters must be a \(B, 6\) tensor, got shape \(2, 4\)'):
        make_family('affine').grid(torch.zeros(2, 4), 4, 4)
    with pytest.raises(TypeError, match='not linear'):
        make_family('tps').matrix(torch.zeros(1, 32))
    with pytest.raises(ValueError, match='grid_size >= 2'):
        make_family('tps', grid_size=1)


def test_empty_batches_and_sizes():
    family = make_family('affine')
    assert family.grid(torch.zeros(0, 6), 4, 4).shape == (0, 4, 4, 2)
    assert sample_grids(torch.rand(1, 8, 8), family.grid(torch.zeros(0, 6), 4, 4)).shape == (0, 1, 4, 4)
    assert sample_grids(torch.rand(3, 8, 8), family.grid(family.identity()[None], 0, 4)).shape == (1, 3, 0, 4)

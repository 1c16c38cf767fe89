"""The localization net, the SpatialTransformer module and its checkpoints."""

import pytest
import torch

from stn_ros.core import (
    FAMILIES,
    CheckpointError,
    LocalizationNet,
    SpatialTransformer,
    load_spatial_transformer,
    make_family,
    save_spatial_transformer,
)


@pytest.mark.parametrize('name', list(FAMILIES))
def test_untrained_localization_outputs_the_identity(name):
    family = make_family(name)
    net = LocalizationNet(family.identity(), in_channels=2, input_size=(20, 24), channels=(4, 8), hidden=16)
    assert (net.regressor.weight == 0).all()
    out = net(torch.randn(5, 2, 20, 24))
    torch.testing.assert_close(out, family.identity().expand(5, -1))


def test_localization_rejects_the_wrong_size_and_too_many_stages():
    net = LocalizationNet(torch.zeros(2), input_size=(16, 16))
    with pytest.raises(ValueError, match=r'must be \(B, C, 16, 16\), got shape \(1, 1, 15, 16\)'):
        net(torch.zeros(1, 1, 15, 16))
    with pytest.raises(ValueError, match='too small'):
        LocalizationNet(torch.zeros(2), input_size=(4, 4), channels=(4, 4, 4))


def test_forward_shapes_resize_for_localization_and_learn():
    stn = SpatialTransformer('affine', in_channels=1, localization_size=(16, 16), output_size=(10, 12))
    images = torch.rand(4, 1, 42, 42, requires_grad=True)
    out = stn(images)
    assert out.shape == (4, 1, 10, 12)
    out.square().mean().backward()
    assert stn.localization.regressor.weight.grad.abs().sum() > 0  # gradients reach the localizer
    with pytest.raises(ValueError, match=r'\(B, 1, H, W\)'):
        stn.localize(torch.rand(2, 3, 16, 16))


def test_checkpoint_round_trip_is_self_describing(tmp_path):
    stn = SpatialTransformer(
        'tps',
        in_channels=3,
        localization_size=(24, 24),
        output_size=(16, 16),
        channels=(4, 8),
        hidden=12,
        input_mean=0.5,
        input_std=0.25,
        family_options={'grid_size': 3},
    )
    with torch.no_grad():
        stn.localization.regressor.weight.normal_()
    path = tmp_path / 'stn.pt'
    save_spatial_transformer(stn, path, metadata={'trained_on': 'nothing'})
    loaded, metadata = load_spatial_transformer(path)
    assert metadata == {'trained_on': 'nothing'}
    assert loaded.config() == stn.config() and loaded.family.grid_size == 3
    images = torch.rand(2, 3, 30, 30)
    torch.testing.assert_close(loaded(images), stn.eval()(images))


def test_bad_weight_files_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match='does not exist'):
        load_spatial_transformer(tmp_path / 'missing.pt')
    garbage = tmp_path / 'garbage.pt'
    garbage.write_bytes(b'not a checkpoint at all')
    with pytest.raises(CheckpointError, match='not a readable torch checkpoint'):
        load_spatial_transformer(garbage)
    good = tmp_path / 'good.pt'
    save_spatial_transformer(SpatialTransformer('affine'), good)
    truncated = tmp_path / 'truncated.pt'
    truncated.write_bytes(good.read_bytes()[:500])
    with pytest.raises(CheckpointError, match='not a readable torch checkpoint'):
        load_spatial_transformer(truncated)
    other = tmp_path / 'other.pt'
    torch.save({'state_dict': {}}, other)
    with pytest.raises(CheckpointError, match='not an stn_ros Spatial Transformer checkpoint'):
        load_spatial_transformer(other)
    mismatched = tmp_path / 'mismatched.pt'
    blob = torch.load(good, weights_only=True)
    blob['config']['hidden'] = 7
    torch.save(blob, mismatched)
    with pytest.raises(CheckpointError, match='does not match its own config'):
        load_spatial_transformer(mismatched)


def test_unsafe_pickles_are_refused(tmp_path):
    path = tmp_path / 'unsafe.pt'
    torch.save({'format': 'stn_ros.spatial_transformer/1', 'payload': object()}, path)
    with pytest.raises(CheckpointError, match='not a readable torch checkpoint'):
        load_spatial_transformer(path)


def test_median_centering_makes_localization_independent_of_the_camera_distance():
    stn = SpatialTransformer('similarity', localization_size=(8, 8), input_center='median').eval()
    with torch.no_grad():
        stn.localization.regressor.weight.normal_()
    depth = 0.7 + 0.02 * torch.rand(2, 1, 8, 8)
    depth[:, :, 0, 0] = 0  # no reading
    farther = torch.where(depth > 0, depth + 0.3, 0.0)
    torch.testing.assert_close(stn.localize(depth), stn.localize(farther))
    assert stn.config()['input_center'] == 'median'
    with pytest.raises(ValueError, match='input_center'):
        SpatialTransformer('affine', input_center='mean')


@pytest.mark.parametrize('shape', [(3, 4, 32, 32), (2, 5, 17, 11), (1, 1, 2, 3), (4, 8, 9, 9)])
def test_max_pool_2x2_is_nn_max_pool_2d(shape):
    from stn_ros.core.pooling import MaxPool2x2

    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0), requires_grad=True)
    torch.testing.assert_close(MaxPool2x2()(x), torch.nn.MaxPool2d(2)(x), rtol=0, atol=0)
    ours = torch.autograd.grad(MaxPool2x2()(x).sum(), x)[0]
    theirs = torch.autograd.grad(torch.nn.MaxPool2d(2)(x).sum(), x)[0]
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)  # no ties in random data: the same gradient

"""Shipped checkpoints: plain tensors and metadata (no module paths pickled), each loading with its loader."""

import pickletools
import zipfile
from pathlib import Path

import pytest
import torch

from stn_ros.core import SpatialTransformer, load_spatial_transformer
from stn_ros.models.gqcnn import GQCNN, load_gqcnn
from stn_ros.models.mnist import DigitClassifier, load_classifier
from stn_ros.perception.stn.canonicalizer import load_model

WEIGHTS = Path(__file__).resolve().parents[1] / 'weights'
SAFE_GLOBALS = {'collections OrderedDict', 'torch FloatStorage', 'torch LongStorage', 'torch._utils _rebuild_tensor_v2'}


def pickled_globals(path: Path) -> set[str]:
    """Every class or function a torch checkpoint's pickle names (what loading it would import)."""
    with zipfile.ZipFile(path) as archive:
        pickle = next(archive.read(name) for name in archive.namelist() if name.endswith('data.pkl'))
    found, strings = set(), []
    for opcode, argument, _ in pickletools.genops(pickle):
        if opcode.name == 'GLOBAL':
            found.add(argument)
        elif opcode.name == 'STACK_GLOBAL':
            found.add(' '.join(strings[-2:]))
        if isinstance(argument, str):
            strings.append(argument)
    return found


def test_weights_ship_and_each_checkpoint_pickles_no_module_path():
    checkpoints = sorted(WEIGHTS.glob('*.pt'))
    assert [p.name for p in checkpoints] == [
        'gqcnn.pt',
        'grasp_stn.pt',
        'mnist_st_cnn_affine_e.pt',
        'mnist_st_cnn_affine_p.pt',
        'mnist_st_cnn_affine_r.pt',
        'mnist_st_cnn_affine_rts.pt',
    ]
    for path in checkpoints:
        named = pickled_globals(path)
        assert 'torch._utils _rebuild_tensor_v2' in named and named <= SAFE_GLOBALS, (path.name, named)
        assert (WEIGHTS / f'{path.stem}.md').is_file(), f'{path.name} has no model card'


@pytest.mark.parametrize(
    'name,loader,kind',
    [
        ('grasp_stn.pt', load_spatial_transformer, SpatialTransformer),
        ('gqcnn.pt', load_gqcnn, GQCNN),
        ('mnist_st_cnn_affine_rts.pt', load_classifier, DigitClassifier),
    ],
)
def test_shipped_checkpoints_load_with_the_package_loaders(name, loader, kind):
    model, metadata = loader(WEIGHTS / name)
    assert isinstance(model, kind) and isinstance(metadata, dict)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_the_node_default_is_the_shipped_grasp_stn():
    loaded = load_model('')
    assert loaded.roi_side_m == pytest.approx(0.24) and loaded.modality == 'depth' and loaded.warning is None

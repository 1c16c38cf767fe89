"""stn_export: both nets as ONNX with a dynamic batch, equal to torch under onnxruntime (CPU)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from stn_ros.apps.export import GraspQuality, Localization
from stn_ros.core.spatial_transformer import median_of_nonzero, median_of_nonzero_sorted
from stn_ros.models.gqcnn import load_gqcnn
from stn_ros.perception.stn.canonicalizer import load_model

WEIGHTS = Path(__file__).resolve().parents[1] / 'weights'


@pytest.mark.timeout(240)
def test_the_export_command_writes_both_nets_and_they_match_torch(tmp_path):
    result = subprocess.run(
        [str(Path(sys.executable).parent / 'stn_export'), '--out', str(tmp_path)],
        capture_output=True, text=True, timeout=200,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert result.stdout.count('(ok)') == 2, result.stdout
    rng = np.random.default_rng(7)
    stn = load_model('').stn.eval()
    crops = (0.5 + 0.4 * rng.random((7, 1, *stn.localization_size))).astype(np.float32)
    crops[rng.random(crops.shape) < 0.2] = 0.0  # holes
    images = (0.03 * rng.standard_normal((7, 1, 32, 32))).astype(np.float32)
    z = np.full(7, 0.66, np.float32)
    cases = [
        ('localization.onnx', Localization(stn), {'crops': crops}),
        ('gqcnn.onnx', GraspQuality(load_gqcnn(WEIGHTS / 'gqcnn.pt')[0].eval()), {'images': images, 'z': z}),
    ]
    for name, module, inputs in cases:
        model = onnx.load(tmp_path / name)
        assert all(i.type.tensor_type.shape.dim[0].dim_param for i in model.graph.input), f'{name}: fixed batch'
        session = onnxruntime.InferenceSession(str(tmp_path / name), providers=['CPUExecutionProvider'])
        (actual,) = session.run(None, inputs)
        with torch.no_grad():
            expected = module(*(torch.from_numpy(v) for v in inputs.values())).numpy()
        np.testing.assert_allclose(actual, expected, atol=1e-4, rtol=0)


def test_the_exportable_median_is_torch_nanmedian_of_the_nonzero_values():
    generator = torch.Generator().manual_seed(0)
    for _ in range(50):
        images = torch.randint(0, 6, (5, 1, 8, 8), generator=generator).float() * 0.1  # ties and zeros
        images[0] = 0.0  # no reading at all: 0
        nonzero = torch.where(images != 0, images, torch.nan).flatten(1)
        expected = torch.nan_to_num(nonzero.nanmedian(dim=1).values, nan=0.0)
        assert torch.equal(median_of_nonzero(images), expected)
        assert torch.equal(median_of_nonzero_sorted(images), expected)  # the path ONNX export takes


def test_the_exported_quality_is_the_nodes_quality_temperature_included():
    from stn_ros.models.gqcnn import GQCNN

    torch.manual_seed(0)
    model = GQCNN(temperature=2.0).eval()
    images, z = 0.02 * torch.randn(4, 1, 32, 32), torch.full((4,), 0.7)
    torch.testing.assert_close(GraspQuality(model)(images, z), model.quality(images, z))

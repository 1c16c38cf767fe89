"""The GQ-CNN on physics labels: soft labels, temperature scaling, and one short training run end to end."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from stn_ros.models.gqcnn import GQCNN, load_gqcnn
from stn_ros.training.physics.gqcnn import fit_temperature, soft_cross_entropy


def test_soft_cross_entropy_is_the_binary_cross_entropy_of_the_share():
    logits = torch.tensor([[0.0, 2.0], [1.0, -1.0]])
    share = torch.tensor([0.8, 0.4])
    p = torch.softmax(logits, dim=1)[:, 1]
    expected = torch.nn.functional.binary_cross_entropy(p, share)
    assert float(soft_cross_entropy(logits, share)) == pytest.approx(float(expected), rel=1e-6)


def test_fit_temperature_recovers_an_overconfident_models_scale():
    rng = np.random.default_rng(0)
    true_logits = torch.from_numpy(rng.normal(0.0, 1.5, (4000, 2)).astype(np.float32))
    held = torch.softmax(true_logits, dim=1)[:, 1]
    share = torch.from_numpy((rng.random((4000, 5)) < held.numpy()[:, None]).mean(axis=1).astype(np.float32))
    assert fit_temperature(3.0 * true_logits, share) == pytest.approx(3.0, rel=0.1)


def test_the_temperature_travels_in_the_checkpoint(tmp_path):
    from stn_ros.models.gqcnn import save_gqcnn

    model = GQCNN(temperature=2.5)
    save_gqcnn(model, tmp_path / 'g.pt')
    loaded, _ = load_gqcnn(tmp_path / 'g.pt')
    images, z = torch.zeros(3, 1, 32, 32), torch.full((3,), 0.7)
    assert loaded.temperature == 2.5
    torch.testing.assert_close(loaded.quality(images, z), torch.softmax(model(images, z) / 2.5, dim=1)[:, 1])


@pytest.mark.timeout(300)
def test_train_gqcnn_physics_end_to_end(tmp_path, tiny_physics_data):
    command = [
        sys.executable, '-m', 'stn_ros.apps.train', 'gqcnn-physics', '--physics-data', str(tiny_physics_data),
        '--validation-fraction', '0.34', '--epochs', '2', '--out', str(tmp_path / 'run'), '--no-progress',
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    model, metadata = load_gqcnn(tmp_path / 'run' / 'gqcnn.pt')
    card = json.loads(metadata['card'])
    assert card['temperature'] == model.temperature > 0 and card['data']['scenes'] == 3
    text = (tmp_path / 'run' / 'gqcnn.md').read_text()
    assert 'GQ-CNN on physics labels' in text and 'stn_train gqcnn-physics --physics-data' in text

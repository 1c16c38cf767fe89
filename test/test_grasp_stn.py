"""The grasp canonicalizer's targets, loss and training CLI."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from stn_ros.core import make_family, pixel_homography, roi_matrix
from stn_ros.perception.geometry.camera import metric_rois
from stn_ros.perception.grasps.grasp_image import canonical_homographies
from stn_ros.perception.grasps.gripper import GripperConfig
from stn_ros.perception.stn.canonicalizer import load_model
from stn_ros.sim.prisms.scenes import SceneConfig
from stn_ros.training.prisms.grasp_stn import ROI_SIDE_M, matched_errors, similarity_targets


def test_similarity_targets_reproduce_the_analytic_canonical_h():
    camera = SceneConfig().camera()
    H = canonical_homographies(
        np.array([[300.0, 200.0], [310.0, 190.0]]),
        np.array([0.3, -1.2]),
        np.array([0.66, 0.64]),
        camera,
        GripperConfig(),
    )
    depth = np.full((480, 640), 0.66, np.float32)
    roi = metric_rois(np.array([[280.0, 180.0, 40.0, 40.0]]), depth, camera.fx, camera.fy, ROI_SIDE_M)[0]
    assert roi[2] == pytest.approx(ROI_SIDE_M * 525 / 0.66, rel=1e-5)
    targets = similarity_targets(H, roi, (480, 640))
    composed = roi_matrix(torch.from_numpy(roi).double()[None], (480, 640)) @ make_family('similarity').matrix(
        torch.from_numpy(targets)
    )
    np.testing.assert_allclose(pixel_homography(composed, (480, 640), (32, 32)).numpy(), H, atol=1e-6)


def test_matched_errors_take_the_nearest_good_grasp_modulo_180_degrees():
    targets = torch.tensor([[[0.6, 0.0, 0.1, 0.0], [0.0, 0.6, -0.3, 0.2]]])
    mask = torch.tensor([[True, True]])
    flipped = torch.tensor([[-0.6, 0.0, 0.1, 0.0]])  # the first grasp, axis reversed: the same grasp
    distance, angle, centre = matched_errors(flipped, targets, mask)
    assert distance.item() == pytest.approx(0.0) and angle.item() == pytest.approx(0.0, abs=1e-4)
    rotated = torch.tensor([[0.6 * np.cos(np.radians(5)), 0.6 * np.sin(np.radians(5)), 0.1, 0.05]])
    _, angle, centre = matched_errors(rotated, targets, mask)
    assert angle.item() == pytest.approx(5.0, abs=1e-3) and centre.item() == pytest.approx(0.05 * 24, rel=1e-4)
    distance, _, _ = matched_errors(rotated, targets, torch.tensor([[False, False]]))
    assert torch.isinf(distance).all()


@pytest.mark.timeout(300)
def test_quick_grasp_stn_training_ships_a_node_loadable_checkpoint(tmp_path):
    out = tmp_path / 'stn'
    result = subprocess.run(
        [
            sys.executable,
            '-m',
            'stn_ros.apps.train',
            'grasp-stn',
            '--num-scenes',
            '20',
            '--epochs',
            '2',
            '--out',
            str(out),
            '--cache',
            str(tmp_path / 'data'),
            '--no-progress',
        ],
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads(result.stdout.splitlines()[-1])
    assert 0 <= metrics['median_angle_error_deg'] <= 90 and metrics['held_out_objects'] > 0
    model = load_model(str(out / 'grasp_stn.pt'))
    assert model.roi_side_m == ROI_SIDE_M and model.modality == 'depth' and model.stn.input_center == 'median'
    assert 'Grasp canonicalizer' in (out / 'grasp_stn.md').read_text()


@pytest.mark.timeout(300)
def test_quick_grasp_evaluation_compares_the_four_canonicalizations(tmp_path):
    pytest.importorskip('matplotlib', reason='the evaluation plots its results (matplotlib comes with mlxtend)')
    cache = tmp_path / 'data'
    for task, out in (('gqcnn', 'gq'), ('grasp-stn', 'stn')):
        subprocess.run(
            [
                sys.executable,
                '-m',
                'stn_ros.apps.train',
                task,
                '--num-scenes',
                '20',
                '--epochs',
                '1',
                '--out',
                str(tmp_path / out),
                '--cache',
                str(cache),
                '--no-progress',
            ],
            check=True,
            capture_output=True,
            timeout=200,
        )
    result = subprocess.run(
        [
            sys.executable,
            '-m',
            'stn_ros.apps.evaluate',
            'grasp',
            '--gqcnn',
            str(tmp_path / 'gq' / 'gqcnn.pt'),
            '--stn',
            str(tmp_path / 'stn' / 'grasp_stn.pt'),
            '--num-scenes',
            '20',
            '--cache',
            str(cache),
            '--output',
            str(tmp_path / 'docs'),
        ],
        capture_output=True,
        text=True,
        timeout=200,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / 'docs' / 'results.json').read_text())
    assert set(summary['methods']) == {'none', 'opencv', 'stn', 'oracle'} and summary['objects'] > 0
    assert summary['methods']['oracle']['success'] == 1.0  # the analytic canonicalization is a good grasp
    assert '(c) our STN' in (tmp_path / 'docs' / 'table.md').read_text()
    assert (tmp_path / 'docs' / 'stn_crops.png').stat().st_size > 1000
    assert (tmp_path / 'docs' / 'grasp_results.png').stat().st_size > 1000


def test_dihedral_augmentation_moves_the_targets_with_the_crop():
    from stn_ros.core import SpatialTransformer
    from stn_ros.training.prisms.grasp_stn import dihedral_augment

    # A crop with one bright pixel; its target is the similarity whose crop centre sits on that pixel.
    crop = torch.zeros(1, 1, 32, 32)
    crop[0, 0, 8, 20] = 1.0  # row 8, column 20
    x, y = (2 * 20 + 1) / 32 - 1, (2 * 8 + 1) / 32 - 1  # its normalized (x, y)
    target = torch.tensor([[[0.3, 0.1, x, y]]])
    stn = SpatialTransformer('similarity', output_size=(32, 32))
    for seed in range(8):
        turned, moved = dihedral_augment(crop, target, torch.Generator().manual_seed(seed))
        sampled = stn.sample(turned, moved[:, 0], (32, 32))
        assert sampled[0, 0, 15:17, 15:17].max() > 0.2  # the crop centre still lands on the pixel
        row, col = (turned[0, 0] == 1).nonzero()[0].tolist()
        assert (moved[0, 0, 2:] - torch.tensor([(2 * col + 1) / 32 - 1, (2 * row + 1) / 32 - 1])).abs().max() < 1e-6
        assert torch.isclose(moved[0, 0, :2].norm(), target[0, 0, :2].norm())  # still a rotation of that scale

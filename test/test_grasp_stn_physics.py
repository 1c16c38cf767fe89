"""The grasp STN fine-tuned towards physically robust grasps: its data, its differentiable crops, a short run."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from stn_ros.core import load_spatial_transformer
from stn_ros.training.physics.grasp_stn import canonical_crops
from stn_ros.training.prisms.grasp_stn import dihedral_images, dihedral_targets


def smooth_patches(count: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.uniform(0.5, 0.8, (count, 1, 6, 6)).astype(np.float32))
    return torch.nn.functional.interpolate(coarse, size=(96, 96), mode='bicubic', align_corners=False)


def random_similarities(count: int, hypotheses: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    angle, scale = rng.uniform(-np.pi, np.pi, (count, hypotheses)), rng.uniform(0.2, 0.5, (count, hypotheses))
    shift = rng.uniform(-0.3, 0.3, (count, hypotheses, 2))
    params = np.stack((scale * np.cos(angle), scale * np.sin(angle), shift[..., 0], shift[..., 1]), axis=-1)
    return torch.from_numpy(params.astype(np.float32))


@pytest.mark.parametrize('flip', [False, True])
@pytest.mark.parametrize('turns', [0, 1, 2, 3])
def test_turning_the_patch_and_its_targets_together_turns_no_canonical_crop(turns, flip):
    patches, params = smooth_patches(2, 0), random_similarities(2, 3, 1)
    turns_t, flips_t = torch.full((2,), turns), torch.full((2,), flip)
    turned = canonical_crops(dihedral_images(patches, turns_t, flips_t), dihedral_targets(params, turns_t, flips_t))
    expected = canonical_crops(patches, params)
    if flip:  # the mirrored grasp: its crop mirrored across the grasp axis (the crop's rows)
        expected = torch.flip(expected, dims=(-2,))
    torch.testing.assert_close(turned, expected, atol=1e-5, rtol=0)


def test_canonical_crops_of_the_robust_targets_are_the_datasets_grasp_images(tiny_physics_data):
    from stn_ros.training.physics.grasp_labels import load_physics_dataset
    from stn_ros.training.physics.grasp_stn import physics_stn_objects

    data = load_physics_dataset(tiny_physics_data)
    objects = physics_stn_objects(data, progress=False)
    checked = 0
    for index in np.flatnonzero(objects['mask'][:, 0]):
        rows = np.flatnonzero((data['scene'] == objects['scene'][index]) & (data['body'] == objects['body'][index]))
        most_robust = rows[np.argsort(-data['quality'][rows], kind='stable')][0]
        assert objects['quality'][index, 0] == data['quality'][most_robust] > 0.5
        crop = canonical_crops(
            torch.from_numpy(objects['patches'][index : index + 1]),
            torch.from_numpy(objects['targets'][index : index + 1, :1]),
        )
        relative = crop[0, 0].numpy() - data['z'][most_robust]
        # the dataset's image is sampled from the full-resolution frame; the patch holds the depth in whole mm
        assert np.median(np.abs(relative - data['images'][most_robust].astype(np.float32))) < 1.5e-3
        checked += 1
    assert checked >= 3


@pytest.mark.timeout(300)
def test_fine_tuning_with_the_critic_ships_a_node_loadable_checkpoint(tmp_path, tiny_physics_data):
    from stn_ros.perception.stn.canonicalizer import load_model
    from stn_ros.training.prisms.grasp_stn import ROI_SIDE_M

    command = [
        sys.executable, '-m', 'stn_ros.apps.train', 'grasp-stn-physics', '--physics-data', str(tiny_physics_data),
        '--validation-fraction', '0.34', '--epochs', '2', '--critic-weight', '0.05', '--out', str(tmp_path / 'run'),
        '--no-progress',
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'physics STN objects' not in result.stderr  # --no-progress: no bars, the dataset's included
    metrics = json.loads(result.stdout.splitlines()[-1])
    assert 0 <= metrics['median_gqcnn_quality'] <= 1 and metrics['held_out_objects'] > 0
    model = load_model(str(tmp_path / 'run' / 'grasp_stn.pt'))
    assert model.roi_side_m == ROI_SIDE_M and model.modality == 'depth'
    _, metadata = load_spatial_transformer(tmp_path / 'run' / 'grasp_stn.pt')
    card = json.loads(metadata['card'])
    assert card['task_args']['critic_weight'] == 0.05 and card['data']['scenes'] == 3
    assert 'fine-tuned towards physically robust grasps' in (tmp_path / 'run' / 'grasp_stn.md').read_text()


def test_the_critic_term_moves_the_hypotheses_towards_higher_quality(tiny_physics_data):
    from torch.utils.data import DataLoader

    from stn_ros.perception.grasps.gripper import GripperConfig
    from stn_ros.training.physics.grasp_stn import GraspStnPhysicsTask, log_quality

    task = GraspStnPhysicsTask(str(tiny_physics_data), validation_fraction=0.34, critic_weight=1.0)
    train, _ = task.datasets()
    crops, _, _, patches = next(iter(DataLoader(train, batch_size=len(train))))
    stn = task.build_model()
    critic = task.critic(torch.device('cpu'))

    def mean_log_quality() -> float:
        with torch.no_grad():
            params, _ = stn.localize_all(crops)
            flat = canonical_crops(patches, params).reshape(-1, 32, 32)
            return float(log_quality(critic, flat, GripperConfig()).mean())

    before = mean_log_quality()
    optimizer = torch.optim.SGD(stn.parameters(), lr=1e-3)
    for _ in range(5):
        params, _ = stn.localize_all(crops)
        loss = -log_quality(critic, canonical_crops(patches, params).reshape(-1, 32, 32), GripperConfig()).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert mean_log_quality() > before


def test_gqcnn_ranked_targets_follow_the_robust_ones(tiny_physics_data):
    from stn_ros.models.gqcnn import load_gqcnn
    from stn_ros.training.physics.grasp_labels import load_physics_dataset
    from stn_ros.training.physics.grasp_stn import physics_stn_objects

    data = load_physics_dataset(tiny_physics_data)
    gqcnn, _ = load_gqcnn('weights/gqcnn.pt')
    plain = physics_stn_objects(data, progress=False)
    ranked = physics_stn_objects(data, progress=False, gqcnn=gqcnn, ranked=16, ranked_keep=4)
    np.testing.assert_array_equal(ranked['robust'], plain['robust'])
    extra = ranked['mask'].sum(axis=1) - ranked['robust']
    assert extra.sum() > 0 and (extra <= 4).all()
    for index in range(len(extra)):
        robust, found = ranked['robust'][index], ranked['mask'][index].sum()
        np.testing.assert_array_equal(ranked['targets'][index, :robust], plain['targets'][index, :robust])
        added = ranked['quality'][index, robust:found]
        assert (added >= 0.5).all() and (np.diff(added) <= 0).all()  # GQ-CNN quality, best first

"""The CUDA path: the same crops, transforms and qualities as the CPU's; the node, training and DDP on CUDA.

Tests marked ``cuda`` run wherever torch sees a CUDA device and are skipped elsewhere, with the reason
(``conftest.py``). The agreement check itself also runs here, on the CPU, against the torch sampling path
that CUDA uses. ``benchmarks/gpu_check.py`` runs the same checks and the per-stage timing on a GPU machine
without ROS.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from stn_ros.core import SpatialTransformer, crop_transforms, sample_grids
from stn_ros.core.families import FAMILIES
from stn_ros.evaluation.device_agreement import TOLERANCES, canonicalizer_agreement, gqcnn_agreement

CUDA = torch.device('cuda')


def assert_agree(results) -> None:
    bad = [r for r in results if not r.ok()]
    assert not bad, f'{len(bad)} of {len(results)} encodings x families disagree (tolerances {TOLERANCES}): {bad}'


def test_the_torch_sampling_path_agrees_with_opencv_for_every_encoding_and_family():
    """The check the CUDA tests make, run here: the OpenCV path against the torch one CUDA takes."""
    results = canonicalizer_agreement(torch.device('cpu'), other_sampler='torch')
    assert len(results) == 8 * 6
    assert_agree(results)


@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_the_device_steps_make_no_tensor_off_their_device(family):
    """Run here on the meta device (shapes only, a device of its own): the localization, the sampling and the GQ-CNN
    make every tensor on their inputs' device. A tensor made on the CPU by mistake fails here as it would on CUDA."""
    from stn_ros.perception.grasps.steps import load_gqcnn_model

    meta = torch.device('meta')
    stn = SpatialTransformer(family=family, hypotheses=4).eval().to(meta)
    source = torch.empty(1, 480, 640, device=meta)
    with torch.no_grad():
        transforms = crop_transforms(stn, source, torch.empty(5, 4, device=meta), (32, 32), 4, check_sizes=False)
        crops = sample_grids(source, transforms.source_grids((32, 32)), float('nan'))
        quality = load_gqcnn_model('')[0].eval().to(meta).quality(crops, torch.empty(len(crops), device=meta))
    outputs = (
        transforms.params,
        transforms.matrices,
        transforms.homographies,
        transforms.probabilities,
        crops,
        quality,
    )
    assert all(t.device == meta for t in outputs)
    assert crops.shape == (20, 1, 32, 32) and quality.shape == (20,)


@pytest.mark.cuda
def test_cuda_canonicalizes_as_the_cpu_for_every_encoding_and_family():
    assert_agree(canonicalizer_agreement(CUDA))


@pytest.mark.cuda
def test_the_gqcnn_scores_alike_on_cuda():
    from stn_ros.models.gqcnn import load_gqcnn

    model, _ = load_gqcnn(Path(__file__).parents[1] / 'weights' / 'gqcnn.pt')
    assert gqcnn_agreement(model, CUDA) <= TOLERANCES['quality']


def train_on_cuda(task: str, *options: str, out: Path) -> None:
    """``stn_train <task> ... --device cuda`` for one epoch; it must exit 0 and ship ``grasp_stn.pt``."""
    command = [sys.executable, '-m', 'stn_ros.apps.train', task, *options, '--epochs', '1', '--device', 'cuda']
    result = subprocess.run([*command, '--out', str(out), '--no-progress'], capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / 'grasp_stn.pt').is_file()


@pytest.mark.cuda
@pytest.mark.timeout(300)
def test_a_grasp_stn_training_run_on_cuda_ships_its_weights(tmp_path):
    """The analytic grasp STN: synthetic scenes, no physics engine (a GPU machine without pybullet runs it)."""
    train_on_cuda('grasp-stn', '--num-scenes', '20', '--batch-size', '8', out=tmp_path / 'run')


@pytest.mark.cuda
@pytest.mark.timeout(300)
def test_a_physics_training_run_on_cuda_ships_its_weights(tmp_path, tiny_physics_data):
    options = ['--physics-data', str(tiny_physics_data), '--validation-fraction', '0.34']
    train_on_cuda('gqcnn-physics', *options, out=tmp_path / 'run')


@pytest.mark.cuda
@pytest.mark.timeout(300)
def test_ddp_with_nccl_leaves_identical_replicas(tmp_path):
    from ros_harness import free_port

    ranks = min(2, torch.cuda.device_count())
    torchrun = Path(sys.executable).parent / 'torchrun'
    env = dict(os.environ, NCCL_SOCKET_IFNAME='lo', GLOO_SOCKET_IFNAME='lo')  # loopback only
    result = subprocess.run(
        [
            str(torchrun), f'--nproc_per_node={ranks}', '--master_addr=127.0.0.1', f'--master_port={free_port()}',
            str(Path(__file__).parent / 'ddp_rank_weights.py'), str(tmp_path / 'weights'),
            'grasp-stn', '--num-scenes', '20', '--epochs', '1', '--batch-size', '8', '--device', 'cuda',
            '--out', str(tmp_path / 'ddp'), '--no-progress',
        ],
        capture_output=True, text=True, timeout=280, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    weights = [torch.load(tmp_path / 'weights' / f'rank{r}.pt', weights_only=True) for r in range(ranks)]
    assert all(torch.equal(weights[0][k], w[k]) for w in weights[1:] for k in weights[0])


@pytest.mark.cuda
@pytest.mark.timeout(120)
def test_stn_node_on_cuda_publishes_the_cpu_nodes_transforms_over_real_topics():
    pytest.importorskip('rclpy', reason='the node needs ROS: run where ROS and CUDA meet (a robot, a workstation)')
    from sensor_msgs.msg import CameraInfo

    from images import depth_scene
    from ros_harness import Camera, ros_probe, stamped

    info = CameraInfo(width=640, height=480)
    info.k = [525.0, 0.0, 319.5, 0.0, 525.0, 239.5, 0.0, 0.0, 1.0]
    scene = depth_scene([(100, 100, 60, 40, 0.05), (300, 250, 80, 80, 0.10), (500, 80, 30, 30, 0.03)])
    records = {}
    with ros_probe('cuda_test_probe') as probe:
        for device in ('cpu', 'cuda'):
            with Camera(probe, f'on_{device}', '-p', f'device:={device}') as camera:
                camera.send_info(info)
                records[device] = camera.record(stamped(scene, '16UC1', 900))
    cpu, cuda = records['cpu'], records['cuda']
    assert len(cpu.homographies) == len(cuda.homographies) == 3 * 4
    corners = np.array([[0, 0, 1], [31, 0, 1], [0, 31, 1], [31, 31, 1]], np.float64)
    mapped = [corners @ np.asarray(r.homographies).transpose(0, 2, 1) for r in (cpu, cuda)]
    a, b = (m[..., :2] / m[..., 2:] for m in mapped)
    assert np.abs(a - b).max() <= TOLERANCES['homography_px']

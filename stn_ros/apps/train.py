"""Training CLI: ``stn_train <task> [options]``, also ``python -m stn_ros.apps.train`` (and under ``torchrun`` for DDP).

Examples::

    stn_train mnist --distortion RTS --model st-cnn-affine --epochs 10 --out runs/rts
    torchrun --nproc_per_node=2 -m stn_ros.apps.train mnist --distortion R --model cnn --out runs/r_cnn
    stn_train mnist ... --resume runs/rts/last.pt          # continue an interrupted run
    stn_train mnist-table --epochs 30 --runs runs/mnist    # every model x distortion
    stn_train gqcnn --num-scenes 2000 --out runs/gqcnn     # the grasp-quality CNN
    stn_train physics-data --num-scenes 600 --out runs/physics_data   # physics-labelled grasps (pybullet)
    stn_train gqcnn-physics --physics-data runs/physics_data --out runs/gqcnn_physics
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from stn_ros.core import DEVICE_CHOICES
from stn_ros.training.loop import Task, TrainConfig, fit
from stn_ros.training.mnist.task import MnistTask
from stn_ros.training.physics.gqcnn import GqcnnPhysicsTask
from stn_ros.training.physics.grasp_labels import PhysicsDataConfig, build_physics_dataset
from stn_ros.training.prisms.gqcnn import GqcnnTask
from stn_ros.training.prisms.grasp_stn import GraspStnTask

PROG = 'stn_train'


def _common(parser: argparse.ArgumentParser, task: type[Task], epochs: int, batch_size: int, lr: float) -> None:
    stem = task.weights_stem
    parser.add_argument(
        '--out',
        type=Path,
        required=True,
        help=f'output folder: last.pt (training state), {stem}.pt and its model card {stem}.md',
    )
    parser.add_argument('--epochs', type=int, default=epochs, help='epochs (default: %(default)s)')
    parser.add_argument('--batch-size', type=int, default=batch_size, help='per process (default: %(default)s)')
    parser.add_argument('--lr', type=float, default=lr, help='learning rate (default: %(default)s)')
    parser.add_argument('--weight-decay', type=float, default=0.0, help='(default: %(default)s)')
    parser.add_argument('--seed', type=int, default=0, help='seed of initial weights and order (default: %(default)s)')
    parser.add_argument('--device', default='auto', help=f'one of {", ".join(DEVICE_CHOICES)} (default: %(default)s)')
    parser.add_argument('--workers', type=int, default=0, help='DataLoader workers (default: %(default)s)')
    parser.add_argument('--resume', type=Path, help='continue from a last.pt of the same task and options')
    parser.add_argument('--no-progress', action='store_true', help='no progress bars (logs only)')


def _grasp_data(parser: argparse.ArgumentParser) -> None:
    """The grasp dataset both grasp models train on (the same scenes, so they share one cache)."""
    parser.add_argument(
        '--num-scenes', type=int, default=2000, help='scenes of the grasp dataset (default: %(default)s)'
    )
    parser.add_argument('--data-seed', type=int, default=0, help='seed of the scenes (default: %(default)s)')
    parser.add_argument('--cache', type=Path, help='folder to keep the built datasets in (.npz) for later runs')


def _physics_data(parser: argparse.ArgumentParser) -> None:
    """The physics-labelled data a physics task trains on, and its scene split (the same for every such task)."""
    parser.add_argument('--physics-data', type=Path, required=True, help='the cache folder of stn_train physics-data')
    parser.add_argument(
        '--validation-fraction', type=float, default=0.15, help='scenes held out (default: %(default)s)'
    )
    parser.add_argument('--split-seed', type=int, default=0, help='(default: %(default)s)')
    parser.add_argument(
        '--num-scenes', type=int, help="train on the cache's first N scenes (default: every scene built, in order)"
    )


def build_parser() -> argparse.ArgumentParser:
    from stn_ros.models.mnist import MODEL_NAMES
    from stn_ros.training.mnist.dataset import DISTORTIONS

    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    tasks = parser.add_subparsers(dest='task', required=True, metavar='TASK')
    mnist = tasks.add_parser(
        'mnist',
        help='a distorted-MNIST classifier of the STN paper comparison',
        description="Train one model of the STN paper's distorted-MNIST comparison "
        '(Table 1) on the 4,000 training digits.',
    )
    mnist.add_argument('--distortion', choices=DISTORTIONS, required=True, help='R, RTS, P or E')
    mnist.add_argument('--model', choices=MODEL_NAMES, required=True, help='architecture')
    mnist.add_argument('--data-seed', type=int, default=0, help='seed of the distortions (default: %(default)s)')
    mnist.add_argument(
        '--test-copies', type=int, default=2, help='fixed distorted copies of each test digit (default: %(default)s)'
    )
    mnist.add_argument('--quick', action='store_true', help='256 training / 200 test images (smoke test)')
    _common(mnist, MnistTask, epochs=30, batch_size=64, lr=3e-3)

    gqcnn = tasks.add_parser(
        'gqcnn',
        help='the grasp-quality CNN on synthetic depth scenes',
        description='Train the Dex-Net 2.0-style GQ-CNN on analytic grasp labels of '
        'synthetic depth scenes (20 %% of the scenes held out).',
    )
    _grasp_data(gqcnn)
    _common(gqcnn, GqcnnTask, epochs=15, batch_size=128, lr=1e-3)

    physics_gqcnn = tasks.add_parser(
        'gqcnn-physics',
        help='the grasp-quality CNN on physics labels (after stn_train physics-data)',
        description='Train the GQ-CNN on the physics-labelled grasps of a stn_train physics-data cache (the '
        'target: the share of perturbed pybullet trials that held), then fit a temperature on the validation '
        'scenes so that its quality is a calibrated probability of holding.',
    )
    _physics_data(physics_gqcnn)
    _common(physics_gqcnn, GqcnnPhysicsTask, epochs=20, batch_size=128, lr=1e-3)

    stn = tasks.add_parser(
        'grasp-stn',
        help='the grasp canonicalizer STN on synthetic depth scenes',
        description='Train the similarity STN that maps a metric object crop to the canonical '
        'image of a good grasp (winner-takes-all over good grasps and axis flips).',
    )
    _grasp_data(stn)
    stn.add_argument(
        '--extra-scenes',
        type=int,
        default=0,
        help='further scenes for training only, beyond the grasp dataset (default: %(default)s)',
    )
    _common(stn, GraspStnTask, epochs=40, batch_size=64, lr=1e-3)

    physics = tasks.add_parser(
        'physics-data',
        help='build the physics-labelled grasp dataset (pybullet trials; no training)',
        description='Sample candidate grasps on physics scenes of the training meshes (random_urdfs 000-399) '
        'and our procedural shapes, and label each by perturbed pybullet trials, in parallel processes. '
        'Scenes are cached one file each in --out, so an interrupted build resumes.',
    )
    defaults = PhysicsDataConfig()
    physics.add_argument('--out', type=Path, required=True, help='cache folder (manifest.json, scenes/*.npz)')
    physics.add_argument('--num-scenes', type=int, default=defaults.num_scenes, help='(default: %(default)s)')
    physics.add_argument('--data-seed', type=int, default=defaults.data_seed, help='(default: %(default)s)')
    physics.add_argument(
        '--candidates', type=int, default=defaults.candidates, help='grasps per object (default: %(default)s)'
    )
    physics.add_argument(
        '--trials', type=int, default=defaults.trials, help='perturbed trials per grasp (default: %(default)s)'
    )
    physics.add_argument('--workers', type=int, default=2, help='labelling processes (default: %(default)s)')
    physics.add_argument('--no-progress', action='store_true', help='no progress bar')

    table = tasks.add_parser(
        'mnist-table',
        help='train every model x distortion of the comparison in turn',
        description='Train runs/<distortion>/<model> for each pair, one after the other. '
        'A finished run (model.pt) is skipped, an interrupted one resumed '
        'from its last.pt, so the command can simply be run again.',
    )
    table.add_argument('--runs', type=Path, default=Path('runs/mnist'), help='(default: %(default)s)')
    table.add_argument('--models', nargs='+', choices=MODEL_NAMES, default=list(MODEL_NAMES), help='(default: all)')
    table.add_argument(
        '--distortions', nargs='+', choices=DISTORTIONS, default=list(DISTORTIONS), help='(default: all)'
    )
    table.add_argument('--epochs', type=int, default=30, help='epochs per run (default: %(default)s)')
    table.add_argument('--batch-size', type=int, default=64, help='(default: %(default)s)')
    table.add_argument('--lr', type=float, default=3e-3, help='(default: %(default)s)')
    table.add_argument('--seed', type=int, default=0, help='(default: %(default)s)')
    table.add_argument('--device', default='auto', help='(default: %(default)s)')
    table.add_argument('--test-copies', type=int, default=2, help='(default: %(default)s)')
    table.add_argument('--quick', action='store_true', help='smoke test: 256 training images per run')
    table.add_argument('--no-progress', action='store_true', help='no progress bars (logs only)')
    return parser


def train_mnist_table(args: argparse.Namespace) -> int:
    for distortion in args.distortions:
        for model in args.models:
            out = args.runs / distortion / model
            if (out / f'{MnistTask.weights_stem}.pt').is_file():
                print(f'{out}: done already, skipped', file=sys.stderr)
                continue
            resume = out / 'last.pt' if (out / 'last.pt').is_file() else None
            config = TrainConfig(
                out=out,
                epochs=args.epochs,
                batch_size=args.batch_size,
                lr=args.lr,
                seed=args.seed,
                device=args.device,
                resume=resume,
                progress=not args.no_progress,
            )
            command = (
                f'{PROG} mnist --distortion {distortion} --model {model} --epochs '
                f'{args.epochs} --batch-size {args.batch_size} --lr {args.lr} --seed {args.seed} '
                f'--test-copies {args.test_copies} --out {out}' + (' --quick' if args.quick else '')
            )
            result = fit(MnistTask(distortion, model, test_copies=args.test_copies, quick=args.quick), config, command)
            print(json.dumps({'run': str(out), **result['metrics']}))
    return 0


def build_physics_data(args: argparse.Namespace) -> int:
    config = PhysicsDataConfig(args.num_scenes, args.data_seed, args.candidates, args.trials)
    summary = build_physics_dataset(config, args.out, args.workers, progress=not args.no_progress)
    print(json.dumps({'cache': str(args.out), **summary}))
    return 0


def make_task(args: argparse.Namespace):
    if args.task == 'mnist':
        return MnistTask(args.distortion, args.model, args.data_seed, args.test_copies, args.quick)
    if args.task == 'gqcnn-physics':
        return GqcnnPhysicsTask(str(args.physics_data), args.validation_fraction, args.split_seed, args.num_scenes)
    if args.task in ('grasp-stn', 'gqcnn'):
        cache = str(args.cache) if args.cache else None
        if args.task == 'grasp-stn':
            return GraspStnTask(args.num_scenes, args.data_seed, cache, args.extra_scenes)
        return GqcnnTask(args.num_scenes, args.data_seed, cache)
    raise ValueError(f'unknown task {args.task}')


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.task == 'mnist-table':
        return train_mnist_table(args)
    if args.task == 'physics-data':
        return build_physics_data(args)
    config = TrainConfig(
        out=args.out,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        seed=args.seed,
        device=args.device,
        workers=args.workers,
        resume=args.resume,
        progress=not args.no_progress,
    )
    command = f'{PROG} ' + shlex.join(sys.argv[1:] if argv is None else argv)
    result = fit(make_task(args), config, command)
    if 'weights' in result:
        print(json.dumps({'weights': result['weights'], **result['metrics']}))
    return 0


if __name__ == '__main__':
    sys.exit(main())

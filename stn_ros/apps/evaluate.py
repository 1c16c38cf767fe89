"""stn_evaluate: the evaluations of stn_ros, each writing a Markdown report with its figures and JSON.

  stn_evaluate mnist          distorted MNIST: our test error beside the STN paper's Table 1, a bar plot, and
                              digits before and after each spatial transformer (docs/mnist/)
  stn_evaluate grasp          grasp canonicalization on held-out analytic (prism) scenes: (a) none,
                              (b) OpenCV minAreaRect, (c) our STN, (d) the analytic oracle (docs/grasp/table.md)
  stn_evaluate physics        do the grasps hold? The shipped stn_node and grasp_quality_node over ROS 2
                              (loopback), the OpenCV minAreaRect rule, the rule's grasps ranked by the same
                              GQ-CNN, a random axis and the best physics-tried candidate, each grasp tried by
                              a simulated gripper in pybullet (docs/grasp/physics.md, which says how long);
                              with --tilt-bands, by band of camera tilt, with the fair rule (physics_tilt.md)
  stn_evaluate gripper-sweep  physics for grippers other than the trained one: how far the shipped weights
                              stay good (docs/grasp/gripper.md, about 4 min per gripper)
  stn_evaluate clutter        clearing a table: the clutter-removal protocol of VGN / GIGA (5 objects packed
                              or piled, top or side view, grasp until clear), grasp success and declutter
                              rates of the shipped nodes over ROS 2 and the baselines (clutter.md)

Which split: physics, gripper-sweep and clutter run on the VALIDATION meshes (pybullet random_urdfs 400-499), which
chose the shipped defaults, so their figures are validation figures; random_urdfs 500-999 and every object
model outside random_urdfs are reserved for an external test and never loaded. `stn_evaluate TASK --help`
lists a task's options. The evaluations live in stn_ros.evaluation; this module only parses and dispatches.
Also runs as `python -m stn_ros.apps.evaluate`.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from pathlib import Path

from stn_ros.evaluation.gripper_sweep import DEFAULT_VALUES
from stn_ros.evaluation.physics.bands import parse_tilt_bands
from stn_ros.models.mnist import MODEL_NAMES
from stn_ros.perception.grasps.gripper import TRAINED_GRIPPER

PROG = 'stn_evaluate'
TASKS = {
    'mnist': ('stn_ros.evaluation.mnist', 'evaluate_mnist'),
    'grasp': ('stn_ros.evaluation.analytic', 'evaluate_grasp'),
    'physics': ('stn_ros.evaluation.physics.run', 'evaluate_physics'),
    'gripper-sweep': ('stn_ros.evaluation.gripper_sweep', 'sweep'),
    'clutter': ('stn_ros.evaluation.clutter.run', 'evaluate_clutter'),
}
"""Each task's evaluation (module, function of the parsed arguments that returns the exit code), imported only
when that task runs: torch, pybullet and rclpy load only for the task that needs them."""


def add_scene_options(parser: argparse.ArgumentParser) -> None:
    """The physics scenes and trials, shared by ``physics`` and ``gripper-sweep``."""
    parser.add_argument('--num-scenes', type=int, default=120, help='physics scenes (default: %(default)s)')
    parser.add_argument('--seed', type=int, default=1, help='seed of the scenes (default: %(default)s)')
    parser.add_argument('--width', type=int, default=640, help='image width (default: %(default)s)')
    parser.add_argument('--height', type=int, default=480, help='image height (default: %(default)s)')
    parser.add_argument(
        '--candidates', type=int, default=12, help='upper bound: candidates per object (default: %(default)s)'
    )
    parser.add_argument('--workers', type=int, default=2, help='trial processes (default: %(default)s)')
    parser.add_argument('--pictures', type=int, default=6, help='scenes drawn in physics_scenes.png')
    parser.add_argument(
        '--timeout', type=float, default=60.0, help='seconds to wait for the nodes (default: %(default)s)'
    )


CLUTTER_LAYOUTS = ('packed', 'pile')
CLUTTER_VIEWS = ('top', 'side')
CLUTTER_METHODS = ('pipeline', 'min_area_rect', 'min_area_rect_rectified', 'random_axis')
"""``stn_evaluate clutter``'s choices, repeated from :mod:`stn_ros.sim.physics.clutter` and
:mod:`stn_ros.evaluation.clutter.methods` so that parsing imports nothing heavy (a test keeps them equal)."""


def comma_list(choices: tuple[str, ...]):
    """An ``argparse`` type: comma-separated names out of ``choices``, in the order given, without repeats."""

    def parse(text: str) -> tuple[str, ...]:
        items = tuple(item.strip() for item in text.split(','))
        unknown = [item for item in items if item not in choices]
        if not text.strip() or unknown or len(set(items)) != len(items):
            raise argparse.ArgumentTypeError(
                f'expected comma-separated names out of {",".join(choices)} without repeats, got {text!r}'
            )
        return items

    return parse


def add_clutter_parser(tasks) -> None:
    """``stn_evaluate clutter``."""
    clutter = tasks.add_parser(
        'clutter',
        help='clearing a table: the clutter-removal protocol (VGN / GIGA), GSR and DR per layout, view and method',
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Clearing a table: the clutter-removal protocol of VGN (Breyer et al., CoRL 2020) and GIGA (Jiang et al.,
RSS 2021) in the project's pybullet world, on the VALIDATION meshes (random_urdfs 400-499) and procedural
shapes: validation figures, never the reserved test objects.

Each round puts 5 objects on the table, packed (standing upright side by side) or pile (dropped into a bin,
the bin then removed). Per attempt one 640x480 depth frame (fx = fy = 540, the project's sensor noise) from
the top view (looking straight down) or the side view (60 deg from vertical); the method picks one grasp, a
simulated parallel-jaw gripper executes it; a grasp that holds takes its object away, the rest settle and a
new frame is taken. A round ends when the table is clear, no grasp is proposed, or two grasps in a row fail.

Methods, each on its own rounds from the same initial scenes (same seeds):
  pipeline                 the shipped stn_node -> grasp_quality_node over real ROS 2 topics (loopback);
                           the highest-quality grasp of ~/grasps, executed along its gripper frame
  min_area_rect            OpenCV minAreaRect of each depth proposal in the image, nearest the camera
  min_area_rect_rectified  the fair rule for an oblique camera: minAreaRect of the footprint on the
                           table, approaching along its normal, ranked by the same GQ-CNN
  random_axis              the pipeline's grasp with a uniform random closing axis

Reports per layout, view and method: grasp success rate GSR = successes / attempts and declutter rate
DR = successes / objects (Wilson 95 % intervals), attempts, rounds, median planning time, failure reasons
and objects never proposed. Writes clutter.md, clutter.json and clutter_rounds.png to --output.""",
    )
    clutter.add_argument(
        '--rounds', type=int, default=100, help='rounds per layout, view and method (default: %(default)s)'
    )
    clutter.add_argument('--seed', type=int, default=1, help='seed of the rounds (default: %(default)s)')
    for option, choices in (('--layouts', CLUTTER_LAYOUTS), ('--views', CLUTTER_VIEWS), ('--methods', CLUTTER_METHODS)):
        clutter.add_argument(
            option,
            type=comma_list(choices),
            default=choices,
            help=f'comma-separated, of {", ".join(choices)} (default: all)',
        )
    clutter.add_argument(
        '--pictures',
        type=int,
        default=1,
        help="rounds per layout and view drawn in clutter_rounds.png (the first method's; default: %(default)s)",
    )
    clutter.add_argument(
        '--timeout', type=float, default=60.0, help='seconds to wait for the nodes (default: %(default)s)'
    )
    clutter.add_argument('--output', type=Path, default=Path('docs/grasp/clutter'), help='(default: %(default)s)')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    tasks = parser.add_subparsers(dest='task', required=True, metavar='TASK')
    mnist = tasks.add_parser(
        'mnist',
        help='the distorted-MNIST table, plot and picture',
        description='Evaluate every runs/<distortion>/<model>/model.pt on the fixed test '
        'set and write table.md, errors.png, transformed_digits.png.',
    )
    mnist.add_argument('--runs', type=Path, default=Path('runs/mnist'), help='trained runs (default: %(default)s)')
    mnist.add_argument('--output', type=Path, default=Path('docs/mnist'), help='where to write (default: %(default)s)')
    mnist.add_argument(
        '--picture-model',
        default='st-cnn-affine',
        choices=MODEL_NAMES,
        help='whose transformer the before/after picture shows (default: %(default)s)',
    )
    mnist.add_argument('--quick', action='store_true', help='evaluate on 200 test images only')
    mnist.add_argument(
        '--ship', type=Path, help='also copy the --picture-model checkpoints (and cards) here, e.g. weights/'
    )
    grasp = tasks.add_parser(
        'grasp',
        help='grasp canonicalization: none / OpenCV / STN / oracle, and STN errors',
        description='On held-out objects of the grasp dataset, compare the grasps proposed by '
        'no canonicalization, OpenCV minAreaRect, our STN and the analytic oracle: '
        "analytic success rate, GQ-CNN accuracy and AP; plus the STN's axis-angle "
        'and centre errors. Writes table.md, grasp_results.png, stn_crops.png.',
    )
    grasp.add_argument('--gqcnn', type=Path, default=Path('weights/gqcnn.pt'), help='(default: %(default)s)')
    grasp.add_argument('--stn', type=Path, default=Path('weights/grasp_stn.pt'), help='(default: %(default)s)')
    grasp.add_argument('--num-scenes', type=int, default=2000, help='the grasp dataset (default: %(default)s)')
    grasp.add_argument('--data-seed', type=int, default=0, help='(default: %(default)s)')
    grasp.add_argument('--cache', type=Path, help='folder of the built dataset (.npz)')
    grasp.add_argument('--max-objects', type=int, default=2000, help='at most this many objects (default: %(default)s)')
    grasp.add_argument('--output', type=Path, default=Path('docs/grasp'), help='(default: %(default)s)')
    physics = tasks.add_parser(
        'physics',
        help='grasps judged by physics (pybullet) on the validation meshes: the shipped nodes and baselines',
        description='Publish physics scenes of the VALIDATION meshes (random_urdfs 400-499) and procedural shapes '
        'to stn_node and grasp_quality_node over real ROS 2 topics (loopback), try every grasp once with a simulated '
        'gripper, and compare with the OpenCV minAreaRect rule, the same rule grasps ranked by the same GQ-CNN (what '
        'the STN buys over the rule), a random axis and the best of physics-tried candidates (an upper bound). '
        'Writes physics.md, physics.json, physics_results.png, physics_scenes.png; physics.md says how long it took.',
    )
    add_scene_options(physics)
    physics.add_argument(
        '--quality-threshold',
        type=float,
        default=0.5,
        help="grasp_quality_node's quality_threshold (default: %(default)s, the shipped value)",
    )
    physics.add_argument(
        '--gqcnn',
        help="grasp_quality_node's weights, also the GQ-CNN that ranks the rule's grasps (default: the shipped "
        'weights/gqcnn.pt)',
    )
    physics.add_argument('--stn', help="stn_node's weights (default: the shipped weights/grasp_stn.pt)")
    physics.add_argument(
        '--hypotheses-per-object',
        type=int,
        help="stn_node's hypotheses_per_object: STN crops the GQ-CNN ranks per object (default: the node's)",
    )
    for option, field, what in (
        ('--gripper-opening', 'max_opening', "metres between the jaws' inner faces"),
        ('--jaw-width', 'jaw_width', "metres, each jaw's extent across the grasp axis"),
        ('--finger-depth', 'finger_depth', "metres the fingertips go below an object's top"),
    ):
        physics.add_argument(
            option,
            type=float,
            default=getattr(TRAINED_GRIPPER, field),
            help=f'the gripper: {what}, given to both nodes (not refused outside the measured range) and to the '
            'simulated gripper (default: %(default)s, as trained)',
        )
    physics.add_argument(
        '--tilt-bands',
        type=parse_tilt_bands,
        metavar='LOW-HIGH,...',
        help='judge by band of camera tilt from vertical, degrees, e.g. 0-10,10-30,30-45,45-60: --num-scenes scenes '
        'per band (the same seeds in every band, the tilt drawn in the band, any azimuth and roll, 0.6-0.8 m along '
        'the optical axis), every method on every band plus the fair rule (minAreaRect of the footprint on the table, '
        'approaching along its normal, ranked by the same GQ-CNN); writes physics_tilt.md, physics_tilt.json and '
        'their pictures instead of physics.md. Default: one band, the camera looking down (up to 10 deg)',
    )
    physics.add_argument('--output', type=Path, default=Path('docs/grasp'), help='(default: %(default)s)')
    sweep = tasks.add_parser(
        'gripper-sweep',
        help='how far from the trained gripper the shipped weights stay good: stn_evaluate physics per gripper',
        description='Run stn_evaluate physics (same scenes) for the trained gripper and for each value given, one '
        'gripper parameter changed at a time; a value is good when the pipeline still beats or ties minAreaRect and '
        'its gap to the best candidate widens by at most 5 points. Each run is kept in --runs and not repeated. '
        'Writes gripper.md, gripper.json, gripper.png (docs/grasp/gripper.md). About 4 min per value here.',
    )
    add_scene_options(sweep)
    for name, values in DEFAULT_VALUES.items():
        sweep.add_argument(
            f'--{name.replace("_", "-")}',
            dest=name,
            type=float,
            nargs='*',
            default=list(values),
            help=f'values of gripper.{name} to try, metres (default: %(default)s)',
        )
    sweep.add_argument(
        '--runs', type=Path, default=Path('runs/gripper_sweep'), help="each value's evaluation (default: %(default)s)"
    )
    sweep.add_argument('--output', type=Path, default=Path('docs/grasp'), help='(default: %(default)s)')
    add_clutter_parser(tasks)
    args = parser.parse_args(argv)
    if args.task == 'clutter' and args.rounds < 1:
        parser.error('clutter: --rounds must be at least 1')
    args.command = f'{PROG} ' + shlex.join(sys.argv[1:] if argv is None else argv)
    module, function = TASKS[args.task]
    return getattr(importlib.import_module(module), function)(args)


if __name__ == '__main__':
    sys.exit(main())

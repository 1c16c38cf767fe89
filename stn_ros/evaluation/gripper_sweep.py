"""``stn_evaluate gripper-sweep``: how far from the trained gripper the shipped weights stay good, in physics.

One parameter of the gripper varies at a time (opening, jaw width, finger depth; the others as trained). At each
value ``stn_evaluate physics`` runs in full on the same validation scenes: both nodes are given the gripper
(``gripper.*``, not refused), the simulated gripper has it, and so do the baselines. A value is *good* when

* the shipped pipeline still beats or ties the OpenCV ``minAreaRect`` rule with that gripper, best grasp per
  scene and one grasp per object (the learned parts still earn their place), and
* its gap to the best physics-tried candidate per scene (what that gripper can do on these scenes at all) is at
  most :data:`GAP_TOLERANCE` wider than with the trained gripper (the weights find what there is to find).

The measured range of a parameter is the run of good values around the trained one. Each value's evaluation
is kept in ``--runs`` (``physics.json`` and its pictures), and a value whose evaluation is there already is
not run again, so an interrupted sweep goes on where it stopped. Writes ``gripper.md``, ``gripper.json`` and
``gripper.png`` to ``--output``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from stn_ros.perception.grasps.gripper import (
    MEASURED_RANGE,
    PARAMETER_FIELDS,
    TRAINED_GRIPPER,
    GripperConfig,
    gripper_parameters,
)

GAP_TOLERANCE = 0.05
"""How much wider (share of scenes) the gap to the best candidate may get than with the trained gripper."""

DEFAULT_VALUES = {
    'opening': (0.04, 0.05, 0.06, 0.07, 0.09, 0.10, 0.12, 0.14, 0.16),
    'jaw_width': (0.005, 0.02, 0.03),
    'finger_depth': (0.005, 0.01, 0.03, 0.04),
}


def sweep_points(values: dict[str, list[float]]) -> list[tuple[str, float, GripperConfig]]:
    """``(parameter, value, gripper)`` of the trained gripper (parameter ``trained``), then each parameter's values
    with the others as trained."""
    points = [('trained', 0.0, TRAINED_GRIPPER)]
    for name, field in PARAMETER_FIELDS.items():
        for value in values.get(name, ()):
            gripper = replace(TRAINED_GRIPPER, **{field: float(value)})
            if gripper != TRAINED_GRIPPER:
                points.append((name, float(value), gripper))
    return points


def run_name(gripper: GripperConfig) -> str:
    """The folder of a gripper's evaluation in ``--runs``."""
    return f'opening{gripper.max_opening:g}_jaw{gripper.jaw_width:g}_finger{gripper.finger_depth:g}'


def rates(summary: dict) -> dict[str, float]:
    """Best grasp per scene of the pipeline, the rule, the rule ranked by the GQ-CNN and the best candidate, and the
    first three's per object."""
    methods = summary['methods']
    return {
        'pipeline': methods['pipeline']['best_per_scene']['rate'],
        'min_area_rect': methods['min_area_rect']['best_per_scene']['rate'],
        'min_area_rect_gqcnn': methods['min_area_rect_gqcnn']['best_per_scene']['rate'],
        'best_candidate': methods['best_candidate']['best_per_scene']['rate'],
        'pipeline_per_object': methods['pipeline']['per_object']['rate'],
        'min_area_rect_per_object': methods['min_area_rect']['per_object']['rate'],
        'min_area_rect_gqcnn_per_object': methods['min_area_rect_gqcnn']['per_object']['rate'],
    }


def is_good(row: dict[str, float], trained: dict[str, float], tolerance: float = GAP_TOLERANCE) -> bool:
    """The module docstring's rule: beats or ties the rule (per scene and per object), and the gap to the best
    candidate widens by at most ``tolerance``."""
    gap, trained_gap = row['best_candidate'] - row['pipeline'], trained['best_candidate'] - trained['pipeline']
    beats_the_rule = row['pipeline'] >= row['min_area_rect'] and (
        row['pipeline_per_object'] >= row['min_area_rect_per_object']
    )
    return beats_the_rule and gap <= trained_gap + tolerance + 1e-12


def measured_range(rows: list[dict], name: str) -> tuple[float, float]:
    """The run of good values of parameter ``name`` around the trained value (``rows`` as in ``gripper.json``)."""
    trained_value = getattr(TRAINED_GRIPPER, PARAMETER_FIELDS[name])
    values = sorted({(r['value'], r['good']) for r in rows if r['parameter'] == name} | {(trained_value, True)})
    at = [v for v, _ in values].index(trained_value)
    low = high = trained_value
    for value, good in reversed(values[:at]):
        if not good:
            break
        low = value
    for value, good in values[at + 1 :]:
        if not good:
            break
        high = value
    return low, high


def evaluate_point(args: argparse.Namespace, gripper: GripperConfig) -> dict:
    """The physics evaluation of ``gripper`` (read from ``--runs`` when it was run already with these options)."""
    from stn_ros.evaluation.physics.run import evaluate_physics

    output = args.runs / run_name(gripper)
    stored = output / 'physics.json'
    wanted = {'scenes': args.num_scenes, 'seed': args.seed, 'candidates_per_object': args.candidates}
    if stored.is_file():
        summary = json.loads(stored.read_text())
        config = summary['config']
        found = {
            'scenes': summary['scenes'],
            'seed': config['seed'],
            'candidates_per_object': config['candidates_per_object'],
        }
        if found == wanted and config.get('gripper') == gripper_parameters(gripper):
            print(f'gripper-sweep: {stored} is there already: not run again')
            return summary
    physics = argparse.Namespace(
        **{k: v for k, v in vars(args).items() if k not in ('runs', 'output', *PARAMETER_FIELDS)},
        output=output,
        gripper_opening=gripper.max_opening,
        jaw_width=gripper.jaw_width,
        finger_depth=gripper.finger_depth,
        stn=None,
        gqcnn=None,
        hypotheses_per_object=None,
        quality_threshold=0.5,
    )
    physics.command = f'{args.command}  # this point: {run_name(gripper)}'
    evaluate_physics(physics)
    return json.loads(stored.read_text())


def sweep(args: argparse.Namespace) -> int:
    """The whole sweep (module docstring); writes the report and returns an exit code."""
    values = {name: getattr(args, name) for name in PARAMETER_FIELDS}
    points = sweep_points(values)
    rows, seconds = [], 0.0
    for index, (name, value, gripper) in enumerate(points, 1):
        print(f'gripper-sweep: {index}/{len(points)}: {run_name(gripper)}', flush=True)
        summary = evaluate_point(args, gripper)
        seconds += summary['seconds']
        rows.append({'parameter': name, 'value': value, 'gripper': gripper_parameters(gripper), **rates(summary)})
    trained = rows[0]
    for row in rows:
        row['good'] = is_good(row, trained)
    ranges = {name: measured_range(rows, name) for name in PARAMETER_FIELDS if values[name]}
    result = {
        'command': args.command,
        'minutes': round(seconds / 60, 1),  # the evaluations', also those of earlier runs kept in --runs
        'scenes': args.num_scenes,
        'gap_tolerance': GAP_TOLERANCE,
        'rows': rows,
        'measured_range': ranges,
        'shipped_range': {name: getattr(MEASURED_RANGE, name) for name in PARAMETER_FIELDS},
    }
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / 'gripper.json').write_text(json.dumps(result, indent=2) + '\n')
    sweep_figure(result, args.output / 'gripper.png')
    (args.output / 'gripper.md').write_text(report(result))
    print(report(result))
    return 0


def _percent(rate: float | None) -> str:
    """A rate as the table prints it; '-' where the row has none (a sweep stored before that method existed)."""
    return '-' if rate is None else f'{100 * rate:.1f} %'


def report(result: dict) -> str:
    """``gripper.md``."""
    lines = [
        '# How far from the trained gripper the shipped weights stay good (physics, VALIDATION meshes)',
        '',
        '**Every figure here is a validation figure**: the scenes are of the validation meshes (random_urdfs '
        '400-499), and this sweep chose the gripper range the nodes accept.',
        '',
        f'Each row is `stn_evaluate physics` in full ({result["scenes"]} validation scenes, the same at every row) '
        'with one gripper parameter changed: both nodes are given it (`gripper.*`), the simulated gripper has it, and '
        'so do the baselines. Best grasp per scene; "best candidate" is the best of the physics-tried candidates, '
        'what that gripper can do on these scenes at all. A value is good when the pipeline beats or ties the OpenCV '
        'rule (per scene and per object) and its gap to the best candidate is at most '
        f'{100 * result["gap_tolerance"]:.0f} points wider than with the trained gripper. "minAreaRect ranked by '
        "the GQ-CNN\" is the rule's grasps picked by the pipeline's GQ-CNN (as in physics.md): the pipeline's "
        'lead over it is what the STN buys with that gripper; it does not enter "good". Made by:',
        '',
        f'    {result["command"]}',
        '',
        f"({result['minutes']:.0f} min of evaluations on this machine, kept runs included; each row's own report "
        'is in its `--runs` folder.)',
        '',
        '| parameter | value (m) | shipped pipeline | OpenCV minAreaRect | minAreaRect ranked by the GQ-CNN '
        '| best candidate | gap | per object: pipeline | per object: minAreaRect | per object: ranked minAreaRect '
        '| good |',
        '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
    ]
    for row in result['rows']:
        value = 'as trained' if row['parameter'] == 'trained' else f'{row["value"]:g}'
        lines.append(
            f'| {row["parameter"]} | {value} | {100 * row["pipeline"]:.1f} % | {100 * row["min_area_rect"]:.1f} % | '
            f'{_percent(row.get("min_area_rect_gqcnn"))} | '
            f'{100 * row["best_candidate"]:.1f} % | {100 * (row["best_candidate"] - row["pipeline"]):.1f} | '
            f'{100 * row["pipeline_per_object"]:.1f} % | {100 * row["min_area_rect_per_object"]:.1f} % | '
            f'{_percent(row.get("min_area_rect_gqcnn_per_object"))} | '
            f'{"yes" if row["good"] else "no"} |'
        )
    lines += ['', '## Measured range (the run of good values around the trained one)', '']
    for name, (low, high) in result['measured_range'].items():
        shipped = result['shipped_range'][name]
        lines.append(
            f'- `gripper.{name}`: [{low:g}, {high:g}] m measured; the nodes refuse values outside '
            f'[{shipped[0]:g}, {shipped[1]:g}] m (`stn_ros/perception/grasps/gripper.py`, MEASURED_RANGE).'
        )
    lines += ['', '![gripper sweep](gripper.png)', '']
    return '\n'.join(lines)


def sweep_figure(result: dict, path: Path) -> None:
    """One panel per parameter: the three methods' best grasp per scene against its value."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    names = list(result['measured_range'])
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 4), squeeze=False)
    trained = result['rows'][0]
    for ax, name in zip(axes[0], names, strict=True):
        rows = [r for r in result['rows'] if r['parameter'] == name] + [trained]
        rows.sort(key=lambda r: r['gripper'][name])
        x = [100 * r['gripper'][name] for r in rows]
        for key, label, style in (
            ('best_candidate', 'best candidate (upper bound)', 'k:'),
            ('pipeline', 'shipped pipeline', 'o-'),
            ('min_area_rect', 'OpenCV minAreaRect', 's--'),
            ('min_area_rect_gqcnn', 'minAreaRect ranked by the GQ-CNN', 'd-.'),
        ):
            if all(key in r for r in rows):  # a sweep stored before a method existed has no line of it
                ax.plot(x, [100 * r[key] for r in rows], style, label=label)
        low, high = result['measured_range'][name]
        ax.axvspan(100 * low, 100 * high, color='tab:green', alpha=0.1, label='measured good')
        ax.axvline(100 * trained['gripper'][name], color='grey', lw=0.8)
        ax.set_xlabel(f'gripper.{name} (cm)')
        ax.set_ylabel('best grasp per scene held, %')
        ax.set_ylim(0, 100)
    axes[0][0].legend(loc='lower left', fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

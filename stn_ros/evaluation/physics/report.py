"""The physics evaluation's report: ``physics.md`` and its two figures."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from stn_ros.evaluation.physics.methods import METHOD_NAMES, METHODS
from stn_ros.evaluation.physics.summary import SceneResult
from stn_ros.perception.grasps.gripper import TRAINED_GRIPPER, GripperConfig, describe_gripper, gripper_config
from stn_ros.sim.physics.scenes import PhysicsScene

SHORT_NAMES = {
    'pipeline': 'shipped\npipeline',
    'min_area_rect': 'minAreaRect',
    'min_area_rect_gqcnn': 'minAreaRect\n+ GQ-CNN',
    'random_axis': 'random\naxis',
    'best_candidate': 'best\ncandidate',
}
"""The methods' names under the bars of ``physics_results.png``."""


VALIDATION_NOTE = (
    '**Every figure here is a validation figure**: the meshes (random_urdfs 400-499) are the validation split, '
    'never in training data but looked at to choose `hypotheses_per_object`, the gripper range and the '
    "README's headline, so they are not an unbiased test. The held-out test objects (random_urdfs 500-999 and "
    'every object model outside random_urdfs) are kept for an external evaluation and never loaded here.'
)
"""The first paragraph of every physics report: which split its figures are on."""


def pct(entry: dict) -> str:
    """``88.0 % [81, 92] (105/120)``: the rate, its 95 % interval and the counts."""
    interval = f'[{100 * entry["low"]:.0f}, {100 * entry["high"]:.0f}]'
    return f'{100 * entry["rate"]:.1f} % {interval} ({entry["successes"]}/{entry["trials"]})'


def gripper_text(parameters: dict) -> str:
    gripper = gripper_config(**parameters)
    return describe_gripper(gripper) + (' (as trained)' if gripper == TRAINED_GRIPPER else ' (both nodes given it)')


def _attribution(summary: dict) -> list[str]:
    """The paragraph on what the STN buys over the rule when both are ranked by the same GQ-CNN."""
    methods, paired = summary['methods'], summary['stn_over_rule_same_gqcnn']
    scene, item = paired['best_per_scene'], paired['per_object']
    ranking = (
        methods['min_area_rect_gqcnn']['best_per_scene']['rate'] - methods['min_area_rect']['best_per_scene']['rate']
    )
    return [
        '## What the STN buys over the rule under the same GQ-CNN',
        '',
        "The pipeline picks each scene's grasp by GQ-CNN quality, the plain rule by nearness to the camera, so the gap "
        f'between those two rows is not the STN\'s alone. "{METHOD_NAMES["min_area_rect_gqcnn"]}" scores the rule\'s '
        "grasps (the same grasps and trials as the rule's row) with the pipeline's GQ-CNN on their Dex-Net canonical "
        'crops and picks the highest quality, per scene and per object, as the pipeline does. The ranking moves the '
        f"rule's best grasp per scene by {100 * ranking:+.1f} points. The pipeline against the ranked rule (what the "
        f"STN's crops buy): {scene['points']:+.1f} points per scene (held by the pipeline's pick alone: "
        f"{scene['first_only']} scenes, by the ranked rule's alone: {scene['second_only']}), {item['points']:+.1f} "
        f"points per object (the pipeline's grasp alone: {item['first_only']} objects, the ranked rule's alone: "
        f'{item["second_only"]}).',
    ]


def report(summary: dict) -> str:
    """``physics.md``."""
    methods = summary['methods']
    lines = [
        '# Grasps judged by physics (pybullet): VALIDATION meshes',
        '',
        VALIDATION_NOTE,
        '',
        f'{summary["scenes"]} scenes, {summary["objects"]} objects: {summary["config"]["meshes"]} and our boxes, '
        f'cylinders and spheres, singulated and cluttered, {summary["config"]["image"]} depth from 0.5-0.9 m with up '
        "to 10 deg of tilt and a depth camera's noise, dropouts and shadows. Each grasp is tried once by a simulated "
        f'parallel-jaw {gripper_text(summary["config"]["gripper"])} (friction {summary["config"]["friction"]}; '
        'approach along the optical axis, close, '
        'lift 15 cm, hold, shake). Rates with Wilson 95 % intervals. Made by:',
        '',
        f'    {summary["command"]}',
        '',
        f'({summary["seconds"] / 60:.0f} min on this machine. Weights: stn_node {summary["weights"]["stn_node"]}, '
        f'grasp_quality_node {summary["weights"]["grasp_quality_node"]}; stn_node hypotheses_per_object '
        f'{summary["config"]["hypotheses_per_object"]}.)',
        '',
        '| method | best grasp per scene | one grasp per object | singulated objects | cluttered objects '
        '| grasps tried |',
        '|---|---:|---:|---:|---:|---:|',
    ]
    for name in METHODS:
        m = methods[name]
        lines.append(
            f'| {METHOD_NAMES[name]} | {pct(m["best_per_scene"])} | {pct(m["per_object"])} | '
            f'{pct(m["by_layout"]["singulated"])} | {pct(m["by_layout"]["cluttered"])} | {m["grasps_tried"]} |'
        )
    lines += ['', *_attribution(summary)]
    lines += [
        '',
        '## Why grasps failed',
        '',
        'Trial outcomes of every grasp tried (held; blocked: a finger landed on something before the gripper '
        'reached the grasp, the table included; empty: it closed on nothing; dropped: lost while lifting, '
        'holding or shaking; no_depth: no gripper depth, not tried), how many grasps aimed the fingertips lower '
        f"than the gripper's table clearance ({1000 * GripperConfig().table_clearance:.0f} mm above the table) and "
        'how many of those were blocked, and how many objects got no grasp at all (not proposed, e.g. under the '
        "proposals' 150 px minimum area):",
        '',
        '| method | outcomes | fingertips aimed below the clearance (blocked) | objects without a grasp |',
        '|---|---|---:|---:|',
    ]
    for name in METHODS:
        m = methods[name]
        if 'outcomes' not in m:
            continue
        counts = ', '.join(f'{o} {n}' for o, n in m['outcomes'].items())
        lines.append(
            f'| {METHOD_NAMES[name]} | {counts} | {m["aimed_into_table"]} ({m["blocked_aimed_into_table"]}) | '
            f'{m["objects_without_grasp"]} |'
        )
    kinds = sorted(methods['pipeline']['by_kind'])
    lines += [
        '',
        '## One grasp per object, by object kind',
        '',
        '| method | ' + ' | '.join(kinds) + ' |',
        '|---|' + '---:|' * len(kinds),
    ]
    for name in METHODS:
        lines.append(f'| {METHOD_NAMES[name]} | ' + ' | '.join(pct(methods[name]['by_kind'][k]) for k in kinds) + ' |')
    g, b, r = summary['gqcnn'], summary['best_grasp'], summary['gqcnn_min_area_rect']
    lines += [
        '',
        "## The GQ-CNN's quality against the outcome",
        '',
        f"Over the pipeline's {g['crops']} crops ({g['held']} held): AUROC {g['auroc']:.3f}, expected calibration "
        f'error {g["ece"]:.3f}. {g["below_threshold"]} crops scored below {b["threshold"]}; '
        f'{g["below_threshold_held"]} of those held. Over the {r["crops"]} minAreaRect crops it ranks ({r["held"]} '
        f'held): AUROC {r["auroc"]:.3f}, expected calibration error {r["ece"]:.3f}.',
        '',
        f'`~/best_grasp` (quality >= {b["threshold"]}) was published in {pct(b["published"])} of the scenes; '
        f'silent in {b["silent_scenes"]}. A robot that executes `~/best_grasp` picks successfully in '
        f'{pct(b["robot_success"])} of the scenes.',
        '',
        '![success rates and calibration](physics_results.png)',
        '',
        "Scenes with the pipeline's grasps, green held, red failed; the scene's best (highest quality) thicker:",
        '',
        '![scenes](physics_scenes.png)',
        '',
    ]
    return '\n'.join(lines)


def results_figure(summary: dict, path: Path) -> None:
    """Success rates with intervals per method, and the GQ-CNN's reliability diagram."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, (bars, calibration) = plt.subplots(1, 2, figsize=(12, 4.5))
    x = np.arange(len(METHODS))
    for offset, key, label in (
        (-0.2, 'best_per_scene', 'best grasp per scene'),
        (0.2, 'per_object', 'one grasp per object'),
    ):
        entries = [summary['methods'][m][key] for m in METHODS]
        rates = np.array([e['rate'] for e in entries])
        errors = np.array([[e['rate'] - e['low'] for e in entries], [e['high'] - e['rate'] for e in entries]])
        bars.bar(x + offset, 100 * rates, 0.4, yerr=100 * errors, capsize=3, label=label)
    bars.set_xticks(x, [SHORT_NAMES[m] for m in METHODS])
    bars.set_ylabel('physical success, % (95 % interval)')
    bars.set_ylim(0, 100)
    bars.legend(loc='lower right')
    table = summary['gqcnn']['calibration']
    filled = np.asarray(table['count']) > 0
    calibration.plot([0, 1], [0, 1], 'k:', label='calibrated')
    calibration.plot(
        np.asarray(table['predicted'])[filled],
        np.asarray(table['observed'])[filled],
        'o-',
        label=f'GQ-CNN (ECE {summary["gqcnn"]["ece"]:.2f}, AUROC {summary["gqcnn"]["auroc"]:.2f})',
    )
    for p, o, n in zip(
        np.asarray(table['predicted'])[filled],
        np.asarray(table['observed'])[filled],
        np.asarray(table['count'])[filled],
        strict=True,
    ):
        calibration.annotate(str(n), (p, o), textcoords='offset points', xytext=(4, -10), fontsize=8)
    calibration.set_xlabel('GQ-CNN quality (bin mean)')
    calibration.set_ylabel('fraction of grasps that held')
    calibration.set_xlim(0, 1)
    calibration.set_ylim(0, 1)
    calibration.legend(loc='upper left')
    fig.suptitle(f'VALIDATION meshes (random_urdfs 400-499): {summary["scenes"]} scenes, {summary["objects"]} objects')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def scenes_figure(scenes: list[PhysicsScene], results: list[SceneResult], path: Path) -> None:
    """Depth of a few scenes with the pipeline's grasps, coloured by outcome."""
    from stn_ros.perception.visualize import draw_grasps
    from stn_ros.training.prisms.scene_samples import colorize_depth

    panels = []
    for scene, result in zip(scenes, results, strict=True):
        finite = scene.depth[np.isfinite(scene.depth)]
        image = colorize_depth(scene.depth, float(finite.min()), float(finite.max()))
        method = result.methods['pipeline']
        g = method.grasps
        widths = np.full(len(g), 0.06 * scene.camera.fx / np.nanmedian(finite))
        held = (result.held['pipeline'] >= 0).astype(np.float64)
        draw_grasps(image, g.centres, g.angles, widths, held, method.pick)
        if method.pick is not None:  # the pick thicker, in its outcome's colour rather than white
            draw_grasps(image, g.centres[[method.pick]], g.angles[[method.pick]], widths[:1] + 6, held[[method.pick]])
        cv2.putText(
            image,
            f'{result.layout}: ' + ', '.join(result.kinds),
            (8, 20),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
        panels.append(image)
    if not panels:
        return
    while len(panels) % 3:
        panels.append(np.zeros_like(panels[0]))
    rows = [np.hstack(panels[i : i + 3]) for i in range(0, len(panels), 3)]
    picture = np.vstack(rows)
    cv2.imwrite(str(path), cv2.resize(picture, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA))

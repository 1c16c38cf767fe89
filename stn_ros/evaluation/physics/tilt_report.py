"""The tilt-band report of ``stn_evaluate physics --tilt-bands``: ``physics_tilt.md`` and ``physics_tilt.png``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stn_ros.evaluation.physics.bands import band_name
from stn_ros.evaluation.physics.methods import METHOD_NAMES, RECTIFIED_RULE, TILT_METHODS
from stn_ros.evaluation.physics.report import SHORT_NAMES, VALIDATION_NOTE, gripper_text, pct

SHORT_NAMES_TILT = {**SHORT_NAMES, RECTIFIED_RULE: 'footprint\nminAreaRect\n+ GQ-CNN'}


def _approach_text(summary: dict) -> str:
    if summary['pipeline_pose_fields']:
        return (
            "the pipeline's grasps carried their gripper frame (`qx, qy, qz, qw` in `~/grasps`) and were tried along "
            "it (approach = the frame's z, closing axis its x)"
        )
    return (
        "the pipeline's `~/grasps` carried no orientation fields, so its grasps (and the random axis's) were tried "
        'as image grasps, approaching along the optical axis'
    )


def tilt_report(summary: dict) -> str:
    """``physics_tilt.md`` of the run's ``summary`` (``bands``: one :func:`~.summary.summarize` per band)."""
    bands = summary['bands']
    first = bands[0]
    config = summary['config']
    lines = [
        '# Grasps judged by physics, by camera tilt: VALIDATION meshes',
        '',
        VALIDATION_NOTE,
        '',
        f'{len(bands)} band{"s" if len(bands) > 1 else ""} of camera tilt from vertical, {first["scenes"]} scenes '
        'each: the same seeds in every '
        'band, so each band drops the same objects the same way and sees them from another camera (a tilt drawn '
        'uniformly in the band, any azimuth, any roll about the optical axis, 0.6-0.8 m from the point it looks at '
        f"along its optical axis; an object that settles out of a view is taken out of that band's scene). Objects: "
        f'{config["meshes"]} and our boxes, cylinders and spheres, singulated and cluttered, {config["image"]} depth '
        "with a depth camera's noise, dropouts and shadows. Each grasp is tried once by a simulated parallel-jaw "
        f'{gripper_text(config["gripper"])} (friction {config["friction"]}; approach, close, lift 15 cm, hold, '
        f'shake): the minAreaRect rows approach along the optical axis, the fair rule along the fitted table normal; '
        f'{_approach_text(summary)}. Rates with Wilson 95 % intervals. Made by:',
        '',
        f'    {summary["command"]}',
        '',
        f'({summary["seconds"] / 60:.1f} min on this machine. Weights: stn_node {summary["weights"]["stn_node"]}, '
        f'grasp_quality_node {summary["weights"]["grasp_quality_node"]}; stn_node hypotheses_per_object '
        f'{config["hypotheses_per_object"]}.)',
        '',
        'Methods: the shipped pipeline over ROS 2; the OpenCV minAreaRect of the proposal mask in the image '
        "(unrectified), picked by nearness to the camera, and the same grasps ranked by the pipeline's GQ-CNN; the "
        "**fair rule**: minAreaRect of each proposal's footprint on the table (its pixels back-projected and projected "
        'along the table normal fitted from the depth frame), closing across the short side, approaching along the '
        "normal, the node's gripper-depth rule on the crop a straight-down view sees, ranked by the same GQ-CNN on "
        "that crop (`stn_ros/evaluation/physics/rectified_rule.py`); a random axis through the pipeline's centres; "
        'the best of the physics-tried candidates (its candidates are image grasps approaching along the optical '
        'axis, so at a tilt it bounds only grasps that do, not the fair rule or a pipeline with gripper frames).',
        '',
        '| tilt band | method | best grasp per scene | one grasp per object | grasps tried | grasp centres on no '
        'object |',
        '|---|---|---:|---:|---:|---:|',
    ]
    for band in bands:
        tilts = band['tilts']
        label = f'{band_name(band["band"])} (mean {np.mean(tilts):.1f})' if tilts else band_name(band['band'])
        for name in TILT_METHODS:
            m = band['methods'][name]
            lines.append(
                f'| {label} | {METHOD_NAMES[name]} | {pct(m["best_per_scene"])} | {pct(m["per_object"])} | '
                f'{m["grasps_tried"]} | {m["centres_on_no_object"]} |'
            )
    lines += [
        '',
        '## `~/best_grasp` and the pipeline against the fair rule',
        '',
        "`~/best_grasp` published (a quality at or above the node's threshold), a robot executing it succeeds, and the "
        'pipeline against the fair rule on the same scenes and objects (percentage points, pipeline minus rule; the '
        'scenes or objects only one of them held):',
        '',
        '| tilt band | `~/best_grasp` published | robot executing it succeeds | pipeline - fair rule, per scene '
        '| pipeline - fair rule, per object |',
        '|---|---:|---:|---:|---:|',
    ]
    for band in bands:
        b, paired = band['best_grasp'], band['stn_over_fair_rule']
        scene, item = paired['best_per_scene'], paired['per_object']
        lines.append(
            f'| {band_name(band["band"])} | {pct(b["published"])} | {pct(b["robot_success"])} | '
            f'{scene["points"]:+.1f} ({scene["first_only"]} / {scene["second_only"]}) | '
            f'{item["points"]:+.1f} ({item["first_only"]} / {item["second_only"]}) |'
        )
    lines += [
        '',
        '## Why grasps failed, by band',
        '',
        '| tilt band | method | outcomes | objects without a grasp |',
        '|---|---|---|---:|',
    ]
    for band in bands:
        for name in TILT_METHODS:
            m = band['methods'][name]
            if 'outcomes' in m:
                counts = ', '.join(f'{o} {n}' for o, n in m['outcomes'].items())
                lines.append(
                    f'| {band_name(band["band"])} | {METHOD_NAMES[name]} | {counts} | {m["objects_without_grasp"]} |'
                )
    lines += [
        '',
        '![success by tilt band](physics_tilt.png)',
        '',
        f"Scenes of the steepest band ({band_name(bands[-1]['band'])}) with the pipeline's grasps, green held, red "
        "failed; the scene's best (highest quality) thicker:",
        '',
        '![scenes](physics_tilt_scenes.png)',
        '',
    ]
    return '\n'.join(lines)


def tilt_figure(summary: dict, path: Path) -> None:
    """Best grasp per scene and one grasp per object against the tilt band, one line per method, 95 % intervals."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    bands = summary['bands']
    x = np.arange(len(bands))
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.5), sharey=True)
    for ax, key, title in (
        (axes[0], 'best_per_scene', 'best grasp per scene'),
        (axes[1], 'per_object', 'one grasp per object'),
    ):
        for offset, name in zip(np.linspace(-0.2, 0.2, len(TILT_METHODS)), TILT_METHODS, strict=True):
            entries = [b['methods'][name][key] for b in bands]
            rates = np.array([e['rate'] for e in entries])
            # clipped: a Wilson bound can sit a rounding error on the wrong side of a 0 % or 100 % rate
            errors = np.clip([[e['rate'] - e['low'] for e in entries], [e['high'] - e['rate'] for e in entries]], 0, 1)
            ax.errorbar(
                x + offset,
                100 * rates,
                yerr=100 * errors,
                fmt='o-',
                capsize=3,
                label=SHORT_NAMES_TILT[name].replace('\n', ' '),
            )
        ax.set_xticks(x, [band_name(b['band']) for b in bands])
        ax.set_xlabel('camera tilt from vertical')
        ax.set_title(title)
        ax.set_ylim(0, 100)
    axes[0].set_ylabel('physical success, % (95 % interval)')
    axes[1].legend(loc='upper left', bbox_to_anchor=(1.02, 1.0), fontsize=8)
    fig.suptitle(f'VALIDATION meshes (random_urdfs 400-499): {bands[0]["scenes"]} scenes per band')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

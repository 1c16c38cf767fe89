"""The clutter-removal report: ``clutter.md`` and ``clutter_rounds.png``."""

from __future__ import annotations

import textwrap
from pathlib import Path

import cv2
import numpy as np

from stn_ros.evaluation.clutter.protocol import END_REASONS, NO_GRASP
from stn_ros.evaluation.clutter.summary import RoundRecord
from stn_ros.evaluation.physics.methods import RECTIFIED_RULE
from stn_ros.evaluation.physics.report import VALIDATION_NOTE, gripper_text, pct

METHOD_NAMES = {
    'pipeline': 'shipped pipeline (stn_node + grasp_quality_node over ROS 2), highest quality',
    'min_area_rect': 'minAreaRect of the proposal mask in the image, nearest the camera',
    RECTIFIED_RULE: 'minAreaRect of the footprint on the table (fair rule), ranked by the same GQ-CNN',
    'random_axis': "random axis through the pipeline's grasp",
}

PUBLISHED = (
    'Published figures for the same protocol, on **other objects** (their 40 test objects, not ours, and their own '
    'grippers and simulators), so not the same test: GIGA (Jiang et al., RSS 2021) 87.9 % GSR packed, 69.8 % GSR '
    'pile; EdgeGraspNet (Huang et al., 2023) 92.0 % GSR packed, 89.9 % GSR pile and 92.8 % DR pile.'
)


def _ms(seconds: float) -> str:
    return 'n/a' if not np.isfinite(seconds) else f'{1000 * seconds:.0f} ms'


def _outcomes(entry: dict) -> str:
    counts = [f'{o} {n}' for o, n in entry['outcomes'].items() if n and o not in ('held', NO_GRASP)]
    if entry['outcomes'].get(NO_GRASP):
        counts.append(f'{NO_GRASP} {entry["outcomes"][NO_GRASP]}')
    return ', '.join(counts) or 'none'


def clutter_report(summary: dict, picture: bool = True) -> str:
    """``clutter.md`` of a run's ``summary`` (what :func:`~.run.evaluate_clutter` writes to ``clutter.json``)."""
    config = summary['config']
    views = ', '.join(f'{name} ({tilt:g} deg from vertical)' for name, tilt in config['views'].items())
    lines = [
        '# Clearing a table (clutter removal): VALIDATION meshes',
        '',
        VALIDATION_NOTE,
        '',
        textwrap.dedent(
            f"""\
            The clutter-removal protocol of VGN (Breyer et al., CoRL 2020) and GIGA (Jiang et al., RSS 2021) in the
            project's pybullet world: {config['objects_per_round']} objects per round, `packed` (standing upright
            side by side) or `pile` (dropped into a bin, the bin then taken away), of {config['meshes']}. One
            {config['image']} depth frame per attempt with the project's sensor model (noise growing with depth,
            dropouts, projector shadows), from {config['view_distance_m']} m along the optical axis, views: {views},
            a level camera at a random azimuth per round. The method proposes grasps for the frame and the robot
            executes one (below); a grasp that holds takes its object off the table, the rest settle and a new frame is
            taken. A round ends when the table is clear, no grasp is proposed, or two grasps in a row failed; an object
            pushed out of the {100 * config['workspace_m']:.0f} cm workspace is taken off and not counted as cleared.
            GSR = successes / attempts, DR = successes / objects, with Wilson 95 % intervals. Every method runs its own
            rounds from the same initial worlds (the same seeds; the first frame of a round is the same for all).
            Gripper: a simulated parallel-jaw {gripper_text(config['gripper'])} (friction {config['friction']}),
            pre-grasp {100 * config['pre_grasp_standoff_m']:.0f} cm back along the approach (the protocol's is 5 cm),
            approach, close, lift {100 * config['lift_m']:.0f} cm, hold 1 s, shake; success: the object is still held.
            Made by:"""
        ),
        '',
        f'    {summary["command"]}',
        '',
        f'({summary["seconds"] / 60:.1f} min on this machine; {config["rounds"]} rounds per layout, view and method, '
        f'seed {config["seed"]}.)',
        '',
        'Methods: ' + '; '.join(f'`{m}`: {METHOD_NAMES[m]}' for m in config['methods']) + '. A grasp is tried along '
        "the gripper frame its method gave when it gave one (the pipeline's published frame, `qx, qy, qz, qw` in "
        "`~/grasps`, the random axis turning that frame's closing axis; the fair rule's frame, approaching along the "
        'table normal it fits), otherwise approaching along the optical axis (the image rule); the second table counts '
        'the attempts tried along a frame. Looking straight down both rules are the same minAreaRect up to the pick '
        '(nearest the camera, or the GQ-CNN); from the side the image rule approaches along an optical axis 60 deg '
        "from vertical and closes across the object's shape under perspective, so there the fair rule is the "
        'baseline to read.',
        '',
        PUBLISHED,
        '',
        '| layout | view | method | GSR | DR | attempts | rounds | planning (median) | failures | objects never '
        'proposed |',
        '|---|---|---|---:|---:|---:|---:|---:|---|---:|',
    ]
    for r in summary['results']:
        lines.append(
            f'| {r["layout"]} | {r["view"]} | {r["method"]} | {pct(r["gsr"])} | {pct(r["dr"])} | {r["attempts"]} | '
            f'{r["rounds"]} | {_ms(r["planning_median_s"])} | {_outcomes(r)} | {r["never_proposed"]} |'
        )
    lines += [
        '',
        'Failures: trial outcomes of the failed attempts (blocked: a finger or the palm met something before the '
        'grasp, the table included; empty: closed on nothing; dropped: lost while lifting, holding or shaking), and '
        f'`{NO_GRASP}`: frames where the method had no grasp the gripper could execute (no attempt; the round ends). '
        "Objects never proposed: visible in some frame of a round, under none of the method's grasp centres in any "
        'of its frames (the scene labels, as `stn_evaluate physics` assigns grasps to objects). Planning: for the '
        'pipeline and the random axis, the frame published to its `~/grasps` received; for the rules, their '
        'computation in this process.',
        '',
        '## How rounds ended, and their time',
        '',
        '| layout | view | method | ' + ' | '.join(END_REASONS) + ' | objects pushed out | attempts along a gripper '
        'frame | attempts per round | seconds per round |',
        '|---|---|---|' + '---:|' * (len(END_REASONS) + 4),
    ]
    for r in summary['results']:
        ends = ' | '.join(str(r['ends'][e]) for e in END_REASONS)
        lines.append(
            f'| {r["layout"]} | {r["view"]} | {r["method"]} | {ends} | {r["left_workspace"]} | '
            f'{r["along_frame"]} of {r["attempts"]} | {r["attempts_per_round"]:.1f} | {r["seconds_per_round"]:.1f} |'
        )
    if picture:
        lines += [
            '',
            "Rounds' frames, one row per round (the first of each layout and view), left to right; the executed "
            'grasp green when it held, red when it failed (the figure states its command):',
            '',
            '![rounds](clutter_rounds.png)',
        ]
    return '\n'.join(lines) + '\n'


def rounds_figure(records: list[RoundRecord], path: Path, command: str, max_frames: int = 6) -> None:
    """One row per round of ``records`` (those with pictures): its frames' depth with the executed grasp, green held,
    red failed; a title line with the command."""
    from stn_ros.perception.visualize import draw_grasps
    from stn_ros.training.prisms.scene_samples import colorize_depth

    rows = []
    for record in records:
        panels = []
        for index, frame in enumerate(record.result.pictures[:max_frames]):
            height, width = frame.depth.shape
            rows_, cols_ = slice(height // 2 - 150, height // 2 + 150), slice(width // 2 - 180, width // 2 + 180)
            depth = frame.depth[rows_, cols_]  # the middle: the workspace is about 230 px across at 0.7 m
            finite = depth[np.isfinite(depth)]
            near, far = (
                (float(np.percentile(finite, 0.5)), float(np.percentile(finite, 99.5))) if finite.size else (0, 1)
            )
            image = np.ascontiguousarray(colorize_depth(depth, near, max(far, near + 0.05)))
            p = frame.proposal
            if p is not None:
                held = np.array([1.0 if frame.outcome == 'held' else 0.0])
                centre = np.array([p.centre]) - [cols_.start, rows_.start]
                for extra in (0, 6):
                    draw_grasps(image, centre, np.array([p.angle]), np.array([p.width_px + extra]), held)
            text = f'{record.layout} {record.view} {record.method} #{index + 1}: {frame.outcome}'
            cv2.putText(image, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
            panels.append(image)
        if panels:
            while len(panels) < max_frames:
                panels.append(np.zeros_like(panels[0]))
            rows.append(np.hstack(panels))
    if not rows:
        return
    picture = np.vstack(rows)
    banner = np.zeros((30, picture.shape[1], 3), np.uint8)
    cv2.putText(banner, f'made by: {command}', (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    cv2.imwrite(str(path), np.vstack((banner, picture)))

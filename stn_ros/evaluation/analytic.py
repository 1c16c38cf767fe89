"""How good are the grasps each canonicalization proposes? (a) none, (b) OpenCV, (c) our STN, (d) oracle.

For every held-out object with at least one good analytic grasp, each method proposes one grasp (a
centre pixel, an axis angle in the image and a gripper depth) and its 32x32 canonical image:

* ``none``: the crop centred on the object's proposal ROI, not rotated (axis along the image x).
* ``opencv``: ``cv2.minAreaRect`` of the object's visible mask; the axis across its shorter side.
* ``stn``: the grasp STN on the object's metric crop, exactly as ``stn_node`` runs it.
* ``oracle``: a good analytic grasp of the object (the analytic canonicalization).

Each proposed grasp is labelled by the analytic rule (:func:`stn_ros.sim.prisms.grasps.evaluate_grasps`:
the closing line through its centre at its axis), which gives the *grasp success rate* of the method,
and the GQ-CNN scores its canonical image, which gives the GQ-CNN's accuracy and average precision
against those labels. The STN's canonicalization error is measured against the nearest good grasp
among the object's dataset grasps and the denser candidates its training targets come from.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from stn_ros.core.metrics import accuracy, average_precision
from stn_ros.evaluation.min_area_rect import min_area_rect_grasp
from stn_ros.models.gqcnn import GQCNN, load_gqcnn
from stn_ros.perception.geometry.camera import metric_rois
from stn_ros.perception.grasps.grasp_image import canonical_homographies, crop_axis, grasp_image
from stn_ros.perception.grasps.gripper import GripperConfig
from stn_ros.perception.grasps.gripper_depth import surface_gripper_depths
from stn_ros.perception.stn.canonicalizer import Canonicalizer, load_model
from stn_ros.perception.stn.frame import Frame
from stn_ros.sim.prisms.grasps import evaluate_grasps, grasp_height
from stn_ros.sim.prisms.scenes import Scene, SceneConfig, generate_scene
from stn_ros.training.prisms.gqcnn import grasp_dataset
from stn_ros.training.prisms.grasp_images import good_grasp_homographies, objects_by_scene

METHODS = ('none', 'opencv', 'stn', 'oracle')


@dataclass
class Proposal:
    """One method's grasp on one object (image frame) and what the analytic rule and GQ-CNN say."""

    centre: np.ndarray  # (2,) pixels
    angle: float  # radians, image axis direction, modulo pi
    z: float  # gripper depth, metres
    H: np.ndarray  # (3, 3) canonical crop -> source pixel
    good: bool = False
    quality: float = float('nan')


def axis_of(H: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre pixel and axis angle of one canonical crop's ``H`` (see :func:`crop_axis`)."""
    centres, angles = crop_axis(H)
    return centres[0], float(angles[0])


def gripper_depth(depth_m: np.ndarray, centre: np.ndarray, gripper: GripperConfig) -> float:
    """The node's gripper depth for a grasp at ``centre`` (the frame's median depth where it has none)."""
    z = float(surface_gripper_depths(depth_m, np.asarray(centre)[None], gripper)[0])
    return z if np.isfinite(z) else float(np.nanmedian(depth_m))


def table_line(scene: Scene, centre: np.ndarray, angle: float, height: float) -> tuple[np.ndarray, float]:
    """The table-frame point ``(2,)`` and yaw of an image grasp, on the plane ``height`` above the table."""
    camera, pose = scene.camera, scene.table_from_camera
    ends = []
    for u, v in (centre, centre + 2.0 * np.array([np.cos(angle), np.sin(angle)])):
        ray = pose[:3, :3] @ np.array([(u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy, 1.0])
        t = (height - pose[2, 3]) / ray[2]
        ends.append(pose[:3, 3] + t * ray)
    return ends[0][:2], float(np.arctan2(ends[1][1] - ends[0][1], ends[1][0] - ends[0][0]))


def propose(
    method: str,
    scene: Scene,
    object_index: int,
    roi: np.ndarray,
    oracle_H: np.ndarray,
    oracle_z: float,
    canonicalizer: Canonicalizer | None,
    gripper: GripperConfig,
) -> Proposal:
    """The grasp ``method`` proposes for one object (see the module docstring)."""
    camera = scene.camera
    if method == 'oracle':
        centre, angle = axis_of(oracle_H)
        return Proposal(centre, angle, oracle_z, oracle_H)
    if method == 'stn':
        frame = Frame(scene.depth, '32FC1', True)
        result = canonicalizer.process(frame, roi[None], camera)
        H = result.homographies[0]  # on the host, whatever the canonicalizer's device
        centre, angle = axis_of(H)
        # The GQ-CNN sees the STN's own crop, as grasp_quality_node does with stn_node's tile.
        return Proposal(centre, angle, gripper_depth(scene.depth, centre, gripper), H)
    if method not in ('none', 'opencv'):
        raise ValueError(f'unknown method {method!r}; choose one of {METHODS}')
    fitted = min_area_rect_grasp(scene.labels == object_index + 1) if method == 'opencv' else None
    if fitted is None:  # 'none', or no visible pixel to fit
        centre, angle = roi[:2] + (roi[2:] - 1) / 2, 0.0
    else:
        centre, angle = fitted
    z = gripper_depth(scene.depth, np.asarray(centre, np.float64), gripper)
    H = canonical_homographies(np.asarray(centre)[None], np.array([angle]), np.array([z]), camera, gripper)[0]
    return Proposal(np.asarray(centre, np.float64), float(angle), z, H)


def label_and_score(
    proposal: Proposal, scene: Scene, object_index: int, gqcnn: GQCNN, gripper: GripperConfig
) -> Proposal:
    """Fill ``good`` (analytic rule) and ``quality`` (GQ-CNN) of a proposal."""
    height = grasp_height(scene.objects[object_index].height, gripper)
    point, yaw = table_line(scene, proposal.centre, proposal.angle, height)
    proposal.good = bool(evaluate_grasps(scene, object_index, point[None], np.array([yaw]), gripper)[0].good)
    image = grasp_image(scene.depth, proposal.H, proposal.z)
    proposal.quality = float(
        gqcnn.quality(torch.from_numpy(image)[None, None], torch.tensor([proposal.z], dtype=torch.float32))[0]
    )
    return proposal


def canonicalization_error(stn: Proposal, good_H: np.ndarray) -> tuple[float, float]:
    """Axis-angle error (degrees, modulo 180) and centre error (canonical pixels) to the nearest good grasp."""
    best = (np.inf, np.inf)
    for H in good_H:
        centre, angle = axis_of(H)
        scale = np.linalg.norm(H[:2, 0])  # source pixels per canonical pixel
        angle_error = abs((np.degrees(stn.angle - angle) + 90.0) % 180.0 - 90.0)
        centre_error = float(np.linalg.norm(stn.centre - centre) / scale)
        if angle_error / 10.0 + centre_error / 1.5 < best[0] / 10.0 + best[1] / 1.5:
            best = (angle_error, centre_error)
    return best


def evaluate_grasp(args: argparse.Namespace) -> int:
    """The ``evaluate grasp`` command: the four methods on held-out objects, table, plots, picture."""
    gqcnn, _ = load_gqcnn(args.gqcnn)
    model = load_model(str(args.stn))
    canonicalizer = Canonicalizer(model.stn, torch.device('cpu'), (32, 32), model.roi_side_m)
    gripper, config = GripperConfig(), SceneConfig()
    arrays = grasp_dataset(args.num_scenes, args.data_seed, args.cache)
    held = np.flatnonzero(arrays['held_out'].astype(bool) & (arrays['labels'] == 1))
    objects = list(dict.fromkeys(arrays['object_id'][held].tolist()))[: args.max_objects]
    by_scene = objects_by_scene(arrays, objects)
    results = {m: {'good': [], 'quality': []} for m in METHODS}
    errors, examples, kinds = [], [], []
    for seed, scene_objects in tqdm(by_scene.items(), desc='held-out scenes', unit='scene', file=sys.stderr):
        scene = generate_scene(config, seed)
        dense_good = good_grasp_homographies(scene, gripper, seed)  # the STN's error measure, as in training
        for o in scene_objects:
            rows = np.flatnonzero(arrays['object_id'] == o)
            good = rows[arrays['labels'][rows] == 1]
            index, roi = int(arrays['object_index'][rows[0]]), arrays['roi'][rows[0]]
            kinds.append(scene.objects[index].kind)
            proposals = {}
            for method in METHODS:
                proposal = propose(
                    method, scene, index, roi, arrays['H'][good[0]], float(arrays['z'][good[0]]), canonicalizer, gripper
                )
                proposals[method] = label_and_score(proposal, scene, index, gqcnn, gripper)
                results[method]['good'].append(proposals[method].good)
                results[method]['quality'].append(proposals[method].quality)
            errors.append(
                canonicalization_error(proposals['stn'], np.concatenate((dense_good[index], arrays['H'][good])))
            )
            if len(examples) < 10:
                examples.append((scene, roi, proposals))
    rows_md = [
        '| canonicalization | grasp success (analytic) | GQ-CNN accuracy | GQ-CNN AP | mean GQ-CNN quality |',
        '|---|---:|---:|---:|---:|',
    ]
    names = {
        'none': '(a) none: object-centred crop, not rotated',
        'opencv': '(b) OpenCV minAreaRect',
        'stn': '(c) our STN',
        'oracle': '(d) oracle: analytic canonicalization',
    }
    summary = {}
    for method in METHODS:
        good = np.asarray(results[method]['good'], bool)
        quality = np.asarray(results[method]['quality'])
        hits = accuracy(quality, good)
        ap = average_precision(quality, good.astype(int)) if 0 < good.sum() < len(good) else float('nan')
        summary[method] = {
            'success': float(good.mean()),
            'accuracy': hits,
            'ap': ap,
            'quality': float(quality.mean()),
        }
        rows_md.append(
            f'| {names[method]} | {good.mean():.1%} | {hits:.1%} | '
            f'{"n/a (one class)" if np.isnan(ap) else f"{ap:.3f}"} | {quality.mean():.3f} |'
        )
    angle, centre = np.asarray(errors).T
    kinds = np.asarray(kinds)
    by_kind = [
        '| object kind | objects | ' + ' | '.join(names[m].split(':')[0] for m in METHODS) + ' |',
        '|---|---:|' + '---:|' * len(METHODS),
    ]
    for kind in dict.fromkeys(kinds):
        rows_k = kinds == kind
        by_kind.append(
            f'| {kind} | {rows_k.sum()} | '
            + ' | '.join(f'{np.asarray(results[m]["good"], bool)[rows_k].mean():.1%}' for m in METHODS)
            + ' |'
        )
    text = (
        f'# Grasp canonicalization on held-out objects\n\n{len(objects)} held-out objects with at least one good '
        f'analytic grasp ({len(by_scene)} scenes of the {args.num_scenes}-scene grasp dataset, seed '
        f'{args.data_seed}). Each method proposes one grasp per object; the analytic rule labels it and the '
        f'GQ-CNN scores its canonical image.\n\n'
        + '\n'.join(rows_md)
        + f'\n\nSTN canonicalization error against the nearest good analytic grasp: median axis angle '
        f'{np.median(angle):.1f} deg (mod 180), median centre {np.median(centre):.2f} px at 32x32; '
        f'{np.mean((angle < 10) & (centre < 1.5)):.1%} within both 10 deg and 1.5 px.\n\n'
        f'Grasp success by object kind:\n\n' + '\n'.join(by_kind) + '\n\n'
        f'Reproduce: `{args.command}`\n'
    )
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / 'table.md').write_text(text)
    (args.output / 'results.json').write_text(
        json.dumps(
            {
                'methods': summary,
                'median_angle_error_deg': float(np.median(angle)),
                'median_centre_error_px': float(np.median(centre)),
                'objects': len(objects),
                'success_by_kind': {
                    k: {m: float(np.asarray(results[m]['good'], bool)[kinds == k].mean()) for m in METHODS}
                    for k in dict.fromkeys(kinds)
                },
            },
            indent=1,
        )
    )
    grasp_plots(results, angle, centre, args.output / 'grasp_results.png')
    crops_picture(examples, canonicalizer, args.output / 'stn_crops.png')
    print(text)
    return 0


def grasp_plots(results: dict, angle: np.ndarray, centre: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    methods = list(results)
    axes[0].bar(
        methods, [np.mean(results[m]['good']) * 100 for m in methods], color=['grey', 'tab:blue', 'tab:green', 'black']
    )
    axes[0].set_ylabel('grasp success (%)')
    axes[0].set_title('analytic label of the proposed grasp')
    axes[1].hist(np.minimum(angle, 90), bins=30, color='tab:green')
    axes[1].axvline(10, color='k', ls='--')
    axes[1].set_xlabel('STN axis-angle error (deg, mod 180)')
    axes[2].hist(np.minimum(centre, 10), bins=30, color='tab:green')
    axes[2].axvline(1.5, color='k', ls='--')
    axes[2].set_xlabel('STN centre error (px at 32x32)')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def crops_picture(examples: list, canonicalizer, path: Path) -> None:
    """Per object: the metric crop the STN sees, the STN's canonical crop, and an oracle crop."""

    def tile(image, label, good=None):
        finite = image[np.isfinite(image)]
        low, high = (np.percentile(finite, 1), np.percentile(finite, 99)) if finite.size else (0, 1)
        grey = (np.clip((np.nan_to_num(image, nan=high) - low) / max(high - low, 1e-6), 0, 1) * 255).astype(np.uint8)
        out = cv2.applyColorMap(
            cv2.resize(255 - grey, (128, 128), interpolation=cv2.INTER_NEAREST), cv2.COLORMAP_VIRIDIS
        )
        colour = (255, 255, 255) if good is None else ((0, 200, 0) if good else (0, 0, 255))
        cv2.putText(out, label, (3, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, colour, 1, cv2.LINE_AA)
        return cv2.copyMakeBorder(out, 2, 2, 2, 2, cv2.BORDER_CONSTANT, value=(255, 255, 255))

    rows = []
    for scene, roi, proposals in examples:
        camera = scene.camera
        metric = metric_rois(roi[None], scene.depth, camera.fx, camera.fy, canonicalizer.roi_side_m or 0.24)[0]
        x, y, w, h = metric
        before = cv2.warpAffine(
            scene.depth,
            np.array([[w / 64, 0, x - 0.5 + w / 128], [0, h / 64, y - 0.5 + h / 128]]),
            (64, 64),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderValue=float('nan'),
        )
        cells = [tile(before, 'STN input')]
        for method in ('none', 'opencv', 'stn', 'oracle'):
            p = proposals[method]
            cells.append(tile(grasp_image(scene.depth, p.H, p.z), f'{method} q={p.quality:.2f}', p.good))
        rows.append(np.hstack(cells))
    cv2.imwrite(str(path), np.vstack(rows))

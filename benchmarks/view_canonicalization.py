"""View canonicalization (issue 26, items 1-2) on tilted synthetic frames: where an object's grasp point is put, and
what stn_node's compute costs with it.

``centring``: boxes and cylinders on a table rendered by the prisms renderer (exact ray casting, 1 mm noise, 1 %
dropouts, edge dropouts), the camera ``--distance`` from the point its optical axis hits, tilted 0-60 degrees. For
each object found by the depth proposals (by height, with the intrinsics) it compares ways to place the grasp point
against the truth (the object's footprint centre, its top height): the centre of the footprint's bounding box in the
view's axes (the node's, on its grid of pixels), the same from all pixels with the extremes trimmed, the footprint's
mean, and the ROI centre's own reading (the centre of the mask's bounding box in source pixels, the point seen there:
where today's crops are centred); and the top: the node's, and percentiles of all the object's heights.

``cost``: a 640x480 frame of 16 boxes (``--tilt`` degrees), ``depth_proposals`` + ``Canonicalizer.process`` with 4
hypotheses per object on the shipped STN, view canonicalization off and on, interleaved frame by frame; medians.

    cd benchmarks && ../.venv/bin/python view_canonicalization.py centring
    cd benchmarks && ../.venv/bin/python view_canonicalization.py cost --repeats 300
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import torch

from stn_ros.perception.geometry.table_view import TablePlane, view_rotation
from stn_ros.perception.grasps.gripper import GripperConfig
from stn_ros.perception.stn.canonicalizer import load_model
from stn_ros.perception.stn.frame import Frame
from stn_ros.perception.stn.proposals import ProposalConfig, depth_proposals
from stn_ros.perception.stn.steps import StnPipeline
from stn_ros.sim.prisms.scenes import SceneConfig, box_footprint, camera_pose, make_object, render_scene

PERCENTILES = (100.0, 97.5, 95.0, 90.0, 75.0, 50.0)


def facing_pose(distance: float, tilt_deg: float, direction: float) -> tuple[np.ndarray, np.ndarray]:
    """The table_from_camera of a camera ``distance`` metres from the table point its optical axis hits, tilted
    ``tilt_deg``; and that point's table ``(x, y)``."""
    pose = camera_pose(distance * math.cos(math.radians(tilt_deg)), tilt_deg, direction)
    axis, centre = pose[:3, 2], pose[:3, 3]
    return pose, (centre + axis * (-centre[2] / axis[2]))[:2]


def scene_objects(rng: np.random.Generator, middle: np.ndarray, count: int, spacing: float = 0.11) -> list:
    """``count`` boxes and 40-gon cylinders on a grid of ``spacing`` around ``middle`` (table metres)."""
    side = math.ceil(math.sqrt(count))
    objects = []
    for index in range(count):
        offset = (np.array([index % side, index // side]) - (side - 1) / 2) * spacing
        height = rng.uniform(0.02, 0.09)
        x, y = middle + offset + rng.uniform(-0.01, 0.01, 2)
        if rng.random() < 0.6:
            footprint, kind = box_footprint(*rng.uniform(0.03, 0.08, 2)), 'box'
        else:
            angles = np.arange(40) * (2 * np.pi / 40)
            footprint, kind = rng.uniform(0.015, 0.04) * np.stack((np.cos(angles), np.sin(angles)), 1), 'cylinder'
        objects.append(make_object(kind, footprint, height, x, y, rng.uniform(0, np.pi)))
    return objects


def centring(args: argparse.Namespace) -> None:
    config = SceneConfig()
    camera = config.camera()
    rows = []
    for tilt in args.tilts:
        errors: dict[str, list[float]] = {
            'footprint box': [],
            'box 1-99 %': [],
            'box 3-97 %': [],
            'footprint mean': [],
            'ROI centre reading': [],
        }
        tops: dict[str, list[float]] = {'node': [], **{f'p{p:g}': [] for p in PERCENTILES}}
        found = missed = table = 0
        for seed in range(args.scenes):
            rng = np.random.default_rng(seed)
            pose, middle = facing_pose(args.distance, tilt, rng.uniform(0, 2 * np.pi))
            scene = render_scene(config, scene_objects(rng, middle, 9), pose, rng)
            proposals = depth_proposals(scene.depth, ProposalConfig(), camera=camera)
            if proposals.plane is None:
                missed += len(scene.objects)
                continue
            plane = TablePlane(-scene.table_plane[:3], -scene.table_plane[3])  # the truth: normal towards the table
            rotation = view_rotation(plane.normal)
            labels = proposals.labels
            seen = set()
            for index, (roi, centre, depth) in enumerate(
                zip(proposals.rois, proposals.views.centres, proposals.views.depths, strict=True)
            ):
                owners = scene.labels[labels == index + 1]
                owner = np.bincount(owners).argmax()
                if owner == 0 or np.mean(owners == owner) < 0.5:
                    table += 1
                    continue
                seen.add(owner)
                obj = scene.objects[owner - 1]
                truth = rotation.T @ scene.to_camera([[obj.x, obj.y, 0.0]])[0]  # footprint centre, view frame
                top_truth = plane.distance - obj.height
                view_xy = (centre - (camera.cx, camera.cy)) / (camera.fx, camera.fy) * depth
                errors['footprint box'].append(1000 * np.linalg.norm(view_xy - truth[:2]))
                points = _object_points(scene.depth, labels == index + 1, camera) @ rotation
                errors['footprint mean'].append(1000 * np.linalg.norm(points[:, :2].mean(0) - truth[:2]))
                for name, trim in (('box 1-99 %', 1.0), ('box 3-97 %', 3.0)):
                    low, high = np.percentile(points[:, :2], (trim, 100 - trim), axis=0)
                    errors[name].append(1000 * np.linalg.norm((low + high) / 2 - truth[:2]))
                roi_centre = roi[:2] + (roi[2:] - 1) / 2
                z = scene.depth[int(round(roi_centre[1])), int(round(roi_centre[0]))]
                if np.isfinite(z):
                    seen_point = rotation.T @ camera.back_project(roi_centre[None], np.array([z]))[0]
                    errors['ROI centre reading'].append(1000 * np.linalg.norm(seen_point[:2] - truth[:2]))
                tops['node'].append(1000 * (depth - top_truth))
                for percentile in PERCENTILES:
                    top = np.percentile(points[:, 2], 100 - percentile)
                    tops[f'p{percentile:g}'].append(1000 * (top - top_truth))
            visible = [k + 1 for k, o in enumerate(scene.objects) if o.mask.sum() >= 150]
            found += len(seen)
            missed += len(set(visible) - seen)
        rows.append((tilt, found, missed, table, errors, tops))
    print(f'{args.scenes} scenes of 9 objects per tilt, camera {args.distance} m from the table point it looks at')
    print('tilt  found missed table | grasp point: median / p90 horizontal error, mm | top: median |error| (bias), mm')
    for tilt, found, missed, table, errors, tops in rows:
        cells = '  '.join(f'{name} {_stats(values)}' for name, values in errors.items())
        top_cells = '  '.join(f'{p} {np.median(np.abs(v)):.1f} ({np.median(v):+.1f})' for p, v in tops.items() if v)
        print(f'{tilt:4.0f}  {found:5d} {missed:6d} {table:5d} | {cells} | {top_cells}')


def _object_points(depth: np.ndarray, mask: np.ndarray, camera) -> np.ndarray:
    rows, cols = np.nonzero(mask & np.isfinite(depth))
    return camera.back_project(np.stack((cols, rows), 1), depth[rows, cols])


def _stats(values: list[float]) -> str:
    if not values:
        return '-'
    return f'{np.median(values):5.1f} / {np.percentile(values, 90):5.1f}'


def cost(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    config = SceneConfig()
    camera = config.camera()
    rng = np.random.default_rng(0)
    pose, middle = facing_pose(args.distance, args.tilt, 0.3)
    scene = render_scene(config, scene_objects(rng, middle, 16, spacing=0.1), pose, rng)
    frame = Frame(scene.depth, '32FC1', True)
    model = load_model('')
    pipeline = StnPipeline.for_gripper(model, torch.device('cpu'), (32, 32), GripperConfig())
    canonicalizer = pipeline.canonicalizer
    proposal_config = ProposalConfig()
    found = depth_proposals(frame.pixels, proposal_config, 16, camera=camera)
    print(f'{len(found.rois)} objects found at {args.tilt:g} deg; 4 hypotheses each; torch threads 1')
    times: dict[bool, dict[str, list[float]]] = {
        on: {'proposals': [], 'process': [], 'total': []} for on in (False, True)
    }
    for repeat in range(args.repeats + 10):
        for on in (False, True) if repeat % 2 else (True, False):
            started = time.perf_counter()
            proposals = depth_proposals(frame.pixels, proposal_config, 16, camera=camera if on else None)
            middle_time = time.perf_counter()
            canonicalizer.process(frame, proposals.rois, camera, (32, 32), 4, proposals.views if on else None)
            ended = time.perf_counter()
            if repeat >= 10:
                times[on]['proposals'].append(1000 * (middle_time - started))
                times[on]['process'].append(1000 * (ended - middle_time))
                times[on]['total'].append(1000 * (ended - started))
    for stage in ('proposals', 'process', 'total'):
        off, on = statistics.median(times[False][stage]), statistics.median(times[True][stage])
        print(f'{stage:10s} off {off:6.2f} ms  on {on:6.2f} ms  difference {on - off:+5.2f} ms')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest='command', required=True)
    centre = commands.add_parser('centring', help='grasp point and top on tilted frames')
    centre.add_argument('--tilts', type=float, nargs='+', default=[0.0, 30.0, 45.0, 60.0])
    centre.add_argument('--scenes', type=int, default=20)
    centre.add_argument('--distance', type=float, default=0.7)
    timing = commands.add_parser('cost', help='compute with view canonicalization off and on')
    timing.add_argument('--tilt', type=float, default=45.0)
    timing.add_argument('--repeats', type=int, default=300)
    timing.add_argument('--distance', type=float, default=0.7)
    args = parser.parse_args()
    centring(args) if args.command == 'centring' else cost(args)


if __name__ == '__main__':
    main()

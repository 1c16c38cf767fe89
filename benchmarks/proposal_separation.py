"""Does every object get a proposal of its own? Depth proposals on physics scenes, by camera tilt.

For every object with at least ``--min-area`` visible pixels: ``own`` when one proposal covers at least half of
it and is at least 70 % this object; ``merged`` when its best proposal is mostly other objects; ``partial``
when its best proposal is its own but covers less than half; ``missing`` when no proposal touches it. A proposal
less than half object pixels is ``false`` (table noise or a shadow's edge taken for an object). Each band's
scenes are the same drops seen by a camera tilted within the band (any azimuth and roll), the proposals found
with the scene's intrinsics as stn_node finds them. Variants: the settings before the last two changes (8 mm
threshold, plain opening; then no cut at depth jumps along the rays), each step alone, and the shipped defaults; plus
the time of ``depth_proposals`` (the variants alternate frame by frame).

    .venv/bin/python benchmarks/proposal_separation.py --scenes 60 --tilt-bands 0-10,10-30,30-45,45-60
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import time
from unittest import mock

import numpy as np
from tqdm import tqdm

from bench_scenes import add_scene_options
from stn_ros.evaluation.physics.bands import band_name
from stn_ros.perception.stn import proposals as proposals_module
from stn_ros.perception.stn.proposals import ProposalConfig, depth_proposals
from stn_ros.sim.physics.scenes import PhysicsSceneConfig, generate_physics_scene
from stn_ros.sim.prisms.scenes import scene_seed

OUTCOMES = ('own', 'merged', 'partial', 'missing')


def outcome(labels: np.ndarray, proposals, body: int) -> str:
    obj = labels == body
    best = None
    for k in range(1, len(proposals.rois) + 1):
        component = proposals.labels == k
        overlap = int((component & obj).sum())
        if overlap and (best is None or overlap > best[0]):
            best = (overlap, overlap / obj.sum(), overlap / component.sum())
    if best is None:
        return 'missing'
    if best[2] < 0.7:
        return 'merged'
    return 'own' if best[1] >= 0.5 else 'partial'


def false_proposals(labels: np.ndarray, proposals) -> int:
    """Proposals less than half of whose pixels are objects'."""
    return sum((labels[proposals.labels == k] > 0).mean() < 0.5 for k in range(1, len(proposals.rois) + 1))


def opening(hole_aware: bool):
    """The shipped opening, or (``hole_aware`` False) the one before no-reading pixels were let alone: the plain
    3x3 opening, patched in for the variants that say what that change did."""
    if hole_aware:
        return contextlib.nullcontext()
    shipped = proposals_module.open_mask
    return mock.patch.object(proposals_module, 'open_mask', lambda mask, unread=None: shipped(mask))


def variants() -> list[tuple[str, ProposalConfig, bool]]:
    """``(name, config, hole-aware opening)``: the settings before the last two changes, each step, the shipped ones.
    The steps of the change before the last (table threshold, opening) ran without the cut along the rays."""
    shipped = ProposalConfig()
    no_ray_cut = dataclasses.replace(shipped, occlusion_jump=0.0)
    before = dataclasses.replace(no_ray_cut, table_threshold=0.008)
    threshold = f'{shipped.table_threshold * 1000:g} mm'
    return [
        ('8 mm, plain opening (before)', before, False),
        ('8 mm, no-reading pixels do not erode', before, True),
        (f'{threshold}, plain opening', no_ray_cut, False),
        (f'{threshold}, no-reading pixels do not erode (no cut along the rays)', no_ray_cut, True),
        ('also cut at 7.5 mm along the rays', dataclasses.replace(shipped, occlusion_jump=0.0075), True),
        (f'also cut at {shipped.occlusion_jump * 1000:g} mm along the rays (shipped)', shipped, True),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_scene_options(parser, scenes=60, seed=300)
    parser.add_argument('--min-area', type=int, default=150, help='objects smaller are not counted')
    args = parser.parse_args()
    print(f'{args.scenes} scenes a band, {args.meshes} meshes, seed {args.seed}; objects of >= {args.min_area} px\n')
    print(
        '| tilt band | proposals | objects | own | merged | partial | never proposed | false proposals | ms (median) |'
    )
    print('|---|---|---:|---:|---:|---:|---:|---:|---:|')
    for band in args.tilt_bands:
        config = PhysicsSceneConfig(meshes=args.meshes, tilt_range_deg=band)
        seeds = [scene_seed(args.seed, i) for i in range(args.scenes)]
        scenes = [generate_physics_scene(config, s) for s in tqdm(seeds, desc=band_name(band), leave=False)]
        counts = {name: collections.Counter() for name, *_ in variants()}
        false = dict.fromkeys(counts, 0)
        times = {name: [] for name in counts}
        for scene in scenes:  # the variants alternate frame by frame, so their times compare on a noisy machine
            for name, proposal_config, hole_aware in variants():
                with opening(hole_aware):
                    started = time.perf_counter()
                    found = depth_proposals(scene.depth, proposal_config, 16, camera=scene.camera)
                    times[name].append(time.perf_counter() - started)
                false[name] += false_proposals(scene.labels, found)
                for body in range(1, len(scene.kinds) + 1):
                    if (scene.labels == body).sum() >= args.min_area:
                        counts[name][outcome(scene.labels, found, body)] += 1
        for name, found in counts.items():
            total = sum(found.values())
            shares = ' | '.join(f'{found[k]} ({found[k] / total:.1%})' for k in OUTCOMES)
            ms = 1000 * np.median(times[name])
            print(f'| {band_name(band)} | {name} | {total} | {shares} | {false[name]} | {ms:.1f} |')


if __name__ == '__main__':
    main()

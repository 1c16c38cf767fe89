"""Do touching objects get proposals of their own? Depth proposals on cluttered physics scenes (training meshes).

For every object with at least ``min_area`` visible pixels: ``own`` when one proposal covers at least half of
it and is at least 70 % this object; ``merged`` when its best proposal is mostly other objects; ``partial``
when its best proposal is its own but covers less than half; ``missing`` when no proposal touches it. Run
with and without the cut at depth edges (``ProposalConfig.split_jump``), and the time of ``depth_proposals``.

    .venv/bin/python benchmarks/proposal_separation.py --scenes 40
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import time

import numpy as np

from stn_ros.perception.stn.proposals import ProposalConfig, depth_proposals
from stn_ros.sim.physics.scenes import PhysicsSceneConfig, generate_physics_scene


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--scenes', type=int, default=40, help='cluttered scenes (default: %(default)s)')
    parser.add_argument('--seed', type=int, default=300, help='first scene seed (default: %(default)s)')
    parser.add_argument('--min-area', type=int, default=150, help='objects smaller are not counted')
    args = parser.parse_args()
    config = PhysicsSceneConfig(meshes='train', cluttered_prob=1.0, num_objects=(3, 6))
    scenes = [generate_physics_scene(config, args.seed + i) for i in range(args.scenes)]
    for name, proposal_config in (
        ('no cut (split_jump 0)', dataclasses.replace(ProposalConfig(), split_jump=0.0)),
        (f'cut at depth edges (split_jump {ProposalConfig().split_jump})', ProposalConfig()),
    ):
        counts, times = collections.Counter(), []
        for scene in scenes:
            started = time.perf_counter()
            proposals = depth_proposals(scene.depth, proposal_config, 16)
            times.append(time.perf_counter() - started)
            for body in range(1, len(scene.kinds) + 1):
                if (scene.labels == body).sum() >= args.min_area:
                    counts[outcome(scene.labels, proposals, body)] += 1
        total = sum(counts.values())
        shares = ', '.join(
            f'{k} {counts[k]} ({counts[k] / total:.0%})' for k in ('own', 'merged', 'partial', 'missing')
        )
        print(f'{name}: {total} objects: {shares}; depth_proposals median {1000 * np.median(times):.1f} ms')


if __name__ == '__main__':
    main()

"""The scene options of the benchmarks on physics scenes by camera tilt (``proposal_separation.py``,
``grasp_candidates.py``)."""

from __future__ import annotations

import argparse

from stn_ros.evaluation.physics.bands import parse_tilt_bands


def add_scene_options(parser: argparse.ArgumentParser, scenes: int, seed: int) -> None:
    """``--scenes`` per band, ``--seed`` of the scene seeds, ``--tilt-bands`` and ``--meshes`` (training by default:
    choose on them, confirm on the validation meshes with ``stn_evaluate physics``)."""
    parser.add_argument('--scenes', type=int, default=scenes, help='scenes per band (default: %(default)s)')
    parser.add_argument('--seed', type=int, default=seed, help='seed of the scene seeds (default: %(default)s)')
    parser.add_argument(
        '--tilt-bands', type=parse_tilt_bands, default=parse_tilt_bands('0-10,30-45,45-60'),
        help='camera tilt bands, degrees from vertical (default: 0-10,30-45,45-60)',
    )  # fmt: skip
    parser.add_argument(
        '--meshes', choices=('train', 'validation'), default='train', help='mesh split (default: train)'
    )

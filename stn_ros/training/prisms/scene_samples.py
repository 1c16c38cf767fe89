"""Picture of synthetic grasp scenes: depth with labelled grasps, and their canonical grasp images.

``python -m stn_ros.training.prisms.scene_samples --output docs/synthetic_scenes.png --seed 0 --scenes 4``
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from stn_ros.perception.grasps.grasp_image import CANONICAL_SIZE, canonical_scale, grasp_image
from stn_ros.perception.grasps.gripper import GripperConfig
from stn_ros.sim.prisms.grasps import Grasp, sample_grasps
from stn_ros.sim.prisms.scenes import Scene, SceneConfig, generate_scene, scene_seed
from stn_ros.training.prisms.grasp_images import canonical_homography

GOOD, BAD, TEXT = (60, 200, 60), (40, 40, 230), (235, 235, 235)
ZOOM = 3
RELATIVE_RANGE = (-0.04, 0.06)
"""Metres relative to the gripper shown from bright (near) to dark (far) in the canonical images."""


def colorize_depth(depth_m: np.ndarray, near: float, far: float) -> np.ndarray:
    """bgr8 image of depth ``(H, W)`` metres: near bright, far dark (viridis), NaN black."""
    finite = np.isfinite(depth_m)
    scaled = np.clip((far - np.where(finite, depth_m, far)) / (far - near), 0.0, 1.0)
    image = cv2.applyColorMap((scaled * 255).astype(np.uint8), cv2.COLORMAP_VIRIDIS)
    image[~finite] = 0
    return image


def jaw_outlines(scene: Scene, grasp: Grasp, gripper: GripperConfig) -> list[np.ndarray]:
    """Source-pixel outlines ``(4, 2)`` of the two jaw footprints of ``grasp`` at its grasp height."""
    axis = np.array([math.cos(grasp.axis_yaw), math.sin(grasp.axis_yaw)])
    across = np.array([-axis[1], axis[0]])
    width = grasp.width_m if grasp.width_m > 0 else gripper.max_opening - gripper.clearance
    inner = 0.5 * (width + gripper.clearance)
    outlines = []
    for sign in (-1.0, 1.0):
        corners = [
            grasp.centre_table[:2] + sign * along * axis + side * 0.5 * gripper.jaw_width * across
            for along, side in (
                (inner, -1),
                (inner + gripper.jaw_thickness, -1),
                (inner + gripper.jaw_thickness, 1),
                (inner, 1),
            )
        ]
        points = np.concatenate((np.array(corners), np.full((4, 1), grasp.centre_table[2])), axis=1)
        outlines.append(scene.project(points)[0])
    return outlines


def draw_grasps(image: np.ndarray, scene: Scene, grasps: Sequence[Grasp], gripper: GripperConfig) -> None:
    """Draw each grasp in place: jaw footprints and the closing line, green good, red bad."""
    for grasp in grasps:
        colour = GOOD if grasp.good else BAD
        left, right = jaw_outlines(scene, grasp, gripper)
        for outline in (left, right):
            cv2.polylines(image, [np.round(outline * 16).astype(np.int32)], True, colour, 2, cv2.LINE_AA, 4)
        ends = np.round(np.stack((left[[0, 3]].mean(0), right[[0, 3]].mean(0))) * 16).astype(np.int32)
        cv2.line(image, tuple(ends[0]), tuple(ends[1]), colour, 1, cv2.LINE_AA, 4)


def canonical_tile(image: np.ndarray, grasp: Grasp, gripper: GripperConfig) -> np.ndarray:
    """Enlarged bgr8 canonical image with the contacts marked and a good/bad caption."""
    tile = colorize_depth(image, *RELATIVE_RANGE)
    tile = cv2.resize(tile, None, fx=ZOOM, fy=ZOOM, interpolation=cv2.INTER_NEAREST)
    colour = GOOD if grasp.good else BAD
    middle = (CANONICAL_SIZE - 1) / 2.0
    if grasp.width_m > 0:
        for sign in (-1, 1):
            col = (middle + sign * 0.5 * grasp.width_m * canonical_scale(gripper) + 0.5) * ZOOM
            cv2.line(
                tile,
                (int(round(col)), int(middle * ZOOM)),
                (int(round(col)), int((middle + 2) * ZOOM)),
                (255, 255, 255),
                1,
            )
    cv2.rectangle(tile, (0, 0), (tile.shape[1] - 1, tile.shape[0] - 1), colour, 2)
    caption = np.zeros((16, tile.shape[1], 3), np.uint8)
    cv2.putText(
        caption,
        'good' if grasp.good else grasp.failure,
        (3, 12),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.38,
        colour,
        1,
        cv2.LINE_AA,
    )
    return np.concatenate((tile, caption))


def scene_panel(
    scene: Scene,
    grasps: Sequence[Grasp],
    gripper: GripperConfig,
    config: SceneConfig,
    per_class: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """The depth with some good and bad grasps per object drawn, and a strip of their canonical images."""
    shown: list[Grasp] = []
    for index in range(len(scene.objects)):
        for good in (True, False):
            pool = [g for g in grasps if g.object_index == index and g.good == good]
            shown += [pool[i] for i in rng.permutation(len(pool))[:2]]
    depth = colorize_depth(
        scene.depth, config.camera_height - config.height_range[1] - 0.01, config.camera_height + 0.005
    )
    draw_grasps(depth, scene, shown, gripper)
    cv2.putText(
        depth,
        f'scene seed {scene.seed}: {len(scene.objects)} objects',
        (8, 20),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.55,
        TEXT,
        1,
        cv2.LINE_AA,
    )
    rows = []
    for good in (True, False):
        pool = [g for g in shown if g.good == good][:per_class]
        tiles = [
            canonical_tile(grasp_image(scene.depth, canonical_homography(g, scene.camera, gripper), g.z), g, gripper)
            for g in pool
        ]
        rows.append(_row(tiles, depth.shape[1]))
    return np.concatenate([depth] + rows)


def _row(tiles: list[np.ndarray], width: int) -> np.ndarray:
    height = CANONICAL_SIZE * ZOOM + 16 + 6
    row = np.full((height, width, 3), 30, np.uint8)
    for i, tile in enumerate(tiles):
        left = 4 + i * (tile.shape[1] + 6)
        if left + tile.shape[1] > width:
            break
        row[3 : 3 + tile.shape[0], left : left + tile.shape[1]] = tile
    return row


def render_samples(seed: int, scenes: int, per_object: int = 16) -> np.ndarray:
    """bgr8 picture of ``scenes`` scenes, two per row."""
    config, gripper = SceneConfig(), GripperConfig()
    rng = np.random.default_rng(seed)
    panels = []
    for index in range(scenes):
        scene = generate_scene(config, scene_seed(seed, index))
        grasps = sample_grasps(scene, gripper, np.random.default_rng([scene.seed, 1]), per_object)
        panels.append(scene_panel(scene, grasps, gripper, config, 6, rng))
    if len(panels) % 2:
        panels.append(np.zeros_like(panels[0]))
    gap = np.full((panels[0].shape[0], 8, 3), 255, np.uint8)
    rows = [np.concatenate((panels[i], gap, panels[i + 1]), axis=1) for i in range(0, len(panels), 2)]
    spacer = np.full((8, rows[0].shape[1], 3), 255, np.uint8)
    return np.concatenate([part for row in rows for part in (row, spacer)][:-1])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog='python -m stn_ros.training.prisms.scene_samples',
        description='Write one PNG of synthetic depth scenes (colour-mapped, near = bright, no reading = '
        'black) with sampled parallel-jaw grasps drawn as jaw footprints (green good, red bad), '
        'each scene above two strips of Dex-Net 2.0 canonical 32x32 grasp images (enlarged '
        f'{ZOOM}x, depth relative to the gripper in [{RELATIVE_RANGE[0]}, {RELATIVE_RANGE[1]}] m; '
        'white ticks = where the contacts should be): good grasps, then bad ones with the rule '
        'that failed.',
    )
    parser.add_argument(
        '--output',
        type=Path,
        default=Path('docs/synthetic_scenes.png'),
        help='PNG to write (directories are created); default: %(default)s',
    )
    parser.add_argument('--seed', type=int, default=0, help='build seed of the scenes; default: %(default)s')
    parser.add_argument('--scenes', type=int, default=4, help='number of scenes; default: %(default)s')
    args = parser.parse_args(argv)
    if args.scenes < 1:
        parser.error('--scenes must be at least 1')
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.output), render_samples(args.seed, args.scenes)):
        raise SystemExit(f'could not write {args.output}')
    print(args.output)


if __name__ == '__main__':
    main()

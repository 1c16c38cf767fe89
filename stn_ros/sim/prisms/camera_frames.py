"""Camera frames of synthetic scenes: depth (metres or millimetres), a colour rendering, intrinsics.

What the ``synthetic_camera`` node publishes, without rclpy. Scene ``i`` of a run seeded ``seed`` is, by
source: ``prisms``, ``generate_scene(SceneConfig(), scene_seed(seed, i))``, the same scenes the analytic
grasp data is built from; ``physics``, ``generate_physics_scene(PhysicsSceneConfig(meshes='validation'),
scene_seed(seed, i))``, pybullet mesh scenes of our validation meshes (needs pybullet). ``tilt_deg`` above 0 sees
every scene from a camera tilted that far from vertical, at a random azimuth and roll (prisms: ``view_tilt_deg``,
``camera_height`` along the optical axis; physics: ``tilt_range_deg = (tilt_deg, tilt_deg)``, 0.6-0.8 m along it);
0 keeps each source's own camera (prisms straight down, physics up to 10 deg from vertical).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from stn_ros.bridge.image_codec import DEPTH_ENCODINGS, depth_pixels
from stn_ros.sim.physics.scenes import PhysicsScene, PhysicsSceneConfig, generate_physics_scene
from stn_ros.sim.prisms.scenes import Scene, SceneConfig, generate_scene, scene_seed

SOURCES = ('prisms', 'physics')
"""Scene sources of :func:`synthetic_frame` (see the module docstring)."""

_TABLE_BGR = np.array([150, 160, 170], np.float32)


@dataclass
class SyntheticFrame:
    depth: np.ndarray  # (H, W) float32 metres (NaN = no reading) or uint16 millimetres (0 = no reading)
    bgr: np.ndarray  # (H, W, 3) uint8
    scene: Scene | PhysicsScene


def colour_rendering(scene: Scene | PhysicsScene) -> np.ndarray:
    """A bgr8 picture of the scene: a grey table, each object in its own colour, shaded by depth."""
    palette = cv2.applyColorMap(np.arange(0, 256, 37, dtype=np.uint8)[:, None], cv2.COLORMAP_TURBO)[:, 0]
    colours = np.vstack([_TABLE_BGR, palette.astype(np.float32)])
    labels = np.clip(scene.labels, 0, None)
    base = colours[np.where(labels > 0, 1 + (labels - 1) % len(palette), 0)]
    depth = np.nan_to_num(scene.clean_depth, nan=float(np.nanmax(scene.clean_depth)))
    shade = 1.0 - 2.0 * (depth - depth.min()) / max(float(np.ptp(depth)), 1e-6) * 0.25  # nearer = brighter
    return np.clip(base * shade[..., None], 0, 255).astype(np.uint8)


def synthetic_frame(
    seed: int,
    index: int,
    depth_encoding: str = '32FC1',
    config: SceneConfig | None = None,
    source: str = 'prisms',
    tilt_deg: float = 0.0,
) -> SyntheticFrame:
    """Frame of scene ``index`` of the run seeded ``seed`` from ``source`` (``config``: prisms only), seen from
    ``tilt_deg`` degrees from vertical (the module docstring; 0: the source's own camera)."""
    if depth_encoding not in DEPTH_ENCODINGS:
        raise ValueError(f'depth_encoding must be one of {", ".join(sorted(DEPTH_ENCODINGS))}; got {depth_encoding!r}')
    if source not in SOURCES:
        raise ValueError(f'source must be one of {", ".join(SOURCES)}; got {source!r}')
    if source == 'physics':
        tilt = None if tilt_deg <= 0 else (float(tilt_deg), float(tilt_deg))
        scene = generate_physics_scene(
            PhysicsSceneConfig(meshes='validation', tilt_range_deg=tilt), scene_seed(seed, index)
        )
    else:
        config = config or SceneConfig()
        if tilt_deg > 0:
            config = replace(config, view_tilt_deg=float(tilt_deg))
        scene = generate_scene(config, scene_seed(seed, index))
    return SyntheticFrame(depth_pixels(scene.depth, depth_encoding), colour_rendering(scene), scene)

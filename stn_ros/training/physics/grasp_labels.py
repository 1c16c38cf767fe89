"""The physics-labelled grasp dataset (Dex-Net style): candidates sampled on depth images of physics scenes,
each labelled by a few perturbed pybullet trials.

Scenes: :class:`~stn_ros.sim.physics.scenes.PhysicsSceneConfig` with the *training* meshes
(``random_urdfs`` 000-399) and our procedural shapes; scene ``i`` of a build seeded ``data_seed`` is
``scene_seed(data_seed, i)``. The validation meshes (400-499) never enter this dataset: the physics
evaluation uses them.

Per object, ``candidates`` grasps (:func:`~stn_ros.sim.physics.grasps.sample_candidates`: antipodal pairs on
the noisy depth image, as Dex-Net samples them, plus random ones), each tried ``trials`` times with its pose
perturbed (a few mm and degrees) and the friction drawn in ``friction_range``
(:func:`~stn_ros.sim.physics.grasps.label_grasps`). A grasp's ``quality`` is the share of trials that lifted
its object; it is *robust* when that share is above one half.

Each scene is built in a worker process and cached as ``<cache>/scenes/<seed>.npz`` (the depth frame, the
camera, the candidates, their labels and their canonical grasp images), so an interrupted build resumes
and a larger one reuses the smaller one's scenes. ``manifest.json`` holds the options; a cache built with
other options is refused rather than mixed.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from stn_ros.perception.grasps.grasp_image import canonical_homographies, grasp_image
from stn_ros.perception.grasps.gripper import GripperConfig
from stn_ros.sim.physics.scenes import PhysicsSceneConfig, generate_physics_scene
from stn_ros.sim.prisms.scenes import scene_seed

DATASET_VERSION = 3
"""Bumped when what a cached scene holds changes (2: candidates at the node's gripper depth rule; 3: broken
meshes left out of the draw)."""
ROBUST_SHARE = 0.5
"""A grasp is robust when more than this share of its perturbed trials hold."""


@dataclass(frozen=True)
class PhysicsDataConfig:
    """Options of a physics-labelled dataset build (what the cache manifest records).

    Attributes:
        num_scenes: scenes to build.
        data_seed: seed of the scene sequence (each scene's candidates and trials draw from its own seed).
        candidates: candidate grasps per object.
        trials: perturbed trials per candidate.
        friction_range: friction coefficients drawn per trial.
        antipodal_fraction: share of antipodal candidates (the rest random).
    """

    num_scenes: int = 600
    data_seed: int = 0
    candidates: int = 10
    trials: int = 5
    friction_range: tuple[float, float] = (0.4, 0.8)
    antipodal_fraction: float = 0.7

    def manifest(self) -> dict:
        """The options that decide a scene's content (``num_scenes`` only decides how many)."""
        options = dataclasses.asdict(self)
        options.pop('num_scenes')
        options['friction_range'] = list(self.friction_range)
        options['scenes'] = dataclasses.asdict(PhysicsSceneConfig())
        options['version'] = DATASET_VERSION
        return json.loads(json.dumps(options))


def label_scene(seed: int, config: PhysicsDataConfig) -> dict[str, np.ndarray]:
    """Build, sample and label one scene (see the module docstring): the arrays of its cache file."""
    from stn_ros.sim.physics.grasps import ImageGrasps, label_grasps, sample_candidates
    from stn_ros.sim.physics.world import connect

    gripper = GripperConfig()
    rng = np.random.default_rng(seed)
    world = connect()
    try:
        scene = generate_physics_scene(PhysicsSceneConfig(meshes='train'), seed, world_handle=world)
        parts, bodies, quality = [], [], []
        for body in range(len(scene.snapshot.bodies)):
            if not (scene.labels == body + 1).any():
                continue
            grasps = sample_candidates(scene, body, gripper, rng, config.candidates, config.antipodal_fraction)
            parts.append(grasps)
            bodies.append(np.full(len(grasps), body, np.int16))
            quality.append(
                label_grasps(scene, grasps, body, rng, config.trials, config.friction_range, world_handle=world)
            )
    finally:
        world[0].disconnect(world[1])
    grasps = ImageGrasps.concatenate(parts)
    camera = scene.camera
    homographies = canonical_homographies(grasps.centres, grasps.angles, grasps.z, camera, gripper)
    images = grasp_image(scene.depth, homographies, grasps.z) if len(grasps) else np.zeros((0, 32, 32), np.float32)
    depth_mm = np.where(np.isfinite(scene.depth), np.round(scene.depth * 1000.0), 0).astype(np.uint16)
    return {
        'depth_mm': depth_mm,
        'labels': scene.labels.astype(np.uint8),
        'camera': np.array([camera.fx, camera.fy, camera.cx, camera.cy, camera.width, camera.height]),
        'table_from_camera': scene.table_from_camera,
        'kinds': np.array(scene.kinds),
        'layout': np.array(scene.layout),
        'body': np.concatenate(bodies) if bodies else np.zeros(0, np.int16),
        'centres': grasps.centres.astype(np.float32),
        'angles': grasps.angles.astype(np.float32),
        'z': grasps.z.astype(np.float32),
        'antipodal': grasps.antipodal,
        'quality': np.concatenate(quality).astype(np.float32) if quality else np.zeros(0, np.float32),
        'images': images.astype(np.float16),
    }


def _build_one(job: tuple[int, PhysicsDataConfig, str]) -> int:
    seed, config, path = job
    arrays = label_scene(seed, config)
    temporary = Path(path).with_suffix('.tmp.npz')
    np.savez_compressed(temporary, **arrays)
    temporary.replace(path)  # a killed build leaves no half-written scene behind
    return len(arrays['quality'])


def build_physics_dataset(
    config: PhysicsDataConfig, cache: Path, workers: int = 2, progress: bool = True
) -> dict[str, float]:
    """Build (or finish) the dataset in ``cache``; returns counts and the labelling rate."""
    cache = Path(cache)
    scenes_dir = cache / 'scenes'
    scenes_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = cache / 'manifest.json'
    manifest = config.manifest()
    if manifest_path.is_file() and json.loads(manifest_path.read_text()) != manifest:
        raise ValueError(f'{cache} holds a dataset built with other options ({manifest_path}); use another folder')
    manifest_path.write_text(json.dumps(manifest, indent=2) + '\n')
    seeds = [scene_seed(config.data_seed, i) for i in range(config.num_scenes)]
    todo = [(s, config, str(scenes_dir / f'{s}.npz')) for s in seeds if not (scenes_dir / f'{s}.npz').is_file()]
    started, labelled = time.monotonic(), 0
    bar = tqdm(
        total=len(seeds), initial=len(seeds) - len(todo), desc='physics labels', unit='scene', disable=not progress
    )
    if workers > 1 and todo:
        with multiprocessing.get_context('spawn').Pool(workers) as pool:
            for count in pool.imap_unordered(_build_one, todo):
                labelled += count
                bar.update()
                bar.set_postfix(grasps_per_min=f'{60 * labelled / (time.monotonic() - started):.0f}')
    else:
        for job in todo:
            labelled += _build_one(job)
            bar.update()
    bar.close()
    seconds = time.monotonic() - started
    return {
        'scenes': len(seeds),
        'scenes_built_now': len(todo),
        'grasps_labelled_now': labelled,
        'seconds': round(seconds, 1),
        'grasps_per_minute': round(60 * labelled / seconds, 1) if labelled else float('nan'),
    }


def load_physics_dataset(cache: Path, num_scenes: int | None = None, data_seed: int | None = None) -> dict:
    """The cached scenes' candidates as flat arrays (``scene`` indexes the scene order), plus per-scene depth
    frames and cameras in lists. Reads the manifest's seed when ``data_seed`` is None."""
    cache = Path(cache)
    manifest = json.loads((cache / 'manifest.json').read_text())
    seed = manifest['data_seed'] if data_seed is None else data_seed
    files = []
    index = 0
    while num_scenes is None or index < num_scenes:
        path = cache / 'scenes' / f'{scene_seed(seed, index)}.npz'
        if not path.is_file():
            if num_scenes is not None:
                raise FileNotFoundError(f'{path}: scene {index} of the dataset is not built')
            break
        files.append(path)
        index += 1
    columns = ('body', 'centres', 'angles', 'z', 'antipodal', 'quality', 'images')
    out: dict = {name: [] for name in columns}
    out.update(scene=[], depth_mm=[], labels=[], camera=[], table_from_camera=[], kinds=[], layout=[])
    for number, path in enumerate(files):
        with np.load(path) as data:
            for name in columns:
                out[name].append(data[name])
            out['scene'].append(np.full(len(data['quality']), number, np.int32))
            for name in ('depth_mm', 'labels', 'camera', 'table_from_camera'):
                out[name].append(data[name])
            out['kinds'].append([str(k) for k in data['kinds']])
            out['layout'].append(str(data['layout']))
    for name in (*columns, 'scene'):
        out[name] = np.concatenate(out[name]) if out[name] else np.zeros(0)
    return out


def load_for_training(cache: Path, num_scenes: int | None = None) -> dict:
    """:func:`load_physics_dataset` for a training task: ValueError saying what to do with fewer than 2 scenes."""
    data = load_physics_dataset(Path(cache), num_scenes)
    if len(data['depth_mm']) < 2:
        raise ValueError(f'{cache}: {len(data["depth_mm"])} scene(s) built; build more with stn_train physics-data')
    return data


def validation_scenes(scenes: int, fraction: float, seed: int) -> np.ndarray:
    """The scene indices held out for validation: a seeded ``fraction`` (at least one) of ``scenes``. Every
    physics task uses it, so none trains on another's validation scenes."""
    return np.random.default_rng(seed).permutation(scenes)[: max(1, int(round(fraction * scenes)))]

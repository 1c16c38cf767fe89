"""The analytic grasp dataset: labelled canonical grasp images of synthetic scenes, split by scene.

The canonical image and its conventions are defined in :mod:`stn_ros.perception.grasps.grasp_image`; the
labels are the analytic rules of :mod:`stn_ros.sim.prisms.grasps`.

Dataset split: by *scene* (every object is unique to its scene, so this also splits by object, and
no neighbour of a held-out object is seen in training): a seeded ``held_out_fraction`` of the scenes.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from tqdm import tqdm

from stn_ros.bridge.camera_info import PinholeCamera
from stn_ros.perception.grasps.grasp_image import CANONICAL_SIZE, canonical_homographies, grasp_image
from stn_ros.perception.grasps.gripper import GripperConfig
from stn_ros.perception.stn.proposals import ProposalConfig, Proposals, depth_proposals
from stn_ros.sim.prisms.grasps import FAILURES, Grasp, grasp_robustness, sample_grasps
from stn_ros.sim.prisms.scenes import KINDS, Scene, SceneConfig, generate_scene, scene_seed

FAILURE_NAMES = ('good',) + FAILURES
"""Names of ``GraspDataset.failure`` codes."""


def canonical_homography(grasp: Grasp, camera: PinholeCamera, gripper: GripperConfig) -> np.ndarray:
    """``(3, 3)`` float64 crop pixel ``(col, row, 1)`` -> source pixel of ``grasp``'s canonical image."""
    return canonical_homographies(grasp.centre, grasp.angle, grasp.z, camera, gripper)[0]


@dataclass
class GraspDataset:
    """Labelled canonical grasp images, one row per grasp (``N`` rows).

    Attributes:
        images: ``(N, 32, 32)`` float32 depth relative to the gripper (see the module docstring).
        z: ``(N,)`` float32 gripper depth, metres from the camera.
        labels: ``(N,)`` int64, 1 = good grasp, 0 = bad.
        failure: ``(N,)`` int64 index into :data:`FAILURE_NAMES` (0 = good, else the first rule that
            failed).
        scene_id: ``(N,)`` int64 scene index in the build.
        scene_seed: ``(N,)`` int64; ``generate_scene(scene_config, scene_seed)`` rebuilds the scene.
        object_index: ``(N,)`` int64 index into that scene's objects.
        object_id: ``(N,)`` int64 object number unique over the whole build.
        kind: ``(N,)`` int64 index into :data:`~stn_ros.sim.prisms.scenes.KINDS`.
        H: ``(N, 3, 3)`` float64 crop pixel -> source pixel of the canonical image.
        roi: ``(N, 4)`` float32 ``(x, y, w, h)`` the object's proposal ROI, source pixels.
        roi_from_proposal: ``(N,)`` bool; False when no proposal overlapped the object and the ROI
            was built from the object's own mask with the proposals' square rule.
        centre: ``(N, 2)`` float32 grasp centre ``(u, v)``, source pixels.
        angle: ``(N,)`` float32 grasp axis angle in the image, radians in ``[-pi/2, pi/2)``.
        width_m: ``(N,)`` float32 metres between the contacts (0 without contact).
        width_px: ``(N,)`` float32 pixels between the projected contacts.
        held_out: ``(N,)`` bool, the held-out split (by scene).
    """

    images: np.ndarray
    z: np.ndarray
    labels: np.ndarray
    failure: np.ndarray
    scene_id: np.ndarray
    scene_seed: np.ndarray
    object_index: np.ndarray
    object_id: np.ndarray
    kind: np.ndarray
    H: np.ndarray
    roi: np.ndarray
    roi_from_proposal: np.ndarray
    centre: np.ndarray
    angle: np.ndarray
    width_m: np.ndarray
    width_px: np.ndarray
    held_out: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def as_arrays(self) -> dict[str, np.ndarray]:
        """The fields as a dict of arrays (e.g. for ``np.savez``)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> GraspDataset:
        """From :meth:`as_arrays`' dict (or an ``np.load`` of it); extra keys are ignored."""
        return cls(**{f.name: np.asarray(arrays[f.name]) for f in fields(cls)})

    def select(self, rows: np.ndarray) -> GraspDataset:
        """The rows ``rows`` (bool mask or indices)."""
        return GraspDataset(**{name: value[rows] for name, value in self.as_arrays().items()})


def objects_by_scene(arrays: dict[str, np.ndarray], objects) -> dict[int, list[int]]:
    """``{scene_seed: [object_id, ...]}`` of dataset ``objects``, in their order: each scene is rebuilt once."""
    by_scene: dict[int, list[int]] = {}
    for o in objects:
        first = int(np.flatnonzero(arrays['object_id'] == o)[0])
        by_scene.setdefault(int(arrays['scene_seed'][first]), []).append(int(o))
    return by_scene


def held_out_scenes(num_scenes: int, seed: int = 0, fraction: float = 0.2) -> np.ndarray:
    """``(num_scenes,)`` bool: the seeded held-out share of a build's scenes (the split of every grasp model)."""
    held = np.zeros(num_scenes, bool)
    held[np.random.default_rng(seed).permutation(num_scenes)[: int(round(fraction * num_scenes))]] = True
    return held


def good_grasp_homographies(
    scene: Scene, gripper: GripperConfig, seed: int, candidates: int = 64, min_robustness: float = 0.0
) -> list[np.ndarray]:
    """Per object of ``scene``, the canonical ``H`` ``(K, 3, 3)`` of its good grasps among ``candidates``
    sampled ones (``sample_grasps`` with ``np.random.default_rng([seed, 2])``; ``K`` may be 0).

    With ``min_robustness``, only grasps at least that robust (:func:`~stn_ros.sim.prisms.grasps.grasp_robustness`)
    are kept, or, where an object has none, its most robust good grasps. Denser than the dataset's
    ``per_object`` candidates: the grasp STN's targets (robust) and its error measure (all good).
    """
    grasps = [g for g in sample_grasps(scene, gripper, np.random.default_rng([seed, 2]), candidates) if g.good]
    robustness = grasp_robustness(scene, grasps, gripper) if min_robustness > 0 else np.ones(len(grasps))
    out = []
    for index in range(len(scene.objects)):
        own = [i for i, g in enumerate(grasps) if g.object_index == index]
        if own:
            best = robustness[own].max()
            own = [i for i in own if robustness[i] >= min(min_robustness, best)]
        out.append(
            canonical_homographies(
                np.array([grasps[i].centre for i in own]).reshape(-1, 2),
                np.array([grasps[i].angle for i in own]),
                np.array([grasps[i].z for i in own]),
                scene.camera,
                gripper,
            )
        )
    return out


def mask_rois(proposals: Proposals, masks: list[np.ndarray], margin: float) -> tuple[np.ndarray, np.ndarray]:
    """Each object mask's proposal ROI ``(K, 4)`` float32 and whether it came from a proposal ``(K,)`` bool.

    An object gets the ROI of the proposal its visible mask overlaps most (two touching objects can share
    one); without any overlap, the proposals' square rule (``margin``) on the mask's own bounding box. An
    empty mask gets a zero ROI (``found`` False): the caller decides what stands for it.
    """
    rois = np.zeros((len(masks), 4), np.float32)
    found = np.zeros(len(masks), bool)
    for index, mask in enumerate(masks):
        overlap = np.bincount(proposals.labels[mask], minlength=len(proposals.rois) + 1)[1:]
        if overlap.size and overlap.max() > 0:
            rois[index], found[index] = proposals.rois[int(np.argmax(overlap))], True
        elif mask.any():
            rows, cols = np.nonzero(mask)
            rois[index] = square_roi(cols.min(), rows.min(), cols.max(), rows.max(), margin)
    return rois, found


def square_roi(left: float, top: float, right: float, bottom: float, margin: float) -> np.ndarray:
    """The proposals' square ROI ``(x, y, w, h)`` around an inclusive pixel box, ``margin`` added on each side."""
    side = max(right - left + 1, bottom - top + 1) * (1.0 + 2.0 * margin)
    return np.array(((left + right - side + 1) / 2.0, (top + bottom - side + 1) / 2.0, side, side), np.float32)


def object_rois(scene: Scene, config: ProposalConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each object's proposal ROI ``(K, 4)`` float32 and whether it came from a proposal ``(K,)`` bool
    (:func:`mask_rois` on the :func:`~stn_ros.perception.stn.proposals.depth_proposals` of the noisy depth).

    A fully hidden object gets the square around its projected top face.
    """
    config = ProposalConfig() if config is None else config
    masks = [obj.mask for obj in scene.objects]
    rois, found = mask_rois(depth_proposals(scene.depth, config), masks, config.margin)
    for index in np.flatnonzero([not mask.any() for mask in masks]):
        obj = scene.objects[index]
        uv, _ = scene.project(np.concatenate((obj.footprint, np.full((len(obj.footprint), 1), obj.height)), axis=1))
        rois[index] = square_roi(uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max(), config.margin)
    return rois, found


def build_grasp_dataset(
    num_scenes: int,
    seed: int = 0,
    scene_config: SceneConfig | None = None,
    gripper: GripperConfig | None = None,
    per_object: int = 8,
    held_out_fraction: float = 0.2,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Canonical grasp images of ``num_scenes`` random scenes, ``per_object`` candidates per object.

    Returns :meth:`GraspDataset.as_arrays` (see :class:`GraspDataset` for the arrays). Reproducible
    from ``seed``; scene ``i`` is ``generate_scene(scene_config, scene_seed(seed, i))`` and its grasps
    are ``sample_grasps(scene, gripper, np.random.default_rng([scene_seed, 1]), per_object)``.
    """
    scene_config = SceneConfig() if scene_config is None else scene_config
    gripper = GripperConfig() if gripper is None else gripper
    held = held_out_scenes(num_scenes, seed, held_out_fraction)
    parts: list[dict[str, np.ndarray]] = []
    objects_so_far = 0
    for index in tqdm(range(num_scenes), desc='grasp scenes', disable=not progress, leave=False):
        seed_i = scene_seed(seed, index)
        scene = generate_scene(scene_config, seed_i)
        grasps = sample_grasps(scene, gripper, np.random.default_rng([seed_i, 1]), per_object)
        if grasps:
            parts.append(_scene_rows(scene, grasps, gripper, index, seed_i, objects_so_far, held[index]))
        objects_so_far += len(scene.objects)
    if not parts:
        return _empty_dataset()
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def _scene_rows(
    scene: Scene,
    grasps: list[Grasp],
    gripper: GripperConfig,
    scene_id: int,
    seed: int,
    first_object: int,
    held_out: bool,
) -> dict[str, np.ndarray]:
    count = len(grasps)
    centres = np.array([g.centre for g in grasps])
    angles = np.array([g.angle for g in grasps])
    z = np.array([g.z for g in grasps])
    homographies = canonical_homographies(centres, angles, z, scene.camera, gripper)
    objects = np.array([g.object_index for g in grasps], np.int64)
    rois, found = object_rois(scene)
    failure = np.array([0 if g.good else FAILURES.index(g.failure) + 1 for g in grasps], np.int64)
    kinds = np.array([KINDS.index(obj.kind) for obj in scene.objects], np.int64)
    return GraspDataset(
        images=grasp_image(scene.depth, homographies, z),
        z=z.astype(np.float32),
        labels=(failure == 0).astype(np.int64),
        failure=failure,
        scene_id=np.full(count, scene_id, np.int64),
        scene_seed=np.full(count, seed, np.int64),
        object_index=objects,
        object_id=first_object + objects,
        kind=kinds[objects],
        H=homographies,
        roi=rois[objects],
        roi_from_proposal=found[objects],
        centre=centres.astype(np.float32),
        angle=angles.astype(np.float32),
        width_m=np.array([g.width_m for g in grasps], np.float32),
        width_px=np.array([g.width_px for g in grasps], np.float32),
        held_out=np.full(count, held_out),
    ).as_arrays()


def _empty_dataset() -> dict[str, np.ndarray]:
    size = CANONICAL_SIZE
    shapes = {
        'images': ((0, size, size), np.float32),
        'H': ((0, 3, 3), np.float64),
        'roi': ((0, 4), np.float32),
        'centre': ((0, 2), np.float32),
    }
    types = {
        'z': np.float32,
        'angle': np.float32,
        'width_m': np.float32,
        'width_px': np.float32,
        'roi_from_proposal': bool,
        'held_out': bool,
    }
    return {f.name: np.zeros(*shapes.get(f.name, ((0,), types.get(f.name, np.int64)))) for f in fields(GraspDataset)}

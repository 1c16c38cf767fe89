"""Training task: the grasp canonicalizer, a similarity STN from an object crop to a good grasp's image.

What it learns. The node cuts a square crop of ``ROI_SIDE_M`` metres
(:func:`stn_ros.perception.geometry.camera.metric_rois`)
around each object; the STN must output the similarity (rotation, scale, translation, in the ROI's
normalized frame) whose crop is the Dex-Net 2.0 canonical image of a *good* analytic grasp on that
object (:mod:`stn_ros.training.prisms.grasp_images`). A fixed metric crop makes the scale learnable: the net sees
every object at one scale, as Dex-Net's images are.

Why this loss. Supervised on the analytic canonical transforms, with two ambiguities handled: a grasp
axis is defined modulo 180 degrees (the similarity ``(a, b)`` and ``(-a, -b)`` are the same grasp), and
an object has several good grasps. The loss is winner-takes-all over all good grasps of the object and
both axis directions, so the net commits to one good grasp instead of regressing to their average
(which, on a box, is often its centre at a diagonal: a bad grasp). The targets are dense (the good
grasps among many analytic candidates) and *robust*: only grasps that stay good when turned by up to
10 degrees or shifted by up to 4 mm, so the nearest target is in the middle of a good region and the
net's residual error still lands on a good grasp (on a many-sided polygon, good regions are narrow).
End-to-end training through the GQ-CNN is left out: the analytic labels are exact here, and the
GQ-CNN is itself learned from them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm import tqdm

from stn_ros.core import SpatialTransformer, localization_crops, roi_matrix, save_spatial_transformer
from stn_ros.core.coords import normalized_to_pixel, pixel_to_normalized
from stn_ros.perception.geometry.camera import metric_rois
from stn_ros.perception.grasps.grasp_image import CANONICAL_SIZE, canonical_scale
from stn_ros.perception.grasps.gripper import GripperConfig
from stn_ros.sim.prisms.scenes import SceneConfig, generate_scene, scene_seed
from stn_ros.training.loop import Task
from stn_ros.training.prisms.grasp_images import good_grasp_homographies, held_out_scenes, object_rois

ROI_SIDE_M = 0.24
LOCALIZATION_SIZE = (32, 32)
GRASP_CANDIDATES = 64
"""Candidates sampled per object for its good-grasp targets."""
MAX_TARGETS = 32
MIN_ROBUSTNESS = 1.0
"""Targets are the good grasps that stay good under every small perturbation (or an object's most robust)."""
HYPOTHESES = 4
SPREAD_WEIGHT = 0.05
"""Relaxed winner-takes-all: the losing hypotheses get this share of the loss, so none is left unused."""
SCORE_WEIGHT = 0.05
GOOD_WITHIN = (10.0, 1.5)
"""A hypothesis counts as good (its score's target) within this many degrees and canonical pixels of a target."""


def grasp_stn() -> SpatialTransformer:
    """The grasp canonicalizer's architecture (depth heights in cm-ish units after median centring)."""
    return SpatialTransformer(
        'similarity',
        in_channels=1,
        localization_size=LOCALIZATION_SIZE,
        output_size=(CANONICAL_SIZE, CANONICAL_SIZE),
        channels=(16, 32),
        hidden=64,
        input_mean=0.0,
        input_std=0.02,
        input_center='median',
        hypotheses=HYPOTHESES,
    )


def similarity_targets(homographies: np.ndarray, roi: np.ndarray, source_size: tuple[int, int]) -> np.ndarray:
    """``(K, 4)`` similarity parameters ``(a, b, tx, ty)`` in ``roi``'s normalized frame of canonical crops
    ``H`` ``(K, 3, 3)`` (crop pixel -> source pixel)."""
    to_roi = torch.linalg.inv(roi_matrix(torch.as_tensor(roi, dtype=torch.float64)[None], source_size))[0]
    matrices = (
        to_roi
        @ pixel_to_normalized(*source_size, dtype=torch.float64)
        @ torch.as_tensor(homographies)
        @ normalized_to_pixel(CANONICAL_SIZE, CANONICAL_SIZE, dtype=torch.float64)
    ).numpy()
    return np.stack((matrices[:, 0, 0], matrices[:, 1, 0], matrices[:, 0, 2], matrices[:, 1, 2]), axis=1)


def build_objects(
    scene_seeds: list[int],
    config: SceneConfig | None = None,
    gripper: GripperConfig | None = None,
    candidates: int = GRASP_CANDIDATES,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Per object of the scenes ``scene_seeds``: what the localization net sees, its metric ROI, its good
    grasps' targets (:func:`~stn_ros.training.prisms.grasp_images.good_grasp_homographies`, at most ``MAX_TARGETS``).

    Objects without a good grasp are kept (``mask`` all False) for evaluation; training skips them.
    """
    config, gripper = config or SceneConfig(), gripper or GripperConfig()
    crops, rois, targets, masks, seeds, indices = [], [], [], [], [], []
    for seed in tqdm(scene_seeds, desc='grasp STN crops', disable=not progress, leave=False):
        scene = generate_scene(config, seed)
        grey = torch.from_numpy(np.fmax(scene.depth, np.float32(0)))[None]
        roi = metric_rois(object_rois(scene)[0], scene.depth, config.fx, config.fy, ROI_SIDE_M)
        crops.extend(localization_crops(grey, torch.from_numpy(roi), LOCALIZATION_SIZE).numpy())
        for index, good in enumerate(good_grasp_homographies(scene, gripper, seed, candidates, MIN_ROBUSTNESS)):
            good = good[:MAX_TARGETS]
            target = np.zeros((MAX_TARGETS, 4), np.float32)
            mask = np.zeros(MAX_TARGETS, bool)
            if len(good):
                target[: len(good)] = similarity_targets(good, roi[index], scene.depth.shape)
                mask[: len(good)] = True
            targets.append(target)
            masks.append(mask)
            seeds.append(seed)
            indices.append(index)
        rois.extend(roi)
    return {
        'crops': np.asarray(crops, np.float32).reshape(-1, 1, *LOCALIZATION_SIZE),
        'rois': np.asarray(rois, np.float32),
        'targets': np.asarray(targets).reshape(-1, MAX_TARGETS, 4),
        'mask': np.asarray(masks).reshape(-1, MAX_TARGETS),
        'scene_seed': np.asarray(seeds, np.int64),
        'object_index': np.asarray(indices, np.int64),
    }


def split_scene_seeds(num_scenes: int, extra_scenes: int, data_seed: int) -> tuple[list[int], list[int]]:
    """Training and held-out scene seeds: the grasp dataset's split (so the GQ-CNN's held-out scenes stay
    unseen), plus ``extra_scenes`` further scenes for training only."""
    held = held_out_scenes(num_scenes, data_seed)
    train = [scene_seed(data_seed, i) for i in range(num_scenes + extra_scenes) if i >= num_scenes or not held[i]]
    return train, [scene_seed(data_seed, i) for i in np.flatnonzero(held)]


def params_to_matrix(params: torch.Tensor) -> torch.Tensor:
    """``(..., 4)`` similarity ``(a, b, tx, ty)`` -> ``(..., 3, 3)``."""
    a, b, tx, ty = params.unbind(-1)
    zero, one = torch.zeros_like(a), torch.ones_like(a)
    return torch.stack((a, -b, tx, b, a, ty, zero, zero, one), dim=-1).reshape(*params.shape[:-1], 3, 3)


def matrix_to_params(matrix: torch.Tensor) -> torch.Tensor:
    return torch.stack((matrix[..., 0, 0], matrix[..., 1, 0], matrix[..., 0, 2], matrix[..., 1, 2]), dim=-1)


def dihedral_augment(crops: torch.Tensor, targets: torch.Tensor, generator: torch.Generator | None = None):
    """Each crop turned by a random multiple of 90 degrees and maybe mirrored, its targets with it.

    Exact (no resampling): a turned or mirrored object is another object, whose good grasps are the
    turned or mirrored ones (:func:`dihedral_images`, :func:`dihedral_targets`).
    """
    turns, flips = dihedral_draws(len(crops), generator)
    return dihedral_images(crops, turns, flips), dihedral_targets(targets, turns, flips)


def dihedral_draws(count: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Random quarter turns ``(count,)`` in 0-3 and mirror flags ``(count,)`` of :func:`dihedral_augment`."""
    turns = torch.randint(0, 4, (count,), generator=generator)
    return turns, torch.randint(0, 2, (count,), generator=generator).bool()


def dihedral_images(images: torch.Tensor, turns: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Images ``(B, C, h, w)`` of square ROIs, each turned ``turns`` quarters (``torch.rot90``) then mirrored
    left-right where ``flips``: any size, as they are all the same ROI's frame."""
    out = images.clone()
    for index in range(len(images)):
        image = torch.rot90(images[index], int(turns[index]), dims=(-2, -1))
        out[index] = torch.flip(image, dims=(-1,)) if flips[index] else image
    return out


def dihedral_targets(targets: torch.Tensor, turns: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Similarity targets ``(B, T, 4)`` (canonical -> ROI) of the images :func:`dihedral_images` turned.

    ``torch.rot90`` reads ``I'(q) = I(R q)`` with ``R = [[0, -1], [1, 0]]`` in the ROI's normalized ``(x, y)``,
    so a target ``A`` becomes ``R^T A``; a mirror ``I'(x, y) = I(-x, y)`` becomes ``F A F_y`` (``F_y`` mirrors
    the canonical image's rows, so the transform stays a rotation and the grasp axis stays along the crop's x).
    """
    quarter = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=targets.dtype)
    mirror = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=targets.dtype))
    mirror_rows = torch.diag(torch.tensor([1.0, -1.0, 1.0], dtype=targets.dtype))
    out = targets.clone()
    for index in range(len(targets)):
        matrix = params_to_matrix(targets[index])
        for _ in range(int(turns[index])):
            matrix = quarter.T @ matrix
        if flips[index]:
            matrix = mirror @ matrix @ mirror_rows
        out[index] = matrix_to_params(matrix)
    return out


def matched_errors(params: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor):
    """Winner-takes-all over the good grasps and both axis directions.

    Returns the squared distance to the nearest target ``(B,)`` and, for it, the angle error in degrees
    (modulo 180) and the centre error in canonical pixels ``(B,)``; ``inf`` where an object has no target.
    """
    flipped = torch.cat((-targets[..., :2], targets[..., 2:]), dim=-1)
    candidates = torch.cat((targets, flipped), dim=1)
    valid = torch.cat((mask, mask), dim=1)
    distance = ((params[:, None, :] - candidates) ** 2).sum(-1)
    distance = torch.where(valid, distance, torch.inf)
    best = distance.argmin(dim=1)
    nearest = candidates[torch.arange(len(best)), best]
    angle = torch.atan2(params[:, 1], params[:, 0]) - torch.atan2(nearest[:, 1], nearest[:, 0])
    angle = torch.rad2deg(torch.remainder(angle + torch.pi / 2, torch.pi) - torch.pi / 2).abs()
    pixels_per_unit = ROI_SIDE_M * canonical_scale(GripperConfig()) / 2  # canonical px per normalized unit
    centre = (params[:, 2:] - nearest[:, 2:]).norm(dim=1) * pixels_per_unit
    return distance.min(dim=1).values, angle, centre


class AllHypotheses(nn.Module):
    """``forward(crops)`` is ``stn.localize_all(crops)``: what the loss trains, as a module DDP can wrap.

    It holds the STN itself (not a copy), so training it trains the STN and the STN's checkpoint is unchanged.
    """

    def __init__(self, stn: SpatialTransformer):
        super().__init__()
        self.stn = stn

    def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.stn.localize_all(crops)


class GraspStnTask(Task):
    """Options: ``num_scenes`` and ``data_seed`` of the grasp dataset (its split is kept),
    ``extra_scenes`` for training only, ``cache``."""

    name = 'grasp-stn'
    weights_stem = 'grasp_stn'

    def __init__(self, num_scenes: int = 2000, data_seed: int = 0, cache: str | None = None, extra_scenes: int = 0):
        super().__init__(num_scenes=num_scenes, data_seed=data_seed, extra_scenes=extra_scenes)
        self.cache = Path(cache) if cache else None

    def _objects(self, seeds: list[int], split: str) -> dict[str, np.ndarray]:
        name = (
            f'grasp_stn_objects_{self.args["num_scenes"]}+{self.args["extra_scenes"]}_scenes_seed'
            f'{self.args["data_seed"]}_{GRASP_CANDIDATES}_candidates_robust{MIN_ROBUSTNESS:g}_{split}.npz'
        )
        path = self.cache / name if self.cache is not None else None
        if path is not None and path.is_file():
            with np.load(path) as stored:
                return dict(stored)
        objects = build_objects(seeds, progress=self.progress)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, **objects)
        return objects

    def datasets(self):
        train_seeds, held_seeds = split_scene_seeds(
            self.args['num_scenes'], self.args['extra_scenes'], self.args['data_seed']
        )
        train, held = self._objects(train_seeds, 'train'), self._objects(held_seeds, 'held_out')
        keep = train['mask'].any(axis=1)  # nothing to learn from an object without a good grasp
        as_set = lambda d, rows: TensorDataset(*(torch.from_numpy(d[k][rows]) for k in ('crops', 'targets', 'mask')))  # noqa: E731
        return as_set(train, keep), as_set(held, held['mask'].any(axis=1))

    def build_model(self):
        return grasp_stn()

    def training_module(self, model):
        return AllHypotheses(model)

    def loss(self, model, batch, device):
        crops, targets, mask = batch
        crops, targets = dihedral_augment(crops, targets)
        crops, targets, mask = crops.to(device), targets.to(device), mask.to(device)
        params, scores = model(crops)  # model: AllHypotheses, DDP-wrapped on several processes
        return hypotheses_loss(params, scores, targets, mask)

    @torch.no_grad()
    def evaluate(self, model, loader: DataLoader, device) -> dict[str, float]:
        return target_errors(model, loader, device)

    def export(self, model, out: Path, card: dict[str, Any]) -> Path:
        return export_grasp_stn(model, out, self.weights_stem, card, model_card)


def hypotheses_loss(
    params: torch.Tensor, scores: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """The relaxed winner-takes-all loss of hypotheses ``(B, K, 4)`` and their scores ``(B, K)`` against each
    object's targets ``(B, T, 4)`` (``mask`` ``(B, T)``): the best hypothesis' squared distance to its nearest
    target, ``SPREAD_WEIGHT`` of every hypothesis', and each score trained to say whether its hypothesis lies
    within ``GOOD_WITHIN`` of a target."""
    distances, good = [], []
    for k in range(params.shape[1]):
        distance, angle, centre = matched_errors(params[:, k], targets, mask)
        distances.append(distance)
        good.append(((angle < GOOD_WITHIN[0]) & (centre < GOOD_WITHIN[1])).float())
    distances = torch.stack(distances, dim=1)
    loss = distances.min(dim=1).values.mean()
    if params.shape[1] > 1:
        loss = (
            loss
            + SPREAD_WEIGHT * distances.mean()
            + SCORE_WEIGHT * F.binary_cross_entropy_with_logits(scores, torch.stack(good, dim=1).detach())
        )
    return loss


@torch.no_grad()
def target_errors(model: nn.Module, loader: DataLoader, device: torch.device) -> dict[str, float]:
    """How far the best-scored hypothesis lands from the nearest target, over ``loader``'s
    ``(crops, targets, mask, ...)`` batches."""
    model.eval()
    angles, centres = [], []
    for crops, targets, mask, *_ in loader:
        _, angle, centre = matched_errors(model.localize(crops.to(device)), targets.to(device), mask.to(device))
        angles.append(angle.cpu())
        centres.append(centre.cpu())
    angle, centre = torch.cat(angles).numpy(), torch.cat(centres).numpy()
    return {
        'median_angle_error_deg': float(np.median(angle)),
        'median_centre_error_px': float(np.median(centre)),
        'within_10deg_1.5px': float(np.mean((angle < 10) & (centre < 1.5))),
        'held_out_objects': float(len(angle)),
    }


def export_grasp_stn(model: SpatialTransformer, out: Path, stem: str, card: dict[str, Any], write_card) -> Path:
    """Write ``<stem>.pt`` (with the metadata ``stn_node`` reads: depth modality, metric ROI side) and its
    model card ``<stem>.md`` (``write_card(card, path)``)."""
    path = out / f'{stem}.pt'
    save_spatial_transformer(
        model, path, {'modality': 'depth', 'roi_side_m': ROI_SIDE_M, 'card': json.dumps(card, default=str)}
    )
    (out / f'{stem}.md').write_text(write_card(card, path))
    return path


def model_card(card: dict[str, Any], path: Path) -> str:
    args, train, m = card['task_args'], card['train'], card['metrics']
    return f"""# Grasp canonicalizer (similarity STN)

- **Task**: from a {ROI_SIDE_M * 100:.0f} cm square depth crop around an object (centred on its depth proposal),
  output the similarity transform whose 32x32 crop is the Dex-Net 2.0 canonical image of a good grasp
  (grasp axis horizontal, 200 px/m). Winner-takes-all loss over the object's good analytic grasps and both
  axis directions (see `stn_ros/training/prisms/grasp_stn.py` for why).
- **Data**: the {args['num_scenes']} synthetic scenes of the grasp dataset (seed {args['data_seed']}; its 20 % of
  held-out scenes kept out) plus {args['extra_scenes']} further training scenes; each object's targets are its good
  grasps among {GRASP_CANDIDATES} analytic candidates that stay good under every small perturbation (robustness
  {MIN_ROBUSTNESS:g}, `stn_ros.sim.prisms.grasps.grasp_robustness`; an object without one keeps its most robust),
  at most {MAX_TARGETS}.
- **Model**: `stn_ros.training.prisms.grasp_stn.grasp_stn()`, {card['parameters']:,} parameters, localization input
  32x32 depth, median-centred; metadata `modality: depth`, `roi_side_m: {ROI_SIDE_M}` (the node then cuts
  metric crops, which needs `camera_info`).
- **Training**: {train['epochs']} epochs, batch {train['batch_size']}, Adam lr {train['lr']}, cosine decay, seed
  {train['seed']}, {card['world_size']} process(es), {card['train_seconds']} s.
- **Held-out** ({int(m.get('held_out_objects', 0))} objects with a good grasp): median axis-angle error
  {m.get('median_angle_error_deg', float('nan')):.1f} deg (mod 180), median centre error
  {m.get('median_centre_error_px', float('nan')):.2f} px at 32x32, {m.get('within_10deg_1.5px', float('nan')):.1%}
  within both 10 deg and 1.5 px of a good grasp.
- **File**: `{path.name}` ({path.stat().st_size / 1024:.0f} KiB), `stn_ros.core.load_spatial_transformer`.
- **Command**: `{card['command']}` (git {card['git_revision']}, {card['date']}).
"""

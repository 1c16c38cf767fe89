"""Device selection shared by every node, CLI and benchmark: ``auto``, ``cpu``, ``cuda``, ``cuda:N``."""

from __future__ import annotations

import re

import torch

DEVICE_CHOICES = ('auto', 'cpu', 'cuda', 'cuda:N')
_DEVICE_PATTERN = re.compile(r'^(auto|cpu|cuda(?::(\d+))?)$')


class DeviceUnavailableError(RuntimeError):
    """The requested device is well-formed but cannot be used on this machine."""


def resolve_device(spec: str = 'auto') -> torch.device:
    """The ``torch.device`` for a device string; ``auto`` is CUDA when available, else CPU.

    Raises:
        ValueError: ``spec`` is not one of ``auto``, ``cpu``, ``cuda``, ``cuda:N``.
        DeviceUnavailableError: CUDA was asked for and this torch build or machine has none.
    """
    match = _DEVICE_PATTERN.match(spec.strip().lower()) if isinstance(spec, str) else None
    if match is None:
        raise ValueError(f'device must be one of {", ".join(DEVICE_CHOICES)}; got {spec!r}')
    name = match.group(1)
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if name == 'cpu':
        return torch.device('cpu')
    if torch.version.cuda is None:
        raise DeviceUnavailableError(
            f'device {spec!r} needs CUDA, but this torch ({torch.__version__}) is a CPU-only build: '
            'install a CUDA build of torch (README, "GPU") or use device "cpu" / "auto"'
        )
    if not torch.cuda.is_available():
        raise DeviceUnavailableError(
            f'device {spec!r} needs CUDA, but no CUDA device is visible (NVIDIA driver missing, '
            'or CUDA_VISIBLE_DEVICES hides them); use device "cpu" / "auto"'
        )
    index = int(match.group(2) or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceUnavailableError(
            f'device {spec!r} asks for CUDA device {index}, but only '
            f'{count} CUDA device(s) are visible (cuda:0..cuda:{count - 1})'
        )
    return torch.device('cuda', index)


def device_memory_values(device: torch.device) -> dict[str, str]:
    """Diagnostics key/values of the memory torch holds on a CUDA ``device`` (empty on CPU)."""
    if device.type != 'cuda':
        return {}
    mib = 1024.0**2
    return {
        'gpu memory allocated (MiB)': f'{torch.cuda.memory_allocated(device) / mib:.1f}',
        'gpu memory reserved (MiB)': f'{torch.cuda.memory_reserved(device) / mib:.1f}',
    }


def inference_module(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``module`` on ``device`` in eval mode, for inference. On a CPU its conv weights are made channels-last:
    oneDNN's convolutions then run in that layout (and their outputs follow), 2.5x faster for the
    localization net at 16 crops and 1.7x for the GQ-CNN at 64 on this machine's 2 cores, with results equal
    to float rounding (1e-6)."""
    module = module.to(device).eval()
    if device.type == 'cpu':
        module = module.to(memory_format=torch.channels_last)
    return module

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

    A CUDA device comes with :func:`use_ieee_fp32` applied.
    """
    match = _DEVICE_PATTERN.match(spec.strip().lower()) if isinstance(spec, str) else None
    if match is None:
        raise ValueError(f'device must be one of {", ".join(DEVICE_CHOICES)}; got {spec!r}')
    name = match.group(1)
    if name == 'cpu' or (name == 'auto' and not torch.cuda.is_available()):
        return torch.device('cpu')
    if name == 'auto':
        use_ieee_fp32()
        return torch.device('cuda')
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
    use_ieee_fp32()
    return torch.device('cuda', index)


def use_ieee_fp32() -> None:
    """Run CUDA's float32 matmuls and cuDNN convolutions in IEEE fp32 (TensorFloat-32 off), process-wide.

    The policy of every CUDA path here, applied when a CUDA device is resolved and in :func:`inference_module`.
    Why: cuDNN runs fp32 convolutions in TF32 by default (a 10-bit mantissa, ~1e-3 relative error), which moves
    the localization net's transforms (so the published ``H`` and the crops) and the GQ-CNN's quality off the
    CPU's by more than float rounding; in IEEE fp32 the CUDA path gives the CPU's results within the
    rounding :data:`stn_ros.evaluation.device_agreement.TOLERANCES` states. The nets are small: a frame's GPU
    time is host work and kernel launches, not arithmetic, so TF32's speed buys nothing here.

    Set through the ``allow_tf32`` flags, which every torch since 1.7 has: in torch 2.13 they are not
    deprecated, and the newer per-operator ``fp32_precision`` settings, once used, make reading the flags
    (``torch.backends.cudnn.flags()`` does) an error. Harmless without CUDA (the flags are only read there).
    """
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


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
    to float rounding (1e-6). On CUDA it applies :func:`use_ieee_fp32` (TF32 off)."""
    if device.type == 'cuda':
        use_ieee_fp32()
    module = module.to(device).eval()
    if device.type == 'cpu':
        module = module.to(memory_format=torch.channels_last)
    return module

"""Self-describing Spatial Transformer checkpoints: config + ``state_dict``, loaded safely.

A checkpoint is a ``torch.save`` of ``{'format': FORMAT, 'config': SpatialTransformer.config(),
'state_dict': ..., 'metadata': {...}}`` and is read with ``torch.load(weights_only=True)``, which
refuses arbitrary pickled code.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from stn_ros.core.spatial_transformer import SpatialTransformer

FORMAT = 'stn_ros.spatial_transformer/1'


class CheckpointError(ValueError):
    """A weights file that cannot be used: missing, unreadable, of another format, or mismatched."""


def save_spatial_transformer(stn: SpatialTransformer, path: str | Path, metadata: dict | None = None) -> None:
    """Write ``stn`` (its config and weights) and free-form ``metadata`` to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in stn.state_dict().items()}
    torch.save({'format': FORMAT, 'config': stn.config(), 'state_dict': state, 'metadata': metadata or {}}, path)


def load_spatial_transformer(
    path: str | Path, map_location: torch.device | str = 'cpu'
) -> tuple[SpatialTransformer, dict]:
    """Rebuild a :class:`SpatialTransformer` from ``path``; returns ``(module, metadata)``.

    Raises:
        CheckpointError: naming the file and what is wrong with it.
    """
    return load_checkpoint(
        path, FORMAT, lambda config: SpatialTransformer(**config), 'Spatial Transformer', map_location
    )


def load_checkpoint(
    path: str | Path,
    expected_format: str,
    build: Callable[[dict], nn.Module],
    kind: str,
    map_location: torch.device | str = 'cpu',
) -> tuple[nn.Module, dict]:
    """Any self-describing stn_ros checkpoint: ``build(config)`` with the ``state_dict`` loaded, and the metadata.

    Raises:
        CheckpointError: naming the file and what is wrong with it (missing, unreadable, another
            format, weights that do not fit the config, metadata that is not a dict).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f'weights file {path} does not exist')
    try:
        blob = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt/truncated/unsafe files
        raise CheckpointError(
            f'weights file {path} is not a readable torch checkpoint ({_summary(exc, 200)})'
        ) from None
    if not isinstance(blob, dict) or blob.get('format') != expected_format:
        found = blob.get('format') if isinstance(blob, dict) else type(blob).__name__
        raise CheckpointError(
            f'weights file {path} is not an stn_ros {kind} checkpoint (format {found!r}, expected {expected_format!r})'
        )
    try:
        module = build(blob['config'])
        module.load_state_dict(blob['state_dict'])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f'weights file {path} does not match its own config: {_summary(exc, 300)}') from None
    metadata = blob.get('metadata') or {}
    if not isinstance(metadata, dict):
        raise CheckpointError(f'weights file {path} has metadata of type {type(metadata).__name__}, expected a dict')
    return module.to(map_location).eval(), dict(metadata)


def _summary(exc: Exception, limit: int) -> str:
    """``Type: message`` of an exception on one line (the message may be empty: EOFError of an empty file).

    torch's weights-only unpickler wraps the actual reason (e.g. "Trying to load unsupported GLOBAL
    posix.system") in advice to load the file unsafely and a pointer to its docs; only the reason is kept,
    and a file that names code to run when loaded is said to do so. Never suggest ``weights_only=False``.
    """
    paragraphs = [' '.join(part.split()) for part in str(exc).split('\n\n')]
    reasons = [p for p in paragraphs if p and 'weights_only' not in p and not p.startswith('Check the documentation')]
    message = ' '.join(reasons).replace('WeightsUnpickler error:', '').strip()
    if 'GLOBAL' in message:
        message = f'it names code to run when loaded, refused ({message})'
    return f'{type(exc).__name__}: {message[:limit]}' if message else type(exc).__name__

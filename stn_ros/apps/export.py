"""ONNX export CLI: ``stn_export``, also ``python -m stn_ros.apps.export``.

Writes the two nets the nodes run as ONNX models, with a dynamic batch, and checks each against torch with
onnxruntime (CPU) on random batches of 1, 16 and 64:

- ``localization.onnx``: the STN's localization net and its ranking, what ``stn_node`` publishes. Input
  ``crops`` ``(B, 1, h, w)`` float32, the localization crops as ``stn_node`` cuts them
  (:func:`stn_ros.core.localization_crops`: the grey view of each ROI resampled to the net's input size; metres
  for depth, no reading = 0). Outputs ``params`` ``(B, K, P)``: each crop's K best-scored hypotheses, best first
  (the family's normalized convention; the published ``H`` follows from them with
  :func:`stn_ros.core.crop_transforms`), and ``scores`` ``(B, K)``: each one's probability among the net's
  hypotheses (the transforms record's ``score``). K is ``--hypotheses`` (default: ``stn_node``'s
  ``hypotheses_per_object`` in ``config/stn_node.yaml``), at most the net's count, as in the node; the node's
  tile is object-major, so crop ``b``'s hypothesis ``k`` is the node's crop ``b * K + k``.
- ``gqcnn.onnx``: the GQ-CNN. Inputs ``images`` ``(B, 1, 32, 32)`` float32 (canonical crops relative to
  the gripper depth, :func:`stn_ros.perception.grasps.grasp_image.normalize_grasp_images`) and ``z`` ``(B,)``
  metres; output ``quality`` ``(B,)``, the probability that the grasp holds.

The nodes' ``inference_backend onnxruntime`` runs the same modules, exported the same way
(:mod:`stn_ros.models.backends`), from the weights it loaded. These files are the way to TensorRT
(``trtexec --onnx=localization.onnx``) and to Isaac ROS's DNN inference nodes on a Jetson; the pre- and
post-processing around them stays the package's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from stn_ros.core import SpatialTransformer
from stn_ros.core.package_files import package_file
from stn_ros.models.backends import (
    TOLERANCE,
    GraspQuality,
    Localization,
    export_onnx,
    gqcnn_probe,
    localization_probe,
)
from stn_ros.models.gqcnn import GQCNN, load_gqcnn
from stn_ros.perception.grasps.grasp_image import CANONICAL_SIZE
from stn_ros.perception.grasps.grasp_quality import DEFAULT_GQCNN_WEIGHTS
from stn_ros.perception.stn.canonicalizer import load_model
from stn_ros.ros.parameter_specs import default_values
from stn_ros.ros.stn_parameters import PARAMETERS as STN_PARAMETERS

PROG = 'stn_export'
CHECK_BATCHES = (1, 16, 64)


def node_hypotheses() -> int:
    """``stn_node``'s default ``hypotheses_per_object`` (the shipped ``config/stn_node.yaml`` sets the same)."""
    return default_values(STN_PARAMETERS)['hypotheses_per_object']


def localization_inputs(stn: SpatialTransformer, batch: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Depth-like localization crops: 0.5-0.9 m with holes (no reading = 0)."""
    return localization_probe(stn, batch, generator)


def gqcnn_inputs(batch: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Canonical grasp images (a few cm around the gripper depth) and gripper depths 0.5-0.9 m."""
    return gqcnn_probe(GQCNN(image_size=CANONICAL_SIZE), batch, generator)


def export(module: nn.Module, inputs: dict[str, torch.Tensor], output_names: list[str], path: Path) -> None:
    """Write ``module`` (eval mode) as ONNX with a dynamic batch on every input (:func:`export_onnx`, what the
    nodes' onnxruntime backend runs)."""
    export_onnx(module, inputs, output_names, path)


def largest_difference(module: nn.Module, path: Path, make_inputs, batches=CHECK_BATCHES) -> float:
    """Largest |onnxruntime - torch| of ``path`` over random batches of each size in ``batches``."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    generator = torch.Generator().manual_seed(1)
    worst = 0.0
    for batch in batches:
        inputs = make_inputs(batch, generator)
        with torch.no_grad():
            expected = module(*inputs.values())
        expected = [t.numpy() for t in (expected if isinstance(expected, tuple) else (expected,))]
        actual = session.run(None, {name: value.numpy() for name, value in inputs.items()})
        for name, a, e in zip(session.get_outputs(), actual, expected, strict=True):
            if a.shape != e.shape:
                raise ValueError(f'{path.name}: {name.name}: onnxruntime gave shape {a.shape}, torch {e.shape}')
            worst = max(worst, float(np.abs(a - e).max()))
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument('--stn', default='', help='STN checkpoint (default: the shipped grasp STN)')
    parser.add_argument('--gqcnn', default='', help='GQ-CNN checkpoint (default: the shipped GQ-CNN)')
    parser.add_argument(
        '--hypotheses',
        type=int,
        help="K, the ranked hypotheses a crop (default: stn_node's hypotheses_per_object, config/stn_node.yaml); "
        "at most the STN's count, as in the node",
    )
    parser.add_argument('--out', type=Path, default=Path('out/onnx'), help='output folder (default: %(default)s)')
    parser.add_argument('--no-check', action='store_true', help='skip the onnxruntime comparison')
    args = parser.parse_args(argv)
    hypotheses = node_hypotheses() if args.hypotheses is None else args.hypotheses
    if hypotheses < 1:
        parser.error(f'--hypotheses must be at least 1, got {hypotheses}')
    try:
        loaded = load_model(args.stn)
        gqcnn = load_gqcnn(args.gqcnn or package_file('weights', DEFAULT_GQCNN_WEIGHTS))[0]
    except (ValueError, FileNotFoundError) as exc:
        print(f'{PROG}: {exc}', file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    localization = Localization(loaded.stn.eval(), hypotheses)
    models = {
        'localization.onnx': (
            localization,
            lambda batch, generator: localization_inputs(loaded.stn, batch, generator),
            ['params', 'scores'],
        ),
        'gqcnn.onnx': (GraspQuality(gqcnn.eval()), gqcnn_inputs, ['quality']),
    }
    failed = False
    for name, (module, make_inputs, output_names) in models.items():
        path = args.out / name
        export(module, make_inputs(2, torch.Generator().manual_seed(0)), output_names, path)
        line = f'{path}: written'
        if module is localization:
            line += (
                f' ({loaded.description}: the {localization.hypotheses} best-scored of its '
                f'{loaded.stn.localization.hypotheses} hypotheses a crop, best first)'
            )
        if not args.no_check:
            difference = largest_difference(module, path, make_inputs)
            failed |= not difference <= TOLERANCE
            verdict = 'ok' if difference <= TOLERANCE else f'ABOVE the tolerance {TOLERANCE:g}'
            line += f'; onnxruntime vs torch, batches {CHECK_BATCHES}: max |difference| {difference:.2e} ({verdict})'
        print(line)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())

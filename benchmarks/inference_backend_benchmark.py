"""The two nets on each inference backend (torch, onnxruntime) on this CPU: what ``inference_backend auto`` picks.

For each net (the shipped weights), batch size and thread budget (the nodes' ``torch_threads``), times one call of
the net as the node makes it (:class:`stn_ros.models.backends.Localizer` / :class:`~stn_ros.models.backends.QualityNet`,
torch's module made channels-last by :func:`stn_ros.core.inference_module` as the node does), torch and onnxruntime
interleaved call by call so that a busy machine slows both alike, and prints medians (ms) and the agreement: the
largest |onnxruntime - torch| of the outputs (localization: params and scores, stn_node's hypotheses_per_object
of them; GQ-CNN: quality) on the same random inputs.

    python benchmarks/inference_backend_benchmark.py                  # batches 1 4 16 64 / 16 64 256, 1 and 2 threads
    python benchmarks/inference_backend_benchmark.py --repeats 50 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from stn_ros.core import inference_module
from stn_ros.models.backends import Localizer, QualityNet, gqcnn_probe, localization_probe
from stn_ros.perception.grasps.steps import load_gqcnn_model
from stn_ros.perception.stn.canonicalizer import load_model
from stn_ros.ros.parameter_specs import default_values
from stn_ros.ros.stn_parameters import PARAMETERS as STN_PARAMETERS

LOCALIZATION_BATCHES = (1, 4, 16, 64)
GQCNN_BATCHES = (16, 64, 256)


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1e3


def compare(torch_call, onnx_call, repeats: int) -> tuple[float, float]:
    """Medians (ms) of ``repeats`` calls of each, interleaved (the order alternating), after 3 warm-up calls each."""
    for _ in range(3):
        torch_call(), onnx_call()
    times: dict[str, list[float]] = {'torch': [], 'onnxruntime': []}
    for index in range(repeats):
        order = [('torch', torch_call), ('onnxruntime', onnx_call)]
        for name, call in order if index % 2 == 0 else order[::-1]:
            times[name].append(timed(call))
    return statistics.median(times['torch']), statistics.median(times['onnxruntime'])


def largest_difference(a: tuple[torch.Tensor, ...], b: tuple[torch.Tensor, ...]) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--threads', type=int, nargs='+', default=[1, 2], help='thread budgets (default: %(default)s)')
    parser.add_argument(
        '--localization-batches', type=int, nargs='+', default=list(LOCALIZATION_BATCHES), help='(default: %(default)s)'
    )
    parser.add_argument(
        '--gqcnn-batches', type=int, nargs='+', default=list(GQCNN_BATCHES), help='(default: %(default)s)'
    )
    parser.add_argument(
        '--repeats', type=int, default=100, help='timed calls per backend and case (default: %(default)s)'
    )
    args = parser.parse_args(argv)
    hypotheses = default_values(STN_PARAMETERS)['hypotheses_per_object']
    cpu = torch.device('cpu')
    stn_model = load_model('')
    gqcnn, gqcnn_description, _ = load_gqcnn_model('')
    stn = inference_module(stn_model.stn, cpu)
    gqcnn = inference_module(gqcnn, cpu)
    print(f'localization: {stn_model.description}, {hypotheses} hypotheses a crop; GQ-CNN: {gqcnn_description}')
    print(f'torch {torch.__version__}; medians of {args.repeats} interleaved calls, ms\n')
    print('| net | batch | threads | torch ms | onnxruntime ms | onnxruntime / torch | max abs difference |')
    print('|---|---:|---:|---:|---:|---:|---:|')
    with tempfile.TemporaryDirectory() as cache:  # one export per net, shared by the thread budgets
        for threads in args.threads:
            torch.set_num_threads(threads)
            nets = [
                ('localization', Localizer(stn, 'torch'), Localizer(stn, 'onnxruntime', cpu, threads, Path(cache))),
                ('gqcnn', QualityNet(gqcnn, 'torch'), QualityNet(gqcnn, 'onnxruntime', cpu, threads, Path(cache))),
            ]
            for name, torch_net, onnx_net in nets:
                batches = args.localization_batches if name == 'localization' else args.gqcnn_batches
                for batch in batches:
                    generator = torch.Generator().manual_seed(batch)
                    if name == 'localization':
                        crops = localization_probe(stn, batch, generator)['crops']

                        def torch_call(net=torch_net, crops=crops):
                            return net.localize_ranked(crops, hypotheses)

                        def onnx_call(net=onnx_net, crops=crops):
                            return net.localize_ranked(crops, hypotheses)

                    else:
                        probe = gqcnn_probe(gqcnn, batch, generator)

                        def torch_call(net=torch_net, probe=probe):
                            return (net.quality(probe['images'], probe['z']),)

                        def onnx_call(net=onnx_net, probe=probe):
                            return (net.quality(probe['images'], probe['z']),)

                    difference = largest_difference(torch_call(), onnx_call())
                    torch_ms, onnx_ms = compare(torch_call, onnx_call, args.repeats)
                    print(
                        f'| {name} | {batch} | {threads} | {torch_ms:.3f} | {onnx_ms:.3f} | {onnx_ms / torch_ms:.2f} '
                        f'| {difference:.1e} |',
                        flush=True,
                    )
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""The CUDA-graph path: its batching (padded to fixed sizes, results unchanged), its guards, its capture logic (with
a recording stand-in for a CUDA graph) and its timing, on a CPU; tests taking ``device`` run on CUDA too, where the
graphs are captured for real (prepared ahead of the frames, none captured after)."""

from __future__ import annotations

import gc
import weakref
from contextlib import contextmanager

import numpy as np
import pytest
import torch

from images import CAMERA, boxes_depth_frame
from stn_ros.core import roi_matrix
from stn_ros.core.cuda_graphs import (
    BATCH_BUCKETS,
    CaptureContext,
    GraphedFunction,
    PinnedUpload,
    bucket_size,
    buckets_up_to,
    host_synchronization,
    host_transfers,
    pad_batch,
)
from stn_ros.core.families import FAMILIES
from stn_ros.perception.stn.canonicalizer import Canonicalizer, load_model

CPU = torch.device('cpu')


def test_a_batch_goes_to_the_smallest_bucket_that_holds_it():
    assert [bucket_size(n) for n in (1, 2, 3, 16, 17, 256)] == [1, 2, 4, 16, 32, 256]
    assert bucket_size(257) == 512 and bucket_size(600) == 768
    with pytest.raises(ValueError):
        bucket_size(0)
    assert list(BATCH_BUCKETS) == sorted(set(BATCH_BUCKETS))


def test_padding_repeats_the_first_row_and_keeps_the_batch():
    batch = torch.arange(6.0).reshape(3, 2)
    padded = pad_batch(batch, 8)
    assert padded.shape == (8, 2) and torch.equal(padded[:3], batch) and (padded[3:] == batch[0]).all()
    assert pad_batch(batch, 3) is batch
    with pytest.raises(ValueError):
        pad_batch(batch, 2)


def test_off_cuda_a_graphed_function_is_the_function_and_an_upload_is_no_copy():
    calls = []
    graphed = GraphedFunction(lambda x: (calls.append(1) or x * 2,))
    assert torch.equal(graphed(torch.ones(3))[0], torch.full((3,), 2.0)) and calls == [1] and graphed.captured == 0
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    uploaded = PinnedUpload(CPU)(array)
    assert uploaded.data_ptr() == array.__array_interface__['data'][0]


@pytest.mark.parametrize('sampler', ['torch', 'opencv'])
@pytest.mark.parametrize('objects,hypotheses', [(1, 1), (3, 4), (16, 4), (17, 2)])
def test_the_padded_batches_of_the_graph_path_give_the_unpadded_crops_and_transforms(sampler, objects, hypotheses):
    """The CUDA-graph path pads the ROIs (and the crops' maps) to a bucket and drops the padding's results; run here
    on the CPU (the functions run eagerly), it gives what the plain path gives."""
    model = load_model('')
    frame, rois = boxes_depth_frame(objects)
    plain = Canonicalizer(model.stn, CPU, (32, 32), model.roi_side_m, sampler=sampler)
    padded = Canonicalizer(model.stn, CPU, (32, 32), model.roi_side_m, sampler=sampler)
    padded.cuda_graphs = True  # as on CUDA
    a = plain.process(frame, rois, CAMERA, hypotheses=hypotheses)
    b = padded.process(frame, rois, CAMERA, hypotheses=hypotheses)
    assert len(b.crops) == objects * hypotheses and b.hypotheses_per_object == hypotheses
    # Not to the bit: a batch's size changes how the net's matrix products are blocked (float rounding).
    np.testing.assert_allclose(a.homographies, b.homographies, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(a.crops, b.crops, atol=1e-4, equal_nan=True)
    for name in a.record.dtype.names:
        np.testing.assert_allclose(a.record[name], b.record[name], rtol=1e-4, atol=1e-3, equal_nan=True, err_msg=name)
    assert {key[0] for key in padded._graphs} == {'localization grids', 'transforms'}


@pytest.mark.parametrize('objects,hypotheses', [(1, 1), (5, 4), (16, 4), (24, 2)])
def test_the_graph_path_gives_the_op_by_op_crops(device, objects, hypotheses):
    """On CUDA every graph is captured by prepare_graphs and no frame captures one (two frames replay them); on the
    CPU the same path pads the batches and runs them eagerly. Either way: the plain path's crops and transforms."""
    model = load_model('')
    graphed = Canonicalizer(model.stn, device, (32, 32), model.roi_side_m, sampler='torch')
    plain = Canonicalizer(model.stn, device, (32, 32), model.roi_side_m, sampler='torch', cuda_graphs=False)
    graphed.cuda_graphs = True  # on the CPU: pads, runs eagerly
    captured = graphed.prepare_graphs(objects, (32, 32), hypotheses)
    if device.type == 'cuda':
        assert captured == 2 * len(buckets_up_to(objects)) and graphed.graph_failures == []
        assert graphed.graph_context.stream != torch.cuda.default_stream(device)
    frame, rois = boxes_depth_frame(objects)
    for _ in range(2):  # the second frame replays the same graphs
        a = plain.process(frame, rois, CAMERA, hypotheses=hypotheses)
        b = graphed.process(frame, rois, CAMERA, hypotheses=hypotheses)
        np.testing.assert_allclose(a.homographies, b.homographies, rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(a.crops, b.crops, atol=1e-4, equal_nan=True)
    assert graphed.graphs_captured == captured and graphed.frames_op_by_op == 0
    assert graphed.graph_context.captures_after_prepared == 0


def test_the_gqcnn_graph_path_gives_the_cpus_qualities(device):
    """On CUDA the GQ-CNN replays graphs captured by prepare_graphs (5 crops: the bucket of 8); on the CPU the padded
    batch runs eagerly. Either way: the CPU's unpadded qualities."""
    from stn_ros.evaluation.device_agreement import TOLERANCES
    from stn_ros.perception.grasps.grasp_quality import GraspScorer
    from stn_ros.perception.grasps.steps import load_gqcnn_model

    model, _, _ = load_gqcnn_model('')
    crops = (0.7 + np.random.default_rng(2).uniform(-0.05, 0.0, (5, 32, 32))).astype(np.float32)
    homographies = np.repeat(np.diag([2.0, 2.0, 1.0])[None], 5, axis=0)
    cpu = GraspScorer(model, CPU).score(crops, homographies, CAMERA, 0.5).record
    scorer = GraspScorer(model, device)
    scorer._quality.enabled = True  # on the CPU: the 5 crops padded to a batch of 8
    captured = scorer.prepare_graphs()
    if device.type == 'cuda':
        assert captured == len(buckets_up_to(64)) and scorer.graph_failures == []
    for _ in range(2):
        record = scorer.score(crops, homographies, CAMERA, 0.5).record
        np.testing.assert_allclose(record['quality'], cpu['quality'], atol=TOLERANCES['quality'])
    assert scorer.graphs_captured == captured and scorer.frames_op_by_op == 0
    assert scorer.graph_context.captures_after_prepared == 0


@pytest.mark.cuda
def test_two_nodes_capture_on_streams_and_pools_of_their_own():
    """C5, on CUDA: stn_node's canonicalizer and grasp_quality_node's scorer in one process capture and work on
    different (non-default) streams into different pools."""
    from stn_ros.perception.grasps.grasp_quality import GraspScorer
    from stn_ros.perception.grasps.steps import load_gqcnn_model

    cuda = torch.device('cuda')
    model = load_model('')
    canonicalizer = Canonicalizer(model.stn, cuda, (32, 32), model.roi_side_m)
    scorer = GraspScorer(load_gqcnn_model('')[0], cuda)
    a, b = canonicalizer.graph_context, scorer.graph_context
    assert a.stream != b.stream and a.pool != b.pool
    assert torch.cuda.default_stream(cuda) not in (a.stream, b.stream)
    assert canonicalizer.prepare_graphs(4) > 0 and scorer.prepare_graphs(8) > 0
    assert canonicalizer.graph_failures == [] and scorer.graph_failures == []
    assert torch.cuda.current_stream(cuda) == torch.cuda.default_stream(cuda)  # the caller's stream, as before


def test_the_nodes_diagnostics_say_what_was_captured_what_ran_op_by_op_and_what_failed():
    from types import SimpleNamespace

    from stn_ros.ros.node_runtime import cuda_graph_values

    assert cuda_graph_values(SimpleNamespace(cuda_graphs=False)) == {}
    context = CaptureContext(CPU)
    context.captures = 12
    context.mark_prepared()
    compute = SimpleNamespace(
        cuda_graphs=True, graphs_captured=12, frames_op_by_op=3, graph_context=context, graph_failures=[]
    )
    assert cuda_graph_values(compute) == {
        'cuda graphs captured': '12',
        'cuda graph frames op by op': '3',
        'cuda graph captures after activate': '0',
        'cuda graph failures': 'none',
    }
    compute.graph_failures = ['RuntimeError: sync']
    assert cuda_graph_values(compute)['cuda graph failures'] == 'RuntimeError: sync'


class RecordingGraph:
    """A stand-in for ``torch.cuda.CUDAGraph`` on a CPU: records its capture's begin and end; its replay runs the
    captured function again into the static outputs (what a CUDA graph's replay does)."""

    def __init__(self, log: list[str]):
        self.log = log
        self.rerun = None

    def capture_begin(self, pool=None, capture_error_mode='global'):
        self.log.append(f'begin pool={pool} mode={capture_error_mode}')

    def capture_end(self):
        self.log.append('end')

    def replay(self):
        self.log.append('replay')
        self.rerun()


class RecordingContext(CaptureContext):
    """A capture context that can capture on a CPU: its stream is a name, ``running`` records entering and leaving
    it, and its graphs are :class:`RecordingGraph` (the capture logic itself is CaptureContext's)."""

    def __init__(self, name: str = 'stream'):
        super().__init__(CPU, stream=name, pool=f'{name} pool')
        self.log: list[str] = []
        self.depth = 0

    @contextmanager
    def running(self):
        self.depth += 1
        self.log.append('enter')
        try:
            yield
        finally:
            self.depth -= 1
            self.log.append('exit')

    def new_graph(self):
        return RecordingGraph(self.log)

    def capture(self, fn, inputs, warmup):
        graph, outputs = super().capture(fn, inputs, warmup)

        def rerun():
            for static, fresh in zip(outputs, fn(*inputs), strict=True):
                static.copy_(fresh)

        graph.rerun = rerun
        return graph, outputs


def test_a_failed_capture_ends_the_capture_leaves_the_stream_and_runs_op_by_op():
    """C9: the function raises while being captured: the capture is ended, the stream context left, no graph is kept,
    and that call and the later ones run op by op (counted), with nothing captured again."""
    context = RecordingContext()
    capturing = []

    def fn(x: torch.Tensor) -> tuple[torch.Tensor]:
        if context.log and context.log[-1].startswith('begin'):
            capturing.append(1)
            raise RuntimeError('operation not permitted when stream is capturing')
        return (x * 2,)

    graphed = GraphedFunction(fn, batched=(0,), warmup=1, context=context)
    assert graphed.prepare(torch.ones(3, 1)) is False
    assert capturing == [1]
    assert context.log == ['enter', 'begin pool=stream pool mode=thread_local', 'end', 'exit'] and context.depth == 0
    assert graphed.captured == 0 and context.captures == 0
    assert graphed.failure == 'RuntimeError: operation not permitted when stream is capturing'
    (out,) = graphed(torch.arange(3.0)[:, None])
    assert torch.equal(out, torch.arange(3.0)[:, None] * 2) and graphed.op_by_op == 1
    assert graphed.prepare(torch.ones(3, 1)) is False and len(capturing) == 1  # not tried again


def test_a_prepared_graph_is_replayed_on_its_stream_and_a_call_never_captures():
    context = RecordingContext()
    graphed = GraphedFunction(lambda x: (x * 2, x.sum(1)), batched=(0,), warmup=1, context=context)
    assert graphed.prepare(torch.zeros(3, 2)) and graphed.captured == 1  # the bucket of 3: 4 rows
    context.mark_prepared()
    context.log.clear()
    rows = torch.arange(6.0).reshape(3, 2)
    doubled, sums = graphed(rows)
    assert torch.equal(doubled, rows * 2) and torch.equal(sums, rows.sum(1))
    assert context.log == ['enter', 'replay', 'exit'] and graphed.op_by_op == 0
    (doubled, _) = graphed(torch.ones(5, 2))  # bucket 8: not prepared
    assert torch.equal(doubled, torch.full((5, 2), 2.0)) and graphed.op_by_op == 1
    assert graphed.captured == 1 and context.captures_after_prepared == 0


def test_the_canonicalizer_prepares_its_buckets_and_an_unprepared_frame_runs_op_by_op():
    """C6: prepare_graphs captures every bucket up to max_objects without a frame; frames of those signatures replay
    (the crops are the plain path's); a frame of another signature runs op by op, counted, and captures nothing."""
    model = load_model('')
    frame, rois = boxes_depth_frame(3)
    plain = Canonicalizer(model.stn, CPU, (32, 32), model.roi_side_m, sampler='torch')
    graphed = Canonicalizer(model.stn, CPU, (32, 32), model.roi_side_m, sampler='torch')
    graphed.cuda_graphs, graphed.graph_context = True, RecordingContext()  # as on CUDA
    assert graphed.prepare_graphs(4, (32, 32), hypotheses=4) == 6  # buckets 1, 2, 4: grids and transforms
    context = graphed.graph_context
    assert context.captures == 6 and context.captures_after_prepared == 0
    for objects, hypotheses, op_by_op in ((3, 4, 0), (1, 4, 0), (5, 4, 1), (3, 2, 2)):
        frame, rois = boxes_depth_frame(objects)
        a = plain.process(frame, rois, CAMERA, hypotheses=hypotheses)
        b = graphed.process(frame, rois, CAMERA, hypotheses=hypotheses)
        np.testing.assert_allclose(a.homographies, b.homographies, rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(a.crops, b.crops, atol=1e-4, equal_nan=True)
        assert graphed.frames_op_by_op == op_by_op, (objects, hypotheses)
    assert context.captures_after_prepared == 0 and context.depth == 0 and graphed.graph_failures == []


@pytest.mark.parametrize('sampler', ['torch', 'opencv'])
def test_no_graphed_step_keeps_a_frame_alive(sampler):
    """C6: what the graphs hold (their functions, static inputs and outputs) refers to no frame: a frame processed on
    the graph path is freed once the caller drops it."""
    model = load_model('')
    canonicalizer = Canonicalizer(model.stn, CPU, (32, 32), model.roi_side_m, sampler=sampler)
    canonicalizer.cuda_graphs = True  # as on CUDA
    frame, rois = boxes_depth_frame(3)
    canonicalizer.process(frame, rois, CAMERA, hypotheses=2)
    assert canonicalizer._graphs
    alive = weakref.ref(frame)
    del frame
    gc.collect()
    assert alive() is None


def test_each_owner_of_graphs_has_its_own_stream_and_pool(monkeypatch):
    """C5: a node's Canonicalizer or GraspScorer makes a capture context of its own (on CUDA a stream and a pool of
    its own), and all its graphed steps use that one."""
    from stn_ros.perception.grasps.grasp_quality import GraspScorer
    from stn_ros.perception.grasps.steps import load_gqcnn_model

    made = iter(range(100))
    monkeypatch.setattr(torch.cuda, 'Stream', lambda device: ('stream', next(made)))
    monkeypatch.setattr(torch.cuda, 'graph_pool_handle', lambda: ('pool', next(made)))
    cuda = torch.device('cuda')
    first, second = CaptureContext.for_device(cuda), CaptureContext.for_device(cuda)
    assert first.stream != second.stream and first.pool != second.pool and first.can_capture
    assert not CaptureContext.for_device(CPU).can_capture

    model = load_model('')
    canonicalizer = Canonicalizer(model.stn, CPU, (32, 32), model.roi_side_m, identity_fallback=True)
    canonicalizer.cuda_graphs = True
    canonicalizer.process(*boxes_depth_frame(2), CAMERA, hypotheses=2)
    canonicalizer.process(boxes_depth_frame(2)[0], boxes_depth_frame(2)[1])  # no camera: the identity fallback
    scorer = GraspScorer(load_gqcnn_model('')[0], CPU)
    assert canonicalizer.graph_context is not scorer.graph_context
    assert len(canonicalizer._graphs) == 3
    assert all(graphed.context is canonicalizer.graph_context for graphed in canonicalizer._graphs.values())
    assert scorer._quality.context is scorer.graph_context


def test_stage_times_on_a_device_come_from_its_events_read_once_the_work_is_done():
    """C7: on CUDA the host only queues the work; the stage boundaries are events on the stream, and their times are
    read once, after the last one is passed. A fake device whose localization is still running when the host moves
    on: the times are the device's, not the host's."""
    from stn_ros.core.stage_clock import StageClock

    device_time = {'now': 0.0}
    waited = []

    class Event:
        def __init__(self):
            self.at = device_time['now']  # when the device reaches it (the work queued before it done)

        def elapsed_time(self, later):
            return later.at - self.at

        def synchronize(self):
            waited.append(self)

    clock = StageClock(torch.device('cuda'), stamp=Event)
    device_time['now'] += 7.0  # the localization's kernels, which the host does not wait for
    clock.lap('localization')
    device_time['now'] += 2.0  # the sampling and the crops' download
    clock.lap('sampling')
    assert waited == []  # nothing waited for before the times are asked
    assert clock.durations_ms() == {'localization': 7.0, 'sampling': 2.0}
    assert len(waited) == 1  # the last boundary only

    host = StageClock(CPU)
    host.lap('localization')
    assert set(host.durations_ms()) == {'localization'} and host.durations_ms()['localization'] >= 0


def test_a_graphed_function_pads_its_batches_and_cuts_each_output_back_to_its_share():
    seen = []

    def fn(scale: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        seen.append(len(rows))
        return rows * scale, (rows * scale).repeat_interleave(3, dim=0)  # one row per row, three per row

    graphed = GraphedFunction(fn, batched=(1,))
    rows = torch.arange(5.0)[:, None]
    once, thrice = graphed(torch.tensor(2.0), rows)
    assert seen == [8]  # padded to the bucket
    assert torch.equal(once, rows * 2) and torch.equal(thrice, (rows * 2).repeat_interleave(3, dim=0))
    assert GraphedFunction(fn, enabled=False, batched=(1,))(torch.tensor(2.0), rows)[0].shape == (5, 1)
    assert seen[-1] == 5  # not enabled: fn itself


def test_host_synchronization_names_where_a_function_reads_a_value_on_the_host():
    assert host_synchronization(lambda x: (x * 2,), torch.ones(3)) is None
    reason = host_synchronization(lambda rois: roi_matrix(rois, (48, 64)), torch.ones(2, 4))  # checks the sizes
    assert reason is not None and reason.startswith('DataDependentOutputException') and 'core/crops.py' in reason
    assert host_synchronization(lambda rois: roi_matrix(rois, (48, 64), check_sizes=False), torch.ones(2, 4)) is None


def test_host_transfers_names_a_host_constant_and_a_value_read_inside_a_function(device):
    """What a capture refuses and fake tensors cannot see: a tensor made of host data inside the function (on CUDA a
    copy from pageable host memory), and a value read on the host."""
    rows = torch.ones(4, 3, device=device)
    assert host_transfers(lambda x: (x * 2 + x.new_ones(3),), rows) is None
    planted_constant = host_transfers(lambda x: (x @ torch.tensor([1.0, 2.0, 3.0], device=x.device),), rows)
    assert planted_constant is not None and 'host data' in planted_constant
    assert host_synchronization(lambda x: (x @ torch.tensor([1.0, 2.0, 3.0], device=x.device),), rows) is None
    planted_read = host_transfers(lambda x: (x * x.sum().item(),), rows)
    assert planted_read is not None and 'read on the host' in planted_read
    from stn_ros.core.families import pixel_homography

    reason = host_transfers(lambda m: (pixel_homography(m, (48, 64), (32, 32)),), torch.eye(3, device=device)[None])
    assert reason is not None and 'core/coords.py' in reason  # eager callers may; a captured function must not


@pytest.mark.parametrize('family', [name for name, family in FAMILIES.items() if family.is_linear])
def test_the_steps_captured_on_cuda_read_no_value_on_the_host(monkeypatch, family):
    """What the CUDA graphs capture (the localization and the sampling of a linear family, the GQ-CNN) runs here on
    fake tensors and under a watch for host transfers: a value read on the host, or a tensor made of host data (a
    host-to-device copy on CUDA), would make the capture fail on a GPU, and that work would go op by op."""
    from stn_ros.core import SpatialTransformer
    from stn_ros.perception.grasps.grasp_quality import GraspScorer
    from stn_ros.perception.grasps.steps import load_gqcnn_model

    reads: dict[str, str | None] = {}
    replay = GraphedFunction._replay

    def checking(self, inputs):
        reads[getattr(self.fn, 'func', self.fn).__qualname__] = host_synchronization(
            self.fn, *inputs
        ) or host_transfers(self.fn, *inputs)
        return replay(self, inputs)

    monkeypatch.setattr(GraphedFunction, '_replay', checking)
    torch.manual_seed(0)
    stn = SpatialTransformer(family=family, in_channels=1, output_size=(32, 32), hypotheses=4)
    canonicalizer = Canonicalizer(stn, CPU, (32, 32), sampler='torch')
    canonicalizer.cuda_graphs = True  # as on CUDA
    frame, rois = boxes_depth_frame(3)
    result = canonicalizer.process(frame, rois, CAMERA, hypotheses=4)
    model, _, _ = load_gqcnn_model('')
    scorer = GraspScorer(model, CPU)
    scorer._quality.enabled = True
    scorer.score(result.crops, result.homographies, CAMERA, 0.5)
    assert len(reads) == 3 and all(reason is None for reason in reads.values()), reads


def test_to_host_brings_every_tensor_back_with_its_values_and_memory_of_its_own(device):
    """The frame's one download: each tensor's values, dtype and shape, in arrays the next call does not overwrite."""
    from stn_ros.core.cuda_graphs import to_host

    tensors = [torch.arange(12.0, device=device).reshape(3, 4), torch.eye(3, dtype=torch.float64, device=device)]
    first = to_host(tensors)
    kept = [array.copy() for array in first]
    second = to_host([t + 1 for t in tensors])
    for array, tensor, copy in zip(first, tensors, kept, strict=True):
        assert array.dtype == copy.dtype and array.shape == tuple(tensor.shape)
        np.testing.assert_array_equal(array, copy)  # untouched by the second download
    np.testing.assert_array_equal(second[0], kept[0] + 1)
    assert to_host([]) == []

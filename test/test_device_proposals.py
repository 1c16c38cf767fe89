"""The depth frame on the device: its pinned upload (an event per buffer)."""

from __future__ import annotations

import numpy as np
import torch

from stn_ros.core.cuda_graphs import PinnedUpload, StagingBuffer

CPU = torch.device('cpu')


class WatchedEvent:
    """A ``torch.cuda.Event`` stand-in that logs its calls and what its buffer held when it was waited on."""

    def __init__(self, name: str, log: list, host: torch.Tensor):
        self.name, self.log, self.host = name, log, host

    def record(self, stream=None) -> None:
        self.log.append(('record', self.name, stream))

    def synchronize(self) -> None:
        self.log.append(('wait', self.name, self.host.clone()))


def test_a_pinned_buffer_waits_for_its_own_last_copy_before_it_is_overwritten():
    log = []

    def staging(array: np.ndarray) -> StagingBuffer:
        host = torch.from_numpy(np.zeros_like(array))
        return StagingBuffer(host, WatchedEvent(f'{array.shape}', log, host))

    upload = PinnedUpload(CPU, staging)
    first, second, other = np.ones((2, 3), np.float32), np.full((2, 3), 2.0, np.float32), np.arange(4, dtype=np.uint16)
    assert torch.equal(upload(first), torch.from_numpy(first))
    upload(other)  # another shape: another buffer, no wait
    assert [entry[:2] for entry in log] == [('record', '(2, 3)'), ('record', '(4,)')]
    assert torch.equal(upload(second), torch.from_numpy(second))
    assert [entry[:2] for entry in log[2:]] == [('wait', '(2, 3)'), ('record', '(2, 3)')]
    assert torch.equal(log[2][2], torch.from_numpy(first))  # waited on before the second frame was written


def test_an_upload_is_not_changed_by_the_next_one(device):
    upload = PinnedUpload(device)
    arrays = [np.full((48, 64), value, np.float32) for value in (1.0, 2.0, 3.0)]
    uploaded = [upload(array) for array in arrays]
    for array, tensor in zip(arrays, uploaded, strict=True):
        assert tensor.device.type == device.type and torch.equal(tensor.cpu(), torch.from_numpy(array))

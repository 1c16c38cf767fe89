"""Device strings: auto, cpu, cuda, cuda:N, and clear errors where CUDA is missing; CUDA's fp32 policy."""

import pytest
import torch

from stn_ros.core import DeviceUnavailableError, resolve_device, use_ieee_fp32


def fake_cuda(monkeypatch, build: str | None, available: bool, count: int):
    monkeypatch.setattr(torch.version, 'cuda', build)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: available)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: count)


def test_cpu_and_auto_on_a_machine_without_cuda(monkeypatch):
    fake_cuda(monkeypatch, None, False, 0)
    assert resolve_device('cpu') == torch.device('cpu')
    assert resolve_device('auto') == torch.device('cpu')
    assert resolve_device(' CPU ') == torch.device('cpu')


def test_auto_and_indices_on_a_machine_with_cuda(monkeypatch):
    fake_cuda(monkeypatch, '12.4', True, 2)
    assert resolve_device('auto') == torch.device('cuda')
    assert resolve_device('cuda') == torch.device('cuda', 0)
    assert resolve_device('cuda:1') == torch.device('cuda', 1)
    with pytest.raises(DeviceUnavailableError, match=r'only 2 CUDA device\(s\) are visible'):
        resolve_device('cuda:2')


def test_cuda_on_a_cpu_only_torch_names_the_build(monkeypatch):
    fake_cuda(monkeypatch, None, False, 0)
    with pytest.raises(DeviceUnavailableError, match='CPU-only build'):
        resolve_device('cuda')


def test_cuda_build_without_a_visible_device(monkeypatch):
    fake_cuda(monkeypatch, '12.4', False, 0)
    with pytest.raises(DeviceUnavailableError, match='no CUDA device is visible'):
        resolve_device('cuda:0')


def test_this_machine_matches_its_torch():
    expected = 'cuda' if torch.cuda.is_available() else 'cpu'
    assert resolve_device('auto').type == expected


@pytest.mark.parametrize('spec', ['gpu', 'cuda:', 'cuda:x', 'mps', '', None, 3])
def test_malformed_device_strings(spec):
    with pytest.raises(ValueError, match='device must be one of auto, cpu, cuda, cuda:N'):
        resolve_device(spec)


@pytest.fixture
def tf32_as_cudnn_ships():
    """The TF32 flags as a fresh process has them (cuDNN convolutions in TF32), restored after the test."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = False, True
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_the_fp32_policy_turns_tf32_off_for_matmuls_and_convolutions(tf32_as_cudnn_ships):
    use_ieee_fp32()
    assert torch.backends.cuda.matmul.allow_tf32 is False and torch.backends.cudnn.allow_tf32 is False
    assert torch.get_float32_matmul_precision() == 'highest'


@pytest.mark.parametrize('spec', ['auto', 'cuda', 'cuda:1'])
def test_a_resolved_cuda_device_comes_with_the_fp32_policy(monkeypatch, tf32_as_cudnn_ships, spec):
    fake_cuda(monkeypatch, '12.4', True, 2)
    assert resolve_device(spec).type == 'cuda' and torch.backends.cudnn.allow_tf32 is False


def test_a_cpu_device_leaves_the_tf32_flags_alone(tf32_as_cudnn_ships):
    assert resolve_device('cpu').type == 'cpu' and torch.backends.cudnn.allow_tf32 is True

"""--device: auto picks CUDA, then Apple MPS, then the CPU; an explicit device that is absent is an error.

Nothing here can run CUDA or MPS, so availability is monkeypatched: what is tested is the choice.
"""
from __future__ import annotations

import pytest
import torch

from neural_style.daemon.local_errors import DeviceUnavailable
from neural_style.daemon.weights import DEVICE_CHOICES, mps_available, resolve_device


@pytest.fixture
def machine(monkeypatch):
    """Set which accelerators torch reports: machine(cuda=True, mps=False)."""

    def set_available(cuda: bool, mps: bool) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)

    return set_available


@pytest.mark.parametrize("cuda,mps,expected", [
    (True, True, "cuda"), (True, False, "cuda"), (False, True, "mps"), (False, False, "cpu"),
])
def test_auto_prefers_cuda_then_mps_then_cpu(machine, cuda, mps, expected):
    machine(cuda=cuda, mps=mps)
    assert resolve_device("auto") == torch.device(expected)
    assert resolve_device() == torch.device(expected)


def test_explicit_devices_when_present(machine):
    machine(cuda=True, mps=True)
    assert resolve_device("cuda") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("mps") == torch.device("mps")
    assert resolve_device("cpu") == torch.device("cpu")


def test_an_absent_device_asked_for_is_a_clear_error_not_a_fallback(machine):
    machine(cuda=False, mps=False)
    with pytest.raises(DeviceUnavailable, match="--device mps was asked for, but PyTorch sees no Apple GPU"):
        resolve_device("mps")
    with pytest.raises(DeviceUnavailable, match="--device cuda:0 was asked for, but PyTorch sees no CUDA GPU"):
        resolve_device("cuda:0")
    machine(cuda=True, mps=False)
    with pytest.raises(DeviceUnavailable, match="no Apple GPU"):
        resolve_device("mps")


def test_unknown_devices_name_the_choices():
    for name in ("tpu", "cudax", "MPS", ""):
        with pytest.raises(DeviceUnavailable, match=r"unknown device .*auto, cpu, cuda, mps"):
            resolve_device(name)
    assert DEVICE_CHOICES == ("auto", "cpu", "cuda", "mps")


def test_a_torch_build_without_the_mps_backend_counts_as_no_mps(monkeypatch):
    monkeypatch.delattr(torch.backends, "mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert mps_available() is False
    assert resolve_device("auto") == torch.device("cpu")

"""A job's settings of the accelerator's libraries: cuDNN's autotuner and TF32 convolutions on CUDA.

- ``cudnn.benchmark``: each scale evaluates at one fixed size (a block-wise scale at a few), hundreds of
  times, so timing cuDNN's algorithms once per shape pays for itself from the second evaluation.
- TF32 for the convolutions on Ampere and newer (compute capability ≥ 8): inputs rounded to a 10-bit
  mantissa, sums in float32. The paper's loss does not need full float32 mantissas in the convolutions
  (``bench/tf32_emulation_bench.py`` measures the loss and gradient difference on the CPU by rounding
  as TF32 does); the Gram matrices and the losses stay full float32 (matmul TF32 stays off).
- The image and network are channels-last already (``vgg.py``); nothing is copied to the host per
  evaluation but the scalars the optimiser reads and the previews a caller asks for.

Each setting is restored when the job ends, so that a process embedding the engine keeps its own.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import torch

#: Whether a CUDA job may use TF32 convolutions (the default: measured harmless to the loss).
TF32_CONVOLUTIONS = True


@contextmanager
def tuned_for(device: torch.device) -> Iterator[None]:
    """Within the block, cuDNN autotunes (and, with ``TF32_CONVOLUTIONS``, uses TF32 for convolutions) on CUDA."""
    if device.type != "cuda":
        yield
        return
    cudnn = torch.backends.cudnn
    conv: Any = getattr(cudnn, "conv", None)  # torch ≥ 2.9 names the precision; mixing it with allow_tf32 is an error
    modern = conv is not None and hasattr(conv, "fp32_precision")
    saved = cudnn.benchmark, (conv.fp32_precision if modern else cudnn.allow_tf32)
    cudnn.benchmark = True
    if modern:
        conv.fp32_precision = "tf32" if TF32_CONVOLUTIONS else "ieee"
    else:
        cudnn.allow_tf32 = TF32_CONVOLUTIONS
    try:
        yield
    finally:
        cudnn.benchmark = saved[0]
        if modern:
            conv.fp32_precision = saved[1]
        else:
            cudnn.allow_tf32 = saved[1]


class _OnDevice(Protocol):
    @property
    def device(self) -> torch.device: ...


M = TypeVar("M", bound=_OnDevice)
P = ParamSpec("P")
R = TypeVar("R")


def on_tuned_device(function: Callable[Concatenate[M, P], R]) -> Callable[Concatenate[M, P], R]:
    """``function(model, …)`` run under ``tuned_for(model.device)``: ``transfer.stylize``'s decorator."""

    @functools.wraps(function)
    def tuned(model: M, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with tuned_for(model.device):
            return function(model, *args, **kwargs)

    return tuned

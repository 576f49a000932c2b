"""A job's settings of the accelerator's libraries: cuDNN's autotuner, TF32 convolutions on CUDA, bf16 at coarse sizes.

- ``cudnn.benchmark``: each scale evaluates at one fixed size (a block-wise scale at a few), hundreds of
  times, so timing cuDNN's algorithms once per shape pays for itself from the second evaluation.
- TF32 for the convolutions on Ampere and newer (compute capability ≥ 8): inputs rounded to a 10-bit
  mantissa, sums in float32. The paper's loss does not need full float32 mantissas in the convolutions
  (``bench/tf32_emulation_bench.py`` measures the loss and gradient difference on the CPU by rounding
  as TF32 does); the Gram matrices and the losses stay full float32 (matmul TF32 stays off).
- bf16 at the coarse sizes of a coarse-to-fine run (``scale_precision``), on a CPU that computes it natively
  (AVX512-BF16 or AMX): their result only starts the next size, and a bf16 evaluation costs about half
  a float32 one there (docs/PERFORMANCE.md, "Time to quality, fourth session"); the output's own size, whose
  losses are reported and delivered, stays float32 but for a coarse-to-fine run's first few evaluations there
  (``LeadingBf16``; a single-size run is float32 throughout).
- The image and network are channels-last already (``vgg.py``); nothing is copied to the host per
  evaluation but the scalars the optimiser reads and the previews a caller asks for.

Each setting is restored when the job ends, so that a process embedding the engine keeps its own.
"""
from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import torch

#: Whether a CUDA job may use TF32 convolutions (the default: measured harmless to the loss).
TF32_CONVOLUTIONS = True


@functools.cache
def native_bf16(device_type: str) -> bool:
    """Whether bf16 convolutions run natively, not emulated: a CPU with AVX512-BF16 or AMX (oneDNN's own test).

    CUDA answers False: bf16 against TF32 there is not measured yet (``bench/gpu_bench.py``), so its coarse
    sizes keep float32 with TF32 convolutions."""
    if device_type != "cpu":
        return False
    probe = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(probe()) if probe is not None else False
    except RuntimeError:  # a torch built without oneDNN
        return False


#: A bf16 evaluation's CPU time against a float32 one's on a CPU with native bf16 (one thread, AMD EPYC Zen 4:
#: 1.05 / 1.6 s at 512×384, 4.7 / 9.0 s at 1024×768): what the time-left estimate weighs a bf16 size by.
BF16_CPU_COST = 0.6


def relative_cost(precision: str, device: torch.device) -> float:
    """An evaluation's cost in ``precision`` against float32's on ``device``, for the time-left estimate."""
    return BF16_CPU_COST if precision == "bf16" and native_bf16(device.type) else 1.0


def scale_precision(requested: str, device: torch.device, *, final: bool, coarse_bf16: bool = True) -> str:
    """The network's precision at one size of a run: ``requested`` ("auto", "fp32", "fp16", "bf16"), except that
    "auto" runs a coarse size (not ``final``) in bf16 where the device computes it natively and ``coarse_bf16``
    (``optimize.OptimiserSettings``) allows; the output's size under "auto" is float32 (its targets and, but
    for a coarse-to-fine run's first few evaluations there, ``leading_bf16``, its evaluations)."""
    if requested != "auto":
        return requested
    return "bf16" if coarse_bf16 and not final and native_bf16(device.type) else "fp32"


class LeadingBf16:
    """The output size's network precision, evaluation by evaluation: bf16 for its first ``evaluations``
    (``leading_bf16``'s count), float32 after them, as an ``Autocast`` the objective enters per pass.

    Only a coarse-to-fine run uses it (``transfer.stylize``): its first evaluations there only move the image on
    from the coarse sizes' result, as theirs did, at about half a
    float32 one's cost; its targets stay float32 and L-BFGS keeps its pairs across the switch, so no evaluation
    is repeated, and the last, whose loss is reported and whose image is delivered, is float32.
    ``evaluated()`` counts one down; the caller calls it after each evaluation."""

    def __init__(self, device: torch.device, evaluations: int) -> None:
        self.device, self.left = device, evaluations

    def __call__(self) -> contextlib.AbstractContextManager[Any]:
        if self.left > 0:
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def evaluated(self) -> None:
        self.left = max(0, self.left - 1)


def leading_bf16(requested: str, device: torch.device, evaluations: int, iterations: Sequence[int]) -> list[int]:
    """For each size of a run (``iterations[i]`` evaluations each), how many of its first evaluations run in bf16
    (``LeadingBf16``) beside ``scale_precision``'s: under "auto" where the device computes bf16 natively, a
    coarse-to-fine run's output size its first ``evaluations``, at most all but its last; no other size, and
    none under an explicit precision, which holds at every evaluation. A single size has no coarse result to
    move on from (``optimize.OptimiserSettings.output_bf16``)."""
    counts = [0] * len(iterations)
    if requested == "auto" and len(iterations) > 1 and native_bf16(device.type):
        counts[-1] = max(0, min(evaluations, iterations[-1] - 1))
    return counts


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

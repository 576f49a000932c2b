"""An objective that survives running out of memory: it re-plans with smaller blocks and evaluates again.

The memory model predicts; a device can still refuse (another process took memory, a GPU's
allocator fragments, the model is off for an untried layer set). Rather than fail a job that
may have run for an hour, the evaluation is repeated block-wise with blocks of half the side,
down to the smallest the layers allow. The loss and gradient are evaluated inside the call (the
whole-image path's backward pass too, where its memory peaks), so an error in either is caught
here, before the optimiser sees it.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

import torch

from .blockwise import with_gradient
from .memory_plan import MemoryPlan
from .optimize import Objective

log = logging.getLogger(__name__)

#: What torch raises for an exhausted CUDA or MPS allocator (absent from very old torch builds).
_OUT_OF_MEMORY_TYPES: tuple[type[BaseException], ...] = tuple(
    t for t in (getattr(torch, "OutOfMemoryError", None), getattr(torch.cuda, "OutOfMemoryError", None)) if t)
#: How the CPU allocator ("DefaultCPUAllocator: can't allocate memory") and MPS ("MPS backend out of
#: memory") say it in a plain RuntimeError.
_OUT_OF_MEMORY_WORDS = ("out of memory", "can't allocate memory")


def is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, (_OUT_OF_MEMORY_TYPES, MemoryError)):
        return True
    return isinstance(error, RuntimeError) and any(w in str(error).lower() for w in _OUT_OF_MEMORY_WORDS)


def release_cached_memory(device: torch.device) -> None:
    """Hand the allocator's cached blocks back, so that the retry starts from what is really free."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()


class RetryingObjective:
    """``build(plan)``'s objective, rebuilt with ``shrink(plan)`` after each out-of-memory error.

    ``plan`` is the plan in use (the last one tried); ``on_replan`` hears of each change and why.
    """

    def __init__(self, build: Callable[[MemoryPlan], Objective], plan: MemoryPlan,
                 shrink: Callable[[MemoryPlan], MemoryPlan | None],
                 on_replan: Callable[[MemoryPlan, str], None] | None = None) -> None:
        self.build, self.plan, self.shrink, self.on_replan = build, plan, shrink, on_replan
        self.objective = build(plan)

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        while True:
            try:
                total, terms = self.objective(x)
                (gradient,) = torch.autograd.grad(total, x)
                break
            except Exception as error:  # only memory errors are retried; anything else goes on up
                smaller = self.shrink(self.plan) if is_out_of_memory(error) else None
                if smaller is None:
                    raise
                reason = f"{type(error).__name__}: {error}"
            # Out of the except clause, its traceback (and the failed evaluation's tensors) is gone.
            self.objective = None
            release_cached_memory(x.device)
            if self.on_replan is not None:
                self.on_replan(smaller, reason)
            self.plan, self.objective = smaller, self.build(smaller)
        total = with_gradient(x, total.detach(), gradient)
        return total, {**{k: v.detach() for k, v in terms.items()}, "total": total}

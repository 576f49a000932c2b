"""Gradient descent on the image with an exact budget of loss-and-gradient evaluations.

An *iteration* is one evaluation (one forward and one backward pass), whatever the optimiser does
inside, so ``iterations=N`` costs the same for L-BFGS and Adam and progress counts are comparable.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

#: f(x) → (total loss to minimise, the weighted terms for reporting); x is (1, 3, H, W) and requires grad.
Objective = Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor]]]
#: L-BFGS's history (pairs of image-sized vectors) when memory allows: jcjohnson/neural-style's choice.
#: The memory planner shortens it, or chooses Adam, where 2 × 100 image-sized vectors do not fit.
LBFGS_HISTORY = 100

#: Called after every evaluation with (evaluations done in this call, x, terms).
OnEvaluation = Callable[[int, torch.Tensor, dict[str, torch.Tensor]], None]


class StopRequested(Exception):
    """Raised inside the loop when the caller asked to stop; carries the evaluations done so far."""

    def __init__(self, evaluations: int) -> None:
        super().__init__(f"stopped after {evaluations} evaluations")
        self.evaluations = evaluations


@dataclass
class OptimizeOutcome:
    image: torch.Tensor
    evaluations: int
    terms: dict[str, torch.Tensor]


def minimise(
    objective: Objective,
    start: torch.Tensor,
    evaluations: int,
    optimizer: str = "lbfgs",
    learning_rate: float = 0.02,
    on_evaluation: OnEvaluation | None = None,
    should_stop: Callable[[], bool] | None = None,
    history_size: int = LBFGS_HISTORY,
) -> OptimizeOutcome:
    """Minimise ``objective`` from ``start`` in exactly ``evaluations`` evaluations.

    L-BFGS runs without line search and with its convergence tests disabled (as jcjohnson/neural-style
    does), so it never stops early and never evaluates more than asked. Raises StopRequested when
    ``should_stop`` answers True between evaluations. ``history_size`` is L-BFGS's (the memory plan's).
    """
    # Contiguous whatever the caller's layout (an HWC buffer permuted to CHW is not):
    # L-BFGS flattens x.grad with view().
    x = start.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)
    done = 0
    last_terms: dict[str, torch.Tensor] = {}

    def closure() -> torch.Tensor:
        nonlocal done, last_terms
        if should_stop is not None and should_stop():
            raise StopRequested(done)
        if x.grad is not None:
            x.grad = None
        total, terms = objective(x)
        total.backward()
        done += 1
        last_terms = terms
        if on_evaluation is not None:
            on_evaluation(done, x.detach(), terms)
        return total

    if optimizer == "lbfgs":
        # With N ≥ 2, max_iter = N + 1 and max_eval = N make torch's L-BFGS stop right after the Nth
        # evaluation, so the returned image is the one whose loss was reported last.
        max_iter = 1 if evaluations == 1 else evaluations + 1
        opt = torch.optim.LBFGS(
            [x],
            lr=1.0,
            max_iter=max_iter,
            max_eval=evaluations,
            tolerance_grad=-1.0,
            tolerance_change=-1.0,
            history_size=history_size,
            line_search_fn=None,
        )
        opt.step(closure)
    elif optimizer == "adam":
        opt = torch.optim.Adam([x], lr=learning_rate)
        for _ in range(evaluations):
            opt.step(closure)
    else:
        raise ValueError(f"unknown optimizer {optimizer!r}")
    return OptimizeOutcome(image=x.detach(), evaluations=done, terms=last_terms)

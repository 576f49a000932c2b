"""Gradient descent on the image with an exact budget of loss-and-gradient evaluations.

An *iteration* is one evaluation (one forward and one backward pass), whatever the optimiser does
inside, so ``iterations=N`` costs the same for L-BFGS and Adam and progress counts are comparable.
Both keep the image in the box [0, 1] and start a scale from what the last one learnt, as an
``OptimiserSettings`` the caller passes says: docs/PERFORMANCE.md, "Time to quality", has the
measurements behind its defaults.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from . import lbfgs as _lbfgs
from .imaging import resize
from .lbfgs import Learnt, lbfgs

#: f(x) → (total loss to minimise, the weighted terms for reporting); x is (1, 3, H, W) and requires grad.
Objective = Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor]]]
#: L-BFGS's history (pairs of image-sized vectors) when memory allows: jcjohnson/neural-style's choice.
#: The memory planner shortens it, or chooses Adam, where 2 × 100 image-sized vectors do not fit.
LBFGS_HISTORY = 100

#: What a scale hands the next: "none" (torch's restart), "gamma" (L-BFGS's step scale; Adam's moments)
#: or "pairs" (also L-BFGS's curvature pairs, prolongated).
Carry = Literal["none", "gamma", "pairs"]
CARRIES: tuple[Carry, ...] = ("none", "gamma", "pairs")
#: How a scale's result is enlarged to the next scale's start.
Upsampling = Literal["bilinear", "bicubic"]
UPSAMPLINGS: tuple[Upsampling, ...] = ("bilinear", "bicubic")


@dataclass(frozen=True)
class OptimiserSettings:
    """How the optimiser runs, beyond the job's parameters: a value the caller passes (the engine's defaults,
    the paper's optimiser for parity checks, a bench's variants), never module state a caller mutates.

    ``box``: every evaluated image stays within it, so the delivered image is the optimiser's, not a
    clamped copy of it (None: torch's L-BFGS step for step). ``carry``: what a scale hands the next.
    ``max_step`` and ``first_step``: ``lbfgs.py``'s trust region and fresh first step, shares of the box.
    ``cap_by_last_step``: a scale's carried first step is no longer than the last scale's last one (a
    candidate, measured against the fixed cap in docs/PERFORMANCE.md). ``upsampling``: how a scale's image
    is enlarged to start the next (bicubic keeps more of its detail: a smaller jump in loss at the new size).
    ``coarse_bf16``: with the job's precision "auto", the coarse sizes run the network in bf16 where the device
    computes it natively (``device_tuning.scale_precision``): they only find the next size's start.
    ``output_bf16``: in a coarse-to-fine run, as many of the output size's first evaluations run the network in
    bf16 too, against its float32 targets, in the same L-BFGS run (``device_tuning.LeadingBf16``); the size's
    last evaluation, whose loss is reported and whose image is delivered, is always float32. A single-size run
    keeps float32: four of its hundreds of evaluations would save little, and from the content or a sequence's
    warped frame, where the content features already match, bf16's rounding against the float32 target is
    noise as large as what is left to fit (docs/PERFORMANCE.md, "Time to quality, seventh session")."""

    box: tuple[float, float] | None = (0.0, 1.0)
    carry: Carry = "gamma"
    max_step: float = _lbfgs.MAX_STEP
    first_step: float = _lbfgs.FIRST_STEP
    cap_by_last_step: bool = False
    upsampling: Upsampling = "bicubic"
    coarse_bf16: bool = True
    output_bf16: int = 4

    def __post_init__(self) -> None:
        if self.output_bf16 < 0:
            raise ValueError(f"output_bf16 counts evaluations: {self.output_bf16} < 0")
        if self.carry not in CARRIES:
            raise ValueError(f"carry must be one of {CARRIES}, not {self.carry!r}")
        if self.upsampling not in UPSAMPLINGS:
            raise ValueError(f"upsampling must be one of {UPSAMPLINGS}, not {self.upsampling!r}")


#: The engine's optimiser: the measured winners (docs/PERFORMANCE.md, "Time to quality"; the output size's first
#: evaluations in bf16: its sixth and seventh sessions, four of them the seventh's).
ENGINE = OptimiserSettings()
#: The paper's (and the engine's before issue 19): no box, the image clamped only when delivered,
#: torch's L-BFGS restarted at every scale, a scale's image enlarged bilinearly, every size in float32.
PAPER = OptimiserSettings(box=None, carry="none", upsampling="bilinear", coarse_bf16=False, output_bf16=0)

#: Called after every evaluation with (evaluations done in this call, x, terms).
OnEvaluation = Callable[[int, torch.Tensor, dict[str, torch.Tensor]], None]


class StopRequested(Exception):
    """Raised inside the loop when the caller asked to stop; carries the evaluations done so far."""

    def __init__(self, evaluations: int) -> None:
        super().__init__(f"stopped after {evaluations} evaluations")
        self.evaluations = evaluations


@dataclass
class AdamMoments:
    """Adam's state at the end of a scale, image-shaped, carried to the next as crowsonkb/style-transfer-pytorch
    does: its step count (so no bias correction restarts) and moments, resized; the moments of a gradient
    k times smaller per pixel (an image with k times the pixels) are divided by k and k²."""

    step: int
    exp_avg: torch.Tensor
    exp_avg_sq: torch.Tensor

    def prolongated(self, size: tuple[int, int]) -> AdamMoments:
        ratio = size[0] * size[1] / (self.exp_avg.shape[-2] * self.exp_avg.shape[-1])
        return AdamMoments(self.step, resize(self.exp_avg, size) / ratio,
                           resize(self.exp_avg_sq, size).clamp_(min=0) / ratio**2)


#: What one scale's optimiser hands the next: L-BFGS's γ (and pairs), or Adam's moments.
Carried = Learnt | AdamMoments


@dataclass
class OptimizeOutcome:
    image: torch.Tensor
    evaluations: int
    terms: dict[str, torch.Tensor]
    learnt: Carried | None = None  # for the next scale's ``carried``


def minimise(
    objective: Objective,
    start: torch.Tensor,
    evaluations: int,
    optimizer: str = "lbfgs",
    learning_rate: float = 0.02,
    on_evaluation: OnEvaluation | None = None,
    should_stop: Callable[[], bool] | None = None,
    history_size: int = LBFGS_HISTORY,
    *,
    settings: OptimiserSettings = PAPER,
    carried: Carried | None = None,
) -> OptimizeOutcome:
    """Minimise ``objective`` from ``start`` in exactly ``evaluations`` evaluations.

    L-BFGS runs without line search and never stops early (as jcjohnson/neural-style does; ``lbfgs.py``).
    Raises StopRequested when ``should_stop`` answers True between evaluations. ``history_size`` is
    L-BFGS's (the memory plan's). ``settings``: the box, the trust region, what is carried (the
    paper's optimiser by default; ``stylize`` passes the engine's). ``carried``: the previous scale's
    ``OptimizeOutcome.learnt``, prolongated here to this size; ignored with ``settings.carry`` "none"
    or when it is the other optimiser's. The returned image is always the one evaluated last, so the
    loss reported last is its loss.
    """
    # Contiguous whatever the caller's layout (an HWC buffer permuted to CHW is not): steps work on a flat view.
    x = start.detach().clone(memory_format=torch.contiguous_format)
    box = settings.box
    if settings.carry == "none":
        carried = None
    if box is not None:
        x.clamp_(*box)
    x.requires_grad_(True)
    size = (x.shape[-2], x.shape[-1])
    done = 0
    last_terms: dict[str, torch.Tensor] = {}

    def closure() -> float:
        nonlocal done, last_terms
        if should_stop is not None and should_stop():
            raise StopRequested(done)
        x.grad = None
        total, terms = objective(x)
        torch.autograd.backward(total)
        done += 1
        last_terms = terms
        if on_evaluation is not None:
            on_evaluation(done, x.detach(), terms)
        return 0.0  # the loss is read by the caller's reports, not by the optimiser (no line search)

    learnt: Carried | None
    if optimizer == "lbfgs":
        keep_pairs = settings.carry == "pairs"
        start_from = carried.prolongated(size, keep_pairs) if isinstance(carried, Learnt) else None
        learnt = lbfgs(x, closure, evaluations, history_size, box=box, learnt=start_from, keep_pairs=keep_pairs,
                       max_step=settings.max_step, first_step=settings.first_step,
                       cap_by_last_step=settings.cap_by_last_step)
    elif optimizer == "adam":
        learnt = _adam(x, closure, evaluations, learning_rate, box,
                       carried.prolongated(size) if isinstance(carried, AdamMoments) else None)
    else:
        raise ValueError(f"unknown optimizer {optimizer!r}")
    return OptimizeOutcome(image=x.detach(), evaluations=done, terms=last_terms, learnt=learnt)


def _adam(x: torch.Tensor, closure: Callable[[], float], evaluations: int, learning_rate: float,
          box: tuple[float, float] | None, moments: AdamMoments | None) -> AdamMoments:
    """Adam, one step after each evaluation but the last (so the image returned is the one evaluated last)."""
    opt = torch.optim.Adam([x], lr=learning_rate)
    if moments is not None:
        opt.state[x] = {"step": torch.tensor(float(moments.step)), "exp_avg": moments.exp_avg.to(x),
                        "exp_avg_sq": moments.exp_avg_sq.to(x)}
    for done in range(1, evaluations + 1):
        closure()
        if done == evaluations:
            break
        opt.step()
        if box is not None:
            with torch.no_grad():
                x.clamp_(*box)
    state = opt.state[x]
    if not state:  # one evaluation: no step taken
        return moments or AdamMoments(0, torch.zeros_like(x), torch.zeros_like(x))
    return AdamMoments(int(state["step"]), state["exp_avg"].detach(), state["exp_avg_sq"].detach())

"""L-BFGS for an exact budget of evaluations, kept inside a box, able to start from what an earlier scale learnt.

torch's ``optim.LBFGS`` without line search (jcjohnson/neural-style's and the paper implementations'
optimiser) with three changes, each inactive in the paper's setting so that a single-scale run whose
image stays inside the box takes torch's steps exactly (``tests/test_engine_parity.py``):

- **The box.** Each step is projected onto [low, high] (the image's [0, 1]) and the curvature pair is the
  step actually taken (a projected L-BFGS); no component moves by more than ``MAX_STEP`` of the width in
  one step, and the first step of a run moves the steepest one by ``FIRST_STEP`` of it. The optimiser's
  image is the delivered one, not one clamped afterwards whose loss was never evaluated.
- **What an earlier scale learnt.** torch's first step is min(1, 1/|g|₁), tiny for an image of
  millions of pixels, and the next needs a curvature pair that only this scale can give. Started
  with the last scale's ``Learnt`` (its γ = sᵀy / yᵀy, and optionally its pairs, prolongated to
  this size), the first step is a quasi-Newton one at once.
- **The budget.** Exactly ``evaluations`` evaluations, never a break on a tolerance.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .imaging import resize

#: The defaults of ``lbfgs``'s ``max_step`` and ``first_step`` (``optimize.OptimiserSettings`` passes them).
#: With a box, no component moves by more than this share of its width in one step: a trust region that
#: stops the overshoots of L-BFGS without line search (a step of 10¹² in loss, measured) from throwing the
#: image out of the box. docs/PERFORMANCE.md, "Time to quality".
MAX_STEP = 0.5
#: With a box, a scale's first step moves the steepest component by at most this share of the width: by
#: exactly this much with nothing learnt (in place of torch's min(1, 1/|g|₁), which barely moves a large
#: image), by −γ·g when the last scale's γ asks for less (an upsampled image is near a minimum).
FIRST_STEP = 0.2

#: f(x) → loss, having set x.grad: the closure ``optimize.minimise`` builds.
Closure = Callable[[], float]


@dataclass
class Learnt:
    """What L-BFGS knows at the end of a scale: γ (the inverse Hessian's scale) and its pairs, image-shaped.

    ``prolongated(size)`` gives it for another size: an image upsampled by k in pixels has a k times
    smaller gradient per pixel (each old pixel's derivative spreads over k new ones) and k times
    smaller curvature, so γ grows by k, s is resized and y resized and divided by k (sᵀy is kept)."""

    gamma: float
    pixels: int
    pairs: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)  # (s, y), shape (1, C, H, W)
    last_step: float = 0.0  # the longest component of the last step taken (image units: kept by resizing)

    def prolongated(self, size: tuple[int, int], keep_pairs: bool) -> Learnt:
        ratio = size[0] * size[1] / self.pixels
        pairs = [(resize(s, size), resize(y, size) / ratio) for s, y in self.pairs] if keep_pairs else []
        return Learnt(self.gamma * ratio, size[0] * size[1], pairs, self.last_step)


def lbfgs(x: torch.Tensor, closure: Closure, evaluations: int, history: int, *,
          box: tuple[float, float] | None = None, learnt: Learnt | None = None,
          keep_pairs: bool = False, max_step: float = MAX_STEP, first_step: float = FIRST_STEP,
          cap_by_last_step: bool = False) -> Learnt | None:
    """Minimise in place over ``x`` (a contiguous leaf) with ``evaluations`` calls of ``closure``.

    ``box`` None is torch's L-BFGS step for step (no projection, no trust region, its first step); with a
    box, ``max_step`` and ``first_step`` are the trust region and the fresh first step, shares of its width;
    ``cap_by_last_step``: a learnt first step is also no longer than the last scale's last step.
    Returns what was learnt (γ and, with ``keep_pairs``, the pairs) for the next scale; None when no
    curvature pair was accepted. The image after the call is the one the last evaluation saw.
    """
    shape = x.shape
    flat = x.detach().view(-1)
    closure()
    grad = _grad(x)
    gamma: float | None = learnt.gamma if learnt is not None else None
    steps: list[torch.Tensor] = []  # s_i
    diffs: list[torch.Tensor] = []  # y_i
    rho: list[float] = []
    if learnt is not None:
        for s, y in learnt.pairs[-history:] if history else []:
            ys = float(y.reshape(-1).dot(s.reshape(-1)))
            if ys > 1e-10:
                steps.append(s.reshape(-1).to(flat))
                diffs.append(y.reshape(-1).to(flat))
                rho.append(1.0 / ys)
    first = True
    last_step = 0.0
    for _ in range(1, evaluations):
        if gamma is None:  # steepest descent
            direction = grad.neg()
            t = _first_step(direction, grad, box, first_step)
        else:
            direction = _two_loop(grad, steps, diffs, rho, gamma)
            t = 1.0
            if first and box is not None:  # a learnt first step, but no longer than a fresh one
                longest = float(direction.abs().max())
                cap = first_step * (box[1] - box[0])
                if cap_by_last_step and learnt is not None and learnt.last_step > 0:
                    cap = min(cap, learnt.last_step)
                if longest > cap:
                    t = cap / longest
        first = False
        if box is not None:  # the trust region
            longest = float(direction.abs().max()) * t
            if longest > max_step * (box[1] - box[0]):
                t *= max_step * (box[1] - box[0]) / longest
        step = direction.mul_(t)
        flat.add_(step)
        if box is not None:
            _project(flat, step, box)
        if cap_by_last_step:
            last_step = float(step.abs().max())
        closure()
        new_grad = _grad(x)
        y = new_grad.sub(grad)
        ys = float(y.dot(step))
        if ys > 1e-10:
            if history and len(steps) == history:
                del steps[0], diffs[0], rho[0]
            if history:
                steps.append(step)
                diffs.append(y)
                rho.append(1.0 / ys)
            gamma = ys / float(y.dot(y))
        grad = new_grad
    if gamma is None:
        return None
    pixels = shape[-2] * shape[-1]
    pairs = [(s.view(shape), y.view(shape)) for s, y in zip(steps, diffs)] if keep_pairs else []
    return Learnt(gamma, pixels, pairs, last_step)


def _grad(x: torch.Tensor) -> torch.Tensor:
    assert x.grad is not None, "the closure must set x.grad"
    return x.grad.detach().reshape(-1).clone()


def _two_loop(grad: torch.Tensor, steps: list[torch.Tensor], diffs: list[torch.Tensor], rho: list[float],
              gamma: float) -> torch.Tensor:
    """−H·g by the two-loop recursion with H₀ = γ·I (torch's arithmetic, in its order)."""
    q = grad.neg()
    alphas = [0.0] * len(steps)
    for i in range(len(steps) - 1, -1, -1):
        alphas[i] = float(steps[i].dot(q)) * rho[i]
        q.add_(diffs[i], alpha=-alphas[i])
    r = q.mul_(gamma)
    for i in range(len(steps)):
        beta = float(diffs[i].dot(r)) * rho[i]
        r.add_(steps[i], alpha=alphas[i] - beta)
    return r


def _first_step(direction: torch.Tensor, grad: torch.Tensor, box: tuple[float, float] | None,
                share: float) -> float:
    """torch's min(1, 1/|g|₁) without a box (the paper's trajectory); with one, ``share`` of its width."""
    if box is None:
        return min(1.0, 1.0 / float(grad.abs().sum()))
    longest = float(direction.abs().max())
    return share * (box[1] - box[0]) / longest if longest > 0 else 0.0


def _project(flat: torch.Tensor, step: torch.Tensor, box: tuple[float, float]) -> None:
    """Clamp ``flat`` into the box and make ``step`` the step actually taken (unchanged where nothing moved).

    One image-sized temporary (the clamp's correction), as ``memory_cost.LBFGS_WORKING_VECTORS`` allows."""
    low, high = box
    smallest, largest = torch.aminmax(flat)
    if float(smallest) < low or float(largest) > high:
        correction = flat.clamp(low, high).sub_(flat)  # 0 where the clamp did nothing
        step.add_(correction)
        flat.add_(correction).clamp_(low, high)  # the clamp again: a rounding off the bound stays inside

"""The memory planner: whole image or blocks, the block size, the optimiser's state, for one scale.

A pure function of numbers (the image size, the layers, the precision, the budget): the costs come
from ``memory_cost``, the budget from ``memory_budget``. The rule, in order:

1. Walk the *economies* ladder, cheapest sacrifice first: the optimiser as asked (L-BFGS with its
   full history), then content targets recomputed per block where that costs under
   ``RECOMPUTE_CHEAP_SHARE`` of an evaluation's work, then shorter L-BFGS histories, L-BFGS's
   history in host memory (GPU only, when the optimiser supports it), Adam, and finally recomputed
   content targets whatever they cost.
2. The whole image at the first L-BFGS step where it fits, if any: a block-wise evaluation costs 2.0–2.4
   times the whole image's at 1536×1152 whatever the block size (docs/PERFORMANCE.md, "Time to quality,
   third session"), far more than a history of 10 instead of 100 loses.
3. Else at each step: the largest block that fits;
   accept that step if its blocks are efficient: the crop (interior plus margins) no more than
   ``MAX_CROP_OVERHEAD`` times the interior.
4. If no step gives efficient blocks, the step that gives the largest block that fits at all.
5. If not even the smallest block fits: ``MemoryBudgetTooSmall``, saying how much is needed.

The ladder's order is measured (docs/PERFORMANCE.md, "L-BFGS history against Adam"): per evaluation,
L-BFGS with a history of 10 reached the loss of a history of 100, and Adam stayed far behind both.
"""
from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass

from .block_grid import BlockGrid, layer_grid
from .engine_errors import ParamError
from .memory_budget import Budget
from .memory_cost import (
    ADAM_VECTORS,
    IMAGE_VECTORS,
    LBFGS_WORKING_VECTORS,
    VECTOR_BYTES_PER_PIXEL,
    WHOLE_IMAGE_TV_VECTORS,
    EvaluationCost,
    activation_floats,
    element_bytes,
    recompute_share,
    region_evaluation_bytes,
    region_held_bytes,
    stored_target_bytes_per_pixel,
    temporal_vectors,
)

#: Blocks whose crop exceeds the interior by more than this factor waste too much work on margins
#: (relu5_1's margin is 80 px: blocks of 392 px and more pass).
MAX_CROP_OVERHEAD = 2.0
#: Recomputing content targets per block is the first economy when it costs less than this share of
#: an evaluation (shallow content layers, whose stored targets are the largest: relu1_1 256 B/px).
RECOMPUTE_CHEAP_SHARE = 0.1
#: Shorter L-BFGS histories tried, as fractions of the one asked for.
HISTORY_FRACTIONS = (1 / 2, 1 / 5, 1 / 10)


class MemoryBudgetTooSmall(ParamError):
    """Not even the smallest block fits the budget; the message gives what is needed.

    A ParamError: the user's remedy is a setting (``max_memory``, ``size``), and the command line and the
    daemon answer it as they answer any other parameter that cannot run."""


@dataclass(frozen=True)
class OptimizerState:
    """What the optimiser keeps: L-BFGS with a ``history`` (on the device or the host) or Adam."""

    optimizer: str
    history: int = 0
    host_history: bool = False

    def device_vectors(self) -> int:
        if self.optimizer == "adam":
            return ADAM_VECTORS
        return LBFGS_WORKING_VECTORS + (0 if self.host_history else 2 * self.history)

    def host_vectors(self) -> int:
        return 2 * self.history if self.host_history else 0

    def describe(self) -> str:
        if self.optimizer == "adam":
            return "Adam"
        return f"L-BFGS history {self.history}" + (" (on the host)" if self.host_history else "")


@dataclass(frozen=True)
class MemoryPlan:
    """One scale's plan: ``path`` is "whole" or "blocks" (``block_size`` then set); bytes are predictions."""

    height: int
    width: int
    path: str
    block_size: int | None
    margin: int
    blocks: int
    interior: tuple[int, int]  # the largest block's interior (height, width); the whole image on that path
    optimizer: OptimizerState
    content_targets: str  # "stored", "recomputed" or "none"
    predicted_peak: int
    budget: Budget

    def describe(self) -> str:
        """One line for the job log."""
        if self.path == "whole":
            how = "whole image"
        else:
            count = f"{self.blocks} blocks" if self.blocks > 1 else "1 block"
            how = f"{count} of ≤{self.interior[1]}×{self.interior[0]} px (margin {self.margin} px)"
        content = f", content targets {self.content_targets}" if self.content_targets != "none" else ""
        return (f"{self.width}×{self.height}: {how}, {self.optimizer.describe()}{content}; predicted peak "
                f"{_gib(self.predicted_peak)} of {_gib(self.budget.bytes)} ({self.budget.source})")


def plan_memory(
    height: int,
    width: int,
    *,
    budget: Budget,
    style_layers: Collection[str],
    content_layers: Collection[str] = (),
    optimizer: str = "lbfgs",
    history: int,
    pooling: str = "avg",
    precision: str = "fp32",
    device_type: str = "cpu",
    host_budget: int = 0,
    host_history_supported: bool = False,
    cost: EvaluationCost | None = None,
    temporal_frames: int = 0,
    regions: int = 0,
) -> MemoryPlan:
    """The plan for optimising a ``height`` × ``width`` image within ``budget`` (see the module docstring).

    ``history`` is the L-BFGS history the optimiser is configured with; ``host_budget`` the host RAM free for a GPU
    run's
    L-BFGS history, used only when ``host_history_supported``. ``temporal_frames``: the earlier frames a
    sequence frame's temporal term holds it to (their buffers, ``memory_cost.temporal_vectors``). ``regions``: the
    style regions of a run with region masks (``job_plan.region_count``; ``memory_cost.region_held_bytes`` and
    ``region_evaluation_bytes``).
    """
    layers = tuple(dict.fromkeys((*style_layers, *content_layers)))
    if not layers:
        raise ValueError("a plan needs at least one style or content layer")
    cost = cost or EvaluationCost.for_device(device_type)
    sizing = _Sizing(height, width, layers, tuple(content_layers), pooling, precision, cost, temporal_frames,
                     regions, tuple(style_layers))
    steps = economy_ladder(optimizer, history, tuple(style_layers), tuple(content_layers), device_type, host_budget,
                           host_history_supported, height * width)
    plans = [(state, sizing.plan(state, targets, budget)) for state, targets in steps]
    for state, plan in plans:  # the whole image with a shorter L-BFGS history before any blocks
        if state.optimizer == "lbfgs" and not state.host_history and plan is not None and plan.block_size is None:
            return plan
    fallback: MemoryPlan | None = None
    fallback_block = 0
    for _, plan in plans:
        if plan is None:
            continue
        if plan.block_size is None or sizing.overhead(plan.block_size) <= MAX_CROP_OVERHEAD:
            return plan  # the whole image, or efficient blocks
        if plan.block_size > fallback_block:
            fallback, fallback_block = plan, plan.block_size
    if fallback is not None:
        return fallback
    state, targets = steps[-1]
    needed = sizing.fixed_bytes(state, targets) + sizing.block_bytes(sizing.grid)
    raise MemoryBudgetTooSmall(
        f"{width}×{height} needs at least {_gib(needed)} (the smallest blocks, {state.describe()}), "
        f"but the budget is {_gib(budget.bytes)} ({budget.source}): allow more memory or choose a smaller size")


def smaller_blocks(plan: MemoryPlan, *, style_layers: Collection[str], content_layers: Collection[str] = (),
                   pooling: str = "avg", precision: str = "fp32", device_type: str = "cpu",
                   cost: EvaluationCost | None = None, temporal_frames: int = 0,
                   regions: int = 0) -> MemoryPlan | None:
    """The plan to retry with after an evaluation ran out of memory: blocks of half the side (from the
    whole image: half its longest side), the same optimiser and content targets; None when the blocks
    are already the smallest the layers allow. Its predicted peak is the model's, whatever the budget."""
    layers = tuple(dict.fromkeys((*style_layers, *content_layers)))
    sizing = _Sizing(plan.height, plan.width, layers, tuple(content_layers), pooling, precision,
                     cost or EvaluationCost.for_device(device_type), temporal_frames, regions, tuple(style_layers))
    current = plan.block_size if plan.path == "blocks" and plan.block_size else max(plan.height, plan.width)
    if current <= sizing.grid:
        return None
    grid = sizing.grid_for(current // 2)
    targets = plan.content_targets if plan.content_targets != "none" or not content_layers else "stored"
    return MemoryPlan(plan.height, plan.width, "blocks", grid.block_size, grid.margin, len(grid.blocks()),
                      (grid.interior_side(plan.height), grid.interior_side(plan.width)), plan.optimizer, targets,
                      sizing.fixed_bytes(plan.optimizer, targets) + sizing.block_bytes(grid.block_size), plan.budget)


def economy_ladder(optimizer: str, history: int, style_layers: tuple[str, ...], content_layers: tuple[str, ...],
            device_type: str, host_budget: int, host_history_supported: bool,
            pixels: int) -> list[tuple[OptimizerState, str]]:
    """The economies, cheapest sacrifice first: (optimiser state, content targets) pairs."""
    if optimizer == "adam":
        states = [OptimizerState("adam")]
    else:
        states = [OptimizerState("lbfgs", history)]
        states += [OptimizerState("lbfgs", h)
                   for h in dict.fromkeys(max(1, round(history * f)) for f in HISTORY_FRACTIONS)
                   if h < history]
        host_bytes = 2 * history * VECTOR_BYTES_PER_PIXEL * pixels
        if host_history_supported and device_type != "cpu" and host_bytes <= host_budget:
            states.append(OptimizerState("lbfgs", history, host_history=True))
        states.append(OptimizerState("adam"))
    if not content_layers:
        return [(state, "none") for state in states]
    if recompute_share(style_layers, content_layers) < RECOMPUTE_CHEAP_SHARE:
        return [(states[0], "stored")] + [(state, "recomputed") for state in states]
    return [(state, "stored") for state in states] + [(states[-1], "recomputed")]


@dataclass(frozen=True)
class _Sizing:
    height: int
    width: int
    layers: tuple[str, ...]
    content_layers: tuple[str, ...]
    pooling: str
    precision: str
    cost: EvaluationCost
    temporal_frames: int = 0
    regions: int = 0
    style_layers: tuple[str, ...] = ()

    @property
    def pixels(self) -> int:
        return self.height * self.width

    @property
    def grid(self) -> int:
        return layer_grid(self.layers)[0]

    def floats(self) -> float:
        return activation_floats(self.layers, self.pooling, self.content_layers, element_bytes(self.precision) == 2)

    def fixed_bytes(self, state: OptimizerState, targets: str) -> int:
        """Image-sized buffers: the images, the optimiser's state on the device, stored content targets, the
        temporal term's targets, the region masks' guides."""
        per_pixel: float = ((IMAGE_VECTORS + state.device_vectors() + temporal_vectors(self.temporal_frames))
                            * VECTOR_BYTES_PER_PIXEL)
        if targets == "stored":
            per_pixel += stored_target_bytes_per_pixel(self.content_layers)
        return int(per_pixel * self.pixels) + region_held_bytes(self.regions, self.style_layers, self.pixels)

    def whole_bytes(self) -> int:
        tv = WHOLE_IMAGE_TV_VECTORS * VECTOR_BYTES_PER_PIXEL * self.pixels
        regions = region_evaluation_bytes(self.regions, self.style_layers, self.pixels)
        return self.cost.bytes(self.pixels, self.floats(), element_bytes(self.precision)) + tv + regions

    def grid_for(self, block: int) -> BlockGrid:
        return BlockGrid.for_layers(self.height, self.width, self.layers, block)

    def block_bytes(self, block: int) -> int:
        grid = self.grid_for(block)
        crop = grid.crop_side(self.height) * grid.crop_side(self.width)
        return (self.cost.bytes(crop, self.floats(), element_bytes(self.precision), blocks=True)
                + region_evaluation_bytes(self.regions, self.style_layers, crop))

    def overhead(self, block: int) -> float:
        """Crop area over interior area of the largest block: the work spent on margins."""
        grid = self.grid_for(block)
        interior = grid.interior_side(self.height) * grid.interior_side(self.width)
        return grid.crop_side(self.height) * grid.crop_side(self.width) / interior

    def plan(self, state: OptimizerState, targets: str, budget: Budget) -> MemoryPlan | None:
        """Whole image if it fits with this state (targets stored), else the largest block that fits; None if none."""
        margin = layer_grid(self.layers)[1]
        whole_targets = "stored" if self.content_layers else "none"
        if targets in ("stored", "none"):
            peak = self.fixed_bytes(state, whole_targets) + self.whole_bytes()
            if peak <= budget.bytes:
                return MemoryPlan(self.height, self.width, "whole", None, margin, 1, (self.height, self.width), state,
                                  whole_targets, peak, budget)
        room = budget.bytes - self.fixed_bytes(state, targets)
        step = self.grid
        largest = math.ceil(max(self.height, self.width) / step) * step
        for block in range(largest, step - 1, -step):  # a few hundred steps of arithmetic at most
            if self.block_bytes(block) <= room:
                grid = self.grid_for(block)
                peak = self.fixed_bytes(state, targets) + self.block_bytes(block)
                return MemoryPlan(self.height, self.width, "blocks", grid.block_size, margin, len(grid.blocks()),
                                  (grid.interior_side(self.height), grid.interior_side(self.width)),
                                  state, targets, peak, budget)
        return None


def _gib(value: int) -> str:
    return f"{value / 2**30:.2f} GiB"

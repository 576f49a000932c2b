"""What a run will do, decided before any tensor work: the terms, the output size, the scales and
their iterations, and each scale's memory plan (whole image or blocks, the optimiser's state).

The plan is logged at the start of every job (``JobPlan.describe``), so that a slow or refused run
can be understood from the log: which sizes, how many iterations each, which path and the
predicted peak against the budget.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .imaging import split_alpha
from .layers import LAYER_INDEX, LAYER_NAMES
from .memory_budget import Budget, memory_budget
from .memory_plan import MemoryPlan, plan_memory, smaller_blocks
from .optimize import LBFGS_HISTORY
from .params import PARAM_SPECS, ParamError, StyleParams, plan_inputs
from .schedule import Scale, schedule
from .sizes import output_size

#: No working side below this, whatever the layers (the smallest ``size`` a request may ask for).
MIN_SIDE = int(PARAM_SPECS["size"].minimum or 1)


def smallest_side(layers: Sequence[str]) -> int:
    """The shortest image side whose feature maps stay at least one pixel down to the deepest of
    ``layers``: 2^k for the k poolings (each halving, rounding down) up to and including it."""
    if not layers:
        return MIN_SIDE
    deepest = max(LAYER_INDEX[name] for name in layers)
    poolings = sum(1 for name in LAYER_NAMES[: deepest + 1] if name.startswith("pool"))
    return max(MIN_SIDE, 1 << poolings)


@dataclass
class JobPlan:
    content_rgb: torch.Tensor | None
    alpha: torch.Tensor | None
    content_layers: tuple[str, ...]
    style_layers: tuple[str, ...]
    blend: tuple[float, ...]  # sums to 1
    scales: list[Scale]
    memory: list[MemoryPlan]  # one per scale
    temporal_frames: int = 0  # the earlier frames a sequence frame is held to: their buffers are planned for
    regions: int = 0  # the style loss's regions (region masks, ``region_count``): their guides are planned for

    @property
    def smallest(self) -> int:
        return smallest_side(self.content_layers + self.style_layers)

    def fits(self, headroom: float) -> bool:
        """Whether every scale's predicted peak, ``headroom`` times over, fits that scale's budget: room for
        what the plan does not predict (a heap that keeps freed blocks, ``heap_threshold.freed_blocks_kept``)."""
        return all(headroom * m.predicted_peak <= m.budget.bytes for m in self.memory)

    def describe(self) -> list[str]:
        """Lines for the job log: the schedule, then each scale's memory plan."""
        steps = " → ".join(f"{s.width}×{s.height} ({s.iterations} it.)" for s in self.scales)
        lines = [f"{len(self.scales)} scale{'s' if len(self.scales) > 1 else ''}: {steps}"]
        lines += [f"scale {i}/{len(self.memory)}: {m.describe()}" for i, m in enumerate(self.memory, start=1)]
        return lines


def region_count(style_masks: Sequence[torch.Tensor | None] | None) -> int:
    """The regions ``regions.scale_regions`` makes of a run's masks (one per style, None where a style has none):
    one per masked style, and "the rest" when a style has no mask. What the masks' memory is planned by: an upper
    bound, since the rest vanishes where the masks cover everything."""
    if not style_masks or all(mask is None for mask in style_masks):
        return 0
    return sum(mask is not None for mask in style_masks) + any(mask is None for mask in style_masks)


def plan_job(content: torch.Tensor | None, styles: Sequence[torch.Tensor], params: StyleParams,
             style_blend: Sequence[float] | None, device: torch.device, budget: Budget | None = None,
             temporal_frames: int = 0, regions: int = 0) -> JobPlan:
    """Check the inputs (``plan_inputs``) and plan the run; ``MemoryBudgetTooSmall`` if a scale cannot fit.

    ``temporal_frames``: a sequence frame's earlier frames with a temporal term (their buffers count);
    ``regions``: the style regions of a run with region masks (``region_count``; their guides count)."""
    for style in styles:
        if style.dim() != 3 or style.shape[0] not in (3, 4):
            raise ParamError("style images must be (3|4, H, W) tensors")
    content_rgb, alpha = split_alpha(content.float()) if content is not None else (None, None)
    inputs = plan_inputs(params, has_content=content_rgb is not None, style_count=len(styles),
                         style_blend=style_blend)
    content_size = (content_rgb.shape[-2], content_rgb.shape[-1]) if content_rgb is not None else None
    height, width = output_size(params, content_size)
    # Content and style layers are computed on the optimised image: every scale must reach the deepest.
    smallest = smallest_side(inputs.content_layers + inputs.style_layers)
    scales = schedule(height, width, scales=params.scales, iterations=params.iterations, smallest=smallest)
    budget = budget or memory_budget(device, params.max_memory_bytes)
    options = memory_options(params, inputs.style_layers, inputs.content_layers, device, temporal_frames, regions)
    memory = [plan_memory(s.height, s.width, budget=budget, **options) for s in scales]
    return JobPlan(content_rgb, alpha, inputs.content_layers, inputs.style_layers, inputs.blend, scales, memory,
                   temporal_frames, regions)


def memory_options(params: StyleParams, style_layers: tuple[str, ...], content_layers: tuple[str, ...],
                   device: torch.device, temporal_frames: int = 0, regions: int = 0) -> dict[str, Any]:
    """What ``plan_memory`` needs to know of the run, besides the size and the budget."""
    return dict(style_layers=style_layers, content_layers=content_layers, optimizer=params.optimizer,
                history=LBFGS_HISTORY, pooling=params.pooling, precision=params.precision, device_type=device.type,
                temporal_frames=temporal_frames, regions=regions)


def shrink(plan: JobPlan, params: StyleParams, device: torch.device, memory: MemoryPlan) -> MemoryPlan | None:
    """``memory_plan.smaller_blocks`` for this run's layers and settings (the retry after running out of memory),
    with the plan's temporal frames and regions, so the retry's prediction still counts their buffers."""
    options = memory_options(params, plan.style_layers, plan.content_layers, device, plan.temporal_frames,
                             plan.regions)
    return smaller_blocks(memory, style_layers=options["style_layers"], content_layers=options["content_layers"],
                          pooling=options["pooling"], precision=options["precision"],
                          device_type=options["device_type"], temporal_frames=options["temporal_frames"],
                          regions=options["regions"])

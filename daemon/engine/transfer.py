"""One style-transfer run: the plan, coarse-to-fine scales, the optimisation, and the finished image.

Covers all three of the paper's uses with one function: stylization (content and style), content
reconstruction (style weight 0 or no style layers) and texture synthesis (no content image). At
each scale the memory plan (``job_plan``) chooses the whole-image objective or the block-wise one
(the same loss and gradient, in bounded memory); an evaluation that still runs out of memory is
retried with smaller blocks (``oom_retry``).
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypedDict

import torch

from .blockwise import Autocast, BlockwiseObjective, ContentTargets, RecomputedContent, StoredContent
from .device_tuning import LeadingBf16, leading_bf16, on_tuned_device, relative_cost, scale_precision
from .engine_errors import Cancelled, NonFiniteLoss
from .heap_threshold import KEPT_HEAP_HEADROOM, freed_blocks_kept, pin_mmap_threshold
from .imaging import join_alpha, match_colors, preserve_colors, resize, split_alpha
from .job_plan import JobPlan, plan_job, region_count, shrink
from .losses import LossTerms
from .memory_plan import MemoryPlan
from .objective import whole_image_objective
from .oom_retry import RetryingObjective
from .optimize import ENGINE, LBFGS_HISTORY, Carried, Objective, OptimiserSettings, StopRequested, minimise
from .params import StyleParams
from .regions import LayerRegion, checked_masks, layer_regions, scale_regions
from .schedule import Scale, content_weight_factor
from .sizes import fit_longest_side
from .targets import CacheStats, StyleCache, autocast_for, content_features, style_grams, style_targets
from .temporal import TemporalTarget, with_temporal
from .time_left import TimeLeft, evaluation_work
from .vgg import VGG19Features

log = logging.getLogger(__name__)

#: Grey that white-noise starts are centred on, and the noise's standard deviation (in [0, 1] units).
NOISE_MEAN = 0.5
NOISE_STD = 0.1


@dataclass(frozen=True)
class EngineProgress:
    """What the engine reports every ``progress_every`` iterations (and after the last).

    ``scale`` of ``scales`` is the size being optimised (1 the coarsest); ``image`` is capped at
    ``preview_size`` on its longest side; ``seconds_left`` is the estimate from the rate measured so
    far, later (larger) scales counted as dearer, None until one evaluation has been timed.
    """

    iteration: int
    iterations: int
    loss: LossTerms
    elapsed: float
    image: torch.Tensor | None = None
    scale: int = 1
    scales: int = 1
    seconds_left: float | None = None


@dataclass(frozen=True)
class StyleResult:
    image: torch.Tensor
    loss: LossTerms
    iterations: int
    elapsed: float
    style_cache_hits: int = 0
    style_cache_misses: int = 0
    plans: tuple[MemoryPlan, ...] = ()  # the memory plan each scale ran with (after any retry)


@on_tuned_device
def stylize(
    model: VGG19Features,
    content: torch.Tensor | None,
    styles: Sequence[torch.Tensor],
    params: StyleParams,
    *,
    style_blend: Sequence[float] | None = None,
    style_masks: Sequence[torch.Tensor | None] | None = None,
    style_source_masks: Sequence[torch.Tensor | None] | None = None,
    on_progress: Callable[[EngineProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    target_cache: StyleCache | None = None,
    on_plan: Callable[[JobPlan], None] | None = None,
    start_image: torch.Tensor | None = None,
    temporal: Sequence[TemporalTarget] = (),
    optimiser: OptimiserSettings = ENGINE,
) -> StyleResult:
    """Optimise an image whose VGG19 content features match ``content`` and whose Gram matrices match ``styles``.

    ``style_blend`` weighs the style images (one weight each, default equal). ``params`` is valid by
    construction; what depends on the inputs is checked here by ``plan_inputs``, the same check the
    daemon makes before it accepts a job. The plan (scales, memory) is logged on this module's logger,
    or handed to ``on_plan`` instead (the daemon logs it as one line labelled with its job).

    A sequence's frame t: ``start_image`` (3, H, W) replaces ``params.init`` (the warped previous
    result), and ``temporal`` adds Ruder et al.'s term with ``params.temporal_weight`` at every scale
    (``engine/temporal.py``), the targets resized to each scale's size.

    Spatial control (Gatys et al. 2017): ``style_masks[i]``, a float tensor (1, H, W) in [0, 1] at the
    content's input size or None, is style i's region; ``style_source_masks[i]``, in style i's own frame,
    the part of style image i its style is taken from. Semantics in ``engine/region_masks.py``; no masks
    is the unmasked run bit for bit.

    ``optimiser``: the box, the trust region and what a scale hands the next (``optimize.ENGINE``; the
    parity checks pass ``optimize.PAPER``, the benches their variants).
    """
    started = time.perf_counter()
    masks, sources = checked_masks(style_masks, style_source_masks,
                                   content_size=_size_of(content) if content is not None else None,
                                   style_sizes=[_size_of(s) for s in styles])
    if params.preserve_color == "histogram" and content is not None:
        styles = _histogram_matched(styles, split_alpha(content.float())[0], masks, sources)
    device = model.device
    if params.max_memory and device.type == "cpu":  # the budget caps RSS: freed tensors must leave the process
        pin_mmap_threshold()
    plan = plan_job(content, styles, params, style_blend, device,
                    temporal_frames=len(temporal) if params.temporal_weight else 0, regions=region_count(masks))
    if on_plan is not None:
        on_plan(plan)
    else:
        for line in plan.describe():
            log.info("plan: %s", line)
    # a CPU job without a budget keeps its freed blocks for the next evaluation (heap_threshold.py)
    with freed_blocks_kept(device.type == "cpu" and not params.max_memory
                           and plan.fits(KEPT_HEAP_HEADROOM)):
        stats = CacheStats()
        generator = torch.Generator().manual_seed(params.seed)
        # each size's network precision: bf16 at the coarse sizes under "auto" where the device computes it natively
        precisions = [scale_precision(params.precision, device, final=i + 1 == len(plan.scales),
                                      coarse_bf16=optimiser.coarse_bf16) for i in range(len(plan.scales))]
        # and a coarse-to-fine run's output size's first evaluations, against its float32 targets
        iterations = [s.iterations for s in plan.scales]
        in_bf16 = leading_bf16(params.precision, device, optimiser.output_bf16, iterations)
        clock = TimeLeft([evaluation_work(m, plan.style_layers, plan.content_layers) * relative_cost(p, device)
                          for m, p in zip(plan.memory, precisions)], iterations,
                         cheap=[(n, relative_cost("bf16", device)) for n in in_bf16])
        preview = _Previews(plan, params)

        working_dtype = torch.promote_types(model.dtype, torch.float32)
        x: torch.Tensor | None = None
        iteration_offset = 0
        last_terms: dict[str, torch.Tensor] = {}
        used: list[MemoryPlan] = []
        learnt: Carried | None = None
        for index, (scale, memory) in enumerate(zip(plan.scales, plan.memory)):
            content_at = (resize(plan.content_rgb, scale.size).unsqueeze(0).to(device)
                          if plan.content_rgb is not None else None)
            precision = precisions[index]  # the targets' precision at this size, and its evaluations' but below
            autocast = autocast_for(precision, device)
            leading = LeadingBf16(device, in_bf16[index]) if in_bf16[index] else None
            targets = _ScaleTargets(model, plan, params, scale, content_at, autocast)
            style_options: _StyleOptions = dict(
                output=scale.size, style_scale=params.style_scale, smallest=plan.smallest, pooling=params.pooling,
                precision=precision, autocast=autocast, cache=target_cache, stats=stats, source_masks=sources,
                block_size=memory.block_size if memory.path == "blocks" else max(scale.size))
            style: StyleTerms
            if masks is None:
                style = style_targets(model, styles, plan.blend, plan.style_layers, **style_options)
            else:  # spatial control: each region against its own style's Gram (engine/regions.py)
                grams = style_grams(model, styles, plan.style_layers, **style_options) if plan.style_layers else []
                style = layer_regions(scale_regions(masks, plan.blend, scale.size), grams, plan.style_layers, device,
                                      working_dtype) if grams else {}
            # the image is optimised in the network's precision (a float64 network: a float64 image and optimiser)
            given = x if x is not None or start_image is None else start_image[:3].float().unsqueeze(0)
            start = _start_image(given, scale, content_at, styles, params, generator,
                                 optimiser.upsampling).to(device, working_dtype)
            x = None  # the last scale's image lives on only in the start
            held = tuple(t.at(scale.size, device, working_dtype) for t in temporal) if params.temporal_weight else ()

            content_weight = params.content_weight * content_weight_factor(scale, plan.scales[-1])

            def build(m: MemoryPlan, _targets: _ScaleTargets = targets, _style: StyleTerms = style,
                      _content_weight: float = content_weight, _held: tuple[TemporalTarget, ...] = held,
                      _autocast: Autocast = leading or autocast) -> Objective:
                return with_temporal(_objective(model, params, m, _targets, _style, _autocast, _content_weight), _held,
                                     params.temporal_weight)

            def replanned(m: MemoryPlan, why: str, _i: int = index) -> None:
                log.warning("scale %d/%d ran out of memory (%s); retrying with %s", _i + 1, len(plan.scales), why,
                            m.describe())

            objective = RetryingObjective(build, memory, lambda m: shrink(plan, params, device, m), replanned)

            def report(done: int, image: torch.Tensor, terms: dict[str, torch.Tensor], _offset: int = iteration_offset,
                       _scale: int = index + 1, _leading: LeadingBf16 | None = leading) -> None:
                if _leading is not None:
                    _leading.evaluated()
                seconds_left = clock.evaluated()
                iteration = _offset + done
                if on_progress is None:
                    return
                if iteration % params.progress_every and iteration != params.iterations:
                    return
                loss = _terms(terms, iteration)
                image_out = preview(image[0]) if params.preview else None
                on_progress(EngineProgress(iteration, params.iterations, loss, time.perf_counter() - started,
                                           image_out, _scale, len(plan.scales), seconds_left))

            clock.start_scale(index)
            try:
                outcome = minimise(objective, start, scale.iterations, memory.optimizer.optimizer, params.learning_rate,
                                   on_evaluation=report, should_stop=should_stop,
                                   history_size=memory.optimizer.history or LBFGS_HISTORY, settings=optimiser,
                                   carried=learnt)
            except StopRequested as stop:
                raise Cancelled(iteration_offset + stop.evaluations) from None
            used.append(objective.plan)
            del start, objective, targets, style, held, leading
            x = outcome.image
            last_terms = outcome.terms
            learnt = outcome.learnt if index + 1 < len(plan.scales) else None
            iteration_offset += outcome.evaluations

        assert x is not None
        return StyleResult(
            image=_finish(x[0], plan, params),
            loss=_terms(last_terms, iteration_offset),
            iterations=iteration_offset,
            elapsed=time.perf_counter() - started,
            style_cache_hits=stats.hits,
            style_cache_misses=stats.misses,
            plans=tuple(used),
        )


# ---------------------------------------------------------------------- one scale's pieces
class _ScaleTargets:
    """The content targets of one scale, computed once, in the form a memory plan asks for."""

    def __init__(self, model: VGG19Features, plan: JobPlan, params: StyleParams, scale: Scale,
                 content: torch.Tensor | None, autocast: Autocast) -> None:
        self.model, self.plan, self.params, self.content, self.autocast = model, plan, params, content, autocast
        self.features: dict[str, torch.Tensor] | None = None

    def stored(self, block_size: int | None) -> dict[str, torch.Tensor]:
        """P^l for the whole image (block by block with ``block_size``), kept for the scale's evaluations."""
        if self.features is None:
            self.features = (content_features(self.model, self.content, self.plan.content_layers, self.params.pooling,
                                              self.autocast, block_size)
                             if self.content is not None and self.plan.content_layers else {})
        return self.features

    def recomputed(self) -> RecomputedContent | None:
        if self.content is None or not self.plan.content_layers:
            return None
        return RecomputedContent(self.model, self.content, self.plan.content_layers, self.params.pooling,
                                 self.autocast)


class _StyleOptions(TypedDict):
    """How a scale's style Gram targets are computed (``targets.style_targets`` and ``style_grams`` alike)."""

    output: tuple[int, int]
    style_scale: float
    smallest: int
    pooling: str
    precision: str
    autocast: Autocast
    cache: StyleCache | None
    stats: CacheStats
    block_size: int | None
    source_masks: Sequence[torch.Tensor | None] | None


#: A scale's style terms: the (blended) Gram target per layer, or with region masks each layer's regions.
StyleTerms = dict[str, torch.Tensor] | dict[str, list[LayerRegion]]


class _Terms(TypedDict):
    """What the whole-image and the block-wise objectives share: the loss's terms and how features are made."""

    style_targets: Mapping[str, torch.Tensor]
    style_regions: Mapping[str, Sequence[LayerRegion]]
    layer_weights: Mapping[str, float]
    content_weight: float
    style_weight: float
    tv_weight: float
    pooling: str
    autocast: Autocast


def _objective(model: VGG19Features, params: StyleParams, memory: MemoryPlan, targets: _ScaleTargets,
               style: StyleTerms, autocast: Autocast, content_weight: float) -> Objective:
    """The objective ``memory`` chooses: on the whole image, or block by block with its block size.

    ``content_weight``: α at this scale (``schedule.content_weight_factor``)."""
    weights = {k: v for k, v in params.style_layer_weight_map.items() if k in style}
    plain: dict[str, torch.Tensor] = {k: v for k, v in style.items() if isinstance(v, torch.Tensor)}
    regions: dict[str, list[LayerRegion]] = {k: v for k, v in style.items() if isinstance(v, list)}
    common: _Terms = dict(style_targets=plain, style_regions=regions, layer_weights=weights,
                          content_weight=content_weight, style_weight=params.style_weight,
                          tv_weight=params.tv_weight, pooling=params.pooling, autocast=autocast)
    if memory.path == "whole":
        return whole_image_objective(model, content_targets=targets.stored(None), **common)
    if memory.block_size is None:
        raise ValueError(f"a block-wise plan without a block size: {memory}")
    content: ContentTargets | None
    if memory.content_targets == "recomputed":
        content = targets.recomputed()
    else:
        stored = targets.stored(memory.block_size)
        content = StoredContent(stored) if stored else None
    return BlockwiseObjective(model, block_size=memory.block_size, content=content, **common)


def _start_image(previous: torch.Tensor | None, scale: Scale, content: torch.Tensor | None,
                 styles: Sequence[torch.Tensor], params: StyleParams, generator: torch.Generator,
                 upsampling: str = "bilinear") -> torch.Tensor:
    """The first scale starts from noise, the content or the style; later scales from the upsampled result."""
    if previous is not None:
        return resize(previous, scale.size, growing=upsampling).clamp(0, 1)
    if params.init == "content" and content is not None:
        return content  # minimise() optimises its own contiguous copy
    if params.init == "style" and styles:
        return resize(split_alpha(styles[0].float())[0], scale.size).unsqueeze(0)
    noise = torch.randn((1, 3, *scale.size), generator=generator)
    return NOISE_MEAN + NOISE_STD * noise


def _histogram_matched(styles: Sequence[torch.Tensor], content_rgb: torch.Tensor,
                       masks: Sequence[torch.Tensor | None] | None,
                       sources: Sequence[torch.Tensor | None] | None) -> list[torch.Tensor]:
    """Each style image's colours moved to the content's mean and covariance (``imaging.match_colors``): of the
    style's region where it has one, from its source mask's part of the painting; its alpha kept."""
    out = []
    for i, style in enumerate(styles):
        rgb, alpha = split_alpha(style.float())
        region = masks[i] if masks is not None else None
        source = sources[i] if sources is not None else None
        out.append(join_alpha(match_colors(rgb, content_rgb, source, region), alpha))
    return out


def _size_of(image: torch.Tensor) -> tuple[int, int]:
    return int(image.shape[-2]), int(image.shape[-1])


def _terms(terms: dict[str, torch.Tensor], iteration: int) -> LossTerms:
    """The reported loss terms; a non-finite one ends the run with a message a user can act on."""
    values = {name: float(value.detach()) for name, value in terms.items()}
    if not all(math.isfinite(v) for v in values.values()):
        raise NonFiniteLoss(f"the loss overflowed float32 at iteration {iteration} ({values.get('total')}): "
                            "lower content_weight, style_weight, tv_weight or style_layer_weights "
                            "(or Adam's learning_rate)")
    return LossTerms(total=values.get("total", 0.0), content=values.get("content", 0.0),
                     style=values.get("style", 0.0), tv=values.get("tv", 0.0))


def _finish(image: torch.Tensor, plan: JobPlan, params: StyleParams) -> torch.Tensor:
    """Clamp, optionally restore the content's colours, and reattach its alpha: the image a user sees."""
    rgb = image.detach().float().cpu().clamp(0, 1)
    if params.preserve_color == "luminance" and plan.content_rgb is not None:
        rgb = preserve_colors(rgb, plan.content_rgb)
    return join_alpha(rgb, plan.alpha)


class _Previews:
    """Progress images: the current image scaled down to ``preview_size`` first, then finished as the result is
    (colours, alpha), so that a preview of a 24-megapixel run costs a preview's work."""

    def __init__(self, plan: JobPlan, params: StyleParams) -> None:
        self.plan, self.params = plan, params
        self.small: dict[tuple[int, int], JobPlan] = {}  # the plan with its content and alpha at a preview's size

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        cap = self.params.preview_size
        size = fit_longest_side(height, width, cap) if cap else (height, width)
        if size not in self.small:
            plan = self.plan
            self.small = {size: JobPlan(
                resize(plan.content_rgb, size) if plan.content_rgb is not None else None,
                resize(plan.alpha, size) if plan.alpha is not None else None,
                plan.content_layers, plan.style_layers, plan.blend, plan.scales, plan.memory)}
        return _finish(resize(image.detach(), size), self.small[size], self.params)

"""One style-transfer run: targets, coarse-to-fine scales, the optimisation, and the finished image.

Covers all three of the paper's uses with one function: stylization (content and style), content
reconstruction (style weight 0 or no style layers) and texture synthesis (no content image).
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import time
from dataclasses import dataclass
from typing import Callable, MutableMapping, Sequence

import torch

from .errors import Cancelled, NonFiniteLoss
from .imaging import (
    at_least,
    fit_longest_side,
    join_alpha,
    preserve_colors,
    resize,
    scale_to_longest_side,
    split_alpha,
)
from .layers import LAYER_INDEX, LAYER_NAMES
from .losses import LossTerms, content_loss, gram_matrix, style_loss, total_variation_loss
from .optimize import StopRequested, minimise
from .params import PARAM_SPECS, ParamError, StyleParams, plan_inputs
from .vgg import VGG19Features

#: Grey that white-noise starts are centred on, and the noise's standard deviation (in [0, 1] units).
NOISE_MEAN = 0.5
NOISE_STD = 0.1


@dataclass(frozen=True)
class Progress:
    """What the engine reports every ``progress_every`` iterations (and after the last)."""

    iteration: int
    iterations: int
    loss: LossTerms
    elapsed: float
    image: torch.Tensor | None = None
    scale: int = 1
    scales: int = 1


@dataclass(frozen=True)
class StyleResult:
    image: torch.Tensor
    loss: LossTerms
    iterations: int
    elapsed: float
    style_cache_hits: int = 0
    style_cache_misses: int = 0


def stylize(
    model: VGG19Features,
    content: torch.Tensor | None,
    styles: Sequence[torch.Tensor],
    params: StyleParams,
    *,
    style_blend: Sequence[float] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    target_cache: MutableMapping[tuple, dict[str, torch.Tensor]] | None = None,
) -> StyleResult:
    """Optimise an image whose VGG19 content features match ``content`` and whose Gram matrices match ``styles``.

    ``style_blend`` weighs the style images (one weight each, default equal). ``params`` is valid by
    construction; what depends on the inputs is checked here by ``plan_inputs``, the same check the
    daemon makes before it accepts a job.
    """
    started = time.perf_counter()
    plan = _plan(content, styles, params, style_blend)
    device = model.device
    stats = _CacheStats()
    generator = torch.Generator().manual_seed(params.seed)

    x: torch.Tensor | None = None
    iteration_offset = 0
    last_terms: dict[str, torch.Tensor] = {}
    for scale_index, (size, evaluations) in enumerate(zip(plan.sizes, plan.evaluations), start=1):
        content_at = resize(plan.content_rgb, size).unsqueeze(0).to(device) if plan.content_rgb is not None else None
        content_targets = _content_targets(model, content_at, plan.content_layers, params)
        style_targets = _style_targets(model, styles, plan, params, size, target_cache, stats)
        start = _start_image(x, size, content_at, styles, params, generator).to(device)
        objective = _objective(model, params, plan, content_targets, style_targets)

        def report(done: int, image: torch.Tensor, terms: dict[str, torch.Tensor], _offset: int = iteration_offset,
                   _scale: int = scale_index) -> None:
            iteration = _offset + done
            if on_progress is None:
                return
            if iteration % params.progress_every and iteration != params.iterations:
                return
            loss = _terms(terms, iteration)
            preview = _finish(image[0], plan, params) if params.preview else None
            on_progress(Progress(iteration, params.iterations, loss, time.perf_counter() - started,
                                 preview, _scale, len(plan.sizes)))

        try:
            outcome = minimise(objective, start, evaluations, params.optimizer, params.learning_rate,
                               on_evaluation=report, should_stop=should_stop)
        except StopRequested as stop:
            raise Cancelled(iteration_offset + stop.evaluations) from None
        x = outcome.image
        last_terms = outcome.terms
        iteration_offset += outcome.evaluations

    assert x is not None
    return StyleResult(
        image=_finish(x[0], plan, params),
        loss=_terms(last_terms, iteration_offset),
        iterations=iteration_offset,
        elapsed=time.perf_counter() - started,
        style_cache_hits=stats.hits,
        style_cache_misses=stats.misses,
    )


# ---------------------------------------------------------------------- planning
#: No working side below this, whatever the layers (the smallest ``size`` a request may ask for).
MIN_SIDE = int(PARAM_SPECS["size"].minimum or 1)


@dataclass
class _Plan:
    content_rgb: torch.Tensor | None
    alpha: torch.Tensor | None
    content_layers: tuple[str, ...]
    style_layers: tuple[str, ...]
    blend: tuple[float, ...]  # sums to 1
    sizes: list[tuple[int, int]]
    evaluations: list[int]


def smallest_side(layers: Sequence[str]) -> int:
    """The shortest image side whose feature maps stay at least one pixel down to the deepest of
    ``layers``: 2^k for the k poolings (each halving, rounding down) up to and including it."""
    if not layers:
        return MIN_SIDE
    deepest = max(LAYER_INDEX[name] for name in layers)
    poolings = sum(1 for name in LAYER_NAMES[: deepest + 1] if name.startswith("pool"))
    return max(MIN_SIDE, 2**poolings)


def _plan(content: torch.Tensor | None, styles: Sequence[torch.Tensor], params: StyleParams,
          style_blend: Sequence[float] | None) -> _Plan:
    """Decide layers, output size, scales and the iteration split before any tensor work."""
    for style in styles:
        if style.dim() != 3 or style.shape[0] not in (3, 4):
            raise ParamError("style images must be (3|4, H, W) tensors")
    content_rgb, alpha = split_alpha(content.float()) if content is not None else (None, None)
    inputs = plan_inputs(params, has_content=content_rgb is not None, style_count=len(styles),
                         style_blend=style_blend)
    if content_rgb is not None:
        height, width = fit_longest_side(content_rgb.shape[-2], content_rgb.shape[-1], params.size)
    else:
        height, width = params.height or params.size, params.width or params.size
    # Content and style layers are computed on the optimised image: every scale must reach the deepest.
    smallest = smallest_side(inputs.content_layers + inputs.style_layers)
    sizes = []
    for k in range(params.scales):
        factor = 2 ** (params.scales - 1 - k)
        sizes.append(at_least((round(height / factor), round(width / factor)), smallest))
    share, extra = divmod(params.iterations, params.scales)
    evaluations = [share] * (params.scales - 1) + [share + extra]
    return _Plan(
        content_rgb=content_rgb,
        alpha=alpha,
        content_layers=inputs.content_layers,
        style_layers=inputs.style_layers,
        blend=inputs.blend,
        sizes=sizes,
        evaluations=evaluations,
    )


# ---------------------------------------------------------------------- targets
def _content_targets(model: VGG19Features, content: torch.Tensor | None, layers: tuple[str, ...],
                     params: StyleParams) -> dict[str, torch.Tensor]:
    if content is None or not layers:
        return {}
    with torch.no_grad(), _precision(params.precision, model.device):
        features = model(content, layers, params.pooling)
    return {name: value.detach().float() for name, value in features.items()}


@dataclass
class _CacheStats:
    hits: int = 0
    misses: int = 0


def _style_targets(model: VGG19Features, styles: Sequence[torch.Tensor], plan: _Plan, params: StyleParams,
                   size: tuple[int, int], cache: MutableMapping | None, stats: _CacheStats) -> dict[str, torch.Tensor]:
    """The blended Gram targets A^l; each style's Grams are memoised in ``cache`` by content digest and settings."""
    if not plan.style_layers:
        return {}
    smallest = smallest_side(plan.style_layers)
    style_longest = max(smallest, round(max(size) * params.style_scale))
    blended: dict[str, torch.Tensor] = {}
    for style, weight in zip(styles, plan.blend):
        rgb = split_alpha(style.float())[0]
        # A wide panorama's short side is clamped as the content's is, so the deepest layer has a pixel.
        style_size = at_least(scale_to_longest_side(rgb.shape[-2], rgb.shape[-1], style_longest), smallest)
        key = (_digest(rgb), style_size, plan.style_layers, params.pooling, params.precision,
               model.weights_format, model.description, id(model))
        grams = cache.get(key) if cache is not None else None
        if grams is None:
            stats.misses += 1
            with torch.no_grad(), _precision(params.precision, model.device):
                features = model(resize(rgb, style_size).unsqueeze(0).to(model.device), plan.style_layers, params.pooling)
            with torch.no_grad():
                grams = {name: gram_matrix(features[name]) for name in plan.style_layers}
            if cache is not None:
                cache[key] = grams
        else:
            stats.hits += 1
        for name, gram in grams.items():
            contribution = gram * weight
            blended[name] = blended[name] + contribution if name in blended else contribution
    return blended


def _digest(image: torch.Tensor) -> str:
    array = image.detach().to("cpu", torch.float32).contiguous().numpy()
    return hashlib.blake2b(array.tobytes(), digest_size=16).hexdigest() + str(tuple(array.shape))


# ---------------------------------------------------------------------- optimisation pieces
def _start_image(previous: torch.Tensor | None, size: tuple[int, int], content: torch.Tensor | None,
                 styles: Sequence[torch.Tensor], params: StyleParams, generator: torch.Generator) -> torch.Tensor:
    """The first scale starts from noise, the content or the style; later scales from the upsampled result."""
    if previous is not None:
        return resize(previous.cpu(), size).clamp(0, 1)
    if params.init == "content" and content is not None:
        return content  # minimise() optimises its own contiguous copy
    if params.init == "style" and styles:
        return resize(split_alpha(styles[0].float())[0], size).unsqueeze(0)
    noise = torch.randn((1, 3, *size), generator=generator)
    return NOISE_MEAN + NOISE_STD * noise


def _objective(model: VGG19Features, params: StyleParams, plan: _Plan, content_targets: dict[str, torch.Tensor],
               style_targets: dict[str, torch.Tensor]):
    layers = set(content_targets) | set(style_targets)
    layer_weights = {k: v for k, v in params.style_layer_weight_map.items() if k in style_targets}
    alpha, beta, tv_weight = params.content_weight, params.style_weight, params.tv_weight

    def objective(x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        with _precision(params.precision, x.device):
            features = model(x, layers, params.pooling)
        zero = torch.zeros((), device=x.device)
        content = sum((content_loss(features[name], target) for name, target in content_targets.items()), zero)
        style = style_loss(features, style_targets, layer_weights) if style_targets else zero
        tv = total_variation_loss(x) if tv_weight else zero
        terms = {"content": alpha * content, "style": beta * style, "tv": tv_weight * tv}
        total = terms["content"] + terms["style"] + terms["tv"]
        terms["total"] = total
        return total, terms

    return objective


def _terms(terms: dict[str, torch.Tensor], iteration: int) -> LossTerms:
    """The reported loss terms; a non-finite one ends the run with a message a user can act on."""
    values = {name: float(value.detach()) for name, value in terms.items()}
    if not all(math.isfinite(v) for v in values.values()):
        raise NonFiniteLoss(f"the loss overflowed float32 at iteration {iteration} ({values.get('total')}): "
                            "lower content_weight, style_weight, tv_weight or style_layer_weights "
                            "(or Adam's learning_rate)")
    return LossTerms(total=values.get("total", 0.0), content=values.get("content", 0.0),
                     style=values.get("style", 0.0), tv=values.get("tv", 0.0))


def _finish(image: torch.Tensor, plan: _Plan, params: StyleParams) -> torch.Tensor:
    """Clamp, optionally restore the content's colours, and reattach its alpha: the image a user sees."""
    rgb = image.detach().float().cpu().clamp(0, 1)
    if params.preserve_color and plan.content_rgb is not None:
        rgb = preserve_colors(rgb, plan.content_rgb)
    return join_alpha(rgb, plan.alpha)


def _precision(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast for fp16/bf16 (the convolutions); Gram matrices and losses stay float32."""
    if precision in ("fp16", "bf16"):
        dtype = torch.float16 if precision == "fp16" else torch.bfloat16
        return torch.autocast(device_type=device.type, dtype=dtype)
    return contextlib.nullcontext()

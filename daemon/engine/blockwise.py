"""The exact loss and its exact gradient, computed block by block, so memory follows the block, not the image.

Galerne, Raad, Lezama & Morel, *Scaling Painting Style Transfer* (arXiv 2212.13459). Every term of
the paper's loss is a sum over positions: the Gram sums F Fᵀ and the content loss ½Σ(F − P)². So:

1. **pass 1** (no gradient, only when there are style layers): for each block, run VGG19 on its crop
   and add the interior's Gram sums; the global Grams g^l, hence E_l and dE_l/dg^l, are then known;
2. **pass 2**: for each block again, run VGG19 on the crop with gradients and backpropagate the
   block's share, ⟨F_b F_bᵀ, β w_l dE_l/dg^l / M_l⟩ + α ½Σ(F_b − P_b)², whose gradient with respect
   to F_b is β w_l (dE/dg + dE/dgᵀ) F_b / M_l plus α (F_b − P_b); add the crop's input gradient
   (interior and margin) into the image's gradient;
3. the total-variation term is a sum of neighbouring differences: each block adds its interior's.

``block_grid`` places the blocks so that interior features equal the whole image's: the result is the
whole-image loss and gradient up to float rounding (``tests/test_engine_blockwise.py``). Losses and
Grams are computed outside autocast, in at least float32, exactly as ``losses`` does.

Content targets P^l: ``StoredContent`` keeps them (channels/4^k float32 values per image pixel:
32 B/px for relu4_2, 256 B/px for relu1_1) and ``RecomputedContent`` recomputes them from the
content crop per block (one extra forward pass to the content layer per block and evaluation).
docs/PERFORMANCE.md gives the measured costs; ``memory_plan`` chooses between them.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

import torch

from .block_grid import Block, BlockGrid
from .layers import poolings_before
from .losses import at_least_float32, content_loss, gram_sum, guided_gram_sum, style_layer_loss, total_variation_loss
from .regions import LayerRegion
from .vgg import VGG19Features

#: Pass 1's result for pass 2: per style layer, each region's guide (None: unguided) and S_l,r.
StyleShares = dict[str, list[tuple[torch.Tensor | None, torch.Tensor]]]

#: A factory of the context the network runs in (``torch.autocast`` for fp16/bf16, else a no-op).
Autocast = Callable[[], AbstractContextManager[object]]


class ContentTargets(Protocol):
    """The content features P^l, handed out one block's interior at a time."""

    layers: tuple[str, ...]

    def for_block(self, block: Block) -> dict[str, torch.Tensor]:
        """P^l on ``block``'s interior, for each content layer."""


class StoredContent:
    """Whole-image content features kept in memory (what the whole-image path computes once per scale)."""

    def __init__(self, features: Mapping[str, torch.Tensor]) -> None:
        self.features = dict(features)
        self.layers = tuple(self.features)

    def for_block(self, block: Block) -> dict[str, torch.Tensor]:
        return {name: block.image_features(value, poolings_before(name)) for name, value in self.features.items()}


class RecomputedContent:
    """Content features recomputed from the content image's crop for every block: no image-sized feature maps."""

    def __init__(self, model: VGG19Features, content: torch.Tensor, layers: Sequence[str], pooling: str = "avg",
                 autocast: Autocast = contextlib.nullcontext) -> None:
        self.model, self.content, self.layers = model, content, tuple(layers)
        self.pooling, self.autocast = pooling, autocast

    def for_block(self, block: Block) -> dict[str, torch.Tensor]:
        with torch.no_grad(), self.autocast():
            features = self.model(block.crop_of(self.content), self.layers, self.pooling)
        return {name: block.interior_features(value, poolings_before(name)) for name, value in features.items()}


def blockwise_features(model: VGG19Features, image: torch.Tensor, layers: Sequence[str], block_size: int,
                       pooling: str = "avg", autocast: Autocast = contextlib.nullcontext) -> dict[str, torch.Tensor]:
    """Whole-image features of ``image`` (1, 3, H, W), computed block by block (in at least float32).

    For StoredContent at sizes where one forward pass over the whole image would not fit.
    """
    height, width = image.shape[-2:]
    grid = BlockGrid.for_layers(height, width, layers, block_size)
    out: dict[str, torch.Tensor] = {}
    for block in grid.blocks():
        with torch.no_grad(), autocast():
            features = model(block.crop_of(image), layers, pooling)
        for name in layers:
            level = poolings_before(name)
            part = at_least_float32(block.interior_features(features[name], level))
            if name not in out:
                channels = part.shape[1]
                out[name] = torch.empty((1, channels, height >> level, width >> level), dtype=part.dtype,
                                        device=part.device).contiguous(memory_format=torch.channels_last)
            block.image_features(out[name], level).copy_(part)
    return out


def blockwise_grams(model: VGG19Features, image: torch.Tensor, layers: Sequence[str], block_size: int,
                    pooling: str = "avg", autocast: Autocast = contextlib.nullcontext,
                    guides: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """The M-normalised Gram matrices g^l of ``image`` (1, 3, H, W), computed block by block; with ``guides``
    (a style's source mask on each layer's grid) the guided ones, (F∘m)(F∘m)ᵀ / Σ m².

    For style images too large for one forward pass: ``losses.gram_matrix`` of the whole image's
    features, up to float rounding.
    """
    height, width = image.shape[-2:]
    grid = BlockGrid.for_layers(height, width, layers, block_size)
    per_layer = {name: [guides[name] if guides is not None else None] for name in layers}
    sums = _gram_sums(model, image, grid.blocks(), per_layer, pooling, autocast)
    if guides is not None:
        return {name: totals[0] / float(guides[name].pow(2).sum()) for name, totals in sums.items()}
    return {name: totals[0] / ((height >> poolings_before(name)) * (width >> poolings_before(name)))
            for name, totals in sums.items()}


def _gram_sums(model: VGG19Features, image: torch.Tensor, blocks: Sequence[Block],
               guides: Mapping[str, Sequence[torch.Tensor | None]], pooling: str,
               autocast: Autocast) -> dict[str, list[torch.Tensor]]:
    """Σ over the blocks' interiors of F Fᵀ per layer, or of (F∘m)(F∘m)ᵀ for each of the layer's guides m
    (whole-image guides on the layer's grid; None: unguided). No gradient."""
    sums: dict[str, list[torch.Tensor]] = {}
    layers = tuple(guides)
    for block in blocks:
        with torch.no_grad():
            with autocast():
                features = model(block.crop_of(image), layers, pooling)
            for name in layers:
                level = poolings_before(name)
                interior = block.interior_features(features[name], level)
                parts = [gram_sum(interior) if guide is None
                         else guided_gram_sum(interior, block.image_features(guide, level))
                         for guide in guides[name]]
                sums[name] = [a + b for a, b in zip(sums[name], parts)] if name in sums else parts
    return sums


class BlockwiseObjective:
    """α·L_content + β·Σ w_l E_l + tv·L_tv and its gradient, evaluated block by block.

    A drop-in for the whole-image objective of ``optimize.minimise``: calling it returns
    ``(total, terms)`` and ``total.backward()`` puts the gradient into ``x.grad``.
    """

    def __init__(
        self,
        model: VGG19Features,
        *,
        block_size: int,
        style_targets: Mapping[str, torch.Tensor] | None = None,
        layer_weights: Mapping[str, float] | None = None,
        content: ContentTargets | None = None,
        content_weight: float = 1.0,
        style_weight: float = 1.0,
        tv_weight: float = 0.0,
        pooling: str = "avg",
        autocast: Autocast = contextlib.nullcontext,
        margin: int | None = None,
        style_regions: Mapping[str, Sequence[LayerRegion]] | None = None,
    ) -> None:
        """``style_targets``: the (blended) M-normalised Grams A^l per style layer; ``layer_weights``: w_l
        (a layer missing or weighted 0 is left out, as ``losses.style_loss`` does). ``style_regions``
        (spatial control, ``engine/regions.py``) replaces ``style_targets`` when given: each region's
        guided Gram sums are sums over positions too. ``margin`` is for tests."""
        targets = dict(style_targets or {})
        regions = {name: list(parts) for name, parts in (style_regions or {}).items() if parts}
        weights = dict(layer_weights or {})
        self.model = model
        self.block_size = block_size
        self.style_regions = {name: regions[name] for name, w in weights.items() if w and name in regions}
        self.style_targets = {name: targets[name] for name, w in weights.items()
                              if w and name in targets and not regions}
        self.layer_weights = {name: weights[name] for name in (*self.style_regions, *self.style_targets)}
        self.content = content if content is not None and content.layers else None
        self.content_weight, self.style_weight, self.tv_weight = content_weight, style_weight, tv_weight
        self.pooling, self.autocast, self.margin = pooling, autocast, margin
        self.layers = tuple(dict.fromkeys((*self.layer_weights, *(self.content.layers if self.content else ()))))
        if not self.layers and not tv_weight:
            raise ValueError("nothing to evaluate: no style targets, no content targets and no TV weight")

    def grid(self, height: int, width: int) -> BlockGrid:
        return BlockGrid.for_layers(height, width, self.layers or ("conv1_1",), self.block_size, self.margin)

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        terms, gradient = self.evaluate(x)
        total = with_gradient(x, terms["total"], gradient)
        return total, {**terms, "total": total}

    def evaluate(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """(weighted terms ``content``, ``style``, ``tv``, ``total``; d total / d x) for x (1, 3, H, W)."""
        image = x.detach()
        blocks = self.grid(*image.shape[-2:]).blocks()
        gradient = torch.zeros_like(image, memory_format=torch.contiguous_format)
        zero = torch.zeros((), dtype=at_least_float32(image).dtype, device=image.device)
        style, style_shares = self._style_pass(image, blocks) if self.layer_weights else (zero, {})
        content, tv = zero, zero
        for block in blocks:
            if self.layers:
                content = content + self._backward_block(image, block, style_shares, gradient)
            if self.tv_weight:
                tv = tv + _tv_block(image, block, gradient, self.tv_weight)
        terms = {"content": self.content_weight * content, "style": style, "tv": self.tv_weight * tv}
        terms["total"] = terms["content"] + terms["style"] + terms["tv"]
        return terms, gradient

    # ------------------------------------------------------------------ passes
    def _regions(self, height: int, width: int) -> dict[str, list[LayerRegion]]:
        """The style terms as regions: the given ones, or the whole image unguided (mass M_l, share exactly 1)."""
        if self.style_regions:
            return self.style_regions
        out: dict[str, list[LayerRegion]] = {}
        for name, target in self.style_targets.items():
            level = poolings_before(name)
            positions = (height >> level) * (width >> level)
            out[name] = [LayerRegion(guide=None, mass=float(positions), target=target, positions=positions)]
        return out

    def _style_pass(self, image: torch.Tensor, blocks: list[Block]) -> tuple[torch.Tensor, StyleShares]:
        """Pass 1: the global (guided) Grams, β·Σ w_l Σ_r share_r E_l, and each region's
        S_l,r = β w_l share_r (dE_l/dG_r) / mass_r for pass 2 (share 1 and mass M_l unguided)."""
        regions = self._regions(*image.shape[-2:])
        guides = {name: [r.guide for r in parts] for name, parts in regions.items()}
        sums = _gram_sums(self.model, image, blocks, guides, self.pooling, self.autocast)
        style = torch.zeros((), dtype=next(iter(sums.values()))[0].dtype, device=image.device)
        shares: StyleShares = {}
        for name, totals in sums.items():
            weight = self.style_weight * self.layer_weights[name]
            shares[name] = []
            for region, total in zip(regions[name], totals):
                gram = (total / region.mass).requires_grad_(True)
                with torch.enable_grad():
                    energy = style_layer_loss(gram, region.target.to(gram))
                    (d_gram,) = torch.autograd.grad(energy, gram)
                scaled = weight * region.share
                style = style + scaled * energy.detach()
                shares[name].append((region.guide, scaled * d_gram / region.mass))
        return style, shares

    def _backward_block(self, image: torch.Tensor, block: Block, style_shares: StyleShares,
                        gradient: torch.Tensor) -> torch.Tensor:
        """Pass 2 for one block: backpropagate its share; returns its unweighted content loss."""
        rows, cols = block.crop
        # Targets first: a recomputing source's forward pass then ends before this block's graph is built.
        targets = self.content.for_block(block) if self.content is not None else {}
        crop = image[..., rows, cols].clone().requires_grad_(True)
        with torch.enable_grad():
            with self.autocast():
                features = self.model(crop, self.layers, self.pooling)
            share = torch.zeros((), dtype=gradient.dtype, device=image.device)
            for name, parts in style_shares.items():
                level = poolings_before(name)
                interior = block.interior_features(features[name], level)
                for guide, s in parts:
                    gram = (gram_sum(interior) if guide is None
                            else guided_gram_sum(interior, block.image_features(guide, level)))
                    share = share + (gram * s).sum()
            content = torch.zeros_like(share)
            if targets:
                for name, target in targets.items():
                    content = content + content_loss(block.interior_features(features[name], poolings_before(name)),
                                                     target)
                share = share + self.content_weight * content
            (crop_gradient,) = torch.autograd.grad(share, crop)
        gradient[..., rows, cols] += crop_gradient
        return content.detach()


def _tv_block(image: torch.Tensor, block: Block, gradient: torch.Tensor, weight: float) -> torch.Tensor:
    """The TV differences that start in the block's interior (one pixel past it, to the next block), and
    their weighted gradient added into ``gradient``; returns the unweighted sum."""
    height, width = image.shape[-2:]
    rows = slice(block.rows.start, min(block.rows.stop + 1, height))
    cols = slice(block.cols.start, min(block.cols.stop + 1, width))
    part = image[..., rows, cols].clone().requires_grad_(True)
    with torch.enable_grad():
        tv = total_variation_loss(part, block.rows.stop - block.rows.start, block.cols.stop - block.cols.start)
        (part_gradient,) = torch.autograd.grad(weight * tv, part)
    gradient[..., rows, cols] += part_gradient
    return tv.detach()


def with_gradient(x: torch.Tensor, total: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
    """``total`` (detached) as a function of ``x`` whose backward hands autograd ``gradient``."""
    result: torch.Tensor = _PrecomputedGradient.apply(x, total, gradient)  # Function.apply is untyped
    return result


class _PrecomputedGradient(torch.autograd.Function):
    """``total`` as a function of x whose backward hands autograd the gradient already computed block by block.

    So ``total.backward()`` in the optimisation loop fills ``x.grad`` exactly as the whole-image path does.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, value: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
        ctx.gradient = gradient
        return value.detach().clone()

    @staticmethod
    def backward(ctx: Any, upstream: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        gradient = ctx.gradient
        del ctx.gradient  # one backward per evaluation; drop the image-sized buffer with it
        # ×1 is the optimiser's case: hand over the buffer itself rather than an image-sized copy.
        return (gradient if bool(upstream == 1) else gradient * upstream.to(gradient.dtype)), None, None

"""What one evaluation and a run's image-sized buffers cost in memory: the planner's explicit model.

Torch-free arithmetic on VGG19's layer table, in bytes:

- **one evaluation** (a forward pass with gradients and its backward, on the whole image or on one
  block's crop): ``fixed + κ · floats · element_bytes · pixels``. ``floats`` is the activation
  count per input pixel that autograd keeps alive at the worst moment of the backward pass,
  simulated from the layer table (``activation_floats``): every tensor of the forward pass up to
  the current layer, plus the gradient going out and the one coming in. κ and ``fixed`` are
  measured (``bench/blockwise_bench.py --calibrate``; docs/PERFORMANCE.md has the figures).
- **image-sized buffers**: the image, its gradient, the content image, start and result copies;
  the optimiser's state (L-BFGS keeps 2 × history vectors, Adam 2); stored content targets; a
  sequence frame's temporal targets (``temporal_vectors``).
- **region masks** (issue 17, ``regions.py``): what each style region holds for a scale's evaluations
  (``region_held_bytes``: its guides and map, image-sized but not RGB) and adds to each evaluation
  (``region_evaluation_bytes``), per region, measured in docs/PERFORMANCE.md ("Region masks' memory").
"""
from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass

from .layers import LAYER_INDEX, LAYER_NAMES, VGG19_CONFIG, poolings_before

#: Bytes of one image-sized float32 RGB vector, per pixel.
VECTOR_BYTES_PER_PIXEL = 3 * 4
#: Image-sized vectors a run holds besides the optimiser: the image, its gradient, the content image
#: (at the working size, and as given), the start image, a preview or result copy.
IMAGE_VECTORS = 6
#: L-BFGS's vectors besides its history: direction, previous gradient, flat gradient and step temporaries.
LBFGS_WORKING_VECTORS = 6
#: Adam's: two moment estimates and two step temporaries.
ADAM_VECTORS = 4
#: The whole-image path's TV term builds its differences over the whole image.
WHOLE_IMAGE_TV_VECTORS = 4
#: A sequence frame's temporal term, per earlier frame it is held to (issue 15, ``temporal.py``): the warped
#: result (3 floats a pixel) and its certainty (1), each as the caller gives it and again at the working size
#: and dtype (``TemporalTarget.at``), so 2 × 4 floats a pixel.
TEMPORAL_TARGET_VECTORS = 2 * 4 / 3
#: ... and what the term's autograd keeps from its forward to the backward pass: the difference and its square.
TEMPORAL_SAVED_VECTORS = 2


#: A region's map at the scale's size, one float32 a pixel: a masked style's mask as given (held for the run), or
#: for "the rest" 1 − the masks' total; on the first style layer's grid it is that layer's guide itself.
REGION_MAP_BYTES_PER_PIXEL = 4
#: Gram-sized matrices per region and style layer: its target (held), and during each evaluation its guided Gram
#: (kept for the backward) and dE/dG_r (block-wise: the share S_l,r pass 2 reads). Counted once, with the held
#: bytes, since they do not shrink with the block.
REGION_GRAMS = 3


def temporal_vectors(frames: int) -> float:
    """Image-sized vectors a sequence frame's temporal term adds for ``frames`` earlier frames. The earlier
    frames themselves are these buffers only (no network pass); the start image (the warped previous
    result) replaces the noise start and is one of ``IMAGE_VECTORS``."""
    return frames * (TEMPORAL_TARGET_VECTORS + TEMPORAL_SAVED_VECTORS)


def guide_bytes_per_pixel(style_layers: Collection[str]) -> float:
    """One region's guides per input pixel: float32 on every style layer's grid, 2^k × 2^k pixels a value
    (``regions.layer_guides``): 5.33 B/px for the paper's relu1_1…relu5_1."""
    return sum(4 / (1 << 2 * poolings_before(name)) for name in dict.fromkeys(style_layers))


def region_held_bytes(regions: int, style_layers: Collection[str], pixels: int) -> int:
    """What a scale's ``regions`` hold through all its evaluations (``regions.layer_regions``): per region its
    guides on the whole image (the block-wise path slices its blocks' interiors out of them), its map, and its
    Gram-sized terms. ``regions`` counts the loss's regions (``job_plan.region_count``), 0 for an unmasked run."""
    grams = REGION_GRAMS * sum(4 * _channels(name) ** 2 for name in dict.fromkeys(style_layers))
    per_pixel = guide_bytes_per_pixel(style_layers) + REGION_MAP_BYTES_PER_PIXEL
    return int(regions * (per_pixel * pixels + grams))


def region_evaluation_bytes(regions: int, style_layers: Collection[str], pixels: int) -> int:
    """What ``regions`` add to one evaluation over ``pixels`` (the whole image, or a block's crop), beyond the
    unmasked evaluation's ``EvaluationCost``: each region's m² on every style layer's grid, saved for the
    backward (``losses.guided_gram_sum``), and from two regions on one feature-sized float32 buffer at the
    shallowest style layer, where the regions' gradients are summed (256 B/px at relu1_1; one region's
    backward needs no more than the plain Gram's)."""
    if not regions or not style_layers:
        return 0
    shallowest = min(style_layers, key=LAYER_INDEX.__getitem__)
    summed = 4 * _layer_floats(shallowest) if regions > 1 else 0.0
    return int((regions * guide_bytes_per_pixel(style_layers) + summed) * pixels)


@dataclass(frozen=True)
class EvaluationCost:
    """Peak bytes of one evaluation = fixed + κ · activation_floats · element bytes · pixels.

    Measured on the CPU (oneDNN, glibc malloc; docs/PERFORMANCE.md): peak RSS of one evaluation in
    a fresh process against the simulated floats. The whole image: slopes of 0.88–1.13 over avg and
    max pooling, relu3_1 alone and bf16, so κ = 1.15. Blocks: up to 1.37 × the crop's simulated
    activations, because glibc's default allocator keeps the freed memory of many differently sized
    crops in a fragmented heap (1.10 with ``MALLOC_MMAP_THRESHOLD_=131072``), so κ = 1.5 there.
    A GPU's caching allocator and cuDNN workspaces are not measured here: ``for_device`` uses larger
    factors for them until someone measures one (``torch.cuda.max_memory_allocated``).
    """

    kappa: float = 1.15
    block_kappa: float = 1.5
    fixed: int = 96 << 20

    @classmethod
    def for_device(cls, device_type: str) -> EvaluationCost:
        if device_type == "cpu":
            return cls()
        return cls(kappa=1.5, block_kappa=2.0, fixed=512 << 20)

    def bytes(self, pixels: int, floats_per_pixel: float, element_bytes: int, blocks: bool = False) -> int:
        """Peak of one evaluation over ``pixels`` (the whole image, or one block's crop with ``blocks``)."""
        kappa = self.block_kappa if blocks else self.kappa
        return int(self.fixed + kappa * floats_per_pixel * element_bytes * pixels)


def element_bytes(precision: str) -> int:
    """Bytes of one activation: fp16/bf16 autocast halves them."""
    return 2 if precision in ("fp16", "bf16") else 4


def activation_floats(layers: Collection[str], pooling: str = "avg", content_layers: Collection[str] = (),
                      half_precision: bool = False) -> float:
    """Activations per input pixel alive at the worst moment of one forward+backward pass to ``layers``' deepest.

    In units of one activation element (fp32, or fp16/bf16 under autocast). Forward tensors: the
    input crop and its normalised copy; each convolution's output (its ReLU runs in place unless the
    convolution itself is requested, as ``VGG19Features`` does); each pooling's output, with max
    pooling's int64 indices. At backward step i: the forward tensors 0..i, the gradients of tensors
    i and i−1, and the loss gradients of the requested layers at or below i (autograd computes them
    first and holds them until the chain reaches their layer). Throughout: the losses' float32
    operands (under autocast a float32 copy of each requested layer; for each content layer F − P).
    """
    wanted = set(layers)
    loss_unit = 2.0 if half_precision else 1.0  # a float32 value in activation elements
    sizes: list[float] = [3.0, 3.0]
    waiting: list[float] = [0.0, 0.0]  # loss gradients that arrive at each forward tensor
    for name, _, channels, level in _walk(max(layers, key=LAYER_INDEX.__getitem__)):
        floats = channels / 4**level
        if name.startswith("conv") or (name.startswith("relu") and "conv" + name[4:] in wanted):
            sizes.append(floats)
            waiting.append(0.0)
        elif name.startswith("pool"):
            sizes.append(floats * (3 if pooling == "max" else 1))
            waiting.append(0.0)
        if name in wanted:
            waiting[-1] += floats * loss_unit
    waiting[-1] = 0.0  # the deepest layer's loss gradient is where the chain starts, not a second buffer
    peak = max(sum(sizes[: i + 1]) + sizes[i] + sizes[i - 1] + sum(waiting[: i + 1]) for i in range(1, len(sizes)))
    operands = sum(_layer_floats(name) * loss_unit for name in content_layers)
    if half_precision:
        operands += sum(_layer_floats(name) * loss_unit for name in layers)
    return peak + operands


def stored_target_bytes_per_pixel(content_layers: Collection[str]) -> float:
    """Float32 content targets P^l kept for the whole image, per input pixel (relu4_2: 32 B, relu1_1: 256 B)."""
    return sum(4 * _layer_floats(name) for name in content_layers)


def forward_flops_per_pixel(layer: str) -> float:
    """Multiply-adds per input pixel of a forward pass up to ``layer`` (the convolutions'; the rest is noise)."""
    return sum(c_in * c_out * 9 / 4.0**level for name, c_in, c_out, level in _walk(layer) if name.startswith("conv"))


def recompute_share(style_layers: Collection[str], content_layers: Collection[str]) -> float:
    """Extra work of recomputing the content targets per block, as a share of one block-wise evaluation.

    An evaluation is pass 1 (a forward pass to the deepest style layer) and pass 2 (forward and
    backward to the deepest layer, about three forward passes); recomputing adds one forward pass
    to the deepest content layer (relu4_2 with the paper's style layers: about 19 %).
    """
    if not content_layers:
        return 0.0
    deepest_all = max((*style_layers, *content_layers), key=LAYER_INDEX.__getitem__)
    deepest_content = max(content_layers, key=LAYER_INDEX.__getitem__)
    pass_one = forward_flops_per_pixel(max(style_layers, key=LAYER_INDEX.__getitem__)) if style_layers else 0.0
    return forward_flops_per_pixel(deepest_content) / (pass_one + 3 * forward_flops_per_pixel(deepest_all))


def _layer_floats(name: str) -> float:
    """Values per input pixel of one layer's output."""
    *_, (_, _, channels, level) = _walk(name)
    return channels / 4.0**level


def _channels(name: str) -> int:
    """Channels of one layer's output (N_l, a Gram matrix's side)."""
    *_, (_, _, channels, _) = _walk(name)
    return channels


def _walk(last: str) -> Iterator[tuple[str, int, int, int]]:
    """(name, input channels, output channels, pooling level of the output) for each layer up to ``last``."""
    convs = iter(int(c) for c in VGG19_CONFIG if c != "M")
    channels, level = 3, 0
    for name in LAYER_NAMES[: LAYER_INDEX[last] + 1]:
        before = channels
        if name.startswith("conv"):
            channels = next(convs)
        elif name.startswith("pool"):
            level += 1
        yield name, before, channels, level

"""VGG19's layer names as the paper uses them, and their order in torchvision's ``features``.

Kept apart from the network so that parameter checking can name layers without importing torch.
"""
from __future__ import annotations

# Channels per convolution block; "M" marks a pooling layer (torchvision's configuration "E").
VGG19_CONFIG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M",
)


def _layer_names() -> tuple[str, ...]:
    names: list[str] = []
    block, index = 1, 1
    for item in VGG19_CONFIG:
        if item == "M":
            names.append(f"pool{block}")
            block, index = block + 1, 1
        else:
            names += [f"conv{block}_{index}", f"relu{block}_{index}"]
            index += 1
    return tuple(names)


#: conv1_1, relu1_1, conv1_2, …, pool5: 16 convolutions, 16 ReLUs and 5 poolings. The position of a
#: name in this tuple is its index in torchvision's ``vgg19().features``.
LAYER_NAMES: tuple[str, ...] = _layer_names()
LAYER_INDEX: dict[str, int] = {name: i for i, name in enumerate(LAYER_NAMES)}
CONV_NAMES: tuple[str, ...] = tuple(n for n in LAYER_NAMES if n.startswith("conv"))

#: The paper's Fig. 1 / Fig. 3 layers, one per block.
BLOCK_FIRST_CONVS: tuple[str, ...] = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")


def relu_of(conv_name: str) -> str:
    """The ReLU output that the paper means by "conv4_2" and friends (the response, not the pre-activation)."""
    return conv_name.replace("conv", "relu", 1)


def poolings_before(layer: str) -> int:
    """How many 2×2 poolings lie between the input and ``layer``'s output (``pool3`` counts its own).

    A layer's features sit on a grid 2^k input pixels apart: block-wise evaluation aligns blocks to it.
    """
    return sum(1 for name in LAYER_NAMES[: LAYER_INDEX[layer] + 1] if name.startswith("pool"))


def receptive_radius(layer: str) -> int:
    """Input pixels beyond its own 2^k × 2^k cell that one feature of ``layer`` can depend on.

    Each 3×3 convolution at pooling level k widens the dependence by 2^k pixels on every side; a 2×2
    stride-2 pooling only merges cells. conv5_1 → 70, relu4_2 → 38, pool5 → 118 (a margin at least this
    wide makes a block's interior features equal the whole image's).
    """
    radius, level = 0, 0
    for name in LAYER_NAMES[: LAYER_INDEX[layer] + 1]:
        if name.startswith("conv"):
            radius += 2**level
        elif name.startswith("pool"):
            level += 1
    return radius

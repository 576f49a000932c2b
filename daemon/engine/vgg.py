"""VGG19 as a feature extractor: 16 convolutions and 5 poolings, no fully connected layers.

The network runs only as deep as the deepest layer a request needs, and the pooling kind is chosen
per call (pooling layers carry no weights), so one warm model serves average and max pooling alike.
"""
from __future__ import annotations

import math
from collections.abc import Collection, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .engine_errors import WeightsFormatError
from .layers import CONV_NAMES, LAYER_INDEX, LAYER_NAMES, VGG19_CONFIG

WEIGHT_FORMATS = ("torchvision", "caffe")

# torchvision's ImageNet statistics (RGB, inputs in [0, 1]).
_TORCHVISION_MEAN = (0.485, 0.456, 0.406)
_TORCHVISION_STD = (0.229, 0.224, 0.225)
# The Caffe VGG19 (neural-style-pt's conversion): BGR, 0–255, mean subtracted.
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


class VGG19Features(nn.Module):
    """VGG19's convolutional part, returning the activations of named layers.

    ``weights_format`` fixes how an sRGB image in [0, 1] is normalised before the first layer,
    because torchvision and Caffe weights were trained on differently scaled inputs.
    """

    # Buffers (register_buffer below), declared so that they read as tensors, not as Module attributes.
    _mean: torch.Tensor
    _scale: torch.Tensor

    def __init__(self, weights_format: str = "torchvision", description: str = "") -> None:
        super().__init__()
        if weights_format not in WEIGHT_FORMATS:
            raise WeightsFormatError(f"weights format must be one of {', '.join(WEIGHT_FORMATS)}")
        self.weights_format = weights_format
        self.description = description
        convs = []
        in_channels = 3
        for item in VGG19_CONFIG:
            if item == "M":
                continue
            convs.append(nn.Conv2d(in_channels, int(item), kernel_size=3, padding=1))
            in_channels = int(item)
        self.convs = nn.ModuleList(convs)
        if weights_format == "torchvision":
            mean, scale = torch.tensor(_TORCHVISION_MEAN), 1.0 / torch.tensor(_TORCHVISION_STD)
        else:
            mean, scale = torch.tensor(_CAFFE_MEAN_BGR[::-1]) / 255.0, torch.full((3,), 255.0)
        self.register_buffer("_mean", mean.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_scale", scale.view(1, 3, 1, 1), persistent=False)
        # NHWC: oneDNN (CPU) and cuDNN (tensor cores) run 3×3 convolutions faster in it; see docs/PERFORMANCE.md.
        self.to(memory_format=torch.channels_last)
        self.requires_grad_(False)
        self.eval()

    @property
    def device(self) -> torch.device:
        return self.conv_layers[0].weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.conv_layers[0].weight.dtype

    @property
    def conv_layers(self) -> list[nn.Conv2d]:
        """The 16 convolutions, as convolutions (a ModuleList's items are plain Modules to a type checker)."""
        return [conv for conv in self.convs if isinstance(conv, nn.Conv2d)]

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        """sRGB in [0, 1] → the input the weights were trained on."""
        x = (image - self._mean) * self._scale
        if self.weights_format == "caffe":
            x = x.flip(1)  # RGB → BGR
        return x

    def forward(self, image: torch.Tensor, layers: Collection[str], pooling: str = "avg") -> dict[str, torch.Tensor]:
        """Activations of ``layers`` for a batch of sRGB images (N, 3, H, W) in [0, 1].

        Stops after the deepest requested layer. A ReLU runs in place unless the convolution output
        before it was itself requested, which saves one activation's memory per layer.
        """
        wanted = set(layers)
        unknown = wanted - set(LAYER_INDEX)
        if unknown:
            raise KeyError(f"unknown VGG19 layers: {sorted(unknown)}")
        if not wanted:
            return {}
        last = max(LAYER_INDEX[name] for name in wanted)
        pool = F.avg_pool2d if pooling == "avg" else F.max_pool2d
        x = self.normalize(image).contiguous(memory_format=torch.channels_last)
        out: dict[str, torch.Tensor] = {}
        conv_i = 0
        for name in LAYER_NAMES[: last + 1]:
            if name.startswith("conv"):
                x = self.convs[conv_i](x)
                conv_i += 1
            elif name.startswith("relu"):
                conv_name = "conv" + name[4:]
                x = F.relu(x, inplace=conv_name not in wanted)
            else:
                x = pool(x, kernel_size=2, stride=2)
            if name in wanted:
                out[name] = x
        return out

    # ------------------------------------------------------------------ weights
    def load_vgg_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Load a torchvision-layout VGG19 state dict: full model (``features.N.*``) or features only (``N.*``).

        Classifier weights, if present, are ignored: the paper uses no fully connected layers.
        """
        conv_indices = [LAYER_INDEX[name] for name in CONV_NAMES]
        prefix = "features." if any(k.startswith("features.") for k in state_dict) else ""
        for conv, index in zip(self.convs, conv_indices):
            for part in ("weight", "bias"):
                key = f"{prefix}{index}.{part}"
                if key not in state_dict:
                    raise WeightsFormatError(f"not a VGG19 state dict: key {key!r} is missing")
                tensor = state_dict[key]
                target = getattr(conv, part)
                if tuple(tensor.shape) != tuple(target.shape):
                    raise WeightsFormatError(
                        f"not a VGG19 state dict: {key} has shape {tuple(tensor.shape)}, expected {tuple(target.shape)}"
                    )
                with torch.no_grad():
                    target.copy_(tensor.to(target.dtype))


def random_vgg19(seed: int = 0, weights_format: str = "torchvision") -> VGG19Features:
    """Seeded random weights (He initialisation, so activations neither vanish nor explode through 16 layers).

    For tests and demos without the real file; the description says so, and outputs made with it carry it.
    """
    model = VGG19Features(weights_format, description=f"random VGG19 weights (seed {seed}), NOT a trained network")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for conv in model.conv_layers:
            fan_in = conv.in_channels * 9
            conv.weight.normal_(0.0, math.sqrt(2.0 / fan_in), generator=generator)
            _bias(conv).zero_()
    return model


def random_vgg19_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state dict in torchvision's full-model layout (features.N.*), as the tests write to disk."""
    model = random_vgg19(seed)
    conv_indices = [LAYER_INDEX[name] for name in CONV_NAMES]
    state: dict[str, torch.Tensor] = {}
    for conv, index in zip(model.conv_layers, conv_indices):
        state[f"features.{index}.weight"] = conv.weight.detach().clone()
        state[f"features.{index}.bias"] = _bias(conv).detach().clone()
    return state


def _bias(conv: nn.Conv2d) -> torch.Tensor:
    """A convolution's bias: every VGG19 convolution is built with one."""
    if conv.bias is None:
        raise ValueError("a VGG19 convolution without a bias")
    return conv.bias

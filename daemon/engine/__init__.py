"""The style-transfer engine: pure tensor math (no files, no sockets), per Gatys, Ecker & Bethge (2015)."""
from .layers import LAYER_NAMES
from .losses import LossTerms, content_loss, gram_matrix, style_layer_loss, style_loss, total_variation_loss
from .params import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, ParamError, StyleParams
from .transfer import Cancelled, Progress, StyleResult, stylize
from .vgg import VGG19Features, WeightsFormatError, random_vgg19

__all__ = [
    "LAYER_NAMES",
    "LossTerms",
    "content_loss",
    "gram_matrix",
    "style_layer_loss",
    "style_loss",
    "total_variation_loss",
    "DEFAULT_CONTENT_LAYERS",
    "DEFAULT_STYLE_LAYERS",
    "ParamError",
    "StyleParams",
    "Cancelled",
    "Progress",
    "StyleResult",
    "stylize",
    "VGG19Features",
    "WeightsFormatError",
    "random_vgg19",
]

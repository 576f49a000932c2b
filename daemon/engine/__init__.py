"""The style-transfer engine: pure tensor math (no files, no sockets), per Gatys, Ecker & Bethge (2015).

Names are loaded on first use, so that ``StyleParams`` and the errors (torch-free modules) can be
imported by the command line and the server's request checks without paying for ``import torch``.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "LAYER_NAMES": ".layers",
    "ParamError": ".engine_errors",
    "Cancelled": ".engine_errors",
    "WeightsFormatError": ".engine_errors",
    "NonFiniteLoss": ".engine_errors",
    "MemoryBudgetTooSmall": ".memory_plan",
    "StyleParams": ".params",
    "DEFAULT_CONTENT_LAYERS": ".params",
    "DEFAULT_STYLE_LAYERS": ".params",
    "OPTIMIZERS": ".params",
    "INITS": ".params",
    "POOLINGS": ".params",
    "PRECISIONS": ".params",
    "PRESERVE_COLORS": ".params",
    "plan_inputs": ".params",
    "parameter_schema": ".params",
    "LossTerms": ".losses",
    "content_loss": ".losses",
    "gram_matrix": ".losses",
    "style_layer_loss": ".losses",
    "style_loss": ".losses",
    "total_variation_loss": ".losses",
    "EngineProgress": ".transfer",
    "StyleResult": ".transfer",
    "stylize": ".transfer",
    "VGG19Features": ".vgg",
    "random_vgg19": ".vgg",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

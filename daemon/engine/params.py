"""Every knob of one style-transfer run, in one dataclass shared by the CLI, the daemon and the tests.

The field names are the wire protocol's ``params`` names and the CLI's options in snake_case,
so a request maps onto this class without a translation table.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from .errors import ParamError
from .layers import LAYER_NAMES

DEFAULT_CONTENT_LAYERS: tuple[str, ...] = ("relu4_2",)
DEFAULT_STYLE_LAYERS: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")

OPTIMIZERS = ("lbfgs", "adam")
INITS = ("noise", "content", "style")
POOLINGS = ("avg", "max")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")


@dataclass(frozen=True)
class StyleParams:
    """Parameters of one run. Defaults follow the paper (Fig. 2: α/β = 10⁻³, conv4_2 content, five style layers)."""

    iterations: int = 500
    size: int = 512
    content_weight: float = 1.0
    style_weight: float = 1000.0
    tv_weight: float = 0.0
    content_layers: tuple[str, ...] = DEFAULT_CONTENT_LAYERS
    style_layers: tuple[str, ...] = DEFAULT_STYLE_LAYERS
    style_layer_weights: tuple[float, ...] | None = None
    style_blend: tuple[float, ...] | None = None
    optimizer: str = "lbfgs"
    learning_rate: float = 0.02
    init: str = "noise"
    seed: int = 0
    pooling: str = "avg"
    preserve_color: bool = False
    style_scale: float = 1.0
    scales: int = 1
    width: int | None = None
    height: int | None = None
    precision: str = "auto"
    progress_every: int = 10
    preview: bool = False

    # ------------------------------------------------------------------ building
    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "StyleParams":
        """Build from a request's ``params`` map: unknown names and wrong types are a ParamError."""
        if not isinstance(values, Mapping):
            raise ParamError("params must be a map")
        known = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for name, value in values.items():
            if name not in known:
                raise ParamError(f"unknown parameter {name!r}; known: {', '.join(sorted(known))}")
            kwargs[name] = _coerce(name, value)
        params = cls(**kwargs)
        params.validate()
        return params

    def to_mapping(self) -> dict[str, Any]:
        """The inverse of from_mapping, with lists for tuples (what msgpack and JSON carry)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def replace(self, **changes: Any) -> "StyleParams":
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ checking
    def validate(self) -> None:
        """Raise ParamError for the first value that cannot work, with a message a user can act on."""
        if self.iterations < 1:
            raise ParamError(f"iterations must be at least 1 (got {self.iterations})")
        if self.size < 16:
            raise ParamError(f"size must be at least 16 pixels (got {self.size})")
        for name in ("content_weight", "style_weight", "tv_weight", "learning_rate", "style_scale"):
            value = getattr(self, name)
            if not value >= 0 or value != value or value == float("inf"):
                raise ParamError(f"{name} must be a finite number ≥ 0 (got {value})")
        if self.learning_rate <= 0:
            raise ParamError("learning_rate must be positive")
        if self.style_scale <= 0:
            raise ParamError("style_scale must be positive")
        if not self.content_layers and not self.style_layers:
            raise ParamError("at least one content or style layer is needed")
        for layer in (*self.content_layers, *self.style_layers):
            if layer not in LAYER_NAMES:
                raise ParamError(f"unknown layer {layer!r}; layers are named as in the paper: {', '.join(LAYER_NAMES)}")
        if self.style_layer_weights is not None:
            if len(self.style_layer_weights) != len(self.style_layers):
                raise ParamError(
                    f"style_layer_weights has {len(self.style_layer_weights)} values for {len(self.style_layers)} style layers"
                )
            if any(not w >= 0 for w in self.style_layer_weights):
                raise ParamError("style_layer_weights must be ≥ 0")
        if self.style_blend is not None and (any(not w >= 0 for w in self.style_blend) or sum(self.style_blend) <= 0):
            raise ParamError("style_blend weights must be ≥ 0 and not all zero")
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("init", self.init, INITS)
        _choice("pooling", self.pooling, POOLINGS)
        _choice("precision", self.precision, PRECISIONS)
        if not 1 <= self.scales <= 6:
            raise ParamError(f"scales must be between 1 and 6 (got {self.scales})")
        if self.scales > self.iterations:
            raise ParamError("scales cannot exceed iterations: each scale needs at least one iteration")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and value < 16:
                raise ParamError(f"{name} must be at least 16 pixels (got {value})")
        if self.progress_every < 1:
            raise ParamError("progress_every must be at least 1")

    @property
    def style_layer_weight_map(self) -> dict[str, float]:
        """w_l per style layer: 1/|layers| unless given (the paper's w_l = 1/5)."""
        if self.style_layer_weights is not None:
            return dict(zip(self.style_layers, self.style_layer_weights))
        return {layer: 1.0 / len(self.style_layers) for layer in self.style_layers}


_TUPLE_OF_STR = {"content_layers", "style_layers"}
_TUPLE_OF_FLOAT = {"style_layer_weights", "style_blend"}
_INT = {"iterations", "size", "seed", "scales", "width", "height", "progress_every"}
_FLOAT = {"content_weight", "style_weight", "tv_weight", "learning_rate", "style_scale"}
_BOOL = {"preserve_color", "preview"}
_STR = {"optimizer", "init", "pooling", "precision"}
_OPTIONAL = {"width", "height", "style_layer_weights", "style_blend"}


def _coerce(name: str, value: Any) -> Any:
    """Accept the JSON/msgpack spelling of a field (lists for tuples, ints for floats), reject anything else."""
    if value is None:
        if name in _OPTIONAL:
            return None
        raise ParamError(f"{name} cannot be null")
    if name in _TUPLE_OF_STR:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ParamError(f"{name} must be a list of layer names")
        return tuple(value)
    if name in _TUPLE_OF_FLOAT:
        if not isinstance(value, (list, tuple)) or not all(_is_number(v) for v in value):
            raise ParamError(f"{name} must be a list of numbers")
        return tuple(float(v) for v in value)
    if name in _INT:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamError(f"{name} must be an integer (got {type(value).__name__})")
        return value
    if name in _FLOAT:
        if not _is_number(value):
            raise ParamError(f"{name} must be a number (got {type(value).__name__})")
        return float(value)
    if name in _BOOL:
        if not isinstance(value, bool):
            raise ParamError(f"{name} must be true or false (got {type(value).__name__})")
        return value
    if name in _STR:
        if not isinstance(value, str):
            raise ParamError(f"{name} must be a string (got {type(value).__name__})")
        return value
    raise ParamError(f"unknown parameter {name!r}")  # pragma: no cover - guarded by from_mapping


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ParamError(f"{name} must be one of {', '.join(allowed)} (got {value!r})")


__all__ = [
    "StyleParams",
    "ParamError",
    "DEFAULT_CONTENT_LAYERS",
    "DEFAULT_STYLE_LAYERS",
    "OPTIMIZERS",
    "INITS",
    "POOLINGS",
    "PRECISIONS",
]

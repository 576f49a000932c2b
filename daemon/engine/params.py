"""The parameter schema: every knob of one style-transfer run, declared once with its rules.

Each ``StyleParams`` field carries its default, range, choices and help text (``param(...)``); its
type is the field's annotation. Everything else derives from that one declaration:

- coercion and checking: constructing a ``StyleParams`` validates it, so an invalid one cannot
  exist and nothing downstream checks again (``from_mapping`` adds the wire's spellings);
- the command line's options (``daemon/cli.py``) with their types, choices and defaults;
- ``parameter_schema()``, a plain JSON-able copy for code that must not import torch (the
  plug-in's installer writes the plug-in's ranges from it).

The field names are the wire protocol's ``params`` names and the CLI's options in snake_case.
``style_blend`` is not a field: it weighs the style images, so it travels beside them
(``stylize(..., style_blend=...)``, the request's top-level ``style_blend``) and is checked
against them by ``plan_inputs``. Torch-free.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .engine_errors import ParamError, quote
from .layers import LAYER_NAMES

DEFAULT_CONTENT_LAYERS: tuple[str, ...] = ("relu4_2",)
DEFAULT_STYLE_LAYERS: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")

OPTIMIZERS: tuple[str, ...] = ("lbfgs", "adam")
INITS: tuple[str, ...] = ("noise", "content", "style")
POOLINGS: tuple[str, ...] = ("avg", "max")
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "fp16", "bf16")
#: Colour control (Gatys et al. 2017): off; luminance-only transfer (the result's luma with the content's
#: chroma); histogram matching (each style image's colours moved to the content's mean and covariance
#: before stylizing). The old boolean still reads: true is "luminance", false is "off" (wire v1).
PRESERVE_COLORS: tuple[str, ...] = ("off", "luminance", "histogram")

#: Bound of every weight (α, β, tv, w_l, the style blend) and of β·w_l. Only their ratios shape the
#: image; users set β/α to 10⁵ and beyond, and 10¹² keeps the weighted losses, their gradients and
#: L-BFGS's dot products of gradients far from float32's 3.4·10³⁸ on ordinary images (a run that
#: still overflows ends with NonFiniteLoss).
MAX_WEIGHT = 1e12
#: The temporal term's default λ: the warping error's goal at the paper's α and β (docs/PERFORMANCE.md).
TEMPORAL_WEIGHT = 1e4
#: Longest side, width or height in pixels: beyond any photograph (a daemon's --max-size is lower).
MAX_SIDE = 65536
MAX_ITERATIONS = 1_000_000
#: Style images at most 100× the output's size: a scale beyond that only multiplies the work.
MAX_STYLE_SCALE = 100.0
#: Adam moves a pixel by about this much per step, in [0, 1] units: above 1 a step overshoots the range.
MAX_LEARNING_RATE = 10.0
#: ``max_memory``'s range in MiB: below 64 MiB not even torch and the network fit; 16 TiB is beyond any machine.
MIN_MEMORY_MIB = 64
MAX_MEMORY_MIB = 16 << 20
#: What torch.Generator.manual_seed accepts.
SEED_RANGE = (-(2**63), 2**64 - 1)

_RULES = "neural_style.param"  # the key of a field's rules in its dataclasses metadata


def param(default: Any, help: str, *, minimum: float | None = None, maximum: float | None = None,
          above_minimum: bool = False, choices: Sequence[str] = (), unset: str = "", zero_means: str = "",
          unit: str = "", texture_only: bool = False, cli: bool = True,
          booleans: tuple[str, str] | None = None) -> Any:
    """A StyleParams field with its rules (see ``Spec`` for their meaning); the type is the annotation."""
    rules = dict(help=help, minimum=minimum, maximum=maximum, above_minimum=above_minimum,
                 choices=tuple(choices), unset=unset, zero_means=zero_means, unit=unit,
                 texture_only=texture_only, cli=cli, booleans=booleans)
    return dataclasses.field(default=default, metadata={_RULES: rules})


@dataclass(frozen=True)
class Spec:
    """Everything known about one parameter: what it accepts, its default, and what it means."""

    name: str
    kind: type  # int, float, bool or str; of each element when ``is_list``
    is_list: bool  # a tuple of ``kind`` (a list on the wire, comma-separated on the command line)
    nullable: bool  # None is accepted; ``unset`` says what it then means
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    above_minimum: bool = False  # the minimum itself is excluded (> rather than ≥)
    choices: tuple[str, ...] = ()
    unset: str = ""
    zero_means: str = ""  # 0 is accepted beside the range, and means this ("the content's own size")
    unit: str = ""  # "px" or "MiB": what the number counts (the command line reads "2G" for MiB)
    texture_only: bool = False  # only used without a content image (texture synthesis)
    cli: bool = True  # offered as a command-line option
    #: (false's choice, true's choice): a choice that was a boolean once still accepts true and false
    booleans: tuple[str, str] | None = None

    @property
    def type_name(self) -> str:
        """"int", "float", "bool", "str", "list[str]" or "list[float]": the wire's types."""
        return f"list[{self.kind.__name__}]" if self.is_list else self.kind.__name__

    def coerce(self, value: Any) -> Any:
        """``value`` in the field's own type (tuples for lists, float for an int given as a float),
        or ParamError naming the field and saying what it accepts."""
        if value is None:
            if self.nullable:
                return None
            raise ParamError(f"{self.name} cannot be null", self.name)
        if self.booleans is not None and isinstance(value, bool):
            return self.booleans[value]
        if not self.is_list:
            return self._check(self._scalar(value, self.name), self.name)
        if isinstance(value, str) and self.kind is str:  # "relu1_1,relu2_1", as the CLI writes it
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, (list, tuple)):
            raise ParamError(f"{self.name} must be a list of {self._noun()}s (got {type(value).__name__})",
                             self.name)
        return tuple(self._check(self._scalar(item, f"{self.name}[{i}]"), f"{self.name}[{i}]")
                     for i, item in enumerate(value))

    def _noun(self) -> str:
        if self.choices and self.kind is str:
            return "layer name" if self.choices == LAYER_NAMES else "name"
        return {int: "integer", float: "number", bool: "boolean", str: "string"}[self.kind]

    def _scalar(self, value: Any, where: str) -> Any:
        if self.kind is bool:
            if not isinstance(value, bool):
                raise ParamError(f"{where} must be true or false (got {type(value).__name__})", where)
            return value
        if self.kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ParamError(f"{where} must be an integer (got {type(value).__name__})", where)
            return value
        if self.kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ParamError(f"{where} must be a number (got {type(value).__name__})", where)
            try:
                return float(value)
            except OverflowError:  # an int beyond float64
                raise ParamError(f"{where} must be at most {_show(self.maximum)} (got {quote(value)})",
                                 where) from None
        if not isinstance(value, str):
            named = self.choices and self.choices != LAYER_NAMES
            accepted = f"one of {', '.join(self.choices)}" if named else "a string"
            if self.booleans is not None:
                accepted += ", or true or false"
            raise ParamError(f"{where} must be {accepted} (got {type(value).__name__})", where)
        return value

    def _check(self, value: Any, where: str) -> Any:
        if self.choices:
            if value not in self.choices:
                if self.choices == LAYER_NAMES:
                    raise ParamError(f"unknown layer {quote(value)} in {where}; layers are named as in the "
                                     f"paper: {', '.join(LAYER_NAMES)}", where)
                raise ParamError(f"{where} must be one of {', '.join(self.choices)} (got {quote(value)})", where)
            return value
        if isinstance(value, float) and not math.isfinite(value):
            raise ParamError(f"{where} must be a finite number (got {value})", where)
        if self.zero_means and value == 0:
            return value
        low, high = self.minimum, self.maximum
        too_low = low is not None and (value <= low if self.above_minimum else value < low)
        if too_low or (high is not None and value > high):
            raise ParamError(f"{where} must be {self.range_text()} (got {quote(value)})", where)
        return value

    def range_text(self) -> str:
        """"between 1 and 6", "> 0 and ≤ 10", "≥ 0", "0 (…) or between 16 and 65536"… as the messages say it."""
        low, high = self.minimum, self.maximum
        zero = f"0 ({self.zero_means}) or " if self.zero_means else ""
        if low is not None and high is not None and not self.above_minimum:
            return f"{zero}between {_show(low)} and {_show(high)}"
        parts = []
        if low is not None:
            parts.append(f"{'>' if self.above_minimum else '≥'} {_show(low)}")
        if high is not None:
            parts.append(f"≤ {_show(high)}")
        return zero + " and ".join(parts)

    def default_text(self) -> str:
        """The default as a user writes it on the command line (what ``--help`` and README show)."""
        value = self.default
        if value is None:
            return self.unset
        if isinstance(value, bool):
            return "on" if value else "off"
        if isinstance(value, tuple):
            return ",".join(_show(v) for v in value)
        return _show(value)

    def describe(self) -> dict[str, Any]:
        """This parameter as plain JSON-able data (see ``parameter_schema``)."""
        out: dict[str, Any] = {
            "type": self.type_name,
            "default": list(self.default) if isinstance(self.default, tuple) else self.default,
            "nullable": self.nullable,
            "help": self.help,
        }
        if self.minimum is not None:
            out["minimum"] = self.minimum
            out["exclusive_minimum"] = self.above_minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        if self.choices:
            out["choices"] = list(self.choices)
        if self.unset:
            out["unset"] = self.unset
        if self.zero_means:
            out["zero_means"] = self.zero_means
        if self.unit:
            out["unit"] = self.unit
        if self.texture_only:
            out["texture_only"] = True
        if self.booleans is not None:
            out["booleans"] = {"false": self.booleans[0], "true": self.booleans[1]}
        return out

    @classmethod
    def of(cls, name: str, hint: Any, default: Any, rules: Mapping[str, Any]) -> Spec:
        """A spec from a field's annotation (``int``, ``tuple[str, ...] | None``…), default and rules."""
        args = typing.get_args(hint)
        nullable = (typing.get_origin(hint) in (typing.Union, types.UnionType)) and type(None) in args
        if nullable:
            hint = next(a for a in args if a is not type(None))
        is_list = typing.get_origin(hint) is tuple
        kind = typing.get_args(hint)[0] if is_list else hint
        return cls(name=name, kind=kind, is_list=is_list, nullable=nullable, default=default, **rules)


def _show(value: Any) -> str:
    """A number as people write it: 1000 not 1000.0, 1e+12 not 1000000000000.0."""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


@dataclass(frozen=True)
class StyleParams:
    """Parameters of one run. Defaults follow the paper (Fig. 2: α/β = 10⁻³, conv4_2 content, five style layers).

    Constructing one validates it (``ParamError`` names the field), so every StyleParams is usable.
    """

    iterations: int = param(500, "loss-and-gradient evaluations (one forward and one backward pass each), "
                                 "whatever the optimiser does inside", minimum=1, maximum=MAX_ITERATIONS)
    size: int = param(512, "longest side of the output, in pixels; larger contents are scaled down, never up. "
                           "Any size runs within memory: the planner goes block-wise where the whole image "
                           "does not fit",
                      minimum=16, maximum=MAX_SIDE, zero_means="the content's own size", unit="px")
    content_weight: float = param(1.0, "α of the paper", minimum=0.0, maximum=MAX_WEIGHT)
    style_weight: float = param(1000.0, "β of the paper (α/β = 10⁻³ as in its Fig. 2)",
                                minimum=0.0, maximum=MAX_WEIGHT)
    tv_weight: float = param(0.0, "total-variation smoothing (not in the paper)", minimum=0.0, maximum=MAX_WEIGHT)
    temporal_weight: float = param(TEMPORAL_WEIGHT, "λ of Ruder et al.'s temporal term for a sequence's frames "
                                   "(the result held near the previous one, warped by optical flow, where the "
                                   "flow is certain); 0 turns it off. No effect on a single image",
                                   minimum=0.0, maximum=MAX_WEIGHT, cli=False)
    content_layers: tuple[str, ...] = param(
        DEFAULT_CONTENT_LAYERS, "VGG19 layers named as in the paper: conv4_2 is the pre-activation, relu4_2 "
                                "its response (what the paper means)", choices=LAYER_NAMES)
    style_layers: tuple[str, ...] = param(DEFAULT_STYLE_LAYERS, "VGG19 layers whose Gram matrices are matched",
                                          choices=LAYER_NAMES)
    style_layer_weights: tuple[float, ...] | None = param(
        None, "w_l, one per style layer", minimum=0.0, maximum=MAX_WEIGHT, unset="1/|layers| each")
    optimizer: str = param("lbfgs", "L-BFGS (the paper's) or Adam", choices=OPTIMIZERS)
    learning_rate: float = param(0.02, "Adam's step in [0, 1] pixel units", minimum=0.0, above_minimum=True,
                                 maximum=MAX_LEARNING_RATE)
    init: str = param("noise", "starting image (the paper starts from white noise)", choices=INITS)
    seed: int = param(0, "random seed; CPU runs repeat bit for bit", minimum=SEED_RANGE[0], maximum=SEED_RANGE[1])
    pooling: str = param("avg", "VGG19's pooling (average is the paper's choice)", choices=POOLINGS)
    preserve_color: str = param("off", "keep the content's colours: luminance (the result's luma with the content's "
                                       "chroma) or histogram (the styles' colours moved to the content's mean and "
                                       "covariance before stylizing); true means luminance, false off",
                                choices=PRESERVE_COLORS, booleans=("off", "luminance"))
    style_scale: float = param(1.0, "style image size relative to the output", minimum=0.0, above_minimum=True,
                               maximum=MAX_STYLE_SCALE)
    scales: int = param(0, "coarse-to-fine: 0 chooses the sizes from about 512 px up to the output's; N gives N "
                           "sizes, each twice the last. Each size starts from the last one's result, and the "
                           "iterations are split between them, more on the cheap coarse sizes",
                        minimum=1, maximum=6, zero_means="automatic")
    width: int | None = param(None, "output width for texture synthesis (no content)", minimum=16,
                              maximum=MAX_SIDE, unset="size", texture_only=True)
    height: int | None = param(None, "output height for texture synthesis (no content)", minimum=16,
                               maximum=MAX_SIDE, unset="size", texture_only=True)
    precision: str = param("auto", "autocast of the network; Gram matrices and losses stay float32 "
                                   "(auto, on a CPU with native bf16: bf16 at the coarse sizes and the "
                                   "output size's first four evaluations after them, fp32 then; a "
                                   "single size is fp32)", choices=PRECISIONS)
    progress_every: int = param(10, "report progress every this many iterations (and after the last)",
                                minimum=1, maximum=MAX_ITERATIONS)
    preview: bool = param(False, "attach the current image to progress reports", cli=False)
    preview_size: int = param(1024, "longest side of the previews in progress reports, in pixels (scaled down, "
                                    "never up); the result always comes at the output's full size",
                              minimum=16, maximum=MAX_SIDE, zero_means="the working size, uncapped", unit="px")
    max_memory: int = param(0, "memory the run may use in all, in MiB (the process's RSS on a CPU, torch's "
                               "allocations on a GPU): the planner then chooses the whole image or blocks, "
                               "their size and the optimiser's state to fit",
                            minimum=MIN_MEMORY_MIB, maximum=MAX_MEMORY_MIB, zero_means="what the device can give",
                            unit="MiB")

    def __post_init__(self) -> None:
        for spec in PARAM_SPECS.values():
            object.__setattr__(self, spec.name, spec.coerce(getattr(self, spec.name)))
        if not self.content_layers and not self.style_layers:
            raise ParamError("at least one content or style layer is needed")
        if self.style_layer_weights is not None and len(self.style_layer_weights) != len(self.style_layers):
            raise ParamError(f"style_layer_weights has {len(self.style_layer_weights)} values for "
                             f"{len(self.style_layers)} style layers", "style_layer_weights")
        if self.style_layer_weights and self.style_weight * max(self.style_layer_weights) > MAX_WEIGHT:
            raise ParamError(f"style_weight × style_layer_weights (β·w_l) must stay ≤ {_show(MAX_WEIGHT)}: "
                             "only their ratio to content_weight matters", "style_weight")
        if self.scales > self.iterations:
            raise ParamError("scales cannot exceed iterations: each scale needs at least one iteration", "scales")

    @property
    def max_memory_bytes(self) -> int | None:
        """``max_memory`` in bytes, or None for what the device can give."""
        return self.max_memory << 20 if self.max_memory else None

    # ------------------------------------------------------------------ building
    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> StyleParams:
        """Build from a request's ``params`` map: unknown names, wrong types and bad values are a ParamError."""
        if not isinstance(values, Mapping):
            raise ParamError("params must be a map")
        unknown = [name for name in values if name not in PARAM_SPECS]
        if unknown:
            hint = " (style_blend is a field of the request, beside the styles)" if "style_blend" in unknown else ""
            raise ParamError(f"unknown parameter {quote(unknown[0])}{hint}; known: {', '.join(PARAM_SPECS)}",
                             str(unknown[0]))
        return cls(**values)

    def to_mapping(self) -> dict[str, Any]:
        """The inverse of from_mapping, with lists for tuples (what msgpack and JSON carry)."""
        out: dict[str, Any] = {}
        for name in PARAM_SPECS:
            value = getattr(self, name)
            out[name] = list(value) if isinstance(value, tuple) else value
        return out

    def replace(self, **changes: Any) -> StyleParams:
        return dataclasses.replace(self, **changes)

    @property
    def style_layer_weight_map(self) -> dict[str, float]:
        """w_l per style layer: 1/|layers| unless given (the paper's w_l = 1/5)."""
        if self.style_layer_weights is not None:
            return dict(zip(self.style_layers, self.style_layer_weights))
        return {layer: 1.0 / len(self.style_layers) for layer in self.style_layers}


def _specs() -> dict[str, Spec]:
    hints = typing.get_type_hints(StyleParams)
    return {f.name: Spec.of(f.name, hints[f.name], f.default, f.metadata[_RULES])
            for f in dataclasses.fields(StyleParams)}


#: Every StyleParams field's Spec, in declaration order.
PARAM_SPECS: dict[str, Spec] = _specs()

#: The weights of several style images (their Gram targets are blended): beside the styles, not in params.
STYLE_BLEND = Spec(name="style_blend", kind=float, is_list=True, nullable=True, default=None,
                   help="weights of several style images, one per style; their Gram matrices are blended",
                   minimum=0.0, maximum=MAX_WEIGHT, unset="equal")


@dataclass(frozen=True)
class InputPlan:
    """Which terms a run optimises, given what it was handed (see ``plan_inputs``)."""

    content_layers: tuple[str, ...]  # empty when the content term is off
    style_layers: tuple[str, ...]  # empty when the style term is off
    blend: tuple[float, ...]  # one weight per style image, summing to 1


def plan_inputs(params: StyleParams, *, has_content: bool, style_count: int,
                style_blend: Sequence[float] | None = None) -> InputPlan:
    """Check what a run needs beyond valid parameters (something to optimise, one blend weight per
    style) and say which terms it uses. Torch-free, so that the daemon answers before ``accepted``."""
    uses_style = style_count > 0 and params.style_weight > 0 and bool(params.style_layers)
    uses_content = has_content and params.content_weight > 0 and bool(params.content_layers)
    if params.style_weight > 0 and params.style_layers and not style_count and has_content:
        raise ParamError("a style weight above 0 needs at least one style image (or set style_weight to 0)",
                         "style_weight")
    if not uses_style and not uses_content:
        raise ParamError("nothing to optimise: give a content image with content layers, or style images "
                         "with style layers")
    if not has_content and params.size == 0 and (params.width is None or params.height is None):
        raise ParamError("size 0 means the content's own size, and there is no content: give width and height "
                         "for a texture, or a size", "size")
    weights = STYLE_BLEND.coerce(style_blend)
    if weights is None:
        weights = (1.0,) * style_count
    elif len(weights) != style_count:
        raise ParamError(f"style_blend has {len(weights)} weights for {style_count} style images", "style_blend")
    total = sum(weights)
    if style_count and not total > 0:
        raise ParamError("style_blend weights must not all be zero", "style_blend")
    return InputPlan(content_layers=params.content_layers if uses_content else (),
                     style_layers=params.style_layers if uses_style else (),
                     blend=tuple(w / total for w in weights))


def parameter_schema() -> dict[str, Any]:
    """The schema as plain JSON-able data, for code that must not import torch (the plug-in's installer).

    ``{"params": {name: entry}, "style_blend": entry}``; an entry has ``type`` (int, float, bool,
    str, list[str], list[float]), ``default``, ``nullable``, ``help`` and, where they apply,
    ``minimum`` with ``exclusive_minimum``, ``maximum``, ``choices`` (of each element for lists),
    ``unset`` (what null means), ``zero_means`` (0 is accepted beside the range and means this),
    ``unit`` ("px", "MiB"), ``texture_only`` and ``booleans`` (``{"false": choice, "true": choice}``:
    a choice that still accepts the boolean it once was).
    """
    return {"params": {name: spec.describe() for name, spec in PARAM_SPECS.items()},
            "style_blend": STYLE_BLEND.describe()}


__all__ = [
    "StyleParams",
    "ParamError",
    "Spec",
    "PARAM_SPECS",
    "STYLE_BLEND",
    "InputPlan",
    "plan_inputs",
    "parameter_schema",
    "DEFAULT_CONTENT_LAYERS",
    "DEFAULT_STYLE_LAYERS",
    "OPTIMIZERS",
    "INITS",
    "POOLINGS",
    "PRECISIONS",
    "PRESERVE_COLORS",
    "MAX_WEIGHT",
    "TEMPORAL_WEIGHT",
    "MAX_SIDE",
    "MIN_MEMORY_MIB",
    "MAX_MEMORY_MIB",
]

"""The plug-in's arguments and how they map onto the daemon's ``params`` (protocol v1).

Style strength
--------------
The dialog offers one "style strength" slider ``s`` in [0, 100] instead of the paper's
two weights.  The content weight α is fixed at 1 and the style weight is

    β = 10 ** (1 + 4 * s / 100)          (s = 0 → β = 10, s = 50 → β = 1000, s = 100 → β = 100000)

so α/β runs from 1e-1 (barely styled) to 1e-5 (style dominates) on a log scale, and the
default 50 gives the paper's Fig. 2 ratio α/β = 1e-3.  ``strength_from_style_weight`` is
the inverse.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

PROCEDURE_NAME = "plug-in-neural-style"
MENU_PATH = "<Image>/Filters/Artistic"
MENU_LABEL = "Neural Style…"

CONTENT_WEIGHT = 1.0  # α, fixed
STRENGTH_MIN, STRENGTH_MAX, STRENGTH_DEFAULT = 0.0, 100.0, 50.0
ITERATIONS_MIN, ITERATIONS_MAX, ITERATIONS_DEFAULT = 1, 5000, 200
SIZE_MIN, SIZE_MAX, SIZE_DEFAULT = 16, 4096, 512
BLEND_DEFAULT = 0.5
INITS = ("noise", "content", "style")
INIT_DEFAULT = "content"  # a user watching the layer refine sees their photo transform; the CLI keeps the paper's noise
DEFAULT_ENDPOINT = "tcp://127.0.0.1:5570"
CONNECT_TIMEOUT_DEFAULT = 10.0  # seconds without any answer before the daemon counts as unavailable
AUTOSTART_TIMEOUT_DEFAULT = 120.0  # seconds to wait for an autostarted daemon (it loads VGG19 first)


def style_weight_from_strength(strength: float) -> float:
    """β for a slider value ``strength`` in [0, 100] (clamped); α is fixed at 1."""
    s = min(max(float(strength), STRENGTH_MIN), STRENGTH_MAX)
    return 10.0 ** (1.0 + 4.0 * s / 100.0)


def strength_from_style_weight(style_weight: float) -> float:
    """The inverse of :func:`style_weight_from_strength` (clamped to [0, 100])."""
    if style_weight <= 0:
        return STRENGTH_MIN
    s = (math.log10(style_weight) - 1.0) * 100.0 / 4.0
    return min(max(s, STRENGTH_MIN), STRENGTH_MAX)


class SettingsError(ValueError):
    """An argument the user can fix (the message says how)."""


@dataclass
class Settings:
    """Every argument of the procedure, already read out of GIMP's config object."""

    style: str
    style2: str | None = None
    blend: float = BLEND_DEFAULT  # weight of the second style, in [0, 1]
    strength: float = STRENGTH_DEFAULT
    iterations: int = ITERATIONS_DEFAULT
    size: int = SIZE_DEFAULT
    preserve_color: bool = False
    init: str = INIT_DEFAULT
    seed: int = 0
    endpoint: str = ""
    autostart: bool = True
    preview: bool = True

    def validate(self) -> None:
        if not self.style:
            raise SettingsError("Choose a style image (the painting whose style to copy).")
        for path in (self.style, self.style2):
            if path and not os.path.isfile(path):
                raise SettingsError(f"The style image {path!r} does not exist or is not a file.")
        if not 0.0 <= self.blend <= 1.0:
            raise SettingsError(f"The style blend must be between 0 and 1 (got {self.blend}).")
        if not STRENGTH_MIN <= self.strength <= STRENGTH_MAX:
            raise SettingsError(f"The style strength must be between 0 and 100 (got {self.strength}).")
        if not ITERATIONS_MIN <= self.iterations <= ITERATIONS_MAX:
            raise SettingsError(f"Iterations must be between {ITERATIONS_MIN} and {ITERATIONS_MAX} (got {self.iterations}).")
        if not SIZE_MIN <= self.size <= SIZE_MAX:
            raise SettingsError(f"The processing size must be between {SIZE_MIN} and {SIZE_MAX} pixels (got {self.size}).")
        if self.init not in INITS:
            raise SettingsError(f"Init must be one of {', '.join(INITS)} (got {self.init!r}).")
        if self.endpoint and "://" not in self.endpoint:
            raise SettingsError(f"The daemon endpoint {self.endpoint!r} is not a ZeroMQ address such as {DEFAULT_ENDPOINT}.")

    @property
    def style_paths(self) -> list[str]:
        return [p for p in (self.style, self.style2) if p]

    @property
    def style_blend(self) -> list[float] | None:
        """Weights of the styles for the request (None with one style)."""
        if not self.style2:
            return None
        return [1.0 - self.blend, self.blend]

    def params(self, progress_every: int | None = None) -> dict[str, Any]:
        """The request's ``params`` map (names as in docs/PROTOCOL.md)."""
        if progress_every is None:
            progress_every = progress_every_for(self.iterations)
        return {
            "iterations": int(self.iterations),
            "size": int(self.size),
            "content_weight": CONTENT_WEIGHT,
            "style_weight": style_weight_from_strength(self.strength),
            "preserve_color": bool(self.preserve_color),
            "init": self.init,
            "seed": int(self.seed),
            "progress_every": int(progress_every),
            "preview": bool(self.preview),
        }


def progress_every_for(iterations: int) -> int:
    """Iterations between progress reports (each carries a preview the plug-in paints).

    About 50 reports a run for a smooth bar, but at least one every 10 iterations, so that
    a long run on a slow machine still shows the layer refining every few seconds.
    """
    return min(max(1, int(iterations) // 50), 10)


def layer_name(style: str, style2: str | None = None) -> str:
    """The new layer's name: "Neural Style: starry_night" (or "a + b" with two styles)."""
    names = [os.path.splitext(os.path.basename(p))[0] or p for p in (style, style2) if p]
    return "Neural Style: " + " + ".join(names)


def choose_format(has_alpha: bool) -> tuple[str, int]:
    """The babl format the plug-in reads and writes, and its channel count.

    Always 8-bit sRGB-encoded ("R'G'B'"), whatever the image's precision: that is the
    encoding VGG19 was trained on and protocol v1's raw images carry.
    """
    return ("R'G'B'A u8", 4) if has_alpha else ("R'G'B' u8", 3)


def fit_within(width: int, height: int, size: int) -> tuple[int, int]:
    """The size an image of width × height gets when its longest side becomes ``size`` (never 0)."""
    longest = max(width, height)
    if longest <= 0:
        raise ValueError("empty image")
    scale = size / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def progress_text(iteration: int, iterations: int, loss: float | None) -> str:
    """The progress bar's text: "Neural Style: iteration 40/200, loss 1.23e+05"."""
    text = f"Neural Style: iteration {iteration}/{iterations}"
    if loss is not None and loss == loss:
        text += f", loss {loss:.3g}"
    return text


def progress_fraction(iteration: int, iterations: int) -> float:
    if iterations <= 0:
        return 0.0
    return min(max(iteration / iterations, 0.0), 1.0)


def queue_text(position: int) -> str:
    jobs = "job" if position == 1 else "jobs"
    return f"Neural Style: waiting in the daemon's queue ({position} {jobs} ahead)"

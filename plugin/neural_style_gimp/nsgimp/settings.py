"""The plug-in's arguments and how they map onto the daemon's ``params`` (protocol v1).

Style strength
--------------
The dialog offers one "style strength" slider ``s`` in [0, 100] instead of the paper's
two weights.  The content weight α is fixed at 1 and the style weight is

    β = 10 ** (1 + 4 * s / 100)          (s = 0 → β = 10, s = 50 → β = 1000, s = 100 → β = 100000)

so α/β runs from 1e-1 (barely styled) to 1e-5 (style dominates) on a log scale, and the
default 50 gives the paper's Fig. 2 ratio α/β = 1e-3.  ``strength_from_style_weight`` is
the inverse.

Limits
------
The ranges of the engine's parameters and the ``init`` choices are the engine's schema
(``daemon/engine/params.py``), which install.py writes beside the plug-in (``schema.py``); they
only bound what a GIMP argument may hold.  What a daemon accepts (``max_iterations``,
``max_size``, ``max_pixels``, …) is the daemon's to say: it reports its limits in ``pong`` and
:func:`over_limits` checks a run against them before anything is sent.

Resolution
----------
One argument for scripts, ``size``: 0 (the default) is the engine's "the content's own size",
so the layer's region is sent and computed at full resolution; N > 0 is a working size whose
result is stretched over the layer.  The dialog shows it as two dialog-only (aux) values, a
"Full resolution" tick and a "Working size", and sets ``size`` from them on OK
(:func:`size_from_dialog`).  Previews are capped at ``preview_size`` and stretched likewise.
"""
from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from .regions import REGION_DEFAULT, region_problem
from .schema import Schema, read_schema

PLUGIN_DIR = Path(__file__).resolve().parent.parent  # where install.py puts the schema and the configuration

PROCEDURE_NAME = "plug-in-neural-style"
WORKER_NAME = "plug-in-neural-style-job"  # runs one job under GIMP's progress (see neural_style_gimp.py)
MENU_PATH = "<Image>/Filters/Artistic"
MENU_LABEL = "Neural Style…"

CONTENT_WEIGHT = 1.0  # α, fixed
STRENGTH_MIN, STRENGTH_MAX, STRENGTH_DEFAULT = 0.0, 100.0, 50.0
BLEND_DEFAULT = 0.5
TIMEOUT_MIN, TIMEOUT_MAX, TIMEOUT_DEFAULT = 5, 3600, 60
GINT_MAX = 2**31 - 1  # GIMP's int arguments are 32-bit

# The engine's parameters, as its schema declares them (install.py writes it beside the plug-in).
SCHEMA = Schema(read_schema(PLUGIN_DIR))
ITERATIONS_MIN, ITERATIONS_MAX = int(SCHEMA.minimum("iterations")), min(int(SCHEMA.maximum("iterations")), GINT_MAX)
# The plug-in's own defaults: a first look within about a minute on a 2-core CPU for an 800 × 600 photo
# (bench/gimp_defaults_bench.py; docs/PERFORMANCE.md); full resolution is one tick away.
ITERATIONS_DEFAULT = 50
SIZE_MIN, SIZE_MAX = int(SCHEMA.minimum("size")), min(int(SCHEMA.maximum("size")), GINT_MAX)
FULL_RESOLUTION = 0  # the engine's ``size`` that means "the content's own size" (its zero_means)
SIZE_DEFAULT = FULL_RESOLUTION  # a script's default: the layer's own size (the engine's suits the CLI)
FULL_RESOLUTION_DEFAULT = False  # the dialog starts at a working size: the first look comes quickly
WORKING_SIZE_DEFAULT = int(SCHEMA.default("size"))  # the dialog's working size, when 'Full resolution' is off
PREVIEW_SIZE_MIN = int(SCHEMA.minimum("preview_size"))
PREVIEW_SIZE_MAX = min(int(SCHEMA.maximum("preview_size")), GINT_MAX)
PREVIEW_SIZE_DEFAULT = int(SCHEMA.default("preview_size"))
SEED_MAX = min(int(SCHEMA.maximum("seed")), GINT_MAX)
INITS = SCHEMA.choices("init")
INIT_DEFAULT = "content"  # a user watching the layer refine sees their photo transform; the CLI keeps the paper's noise
# The dialog's words for the engine's init choices (a choice without words shows its name).
INIT_LABELS = {"noise": "Random noise (as in the paper)", "content": "The photo", "style": "The painting"}
# The colour modes (Gatys et al. 2017): the engine's choices, in the dialog's words.
PRESERVE_COLORS = SCHEMA.choices("preserve_color")
PRESERVE_COLOR_DEFAULT = str(SCHEMA.default("preserve_color"))  # "off": the painting's colours, as before
PRESERVE_COLOR_LABELS = {"off": "No: the painting's colours",
                         "luminance": "Luminance: the painting's strokes in the photo's colours",
                         "histogram": "Histogram: the painting recoloured to the photo's palette first"}

# Each argument's dialog label (with its mnemonic) and tooltip, in plain words. Messages
# name settings by these labels (``label``), so what the user reads matches the dialog.
ARGUMENTS = {
    "style": ("Style _image", "The painting whose brush strokes, colours and textures to copy"),
    "style2": ("Second st_yle image", "Optional: a second painting to mix in (see 'Style blend')"),
    "blend": ("Style _blend", "How much of the second style to use: 0 = only the first painting, "
                              "1 = only the second"),
    "strength": ("Style s_trength", "How strongly the painting's texture replaces the photo's details: "
                                    "low keeps the photo recognisable, high lets the style take over"),
    "iterations": ("It_erations", "How many refinement steps to take: more look more finished and take longer"),
    "size": ("Si_ze (px)", "0: compute at the layer's own size (full resolution); N: the longest side, in "
                           "pixels, at which the style is computed, the result then stretched over the layer"),
    # The dialog shows 'size' as these two (aux arguments: not in the procedure's signature).
    "full-resolution": ("_Full resolution", "Compute the style at the layer's own size (or the selection's): "
                                            "every pixel is painted, nothing is stretched. Turn it off to work "
                                            "faster at a smaller 'Working size'"),
    "working-size": ("Working si_ze (px)", "Without 'Full resolution': the longest side, in pixels, at which the "
                                           "style is computed; the result is then stretched over the layer. Larger "
                                           "shows finer brush strokes and is slower"),
    "preserve-colors": ("Keep the photo's colo_urs", "No: the result takes the painting's colours. Luminance: "
                                                     "only the painting's light and dark are transferred, the photo "
                                                     "keeps its own colours. Histogram: the painting's colours are "
                                                     "first moved to the photo's (mean and spread), so its strokes "
                                                     "come in the photo's palette"),
    # Where each style goes (nsgimp/regions.py): the whole layer, the selection, or a channel (a script: a layer mask).
    "style-region": ("Style _1's region", "Where the first painting goes: the whole layer (with a region "
                                          "for the second style: what that leaves), the current selection, or "
                                          "the channel chosen below"),
    "style-mask": ("Style 1's mas_king channel", "With the region 'A channel': the channel (Select → Save to "
                                             "Channel; a layer mask: Layer → Mask → Mask to Selection first) "
                                             "whose white marks where the first "
                                             "painting goes; grey shares a pixel with the other style"),
    "style2-region": ("Style _2's region", "Where the second painting goes: the whole layer (mixed with "
                                           "the first by 'Style blend'; with a region for the first style: what "
                                           "that leaves), the current selection, or the channel "
                                           "chosen below"),
    "style2-mask": ("Style 2's maskin_g channel", "With the region 'A channel': the channel (Select → Save to "
                                               "Channel; a layer mask: Layer → Mask → Mask to Selection first) "
                                               "whose white marks where the second "
                                               "painting goes"),
    "init": ("Start fro_m", "What the picture starts as before it is refined: the photo (shows the photo "
                            "transforming), random noise (as in the paper), or the painting"),
    "seed": ("Random see_d", "Only for a noise start: the same seed and settings give the same result"),
    "endpoint": ("Daemon _address", "Where the Neural Style daemon listens; leave empty to use the one "
                                    "install.py recorded"),
    "autostart": ("Start the daemon if _needed", "When no daemon answers, start the one install.py "
                                                 "recorded (it keeps running for the next time)"),
    "preview-size": ("_Preview size (px)", "Longest side of the previews painted while the job runs ("
                                           "stretched over the layer; 0 = uncapped); the finished result always "
                                           "comes at the working size. Smaller previews repaint faster"),
    "timeout": ("_Wait for the daemon (seconds)", "How long to wait for any word from the daemon before "
                                                  "giving up"),
}


# Each style's region argument and its channel argument, in the order of the styles.
REGION_ARGUMENTS = ("style-region", "style2-region")
MASK_ARGUMENTS = ("style-mask", "style2-mask")

# The style file buttons' dialogs (GTK's own title is "Select a File"), and the second style's Remove button.
CHOOSER_TITLES = {"style": "Choose the style image (a painting)",
                  "style2": "Choose a second style image (optional)"}
REMOVE_STYLE2_LABEL = "Remo_ve"
REMOVE_STYLE2_TOOLTIP = "Use no second style image"


def endpoint_placeholder(endpoint: str) -> str:
    """The empty 'Daemon address' entry's hint: the address it stands for."""
    return f"empty: {endpoint}"


def label(argument: str) -> str:
    """An argument's dialog label without its mnemonic, for messages: 'Style strength'."""
    return ARGUMENTS[argument][0].replace("_", "")


ADVANCED_TITLE = "Advanced"


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
    """An argument the user can fix (the message says how, in the dialog's words)."""

    def __init__(self, message: str, argument: Optional[str] = None) -> None:
        super().__init__(message)
        self.argument = argument  # the argument to fix, when there is one


@dataclass
class Settings:
    """Every argument of the procedure, already read out of GIMP's config object."""

    style: str
    style2: Optional[str] = None
    blend: float = BLEND_DEFAULT  # weight of the second style, in [0, 1]
    strength: float = STRENGTH_DEFAULT
    iterations: int = ITERATIONS_DEFAULT
    size: int = SIZE_DEFAULT  # 0: full resolution, else the working size
    preserve_color: str = PRESERVE_COLOR_DEFAULT  # one of PRESERVE_COLORS
    style_region: str = REGION_DEFAULT  # where the first style goes: one of regions.REGIONS
    style2_region: str = REGION_DEFAULT
    init: str = INIT_DEFAULT
    seed: int = 0
    endpoint: str = ""  # "" = the one install.py recorded
    autostart: bool = True
    timeout: int = TIMEOUT_DEFAULT
    preview_size: int = PREVIEW_SIZE_DEFAULT
    preview: bool = True

    def validate(self) -> None:
        """Checks that need no file and no daemon (the style files: stylefile.check_style_file)."""
        if not self.style:
            raise SettingsError(f"Choose a '{label('style')}' (the painting whose style to copy).", "style")
        if not 0.0 <= self.blend <= 1.0:
            raise SettingsError(f"'{label('blend')}' must be between 0 and 1 (got {self.blend}).", "blend")
        if not STRENGTH_MIN <= self.strength <= STRENGTH_MAX:
            raise SettingsError(f"'{label('strength')}' must be between 0 and 100 (got {self.strength}).", "strength")
        if not ITERATIONS_MIN <= self.iterations <= ITERATIONS_MAX:
            raise SettingsError(f"'{label('iterations')}' must be at least {ITERATIONS_MIN} "
                                f"(got {self.iterations}).", "iterations")
        if not self.full_resolution and not SIZE_MIN <= self.size <= SIZE_MAX:
            raise SettingsError(f"'{label('working-size')}' must be at least {SIZE_MIN} pixels (got {self.size}), "
                                f"or tick '{label('full-resolution')}'.", "working-size")
        if self.preview_size != 0 and not PREVIEW_SIZE_MIN <= self.preview_size <= PREVIEW_SIZE_MAX:
            raise SettingsError(f"'{label('preview-size')}' must be 0 (uncapped) or at least {PREVIEW_SIZE_MIN} "
                                f"pixels (got {self.preview_size}).", "preview-size")
        if self.init not in INITS:
            raise SettingsError(f"'{label('init')}' must be one of {', '.join(INITS)} (got {self.init!r}).", "init")
        if self.preserve_color not in PRESERVE_COLORS:
            raise SettingsError(f"'{label('preserve-colors')}' must be one of {', '.join(PRESERVE_COLORS)} "
                                f"(got {self.preserve_color!r}).", "preserve-colors")
        if not self.style2 and self.style2_region != REGION_DEFAULT:
            raise SettingsError(f"'{label('style2-region')}' is set, but there is no '{label('style2')}': choose "
                                f"one, or set '{label('style2-region')}' back to the whole layer.", "style2-region")
        problem = region_problem(self.regions)
        if problem is not None:
            argument = REGION_ARGUMENTS[problem[0]]
            raise SettingsError(f"'{label(argument)}' {problem[1]}.", argument)
        if self.endpoint and "://" not in self.endpoint:
            raise SettingsError(f"'{label('endpoint')}' {self.endpoint!r} is not a ZeroMQ address "
                                "(tcp://HOST:PORT or ipc://PATH); leave it empty to use the one install.py "
                                "recorded.", "endpoint")

    @property
    def style_paths(self) -> list[str]:
        return [p for p in (self.style, self.style2) if p]

    @property
    def regions(self) -> list[str]:
        """Each used style's region, in the order of :attr:`style_paths`."""
        return [self.style_region, self.style2_region][:len(self.style_paths)]

    @property
    def style_blend(self) -> Optional[list[float]]:
        """Weights of the styles for the request (None with one style)."""
        if not self.style2:
            return None
        return [1.0 - self.blend, self.blend]

    def params(self, progress_every: Optional[int] = None) -> dict[str, Any]:
        """The request's ``params`` map (names as in docs/PROTOCOL.md)."""
        if progress_every is None:
            progress_every = progress_every_for(self.iterations)
        return {
            "iterations": int(self.iterations),
            "size": int(self.size),
            "content_weight": CONTENT_WEIGHT,
            "style_weight": style_weight_from_strength(self.strength),
            "preserve_color": self.preserve_color,
            "init": self.init,
            "seed": int(self.seed),
            "progress_every": int(progress_every),
            "preview": bool(self.preview),
            "preview_size": int(self.preview_size),
        }

    @property
    def full_resolution(self) -> bool:
        return self.size == FULL_RESOLUTION


def preserve_color_choice(value: Any) -> str:
    """The colour mode for a value of ``preserve-colors`` as any version stored it: the old boolean
    (True: luminance, False: off, as on the wire) or a choice's name."""
    if isinstance(value, bool):
        return "luminance" if value else "off"
    return str(value)


def upgrade_remembered(values: Mapping[str, Any]) -> dict[str, Any]:
    """Values remembered by an older plug-in, in today's types (the boolean 'preserve-colors' became a choice)."""
    out = dict(values)
    if isinstance(out.get("preserve-colors"), bool):
        out["preserve-colors"] = preserve_color_choice(out["preserve-colors"])
    return out


def gimp_last_values_path(gimp_directory: str, procedure: str) -> str:
    """Where GIMP 3.0 and 3.2 keep a procedure's last values (its own format, not the plug-in's)."""
    return os.path.join(gimp_directory, "plug-in-settings", f"GimpProcedureConfigRun-{procedure}.last")


def upgrade_gimp_last_values(text: str) -> str:
    """GIMP's last-values file with the boolean 'preserve-colors' of before written as its choice: GIMP
    refuses the whole file otherwise ("unexpected identifier 'yes', expected string constant - fatal
    parse error", measured in 3.2.6) and the dialog falls back to the defaults."""
    return re.sub(r"^\(preserve-colors (yes|no)\)$",
                  lambda m: f'(preserve-colors "{preserve_color_choice(m.group(1) == "yes")}")', text,
                  flags=re.MULTILINE)


def size_from_dialog(full_resolution: bool, working_size: int) -> int:
    """The ``size`` argument for the dialog's 'Full resolution' tick and 'Working size'."""
    return FULL_RESOLUTION if full_resolution else int(working_size)


def over_limits(settings: Settings, limits: Mapping[str, int],
                region: Optional[tuple[int, int]] = None) -> Optional[SettingsError]:
    """The first setting over the limits a daemon reported in ``pong`` (None when all fit).

    ``region`` is the width and height of what will be sent (the layer, or the selection's
    bounds): with full resolution the daemon works at that size, so it must fit ``max_pixels``.
    """
    # A working size at least the region's longest side sends it at its own size (sent_size): bounded by
    # max_pixels, as full resolution is, not by max_size.
    native = settings.full_resolution or (region is not None and sent_size(*region, settings.size) == tuple(region))
    checks = [("iterations", settings.iterations, "max_iterations", "")]
    if not native:
        checks.append(("working-size", settings.size, "max_size", " pixels"))
    for argument, value, key, unit in checks:
        limit = limits.get(key)
        if limit is not None and value > limit:
            return SettingsError(f"'{label(argument)}' is {value}{unit}; this daemon accepts at most {limit}{unit}. "
                                 f"Lower '{label(argument)}'.", argument)
    max_pixels = limits.get("max_pixels")
    if native and region is not None and max_pixels is not None \
            and region[0] * region[1] > max_pixels:
        if not settings.full_resolution:
            return SettingsError(f"A '{label('working-size')}' of {settings.size} pixels is the layer's own size, "
                                 f"{region[0]} × {region[1]} pixels ({megapixels(region[0] * region[1])}); this "
                                 f"daemon works at most at {megapixels(max_pixels)}. Lower "
                                 f"'{label('working-size')}'.", "working-size")
        return SettingsError(f"The layer is {region[0]} × {region[1]} pixels ({megapixels(region[0] * region[1])}); "
                             f"this daemon works at most at {megapixels(max_pixels)}. Turn off "
                             f"'{label('full-resolution')}' and choose a '{label('working-size')}', or select a "
                             "part of the layer.", "full-resolution")
    styles = len(settings.style_paths)
    if limits.get("max_styles") is not None and styles > limits["max_styles"]:
        return SettingsError(f"This daemon accepts at most {limits['max_styles']} style image(s).", "style2")
    return None


def megapixels(pixels: int) -> str:
    """"24 megapixels", "0.03 megapixels": how a photographer counts."""
    return f"{pixels / 1e6:.3g} megapixels"


def size_note(width: int, height: int, selection: bool) -> str:
    """The dialog's line about what will be computed: the layer's (or the selection's) own size."""
    what = "The selection's bounds are" if selection else "The layer is"
    return f"{what} {width} × {height} px ({megapixels(width * height)})."


def progress_every_for(iterations: int) -> int:
    """Iterations between progress reports (each carries a preview the plug-in paints).

    About 50 reports a run for a smooth bar, but at least one every 10 iterations, so that
    a long run on a slow machine still shows the layer refining every few seconds.
    """
    return min(max(1, int(iterations) // 50), 10)


LAYER_NAME_PREFIX = "Neural Style: "


def layer_name(style: str, style2: Optional[str] = None) -> str:
    """The new layer's name: "Neural Style: starry_night" (or "a + b" with two styles)."""
    names = [os.path.splitext(os.path.basename(p))[0] or p for p in (style, style2) if p]
    return LAYER_NAME_PREFIX + " + ".join(names)


def choose_format(has_alpha: bool) -> tuple[str, int]:
    """The babl format the plug-in reads and writes, and its channel count.

    Always 8-bit sRGB-encoded ("R'G'B'"), whatever the image's precision: that is the
    encoding VGG19 was trained on and protocol v1's raw images carry.
    """
    return ("R'G'B'A u8", 4) if has_alpha else ("R'G'B' u8", 3)


def sent_size(width: int, height: int, size: int) -> tuple[int, int]:
    """The size the plug-in sends a width × height region at for the job's ``size``: its own for full
    resolution or a working size at least its longest side (the daemon never scales up), else scaled down."""
    if size == FULL_RESOLUTION or size >= max(width, height):
        return width, height
    return fit_within(width, height, size)


def fit_within(width: int, height: int, size: int) -> tuple[int, int]:
    """The size an image of width × height gets when its longest side becomes ``size`` (never 0)."""
    longest = max(width, height)
    if longest <= 0:
        raise ValueError("empty image")
    scale = size / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


# The job procedure reports "change this setting" failures to the menu procedure (which then
# opens the dialog again) inside its error message, the only thing a failed PDB call returns.
_ARGUMENT_TAG = "\x1eneural-style-argument:"


def tag_argument(message: str, argument: Optional[str]) -> str:
    return f"{_ARGUMENT_TAG}{argument}\x1e{message}" if argument else message


def split_argument(message: str) -> tuple[str, Optional[str]]:
    """The inverse of :func:`tag_argument`: (message, argument or None)."""
    if message.startswith(_ARGUMENT_TAG) and "\x1e" in message[len(_ARGUMENT_TAG):]:
        argument, _, rest = message[len(_ARGUMENT_TAG):].partition("\x1e")
        return rest, argument if argument in ARGUMENTS else None
    return message, None

"""The ``neural-style`` command: stylize, reconstruct and figures in-process; serve and status for the daemon.

Every user error ends in one line on stderr and a documented exit code, never a traceback:
0 done, 1 unexpected internal error, 2 bad input or options, 3 no weights, 4 no daemon answered,
5 the daemon refused or failed the job, 130 interrupted.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import sys
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from neural_style.protocol.connection import DEFAULT_ENDPOINT, ENDPOINT_ENV

from .exit_codes import (
    EXIT_BAD_INPUT,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_NO_WEIGHTS,
    EXIT_OK,
)
from .options import add_model_options, mebibytes

ENDPOINT_HELP = f"daemon endpoint (default ${ENDPOINT_ENV} or {DEFAULT_ENDPOINT})"

if TYPE_CHECKING:
    from .engine.params import Spec, StyleParams

log = logging.getLogger("neural_style.cli")


class UsageError(Exception):
    """Bad input found before any work: one line for the user, exit code 2."""


# ---------------------------------------------------------------------- options
def _add_param_options(parser: argparse.ArgumentParser, *, texture: bool = False) -> None:
    """The engine's parameters as options, derived from their schema (engine/params.py): the names in
    kebab-case, their types, choices and help with the default. Every option defaults to None, so
    that params_from_args passes on only what the user gave (reconstruct has defaults of its own)."""
    from .engine.params import PARAM_SPECS, STYLE_BLEND

    group = parser.add_argument_group("style transfer")
    for spec in (*PARAM_SPECS.values(), STYLE_BLEND):
        if spec.cli and (texture or not spec.texture_only):
            _add_option(group, spec)
    group.add_argument("--native", dest="size", action="store_const", const=0,
                       help=f"the same as --size 0: {PARAM_SPECS['size'].zero_means}, full resolution")


def _add_option(group: argparse._ActionsContainer, spec: Spec, default: object = None) -> None:
    """One option from a parameter's Spec; ``default`` replaces the schema's (for figures)."""
    flag = "--" + spec.name.replace("_", "-")
    shown = spec.default_text() if default is None else dataclasses.replace(spec, default=default).default_text()
    zero = f"; 0: {spec.zero_means}" if spec.zero_means else ""
    help_text = f"{spec.help}{zero} (default: {shown})".replace("%", "%%")
    if spec.unit == "MiB":
        group.add_argument(flag, type=mebibytes, default=default, metavar="SIZE",
                           help=help_text.replace(" (default", ", e.g. 2G or 512M (default", 1))
    elif spec.kind is bool:
        group.add_argument(flag, action="store_true", default=None, help=help_text)
    elif spec.booleans is not None:  # a choice that was a flag: the bare flag still means what true did
        group.add_argument(flag, nargs="?", const=spec.booleans[True], choices=spec.choices, default=default,
                           help=help_text.replace(" (default", f"; the bare flag: {spec.booleans[True]} (default", 1))
    elif spec.is_list:
        group.add_argument(flag, type=_layer_list if spec.kind is str else _number_list, help=help_text,
                           metavar="LAYER,…" if spec.kind is str else "W,…")
    else:
        group.add_argument(flag, type=spec.kind, choices=spec.choices or None, default=default, help=help_text,
                           metavar=None if spec.choices else ("N" if spec.kind is int else "X"))


def _layer_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _number_list(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _add_region_options(parser: argparse.ArgumentParser, *, texture: bool = False) -> None:
    """Where each style goes and what part of it is used (issue 17), one mask per style in their order;
    a texture (no content) has no frame for regions, only the part of each style image."""
    group = parser.add_argument_group("regions (Gatys et al. 2017)")
    if not texture:
        group.add_argument("--style-mask", dest="style_masks", type=_mask_path, action="append", metavar="PATH",
                           help="where a style goes: a greyscale image of the content's size (white: this style, "
                                "grey: less of it), one per style in their order (repeatable); '-' or 'none': that "
                                "style has no region of its own")
    group.add_argument("--style-source-mask", dest="style_source_masks", type=_mask_path, action="append",
                       metavar="PATH", help="the part of a style image its style is taken from: a greyscale image "
                                            "of that style image's size, one per style in their order "
                                            "(repeatable); '-' or 'none': the whole style image")


def _mask_path(text: str) -> Path | None:
    return None if text in ("-", "none") else Path(text)


def _mask_paths(args: argparse.Namespace) -> list[Path]:
    """Every mask file the options name (to check before any work)."""
    return [path for name in ("style_masks", "style_source_masks") for path in getattr(args, name, None) or ()
            if path is not None]


def params_from_args(args: argparse.Namespace, **overrides: object) -> StyleParams:
    """StyleParams from the options the user gave (others keep their defaults); constructing it validates."""
    from .engine.params import PARAM_SPECS, StyleParams

    given = {name: getattr(args, name) for name in PARAM_SPECS if getattr(args, name, None) is not None}
    given.update(overrides)
    return StyleParams(**given)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neural-style",
        description="Neural style transfer after Gatys, Ecker & Bethge (2015), in-process or through the warm daemon.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    stylize = commands.add_parser("stylize", help="paint CONTENT in the style of STYLE (the paper's Fig. 2)")
    stylize.add_argument("content", type=Path, help="a photo, or a folder of photos (then -o is a folder)")
    stylize.add_argument("styles", type=Path, nargs="+", metavar="style")
    stylize.add_argument("-o", "--output", type=Path, required=True,
                         help="the result; a folder (PNG files under the contents' names) for several contents")
    stylize.add_argument("--content", dest="more_contents", type=Path, action="append", default=[],
                         metavar="PATH", help="one more content photo (repeatable): independent photos, one warm "
                                              "model and one style computation; -o is then a folder")
    stylize.add_argument("--local", action="store_true", help="run in this process instead of through the daemon")
    stylize.add_argument("--endpoint", help=ENDPOINT_HELP)
    stylize.add_argument("--no-autostart", action="store_true",
                         help="fail instead of starting a daemon when none answers")
    _add_param_options(stylize)
    _add_region_options(stylize)
    add_model_options(stylize)

    _add_video_parser(commands)

    reconstruct = commands.add_parser(
        "reconstruct", help="content reconstruction or texture synthesis from chosen layers (the paper's Fig. 1)")
    source = reconstruct.add_mutually_exclusive_group(required=True)
    source.add_argument("--content", type=Path, help="reconstruct this image's content (β = 0)")
    source.add_argument("--style", type=Path, action="append",
                        help="synthesise this image's texture (no content); repeatable")
    reconstruct.add_argument("-o", "--output", type=Path, required=True)
    _add_param_options(reconstruct, texture=True)
    _add_region_options(reconstruct, texture=True)
    add_model_options(reconstruct)

    figures = commands.add_parser("figures", help="the paper's Fig. 1 rows and Fig. 3 grid as one labelled sheet")
    figures.add_argument("content", type=Path)
    figures.add_argument("style", type=Path)
    figures.add_argument("-o", "--output", type=Path, required=True)
    _add_figure_options(figures)
    add_model_options(figures)

    from .server.main import SERVE_DESCRIPTION, SERVE_HELP

    add_serve_options(commands.add_parser("serve", help=SERVE_HELP, description=SERVE_DESCRIPTION))

    status = commands.add_parser("status", help="ask the daemon what it is doing")
    status.add_argument("--endpoint", help=ENDPOINT_HELP)
    return parser


def _add_video_parser(commands: argparse._SubParsersAction) -> None:
    """``video``: stylize's options (from the same declarations) and the temporal ones."""
    from .engine.params import PARAM_SPECS
    from .sequence.chunks import DEFAULT_OVERLAP
    from .sequence.flow import FLOW_METHODS

    video = commands.add_parser(
        "video", help="stylize a folder of frames or a video file, each frame consistent with the one before",
        description="Stylize INPUT (a folder of frames, sorted by name, or a video file) into OUTPUT (a folder: "
                    "each frame as PNG under its input name; or a video file, by its extension, at the input's "
                    "frame rate with its audio where the container allows). Each frame starts from the previous "
                    "result warped by optical flow and is held near it (Ruder et al. 2016). Run again with the "
                    "same OUTPUT to resume: frames already written are kept.")
    video.add_argument("input", type=Path)
    video.add_argument("styles", type=Path, nargs="+", metavar="style")
    video.add_argument("-o", "--output", type=Path, required=True)
    video.add_argument("--local", action="store_true", help="run in this process instead of through the daemon")
    video.add_argument("--endpoint", help=ENDPOINT_HELP)
    video.add_argument("--no-autostart", action="store_true",
                       help="fail instead of starting a daemon when none answers")
    _add_param_options(video)
    group = video.add_argument_group("sequence")
    _add_option(group, PARAM_SPECS["temporal_weight"])
    group.add_argument("--flow", choices=FLOW_METHODS, default=FLOW_METHODS[0],
                       help=f"optical flow between content frames (default: {FLOW_METHODS[0]})")
    group.add_argument("--long-term", type=_offsets, default=(), metavar="OFFSETS",
                       help="long-term consistency: also hold each frame to the frames these many back, e.g. "
                            "10,20,40 (each pixel by the closest frame where it is visible; default: off, only "
                            "the frame before)")
    group.add_argument("--fps", type=Fraction, default=None, metavar="RATE",
                       help="frame rate of a video OUTPUT, e.g. 24 or 30000/1001 (default: the input video's; "
                            "25 for a folder of frames)")
    group.add_argument("--overlap", type=_frame_count, default=DEFAULT_OVERLAP, metavar="FRAMES",
                       help="on a daemon that runs several jobs at once (serve --ray) the frames go in chunks, one "
                            f"per worker, each starting FRAMES early (default: {DEFAULT_OVERLAP})")
    add_model_options(video)


def add_serve_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``serve``'s options: the model's and the daemon's (``python -m neural_style.daemon.server`` has the same)."""
    from .server.main import add_serve_arguments

    add_model_options(parser)
    add_serve_arguments(parser)
    return parser


def _add_figure_options(parser: argparse.ArgumentParser) -> None:
    """The figure sheet's settings: the engine's options of the same names, with the sheet's defaults."""
    from .engine.params import PARAM_SPECS
    from .figures import FigureSettings

    group = parser.add_argument_group("every cell")
    for f in dataclasses.fields(FigureSettings):
        _add_option(group, PARAM_SPECS[f.name], default=f.default)


# ---------------------------------------------------------------------- commands
def _run_stylize(args: argparse.Namespace) -> int:
    params = params_from_args(args)
    jobs = _stylize_jobs(args.content, args.more_contents, args.output)
    _check_readable(*(content for content, _ in jobs), *args.styles, *_mask_paths(args))
    if not args.local:
        from . import remote

        return remote.stylize_all_with_daemon(args, jobs, list(args.styles), params, args.style_blend)
    from .image_files import load_image

    styles = [load_image(path) for path in args.styles]
    return _run_local(args, [(functools.partial(load_image, content), output) for content, output in jobs], styles,
                      params)


def _stylize_jobs(content: Path, more: Sequence[Path], output: Path) -> list[tuple[Path, Path]]:
    """(content, output) pairs: one photo to ``output``, or a folder's photos and ``--content`` ones into the
    folder ``output`` (made if missing), each as PNG under its content's name."""
    if not content.is_dir() and not more:
        _check_writable(output)
        return [(content, output)]
    from .sequence.frames import folder_frames

    contents = [*(folder_frames(content) if content.is_dir() else [content]), *more]
    if not contents:
        raise UsageError(f"{content} holds no images")
    if output.exists() and not output.is_dir():
        raise UsageError(f"{output} is a file: with several contents -o is a folder")
    _check_writable(output)
    names = [path.stem for path in contents]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise UsageError(f"several contents are named {repeated[0]}: their results would overwrite each other")
    _check_readable(*contents)
    output.mkdir(exist_ok=True)
    return [(path, output / f"{path.stem}.png") for path in contents]


def _run_video(args: argparse.Namespace) -> int:
    from .image_files import load_image
    from .progress_bar import FrameProgress
    from .sequence.frames import is_video
    from .sequence_run import LocalFrames, open_source, run_sequence

    params = params_from_args(args)  # --temporal-weight included: the schema's name
    _check_readable(*args.styles)
    _check_video_output(args.output)
    if args.fps is not None and (args.fps <= 0 or not is_video(args.output)):
        raise UsageError("--fps must be positive, and is for a video OUTPUT")
    source = open_source(args.input)
    from .engine.params import plan_inputs

    plan_inputs(params, has_content=True, style_count=len(args.styles), style_blend=args.style_blend)

    def run(stylize_frame) -> int:
        progress = FrameProgress(source.count, params.iterations)
        try:
            run_sequence(source, args.output, stylize_frame, progress, temporal=params.temporal_weight > 0,
                         rate=args.fps, overlap=args.overlap, long_term=args.long_term)
        finally:
            progress.close()
        return EXIT_OK

    if not args.local:
        from . import remote

        return remote.video_with_daemon(args, list(args.styles), params, args.style_blend, args.flow, run)
    from .weights import load_model

    model = load_model(args.weights, args.weights_format, args.device)
    return run(LocalFrames(model, [load_image(path) for path in args.styles], params, args.style_blend, args.flow))


def _offsets(text: str) -> tuple[int, ...]:
    """``--long-term``'s "10,20,40": frame offsets of 2 or more (1 is always the previous frame), sorted."""
    try:
        offsets = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of frame offsets") from None
    if not offsets or offsets[0] < 2:
        raise argparse.ArgumentTypeError(f"{text!r}: long-term offsets are 2 or more (1 is the previous frame)")
    return tuple(offsets)


def _frame_count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is not a count of frames (0 or more)")
    return value


def _check_video_output(path: Path) -> None:
    """OUTPUT is a video file by its extension, else a folder (made if missing, inside an existing one)."""
    from .sequence.frames import is_video

    _check_writable(path)
    if not is_video(path) and path.exists() and not path.is_dir():
        raise UsageError(f"{path} is a file: OUTPUT is a folder of frames or a video file (.mp4, .mkv, .webm…)")
    if is_video(path) and path.is_dir():
        raise UsageError(f"{path} is a folder, not a video file")


def _run_reconstruct(args: argparse.Namespace) -> int:
    from .image_files import load_image

    _check_writable(args.output)
    if args.content is not None:
        _check_readable(args.content)
        params = params_from_args(args, **_defaults(args, style_weight=0.0, style_layers=()))
        return _run_local(args, [(lambda: load_image(args.content), args.output)], [], params)
    _check_readable(*args.style, *_mask_paths(args))
    params = params_from_args(args, **_defaults(args, content_layers=()))
    return _run_local(args, [(lambda: None, args.output)], [load_image(path) for path in args.style], params)


def _defaults(args: argparse.Namespace, **values) -> dict:
    """Mode-specific defaults that the user's own options still override."""
    return {name: value for name, value in values.items() if getattr(args, name, None) is None}


def recorded_settings(params: StyleParams, style_blend: Sequence[float] | None) -> dict[str, object]:
    """What a result file's metadata records: the parameters and the style blend."""
    return {**params.to_mapping(), "style_blend": list(style_blend) if style_blend is not None else None}


def _run_local(args: argparse.Namespace, jobs: Sequence[tuple[Callable[[], object], Path]], styles,
               params) -> int:
    """Each (content loader, output) in this process: one model, one style-target cache for all of them."""
    from .engine import stylize
    from .image_files import save_image
    from .png_output import output_metadata
    from .progress_bar import ProgressBar
    from .weights import load_model

    masks, source_masks = (_local_masks(getattr(args, name, None)) for name in ("style_masks", "style_source_masks"))
    model = load_model(args.weights, args.weights_format, args.device)
    cache: dict[object, object] = {}
    for load, output in jobs:
        content = load()
        bar = ProgressBar(params.iterations)
        try:
            result = stylize(model, content, styles, params, style_blend=args.style_blend, on_progress=bar.report,
                             target_cache=cache, style_masks=masks, style_source_masks=source_masks)
        finally:
            bar.close()
        save_image(result.image, output,
                   output_metadata(model.description, recorded_settings(params, args.style_blend)))
        log.info("wrote %s (%d iterations, %.1f s, loss %.4g)", output, result.iterations, result.elapsed,
                 result.loss.total)
    return EXIT_OK


def _local_masks(paths: Sequence[Path | None] | None) -> list[object] | None:
    """The mask files as the engine's tensors, read as the daemon reads a request's (``mask_images``)."""
    if not paths:
        return None
    from .image_files import DEFAULT_MAX_PIXELS
    from .mask_images import load_mask, mask_levels, mask_tensor

    return [None if path is None else mask_tensor(mask_levels(load_mask(path), DEFAULT_MAX_PIXELS)) for path in paths]


def _run_figures(args: argparse.Namespace) -> int:
    from .figures import FigureSettings, render_figure_sheet
    from .image_files import load_image, save_image
    from .png_output import output_metadata
    from .progress_bar import ProgressBar
    from .weights import load_model

    _check_readable(args.content, args.style)
    _check_writable(args.output)
    settings = FigureSettings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(FigureSettings)})
    settings.base_params()  # checks the values before the model loads
    content, style = load_image(args.content), load_image(args.style)
    model = load_model(args.weights, args.weights_format, args.device)
    bar = ProgressBar(settings.cell_count, label="cells")
    try:
        sheet = render_figure_sheet(model, content, style, settings,
                                    on_cell=lambda done, title: bar.update(done, None, title))
    finally:
        bar.close()
    save_image(sheet, args.output, output_metadata(model.description))
    log.info("wrote %s", args.output)
    return EXIT_OK


def _run_serve(args: argparse.Namespace) -> int:
    from .server.main import serve

    return serve(args)


def _run_status(args: argparse.Namespace) -> int:
    from . import remote

    return remote.status(args)


def _check_readable(*paths: Path) -> None:
    for path in paths:
        if not path.exists():
            raise UsageError(f"no such file: {path}")
        if path.is_dir():
            raise UsageError(f"{path} is a folder, not an image")


def _check_writable(path: Path) -> None:
    parent = path.expanduser().resolve().parent
    if not parent.is_dir():
        raise UsageError(f"cannot write {path}: folder {parent} does not exist")


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "stylize": _run_stylize,
    "video": _run_video,
    "reconstruct": _run_reconstruct,
    "figures": _run_figures,
    "serve": _run_serve,
    "status": _run_status,
}


# ---------------------------------------------------------------------- entry point
def bare_flags(argv: Sequence[str]) -> list[str]:
    """``argv`` with each bare flag of a choice that was a flag (``--preserve-color``) spelt with its value
    (``--preserve-color=luminance``) unless a choice follows: argparse would take the next word, the
    content photo of ``stylize --preserve-color photo.jpg style.jpg``, for the flag's value."""
    from .engine.params import PARAM_SPECS

    bare = {"--" + spec.name.replace("_", "-"): spec for spec in PARAM_SPECS.values() if spec.booleans is not None}
    out = list(argv)
    for i, word in enumerate(out):
        spec = bare.get(word)
        if spec is not None and spec.booleans is not None and (i + 1 == len(out) or out[i + 1] not in spec.choices):
            out[i] = f"{word}={spec.booleans[True]}"
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(bare_flags(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    from .engine.heap_threshold import share_one_arena

    share_one_arena()  # before any thread starts: the engine's heap can then keep large blocks (heap_threshold.py)
    return _guarded(_COMMANDS[args.command], args)


def _guarded(command: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Turn the errors a user can cause into one message and an exit code; only bugs keep a traceback (-v)."""
    from .engine.engine_errors import Cancelled, ParamError, WeightsFormatError
    from .local_errors import DeviceUnavailable, ImageError, WeightsNotFound

    try:
        return command(args)
    except (UsageError, ParamError, ImageError, DeviceUnavailable) as error:
        _say(f"error: {error}")
        return EXIT_BAD_INPUT
    except (WeightsNotFound, WeightsFormatError) as error:
        _say(f"error: {error}")
        return EXIT_NO_WEIGHTS
    except (KeyboardInterrupt, Cancelled):
        _say("interrupted")
        return EXIT_INTERRUPTED
    except Exception as error:  # a bug: say so plainly, keep the traceback for -v
        log.debug("unexpected error", exc_info=True)
        _say(f"internal error: {type(error).__name__}: {error} (run with -v for details)")
        return EXIT_INTERNAL


def _say(message: str) -> None:
    print(message, file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

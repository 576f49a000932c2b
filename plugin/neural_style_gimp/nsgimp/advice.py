"""One GIMP message per failure: what happened and what to do, in the dialog's words (never a traceback)."""
from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Optional

from .settings import ADVANCED_TITLE, REGION_ARGUMENTS, label

PREFIX = "Neural Style: "

ADVICE = {
    "no_weights": (
        "The Neural Style daemon has no VGG19 weights. Put the file where the daemon says below, or run "
        "install.py again without --no-weights (it downloads them), then run Neural Style again: the daemon "
        "looks for them at every job, no restart needed (or start it with --weights FILE)."
    ),
    "too_large": (
        f"The image or the settings are over the daemon's limits. Turn off '{label('full-resolution')}' and "
        f"choose a smaller '{label('working-size')}', lower '{label('iterations')}', or stylize a smaller selection."
    ),
    "busy": "The Neural Style daemon's queue is full. Wait for the running jobs to finish and try again.",
    "cancelled": "The Neural Style job was cancelled (the daemon stopped, or another program cancelled it).",
    "bad_request": "The daemon refused the request. Check the style images and the settings.",
    "unsupported_version": (
        "The Neural Style daemon speaks another protocol version than this plug-in. "
        "Run install.py again so that the plug-in and the daemon come from the same version."
    ),
    "internal": (f"The Neural Style daemon failed inside (see its log). Try without '{label('full-resolution')}', "
                 f"at a smaller '{label('working-size')}'."),
}


#: What to do when the daemon refuses a style image (its ``field`` is ``styles[i]``), by error code.
STYLE_ADVICE = {
    "too_large": "Choose a smaller copy of it.",
    "bad_request": "Save it as a PNG or JPEG file and choose that.",
}
#: What to do when the daemon refuses a style's region (its ``field`` is ``style_masks[i]``).
MASK_ADVICE = ("Paint white where the painting should go in the channel (or select something), "
               "or set the region back to the whole layer.")
#: The dialog's setting to blame for the request's ``params`` field an error names.
PARAM_ARGUMENTS = {
    "params.iterations": "iterations", "params.seed": "seed", "params.init": "init",
    "params.preserve_color": "preserve-colors", "params.preview_size": "preview-size",
    "params.style_weight": "strength", "style_blend": "blend",
}
#: Fields that are the working size: the dialog's 'Full resolution' or 'Working size', whichever is in use.
SIZE_FIELDS = frozenset({"content", "params.size", "params.width", "params.height"})


def command_text(command: Sequence[str], endpoint: str) -> str:
    """The command to type for a daemon at ``endpoint`` (the recorded one has no address of its own)."""
    words = list(command)
    if "--bind" not in words:
        words += ["--bind", endpoint]
    return shlex.join(words)


def style_index(field: Optional[str], name: str = "styles") -> Optional[int]:
    """``i`` for the error field ``styles[i]`` (the daemon's name for the i-th style image), else None;
    ``name`` "style_masks" for the i-th style's region."""
    if field is None or not field.startswith(f"{name}[") or not field.endswith("]"):
        return None
    index = field[len(name) + 1:-1]
    return int(index) if index.isdigit() else None


def blamed_argument(code: str, field: Optional[str], full_resolution: bool) -> Optional[str]:
    """The dialog's setting to change for an error with ``code`` about ``field`` (None: no setting is to blame)."""
    index = style_index(field)
    if index is not None:
        return "style" if index == 0 else "style2"
    index = style_index(field, "style_masks")
    if index is not None and index < len(REGION_ARGUMENTS):
        return REGION_ARGUMENTS[index]
    if field in PARAM_ARGUMENTS:
        return PARAM_ARGUMENTS[field]
    if field in SIZE_FIELDS or (code == "too_large" and field is None):  # None: the request's bytes, say
        return "full-resolution" if full_resolution else "working-size"
    return None


def daemon_error_text(code: str, message: str, style_paths: Sequence[str] = (), field: Optional[str] = None) -> str:
    """The message for an ``error`` reply from the daemon; ``field`` (the reply's) names what it is about."""
    detail = f" (daemon said: {message})" if message else ""
    index = style_index(field)
    if index is not None and index < len(style_paths):
        advice = STYLE_ADVICE.get(code, ADVICE.get(code, ""))
        return f"{PREFIX}the style image {style_paths[index]} cannot be used{detail}. {advice}".rstrip()
    index = style_index(field, "style_masks")
    if index is not None and index < len(REGION_ARGUMENTS):
        return f"{PREFIX}the '{label(REGION_ARGUMENTS[index])}' cannot be used{detail}. {MASK_ADVICE}"
    advice = ADVICE.get(code, "The Neural Style daemon reported an error.")
    return f"{PREFIX}{advice}{detail}"


def no_daemon_text(endpoint: str, *, command: Sequence[str], autostart: bool, sandbox: Optional[str] = None,
                   service: Optional[str] = None, service_command: str = "") -> str:
    """Nothing answered the first ping and nothing was started: say exactly how to get a daemon."""
    head = f"{PREFIX}no daemon answers at {endpoint}."
    if sandbox:
        text = (f"{head} GIMP runs in a {sandbox} sandbox, which cannot start programs on the host, "
                "so start the daemon there. ")
        if service:
            return text + f"On the host, run: {service_command}"
        if command:
            text += f"On the host, run: {command_text(command, endpoint)} — or, to have it start at every login, "
        else:
            text += f"On the host, run: neural-style serve --bind {endpoint} — or, to have it start at every login, "
        return text + "run install.py --service once (in the Neural Style folder)."
    if command and not autostart:
        return (f"{head} Start it with: {command_text(command, endpoint)} — or tick '{label('autostart')}' "
                f"(under '{ADVANCED_TITLE}').")
    return (f"{head} Start it with: neural-style serve --bind {endpoint} — or run install.py again so that the "
            "plug-in can start it.")


def start_failed_text(endpoint: str, command: Sequence[str], reason: str) -> str:
    """Starting the recorded daemon command failed (it could not run, exited, or never answered)."""
    if len(reason) > 1500:
        reason = "…" + reason[-1500:]
    return (f"{PREFIX}could not start the daemon for {endpoint}: {reason}\n"
            f"Run install.py again, or run this in a terminal to see why: {command_text(command, endpoint)}")


def lost_text(endpoint: str, reason: str) -> str:
    return (f"{PREFIX}the daemon at {endpoint} stopped answering in the middle of the job ({reason}). "
            "Check that it still runs (neural-style status) and try again.")


def missing_dependency_text(missing: Sequence[str], note: str = "") -> str:
    names = " and ".join(missing)
    return (f"{PREFIX}GIMP's Python cannot import {names}{note}. Run install.py again (it places matching "
            "wheels next to the plug-in), or on Debian/Ubuntu install python3-zmq and python3-msgpack.")

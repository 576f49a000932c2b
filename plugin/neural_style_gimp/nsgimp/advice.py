"""One GIMP message per failure: what happened and what to do, in the dialog's words (never a traceback)."""
from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from typing import Optional

from .settings import ADVANCED_TITLE, label

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


def command_text(command: Sequence[str], endpoint: str) -> str:
    """The command to type for a daemon at ``endpoint`` (the recorded one has no address of its own)."""
    words = list(command)
    if "--bind" not in words:
        words += ["--bind", endpoint]
    return shlex.join(words)


def name_the_files(message: str, style_paths: Sequence[str]) -> str:
    """The daemon says ``styles[1]``; the user chose a file: put its name there."""
    def file_of(match: re.Match) -> str:
        index = int(match.group(1))
        return f"the style image {style_paths[index]}" if index < len(style_paths) else match.group(0)
    return re.sub(r"styles\[(\d+)\]", file_of, message)


def daemon_error_text(code: str, message: str, style_paths: Sequence[str] = ()) -> str:
    """The message for an ``error`` reply from the daemon."""
    advice = ADVICE.get(code, "The Neural Style daemon reported an error.")
    detail = f" (daemon said: {name_the_files(message, style_paths)})" if message else ""
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

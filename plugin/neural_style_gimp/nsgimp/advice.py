"""One GIMP message per failure, saying what happened and what to do (never a traceback)."""
from __future__ import annotations

ADVICE = {
    "no_weights": (
        "The Neural Style daemon has no VGG19 weights. Run install.py again without --no-weights "
        "(it downloads them), or start the daemon with --weights FILE."
    ),
    "too_large": (
        "The image or the settings are over the daemon's limits. Lower the processing size or the "
        "iterations, or stylize a smaller selection."
    ),
    "busy": "The Neural Style daemon's queue is full. Wait for the running jobs to finish and try again.",
    "cancelled": "The Neural Style job was cancelled (the daemon stopped or another client cancelled it).",
    "bad_request": "The daemon refused the request. Check the style image and the settings.",
    "unsupported_version": (
        "The Neural Style daemon speaks another protocol version than this plug-in. "
        "Run install.py again so that the plug-in and the daemon come from the same version."
    ),
    "internal": "The Neural Style daemon failed inside (see its log). Try a smaller processing size.",
}


def daemon_error_text(code: str, message: str) -> str:
    """The message for an ``error`` reply from the daemon."""
    advice = ADVICE.get(code, "The Neural Style daemon reported an error.")
    detail = f" (daemon said: {message})" if message else ""
    return f"Neural Style: {advice}{detail}"


def unavailable_text(endpoint: str, *, autostart: bool, command: list[str] | None, reason: str = "",
                     mid_run: bool = False) -> str:
    """The message when no daemon answers, or contact was lost in the middle of a job."""
    if mid_run:
        head = f"Neural Style: the daemon at {endpoint} stopped answering in the middle of the job."
    else:
        head = f"Neural Style: no daemon answers at {endpoint}."
    if autostart and command:
        tail = (
            " Starting it did not help either; run this in a terminal to see why: "
            + " ".join(command)
        )
    elif command:
        tail = " Start it with: " + " ".join(command) + " (or enable 'Start the daemon if needed')."
    else:
        tail = " Start it with: neural-style serve (or run install.py to record how to start it)."
    why = f" ({reason})" if reason else ""
    return head + why + tail


def missing_dependency_text(missing: list[str]) -> str:
    names = " and ".join(missing)
    return (
        f"Neural Style: GIMP's Python cannot import {names}. Run install.py again (it places matching "
        "wheels next to the plug-in), or on Debian/Ubuntu install python3-zmq and python3-msgpack."
    )

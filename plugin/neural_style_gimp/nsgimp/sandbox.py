"""Is GIMP sandboxed (Flatpak, Snap)?  Then it can reach tcp://127.0.0.1 but cannot start the daemon.

A sandboxed GIMP runs plug-ins inside its runtime: the daemon command install.py recorded
(a path in a virtual environment on the host) does not exist there, so autostart cannot
work and the message must say which command to run on the host instead.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Optional


def detect_sandbox(environ: Optional[Mapping[str, str]] = None,
                   exists: Callable[[str], bool] = os.path.exists) -> Optional[str]:
    """ "Flatpak" (``/.flatpak-info`` exists), "Snap" (``$SNAP`` is set), or None."""
    env = os.environ if environ is None else environ
    if exists("/.flatpak-info"):
        return "Flatpak"
    if env.get("SNAP"):
        return "Snap"
    return None

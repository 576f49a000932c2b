"""Make ``neural_style.protocol`` importable from inside GIMP's Python.

install.py copies the protocol package to ``<plug-in folder>/neural_style/protocol/`` and,
when GIMP's Python lacks pyzmq or msgpack, unpacks matching wheels into
``<plug-in folder>/vendor/``.  Both go on ``sys.path`` (the plug-in folder first) before
the plug-in imports the protocol.
"""
from __future__ import annotations

import os
import sys

VENDOR_DIR = "vendor"


def extend_sys_path(plugin_dir: str, path: list[str] | None = None) -> list[str]:
    """Put the plug-in folder and its vendor folder (if present) at the front of ``path``; return what was added."""
    path = sys.path if path is None else path
    added = []
    for folder in (os.path.join(plugin_dir, VENDOR_DIR), plugin_dir):  # inserted in reverse: plugin_dir ends first
        if os.path.isdir(folder) and folder not in path:
            path.insert(0, folder)
            added.append(folder)
    return added


def missing_modules(names: tuple[str, ...] = ("zmq", "msgpack")) -> list[str]:
    """Which of the protocol's dependencies cannot be imported."""
    import importlib

    missing = []
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # an ImportError, or a broken binary wheel
            missing.append(name)
    return missing

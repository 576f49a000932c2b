"""Make ``neural_style.protocol`` and its dependencies importable from inside GIMP's Python.

install.py copies the protocol package to ``<plug-in folder>/neural_style/protocol/`` and,
when GIMP's Python lacked pyzmq or msgpack, unpacks wheels into ``<plug-in folder>/vendor/``
together with ``vendor/.neural-style-wheels.json`` naming the Python they were fetched for.

The plug-in folder goes first on ``sys.path`` (the protocol copy must win over any other
``neural_style``), the vendor folder *last*: GIMP's own pyzmq, when it has one, always wins.
Wheels fetched for another Python (GIMP was upgraded, or install.py probed another
interpreter) are not used at all, and the message says why.
"""
from __future__ import annotations

import importlib
import json
import os
import sys
from typing import Optional

VENDOR_DIR = "vendor"
WHEELS_RECORD = ".neural-style-wheels.json"  # written by install.py into vendor/
DEPENDENCIES = ("zmq", "msgpack")


def python_tag(version_info: tuple = tuple(sys.version_info)) -> str:
    return "{}.{}".format(*version_info[:2])


def vendor_problem(plugin_dir: str, version_info: tuple = tuple(sys.version_info)) -> Optional[str]:
    """Why the vendor folder does not fit this Python (None when it fits or is absent)."""
    record_path = os.path.join(plugin_dir, VENDOR_DIR, WHEELS_RECORD)
    try:
        with open(record_path, encoding="utf-8") as fh:
            record = json.load(fh)
        fetched_for = record["python"]
    except FileNotFoundError:
        return None  # an older install.py wrote no record: try the wheels
    except (OSError, ValueError, KeyError, TypeError):
        return f"{record_path} is unreadable"
    here = python_tag(version_info)
    if fetched_for != here:
        return (f"the wheels in {os.path.join(plugin_dir, VENDOR_DIR)} were fetched for Python {fetched_for}, "
                f"GIMP runs {here}")
    return None


def extend_sys_path(plugin_dir: str, path: Optional[list[str]] = None,
                    version_info: tuple = tuple(sys.version_info)) -> list[str]:
    """Put the plug-in folder first and a fitting vendor folder last on ``path``; return what was added."""
    path = sys.path if path is None else path
    added = []
    if plugin_dir not in path:
        path.insert(0, plugin_dir)
        added.append(plugin_dir)
    vendor = os.path.join(plugin_dir, VENDOR_DIR)
    if os.path.isdir(vendor) and vendor not in path and vendor_problem(plugin_dir, version_info) is None:
        path.append(vendor)
        added.append(vendor)
    return added


def missing_modules(names: tuple[str, ...] = DEPENDENCIES) -> list[str]:
    """Which of the protocol's dependencies cannot be imported."""
    missing = []
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # an ImportError, or a broken binary wheel
            missing.append(name)
    return missing


def import_dependencies(plugin_dir: str, path: Optional[list[str]] = None,
                        names: tuple[str, ...] = DEPENDENCIES) -> tuple[list[str], str]:
    """Import the dependencies (the system's first); return those still missing and a note on the wheels.

    When the system's copy is there but broken, the fitting vendor folder gets one try in front.
    """
    path = sys.path if path is None else path
    missing = missing_modules(names)
    vendor = os.path.join(plugin_dir, VENDOR_DIR)
    if missing and vendor in path and path[0] != vendor:
        path.remove(vendor)
        path.insert(0, vendor)
        for name in list(sys.modules):
            if name.split(".")[0] in missing:
                del sys.modules[name]
        importlib.invalidate_caches()
        missing = missing_modules(names)
    problem = vendor_problem(plugin_dir) if os.path.isdir(vendor) else None
    return missing, f" ({problem})" if missing and problem else ""

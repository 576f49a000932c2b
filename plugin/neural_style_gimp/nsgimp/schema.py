"""The engine's parameter schema as the plug-in sees it: ranges, defaults, choices and help, never restated.

``daemon/engine/params.py`` declares every parameter once and exports it as plain data
(``parameter_schema()``).  The plug-in cannot import the engine (GIMP's Python has no torch),
so ``install.py`` writes :func:`dumps` of that data into the plug-in's folder, and the plug-in
reads it back with :func:`read_schema`: one file format, one module that knows it.

Standard library only: ``install.py`` loads this file by its path under whatever Python runs it.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Optional, Union

SCHEMA_NAME = "neural_style_params.json"
SCHEMA_FORMAT = 1

PathLike = Union[str, "os.PathLike[str]"]


class SchemaMissing(RuntimeError):
    """The plug-in's folder has no usable schema file (install.py writes it)."""


def schema_path(folder: PathLike) -> Path:
    return Path(folder) / SCHEMA_NAME


def dumps(schema: Mapping[str, Any]) -> str:
    """The file's exact text (install.py writes it, skipping an unchanged file)."""
    return json.dumps({"format": SCHEMA_FORMAT, **schema}, indent=1, sort_keys=True) + "\n"


def _engine_schema() -> Optional[dict[str, Any]]:
    """The schema straight from the engine, where it is importable (a source checkout's venv)."""
    try:
        from neural_style.daemon.engine.params import parameter_schema
    except ImportError:
        return None
    return parameter_schema()


def read_schema(folder: PathLike, fallback: Callable[[], Optional[dict[str, Any]]] = _engine_schema
                ) -> dict[str, Any]:
    """The schema in ``folder``; without the file, the engine's own (when importable), else SchemaMissing."""
    path = schema_path(folder)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("params"), dict):
            raise ValueError("no 'params' map")
        if data.get("format") != SCHEMA_FORMAT:  # written by another version's install.py
            raise ValueError(f"format {data.get('format')!r}, this plug-in reads format {SCHEMA_FORMAT}")
        return data
    except FileNotFoundError:
        schema = fallback()
        if schema is None:
            raise SchemaMissing(f"{path} is missing: run install.py again") from None
        return schema
    except (OSError, ValueError) as exc:
        raise SchemaMissing(f"{path} could not be read ({exc}): run install.py again") from None


class Schema:
    """Read access to one schema: ``schema.param("iterations")["maximum"]`` and friends."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data

    def param(self, name: str) -> Mapping[str, Any]:
        return self.data["params"][name]

    def default(self, name: str) -> Any:
        return self.param(name)["default"]

    def minimum(self, name: str) -> Any:
        return self.param(name)["minimum"]

    def maximum(self, name: str) -> Any:
        return self.param(name)["maximum"]

    def choices(self, name: str) -> tuple[str, ...]:
        return tuple(self.param(name)["choices"])

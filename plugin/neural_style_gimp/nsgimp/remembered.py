"""The dialog's values as the user last confirmed them, whatever became of that run.

GIMP keeps a procedure's "last values" only after a *successful* interactive run, so after
a failure or a cancel the dialog would come back with older values.  The plug-in writes
what the user confirmed to its own small JSON file (beside GIMP's files, in the profile's
``plug-in-settings`` folder) on every OK, and puts it back into the dialog next time.
A result layer keeps the values that made it too (``made_with``, a parasite), offered again when
"Neural Style…" runs on that layer.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import Any, Optional

FILE_NAME = "plug-in-neural-style.last-attempt.json"
FORMAT = 1


def attempt_path(gimp_directory: str) -> str:
    return os.path.join(gimp_directory, "plug-in-settings", FILE_NAME)


def save_attempt(path: str, values: Mapping[str, Any]) -> None:
    """Write the values (JSON types only: numbers, booleans, strings, None); failures are not fatal."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"format": FORMAT, "values": dict(values)}, fh, indent=2)
        os.replace(tmp, path)
    except (OSError, TypeError, ValueError):
        pass  # remembering is a convenience: never fail a run over it


def load_attempt(path: str, defaults: Mapping[str, Any],
                 upgrade: Optional[Callable[[Mapping[str, Any]], Mapping[str, Any]]] = None) -> dict[str, Any]:
    """The remembered values whose names and types match ``defaults`` (anything else is ignored), after
    ``upgrade`` has turned an older plug-in's values into today's types."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        values = data["values"] if isinstance(data, dict) and data.get("format") == FORMAT else {}
    except (OSError, ValueError, KeyError):
        return {}
    return _matching(values, defaults, upgrade)


# What made a result layer, kept on it as a parasite (saved in the XCF): "Neural Style…" on that layer
# offers the same settings again, on the layer it was made from.  The daemon's address and the other
# connection settings are the user's, not the result's: they are not kept.
NOT_MADE_WITH = ("endpoint", "autostart", "timeout")


def made_with(values: Mapping[str, Any], source_tattoo: int) -> bytes:
    """The parasite's bytes: the settings (JSON types) and the source layer's tattoo (kept in the XCF)."""
    kept = {name: value for name, value in values.items() if name not in NOT_MADE_WITH}
    return json.dumps({"format": FORMAT, "values": kept, "source": int(source_tattoo)}).encode("utf-8")


def read_made_with(data: bytes, defaults: Mapping[str, Any]) -> tuple[dict[str, Any], Optional[int]]:
    """(the settings that match ``defaults``, the source layer's tattoo or None); ({}, None) for anything else."""
    try:
        record = json.loads(bytes(data).decode("utf-8"))
    except (ValueError, UnicodeDecodeError, TypeError):
        return {}, None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        return {}, None
    source = record.get("source")
    tattoo = source if isinstance(source, int) and not isinstance(source, bool) and source > 0 else None
    values = {name: value for name, value in _matching(record.get("values"), defaults, None).items()
              if name not in NOT_MADE_WITH}
    return values, tattoo


def _matching(values: Any, defaults: Mapping[str, Any],
              upgrade: Optional[Callable[[Mapping[str, Any]], Mapping[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not isinstance(values, dict):
        return out
    if upgrade is not None:
        values = upgrade(values)
    for name, value in values.items():
        if name not in defaults:
            continue
        default = defaults[name]
        if _fits(value, default):
            out[name] = float(value) if isinstance(default, float) else value
    return out


def _fits(value: Any, default: Any) -> bool:
    if default is None or isinstance(default, str):  # a path or a choice: a string, or None for "no file"
        return value is None or isinstance(value, str)
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return False


def restore_file(value: Optional[str]) -> Optional[str]:
    """A remembered style path, only while it still exists (a moved file should not come back)."""
    return value if value and os.path.isfile(value) else None

"""How fast this computer's daemon was on the last run, and what the dialog's settings will cost.

The cost of a run grows with its iterations and with the pixels it works at (the layer's own for
full resolution, else the working size's), so one number measured on the last successful run,
seconds per iteration per megapixel, lets the dialog say "about 3 min" before OK (issue 18: 200
iterations at full resolution on an 800 × 600 photo took 6–7 min on a 2-core CPU, unannounced).
It is kept beside the remembered values, in the profile's ``plug-in-settings`` folder.
"""
from __future__ import annotations

import json
import os
from typing import Optional

FILE_NAME = "plug-in-neural-style.speed.json"
FORMAT = 1


def speed_path(gimp_directory: str) -> str:
    return os.path.join(gimp_directory, "plug-in-settings", FILE_NAME)


def rate(seconds: float, iterations: int, pixels: int) -> float:
    """Seconds per iteration per megapixel of one run."""
    return seconds / max(1, iterations) / max(pixels / 1e6, 1e-6)


def record(path: str, seconds: float, iterations: int, pixels: int) -> None:
    """Keep the rate of a run that succeeded (never fails the run over it)."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"format": FORMAT, "seconds_per_iteration_megapixel": rate(seconds, iterations, pixels)}, fh)
        os.replace(tmp, path)
    except (OSError, ValueError):
        pass


def load(path: str) -> Optional[float]:
    """The last recorded rate, or None (no run yet, or an unreadable file)."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        value = data["seconds_per_iteration_megapixel"] if data.get("format") == FORMAT else None
    except (OSError, ValueError, KeyError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def estimate_text(iterations: int, pixels: int, seconds_per_iteration_megapixel: Optional[float]) -> str:
    """The dialog's line about the cost of these settings."""
    if seconds_per_iteration_megapixel is None:
        return "The first run measures this computer's speed; the dialog then says how long a run takes."
    try:  # the dialog may open before pyzmq is known to be there; the protocol package needs it
        from neural_style.protocol import duration
    except ImportError:
        return ""
    seconds = seconds_per_iteration_megapixel * iterations * pixels / 1e6
    return f"At these settings: {duration(seconds, rough=True)} on this computer (measured on the last run)."

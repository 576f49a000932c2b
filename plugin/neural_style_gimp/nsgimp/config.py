"""The small JSON file that install.py writes next to the plug-in, and how the plug-in reads it.

``neural_style_gimp.json`` (in the plug-in's folder)::

    {
      "format": 1,
      "endpoint": "tcp://127.0.0.1:5570",
      "daemon_command": ["/path/to/.venv/bin/neural-style", "serve", "--bind", "tcp://127.0.0.1:5570"],
      "autostart": true
    }

``NEURAL_STYLE_ENDPOINT`` in GIMP's environment overrides the endpoint (the daemon honours
the same variable); an endpoint given as a procedure argument overrides both.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from .settings import DEFAULT_ENDPOINT

CONFIG_NAME = "neural_style_gimp.json"
CONFIG_FORMAT = 1


@dataclass
class PluginConfig:
    endpoint: str = DEFAULT_ENDPOINT
    daemon_command: list[str] = field(default_factory=list)
    autostart: bool = True
    path: str | None = None  # where it was read from (None: defaults)
    problem: str | None = None  # why the file could not be used, if it could not

    def to_json(self) -> dict[str, Any]:
        return {
            "format": CONFIG_FORMAT,
            "endpoint": self.endpoint,
            "daemon_command": list(self.daemon_command),
            "autostart": bool(self.autostart),
        }


def load_config(plugin_dir: str, environ: dict[str, str] | None = None) -> PluginConfig:
    """Read the config next to the plug-in; a missing or broken file gives defaults plus ``problem``."""
    environ = os.environ if environ is None else environ
    path = os.path.join(plugin_dir, CONFIG_NAME)
    config = PluginConfig()
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        endpoint = data.get("endpoint", DEFAULT_ENDPOINT)
        command = data.get("daemon_command", [])
        if not isinstance(endpoint, str) or not isinstance(command, list) or not all(isinstance(c, str) for c in command):
            raise ValueError("endpoint must be a string and daemon_command a list of strings")
        config = PluginConfig(endpoint=endpoint, daemon_command=command, autostart=bool(data.get("autostart", True)), path=path)
    except FileNotFoundError:
        config.problem = f"{path} is missing (run install.py again)"
    except (OSError, ValueError) as exc:
        config.problem = f"{path} could not be read ({exc}); run install.py again"
    env_endpoint = environ.get("NEURAL_STYLE_ENDPOINT")
    if env_endpoint:
        config.endpoint = env_endpoint
    return config


def write_config(plugin_dir: str, config: PluginConfig) -> str:
    path = os.path.join(plugin_dir, CONFIG_NAME)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(config.to_json(), fh, indent=2)
        fh.write("\n")
    return path

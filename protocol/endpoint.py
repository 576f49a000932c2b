"""Old home of the endpoint names, now in ``connection.py``.

Kept only while ``client.py`` and ``daemon/server/main.py`` still import from here
(issue 9, step 3); both should import from ``neural_style.protocol`` instead.
"""

from __future__ import annotations

from .connection import DEFAULT_ENDPOINT, ENDPOINT_ENV, default_endpoint, resolve_endpoint

__all__ = ["DEFAULT_ENDPOINT", "ENDPOINT_ENV", "default_endpoint", "resolve_endpoint"]

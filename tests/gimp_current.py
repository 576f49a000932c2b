"""``gimp_root`` for the newer features' full sets (animations, regions), which CI runs on the current release only.

CI's time (tests/gimp/README.md): the essential cases (test_gimp_plugin.py, the GUI defects) run on every
selected version, these sets on GIMP 3.2 only; $NEURAL_STYLE_GIMP_EVERY_VERSION=1 runs them on every selected
version too.  A module imports this ``gimp_root`` in place of the harness's.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_gimp_plugin import GIMP_VERSIONS, root_or_skip

CURRENT_GIMP = "3.2"
CURRENT_SET_VERSIONS = (GIMP_VERSIONS if os.environ.get("NEURAL_STYLE_GIMP_EVERY_VERSION") == "1"
                        else [v for v in GIMP_VERSIONS if v == CURRENT_GIMP])


@pytest.fixture(scope="session", params=CURRENT_SET_VERSIONS, ids=lambda v: f"gimp{v}", name="gimp_root")
def current_release_root(request) -> Path:
    """The current release's root (every selected version's with $NEURAL_STYLE_GIMP_EVERY_VERSION=1)."""
    return root_or_skip(request.param)

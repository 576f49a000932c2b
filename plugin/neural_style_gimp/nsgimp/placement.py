"""Where the new layer goes in the layer stack: where the user sees it (issue 18).

GIMP puts a new layer directly above the active one, and so did the plug-in; but it selects
the photo again after a run (so that Filters → Repeat applies to it), so a second try with
another painting landed *under* the first result and stayed hidden.  The new layer now goes
above the source *and* above every earlier result stacked directly on it: each try shows on
top of the previous ones, and what the user put above the photo themselves (text, a logo, an
adjustment) stays above, as GIMP's own "New Layer" would leave it.
"""
from __future__ import annotations

from collections.abc import Sequence

from .settings import LAYER_NAME_PREFIX

# A layer the plug-in made carries this parasite (saved in the XCF), so a renamed result still counts.
RESULT_PARASITE = "neural-style-result"
# ... and this one what made it (nsgimp/remembered.py's made_with): "Neural Style…" on it offers those settings again.
MADE_WITH_PARASITE = "neural-style-made-with"


def is_result(name: str, has_parasite: bool) -> bool:
    """Whether a layer is an earlier result of the plug-in."""
    return has_parasite or name.startswith(LAYER_NAME_PREFIX)  # made before the parasite


def insert_position(source_index: int, earlier_results: Sequence[bool]) -> int:
    """The position (0 = the top, GIMP's order) for the new layer among the source's siblings.

    ``earlier_results[i]`` says whether sibling ``i`` is an earlier result; the new layer goes
    above the source and above the unbroken run of results directly above it.
    """
    position = source_index
    while position > 0 and earlier_results[position - 1]:
        position -= 1
    return position

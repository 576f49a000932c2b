"""``StylizeRequest``: a stylize request as the daemon runs it, between admission and the worker.

Why its own home: it is the daemon's one request type.  The wire's ``Stylize`` message
(``protocol/messages.py``) becomes one in ``admission.py``, once its parameters are the
engine's validated ``StyleParams`` and its images are within this daemon's limits; a ``Job``
carries it to the worker, which decodes the images and calls the engine with it.
"""

from __future__ import annotations

from dataclasses import dataclass

from neural_style.daemon.engine.params import StyleParams
from neural_style.protocol.image_data import ImageData

__all__ = ["StylizeRequest"]


@dataclass
class StylizeRequest:
    """Validated engine parameters, the still-encoded images, and the styles' blend (beside the styles,
    as on the wire and in the engine's ``stylize``).  The worker drops the images once decoded."""

    params: StyleParams
    content: ImageData | None
    styles: list[ImageData]
    style_blend: tuple[float, ...] | None = None

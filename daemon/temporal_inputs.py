"""A frame's ``stylize`` arguments from its previous frame: tensors in, ``start_image`` and ``temporal`` out.

The one adapter between the torch-free preparation (``sequence/frame_start.py``) and the engine's
``stylize(..., start_image=, temporal=)``: the daemon's worker and ``neural-style video --local`` call
it alike, so a frame runs the same either way.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .engine.params import StyleParams
from .engine.sizes import output_size
from .engine.temporal import TemporalTarget
from .sequence.frame_start import frame_start


def _array(image: torch.Tensor) -> np.ndarray:
    """(C, H, W) tensor → (H, W, C) float32 array, RGB."""
    return image[:3].detach().float().cpu().permute(1, 2, 0).contiguous().numpy()


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).contiguous().float()


def temporal_inputs(content: torch.Tensor, previous_content: torch.Tensor, previous_stylized: torch.Tensor,
                    params: StyleParams, flow: str = "dis",
                    earlier: Sequence[tuple[torch.Tensor, torch.Tensor]] = ()) -> tuple[torch.Tensor,
                                                                                        Sequence[TemporalTarget]]:
    """(start image, temporal targets) for ``content`` given the previous frame's content and result.

    The start is the warped previous result (the content where the flow is not certain); the first target
    is that warped result with its certainty, then one per ``earlier`` (content, result) frame, closest
    first, each holding the pixels the closer frames leave (long-term consistency). All at the output size
    ``params`` gives ``content``. With ``temporal_weight`` 0 the targets are empty (the start is still the
    warped result).
    """
    size = output_size(params, (int(content.shape[-2]), int(content.shape[-1])))
    prepared = frame_start(_array(content), _array(previous_content), _array(previous_stylized), size, flow,
                           [(_array(before), _array(stylized)) for before, stylized in earlier]
                           if params.temporal_weight else ())  # weight 0: no targets, so no long-term flows
    start = _tensor(prepared.start)
    if not params.temporal_weight:
        return start, ()
    first = TemporalTarget(_tensor(prepared.target), torch.from_numpy(prepared.certainty))
    return start, (first, *(TemporalTarget(_tensor(w.image), torch.from_numpy(w.weight)) for w in prepared.earlier))


__all__ = ["temporal_inputs"]

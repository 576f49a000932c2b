"""A scripted client for the plug-in's unit tests, implementing the protocol's ``DaemonClient`` as the real
``Client`` does (as krita-ai-diffusion's MockClient implements its Client ABC); mypy checks that it does
(tests/test_plugin_job.py runs it on this file)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional, Union

from neural_style.protocol import (
    CancelAck,
    DaemonClient,
    ImageData,
    JobInfo,
    Pong,
    Progress,
    Result,
    StatusReply,
    StylizeEvent,
    StylizeStream,
)
from neural_style.protocol.messages import Earlier, Previous

Step = Union[StylizeEvent, BaseException]


class FakeClient:
    """Plays back ``script`` for one stylize call; an exception in the script is raised there."""

    def __init__(self, script: Sequence[Step], burst: bool = False) -> None:
        self.script = list(script)
        self.burst = burst  # every message arrives at once: a later preview is always waiting
        self.left = list(self.script)
        self.requests: list[dict[str, Any]] = []
        self.cancelled = False
        self.closed = False

    def ping(self, timeout: Optional[float] = None) -> Pong:
        return Pong("ping", "0.1.0", device="cpu", weights_loaded=True)

    def status(self, timeout: Optional[float] = None) -> StatusReply:
        return StatusReply("status", JobInfo("j", "running") if self.left else None)

    def cancel(self, request_id: str, timeout: Optional[float] = None) -> CancelAck:
        self.cancelled = True
        return CancelAck("cancel", request_id, "running")

    def stylize(self, content: Optional[ImageData], styles: Sequence[ImageData],
                params: Optional[Mapping[str, Any]] = None, style_blend: Optional[Sequence[float]] = None,
                *, request_id: Optional[str] = None, heartbeats: bool = False,
                previous: Optional[Previous] = None, style_masks: Optional[Sequence[Optional[ImageData]]] = None,
                style_source_masks: Optional[Sequence[Optional[ImageData]]] = None,
                earlier: Optional[Sequence[Earlier]] = None) -> StylizeStream:
        self.requests.append({"content": content, "styles": styles, "params": params, "style_blend": style_blend,
                              "heartbeats": heartbeats, "previous": previous, "style_masks": style_masks,
                              "style_source_masks": style_source_masks, "earlier": earlier})
        return self._stream()

    def _stream(self) -> StylizeStream:
        finished = False
        try:
            for position, item in enumerate(self.script):
                self.left = self.script[position + 1:]
                if isinstance(item, BaseException):
                    finished = True
                    raise item
                if isinstance(item, Result):
                    finished = True
                yield item
        finally:
            if not finished:
                self.cancelled = True  # what the real client does: abandoning the stream sends a cancel

    def newer_preview_waiting(self) -> bool:
        return self.burst and any(isinstance(item, Progress) and item.image is not None for item in self.left)

    def close(self) -> None:
        self.closed = True


_IMPLEMENTS: type[DaemonClient] = FakeClient  # mypy: the fake offers what the real client offers

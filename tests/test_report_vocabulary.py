"""One progress and result vocabulary: the engine's records and the wire's messages share their names, so the
worker builds each message from the record by name (``Message.of``) and the front ends read either."""

from __future__ import annotations

import dataclasses
import io

import torch

from neural_style.daemon.engine import EngineProgress, LossTerms, StyleResult
from neural_style.daemon.progress_bar import ProgressBar
from neural_style.protocol import ImageData, Loss, Progress, Result
from neural_style.protocol.codec import specs


def _names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def test_the_wire_speaks_the_engines_names() -> None:
    assert {s.name for s in specs(Progress)} == _names(EngineProgress)
    assert {s.name for s in specs(Result)} <= _names(StyleResult)  # the result's plans stay in the daemon's log
    assert _names(Loss) == _names(LossTerms)


def test_messages_are_built_from_the_engines_records_by_name() -> None:
    terms = LossTerms(total=6.0, content=1.0, style=4.0, tv=1.0)
    record = EngineProgress(3, 10, terms, 1.5, torch.zeros(3, 2, 2), scale=2, scales=3, seconds_left=4.0)
    preview = ImageData.raw(bytes(12), 2, 2, 3)
    assert Progress.of("j", record, image=preview) == Progress("j", 3, 10, Loss(6.0, 1.0, 4.0, 1.0), 1.5, preview,
                                                                2, 3, 4.0)
    result = StyleResult(torch.zeros(3, 2, 2), terms, 10, 2.0, style_cache_hits=1, style_cache_misses=2)
    assert Result.of("j", result, image=preview) == Result("j", preview, Loss(6.0, 1.0, 4.0, 1.0), 10, 2.0, 1, 2)


def test_the_bar_reads_the_engines_record_and_the_wires_message_alike() -> None:
    terms = LossTerms(total=5.0, content=1.0, style=4.0, tv=0.0)
    lines = []
    for report in (EngineProgress(3, 10, terms, 1.0, scale=1, scales=3, seconds_left=185.4),
                   Progress.of("j", EngineProgress(3, 10, terms, 1.0, scale=1, scales=3, seconds_left=185.4))):
        log = io.StringIO()
        ProgressBar(10, stream=log).report(report)
        lines.append(log.getvalue().split(" it/s")[0].rsplit(" ", 1)[0] + log.getvalue().split(" it/s")[1])
    assert lines[0] == lines[1] and lines[0].startswith("iteration 3/10 scale 1/3 loss 5")
    assert "3 min 05 s left" in lines[0]

"""Spatial control (Gatys et al. 2017): region masks, guided Gram matrices, and colour by histogram.

The checks are torch-free (``region_masks``, what the daemon's admission calls); the guided Grams are
checked block-wise against the whole image in float64, as the other terms are.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from neural_style.daemon.engine.engine_errors import ParamError
from neural_style.daemon.engine.region_masks import MaskFrame, check_masks


def _refused(style_masks, sources=None, *, content=(40, 48), styles=((36, 36), (30, 20))) -> ParamError:
    with pytest.raises(ParamError) as refused:
        check_masks(style_masks, sources, content_size=content, style_sizes=list(styles))
    return refused.value


def test_the_mask_checks_name_the_mask_and_need_no_torch():
    code = ("import sys\n"
            "from neural_style.daemon.engine.region_masks import MaskFrame, check_masks\n"
            "check_masks([None, MaskFrame(4, 6, 1.0)], [MaskFrame(3, 3, 0.5)], content_size=(4, 6),"
            " style_sizes=[(3, 3), (5, 5)])\n"
            "assert 'torch' not in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    whole = MaskFrame(40, 48, 1.0)
    assert _refused([whole, whole, whole]).field == "style_masks[2]"  # one mask too many
    wrong = _refused([None, MaskFrame(48, 40, 1.0)])
    assert wrong.field == "style_masks[1]" and "48x40" in str(wrong)
    assert _refused([MaskFrame(40, 48, 0.0)]).field == "style_masks[0]"  # all black
    assert "all black" in str(_refused([MaskFrame(40, 48, 0.0)]))
    assert _refused(None, [None, MaskFrame(36, 36, 1.0)]).field == "style_source_masks[1]"  # style 1 is 30x20
    assert _refused(None, [MaskFrame(36, 36, 0.0)]).field == "style_source_masks[0]"
    assert _refused([whole], content=None).field == "style_masks"  # a texture has no frame for regions
    check_masks([whole], [None, MaskFrame(30, 20, 0.2)], content_size=(40, 48), style_sizes=[(36, 36), (30, 20)])
    check_masks([None, None], None, content_size=None, style_sizes=[(36, 36), (30, 20)])

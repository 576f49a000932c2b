"""Issue 17 in real GIMP 3 (3.2 and 3.0): a style's region, and the colour modes, as a new user would use them.

The harness (the root, a daemon with random weights, the share folder, the session) is
tests/test_gimp_plugin.py's.  Two sessions per GIMP version, tiny images and few iterations:

* console: a rectangle selected and saved as a channel (Select → Save to Channel, then Select →
  None) becomes the second style's region, the first style (the whole layer) takes the rest; the result shows the
  two paintings meeting along it (each side's colours nearer its own painting's than the other's,
  and nearer than the same job without regions puts them); the current selection as a region
  (the whole layer is stylized, no mask); the histogram colour mode against no colour control
  (the result's colour statistics nearer the photo's);
* GUI (Xvfb, gui_driver.py presses OK): the dialog with the histogram mode remembered runs it, and
  a value remembered before the colour modes (the boolean true, in the plug-in's file and in GIMP's
  own last values) comes back as "luminance", GIMP's file no longer refused.
"""
from __future__ import annotations

import json

import gimp_current
import pytest
import test_gimp_plugin as harness
from test_gimp_plugin import (
    CONTENT_SIZE,
    QUICK_ARGS,
    assert_finished_layer,
    assert_left_as_before,
    assert_source_untouched,
    finish_session,
    gimp_log,
    gimp_version,
    pixels,
    run_session,
    step,
)

# The harness's fixtures, for this module: the root, a daemon with random weights, the share folder.
daemon, share = harness.daemon, harness.share
gimp_root = gimp_current.current_release_root  # GIMP 3.2 in CI (tests/gimp_current.py)

pytestmark = pytest.mark.gimp

WIDTH, HEIGHT = CONTENT_SIZE
LEFT = (0, 0, WIDTH // 2, HEIGHT)  # the channel: the left half of the photo
# Enough to move the colours at a small working size, little enough for CI (a few seconds a run).
REGION_ARGS = {"iterations": 30, "size": 64, "init": "content", "strength": 90.0, "seed": 1}
STYLE_A, STYLE_B = "/share/in/starry_night.jpg", "/share/in/the_scream.jpg"  # blue and yellow; orange and red
HISTOGRAM_STYLE = STYLE_B  # the painting whose palette is furthest from the photo's (blue sky, pastel houses)


def _mean(image) -> tuple[float, float, float]:
    from PIL import ImageStat

    return tuple(ImageStat.Stat(image.convert("RGB")).mean)


def _distance(a, b) -> float:
    return sum((x - y) ** 2 for x, y in zip(a, b)) ** 0.5


def _halves(path):
    image = pixels(path)
    w, h = image.size
    return image.crop((0, 0, w // 2, h)), image.crop((w // 2, 0, w, h))


def _colour_statistics(image):
    """Mean and covariance of the RGB values (0…255), as numpy arrays."""
    import numpy as np

    values = np.asarray(image.convert("RGB"), dtype=np.float64).reshape(-1, 3)
    return values.mean(axis=0), np.cov(values, rowvar=False)


def _statistics_distance(a, b) -> float:
    import numpy as np

    (mean_a, cov_a), (mean_b, cov_b) = a, b
    return float(np.linalg.norm(mean_a - mean_b) + np.linalg.norm(cov_a - cov_b) ** 0.5)


@pytest.fixture(scope="module")
def regions_session(gimp_root, share, daemon):
    quick = {**QUICK_ARGS, "endpoint": daemon.endpoint, **REGION_ARGS}
    two = {**quick, "style": STYLE_A, "style2": STYLE_B}
    channel = [{"name": "left half", "select": list(LEFT)}]
    steps = [
        step(share, "two-regions", {**two, "style2-region": "channel",
                                    "style2-mask": {"channel": "left half"}}, channels=channel),
        step(share, "no-regions", two, channels=channel),  # the same job, the two styles blended everywhere
        # a layer mask on a moved layer: it moves with the layer, and is read where the layer's pixels are
        step(share, "layer-mask-region", {**two, "style2-region": "channel", "style2-mask": {"layer_mask": True},
                                          "iterations": 4},
             source_offsets=(7, 5), layer_mask=[7, 5, WIDTH // 2, HEIGHT]),
        step(share, "selection-region", {**two, "style2-region": "selection",
                                         "iterations": 4}, select=list(LEFT)),
        # a selection limits the effect, a channel gives the region: the mask is cut to the selection's bounds
        step(share, "selection-and-channel", {**two, "style2-region": "channel",
                                              "style2-mask": {"channel": "left half"}, "iterations": 2},
             channels=channel, select=[40, 30, 80, 60]),
        # the layer moved right, the channel on the image's left: black over the whole layer
        step(share, "blank-channel", {**two, "style2-region": "channel", "style2-mask": {"channel": "left half"}},
             channels=[{"name": "left half", "select": [0, 0, 50, HEIGHT]}], source_offsets=(100, 0)),
        step(share, "histogram", {**quick, "style": HISTOGRAM_STYLE, "preserve-colors": "histogram"}),
        step(share, "colour-off", {**quick, "style": HISTOGRAM_STYLE, "preserve-colors": "off"}),
    ]
    return run_session(gimp_root, share, "regions", steps)


def test_gimp_a_saved_selection_is_the_second_styles_region(regions_session, share):
    result, out = regions_session["two-regions"]
    new = assert_finished_layer(result)
    assert (new["width"], new["height"]) == CONTENT_SIZE and not new["has_mask"], new
    assert "style-region" in result["arguments"] and "style2-mask" in result["arguments"]
    assert_source_untouched(share, out)
    # what was sent: the channel, on the content at the working size (64 × 48), exactly its left half
    log = (share / "out" / "regions.gimp.log").read_text(errors="replace")
    assert "style 2's region: 64x48, covering 1.000 of the left half and 0.000 of the right" in log, \
        gimp_log(share, "regions")
    left, right = _halves(out / "new_layer.png")
    a, b = _mean(pixels(share / "in" / "starry_night.jpg")), _mean(pixels(share / "in" / "the_scream.jpg"))
    # each side nearer its own painting's colours than the other painting's
    assert _distance(_mean(left), b) < _distance(_mean(left), a), (_mean(left), a, b)
    assert _distance(_mean(right), a) < _distance(_mean(right), b), (_mean(right), a, b)
    # and the regions did it: without them, each side is further from its own painting
    blended_left, blended_right = _halves(regions_session["no-regions"][1] / "new_layer.png")
    assert _distance(_mean(left), b) < _distance(_mean(blended_left), b)
    assert _distance(_mean(right), a) < _distance(_mean(blended_right), a)


def test_gimp_the_two_styles_meet_along_the_channels_edge(regions_session):
    """Columns just inside each side differ more across the edge than the same columns of the job without
    regions: the seam lies where the channel ends."""
    _result, out = regions_session["two-regions"]
    _blended, blended_out = regions_session["no-regions"]

    def across(path):
        image = pixels(path)
        edge = image.size[0] // 2
        left = image.crop((edge - 12, 0, edge - 2, image.size[1]))
        right = image.crop((edge + 2, 0, edge + 12, image.size[1]))
        return _distance(_mean(left), _mean(right))

    assert across(out / "new_layer.png") > across(blended_out / "new_layer.png") + 5


def test_gimp_a_layer_mask_on_a_moved_layer_is_a_region_where_its_pixels_are(regions_session, share):
    result, out = regions_session["layer-mask-region"]
    new = assert_finished_layer(result)
    assert (new["width"], new["height"], new["offsets"]) == (WIDTH, HEIGHT, [7, 5]), new
    assert result["layers_after"][1]["has_mask"], "the source lost its layer mask"
    log = (share / "out" / "regions.gimp.log").read_text(errors="replace")
    steps = log.split("painting the result")  # the sessions' runs in order: two-regions, no-regions, this one
    # The mask was made of the image's rectangle (7, 5, 80, 120), clipped by the canvas to 115 rows: it covers
    # 115/120 of the layer's left half, nothing of the right. Read without the layer's offsets it would be
    # 7 columns off: 73/80 of that, and the same 0.958 nowhere.
    assert "style 2's region: 64x48, covering 0.958 of the left half and 0.000 of the right" in steps[2], \
        gimp_log(share, "regions")
    assert_source_untouched(share, out)


def test_gimp_the_current_selection_as_a_region_stylizes_the_whole_layer(regions_session, share):
    result, out = regions_session["selection-region"]
    new = assert_finished_layer(result)
    # the selection said where the second style goes: it limited nothing
    assert (new["width"], new["height"], new["offsets"]) == (WIDTH, HEIGHT, [0, 0]) and not new["has_mask"], new
    assert_source_untouched(share, out)


def test_gimp_a_channel_inside_a_selection_is_cut_to_the_selections_bounds(regions_session, share):
    result, out = regions_session["selection-and-channel"]
    new = assert_finished_layer(result)
    assert (new["offsets"], new["width"], new["height"]) == ([40, 30], 80, 60) and new["has_mask"], new
    log = (share / "out" / "regions.gimp.log").read_text(errors="replace")
    sent = [line.split("region: ", 1)[1] for line in log.splitlines() if "style 2's region: " in line]
    # two-regions, layer-mask-region, selection-region, then this one: the bounds x 40…120 at 64 × 48, the
    # channel's edge at x 80, their middle
    assert len(sent) == 4 and sent[3] == "64x48, covering 1.000 of the left half and 0.000 of the right", sent
    assert_source_untouched(share, out)


def test_gimp_a_channel_black_over_the_layer_is_named_before_anything_is_sent(regions_session):
    result, _out = regions_session["blank-channel"]
    assert_left_as_before(result, "'Style 2's masking channel' is black over the part of the layer being stylized")
    assert "Paint white where the painting should go" in result["error"], result["error"]


def test_gimp_histogram_colours_keep_the_photos_palette(regions_session, share):
    histogram, out = regions_session["histogram"]
    off, off_out = regions_session["colour-off"]
    assert_finished_layer(histogram)
    assert_finished_layer(off)
    content = _colour_statistics(pixels(out / "source_before.png"))
    near = _statistics_distance(_colour_statistics(pixels(out / "new_layer.png")), content)
    far = _statistics_distance(_colour_statistics(pixels(off_out / "new_layer.png")), content)
    assert near < far, (near, far)


# --------------------------------------------------------------------------- the dialog
@pytest.fixture(scope="module")
def colour_dialog(gimp_root, share, daemon):
    """The dialog, twice: OK with the histogram mode remembered; OK with an older plug-in's remembered boolean."""
    for tool in ("usr/bin/Xvfb", "usr/bin/xdotool", f"usr/bin/gimp-{gimp_version(gimp_root)}"):
        if not (gimp_root / tool).exists():
            pytest.skip(f"the root has no /{tool} (build_root.sh installs xvfb and xdotool)")
    out = "/share/out"
    chosen = {**QUICK_ARGS, "endpoint": daemon.endpoint, **REGION_ARGS, "style": HISTOGRAM_STYLE,
              "full-resolution": False, "working-size": REGION_ARGS["size"]}
    steps = [
        step(share, "dialog-histogram", {}, interactive=True, remember={**chosen, "preserve-colors": "histogram"}),
        step(share, "dialog-old-boolean", {}, interactive=True,
             remember={**chosen, "iterations": 2, "preserve-colors": True}),
    ]
    gui = [{"window": "Neural Style", "keys": ["alt+o"], "report": f"{out}/{name}.gui.json"}
           for name in ("dialog-histogram", "dialog-old-boolean")]
    # GIMP's own last values from the plug-in before the colour modes: GIMP would refuse the whole file
    last = harness.installed_profile(share) / "plug-in-settings" / "GimpProcedureConfigRun-plug-in-neural-style.last"
    last.parent.mkdir(exist_ok=True)
    last.write_text('# settings\n\n(iterations 2)\n(preserve-colors yes)\n(init "content")\n\n# end of settings\n')
    proc = run_session(gimp_root, share, "colour-dialog", steps, gui=gui, background=True)
    try:
        results = finish_session(proc, share, "colour-dialog", steps)
    finally:
        if proc.poll() is None:
            proc.kill()
    reports = {name: json.loads((share / "out" / f"{name}.gui.json").read_text())
               for name in ("dialog-histogram", "dialog-old-boolean")}
    return results, reports


def test_gimp_the_histogram_mode_runs_from_the_dialog(colour_dialog, regions_session, share):
    results, reports = colour_dialog
    assert reports["dialog-histogram"]["found"], gimp_log(share, "colour-dialog")
    result, out = results["dialog-histogram"]
    assert_finished_layer(result)
    assert result["remembered_after"]["preserve-colors"] == "histogram"
    # the same settings as the script's histogram run: the dialog's result has its palette, not the painting's
    content = _colour_statistics(pixels(out / "source_before.png"))
    near = _statistics_distance(_colour_statistics(pixels(out / "new_layer.png")), content)
    far = _statistics_distance(_colour_statistics(pixels(regions_session["colour-off"][1] / "new_layer.png")),
                               content)
    assert near < far, (near, far)
    log = (share / "out" / "colour-dialog.gimp.log").read_text(errors="replace")
    assert "no mnemonic for property" not in log and "not supported for parameter" not in log, \
        gimp_log(share, "colour-dialog")


def test_gimp_a_remembered_boolean_comes_back_as_luminance(colour_dialog, share):
    results, reports = colour_dialog
    assert reports["dialog-old-boolean"]["found"], gimp_log(share, "colour-dialog")
    result, _out = results["dialog-old-boolean"]
    assert_finished_layer(result)
    assert result["remembered_after"]["preserve-colors"] == "luminance", result["remembered_after"]
    log = (share / "out" / "colour-dialog.gimp.log").read_text(errors="replace")
    assert "Loading last used values from disk failed" not in log, gimp_log(share, "colour-dialog")

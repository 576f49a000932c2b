"""Issue 18's GUI defects, each in real GIMP 3 on Xvfb with tests/gimp/gui_driver.py as the user.

One GIMP start for all of them (a start costs seconds); the harness (the root, the daemon, the
share folder, the session) is tests/test_gimp_plugin.py's.  In order:

0. the photo opened as a user does (File → Open), Neural Style run from its window, the window closed during
   the run (Ctrl+W, Ctrl+D), as GIMP's last image (its window stays, emptied) and beside another: no
   "invalid ID" errors or traceback, GIMP runs the next steps, and the daemon's job is cancelled;
1. "Reset to Factory Defaults" in the dialog, then OK: the file buttons show no file (they kept
   showing the old ones) and the dialog asks for a style;
2. the second style's Remove button, then OK: the run uses one style;
3. two tries on the same photo: the second result goes above the first, not under it;
3b. "Neural Style…" on a result: the dialog offers the settings that made it, and OK re-runs them on its photo;
4. a failed interactive run: the message does not start with "Neural Style:" (GIMP's own
   "Execution error for 'Neural Style':" comes before it);
5. a brush stroke on the photo during a run: refused (the layers are locked for the run, since undo
   is frozen), the photo unchanged, while the same stroke after the run changes it;
6. a daemon that started without weights: the run fails saying where to put the file; the file is
   put there; the next run (same daemon, no restart) succeeds.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
import test_gimp_plugin as harness
from server_fixtures import start_daemon
from test_gimp_plugin import (
    GIMP_TIMEOUT,
    QUICK_ARGS,
    _job_process,
    assert_left_as_before,
    assert_source_untouched,
    finish_session,
    free_port,
    gimp_log,
    gimp_version,
    mean_abs_diff,
    pixels,
    run_session,
    step,
)

# The harness's fixtures, for this module: the root, a daemon with random weights, the share folder.
gimp_root, daemon, share = harness.gimp_root, harness.daemon, harness.share

pytestmark = pytest.mark.gimp

TORCHVISION_FILE = "vgg19-dcbb9e9d.pth"
CLOSED_STOP_S = 10.0  # the daemon's job should end this soon after the image's window closes
# Edit → Keyboard Shortcuts for the menu entry (GIMP's shortcutsrc syntax, then xdotool's), so that the driver runs
# it from the image's window as a user does (GIMP's "/" action search pops up a window that gets no keyboard
# focus on Xvfb without a window manager)
MENU_SHORTCUT = ("<Primary><Alt><Shift>n", "ctrl+alt+shift+n")
STROKE = [[-70, 0], [-35, 6], [0, -6], [35, 6], [70, 0]]  # across the middle of the canvas


def _wait(predicate, timeout, proc, share, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        assert proc.poll() is None, f"GIMP exited while waiting for {what}:\n{gimp_log(share, 'gui-defects')}"
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}:\n{gimp_log(share, 'gui-defects')}")


@pytest.fixture(scope="module")
def gui_defects(gimp_root, share, daemon, tmp_path_factory, torchvision_weights_file):
    for tool in ("usr/bin/Xvfb", "usr/bin/xdotool", f"usr/bin/gimp-{gimp_version(gimp_root)}"):
        if not (gimp_root / tool).exists():
            pytest.skip(f"the root has no /{tool} (build_root.sh installs xvfb and xdotool)")
    torch_home = tmp_path_factory.mktemp("torch-home")
    bare = start_daemon(tmp_path_factory.mktemp("bare-daemon"), weights=None, env={"TORCH_HOME": str(torch_home)},
                        wait=False)
    out = share / "out"
    quick = {**QUICK_ARGS, "endpoint": daemon.endpoint}
    chosen = {**quick, "style": "/share/in/starry_night.jpg", "full-resolution": False, "working-size": 48}
    two = {**chosen, "style2": "/share/in/the_scream.jpg"}
    nobody = f"tcp://127.0.0.1:{free_port()}"
    long_run = {**quick, "iterations": 2000, "size": 64}
    from_menu = {**quick, "style": "/share/in/starry_night.jpg", "iterations": 400, "full-resolution": False,
                 "working-size": 64}  # the dialog's values (remembered), OK pressed by the driver
    steps = [
        # the user opens the photo (File → Open: an image this script loads outlives its window) and runs
        # Neural Style from its window (the menu call hands the job that display), then closes the window:
        # first as GIMP's only image (the window stays, emptied), then beside another image (it goes)
        step(share, "closed-last", {}, opened_by_user="/share/out/open-last-now", via_menu="/share/out/menu-last-now",
             remember=from_menu),
        step(share, "closed", {}, opened_by_user="/share/out/open-now", via_menu="/share/out/menu-now",
             other_image="/share/in/the_scream.jpg", remember=from_menu),
        step(share, "reset", {}, interactive=True, remember=two),
        step(share, "remove-style2", {}, interactive=True, remember=two),
        step(share, "first-try", quick),
        step(share, "second-try", {**quick, "style": "/share/in/the_scream.jpg"},
             image="../out/first-try/image.xcf", source=1),
        # "Neural Style…" on the second result: its own settings (the_scream, 4 iterations), not the remembered ones
        step(share, "rerun", {}, image="../out/second-try/image.xcf", source=0, interactive=True,
             remember={**chosen, "iterations": 9}),
        step(share, "no-prefix", {}, interactive=True, remember={**chosen, "endpoint": nobody}),
        step(share, "stroke", long_run, display=True, control_stroke="/share/out/control"),
        step(share, "no-weights", {**quick, "endpoint": bare.endpoint, "timeout": 60}),
        step(share, "weights-found", {**quick, "endpoint": bare.endpoint, "timeout": 60},
             wait_before="/share/out/weights-placed"),
    ]
    gui = [*_open_run_and_close("-last"), *_open_run_and_close(""),
        # the Reset button's popover: its second button, "Reset to Factory Defaults"; then OK must ask for a style
        {"window": "Neural Style", "keys": ["alt+r", "Down", "Return", "alt+o"], "stays_open_s": 2.5,
         "then_keys": ["Escape"], "report": "/share/out/reset.gui.json"},
        {"window": "Neural Style", "keys": ["alt+v", "alt+o"], "report": "/share/out/remove-style2.gui.json"},
        {"window": "Neural Style", "keys": ["alt+o"], "report": "/share/out/rerun.gui.json"},
        {"window": "Neural Style", "keys": ["alt+o"], "report": "/share/out/no-prefix.gui.json"},
        {"wait_file": "/share/out/stroke-now", "window": "GIMP", "keys": ["p"], "drag": STROKE,
         "done_file": "/share/out/stroke-done", "window_closes": False, "report": "/share/out/stroke.gui.json",
         "screenshot": "/share/out/stroke.png"},
        # the same stroke once the run is over: it must reach the photo (else the first proved nothing)
        {"wait_file": "/share/out/control-now", "window": "GIMP", "keys": ["p"], "drag": STROKE,
         "done_file": "/share/out/control-done", "window_closes": False, "report": "/share/out/control.gui.json",
         "screenshot": "/share/out/control.png"},
    ]
    (harness.profile_dir(share, gimp_root) / "shortcutsrc").write_text(
        f'(file-version 1)\n(action "plug-in-neural-style" "{MENU_SHORTCUT[0]}")\n')
    proc = run_session(gimp_root, share, "gui-defects", steps, gui=gui, background=True)
    closed = {}
    try:
        # 0: the image's window closed while the job runs; the job should stop within CLOSED_STOP_S
        for suffix in ("-last", ""):
            closed[f"closed{suffix}"] = _close_mid_run(proc, share, daemon, suffix)
        # 5: the stroke while the job runs, then the job process killed (the run ends, the image put back)
        _wait(lambda: (out / "stroke" / "started").exists() and daemon.running_job(min_iteration=12), GIMP_TIMEOUT,
              proc, share, "the stroke's run")
        (out / "stroke-now").write_text("1\n")
        _wait(lambda: (out / "stroke-done").exists(), 60, proc, share, "the stroke")
        time.sleep(1.0)
        pid = _job_process(proc.pid)
        assert pid is not None, "cannot find the job's process"
        os.kill(pid, signal.SIGKILL)
        _wait(lambda: not daemon.running_job(), 30, proc, share, "the daemon to notice the killed job")
        # 7: the weights put where the message said, between two runs
        _wait(lambda: (out / "no-weights" / "result.json").exists(), 120, proc, share, "the run without weights")
        target = torch_home / "hub" / "checkpoints" / TORCHVISION_FILE
        target.parent.mkdir(parents=True)
        shutil.copy(torchvision_weights_file, target)
        (out / "weights-placed").write_text("1\n")
        results = finish_session(proc, share, "gui-defects", steps)
    finally:
        if proc.poll() is None:
            proc.kill()
        bare.stop(timeout=60)  # its interpreter's teardown alone has taken over 15 s on a loaded machine
    reports = {path.name[:-len(".gui.json")]: json.loads(path.read_text()) for path in out.glob("*.gui.json")}
    return results, reports, target, closed


def _open_run_and_close(suffix: str) -> list[dict]:
    """The driver's part of a "closed" step: File → Open the photo, Neural Style from its window (a keyboard
    shortcut the user gave the menu entry), OK in the dialog, then Ctrl+W and Discard once the host says so."""
    photo = "content.*GIMP"  # the photo's window ([content] (imported)-N.M … – GIMP)
    return [
        {"wait_file": f"/share/out/open{suffix}-now", "window": "GNU Image Manipulation Program|GIMP",
         "keys": ["ctrl+o"], "window_closes": False, "report": f"/share/out/open{suffix}.gui.json"},
        {"window": "Open Image", "keys": ["ctrl+l"], "type": "/share/in/content.png", "settle_s": 3,
         "report": f"/share/out/open-dialog{suffix}.gui.json"},
        {"wait_file": f"/share/out/menu{suffix}-now", "window": photo, "keys": [MENU_SHORTCUT[1]],
         "window_closes": False, "report": f"/share/out/shortcut{suffix}.gui.json"},
        {"window": "Neural Style", "keys": ["alt+o"], "report": f"/share/out/menu-ok{suffix}.gui.json"},
        {"wait_file": f"/share/out/close{suffix}-now", "window": photo, "keys": ["ctrl+w"], "window_closes": False,
         "report": f"/share/out/close{suffix}.gui.json"},
        # "Save the changes … before closing?" (the run's preview layer counts as a change): Ctrl+D discards
        {"window": "^Close", "timeout_s": 5, "keys": ["ctrl+d"], "report": f"/share/out/close-confirm{suffix}.gui.json",
         "screenshot": f"/share/out/closed{suffix}.png"},
    ]


def _close_mid_run(proc, share: Path, daemon, suffix: str) -> bool:
    """Close the photo's window once its run is under way; whether the daemon's job ended within CLOSED_STOP_S.
    When it did not, the job process is killed (as in the stroke case), so the session goes on."""
    out = share / "out"
    _wait(lambda: (out / f"closed{suffix}" / "started").exists() and daemon.running_job(min_iteration=12),
          GIMP_TIMEOUT, proc, share, f"the run of closed{suffix}")
    (out / f"close{suffix}-now").write_text("1\n")
    _wait(lambda: (out / f"close-confirm{suffix}.gui.json").exists(), 60, proc, share, "the image to close")
    asked = time.monotonic()
    while daemon.running_job() and time.monotonic() - asked < CLOSED_STOP_S:
        time.sleep(0.2)
    stopped = not daemon.running_job()
    if not stopped:
        pid = _job_process(proc.pid)
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
        _wait(lambda: not daemon.running_job(), 30, proc, share, "the daemon to notice the killed job")
    _wait(lambda: (out / f"closed{suffix}" / "result.json").exists(), 60, proc, share, f"closed{suffix}'s end")
    return stopped


def _log(share: Path) -> str:
    return (share / "out" / "gui-defects.gimp.log").read_text(errors="replace")


def test_reset_to_factory_defaults_clears_the_file_buttons(gui_defects, share):
    results, reports, _, _ = gui_defects
    assert reports["reset"]["found"] and reports["reset"]["still_open"], reports["reset"]
    result, _out = results["reset"]
    assert result["status"] == "cancel", result
    shown = [line for line in _log(share).splitlines() if "OK with the file buttons showing" in line]
    # what the buttons displayed (GIMP's own GimpFileChooser still passes None to GTK: a Gtk-CRITICAL remains)
    # the two closed cases' dialogs were confirmed first
    assert len(shown) > 2 and shown[2].endswith("{'style': None, 'style2': None}"), shown


def test_the_second_style_can_be_removed(gui_defects, share):
    results, _, _, _ = gui_defects
    result, out = results["remove-style2"]
    assert result["status"] == "success", result
    assert result["layers_after"][0]["name"] == "Neural Style: starry_night", result["layers_after"]
    assert result["remembered_after"]["style2"] is None
    assert_source_untouched(share, out)


def test_a_second_try_lands_above_the_first(gui_defects):
    results, _, _, _ = gui_defects
    result, _out = results["second-try"]
    assert result["status"] == "success", result
    names = [layer["name"] for layer in result["layers_after"]]
    assert names == ["Neural Style: the_scream", "Neural Style: starry_night", "Background"], names
    assert result["source_index_after"] == 2 and result["source_selected_after"], result


def test_neural_style_on_a_result_offers_the_settings_that_made_it(gui_defects, share):
    results, reports, _, _ = gui_defects
    assert reports["rerun"]["found"], reports["rerun"]
    result, _out = results["rerun"]
    assert result["status"] == "success", result
    names = [layer["name"] for layer in result["layers_after"]]
    # the same settings again, on the photo it was made from, above the earlier tries
    # (GIMP numbers a second layer of the same name: "… #1")
    assert names[0].startswith("Neural Style: the_scream") and names[1:] == [
        "Neural Style: the_scream", "Neural Style: starry_night", "Background"], names
    assert result["selected_after"] == ["Background"], result
    confirmed = result["remembered_after"]  # what the dialog showed on OK: the result's, not the last attempt's
    assert confirmed["style"] == "/share/in/the_scream.jpg" and confirmed["iterations"] == 4, confirmed
    assert "offering the settings of 'Neural Style: the_scream', on 'Background'" in _log(share)


def test_an_error_is_not_prefixed_twice(gui_defects):
    results, _, _, _ = gui_defects
    result, _out = results["no-prefix"]
    assert result["status"] == "execution-error", result
    assert result["error"].startswith("no daemon answers at"), result["error"]


def test_a_stroke_during_a_run_is_refused_and_the_photo_kept(gui_defects, share):
    results, reports, _, _ = gui_defects
    assert reports["stroke"]["found"], reports["stroke"]
    result, out = results["stroke"]
    assert result["status"] == "execution-error", result  # the job process was killed after the stroke
    assert_left_as_before(result)
    assert_source_untouched(share, out)  # before: the stroke stayed in the photo, with no undo step
    # the same stroke after the run changed the photo: the first one reached it, and was refused
    assert result["control_stroked"] and reports["control"]["found"], (result, reports["control"])
    changed = mean_abs_diff(pixels(out / "source_before.png"), pixels(out / "source_control.png"))
    assert changed > 1.0, f"the stroke after the run left the photo as it was ({changed:.2f}): it missed the canvas"


def test_a_daemon_without_weights_finds_them_at_the_next_run(gui_defects):
    results, _, target, _ = gui_defects
    failed, _ = results["no-weights"]
    assert failed["status"] == "execution-error", failed
    assert str(target) in failed["error"] and "no restart needed" in failed["error"], failed["error"]
    found, _ = results["weights-found"]
    assert found["waited"] and found["status"] == "success", found


@pytest.mark.parametrize("case", ["closed-last", "closed"])
def test_closing_the_image_mid_run_leaves_no_error_pile_and_gimp_working(gui_defects, share, case):
    results, reports, _, _ = gui_defects
    suffix = case[len("closed"):]
    for action in ("shortcut", "menu-ok", "close", "close-confirm"):  # run from its window, then closed
        assert reports[f"{action}{suffix}"]["found"], (action, reports)
    result, _out = results[case]
    assert result["image_closed"], result  # the user's image is gone once the procedure returned
    log = _log(share)
    for words in ("invalid ID", "Traceback", "constructor returned NULL", "Too many error messages"):
        assert words not in log, gimp_log(share, "gui-defects")
    assert results["reset"][0]["status"] == "cancel"  # GIMP ran the session's next steps


@pytest.mark.parametrize("case", ["closed-last", "closed"])
def test_closing_the_image_mid_run_cancels_the_daemons_job(gui_defects, share, case):
    _, _, _, closed = gui_defects
    # stopped before the host would kill the job process: the job cancelled itself
    assert closed[case], f"the daemon still computed {CLOSED_STOP_S} s after the image's window closed"
    assert "gone during the run (the image closed?): cancelling the job" in _log(share), gimp_log(share, "gui-defects")

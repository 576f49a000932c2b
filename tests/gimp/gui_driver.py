"""Inside the root, beside GIMP on the private Xvfb display: act as the user would, in order.

Reads the "gui" list of /share/case.json; each action waits for an optional trigger file, then
for a window whose title matches, moves the pointer into it (no window manager: keyboard
focus follows the pointer) and presses keys.  What it saw goes to the action's "report" file
as JSON, so the host test can check it.  Actions:

    {"wait_file": PATH, "window": REGEX, "keys": ["alt+o"], "stays_open_s": 2,
     "then_keys": ["Escape"], "report": PATH, "done_file": PATH}

``"type": TEXT`` after the keys types TEXT and presses Return (a path into GIMP's Open dialog).
``"drag": [[dx, dy], …]`` after the keys: a stroke with the left button through those points,
offsets from the window's centre (the canvas, with GIMP's docks on both sides).

``"screenshot": PATH`` saves the whole screen as PNG after the keys, text and stroke (evidence for a report).

``stays_open_s`` watches the window for that long after the keys: "still_open" at the end,
"closed_meanwhile" if it was hidden at any moment (the dialog hides while a job runs).

``"click_what_appeared": {"baseline_file": PATH, "baseline_done": PATH, "rows": N}`` clicks what
appeared at the bottom of the window since a baseline, instead of pressing keys: GIMP's status-bar
Cancel button cannot take the keyboard focus, and where it sits depends on the theme, the fonts
and the layout.  When ``baseline_file`` appears (the batch script writes it just before it calls
the procedure, then waits for ``baseline_done``) the window's bottom N rows are captured; after
``wait_file`` they are captured again, and the pointer clicks the middle of the rightmost patch
that changed: the progress (message, bar, then Cancel, the rightmost of GIMP's progress widgets).
"""
import json
import subprocess
import sys
import time


def xdotool(*args):
    return subprocess.run(["xdotool", *args], capture_output=True, text=True).stdout.strip()


def geometry(window):
    return dict(line.split("=", 1) for line in xdotool("getwindowgeometry", "--shell", window).split())


def find_window(pattern, timeout):
    """The largest visible window whose title matches (GIMP has small helper windows of the same name)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ids = xdotool("search", "--onlyvisible", "--name", pattern).split()
        if ids:
            return max(ids, key=lambda w: int(geometry(w).get("WIDTH", 0)) * int(geometry(w).get("HEIGHT", 0)))
        time.sleep(0.2)
    return None


def capture(window, rows):
    """The window's bottom ``rows`` rows as (RGB bytes, rowstride, channels, width, window height)."""
    import gi

    gi.require_version("Gdk", "3.0")
    gi.require_version("Gtk", "3.0")
    from gi.repository import Gdk, Gtk

    Gtk.init_check(None)
    g = geometry(window)
    x, y, w, h = int(g["X"]), int(g["Y"]), int(g["WIDTH"]), int(g["HEIGHT"])
    pixbuf = Gdk.pixbuf_get_from_window(Gdk.get_default_root_window(), x, y + h - rows, w, rows)
    return pixbuf.get_pixels(), pixbuf.get_rowstride(), pixbuf.get_n_channels(), w, h


def what_appeared(before, after, rows, gap=3, threshold=40):
    """(x, y) in the window of the middle of the rightmost patch that changed, and the patches' x ranges."""
    data0, stride, channels, width, height = before
    data1 = after[0]
    changed = {}  # column -> rows that changed
    for y in range(rows):
        base = y * stride
        for x in range(width):
            i = base + x * channels
            if max(abs(data0[i + c] - data1[i + c]) for c in range(3)) > threshold:
                changed.setdefault(x, []).append(y)
    patches = []
    for x in sorted(changed):
        if patches and x - patches[-1][1] <= gap + 1:
            patches[-1][1] = x
        else:
            patches.append([x, x])
    if not patches:
        return None, []
    left, right = patches[-1]
    ys = sorted(y for x in range(left, right + 1) for y in changed.get(x, []))
    return ((left + right) // 2, height - rows + ys[len(ys) // 2]), patches


def screenshot(path):
    """The whole screen as PNG (Gdk: the root has no ImageMagick)."""
    import gi

    gi.require_version("Gdk", "3.0")
    gi.require_version("Gtk", "3.0")
    from gi.repository import Gdk, Gtk

    Gtk.init_check(None)
    root = Gdk.get_default_root_window()
    Gdk.pixbuf_get_from_window(root, 0, 0, root.get_width(), root.get_height()).savev(path, "png", [], [])


def press(window, keys):
    xdotool("windowfocus", "--sync", window)  # GTK gives focus to windows it maps: take it back
    xdotool("mousemove", "--window", window, "40", "40")
    time.sleep(0.3)
    for key in keys:
        xdotool("key", key)
        time.sleep(0.3)


def drag(window, points):
    """Press the left button at the first point, move through the others, release (a brush stroke)."""
    g = geometry(window)
    cx, cy = int(g["WIDTH"]) // 2, int(g["HEIGHT"]) // 2
    (x, y), rest = points[0], points[1:]
    xdotool("mousemove", "--window", window, str(cx + x), str(cy + y), "mousedown", "1")
    for x, y in rest:
        time.sleep(0.05)
        xdotool("mousemove", "--window", window, str(cx + x), str(cy + y))
    time.sleep(0.1)
    xdotool("mouseup", "1")


def wait_for_file(path, timeout, poll=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            open(path).close()
            return True
        except OSError:
            time.sleep(poll)
    return False


def run(action):
    report = {}
    appeared = action.get("click_what_appeared")
    baseline = None
    if appeared:
        wait_for_file(appeared["baseline_file"], action.get("wait_file_s", 240), poll=0.02)
        window = find_window(action["window"], action.get("timeout_s", 180))
        if window is not None:
            baseline = capture(window, appeared["rows"])
        with open(appeared["baseline_done"], "w") as fh:
            fh.write("1\n")
    if action.get("wait_file"):
        wait_for_file(action["wait_file"], action.get("wait_file_s", 240))
    window = find_window(action["window"], action.get("timeout_s", 180))
    report["found"] = window is not None
    if window is not None:
        report["title"] = xdotool("getwindowname", window)
        time.sleep(action.get("settle_s", 1.5))  # let it finish drawing
        report["pressed_at"] = time.time()
        if appeared and baseline is not None:
            point, patches = what_appeared(baseline, capture(window, appeared["rows"]), appeared["rows"])
            report["patches"] = patches
            if point is not None:
                report["clicked"] = list(point)
                xdotool("mousemove", "--window", window, str(point[0]), str(point[1]), "click", "1")
        press(window, action.get("keys", []))
        if action.get("type"):  # text typed as it is (a path into a file dialog), then Return
            xdotool("type", "--delay", "60", action["type"])
            time.sleep(1.5)  # a loaded machine: let the dialog take the whole text before Return
            xdotool("key", "Return")
        if action.get("drag"):  # a stroke through the window's middle: [[dx, dy], ...] from the centre
            drag(window, action["drag"])
        report["focus_after"] = xdotool("getwindowfocus")
        if action.get("screenshot"):
            time.sleep(0.5)
            screenshot(action["screenshot"])
        if "stays_open_s" in action:  # watch it: does it stay, or close and come back?
            deadline, seen_closed = time.monotonic() + action["stays_open_s"], False
            while time.monotonic() < deadline:
                visible = window in xdotool("search", "--onlyvisible", "--name", action["window"]).split()
                seen_closed = seen_closed or not visible
                time.sleep(0.1)
            report["still_open"] = visible
            report["closed_meanwhile"] = seen_closed
            press(window, action.get("then_keys", []))
        for _ in range(100 if action.get("window_closes", True) else 0):  # before the next action: gone
            if window not in xdotool("search", "--onlyvisible", "--name", action["window"]).split():
                break
            time.sleep(0.1)
    if action.get("report"):
        with open(action["report"], "w") as fh:
            json.dump(report, fh)
    if action.get("done_file"):
        with open(action["done_file"], "w") as fh:
            fh.write("1\n")


def main():
    with open(sys.argv[1]) as fh:
        actions = json.load(fh).get("gui", [])
    for action in actions:
        run(action)


if __name__ == "__main__":
    main()

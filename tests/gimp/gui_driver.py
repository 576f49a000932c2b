"""Inside the root, beside GIMP on the private Xvfb display: act as the user would, in order.

Reads the "gui" list of /share/case.json; each action waits for an optional trigger file, then
for a window whose title matches, moves the pointer into it (no window manager: keyboard
focus follows the pointer) and presses keys.  What it saw goes to the action's "report" file
as JSON, so the host test can check it.  Actions:

    {"wait_file": PATH, "window": REGEX, "keys": ["alt+o"], "stays_open_s": 2,
     "then_keys": ["Escape"], "report": PATH, "done_file": PATH}

``stays_open_s`` watches the window for that long after the keys: "still_open" at the end,
"closed_meanwhile" if it was hidden at any moment (the dialog hides while a job runs).

``"click_from_bottom_right": [dx, dy]`` clicks there instead of pressing keys: GIMP's status-bar
Cancel button cannot take the keyboard focus, and in a fresh profile's single-window layout
it sits at a fixed distance from the main window's bottom-right corner.
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


def press(window, keys):
    xdotool("windowfocus", "--sync", window)  # GTK gives focus to windows it maps: take it back
    xdotool("mousemove", "--window", window, "40", "40")
    time.sleep(0.3)
    for key in keys:
        xdotool("key", key)
        time.sleep(0.3)


def run(action):
    report = {}
    if action.get("wait_file"):
        deadline = time.monotonic() + action.get("wait_file_s", 240)
        while time.monotonic() < deadline:
            try:
                open(action["wait_file"]).close()
                break
            except OSError:
                time.sleep(0.1)
    window = find_window(action["window"], action.get("timeout_s", 180))
    report["found"] = window is not None
    if window is not None:
        report["title"] = xdotool("getwindowname", window)
        time.sleep(action.get("settle_s", 1.5))  # let it finish drawing
        report["pressed_at"] = time.time()
        if "click_from_bottom_right" in action:
            size = geometry(window)
            dx, dy = action["click_from_bottom_right"]
            x, y = int(size["WIDTH"]) - dx, int(size["HEIGHT"]) - dy
            report["clicked"] = [x, y, int(size["WIDTH"]), int(size["HEIGHT"])]
            xdotool("mousemove", "--window", window, str(x), str(y), "click", "1")
        press(window, action.get("keys", []))
        report["focus_after"] = xdotool("getwindowfocus")
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

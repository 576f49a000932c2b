#!/bin/sh
# Inside the root: run "$@" on a private Xvfb display (:42).  With $GUI_CASE set, gui_driver.py
# plays the user's part beside it (pressing OK in the plug-in's dialog, Cancel on GIMP's
# progress, Ctrl+Z in the image window), following the "gui" actions of that case file.
set -u
Xvfb :42 -screen 0 1280x1024x24 -nolisten tcp >/tmp/xvfb.log 2>&1 &
XVFB=$!
for i in $(seq 1 100); do [ -e /tmp/.X11-unix/X42 ] && break; sleep 0.1; done
export DISPLAY=:42
if [ -n "${GUI_CASE:-}" ]; then
    python3 /share/gui_driver.py "$GUI_CASE" &
fi
"$@"
rc=$?
kill "$XVFB" 2>/dev/null
exit $rc

#!/bin/sh
# Inside the root: run "$@" on a private Xvfb display.  With $GUI_CASE set, gui_driver.py
# plays the user's part beside it (pressing OK in the plug-in's dialog, Cancel on GIMP's
# progress, Ctrl+Z in the image window), following the "gui" actions of that case file.
# The display's abstract socket lives in the host's network namespace, so two GIMP runs at once
# (two test sessions, two checkouts) would collide on a fixed number: Xvfb picks a free one
# (-displayfd) and it is written to /share/display for a screenshot from the host
# (DISPLAY=:N import -window root shot.png).
set -u
rm -f /tmp/xvfb.display
Xvfb -displayfd 3 -screen 0 1280x1024x24 -nolisten tcp 3>/tmp/xvfb.display >/tmp/xvfb.log 2>&1 &
XVFB=$!
for i in $(seq 1 100); do [ -s /tmp/xvfb.display ] && break; sleep 0.1; done
N=$(head -n 1 /tmp/xvfb.display | tr -d '[:space:]')
for i in $(seq 1 100); do [ -e "/tmp/.X11-unix/X$N" ] && break; sleep 0.1; done
echo "$N" > /share/display 2>/dev/null || true
export DISPLAY=":$N"
if [ -n "${GUI_CASE:-}" ]; then
    python3 /share/gui_driver.py "$GUI_CASE" &
fi
"$@"
rc=$?
kill "$XVFB" 2>/dev/null
exit $rc

#!/bin/sh
# Run a command inside the cached trixie root (see build_root.sh):
#   in_root.sh ROOT SHARE_DIR [BIND_SRC:BIND_DST ...] -- COMMAND [ARGS...]
# A private mount and PID namespace (unshare --mount --pid --fork) holds /proc, tmpfs /tmp and
# /dev/shm, and read-only or read-write binds; the network namespace is the host's, so
# tcp://127.0.0.1:PORT reaches a daemon on the host. Everything is unmounted when it exits.
# SHARE_DIR is bind-mounted read-write at /share.
set -eu
ROOT="$1"; SHARE="$2"; shift 2
BINDS=""
while [ $# -gt 0 ] && [ "$1" != "--" ]; do BINDS="$BINDS $1"; shift; done
[ "${1:-}" = "--" ] && shift
export ROOT SHARE BINDS
exec unshare --mount --pid --fork --kill-child --propagation private sh -c '
    set -eu
    mount -t proc proc "$ROOT/proc"
    mount -t tmpfs tmpfs "$ROOT/tmp"
    mkdir -p "$ROOT/dev/shm" "$ROOT/share"
    mount -t tmpfs tmpfs "$ROOT/dev/shm"
    [ -e "$ROOT/dev/null" ] || mount --bind /dev "$ROOT/dev"
    mount --bind "$SHARE" "$ROOT/share"
    for b in $BINDS; do
        src=${b%%:*}; dst=${b#*:}
        mkdir -p "$ROOT$dst"
        mount --bind "$src" "$ROOT$dst"
    done
    exec chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/share/home \
        LANG=C.UTF-8 TMPDIR=/tmp "$@"
' sh "$@"

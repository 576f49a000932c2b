#!/bin/sh
# Build (or reuse) a Debian root with GIMP 3 and its Python plug-in support, for the real-GIMP
# tests (issues 4 and 18). Usage: build_root.sh [ROOT] [SUITE]
# SUITE: trixie (GIMP 3.0.x, the default) or forky (GIMP 3.2.x), or any later Debian suite.
# Default ROOT: /var/cache/neural-style/SUITE-root ($NEURAL_STYLE_GIMP_ROOT for trixie,
# $NEURAL_STYLE_GIMP32_ROOT for forky).
# A marker file ROOT/.neural-style-root-complete is written only after a full build;
# a root without it is removed and rebuilt. flock serialises concurrent builders.
set -eu

SUITE="${2:-trixie}"
case "$SUITE" in
    trixie) DEFAULT_ROOT="${NEURAL_STYLE_GIMP_ROOT:-/var/cache/neural-style/trixie-root}" ;;
    forky) DEFAULT_ROOT="${NEURAL_STYLE_GIMP32_ROOT:-/var/cache/neural-style/forky-root}" ;;
    *) DEFAULT_ROOT="/var/cache/neural-style/$SUITE-root" ;;
esac
ROOT="${1:-$DEFAULT_ROOT}"
MARKER="$ROOT/.neural-style-root-complete"
LOCK="$ROOT.lock"
# GIMP 3 with Python plug-ins; Xvfb + xdotool for the one test that clicks the dialog's OK.
PACKAGES="gimp gir1.2-gimp-3.0 python3 python3-gi python3-zmq python3-msgpack xvfb xauth xdotool"

# The mirror: the first URIs line of the host's deb822 sources (not the snapshot comment).
MIRROR="${NEURAL_STYLE_DEBIAN_MIRROR:-}"
if [ -z "$MIRROR" ]; then
    for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        MIRROR=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' "$f" | grep -v security | head -n 1)
        [ -n "$MIRROR" ] && break
    done
fi
MIRROR="${MIRROR:-http://deb.debian.org/debian}"

if [ "$(id -u)" != 0 ]; then
    echo "build_root.sh: needs root (debootstrap, chroot)" >&2
    exit 3
fi

if ! command -v debootstrap >/dev/null 2>&1; then
    echo "build_root.sh: debootstrap missing; trying apt-get install debootstrap" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap >&2 || {
        apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap >&2
    } || {
        echo "build_root.sh: cannot install debootstrap (apt-get install debootstrap failed)" >&2
        exit 4
    }
fi

mkdir -p "$(dirname "$ROOT")"
exec 9>"$LOCK"
flock 9

in_root() {
    unshare --mount --pid --fork sh -c "
        mount -t proc proc '$ROOT/proc' &&
        chroot '$ROOT' /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive sh -c '$1'
    "
}

if [ -f "$MARKER" ]; then
    if grep -qx "packages: $PACKAGES" "$MARKER"; then
        echo "build_root.sh: reusing $ROOT"
        exit 0
    fi
    # An older root: add what this version of the script wants, keep the rest.
    echo "build_root.sh: adding packages to $ROOT: $PACKAGES"
    in_root "apt-get update && apt-get install -y --no-install-recommends $PACKAGES && apt-get clean"
    { date -u +%Y-%m-%dT%H:%M:%SZ; echo "packages: $PACKAGES"; } > "$MARKER"
    exit 0
fi

if [ -e "$ROOT" ]; then
    echo "build_root.sh: removing incomplete root $ROOT"
    # make sure nothing is still mounted inside it
    grep -o " $ROOT/[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m" || true; done
    rm -rf --one-file-system "$ROOT"
fi

start=$(date +%s)
echo "build_root.sh: debootstrap $SUITE into $ROOT from $MIRROR"
# An older debootstrap has no script for a newer suite: every Debian suite since bullseye uses sid's.
SCRIPT=""
[ -e "/usr/share/debootstrap/scripts/$SUITE" ] || SCRIPT=/usr/share/debootstrap/scripts/sid
debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR" $SCRIPT

cat > "$ROOT/etc/apt/sources.list" <<SRC
deb $MIRROR $SUITE main
SRC
# A mirror's testing Release can be past its Valid-Until date (forky's is, here): apt would refuse
# it. The signature is still checked; only the date is not.
echo 'Acquire::Check-Valid-Until "false";' > "$ROOT/etc/apt/apt.conf.d/99neural-style-valid-until"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true

echo "build_root.sh: installing $PACKAGES"
in_root "apt-get update && apt-get install -y --no-install-recommends $PACKAGES && apt-get clean"

# sanity: GIMP and its Python bindings are there
# (GIMP 3.0 has gimp-console-3.0; 3.2 has gimp-console-3 and gimp-console-3.2.)
test -x "$ROOT/usr/bin/gimp-console-3.0" || test -x "$ROOT/usr/bin/gimp-console-3"
test -e "$ROOT/usr/lib/$(ls "$ROOT/usr/lib" | grep -m1 -- '-linux-gnu')/girepository-1.0/Gimp-3.0.typelib" \
    || ls "$ROOT"/usr/lib/*/girepository-1.0/Gimp-3.0.typelib >/dev/null

{ date -u +%Y-%m-%dT%H:%M:%SZ; echo "packages: $PACKAGES"; echo "suite: $SUITE"; } > "$MARKER"
echo "build_root.sh: done in $(( $(date +%s) - start )) s: $ROOT"

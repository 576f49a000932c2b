"""A large layer through real GIMP (3.0.4, or 3.2 with --gimp 3.2), as a user runs it: the plug-in's
defaults (Full resolution, automatic scales), a daemon on the host with seeded random weights.

    python bench/gimp_full_resolution_trial.py [--size 4000x3000] [--iterations 4] [--gimp 3.2]

Tübingen from ../shared/images, upscaled to --size, is the layer; Starry Night the style. GIMP runs in
the Debian trixie (3.0) or forky (3.2) root of tests/gimp (built on first use by build_root.sh), through
the same harness as tests/test_gimp_plugin.py, whose helpers this script reuses. It prints the daemon's plan and timing,
the layers GIMP holds afterwards, and the result's pixel detail (the GIMP tests' measure: mean absolute
difference between horizontal neighbours) against that of its own half-size version stretched back
(1.0: no detail beyond half the size). Minutes on a CPU: never in CI.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import test_gimp_plugin as harness  # the tests' daemon, session and step helpers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="4000x3000", help="the layer, WIDTHxHEIGHT")
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--gimp", default=harness.DEFAULT_GIMP, choices=sorted(harness.GIMP_BUILDS),
                        help="the GIMP version (default: %(default)s)")
    parser.add_argument("--keep", help="keep GIMP's output (image.xcf, new_layer.png…) in this folder")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    root, reason = harness.prepare_root(args.gimp)
    if root is None:
        print(reason, file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder) / "share"
        for name in ("home", "in", "out"):
            (base / name).mkdir(parents=True)
        photo = Image.open(harness.IMAGES / "tubingen.jpg").convert("RGB")
        photo.resize((width, height), Image.Resampling.LANCZOS).save(base / "in" / "layer.png")
        shutil.copy(harness.IMAGES / "starry_night.jpg", base / "in" / "starry_night.jpg")
        daemon = harness.Daemon(Path(folder))
        try:
            daemon.wait_ready()
            harness.install_plugin(base, daemon.endpoint, root)
            steps = [harness.step(base, "trial", {"iterations": args.iterations, "size": 0, "autostart": False,
                                                  "endpoint": daemon.endpoint}, image="layer.png")]
            began = time.monotonic()
            gimp = harness.run_session(root, base, "trial", steps, background=True)
            code = gimp.wait()
            seconds = time.monotonic() - began
            log = daemon.log_path.read_text(errors="replace")
        finally:
            daemon.stop()
        out = base / "out" / "trial"
        if code != 0 or not (out / "result.json").exists():
            print(f"GIMP exited with {code}:\n{harness.gimp_log(base, 'trial')}", file=sys.stderr)
            return 1
        result = json.loads((out / "result.json").read_text())
        print(f"layer {width}×{height}, {args.iterations} iterations; GIMP session {seconds:.0f} s, the procedure "
              f"{result['elapsed']:.0f} s, status {result['status']} {result['error'] or ''}")
        job_log = log[log.find(" accepted at position"):]  # not the warm-up's plan
        for line in re.findall(r"(plan: .*|result: .*)", job_log):
            print(f"daemon {line}")
        for layer in result["layers_after"]:
            print(f"layer after: {layer['name']!r} {layer['width']}×{layer['height']} at {layer['offsets']}")
        new = Image.open(out / "new_layer.png").convert("RGB")
        stretched = new.resize((width // 2, height // 2), Image.Resampling.BILINEAR).resize(
            (width, height), Image.Resampling.BILINEAR)
        print(f"result {new.size[0]}×{new.size[1]}: pixel detail {harness.high_frequency(new):.2f}, its half-size "
              f"version stretched back {harness.high_frequency(stretched):.2f} "
              f"(ratio {harness.high_frequency(new) / harness.high_frequency(stretched):.3f})")
        if args.keep:
            shutil.copytree(out, args.keep, dirs_exist_ok=True)
    return 0 if result["status"] == "success" else 1


if __name__ == "__main__":
    sys.exit(main())

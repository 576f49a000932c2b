"""The GIMP dialog's defaults on a CPU: how long until the first look (issue 18, defect 6).

A typical photo (Tübingen at 800×600) and Starry Night, with the exact ``params`` map the
plug-in sends (``nsgimp.settings.Settings.params()``; the content at the size the plug-in sends
it, ``sent_size``), through the engine the daemon runs.  Each configuration runs ``--iterations``
iterations (a run's cost grows linearly with them: the seconds per iteration are printed, and the
whole run's time at the configuration's own iteration count extrapolated from them).  Runs
alternate, so the load of a shared machine falls on all of them alike.

    python bench/gimp_defaults_bench.py [--iterations 10] [--repeats 1]

Seeded random VGG19 weights (the cost per iteration does not depend on the weights' values).
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugin" / "neural_style_gimp"))

from nsgimp import settings as S  # noqa: E402

from neural_style.daemon.engine import StyleParams, stylize  # noqa: E402
from neural_style.daemon.image_files import load_image  # noqa: E402
from neural_style.daemon.weights import load_model  # noqa: E402

SHARED = REPO.parent / "shared" / "images"
PHOTO = (800, 600)
# (name, size as the dialog sets it, the iterations the dialog starts with)
CONFIGS = [
    ("before: full resolution, 200 iterations", S.FULL_RESOLUTION, 200),
    (f"now: working size {S.WORKING_SIZE_DEFAULT}, {S.ITERATIONS_DEFAULT} iterations",
     S.WORKING_SIZE_DEFAULT, S.ITERATIONS_DEFAULT),
]


def _photo() -> torch.Tensor:
    import torch.nn.functional as F

    image = load_image(SHARED / "tubingen.jpg")
    return F.interpolate(image[None], size=(PHOTO[1], PHOTO[0]), mode="area")[0]


def _sent(photo: torch.Tensor, size: int) -> torch.Tensor:
    import torch.nn.functional as F

    w, h = S.sent_size(PHOTO[0], PHOTO[1], size)
    return photo if (w, h) == PHOTO else F.interpolate(photo[None], size=(h, w), mode="area")[0]


def run(model, photo, style, size: int, full_iterations: int, iterations: int) -> tuple[float, float]:
    """(seconds per iteration, seconds to the first preview) for ``iterations`` of this configuration."""
    settings = S.Settings(style="starry_night.jpg", size=size, iterations=full_iterations)
    params = dict(settings.params(), iterations=iterations)
    first: list[float] = []
    started = time.perf_counter()

    def on_progress(progress) -> None:
        if progress.image is not None and not first:
            first.append(time.perf_counter() - started)

    stylize(model, _sent(photo, size), [style], StyleParams.from_mapping(params), on_progress=on_progress)
    elapsed = time.perf_counter() - started
    return elapsed / iterations, first[0] if first else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = load_model("random", device="cpu")
    photo, style = _photo(), load_image(SHARED / "starry_night.jpg")
    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, photo {PHOTO[0]}×{PHOTO[1]}, {args.iterations} iterations each, "
          f"{args.repeats} repeat(s)")
    rates: dict[str, list[float]] = {name: [] for name, _, _ in CONFIGS}
    firsts: dict[str, list[float]] = {name: [] for name, _, _ in CONFIGS}
    for _ in range(args.repeats):
        for name, size, full in CONFIGS:
            rate, first = run(model, photo, style, size, full, args.iterations)
            rates[name].append(rate)
            firsts[name].append(first)
    print("| dialog defaults | s/iteration | first preview after | whole run (extrapolated) |")
    print("| --- | --- | --- | --- |")
    for name, _size, full in CONFIGS:
        rate = statistics.median(rates[name])
        print(f"| {name} | {rate:.2f} | {statistics.median(firsts[name]):.1f} s | {rate * full / 60:.1f} min |")


if __name__ == "__main__":
    main()

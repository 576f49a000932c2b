"""Coarse-to-fine against single-scale optimisation: time to quality, ×2 against ×√2 steps, the split.

Every run records the loss at full size after each evaluation of its last scale, with the time since
the run began (targets, coarse scales and all). Single-scale optimisation for N iterations at full
size gives the target loss and the baseline time; a coarse-to-fine run's *time to quality* is when
its full-size loss first reaches that target (the run stops there). Runs alternate between the
configurations, so that the load other work puts on a shared machine falls on all of them alike.

    python bench/coarse_to_fine_bench.py quality [--size 1024] [--iterations 60] [--repeats 2]
        the default (automatic) schedule and ×2 / ×√2 steps with the same split, against single-scale
    python bench/coarse_to_fine_bench.py split [--size 512 --coarse 256] [--iterations 60]
        explicit coarse budgets for both steps: which allocation reaches the target soonest
    python bench/coarse_to_fine_bench.py optimizers [--size 512] [--iterations 100]
        L-BFGS with histories 100 … 5 against Adam: the loss reached per second
    python bench/coarse_to_fine_bench.py weights [--size 512 --coarse 256] [--iterations 30] [--budgets 44]
        the content weight per scale: scaled by output pixels / the scale's pixels (the engine's
        schedule.content_weight_factor) against the same α at every scale (the baseline), with the
        automatic ×2 split of T iterations; --style-weight sets β (with random weights the default
        α/β leaves the loss almost all content; a larger β balances the terms, as trained weights do)

Seeded random VGG19 weights unless --weights is given; Tübingen and Starry Night from ../shared/images.
"""
from __future__ import annotations

import argparse
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from neural_style.daemon.engine import Cancelled, StyleParams, job_plan, memory_plan, schedule, stylize
from neural_style.daemon.engine.memory_plan import OptimizerState
from neural_style.daemon.engine.optimize import ENGINE, OptimiserSettings
from neural_style.daemon.engine.schedule import FRONT_LOADING, Scale, scale_sizes, split_iterations
from neural_style.daemon.engine.sizes import fit_longest_side, scale_to_longest_side
from neural_style.daemon.image_files import load_image
from neural_style.daemon.weights import load_model

SHARED = Path(__file__).resolve().parents[2] / "shared" / "images"
SQRT2 = math.sqrt(2)


@dataclass
class Trace:
    name: str
    seconds: list[float] = field(default_factory=list)  # since the run began, after each full-size evaluation
    losses: list[float] = field(default_factory=list)
    total_seconds: float = 0.0
    first_terms: dict[str, float] = field(default_factory=dict)  # content, style at the first full-size evaluation
    last_terms: dict[str, float] = field(default_factory=dict)  # … and at the last

    def time_to(self, target: float) -> float | None:
        return next((t for t, loss in zip(self.seconds, self.losses) if loss <= target), None)


class Runner:
    #: The clock of a trace's seconds: wall time here; time_to_quality_bench takes the process's CPU time
    #: (user + sys of all its threads), which a shared machine's load disturbs far less.
    clock: Callable[[], float] = staticmethod(time.perf_counter)

    def __init__(self, args: argparse.Namespace) -> None:
        torch.set_num_threads(args.threads)
        self.model = load_model(args.weights, device=args.device)
        self.content, self.style = load_image(SHARED / "tubingen.jpg"), load_image(SHARED / "starry_night.jpg")
        if args.size > max(self.content.shape[-2:]):  # Tübingen is 1024×768: larger outputs upsample it
            height, width = scale_to_longest_side(*self.content.shape[-2:], args.size)
            self.content = torch.nn.functional.interpolate(self.content.unsqueeze(0), size=(height, width),
                                                           mode="bicubic", antialias=True).squeeze(0).clamp(0, 1)
        self.params = StyleParams(size=args.size, iterations=args.iterations, progress_every=1, scales=1,
                                  style_weight=args.style_weight)
        height, width = fit_longest_side(*self.content.shape[-2:], args.size)
        self.output = (height, width)
        stylize(self.model, self.content, [self.style], self.params.replace(iterations=2, size=64))  # warm-up

    def run(self, name: str, scales: list[Scale], *, target: float | None = None,
            state: OptimizerState | None = None, optimizer: str = "lbfgs", learning_rate: float = 0.02,
            weight_factor: Callable[[Scale, Scale], float] | None = None,
            optimiser: OptimiserSettings = ENGINE) -> Trace:
        """One run of ``scales`` (the last one at full size); stops once its full-size loss reaches ``target``.

        ``weight_factor`` replaces the engine's ``schedule.content_weight_factor`` for this run."""
        trace = Trace(name)
        final = len(scales)
        began = self.clock()

        def on_progress(progress) -> None:
            if progress.scale == final:
                trace.seconds.append(self.clock() - began)
                trace.losses.append(progress.loss.total)
                trace.last_terms = {"content": progress.loss.content, "style": progress.loss.style}
                trace.first_terms = trace.first_terms or trace.last_terms

        def should_stop() -> bool:
            return target is not None and bool(trace.losses) and trace.losses[-1] <= target

        originals = job_plan.schedule, job_plan.plan_memory, schedule.content_weight_factor
        job_plan.schedule = lambda *a, **k: scales
        if weight_factor is not None:
            schedule.content_weight_factor = weight_factor
        if state is not None:  # a fixed optimiser state, whatever the budget
            job_plan.plan_memory = lambda *a, **k: _with_state(originals[1](*a, **k), state)
        try:
            stylize(self.model, self.content, [self.style],
                    self.params.replace(iterations=sum(s.iterations for s in scales), optimizer=optimizer,
                                        learning_rate=learning_rate),
                    on_progress=on_progress, should_stop=should_stop, optimiser=optimiser)
        except Cancelled:
            pass
        finally:
            job_plan.schedule, job_plan.plan_memory, schedule.content_weight_factor = originals
        trace.total_seconds = self.clock() - began
        return trace


def _with_state(plan: memory_plan.MemoryPlan, state: OptimizerState) -> memory_plan.MemoryPlan:
    from dataclasses import replace

    return replace(plan, optimizer=state)


def steps_schedule(output: tuple[int, int], coarse: int, step: float, iterations: int,
                   front_loading: float = FRONT_LOADING) -> list[Scale]:
    """The automatic schedule's sizes for ``step`` with ``iterations`` split by the engine's rule."""
    sizes = scale_sizes(*output, 0, 16, coarse_side=coarse, step=step)
    counts = split_iterations(iterations, [h * w for h, w in sizes], front_loading)
    return [Scale(h, w, n) for (h, w), n in zip(sizes, counts)]


def explicit_schedule(output: tuple[int, int], coarse: int, step: float, coarse_iterations: int,
                      final_iterations: int) -> list[Scale]:
    """``coarse_iterations`` at the coarsest size, fewer (∝ 1/pixels^½) at the next, and up to ``final_iterations``."""
    sizes = scale_sizes(*output, 0, 16, coarse_side=coarse, step=step)
    first = sizes[0][0] * sizes[0][1]
    scales = [Scale(h, w, max(1, round(coarse_iterations * math.sqrt(first / (h * w))))) for h, w in sizes[:-1]]
    return [*scales, Scale(*sizes[-1], final_iterations)]


def budgets(args) -> list[int]:
    """--budgets as numbers; N (--iterations) when not given."""
    return [int(b) for b in args.budgets.split(",")] if args.budgets else [args.iterations]


def outcome(trace: Trace, baseline: Trace, target: float) -> str:
    """When ``trace`` reached the single-scale ``target``, as a share of the single-scale time, or that it did not."""
    reached = trace.time_to(target)
    if reached is None:
        return f"target not reached in {trace.total_seconds:.1f} s (final loss {trace.losses[-1]:.6g})"
    return f"target at {reached:.1f} s = {reached / baseline.seconds[-1]:.3f} of single"


def machine(args) -> str:
    return (f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads, "
            f"weights {args.weights}")


# ---------------------------------------------------------------------- modes
def quality(args) -> int:
    """Single-scale N iterations against the automatic schedule with ×√2 and ×2 steps (the same split)."""
    runner = Runner(args)
    out = runner.output
    print(f"machine: {machine(args)}; output {out[1]}×{out[0]}, single scale {args.iterations} iterations")
    single = [Scale(*out, args.iterations)]
    configs = {f"×{name} T={t}": steps_schedule(out, args.coarse, step, t) for t in budgets(args)
               for name, step in (("√2", SQRT2), ("2", 2.0))}
    results: dict[str, list[Trace]] = {"single": [], **{k: [] for k in configs}}
    for repeat in range(args.repeats):
        baseline = runner.run("single", single)
        results["single"].append(baseline)
        target = baseline.losses[-1]
        print(f"repeat {repeat + 1}: single scale: {baseline.seconds[-1]:.1f} s to loss {target:.6g}", flush=True)
        for name, scales in configs.items():
            trace = runner.run(name, scales, target=target)
            results[name].append(trace)
            print(f"  {name} ({' → '.join(f'{s.width}×{s.height}:{s.iterations}' for s in scales)}): "
                  f"{outcome(trace, baseline, target)}", flush=True)
    print("\n| schedule | time to the single-scale loss, / single-scale time (median) | runs reaching it |")
    print("| --- | --- | --- |")
    for name, traces in results.items():
        if name == "single":
            continue
        ratios = [t.time_to(b.losses[-1]) / b.seconds[-1] for t, b in zip(traces, results["single"])
                  if t.time_to(b.losses[-1]) is not None]
        print(f"| {name} | {statistics.median(ratios):.3f} |" if ratios else f"| {name} | — |",
              f"{len(ratios)}/{len(traces)} |")
    return 0


def split(args) -> int:
    """Explicit coarse budgets for ×2 and ×√2: the time to reach the single-scale loss."""
    runner = Runner(args)
    out = runner.output
    print(f"machine: {machine(args)}; output {out[1]}×{out[0]}, coarse side {args.coarse}, "
          f"single scale {args.iterations} iterations")
    configs = {f"×{name}, {k} coarse": explicit_schedule(out, args.coarse, step, k, 3 * args.iterations)
               for k in budgets(args) for name, step in (("2", 2.0), ("√2", SQRT2))}
    ratios: dict[str, list[float]] = {name: [] for name in configs}
    for repeat in range(args.repeats):
        baseline = runner.run("single", [Scale(*out, args.iterations)])
        target = baseline.losses[-1]
        print(f"repeat {repeat + 1}: single {baseline.seconds[-1]:.1f} s to {target:.6g}", flush=True)
        for name, scales in configs.items():
            trace = runner.run(name, scales, target=target)
            reached = trace.time_to(target)
            if reached is not None:
                ratios[name].append(reached / baseline.seconds[-1])
            print(f"  {name} ({', '.join(str(s.iterations) for s in scales[:-1])} coarse; "
                  f"{len(trace.losses)} at full size): "
                  + (f"{reached:.1f} s = {reached / baseline.seconds[-1]:.3f}" if reached is not None
                     else "not reached"), flush=True)
    print("\n| schedule | time to quality / single-scale (median) |")
    print("| --- | --- |")
    for name, values in ratios.items():
        print(f"| {name} | {statistics.median(values):.3f} |" if values else f"| {name} | not reached |")
    return 0


def weights(args) -> int:
    """The content weight per scale, scaled against constant: the loss after upsampling and the time to quality."""
    runner = Runner(args)
    out = runner.output
    print(f"machine: {machine(args)}; output {out[1]}×{out[0]}, coarse side {args.coarse}, style weight "
          f"{args.style_weight:g}, single scale {args.iterations} iterations")
    variants = {"α × output pixels / scale pixels (engine)": None,
                "α at every scale (baseline)": lambda scale, output: 1.0}
    for repeat in range(args.repeats):
        baseline = runner.run("single", [Scale(*out, args.iterations)])
        target = baseline.losses[-1]
        print(f"repeat {repeat + 1}: single scale: {baseline.seconds[-1]:.1f} s to loss {target:.6g} (content "
              f"{baseline.last_terms['content']:.4g}, style {baseline.last_terms['style']:.4g})", flush=True)
        order = list(variants.items()) if repeat % 2 == 0 else list(variants.items())[::-1]
        for t in budgets(args):
            scales = steps_schedule(out, args.coarse, 2.0, t)
            for name, factor in order:
                trace = runner.run(name, scales, target=target, weight_factor=factor)
                print(f"  T={t} ({' → '.join(f'{s.width}×{s.height}:{s.iterations}' for s in scales)}), {name}: "
                      f"loss after upsampling {trace.losses[0]:.6g} (content {trace.first_terms['content']:.4g}, "
                      f"style {trace.first_terms['style']:.4g}); {outcome(trace, baseline, target)}", flush=True)
    return 0


def optimizers(args) -> int:
    """L-BFGS histories and Adam at one size, alternating: loss after each evaluation and seconds per evaluation."""
    runner = Runner(args)
    out = runner.output
    print(f"machine: {machine(args)}; {out[1]}×{out[0]}, {args.iterations} evaluations each")
    histories = [int(h) for h in args.histories.split(",")]
    configs = [(f"L-BFGS history {h}", dict(state=OptimizerState("lbfgs", h))) for h in histories]
    configs += [(f"Adam lr {lr}", dict(state=OptimizerState("adam"), optimizer="adam", learning_rate=float(lr)))
                for lr in args.learning_rates.split(",")]
    traces: dict[str, list[Trace]] = {name: [] for name, _ in configs}
    for _ in range(args.repeats):
        for name, options in configs:
            traces[name].append(runner.run(name, [Scale(*out, args.iterations)], **options))
            print(f"  {name}: {traces[name][-1].total_seconds:.1f} s, loss {traces[name][-1].losses[-1]:.6g}",
                  flush=True)
    marks = sorted({max(1, args.iterations // 4), args.iterations // 2, args.iterations})
    print("\n| optimiser | " + " | ".join(f"loss after {m}" for m in marks) + " | s / evaluation (median) |")
    print("| --- | " + " | ".join("---" for _ in marks) + " | --- |")
    for name, runs in traces.items():
        first = runs[0]
        per = statistics.median(run.total_seconds / len(run.losses) for run in runs)
        print(f"| {name} | " + " | ".join(f"{first.losses[m - 1]:.4g}" for m in marks) + f" | {per:.2f} |")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("quality", "split", "optimizers", "weights"))
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--coarse", type=int, default=512, help="the coarsest longest side")
    parser.add_argument("--iterations", type=int, default=60, help="N: single-scale iterations at full size")
    parser.add_argument("--budgets", default="", help="quality, weights: total iterations T of the coarse-to-fine runs "
                                                      "(default N); split: coarse iterations at the coarsest size")
    parser.add_argument("--histories", default="100,20,10,5")
    parser.add_argument("--learning-rates", default="0.02,0.05")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--weights", default="random")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--style-weight", type=float, default=StyleParams().style_weight, help="β")
    args = parser.parse_args()
    return {"quality": quality, "split": split, "optimizers": optimizers, "weights": weights}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())

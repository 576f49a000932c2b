"""Time to quality (issue 19): the engine with its box and carried optimiser state against today's restart.

Every mode runs the engine's variants side by side in one process, alternating, so that a shared
machine's load falls on all alike, each passed to ``stylize`` as an ``optimize.OptimiserSettings``;
"today" is ``optimize.PAPER``, the engine before issue 19 (the image clamped only at the end,
torch's L-BFGS restart at every scale). Seconds are the process's CPU time (user + sys) unless --clock wall.

    python bench/time_to_quality_bench.py delivered [--size 128 --iterations 40 --style-weight 1e6]
        the optimiser's last loss against the delivered image's (clamped, 8-bit), one scale
    python bench/time_to_quality_bench.py carry [--size 512 --iterations 20 --budgets 30]
        coarse to fine with each carry: the loss after each of the first full-size iterations, and the
        time to single-scale N iterations' delivered loss, as a share of the single-scale time
    python bench/time_to_quality_bench.py steps [--size 128 --iterations 40 --style-weight 1e6]
        one scale, the box on: the trust region (max_step) and the fresh first step against each other
    python bench/time_to_quality_bench.py schedule [--size 512 --iterations 20 --budgets 30 --histories 100]
        the automatic schedule's constants (coarsest side, ×2 / ×√2, front-loading, L-BFGS history) with
        the new engine

Balanced weights as issue 19 asks (α = 1, β = 4·10⁶ unless --style-weight), noise start, seeded random
VGG19 unless --weights; Tübingen and Starry Night from ../shared/images.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass

import torch
from coarse_to_fine_bench import Runner, Trace, machine, steps_schedule

from neural_style.daemon.engine import stylize, transfer
from neural_style.daemon.engine.memory_plan import OptimizerState
from neural_style.daemon.engine.optimize import ENGINE, PAPER, OptimiserSettings
from neural_style.daemon.engine.schedule import Scale

#: The engine's variants.
TODAY = PAPER
VARIANTS = {
    "today (clamped at the end, restart per scale)": TODAY,
    "box only": OptimiserSettings(carry="none"),
    "box + carried γ, bf16 coarse sizes and the output's first 4 evaluations (engine)": ENGINE,
    "box + carried γ and pairs": OptimiserSettings(carry="pairs"),
    "box + carried γ, first step ≤ the last scale's last": OptimiserSettings(cap_by_last_step=True),
    "box + carried γ, bilinear upsampling": OptimiserSettings(upsampling="bilinear", coarse_bf16=False,
                                                                 output_bf16=0),
    "box + carried γ, float32 coarse sizes": OptimiserSettings(coarse_bf16=False, output_bf16=0),
    "box + carried γ, bf16 coarse sizes, float32 output size (the sixth session's start)":
        OptimiserSettings(output_bf16=0),
    **{f"box + carried γ, bf16 coarse sizes and the output's first {n} evaluations": OptimiserSettings(output_bf16=n)
       for n in (2, 3)},
}
#: --variants' short names for VARIANTS' keys, in order.
SHORT = dict(zip(("today", "box", "engine", "pairs", "laststep", "bilinear", "fp32coarse", "fp32out", "out2", "out3"),
                 VARIANTS))


def chosen(args) -> dict:
    """The VARIANTS that --variants names (all by default)."""
    return {SHORT[n]: VARIANTS[SHORT[n]] for n in args.variants.split(",")}


def peak_rss() -> str:
    """This process's peak resident memory so far (Linux: ru_maxrss in KiB)."""
    import resource

    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"


def delivered_loss(runner: Runner, image: torch.Tensor) -> float:
    """The engine's own loss of ``image`` (3, H, W) as a user receives it: clamped, rounded to 8 bits."""
    delivered = (image.clamp(0, 1) * 255).round() / 255
    height, width = image.shape[-2:]
    losses: list[float] = []
    original = transfer._start_image
    transfer._start_image = lambda *a, **k: delivered.unsqueeze(0)
    try:
        stylize(runner.model, runner.content, [runner.style],
                runner.params.replace(iterations=1, size=max(height, width), scales=1),
                on_progress=lambda e: losses.append(e.loss.total), optimiser=TODAY)
    finally:
        transfer._start_image = original
    return losses[-1]


@dataclass
class Run:
    trace: Trace
    image: torch.Tensor  # the result as delivered (before 8-bit rounding); empty when the run stopped early
    optimised: torch.Tensor  # the optimiser's last image, before the engine's final clamp


def run(runner: Runner, scales: list[Scale], variant: OptimiserSettings, target: float | None = None,
        state: OptimizerState | None = None) -> Run:
    """``runner.run`` with ``variant`` in place, keeping the result image too (None when it stopped early)."""
    image: list[torch.Tensor] = []
    original = transfer._finish

    def keep(x, plan, params):
        out = original(x, plan, params)
        image.extend((out, x.detach().clone()))
        return out

    transfer._finish = keep
    try:
        trace = runner.run("", scales, target=target, optimiser=variant, state=state)
    finally:
        transfer._finish = original
    return Run(trace, *(image or [torch.empty(0)] * 2))


def delivered(args) -> int:
    runner = start(args, f"one scale, {args.iterations} iterations")
    out = runner.output
    print("\n| engine | optimiser's last loss | delivered (clamped, 8-bit) loss | delivered / optimiser's |"
          " share of values outside [0, 1] at the end |")
    print("| --- | --- | --- | --- | --- |")
    for name, variant in VARIANTS.items():
        if variant.carry == "pairs":
            continue  # one scale: nothing to carry
        result = run(runner, [Scale(*out, args.iterations)], variant)
        last = result.trace.losses[-1]
        final = delivered_loss(runner, result.image)
        outside = float(((result.optimised < 0) | (result.optimised > 1)).float().mean())
        print(f"| {name} | {last:.6g} | {final:.6g} | **{final / last:.3f}** | {outside:.3%} |", flush=True)
    return 0


def start(args, what: str) -> Runner:
    """The runner (model, images, warm-up) and the run's header line."""
    if args.clock == "cpu":
        Runner.clock = staticmethod(time.process_time)
    runner = Runner(args)
    print(f"machine: {machine(args)}; output {runner.output[1]}×{runner.output[0]}, β {args.style_weight:g}, {what}; "
          f"seconds are the process's {'CPU time (user + sys)' if args.clock == 'cpu' else 'wall time'}")
    return runner


def single_scale_target(runner: Runner, args, variant=TODAY, name: str = "today") -> tuple[float, float]:
    """``variant`` (today's engine) for N iterations at full size: its delivered loss (the target), its seconds.

    ``--target LOSS:SECONDS`` gives today's instead: a single-scale run of the same commit, size and weights in
    another process (at 2048×1536 it alone costs over half an hour of one core), so both can run at once."""
    if args.target and name == "today":
        loss, seconds = (float(v) for v in args.target.split(":"))
        print(f"single scale ({name}): given, {seconds:.1f} s, delivered {loss:.6g} (the target)", flush=True)
        return loss, seconds
    baseline = run(runner, [Scale(*runner.output, args.iterations)], variant)
    target, single = delivered_loss(runner, baseline.image), baseline.trace.seconds[-1]
    print(f"single scale ({name}): {single:.1f} s, optimiser's loss {baseline.trace.losses[-1]:.6g}, "
          f"delivered {target:.6g} (the target); first full-size losses "
          f"{', '.join(f'{v:.5g}' for v in baseline.trace.losses[:3])}; peak RSS {peak_rss()}", flush=True)
    return target, single


def carry(args) -> int:
    runner = start(args, f"coarse side {args.coarse}, step ×{args.step:g}, single scale {args.iterations} iterations")
    out = runner.output
    # --no-single: the single-scale runs are another process's (run in parallel on a shared machine); the
    # full traces printed below give the time to any target afterwards
    target, single = single_scale_target(runner, args) if not args.no_single else (-math.inf, math.nan)
    if args.single_only:
        return 0
    if args.engine_target:  # the stricter target: the new engine's own single-scale result
        engine_target, engine_single = single_scale_target(runner, args, VARIANTS[SHORT["engine"]], "engine")
    rows = []
    for t in [int(b) for b in args.budgets.split(",")]:
        scales = steps_schedule(out, args.coarse, args.step, t, args.front_loading)
        plan = " → ".join(f"{s.width}×{s.height}:{s.iterations}" for s in scales)
        for name, variant in chosen(args).items():
            began = time.perf_counter()
            result = run(runner, scales, variant, target=target if args.stop_at_target else None)
            trace = result.trace
            reached = trace.time_to(target)
            final = delivered_loss(runner, result.image) if result.image.numel() else math.nan
            rows.append((t, plan, name, trace.losses[:3], reached, final, time.perf_counter() - began))
            share = f"{reached / single:.3f}" if reached is not None else "not reached"
            print(f"  T={t} {plan}, {name}: first full-size losses {', '.join(f'{v:.5g}' for v in trace.losses[:3])};"
                  f" target at {share}; delivered {final:.6g}; whole run {trace.total_seconds:.1f} s; "
                  f"peak RSS {peak_rss()}", flush=True)
            print("    full-size trace (seconds: loss): "
                  + ", ".join(f"{sec:.1f}: {loss:.6g}" for sec, loss in zip(trace.seconds, trace.losses)), flush=True)
            if args.engine_target:
                strict = trace.time_to(engine_target)
                print(f"    the engine's single-scale target {engine_target:.6g} ({engine_single:.1f} s): "
                      f"{f'at {strict:.1f} s = {strict / engine_single:.3f}' if strict is not None else 'not reached'}"
                      f"; full-size losses {', '.join(f'{v:.5g}' for v in trace.losses)}", flush=True)
    print("\n| T | sizes (iterations) | engine | full-size loss after 1, 2, 3 | time to the target / single-scale "
          "time | delivered loss at the end |")
    print("| --- | --- | --- | --- | --- | --- |")
    for t, plan, name, first, reached, final, _ in rows:
        share = f"{reached / single:.3f}" if reached is not None else "not reached"
        print(f"| {t} | {plan} | {name} | {', '.join(f'{v:.4g}' for v in first)} | {share} | {final:.5g} |")
    return 0


def steps(args) -> int:
    """The trust region and the first step's length, one scale, against today's engine."""
    runner = start(args, f"one scale, {args.iterations} iterations")
    out = runner.output
    configs = [("today", TODAY)]
    configs += [(f"box, max_step {cap}, first_step {first}", OptimiserSettings(max_step=cap, first_step=first))
                for cap in (float(c) for c in args.max_steps.split(",")) for first in
                (float(f) for f in args.first_steps.split(","))]
    marks = sorted(m for m in {1, 2, 5, args.iterations // 2, args.iterations} if 1 <= m <= args.iterations)
    print("\n| engine | " + " | ".join(f"loss after {m}" for m in marks) + " | delivered loss |")
    print("| --- | " + " | ".join("---" for _ in marks) + " | --- |")
    for name, variant in configs:
        result = run(runner, [Scale(*out, args.iterations)], variant)
        losses = result.trace.losses
        print(f"| {name} | " + " | ".join(f"{losses[m - 1]:.4g}" for m in marks) +
              f" | {delivered_loss(runner, result.image):.5g} |", flush=True)
    return 0


def schedule(args) -> int:
    """The automatic schedule's constants with the engine's box and carry: time to the single-scale target."""
    runner = start(args, f"single scale {args.iterations} iterations")
    out = runner.output
    target, single = single_scale_target(runner, args)
    configs = []
    for coarse in [int(c) for c in args.coarse_sides.split(",")]:
        for step in [float(eval(s, {"sqrt": math.sqrt})) for s in args.steps.split(",")]:  # a bench flag: 2, sqrt(2)
            for front in [float(f) for f in args.front_loadings.split(",")]:
                for history in [int(h) for h in args.histories.split(",")]:
                    for t in [int(b) for b in args.budgets.split(",")]:
                        configs.append((coarse, step, front, history, t, steps_schedule(out, coarse, step, t, front)))
    print("\n| coarsest side | step | front-loading | L-BFGS history | T | sizes (iterations) | full-size loss after "
          "1, 2, 3 | time to the target / single | delivered loss at the end |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for coarse, step, front, history, t, scales in configs:
        result = run(runner, scales, ENGINE, target=target if args.stop_at_target else None,
                     state=OptimizerState("lbfgs", history))
        reached = result.trace.time_to(target)
        final = delivered_loss(runner, result.image) if result.image.numel() else math.nan  # nan: stopped at the target
        share = f"{reached / single:.3f}" if reached is not None else "not reached"
        plan = " → ".join(f"{s.width}×{s.height}:{s.iterations}" for s in scales)
        first = ", ".join(f"{v:.5g}" for v in result.trace.losses[:3])
        print(f"| {coarse} | ×{step:.3g} | {front:g} | {history} | {t} | {plan} | {first} | {share} | {final:.5g} |",
              flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("delivered", "carry", "steps", "schedule"))
    parser.add_argument("--max-steps", default="0.25,0.5,1", help="steps: trust regions to try")
    parser.add_argument("--first-steps", default="0.05,0.2", help="steps: first steps to try")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--coarse", type=int, default=256, help="carry: the coarsest longest side")
    parser.add_argument("--step", type=float, default=2.0, help="carry: the step between sizes")
    parser.add_argument("--front-loading", type=float, default=0.5, help="carry: the split's exponent")
    parser.add_argument("--coarse-sides", default="256,512", help="schedule: coarsest sides to try")
    parser.add_argument("--steps", default="2,sqrt(2)", help="schedule: steps to try")
    parser.add_argument("--front-loadings", default="0.5,1", help="schedule: exponents to try")
    parser.add_argument("--histories", default="100", help="schedule: L-BFGS histories to try")
    parser.add_argument("--iterations", type=int, default=20, help="N: single-scale iterations (delivered: all)")
    parser.add_argument("--budgets", default="30", help="total iterations T of the coarse-to-fine runs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--weights", default="random")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--style-weight", type=float, default=4e6, help="β (α = 1)")
    parser.add_argument("--variants", default=",".join(SHORT),
                        help=f"carry: which engines ({','.join(SHORT)})")
    parser.add_argument("--no-single", action="store_true",
                        help="carry: no single-scale run (another process's gives the target): the traces only")
    parser.add_argument("--target", help="carry, schedule: today's single-scale LOSS:SECONDS from another process "
                        "of the same commit, instead of running it here")
    parser.add_argument("--single-only", action="store_true", help="carry: only the single-scale target line")
    parser.add_argument("--stop-at-target", action="store_true",
                        help="carry, schedule: end each run once it reaches the target (saves the rest of its time)")
    parser.add_argument("--engine-target", action="store_true",
                        help="carry: also the new engine's single-scale run as a (stricter) target")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="seconds: the process's CPU time (user + sys; steadier on a shared machine) or wall")
    args = parser.parse_args()
    return {"delivered": delivered, "carry": carry, "steps": steps, "schedule": schedule}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())

"""Issue 19: the box [0, 1] held during the optimisation, and what one scale learnt carried to the next."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from neural_style.daemon.engine import StyleParams, lbfgs, optimize, stylize, transfer
from neural_style.daemon.engine.lbfgs import FIRST_STEP, MAX_STEP, Learnt
from neural_style.daemon.engine.optimize import AdamMoments, minimise

FAST = StyleParams(iterations=8, size=48, progress_every=1, style_weight=1e6)


def quadratic(target: torch.Tensor, scale: torch.Tensor):
    """½ Σ scale·(x − target)²: its minimum outside the box pushes components against the bounds."""

    def objective(x: torch.Tensor):
        total = 0.5 * (scale * (x - target) ** 2).sum()
        return total, {"total": total}

    return objective


def test_without_a_box_the_steps_are_torchs_lbfgs():
    """PAPER (no box) is the paper's optimiser: torch.optim.LBFGS without line search, step for step."""
    generator = torch.Generator().manual_seed(0)
    target, scale = torch.rand((1, 3, 8, 8), generator=generator), 0.5 + torch.rand((1, 3, 8, 8), generator=generator)
    start = torch.rand((1, 3, 8, 8), generator=generator)
    objective = quadratic(target, scale)
    ours: list[torch.Tensor] = []
    minimise(objective, start, 6, "lbfgs", on_evaluation=lambda n, x, t: ours.append(x.clone()),
             settings=optimize.PAPER)

    x = start.clone().requires_grad_(True)
    theirs: list[torch.Tensor] = []
    opt = torch.optim.LBFGS([x], lr=1.0, max_iter=7, max_eval=6, tolerance_grad=-1.0, tolerance_change=-1.0,
                            history_size=100, line_search_fn=None)

    def closure():
        x.grad = None
        total, _ = objective(x)
        total.backward()
        theirs.append(x.detach().clone())
        return total

    opt.step(closure)
    assert len(ours) == len(theirs) == 6
    for mine, reference in zip(ours, theirs):
        assert torch.allclose(mine, reference, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_every_evaluated_image_stays_in_the_box(optimizer):
    target = torch.full((1, 3, 8, 8), 3.0)
    target[..., :4] = -2.0  # half the minimum above the box, half below
    seen: list[torch.Tensor] = []
    outcome = minimise(quadratic(target, torch.ones_like(target)), torch.full_like(target, 0.5), 12, optimizer,
                       learning_rate=0.5, on_evaluation=lambda n, x, t: seen.append(x.clone()),
                       settings=optimize.ENGINE)
    assert len(seen) == 12
    assert all(float(x.min()) >= 0.0 and float(x.max()) <= 1.0 for x in seen)
    assert torch.equal(outcome.image, seen[-1])  # the image returned is the one evaluated last
    expected = torch.where(target > 1, 1.0, 0.0)
    assert torch.allclose(outcome.image, expected, atol=0.05)  # the constrained minimum, reached


def test_the_first_step_in_the_box_is_not_torchs_default():
    """Nothing learnt: the first step moves the steepest component by FIRST_STEP of the box, where torch's
    min(1, 1/|g|₁) barely moves an image of many pixels."""
    target = torch.zeros((1, 3, 16, 16))
    start = torch.full_like(target, 0.5)
    seen: list[torch.Tensor] = []
    minimise(quadratic(target, torch.ones_like(target)), start, 2, "lbfgs",
             on_evaluation=lambda n, x, t: seen.append(x.clone()), settings=optimize.ENGINE)
    moved = float((seen[1] - seen[0]).abs().max())
    gradient = start - target
    torchs = min(1.0, 1.0 / float(gradient.abs().sum())) * float(gradient.abs().max())
    assert moved == pytest.approx(FIRST_STEP)
    assert moved > 100 * torchs


def test_no_step_leaves_the_trust_region():
    target = torch.zeros((1, 3, 16, 16))
    target[0, 0, 0, 0] = 1e4  # a minimum far outside the box in one component
    seen: list[torch.Tensor] = []
    minimise(quadratic(target, torch.ones_like(target)), torch.full_like(target, 0.5), 6, "lbfgs",
             on_evaluation=lambda n, x, t: seen.append(x.clone()), settings=optimize.ENGINE)
    assert all(float((b - a).abs().max()) <= MAX_STEP + 1e-6 for a, b in itertools.pairwise(seen))
    assert float(seen[-1][0, 0, 0, 0]) == 1.0


def test_a_carried_step_is_quasi_newton_from_the_first_evaluation():
    """With a γ learnt at the last scale (rescaled for the pixels) the first step is −γ·g, not 1/|g|₁."""
    target, scale = torch.full((1, 3, 8, 8), 0.65), torch.full((1, 3, 8, 8), 4.0)
    start = torch.full_like(target, 0.5)
    learnt = Learnt(gamma=0.25 / 4, pixels=16)  # γ = 1/curvature, learnt at a quarter of the pixels
    seen: list[torch.Tensor] = []
    outcome = minimise(quadratic(target, scale), start, 2, "lbfgs", carried=learnt, settings=optimize.ENGINE,
                       on_evaluation=lambda n, x, t: seen.append(x.clone()))
    assert torch.allclose(seen[1], target, atol=1e-6)  # one Newton step: the minimum
    assert isinstance(outcome.learnt, Learnt) and outcome.learnt.pixels == 64


def test_learnt_prolongation_keeps_curvature_per_pixel():
    s, y = torch.rand((1, 3, 4, 4)), torch.rand((1, 3, 4, 4))
    bigger = Learnt(gamma=2.0, pixels=16, pairs=[(s, y)]).prolongated((8, 8), keep_pairs=True)
    assert bigger.gamma == 8.0 and bigger.pixels == 64
    (s2, y2), = bigger.pairs
    assert s2.shape == y2.shape == (1, 3, 8, 8)
    assert float((s2 * y2).sum()) == pytest.approx(float((s * y).sum()), rel=0.15)  # sᵀy kept (up to resampling)
    assert Learnt(2.0, 16, [(s, y)]).prolongated((8, 8), keep_pairs=False).pairs == []


def test_each_scale_starts_from_what_the_last_learnt(model, content, style, monkeypatch):
    """stylize hands the coarse scale's γ to the fine one (×4 for twice the side) and keeps the image in the box."""
    calls: list[dict] = []
    real = lbfgs.lbfgs

    def spy(x, closure, evaluations, history, **options):
        def watched() -> float:
            value = closure()
            calls[-1]["low"] = min(calls[-1]["low"], float(x.detach().min()))
            calls[-1]["high"] = max(calls[-1]["high"], float(x.detach().max()))
            return value

        calls.append({"size": tuple(x.shape[-2:]), "learnt": options.get("learnt"), "low": 1.0, "high": 0.0})
        result = real(x, watched, evaluations, history, **options)
        calls[-1]["result"] = result
        return result

    monkeypatch.setattr(optimize, "lbfgs", spy)
    stylize(model, content, [style], FAST.replace(scales=2, iterations=10))
    coarse, fine = calls
    assert coarse["learnt"] is None and fine["learnt"] is not None
    pixels = fine["size"][0] * fine["size"][1] / (coarse["size"][0] * coarse["size"][1])
    assert fine["learnt"].gamma == pytest.approx(coarse["result"].gamma * pixels)
    assert all(c["low"] >= 0.0 and c["high"] <= 1.0 for c in calls)


def test_adam_carries_its_moments_to_the_next_scale(model, content, style, monkeypatch):
    seen: list[AdamMoments | None] = []
    real = optimize._adam
    monkeypatch.setattr(optimize, "_adam", lambda x, c, n, lr, box, moments: (seen.append(moments),
                                                                            real(x, c, n, lr, box, moments))[1])
    stylize(model, content, [style], FAST.replace(scales=2, iterations=10, optimizer="adam"))
    assert seen[0] is None and seen[1] is not None
    assert seen[1].step > 0 and seen[1].exp_avg.shape[-2:] == (40, 48)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_the_reported_loss_is_the_delivered_images(model, content, style, monkeypatch, optimizer):
    """result.loss (and the last progress report) is the loss of result.image, re-evaluated from scratch."""
    params = FAST.replace(iterations=10, optimizer=optimizer, learning_rate=0.05)
    result = stylize(model, content, [style], params)
    again: list[float] = []
    monkeypatch.setattr(transfer, "_start_image", lambda *a, **k: result.image.unsqueeze(0))
    stylize(model, content, [style], params.replace(iterations=1), on_progress=lambda e: again.append(e.loss.total))
    assert result.loss.total == pytest.approx(again[0], rel=1e-5)


def test_optimiser_settings_are_passed_not_module_state(model, content, style, monkeypatch):
    """stylize runs with the settings its caller passes (the engine's by default), and refuses an unknown carry."""
    seen: list[dict] = []
    real = lbfgs.lbfgs
    monkeypatch.setattr(optimize, "lbfgs", lambda *a, **k: (seen.append(k), real(*a, **k))[1])
    stylize(model, content, [style], FAST.replace(scales=2, iterations=6))
    stylize(model, content, [style], FAST.replace(scales=2, iterations=6), optimiser=optimize.PAPER)
    trial = optimize.OptimiserSettings(max_step=0.3, first_step=0.1, carry="pairs")
    stylize(model, content, [style], FAST.replace(scales=2, iterations=6), optimiser=trial)
    engine, paper, trial_calls = seen[0:2], seen[2:4], seen[4:6]
    assert [c["box"] for c in engine] == [(0.0, 1.0)] * 2 and engine[1]["learnt"] is not None
    assert [c["box"] for c in paper] == [None] * 2 and paper[1]["learnt"] is None  # torch's restart
    assert trial_calls[1]["max_step"] == 0.3 and trial_calls[1]["first_step"] == 0.1 and trial_calls[1]["keep_pairs"]
    with pytest.raises(ValueError, match="carry"):
        optimize.OptimiserSettings(carry="moments")  # type: ignore[arg-type]


def test_a_carried_first_step_can_be_capped_by_the_last_scales_last_step():
    """cap_by_last_step: the first carried step moves no component further than the last scale's last step did."""
    target, scale = torch.full((1, 3, 8, 8), 0.9), torch.full((1, 3, 8, 8), 4.0)
    learnt = Learnt(gamma=0.25 / 4, pixels=16, last_step=0.01)  # a Newton step would move every pixel by 0.4
    for settings, moved in ((optimize.ENGINE, 0.4), (optimize.OptimiserSettings(cap_by_last_step=True), 0.01)):
        seen: list[torch.Tensor] = []
        outcome = minimise(quadratic(target, scale), torch.full_like(target, 0.5), 2, "lbfgs", carried=learnt,
                           settings=settings, on_evaluation=lambda n, x, t, _seen=seen: _seen.append(x.clone()))
        assert float((seen[1] - seen[0]).abs().max()) == pytest.approx(min(moved, FIRST_STEP), rel=1e-5)
        assert isinstance(outcome.learnt, Learnt)
    assert outcome.learnt.last_step == pytest.approx(0.01, rel=1e-5)  # recorded for the next scale


@pytest.mark.parametrize("settings, mode", [(optimize.ENGINE, "bicubic"), (optimize.PAPER, "bilinear")])
def test_the_next_scale_starts_from_the_last_result_enlarged_as_the_settings_say(model, content, style, monkeypatch,
                                                                                  settings, mode):
    """The engine enlarges a scale's result bicubically (a smaller jump in loss at the new size, docs/PERFORMANCE.md),
    the paper's setting bilinearly as before; either is clamped into the box."""
    starts: list[torch.Tensor] = []
    real = optimize.minimise
    monkeypatch.setattr(transfer, "minimise", lambda objective, start, *a, **k: (starts.append(start.detach().clone()),
                                                                                 real(objective, start, *a, **k))[1])
    ends: list[torch.Tensor] = []
    real_start = transfer._start_image
    monkeypatch.setattr(transfer, "_start_image", lambda previous, *a, **k: (
        ends.append(previous.detach().clone()) if previous is not None else None, real_start(previous, *a, **k))[1])
    stylize(model, content, [style], FAST.replace(scales=2, iterations=6), optimiser=settings)
    coarse_result, fine_start = ends[-1], starts[1]
    expected = torch.nn.functional.interpolate(coarse_result, size=fine_start.shape[-2:], mode=mode,
                                               align_corners=False).clamp(0, 1)
    assert torch.allclose(fine_start, expected, atol=1e-6)
    other = "bilinear" if mode == "bicubic" else "bicubic"
    assert not torch.allclose(fine_start, torch.nn.functional.interpolate(
        coarse_result, size=fine_start.shape[-2:], mode=other, align_corners=False).clamp(0, 1), atol=1e-6)
    with pytest.raises(ValueError, match="upsampling"):
        optimize.OptimiserSettings(upsampling="nearest")  # type: ignore[arg-type]


def _network_dtypes(model):
    """(input size, dtype of the first convolution's output) for every network pass, and the hook to remove."""
    seen: list[tuple[tuple[int, int], torch.dtype]] = []
    hook = model.conv_layers[0].register_forward_hook(lambda m, i, out: seen.append((tuple(out.shape[-2:]), out.dtype)))
    return seen, hook


@pytest.mark.parametrize("settings, requested, coarse", [
    # the engine's coarse sizes in bf16 where it is native (its output size's first evaluations: the next test)
    (optimize.OptimiserSettings(output_bf16=0), "auto", torch.bfloat16),
    (optimize.PAPER, "auto", torch.float32),  # the paper's setting (today's baseline): float32 throughout
    (optimize.ENGINE, "fp32", torch.float32),  # asked for float32: float32 at every size
])
def test_auto_precision_runs_only_the_coarse_sizes_in_bf16(model, content, style, monkeypatch, settings, requested,
                                                           coarse):
    """Under "auto" the coarse sizes, whose result only starts the next size, run the network in bf16 on a device
    that computes it natively; the output's size (its losses reported, its image delivered) stays float32
    without ``output_bf16``."""
    from neural_style.daemon.engine import device_tuning

    monkeypatch.setattr(device_tuning, "native_bf16", lambda device_type: True)
    seen, hook = _network_dtypes(model)
    try:
        result = stylize(model, content, [style], FAST.replace(scales=2, iterations=6, precision=requested),
                         optimiser=settings)
    finally:
        hook.remove()
    coarse_size, output = [(p.height, p.width) for p in result.plans]
    assert coarse_size != output
    coarse_passes = {dtype for size, dtype in seen if size == coarse_size}  # the content's targets and the image's
    final_passes = {dtype for size, dtype in seen if size == output}
    assert coarse_passes == {coarse} and final_passes == {torch.float32}
    assert math.isfinite(result.loss.total) and result.loss.total > 0  # a float32 loss at the end


@pytest.mark.parametrize("leading, requested, iterations, scales", [
    (2, "auto", 12, 2),  # the output size's first two in bf16, then float32
    (9, "auto", 8, 2),  # more asked than the size has: all but its last
    (2, "fp32", 12, 2),  # an explicit precision holds at every evaluation
    (2, "bf16", 12, 2),
    (2, "auto", 12, 1),  # a single size has no coarse result to move on from: float32 throughout
])
def test_the_output_sizes_first_evaluations_run_in_bf16_and_its_last_in_float32(
        model, content, style, monkeypatch, leading, requested, iterations, scales):
    """``output_bf16``: a coarse-to-fine run's output size runs its first evaluations in bf16 within the same
    L-BFGS run, while its targets and its last evaluation (the reported loss, the delivered image) stay float32;
    a single-size run starts from noise, the content or a warped frame, where bf16 misleads the first steps."""
    from neural_style.daemon.engine import device_tuning

    monkeypatch.setattr(device_tuning, "native_bf16", lambda device_type: True)
    passes: list[tuple[tuple[int, int], torch.dtype, bool]] = []  # (size, dtype, an evaluation's pass)
    hook = model.conv_layers[0].register_forward_hook(
        lambda m, i, out: passes.append((tuple(out.shape[-2:]), out.dtype, torch.is_grad_enabled())))
    try:
        result = stylize(model, content, [style],
                         FAST.replace(precision=requested, scales=scales, iterations=iterations),
                         optimiser=optimize.OptimiserSettings(output_bf16=leading))
    finally:
        hook.remove()
    assert len(result.plans) == scales
    output = (result.plans[-1].height, result.plans[-1].width)
    evaluations = [dtype for size, dtype, grad in passes if size == output and grad]
    n = len(evaluations)
    bf16 = {"auto": min(leading, n - 1) if scales > 1 else 0, "fp32": 0, "bf16": n}[requested]
    assert n - 1 > leading if iterations == 12 else n <= leading  # the case's premise: fewer asked, or more
    assert evaluations == [torch.bfloat16] * bf16 + [torch.float32] * (n - bf16)
    targets = {torch.bfloat16} if requested == "bf16" else {torch.float32}
    assert {dtype for size, dtype, grad in passes if size == output and not grad} == targets
    assert math.isfinite(result.loss.total) and result.loss.total > 0


def test_auto_precision_is_float32_where_bf16_is_not_native(model, content, style, monkeypatch):
    """Without native bf16 (an emulating CPU, or CUDA, where it is not measured) "auto" is float32 at every size."""
    from neural_style.daemon.engine import device_tuning

    monkeypatch.setattr(device_tuning, "native_bf16", lambda device_type: False)
    seen, hook = _network_dtypes(model)
    try:
        stylize(model, content, [style], FAST.replace(scales=2, iterations=4))
    finally:
        hook.remove()
    assert {dtype for _size, dtype in seen} == {torch.float32}


@pytest.mark.parametrize("native", [True, False])
def test_scale_precision_follows_the_request(monkeypatch, native):
    """An explicit precision holds at every size; "auto" is bf16 only at a coarse size with native bf16, which the
    time-left estimate weighs by its measured cost."""
    from neural_style.daemon.engine import device_tuning

    assert device_tuning.native_bf16("cuda") is False  # not measured against TF32 there: float32 with TF32
    monkeypatch.setattr(device_tuning, "native_bf16", lambda device_type: native)
    cpu = torch.device("cpu")
    for requested in ("fp32", "fp16", "bf16"):
        assert {device_tuning.scale_precision(requested, cpu, final=f) for f in (True, False)} == {requested}
    assert device_tuning.scale_precision("auto", cpu, final=True) == "fp32"
    assert device_tuning.scale_precision("auto", cpu, final=False) == ("bf16" if native else "fp32")
    assert device_tuning.scale_precision("auto", cpu, final=False, coarse_bf16=False) == "fp32"
    # the output size's leading bf16 evaluations: a coarse-to-fine run's only, all but its last at the most
    assert device_tuning.leading_bf16("auto", cpu, 4, [20, 10]) == ([0, 4] if native else [0, 0])
    assert device_tuning.leading_bf16("auto", cpu, 4, [16, 9, 3]) == ([0, 0, 2] if native else [0, 0, 0])
    assert device_tuning.leading_bf16("auto", cpu, 4, [30]) == [0]
    assert device_tuning.leading_bf16("bf16", cpu, 4, [20, 10]) == [0, 0]  # bf16 at every evaluation already
    assert device_tuning.relative_cost("bf16", cpu) == (device_tuning.BF16_CPU_COST if native else 1.0)
    assert device_tuning.relative_cost("fp32", cpu) == 1.0

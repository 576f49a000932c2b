"""TF32 convolutions, emulated on the CPU: what they change in the paper's loss, its gradient and a short run.

Ampere and newer GPUs run float32 convolutions in TF32 (``device_tuning.py`` allows it): each input
and weight is rounded to a 10-bit mantissa and the products summed in float32. Here every VGG19
convolution does that by hand (its inputs and weights rounded to the nearest TF32 value, forward and,
for the gradient, the incoming gradient too), beside the plain float32 network, in one process:

- one evaluation from the noise start: loss and gradient, relative differences;
- ``--iterations`` of the engine (L-BFGS, its box) from the same start: the losses reached.

    python bench/tf32_emulation_bench.py [--size 256] [--iterations 20] [--style-weight 4e6]
"""
from __future__ import annotations

import argparse
import copy
import platform
import sys
import types
from pathlib import Path

import torch
import torch.nn.functional as F

from neural_style.daemon.engine import StyleParams, random_vgg19, stylize
from neural_style.daemon.engine.imaging import resize
from neural_style.daemon.engine.losses import gram_matrix
from neural_style.daemon.engine.objective import whole_image_objective
from neural_style.daemon.engine.params import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS
from neural_style.daemon.engine.sizes import fit_longest_side
from neural_style.daemon.engine.vgg import VGG19Features
from neural_style.daemon.image_files import load_image

SHARED = Path(__file__).resolve().parents[2] / "shared" / "images"


def tf32(t: torch.Tensor) -> torch.Tensor:
    """Round float32 to TF32's 10-bit mantissa (nearest, ties away from zero), kept as float32."""
    bits = t.contiguous().view(torch.int32)
    return ((bits + 0x1000) & ~0x1FFF).view(torch.float32).view_as(t)


class _Tf32Conv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, padding):  # type: ignore[override]
        ctx.save_for_backward(weight)
        ctx.shape, ctx.padding = x.shape, padding
        return F.conv2d(tf32(x), tf32(weight), bias, padding=padding)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        (weight,) = ctx.saved_tensors
        grad_input = torch.nn.grad.conv2d_input(ctx.shape, tf32(weight), tf32(grad.contiguous()), padding=ctx.padding)
        return grad_input, None, None, None


def tf32_network(model: VGG19Features) -> VGG19Features:
    emulated = copy.deepcopy(model)
    for conv in emulated.conv_layers:
        conv.forward = types.MethodType(lambda self, x: _Tf32Conv.apply(x, self.weight, self.bias, self.padding), conv)
    return emulated


def evaluate(model: VGG19Features, content: torch.Tensor, style: torch.Tensor, x: torch.Tensor,
             style_weight: float) -> tuple[float, torch.Tensor]:
    """The paper's loss and its gradient at ``x``, the targets too computed by ``model``."""
    size = tuple(x.shape[-2:])
    with torch.no_grad():
        grams = {k: gram_matrix(v) for k, v in model(resize(style, size)[None], DEFAULT_STYLE_LAYERS).items()}
        targets = dict(model(resize(content, size)[None], DEFAULT_CONTENT_LAYERS))
    objective = whole_image_objective(model, style_targets=grams, content_targets=targets, style_weight=style_weight,
                                      layer_weights=dict.fromkeys(DEFAULT_STYLE_LAYERS, 1 / len(DEFAULT_STYLE_LAYERS)))
    leaf = x.clone().requires_grad_(True)
    total, _ = objective(leaf)
    torch.autograd.backward(total)
    assert leaf.grad is not None
    return float(total.detach()), leaf.grad


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--style-weight", type=float, default=4e6)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    content, style = load_image(SHARED / "tubingen.jpg"), load_image(SHARED / "starry_night.jpg")
    networks = {"float32": random_vgg19(0)}
    networks["TF32 convolutions (emulated)"] = tf32_network(networks["float32"])
    params = StyleParams(size=args.size, style_weight=args.style_weight, progress_every=1, scales=1)
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads;"
          f" {args.size} px, β {args.style_weight:g}, random weights")
    first: dict[str, tuple[float, torch.Tensor]] = {}
    runs: dict[str, list[float]] = {}
    x = 0.5 + 0.1 * torch.randn((1, 3, *fit_longest_side(*content.shape[-2:], args.size)),
                                generator=torch.Generator().manual_seed(0))
    for name, model in networks.items():
        first[name] = evaluate(model, content, style, x, args.style_weight)
        losses: list[float] = []
        stylize(model, content, [style], params.replace(iterations=args.iterations),
                on_progress=lambda e, _l=losses: _l.append(e.loss.total))
        runs[name] = losses
        print(f"  {name}: loss at the start {first[name][0]:.8g}, after {args.iterations} {losses[-1]:.6g}", flush=True)
    (loss32, grad32), (loss_tf, grad_tf) = first.values()
    gradient_difference = float((grad_tf - grad32).norm() / grad32.norm())
    marks = sorted({1, args.iterations // 2, args.iterations})
    print("\n| network | loss at the noise start | gradient, relative difference (L2) | " +
          " | ".join(f"loss after {m}" for m in marks) + " |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in marks) + " |")
    for name, losses in runs.items():
        diff = "—" if name == "float32" else f"{gradient_difference:.2e}"
        print(f"| {name} | {first[name][0]:.8g} | {diff} | " + " | ".join(f"{losses[m - 1]:.6g}" for m in marks) + " |")
    print(f"\nloss at the start, relative difference: {abs(loss_tf - loss32) / loss32:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

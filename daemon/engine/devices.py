"""The devices a run can ask for, by name: torch-free, so that ``--help`` and request checks need no torch.

``weights.resolve_device`` turns a name into a ``torch.device``: ``auto`` is CUDA, then Apple's MPS,
then the CPU. AMD GPUs under a ROCm build of torch present themselves as ``cuda``.
"""
from __future__ import annotations

#: What --device accepts; "cuda:N" picks one GPU.
DEVICE_CHOICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")
DEVICE_HELP = ("auto (CUDA, then Apple MPS, then the CPU), cpu, cuda (also AMD GPUs under a ROCm build of "
               "torch; cuda:N picks one) or mps")

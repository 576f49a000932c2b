"""Shared fixtures: seeded random VGG19 weights (never downloaded), tiny images, the shared real images."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

SHARED_IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "images"


@pytest.fixture(scope="session")
def model():
    from neural_style.daemon.engine import random_vgg19

    return random_vgg19(seed=0)


@pytest.fixture(scope="session")
def torchvision_weights_file(tmp_path_factory) -> Path:
    """A random VGG19 state dict in torchvision's own layout, written by torchvision itself."""
    import torchvision

    torch.manual_seed(1234)
    path = tmp_path_factory.mktemp("weights") / "vgg19-random.pth"
    torch.save(torchvision.models.vgg19(weights=None).state_dict(), path)
    return path


def smooth_image(height: int, width: int, seed: int = 0, channels: int = 3) -> torch.Tensor:
    """A photo-like (smooth, not white-noise) image in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand((1, channels, max(2, height // 8), max(2, width // 8)), generator=generator)
    return torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)[0]


@pytest.fixture
def content() -> torch.Tensor:
    return smooth_image(40, 48, seed=1)


@pytest.fixture
def style() -> torch.Tensor:
    return smooth_image(36, 36, seed=2)


@pytest.fixture(scope="session")
def shared_images() -> Path:
    if not (SHARED_IMAGES / "tubingen.jpg").exists():
        pytest.skip(f"the shared test images are not at {SHARED_IMAGES}")
    return SHARED_IMAGES


@pytest.fixture
def full_history_only(monkeypatch):
    """The planner without shorter L-BFGS histories: it would otherwise run these small budgets on the whole
    image with a history of 10 (its first choice over blocks), and these tests compare paths, not histories."""
    from neural_style.daemon.engine import memory_plan as memory_plan_module

    monkeypatch.setattr(memory_plan_module, "HISTORY_FRACTIONS", ())

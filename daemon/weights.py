"""Finding and loading VGG19 weights: a named file, the torchvision cache, or seeded random weights.

Never downloads at run time: ``install.py`` fetches the torchvision file once, on a machine with internet.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from .engine.devices import DEVICE_CHOICES
from .engine.engine_errors import WeightsFormatError
from .engine.vgg import WEIGHT_FORMATS, VGG19Features, random_vgg19
from .local_errors import DeviceUnavailable, WeightsNotFound

log = logging.getLogger(__name__)

TORCHVISION_FILENAME = "vgg19-dcbb9e9d.pth"
TORCHVISION_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
#: neural-style-pt's Caffe conversion, looked for in the same cache when --weights-format caffe is given.
CAFFE_FILENAME = "vgg19-d01eb7cb.pth"
RANDOM = "random"


def hub_checkpoint_path(weights_format: str = "torchvision") -> Path:
    """Where torch.hub (and install.py) keep the file: ``$TORCH_HOME/hub/checkpoints``."""
    filename = CAFFE_FILENAME if weights_format == "caffe" else TORCHVISION_FILENAME
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def missing_weights_message(weights_format: str = "torchvision") -> str:
    return (
        "No VGG19 weights found. Either:\n"
        "  1. pass --weights PATH to a torchvision vgg19 state dict (vgg19-dcbb9e9d.pth), or with\n"
        "     --weights-format caffe the Caffe-converted VGG19 that neural-style-pt uses;\n"
        f"  2. put the file in the torchvision cache: {hub_checkpoint_path(weights_format)};\n"
        "  3. run `python3 install.py` on a machine with internet (it downloads the torchvision file once).\n"
        "For a try-out without the real network, --weights random uses seeded random weights (the results are not art)."
    )



def mps_available() -> bool:
    """Apple's Metal GPU (MPS), where this torch build has the backend and the machine has the GPU."""
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` → CUDA, else Apple MPS, else CPU. An explicit ``cuda`` or ``mps`` that is absent is an
    error, not a silent fallback: the user asked for that device."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if mps_available() else "cpu")
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceUnavailable(
                f"--device {device} was asked for, but PyTorch sees no CUDA GPU here (use --device cpu or auto)")
        return torch.device(device)
    if device == "mps":
        if not mps_available():
            raise DeviceUnavailable(
                "--device mps was asked for, but PyTorch sees no Apple GPU (MPS) here (use --device cpu or auto)")
        return torch.device("mps")
    if device == "cpu":
        return torch.device("cpu")
    raise DeviceUnavailable(f"unknown device {device!r}: use {', '.join(DEVICE_CHOICES)} (or cuda:N)")


def load_model(
    weights: str | Path | None = None,
    weights_format: str = "torchvision",
    device: str = "auto",
    seed: int = 0,
) -> VGG19Features:
    """The VGG19 feature network, on ``device``, from the first of: ``weights``, the cache, nothing (an error)."""
    if weights_format not in WEIGHT_FORMATS:
        raise WeightsNotFound(f"unknown weights format {weights_format!r}: use {' or '.join(WEIGHT_FORMATS)}")
    target = resolve_device(device)
    if weights is not None and str(weights) == RANDOM:
        model = random_vgg19(seed, weights_format)
        log.warning("using %s: outputs are for testing only", model.description)
        return model.to(target)
    path = Path(weights).expanduser() if weights is not None else hub_checkpoint_path(weights_format)
    if not path.is_file():
        if weights is not None:
            raise WeightsNotFound(f"weights file not found: {path}\n\n" + missing_weights_message(weights_format))
        raise WeightsNotFound(missing_weights_message(weights_format))
    model = VGG19Features(weights_format, description=f"{weights_format} VGG19 from {path}")
    model.load_vgg_state_dict(_read_state_dict(path))
    log.info("loaded %s", model.description)
    return model.to(target)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """torch.load with weights_only: a weights file is data, never code to unpickle."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for corrupt or foreign files
        raise WeightsFormatError(f"{path} is not a readable PyTorch weights file "
                                 f"({type(error).__name__}: {error})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsFormatError(f"{path} holds a {type(state).__name__}, not a state dict")
    return state

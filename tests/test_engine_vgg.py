"""VGG19 structure, layer names, truncation, and weight loading from real (random) files."""
from __future__ import annotations

import pytest
import torch
import torchvision

from neural_style.daemon.engine import LAYER_NAMES, VGG19Features, WeightsFormatError
from neural_style.daemon.weights import WeightsNotFound, hub_checkpoint_path, load_model


def test_layer_names_are_the_papers_and_line_up_with_torchvision():
    features = torchvision.models.vgg19(weights=None).features
    assert len(LAYER_NAMES) == len(features) == 37
    for name, module in zip(LAYER_NAMES, features):
        expected = {"conv": torch.nn.Conv2d, "relu": torch.nn.ReLU, "pool": torch.nn.MaxPool2d}[name[:4]]
        assert isinstance(module, expected), name
    assert sum(n.startswith("conv") for n in LAYER_NAMES) == 16
    assert sum(n.startswith("pool") for n in LAYER_NAMES) == 5


def test_loaded_file_gives_torchvisions_activations(torchvision_weights_file):
    """Same weights, same input, max pooling: our features equal torchvision's own network's."""
    ours = load_model(torchvision_weights_file, device="cpu")
    reference = torchvision.models.vgg19(weights=None)
    reference.load_state_dict(torch.load(torchvision_weights_file, weights_only=True))
    image = torch.rand((1, 3, 64, 64), generator=torch.Generator().manual_seed(0))
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    normalised = (image - mean) / std
    with torch.no_grad():
        expected = reference.features[:30](normalised)  # up to relu5_1
        got = ours(image, ["relu5_1"], pooling="max")["relu5_1"]
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_features_only_state_dict_loads_too(torchvision_weights_file, tmp_path):
    full = torch.load(torchvision_weights_file, weights_only=True)
    features_only = {k.removeprefix("features."): v for k, v in full.items() if k.startswith("features.")}
    path = tmp_path / "features.pth"
    torch.save(features_only, path)
    a, b = load_model(torchvision_weights_file, device="cpu"), load_model(path, device="cpu")
    assert all(torch.equal(x.weight, y.weight) for x, y in zip(a.convs, b.convs))


def test_average_pooling_is_the_default_and_differs_from_max(model):
    image = torch.rand((1, 3, 32, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        default = model(image, ["relu2_1"])["relu2_1"]
        average = model(image, ["relu2_1"], pooling="avg")["relu2_1"]
        maximum = model(image, ["relu2_1"], pooling="max")["relu2_1"]
    assert torch.equal(default, average)
    assert not torch.allclose(average, maximum)


def test_network_stops_at_the_deepest_requested_layer(model):
    calls = []
    hooks = [conv.register_forward_hook(lambda *_, i=i: calls.append(i)) for i, conv in enumerate(model.convs)]
    try:
        with torch.no_grad():
            out = model(torch.rand((1, 3, 32, 32)), ["relu1_1", "conv2_1"])
    finally:
        for hook in hooks:
            hook.remove()
    assert set(out) == {"relu1_1", "conv2_1"}
    assert calls == [0, 1, 2]  # conv1_1, conv1_2, conv2_1 and nothing deeper
    assert (out["conv2_1"] < 0).any(), "a requested conv output is the pre-activation, not the ReLU"


def test_caffe_format_feeds_bgr_0_255_mean_subtracted():
    model = VGG19Features("caffe")
    pixel = torch.tensor([1.0, 0.5, 0.0]).view(1, 3, 1, 1)  # RGB
    expected = torch.tensor([0 - 103.939, 127.5 - 116.779, 255 - 123.68]).view(1, 3, 1, 1)  # BGR
    assert torch.allclose(model.normalize(pixel), expected, atol=1e-3)


def test_missing_file_names_the_ways_to_get_weights(tmp_path):
    with pytest.raises(WeightsNotFound) as error:
        load_model(tmp_path / "nope.pth", device="cpu")
    text = str(error.value)
    assert "--weights" in text and "install.py" in text and "cache" in text


def test_no_weights_anywhere_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert str(hub_checkpoint_path()).startswith(str(tmp_path))
    with pytest.raises(WeightsNotFound, match="No VGG19 weights found"):
        load_model(None, device="cpu")


def test_cached_file_is_found_without_arguments(tmp_path, monkeypatch, torchvision_weights_file):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    hub_checkpoint_path().parent.mkdir(parents=True)
    hub_checkpoint_path().write_bytes(torchvision_weights_file.read_bytes())
    assert "torchvision VGG19 from" in load_model(None, device="cpu").description


def test_corrupt_and_foreign_files_are_refused(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsFormatError):
        load_model(junk, device="cpu")
    wrong = tmp_path / "resnet.pth"
    torch.save({"features.0.weight": torch.zeros(8, 3, 3, 3)}, wrong)
    with pytest.raises(WeightsFormatError, match="shape"):
        load_model(wrong, device="cpu")


def test_random_weights_say_so_and_are_seeded():
    a, b = load_model("random", device="cpu", seed=3), load_model("random", device="cpu", seed=3)
    assert "random" in a.description and "NOT a trained network" in a.description
    assert torch.equal(a.convs[5].weight, b.convs[5].weight)
    assert not torch.equal(a.convs[5].weight, load_model("random", device="cpu", seed=4).convs[5].weight)


def test_caffe_weights_file_loads_with_its_own_normalisation(torchvision_weights_file):
    model = load_model(torchvision_weights_file, weights_format="caffe", device="cpu")
    assert model.weights_format == "caffe" and "caffe" in model.description


def test_asking_for_a_missing_gpu_is_an_error_not_a_fallback():
    from neural_style.daemon.weights import DeviceUnavailable, resolve_device

    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(DeviceUnavailable, match="no CUDA GPU"):
            resolve_device("cuda")
    with pytest.raises(DeviceUnavailable, match="unknown device"):
        resolve_device("tpu")

"""The neural-style command as a user runs it: real processes, real files, one message per mistake."""
from __future__ import annotations

import argparse
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import smooth_image
from PIL import Image

from neural_style.daemon.image_files import save_image

CLI = [sys.executable, "-m", "neural_style.daemon.cli"]


def neural_style(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("images")
    paths = {"content": folder / "content.png", "style": folder / "style.png", "rgba": folder / "rgba.png"}
    save_image(smooth_image(40, 56, seed=1), paths["content"])
    save_image(smooth_image(48, 48, seed=2), paths["style"])
    save_image(smooth_image(40, 56, seed=3, channels=4), paths["rgba"])
    (folder / "notes.txt").write_text("not an image")
    paths["text"] = folder / "notes.txt"
    return paths


def test_stylize_local_on_the_papers_images(shared_images, tmp_path):
    out = tmp_path / "out.png"
    done = neural_style("stylize", shared_images / "tubingen.jpg", shared_images / "starry_night.jpg", "-o", out,
                        "--local", "--weights", "random", "--size", "64", "--iterations", "6")
    assert done.returncode == 0, done.stderr
    with Image.open(out) as image:
        assert max(image.size) == 64
        assert "random" in image.text["NeuralStyle-Weights"]  # outputs made with random weights say so
    assert "random VGG19 weights" in done.stderr
    assert "iteration 6/6" in done.stderr  # plain progress lines when not a terminal


def test_alpha_survives_the_command_line(images, tmp_path):
    out = tmp_path / "out.png"
    done = neural_style("stylize", images["rgba"], images["style"], "-o", out, "--local", "--weights", "random",
                        "--iterations", "2", "--preserve-color", "--scales", "2", "--optimizer", "adam")
    assert done.returncode == 0, done.stderr
    with Image.open(out) as result, Image.open(images["rgba"]) as source:
        assert result.mode == "RGBA"
        assert result.getchannel("A").tobytes() == source.getchannel("A").tobytes()


def test_native_size_with_a_memory_cap_shows_the_plan_and_the_scales(images, tmp_path):
    """--native: the content's own size (56×40 here, above --size's meaning of nothing); --scales 2 runs
    coarse to fine with the scale in the progress lines; the plan is logged before the first iteration."""
    out = tmp_path / "out.png"
    done = neural_style("stylize", images["content"], images["style"], "-o", out, "--local", "--weights", "random",
                        "--native", "--iterations", "4", "--scales", "2", "--max-memory", "16G",
                        "--progress-every", "1")
    assert done.returncode == 0, done.stderr
    with Image.open(out) as image:
        assert image.size == (56, 40)
    assert "plan: 2 scales: 28×20" in done.stderr and "→ 56×40" in done.stderr
    assert "max_memory 16.00 GiB" in done.stderr or "available RAM" in done.stderr  # whichever is smaller
    assert "scale 1/2" in done.stderr and "iteration 4/4 scale 2/2" in done.stderr and "left" in done.stderr
    assert done.stderr.index("plan: ") < done.stderr.index("iteration 1/4")
    if sys.platform == "linux" and platform.libc_ver()[0] == "glibc":  # heap_threshold.py: the budget is RSS
        assert "mmap threshold pinned at 128 KiB" in done.stderr


def test_reconstruct_content_and_texture(images, tmp_path):
    content_out, texture_out = tmp_path / "content.png", tmp_path / "texture.png"
    first = neural_style("reconstruct", "--content", images["content"], "--content-layers", "relu3_1",
                         "-o", content_out,
                         "--weights", "random", "--iterations", "3")
    second = neural_style("reconstruct", "--style", images["style"], "--style-layers", "relu1_1,relu2_1",
                          "-o", texture_out,
                          "--weights", "random", "--iterations", "3", "--width", "40", "--height", "24")
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    with Image.open(texture_out) as texture:
        assert texture.size == (40, 24)


def test_figures_sheet(images, tmp_path):
    out = tmp_path / "sheet.png"
    done = neural_style("figures", images["content"], images["style"], "-o", out, "--weights", "random",
                        "--iterations", "1", "--size", "24")
    assert done.returncode == 0, done.stderr
    with Image.open(out) as sheet:
        assert sheet.width > 5 * 24 and sheet.height > 7 * 24  # 5 columns; inputs, 2 Fig. 1 rows, 4 Fig. 3 rows


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["stylize", "{missing}", "{style}"], "no such file"),
        (["stylize", "{text}", "{style}"], "not an image"),
        (["stylize", "{content}", "{style}", "--content-layers", "relu9_9"], "unknown layer"),
        (["stylize", "{content}", "{style}", "--style-weight", "-1"], "style_weight"),
        (["stylize", "{content}", "{style}", "--iterations", "0"], "iterations"),
        (["stylize", "{content}", "{style}", "--scales", "9"], "scales"),
        (["stylize", "{content}", "{style}", "--content-weight", "1e40"], "content_weight"),
        (["stylize", "{content}", "{style}", "--style-blend", "1,2"], "style_blend has 2 weights for 1 style"),
    ],
)
def test_bad_input_gets_one_message_and_exit_2(images, tmp_path, arguments, message):
    filled = [a.format(missing=tmp_path / "missing.jpg", **{k: str(v) for k, v in images.items()}) for a in arguments]
    budget = [] if "--iterations" in filled else ["--iterations", "2"]
    done = neural_style(*filled, "-o", tmp_path / "o.png", "--local", "--weights", "random", *budget)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "o.png").exists()


def test_missing_weights_exit_3_with_the_three_ways(images, tmp_path):
    env = {**__import__("os").environ, "TORCH_HOME": str(tmp_path / "empty")}
    done = neural_style("stylize", images["content"], images["style"], "-o", tmp_path / "o.png", "--local", env=env)
    assert done.returncode == 3
    assert "No VGG19 weights found" in done.stderr and "install.py" in done.stderr
    assert "Traceback" not in done.stderr


def test_unwritable_output_folder(images, tmp_path):
    done = neural_style("stylize", images["content"], images["style"], "-o", tmp_path / "no" / "such" / "o.png",
                        "--local", "--weights", "random")
    assert done.returncode == 2 and "does not exist" in done.stderr


def test_missing_gpu_is_a_usage_error(images, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    done = neural_style("stylize", images["content"], images["style"], "-o", tmp_path / "o.png", "--local",
                        "--weights", "random", "--device", "cuda")
    assert done.returncode == 2 and "no CUDA GPU" in done.stderr


def test_the_daemon_path_of_the_command_never_imports_torch():
    """A client of the warm daemon should start in a blink: parsing, parameters, the client and the
    result file need no torch (the engine's names load on first use)."""
    code = (
        "import sys\n"
        "import neural_style.daemon.cli as cli\n"
        "cli.build_parser()\n"
        "import neural_style.daemon.remote, neural_style.daemon.png_output, neural_style.daemon.local_errors\n"
        "from neural_style.daemon.engine import StyleParams, ParamError, Cancelled\n"
        "from neural_style.daemon.engine.engine_errors import WeightsFormatError\n"
        "cli.params_from_args(cli.build_parser().parse_args(['stylize', 'a', 'b', '-o', 'c']))\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print('light')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "light", done.stderr


def test_the_options_are_derived_from_the_parameter_schema(capsys):
    """Every parameter is an option of the same name, type, choices and default (shown in --help);
    texture-only ones belong to reconstruct; what the user gave becomes the StyleParams."""
    from neural_style.daemon import cli
    from neural_style.daemon.engine.params import PARAM_SPECS, STYLE_BLEND, StyleParams

    helps = {}
    for command in ("stylize", "reconstruct"):
        with pytest.raises(SystemExit):
            cli.build_parser().parse_args([command, "--help"])
        helps[command] = " ".join(capsys.readouterr().out.split())
    def offers(command: str, option: str) -> bool:
        return re.search(re.escape(option) + r"(?![\w-])", helps[command]) is not None  # --preview ≠ --preview-size

    for spec in (*PARAM_SPECS.values(), STYLE_BLEND):
        option = "--" + spec.name.replace("_", "-")
        if not spec.cli:
            assert not offers("stylize", option) and not offers("reconstruct", option)
            continue
        assert offers("stylize", option) is not spec.texture_only, option
        assert offers("reconstruct", option), option
        assert f"(default: {spec.default_text()})" in helps["reconstruct"], option
        if spec.zero_means:
            assert f"0: {spec.zero_means}" in helps["stylize"], option
    assert "{lbfgs,adam}" in helps["stylize"]

    args = cli.build_parser().parse_args(
        ["stylize", "c.png", "s.png", "-o", "o.png", "--iterations", "7", "--style-layers", "relu1_1,relu2_1",
         "--style-layer-weights", "1,2", "--preserve-color", "--optimizer", "adam", "--style-blend", "3"])
    assert cli.params_from_args(args) == StyleParams(iterations=7, style_layers=("relu1_1", "relu2_1"),
                                                     style_layer_weights=(1.0, 2.0), preserve_color=True,
                                                     optimizer="adam")
    assert args.style_blend == (3.0,)
    for given, size in ((["--native"], 0), (["--size", "0"], 0), (["--size", "300"], 300)):
        args = cli.build_parser().parse_args(["stylize", "c.png", "s.png", "-o", "o.png", *given])
        assert cli.params_from_args(args).size == size
    for text, mebibytes in (("2G", 2048), ("512M", 512), ("1.5GiB", 1536), ("300", 300), ("0", 0)):
        args = cli.build_parser().parse_args(["stylize", "c.png", "s.png", "-o", "o.png", "--max-memory", text])
        assert cli.params_from_args(args).max_memory == mebibytes, text
    for wrong in ("2X", "lots", "-1G"):
        with pytest.raises(SystemExit):
            cli.build_parser().parse_args(["stylize", "c.png", "s.png", "-o", "o.png", "--max-memory", wrong])
    assert "expected a memory size" in capsys.readouterr().err
    assert "auto|cpu|cuda|mps" in helps["stylize"] and "ROCm" in helps["stylize"]
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["stylize", "c.png", "s.png", "-o", "o.png", "--width", "40"])
    capsys.readouterr()


def test_the_daemon_path_checks_the_blend_before_connecting(images, tmp_path, capsys):
    import argparse

    from neural_style.daemon import remote
    from neural_style.daemon.engine import StyleParams

    args = argparse.Namespace(endpoint="tcp://127.0.0.1:9", no_autostart=True)  # nothing listens there
    code = remote.stylize_with_daemon(args, images["content"], [images["style"]], StyleParams(), tmp_path / "o.png",
                          style_blend=(-1.0,))
    assert code == 2
    assert "style_blend[0]" in capsys.readouterr().err


def test_the_daemon_path_sends_native_size_memory_and_preview_size():
    """What the remote path puts in a request's params: the options that differ from the schema's defaults."""
    from neural_style.daemon import cli
    from neural_style.daemon.remote import request_params

    args = cli.build_parser().parse_args(["stylize", "c.png", "s.png", "-o", "o.png", "--native", "--max-memory", "2G",
                                          "--preview-size", "64"])
    assert request_params(cli.params_from_args(args)) == {"size": 0, "max_memory": 2048, "preview_size": 64}


def test_serve_takes_a_memory_budget_and_a_preview_cap():
    from neural_style.daemon import cli
    from neural_style.daemon.server.main import config_from_args

    def limits(*given: str):
        return config_from_args(cli.build_parser().parse_args(["serve", *given])).limits

    assert (limits().max_memory, limits().max_preview_size) == (0, 2048)  # the device's memory; previews ≤ 2048 px
    chosen = limits("--max-memory", "8G", "--max-preview-size", "512")
    assert (chosen.max_memory, chosen.max_preview_size) == (8192, 512)
    with pytest.raises(ValueError, match="max_memory"):
        limits("--max-memory", "10M")  # below what any job can run in


def test_the_daemon_path_sends_encoded_files_with_their_size(images):
    """PNG/JPEG bytes go as they are, with their size from the header: the client then allows for the
    full-size result's transfer (protocol/client.py), and the daemon checks that the size is true."""
    from neural_style.daemon.remote import image_for_request

    sent = image_for_request(images["content"])
    assert (sent.encoding, sent.width, sent.height) == ("png", 56, 40)
    assert bytes(sent.data) == images["content"].read_bytes()


def test_python_m_server_is_neural_style_serve():
    """One declaration of serve's options: the module's parser offers exactly the subcommand's, model included."""
    from neural_style.daemon import cli
    from neural_style.daemon.engine.vgg import WEIGHT_FORMATS
    from neural_style.daemon.options import WEIGHT_FORMATS as OFFERED
    from neural_style.daemon.server.__main__ import build_parser

    def options(parser) -> set[str]:
        return {flag for action in parser._actions for flag in action.option_strings}

    serve = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices["serve"]
    assert options(build_parser()) == options(serve)
    assert {"--weights", "--weights-format", "--device", "--max-message-mb", "--max-memory"} <= options(serve)
    assert build_parser().parse_args(["--device", "mps"]).device == "mps"  # the stale copy knew no mps
    assert OFFERED == WEIGHT_FORMATS

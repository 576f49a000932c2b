"""``neural-style stylize --style-mask … --preserve-color [MODE]`` (issue 17) as a user runs it: real processes,
real files, in-process (``--local``) and through a real daemon; one message per mistake."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import smooth_image
from PIL import Image
from server_fixtures import shared_daemon

from neural_style.daemon.image_files import save_image

CLI = [sys.executable, "-m", "neural_style.daemon.cli"]
FAST = ["--weights", "random", "--size", "56", "--iterations", "3", "--content-layers", "relu2_1",
        "--style-layers", "relu1_1,relu2_1"]
STRONG = [*FAST, "--iterations", "10", "--style-weight", "1e5"]  # enough for the styles to show


def neural_style(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("regions")
    paths = {name: folder / f"{name}.png" for name in ("content", "style_a", "style_b", "left", "right", "black",
                                                       "small")}
    save_image(smooth_image(40, 56, seed=1), paths["content"])
    save_image(smooth_image(48, 48, seed=2), paths["style_a"])
    save_image(smooth_image(48, 48, seed=3), paths["style_b"])
    left = np.zeros((40, 56), np.uint8)
    left[:, :28] = 255
    Image.fromarray(left).save(paths["left"])
    Image.fromarray(255 - left).save(paths["right"])
    Image.fromarray(np.zeros((40, 56), np.uint8)).save(paths["black"])
    Image.fromarray(left[:20]).save(paths["small"])
    top = np.zeros((48, 48), np.uint8)
    top[:24] = 255
    paths["top"] = folder / "top.png"
    Image.fromarray(top).save(paths["top"])
    return paths


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_the_options_parse_in_the_order_of_the_styles() -> None:
    from neural_style.daemon import cli

    parser = cli.build_parser()
    args = parser.parse_args(["stylize", "c.png", "a.png", "b.png", "c.png", "-o", "o.png", "--style-mask", "sky.png",
                              "--style-mask", "-", "--style-mask", "none", "--style-source-mask", "top.png",
                              "--preserve-color"])
    assert args.style_masks == [Path("sky.png"), None, None] and args.style_source_masks == [Path("top.png")]
    assert cli.params_from_args(args).preserve_color == "luminance"  # the bare flag, as before
    for words, mode in ((["--preserve-color", "histogram"], "histogram"), (["--preserve-color", "off"], "off"),
                        ([], "off")):
        given = parser.parse_args(["stylize", "c.png", "a.png", "-o", "o.png", *words])
        assert given.style_masks is None and cli.params_from_args(given).preserve_color == mode
    with pytest.raises(SystemExit):
        parser.parse_args(["stylize", "c.png", "a.png", "-o", "o.png", "--preserve-color", "sepia"])
    # the bare flag before the photos, as it was written when it was a flag: the photo is not its value
    before = parser.parse_args(cli.bare_flags(["stylize", "--preserve-color", "c.png", "a.png", "-o", "o.png"]))
    assert before.content == Path("c.png") and cli.params_from_args(before).preserve_color == "luminance"
    assert cli.bare_flags(["--preserve-color", "histogram", "c.png"]) == ["--preserve-color", "histogram", "c.png"]


def test_two_styles_meet_along_the_masks_locally(files, tmp_path) -> None:
    """Left half in style A, right half in style B (the bare --preserve-color still runs beside them)."""
    masked, plain = tmp_path / "masked.png", tmp_path / "plain.png"
    done = neural_style("stylize", files["content"], files["style_a"], files["style_b"], "-o", masked, "--local",
                        *STRONG, "--style-mask", files["left"], "--style-mask", files["right"])
    assert done.returncode == 0, done.stderr
    again = neural_style("stylize", files["content"], files["style_a"], files["style_b"], "-o", plain, "--local",
                         *STRONG)
    assert again.returncode == 0, again.stderr
    assert _pixels(masked).shape == (40, 56, 3)
    assert np.abs(_pixels(masked) - _pixels(plain)).mean() > 3.0, "the masks changed nothing"
    colour = neural_style("stylize", files["content"], files["style_a"], "-o", tmp_path / "lum.png", "--local",
                          *FAST, "--preserve-color")
    assert colour.returncode == 0, colour.stderr


@pytest.mark.parametrize("mask, words", [
    ("small", "style_masks[0] is 56x20; it must have the content's size, 56x40"),
    ("black", "style_masks[0] is all black"),
])
def test_a_bad_mask_is_one_message_and_exit_2_locally(files, tmp_path, mask, words) -> None:
    done = neural_style("stylize", files["content"], files["style_a"], "-o", tmp_path / "o.png", "--local", *FAST,
                        "--style-mask", files[mask])
    assert done.returncode == 2, done.stderr
    assert words in done.stderr and "Traceback" not in done.stderr


def test_a_missing_mask_file_is_refused_before_any_work(files, tmp_path) -> None:
    done = neural_style("stylize", files["content"], files["style_a"], "-o", tmp_path / "o.png", *FAST,
                        "--style-mask", tmp_path / "nowhere.png", "--no-autostart")
    assert done.returncode == 2 and "no such file" in done.stderr


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    return shared_daemon(tmp_path_factory)


def test_masks_and_histogram_colour_through_the_daemon(files, tmp_path, daemon) -> None:
    """The same command through a real daemon: the masks travel as request frames (PNG as it is), the
    result is the in-process one; a mask of the wrong size is the daemon's refusal, exit 5, with its field."""
    through, local = tmp_path / "daemon.png", tmp_path / "local.png"
    common = [files["content"], files["style_a"], files["style_b"], *FAST, "--style-mask", files["left"],
              "--style-mask", "-", "--preserve-color", "histogram"]
    done = neural_style("stylize", *common, "-o", through, "--endpoint", daemon.endpoint, "--no-autostart")
    assert done.returncode == 0, done.stderr
    ran = neural_style("stylize", *common, "-o", local, "--local")
    assert ran.returncode == 0, ran.stderr
    assert np.abs(_pixels(through) - _pixels(local)).max() <= 2
    refused = neural_style("stylize", files["content"], files["style_a"], "-o", tmp_path / "bad.png", *FAST,
                           "--style-mask", files["small"], "--endpoint", daemon.endpoint, "--no-autostart")
    assert refused.returncode == 5, refused.stderr
    assert "bad_request" in refused.stderr and "style_masks[0]" in refused.stderr


def test_video_refuses_masks_in_one_line(files, tmp_path) -> None:
    """``video`` takes --preserve-color but no masks yet: argparse's one line and exit 2, before any work."""
    done = neural_style("video", tmp_path, files["style_a"], "-o", tmp_path / "out", "--style-mask", files["left"])
    assert done.returncode == 2 and "unrecognized arguments: --style-mask" in done.stderr


def test_a_folder_of_photos_takes_the_same_masks_for_each(files, tmp_path, daemon) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for seed in (4, 5):
        save_image(smooth_image(40, 56, seed=seed), folder / f"photo{seed}.png")
    done = neural_style("stylize", folder, files["style_a"], files["style_b"], "-o", tmp_path / "out", *FAST,
                        "--style-mask", files["left"], "--style-mask", files["right"], "--endpoint", daemon.endpoint,
                        "--no-autostart")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["photo4.png", "photo5.png"]


def test_a_texture_from_part_of_a_style_image(files, tmp_path) -> None:
    """reconstruct --style takes --style-source-mask (no content: no --style-mask to give)."""
    done = neural_style("reconstruct", "--style", files["style_a"], "--style-source-mask", files["top"], "-o",
                        tmp_path / "t.png", "--weights", "random", "--size", "32", "--iterations", "2")
    assert done.returncode == 0, done.stderr
    wrong = neural_style("reconstruct", "--style", files["style_a"], "--style-source-mask", files["left"], "-o",
                         tmp_path / "w.png", "--weights", "random", "--size", "32", "--iterations", "2")
    assert wrong.returncode == 2 and "style_source_masks[0] is 56x40" in wrong.stderr

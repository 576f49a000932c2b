"""The paper's figures as one labelled sheet: Fig. 1 (reconstructions) and Fig. 3 (α/β × style layers).

Fig. 1, content row: the content image reconstructed from relu1_1 … relu5_1 alone; the deeper the layer,
the more the exact pixels are lost while the arrangement stays. Fig. 1, style row: textures synthesised
from the growing subsets {relu1_1}, {relu1_1, relu2_1}, … Fig. 3: stylizations for α/β in
{10⁻⁵, 10⁻⁴, 10⁻³, 10⁻²} (rows) against the same growing style-layer subsets (columns).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .engine.layers import BLOCK_FIRST_CONVS, relu_of
from .engine.params import StyleParams

if TYPE_CHECKING:  # torch and PIL load when a sheet is drawn: the CLI's --help reads FigureSettings
    import torch
    from PIL import ImageDraw, ImageFont

    from .engine.vgg import VGG19Features

RATIOS: tuple[float, ...] = (1e-5, 1e-4, 1e-3, 1e-2)
BLOCK_RELUS: tuple[str, ...] = tuple(relu_of(name) for name in BLOCK_FIRST_CONVS)
LABEL_HEIGHT = 14
GAP = 4


@dataclass(frozen=True)
class FigureSettings:
    iterations: int = 300
    size: int = 256
    seed: int = 0
    optimizer: str = "lbfgs"
    pooling: str = "avg"

    @property
    def cell_count(self) -> int:
        return 2 * len(BLOCK_RELUS) + len(RATIOS) * len(BLOCK_RELUS)

    def base_params(self) -> StyleParams:
        """Every cell's parameters before the cell's own changes (constructing them checks the settings)."""
        return StyleParams(iterations=self.iterations, size=self.size, seed=self.seed, optimizer=self.optimizer,
                           pooling=self.pooling, progress_every=self.iterations)


def growing_subsets() -> list[tuple[str, ...]]:
    """({relu1_1}, {relu1_1, relu2_1}, …, all five): the style columns of Fig. 1 and Fig. 3."""
    return [BLOCK_RELUS[: k + 1] for k in range(len(BLOCK_RELUS))]


def subset_label(layers: tuple[str, ...]) -> str:
    return "conv1_1" if len(layers) == 1 else f"conv1_1-conv{len(layers)}_1"


def render_figure_sheet(
    model: VGG19Features,
    content: torch.Tensor,
    style: torch.Tensor,
    settings: FigureSettings,
    on_cell: Callable[[int, str], None] | None = None,
) -> torch.Tensor:
    """Run every cell and lay them out with labels; returns the sheet as a (3, H, W) tensor."""
    from .engine.imaging import resize, split_alpha
    from .engine.sizes import fit_longest_side
    from .engine.transfer import stylize

    content_rgb = split_alpha(content)[0]
    style_rgb = split_alpha(style)[0]
    height, width = fit_longest_side(content_rgb.shape[-2], content_rgb.shape[-1], settings.size)
    base = settings.base_params()
    cache: dict = {}
    done = 0

    def cell(title: str, content_image: torch.Tensor | None, styles: list[torch.Tensor],
             params: StyleParams) -> tuple[str, torch.Tensor]:
        nonlocal done
        image = stylize(model, content_image, styles, params, target_cache=cache).image
        done += 1
        if on_cell is not None:
            on_cell(done, title)
        return title, image

    rows: list[tuple[str, list[tuple[str, torch.Tensor]]]] = []
    references = [("content", resize(content_rgb, (height, width))), ("style", resize(style_rgb, (height, width)))]
    rows.append(("inputs", references))
    rows.append(("Fig. 1, content reconstruction from one layer", [
        cell(layer.replace("relu", "conv"), content_rgb, [],
             base.replace(content_layers=(layer,), style_layers=(), style_weight=0.0))
        for layer in BLOCK_RELUS
    ]))
    rows.append(("Fig. 1, style reconstruction (texture) from growing layer sets", [
        cell(subset_label(layers), None, [style_rgb],
             base.replace(content_layers=(), style_layers=layers, width=width, height=height))
        for layers in growing_subsets()
    ]))
    for ratio in RATIOS:
        rows.append((f"Fig. 3, alpha/beta = {ratio:.0e}", [
            cell(subset_label(layers), content_rgb, [style_rgb],
                 base.replace(style_layers=layers, content_weight=1.0, style_weight=1.0 / ratio))
            for layers in growing_subsets()
        ]))
    return _compose(rows, (height, width))


def _compose(rows: list[tuple[str, list[tuple[str, torch.Tensor]]]], cell_size: tuple[int, int]) -> torch.Tensor:
    """Grid of cells, each with its own label above it and each row with a heading."""
    import torch
    from PIL import Image, ImageDraw, ImageFont

    from .engine.imaging import resize
    from .image_files import to_pil

    height, width = cell_size
    columns = max(len(cells) for _, cells in rows)
    row_height = LABEL_HEIGHT * 2 + height + GAP
    sheet = Image.new("RGB", (columns * (width + GAP) + GAP, len(rows) * row_height + GAP), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for r, (heading, cells) in enumerate(rows):
        top = GAP + r * row_height
        draw.text((GAP, top), heading, fill="black", font=font)
        for c, (title, image) in enumerate(cells):
            left = GAP + c * (width + GAP)
            draw.text((left, top + LABEL_HEIGHT), _fit(draw, title, font, width), fill="dimgray", font=font)
            sheet.paste(to_pil(resize(image[:3], (height, width))), (left, top + 2 * LABEL_HEIGHT))
    array = torch.frombuffer(bytearray(sheet.tobytes()), dtype=torch.uint8)
    return array.view(sheet.height, sheet.width, 3).permute(2, 0, 1).float() / 255.0


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, width: int) -> str:
    """Shorten a label until it fits its cell, so neighbouring labels never overlap."""
    while text and draw.textlength(text, font=font) > width:
        text = text[:-3] + ".." if len(text) > 3 else ""
    return text

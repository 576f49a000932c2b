"""Tensor image operations the engine needs around the optimisation: resizing, alpha, colour.

Images are float tensors (C, H, W) in [0, 1], sRGB-encoded, C = 3 or 4.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# ITU-R BT.601 luma/chroma (YIQ), as used by Gatys et al. 2016 "Preserving color in neural artistic style transfer".
_RGB_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]]
)
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)


def resize(image: torch.Tensor, size: tuple[int, int], *, growing: str = "bilinear") -> torch.Tensor:
    """Bilinear resize of (C, H, W) or (N, C, H, W), antialiased when shrinking; ``growing`` "bicubic" upsamples
    bicubically (sharper, and may overshoot [0, 1]: the caller clamps)."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    batched = image if image.dim() == 4 else image.unsqueeze(0)
    shrinking = size[0] < batched.shape[-2] or size[1] < batched.shape[-1]
    mode = "bilinear" if shrinking else growing
    out = F.interpolate(batched, size=size, mode=mode, align_corners=False, antialias=shrinking)
    return out if image.dim() == 4 else out.squeeze(0)


def split_alpha(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(rgb, alpha or None): the network sees colour only; alpha is carried past it untouched."""
    if image.shape[0] == 4:
        return image[:3], image[3:4]
    if image.shape[0] == 3:
        return image, None
    raise ValueError(f"images need 3 or 4 channels, got {image.shape[0]}")


def join_alpha(rgb: torch.Tensor, alpha: torch.Tensor | None) -> torch.Tensor:
    """Reattach the source alpha, resized to the result if needed."""
    if alpha is None:
        return rgb
    return torch.cat([rgb, resize(alpha, (rgb.shape[-2], rgb.shape[-1])).clamp(0, 1)], dim=0)


def preserve_colors(stylized: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Luminance-only transfer: the stylized image's luma Y with the content's chroma I, Q."""
    content = resize(content, (stylized.shape[-2], stylized.shape[-1]))
    to_yiq = _RGB_TO_YIQ.to(stylized)
    to_rgb = _YIQ_TO_RGB.to(stylized)
    yiq_styled = torch.einsum("ij,jhw->ihw", to_yiq, stylized)
    yiq_content = torch.einsum("ij,jhw->ihw", to_yiq, content)
    merged = torch.cat([yiq_styled[:1], yiq_content[1:]], dim=0)
    return torch.einsum("ij,jhw->ihw", to_rgb, merged).clamp(0, 1)


def match_colors(image: torch.Tensor, reference: torch.Tensor, image_weights: torch.Tensor | None = None,
                 reference_weights: torch.Tensor | None = None, eps: float = 1e-5) -> torch.Tensor:
    """Colour histogram matching (Gatys et al. 2017): ``image`` (3, H, W) moved to ``reference``'s colour mean
    and covariance, x' = C_r^½ C_i^−½ (x − μ_i) + μ_r with symmetric square roots (the paper's "PCA"
    variant, which keeps hues from rotating), clamped to [0, 1].

    Optional ``*_weights`` (1, H, W) weigh each image's pixels in its statistics: a region's colours (a
    mask), not the whole image's. ``eps`` keeps a flat image's covariance invertible.
    """
    mean_i, cov_i = _colour_statistics(image, image_weights, eps)
    mean_r, cov_r = _colour_statistics(reference, reference_weights, eps)
    transform = _symmetric_root(cov_r) @ torch.linalg.inv(_symmetric_root(cov_i))
    flat = image.to(torch.float64).reshape(3, -1)
    moved: torch.Tensor = transform @ (flat - mean_i[:, None]) + mean_r[:, None]
    return moved.reshape(image.shape).to(image.dtype).clamp(0, 1)


def colour_statistics(image: torch.Tensor, weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean (3,), covariance (3, 3)) of an image's RGB values in float64, optionally weighted (1, H, W)."""
    return _colour_statistics(image, weights, 0.0)


def _colour_statistics(image: torch.Tensor, weights: torch.Tensor | None,
                       eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    flat = image.to(torch.float64).reshape(3, -1)
    w = (torch.ones(flat.shape[1], dtype=torch.float64, device=flat.device) if weights is None
         else weights.to(flat.device, torch.float64).reshape(-1))
    w = w / w.sum()
    mean = flat @ w
    centred = flat - mean[:, None]
    covariance = (centred * w) @ centred.t() + eps * torch.eye(3, dtype=torch.float64, device=flat.device)
    return mean, covariance


def _symmetric_root(matrix: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(matrix)
    root: torch.Tensor = vectors @ torch.diag(values.clamp(min=0).sqrt()) @ vectors.t()
    return root

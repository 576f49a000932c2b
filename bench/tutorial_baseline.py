"""The plain baseline: style transfer written the way the PyTorch tutorial writes it.

(pytorch.org/tutorials/advanced/neural_style_tutorial.html: torchvision's full ``vgg19().features``
rebuilt as an ``nn.Sequential`` with loss modules inserted after the chosen layers, trimmed after the
last loss, L-BFGS on the image with the tutorial's closure, which clamps the image before every
evaluation.) Two changes make the comparison like for like: the losses are the paper's (the same
definitions as ours, not the tutorial's mean-squared variants), and the pooling layers are average
pooling (the paper's choice, and our default). Used by the benchmark and by a parity test.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torchvision


def gram_matrix(input: torch.Tensor) -> torch.Tensor:
    a, b, c, d = input.size()
    features = input.view(a * b, c * d)
    return torch.mm(features, features.t())


class ContentLoss(nn.Module):
    def __init__(self, target: torch.Tensor) -> None:
        super().__init__()
        self.target = target.detach()

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        self.loss = 0.5 * ((input - self.target) ** 2).sum()
        return input


class StyleLoss(nn.Module):
    def __init__(self, target_feature: torch.Tensor, weight: float) -> None:
        super().__init__()
        self.target = gram_matrix(target_feature).detach()
        _, n, h, w = target_feature.shape
        self.scale = weight / (4.0 * n**2 * (h * w) ** 2)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        self.loss = self.scale * ((gram_matrix(input) - self.target) ** 2).sum()
        return input


class Normalization(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mean = torch.tensor([0.485, 0.456, 0.406]).view(-1, 1, 1)
        self.std = torch.tensor([0.229, 0.224, 0.225]).view(-1, 1, 1)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return (img - self.mean) / self.std


def _tutorial_name(layer: nn.Module, i: int) -> str:
    if isinstance(layer, nn.Conv2d):
        return f"conv_{i}"
    if isinstance(layer, nn.ReLU):
        return f"relu_{i}"
    return f"pool_{i}"


def get_style_model_and_losses(cnn, style_img, content_img, content_layers, style_layers):
    """The tutorial's function; layer names are mapped to the paper's (relu4_2 ↔ the 10th ReLU...)."""
    normalization = Normalization()
    content_losses, style_losses = [], []
    model = nn.Sequential(normalization)
    i = 0
    block, index = 1, 0
    for layer in cnn.children():
        if isinstance(layer, nn.Conv2d):
            i += 1
            index += 1
            paper = f"conv{block}_{index}"
        elif isinstance(layer, nn.ReLU):
            layer = nn.ReLU(inplace=False)
            paper = f"relu{block}_{index}"
        else:
            layer = nn.AvgPool2d(kernel_size=2, stride=2)
            paper = f"pool{block}"
            block, index = block + 1, 0
        model.add_module(_tutorial_name(layer, i), layer)
        if paper in content_layers:
            target = model(content_img).detach()
            content_loss = ContentLoss(target)
            model.add_module(f"content_loss_{i}", content_loss)
            content_losses.append(content_loss)
        if paper in style_layers:
            target_feature = model(style_img).detach()
            style_loss = StyleLoss(target_feature, 1.0 / len(style_layers))
            model.add_module(f"style_loss_{i}", style_loss)
            style_losses.append(style_loss)
    for i in range(len(model) - 1, -1, -1):
        if isinstance(model[i], (ContentLoss, StyleLoss)):
            break
    model = model[: (i + 1)]
    return model, style_losses, content_losses


def full_vgg19_features(state_dict: dict[str, torch.Tensor]) -> nn.Sequential:
    """torchvision's vgg19().features with the given weights (the full 37 layers)."""
    cnn = torchvision.models.vgg19(weights=None)
    cnn.load_state_dict(state_dict, strict=False)
    return cnn.features.eval().requires_grad_(False)


def run_style_transfer(cnn, content_img, style_img, input_img, num_steps, content_weight, style_weight,
                       content_layers, style_layers, on_evaluation=None, clamp=True):
    """The tutorial's loop, stopped after exactly ``num_steps`` evaluations so that budgets are equal."""
    model, style_losses, content_losses = get_style_model_and_losses(
        cnn, style_img, content_img, content_layers, style_layers)
    input_img.requires_grad_(True)
    model.eval()
    model.requires_grad_(False)
    optimizer = torch.optim.LBFGS([input_img])
    run = [0]
    losses: list[float] = []
    while run[0] < num_steps:
        # The tutorial's LBFGS takes 20 iterations per step(); the last step is cut to the budget.
        chunk = min(20, num_steps - run[0])
        optimizer.param_groups[0].update(max_iter=chunk, max_eval=chunk)

        def closure():
            if clamp:
                with torch.no_grad():
                    input_img.clamp_(0, 1)
            optimizer.zero_grad()
            model(input_img)
            style_score = sum(sl.loss for sl in style_losses)
            content_score = sum(cl.loss for cl in content_losses)
            loss = style_score * style_weight + content_score * content_weight
            loss.backward()
            run[0] += 1
            losses.append(float(loss.detach()))
            if on_evaluation is not None:
                on_evaluation(run[0])
            return loss

        optimizer.step(closure)
    with torch.no_grad():
        input_img.clamp_(0, 1)
    return input_img, losses

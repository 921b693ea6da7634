"""A naive Gatys et al. style transfer, written the plain way (neural-style-pt / PyTorch tutorial).

Self-contained: plain torch + torchvision + Pillow, nothing from dreamstyle. It is the baseline
that bench_stylize.py times against ``dreamstyle stylize``:

* torchvision VGG-19 ``features`` cut after relu5_1 (index 29), eval mode, frozen;
* ImageNet mean/std normalization in front of the network; pixels optimized in [0, 1];
* the paper's taps: style relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 (indices 1, 6, 11, 20, 29),
  content relu4_2 (index 22);
* Gram matrices divided by C*H*W, MSE losses, neural-style's weights (content 5, style 100,
  TV 1e-3);
* fp32, one scale (long side 512 px for content and style), initialised from the content image;
* ``torch.optim.LBFGS(max_iter=N, tolerance_grad=-1, tolerance_change=-1)`` stepped once, as
  neural-style-pt does, so it runs all N iterations (one forward/backward per iteration).

Pretrained VGG-19 weights cannot be downloaded on the benchmark machine, so by default the network
keeps torchvision's random initialisation: the timing is the same, the picture is not a real
stylization. Pass ``--weights vgg19-dcbb9e9d.pth`` to use real weights where you have them.

Prints one JSON line on stdout with its internal phase timings.

    python bench/naive_gatys.py CONTENT STYLE -o OUT.png [--iterations 300] [--size 512]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

_T0 = time.perf_counter()

import torch  # noqa: E402, RUF100
import torch.nn.functional as F  # noqa: E402, RUF100
import torchvision  # noqa: E402, RUF100
from PIL import Image  # noqa: E402, RUF100
from torch import nn  # noqa: E402, RUF100

STYLE_LAYERS = {"relu1_1": 1, "relu2_1": 6, "relu3_1": 11, "relu4_1": 20, "relu5_1": 29}
CONTENT_LAYERS = {"relu4_2": 22}
LAST_INDEX = 29
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def load(path: str, size: int) -> torch.Tensor:
    """Image file -> (1, 3, H, W) float tensor in [0, 1] with long side ``size``."""
    img = Image.open(path).convert("RGB")
    w, h = img.size
    scale = size / max(w, h)
    img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.LANCZOS)
    x = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
    return x.view(img.size[1], img.size[0], 3).permute(2, 0, 1).unsqueeze(0).float().div(255.0).contiguous()


def save(x: torch.Tensor, path: str) -> None:
    a = x.detach()[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).contiguous().numpy()
    Image.fromarray(a).save(path)


class VGGTaps(nn.Module):
    """VGG-19 features[:30], returning the outputs at the requested indices."""

    def __init__(self, weights: str | None) -> None:
        super().__init__()
        vgg = torchvision.models.vgg19(weights=None)  # random init: torchvision's default
        if weights:
            vgg.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        self.features = vgg.features[: LAST_INDEX + 1]
        for m in self.features:
            if isinstance(m, nn.ReLU):
                m.inplace = False  # as in the PyTorch tutorial: keep tapped activations intact
        self.features.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))
        self.wanted = set(STYLE_LAYERS.values()) | set(CONTENT_LAYERS.values())

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        x = (x - self.mean) / self.std
        out = {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.wanted:
                out[i] = x
        return out


def gram(f: torch.Tensor) -> torch.Tensor:
    _, c, h, w = f.shape
    f = f.view(c, h * w)
    return (f @ f.t()).div(c * h * w)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="naive Gatys style transfer baseline (VGG-19, L-BFGS, fp32)")
    ap.add_argument("content")
    ap.add_argument("style")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--content-weight", type=float, default=5.0)
    ap.add_argument("--style-weight", type=float, default=100.0)
    ap.add_argument("--tv-weight", type=float, default=1e-3)
    ap.add_argument("--weights", help="a VGG-19 state dict (torchvision layout); default: random weights")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    t_start = time.perf_counter()
    torch.manual_seed(args.seed)
    net = VGGTaps(args.weights)
    t_model = time.perf_counter()

    content = load(args.content, args.size)
    style = load(args.style, args.size)
    with torch.no_grad():
        content_targets = {i: f.detach() for i, f in net(content).items() if i in CONTENT_LAYERS.values()}
        style_targets = {i: gram(f).detach() for i, f in net(style).items() if i in STYLE_LAYERS.values()}

    image = content.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([image], max_iter=args.iterations, tolerance_grad=-1, tolerance_change=-1,
                                  history_size=100)
    evals = [0]
    last = {}

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        feats = net(image)
        c_loss = sum(F.mse_loss(feats[i], t) for i, t in content_targets.items()) * args.content_weight
        s_loss = sum(F.mse_loss(gram(feats[i]), t) for i, t in style_targets.items()) * args.style_weight
        tv = ((image[..., 1:, :] - image[..., :-1, :]).abs().sum()  # neural-style-pt's L1 TV
              + (image[..., :, 1:] - image[..., :, :-1]).abs().sum()) * args.tv_weight
        loss = c_loss + s_loss + tv
        loss.backward()
        evals[0] += 1
        if evals[0] == 1:
            last["first_loss"] = float(loss.detach())
        last["loss"] = float(loss.detach())
        return loss

    t_targets = time.perf_counter()
    optimizer.step(closure)
    t_opt = time.perf_counter()
    save(image, args.output)
    t_end = time.perf_counter()

    h, w = content.shape[-2:]
    print(json.dumps({
        "size": [int(w), int(h)], "iterations": args.iterations, "closure_evals": evals[0],
        "weights": args.weights or "random (torchvision default init)",
        "first_loss": last.get("first_loss"), "final_loss": last.get("loss"),
        "threads": torch.get_num_threads(),
        "seconds": {
            "imports": round(t_start - _T0, 3), "model": round(t_model - t_start, 3),
            "targets": round(t_targets - t_model, 3), "optimize": round(t_opt - t_targets, 3),
            "save": round(t_end - t_opt, 3), "total_in_process": round(t_end - _T0, 3),
        },
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Issue 3 controls: colour, masks, style statistics, pooling, smoothing, EMA, memory check, contact sheet."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from PIL import Image

import dreamstyle
from dreamstyle.backbones import Backbone
from dreamstyle.color import match_color, rgb_to_yiq
from dreamstyle.errors import UserError
from dreamstyle.images import load_image, read_params, to_tensor
from dreamstyle.objectives import StyleLoss
from dreamstyle.optimize import memory
from dreamstyle.tasks import stylize as stylize_task

LITE0_STYLE = ["stem", "blocks.1", "blocks.3", "blocks.5", "blocks.8"]
BASE = dict(size=64, iterations=12, seed=0, progress=False, style_layers=LITE0_STYLE, content_layers=["blocks.8"],
            content_weight=1.0, style_weight=1e3, tv_weight=1.0, pyramid=False, style_loss="gram")


def run(content, styles, **kwargs) -> Image.Image:
    return dreamstyle.stylize(content, styles, **{**BASE, **kwargs})


def pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.float32) / 255


def halves_mask(tmp_path, size: tuple[int, int], left: bool) -> str:
    w, h = size
    arr = np.zeros((h, w), np.uint8)
    if left:
        arr[:, : w // 2] = 255
    else:
        arr[:, w // 2:] = 255
    path = tmp_path / f"mask_{'left' if left else 'right'}.png"
    Image.fromarray(arr).save(path)
    return str(path)


def test_luminance_mode_keeps_the_content_chroma(image_files):
    out = run(image_files.content, image_files.style, preserve_color="luminance", iterations=20)
    content = to_tensor(load_image(image_files.content).resize(out.size, Image.LANCZOS))
    iq_out, iq_content = rgb_to_yiq(to_tensor(out))[:, 1:], rgb_to_yiq(content)[:, 1:]
    plain = run(image_files.content, image_files.style, iterations=20)
    iq_plain = rgb_to_yiq(to_tensor(plain))[:, 1:]
    kept = (iq_out - iq_content).abs().mean().item()
    assert kept < 0.02, kept  # only 8-bit rounding and gamut clamping
    assert (iq_plain - iq_content).abs().mean().item() > 3 * kept  # without it, the chroma does change


def test_match_mode_gives_the_style_the_content_colour_statistics():
    gen = torch.Generator().manual_seed(0)
    content = (torch.rand(1, 3, 40, 50, generator=gen) * 0.4 + 0.3) * torch.tensor([1.0, 0.6, 0.3]).view(1, 3, 1, 1)
    style = torch.rand(1, 3, 30, 30, generator=gen) * 0.5 + torch.tensor([0.0, 0.2, 0.5]).view(1, 3, 1, 1)
    matched = match_color(style, content)

    def stats(x):
        p = x.reshape(3, -1).double()
        return p.mean(1), torch.cov(p, correction=0)

    (mm, cm), (mc, cc), (ms, cs) = stats(matched), stats(content), stats(style)
    assert torch.allclose(mm, mc, atol=0.01) and torch.allclose(cm, cc, atol=0.003)
    assert not torch.allclose(ms, mc, atol=0.05) and not torch.allclose(cs, cc, atol=0.003)  # they differed before


def test_masks_put_each_style_in_its_region(image_files, tmp_path):
    content = load_image(image_files.astronaut)  # 64 x 64
    left, right = halves_mask(tmp_path, content.size, True), halves_mask(tmp_path, content.size, False)
    out = run(image_files.astronaut, [image_files.stripes, image_files.coffee], masks=[left, right], iterations=40)
    backbone = Backbone("efficientnet_lite0")
    extractor = backbone.extractor(LITE0_STYLE)
    with torch.no_grad():
        stripes = extractor(to_tensor(load_image(image_files.stripes)))
        stripes_loss = StyleLoss(dict.fromkeys(LITE0_STYLE, 1.0), [stripes])
        x = to_tensor(out)
        inside = float(stripes_loss(extractor(x[..., :, :32]), None))
        outside = float(stripes_loss(extractor(x[..., :, 32:]), None))
    assert inside * 1.5 < outside, (inside, outside)


def test_mask_count_and_size_are_checked(image_files, tmp_path):
    content = load_image(image_files.content)
    mask = halves_mask(tmp_path, content.size, True)
    with pytest.raises(UserError, match="one mask per style"):
        run(image_files.content, [image_files.style, image_files.stripes], masks=[mask])
    square = tmp_path / "square.png"
    Image.new("L", (50, 50), 255).save(square)
    with pytest.raises(UserError, match="aspect ratio"):
        run(image_files.content, image_files.style, masks=[str(square)])


@pytest.mark.parametrize("kwargs", [
    dict(style_loss="meancov"), dict(style_loss="meanstd"), dict(smooth="softmax"), dict(smooth="scale"),
    dict(style_scale=0.5),
    dict(preserve_color="match"), dict(preserve_color="luminance"), dict(optimizer="adam", ema=0.9),
    dict(style_weight=10.0), dict(tv_weight=1e4),
], ids=lambda k: "-".join(f"{a}={b}" for a, b in k.items()))
def test_each_option_changes_the_result(image_files, kwargs):
    base_kwargs = {"optimizer": "adam", "lr": 0.05} if kwargs.get("optimizer") == "adam" else {}
    base = pixels(run(image_files.content, image_files.style, **base_kwargs))
    changed = pixels(run(image_files.content, image_files.style, **{**base_kwargs, **kwargs}))
    assert np.abs(base - changed).mean() > 0.003  # runs are deterministic: any real change shows


def test_style_losses_fall(image_files):
    """Each style statistic is a real objective: optimizing it lowers it several-fold."""
    backbone = Backbone("efficientnet_lite0")
    extractor = backbone.extractor(LITE0_STYLE, pad=stylize_task.EDGE_PAD)  # as stylize sees the image
    style = to_tensor(load_image(image_files.style))
    content = to_tensor(load_image(image_files.content))
    for kind in ("gram", "meancov", "meanstd"):
        with torch.no_grad():
            loss = StyleLoss(dict.fromkeys(LITE0_STYLE, 1.0), [extractor(style)], kind=kind)
            before = float(loss(extractor(content), None))
        out = run(image_files.content, image_files.style, style_loss=kind, content_weight=0.0, tv_weight=0.0,
                  iterations=30)
        with torch.no_grad():
            after = float(loss(extractor(to_tensor(out)), None))
        assert after * 3 < before, (kind, before, after)


def test_avg_pooling_replaces_max_pooling_and_keeps_magnitudes():
    torch.manual_seed(0)
    plain = Backbone("vgg16", weights="random")
    pooled = Backbone("vgg16", weights="random", pooling="avg")
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in pooled.model.modules())
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        a = plain.extractor(["relu3_1"])(x)["relu3_1"]
        b = pooled.extractor(["relu3_1"])(x)["relu3_1"]
    assert not torch.allclose(a, b)
    ratio = float(b.abs().mean() / a.abs().mean())
    assert 0.5 < ratio < 2.0, ratio  # rescaled: magnitudes stay comparable


def test_avg_pooling_on_a_network_without_max_pooling_is_refused():
    with pytest.raises(UserError, match="max pooling"):
        Backbone("efficientnet_lite0", pooling="avg")


def test_ema_averages_the_iterates(image_files):
    with_ema = pixels(run(image_files.content, image_files.style, optimizer="adam", lr=0.05, ema=0.9, iterations=20))
    without = pixels(run(image_files.content, image_files.style, optimizer="adam", lr=0.05, iterations=20))
    content = pixels(load_image(image_files.content))
    # the average lags behind the iterates: it stays closer to where they started
    assert np.abs(with_ema - content).mean() < np.abs(without - content).mean()


def test_memory_check_refuses_with_the_largest_size_that_fits(image_files, monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda device: 2.5 * 2**30)  # pretend 2.5 GiB are free
    with pytest.raises(UserError, match=r"use size \d+ or less") as info:
        run(image_files.content, image_files.style, size=4096)
    suggested = int(str(info.value).split("use size ")[1].split()[0])
    assert 64 <= suggested < 4096
    run(image_files.content, image_files.style, size=64)  # a small size still runs


def test_memory_estimate_grows_with_pixels(image_files):
    from dreamstyle.optimize.memory import BASE_BYTES, activation_elements, estimate_peak_bytes

    extractor = Backbone("efficientnet_lite0").extractor(LITE0_STYLE)
    probe = to_tensor(load_image(image_files.content).resize((128, 86)))
    small, big = activation_elements(extractor, probe, 384, 512), activation_elements(extractor, probe, 768, 1024)
    assert 3.9 < big / small < 4.1  # activations grow with the pixel count
    est = estimate_peak_bytes(extractor, probe, 384, 512)
    assert BASE_BYTES < est < BASE_BYTES + 2 * 2**30  # lite0 at 512 px needs little beyond the process


def test_sheet_lays_out_a_labelled_grid(image_files, tmp_path):
    out = tmp_path / "sheet.png"
    sheet = dreamstyle.sheet(image_files.content, [image_files.style], ["style-weight=1e1,1e4", "tv-weight=0,1e4"],
                             out, progress=False,
                             **{k: v for k, v in BASE.items() if k not in ("progress", "style_weight",
                                                                                     "tv_weight")})
    cell = run(image_files.content, image_files.style)
    label = 4 + 12 * 2  # two swept parameters: two label lines
    assert sheet.size == (2 * cell.width, 2 * (cell.height + label))
    assert Image.open(out).size == sheet.size
    # rows follow the first sweep, columns the second; all four cells differ
    cells = [np.asarray(sheet.crop((c * cell.width, r * (cell.height + label) + label, (c + 1) * cell.width,
                                    r * (cell.height + label) + label + cell.height)), np.float32)
             for r in range(2) for c in range(2)]
    assert all(np.abs(cells[i] - cells[j]).mean() > 0.3 for i in range(4) for j in range(i + 1, 4))
    assert read_params(out)["cells"][0] == ["style-weight=10", "tv-weight=0"]


def test_sheet_rejects_bad_sweeps(image_files, tmp_path):
    for sweep, match in [("colour=1,2", "cannot sweep"), ("style-weight", "NAME=V1"), ("size=big", "number")]:
        with pytest.raises(UserError, match=match):
            dreamstyle.sheet(image_files.content, [image_files.style], [sweep], tmp_path / "s.png", progress=False)


def test_scale_smoothing_down_weights_the_two_deepest_taps():
    torch.manual_seed(0)
    feats = {t: torch.rand(1, 4, 8, 8) for t in ("a", "b", "c")}
    image = torch.rand(1, 3, 16, 16)
    styles = [{t: torch.rand(1, 4, 8, 8) for t in feats}]
    plain = {t: float(StyleLoss({t: 1.0}, styles)(feats, image)) for t in feats}
    scaled = StyleLoss({"a": 1.0, "b": 1.0, "c": 1.0}, styles, smoothing="scale")
    assert scaled.taps == {"a": 1.0, "b": 1 / 16, "c": 1 / 16}
    expected = plain["a"] + (plain["b"] + plain["c"]) / 16
    assert float(scaled(feats, image)) == pytest.approx(expected, rel=1e-5)


def test_mirrored_margin_gives_border_pixels_a_fair_gradient():
    """Lite0's stride-2 convolutions see the top row 1.8x and the bottom row 0.13x as strongly as the
    inside: without a margin a line of noise grows on one edge and the other stays unstyled. With the
    mirrored margin (stylize's default; 8 px at 512) every edge gets about the inside's gradient."""
    backbone = Backbone("efficientnet_lite0")
    torch.manual_seed(0)
    image = torch.rand(1, 3, 512, 512)

    def edge_ratios(pad: int) -> list[float]:
        extractor = backbone.extractor(LITE0_STYLE[:3], pad=pad)
        assert extractor.margin(512, 512) == pad and extractor.margin(100, 512) == 0  # none on small images
        x = image.clone().requires_grad_(True)
        sum(f.pow(2).mean() for f in extractor(x).values()).backward()
        g = x.grad.abs().mean(dim=(0, 1))
        inside = g[8:-8, 8:-8].mean()
        return [float(e.mean() / inside) for e in (g[0], g[-1], g[:, 0], g[:, -1])]

    bare, padded = edge_ratios(0), edge_ratios(stylize_task.EDGE_PAD)
    assert min(bare) < 0.5 and max(bare) > 1.5, bare
    assert all(0.7 < r < 1.4 for r in padded), padded
    # and stylize uses it by default
    assert inspect.signature(dreamstyle.stylize).parameters["edge_pad"].default is True

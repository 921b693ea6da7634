"""Issue 18's engine parts: the palette start and the self-similarity content loss, by their defining properties."""

from __future__ import annotations

import pytest
import torch

from dreamstyle.color import match_palette, oklab_to_rgb, rgb_to_oklab
from dreamstyle.objectives.layout import SelfSimilarityLoss


def _stats(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    lab = rgb_to_oklab(image.reshape(3, -1))
    mean = lab.mean(1)
    centered = lab - mean[:, None]
    return mean, centered @ centered.T / lab.shape[1]


def _smooth_image(seed: int, h: int = 48, w: int = 64, low: float = 0.2, high: float = 0.8) -> torch.Tensor:
    """A photo-like image: smooth colour fields well inside [0, 1], so nothing clips."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 3, 6, 8, generator=g) * (high - low) + low
    return torch.nn.functional.interpolate(small, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)


def test_oklab_round_trips() -> None:
    image = torch.rand(3, 500, dtype=torch.float64)
    assert torch.allclose(oklab_to_rgb(rgb_to_oklab(image)), image, atol=1e-6)


def test_the_palette_start_takes_the_paintings_mean_and_covariance() -> None:
    photo, painting = _smooth_image(0), _smooth_image(1) * torch.tensor([0.5, 0.3, 0.2])[:, None, None]
    out = match_palette(photo, painting)
    assert out.shape == photo.shape
    (m_out, c_out), (m_ref, c_ref), (m_in, _) = _stats(out), _stats(painting), _stats(photo)
    assert torch.allclose(m_out, m_ref, atol=0.01)
    assert torch.allclose(c_out, c_ref, atol=3e-4)
    assert not torch.allclose(m_in, m_ref, atol=0.05)  # the photo's own palette was far from it


def test_a_near_grey_painting_gives_a_near_grey_start_that_keeps_the_layout() -> None:
    photo = _smooth_image(2)
    grey = _smooth_image(3).mean(dim=1, keepdim=True).expand(1, 3, -1, -1).contiguous()
    out = match_palette(photo, grey)
    assert torch.isfinite(out).all()
    chroma = rgb_to_oklab(out.reshape(3, -1))[1:]
    assert float(chroma.abs().max()) < 0.01  # no colour where the painting has none
    # lightness still follows the photo's: the layout is kept
    light_in, light_out = rgb_to_oklab(photo.reshape(3, -1))[0], rgb_to_oklab(out.reshape(3, -1))[0]
    assert float(torch.corrcoef(torch.stack([light_in, light_out]))[0, 1]) > 0.8


def test_blended_paintings_give_a_palette_between_them() -> None:
    photo = _smooth_image(4)
    red, blue = _smooth_image(5) * torch.tensor([1.0, 0.2, 0.2])[:, None, None], \
        _smooth_image(6) * torch.tensor([0.2, 0.2, 1.0])[:, None, None]
    mostly_red = _stats(match_palette(photo, [red, blue], [3, 1]))[0]
    mostly_blue = _stats(match_palette(photo, [red, blue], [1, 3]))[0]
    # OkLab's a axis runs green to red: the red-heavy blend is redder, the blue-heavy one bluer (b lower)
    assert mostly_red[1] > mostly_blue[1] and mostly_red[2] > mostly_blue[2]


def _features(seed: int) -> dict[str, torch.Tensor]:
    return {"t": torch.randn(1, 16, 12, 10, generator=torch.Generator().manual_seed(seed))}


def test_self_similarity_is_zero_for_the_same_features_and_blind_to_a_global_shift_and_scale() -> None:
    feats = _features(0)
    loss = SelfSimilarityLoss({"t": 1.0}, feats)
    assert float(loss(feats, torch.zeros(1))) == pytest.approx(0.0, abs=1e-6)
    # a global change that keeps the relations (the same vector added everywhere, every feature scaled)
    shifted = {"t": feats["t"] * 3.0 + torch.randn(1, 16, 1, 1)}
    assert float(loss(shifted, torch.zeros(1))) == pytest.approx(0.0, abs=1e-5)
    # other structure costs
    assert float(loss(_features(1), torch.zeros(1))) > 0.1


def test_self_similarity_targets_re_bind() -> None:
    a, b = _features(0), _features(1)
    loss = SelfSimilarityLoss({"t": 1.0}, a)
    loss.bind(b)
    assert float(loss(b, torch.zeros(1))) == pytest.approx(0.0, abs=1e-6)
    assert float(loss(a, torch.zeros(1))) > 0.1


def _two_colours(dark_share: float, size: int = 40) -> torch.Tensor:
    """A picture of a pale beige and a deep blue, the blue on ``dark_share`` of its rows."""
    image = torch.empty(1, 3, size, size)
    image[:, :] = torch.tensor([0.9, 0.85, 0.7])[:, None, None]
    image[:, :, : int(size * dark_share)] = torch.tensor([0.1, 0.2, 0.45])[:, None, None]
    return image


def test_the_palette_loss_sees_two_far_apart_colours_that_one_mean_and_covariance_cannot() -> None:
    from dreamstyle.objectives import PaletteLoss

    painting = _two_colours(0.4)
    loss = PaletteLoss(painting)
    assert float(loss({}, painting)) == pytest.approx(0.0, abs=1e-6)
    assert float(loss({}, painting.flip(-1).flip(-2))) == pytest.approx(0.0, abs=1e-6)  # where colours are: free
    # the same mean colour as one flat wash is far from the painting; more of the blue is nearer than less
    wash = painting.mean(dim=(2, 3), keepdim=True).expand_as(painting)
    assert float(loss({}, wash)) > 0.5
    assert float(loss({}, _two_colours(0.3))) < float(loss({}, _two_colours(0.1)))
    # it is differentiable, and a gradient step from the wash moves towards the painting's colours
    start = wash.clone().requires_grad_(True)
    loss({}, start).backward()
    assert start.grad is not None and float(start.grad.abs().sum()) > 0
    # re-binding to another painting: that painting is now the zero
    loss.bind(wash)
    assert float(loss({}, wash)) == pytest.approx(0.0, abs=1e-6)


def test_the_palette_loss_sorts_a_sample_of_a_large_pictures_pixels_without_losing_its_colours() -> None:
    """A training crop's colours are sorted from every k-th pixel (objectives.palette.MAX_PIXELS); k is odd, so
    a picture striped column by column still shows both of its colours."""
    from dreamstyle.objectives import PaletteLoss
    from dreamstyle.objectives.palette import MAX_PIXELS

    stripes = torch.empty(1, 3, 256, 256)
    stripes[..., 0::2] = torch.tensor([0.1, 0.2, 0.45])[:, None, None]
    stripes[..., 1::2] = torch.tensor([0.9, 0.85, 0.7])[:, None, None]
    assert stripes[0, 0].numel() > MAX_PIXELS
    loss = PaletteLoss(stripes)
    assert float(loss({}, stripes)) < 0.01
    assert float(loss({}, stripes.mean(dim=(2, 3), keepdim=True).expand_as(stripes))) > 0.5


def test_every_optimization_loop_stops_on_a_non_finite_loss_in_one_line() -> None:
    """Image optimization, Deep Dream's ascent, explore and training run on one loop, guarded by check_finite."""
    import math

    import pytest
    import torch

    from dreamstyle.errors import RunError
    from dreamstyle.optimize.ascent import ascend
    from dreamstyle.optimize.loop import check_finite, optimize_image

    assert check_finite(1.5, 1) == 1.5
    with pytest.raises(RunError, match="at step 3; lower --lr"):
        check_finite(math.inf, 3)
    image = torch.rand(1, 3, 16, 16)
    with pytest.raises(RunError, match="became nan at step 1; lower --step-size"):
        ascend(image, lambda x: x.sum() * math.nan, 2, jitter=0)
    with pytest.raises(RunError, match="became nan at step 1"):
        optimize_image(image, lambda x: (x.sum() * math.nan, {}), 2)


def test_one_loop_runs_every_optimizer_guards_before_the_update_and_reports_each_step() -> None:
    """``descend`` is the loop under image optimization, the ascent, explore and training: it reports every
    step in order, refuses a NaN loss before the optimizer moves anything, and takes gradients that the
    step set itself (the ascent's tiles) when the loss is a plain number."""

    import pytest
    import torch

    from dreamstyle.errors import RunError
    from dreamstyle.optimize.ascent import NormalizedAscent
    from dreamstyle.optimize.loop import descend

    x = torch.tensor([3.0, -2.0], requires_grad=True)
    seen: list[tuple[int, float]] = []
    descend(torch.optim.SGD([x], lr=0.25), lambda: ((x ** 2).sum(), {"n": 1.0}), range(5, 8),
            lambda step, loss, parts: seen.append((step, loss)))
    assert [s for s, _ in seen] == [5, 6, 7]
    assert seen[0][1] == pytest.approx(13.0) and seen[1][1] == pytest.approx(13.0 / 4)  # x halves each step
    assert torch.allclose(x.detach(), torch.tensor([3.0, -2.0]) / 8)

    before, reported = x.detach().clone(), []
    with pytest.raises(RunError, match="became nan at step 2; custom fix"):
        descend(torch.optim.Adam([x], lr=0.1), _nan_at(x, 2), range(1, 4),
                lambda step, loss, parts: reported.append(step), fix="custom fix")
    assert reported == [1] and not torch.equal(x.detach(), before)  # step 1 moved it ...
    moved = x.detach().clone()
    with pytest.raises(RunError):
        descend(torch.optim.Adam([x], lr=0.1), _nan_at(x, 1), range(1, 2))
    assert torch.equal(x.detach(), moved)  # ... and the NaN step moved nothing

    image = torch.zeros(1, 1, 4, 4)

    def set_own_gradient() -> tuple[float, dict[str, float]]:
        image.grad = torch.ones_like(image)
        return 0.5, {}

    descend(NormalizedAscent([image], step_size=0.1, laplacian=0), set_own_gradient, range(1, 3))
    assert torch.allclose(image, torch.full_like(image, 0.2))  # two normalized steps of 0.1 up


def _nan_at(x: torch.Tensor, bad: int):  # type: ignore[no-untyped-def]
    """An evaluate() whose loss is finite until call ``bad``, then NaN."""
    import math

    calls = {"n": 0}

    def evaluate():  # type: ignore[no-untyped-def]
        calls["n"] += 1
        return (x ** 2).sum() * (math.nan if calls["n"] >= bad else 1.0), {}

    return evaluate


def test_loss_terms_are_modules_whose_targets_re_bind_without_rebuilding() -> None:
    """A style term bound to other paintings' features scores exactly as one built on them; so do the
    content and dream terms (stylize re-binds them at each pyramid level)."""
    import torch
    from torch import nn

    from dreamstyle.objectives import ContentLoss, StyleLoss, TVLoss
    from dreamstyle.objectives.dream import DreamLoss, DreamTarget

    torch.manual_seed(0)
    a, b = ({"x": torch.rand(1, 4, 8, 8), "y": torch.rand(1, 6, 4, 4)} for _ in range(2))
    out = {"x": torch.rand(1, 4, 8, 8), "y": torch.rand(1, 6, 4, 4)}
    image = torch.rand(1, 3, 8, 8)
    for kind in ("gram", "meancov", "meanstd"):
        rebound = StyleLoss({"x": 1.0, "y": 0.5}, [a], kind=kind)
        rebound(out, image)  # fills its caches, which bind must drop
        rebound.bind([b])
        assert torch.equal(rebound(out, image), StyleLoss({"x": 1.0, "y": 0.5}, [b], kind=kind)(out, image))
    content = ContentLoss({"x": 1.0}, a)
    content.bind(b)
    assert torch.equal(content(out, image), ContentLoss({"x": 1.0}, b)(out, image))
    target = [DreamTarget("y", weight=1.0)]
    dream = DreamLoss(target, reference=a)
    dream.bind(b)
    assert torch.equal(dream(out, image), DreamLoss(target, reference=b)(out, image))
    assert all(isinstance(term, nn.Module) for term in (content, dream, TVLoss(), rebound))


def test_text_is_parsed_by_kind_in_one_place() -> None:
    """The command line's on/off is strict; sweeps also take true/false, yes/no and 1/0."""
    import pytest

    from dreamstyle.settings import parse_kind

    assert parse_kind("onoff", "on") is True and parse_kind("onoff", "off") is False
    with pytest.raises(ValueError, match="on or off, got 'yes'"):
        parse_kind("onoff", "yes")
    assert parse_kind("bool", "yes") is True and parse_kind("bool", "0") is False
    assert parse_kind("int", " 7 ") == 7 and parse_kind("channels", "0,5,12") == [0, 5, 12]
    with pytest.raises(ValueError, match="a whole number, got '7.5'"):
        parse_kind("int", "7.5")
    with pytest.raises(ValueError, match="channel numbers >= 0"):
        parse_kind("channels", "-1")

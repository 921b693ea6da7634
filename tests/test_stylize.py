"""Style transfer end to end through the Python API, and the optimization loop it is built on."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import dreamstyle
from conftest import ctrl_c_at_step
from dreamstyle.backbones import Backbone
from dreamstyle.errors import RunError, UserError
from dreamstyle.frontends import cli as dreamstyle_cli
from dreamstyle.images import load_image, read_params, to_tensor
from dreamstyle.objectives import Objective, StyleLoss, TVLoss
from dreamstyle.optimize import coarse_to_fine, octave_sizes, optimize_image, pyramid_sizes, split_iterations
from dreamstyle.tasks import session
from dreamstyle.tasks import stylize as stylize_task

# Explicit loss weights and taps, so that tuning the defaults does not change what these tests measure.
WEIGHTS = dict(content_weight=1.0, style_weight=1e3, tv_weight=1.0, style_loss="gram")
LITE0_STYLE = ["stem", "blocks.1", "blocks.3", "blocks.5", "blocks.8"]
LITE0_CONTENT = ["blocks.8"]
EXAMPLES = Path(dreamstyle.__file__).parent / "examples"  # bundled with the package


def run(content, styles, **kwargs) -> Image.Image:
    options = dict(size=64, iterations=10, seed=0, progress=False, style_layers=LITE0_STYLE,
                   content_layers=LITE0_CONTENT, **WEIGHTS)
    options.update(kwargs)
    return dreamstyle.stylize(content, styles, **options)


def pixels(img) -> np.ndarray:
    """RGB values in [0, 1] of a PIL image or image file; float arrays pass through."""
    if isinstance(img, np.ndarray):
        return img
    if not isinstance(img, Image.Image):
        img = Image.open(img).convert("RGB")
    return np.asarray(img, dtype=np.float64) / 255


def mean_abs_diff(a, b) -> float:
    a, b = pixels(a), pixels(b)
    assert a.shape == b.shape
    return float(np.abs(a - b).mean())


def leftovers(folder, keep=()) -> list[str]:
    """Files in ``folder`` other than ``keep`` (temp files of an aborted save would show up here)."""
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


@pytest.fixture(scope="module")
def lite0() -> Backbone:
    return Backbone("efficientnet_lite0")


# --- the loss goes down ---------------------------------------------------------------------------

@pytest.mark.parametrize("optimizer, lr, iterations", [("adam", 0.05, 100), ("lbfgs", None, 150)])
def test_style_loss_falls(lite0, image_files, optimizer, lr, iterations):
    """The style loss of the result, measured independently with StyleLoss, is far below the content's."""
    style_taps = dict.fromkeys(LITE0_STYLE, 1.0)
    extractor = lite0.extractor(LITE0_STYLE)
    content, style = load_image(image_files.content), load_image(image_files.style)
    with torch.no_grad():
        loss = StyleLoss(style_taps, [extractor(to_tensor(style))])
        before = float(loss(extractor(to_tensor(content)), None))
    out = run(content, style, optimizer=optimizer, lr=lr, iterations=iterations)
    with torch.no_grad():
        after = float(loss(extractor(to_tensor(out)), None))
    assert before > 1.0  # a real style mismatch to begin with
    assert after * 5 <= before, (before, after)
    assert out.info["dreamstyle"]["final_loss"] < math.inf


def test_optimize_loop_history_falls(lite0, image_files):
    """optimize_image on a style-only objective: the history falls several-fold and Result is consistent."""
    extractor = lite0.extractor(LITE0_STYLE)
    content, style = to_tensor(load_image(image_files.content)), to_tensor(load_image(image_files.style))
    with torch.no_grad():
        objective = Objective([(StyleLoss(dict.fromkeys(LITE0_STYLE, 1.0), [extractor(style)]), 1.0)])
    result = optimize_image(content, lambda x: objective(extractor(x), x), 60, "adam", 0.05)
    assert result.iterations == len(result.history) == 60 and not result.interrupted
    assert result.history[-1] * 5 <= result.history[0], result.history[::10]
    assert result.loss == min(result.history)
    assert result.image.shape == content.shape and 0 <= result.image.min() and result.image.max() <= 1


def test_lbfgs_steps_are_projected_so_the_loss_is_the_returned_images(lite0, image_files):
    """L-BFGS runs unconstrained, but each step is clamped to [0, 1]: the best loss belongs to the image returned."""
    extractor = lite0.extractor(LITE0_STYLE)
    content, style = to_tensor(load_image(image_files.content)), to_tensor(load_image(image_files.style))
    with torch.no_grad():
        objective = Objective([(StyleLoss(dict.fromkeys(LITE0_STYLE, 1.0), [extractor(style)]), 1e3)])
    loss_fn = lambda x: objective(extractor(x), x)  # noqa: E731
    result = optimize_image(content, loss_fn, 30, "lbfgs")
    with torch.no_grad():
        shown = float(loss_fn(result.image)[0])
    assert shown == pytest.approx(result.loss, rel=1e-3)
    assert result.loss * 2 <= result.history[0]


# --- content only reproduces the content ------------------------------------------------------------

def test_content_only_from_noise_reconstructs_content(image_files):
    """From noise, a content loss on the first conv (a linear map of the pixels) recovers the photo."""
    content = load_image(image_files.content)
    out = run(content, image_files.style, style_weight=0, tv_weight=0, init="noise",
              content_layers=["stem.0"], iterations=60)
    noise = np.random.default_rng(0).random(pixels(content).shape)
    assert mean_abs_diff(noise, content) > 0.2  # where it started from: far away
    assert mean_abs_diff(out, content) < 0.03


def test_content_only_from_content_stays_put(image_files):
    content = load_image(image_files.content)
    out = run(content, image_files.style, style_weight=0, tv_weight=0, init="content", iterations=10)
    assert mean_abs_diff(out, content) < 0.01


def test_style_changes_the_image(image_files):
    content = load_image(image_files.content)
    out = run(content, image_files.stripes, iterations=20)
    assert out.size == content.size
    assert mean_abs_diff(out, content) > 0.02


# --- seeds ------------------------------------------------------------------------------------------

def test_same_seed_same_image_other_seed_other_image(image_files):
    a = run(image_files.content, image_files.style, init="noise", seed=7)
    b = run(image_files.content, image_files.style, init="noise", seed=7)
    c = run(image_files.content, image_files.style, init="noise", seed=8)
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert mean_abs_diff(a, c) > 0.01


# --- several styles ----------------------------------------------------------------------------------

def test_style_blend(image_files):
    single = run(image_files.content, image_files.style)
    first_only = run(image_files.content, [image_files.style, image_files.stripes], style_blend=[1.0, 0.0])
    mixed = run(image_files.content, [image_files.style, image_files.stripes], style_blend=[0.5, 0.5])
    # A blend that gives all weight to the first style is exactly that style alone.
    assert np.array_equal(np.asarray(single), np.asarray(first_only))
    assert mean_abs_diff(mixed, single) > 0.002
    params = mixed.info["dreamstyle"]
    assert params["style_blend"] == [0.5, 0.5] and len(params["styles"]) == 2


@pytest.mark.parametrize("blend", [[1.0], [1.0, 2.0, 3.0], [0.0, 0.0], [1.0, -1.0]])
def test_bad_style_blend(image_files, tmp_path, blend):
    out = tmp_path / "out.png"
    with pytest.raises(UserError) as info:
        run(image_files.content, [image_files.style, image_files.stripes], style_blend=blend, output=out)
    assert "\n" not in str(info.value) and "style_blend" in str(info.value)
    assert not out.exists()


# --- parameters in the output -----------------------------------------------------------------------

def test_output_png_carries_parameters(image_files, tmp_path, capsys):
    out = tmp_path / "out.png"
    img = run(image_files.content, image_files.style, output=out, iterations=5, seed=3)
    params = read_params(out)
    assert params == img.info["dreamstyle"]
    assert params["command"] == "stylize" and params["model"] == "efficientnet_lite0"
    assert params["size"] == 64 and params["iterations"] == 5 and params["seed"] == 3
    assert params["content"] == str(image_files.content) and params["styles"] == [str(image_files.style)]
    assert params["style_layers"] == dict.fromkeys(LITE0_STYLE, 1.0) and params["style_weight"] == 1e3
    assert math.isfinite(params["final_loss"]) and params["dreamstyle"] == dreamstyle.__version__
    assert Image.open(out).size == (64, 43)

    assert dreamstyle_cli.main(["--show-params", str(out)]) == 0
    assert json.loads(capsys.readouterr().out) == params


# --- the NaN guard ------------------------------------------------------------------------------------

def test_optimize_image_stops_on_nan():
    calls = []

    def loss_fn(x):
        calls.append(1)
        value = x.sum() * (math.nan if len(calls) >= 3 else 1.0)
        return value, {"x": float(value.detach())}

    with pytest.raises(RunError) as info:
        optimize_image(torch.rand(1, 3, 8, 8), loss_fn, 10, "adam", 0.01)
    msg = str(info.value)
    assert "nan" in msg and "step 3" in msg and "\n" not in msg


def test_stylize_nan_loss_writes_nothing(image_files, tmp_path, monkeypatch):
    real_tv = TVLoss.__call__
    calls = []

    def tv_that_breaks(self, feats, image):
        calls.append(1)
        value = real_tv(self, feats, image)
        return value * math.nan if len(calls) >= 4 else value

    monkeypatch.setattr(TVLoss, "__call__", tv_that_breaks)
    out = tmp_path / "out.png"
    with pytest.raises(RunError, match="nan"):
        run(image_files.content, image_files.style, output=out, iterations=10)
    assert len(calls) == 4
    assert not out.exists() and leftovers(tmp_path) == []


def test_stylize_absurd_learning_rate_cannot_blow_the_pixels_up(image_files, tmp_path):
    """L-BFGS with lr=1e30: the projected steps keep pixels in [0, 1], the loss finite, and the best image is kept."""
    out = tmp_path / "out.png"
    image = run(image_files.content, image_files.style, output=out, optimizer="lbfgs", lr=1e30)
    params = read_params(out)
    assert out.exists() and image.size == Image.open(out).size
    assert np.isfinite(params["final_loss"])


# --- Ctrl-C keeps the best image -----------------------------------------------------------------------

def test_optimize_image_interrupt_keeps_best(lite0, image_files):
    extractor = lite0.extractor(LITE0_STYLE)
    content, style = to_tensor(load_image(image_files.content)), to_tensor(load_image(image_files.style))
    with torch.no_grad():
        objective = Objective([(StyleLoss(dict.fromkeys(LITE0_STYLE, 1.0), [extractor(style)]), 1.0)])

    def on_step(step, loss, parts, image):
        if step == 3:
            raise KeyboardInterrupt

    result = optimize_image(content, lambda x: objective(extractor(x), x), 50, "lbfgs", None, on_step)
    assert result.interrupted and result.iterations == 3 and len(result.history) == 3
    assert result.image.shape == content.shape and torch.isfinite(result.image).all()
    assert 0 <= result.image.min() and result.image.max() <= 1
    assert result.loss == min(result.history) < math.inf


def test_stylize_interrupt_saves_best_image(image_files, tmp_path, monkeypatch):
    ctrl_c_at_step(monkeypatch, 3)
    out = tmp_path / "out.png"
    with pytest.raises(dreamstyle.Interrupted) as info:
        run(image_files.content, image_files.style, output=out, iterations=20)
    exc = info.value
    assert isinstance(exc, KeyboardInterrupt)
    assert exc.path == out and out.is_file() and (exc.step, exc.total) == (3, 20)
    with Image.open(out) as saved:
        saved.load()
        assert saved.format == "PNG" and saved.size == (64, 43)
    assert np.array_equal(np.asarray(exc.image), np.asarray(Image.open(out).convert("RGB")))
    assert read_params(out)["interrupted_at"] == 3


def test_cli_interrupt_exit_code(image_files, tmp_path, monkeypatch, capsys):
    ctrl_c_at_step(monkeypatch, 3)
    out = tmp_path / "out.png"
    code = dreamstyle_cli.main(["stylize", str(image_files.content), str(image_files.style), "-o", str(out),
                                "--size", "64", "--iterations", "20", "--quiet"])
    assert code == 130 and out.is_file()
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "interrupted at step 3 of 20" in err and str(out) in err


# --- intermediate images ---------------------------------------------------------------------------------

def test_save_every_writes_numbered_files(image_files, tmp_path):
    out = tmp_path / "out.png"
    run(image_files.content, image_files.style, output=out, iterations=6, save_every=2)
    assert leftovers(tmp_path) == ["out.00002.png", "out.00004.png", "out.00006.png", "out.png"]
    for name in ["out.00002.png", "out.00004.png", "out.00006.png"]:
        with Image.open(tmp_path / name) as img:
            img.load()
            assert img.size == (64, 43)
        assert read_params(tmp_path / name)["command"] == "stylize"


def test_save_every_needs_output(image_files):
    with pytest.raises(UserError, match="save_every"):
        run(image_files.content, image_files.style, save_every=2)


# --- precision ------------------------------------------------------------------------------------------

def test_bf16_reaches_about_the_fp32_loss(image_files):
    losses = {}
    for precision in ("fp32", "bf16"):
        img = run(image_files.content, image_files.style, iterations=30, precision=precision)
        losses[precision] = img.info["dreamstyle"]["final_loss"]
        assert img.info["dreamstyle"]["precision"] == precision
    assert all(math.isfinite(v) for v in losses.values())
    assert abs(losses["bf16"] - losses["fp32"]) <= 0.25 * losses["fp32"], losses


def test_bad_precision(image_files):
    with pytest.raises(UserError, match="precision"):
        run(image_files.content, image_files.style, precision="fp8")


# --- the coarse-to-fine pyramid ------------------------------------------------------------------------

def test_pyramid_sizes_512():
    sizes = pyramid_sizes(512)
    assert abs(sizes[0] - 256) <= 16 and sizes[-1] == 512
    assert sizes == sorted(sizes) and len(sizes) == 3
    for small, big in zip(sizes, sizes[1:]):
        assert big / small == pytest.approx(math.sqrt(2), rel=0.02)


@pytest.mark.parametrize("size", [362, 512, 724, 1000, 1024, 2048])
def test_pyramid_sizes_general(size):
    sizes = pyramid_sizes(size)
    assert sizes[-1] == size and sizes == sorted(set(sizes))
    assert 256 / math.sqrt(2) - 1 <= sizes[0] <= 256 + 1
    for small, big in zip(sizes, sizes[1:]):
        assert big / small == pytest.approx(math.sqrt(2), rel=0.02)


@pytest.mark.parametrize("size", [1, 64, 200, 256])
def test_pyramid_small_sizes_are_one_level(size):
    assert pyramid_sizes(size) == [size]


@pytest.mark.parametrize("total, size", [(300, 512), (300, 1024), (100, 724), (7, 512), (3, 512), (50, 2048)])
def test_split_iterations(total, size):
    sizes = pyramid_sizes(size)
    steps = split_iterations(total, sizes)
    assert len(steps) == len(sizes) and sum(steps) == total
    assert all(s >= 1 for s in steps)
    assert steps == sorted(steps, reverse=True)  # smaller levels get at least as many steps
    if total >= 100:
        assert all(a > b for a, b in zip(steps, steps[1:]))


class _Recorder:
    """A task for the schedule driver that records its calls; its 'image' is the list of sizes it went through."""

    def __init__(self):
        self.calls = []

    def bind(self, size):
        self.calls.append(("bind", size))
        return f"criterion@{size}"

    def start(self, criterion, below):
        self.calls.append(("start", criterion, below))
        return [] if below is None else list(below)

    def optimize(self, criterion, start, steps):
        self.calls.append(("optimize", criterion, steps))
        return [*start, (criterion, steps)]


def test_coarse_to_fine_binds_starts_and_optimizes_each_level_from_the_one_below():
    task = _Recorder()
    result = coarse_to_fine(task, [256, 362, 512], [37, 29, 24])
    assert result == [("criterion@256", 37), ("criterion@362", 29), ("criterion@512", 24)]
    assert task.calls[:3] == [("bind", 256), ("start", "criterion@256", None), ("optimize", "criterion@256", 37)]
    assert task.calls[4] == ("start", "criterion@362", [("criterion@256", 37)])  # the level below's result
    assert [c[0] for c in task.calls] == ["bind", "start", "optimize"] * 3


@pytest.mark.parametrize("sizes, steps", [([], []), ([256, 512], [10])])
def test_coarse_to_fine_refuses_a_schedule_without_one_step_count_per_size(sizes, steps):
    with pytest.raises(ValueError, match="one step count per size"):
        coarse_to_fine(_Recorder(), sizes, steps)


def test_octave_sizes():
    assert octave_sizes(512, 3, 1.4) == [261, 366, 512]
    assert octave_sizes(100, 4, 2.0) == [32, 32, 50, 100]  # never under 32 px
    assert octave_sizes(512, 1, 1.4) == [512]


@pytest.mark.parametrize("total", [1, 2])
def test_split_iterations_refuses_fewer_steps_than_levels(total):
    with pytest.raises(ValueError):
        split_iterations(total, [256, 362, 512])


def test_stylize_runs_the_pyramid(image_files, monkeypatch):
    """size 300 runs at 212 then 300 px; the levels' steps add up to --iterations."""
    levels = []
    real = stylize_task.optimize_image

    def recording(init, loss_fn, iterations, *args, **kwargs):
        levels.append((max(init.shape[-2:]), iterations))
        return real(init, loss_fn, iterations, *args, **kwargs)

    monkeypatch.setattr(stylize_task, "optimize_image", recording)
    out = run(image_files.content, image_files.style, size=300, iterations=3)
    assert [s for s, _ in levels] == [212, 300] and sum(n for _, n in levels) == 3
    assert max(out.size) == 300
    levels.clear()
    run(image_files.content, image_files.style, size=300, iterations=3, pyramid=False)
    assert levels == [(300, 3)]
    levels.clear()  # fewer steps than levels: the coarsest levels are dropped, never given 0 steps
    run(image_files.content, image_files.style, size=300, iterations=1)
    assert levels == [(300, 1)]


# --- bad values are UserErrors, checked before any slow work -------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    (dict(size=0), "size"), (dict(size=-5), "size"), (dict(style_weight=-1.0), "style_weight"),
    (dict(content_weight=-1.0), "content_weight"), (dict(tv_weight=math.nan), "tv_weight"),
    (dict(iterations=0), "iterations"), (dict(optimizer="sgd"), "optimizer"), (dict(model="nope"), "nope"),
    (dict(style_scale=0.0), "style_scale"), (dict(save_every=-1), "save_every"),
    (dict(init="no_such_file.png"), "init"), (dict(style_layers=["stem:x"]), "style_layers"),
    (dict(style_layers=["stem:-1"]), "style_layers"), (dict(device="tpu"), "device"),
])
def test_bad_values(image_files, monkeypatch, kwargs, match):
    def no_backbone(*args, **kwargs):
        raise AssertionError("the backbone was loaded before the arguments were checked")

    monkeypatch.setattr(session, "get_backbone", no_backbone)
    with pytest.raises(UserError) as info:
        run(image_files.content, image_files.style, **kwargs)
    assert match in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("lr", [-1.0, math.nan])
def test_bad_learning_rate_is_user_error(image_files, lr):
    with pytest.raises(UserError):
        run(image_files.content, image_files.style, lr=lr)


@pytest.mark.parametrize("scale", [math.nan, math.inf])
def test_bad_style_scale_is_user_error(image_files, scale):
    with pytest.raises(UserError):
        run(image_files.content, image_files.style, style_scale=scale)


def test_image_too_small_for_network_is_dreamstyle_error(image_files):
    with pytest.raises(UserError, match="too small"):
        run(image_files.content, image_files.style, model="squeezenet1_1", weights="random", size=16,
            style_layers=["fire9"], content_layers=["fire9"])


def _edge_ratios(image: Image.Image, rows: int = 2) -> list[float]:
    """Fine detail (mean |Laplacian|) of the top and bottom rows and the left and right columns,
    each relative to the inside's."""
    x = pixels(image)
    p = np.pad(x, ((1, 1), (1, 1), (0, 0)), mode="edge")
    lap = np.abs(4 * x - p[:-2, 1:-1] - p[2:, 1:-1] - p[1:-1, :-2] - p[1:-1, 2:]).mean(2)
    inside = lap[8:-8, 8:-8].mean()
    return [float(e.mean() / inside) for e in (lap[:rows], lap[-rows:], lap[:, :rows], lap[:, -rows:])]


def test_border_rows_are_styled_like_the_inside():
    """The edge line (issue 6): on a flat photo every stroke comes from the style, so the rows and
    columns at the border must carry about the inside's detail: no line of noise along one edge
    (> 1.25) and no unstyled strip along the opposite one (< 0.75). Without the mirrored margin the
    bottom rows come out less styled (0.69 on an AMX Xeon, against 0.85 with it), which shows the
    measure can fail; the right-hand columns sit at 0.80 there with or without it, hence 0.75.

    It tests the margin, so it starts from the photo: from the palette start (a flat patch of the
    painting's mean colour, far from the photo's) the borders carry 1.2-1.5x the inside's detail, an
    open point in BENCHMARKS.md (issue 18). The picture depends on the thread count (sums in another
    order): the suite runs on 1 thread, and with 2 on a Zen 1 EPYC the top rows reach 1.32x, so the
    margin does not settle the edge on every processor."""
    flat = Image.new("RGB", (320, 256), (128, 120, 110))
    options = dict(size=256, iterations=40, seed=0, progress=False, init="content")
    styled = dreamstyle.stylize(flat, EXAMPLES / "starry_night.jpg", **options)
    assert all(0.75 < r < 1.25 for r in _edge_ratios(styled)), _edge_ratios(styled)
    bare = dreamstyle.stylize(flat, EXAMPLES / "starry_night.jpg", edge_pad=False, **options)
    assert min(_edge_ratios(bare)) < 0.75, _edge_ratios(bare)  # fails the bound the margin's output meets


# --- presets ----------------------------------------------------------------------------------------

def test_a_preset_gives_starting_values_that_explicit_options_override(image_files):
    from dreamstyle.settings import PRESETS, StylizeSettings, make

    preview = make(StylizeSettings, {"preset": "preview"})
    assert (preview.size, preview.iterations, preview.pyramid) == (256, 30, False)
    mine = make(StylizeSettings, {"preset": "preview", "size": 96, "pyramid": True})
    assert (mine.size, mine.iterations, mine.pyramid) == (96, 30, True)
    assert make(StylizeSettings, {}).size == 512 and PRESETS["default"] == {}
    assert make(StylizeSettings, {"preset": "print"}).size == 2048
    out = run(image_files.content, image_files.style, preset="preview", size=48, iterations=None)
    params = out.info["dreamstyle"]
    assert params["preset"] == "preview" and params["iterations"] == 30 and max(out.size) == 48


def test_an_unknown_preset_is_one_line(cli, image_files, tmp_path):
    result = cli.run("stylize", image_files.content, image_files.style, "-o", tmp_path / "o.png", "--preset", "huge")
    line = cli.one_line_error(result)
    assert result.returncode == 2 and "--preset" in line and "preview" in line

"""The layer explorer: grid layout and saved parameters, feature visualization, channel ranking, bad input."""

from __future__ import annotations

import math

import pytest
import torch

from dreamstyle import explore
from dreamstyle.backbones import Backbone
from dreamstyle.errors import UserError
from dreamstyle.images import load_image, read_params, resize_long_side, to_tensor
from dreamstyle.tasks.explore import FourierImage, visualize_channels

MODEL = "efficientnet_lite0"
TAP = "blocks.3"  # 40 channels, stride 8: an 8 x 8 map at 64 px
FAST = dict(device="cpu", progress=False)


def label_height(lines: int) -> int:
    return 4 + 12 * lines  # sheet._grid: 4 px margin and 12 px per label line


def grid_size(n: int, cell_w: int, cell_h: int, lines: int) -> tuple[int, int]:
    columns = math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    return columns * cell_w, rows * (cell_h + label_height(lines))


@pytest.fixture(scope="module")
def extractor():
    return Backbone(MODEL).extractor([TAP])


def mean_activation(extractor, images: torch.Tensor) -> torch.Tensor:
    """(images, channels): each image's mean activation of every channel of TAP."""
    with torch.no_grad():
        return extractor(images)[TAP].mean(dim=(2, 3))


def test_feature_grid_layout_and_params(tmp_path):
    out = tmp_path / "features.png"
    grid = explore(MODEL, TAP, output=out, channels=[0, 5, 7], size=64, iterations=2, **FAST)
    assert grid.size == grid_size(3, 64, 64, lines=1) == (128, 160)
    params = read_params(out)
    assert params["command"] == "explore" and params["mode"] == "features"
    assert (params["model"], params["tap"], params["channels"]) == (MODEL, TAP, [0, 5, 7])
    assert (params["size"], params["iterations"], params["seed"]) == (64, 2, 0)


def test_count_is_capped_by_the_taps_channels():
    grid = explore(MODEL, "blocks.0", count=20, size=32, iterations=1, **FAST)  # blocks.0 has 16 channels
    assert grid.size == grid_size(16, 32, 32, lines=1)


def test_image_grid_layout_and_params(tmp_path, image_files):
    out = tmp_path / "image.png"
    grid = explore(MODEL, TAP, output=out, image=image_files.content, count=5, size=64, **FAST)
    assert grid.size == grid_size(5, 64, 43, lines=2) == (192, 142)  # the content image is 64 x 43
    params = read_params(out)
    assert params["mode"] == "image" and params["tap"] == TAP and len(params["channels"]) == 5
    assert params["image"] == str(image_files.content)


def test_feature_visualization_excites_its_channel(extractor):
    channels = [0, 1, 2, 3]
    start = FourierImage(len(channels), 64, torch.Generator().manual_seed(0), torch.device("cpu"))()
    images = visualize_channels(extractor, TAP, channels, size=64, iterations=24)
    assert images.shape == (4, 3, 64, 64) and 0 <= images.min() and images.max() <= 1
    before = mean_activation(extractor, start)[:, channels]
    after = mean_activation(extractor, images)[:, channels]  # after[i, j]: image i, channel j
    for i in range(len(channels)):
        own = after[i, i].item()
        assert own > before[i, i].item() + 1.0, (i, before[i, i].item(), own)
        # Each image excites its own channel more than the images made for the other channels do.
        others = torch.cat([after[:i, i], after[i + 1:, i]])
        assert own > others.max().item(), (i, after)


def test_image_mode_shows_the_most_active_channels(tmp_path, image_files, extractor):
    out = tmp_path / "ranked.png"
    explore(MODEL, TAP, output=out, image=image_files.astronaut, count=6, size=64, **FAST)
    x = to_tensor(resize_long_side(load_image(image_files.astronaut), 64))
    means = mean_activation(extractor, x)[0]
    expected = means.argsort(descending=True)[:6].tolist()
    assert read_params(out)["channels"] == expected
    assert means[expected[0]] >= means[expected[-1]] >= means.sort(descending=True).values[6]


def test_image_mode_keeps_given_channels_in_order(tmp_path, image_files):
    out = tmp_path / "given.png"
    photo = load_image(image_files.content)  # a PIL image works as well as a path
    explore(MODEL, TAP, output=out, image=photo, channels=[9, 2], size=64, **FAST)
    params = read_params(out)
    assert params["channels"] == [9, 2] and params["image"] == "<image>"


def test_other_network_with_random_weights():
    grid = explore("squeezenet1_1", "fire2", weights="random", channels=[1, 3], size=64, iterations=2, **FAST)
    assert grid.size == grid_size(2, 64, 64, lines=1)


def one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert message and "\n" not in message
    return message


@pytest.mark.parametrize("kwargs, expect", [
    (dict(tap=TAP, channels=[3, 40]), "tap blocks.3 has 40 channels"),
    (dict(tap=TAP, channels=[-1]), "has 40 channels"),
    (dict(tap=TAP, channels=[]), "channels is empty"),
    (dict(tap="blocks.99"), "unknown tap 'blocks.99'"),
    (dict(tap=None), "tap"),
    (dict(tap=TAP, count=0), "count"),
    (dict(tap=TAP, size=8), "size"),
    (dict(tap=TAP, iterations=0), "iterations"),
    (dict(tap=TAP, model="alexnet"), "unknown model 'alexnet'"),
    (dict(tap=TAP, output="grid.gif"), "unsupported extension"),
    (dict(tap="head", count=100), "64 or fewer"),
])
def test_bad_input_is_a_one_line_user_error(kwargs, expect, tmp_path):
    kwargs = {"model": MODEL, "iterations": 1, "size": 32, **kwargs}
    if "output" in kwargs:
        kwargs["output"] = tmp_path / kwargs["output"]
    with pytest.raises(UserError) as excinfo:
        explore(**kwargs, **FAST)
    assert expect in one_line_error(excinfo)


def test_cli_explore(cli, image_files, tmp_path):
    out = tmp_path / "grid.png"
    proc = cli.run("explore", "--tap", "blocks.3", "-o", out, "--count", "4", "--size", "64", "--iterations", "4",
                   "--quiet")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert read_params(out)["tap"] == "blocks.3" and read_params(out)["channels"] == [0, 1, 2, 3]
    proc = cli.run("explore", "efficientnet_lite0", "--tap", "blocks.3", "--image", image_files.content, "-o", out,
                   "--count", "3", "--quiet")
    assert proc.returncode == 0 and read_params(out)["mode"] == "image"
    bad = cli.run("explore", "--tap", "blocks.3", "--channels", "0,999", "-o", tmp_path / "bad.png", "--quiet")
    assert bad.returncode == 2 and "999" in cli.one_line_error(bad)
    assert not (tmp_path / "bad.png").exists()


def test_ctrl_c_keeps_the_pictures_so_far(tmp_path, monkeypatch):
    """An interrupted feature visualization still writes its grid, and says where it stopped."""
    from dreamstyle import Interrupted
    from dreamstyle.tasks import explore as explore_module

    calls = {"n": 0}
    real = explore_module.random_transform

    def interrupt_at_third_step(images, generator):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(images, generator)

    monkeypatch.setattr(explore_module, "random_transform", interrupt_at_third_step)
    out = tmp_path / "grid.png"
    with pytest.raises(Interrupted) as info:
        explore(MODEL, TAP, output=out, count=2, size=64, iterations=50, **FAST)
    assert info.value.step == 2 and info.value.path == out
    assert read_params(out)["interrupted_at"] == 2


def test_a_batch_that_cannot_fit_is_refused_up_front(tmp_path, monkeypatch):
    from dreamstyle.optimize import memory

    monkeypatch.setattr(memory, "available_bytes", lambda device: memory.BASE_BYTES + 2**20)
    out = tmp_path / "grid.png"
    with pytest.raises(UserError, match="fewer channels") as info:
        explore(MODEL, TAP, output=out, count=16, size=128, iterations=1, **FAST)
    assert "\n" not in str(info.value) and not out.exists()

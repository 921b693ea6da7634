"""Backbones: pretrained weights classify real photos, taps match the real feature maps of every
network, weights load from files (and fail clearly), and ``dreamstyle layers`` lists taps without weights."""

from __future__ import annotations

import json
import os
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from skimage import data
from torch import nn

from dreamstyle.backbones import DEFAULT_BACKBONE, SPECS, Backbone, get_spec, list_taps, resolve_taps
from dreamstyle.errors import UserError
from dreamstyle.frontends import cli as dreamstyle_cli
from dreamstyle.images import read_params

SQUEEZENET_WEIGHTS = Path(__file__).resolve().parents[2] / "shared/weights/squeezenet1_0_imagenet.pth"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO_OR_CUP = {967, 968}
HEAVY = {"vgg19", "vgg16", "resnet50", "inception_v3"}


def user_error(fn, *args, **kwargs) -> str:
    """Call fn; require a UserError with a non-empty one-line message, and return the message."""
    with pytest.raises(UserError) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert msg.strip() and "\n" not in msg, msg
    return msg


def preprocess(array: np.ndarray, mean, std) -> torch.Tensor:
    """224x224 bilinear (antialiased) resize of the whole photo, RGB in [0, 1], then (x - mean) / std."""
    x = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)[None].float() / 255
    x = F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def top1(model: nn.Module, array: np.ndarray, mean, std) -> int:
    with torch.no_grad():
        return int(model(preprocess(array, mean, std)).argmax(1))


def save_state_dict(path: Path, state: dict) -> Path:
    torch.save(state, path)
    return path


# --- pretrained weights classify real photos -----------------------------------------------------

@pytest.fixture(scope="module")
def lite0() -> Backbone:
    return Backbone("efficientnet_lite0")


def test_default_backbone_is_the_offline_one():
    assert DEFAULT_BACKBONE == "efficientnet_lite0"
    assert get_spec(DEFAULT_BACKBONE).offline


@pytest.mark.parametrize("photo, classes", [("chelsea", CATS), ("coffee", ESPRESSO_OR_CUP)])
def test_lite0_bundled_weights_classify(lite0, photo, classes):
    spec = lite0.spec
    assert top1(lite0.model, getattr(data, photo)(), spec.mean, spec.std) in classes


def test_lite0_model_is_frozen_eval(lite0):
    assert not lite0.model.training
    assert not any(p.requires_grad for p in lite0.model.parameters())
    assert not any(t.is_meta for t in [*lite0.model.parameters(), *lite0.model.buffers()])


@pytest.mark.parametrize("photo, classes", [("chelsea", CATS), ("coffee", ESPRESSO_OR_CUP)])
def test_bundled_squeezenet_weights_classify_offline(photo, classes, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # nothing cached, nothing downloaded
    backbone = Backbone("squeezenet1_0")
    assert backbone.spec.offline
    assert top1(backbone.model, getattr(data, photo)(), IMAGENET_MEAN, IMAGENET_STD) in classes


@pytest.mark.skipif(not SQUEEZENET_WEIGHTS.is_file(), reason=f"{SQUEEZENET_WEIGHTS} is not available")
def test_bundled_squeezenet_weights_are_the_shared_ones_exactly():
    from dreamstyle.backbones.packed import squeezenet1_0_path, unpack

    shared = torch.load(SQUEEZENET_WEIGHTS, weights_only=True)
    packed = unpack(squeezenet1_0_path())
    assert set(packed) == set(shared)
    assert all(np.array_equal(packed[k], shared[k].numpy()) for k in shared)


@pytest.mark.skipif(not SQUEEZENET_WEIGHTS.is_file(), reason=f"{SQUEEZENET_WEIGHTS} is not available")
@pytest.mark.parametrize("photo, classes", [("chelsea", CATS), ("coffee", ESPRESSO_OR_CUP)])
def test_real_squeezenet_weights_classify(photo, classes):
    backbone = Backbone("squeezenet1_0", weights=SQUEEZENET_WEIGHTS)
    assert backbone.spec.mean == IMAGENET_MEAN and backbone.spec.std == IMAGENET_STD
    assert top1(backbone.model, getattr(data, photo)(), IMAGENET_MEAN, IMAGENET_STD) in classes


# --- every backbone: random build, taps that match the real feature maps ------------------------

def probe_size(name: str) -> int:
    """Input side for the shape check: the spec's probe size, but smaller for the slow big networks."""
    spec = get_spec(name)
    return 128 if name in HEAVY and spec.probe_size == 224 else spec.probe_size


@pytest.mark.parametrize("name", list(SPECS))
def test_backbone_taps_match_feature_shapes(name):
    spec = get_spec(name)
    backbone = Backbone(name, weights="random")
    assert isinstance(backbone.model, nn.Module) and not backbone.model.training
    assert not any(p.requires_grad for p in backbone.model.parameters())

    listed = list_taps(spec)
    style, content = resolve_taps(spec, list(spec.style_taps)), resolve_taps(spec, list(spec.content_taps))
    assert len(style) == len(spec.style_taps) >= 1 and len(content) == len(spec.content_taps) >= 1
    assert all(tap in listed for tap in [*style, *content])

    extractor = backbone.extractor([*spec.style_taps, *spec.content_taps])
    size = probe_size(name)
    with torch.no_grad():
        out = extractor(torch.rand(1, 3, size, size))
    assert set(out) == {t.name for t in extractor.taps}
    for tap in extractor.taps:
        feat = out[tap.name]
        assert tap in listed, tap
        assert feat.dtype == torch.float32 and feat.dim() == 4 and feat.shape[0] == 1
        assert feat.shape[1] == tap.channels, (tap, feat.shape)
        expected = size / tap.stride
        for side in feat.shape[-2:]:
            assert abs(side - expected) <= max(1.5, 0.12 * expected), (tap, feat.shape, size)
        assert torch.isfinite(feat).all()


@pytest.mark.parametrize("name", list(SPECS))
def test_list_taps_is_ordered_and_named(name):
    taps = list_taps(get_spec(name))
    names = [t.name for t in taps]
    assert len(names) == len(set(names)) > 5
    assert all(t.channels > 0 and t.stride >= 1 for t in taps)
    # Forward order: the first tap sits at the finest resolution and the last at the coarsest.
    assert taps[0].stride == min(t.stride for t in taps) and taps[-1].stride == max(t.stride for t in taps)
    # Every default tap is listed, under the name the registry uses.
    spec = get_spec(name)
    assert set(spec.style_taps) | set(spec.content_taps) <= set(names)


# --- weights from a file ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def torchvision_state(tmp_path_factory):
    """Random torchvision state dicts saved to .pth files, by backbone name (built once per module)."""
    folder = tmp_path_factory.mktemp("weights")
    cache = {}

    def get(name: str) -> tuple[dict, Path]:
        if name not in cache:
            torch.manual_seed(0)
            model = getattr(torchvision.models, name)().eval()
            state = model.state_dict()
            cache[name] = (model, state, save_state_dict(folder / f"{name}.pth", state))
        return cache[name]

    return get


@pytest.mark.parametrize("name", ["squeezenet1_1", "mobilenet_v3_large", "resnet50"])
def test_weights_file_loads_exactly(torchvision_state, name):
    model, state, path = torchvision_state(name)
    backbone = Backbone(name, weights=path)
    loaded = backbone.model.state_dict()
    assert loaded.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key
    first = next(iter(k for k in state if k.endswith("weight")))
    assert not torch.equal(state[first], torch.zeros_like(state[first]))
    x = torch.rand(1, 3, 96, 96)
    with torch.no_grad():
        assert torch.allclose(backbone.model(x), model(x), atol=1e-5)


@pytest.mark.parametrize("name", ["squeezenet1_1", "mobilenet_v3_large"])
def test_weights_file_without_classifier_loads(torchvision_state, tmp_path, name):
    _, state, _ = torchvision_state(name)
    head = get_spec(name).head
    features = {k: v for k, v in state.items() if not k.startswith(head)}
    assert len(features) < len(state)
    backbone = Backbone(name, weights=save_state_dict(tmp_path / "features.pth", features))
    loaded = backbone.model.state_dict()
    for key, value in features.items():
        assert torch.equal(loaded[key], value), key
    heads = [v for k, v in loaded.items() if k.startswith(head)]
    assert heads and all(not v.is_meta and torch.count_nonzero(v) == 0 for v in heads)
    with torch.no_grad():  # the feature taps work
        feats = backbone.extractor(list(get_spec(name).style_taps))(torch.rand(1, 3, 64, 64))
    assert all(torch.isfinite(f).all() for f in feats.values())


def test_weights_file_wrapped_in_state_dict_key(torchvision_state, tmp_path):
    _, state, _ = torchvision_state("squeezenet1_1")
    path = save_state_dict(tmp_path / "checkpoint.pth", {"state_dict": state, "epoch": 3})
    loaded = Backbone("squeezenet1_1", weights=path).model.state_dict()
    assert torch.equal(loaded["features.0.weight"], state["features.0.weight"])


def test_weights_file_with_partial_classifier_keeps_what_it_has(torchvision_state, tmp_path):
    _, state, _ = torchvision_state("squeezenet1_1")
    partial = {k: v for k, v in state.items() if k != "classifier.1.bias"}
    backbone = Backbone("squeezenet1_1", weights=save_state_dict(tmp_path / "partial.pth", partial))
    assert torch.equal(backbone.model.classifier[1].weight, state["classifier.1.weight"])


@pytest.mark.parametrize("target", ["squeezenet1_0", "mobilenet_v3_large", "efficientnet_lite0"])
def test_weights_of_wrong_architecture(torchvision_state, target):
    _, _, path = torchvision_state("squeezenet1_1")  # same keys as squeezenet1_0, other shapes
    msg = user_error(Backbone, target, weights=path)
    assert str(path) in msg and "do not fit" in msg and target in msg


def test_weights_file_that_is_text(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("these are not weights\nsecond line\n")
    msg = user_error(Backbone, "squeezenet1_1", weights=path)
    assert str(path) in msg and "cannot read weights file" in msg


@pytest.mark.parametrize("content", [[1, 2, 3], {"a": 1}])
def test_weights_file_that_is_not_a_state_dict(tmp_path, content):
    path = save_state_dict(tmp_path / "other.pth", content)
    assert str(path) in user_error(Backbone, "squeezenet1_1", weights=path)


def test_weights_file_missing(tmp_path):
    msg = user_error(Backbone, "squeezenet1_1", weights=tmp_path / "nope.pth")
    assert "nope.pth" in msg and "not found" in msg


def test_cli_stylize_with_weights_file(cli, torchvision_state, image_files, tmp_path):
    _, _, path = torchvision_state("squeezenet1_1")
    out = tmp_path / "out.png"
    proc = cli.run("stylize", image_files.content, image_files.style, "-o", out, "--model", "squeezenet1_1",
                   "--weights", path, "--iterations", 3, "--size", 64, "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    params = read_params(out)
    assert params["model"] == "squeezenet1_1" and params["weights"] == str(path)


# --- no network: clear download errors ----------------------------------------------------------

def test_download_failure_explains_offline_options(monkeypatch, tmp_path):
    def offline(url, dst, *args, **kwargs):
        raise urllib.error.URLError("offline")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    url = torchvision.models.get_model_weights("vgg19").DEFAULT.url
    cache = tmp_path / "hub" / "checkpoints" / os.path.basename(url)
    msg = user_error(Backbone, "vgg19")
    assert url in msg
    assert str(cache) in msg
    assert "--weights FILE" in msg and "efficientnet_lite0" in msg
    assert not cache.exists()


# --- unknown names ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["squeezenet1_1", "vgg19"])
def test_unknown_tap_lists_valid_names(name):
    spec = get_spec(name)
    msg = user_error(resolve_taps, spec, [next(iter(spec.style_taps)), "no_such_tap"])
    assert "no_such_tap" in msg and f"dreamstyle layers {name}" in msg and len(msg) < 300
    assert str(len(list_taps(spec))) in msg  # says how many there are to list
    near = user_error(resolve_taps, spec, [next(iter(spec.style_taps)) + "x"])
    assert "nearest" in near and next(iter(spec.style_taps)) in near


def test_unknown_tap_through_backbone():
    msg = user_error(Backbone("squeezenet1_1", weights="random").extractor, ["relu1", "relu99"])
    assert "relu99" in msg and "dreamstyle layers squeezenet1_1" in msg


def test_unknown_model_lists_models():
    msg = user_error(get_spec, "nope")
    assert "nope" in msg and all(name in msg for name in SPECS)


# --- dreamstyle layers ----------------------------------------------------------------------------

def parse_layers(text: str) -> list[tuple[str, int, int]]:
    rows = []
    for line in text.splitlines():
        fields = line.split()
        assert len(fields) >= 3, line
        rows.append((fields[0], int(fields[1]), int(fields[2])))
    return rows


@pytest.fixture
def no_downloads(monkeypatch, tmp_path):
    """An empty TORCH_HOME and a download function that fails the test if anything tries to fetch."""
    home = tmp_path / "torch_home"
    home.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(home))

    def forbidden(url, *args, **kwargs):
        raise AssertionError(f"tried to download {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", forbidden)
    return home


@pytest.mark.parametrize("name", list(SPECS))
def test_layers_lists_every_tap_without_weights(name, no_downloads, capsys):
    taps = list_taps(get_spec(name))
    assert dreamstyle_cli.main(["layers", name]) == 0
    text = capsys.readouterr().out
    assert parse_layers(text) == [(t.name, t.channels, t.stride) for t in taps]

    assert dreamstyle_cli.main(["layers", name, "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["model"] == name
    assert [(r["name"], r["channels"], r["stride"]) for r in listing["taps"]] == parse_layers(text)
    spec = get_spec(name)
    defaults = {r["name"]: r["default"] for r in listing["taps"] if r["default"]}
    assert {n for n, roles in defaults.items() if "style" in roles} == set(spec.style_taps)
    assert {n for n, roles in defaults.items() if "content" in roles} == set(spec.content_taps)
    assert list(no_downloads.iterdir()) == []


def test_layers_default_model(capsys):
    assert dreamstyle_cli.main(["layers"]) == 0
    rows = parse_layers(capsys.readouterr().out)
    assert rows == [(t.name, t.channels, t.stride) for t in list_taps(get_spec(DEFAULT_BACKBONE))]


def test_layers_cli_needs_no_weights(cli, tmp_path):
    """The command, for a network whose weights would have to be downloaded, with an empty TORCH_HOME."""
    home = tmp_path / "empty_torch_home"
    home.mkdir()
    text_run = cli.submit("layers", "vgg19", TORCH_HOME=str(home), real=True)  # real `python -m dreamstyle`
    json_run = cli.submit("layers", "vgg19", "--json", TORCH_HOME=str(home))
    text, as_json = text_run.result(), json_run.result()
    assert text.returncode == 0 and as_json.returncode == 0, (text.stderr, as_json.stderr)
    rows = parse_layers(text.stdout)
    assert rows[:2] == [("conv1_1", 64, 1), ("relu1_1", 64, 1)]
    assert ("relu4_2", 512, 8) in rows and ("relu5_1", 512, 16) in rows
    listing = json.loads(as_json.stdout)
    assert [(r["name"], r["channels"], r["stride"]) for r in listing["taps"]] == rows
    assert list(home.rglob("*")) == []


def test_layers_unknown_model(capsys):
    assert dreamstyle_cli.main(["layers", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "unknown model 'nope'" in err and "vgg19" in err

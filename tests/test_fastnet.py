"""Feed-forward stylization: the transformer network, train, model files, apply (PyTorch and ONNX), export."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import dreamstyle
from conftest import ctrl_c_at_step, small
from dreamstyle.errors import SettingError, UserError
from dreamstyle.fastnet import bundled_styles
from dreamstyle.fastnet.modelfile import load_model, save_model
from dreamstyle.fastnet.network import TransformerNet, parameter_count
from dreamstyle.images import read_params

FAST = dict(size=64, batch_size=2, progress=False, seed=0)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """A tiny training folder: five photos in two levels, one broken file, one text file."""
    from skimage import data

    root = tmp_path_factory.mktemp("photos")
    (root / "sub").mkdir()
    for i, name in enumerate(("astronaut", "chelsea", "coffee", "rocket", "camera")):
        folder = root / "sub" if i % 2 else root
        small(getattr(data, name)(), 96).save(folder / f"{name}.jpg")
    (root / "broken.jpg").write_bytes(b"not a jpeg at all")
    (root / "notes.txt").write_text("ignored")
    return root


@pytest.fixture(scope="module")
def painting(tmp_path_factory) -> Path:
    from skimage import data

    path = tmp_path_factory.mktemp("painting") / "painting.png"
    small(data.coffee(), 128).save(path)
    return path


@pytest.fixture(scope="module")
def trained(photos, painting, tmp_path_factory) -> Path:
    """A model (the default light network) trained for 6 steps (checkpoints every 3)."""
    out = tmp_path_factory.mktemp("model") / "style.pt"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dreamstyle.train(painting, out, data=str(photos), max_steps=6, checkpoint_every=3, **FAST)
    assert any("skipped 1 unreadable" in str(w.message) for w in caught)  # broken.jpg, counted at the end
    return out


def test_network_sizes_and_shapes():
    standard, small_net = TransformerNet("standard"), TransformerNet("small")
    assert 1.5e6 < parameter_count(standard) < 1.9e6  # Johnson et al.'s widths
    assert parameter_count(small_net) <= 0.3e6
    x = torch.rand(1, 3, 37, 50)  # sides that are not multiples of 4
    for net in (standard, small_net):
        y = net.eval()(x)
        assert y.shape == x.shape and float(y.detach().min()) >= 0 and float(y.detach().max()) <= 1


def test_the_light_network_convolves_nothing_at_full_size_and_costs_a_quarter(photos, painting, tmp_path):
    """``light`` (issue 21): any size in and out; no convolution sees the full-size image; at most a quarter
    of ``small``'s multiply-adds; it trains, and its ONNX export matches PyTorch at a size it never saw."""
    from torch.utils.flop_counter import FlopCounterMode

    light, small_net = TransformerNet("light").eval(), TransformerNet("small").eval()
    x = torch.rand(1, 3, 37, 50)
    seen: list[tuple[int, int]] = []
    hooks = [m.register_forward_hook(lambda m, args, out: seen.append(tuple(args[0].shape[-2:])))
             for m in light.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        y = light(x)
    for h in hooks:
        h.remove()
    assert y.shape == x.shape and 0 <= float(y.min()) and float(y.max()) <= 1
    assert seen and max(max(s) for s in seen) <= 32  # half of the padded 40 x 52 at most, a few pixels of pad
    flops = []
    for net in (light, small_net):
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            net(torch.rand(1, 3, 256, 256))
        flops.append(counter.get_total_flops())
    assert flops[0] <= flops[1] / 4, flops

    out = tmp_path / "light.pt"
    dreamstyle.train(painting, out, data=str(photos), max_steps=2, arch="light", **FAST)
    assert load_model(out).net.arch == "light"
    reports = dreamstyle.export(out, tmp_path / "light.onnx", progress=False)
    assert reports[0].max_abs_diff < 1e-4


def test_model_file_loads_with_weights_only_and_carries_metadata(trained, painting):
    blob = torch.load(trained, weights_only=True)
    assert blob["format"] == "dreamstyle-style-model" and blob["arch"] == "light"
    assert "train" not in blob  # a finished model has no optimizer state
    model = load_model(trained)
    assert model.meta["style"] == str(painting) and model.meta["steps"] == 6
    assert model.meta["dreamstyle"] == dreamstyle.__version__ and model.meta["arch"] == "light"
    assert model.meta["model"] == "efficientnet_lite0" and model.meta["size"] == 64


def test_training_lowers_the_loss(photos, painting, tmp_path):
    """A few dozen steps on tiny crops: the loss falls (the first steps' mean against the last steps')."""
    losses = []
    dreamstyle.train(painting, tmp_path / "m.pt", data=str(photos), max_steps=24, lr=3e-3,
                     on_event=lambda e: losses.append(e.loss) if isinstance(e, dreamstyle.Step) else None, **FAST)
    assert len(losses) == 24
    assert np.mean(losses[-4:]) < 0.87 * np.mean(losses[:4]), [round(x) for x in losses]


def test_the_palette_loss_is_trained_only_when_weighted_and_recorded(photos, painting, tmp_path):
    parts: list[dict] = []
    record = lambda e: parts.append(e.parts) if isinstance(e, dreamstyle.Step) else None
    plain = dreamstyle.train(painting, tmp_path / "plain.pt", data=str(photos), max_steps=2, on_event=record, **FAST)
    assert "palette" not in parts[-1] and plain.meta["palette_weight"] == 0
    model = dreamstyle.train(painting, tmp_path / "m.pt", data=str(photos), max_steps=2, palette_weight=500,
                             on_event=record, **FAST)
    assert parts[-1]["palette"] > 0 and model.meta["palette_weight"] == 500


def test_bad_training_input_is_one_clear_error(photos, painting, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SettingError, match="has no images"):
        dreamstyle.train(painting, tmp_path / "m.pt", data=str(empty), max_steps=1, **FAST)
    unreadable = tmp_path / "unreadable"
    unreadable.mkdir()
    (unreadable / "a.jpg").write_bytes(b"junk")
    (unreadable / "b.png").write_bytes(b"")
    with pytest.raises(UserError, match="none of the 2 image files"):
        dreamstyle.train(painting, tmp_path / "m.pt", data=str(unreadable), max_steps=1, **FAST)
    with pytest.raises(SettingError, match="not a folder"):
        dreamstyle.train(painting, tmp_path / "m.pt", data=str(tmp_path / "nowhere"), max_steps=1, **FAST)
    with pytest.raises(UserError, match="ending in .pt"):
        dreamstyle.train(painting, tmp_path / "m.png", data=str(photos), max_steps=1, **FAST)
    with pytest.raises(SettingError, match="no checkpoint"):
        dreamstyle.train(painting, tmp_path / "new.pt", data=str(photos), max_steps=1, resume=True, **FAST)


def test_ctrl_c_saves_a_checkpoint_and_resume_matches_an_uninterrupted_run(photos, painting, tmp_path,
                                                                          monkeypatch):
    whole = tmp_path / "whole.pt"
    dreamstyle.train(painting, whole, data=str(photos), max_steps=5, **FAST)
    cut = tmp_path / "cut.pt"
    with monkeypatch.context() as m:
        ctrl_c_at_step(m, 3)
        with pytest.raises(dreamstyle.Interrupted) as info:
            dreamstyle.train(painting, cut, data=str(photos), max_steps=5, **FAST)
    assert info.value.path == cut and info.value.step == 3
    assert torch.load(cut, weights_only=True)["train"]["step"] == 3
    dreamstyle.train(painting, cut, data=str(photos), max_steps=5, resume=True, **FAST)
    a, b = load_model(whole).net.state_dict(), load_model(cut).net.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_fine_tuning_starts_from_the_given_model(trained, photos, painting, tmp_path):
    start = load_model(trained).net.state_dict()
    tuned = dreamstyle.train(painting, tmp_path / "tuned.pt", data=str(photos), max_steps=1, init=str(trained),
                             lr=1e-5, **FAST)
    after = tuned.net.state_dict()
    assert all(torch.allclose(start[k], after[k], atol=1e-3) for k in start)  # one tiny step from it


def test_wrong_truncated_and_foreign_model_files(trained, tmp_path):
    text = tmp_path / "text.pt"
    text.write_text("hello")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(trained.read_bytes()[:2000])
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    for path, problem in ((text, "not a dreamstyle style model|damaged"), (truncated, "damaged"),
                          (foreign, "not a dreamstyle style model"), (tmp_path / "missing.pt", "does not exist")):
        with pytest.raises(UserError, match=problem):
            load_model(path)
    with pytest.raises(UserError, match="unknown style 'no_such_style'"):
        load_model("no_such_style")


def test_export_matches_pytorch_at_any_size_and_apply_uses_it(trained, tmp_path, image_files):
    onnx_path = tmp_path / "style.onnx"
    reports = dreamstyle.export(trained, onnx_path, int8=True, progress=False)
    assert [r.variant for r in reports] == ["fp32", "int8"]
    assert reports[0].max_abs_diff < 1e-4 and reports[1].path.exists()
    assert reports[1].bytes < reports[0].bytes
    import onnx

    meta = json.loads({p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}["dreamstyle"])
    assert meta["arch"] == "light" and meta["steps"] == 6
    # the same photo through the .pt and the .onnx, at two sizes the export never saw
    for size in (48, 75):
        via_torch = dreamstyle.apply(image_files.content, model=str(trained), size=size, progress=False)[0]
        via_onnx = dreamstyle.apply(image_files.content, model=str(onnx_path), size=size, progress=False)[0]
        assert via_torch.size == via_onnx.size and max(via_torch.size) == size
        assert np.abs(np.asarray(via_torch, float) - np.asarray(via_onnx, float)).max() <= 2


def test_apply_options_and_outputs(trained, tmp_path, image_files):
    photo = Image.open(image_files.content).convert("RGB")
    keep = dreamstyle.apply(image_files.content, model=str(trained), strength=0.0, progress=False)[0]
    assert np.abs(np.asarray(keep, float) - np.asarray(photo, float)).max() <= 1  # strength 0: the photo
    out = tmp_path / "one.png"
    full = dreamstyle.apply(image_files.content, model=str(trained), output=out, progress=False)[0]
    assert np.abs(np.asarray(full, float) - np.asarray(photo, float)).mean() > 5  # the style changed it
    params = read_params(out)
    assert params["command"] == "apply" and params["model"] == "style" and params["strength"] == 1.0
    recoloured = dreamstyle.apply(image_files.content, model=str(trained), preserve_color=True, progress=False)[0]
    yiq = np.array([[0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    chroma = lambda im: np.asarray(im, float) @ yiq.T
    assert np.abs(chroma(recoloured) - chroma(photo)).mean() < 0.5 * np.abs(chroma(full) - chroma(photo)).mean()
    # a folder in, a folder out, one file per image
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("content", "coffee"):
        Image.open(getattr(image_files, name)).save(folder / f"{name}.jpg")
    results = dreamstyle.apply([folder, image_files.astronaut], model=str(trained), output=tmp_path / "out",
                               progress=False)
    assert len(results) == 3
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["astronaut.png", "coffee.png", "content.png"]
    with pytest.raises(UserError, match="need an output folder"):
        dreamstyle.apply([folder], model=str(trained), output=tmp_path / "x.png", progress=False)


def test_foreign_and_corrupt_onnx_files_are_refused(tmp_path, image_files):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, None, None])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, None, None])])
    foreign = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(foreign))
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07garbage" * 10)
    for path, problem in ((foreign, "not a dreamstyle style network"), (corrupt, "not a usable ONNX model")):
        with pytest.raises(UserError, match=problem):
            dreamstyle.apply(image_files.content, model=str(path), progress=False)


def test_onnx_apply_runs_without_torch(trained, tmp_path, image_files):
    """`pip install dreamstyle[onnx]` without torch: applying an .onnx file must not import torch."""
    onnx_path = tmp_path / "style.onnx"
    dreamstyle.export(trained, onnx_path, progress=False)
    out = tmp_path / "out.png"
    script = f"""
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is hidden in this test")
sys.meta_path.insert(0, NoTorch())
import dreamstyle
dreamstyle.apply({str(image_files.content)!r}, model={str(onnx_path)!r}, output={str(out)!r}, progress=False)
from dreamstyle.fastnet.styles import bundled_onnx, bundled_styles
for name in bundled_styles():  # the bundled styles too, through their ONNX copies
    assert bundled_onnx(name) is not None, name
    dreamstyle.apply({str(image_files.content)!r}, model=name, progress=False)
assert "torch" not in sys.modules
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
    assert read_params(out)["command"] == "apply"


def test_cli_train_apply_export(cli, photos, painting, tmp_path, image_files):
    model = tmp_path / "m.pt"
    proc = cli.run("train", painting, "--data", photos, "-o", model, "--size", "64", "--batch-size", "1",
                   "--max-steps", "2", "--quiet")
    assert proc.returncode == 0, proc.stderr
    proc = cli.run("export", model, "--onnx", tmp_path / "m.onnx", "--quiet")
    assert proc.returncode == 0 and "largest difference from PyTorch" in proc.stdout, proc.stderr
    proc = cli.run("apply", image_files.content, "--model", tmp_path / "m.onnx", "-o", tmp_path / "a.png", "--quiet")
    assert proc.returncode == 0 and (tmp_path / "a.png").exists(), proc.stderr
    for args, problem in ((["apply", image_files.content, "--model", "nope", "-o", tmp_path / "b.png"],
                           "unknown style 'nope'"),
                          (["apply", image_files.content, "--model", tmp_path / "missing.onnx", "-o",
                            tmp_path / "b.png"], "does not exist"),
                          (["train", painting, "--data", tmp_path / "nowhere", "-o", tmp_path / "t.pt"],
                           "not a folder"),
                          (["export", "nope", "--onnx", tmp_path / "n.onnx"], "unknown style 'nope'")):
        proc = cli.run(*args)
        assert proc.returncode == 2 and problem in cli.one_line_error(proc), proc.stderr


@pytest.mark.skipif(not bundled_styles(), reason="no bundled styles in this checkout")
def test_bundled_styles_are_light_and_move_a_photo_toward_their_painting():
    """Each bundled model, on a photo none was trained on, gives a picture whose style statistics (Gram
    matrices under SqueezeNet, a network that trained none of them) are closer to its painting's."""
    from sklearn.datasets import load_sample_image

    from dreamstyle.backbones import Backbone
    from dreamstyle.fastnet.styles import painting_of
    from dreamstyle.images import resized_tensor, to_tensor
    from dreamstyle.objectives import gram

    assert len(bundled_styles()) >= 4
    photo = Image.fromarray(load_sample_image("flower.jpg")).resize((192, 128), Image.Resampling.LANCZOS)
    judge = Backbone("squeezenet1_0").extractor(["relu1", "fire2", "fire3", "fire5"])

    def grams(t):
        with torch.no_grad():
            return {k: gram(v) for k, v in judge(t).items()}

    def distance(a, b):
        return sum(float((a[k] - b[k]).pow(2).mean() / b[k].pow(2).mean()) for k in b)

    before = grams(to_tensor(photo))
    for name, path in bundled_styles().items():
        assert path.stat().st_size < 600_000, name
        model = load_model(name)
        assert model.net.arch == "light" and parameter_count(model.net) <= 0.3e6
        target = grams(resized_tensor(Image.open(painting_of(name)), 192))
        styled = dreamstyle.apply(photo, model=name, progress=False)[0]
        assert distance(grams(to_tensor(styled)), target) < 0.7 * distance(before, target), name


def test_save_model_half_halves_the_file(tmp_path):
    net = TransformerNet("small")
    full = save_model(net, tmp_path / "full.pt", {"name": "x"})
    half = save_model(net, tmp_path / "half.pt", {"name": "x"}, half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    restored = load_model(half).net.state_dict()
    assert all(torch.allclose(restored[k], v, atol=1e-3) for k, v in net.state_dict().items())


def test_train_steps_default_to_a_fine_tunes_length_with_init_and_to_the_runs_own_on_resume():
    from dreamstyle.settings import TrainSettings
    from dreamstyle.tasks.train import _max_steps

    assert _max_steps(TrainSettings(), {}) == 2000
    assert _max_steps(TrainSettings(init="starry_night"), {}) == 400  # minutes, as the README says, not an hour
    assert _max_steps(TrainSettings(init="starry_night", max_steps=50), {}) == 50
    assert _max_steps(TrainSettings(resume=True), {"max_steps": 123, "step": 7}) == 123
    assert _max_steps(TrainSettings(resume=True), {"step": 7}) == 2000  # a checkpoint from before the field


def test_a_resumed_run_without_max_steps_keeps_its_own_total(photos, painting, tmp_path, monkeypatch):
    out = tmp_path / "m.pt"
    with monkeypatch.context() as m:
        ctrl_c_at_step(m, 2)
        with pytest.raises(KeyboardInterrupt):
            dreamstyle.train(painting, out, data=str(photos), max_steps=4, **FAST)
    assert load_model(out).train["max_steps"] == 4
    model = dreamstyle.train(painting, out, data=str(photos), resume=True, **FAST)  # no max_steps: the run's 4
    assert model.meta["steps"] == 4 and not load_model(out).train


def test_a_style_loaded_once_gives_apply_s_picture_and_precheck_refuses_before_any_work(image_files):
    """The studio's entries to the API: ``load_style`` (live frames) matches ``apply`` pixel for pixel (within
    8-bit rounding), ``has_cached_style`` says whether a painting must be fine-tuned, and ``precheck``
    refuses a bad tap with the API's one line, with no image."""
    from dreamstyle import api
    from dreamstyle.images import array_from_image, image_from_array
    from dreamstyle.settings import ApplySettings, StylizeSettings, make

    photo = Image.open(image_files.content).convert("RGB")
    photo.thumbnail((96, 96))
    style = api.load_style("starry_night")
    live = np.asarray(image_from_array(style(array_from_image(photo))), float)
    applied = np.asarray(dreamstyle.apply(photo, model="starry_night", progress=False)[0], float)
    assert live.shape == applied.shape and np.abs(live - applied).max() <= 1
    assert not api.has_cached_style(make(ApplySettings, {"style_image": str(image_files.style)}))
    with pytest.raises(UserError, match="unknown tap .no_such_tap."):
        api.precheck("stylize", make(StylizeSettings, {"style_layers": ["no_such_tap"]}))
    api.precheck("stylize", make(StylizeSettings, {}))  # the defaults pass

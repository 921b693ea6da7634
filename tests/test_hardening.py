"""The command line against a hostile new user (issue 17, items 9-12): FIFOs and other non-regular files, names
too long for the file system, an output that names an input, forged parameters, broken model files, a full
disk, memory limits, and signals at every moment. Each refusal is one line with no traceback, and nothing is
written over an input."""

from __future__ import annotations

import json
import os
import pickle
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

import dreamstyle
from conftest import ctrl_c_at_step, small
from dreamstyle import events as events_module
from dreamstyle.errors import RunError, SettingError, UserError
from dreamstyle.events import Interrupted, Run, Terminated
from dreamstyle.fastnet import budget, bundled_styles
from dreamstyle.fastnet.modelfile import load_model
from dreamstyle.frontends import cli as dreamstyle_cli
from dreamstyle.images import read_params
from dreamstyle.optimize import memory

HANG = 30  # seconds: a command that reads a FIFO waits forever; every refusal here takes well under this
QUICK = ["--size", "64", "--iterations", "2", "--quiet"]
BUNDLED = sorted(bundled_styles())
needs_bundled = pytest.mark.skipif(not BUNDLED, reason="no bundled styles in this checkout")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> SimpleNamespace:
    """Small inputs, a FIFO under every name a command reads, a raw pickle, a folder of photos, a painting."""
    from skimage import data

    root = tmp_path_factory.mktemp("hardening")
    f = SimpleNamespace(root=root, content=root / "content.png", style=root / "style.png",
                        painting=root / "painting.png", photos=root / "photos")
    small(data.chelsea()).save(f.content)
    small(data.rocket()).save(f.style)
    small(data.coffee(), 96).save(f.painting)
    f.photos.mkdir()
    for name in ("astronaut", "camera"):
        small(getattr(data, name)(), 96).save(f.photos / f"{name}.jpg")
    f.fifo_dir = root / "fifos"
    f.fifo_dir.mkdir()
    for name in ("image.png", "model.pt", "model.onnx", "weights.pth", "checkpoint.pt"):
        os.mkfifo(f.fifo_dir / name)
    f.fifo_data = root / "fifo_data"  # a data folder whose only "photo" is a FIFO
    f.fifo_data.mkdir()
    os.mkfifo(f.fifo_data / "photo.jpg")
    f.raw_pickle = root / "raw.pt"
    f.raw_pickle.write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
    return f


def fifo(files, name: str) -> Path:
    return files.fifo_dir / name


def one_line(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr
    return lines[0]


# --- item 10: a FIFO or another non-regular file as any input -------------------------------------------

FIFO_ROLES = {
    "stylize-content": lambda f, o: ["stylize", fifo(f, "image.png"), f.style, "-o", o, *QUICK],
    "stylize-style": lambda f, o: ["stylize", f.content, fifo(f, "image.png"), "-o", o, *QUICK],
    "stylize-init": lambda f, o: ["stylize", f.content, f.style, "-o", o, "--init", fifo(f, "image.png"), *QUICK],
    "stylize-mask": lambda f, o: ["stylize", f.content, f.style, "-o", o, "--masks", fifo(f, "image.png"), *QUICK],
    "stylize-weights": lambda f, o: ["stylize", f.content, f.style, "-o", o, "--weights", fifo(f, "weights.pth"),
                                     *QUICK],
    "dream-image": lambda f, o: ["dream", fifo(f, "image.png"), "-o", o, "--size", "64", "--quiet"],
    "dream-guide": lambda f, o: ["dream", f.content, "-o", o, "--guide", fifo(f, "image.png"), "--size", "64",
                                 "--quiet"],
    "explore-image": lambda f, o: ["explore", "--tap", "blocks.3", "--image", fifo(f, "image.png"), "-o", o,
                                   "--quiet"],
    "sheet-content": lambda f, o: ["sheet", fifo(f, "image.png"), f.style, "-o", o, "--sweep", "tv-weight=1,2",
                                   *QUICK],
    "train-painting": lambda f, o: ["train", fifo(f, "image.png"), "--data", f.photos, "-o", o.with_suffix(".pt"),
                                    "--max-steps", "1", "--size", "64", "--quiet"],
    "train-preview": lambda f, o: ["train", f.painting, "--data", f.photos, "-o", o.with_suffix(".pt"), "--preview",
                                   fifo(f, "image.png"), "--max-steps", "1", "--size", "64", "--quiet"],
    "train-init": lambda f, o: ["train", f.painting, "--data", f.photos, "-o", o.with_suffix(".pt"), "--init",
                                fifo(f, "model.pt"), "--max-steps", "1", "--size", "64", "--quiet"],
    "train-resume": lambda f, o: ["train", f.painting, "--data", f.photos, "-o", fifo(f, "checkpoint.pt"),
                                  "--resume", "--max-steps", "1", "--size", "64", "--quiet"],
    "train-weights": lambda f, o: ["train", f.painting, "--data", f.photos, "-o", o.with_suffix(".pt"), "--weights",
                                   fifo(f, "weights.pth"), "--max-steps", "1", "--size", "64", "--quiet"],
    "apply-image": lambda f, o: ["apply", fifo(f, "image.png"), "-o", o, "--quiet"],
    "apply-model-pt": lambda f, o: ["apply", f.content, "--model", fifo(f, "model.pt"), "-o", o, "--quiet"],
    "apply-model-onnx": lambda f, o: ["apply", f.content, "--model", fifo(f, "model.onnx"), "-o", o, "--quiet"],
    "show-params": lambda f, o: ["--show-params", fifo(f, "image.png")],
    "export-model": lambda f, o: ["export", fifo(f, "model.pt"), "--onnx", o.with_suffix(".onnx"), "--quiet"],
}


@pytest.mark.parametrize("role", list(FIFO_ROLES))
def test_a_fifo_as_any_input_is_refused_at_once(cli, files, tmp_path, role):
    """Reading a FIFO blocks until a writer comes: every command refuses it instead (the old code hung)."""
    out = tmp_path / "out" / "out.png"
    out.parent.mkdir()
    proc = cli.run(*FIFO_ROLES[role](files, out), timeout=HANG)
    line = one_line(proc)
    assert proc.returncode == 2 and "FIFO" in line and "regular file" in line, line
    assert list(out.parent.iterdir()) == []


def test_a_data_folder_whose_photos_are_fifos_does_not_hang(cli, files, tmp_path):
    proc = cli.run("train", files.painting, "--data", files.fifo_data, "-o", tmp_path / "m.pt", "--max-steps", "1",
                   "--size", "64", "--quiet", timeout=HANG)
    assert proc.returncode == 2 and "has no images" in one_line(proc)


# --- item 9: a file name too long for the file system -----------------------------------------------------

LONG = "x" * 300  # one path component: more than the 255 bytes file systems allow

LONG_ROLES = {
    "stylize-init": lambda f, d: ["stylize", f.content, f.style, "-o", d / "o.png", "--init", d / f"{LONG}.png",
                                  *QUICK],
    "stylize-weights": lambda f, d: ["stylize", f.content, f.style, "-o", d / "o.png", "--weights",
                                     d / f"{LONG}.pth", *QUICK],
    "apply-image": lambda f, d: ["apply", d / f"{LONG}.png", "-o", d / "o.png", "--quiet"],
    "apply-model": lambda f, d: ["apply", f.content, "--model", d / f"{LONG}.pt", "-o", d / "o.png", "--quiet"],
    "apply-model-onnx": lambda f, d: ["apply", f.content, "--model", d / f"{LONG}.onnx", "-o", d / "o.png",
                                      "--quiet"],
    "apply-output-folder": lambda f, d: ["apply", f.content, f.style, "-o", d / LONG, "--quiet"],
    "train-init": lambda f, d: ["train", f.painting, "--data", f.photos, "-o", d / "m.pt", "--init",
                                d / f"{LONG}.pt", "--max-steps", "1", "--size", "64", "--quiet"],
    "train-output": lambda f, d: ["train", f.painting, "--data", f.photos, "-o", d / f"{LONG}.pt", "--max-steps",
                                  "1", "--size", "64", "--quiet"],
    "export-model": lambda f, d: ["export", d / f"{LONG}.pt", "--onnx", d / "m.onnx", "--quiet"],
    "export-output": lambda f, d: ["export", "starry_night", "--onnx", d / f"{LONG}.onnx", "--quiet"],
}


@pytest.mark.parametrize("role", list(LONG_ROLES))
def test_a_name_too_long_for_the_file_system_is_one_line(cli, files, tmp_path, role):
    proc = cli.run(*LONG_ROLES[role](files, tmp_path), timeout=HANG)
    line = one_line(proc)
    assert proc.returncode == 2 and ("too long" in line or "shorter name" in line) and len(line) < 400, line
    assert list(tmp_path.iterdir()) == []


# --- item 11: messages that name the right problem, and choices that are not silent --------------------------

def test_a_link_to_a_device_is_called_a_device_and_a_folder_a_folder(cli, files, tmp_path):
    zero_png, zero_pt = tmp_path / "zero.png", tmp_path / "zero.pt"
    zero_png.symlink_to("/dev/zero")
    zero_pt.symlink_to("/dev/zero")
    for args, words in ((["stylize", zero_png, files.style, "-o", tmp_path / "o.png", *QUICK], "a device"),
                        (["apply", files.content, "--model", zero_pt, "-o", tmp_path / "o.png"], "a device"),
                        (["apply", files.content, "--model", files.photos, "-o", tmp_path / "o.png"], "a folder"),
                        (["export", files.photos, "--onnx", tmp_path / "o.onnx"], "a folder"),
                        (["train", files.painting, "--data", files.photos, "-o", tmp_path / "m.pt", "--init",
                          files.photos], "a folder")):
        proc = cli.run(*args, timeout=HANG)
        line = one_line(proc)
        assert proc.returncode == 2 and words in line and "not found" not in line and "does not exist" not in line, \
            line


@pytest.mark.parametrize("digits, shown", [(300, "got 1e+300"), (400, "got a huge number")])
def test_a_number_hundreds_of_digits_long_is_shown_short(files, tmp_path, capsys, digits, shown):
    """The range check printed every digit back: one line, but hundreds of characters long."""
    with pytest.raises(SystemExit) as info:  # argparse refuses it while parsing
        dreamstyle_cli.main(["stylize", str(files.content), str(files.style), "-o", str(tmp_path / "o.png"),
                             "--size", "1" + "0" * digits, "--quiet"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1 and len(err) < 200, err
    assert f"--size: must be <= 16384, {shown}" in err, err
    with pytest.raises(SettingError, match=f"^{re.escape(f'size must be <= 16384, {shown}')}$"):
        dreamstyle.stylize(files.content, files.style, size=10**digits, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_layers_refuses_an_empty_name_as_model_does(cli):
    proc = cli.run("layers", "")
    assert proc.returncode == 2 and "empty" in one_line(proc) and proc.stdout == ""


@needs_bundled
def test_train_init_with_another_arch_is_refused(cli, files, tmp_path):
    proc = cli.run("train", files.painting, "--data", files.photos, "-o", tmp_path / "m.pt", "--init", BUNDLED[0],
                   "--arch", "standard", "--max-steps", "1", "--size", "64", "--quiet")
    line = one_line(proc)
    assert proc.returncode == 2 and line.startswith("dreamstyle: error: --arch") and "light" in line, line
    assert list(tmp_path.iterdir()) == []


# --- -o naming an input, in every command ---------------------------------------------------------------------

def _copies(files, folder: Path) -> SimpleNamespace:
    """Fresh copies of the inputs in ``folder`` (each test may see them overwritten on the old code)."""
    folder.mkdir(parents=True, exist_ok=True)
    c = SimpleNamespace(content=folder / "c.png", style=folder / "s.png", mask=folder / "mask.png",
                        painting=folder / "p.png", gif=folder / "anim.gif", model=folder / "model.pt",
                        onnx=folder / "model.onnx", photos=folder / "photos", init=folder / "init.png")
    shutil.copy(files.content, c.content)
    shutil.copy(files.style, c.style)
    shutil.copy(files.content, c.init)
    Image.open(files.content).convert("L").save(c.mask)
    shutil.copy(files.painting, c.painting)
    Image.open(files.content).save(c.gif)
    c.photos.mkdir()
    shutil.copy(files.content, c.photos / "c.png")
    if BUNDLED:
        bundled = bundled_styles()[BUNDLED[0]]
        shutil.copy(bundled, c.model)
        shutil.copy(bundled.with_suffix(".onnx"), c.onnx)
    return c


OVER_INPUT = {  # command -> (arguments, the input that the output names)
    "stylize-content": (lambda c: ["stylize", c.content, c.style, "-o", c.content, *QUICK], "content"),
    "stylize-style": (lambda c: ["stylize", c.content, c.style, "-o", c.style, *QUICK], "style"),
    "stylize-init": (lambda c: ["stylize", c.content, c.style, "--init", c.init, "-o", c.init, *QUICK], "init"),
    "stylize-mask": (lambda c: ["stylize", c.content, c.style, "--masks", c.mask, "-o", c.mask, *QUICK], "mask"),
    "stylize-other-spelling": (lambda c: ["stylize", c.content, c.style, "-o", c.content.parent / ".." /
                                          c.content.parent.name / "c.png", *QUICK], "content"),
    "sheet-content": (lambda c: ["sheet", c.content, c.style, "-o", c.content, "--sweep", "tv-weight=1,2", *QUICK],
                      "content"),
    "sheet-style": (lambda c: ["sheet", c.content, c.style, "-o", c.style, "--sweep", "tv-weight=1,2", *QUICK],
                    "style"),
    "dream-image": (lambda c: ["dream", c.content, "-o", c.content, "--size", "64", "--quiet"], "content"),
    "dream-guide": (lambda c: ["dream", c.content, "--guide", c.style, "-o", c.style, "--size", "64", "--quiet"],
                    "style"),
    "dream-zoom": (lambda c: ["dream", c.gif, "--zoom", "2", "-o", c.gif, "--size", "64", "--quiet"], "gif"),
    "explore-image": (lambda c: ["explore", "--tap", "blocks.3", "--image", c.content, "-o", c.content, "--quiet"],
                      "content"),
    "apply-image": (lambda c: ["apply", c.content, "-o", c.content, "--quiet"], "content"),
    "apply-folder": (lambda c: ["apply", c.photos, "-o", c.photos, "--quiet"], "photos"),
    "train-init": (lambda c: ["train", c.painting, "--data", c.photos, "--init", c.model, "-o", c.model,
                              "--max-steps", "1", "--size", "64", "--quiet"], "model"),
    "train-preview": (lambda c: ["train", c.painting, "--data", c.photos, "--preview", c.model.parent / "m.preview.png",
                                 "-o", c.model.parent / "m.pt", "--max-steps", "1", "--size", "64", "--quiet"],
                      "preview"),
    "export": (lambda c: ["export", c.onnx, "--onnx", c.onnx, "--quiet"], "onnx"),
}


@needs_bundled
@pytest.mark.parametrize("case", list(OVER_INPUT))
def test_an_output_that_names_an_input_is_refused_and_the_input_kept(cli, files, tmp_path, case):
    c = _copies(files, tmp_path / "in")
    if case == "train-preview":
        shutil.copy(files.content, c.model.parent / "m.preview.png")
    args, _ = OVER_INPUT[case]
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    proc = cli.run(*args(c), timeout=120)
    line = one_line(proc)
    assert proc.returncode == 2 and "is also an input" in line, line
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before  # nothing written or replaced


# --- forged parameters in a PNG (--show-params, and the studio's /api/params through read_params) --------------

def _png_with_params(path: Path, text: str) -> Path:
    info = PngInfo()
    info.add_text("dreamstyle", text)
    Image.new("RGB", (4, 4)).save(path, pnginfo=info)
    return path


@pytest.mark.parametrize("text", ["[" * 100_000, '{"a": ' * 50 + "1" + "}" * 50, "[1, 2]",
                                  '{"a": ' + "[" * 5000 + "]" * 5000 + "}"])
def test_forged_parameters_are_one_line(cli, tmp_path, text):
    path = _png_with_params(tmp_path / "forged.png", text)
    with pytest.raises(UserError, match="damaged dreamstyle parameters") as info:
        read_params(path)
    assert "\n" not in str(info.value)
    proc = cli.run("--show-params", path)
    assert proc.returncode == 2 and "damaged" in one_line(proc) and proc.stdout == ""


def test_real_parameters_still_show(tmp_path):
    params = {"command": "sheet", "cells": [["tv-weight=1"], ["tv-weight=2"]], "style_layers": {"stem": 1.0},
              "size": 64, "seed": 0, "lr": None}
    path = _png_with_params(tmp_path / "ok.png", json.dumps(params))
    assert read_params(path) == params


# --- broken model and weights files ------------------------------------------------------------------------

@needs_bundled
def test_a_raw_pickle_is_refused_in_one_complete_line(cli, files, tmp_path):
    """torch's "Detected pickle protocol" warning came first, and the message was cut off mid-word."""
    raw = files.raw_pickle
    checkpoint = tmp_path / "ck.pt"
    shutil.copy(raw, checkpoint)
    for args in (["apply", files.content, "--model", raw, "-o", tmp_path / "o.png"],
                 ["train", files.painting, "--data", files.photos, "-o", tmp_path / "m.pt", "--init", raw,
                  "--max-steps", "1", "--size", "64"],
                 ["train", files.painting, "--data", files.photos, "-o", checkpoint, "--resume", "--max-steps", "1",
                  "--size", "64"],
                 ["export", raw, "--onnx", tmp_path / "o.onnx"],
                 ["video", _gif(tmp_path / "clip.gif"), "--model", raw, "-o", tmp_path / "v.gif"]):
        proc = cli.run(*args, "--quiet")
        line = one_line(proc)
        assert proc.returncode == 2 and "pickle" in line and "protocol" not in line, line
        assert line.endswith("or a bundled style name"), line  # whole, not cut
    assert checkpoint.read_bytes() == raw.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.pt", "clip.gif"]  # no output, no work folder


@needs_bundled
def test_non_finite_model_weights_are_refused(tmp_path, files):
    model = load_model(BUNDLED[0])
    torch.nn.init.constant_(next(model.net.parameters()), float("nan"))
    from dreamstyle.fastnet.modelfile import save_model

    nan_pt = save_model(model.net, tmp_path / "nan.pt", model.meta)
    with pytest.raises(UserError, match="not finite") as info:
        dreamstyle.apply(files.content, model=str(nan_pt), output=tmp_path / "o.png", progress=False)
    assert "\n" not in str(info.value)
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(bundled_styles()[BUNDLED[0]].with_suffix(".onnx")))
    first = graph.graph.initializer[0]
    first.CopyFrom(numpy_helper.from_array(np.full_like(numpy_helper.to_array(first), np.nan), first.name))
    nan_onnx = tmp_path / "nan.onnx"
    onnx.save(graph, str(nan_onnx))
    with pytest.raises(RunError, match="not finite"):
        dreamstyle.apply(files.content, model=str(nan_onnx), output=tmp_path / "o.png", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.onnx", "nan.pt"]


def test_non_finite_network_weights_are_refused_up_front(files, tmp_path, monkeypatch):
    """NaN weights gave torch's LinAlgError traceback in the style loss's matrix square root."""
    from dreamstyle.backbones import get_spec
    from dreamstyle.backbones.weights import load_model as load_network

    state = {k: v.float().fill_(float("nan")) if v.is_floating_point() else v
             for k, v in load_network(get_spec("efficientnet_lite0")).state_dict().items()}
    weights = tmp_path / "nan.pth"
    torch.save(state, weights)
    from dreamstyle.tasks import stylize as stylize_task

    monkeypatch.setattr(stylize_task, "optimize_image", lambda *a, **k: pytest.fail("a step ran"))
    code = dreamstyle_cli.main(["stylize", str(files.content), str(files.style), "-o", str(tmp_path / "o.png"),
                                "--weights", str(weights), "--style-loss", "meancov", *QUICK])
    assert code == 2 and not (tmp_path / "o.png").exists()


# --- apply on images thinner than the network's padding ------------------------------------------------------

@needs_bundled
@pytest.mark.parametrize("shape", [(1, 1), (1, 10000), (10000, 1), (3, 7)])
def test_apply_on_a_thin_image_keeps_its_size(tmp_path, shape):
    path = tmp_path / "thin.png"
    Image.fromarray((np.random.default_rng(0).random((*shape, 3)) * 255).astype(np.uint8)).save(path)
    for model in (BUNDLED[0], str(bundled_styles()[BUNDLED[0]])):  # ONNX (bundled) and torch (.pt)
        (result,) = dreamstyle.apply(path, model=model, output=tmp_path / "out.png", progress=False)
        assert result.size == (shape[1], shape[0])
        assert Image.open(tmp_path / "out.png").size == result.size


# --- a full disk while training ------------------------------------------------------------------------------

def test_a_full_disk_while_training_is_one_line_and_leaves_nothing(files, tmp_path, monkeypatch, capsys):
    from dreamstyle.fastnet import modelfile

    def full(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"PK\x03\x04 partial")  # torch writes part of the file, then fails
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")

    monkeypatch.setattr(modelfile.torch, "save", full)
    monkeypatch.setattr(modelfile, "_free_bytes", lambda folder: 0)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code = dreamstyle_cli.main(["train", str(files.painting), "--data", str(files.photos), "-o",
                                str(out_dir / "m.pt"), "--max-steps", "1", "--size", "64", "--batch-size", "1",
                                "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "disk is full" in err and "Traceback" not in err, err
    assert list(out_dir.iterdir()) == []  # no model, no temporary file


# --- --resume with another painting's checkpoint -----------------------------------------------------------

def test_resume_refuses_another_paintings_checkpoint_and_leaves_it_alone(files, tmp_path, monkeypatch, capsys):
    checkpoint = tmp_path / "m.pt"
    ctrl_c_at_step(monkeypatch, 1)
    with pytest.raises(Interrupted):
        dreamstyle.train(files.painting, checkpoint, data=str(files.photos), max_steps=3, size=64, batch_size=1,
                         progress=False)
    monkeypatch.undo()
    before, stamp = checkpoint.read_bytes(), checkpoint.stat().st_mtime_ns
    code = dreamstyle_cli.main(["train", str(files.style), "--data", str(files.photos), "-o", str(checkpoint),
                                "--resume", "--max-steps", "3", "--size", "64", "--batch-size", "1", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "another painting" in err and err.count("\n") == 1, err
    assert checkpoint.read_bytes() == before and checkpoint.stat().st_mtime_ns == stamp
    # the same painting under another name (a copy) is the same painting: resuming it works
    copy = tmp_path / "same.png"
    shutil.copy(files.painting, copy)
    model = dreamstyle.train(copy, checkpoint, data=str(files.photos), max_steps=2, size=64, batch_size=1,
                             resume=True, progress=False)
    assert model.meta["steps"] == 2


# --- memory: the right fix, checked up front everywhere, under the address-space limit ---------------------------

GIB = 2**30


def test_a_style_scale_that_cannot_fit_suggests_a_scale(files, monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda device: 6 * GIB)
    with pytest.raises(SettingError) as info:
        dreamstyle.stylize(files.content, files.style, size=2048, style_scale=8, iterations=1, progress=False)
    message = str(info.value)
    assert message.startswith("style_scale") and "\n" not in message
    suggested = float(message.split("use style_scale ")[1].split()[0])
    assert 0 < suggested < 8, message


def test_a_dream_at_the_smallest_tile_suggests_a_smaller_size(files, monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda device: 6 * GIB)
    with pytest.raises(SettingError) as info:
        dreamstyle.dream(files.content, size=16384, tile=64, octaves=1, iterations=1, progress=False)
    message = str(info.value)
    assert message.startswith("size") and "tile" not in message.split("free;")[1], message
    suggested = int(message.split("use size ")[1].split()[0])
    assert 32 <= suggested < 16384


@pytest.mark.parametrize("size, batch, fix", [(2048, 64, "size"), (256, 256, "batch_size")])
def test_train_checks_memory_up_front(files, tmp_path, monkeypatch, size, batch, fix):
    """It ran 10-28 s under a 6 GB cap before failing with "out of memory"."""
    from dreamstyle.tasks import train as train_task

    monkeypatch.setattr(memory, "available_bytes", lambda device: 6 * GIB)
    monkeypatch.setattr(train_task.PhotoFolder, "batch", lambda *a: pytest.fail("a batch was drawn"))
    with pytest.raises(SettingError) as info:
        dreamstyle.train(files.painting, tmp_path / "m.pt", data=str(files.photos), size=size, batch_size=batch,
                         progress=False)
    message = str(info.value)
    assert "GiB" in message and "\n" not in message, message
    suggested = int(message.split(f"use {fix} ")[1].split()[0])
    assert 1 <= suggested < (size if fix == "size" else batch), message
    assert list(tmp_path.iterdir()) == []


@needs_bundled
def test_apply_checks_memory_up_front(files, tmp_path, monkeypatch):
    monkeypatch.setattr(budget, "available_bytes", lambda device: 2 * GIB)
    with pytest.raises(SettingError) as info:
        dreamstyle.apply(files.content, size=16384, output=tmp_path / "o.png", progress=False)
    message = str(info.value)
    assert message.startswith("size") and "GiB" in message
    assert 16 <= int(message.split("use size ")[1].split()[0]) < 16384
    assert list(tmp_path.iterdir()) == []


def test_the_free_memory_respects_the_address_space_limit(monkeypatch):
    vm_size = budget._status_bytes("VmSize")
    assert vm_size is not None
    limit = vm_size + GIB
    monkeypatch.setattr(resource, "getrlimit", lambda which: (limit, limit) if which == resource.RLIMIT_AS
                        else (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    rss = budget._status_bytes("VmRSS") or 0
    assert budget.available_bytes("cpu") <= GIB + rss + 64 * 2**20


def _limited(gib: float):
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (int(gib * GIB), int(gib * GIB)))
    return limit


def _run_limited(gib: float, *args, timeout: float = 180) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "dreamstyle", *map(str, args)], capture_output=True, text=True,
                          env=env, preexec_fn=_limited(gib), timeout=timeout)


@pytest.mark.parametrize("gib", [2.5, 2.9])
def test_a_limit_too_low_for_torch_is_one_line(files, tmp_path, gib):
    """2.5 GiB: torch's import failed with an ImportError traceback; just below its need, a C++ abort."""
    proc = _run_limited(gib, "stylize", files.content, files.style, "-o", tmp_path / "o.png", *QUICK)
    line = one_line(proc)
    assert proc.returncode == 1 and "ulimit -v" in line, line
    assert list(tmp_path.iterdir()) == []


def test_a_size_over_the_address_space_limit_is_refused_up_front(files, tmp_path):
    """The estimate counts the address-space limit, not only the machine's memory (it was a std::bad_alloc)."""
    proc = _run_limited(6, "stylize", files.content, files.style, "-o", tmp_path / "o.png", "--size", "3000",
                        "--iterations", "1", "--quiet")
    line = one_line(proc)
    assert proc.returncode == 2 and line.startswith("dreamstyle: error: --size") and "GiB" in line, line
    assert list(tmp_path.iterdir()) == []


# --- signals: early ones, swallowed ones, and SIGTERM through nested runs ----------------------------------------

def test_a_swallowed_signal_still_stops_the_next_run(files, monkeypatch):
    """A library's bare ``except:`` can eat the KeyboardInterrupt a signal raised before the run began."""
    previous = events_module.install_signal_handlers()
    try:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.5)  # the handler raises here
        except BaseException:  # noqa: BLE001 - what a careless library does
            pass
        monkeypatch.setattr(Run, "step", lambda *a, **k: pytest.fail("a step ran"))
        with pytest.raises(Terminated):
            dreamstyle.stylize(files.content, files.style, size=64, iterations=5, progress=False)
    finally:
        events_module.restore_signal_handlers(previous)
    monkeypatch.undo()
    dreamstyle.stylize(files.content, files.style, size=64, iterations=1, progress=False)  # forgotten after


def test_a_signal_during_an_import_is_held_until_the_import_is_done(tmp_path, monkeypatch):
    """An exception half-way through importing torch can abort the process: the signal waits for the import."""
    (tmp_path / "slow_module_for_signals.py").write_text(
        "import os, signal, time\nos.kill(os.getpid(), signal.SIGINT)\ntime.sleep(0.2)\nFINISHED = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    previous = events_module.install_signal_handlers()
    try:
        import slow_module_for_signals  # noqa: F401

        assert slow_module_for_signals.FINISHED
        with pytest.raises(KeyboardInterrupt):
            events_module.raise_if_signalled()
    finally:
        events_module.restore_signal_handlers(previous)
        sys.modules.pop("slow_module_for_signals", None)


def _signal_early(args: list, sig: int, delay: float, ignore_sigint: bool = False) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")

    def child() -> None:
        if ignore_sigint:  # what a script's background job inherits (`dreamstyle ... &` without job control)
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    proc = subprocess.Popen([sys.executable, "-m", "dreamstyle", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, preexec_fn=child)
    time.sleep(delay)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


@pytest.mark.parametrize("delay", [0.6, 1.0])
def test_sigterm_in_the_first_second_stops_stylize(files, tmp_path, delay):
    out = tmp_path / "o.png"
    proc = _signal_early(["stylize", files.content, files.style, "-o", out, "--size", "64", "--iterations", "400",
                          "--quiet"], signal.SIGTERM, delay)
    assert proc.returncode == 143, proc.stderr
    assert "terminated" in one_line(proc)
    assert not out.exists() or read_params(out).get("interrupted_at", 400) < 400


@pytest.mark.parametrize("ignored", [False, True])
def test_sigint_in_the_first_second_stops_train(files, tmp_path, ignored):
    out = tmp_path / "m.pt"
    proc = _signal_early(["train", files.painting, "--data", files.photos, "-o", out, "--size", "64",
                          "--batch-size", "1", "--max-steps", "400", "--quiet"], signal.SIGINT, 0.8, ignored)
    assert proc.returncode == 130, proc.stderr
    assert "interrupted" in one_line(proc)
    assert not out.exists() or load_model(out).meta["steps"] < 400


def _sigterm_at_step(monkeypatch, n: int) -> None:
    real = Run.step

    def step(self, *args, **kwargs):
        real(self, *args, **kwargs)
        if self.done == n:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler raises Terminated here

    monkeypatch.setattr(Run, "step", step)


def _gif(path: Path, frames: int = 3) -> Path:
    from skimage import data

    base = small(data.chelsea())
    images = [base.transform(base.size, Image.Transform.AFFINE, (1, 0, i, 0, 1, 0)) for i in range(frames)]
    images[0].save(path, save_all=True, append_images=images[1:], duration=100, loop=0)
    return path


NESTED = {
    "sheet": lambda f, d: ["sheet", f.content, f.style, "-o", d / "s.png", "--sweep", "tv-weight=1,2,3", *QUICK],
    "zoom-first-frame": lambda f, d: ["dream", f.content, "--zoom", "3", "-o", d / "z.gif", "--size", "64",
                                      "--octaves", "2", "--iterations", "3", "--quiet"],
    "video-stylize": lambda f, d: ["video", _gif(d / "clip.gif"), "--mode", "stylize", "--style", f.style, "-o",
                                   d / "v.gif", "--size", "64", "--iterations", "3", "--frame-iterations", "1",
                                   "--quiet"],
    "video-dream": lambda f, d: ["video", _gif(d / "clip.gif"), "--mode", "dream", "-o", d / "v.gif", "--size",
                                 "64", "--octaves", "2", "--iterations", "2", "--frame-iterations", "1", "--quiet"],
}


@pytest.mark.parametrize("case", list(NESTED))
def test_sigterm_inside_a_nested_run_exits_143(files, tmp_path, monkeypatch, capsys, case):
    """Each nested guard re-raised Interrupted, and the CLI looked one __context__ deep: SIGTERM gave 130."""
    args = [str(a) for a in NESTED[case](files, tmp_path)]
    _sigterm_at_step(monkeypatch, 2)  # inside the first cell / the zoom's first frame / the first video frame
    code = dreamstyle_cli.main(args)
    err = capsys.readouterr().err
    assert code == 143 and "terminated" in err and "Traceback" not in err, err

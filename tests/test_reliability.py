"""Bad input, as a new user gives it: every command's every option fed its bad values (a table made from the
settings), and the failure modes a hostile-input sweep found: each is one line, exit code 2 (bad input) or 1
(a failed run), no traceback, and nothing half-written."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import dreamstyle
from conftest import ctrl_c_at_step
from dreamstyle import images
from dreamstyle import settings as S
from dreamstyle.errors import RunError, UserError
from dreamstyle.events import Interrupted
from dreamstyle.frontends import cli as dreamstyle_cli
from dreamstyle.images import load_image, read_params, save_image
from dreamstyle.optimize import memory

MISSING = "no_such_file.png"


def bad_values(name: str, o: S.Opt) -> list[str]:
    """Values a user might type that the setting must refuse, derived from its definition."""
    kind = o.kind
    if kind == "int":
        out = ["abc", "1.5"]
        if o.minimum is not None:
            out.append(str(int(o.minimum) - 1))
        if o.maximum is not None:
            out.append(str(int(o.maximum) + 1))
        return out
    if kind == "float":
        out = ["abc", "nan", "inf", "1e400"]
        if o.minimum is not None:
            out.append(str(o.minimum - 1))
        if o.above is not None:
            out.append(str(o.above))
        if o.maximum is not None:
            out.append(str(o.maximum * 2 + 1))
        return out
    if kind == "floats":
        return ["x", "-1", "inf"]
    if kind == "choice":
        return ["bogus", ""]
    if kind == "bool":
        return ["maybe"] if o.onoff else []
    if kind == "model":
        return ["", "bogus"]
    if kind == "taps":
        return ["", ",", "stem:", "stem:x", "stem:-1", "stem:inf", "stem:1e400", "no_such_tap"]
    if kind == "targets":
        return ["", "no_such_tap", "blocks.5:x", "blocks.5=-1", "blocks.5=inf", "blocks.5:strongest:0"]
    if kind == "channels":
        return ["x", "-1", "999"]
    if kind in ("path", "paths"):
        return [MISSING]
    if kind == "text":
        return ["", "no_such_tap" if name == "tap" else MISSING]
    raise AssertionError(f"no bad values for kind {kind}")


def base_argv(command: str, files, out: Path, zoom: bool = False) -> list[str]:
    if command == "stylize":
        return ["stylize", str(files.content), str(files.style), "-o", str(out), "--quiet"]
    if command == "sheet":
        return ["sheet", str(files.content), str(files.style), "-o", str(out), "--sweep", "tv-weight=1,2", "--quiet"]
    if command == "dream":
        return ["dream", str(files.astronaut), "-o", str(out.with_suffix(".gif") if zoom else out), "--quiet",
                *(["--zoom", "2"] if zoom else [])]
    if command == "train":
        return ["train", str(files.style), "--data", str(files.content.parent), "-o", str(out.with_suffix(".pt")),
                "--max-steps", "1", "--size", "64", "--quiet"]
    if command == "apply":
        return ["apply", str(files.content), "-o", str(out), "--quiet"]
    if command == "video":
        return ["video", str(files.content), "-o", str(out.with_suffix(".gif")), "--quiet"]
    if command == "export":
        return ["export", "starry_night", "--onnx", str(out.with_suffix(".onnx")), "--quiet"]
    return ["explore", "--tap", "blocks.3", "-o", str(out), "--quiet"]


CASES = []
for _command, _classes in (("stylize", [S.StylizeSettings]), ("dream", [S.DreamSettings, S.ZoomSettings]),
                           ("explore", [S.ExploreSettings]), ("train", [S.TrainSettings]),
                           ("apply", [S.ApplySettings]), ("export", [S.ExportSettings]),
                           ("video", [S.VideoSettings, S.ApplySettings])):
    for _cls in _classes:
        for _f, _o in S.options(_cls):
            if not _o.cli or (_command == "explore" and _f.name == "model"):
                continue
            for _value in bad_values(_f.name, _o):
                CASES.append(pytest.param(_command, _cls is S.ZoomSettings, S.flag_of(_cls, _f.name), _value,
                                          id=f"{_command}-{_f.name}={_value or 'EMPTY'}"))


@pytest.mark.parametrize("command, zoom, flag, value", CASES)
def test_every_option_refuses_its_bad_values(command, zoom, flag, value, image_files, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative names (the missing file) resolve here
    out = tmp_path / "out" / "out.png"
    out.parent.mkdir()
    argv = [*base_argv(command, image_files, out, zoom), flag, value]
    if flag == "--zoom":
        argv = [a for a in argv if a != "2" or argv[argv.index(a) - 1] != "--zoom"]
        argv.remove("--zoom")
        argv += ["--zoom", value]
    try:
        code = dreamstyle_cli.main(argv)
    except SystemExit as exc:  # argparse refused it while parsing
        code = exc.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith("dreamstyle") and "Traceback" not in err, err
    assert list(out.parent.iterdir()) == [], "nothing may be written"


# --- the failures the sweep found, one by one -----------------------------------------------------------

FAST = dict(size=64, iterations=3, progress=False)


def test_init_style_works(image_files):
    img = dreamstyle.stylize(image_files.content, image_files.style, init="style", **FAST)
    assert img.size == (64, 43) and img.info["dreamstyle"]["init"] == "style"


@pytest.mark.parametrize("layers", ["", ",", [], [","]])
def test_an_empty_tap_list_is_refused(image_files, layers):
    with pytest.raises(UserError, match="empty"):
        dreamstyle.stylize(image_files.content, image_files.style, style_layers=layers, **FAST)


@pytest.mark.parametrize("kwargs", [dict(style_weight=float("inf")), dict(content_weight=1e400),
                                    dict(tv_weight=float("-inf")), dict(style_layers=["stem:inf"]),
                                    dict(content_layers=["blocks.8:1e400"]), dict(style_blend=[float("inf")]),
                                    dict(dream=["auto=inf"])])
def test_infinite_weights_are_refused_up_front(image_files, kwargs):
    with pytest.raises(UserError) as info:
        dreamstyle.stylize(image_files.content, image_files.style, **FAST, **kwargs)
    assert "\n" not in str(info.value) and "lr" not in str(info.value)


@pytest.mark.parametrize("size", [1, 2, 3])
def test_tiny_sizes_give_a_finite_picture(image_files, size):
    img = dreamstyle.stylize(image_files.content, image_files.style, **{**FAST, "size": size})
    assert max(img.size) == size and np.isfinite(img.info["dreamstyle"]["final_loss"])


@pytest.mark.parametrize("shape", [(1, 40), (40, 1)])
def test_a_one_pixel_thin_content_gives_a_finite_picture(image_files, shape):
    thin = Image.fromarray((np.random.default_rng(0).random((*shape, 3)) * 255).astype(np.uint8))
    img = dreamstyle.stylize(thin, image_files.style, **{**FAST, "size": 40})
    assert img.size == shape[::-1] and np.isfinite(img.info["dreamstyle"]["final_loss"])


@pytest.mark.parametrize("seed", [-1, 2**64, 10**30])
def test_a_seed_outside_64_bits_is_one_line(image_files, tmp_path, capsys, seed):
    with pytest.raises(SystemExit) as info:
        dreamstyle_cli.main(["stylize", str(image_files.content), str(image_files.style), "-o",
                             str(tmp_path / "o.png"), "--seed", str(seed), "--quiet"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "--seed" in err and err.count("\n") == 1
    with pytest.raises(UserError, match="seed"):
        dreamstyle.stylize(image_files.content, image_files.style, seed=seed, **FAST)


def test_a_long_legal_output_name_works_and_a_too_long_one_is_refused_first(image_files, tmp_path, monkeypatch):
    long_ok = tmp_path / ("a" * 246 + ".png")  # 250 characters
    dreamstyle.stylize(image_files.content, image_files.style, output=long_ok, **FAST)
    assert long_ok.is_file() and [p.name for p in tmp_path.iterdir()] == [long_ok.name]
    too_long = tmp_path / ("b" * 300 + ".png")

    def no_backbone(*args, **kwargs):
        raise AssertionError("the output name must be checked before any work")

    from dreamstyle.tasks import session

    monkeypatch.setattr(session, "get_backbone", no_backbone)
    with pytest.raises(UserError, match="too long|shorter name") as info:
        dreamstyle.stylize(image_files.content, image_files.style, output=too_long, **FAST)
    assert "\n" not in str(info.value) and len(str(info.value)) < 300
    deep = Path("/" + "/".join(["d" * 200] * 30)) / "out.png"  # a path over PATH_MAX
    for call in (lambda: dreamstyle.stylize(image_files.content, image_files.style, output=deep, **FAST),
                 lambda: load_image(deep)):
        with pytest.raises(UserError) as info:
            call()
        assert "\n" not in str(info.value) and len(str(info.value)) < 300


def test_ctrl_c_during_the_final_write_completes_the_file(image_files, tmp_path, monkeypatch):
    """The signal waits until the file is whole; the run then reports the interruption, with the file kept."""
    out = tmp_path / "out.png"
    real = images.write_png

    def save_with_ctrl_c(img, fp, texts):
        os.kill(os.getpid(), signal.SIGINT)  # arrives in the middle of the write
        return real(img, fp, texts)

    monkeypatch.setattr(images, "write_png", save_with_ctrl_c)
    with pytest.raises(Interrupted) as info:
        dreamstyle.stylize(image_files.content, image_files.style, output=out, **FAST)
    monkeypatch.undo()
    assert info.value.path == out and load_image(out).size == (64, 43)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]  # no temp file left


def test_save_image_defers_sigterm_until_the_file_is_written(tmp_path, monkeypatch):
    from dreamstyle.events import Terminated

    out = tmp_path / "x.png"
    real = images.write_png

    def save_with_term(img, fp, texts):
        os.kill(os.getpid(), signal.SIGTERM)
        return real(img, fp, texts)

    monkeypatch.setattr(images, "write_png", save_with_term)
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        with pytest.raises(Terminated):
            save_image(Image.new("RGB", (5, 5)), out)
    finally:
        signal.signal(signal.SIGTERM, previous)
    monkeypatch.undo()
    assert load_image(out).size == (5, 5) and [p.name for p in tmp_path.iterdir()] == ["x.png"]


@pytest.mark.slow
def test_sigterm_keeps_the_best_image_and_says_so(image_files, tmp_path):
    out = tmp_path / "out.png"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "dreamstyle", "stylize", str(image_files.content),
                             str(image_files.style), "-o", str(out), "--size", "64", "--iterations", "100000",
                             "--save-every", "5", "--quiet"], stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while not (tmp_path / "out.00005.png").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "terminated at step" in lines[0] and str(out) in lines[0] and "Traceback" not in err
    assert load_image(out).size == (64, 43) and read_params(out)["interrupted_at"] >= 5
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no hidden temp file


def test_ctrl_c_in_the_first_zoom_frame_keeps_it(image_files, tmp_path, monkeypatch):
    ctrl_c_at_step(monkeypatch, 2)
    out = tmp_path / "z.gif"
    with pytest.raises(Interrupted) as info:
        dreamstyle.dream_zoom(image_files.astronaut, out, frames=4, frame_iterations=1, size=64, octaves=2,
                              iterations=3, progress=False)
    assert info.value.path == out and out.is_file() and [p.name for p in tmp_path.iterdir()] == ["z.gif"]


def test_sheet_refuses_a_bad_sweep_value_before_any_work(image_files, tmp_path, monkeypatch):
    from dreamstyle.tasks import stylize as stylize_task

    def no_run(*args, **kwargs):
        raise AssertionError("a cell ran before every sweep value was checked")

    monkeypatch.setattr(stylize_task, "run", no_run)
    for sweep, match in [("size=64,0", "size"), ("model=efficientnet_lite0,bogus", "bogus"),
                         ("style-loss=gram,nope", "style_loss|--style-loss"), ("tv-weight=1,inf", "tv"),
                         ("dream=auto=1,nope_tap=2", "nope_tap"), ("seed=1,-3", "seed")]:
        with pytest.raises(UserError, match=match) as info:
            dreamstyle.sheet(image_files.content, image_files.style, [sweep], tmp_path / "s.png", size=64,
                             iterations=2, progress=False)
        assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_in_a_sheet_keeps_the_finished_cells(image_files, tmp_path, monkeypatch):
    ctrl_c_at_step(monkeypatch, 5)  # in the third cell (2 steps per cell)
    out = tmp_path / "s.png"
    with pytest.raises(Interrupted) as info:
        dreamstyle.sheet(image_files.content, image_files.style, ["tv-weight=0,10,100"], out, size=64, iterations=2,
                         progress=False)
    assert info.value.path == out
    params = read_params(out)
    assert params["cells"] == [["tv-weight=0"], ["tv-weight=10"]] and params["interrupted_at"] == 5
    assert Image.open(out).size[0] == 3 * 64  # the planned layout, with the unfinished cell left blank


def test_dream_on_an_image_too_small_for_the_network_is_one_line(tmp_path):
    strip = tmp_path / "strip.png"
    Image.new("RGB", (256, 16), (90, 120, 200)).save(strip)
    with pytest.raises(UserError, match="too small") as info:
        dreamstyle.dream(strip, model="squeezenet1_0", weights="random", targets=["fire9"], size=64, progress=False)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("call, setting", [
    (lambda f: dreamstyle.stylize(f.content, f.style, style_scale=8, size=1024, iterations=1, progress=False),
     "style_scale"),
    # 12000 px: the whole-image buffers alone pass 6 GiB, so the fix is a smaller size, whatever the tile
    (lambda f: dreamstyle.dream(f.astronaut, size=12000, octaves=1, iterations=1, progress=False), "size"),
    (lambda f: dreamstyle.explore(tap="blocks.3", image=f.astronaut, size=12000, progress=False), "size"),
])
def test_sizes_that_cannot_fit_are_refused_up_front(image_files, monkeypatch, call, setting):
    monkeypatch.setattr(memory, "available_bytes", lambda device: 6 * 2**30)  # pretend 6 GiB are free
    with pytest.raises(UserError, match="GiB") as info:
        call(image_files)
    assert str(info.value).startswith(setting) and "\n" not in str(info.value)


def test_weights_that_are_a_folder_or_a_plain_pickle_say_so(image_files, tmp_path, capsys):
    plain = tmp_path / "plain.pth"
    plain.write_bytes(pickle.dumps({"a": 1}))
    for weights, words in [(tmp_path, "is a folder"), (plain, "not a PyTorch checkpoint")]:
        code = dreamstyle_cli.main(["stylize", str(image_files.content), str(image_files.style), "-o",
                                    str(tmp_path / "o.png"), "--weights", str(weights), "--quiet"])
        err = capsys.readouterr().err
        assert code == 2 and words in err and err.count("\n") == 1, err


def test_out_of_memory_during_a_run_is_one_line(image_files, tmp_path, monkeypatch, capsys):
    from dreamstyle.tasks import stylize as stylize_task

    def oom(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(stylize_task, "optimize_image", oom)
    code = dreamstyle_cli.main(["stylize", str(image_files.content), str(image_files.style), "-o",
                                str(tmp_path / "o.png"), "--size", "64", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("dreamstyle: error: out of memory") and err.count("\n") == 1


def test_a_full_disk_is_a_failed_run_not_bad_input(tmp_path, monkeypatch):
    def full(img, fp, texts):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(images, "write_png", full)
    with pytest.raises(RunError, match="disk is full") as info:
        save_image(Image.new("RGB", (4, 4)), tmp_path / "x.png")
    assert info.value.exit_code == 1 and list(tmp_path.iterdir()) == []

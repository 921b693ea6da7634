"""Any painting as a fast style (apply --style): fine-tuned once on the shipped photos, cached, reused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import dreamstyle
from conftest import small
from dreamstyle.errors import SettingError, UserError
from dreamstyle.events import CancelToken, Interrupted, Step
from dreamstyle.fastnet.styles import TRAINING_PHOTOS, cache_dir, cached_styles, clear_cached
from dreamstyle.images import IMAGE_SUFFIXES
from dreamstyle.tasks import faststyle


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    """Each test its own cache, and small training crops (the test-only knobs of the fine-tune)."""
    monkeypatch.setenv("DREAMSTYLE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(faststyle, "CROP_SIZE", 64)
    monkeypatch.setattr(faststyle, "BATCH_SIZE", 1)
    return tmp_path / "cache" / "styles"


@pytest.fixture
def painting(tmp_path) -> Path:
    from skimage import data

    path = tmp_path / "my painting.png"
    small(data.coffee(), 96).save(path)
    return path


def _apply(photo, painting, steps=2, **kw):
    return dreamstyle.apply(photo, style_image=str(painting), style_steps=steps, size=64, progress=False, **kw)


def test_a_painting_is_fine_tuned_once_then_reused_from_the_cache(painting, image_files, cache):
    before = faststyle.fine_tunes
    steps: list[str] = []
    first = _apply(image_files.content, painting, on_event=lambda e: isinstance(e, Step) and steps.append(e.label))
    assert faststyle.fine_tunes == before + 1
    assert sum(label.startswith("fine-tuning a style for my painting.png") for label in steps) == 2
    models = sorted(p.name for p in cache.glob("*.pt"))
    assert len(models) == 1 and models[0].startswith("style-"), models
    assert not list(cache.glob("*.partial.pt"))
    second = _apply(image_files.content, painting)  # a cache hit: no training
    assert faststyle.fine_tunes == before + 1
    a, b = (np.asarray(r[0], dtype=np.float32) for r in (first, second))
    assert np.abs(a - b).max() <= 2  # the same network (the .onnx copy and torch may differ by a rounding)
    listed = cached_styles()
    assert [e["painting"] for e in listed] == ["my painting.png"] and listed[0]["steps"] == 2
    # the style moved the photo: the result is not the photo
    photo = np.asarray(Image.open(image_files.content).convert("RGB").resize(first[0].size), dtype=np.float32)
    assert np.abs(a - photo).mean() > 5


def test_a_changed_painting_or_other_steps_make_a_new_entry(painting, image_files, cache):
    before = faststyle.fine_tunes
    _apply(image_files.content, painting)
    img = Image.open(painting).convert("RGB")
    img.putpixel((3, 3), (255, 0, 0))  # one pixel changed, same file name
    img.save(painting)
    _apply(image_files.content, painting)
    _apply(image_files.content, painting, steps=3)
    assert faststyle.fine_tunes == before + 3
    assert len(list(cache.glob("*.pt"))) == 3
    _apply(image_files.content, painting, steps=3)
    assert faststyle.fine_tunes == before + 3


def test_an_interrupted_fine_tune_leaves_no_entry_and_the_rerun_continues_it(painting, image_files, cache):
    token = CancelToken()
    seen: list[int] = []

    def on_event(event):
        if isinstance(event, Step):
            seen.append(event.step)
            if event.step == 2:
                token.cancel()

    with pytest.raises(Interrupted):
        _apply(image_files.content, painting, steps=4, cancel=token, on_event=on_event)
    assert not [p for p in cache.glob("*.pt") if not p.name.endswith(".partial.pt")]  # nothing finished-looking
    assert len(list(cache.glob("*.partial.pt"))) == 1
    assert cached_styles() == []
    labels: list[str] = []
    _apply(image_files.content, painting, steps=4,
           on_event=lambda e: isinstance(e, Step) and labels.append(e.label))
    assert sum(label.startswith("fine-tuning") for label in labels) == 2  # steps 3 and 4, not all four again
    assert not list(cache.glob("*.partial.pt"))
    (entry,) = cached_styles()
    assert entry["steps"] == 4


def test_a_broken_half_trained_entry_starts_again(painting, image_files, cache):
    key = faststyle.entry_key(Image.open(painting).convert("RGB"), 2, None)
    cache.mkdir(parents=True)
    (cache / f"{key}.partial.pt").write_bytes(b"cut off by a crash")
    before = faststyle.fine_tunes
    _apply(image_files.content, painting)
    assert faststyle.fine_tunes == before + 1
    assert (cache / f"{key}.pt").is_file() and not (cache / f"{key}.partial.pt").exists()


def test_the_shipped_training_photos_load_offline_and_are_licensed():
    from dreamstyle.tasks.train import PhotoFolder

    files = sorted(p for p in TRAINING_PHOTOS.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    assert len(files) >= 15
    sources = (TRAINING_PHOTOS / "SOURCES.md").read_text()
    assert "CC BY 3.0" in sources and "Blender Foundation" in sources  # the attribution Big Buck Bunny asks for
    for f in files:
        named = f.name in sources or (f.name.startswith("bigbuckbunny_") and "bigbuckbunny_NNN.jpg" in sources)
        assert named, f"{f.name} is not in SOURCES.md"
        with Image.open(f) as im:
            assert max(im.size) <= 512
    folder = PhotoFolder(TRAINING_PHOTOS)
    assert folder.batch(2, 64).shape == (2, 3, 64, 64) and not folder.bad


def test_clear_removes_the_cached_styles(painting, image_files, cache):
    _apply(image_files.content, painting)
    assert cached_styles()
    count, freed = clear_cached()
    assert count >= 3 and freed > 0  # the model, its ONNX copy or description, the lock
    assert cached_styles() == [] and not list(cache.glob("*.pt"))
    assert clear_cached() == (0, 0)


def test_bad_fast_style_input_is_one_clear_error(painting, image_files, tmp_path):
    with pytest.raises(UserError, match="file not found"):
        _apply(image_files.content, tmp_path / "nowhere.jpg")
    with pytest.raises(SettingError, match="not a folder"):
        _apply(image_files.content, painting, style_data=str(image_files.content))
    with pytest.raises(SettingError):
        _apply(image_files.content, painting, steps=0)
    kept = painting.read_bytes()
    with pytest.raises(UserError):  # the result may not overwrite the painting
        dreamstyle.apply(image_files.content, output=painting, style_image=str(painting), progress=False)
    assert painting.read_bytes() == kept


def test_a_data_folder_keys_its_own_entry(painting, image_files, tmp_path, cache):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, name in enumerate(("content", "astronaut")):
        Image.open(getattr(image_files, name)).save(photos / f"{i}.png")
    before = faststyle.fine_tunes
    _apply(image_files.content, painting, style_data=str(photos))
    _apply(image_files.content, painting)  # the shipped photos: another entry
    assert faststyle.fine_tunes == before + 2
    datas = sorted(e["data"] for e in cached_styles())
    assert datas == sorted(["bundled photos", str(photos)])


def test_video_apply_takes_the_painting_through_the_same_cache(painting, tmp_path, cache):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        Image.fromarray(np.full((40, 48, 3), 60 + 40 * i, np.uint8)).save(frames / f"{i:03d}.png")
    before = faststyle.fine_tunes
    _apply(frames / "000.png", painting)
    out = dreamstyle.video(frames, tmp_path / "out", mode="apply", style_images=[str(painting)], style_steps=2,
                           progress=False)
    assert faststyle.fine_tunes == before + 1  # the still's fast style, reused
    assert len(list(Path(out).glob("*.png"))) == 3
    with pytest.raises(SettingError, match="one painting"):
        dreamstyle.video(frames, tmp_path / "out2", mode="apply", style_images=[str(painting)] * 2, progress=False)
    other = tmp_path / "other.png"  # a new painting: a bad option is refused before its minutes of fine-tuning
    Image.open(painting).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(other)
    with pytest.raises(SettingError, match="frame_iterations"):
        dreamstyle.video(frames, tmp_path / "out3", mode="apply", style_images=[str(other)], frame_iterations=3,
                         progress=False)
    assert faststyle.fine_tunes == before + 1


def test_cli_apply_style_and_models_list_and_clear(cli, painting, image_files, tmp_path):
    env = {"DREAMSTYLE_CACHE": str(tmp_path / "clicache")}
    out = tmp_path / "out.png"
    proc = cli.run("apply", str(image_files.content), "--style", str(painting), "--style-steps", "1", "--size", "64",
                   "-o", str(out), **env)
    assert proc.returncode == 0, proc.stderr
    assert out.is_file()
    assert json.loads(Image.open(out).info["dreamstyle"])["style_image"] == str(painting)
    listed = cli.run("models", **env)
    assert "my painting.png: 1 steps" in listed.stdout, listed.stdout
    cleared = cli.run("models", "--clear", **env)
    assert cleared.returncode == 0 and "removed" in cleared.stdout
    assert "(none yet)" in cli.run("models", **env).stdout
    bad = cli.run("apply", str(image_files.content), "--style", str(tmp_path / "no.jpg"), "-o", str(out), **env)
    assert bad.returncode != 0
    assert "no.jpg" in cli.one_line_error(bad)


def test_the_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DREAMSTYLE_CACHE", str(tmp_path / "a"))
    assert cache_dir() == tmp_path / "a" / "styles"
    monkeypatch.delenv("DREAMSTYLE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "dreamstyle" / "styles"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "dreamstyle" / "styles"

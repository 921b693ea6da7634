"""Video: optical flow and its consistency mask, temporal consistency, resume, bad input. Tiny clips are
made here (a pan over a photo), so nothing needs ../shared."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import dreamstyle
from conftest import ctrl_c_at_step
from dreamstyle.errors import UserError
from dreamstyle.fastnet import bundled_styles
from dreamstyle.motion.flow import flow, reliable, warp, warping_error
from dreamstyle.motion.frames import read_frames

pytestmark = pytest.mark.skipif(not bundled_styles(), reason="the video tests use a bundled style")


def photo(size: int = 160) -> np.ndarray:
    from skimage import data

    return np.asarray(Image.fromarray(data.astronaut()).resize((size, size), Image.Resampling.LANCZOS))


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """A folder of 10 numbered 96 x 96 frames: a camera panning 2 px a frame across the astronaut."""
    folder = tmp_path_factory.mktemp("clip")
    big = photo(160)
    for i in range(10):
        Image.fromarray(big[30:126, 20 + 2 * i:116 + 2 * i]).save(folder / f"{i:04d}.png")
    return folder


def test_flow_warps_a_shifted_frame_back():
    a = photo(128)
    b = np.roll(a, 3, axis=1)  # everything moved 3 px to the right
    back = flow(a, b)
    inside = (slice(8, -8), slice(8, -8))
    assert np.median(back[inside][..., 0]) == pytest.approx(-3, abs=0.3)  # b's pixels came from 3 px left
    err_warped = np.abs(warp(a, back)[inside] - b[inside]).mean()
    err_plain = np.abs(a[inside].astype(float) - b[inside]).mean()
    assert err_warped < 0.25 * err_plain


def test_the_consistency_mask_marks_occluded_pixels():
    a = photo(128)
    b = np.roll(a, 3, axis=1).copy()
    rng = np.random.default_rng(0)
    b[40:80, 40:80] = rng.integers(0, 256, (40, 40, 3))  # something new covers this square in b
    mask = reliable(a, b)
    assert mask[44:76, 44:76].mean() < 0.5  # the covered square cannot be followed back
    outside = mask.copy()
    outside[30:90, 30:90] = True
    assert mask[8:-8, 8:-8].mean() > 0.6 and outside[8:-8, 8:-8].mean() > 0.9


def test_temporal_consistency_lowers_the_warping_error(clip, tmp_path):
    inputs = [np.asarray(f) for f in read_frames(clip)[0]]
    errors = {}
    for weight in (0.0, 0.6):
        out = dreamstyle.video(clip, tmp_path / f"w{weight}.mp4", temporal_weight=weight, progress=False)
        frames = [np.asarray(f) for f in read_frames(out)[0]]
        assert len(frames) == 10 and frames[0].shape == (96, 96, 3)
        errors[weight] = warping_error(frames, inputs)
    assert errors[0.6] < 0.7 * errors[0.0], errors
    assert not (tmp_path / "w0.6.mp4.frames").exists()  # the work folder goes once the video is written


def test_an_interrupted_run_resumes_to_the_same_frames(clip, tmp_path, monkeypatch):
    """GIF output here: Pillow's encoder is deterministic, so equal frames give equal files (x264's
    rate control may place its bits differently from one run to the next)."""
    whole = dreamstyle.video(clip, tmp_path / "whole.gif", progress=False)
    cut = tmp_path / "cut.gif"
    with monkeypatch.context() as m:
        ctrl_c_at_step(m, 4)
        with pytest.raises(dreamstyle.Interrupted):
            dreamstyle.video(clip, cut, progress=False)
    assert not cut.exists() and len(list((tmp_path / "cut.gif.frames").glob("*.png"))) == 4
    dreamstyle.video(clip, cut, progress=False)  # the same command again continues
    a, b = read_frames(whole)[0], read_frames(cut)[0]
    assert len(a) == len(b) == 10
    diffs = [float(np.abs(np.asarray(x, float) - np.asarray(y, float)).max()) for x, y in zip(a, b)]
    assert max(diffs) == 0, diffs
    with pytest.raises(UserError, match="different run"):  # other settings never reuse those frames
        (tmp_path / "other.mp4.frames").mkdir()
        (tmp_path / "other.mp4.frames" / "run.json").write_text("{}")
        dreamstyle.video(clip, tmp_path / "other.mp4", progress=False)


def test_bad_input_is_one_clear_error_and_no_partial_video(clip, tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [(text, tmp_path / "a.mp4", {}, "is not a video"),
             (empty, tmp_path / "b.mp4", {}, "has no frames"),
             (clip, tmp_path / "c.mp4", {"start": 100.0}, "no frames in the selected range"),
             (clip, tmp_path / "d.avi", {}, "use a .gif or .mp4"),
             (clip, tmp_path / "missing" / "e.mp4", {}, "does not exist"),
             (tmp_path / "nowhere.mp4", tmp_path / "f.mp4", {}, "does not exist")]
    for source, out, settings, words in cases:
        with pytest.raises(UserError, match=words):
            dreamstyle.video(source, out, progress=False, **settings)
        assert not out.exists()


def test_gif_in_and_out(clip, tmp_path):
    gif = tmp_path / "in.gif"
    frames = read_frames(clip)[0]
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100, loop=0)
    out = dreamstyle.video(gif, tmp_path / "out.gif", every=2, progress=False)
    assert len(read_frames(out)[0]) == 5

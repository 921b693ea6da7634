"""A video across workers: chunks with warm-up frames, scene cuts as boundaries, assembled in order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import dreamstyle
from conftest import astronaut
from dreamstyle.fastnet import bundled_styles
from dreamstyle.motion.flow import warping_error
from dreamstyle.motion.frames import open_frames, read_frames
from dreamstyle.tasks.video_chunks import WARMUP, plan_chunks

pytestmark = pytest.mark.skipif(not bundled_styles(), reason="the video tests use a bundled style")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """12 numbered 96 x 96 frames: a camera panning 2 px a frame across the astronaut."""
    folder = tmp_path_factory.mktemp("clip")
    big = astronaut()
    for i in range(12):
        Image.fromarray(big[30:126, 20 + 2 * i:116 + 2 * i]).save(folder / f"{i:04d}.png")
    return folder


def frames_of(path: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(path.glob("*.png"))]


def test_two_chunks_give_the_same_frames_and_a_steady_seam(clip, tmp_path):
    single = dreamstyle.video(clip, tmp_path / "single", progress=False)
    split = dreamstyle.video(clip, tmp_path / "split", workers=2, progress=False)
    a, b = frames_of(single), frames_of(split)
    assert len(a) == len(b) == 12
    chunks = plan_chunks(open_frames(clip), 2)
    seam = chunks[1].start
    assert [(c.start, c.end) for c in chunks] == [(0, 6), (6, 12)] and chunks[1].warmup == WARMUP
    assert all(np.array_equal(x, y) for x, y in zip(a[:seam], b[:seam]))  # the first chunk is the single run's
    assert not np.array_equal(a[seam], b[seam])  # the second chunk's, made after its own warm-up
    inputs = [np.asarray(f) for f in read_frames(clip)[0]]
    seam_single = warping_error(a[seam - 1:seam + 1], inputs[seam - 1:seam + 1])
    seam_split = warping_error(b[seam - 1:seam + 1], inputs[seam - 1:seam + 1])
    assert seam_split <= 1.5 * seam_single, (seam_split, seam_single)


def test_chunks_assemble_an_mp4_with_the_same_count_and_rate(clip, tmp_path):
    out = dreamstyle.video(clip, tmp_path / "split.mp4", workers=2, progress=False)
    frames = open_frames(out)
    assert (frames.count, frames.rate) == (12, open_frames(clip).rate)
    assert not (tmp_path / "split.mp4.frames").exists()


def test_a_scene_cut_is_a_chunk_boundary_without_warm_up(tmp_path):
    big, other = astronaut(), np.asarray(Image.fromarray(astronaut()[::-1, ::-1].copy()).rotate(90))
    for i in range(12):
        source = big if i < 8 else other  # a cut at frame 8
        Image.fromarray(source[30:126, 20 + 2 * i:116 + 2 * i]).save(tmp_path / f"{i:04d}.png")
    chunks = plan_chunks(open_frames(tmp_path), 2)
    assert [(c.start, c.end, c.warmup) for c in chunks] == [(0, 8, 0), (8, 12, 0)]


def test_ray_refuses_a_folder_of_frames_before_connecting(clip, tmp_path):
    with pytest.raises(dreamstyle.UserError, match="takes a video file or a GIF, not a folder"):
        dreamstyle.video(clip, tmp_path / "out.mp4", ray="127.0.0.1:9", progress=False)

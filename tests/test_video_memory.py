"""Video memory: frames stream through the run (peak memory does not grow with the clip's length), and a
frame size that cannot fit is refused up front. The clips are made here with PyAV, so nothing needs
../shared."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import dreamstyle
from conftest import cli_env
from dreamstyle.animation import count_frames
from dreamstyle.errors import SettingError
from dreamstyle.fastnet import bundled_styles

pytestmark = pytest.mark.skipif(not bundled_styles(), reason="the video tests use a bundled style")

# A fresh interpreter runs one video and reports its own peak resident memory in MB: VmHWM on Linux (the
# high-water mark of this program's memory; ru_maxrss would carry over the forking pytest's, torch and all).
MEASURE = r"""
import json, resource, sys
import dreamstyle
dreamstyle.video(sys.argv[1], sys.argv[2], size=int(sys.argv[3]), progress=False)
try:
    with open("/proc/self/status") as f:
        peak = next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM:"))
except OSError:  # not Linux: ru_maxrss is in bytes on macOS
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
print(json.dumps({"peak_mb": peak}))
"""


def make_clip(path: Path, frames: int, width: int = 640, height: int = 360) -> Path:
    """An H.264 MP4: a camera panning 3 px a frame across a smooth random picture."""
    import av

    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (height // 8, (width + 3 * frames) // 8 + 1, 3), dtype=np.uint8)
    wide = np.asarray(Image.fromarray(small).resize((small.shape[1] * 8, height), Image.Resampling.BICUBIC))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            picture = np.ascontiguousarray(wide[:, 3 * i:3 * i + width])
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def peak_mb(clip: Path, out: Path, size: int) -> float:
    proc = subprocess.run([sys.executable, "-c", MEASURE, str(clip), str(out), str(size)], capture_output=True,
                          text=True, env=cli_env(out.parent / "torch"), timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])["peak_mb"]


def test_peak_memory_does_not_grow_with_the_clips_length(tmp_path):
    """240 frames of 640x360 are 166 MB decoded; holding them (as the reader once did) shows at once. A run
    over them must peak within a few MB of a run over 10 of the same frames."""
    short = peak_mb(make_clip(tmp_path / "short.mp4", 10), tmp_path / "short_out.mp4", 64)
    long = peak_mb(make_clip(tmp_path / "long.mp4", 240), tmp_path / "long_out.mp4", 64)
    assert long < short + 30, (short, long)
    assert count_frames(tmp_path / "long_out.mp4") == 240


def test_frames_are_decoded_one_at_a_time(tmp_path):
    """The reader hands out each frame as it is decoded and resized, and counts them without decoding."""
    from dreamstyle.motion.frames import open_frames

    clip = make_clip(tmp_path / "clip.mp4", 30, 160, 96)
    frames = open_frames(clip, size=64, start=0.2, end=1.0, every=3)
    assert frames.count == 7 and frames.frame_size == (64, 38) and float(frames.rate) == pytest.approx(25 / 3)
    stream = iter(frames)
    first = next(stream)
    assert first.size == (64, 38)
    assert len(list(stream)) == 6  # the frames at 0.2 s, 0.32 s, ... up to 0.92 s


def test_a_size_that_cannot_fit_is_refused_before_any_frame_is_decoded(tmp_path, monkeypatch):
    from dreamstyle.motion.frames import Frames

    clip = make_clip(tmp_path / "clip.mp4", 3, 160, 96)
    monkeypatch.setattr("dreamstyle.fastnet.budget.available_bytes", lambda device: 300 * 2**20)

    def no_decoding(self):
        raise AssertionError("a frame was decoded before the memory check")
        yield

    monkeypatch.setattr(Frames, "_decode", no_decoding, raising=False)
    with pytest.raises(SettingError, match=r"size of 1024x614 px per frame for the video needs about [\d.]+ GiB but "
                                           r"0\.3 GiB is free; use size (\d+) or less") as refused:
        dreamstyle.video(clip, tmp_path / "big.mp4", size=1024, progress=False)
    fitting = re.search(r"use size (\d+)", str(refused.value))
    assert fitting is not None and 16 <= int(fitting.group(1)) < 1024
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]  # no work folder, no output


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ulimit -v is enforced on Linux")
def test_the_address_space_limit_counts(tmp_path, cli):
    """Under `ulimit -v` the check counts the limit, not only the machine's free memory: refused up front
    (exit 2, one line, a size that fits), where it once ran until torch or onnxruntime ran out of memory."""
    clip = make_clip(tmp_path / "clip.mp4", 2, 160, 96)
    limit = 3 * 2**30

    def capped() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    proc = subprocess.run([sys.executable, "-m", "dreamstyle", "video", str(clip), "-o", str(tmp_path / "o.mp4"),
                           "--size", "4096", "--quiet"], capture_output=True, text=True, timeout=300,
                          env=cli_env(tmp_path / "torch"), preexec_fn=capped)
    line = cli.one_line_error(proc)
    assert proc.returncode == 2 and "--size of 4096x2458 px per frame" in line and "free; use --size" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]

"""Video: optical flow and its consistency mask, temporal consistency, resume, bad input. Tiny clips are
made here (a pan over a photo), so nothing needs ../shared."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import dreamstyle
from conftest import astronaut, ctrl_c_at_step
from dreamstyle.errors import UserError
from dreamstyle.fastnet import bundled_styles
from dreamstyle.motion.flow import flow, reliable, warp, warping_error
from dreamstyle.motion.frames import read_frames

pytestmark = pytest.mark.skipif(not bundled_styles(), reason="the video tests use a bundled style")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """A folder of 10 numbered 96 x 96 frames: a camera panning 2 px a frame across the astronaut."""
    folder = tmp_path_factory.mktemp("clip")
    big = astronaut(160)
    for i in range(10):
        Image.fromarray(big[30:126, 20 + 2 * i:116 + 2 * i]).save(folder / f"{i:04d}.png")
    return folder


def test_flow_warps_a_shifted_frame_back():
    a = astronaut(128)
    b = np.roll(a, 3, axis=1)  # everything moved 3 px to the right
    back = flow(a, b)
    inside = (slice(8, -8), slice(8, -8))
    assert np.median(back[inside][..., 0]) == pytest.approx(-3, abs=0.3)  # b's pixels came from 3 px left
    err_warped = np.abs(warp(a, back)[inside] - b[inside]).mean()
    err_plain = np.abs(a[inside].astype(float) - b[inside]).mean()
    assert err_warped < 0.25 * err_plain


def test_the_consistency_mask_marks_occluded_pixels():
    a = astronaut(128)
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
    # three frames were saved; the fourth was in progress (its step reported, not yet saved) and is redone
    assert not cut.exists() and len(list((tmp_path / "cut.gif.frames").glob("*.png"))) == 3
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
             (tmp_path / "nowhere.mp4", tmp_path / "f.mp4", {}, "file not found")]
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


# --- the stylize and dream modes, audio, output folders, more bad input ----------------------------------

SMALL_CLIP = dict(every=2, progress=False)  # 5 frames of the pan


def test_stylize_mode_holds_the_frames_together(clip, image_files, tmp_path):
    """The first frame is a full style transfer; each later one starts from the warped previous result
    with the temporal loss, so the clip flickers less than frames stylized one by one."""
    inputs = [np.asarray(f) for f in read_frames(clip, every=2)[0]]
    errors = {}
    for weight in (0.0, None):
        out = dreamstyle.video(clip, tmp_path / f"s{weight}.gif", mode="stylize", style_images=[image_files.style],
                               temporal_weight=weight, size=96, iterations=24, frame_iterations=12, **SMALL_CLIP)
        frames = [np.asarray(f) for f in read_frames(out)[0]]
        assert len(frames) == 5 and frames[0].shape == (96, 96, 3)
        assert np.abs(frames[0].astype(float) - inputs[0]).mean() > 5  # styled, not the input back
        errors[weight] = warping_error(frames, inputs)
    assert errors[None] < 0.7 * errors[0.0], errors


def test_dream_mode_carries_the_dream_along_the_flow(clip, tmp_path):
    inputs = [np.asarray(f) for f in read_frames(clip, every=2)[0]]
    errors = {}
    for weight in (0.0, None):
        out = dreamstyle.video(clip, tmp_path / f"d{weight}.gif", mode="dream", temporal_weight=weight, octaves=2,
                               iterations=8, frame_iterations=2, **SMALL_CLIP)
        frames = [np.asarray(f) for f in read_frames(out)[0]]
        assert len(frames) == 5
        assert np.abs(frames[-1].astype(float) - inputs[-1]).mean() > 2  # dreamed, not the input back
        errors[weight] = warping_error(frames, inputs)
    assert errors[None] < 0.7 * errors[0.0], errors


def _mp4_with_audio(path: Path, frames: list[Image.Image], fps: int = 10) -> None:
    """An H.264 MP4 with a 440 Hz AAC tone as long as the frames, made with PyAV."""
    import av

    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = frames[0].width, frames[0].height, "yuv420p"
        audio = container.add_stream("aac", rate=44100)
        for frame in frames:
            for packet in video.encode(av.VideoFrame.from_image(frame)):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        samples = int(44100 * len(frames) / fps)
        tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(samples) / 44100)).astype(np.float32)[None]
        for start in range(0, samples, 1024):
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, start:start + 1024]), format="fltp",
                                               layout="mono")
            chunk.sample_rate, chunk.pts = 44100, start
            for packet in audio.encode(chunk):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)


def _audio_seconds(path: Path) -> float:
    import av

    with av.open(str(path)) as container:
        if not container.streams.audio:
            return 0.0
        stream = container.streams.audio[0]
        return sum(float(p.duration * stream.time_base) for p in container.demux(stream) if p.duration)


def test_mp4_keeps_its_audio_and_frame_rate(clip, tmp_path):
    source = tmp_path / "talk.mp4"
    _mp4_with_audio(source, read_frames(clip)[0], fps=10)
    assert _audio_seconds(source) == pytest.approx(1.0, abs=0.1)
    out = dreamstyle.video(source, tmp_path / "out.mp4", progress=False)
    frames, rate = read_frames(out)
    assert len(frames) == 10 and float(rate) == pytest.approx(10)
    assert _audio_seconds(out) == pytest.approx(1.0, abs=0.1)
    half = dreamstyle.video(source, tmp_path / "half.mp4", start=0.5, progress=False)  # the audio is cut to match
    assert len(read_frames(half)[0]) == 5 and _audio_seconds(half) == pytest.approx(0.5, abs=0.1)


def test_a_folder_of_frames_out(clip, tmp_path):
    out = dreamstyle.video(clip, tmp_path / "frames", every=5, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["000000.png", "000001.png"]
    assert not (tmp_path / "frames.frames").exists() and not (tmp_path / "frames.writing").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        dreamstyle.video(clip, tmp_path / "full", progress=False)
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"


def test_an_unreadable_codec_and_an_unwritable_output_are_clear_errors(clip, tmp_path):
    good = tmp_path / "good.mp4"
    dreamstyle.video(clip, good, temporal_weight=0.0, progress=False)
    data = good.read_bytes()
    tag = b"avc1" if b"avc1" in data else b"mp4v"
    odd = tmp_path / "odd.mp4"
    odd.write_bytes(data.replace(tag, b"zzzz"))  # a codec no decoder knows
    with pytest.raises(UserError, match="cannot decode|not a video"):
        dreamstyle.video(odd, tmp_path / "o.mp4", progress=False)
    assert not (tmp_path / "o.mp4").exists()
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    with pytest.raises(UserError, match="does not exist|not a folder|cannot write"):
        dreamstyle.video(clip, blocker / "out.mp4", progress=False)


def test_mode_options_are_checked(clip, image_files, tmp_path):
    from dreamstyle.errors import SettingError

    cases = [({"mode": "stylize"}, "style_images"),
             ({"mode": "dream", "style_images": [image_files.style]}, "style_images"),
             ({"frame_iterations": 3}, "frame_iterations"), ({"mode": "dream", "temporal_weight": 1.0}, "below 1"),
             ({"mode": "apply", "octaves": 2}, "octaves"),
             ({"mode": "stylize", "style_images": [image_files.style], "save_every": 2}, "save_every")]
    for settings, words in cases:
        with pytest.raises((SettingError, TypeError), match=words):
            dreamstyle.video(clip, tmp_path / "x.gif", progress=False, **settings)
    assert not list(tmp_path.iterdir())


def test_the_command_line_takes_each_modes_options(clip, image_files, tmp_path, capsys):
    from dreamstyle.frontends import cli

    out = tmp_path / "s.gif"
    code = cli.main(["video", str(clip), "-o", str(out), "--mode", "stylize", "--style", str(image_files.style),
                     "--size", "64", "--iterations", "4", "--frame-iterations", "2", "--every", "5", "--quiet"])
    assert code == 0 and len(read_frames(out)[0]) == 2
    with pytest.raises(SystemExit) as exit_:  # argparse refuses it while parsing
        cli.main(["video", str(clip), "-o", str(tmp_path / "a.gif"), "--iterations", "4", "--quiet"])
    code, err = exit_.value.code, capsys.readouterr().err
    assert code == 2 and "--iterations" in err and len(err.strip().splitlines()) == 1  # not an apply option
    with pytest.raises(SystemExit):
        cli.main(["video", "--mode", "dream", "--help"])
    shown = capsys.readouterr().out
    assert "--octaves" in shown and "--temporal-weight" in shown and "--strength" not in shown


@pytest.mark.parametrize("mode", ["stylize", "dream"])
def test_the_slow_modes_resume_to_the_same_frames(mode, clip, image_files, tmp_path, monkeypatch):
    """Stylize and dream frames build on the saved previous frame and seed per frame, so a run stopped
    inside a frame and started again ends where an unbroken run does."""
    settings = {"stylize": dict(style_images=[image_files.style], size=64, iterations=6, frame_iterations=3),
                "dream": dict(octaves=2, iterations=3, frame_iterations=2)}[mode]
    whole = dreamstyle.video(clip, tmp_path / "whole.gif", mode=mode, **settings, **SMALL_CLIP)
    cut = tmp_path / "cut.gif"
    with monkeypatch.context() as m:
        ctrl_c_at_step(m, 10)  # inside the third frame in both
        with pytest.raises(dreamstyle.Interrupted):
            dreamstyle.video(clip, cut, mode=mode, **settings, **SMALL_CLIP)
    assert not cut.exists() and 1 <= len(list((tmp_path / "cut.gif.frames").glob("*.png"))) < 5
    dreamstyle.video(clip, cut, mode=mode, **settings, **SMALL_CLIP)
    a, b = read_frames(whole)[0], read_frames(cut)[0]
    assert len(a) == len(b) == 5
    diffs = [float(np.abs(np.asarray(x, float) - np.asarray(y, float)).max()) for x, y in zip(a, b)]
    assert max(diffs) == 0, diffs


# --- hardening: the work folder's record, signals, a full disk, bad paths (issue 17) -----------------------

# Runs `dreamstyle ARGS` after patching one function (module:Owner.name) to send this process a signal
# when it is called for the Nth time: a Ctrl-C or SIGTERM at an exact point of the run.
SIGNAL_AT = r"""
import importlib, os, signal, sys
where, nth, sig = sys.argv[1], int(sys.argv[2]), getattr(signal, sys.argv[3])
module, _, attr = where.partition(":")
owner = importlib.import_module(module)
*path, name = attr.split(".")
for part in path:
    owner = getattr(owner, part)
real, calls = getattr(owner, name), [0]
def patched(*args, **kwargs):
    calls[0] += 1
    if calls[0] == nth:
        os.kill(os.getpid(), sig)
    return real(*args, **kwargs)
setattr(owner, name, patched)
sys.argv = ["dreamstyle", *sys.argv[4:]]
from dreamstyle.frontends.cli import run
run()
"""


def _run(tmp_path: Path, *args, signal_at: tuple[str, int, str] | None = None,
         preexec=None) -> subprocess.CompletedProcess:
    from conftest import cli_env

    head = ["-c", SIGNAL_AT, *map(str, signal_at)] if signal_at else ["-m", "dreamstyle"]
    return subprocess.run([sys.executable, *head, *map(str, args)], capture_output=True, text=True, timeout=300,
                          env=cli_env(tmp_path / "torch_home"), preexec_fn=preexec)


def _leftovers(folder: Path) -> list[str]:
    """Temp files a write left behind."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".ds-") or p.name.endswith(".writing"))


def _one_line(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr
    return lines[0]


def test_the_work_folders_record_is_atomic_and_a_folder_without_one_is_taken_over(clip, tmp_path, monkeypatch):
    from dreamstyle.animation import count_frames

    out, work = tmp_path / "a.gif", tmp_path / "a.gif.frames"
    work.mkdir()  # a crash between making the folder and writing run.json
    dreamstyle.video(clip, out, every=5, progress=False)
    assert count_frames(out) == 2 and not work.exists()
    out.unlink()
    real = Path.write_text

    def crash(self, text, *args, **kwargs):  # the process dies half-way through writing the record
        if self.name == "run.json" or self.suffix == ".tmp":
            real(self, text[:len(text) // 2])
            raise KeyboardInterrupt
        return real(self, text, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(Path, "write_text", crash)
        with pytest.raises(KeyboardInterrupt):
            dreamstyle.video(clip, out, every=5, progress=False)
    assert not (work / "run.json").exists() and not _leftovers(work)  # no half-written record
    dreamstyle.video(clip, out, every=5, progress=False)  # so the rerun goes ahead
    assert count_frames(out) == 2 and not work.exists()
    work.mkdir()
    Image.new("RGB", (96, 96)).save(work / "000000.png")  # frames nobody recorded: not reused, not deleted
    with pytest.raises(UserError, match="holds frames but no readable record"):
        dreamstyle.video(clip, tmp_path / "a.gif", every=5, progress=False)
    assert (work / "000000.png").exists()


@pytest.mark.parametrize("sig, code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_an_interrupted_video_leaves_no_output_and_continues(sig, code, clip, tmp_path):
    """A signal while frames are encoded or made: the exit status says so, the output is absent (not a
    part of a video), no temp file is left, and the same command continues."""
    from dreamstyle.animation import count_frames

    out = tmp_path / "out.mp4"
    for where, nth in (("dreamstyle.animation:AnimationWriter.add", 4), ("dreamstyle.tasks.video:flow", 6)):
        proc = _run(tmp_path, "video", clip, "-o", out, "--quiet", signal_at=(where, nth, sig))
        assert proc.returncode == code, proc.stderr
        assert "Traceback" not in proc.stderr and ("terminated" if code == 143 else "interrupted") in proc.stderr
        assert not out.exists() and not _leftovers(tmp_path)
        assert 4 <= len(list((tmp_path / "out.mp4.frames").glob("*.png"))) < 10
    proc = _run(tmp_path, "video", clip, "-o", out, "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert count_frames(out) == 10 and not (tmp_path / "out.mp4.frames").exists() and not _leftovers(tmp_path)


def test_sigterm_during_a_zoom_leaves_a_whole_mp4(image_files, tmp_path):
    """In the frames (the frames so far are written) and in the final write (it finishes): 143 each time,
    and the MP4 that is left is whole."""
    from dreamstyle.animation import count_frames

    out = tmp_path / "zoom.mp4"
    zoom = ["dream", image_files.astronaut, "-o", out, "--zoom", "5", "--size", "48", "--octaves", "1", "--iterations",
            "2", "--frame-iterations", "1", "--quiet"]
    for where, nth, frames in (("dreamstyle.tasks.dream:Dreamer.run", 3, 2),
                               ("dreamstyle.animation:AnimationWriter.add", 2, 5)):
        proc = _run(tmp_path, *zoom, signal_at=(where, nth, "SIGTERM"))
        assert proc.returncode == 143 and "Traceback" not in proc.stderr, proc.stderr
        assert count_frames(out) == frames and not _leftovers(tmp_path)
        out.unlink()


@pytest.mark.skipif(sys.platform == "win32", reason="needs RLIMIT_FSIZE")
def test_a_full_disk_is_one_line_and_says_where_the_frames_are(clip, tmp_path):
    """Writes fail past a file-size limit (EFBIG, as they would on a full disk): the run.json that cannot be
    written leaves no work folder; a video that cannot be written leaves no output, and the message says
    the finished frames are kept for the rerun, which continues from them."""
    import resource

    from dreamstyle.animation import count_frames

    def limit(size: int):
        return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    out = tmp_path / "out.gif"
    proc = _run(tmp_path, "video", clip, "-o", out, "--quiet", preexec=limit(100))
    assert proc.returncode == 1 and "cannot write" in _one_line(proc) and "run.json" in _one_line(proc)
    assert not (tmp_path / "out.gif.frames").exists() and not out.exists()
    proc = _run(tmp_path, "video", clip, "-o", out, "--quiet", preexec=limit(60_000))  # a frame fits, the GIF not
    line = _one_line(proc)
    assert proc.returncode == 1 and "cannot write" in line
    assert "finished frames stay in" in line and "the same command continues" in line, line
    assert not out.exists() and not _leftovers(tmp_path)
    assert len(list((tmp_path / "out.gif.frames").glob("*.png"))) >= 4
    proc = _run(tmp_path, "video", clip, "-o", out, "--quiet")
    assert proc.returncode == 0 and count_frames(out) == 10 and not (tmp_path / "out.gif.frames").exists()


def test_a_truncated_jpeg_is_refused_as_stylize_refuses_it(clip, tmp_path):
    whole = tmp_path / "photo.jpg"
    Image.open(clip / "0000.png").save(whole, quality=95)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(UserError, match="truncated or corrupt"):
        dreamstyle.video(cut, tmp_path / "a.gif", progress=False)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i:04d}.jpg").write_bytes((cut if i == 2 else whole).read_bytes())
    with pytest.raises(UserError, match="0002.jpg.*truncated or corrupt"):
        dreamstyle.video(folder, tmp_path / "b.gif", progress=False)
    assert not (tmp_path / "a.gif").exists() and not (tmp_path / "b.gif").exists()
    assert len(read_frames(dreamstyle.video(whole, tmp_path / "c.gif", progress=False))[0]) == 1


def test_a_long_output_name_gets_a_work_folder_that_fits(clip, tmp_path, monkeypatch):
    """A 250-byte name is valid; '.frames' after it is not, so the work folder's name is cut and hashed."""
    for name in ("v" * 246 + ".gif", "f" * 250):
        out = tmp_path / name
        with monkeypatch.context() as m:
            ctrl_c_at_step(m, 2)  # in the second frame
            with pytest.raises(dreamstyle.Interrupted):
                dreamstyle.video(clip, out, every=5, progress=False)
        (work,) = [p for p in tmp_path.iterdir() if p.name.endswith(".frames")]
        assert len(work.name.encode()) <= 255 and work.name.startswith(name[:200])
        assert (work / "000000.png").exists()
        dreamstyle.video(clip, out, every=5, progress=False)  # continues in the same work folder
        assert len(read_frames(out)[0]) == 2 and not work.exists() and not _leftovers(tmp_path)


def test_an_unreadable_video_says_permission_denied(clip, tmp_path, monkeypatch):
    import av

    source = tmp_path / "clip.mp4"
    _mp4_with_audio(source, read_frames(clip)[0])

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(source))

    monkeypatch.setattr(av, "open", denied)
    with pytest.raises(UserError, match="permission denied; check the file's permissions"):
        dreamstyle.video(source, tmp_path / "o.gif", progress=False)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_video_file(clip, tmp_path):
    source = tmp_path / "clip.mp4"
    _mp4_with_audio(source, read_frames(clip)[0])
    source.chmod(0)
    with pytest.raises(UserError, match="permission denied"):
        dreamstyle.video(source, tmp_path / "o.gif", progress=False)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_as_the_video_is_refused_at_once(cli, tmp_path):
    fifo = tmp_path / "clip.mp4"
    os.mkfifo(fifo)
    proc = cli.run("video", fifo, "-o", tmp_path / "o.mp4", "--quiet", timeout=60)  # it used to wait for a writer
    line = cli.one_line_error(proc)
    assert proc.returncode == 2 and "FIFO" in line and "not a video file" in line, line


def test_an_output_that_names_the_input_is_refused_before_any_work(clip, tmp_path):
    source = tmp_path / "clip.mp4"
    _mp4_with_audio(source, read_frames(clip)[0])
    before = source.read_bytes()
    (tmp_path / "sub").mkdir()
    for spelling in (source, tmp_path / "sub" / ".." / "clip.mp4"):
        with pytest.raises(UserError, match="is also an input"):
            dreamstyle.video(source, spelling, progress=False)
    assert source.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "sub"]


def test_a_too_long_file_name_is_one_line(cli, clip, tmp_path):
    long = "x" * 300
    for args in ((tmp_path / f"{long}.mp4", "-o", tmp_path / "o.mp4"), (clip, "-o", tmp_path / f"{long}.mp4"),
                 (clip, "-o", tmp_path / long)):
        proc = cli.run("video", *args, "--quiet")
        line = cli.one_line_error(proc)
        assert proc.returncode == 2 and ("too long" in line or "more than" in line), line

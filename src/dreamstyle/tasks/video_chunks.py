"""A video across workers (``video --workers N`` or ``--ray``): the clip cut into chunks, one task each.

Frame t of a video builds on frame t-1's result, so a chunk that started cold at its first frame would
show a seam: a full first frame where the single run carries the look over. So each chunk starts
``WARMUP`` frames before its range, from a full first frame as a shot's start, runs those frames through
the ordinary per-frame loop and throws them away; by its own first frame the carried look has settled
as it does anywhere else. A scene cut needs no warm-up (the single run starts fresh there too), so a
boundary moves to a cut within ``CUT_WINDOW`` frames of the even split. The chunks write their frames
into the run's work folder (local workers) or send them back as PNGs (Ray), and the ordinary video run
then finds every frame saved and assembles them in order, with the audio as always.
"""

from __future__ import annotations

import dataclasses
import itertools
import tempfile
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import RunError, UserError
from ..events import Child, Run
from ..images import array_from_image, atomic_path
from ..motion.flow import CUT_RELIABLE, reliable
from ..motion.frames import Frames, open_frames
from ..settings import VIDEO_MODES, ScaleSettings, VideoSettings, make
from ..threads import free_cores
from .scale import LocalPool, RayPool, drive, failure, files_in, materialize, swap

WARMUP = 4  # frames each chunk runs before its range and throws away
CUT_WINDOW = 8  # how far a scene cut may move a boundary from the even split


@dataclass(frozen=True)
class Chunk:
    start: int  # the first frame it keeps
    end: int  # one past its last
    warmup: int  # frames it runs before ``start`` and throws away


def plan_chunks(frames: Frames, parts: int) -> list[Chunk]:
    """``parts`` chunks of about equal length, a boundary moved to a scene cut near it; warm-up frames before
    each chunk that does not start a shot."""
    count = frames.count
    nominal = [round(count * k / parts) for k in range(1, parts)]
    cuts = _cuts_near(frames, nominal)
    bounds = [0]
    for n in nominal:
        near = [c for c in cuts if abs(c - n) <= CUT_WINDOW and c > bounds[-1]]
        b = min(near, key=lambda c: abs(c - n)) if near else n
        if bounds[-1] < b < count:
            bounds.append(b)
    bounds.append(count)
    chunks = []
    for a, b in zip(bounds, bounds[1:]):
        shot = max([0, *(c for c in cuts if c <= a)])  # the single run starts fresh here
        chunks.append(Chunk(a, b, min(WARMUP, a - shot)))
    return chunks


def _cuts_near(frames: Frames, nominal: list[int]) -> set[int]:
    """The frames within CUT_WINDOW of a nominal boundary that start a shot (the flow from the frame before
    holds for less than CUT_RELIABLE of the pixels, as the video loop decides)."""
    wanted = {i for n in nominal for i in range(max(1, n - CUT_WINDOW), n + CUT_WINDOW + 1)}
    cuts, previous = set(), None
    for i, frame in enumerate(frames):
        if i > max(wanted, default=0):
            break
        photo = array_from_image(frame) if (i in wanted or i + 1 in wanted) else None
        if i in wanted and previous is not None and photo is not None \
                and reliable(previous, photo).mean() < CUT_RELIABLE:
            cuts.add(i)
        previous = photo
    return cuts


# --- a chunk, in a worker ---------------------------------------------------------------------------------------

def run_chunk(spec: dict[str, Any], *files: bytes | str) -> dict[str, Any]:
    """One chunk in a worker: its frames saved into ``spec['work']`` (local), or returned as PNG bytes by frame
    index (Ray). Never raises: an error comes back as its one line."""
    if spec.get("threads"):
        import torch

        torch.set_num_threads(int(spec["threads"]))
    with tempfile.TemporaryDirectory(prefix="dreamstyle-chunk-") as tmp:
        local = materialize(spec["files"], files, Path(tmp))
        try:
            return {"frames": _chunk_frames(swap(spec, local), Path(tmp))}
        except Exception as exc:  # noqa: BLE001 - reported to the driver in one line
            return failure(exc)


def _chunk_frames(spec: dict[str, Any], tmp: Path) -> dict[int, bytes] | int:
    from .video import _checked_framer, _frame, _frame_iterations, _temporal_weight

    s = make(VideoSettings, spec["video"])
    ms = make(VIDEO_MODES[s.mode], spec["mode_settings"])
    frames = open_frames(spec["source"], getattr(ms, "size", None), s.start, s.end, s.every)
    start, end, warmup = spec["chunk"]
    stream = itertools.islice(iter(frames), start - warmup, end)
    head = next(stream)
    events = Run("video", 0)
    weight, steps = _temporal_weight(s), _frame_iterations(s)
    framer = _checked_framer(frames, s, ms, weight, steps, lambda: head, events)
    work = Path(spec["work"]) if spec.get("work") else tmp / "frames"
    work.mkdir(exist_ok=True)
    previous, sent = None, {}
    for i, frame in enumerate(itertools.chain([head], stream), start=start - warmup):
        photo = array_from_image(frame)
        path = work / f"{i:06d}.png" if i >= start else tmp / f"warmup{i:06d}.png"
        image = _frame(framer, i, photo, previous, weight, path, spec["params"], events, Child(events))
        previous = (photo, array_from_image(image))
        if i >= start and not spec.get("work"):
            sent[i] = path.read_bytes()
    return sent or end - start


# --- the driver -------------------------------------------------------------------------------------------------

def chunked(source: str, s: VideoSettings, mode_settings: Any, scale: ScaleSettings,
            events: Run) -> Callable[[Path, dict[str, Any]], None]:
    """What :func:`.video.video` calls with its work folder and parameters: the chunks not yet saved, run on
    the local pool (``scale.workers`` chunks) or on Ray (one chunk per task the cluster holds)."""
    def fill(work: Path, params: dict[str, Any]) -> None:
        frames = open_frames(source, getattr(mode_settings, "size", None), s.start, s.end, s.every)
        if scale.ray and frames.kind == "folder":
            raise UserError("--ray takes a video file or a GIF, not a folder of frames (each task is sent the "
                            "source's bytes)")
        ray = RayPool(scale.ray, scale.cpus_per_job, scale.gpus_per_job, scale.retries) if scale.ray else None
        parts = scale.workers or (ray.workers if ray is not None else free_cores())
        todo = [c for c in plan_chunks(frames, min(parts, frames.count))
                if not all((work / f"{i:06d}.png").is_file() for i in range(c.start, c.end))]
        if not todo:  # all saved by an earlier run
            if ray is not None:
                ray.close()
            return
        pool: LocalPool | RayPool = ray or LocalPool(len(todo), max(1, free_cores() // len(todo)))
        base = {"source": source, "video": _fields(s), "mode_settings": _fields(mode_settings), "params": params,
                "work": None if scale.ray else str(work), "files": [source, *_files(s, mode_settings)]}
        try:
            _drive(pool, todo, base, work, scale.retries)
        except BaseException:
            pool.close(wait=False)
            raise
        pool.close()
    return fill


def _fields(settings: Any) -> dict[str, Any]:
    return {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}


def _files(s: VideoSettings, ms: Any) -> list[str]:
    """The files besides the source that a chunk reads: the paintings, and any file a setting names."""
    return list(dict.fromkeys([*(str(p) for p in s.style_images or []), *files_in(_fields(ms))]))


def _drive(pool: LocalPool | RayPool, todo: list[Chunk], base: dict[str, Any], work: Path, retries: int) -> None:
    """Every chunk once (and again after a failure, ``retries`` times); frames sent back are saved in ``work``."""
    def submit(chunk: Chunk) -> Future:
        return pool.submit(run_chunk, {**base, "chunk": (chunk.start, chunk.end, chunk.warmup)}, base["files"])

    def outcome(future: Future) -> tuple[Any, Any, bool]:
        exc = future.exception()
        result = {"error": f"its worker died ({type(exc).__name__})", "retry": True} if exc else future.result()
        return (None, result["error"], bool(result.get("retry"))) if "error" in result else (result, None, False)

    def land(chunk: Chunk, result: dict[str, Any]) -> None:
        for index, png in (result["frames"] if isinstance(result["frames"], dict) else {}).items():
            with atomic_path(work / f"{int(index):06d}.png") as tmp, open(tmp, "wb") as f:
                f.write(png)

    def fail(chunk: Chunk, error: str) -> None:
        raise RunError(f"frames {chunk.start + 1}-{chunk.end} failed: {error}")

    drive(pool, todo, submit, outcome, land, fail, retries)

"""The public Python API: ``dreamstyle.stylize``, ``dream``, ``dream_zoom``, ``explore``, ``sheet``, and the
feed-forward trio ``train``, ``apply`` and ``export``.

A thin facade (torch-free to import): each function takes its keyword settings, whose defaults and
checks come from :mod:`dreamstyle.settings`, and hands over to its task in :mod:`dreamstyle.tasks`.
Progress reaches the terminal (``progress=True``) and any ``on_event`` subscriber through the same
run events; a :class:`~dreamstyle.events.CancelToken` stops a run from another thread.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Union

from .events import CancelToken, Run, Subscriber
from .settings import (
    BATCH_MODES,
    VIDEO_MODES,
    ApplySettings,
    BatchSettings,
    DreamSettings,
    ExploreSettings,
    ExportSettings,
    ScaleSettings,
    StylizeSettings,
    TrainSettings,
    VideoSettings,
    ZoomSettings,
    make,
    options,
    signature_of,
    split,
)

if TYPE_CHECKING:
    from pathlib import Path

    from PIL import Image

    from .fastnet.modelfile import StyleModel
    from .tasks.apply import LoadedStyle
    from .tasks.batch import BatchReport
    from .tasks.export import ExportReport

ImageLike = Union[str, os.PathLike, "Image.Image"]
Path_ = str | os.PathLike | None
_P = inspect.Parameter
_COMMON = dict(output=None, progress=True, on_event=None, preview_every=0, cancel=None)


@contextmanager
def _events(task: str, progress: bool, on_event: Subscriber | None, preview_every: int,
            cancel: CancelToken | None, unit: str = "step") -> Iterator[Run]:
    """A run's events with the terminal bar and the caller's subscriber; the bar is closed however it ends."""
    from .progress import ProgressBar

    run = Run(task, 0, cancel=cancel)
    bar = ProgressBar(unit) if progress else None
    if bar is not None:
        run.subscribe(bar)
    if on_event is not None:
        run.subscribe(on_event, preview_every)
    try:
        yield run
    finally:
        if bar is not None:
            bar.close()


@signature_of(StylizeSettings, _P("content", _P.POSITIONAL_OR_KEYWORD), _P("styles", _P.POSITIONAL_OR_KEYWORD),
              **_COMMON)
def stylize(content: ImageLike, styles: ImageLike | Sequence[ImageLike], *, output: Path_ = None,
            progress: bool = True, on_event: Subscriber | None = None, preview_every: int = 0,
            cancel: CancelToken | None = None, **settings: Any) -> Image.Image:
    """Gatys et al. style transfer: an image with ``content``'s layout and the style images' textures.

    Returns a PIL image (its ``info['dreamstyle']`` holds the parameters) and, if ``output`` is given,
    writes it there atomically with the parameters embedded. Ctrl-C, SIGTERM or ``cancel`` save the
    best image so far to ``output`` and raise :class:`~dreamstyle.events.Interrupted`.
    ``dream``: Deep Dream targets mixed into the objective, e.g. ``['auto=2']`` or just ``2``.
    """
    s = make(StylizeSettings, settings)
    from .tasks import stylize as task

    with _events("stylize", progress, on_event, preview_every, cancel) as run:
        return task.run(task.prepare(content, styles, s, output), run)


@signature_of(DreamSettings, _P("image", _P.POSITIONAL_OR_KEYWORD), **_COMMON)
def dream(image: ImageLike, *, output: Path_ = None, progress: bool = True, on_event: Subscriber | None = None,
          preview_every: int = 0, cancel: CancelToken | None = None, **settings: Any) -> Image.Image:
    """Deep Dream: amplify what the network sees in ``image`` at the target taps/channels.

    ``targets``: e.g. ``['blocks.8', 'blocks.10:strongest:8=2']`` (default: the backbone's dream tap).
    ``size``: long side of the result (default: the image's own). ``guide``: steer the features toward
    those of this image instead.
    """
    s = make(DreamSettings, settings)
    from .tasks import dream as task

    with _events("dream", progress, on_event, preview_every, cancel) as run:
        return task.dream(image, s, output, run)


@signature_of(DreamSettings, _P("image", _P.POSITIONAL_OR_KEYWORD), _P("output", _P.POSITIONAL_OR_KEYWORD),
              **{f: v for f, v in _COMMON.items() if f != "output"},
              **{f.name: f.default for f in dataclasses.fields(ZoomSettings)})
def dream_zoom(image: ImageLike, output: str | os.PathLike, *, progress: bool = True,
               on_event: Subscriber | None = None, preview_every: int = 0, cancel: CancelToken | None = None,
               **settings: Any) -> list[Image.Image]:
    """An endless-zoom animation (GIF or MP4, by ``output``'s extension): a dream, then ``frames - 1``
    frames that each zoom into the centre by ``zoom_scale`` and dream ``frame_iterations`` more steps.
    ``size`` defaults to 384 here."""
    dream_values, zoom_values = split(settings, DreamSettings, ZoomSettings)
    dream_values.setdefault("size", 384)
    s, z = make(DreamSettings, dream_values), make(ZoomSettings, zoom_values)
    from .tasks import dream as task

    with _events("dream --zoom", progress, on_event, preview_every, cancel) as run:
        return task.dream_zoom(image, output, s, z, run)


@signature_of(ExploreSettings, **_COMMON)
def explore(model: str | None = None, tap: str | None = None, *, output: Path_ = None, progress: bool = True,
            on_event: Subscriber | None = None, preview_every: int = 0, cancel: CancelToken | None = None,
            **settings: Any) -> Image.Image:
    """A labelled grid, one cell per channel of ``tap``: what excites it (feature visualization), or
    with ``image``, where it fires in that photo. ``model`` and ``tap`` may also be given first."""
    if model is not None:
        settings["model"] = model
    if tap is not None:
        settings["tap"] = tap
    s = make(ExploreSettings, settings)
    from .tasks import explore as task

    with _events("explore", progress, on_event, preview_every, cancel) as run:
        return task.explore(s, output, run)


@signature_of(StylizeSettings, _P("content", _P.POSITIONAL_OR_KEYWORD), _P("styles", _P.POSITIONAL_OR_KEYWORD),
              _P("sweeps", _P.POSITIONAL_OR_KEYWORD), _P("output", _P.POSITIONAL_OR_KEYWORD),
              **{f: v for f, v in _COMMON.items() if f != "output"})
def sheet(content: ImageLike, styles: ImageLike | Sequence[ImageLike], sweeps: Sequence[str],
          output: str | os.PathLike, *, progress: bool = True, on_event: Subscriber | None = None,
          preview_every: int = 0, cancel: CancelToken | None = None, **settings: Any) -> Image.Image:
    """A labelled contact sheet: one stylize per combination of the ``sweeps`` (``'style-weight=1e2,1e3'``)."""
    s = make(StylizeSettings, settings)
    from .tasks import sheet as task

    with _events("sheet", progress, on_event, preview_every, cancel) as run:
        return task.make_sheet(content, styles, sweeps, s, output, run)


_NO_OUTPUT = {f: v for f, v in _COMMON.items() if f != "output"}


@signature_of(TrainSettings, _P("style", _P.POSITIONAL_OR_KEYWORD), _P("output", _P.POSITIONAL_OR_KEYWORD),
              **_NO_OUTPUT)
def train(style: ImageLike, output: str | os.PathLike, *, progress: bool = True, on_event: Subscriber | None = None,
          preview_every: int = 0, cancel: CancelToken | None = None, **settings: Any) -> StyleModel:
    """Train a feed-forward network for the painting ``style`` on the photos in ``data`` (Johnson et al. 2016).

    ``output`` (a .pt file) is also the checkpoint: written every ``checkpoint_every`` steps, on Ctrl-C or
    cancel, and at the end; ``resume=True`` continues from it. ``init``: fine-tune a trained model
    (a bundled style name or a .pt) instead of starting from scratch.
    """
    s = make(TrainSettings, settings)
    from .tasks import train as task

    with _events("train", progress, on_event, preview_every, cancel) as run:
        return task.train(style, s, output, run)


@signature_of(ApplySettings, _P("images", _P.POSITIONAL_OR_KEYWORD), **_COMMON)
def apply(images: ImageLike | Sequence[ImageLike], *, output: Path_ = None, progress: bool = True,
          on_event: Subscriber | None = None, preview_every: int = 0, cancel: CancelToken | None = None,
          **settings: Any) -> list[Image.Image]:
    """Stylize photos with a trained network in one pass each: ``model`` is a bundled style, a .pt or an
    .onnx file (.onnx needs only onnxruntime). ``images``: files, PIL images or folders; ``output``: a
    file for one image, a folder for several."""
    s = make(ApplySettings, settings)
    from .tasks import apply as task

    items = [images] if isinstance(images, (str, os.PathLike)) or not isinstance(images, Sequence) else images
    with _events("apply", progress, on_event, preview_every, cancel) as run:
        return task.apply(list(items), s, output, run)


@signature_of(ExportSettings, _P("model", _P.POSITIONAL_OR_KEYWORD), _P("output", _P.POSITIONAL_OR_KEYWORD),
              **_NO_OUTPUT)
def export(model: str | os.PathLike, output: str | os.PathLike, *, progress: bool = True,
           on_event: Subscriber | None = None, preview_every: int = 0, cancel: CancelToken | None = None,
           **settings: Any) -> list[ExportReport]:
    """Export a trained model (a bundled style name or a .pt) to ONNX with a dynamic height and width,
    check onnxruntime's output against PyTorch's, and report the largest difference per file."""
    s = make(ExportSettings, settings)
    from .tasks import export as task

    with _events("export", progress, on_event, preview_every, cancel) as run:
        return task.export(model, output, s, run)


@signature_of(VideoSettings, _P("source", _P.POSITIONAL_OR_KEYWORD), _P("output", _P.POSITIONAL_OR_KEYWORD),
              progress=True, on_event=None, preview_every=0, cancel=None,
              **{f.name: f.default for f in dataclasses.fields(ScaleSettings)})
def video(source: str | os.PathLike, output: str | os.PathLike, *, progress: bool = True,
          on_event: Subscriber | None = None, preview_every: int = 0, cancel: CancelToken | None = None,
          **settings: Any) -> Path:
    """A video (file, GIF or folder of frames) kept steady by optical flow, written to ``output`` (.mp4,
    .gif or a new folder of frames). ``mode`` picks what each frame gets, and the mode's own settings come
    as keywords too: those of :func:`apply` (the default), :func:`stylize` (with ``style_images``) or
    :func:`dream`. Rerunning after an interruption continues where it stopped. ``workers`` (N local processes)
    or ``ray`` (a Ray address) split the clip into chunks, one per task (see DESIGN.md)."""
    video_names = {f.name for f, _ in options(VideoSettings)}
    scale_names = {f.name for f, _ in options(ScaleSettings)}
    s = make(VideoSettings, {k: v for k, v in settings.items() if k in video_names})
    scale = make(ScaleSettings, {k: v for k, v in settings.items() if k in scale_names})
    mode_settings = make(VIDEO_MODES[s.mode], {k: v for k, v in settings.items()
                                               if k not in video_names | scale_names})
    from .tasks import video as task

    with _events("video", progress, on_event, preview_every, cancel) as run:
        chunks = None
        if scale.ray or (scale.workers or 1) > 1:
            from .tasks.video_chunks import chunked

            chunks = chunked(str(source), s, mode_settings, scale, run)
        return task.video(source, output, s, mode_settings, run, chunks=chunks)


@signature_of(BatchSettings, _P("inputs", _P.POSITIONAL_OR_KEYWORD), _P("output", _P.POSITIONAL_OR_KEYWORD),
              progress=True, on_event=None, on_job_event=None, cancel=None)
def batch(inputs: str | os.PathLike, output: str | os.PathLike, *, progress: bool = True,
          on_event: Subscriber | None = None, on_job_event: Callable[[str, Any], None] | None = None,
          cancel: CancelToken | None = None, **settings: Any) -> BatchReport:
    """Many jobs, each an ordinary stylize, apply or dream call (``mode``): ``inputs`` is a folder of photos (with
    ``style_images`` or ``model`` for all) or a .csv/.json list of jobs (photo, style, output and any settings
    per row); results go to the folder ``output``, with a manifest that makes a rerun skip finished jobs. The
    mode's own settings come as keywords too, for every job. Runs on a local process pool, or on Ray with
    ``ray='auto'`` or an address. Returns a report (written, skipped, failed); a job that failed on every try
    is in ``failed`` with its one-line error. ``on_event`` gets a Step per job finished or failed (the bar's),
    ``on_job_event(output name, event)`` each job's own Step events as its worker runs it."""
    batch_names = {f.name for f, _ in options(BatchSettings)}
    s = make(BatchSettings, {k: v for k, v in settings.items() if k in batch_names})
    common = {k: v for k, v in settings.items() if k not in batch_names}
    make(BATCH_MODES[s.mode], common)  # an unknown name is a TypeError, a bad value a SettingError, before any work
    from .tasks import batch as task

    with _events("batch", progress, on_event, 0, cancel, unit="job") as run:
        return task.batch(inputs, output, s, common, run, on_job_event=on_job_event)


def load_style(model: str | os.PathLike, device: str = "auto") -> LoadedStyle:
    """A fast style (a bundled name, a .pt or an .onnx file) loaded once, to apply to many frames:
    ``style(array)`` maps an (H, W, 3) float array in [0, 1] to the stylized one."""
    from .tasks.apply import LoadedStyle

    return LoadedStyle(model, device)


def has_cached_style(settings: ApplySettings) -> bool:
    """Whether ``apply`` with these settings' ``style_image`` finds its fast style in the cache (without one,
    it fine-tunes first: minutes)."""
    from .tasks.faststyle import find_cached

    return find_cached(settings) is not None


def precheck(mode: str, settings: Any) -> None:
    """Every check a ``mode`` run makes before any slow work that needs no image (device, taps, dream targets,
    the optimizer), so that a bad setting is refused at once; ``settings`` are that mode's settings."""
    from .tasks.precheck import precheck as check

    check(mode, settings)


__all__ = ["stylize", "dream", "dream_zoom", "explore", "sheet", "train", "apply", "export", "video", "batch",
           "load_style",
           "has_cached_style", "precheck"]

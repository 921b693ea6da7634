"""Any painting as a fast style: fine-tuned once, cached, then applied in a blink (``apply --style``).

The first time a painting is asked for, a bundled style network is fine-tuned toward it on the training
photos shipped with dreamstyle (or a ``--data`` folder), reporting each step as part of the apply run.
The result is cached under :func:`~dreamstyle.fastnet.styles.cache_dir`, keyed by the painting's pixels
and the fine-tune's settings, with an ONNX copy when onnx is installed. While it trains, the model lives
in ``KEY.partial.pt``, which is also its checkpoint: an interrupted fine-tune leaves no finished-looking
entry, and the next run continues it. A lock keeps two processes from training the same entry at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from ..errors import RunError, UserError
from ..events import Child, Run
from ..fastnet.styles import TRAINING_PHOTOS, cache_dir, onnx_copy
from ..images import as_image, atomic_path, image_files, pixel_digest
from ..settings import ApplySettings, TrainSettings
from ..version import __version__

RECIPE = 1  # raise when the fine-tune changes in a way the key's settings do not show: old entries retrain
BASE_STYLE = "starry_night"  # the bundled style every fine-tune starts from
CHECKPOINT_EVERY = 25
CROP_SIZE, BATCH_SIZE = 256, 4  # the training crops (the tests make them smaller)
fine_tunes = 0  # fine-tunes run in this process (the tests count cache hits with it)


@dataclass(frozen=True)
class FastStyle:
    """A fast style in the cache: ``model`` (the .pt) and ``onnx`` (its ONNX copy, if made)."""

    model: Path
    onnx: Path | None


def entry_key(painting: Image.Image, steps: int, data: str | None) -> str:
    """The cache entry's name: a hash of the painting's pixels and the fine-tune's settings (not of its file
    name: the same painting under another name is the same style)."""
    recipe = {"recipe": RECIPE, "painting": pixel_digest(painting), "steps": steps, "base": BASE_STYLE,
              "crops": [CROP_SIZE, BATCH_SIZE], "data": _data_identity(data)}
    return "style-" + hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def _data_identity(data: str | None) -> Any:
    """What the key knows of the training photos: 'bundled', or the folder's files with sizes and times."""
    if data is None:
        return "bundled"
    return [[str(p), p.stat().st_size, int(p.stat().st_mtime)] for p in image_files(Path(data), recursive=True)]


def _locate(s: ApplySettings) -> tuple[Image.Image, str, str]:
    """The painting of ``s.style_image``, the name it is listed by, and its cache entry's key."""
    assert s.style_image is not None
    painting, name = as_image(s.style_image, "style")
    return painting, s.style_name or name, entry_key(painting, s.style_steps, s.style_data)


def _hit(final: Path) -> FastStyle | None:
    """The finished entry at ``final``, if there is one."""
    return FastStyle(final, onnx_copy(final)) if final.is_file() else None


def find_cached(s: ApplySettings) -> FastStyle | None:
    """The fast style of ``s.style_image`` if the cache has it (nothing is trained), else None."""
    return _hit(cache_dir() / f"{_locate(s)[2]}.pt")


def fast_style(s: ApplySettings, events: Run, images: int = 0) -> FastStyle:
    """The fast style of ``s.style_image``: from the cache, or fine-tuned now (its steps reported to
    ``events``, whose total also counts the ``images`` to apply after it)."""
    painting, name, key = _locate(s)
    folder = _make_folder(cache_dir())
    final, partial = folder / f"{key}.pt", folder / f"{key}.partial.pt"
    cached = _hit(final)
    if cached is not None:
        return cached
    with _locked(folder / f"{key}.lock"):
        cached = _hit(final)  # another process may have finished it while this one waited
        if cached is not None:
            return cached
        done = _resumable(partial)
        events.expect(s.style_steps - done + images, 0)
        _fine_tune(painting, name, s, partial, done, events)
        _finish(partial, final, name, key, s)
    return FastStyle(final, _export_onnx(final))


def _fine_tune(painting: Image.Image, name: str, s: ApplySettings, partial: Path, done: int,
               events: Run) -> None:
    """Fine-tune (or continue fine-tuning) the base style toward the painting, into ``partial``."""
    global fine_tunes
    from .train import train

    ts = TrainSettings(data=s.style_data or str(TRAINING_PHOTOS), max_steps=s.style_steps,
                       size=CROP_SIZE, batch_size=BATCH_SIZE, checkpoint_every=CHECKPOINT_EVERY,
                       init=None if done else BASE_STYLE, resume=bool(done))
    fine_tunes += 1
    style = s.style_image if isinstance(s.style_image, (str, os.PathLike)) else painting
    train(style, ts, partial, Child(events, prefix=f"fine-tuning a style for {Path(name).name}: "))


def _finish(partial: Path, final: Path, name: str, key: str, s: ApplySettings) -> None:
    """The trained model under its final name (atomically), with a description the torch-free listing reads."""
    from ..fastnet.modelfile import load_model, save_model

    model = load_model(partial)
    meta = {**model.meta, "name": Path(name).stem, "fast_style": key}
    save_model(model.net, final, meta)
    info = {"painting": Path(name).name, "steps": s.style_steps, "seconds": meta.get("seconds"),
            "data": s.style_data or "bundled photos", "dreamstyle": __version__, "created": time.time()}
    with atomic_path(final.with_suffix(".json")) as tmp:
        Path(tmp).write_text(json.dumps(info))
    partial.unlink(missing_ok=True)


def _resumable(partial: Path) -> int:
    """The steps an interrupted fine-tune at ``partial`` has done (0 for none, or for a file that cannot be
    continued, which is removed)."""
    if not partial.exists():
        return 0
    from ..fastnet.modelfile import load_model

    try:
        step = int(load_model(partial).train.get("step", 0))
    except Exception:  # noqa: BLE001 - a broken checkpoint (cut by a crash): start again
        step = 0
    if step <= 0:
        partial.unlink(missing_ok=True)
    return step


def _export_onnx(model: Path) -> Path | None:
    """An ONNX copy for onnxruntime (faster on a CPU), when onnx is installed; None otherwise."""
    import importlib.util

    if importlib.util.find_spec("onnx") is None or importlib.util.find_spec("onnxruntime") is None:
        return None
    from ..settings import ExportSettings
    from .export import export

    try:
        export(model, model.with_suffix(".onnx"), ExportSettings(check_size=64), Run("export", 0))
    except (RunError, UserError) as e:  # the .pt still works; apply runs it with torch
        warnings.warn(f"could not make an ONNX copy of the fast style ({e}); it runs with torch", stacklevel=2)
        return None
    return model.with_suffix(".onnx")


def _make_folder(folder: Path) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot make the style cache '{folder}': {e.strerror or e}; set DREAMSTYLE_CACHE to a "
                        "folder you can write") from None
    return folder


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path``; one line when another process holds it."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock
        yield
        return
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise UserError("another dreamstyle process is fine-tuning this painting now; wait for it to finish, "
                            "then run again (it will reuse that style)") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
